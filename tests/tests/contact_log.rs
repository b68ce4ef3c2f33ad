//! The customer's communication log and contacts: a call logged in the console and a visit
//! logged offline on the engineer's laptop both reach the customer's page, the order's page
//! and `fieldsync show`; bad entries are refused with a clear message and store nothing.

use fieldsync_tests::console::{input_value, Console};
use fieldsync_tests::{Server, DISPATCHER, ENGINEER};
use serde_json::{json, Value};

fn log_rows(server: &Server) -> u64 {
    let conn = rusqlite::Connection::open_with_flags(
        server.dir.join("fieldsync.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.query_row(
        "SELECT COUNT(*) FROM entities WHERE kind = 'contact_log'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn calls_logged_in_the_console_and_offline_show_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(&tmp.path().join("server"));
    let office = server.api(DISPATCHER);
    for (kind, body) in [
        (
            "customer",
            json!({"id": "cust-acme", "name": "Acme Foods", "tier": "gold",
                   "contacts": "Li Wei | facilities manager | +86 21 5555 0100 | li.wei@acme.cn"}),
        ),
        ("customer", json!({"id": "cust-other", "name": "Other Co"})),
        (
            "site",
            json!({"id": "site-1", "customer_id": "cust-acme", "name": "Plant 1", "address": "1 Dock Rd"}),
        ),
        (
            "asset",
            json!({"id": "asset-1", "customer_id": "cust-acme", "model": "Carrier 30RB", "serial": "SN-77"}),
        ),
    ] {
        let (status, b) = office.post(&format!("/api/v1/entities/{kind}"), &body);
        assert_eq!(status, 201, "{b}");
    }
    // Contacts are checked: a line that cannot be read is refused, naming the line.
    let (status, b) = office.patch(
        "/api/v1/entities/customer/cust-acme",
        &json!({"contacts": "Li Wei\n | nobody"}),
    );
    assert_eq!(status, 400, "{b}");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("line 2"),
        "{b}"
    );
    let order = office.create_order(json!({"description": "Chiller alarm", "priority": 2,
        "customer_id": "cust-acme", "site_id": "site-1", "asset_id": "asset-1", "assignee": "eve"}));
    let other_order = office.create_order(json!({"description": "Other", "priority": 3,
        "customer_id": "cust-other"}));
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    assert_eq!(eve.sync()["in_sync"], true);

    // The board and the order link the customer's page.
    let dana = Console::signed_in(&server, DISPATCHER);
    let csrf = dana.csrf();
    let (_, board) = dana.page("/console");
    assert!(
        board.contains(r#"href="/console/customers/cust-acme""#),
        "{board}"
    );
    let (_, detail) = dana.page(&format!("/console/orders/{order}"));
    assert!(detail.contains(r#"id="customer-link""#));

    // The customer's page: tier, contacts, site, asset, the order, an empty log.
    let (status, page) = dana.page("/console/customers/cust-acme");
    assert_eq!(status, 200);
    assert!(
        page.contains(r#"<dd id="customer-tier">Gold</dd>"#),
        "{page}"
    );
    assert!(page.contains("<td>Li Wei</td><td>facilities manager</td>"));
    assert!(page.contains("Plant 1") && page.contains("Carrier 30RB"));
    assert!(page.contains(&format!(r#"href="/console/orders/{order}""#)));
    assert!(page.contains(r#"id="contact-log-empty""#));
    let zh = dana
        .get("/console/customers/cust-acme", "zh-CN")
        .text()
        .unwrap();
    assert!(zh.contains("沟通记录") && zh.contains("金牌") && !zh.contains("⟦missing⟧"));

    // Bad entries: refused with the reason, nothing stored.
    let log = |pairs: &[(&str, &str)]| dana.submit("/console/customers/cust-acme/log", pairs);
    let (status, _, page) = log(&[
        ("channel", "call"),
        ("at", "2026-11-24T09:30"),
        ("summary", "   "),
        ("csrf", &csrf),
    ]);
    assert_eq!(status, 422);
    assert!(page.contains("Write a summary"), "{page}");
    let (status, _, page) = log(&[
        ("channel", "fax"),
        ("at", "2026-11-24T09:30"),
        ("summary", "x"),
        ("csrf", &csrf),
    ]);
    assert_eq!(status, 422);
    assert!(page.contains("Choose how the customer was reached"));
    let (status, _, page) = log(&[
        ("channel", "call"),
        ("at", "2026-11-24T09:30"),
        ("order_id", &other_order),
        ("summary", "wrong order"),
        ("csrf", &csrf),
    ]);
    assert_eq!(status, 422);
    assert!(
        page.contains("the order is for customer cust-other"),
        "{page}"
    );
    let (status, _, _) = log(&[("channel", "call"), ("summary", "forged"), ("csrf", "x")]);
    assert_eq!(status, 403);
    // An engineer logs only against an order they hold.
    let (status, b) = server.api(ENGINEER).post(
        "/api/v1/entities/contact_log",
        &json!({"customer_id": "cust-acme", "channel": "call", "at": 1, "summary": "no order"}),
    );
    assert_eq!(status, 403, "{b}");
    assert_eq!(log_rows(&server), 0);

    // The office logs a call about the order.
    let (status, loc, _) = log(&[
        ("channel", "call"),
        ("direction", "out"),
        ("at", "2026-11-24T09:30"),
        ("contact", "Li Wei"),
        ("order_id", &order),
        ("summary", "Confirmed the gate code for Tuesday's visit."),
        ("csrf", &csrf),
    ]);
    assert_eq!(
        (status, loc.as_str()),
        (303, "/console/customers/cust-acme?msg=logged")
    );

    // Offline, the engineer logs a visit, then the order shows both (the call after a
    // sync, the visit at once, pending).
    let bad = eve.fail(&["contact", &order, "--channel", "fax", "--summary", "x"]);
    assert!(
        bad.contains("--channel is one of call, email, visit, other"),
        "{bad}"
    );
    let bad = eve.fail(&["contact", &order, "--channel", "call", "--summary", " "]);
    assert!(bad.contains("--summary"), "{bad}");
    assert_eq!(eve.sync()["in_sync"], true);
    server.stop();
    let out = eve.json(&[
        "contact",
        &order,
        "--channel",
        "visit",
        "--direction",
        "in",
        "--contact",
        "王经理",
        "--at",
        "2026-11-25 14:00",
        "--summary",
        "客户同意更换水泵",
    ]);
    let visit_id = out["id"].as_str().unwrap().to_owned();
    let shown = eve.show(&order);
    let entries = shown["contact_log"]
        .as_array()
        .expect("contact_log in show --json");
    assert_eq!(entries.len(), 2, "{shown}");
    assert_eq!(entries[0]["channel"], "call", "oldest first by event time");
    assert_eq!(
        entries[0]["summary"],
        "Confirmed the gate code for Tuesday's visit."
    );
    assert_eq!(entries[0]["by"], "dana");
    assert_eq!(entries[0]["at"], 1_795_512_600_000u64);
    assert_eq!(entries[1]["id"], visit_id.as_str());
    assert_eq!(entries[1]["contact"], "王经理");
    assert_eq!(entries[1]["customer_id"], "cust-acme");
    assert_eq!(entries[1]["by"], "eve");
    let text = eve.ok(&["show", &order]);
    assert!(text.contains("Contact log:"), "{text}");
    assert!(
        text.contains("2026-11-24 09:30 UTC  call (to customer) with Li Wei, by dana"),
        "{text}"
    );
    assert!(
        text.contains("visit (from customer) with 王经理, by eve: 客户同意更换水泵"),
        "{text}"
    );

    // Back online: the visit reaches the customer's page and the order's page.
    server.restart();
    assert_eq!(eve.sync()["in_sync"], true);
    let dana = Console::signed_in(&server, DISPATCHER);
    let (_, page) = dana.page("/console/customers/cust-acme");
    let log_html = &page[page.find(r#"id="contact-log""#).expect("the log")..];
    let visit = log_html
        .find("客户同意更换水泵")
        .expect("the engineer's visit");
    let call = log_html
        .find("Confirmed the gate code")
        .expect("the office's call");
    assert!(visit < call, "newest first");
    assert!(log_html.contains(&format!(r#"href="/console/orders/{order}""#)));
    let (_, detail) = dana.page(&format!("/console/orders/{order}"));
    assert!(detail.contains("客户同意更换水泵") && detail.contains("Confirmed the gate code"));
    let (_, view) = server
        .api(DISPATCHER)
        .get(&format!("/api/v1/work-orders/{order}"));
    assert_eq!(
        view["contact_log"].as_array().map(Vec::len),
        Some(2),
        "{view}"
    );
    assert_eq!(log_rows(&server), 2);
}

#[test]
fn contacts_are_edited_on_the_customer_page_without_overwriting_anyone() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"));
    let (status, _) = server.api(DISPATCHER).post(
        "/api/v1/entities/customer",
        &json!({"id": "cust-1", "name": "Acme"}),
    );
    assert_eq!(status, 201);
    let dana = Console::signed_in(&server, DISPATCHER);
    let csrf = dana.csrf();
    let (_, page) = dana.page("/console/customers/cust-1");
    let base = input_value(&page, "base").unwrap_or_default();

    // A list that cannot be read is shown again with the line at fault.
    let (status, _, page) = dana.submit(
        "/console/customers/cust-1/contacts",
        &[
            ("contacts", "Li Wei | manager | call me"),
            ("base", &base),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(status, 422);
    assert!(page.contains("line 1: phone"), "{page}");
    assert!(page.contains("call me"), "what was typed is kept");

    let (status, _, _) = dana.submit(
        "/console/customers/cust-1/contacts",
        &[
            (
                "contacts",
                "Li Wei | manager | +86 21 5555 0100\r\n\r\nOps desk |  | 400-800-1234",
            ),
            ("base", &base),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(status, 303);
    let (_, c) = server
        .api(DISPATCHER)
        .get("/api/v1/entities/customer/cust-1");
    assert_eq!(
        c["contacts"],
        "Li Wei | manager | +86 21 5555 0100\nOps desk |  | 400-800-1234"
    );
    // Someone saves from the page opened before: a conflict, not a silent overwrite.
    let (status, _, _) = dana.submit(
        "/console/customers/cust-1/contacts",
        &[
            ("contacts", "Anna | buyer"),
            ("base", &base),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(status, 303);
    let (_, inbox) = dana.page("/console/conflicts");
    assert!(
        inbox.contains(r#"href="/console/customers/cust-1""#),
        "{inbox}"
    );
    assert!(
        inbox.contains("Ops desk"),
        "the other list is kept: {inbox}"
    );
    let (_, c): (u16, Value) = server
        .api(DISPATCHER)
        .get("/api/v1/entities/customer/cust-1");
    assert_eq!(c["contacts"], "Anna | buyer");
}
