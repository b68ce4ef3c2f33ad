//! Bad input against the real HTTPS server: every refusal has the JSON error envelope and
//! the right code, nothing partial is stored, and the server keeps working afterwards.

use std::path::Path;

use fieldsync_tests::{assert_error, hlc_at, now_ms, Api, Server, DISPATCHER, ENGINEER, ENGINEER2};
use reqwest::Method;
use serde_json::{json, Value};

const JSON: (&str, &str) = ("content-type", "application/json");
const PROTOCOL: (&str, &str) = ("x-fieldsync-protocol", "1");

fn setup(root: &Path) -> (Server, Api, String) {
    let server = Server::start(&root.join("server"));
    let office = server.api(DISPATCHER);
    let id = office.create_order(json!({"description": "Fan coil unit noisy", "priority": 2,
                                        "assignee": "eve"}));
    (server, office, id)
}

/// Everything the dispatcher can see, to compare before and after bad requests.
fn snapshot(office: &Api) -> Value {
    let (status, list) = office.get("/api/v1/work-orders");
    assert_eq!(status, 200, "the server still answers: {list}");
    let orders: Vec<Value> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|o| office.order(o["id"].as_str().unwrap()))
        .collect();
    json!(orders)
}

fn note_op(seq: u64, id: &str, order: &str, hlc: u64) -> Value {
    json!({"seq": seq, "kind": "note", "id": id, "hlc": hlc, "op": "create",
           "fields": {"order_id": order, "text": format!("note {id}")}})
}

#[test]
fn malformed_bodies_get_coded_400s_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, office, id) = setup(tmp.path());
    // Admins may write engineer fields too, so only the value check refuses theirs.
    let admin = server.api(fieldsync_tests::ADMIN);
    let before = snapshot(&office);
    let order_path = format!("/api/v1/work-orders/{id}");
    let raw = |method: Method, path: &str, headers: &[(&str, &str)], body: &[u8]| {
        office.raw(method, path, headers, body.to_vec())
    };

    let cases: Vec<(&str, (u16, Value), u16, &str)> = vec![
        (
            "malformed JSON",
            raw(
                Method::POST,
                "/api/v1/work-orders",
                &[JSON],
                b"{\"description\": \"x\",",
            ),
            400,
            "invalid_json",
        ),
        (
            "not JSON at all",
            raw(Method::PATCH, &order_path, &[JSON], b"priority=1"),
            400,
            "invalid_json",
        ),
        (
            "unknown field on create",
            office.post(
                "/api/v1/work-orders",
                &json!({"description": "x", "priority": 1, "colour": "red"}),
            ),
            400,
            "unknown_field",
        ),
        (
            "unknown field on patch",
            office.patch(&order_path, &json!({"priorty": 1})),
            400,
            "unknown_field",
        ),
        (
            "missing required field",
            office.post(
                "/api/v1/work-orders",
                &json!({"description": "no priority"}),
            ),
            400,
            "missing_field",
        ),
        (
            "wrong JSON type",
            office.post(
                "/api/v1/work-orders",
                &json!({"description": "x", "priority": "high"}),
            ),
            400,
            "invalid_type",
        ),
        (
            "wrong content type",
            raw(
                Method::POST,
                "/api/v1/work-orders",
                &[("content-type", "text/plain")],
                br#"{"description": "x", "priority": 1}"#,
            ),
            415,
            "unsupported_media_type",
        ),
        (
            "no content type",
            raw(Method::PATCH, &order_path, &[], br#"{"priority": 1}"#),
            415,
            "unsupported_media_type",
        ),
        (
            "unknown content encoding",
            raw(
                Method::PATCH,
                &order_path,
                &[JSON, ("content-encoding", "br")],
                br#"{"priority": 1}"#,
            ),
            415,
            "unsupported_encoding",
        ),
        (
            "claims gzip but is not",
            raw(
                Method::PATCH,
                &order_path,
                &[JSON, ("content-encoding", "gzip")],
                br#"{"priority": 1}"#,
            ),
            400,
            "invalid_encoding",
        ),
        (
            "priority out of range on create",
            office.post(
                "/api/v1/work-orders",
                &json!({"description": "x", "priority": 9}),
            ),
            400,
            "invalid_value",
        ),
        (
            "priority out of range on patch",
            office.patch(&order_path, &json!({"priority": 9})),
            400,
            "invalid_value",
        ),
        (
            "status not in the enum",
            admin.patch(&order_path, &json!({"status": "done"})),
            400,
            "invalid_value",
        ),
        (
            "description too long",
            office.patch(&order_path, &json!({"description": "x".repeat(4001)})),
            400,
            "invalid_value",
        ),
        (
            "control character in text",
            office.patch(&order_path, &json!({"description": "bell\u{7}"})),
            400,
            "invalid_value",
        ),
        (
            "assignee names no user",
            office.patch(&order_path, &json!({"assignee": "nobody"})),
            400,
            "unknown_user",
        ),
        (
            "valid and invalid field in one patch",
            office.patch(&order_path, &json!({"priority": 1, "scheduled_start": -5})),
            400,
            "invalid_value",
        ),
        (
            "empty patch",
            office.patch(&order_path, &json!({})),
            400,
            "empty_op",
        ),
        (
            "malformed base",
            office.patch(
                &order_path,
                &json!({"priority": 1, "base": {"priority": "v1"}}),
            ),
            400,
            "invalid_type",
        ),
        (
            "unknown choice in resolve",
            office.post(
                "/api/v1/conflicts/cf-nope/resolve",
                &json!({"choose": "both"}),
            ),
            400,
            "unknown_variant",
        ),
        (
            "bad entity id",
            office.post(
                "/api/v1/entities/customer",
                &json!({"id": "no spaces allowed", "name": "X"}),
            ),
            400,
            "invalid_id",
        ),
        (
            "unknown query parameter",
            office.get("/api/v1/work-orders?colour=red"),
            400,
            "invalid_query",
        ),
        (
            "unknown route",
            office.get("/api/v2/work-orders"),
            404,
            "not_found",
        ),
        (
            "wrong method",
            raw(Method::DELETE, &order_path, &[], b""),
            405,
            "method_not_allowed",
        ),
    ];
    for (what, resp, status, code) in &cases {
        let (got, body) = resp;
        assert_eq!(got, status, "{what}: {body}");
        assert_eq!(body["error"]["code"], *code, "{what}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}: {body}"
        );
    }
    assert_eq!(snapshot(&office), before, "no bad request stored anything");
    let (status, _) = office.patch(&order_path, &json!({"priority": 1}));
    assert_eq!(status, 200, "still works");
}

