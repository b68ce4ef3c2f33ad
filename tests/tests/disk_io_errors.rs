//! A dying disk under the engineer's agent: every write and fsync to its store fails with
//! EIO from a chosen point on (an LD_PRELOAD shim, `tests/fault/io_error_preload.c`, under
//! the real `fieldsync` binary). At every such point the command either succeeds and its
//! change is stored, or fails with a clear message and stores nothing; the store stays
//! intact, and after the disk recovers everything acknowledged reaches the server once.

use std::path::{Path, PathBuf};
use std::process::Command;

use fieldsync_tests::{stderr, stdout, Agent, Server, DISPATCHER, ENGINEER};
use serde_json::{json, Value};

/// Write points tried per command before giving up on reaching a fault-free run.
const WRITE_POINTS_MAX: usize = 400;

fn build_shim(dir: &Path) -> PathBuf {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/fault/io_error_preload.c");
    let out = dir.join("io_error_preload.so");
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&out)
        .arg(src)
        .arg("-ldl")
        .output()
        .expect("a C compiler (cc) builds the fault shim");
    assert!(built.status.success(), "cc: {}", stderr(&built));
    out
}

/// Run `fieldsync args` with the disk failing after `after` writes to the store; returns
/// the output and whether the fault fired at all.
fn run_failing(
    agent: &Agent,
    shim: &Path,
    mark: &Path,
    after: usize,
    args: &[&str],
) -> (std::process::Output, bool) {
    let _ = std::fs::remove_file(mark);
    let out = agent
        .command(args)
        .env("LD_PRELOAD", shim)
        .env("FIELDSYNC_FAULT_PATH", fieldsync_agent::store::DB_FILE)
        .env("FIELDSYNC_FAULT_AFTER", after.to_string())
        .env("FIELDSYNC_FAULT_MARK", mark)
        .output()
        .expect("run fieldsync");
    (out, mark.exists())
}

fn integrity(agent: &Agent) -> String {
    let conn = rusqlite::Connection::open(agent.db_path()).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

fn note_texts(order: &Value) -> Vec<String> {
    let mut v: Vec<String> = order["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn io_errors_at_every_write_point_lose_nothing_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let shim = build_shim(tmp.path());
    let mark = tmp.path().join("fault-fired");
    let mut server = Server::start(&tmp.path().join("server"));
    let office = server.api(DISPATCHER);
    let id =
        office.create_order(json!({"description": "Chiller", "priority": 2, "assignee": "eve"}));
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    eve.sync();
    server.stop();

    // Offline: a note at each write point of `fieldsync note`.
    let mut acknowledged: Vec<String> = Vec::new();
    let mut faults = 0;
    for after in 0..WRITE_POINTS_MAX {
        let text = format!("note at write point {after}");
        let (out, fired) = run_failing(&eve, &shim, &mark, after, &["note", &id, &text]);
        assert_eq!(integrity(&eve), "ok", "after a fault at write {after}");
        let stored = note_texts(&eve.show(&id)).contains(&text);
        if out.status.success() {
            assert!(stored, "acknowledged but not stored at write {after}");
            acknowledged.push(text);
        } else {
            let err = stderr(&out);
            assert!(fired, "failed without a fault: {err}");
            assert!(
                err.contains("I/O error") && err.contains("NOT saved"),
                "{err}"
            );
            assert!(!stored, "refused but stored at write {after}");
            faults += 1;
        }
        assert_eq!(eve.info()["pending_ops"], acknowledged.len() as u64);
        if !fired {
            break;
        }
    }
    assert!(
        faults >= 3,
        "the note command writes at several points ({faults})"
    );
    assert!(
        acknowledged.last().is_some_and(|t| !t.is_empty()),
        "a note eventually went through without a fault"
    );

    // Back online with the disk still failing: each sync at each write point fails cleanly
    // or succeeds; what the server took is never taken twice.
    server.restart();
    let mut sync_faults = 0;
    for after in 0..WRITE_POINTS_MAX {
        let (out, fired) = run_failing(&eve, &shim, &mark, after, &["sync", "--json"]);
        assert_eq!(integrity(&eve), "ok", "after a sync fault at write {after}");
        if !out.status.success() {
            let err = stderr(&out);
            assert!(fired, "sync failed without a fault: {err}");
            assert!(err.contains("I/O error"), "{err}");
            sync_faults += 1;
        } else {
            assert!(
                !fired || stdout(&out).contains("pending"),
                "{}",
                stdout(&out)
            );
        }
        if !fired {
            break;
        }
    }
    assert!(
        sync_faults >= 3,
        "sync writes at several points ({sync_faults})"
    );

    eprintln!(
        "I/O faults: note failed cleanly at {faults} write points, sync at {sync_faults}; {} notes acknowledged",
        acknowledged.len()
    );
    let report = eve.sync();
    assert_eq!(report["pending"], 0, "{report}");
    let (status, on_server) = office.get(&format!("/api/v1/work-orders/{id}"));
    assert_eq!(status, 200);
    let mut want = acknowledged.clone();
    want.sort();
    assert_eq!(
        note_texts(&on_server),
        want,
        "each acknowledged note once, nothing else"
    );
    assert_eq!(note_texts(&eve.show(&id)), want);
}
