//! Who may see and write what: scope, field ownership, tokens, revocation and
//! reassignment, through the API, raw pushes and the agent.

use std::collections::BTreeMap;
use std::path::Path;

use fieldsync_proto::{EntityId, EntityKind, OpKind};
use fieldsync_tests::{
    assert_error, hlc_at, now_ms, Agent, Api, Server, DISPATCHER, ENGINEER, ENGINEER2,
};
use serde_json::{json, Value};

/// A server with one order for eve and one for sam.
fn setup(root: &Path) -> (Server, Api, String, String) {
    let server = Server::start(&root.join("server"));
    let office = server.api(DISPATCHER);
    let eves = office.create_order(json!({"description": "Chiller alarm", "priority": 2,
                                          "assignee": "eve"}));
    let sams = office.create_order(json!({"description": "Ice machine leaking", "priority": 3,
                                          "assignee": "sam"}));
    (server, office, eves, sams)
}

fn order_ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

/// How many entities in the agent's store belong to or are the order `id`.
fn local_rows(agent: &Agent, id: &str) -> i64 {
    let db = rusqlite::Connection::open_with_flags(
        agent.db_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    db.query_row(
        "SELECT COUNT(*) FROM entities WHERE id = ?1 OR order_id = ?1",
        [id],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn engineer_cannot_see_or_write_another_engineers_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, office, eves, sams) = setup(tmp.path());
    let eve = server.api(ENGINEER);

    assert_error(
        &eve.get(&format!("/api/v1/work-orders/{sams}")),
        404,
        "not_found",
    );
    assert_error(
        &eve.get(&format!("/api/v1/entities/work_order/{sams}")),
        404,
        "not_found",
    );
    assert_error(
        &eve.patch(
            &format!("/api/v1/work-orders/{sams}"),
            &json!({"status": "on-site"}),
        ),
        404,
        "not_found",
    );
    // Not visible, so indistinguishable from an order that does not exist.
    let (_, missing) = eve.get("/api/v1/work-orders/no-such-order");
    let (_, hidden) = eve.get(&format!("/api/v1/work-orders/{sams}"));
    assert_eq!(missing["error"]["message"], hidden["error"]["message"]);
    assert_error(
        &eve.post(
            "/api/v1/entities/note",
            &json!({"order_id": sams, "text": "sneaky"}),
        ),
        403,
        "out_of_scope",
    );

    let (status, list) = eve.get("/api/v1/work-orders");
    assert_eq!(status, 200, "{list}");
    assert_eq!(order_ids(&list), [eves.as_str()]);
    let (status, list) = eve.get("/api/v1/work-orders?assignee=sam");
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        order_ids(&list),
        [eves.as_str()],
        "assignee is forced to self"
    );

    // Office-only actions.
    assert_error(
        &eve.post(
            "/api/v1/work-orders",
            &json!({"description": "self-assigned job", "priority": 1}),
        ),
        403,
        "not_creator",
    );
    assert_error(
        &eve.post("/api/v1/entities/customer", &json!({"name": "Made-up Ltd"})),
        403,
        "not_creator",
    );
    assert_error(
        &eve.post("/api/v1/devices/1/revoke", &json!({})),
        403,
        "forbidden",
    );
    // A session token is not a device token.
    assert_error(&eve.push(&json!({"ops": []})), 403, "forbidden");

    // Her own order: readable, engineer fields writable, dispatcher fields not.
    let (status, v) = eve.patch(
        &format!("/api/v1/work-orders/{eves}"),
        &json!({"status": "en-route"}),
    );
    assert_eq!(status, 200, "{v}");
    assert_error(
        &eve.patch(
            &format!("/api/v1/work-orders/{eves}"),
            &json!({"priority": 1}),
        ),
        403,
        "not_owner",
    );
    assert_error(
        &eve.patch(
            &format!("/api/v1/work-orders/{eves}"),
            &json!({"assignee": "eve"}),
        ),
        403,
        "not_owner",
    );

    let (status, all) = office.get("/api/v1/work-orders");
    assert_eq!(status, 200);
    assert_eq!(
        all.as_array().unwrap().len(),
        2,
        "nothing was created: {all}"
    );
    let theirs = office.order(&sams);
    assert_eq!(theirs["status"], "open", "{theirs}");
    assert_eq!(theirs["notes"], json!([]), "{theirs}");
    let mine = office.order(&eves);
    assert_eq!(mine["priority"], 2, "{mine}");
    assert_eq!(mine["status"], "en-route", "{mine}");
}

