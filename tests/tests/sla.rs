//! SLA clocks end to end: intake sets the contract and deadlines, the engineer's offline
//! progress (event time) pauses and stops the clocks, and the agent shows the same clocks
//! offline as the server does.

use fieldsync_tests::{now_ms, Server, DISPATCHER, ENGINEER};
use serde_json::{json, Value};

const MINUTE_MS: u64 = 60_000;

fn clocks(sla: &Value) -> [String; 3] {
    ["response", "arrival", "resolution"].map(|c| sla[c]["state"].as_str().unwrap().to_owned())
}

#[test]
fn intake_deadlines_and_clocks_agree_on_server_and_offline_agent() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"));
    let office = server.api(DISPATCHER);
    for (path, body) in [
        (
            "/api/v1/entities/customer",
            json!({"id": "acme", "name": "Acme Cold Storage", "tier": "gold"}),
        ),
        (
            "/api/v1/entities/asset",
            json!({"id": "ch-2", "model": "Chiller CH-200", "customer_id": "acme"}),
        ),
        (
            "/api/v1/entities/contract",
            json!({"id": "acme-gold", "customer_id": "acme", "name": "Acme gold 24x7",
                   "valid_from": now_ms() - 86_400_000, "valid_until": now_ms() + 86_400_000 * 365,
                   "sla": {"calendar": {"kind": "always"}, "rules": [
                       {"priority": 1, "tier": "gold", "response_min": 30, "arrival_min": 120,
                        "resolution_min": 480},
                       {"priority": 1, "tier": "*", "response_min": 60, "arrival_min": 240,
                        "resolution_min": 960}]},
                   "includes_labour": true}),
        ),
    ] {
        let (status, r) = office.post(path, &body);
        assert_eq!(status, 201, "{path}: {r}");
    }
    // Bad terms are refused with the reason.
    let (status, r) = office.post(
        "/api/v1/entities/contract",
        &json!({"customer_id": "acme", "name": "broken", "valid_from": 0, "valid_until": 1,
                "sla": {"calendar": {"kind": "always"}, "rules": [
                    {"priority": 1, "tier": "*", "response_min": 90, "arrival_min": 60,
                     "resolution_min": 120}]}}),
    );
    assert_eq!(status, 400, "{r}");
    assert!(r.to_string().contains("targets must grow"), "{r}");

    // Intake: the gold cell of the matrix applies.
    let id = office.create_order(json!({"description": "Chiller tripping on high pressure",
        "priority": 1, "assignee": "eve", "customer_id": "acme", "asset_id": "ch-2"}));
    let (_, raw) = office.get(&format!("/api/v1/entities/work_order/{id}"));
    assert_eq!(raw["contract_id"], "acme-gold", "{raw}");
    let reported = raw["reported_at"].as_u64().unwrap();
    assert_eq!(raw["response_due"], reported + 30 * MINUTE_MS, "{raw}");
    assert_eq!(raw["arrival_due"], reported + 120 * MINUTE_MS, "{raw}");
    assert_eq!(raw["resolution_due"], reported + 480 * MINUTE_MS, "{raw}");
    let view = office.order(&id);
    assert_eq!(
        clocks(&view["sla"]),
        ["running", "running", "running"],
        "{view}"
    );
    assert_eq!(view["sla"]["escalation"], "none");
    assert_eq!(view["contract"]["name"], "Acme gold 24x7");

    // An order reported two hours ago (taken from the phone log) is already breached.
    let late = office.create_order(json!({"description": "Cold room alarm", "priority": 1,
        "assignee": "eve", "customer_id": "acme", "reported_at": now_ms() - 120 * MINUTE_MS}));
    let late_view = office.order(&late);
    assert_eq!(
        late_view["sla"]["response"]["state"], "breached",
        "{late_view}"
    );
    assert_eq!(late_view["sla"]["escalation"], "breach");

    // Offline on the agent: the same clocks, then a hold pauses them all.
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    assert_eq!(eve.sync()["in_sync"], true);
    let shown = eve.json(&["show", &id]);
    assert_eq!(
        clocks(&shown["sla"]),
        ["running", "running", "running"],
        "{shown}"
    );
    assert_eq!(
        shown["sla"]["response"]["deadline"],
        view["sla"]["response"]["deadline"]
    );
    assert_eq!(eve.json(&["show", &late])["sla"]["escalation"], "breach");
    let text = eve.ok(&["show", &late]);
    assert!(text.contains("response BREACHED"), "{text}");

    eve.ok(&["progress", &id, "on-hold"]);
    let held = eve.json(&["show", &id]);
    assert_eq!(
        clocks(&held["sla"]),
        ["paused", "paused", "paused"],
        "{held}"
    );
    eve.ok(&["progress", &id, "on-site"]);
    let on_site = eve.json(&["show", &id]);
    assert_eq!(
        clocks(&on_site["sla"]),
        ["met", "met", "running"],
        "{on_site}"
    );

    // After sync the server agrees, from the device's event times.
    assert_eq!(eve.sync()["in_sync"], true);
    let after = office.order(&id);
    assert_eq!(clocks(&after["sla"]), ["met", "met", "running"], "{after}");
    let (_, raw) = office.get(&format!("/api/v1/entities/work_order/{id}"));
    let holds = raw["holds"].as_array().unwrap();
    assert_eq!(holds.len(), 1, "{raw}");
    assert!(
        holds[0][1].as_u64().unwrap() >= holds[0][0].as_u64().unwrap(),
        "{raw}"
    );
    assert!(raw["responded_at"].as_u64().unwrap() >= reported, "{raw}");
}
