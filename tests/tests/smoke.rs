//! The shortest engineer day: enroll, sync, work offline, sync, and the dispatcher sees it.

use fieldsync_tests::{Server, DISPATCHER, ENGINEER};
use serde_json::json;

#[test]
fn engineer_day_reaches_the_dispatcher() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"));
    let office = server.api(DISPATCHER);
    let id =
        office.create_order(json!({"description": "Pump noisy", "priority": 2, "assignee": "eve"}));
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    let r = eve.sync();
    assert_eq!(r["pending"], 0);
    assert_eq!(r["in_sync"], true, "{r}");
    let orders = eve.json(&["orders"]);
    assert_eq!(orders[0]["id"], json!(id));
    eve.ok(&["progress", &id, "on-site"]);
    eve.ok(&["note", &id, "bearing worn"]);
    assert_eq!(eve.info()["pending_ops"], 2);
    let r = eve.sync();
    assert_eq!(
        (r["pushed"].as_u64(), r["pending"].as_u64()),
        (Some(2), Some(0)),
        "{r}"
    );
    let seen = office.order(&id);
    assert_eq!(seen["status"], "on-site");
    assert_eq!(seen["notes"][0]["text"], "bearing worn");
    assert!(seen["arrived_at"].as_u64().is_some());
}
