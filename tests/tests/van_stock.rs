//! Parts and van stock end to end: a real server and real agent processes over HTTPS on
//! loopback. Stock is derived from movements, so two engineers who each fit the last unit
//! offline are both recorded and the overdraw is flagged everywhere; a requisition made
//! offline becomes a transfer when a dispatcher approves it in the console.

use fieldsync_tests::console::Console;
use fieldsync_tests::{stdout, Api, Server, DISPATCHER, ENGINEER, ENGINEER2};
use serde_json::{json, Value};

/// The catalog, a warehouse and one van shared by eve and sam (a crew), holding one
/// valve; an order for each of them. Returns the dispatcher's API client and the orders.
fn stock_setup(server: &Server) -> (Api, String, String) {
    let office = server.api(DISPATCHER);
    for (kind, body) in [
        (
            "part",
            json!({"id": "p-valve", "sku": "VALVE-25", "name": "Ball valve DN25", "unit_cost": 18.5}),
        ),
        (
            "part",
            json!({"id": "p-ctl", "sku": "CTL-9", "name": "Controller", "serial_tracked": true}),
        ),
        (
            "stock_location",
            json!({"id": "wh-main", "name": "Main warehouse", "type": "warehouse"}),
        ),
        (
            "stock_location",
            json!({"id": "van-7", "name": "Van 7", "type": "van", "engineers": "eve, sam"}),
        ),
        (
            "stock_movement",
            json!({"type": "receipt", "part_id": "p-valve", "qty": 3, "to_location": "wh-main"}),
        ),
        (
            "stock_movement",
            json!({"type": "transfer", "part_id": "p-valve", "qty": 1,
                   "from_location": "wh-main", "to_location": "van-7"}),
        ),
    ] {
        let (status, body) = office.post(&format!("/api/v1/entities/{kind}"), &body);
        assert_eq!(status, 201, "{kind}: {body}");
    }
    let eve_order = office.create_order(
        json!({"description": "Leaking valve, boiler room", "priority": 2, "assignee": "eve"}),
    );
    let sam_order = office.create_order(
        json!({"description": "Valve seized, plant room", "priority": 2, "assignee": "sam"}),
    );
    (office, eve_order, sam_order)
}

fn line<'a>(stock: &'a Value, location: &str, part: &str) -> &'a Value {
    stock
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {stock}"))
        .iter()
        .find(|l| l["location_id"] == location && l["part_id"] == part)
        .unwrap_or_else(|| panic!("no line {location}/{part} in {stock}"))
}