#[test]
fn oversized_bodies_are_refused_with_413() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, office, id) = setup(tmp.path());
    let before = snapshot(&office);
    let token = office.token.clone().unwrap();
    let h1 = Api::http1(&server).with_token(&token);
    const LIMIT: usize = 4 * 1024 * 1024;

    let big = format!(
        r#"{{"description": "{}", "priority": 1}}"#,
        "a".repeat(LIMIT)
    );
    assert!(big.len() > LIMIT);
    assert_error(
        &h1.raw(
            Method::POST,
            "/api/v1/work-orders",
            &[JSON],
            big.into_bytes(),
        ),
        413,
        "body_too_large",
    );
    assert_error(
        &h1.raw(
            Method::PATCH,
            &format!("/api/v1/work-orders/{id}"),
            &[JSON],
            vec![b' '; LIMIT + 1],
        ),
        413,
        "body_too_large",
    );

    // The limit counts the body after decompression: a small gzip bomb is refused too.
    let mut inflated = br#"{"description": ""#.to_vec();
    inflated.extend(std::iter::repeat_n(b'z', LIMIT));
    inflated.extend(br#"", "priority": 1}"#);
    let zipped = gzip(&inflated);
    assert!(zipped.len() < 64 * 1024, "{} bytes", zipped.len());
    assert_error(
        &h1.raw(
            Method::POST,
            "/api/v1/work-orders",
            &[JSON, ("content-encoding", "gzip")],
            zipped,
        ),
        413,
        "body_too_large",
    );
    // A gzipped body within the limit is fine.
    let ok = gzip(br#"{"description": "compressed order", "priority": 4}"#);
    let (status, created) = h1.raw(
        Method::POST,
        "/api/v1/work-orders",
        &[JSON, ("content-encoding", "gzip")],
        ok,
    );
    assert_eq!(status, 201, "{created}");
    let new_id = created["id"].as_str().unwrap();
    assert_eq!(office.order(new_id)["description"], "compressed order");

    let after = snapshot(&office);
    let before_ids: Vec<&Value> = before
        .as_array()
        .unwrap()
        .iter()
        .map(|o| &o["id"])
        .collect();
    let after_old: Vec<&Value> = after
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["id"] != json!(new_id))
        .collect();
    assert_eq!(
        after_old.len(),
        before_ids.len(),
        "only the valid order was added"
    );
    assert_eq!(office.order(&id), before[0], "untouched");
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new("gzip")
        .args(["-c", "-9"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the gzip program");
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    out.stdout
}

#[test]
fn bad_push_batches_are_refused_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, office, id) = setup(tmp.path());
    let (device, _) = Api::enroll_device(&server, ENGINEER);
    // The device must see the order to write to it.
    let (status, page) = device.pull(0);
    assert_eq!(status, 200, "{page}");
    let before = snapshot(&office);
    let now = hlc_at(now_ms());
    let acked = |device: &Api| {
        let (status, r) = device.push(&json!({"ops": []}));
        assert_eq!(status, 200, "{r}");
        r["acked_seq"].as_u64().unwrap()
    };
    assert_eq!(acked(&device), 0);

    // Over the batch limit.
    let ops: Vec<Value> = (1..=1001)
        .map(|i| note_op(i, &format!("n-{i}"), &id, now + i))
        .collect();
    let resp = device.push(&json!({ "ops": ops }));
    assert_error(&resp, 413, "batch_too_large");

    // One op an hour ahead: the whole batch is refused, with details.
    let hour = 3_600_000;
    let resp = device.push(&json!({"ops": [
        note_op(1, "skew-ok", &id, now),
        note_op(2, "skew-bad", &id, hlc_at(now_ms() + hour)),
    ]}));
    assert_error(&resp, 400, "clock_skew");
    let details = &resp.1["error"]["details"];
    assert_eq!(details["seq"], 2, "{details}");
    assert_eq!(details["bound_ms"], 300_000, "{details}");
    let skew = details["skew_ms"].as_u64().expect("skew_ms");
    assert!((hour - 60_000..=hour).contains(&skew), "{details}");
    assert!(details["server_time_ms"].as_u64().is_some(), "{details}");
    let msg = resp.1["error"]["message"].as_str().unwrap();
    assert!(msg.contains("clock"), "{msg}");

    // Protocol header missing or wrong, on push and pull.
    let body = serde_json::to_vec(&json!({"ops": [note_op(1, "proto", &id, now)]})).unwrap();
    for headers in [&[JSON][..], &[JSON, ("x-fieldsync-protocol", "2")]] {
        assert_error(
            &device.raw(Method::POST, "/api/v1/sync/push", headers, body.clone()),
            400,
            "protocol_mismatch",
        );
    }
    assert_error(
        &device.raw(Method::GET, "/api/v1/sync/pull", &[], Vec::new()),
        400,
        "protocol_mismatch",
    );

    // A gap in the sequence: nothing of the batch is stored.
    let resp = device.push(&json!({"ops": [
        note_op(1, "gap-1", &id, now),
        note_op(3, "gap-3", &id, now + 1),
    ]}));
    assert_error(&resp, 409, "seq_gap");
    assert_error(
        &device.push(&json!({"ops": [note_op(2, "gap-2", &id, now)]})),
        409,
        "seq_gap",
    );

    // Malformed ops: unknown op field, unknown op kind, seq as a string, no ops at all.
    let mut extra = note_op(1, "extra", &id, now);
    extra["device"] = json!(7);
    let mut explode = note_op(1, "explode", &id, now);
    explode["op"] = json!("explode");
    let mut seq_text = note_op(1, "seqtext", &id, now);
    seq_text["seq"] = json!("1");
    for (body, code) in [
        (json!({"ops": [extra]}), "unknown_field"),
        (json!({"ops": [explode]}), "unknown_variant"),
        (json!({"ops": [seq_text]}), "invalid_type"),
        (json!({"operations": []}), "unknown_field"),
        (json!({}), "missing_field"),
    ] {
        assert_error(&device.push(&body), 400, code);
    }
    assert_error(
        &device.raw(
            Method::POST,
            "/api/v1/sync/push",
            &[JSON, PROTOCOL],
            b"{\"ops\": [".to_vec(),
        ),
        400,
        "invalid_json",
    );

    assert_eq!(acked(&device), 0, "no op was taken");
    assert_eq!(snapshot(&office), before, "nothing stored");

    // After all that, a good batch goes through, once.
    let good = json!({"ops": [note_op(1, "good-1", &id, now), note_op(2, "good-2", &id, now + 1)]});
    let (status, r) = device.push(&good);
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        r,
        json!({"acked_seq": 2, "rejected": [], "server_time_ms": r["server_time_ms"]})
    );
    let notes = office.order(&id)["notes"].clone();
    let ids: Vec<&str> = notes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["good-1", "good-2"], "{notes}");
}

