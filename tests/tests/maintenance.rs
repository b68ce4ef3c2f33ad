//! Preventive maintenance against real processes: a plan generates exactly one work order
//! per due date while two server processes and several `maintenance run` commands generate
//! at the same time on one data dir, and the engineer's agent receives those orders.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fieldsync_tests::{bin, now_ms, server_cmd, stderr, stdout, Server, DISPATCHER, ENGINEER};
use serde_json::{json, Value};

const DAY_MS: u64 = 86_400_000;

/// A second `serve` on the same data dir, generating every 100 ms.
fn second_server(dir: &Path) -> Child {
    let log = dir.join("server-b.log");
    let child = Command::new(bin("fieldsync-server"))
        .args(["serve", "--data-dir", dir.to_str().unwrap()])
        .args([
            "--listen",
            "127.0.0.1:0",
            "--maintenance-interval-ms",
            "100",
        ])
        .env("FIELDSYNC_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("serving on ")
    {
        assert!(Instant::now() < deadline, "second server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn pm_orders(office: &fieldsync_tests::Api) -> Vec<String> {
    let (status, list) = office.get("/api/v1/work-orders?assignee=eve");
    assert_eq!(status, 200, "{list}");
    let mut ids: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .filter(|id| id.starts_with("pm-"))
        .collect();
    ids.sort();
    ids
}

#[test]
fn overlapping_runs_in_several_processes_create_one_order_per_due_date() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("server");
    // Server A generates every 150 ms as well.
    let server = Server::start_with(&dir, false, &["--maintenance-interval-ms", "150"]);
    let office = server.api(DISPATCHER);
    let (status, r) = office.post(
        "/api/v1/entities/customer",
        &json!({"id": "acme", "name": "Acme Cold Storage", "tier": "gold"}),
    );
    assert_eq!(status, 201, "{r}");
    let (status, r) = office.post(
        "/api/v1/entities/asset",
        &json!({"id": "ch-2", "model": "Chiller CH-200", "serial": "CH2-0042",
                "customer_id": "acme"}),
    );
    assert_eq!(status, 201, "{r}");
    // Weekly, first due three days ago, 14 days' lead: due -3 d, +4 d and +11 d.
    let first_due = now_ms() - 3 * DAY_MS;
    let (status, r) = office.post(
        "/api/v1/entities/maintenance_plan",
        &json!({"id": "ch2-weekly", "name": "Weekly chiller inspection", "asset_id": "ch-2",
                "interval": "weekly", "first_due": first_due, "lead_days": 14,
                "priority": 3, "assignee": "eve",
                "description": "Check refrigerant pressures and the compressor log"}),
    );
    assert_eq!(status, 201, "{r}");

    // Everyone at once: server A's own runs, server B's, and six commands.
    let mut b = second_server(&dir);
    let runs: Vec<Child> = (0..6)
        .map(|_| {
            Command::new(bin("fieldsync-server"))
                .args(["maintenance", "run", "--json", "--data-dir"])
                .arg(&dir)
                .env("FIELDSYNC_LOG", "warn")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut created_by_commands = Vec::new();
    for run in runs {
        let o = run.wait_with_output().unwrap();
        assert!(o.status.success(), "maintenance run: {}", stderr(&o));
        let r: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        assert_eq!(r["plans"], 1, "{r}");
        assert_eq!(r["refused"], json!([]), "{r}");
        let created = r["created"].as_array().unwrap().len() as u64;
        assert_eq!(created + r["existing"].as_u64().unwrap(), 3, "{r}");
        created_by_commands.extend(r["created"].as_array().unwrap().iter().cloned());
    }
    // Let both servers run a few more times over the finished set.
    std::thread::sleep(Duration::from_millis(600));
    let _ = b.kill();
    let _ = b.wait();

    let d = |days: i64| {
        let ms = (first_due as i64 + days * DAY_MS as i64) as u64;
        let date =
            fieldsync_proto::sla::calendar::Date::from_days_since_epoch((ms / DAY_MS) as i64);
        format!(
            "pm-ch2-weekly-{:04}{:02}{:02}",
            date.year, date.month, date.day
        )
    };
    assert_eq!(pm_orders(&office), vec![d(0), d(7), d(14)]);
    // No command created an order twice, nor one another run had created.
    let mut seen = created_by_commands.clone();
    seen.sort_by_key(|v| v.to_string());
    seen.dedup();
    assert_eq!(
        seen.len(),
        created_by_commands.len(),
        "{created_by_commands:?}"
    );

    let (status, order) = office.get(&format!("/api/v1/entities/work_order/{}", d(7)));
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["channel"], "preventive", "{order}");
    assert_eq!(order["maintenance_plan_id"], "ch2-weekly", "{order}");
    assert_eq!(order["asset_id"], "ch-2", "{order}");
    assert_eq!(
        order["customer_id"], "acme",
        "taken from the asset: {order}"
    );
    assert_eq!(order["scheduled_start"], first_due + 7 * DAY_MS, "{order}");

    // Writes from four processes share one sequence: the engineer's agent pulls all three
    // orders and agrees with the server's digest.
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    let r = eve.sync();
    assert_eq!(r["in_sync"], true, "{r}");
    let list = eve.json(&["orders"]);
    let mut ids: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, vec![d(0), d(7), d(14)]);

    // Restore still needs the data dir to itself.
    let backup = tmp.path().join("copy.db");
    let o = server_cmd(
        &[
            "backup",
            "--data-dir",
            dir.to_str().unwrap(),
            "--out",
            backup.to_str().unwrap(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = server_cmd(
        &[
            "restore",
            "--data-dir",
            dir.to_str().unwrap(),
            "--from",
            backup.to_str().unwrap(),
        ],
        None,
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("server is running"), "{}", stderr(&o));
}
