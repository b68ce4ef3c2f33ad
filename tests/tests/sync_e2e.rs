//! End-to-end sync: offline work, merges, conflicts, lost acks, crashes and restarts, with
//! real server and agent processes on loopback.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use fieldsync_tests::proxy::Proxy;
use fieldsync_tests::{now_ms, Agent, Api, Server, DISPATCHER, ENGINEER};
use rand::Rng;
use serde_json::{json, Value};

/// A server, the dispatcher's API client, one order assigned to eve, and eve's agent after
/// its first sync.
fn setup(root: &Path, order: Value) -> (Server, Api, String, Agent) {
    let server = Server::start(&root.join("server"));
    let office = server.api(DISPATCHER);
    let id = office.create_order(order);
    let eve = server.agent(&root.join("eve"), ENGINEER);
    let r = eve.sync();
    assert_eq!(r["in_sync"], true, "first sync: {r}");
    (server, office, id, eve)
}

/// A catalog part and eve's van: parts used on an order come out of a van.
fn van_for_eve(office: &Api, sku: &str) {
    for (kind, body) in [
        (
            "part",
            json!({"id": format!("p-{sku}"), "sku": sku, "name": sku}),
        ),
        (
            "stock_location",
            json!({"id": "van-eve", "name": "Eve's van", "type": "van", "engineers": "eve"}),
        ),
    ] {
        let (status, body) = office.post(&format!("/api/v1/entities/{kind}"), &body);
        assert_eq!(status, 201, "{body}");
    }
}

fn texts(records: &Value, field: &str) -> Vec<String> {
    records
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {records}"))
        .iter()
        .map(|r| r[field].as_str().unwrap().to_owned())
        .collect()
}

fn unresolved(view: &Value) -> Vec<Value> {
    view["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["resolved"] != true)
        .cloned()
        .collect()
}

fn addr(server: &Server) -> SocketAddr {
    format!("127.0.0.1:{}", server.port()).parse().unwrap()
}

#[test]
fn offline_work_reaches_the_dispatcher_after_the_server_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut server, office, id, eve) = setup(
        tmp.path(),
        json!({"description": "Boiler losing pressure", "priority": 2, "assignee": "eve"}),
    );

    van_for_eve(&office, "SEAL-40");
    assert_eq!(eve.sync()["in_sync"], true);
    server.kill();
    let offline_at = now_ms();
    eve.ok(&["progress", &id, "on-site"]);
    eve.ok(&["note", &id, "found a cracked seal on the expansion vessel"]);
    eve.ok(&["parts", "use", &id, "--sku", "SEAL-40", "--qty", "2"]);
    eve.ok(&[
        "edit",
        &id,
        "--description",
        "Boiler losing pressure: expansion vessel seal cracked",
    ]);
    assert_eq!(eve.info()["pending_ops"], 4);

    let err = eve.fail(&["sync"]);
    assert_eq!(err.trim().lines().count(), 1, "one-line reason: {err:?}");
    assert!(
        err.contains("cannot reach the server") && err.contains("4 changes pending"),
        "{err}"
    );
    let info = eve.info();
    assert_eq!(info["pending_ops"], 4, "{info}");
    assert_eq!(info["rejected_ops"], 0, "{info}");
    // The engineer still sees their own work while offline.
    let local = eve.show(&id);
    assert_eq!(local["status"], "on-site");
    assert_eq!(local["pending_ops"], 4);
    assert_eq!(local["notes"].as_array().unwrap().len(), 1);

    let back_at = now_ms();
    server.restart();
    let r = eve.sync();
    assert_eq!(r["pushed"], 4, "{r}");
    assert_eq!(r["pending"], 0, "{r}");
    assert_eq!(r["rejected"], 0, "{r}");
    assert_eq!(r["in_sync"], true, "{r}");
    assert_eq!(eve.info()["pending_ops"], 0);

    // The session survived the restart: it is stored with the data.
    let seen = office.order(&id);
    assert_eq!(seen["status"], "on-site", "{seen}");
    assert_eq!(
        seen["description"], "Boiler losing pressure: expansion vessel seal cracked",
        "{seen}"
    );
    let arrived = seen["arrived_at"].as_u64().expect("arrived_at set");
    assert!(
        (offline_at..=back_at).contains(&arrived),
        "arrival is the event time on site ({offline_at}..={back_at}), got {arrived}"
    );
    assert_eq!(
        texts(&seen["notes"], "text"),
        ["found a cracked seal on the expansion vessel"]
    );
    assert_eq!(seen["notes"][0]["by"], "eve");
    assert_eq!(seen["parts"].as_array().unwrap().len(), 1, "{seen}");
    assert_eq!(seen["parts"][0]["sku"], "SEAL-40");
    assert_eq!(seen["parts"][0]["qty"], 2);
    assert_eq!(seen["conflicts"], json!([]), "nobody else wrote: {seen}");
    let versions = &seen["versions"];
    let device = eve.info()["device_id"].clone();
    assert_eq!(
        versions["status"][1], device,
        "status written by eve's device"
    );
    assert_eq!(versions["description"][1], device);

    // And the agent's view equals the server's.
    let local = eve.show(&id);
    for f in [
        "status",
        "description",
        "arrived_at",
        "notes",
        "parts",
        "versions",
    ] {
        assert_eq!(local[f], seen[f], "field {f}");
    }
    assert_eq!(local["pending_ops"], 0);
}