#[test]
fn pushed_op_on_a_dispatcher_field_is_refused_while_the_rest_applies() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, office, eves, sams) = setup(tmp.path());

    // The agent refuses it at once, before anything is queued. The CLI has no command
    // that writes `priority`, so this goes through the agent library the CLI uses.
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    eve.sync();
    {
        let mut store = fieldsync_agent::Store::open(&eve.dir).unwrap();
        let err = store
            .record(
                EntityKind::WorkOrder,
                &EntityId(eves.clone()),
                OpKind::Set,
                |_, _| Ok(BTreeMap::from([("priority".to_owned(), json!(1))])),
            )
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("not_owner") && msg.contains("priority"),
            "clear local refusal: {msg}"
        );
    }
    let info = eve.info();
    assert_eq!(info["pending_ops"], 0, "{info}");
    assert_eq!(info["last_seq"], 0, "no seq consumed: {info}");

    // The server refuses it too, per op, when a device pushes it anyway. A second device
    // of eve's is used so the agent's own sequence stays untouched.
    let raw = server.agent(&tmp.path().join("eve-raw"), ENGINEER);
    let token = raw.meta("token").expect("token in agent.db");
    let device: u64 = raw.meta("device_id").unwrap().parse().unwrap();
    assert_ne!(device.to_string(), eve.info()["device_id"].to_string());
    let api = Api::anonymous(&server).with_token(&token);
    let now = hlc_at(now_ms());
    let batch = json!({"ops": [
        {"seq": 1, "kind": "note", "id": "raw-note-1", "hlc": now, "op": "create",
         "fields": {"order_id": eves, "text": "checked refrigerant level"}},
        {"seq": 2, "kind": "work_order", "id": eves, "hlc": now + 1, "op": "set",
         "fields": {"priority": 1}},
        {"seq": 3, "kind": "work_order", "id": eves, "hlc": now + 2, "op": "set",
         "fields": {"status": "on-site"}},
        {"seq": 4, "kind": "work_order", "id": sams, "hlc": now + 3, "op": "set",
         "fields": {"status": "completed"}},
        {"seq": 5, "kind": "note", "id": "raw-note-2", "hlc": now + 4, "op": "create",
         "fields": {"order_id": sams, "text": "not my order"}},
        {"seq": 6, "kind": "work_order", "id": eves, "hlc": now + 5, "op": "set",
         "fields": {"assignee": "sam"}},
    ]});
    let (status, resp) = api.push(&batch);
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        resp["acked_seq"], 6,
        "rejections still advance acked_seq: {resp}"
    );
    let codes: Vec<(u64, String)> = resp["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert!(r["message"].as_str().is_some_and(|m| !m.is_empty()), "{r}");
            (
                r["seq"].as_u64().unwrap(),
                r["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            (2, "not_owner".to_owned()),
            (4, "out_of_scope".to_owned()),
            (5, "out_of_scope".to_owned()),
            (6, "not_owner".to_owned()),
        ],
        "{resp}"
    );

    let check = || {
        let mine = office.order(&eves);
        assert_eq!(mine["priority"], 2, "{mine}");
        assert_eq!(mine["assignee"], "eve", "{mine}");
        assert_eq!(mine["status"], "on-site", "{mine}");
        assert_eq!(mine["notes"].as_array().unwrap().len(), 1, "{mine}");
        assert_eq!(mine["notes"][0]["text"], "checked refrigerant level");
        let theirs = office.order(&sams);
        assert_eq!(theirs["status"], "open", "{theirs}");
        assert_eq!(theirs["notes"], json!([]), "{theirs}");
    };
    check();
    // The same batch again: the same answer, and nothing applied twice.
    let (status, again) = api.push(&batch);
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        again,
        json!({"acked_seq": 6, "rejected": resp["rejected"],
                             "server_time_ms": again["server_time_ms"]})
    );
    check();

    // Eve's agent receives the applied changes from the other device.
    let r = eve.sync();
    assert_eq!(r["in_sync"], true, "{r}");
    let local = eve.show(&eves);
    assert_eq!(local["status"], "on-site");
    assert_eq!(local["priority"], 2);
    assert_eq!(local["notes"].as_array().unwrap().len(), 1);
}

