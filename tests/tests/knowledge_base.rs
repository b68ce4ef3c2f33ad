//! The knowledge base: articles written by the office reach every engineer's laptop and
//! are found offline by any part of a word, in Chinese as in English.

use fieldsync_tests::{stdout, Server, DISPATCHER, ENGINEER, ENGINEER2};
use serde_json::json;

#[test]
fn articles_sync_to_every_engineer_and_are_searched_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(&tmp.path().join("server"));
    let office = server.api(DISPATCHER);
    for (id, title, body, codes, models) in [
        (
            "kb-e42",
            "E42: condenser pump fault",
            "Check the pump relay and the flow switch before replacing the pump.",
            "E42",
            "Carrier 30RB, Carrier 30XA",
        ),
        (
            "kb-zh-1",
            "压缩机过热报警处理",
            "先检查水泵运行和冷却水流量；压缩机过热通常由冷凝器结垢引起。",
            "E17",
            "York YK",
        ),
    ] {
        let (status, body) = office.post(
            "/api/v1/entities/kb_article",
            &json!({"id": id, "title": title, "body": body, "fault_codes": codes,
                    "models": models}),
        );
        assert_eq!(status, 201, "{body}");
    }
    // An order on a Carrier 30RB, for the suggestions.
    for (kind, body) in [
        ("customer", json!({"id": "cust-1", "name": "Acme"})),
        (
            "asset",
            json!({"id": "asset-1", "customer_id": "cust-1", "model": "Carrier 30RB"}),
        ),
    ] {
        let (status, body) = office.post(&format!("/api/v1/entities/{kind}"), &body);
        assert_eq!(status, 201, "{body}");
    }
    let order = office.create_order(json!({"description": "Chiller alarm", "priority": 2,
        "customer_id": "cust-1", "asset_id": "asset-1", "assignee": "sam"}));
    // Engineers read the knowledge base; they do not write it.
    let eve_api = server.api(ENGINEER);
    let (status, _) = eve_api.post(
        "/api/v1/entities/kb_article",
        &json!({"title": "mine", "body": "x"}),
    );
    assert_eq!(status, 403);

    // Sam gets every article, not only those about his order.
    let sam = server.agent(&tmp.path().join("sam"), ENGINEER2);
    let report = sam.sync();
    assert_eq!(report["in_sync"], true, "{report}");
    server.stop();

    let hits = sam.json(&["kb", "search", "水泵"]);
    assert_eq!(hits[0]["id"], "kb-zh-1", "{hits}");
    assert!(
        hits[0]["snippet"].as_str().unwrap().contains("水泵"),
        "{hits}"
    );
    let hits = sam.json(&["kb", "search", "e42", "PUMP"]);
    assert_eq!(hits.as_array().unwrap().len(), 1, "{hits}");
    assert_eq!(hits[0]["id"], "kb-e42");
    let none = sam.json(&["kb", "search", "pump", "压缩机"]);
    assert_eq!(none, json!([]), "every word must match");
    let shown = sam.ok(&["kb", "show", "kb-zh-1"]);
    assert!(shown.contains("冷凝器结垢"), "{shown}");
    let text = stdout(&sam.run(&["kb", "search", "condenser"]));
    assert!(text.contains("kb-e42  E42: condenser pump fault"), "{text}");
    // The order suggests what is written about its asset's model, not the rest.
    let shown = sam.show(&order);
    assert_eq!(
        shown["suggested_articles"],
        json!([{"id": "kb-e42", "title": "E42: condenser pump fault"}]),
        "{shown}"
    );
    let text = sam.ok(&["show", &order]);
    assert!(text.contains("kb-e42  E42: condenser pump fault"), "{text}");
    let missing = sam.fail(&["kb", "show", "kb-nope"]);
    assert!(missing.contains("no article"), "{missing}");
}