#[test]
fn concurrent_edits_to_different_fields_merge_without_conflict() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, office, id, mut eve) = setup(
        tmp.path(),
        json!({"description": "Walk-in freezer alarm", "priority": 3, "assignee": "eve",
               "scheduled_start": 1_900_000_000_000u64}),
    );
    // Eve goes through a proxy that can cut her off, over TLS end to end.
    let proxy = Proxy::start(addr(&server));
    eve.server_override = Some(format!("https://127.0.0.1:{}", proxy.addr.port()));
    assert_eq!(eve.sync()["in_sync"], true, "works through the proxy");

    proxy.set_offline(true);
    eve.ok(&["progress", &id, "en-route"]);
    eve.ok(&["note", &id, "stuck in traffic on the A1, ETA 40 min"]);
    let err = eve.fail(&["sync"]);
    assert!(err.contains("2 changes pending"), "{err}");

    let (status, after) = office.patch(
        &format!("/api/v1/work-orders/{id}"),
        &json!({"priority": 1, "scheduled_start": 1_900_000_600_000u64}),
    );
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["priority"], 1);

    proxy.set_offline(false);
    let r = eve.sync();
    assert_eq!(
        (r["pushed"].as_u64(), r["pending"].as_u64()),
        (Some(2), Some(0)),
        "{r}"
    );
    assert_eq!(r["in_sync"], true, "{r}");

    let seen = office.order(&id);
    let local = eve.show(&id);
    for v in [&seen, &local] {
        assert_eq!(v["priority"], 1, "{v}");
        assert_eq!(v["scheduled_start"], 1_900_000_600_000u64, "{v}");
        assert_eq!(v["status"], "en-route", "{v}");
        assert_eq!(v["description"], "Walk-in freezer alarm", "{v}");
        assert_eq!(
            texts(&v["notes"], "text"),
            ["stuck in traffic on the A1, ETA 40 min"],
            "{v}"
        );
        assert_eq!(
            v["conflicts"],
            json!([]),
            "different fields never conflict: {v}"
        );
    }
    assert_eq!(local["versions"], seen["versions"]);
    let orders = eve.json(&["orders"]);
    assert_eq!(orders[0]["priority"], 1, "{orders}");
    assert_eq!(orders[0]["status"], "en-route", "{orders}");
}