#[test]
fn unauthenticated_and_bad_credentials_get_401_envelopes() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, _office, eves, _) = setup(tmp.path());
    let anon = Api::anonymous(&server);

    assert_error(&anon.get("/api/v1/work-orders"), 401, "unauthorized");
    assert_error(
        &anon.get(&format!("/api/v1/work-orders/{eves}")),
        401,
        "unauthorized",
    );
    assert_error(&anon.push(&json!({"ops": []})), 401, "unauthorized");
    assert_error(&anon.pull(0), 401, "unauthorized");
    assert_error(
        &anon.post(
            "/api/v1/work-orders",
            &json!({"description": "x", "priority": 1}),
        ),
        401,
        "unauthorized",
    );
    // Auth is checked before the body.
    assert_error(
        &anon.raw(
            reqwest::Method::POST,
            "/api/v1/work-orders",
            &[("content-type", "application/json")],
            b"{not json".to_vec(),
        ),
        401,
        "unauthorized",
    );
    let (status, health) = anon.get("/healthz");
    assert_eq!((status, &health["status"]), (200, &json!("ok")), "{health}");

    let forged = anon.with_token(&format!("fs_{}", "ab".repeat(32)));
    assert_error(&forged.get("/api/v1/work-orders"), 401, "invalid_token");
    assert_error(&forged.push(&json!({"ops": []})), 401, "invalid_token");

    for (user, password) in [("eve", "wrong-pass"), ("nobody", "field-pass"), ("eve", "")] {
        let body = json!({"user": user, "password": password});
        assert_error(&anon.post("/api/v1/session", &body), 401, "bad_credentials");
        assert_error(
            &anon.post("/api/v1/devices/enroll", &body),
            401,
            "bad_credentials",
        );
    }
    let (_, wrong) = anon.post("/api/v1/session", &json!({"user": "eve", "password": "x"}));
    let (_, unknown) = anon.post("/api/v1/session", &json!({"user": "zed", "password": "x"}));
    assert_eq!(
        wrong["error"]["message"], unknown["error"]["message"],
        "no hint which users exist"
    );

    // The agent: a wrong password fails enrollment with a clear one-line error.
    let agent = Agent::new(&tmp.path().join("eve-wrong"));
    let ca = server.ca.to_str().unwrap();
    let o = agent.run_stdin(
        &[
            "enroll",
            "--server",
            &server.url,
            "--ca-cert",
            ca,
            "--user",
            "eve",
            "--password-stdin",
        ],
        Some("not-her-password"),
    );
    assert!(!o.status.success());
    let err = fieldsync_tests::stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("bad_credentials") || err.contains("wrong password"),
        "{err}"
    );
    assert!(agent.fail(&["info"]).contains("not enrolled"));
}

#[test]
fn engineers_receive_only_their_own_orders() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, office, eves, sams) = setup(tmp.path());
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    let sam = server.agent(&tmp.path().join("sam"), ENGINEER2);
    for a in [&eve, &sam] {
        assert_eq!(a.sync()["in_sync"], true);
    }
    eve.ok(&["note", &eves, "for eve's eyes only"]);
    eve.sync();
    let (status, _) = office.patch(
        &format!("/api/v1/work-orders/{eves}"),
        &json!({"description": "Chiller alarm, second visit"}),
    );
    assert_eq!(status, 200);
    let r = sam.sync();
    assert_eq!(r["in_sync"], true, "{r}");

    assert_eq!(order_ids(&sam.json(&["orders"])), [sams.as_str()]);
    assert_eq!(order_ids(&eve.json(&["orders"])), [eves.as_str()]);
    let err = sam.fail(&["show", &eves]);
    assert!(err.contains("no work order matches"), "{err}");
    assert_eq!(
        local_rows(&sam, &eves),
        0,
        "nothing of eve's order in sam's store"
    );
    assert!(local_rows(&eve, &eves) >= 2, "order and note");
    assert_eq!(local_rows(&eve, &sams), 0);
    // Sam's agent refuses to write to an order it does not hold.
    assert!(sam
        .fail(&["note", &eves, "x"])
        .contains("no work order matches"));
}