/// An agent keeps two push batches on the wire (`PUSH_IN_FLIGHT_MAX`), and HTTP/2 may hand
/// the second to the server first: it waits for the first instead of failing with a gap.
/// A gap that nothing fills is still refused, after the wait.
#[test]
fn a_batch_that_overtakes_the_one_before_it_waits_for_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, office, id) = setup(tmp.path());
    let (device, _) = Api::enroll_device(&server, ENGINEER);
    let (status, page) = device.pull(0);
    assert_eq!(status, 200, "{page}");
    let now = hlc_at(now_ms());
    let second = {
        let device = device.clone();
        let id = id.clone();
        std::thread::spawn(move || {
            device.push(&json!({"ops": [
                note_op(3, "late-3", &id, now + 3),
                note_op(4, "late-4", &id, now + 4),
            ]}))
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (status, first) = device.push(&json!({"ops": [
        note_op(1, "early-1", &id, now + 1),
        note_op(2, "early-2", &id, now + 2),
    ]}));
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["acked_seq"], 2, "{first}");
    let (status, second) = second.join().unwrap();
    assert_eq!(
        status, 200,
        "the overtaking batch waited for its predecessor: {second}"
    );
    assert_eq!(second["acked_seq"], 4, "{second}");
    let notes = office.order(&id)["notes"].as_array().unwrap().len();
    assert_eq!(notes, 4, "all four notes stored once");

    // Op 6 with 5 never sent: refused after the wait, nothing stored.
    let resp = device.push(&json!({"ops": [note_op(6, "orphan-6", &id, now + 6)]}));
    assert_error(&resp, 409, "seq_gap");
    assert_eq!(office.order(&id)["notes"].as_array().unwrap().len(), 4);
}

#[test]
fn invalid_op_values_in_a_push_are_rejected_per_op() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, office, id) = setup(tmp.path());
    let (device, _) = Api::enroll_device(&server, ENGINEER);
    let (sam_device, _) = Api::enroll_device(&server, ENGINEER2);
    let now = hlc_at(now_ms());
    let set = |seq: u64, fields: Value| {
        json!({"seq": seq, "kind": "work_order", "id": id, "hlc": now + seq, "op": "set",
               "fields": fields})
    };
    let (status, r) = device.push(&json!({"ops": [
        set(1, json!({"status": "finished"})),
        set(2, json!({"arrived_at": "yesterday"})),
        set(3, json!({"colour": "red"})),
        set(4, json!({})),
        {"seq": 5, "kind": "note", "id": "bad id!", "hlc": now + 5, "op": "create",
         "fields": {"order_id": id, "text": "x"}},
        {"seq": 6, "kind": "note", "id": "no-order", "hlc": now + 6, "op": "create",
         "fields": {"order_id": "missing-order", "text": "x"}},
        {"seq": 7, "kind": "part_usage", "id": "p-1", "hlc": now + 7, "op": "create",
         "fields": {"order_id": id, "sku": "X", "qty": 0}},
        {"seq": 8, "kind": "work_order", "id": "wo-new", "hlc": now + 8, "op": "create",
         "fields": {"description": "mine now", "priority": 1}},
        {"seq": 9, "kind": "note", "id": "n-ok", "hlc": now + 9, "op": "create",
         "fields": {"order_id": id, "text": "the one good op"}},
        {"seq": 10, "kind": "note", "id": "n-ok", "hlc": now + 10, "op": "set",
         "fields": {"text": "rewritten"}},
    ]}));
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["acked_seq"], 10, "{r}");
    let codes: Vec<(u64, &str)> = r["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["seq"].as_u64().unwrap(), x["code"].as_str().unwrap()))
        .collect();
    assert!(
        ["not_found", "out_of_scope"].contains(&codes[5].1),
        "a note for a missing order: {r}"
    );
    assert_eq!(
        codes,
        [
            (1, "invalid_value"),
            (2, "invalid_value"),
            (3, "unknown_field"),
            (4, "empty_op"),
            (5, "invalid_id"),
            (6, codes[5].1),
            (7, "invalid_value"),
            (8, "not_creator"),
            (10, "immutable_field"),
        ],
        "{r}"
    );
    let seen = office.order(&id);
    assert_eq!(seen["status"], "open", "{seen}");
    assert_eq!(seen["parts"], json!([]), "{seen}");
    let notes: Vec<&Value> = seen["notes"].as_array().unwrap().iter().collect();
    assert_eq!(notes.len(), 1, "{seen}");
    assert_eq!(notes[0]["text"], "the one good op");
    let (status, _) = office.get("/api/v1/work-orders/wo-new");
    assert_eq!(status, 404);
    // Another engineer's device cannot touch it at all.
    let (status, r) = sam_device.push(&json!({"ops": [set(1, json!({"status": "on-site"}))]}));
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["rejected"][0]["code"], "out_of_scope", "{r}");
    assert_eq!(office.order(&id)["status"], "open");
}