#[test]
fn same_field_conflict_is_recorded_and_resolved_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, office, id, eve) = setup(
        tmp.path(),
        json!({"description": "Compressor tripping", "priority": 2, "assignee": "eve"}),
    );
    let engineer_text = "Compressor tripping: contactor burnt out, replaced";
    let dispatcher_text = "Compressor tripping twice a day; customer escalated";

    eve.ok(&["edit", &id, "--description", engineer_text]);
    std::thread::sleep(Duration::from_millis(20));
    let before = office.order(&id);
    let (status, after) = office.patch(
        &format!("/api/v1/work-orders/{id}"),
        &json!({"description": dispatcher_text,
                "base": {"description": before["versions"]["description"]}}),
    );
    assert_eq!(status, 200, "{after}");
    assert_eq!(
        after["conflicts"],
        json!([]),
        "the dispatcher saw the current value"
    );

    let r = eve.sync();
    assert_eq!(r["pushed"], 1, "{r}");
    assert_eq!(r["rejected"], 0, "a conflict is not a rejection: {r}");
    assert_eq!(r["pending"], 0, "{r}");
    assert_eq!(r["in_sync"], true, "{r}");

    let seen = office.order(&id);
    assert_eq!(seen["description"], dispatcher_text, "the later event wins");
    let conflicts = seen["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{seen}");
    let c = &conflicts[0];
    let device = eve.info()["device_id"].as_u64().unwrap();
    assert_eq!(c["field"], "description", "{c}");
    assert_eq!(c["entity_kind"], "work_order", "{c}");
    assert_eq!(c["entity_id"], json!(id), "{c}");
    assert_eq!(c["resolved"], false, "{c}");
    assert_eq!(c["winner"]["value"], dispatcher_text, "{c}");
    assert_eq!(c["winner"]["by"], "dana", "{c}");
    assert_eq!(c["winner"]["device"], 0, "{c}");
    assert_eq!(c["loser"]["value"], engineer_text, "{c}");
    assert_eq!(c["loser"]["by"], "eve", "{c}");
    assert_eq!(c["loser"]["device"], device, "{c}");
    assert!(
        c["winner"]["hlc"].as_u64() > c["loser"]["hlc"].as_u64(),
        "the winner is the later event: {c}"
    );
    assert!(c["winner"]["at_ms"].as_u64() >= c["loser"]["at_ms"].as_u64());

    let local = eve.show(&id);
    assert_eq!(local["description"], dispatcher_text);
    assert_eq!(
        local["conflicts"], seen["conflicts"],
        "the agent shows the same conflict"
    );

    // An engineer cannot settle it; the dispatcher picks the engineer's text.
    let cid = c["id"].as_str().unwrap().to_owned();
    let resolve = format!("/api/v1/conflicts/{cid}/resolve");
    let eve_api = server.api(ENGINEER);
    fieldsync_tests::assert_error(
        &eve_api.post(&resolve, &json!({"choose": "loser"})),
        403,
        "forbidden",
    );
    let (status, settled) = office.post(&resolve, &json!({"choose": "loser"}));
    assert_eq!(status, 200, "{settled}");
    assert_eq!(settled["resolved"], true, "{settled}");
    assert_eq!(settled["resolved_by"], "dana", "{settled}");
    assert_eq!(
        settled["resolution"],
        json!({"choose": "loser", "value": engineer_text}),
        "{settled}"
    );
    fieldsync_tests::assert_error(
        &office.post(&resolve, &json!({"choose": "winner"})),
        409,
        "already_resolved",
    );

    let seen = office.order(&id);
    assert_eq!(seen["description"], engineer_text, "{seen}");
    assert_eq!(
        unresolved(&seen),
        Vec::<Value>::new(),
        "no new conflicts: {seen}"
    );

    let r = eve.sync();
    assert_eq!(r["in_sync"], true, "{r}");
    let local = eve.show(&id);
    assert_eq!(local["description"], engineer_text, "{local}");
    let mine: Vec<&Value> = local["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["id"] == json!(cid))
        .collect();
    assert_eq!(mine.len(), 1, "{local}");
    assert_eq!(mine[0]["resolved"], true, "{local}");
    assert_eq!(mine[0]["resolution"]["choose"], "loser", "{local}");
    assert_eq!(unresolved(&local), Vec::<Value>::new(), "{local}");
    assert_eq!(local["conflicts"], seen["conflicts"]);
}

#[test]
fn lost_ack_is_resent_and_applied_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_http(&tmp.path().join("server"));
    let office = server.api(DISPATCHER);
    let id = office.create_order(json!({"description": "Pump cavitating", "priority": 2,
                                        "assignee": "eve"}));
    van_for_eve(&office, "IMP-7");
    let mut eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    assert_eq!(eve.sync()["in_sync"], true);
    let proxy = Proxy::start(addr(&server));
    eve.server_override = Some(proxy.url());
    proxy.cut_response_after("POST /api/v1/sync/push", 1);

    eve.ok(&["note", &id, "impeller worn, replaced"]);
    eve.ok(&["parts", "use", &id, "--sku", "IMP-7", "--qty", "1"]);
    eve.ok(&["progress", &id, "on-site"]);
    assert_eq!(eve.info()["pending_ops"], 3);

    let err = eve.fail(&["sync"]);
    assert!(err.contains("3 changes pending"), "{err}");
    assert_eq!(proxy.cuts_done(), 1, "the push response was cut");
    assert_eq!(eve.info()["pending_ops"], 3, "not acknowledged, so kept");
    // The server did the work; only the answer was lost.
    let seen = office.order(&id);
    assert_eq!(seen["notes"].as_array().unwrap().len(), 1, "{seen}");

    let r = eve.sync();
    assert_eq!(r["pushed"], 3, "{r}");
    assert_eq!(r["pending"], 0, "{r}");
    assert_eq!(r["rejected"], 0, "a re-send is not refused: {r}");
    assert_eq!(r["in_sync"], true, "{r}");

    let seen = office.order(&id);
    assert_eq!(
        texts(&seen["notes"], "text"),
        ["impeller worn, replaced"],
        "{seen}"
    );
    assert_eq!(texts(&seen["parts"], "sku"), ["IMP-7"], "{seen}");
    assert_eq!(seen["status"], "on-site");
    assert_eq!(
        seen["conflicts"],
        json!([]),
        "a re-sent op raises nothing: {seen}"
    );

    // Re-sending an acknowledged seq is skipped without being applied, whatever it says.
    let token = eve.meta("token").expect("device token");
    let device = Api::anonymous(&server).with_token(&token);
    let (status, resp) = device.push(&json!({"ops": [{
        "seq": 1, "kind": "note", "id": "resent-probe", "hlc": fieldsync_tests::hlc_at(now_ms()),
        "op": "create", "fields": {"order_id": id, "text": "must not appear"}}]}));
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["acked_seq"], 3, "{resp}");
    assert_eq!(resp["rejected"], json!([]), "{resp}");
    let seen = office.order(&id);
    assert_eq!(seen["notes"].as_array().unwrap().len(), 1, "{seen}");
    assert_eq!(eve.sync()["in_sync"], true);
}