#[test]
fn reassignment_moves_the_order_from_one_engineer_to_the_other() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, office, eves, sams) = setup(tmp.path());
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    let sam = server.agent(&tmp.path().join("sam"), ENGINEER2);
    eve.sync();
    eve.ok(&["note", &eves, "compressor replaced, needs recommissioning"]);
    assert_eq!(eve.sync()["pending"], 0);
    sam.sync();
    assert_eq!(local_rows(&sam, &eves), 0);

    let (status, v) = office.patch(
        &format!("/api/v1/work-orders/{eves}"),
        &json!({"assignee": "sam"}),
    );
    assert_eq!(status, 200, "{v}");

    let r = eve.sync();
    assert_eq!(r["in_sync"], true, "{r}");
    assert!(
        order_ids(&eve.json(&["orders"])).is_empty(),
        "eve no longer lists it"
    );
    assert!(eve.fail(&["show", &eves]).contains("no work order matches"));
    assert_eq!(
        local_rows(&eve, &eves),
        0,
        "order and note purged from eve's store"
    );
    assert!(eve
        .fail(&["note", &eves, "late"])
        .contains("no work order matches"));
    assert_error(
        &server
            .api(ENGINEER)
            .get(&format!("/api/v1/work-orders/{eves}")),
        404,
        "not_found",
    );

    let r = sam.sync();
    assert_eq!(r["in_sync"], true, "{r}");
    let mut ids = order_ids(&sam.json(&["orders"]));
    ids.sort();
    let mut want = vec![eves.clone(), sams.clone()];
    want.sort();
    assert_eq!(ids, want);
    let seen = office.order(&eves);
    let at_sam = sam.show(&eves);
    assert_eq!(at_sam["assignee"], "sam");
    assert_eq!(
        at_sam["notes"], seen["notes"],
        "sam gets the order with its history"
    );
    assert_eq!(at_sam["notes"][0]["by"], "eve");
    sam.ok(&["progress", &eves, "on-site"]);
    assert_eq!(sam.sync()["pending"], 0);
    assert_eq!(office.order(&eves)["status"], "on-site");
}

#[test]
fn pending_work_on_a_reassigned_order_is_pushed_and_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, office, eves, sams) = setup(tmp.path());
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    let sam = server.agent(&tmp.path().join("sam"), ENGINEER2);
    eve.sync();
    sam.sync();

    // Eve writes a note offline; meanwhile the dispatcher hands the order to sam.
    eve.ok(&["note", &eves, "compressor replaced, needs recommissioning"]);
    let (status, v) = office.patch(
        &format!("/api/v1/work-orders/{eves}"),
        &json!({"assignee": "sam"}),
    );
    assert_eq!(status, 200, "{v}");
    // Still visible to eve locally: her pending work is never dropped by a scope change.
    assert_eq!(order_ids(&eve.json(&["orders"])), [eves.as_str()]);

    let r = eve.sync();
    assert_eq!(r["pending"], 0, "{r}");
    let info = eve.info();
    assert_eq!(info["pending_ops"], 0, "{info}");
    assert_eq!(
        info["rejected_ops"], 0,
        "the note was written while the order was hers: {info}"
    );
    let seen = office.order(&eves);
    assert_eq!(seen["assignee"], "sam");
    let notes: Vec<&Value> = seen["notes"].as_array().unwrap().iter().collect();
    assert_eq!(notes.len(), 1, "the note is kept on the server: {seen}");
    assert_eq!(
        notes[0]["text"],
        "compressor replaced, needs recommissioning"
    );
    assert_eq!(notes[0]["by"], "eve");

    assert!(
        order_ids(&eve.json(&["orders"])).is_empty(),
        "eve no longer lists it"
    );
    assert_eq!(local_rows(&eve, &eves), 0, "purged from eve's store");
    assert_eq!(eve.sync()["in_sync"], true);

    assert_eq!(sam.sync()["in_sync"], true);
    let mut ids = order_ids(&sam.json(&["orders"]));
    ids.sort();
    let mut want = vec![eves.clone(), sams.clone()];
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(sam.show(&eves)["notes"], seen["notes"]);
}