fn server_stock(office: &Api) -> Value {
    let (status, body) = office.get("/api/v1/stock");
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn two_engineers_fit_the_last_unit_offline_both_count_and_the_overdraw_is_flagged() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(&tmp.path().join("server"));
    let (office, eve_order, sam_order) = stock_setup(&server);
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    let sam = server.agent(&tmp.path().join("sam"), ENGINEER2);
    for a in [&eve, &sam] {
        assert_eq!(a.sync()["in_sync"], true);
        let s = a.json(&["stock"]);
        assert_eq!(s["van_id"], "van-7", "{s}");
        assert_eq!(line(&s["lines"], "van-7", "p-valve")["on_hand"], 1, "{s}");
    }

    // Both offline: each fits the van's last valve on their own order.
    server.kill();
    eve.ok(&[
        "parts", "use", &eve_order, "--sku", "VALVE-25", "--qty", "1",
    ]);
    let out = sam.ok(&[
        "parts", "use", &sam_order, "--sku", "VALVE-25", "--qty", "1",
    ]);
    assert!(out.contains("used from your van"), "{out}");
    for a in [&eve, &sam] {
        let s = a.json(&["stock"]);
        let valve = line(&s["lines"], "van-7", "p-valve");
        assert_eq!(
            valve["on_hand"], 0,
            "each sees only their own unit gone: {s}"
        );
        assert_eq!(valve["overdrawn"], false);
        assert_eq!(s["unsent"], 1);
    }

    server.restart();
    for a in [&eve, &sam, &eve] {
        let r = a.sync();
        assert_eq!(r["rejected"], 0, "an overdraw is never refused: {r}");
        assert_eq!(r["pending"], 0, "{r}");
    }
    assert_eq!(sam.sync()["in_sync"], true);
    assert_eq!(eve.sync()["in_sync"], true);

    // The server: both consumptions recorded, -1 in the van, flagged overdrawn.
    let seen = server_stock(&office);
    let van = line(&seen["stock"], "van-7", "p-valve");
    assert_eq!(van["on_hand"], -1, "{seen}");
    assert_eq!(van["overdrawn"], true);
    assert_eq!(van["overdrawn_by"].as_array().unwrap().len(), 1, "{van}");
    assert_eq!(line(&seen["stock"], "wh-main", "p-valve")["on_hand"], 2);
    for order in [&eve_order, &sam_order] {
        let o = office.order(order);
        assert_eq!(o["parts"].as_array().unwrap().len(), 1, "{o}");
        assert_eq!(o["parts"][0]["sku"], "VALVE-25");
        assert_eq!(o["parts"][0]["type"], "consumption");
        assert_eq!(o["parts"][0]["qty"], 1);
    }

    // Both agents, after sync, show the same -1 and the flag, offline.
    for a in [&eve, &sam] {
        let s = a.json(&["stock"]);
        let valve = line(&s["lines"], "van-7", "p-valve");
        assert_eq!(valve["on_hand"], -1, "{s}");
        assert_eq!(valve["overdrawn"], true, "{s}");
        assert_eq!(valve, van, "agent and server derive the same line");
        assert_eq!(s["alerts"], 1);
        let text = a.ok(&["stock"]);
        assert!(text.contains("OVERDRAWN"), "{text}");
    }
    // The engineer's order view lists the part exactly as the server's does.
    let local = eve.show(&eve_order);
    assert_eq!(local["parts"], office.order(&eve_order)["parts"]);

    // The console shows the overdraw to the dispatcher.
    let mut console = Console::new(&server);
    assert_eq!(console.login(DISPATCHER).0, 303);
    let page = console.page("/console/stock").1;
    assert!(page.contains("Overdrawn"), "{page}");
    assert!(
        page.contains(r#"data-location="van-7" data-part="p-valve" data-on-hand="-1""#),
        "{page}"
    );
}

#[test]
fn a_requisition_made_offline_is_approved_in_the_console_and_becomes_a_transfer() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(&tmp.path().join("server"));
    let (office, eve_order, _) = stock_setup(&server);
    // A minimum of 2 valves in the van: it holds 1, so it is low.
    let (status, body) = office.post(
        "/api/v1/entities/stock_min",
        &json!({"location_id": "van-7", "part_id": "p-valve", "min_qty": 2}),
    );
    assert_eq!(status, 201, "{body}");
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    eve.sync();
    let s = eve.json(&["stock"]);
    let valve = line(&s["lines"], "van-7", "p-valve");
    assert_eq!(
        (valve["low"].clone(), valve["min_qty"].clone()),
        (json!(true), json!(2)),
        "{s}"
    );

    server.kill();
    let out = eve.ok(&[
        "requisition",
        "add",
        "--sku",
        "VALVE-25",
        "--qty",
        "4",
        "--from",
        "Main warehouse",
        "--order",
        &eve_order,
        "--note",
        "two more jobs on this site",
    ]);
    assert!(out.contains("asked for"), "{out}");
    let mine = eve.json(&["requisition", "list"]);
    assert_eq!(mine[0]["status"], "pending", "{mine}");
    assert_eq!(mine[0]["unsent"], true);
    assert_eq!(mine[0]["from_location"], "wh-main");
    let req = mine[0]["id"].as_str().unwrap().to_owned();
    // Bad input is refused at once, offline, with the reason.
    for (args, why) in [
        (
            vec!["requisition", "add", "--sku", "VALVE-25", "--qty", "0"],
            "1 to",
        ),
        (
            vec!["requisition", "add", "--sku", "VALVE-25", "--qty", "-3"],
            "1 to",
        ),
        (
            vec!["requisition", "add", "--sku", "NOPE-1", "--qty", "1"],
            "unknown part",
        ),
        (
            vec![
                "requisition",
                "add",
                "--sku",
                "VALVE-25",
                "--qty",
                "1",
                "--from",
                "Atlantis",
            ],
            "unknown stock location",
        ),
        (
            vec![
                "parts", "use", &eve_order, "--sku", "VALVE-25", "--qty", "0",
            ],
            "1 to",
        ),
        (
            vec!["parts", "use", &eve_order, "--sku", "NOPE-1", "--qty", "1"],
            "unknown part",
        ),
        (
            vec!["parts", "use", &eve_order, "--sku", "CTL-9", "--qty", "1"],
            "serial-tracked",
        ),
        (
            vec![
                "parts",
                "return",
                "--sku",
                "VALVE-25",
                "--to",
                "van-7",
                "--from-van",
            ],
            "warehouse, not a van",
        ),
    ] {
        let err = eve.fail(&args);
        assert!(err.contains(why), "{args:?}: {err}");
    }
    // A faulty unit out of the customer's boiler goes back to the warehouse.
    eve.ok(&[
        "parts",
        "return",
        "--sku",
        "CTL-9",
        "--order",
        &eve_order,
        "--serial",
        "SN-881",
        "--to",
        "wh-main",
        "--reason",
        "display dead",
    ]);
    server.restart();
    let r = eve.sync();
    assert_eq!(
        (r["rejected"].clone(), r["in_sync"].clone()),
        (json!(0), json!(true)),
        "{r}"
    );
    let seen = server_stock(&office);
    assert_eq!(
        line(&seen["stock"], "wh-main", "p-ctl")["faulty"],
        1,
        "{seen}"
    );
    assert_eq!(seen["requisitions"][0]["id"], req.as_str(), "{seen}");
    assert_eq!(seen["requisitions"][0]["status"], "pending");

    // An engineer cannot approve: not through a push (the status is the office's) ...
    let (eve_api, _) = Api::enroll_device(&server, ENGINEER);
    let (status, resp) = eve_api.push(&json!({"ops": [{"seq": 1, "kind": "requisition", "id": req,
        "hlc": fieldsync_tests::hlc_at(fieldsync_tests::now_ms()), "op": "set",
        "fields": {"status": "approved", "transfer_id": "tr-x"}}]}));
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["rejected"][0]["code"], "not_owner", "{resp}");
    // ... nor through the JSON API or the console.
    let (status, _) = server.api(ENGINEER).post(
        &format!("/api/v1/requisitions/{req}/approve"),
        &json!({"from_location": "wh-main"}),
    );
    assert_eq!(status, 403);
    let mut eng_console = Console::new(&server);
    assert_eq!(eng_console.login(ENGINEER).0, 403);

    // The dispatcher approves in the console: a POST without the CSRF token is refused.
    let mut console = Console::new(&server);
    assert_eq!(console.login(DISPATCHER).0, 303);
    let page = console.page("/console/stock").1;
    assert!(
        page.contains(&format!(
            r#"data-requisition="{req}" data-status="pending""#
        )),
        "{page}"
    );
    let (status, _) = post(
        &console,
        &format!("/console/requisitions/{req}/approve"),
        "from_location=wh-main",
    );
    assert_eq!(status, 403, "no CSRF token");
    let csrf = console.csrf();
    // The receipt and minimum forms: bad input is shown at the form, nothing written.
    for (form, why) in [
        (
            "location=wh-main&sku=VALVE-25&qty=0",
            "whole number of units",
        ),
        (
            "location=wh-main&sku=VALVE-25&qty=-4",
            "whole number of units",
        ),
        ("location=wh-main&sku=NOPE-1&qty=2", "No part with this SKU"),
        (
            "location=atlantis&sku=VALVE-25&qty=2",
            "Choose a stock location",
        ),
    ] {
        let (status, page) = post(
            &console,
            "/console/stock/receipt",
            &format!("csrf={csrf}&{form}"),
        );
        assert_eq!(status, 422, "{form}");
        assert!(page.contains(why), "{form}: {page}");
    }
    let (status, _) = post(
        &console,
        "/console/stock/receipt",
        &format!("csrf={csrf}&location=wh-main&sku=VALVE-25&qty=10&note=delivery+4411"),
    );
    assert_eq!(status, 303);
    let (status, page) = post(
        &console,
        "/console/stock/min",
        &format!("csrf={csrf}&location=van-7&sku=VALVE-25&min_qty=-1"),
    );
    assert_eq!(status, 422);
    assert!(page.contains("whole number, 0 or more"), "{page}");
    // The van's minimum, set by the API above, is edited in place: one record per pair.
    let (status, _) = post(
        &console,
        "/console/stock/min",
        &format!("csrf={csrf}&location=van-7&sku=VALVE-25&min_qty=6"),
    );
    assert_eq!(status, 303);
    // Approving from a van, or from nowhere, is refused with the reason on the page.
    let (status, page) = post(
        &console,
        &format!("/console/requisitions/{req}/approve"),
        &format!("csrf={csrf}&from_location="),
    );
    assert_eq!(status, 422);
    assert!(page.contains("Choose the warehouse"), "{page}");
    let (status, page) = post(
        &console,
        &format!("/console/requisitions/{req}/approve"),
        &format!("csrf={csrf}&from_location=nowhere"),
    );
    assert_eq!(status, 422);
    assert!(page.contains("no stock location"), "{page}");
    let (status, _) = post(
        &console,
        &format!("/console/requisitions/{req}/approve"),
        &format!("csrf={csrf}&from_location=wh-main"),
    );
    assert_eq!(status, 303);
    // A second approval (another tab, a double click) moves nothing twice.
    let (status, page) = post(
        &console,
        &format!("/console/requisitions/{req}/approve"),
        &format!("csrf={csrf}&from_location=wh-main"),
    );
    assert_eq!(status, 422);
    assert!(page.contains("already"), "{page}");

    let seen = server_stock(&office);
    let van = line(&seen["stock"], "van-7", "p-valve");
    assert_eq!(
        (van["on_hand"].clone(), van["min_qty"].clone()),
        (json!(5), json!(6)),
        "{seen}"
    );
    assert_eq!(
        line(&seen["stock"], "wh-main", "p-valve")["on_hand"],
        8,
        "3 - 1 + 10 - 4: {seen}"
    );
    let decided = &seen["requisitions"][0];
    assert_eq!(decided["status"], "approved", "{decided}");
    assert_eq!(decided["decided_by"], "dana");

    // The engineer sees the decision and the stock after the next sync.
    eve.sync();
    let mine = eve.json(&["requisition", "list"]);
    assert_eq!(
        (mine[0]["status"].clone(), mine[0]["unsent"].clone()),
        (json!("approved"), json!(false))
    );
    let s = eve.json(&["stock"]);
    let valve = line(&s["lines"], "van-7", "p-valve");
    assert_eq!(
        (valve["on_hand"].clone(), valve["low"].clone()),
        (json!(5), json!(true)),
        "5 < 6: {s}"
    );
    let text = eve.ok(&["stock"]);
    assert!(text.contains("[LOW]"), "{text}");
    // The console in Chinese.
    let zh = console.get("/console/stock", "zh-CN").text().unwrap();
    assert!(zh.contains("领料申请") && zh.contains("低库存"), "{zh}");

    // A rejection: said why, and no stock moves.
    eve.ok(&["requisition", "add", "--sku", "VALVE-25", "--qty", "50"]);
    eve.sync();
    let second = eve.json(&["requisition", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = post(
        &console,
        &format!("/console/requisitions/{second}/reject"),
        &format!("csrf={csrf}&note=too+many"),
    );
    assert_eq!(status, 303);
    eve.sync();
    let mine = eve.json(&["requisition", "list"]);
    assert_eq!(mine[0]["status"], "rejected", "{mine}");
    assert_eq!(mine[0]["decision_note"], "too many");
    let text = stdout(&eve.run(&["requisition", "list"]));
    assert!(text.contains("rejected by dana: too many"), "{text}");
    assert_eq!(
        line(&eve.json(&["stock"])["lines"], "van-7", "p-valve")["on_hand"],
        5
    );
}

#[test]
fn stock_writes_are_checked_on_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"));
    let (office, eve_order, sam_order) = stock_setup(&server);
    let post = |body: Value| office.post("/api/v1/entities/stock_movement", &body);
    for (body, code) in [
        (
            json!({"type": "receipt", "part_id": "p-valve", "qty": 0, "to_location": "wh-main"}),
            "invalid_value",
        ),
        (
            json!({"type": "receipt", "part_id": "p-valve", "qty": -1, "to_location": "wh-main"}),
            "invalid_value",
        ),
        (
            json!({"type": "receipt", "part_id": "p-nope", "qty": 1, "to_location": "wh-main"}),
            "not_found",
        ),
        (
            json!({"type": "receipt", "part_id": "p-valve", "qty": 1, "to_location": "wh-nope"}),
            "not_found",
        ),
        (
            json!({"type": "transfer", "part_id": "p-valve", "qty": 1, "to_location": "wh-main"}),
            "invalid_value",
        ),
        (
            json!({"type": "consumption", "part_id": "p-valve", "qty": 1, "from_location": "van-7"}),
            "invalid_value",
        ),
    ] {
        let (status, resp) = post(body.clone());
        assert_eq!(resp["error"]["code"], code, "{body}: {resp}");
        assert!(status == 400 || status == 404, "{status}");
    }
    // A second van for an engineer who has one is refused; so is a van for a dispatcher.
    for (body, code) in [
        (
            json!({"name": "Van 8", "type": "van", "engineers": "sam"}),
            "invalid_value",
        ),
        (
            json!({"name": "Van 9", "type": "van", "engineers": "dana"}),
            "unknown_user",
        ),
    ] {
        let (_, resp) = office.post("/api/v1/entities/stock_location", &body);
        assert_eq!(resp["error"]["code"], code, "{resp}");
    }

    // An engineer's device: consumption from their own van on their own order only.
    let (eve_api, _) = Api::enroll_device(&server, ENGINEER);
    let now = fieldsync_tests::now_ms();
    let op = |seq: u64, id: &str, fields: Value| {
        json!({"seq": seq, "kind": "stock_movement", "id": id,
               "hlc": fieldsync_tests::hlc_at(now) + seq, "op": "create", "fields": fields})
    };
    let (status, resp) = eve_api.push(&json!({"ops": [
        op(1, "m-ok", json!({"type": "consumption", "part_id": "p-valve", "qty": 1,
                             "from_location": "van-7", "order_id": eve_order})),
        op(2, "m-wh", json!({"type": "consumption", "part_id": "p-valve", "qty": 1,
                             "from_location": "wh-main", "order_id": eve_order})),
        op(3, "m-other", json!({"type": "consumption", "part_id": "p-valve", "qty": 1,
                                "from_location": "van-7", "order_id": sam_order})),
        op(4, "m-rcpt", json!({"type": "receipt", "part_id": "p-valve", "qty": 9,
                               "to_location": "van-7"})),
    ]}));
    assert_eq!(status, 200, "{resp}");
    let codes: Vec<(u64, String)> = resp["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["seq"].as_u64().unwrap(),
                r["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            (2, "out_of_scope".to_owned()),
            (3, "out_of_scope".to_owned()),
            (4, "not_owner".to_owned())
        ],
        "{resp}"
    );
    let seen = server_stock(&office);
    assert_eq!(
        line(&seen["stock"], "van-7", "p-valve")["on_hand"],
        0,
        "{seen}"
    );
}

/// POST a console form: its status and text.
fn post(console: &Console, path: &str, form: &str) -> (u16, String) {
    let r = console.post(path, form);
    (r.status().as_u16(), r.text().unwrap())
}