#[test]
fn sigkill_mid_sync_loses_and_duplicates_nothing() {
    const NOTES: usize = 600;
    let tmp = tempfile::tempdir().unwrap();
    let (_server, office, id, eve) = setup(
        tmp.path(),
        json!({"description": "Conveyor motor overheating", "priority": 1, "assignee": "eve"}),
    );
    let notes: Vec<String> = (0..NOTES).map(|i| format!("reading {i:04}")).collect();
    eve.bulk_notes(&id, &notes);
    assert_eq!(eve.info()["pending_ops"], NOTES as u64);

    // Tiny batches make one sync a long run of push requests, each its own transaction on
    // both sides, so a kill lands between or inside them.
    let small_batches = [("FIELDSYNC_PUSH_BATCH_OPS_MAX", "3")];
    let mut rng = rand::thread_rng();
    let mut pending_seen = vec![NOTES as u64];
    let mut mid_run_kills = 0;
    // Kill after a random delay; start later whenever a kill came before any progress (a
    // slow, loaded machine), until three kills landed in the middle of a push run.
    let mut earliest = 10;
    for _ in 0..12 {
        let before = *pending_seen.last().unwrap();
        let mut child = eve.spawn_sync(&small_batches);
        std::thread::sleep(Duration::from_millis(earliest + rng.gen_range(0..60)));
        let killed = child.try_wait().unwrap().is_none();
        if killed {
            child.kill().unwrap();
        }
        child.wait().unwrap();
        let pending = eve.info()["pending_ops"].as_u64().unwrap();
        pending_seen.push(pending);
        assert!(
            pending <= before,
            "acknowledged ops never come back: {pending_seen:?}"
        );
        if killed && pending > 0 && pending < before {
            mid_run_kills += 1;
        }
        if pending == before {
            earliest += 40;
        }
        if pending == 0 || mid_run_kills == 3 {
            break;
        }
    }
    eprintln!("{mid_run_kills} kills mid-run; pending after each round: {pending_seen:?}");
    assert!(
        mid_run_kills >= 1,
        "no kill landed in the middle of a push run: {pending_seen:?}"
    );

    let r = eve.sync();
    assert_eq!(r["pending"], 0, "{r}");
    assert_eq!(r["rejected"], 0, "{r}");
    assert_eq!(r["in_sync"], true, "{r}");
    assert_eq!(eve.info()["rejected_ops"], 0);

    let seen = office.order(&id);
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for t in texts(&seen["notes"], "text") {
        *count.entry(t).or_default() += 1;
    }
    assert_eq!(count.len(), NOTES, "every note arrived");
    assert!(
        count.values().all(|&n| n == 1),
        "duplicates: {:?}",
        count.iter().filter(|(_, &n)| n > 1).collect::<Vec<_>>()
    );
    assert!(notes.iter().all(|n| count.contains_key(n)));
    assert_eq!(eve.show(&id)["notes"], seen["notes"]);

    let db = rusqlite::Connection::open(eve.db_path()).unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn pending_ops_survive_a_server_crash_and_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut server, office, id, eve) = setup(
        tmp.path(),
        json!({"description": "Lift door sensor faulty", "priority": 3, "assignee": "eve"}),
    );
    van_for_eve(&office, "SENS-3");
    eve.sync();
    eve.ok(&["progress", &id, "en-route"]);
    eve.ok(&["note", &id, "door sensor misaligned"]);
    eve.ok(&["parts", "use", &id, "--sku", "SENS-3", "--qty", "1"]);
    // Acknowledged just before the crash: must survive it.
    let (status, body) = office.patch(
        &format!("/api/v1/work-orders/{id}"),
        &json!({"priority": 1}),
    );
    assert_eq!(status, 200, "{body}");

    server.kill();
    assert_eq!(eve.info()["pending_ops"], 3);
    server.restart();
    let r = eve.sync();
    assert_eq!(r["pushed"], 3, "{r}");
    assert_eq!(r["pending"], 0, "{r}");
    assert_eq!(r["in_sync"], true, "{r}");

    let seen = office.order(&id);
    assert_eq!(seen["priority"], 1, "acked before the crash: {seen}");
    assert_eq!(seen["status"], "en-route");
    assert_eq!(texts(&seen["notes"], "text"), ["door sensor misaligned"]);
    assert_eq!(texts(&seen["parts"], "sku"), ["SENS-3"]);
    assert_eq!(eve.show(&id)["priority"], 1);
}