#[test]
fn revoked_device_is_refused_and_keeps_its_pending_ops() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, office, eves, _) = setup(tmp.path());
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    eve.sync();
    eve.ok(&["note", &eves, "written before the revocation"]);
    eve.ok(&["progress", &eves, "on-hold"]);
    let device = eve.info()["device_id"].as_u64().unwrap();

    assert_error(
        &server
            .api(ENGINEER)
            .post(&format!("/api/v1/devices/{device}/revoke"), &json!({})),
        403,
        "forbidden",
    );
    let revoke = |path: &str| office.raw(reqwest::Method::POST, path, &[], Vec::new());
    let (status, body) = revoke(&format!("/api/v1/devices/{device}/revoke"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"revoked": device}));
    let (status, again) = revoke(&format!("/api/v1/devices/{device}/revoke"));
    assert_eq!((status, &again), (200, &body), "idempotent");
    assert_error(&revoke("/api/v1/devices/999/revoke"), 404, "not_found");
    assert_error(&revoke("/api/v1/devices/0/revoke"), 404, "not_found");
    assert_error(&revoke("/api/v1/devices/abc/revoke"), 400, "invalid_id");

    let err = eve.fail(&["sync"]);
    assert_eq!(err.trim().lines().count(), 1, "{err:?}");
    assert!(
        err.contains("revoked") && err.contains("2 changes pending"),
        "{err}"
    );
    let info = eve.info();
    assert_eq!(info["pending_ops"], 2, "kept: {info}");
    assert_eq!(info["rejected_ops"], 0, "{info}");
    assert_eq!(
        eve.show(&eves)["status"],
        "on-hold",
        "still visible locally"
    );
    assert_eq!(
        office.order(&eves)["notes"],
        json!([]),
        "nothing got through"
    );

    // The token itself is dead for every endpoint.
    let token = eve.meta("token").unwrap();
    let dead = Api::anonymous(&server).with_token(&token);
    assert_error(&dead.push(&json!({"ops": []})), 401, "device_revoked");
    assert_error(&dead.pull(0), 401, "device_revoked");
    assert_error(&dead.get("/api/v1/work-orders"), 401, "device_revoked");
    // The user is not locked out: a password session still works.
    let (status, _) = server.api(ENGINEER).get("/api/v1/work-orders");
    assert_eq!(status, 200);
}

#[test]
fn work_stamped_after_a_reassignment_is_refused_kept_and_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, office, eves, _) = setup(tmp.path());
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    eve.sync();
    let (status, v) = office.patch(
        &format!("/api/v1/work-orders/{eves}"),
        &json!({"assignee": "sam"}),
    );
    assert_eq!(status, 200, "{v}");
    std::thread::sleep(std::time::Duration::from_millis(5));
    // Eve has not synced yet, so she still works on it; but it is sam's by now.
    eve.ok(&["note", &eves, "written after it became sam's"]);
    let own =
        office.create_order(json!({"description": "Second job", "priority": 2, "assignee": "eve"}));

    let r = eve.sync();
    assert_eq!(
        (r["pending"].as_u64(), r["rejected"].as_u64()),
        (Some(0), Some(1)),
        "{r}"
    );
    let info = eve.info();
    assert_eq!(info["rejected_ops"], 1, "{info}");
    assert_eq!(info["rejected"][0]["code"], "out_of_scope", "{info}");
    let shown = eve.show(&eves);
    assert_eq!(shown["in_scope"], false, "{shown}");
    assert_eq!(
        shown["rejected"][0]["code"], "out_of_scope",
        "shown with its order: {shown}"
    );
    assert_eq!(
        office.order(&eves)["notes"],
        json!([]),
        "nothing stored for sam's order"
    );

    // Later work still syncs.
    eve.ok(&["progress", &own, "on-site"]);
    let r = eve.sync();
    assert_eq!(
        (r["pushed"].as_u64(), r["pending"].as_u64()),
        (Some(1), Some(0)),
        "{r}"
    );
    assert_eq!(office.order(&own)["status"], "on-site");
    assert_eq!(order_ids(&eve.json(&["orders"])), [own.as_str()]);
}