/// The agent says clearly when the server refuses its ops for clock skew. The agent stamps
/// ops with its hybrid logical clock, which moves past every timestamp it pulls; here a
/// device stamped an op an hour ahead while the server allowed 2 h of skew, eve's agent
/// pulled it, and the server was then restarted with the default 5 min bound.
#[test]
fn agent_reports_clock_skew_refusals_and_keeps_its_ops() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(
        &tmp.path().join("server"),
        false,
        &["--clock-skew-ms-max", "7200000"],
    );
    let office = server.api(DISPATCHER);
    let id = office.create_order(json!({"description": "Heat pump defrost fault",
                                        "priority": 2, "assignee": "eve"}));
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    eve.sync();
    let (device, _) = Api::enroll_device(&server, ENGINEER);
    assert_eq!(device.pull(0).0, 200);
    let ahead = hlc_at(now_ms() + 3_600_000);
    let (status, r) = device.push(&json!({"ops": [note_op(1, "from-the-future", &id, ahead)]}));
    assert_eq!(status, 200, "accepted under the 2 h bound: {r}");
    assert_eq!(r["rejected"], json!([]), "{r}");
    assert_eq!(eve.sync()["pending"], 0);

    eve.ok(&["note", &id, "defrost sensor replaced"]);
    server.set_extra_args(&[]);
    server.restart();
    let err = eve.fail(&["sync"]);
    assert_eq!(err.trim().lines().count(), 1, "{err:?}");
    assert!(
        err.contains("clock") && err.contains("1 changes pending"),
        "a clear reason: {err}"
    );
    assert!(err.contains("nothing was stored"), "{err}");
    let info = eve.info();
    assert_eq!(info["pending_ops"], 1, "kept: {info}");
    assert_eq!(info["rejected_ops"], 0, "not a permanent refusal: {info}");
    let notes = office.order(&id)["notes"].clone();
    assert_eq!(
        notes.as_array().unwrap().len(),
        1,
        "only the earlier note: {notes}"
    );
    assert_eq!(notes[0]["id"], "from-the-future");
}