#[test]
fn graceful_stop_exits_zero_promptly_and_keeps_data() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut server, office, id, eve) = setup(
        tmp.path(),
        json!({"description": "Hand dryer dead", "priority": 4, "assignee": "eve"}),
    );
    eve.ok(&["note", &id, "fuse blown"]);
    assert_eq!(eve.sync()["pending"], 0);

    let started = Instant::now();
    let (status, took) = server
        .terminate(Duration::from_secs(5))
        .expect("server did not exit within 5 s of SIGTERM");
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(started.elapsed() < Duration::from_secs(6));
    assert!(server.log().contains("shutting down"), "{}", server.log());

    eve.ok(&[
        "progress",
        &id,
        "completed",
        "--resolution",
        "fuse replaced",
    ]);
    assert!(eve.fail(&["sync"]).contains("1 changes pending"));
    server.restart();
    let r = eve.sync();
    assert_eq!(
        (r["pending"].as_u64(), r["in_sync"].as_bool()),
        (Some(0), Some(true)),
        "{r}"
    );
    let seen = office.order(&id);
    assert_eq!(texts(&seen["notes"], "text"), ["fuse blown"]);
    assert_eq!(seen["status"], "completed");
    assert_eq!(seen["resolution"], "fuse replaced");
    assert!(seen["completed_at"].as_u64().is_some());
}

/// With a batch of 3 ops, 40 notes go out as 14 requests, several on the wire at a time
/// (`PUSH_IN_FLIGHT_MAX`): every op arrives exactly once, and the agent ends in sync with
/// nothing pending.
#[test]
fn many_small_batches_in_flight_at_once_arrive_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, office, id, eve) = setup(
        tmp.path(),
        json!({"description": "Chiller alarm log", "priority": 3, "assignee": "eve"}),
    );
    for i in 0..40 {
        eve.ok(&["note", &id, &format!("reading {i:02}")]);
    }
    let out = eve
        .command(&["sync", "--json"])
        .env("FIELDSYNC_PUSH_BATCH_OPS_MAX", "3")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["pushed"], 40, "{r}");
    assert_eq!(r["rejected"], 0, "{r}");
    assert_eq!(r["in_sync"], true, "{r}");
    assert_eq!(eve.info()["pending_ops"], 0);
    let mut notes = texts(&office.order(&id)["notes"], "text");
    assert_eq!(notes.len(), 40, "each note stored once: {notes:?}");
    notes.sort();
    let want: Vec<String> = (0..40).map(|i| format!("reading {i:02}")).collect();
    assert_eq!(notes, want);
}

/// An engineer's list holds only their own orders (the asset history stays out of it);
/// a dispatcher's device holds every order and lists them all.
#[test]
fn a_dispatcher_device_lists_every_order_an_engineer_only_theirs() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, office, eves, eve) = setup(
        tmp.path(),
        json!({"description": "Walk-in freezer iced up", "priority": 2, "assignee": "eve"}),
    );
    let sams = office
        .create_order(json!({"description": "Door seal torn", "priority": 3, "assignee": "sam"}));
    let dana = server.agent(&tmp.path().join("dana"), DISPATCHER);
    assert_eq!(dana.sync()["in_sync"], true);
    let ids = |agent: &fieldsync_tests::Agent| {
        let mut v: Vec<String> = agent
            .json(&["orders"])
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    let mut both = vec![eves.clone(), sams];
    both.sort();
    assert_eq!(ids(&dana), both);
    eve.sync();
    assert_eq!(ids(&eve), vec![eves]);
}
