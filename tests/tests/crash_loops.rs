//! Real-process crash loops: SIGKILL the agent during sync and the server during pushes,
//! a hundred times each. After every kill both SQLite files pass `integrity_check`, no
//! acknowledged op comes back, and in the end every note is on the server exactly once.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use fieldsync_tests::{Agent, Server, DISPATCHER, ENGINEER};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// Kills that must land while the process was working.
const KILLS: usize = 100;
/// Give up (and fail) after this many attempts: a kill can land before or after the work.
const ATTEMPTS_MAX: usize = 400;
/// Tiny batches make each sync a long run of transactions on both sides.
const SMALL_BATCHES: [(&str, &str); 1] = [("FIELDSYNC_PUSH_BATCH_OPS_MAX", "4")];
/// Keep at least this much pending work so there is always something to interrupt.
const PENDING_MIN: u64 = 40;

fn integrity_ok(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok", "{}", db.display());
}

fn pending(agent: &Agent) -> u64 {
    agent.info()["pending_ops"].as_u64().unwrap()
}

fn seeded_rng() -> rand::rngs::StdRng {
    let seed = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    eprintln!("crash loop seed {seed} (replay with SEED={seed})");
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// Every note on the server exactly once, and all of them.
fn assert_each_once(order: &Value, written: &[String]) {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for n in order["notes"].as_array().unwrap() {
        *count.entry(n["text"].as_str().unwrap()).or_default() += 1;
    }
    let twice: Vec<_> = count.iter().filter(|(_, &c)| c > 1).collect();
    assert!(twice.is_empty(), "stored twice: {twice:?}");
    let missing: Vec<_> = written
        .iter()
        .filter(|t| !count.contains_key(t.as_str()))
        .collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert_eq!(count.len(), written.len());
}

struct Notes {
    written: Vec<String>,
}

impl Notes {
    /// Top the agent's outbox up to `PENDING_MIN` with new notes.
    fn top_up(&mut self, agent: &Agent, order: &str) {
        let now = pending(agent);
        if now >= PENDING_MIN {
            return;
        }
        let start = self.written.len();
        let texts: Vec<String> = (start..start + (2 * PENDING_MIN - now) as usize)
            .map(|i| format!("reading {i:05}"))
            .collect();
        agent.bulk_notes(order, &texts);
        self.written.extend(texts);
    }
}

#[test]
fn agent_killed_during_sync_a_hundred_times() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"));
    let office = server.api(DISPATCHER);
    let id = office.create_order(
        json!({"description": "Compressor short-cycling", "priority": 1, "assignee": "eve"}),
    );
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    assert_eq!(eve.sync()["in_sync"], true);
    let mut rng = seeded_rng();
    let mut notes = Notes { written: vec![] };
    let mut kills = 0;
    let mut attempts = 0;
    let mut delay_ms = 120u64;
    let mut mid_push = 0;
    while kills < KILLS {
        attempts += 1;
        assert!(
            attempts <= ATTEMPTS_MAX,
            "only {kills} kills landed mid-sync"
        );
        notes.top_up(&eve, &id);
        // New work for the pull side too, now and then.
        if rng.gen_ratio(1, 10) {
            office.create_order(json!({"description": format!("Follow-up {attempts}"),
                "priority": 3, "assignee": "eve"}));
        }
        let before = pending(&eve);
        let mut child = eve.spawn_sync(&SMALL_BATCHES);
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..=delay_ms)));
        let running = child.try_wait().unwrap().is_none();
        if running {
            child.kill().unwrap();
        }
        child.wait().unwrap();
        integrity_ok(&eve.db_path());
        let after = pending(&eve);
        assert!(
            after <= before,
            "an acknowledged op came back: {before} -> {after}"
        );
        if running {
            kills += 1;
            if after < before && after > 0 {
                mid_push += 1;
            }
        } else {
            // Finished before the kill: aim earlier next time.
            delay_ms = (delay_ms * 3 / 4).max(5);
        }
    }
    eprintln!("{kills} kills in {attempts} attempts, {mid_push} in the middle of a push");
    assert!(
        mid_push >= KILLS / 10,
        "too few kills landed mid-push: {mid_push}"
    );
    let r = eve.sync();
    assert_eq!(r["pending"], 0, "{r}");
    assert_eq!(r["rejected"], 0, "{r}");
    assert_eq!(r["in_sync"], true, "{r}");
    assert_each_once(&office.order(&id), &notes.written);
}

#[test]
fn server_killed_during_pushes_a_hundred_times() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(&tmp.path().join("server"));
    let office = server.api(DISPATCHER);
    let id = office.create_order(
        json!({"description": "Walk-in freezer alarm", "priority": 1, "assignee": "eve"}),
    );
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    assert_eq!(eve.sync()["in_sync"], true);
    let db = fieldsync_server::db_path(&server.dir);
    let mut rng = seeded_rng();
    let mut notes = Notes { written: vec![] };
    let mut kills = 0;
    let mut attempts = 0;
    while kills < KILLS {
        attempts += 1;
        assert!(
            attempts <= ATTEMPTS_MAX,
            "only {kills} kills landed mid-push"
        );
        notes.top_up(&eve, &id);
        let before = pending(&eve);
        let mut child = eve.spawn_sync(&SMALL_BATCHES);
        // Kill once the push is under way: the agent's outbox has started to drain.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while pending(&eve) == before
            && child.try_wait().unwrap().is_none()
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..15)));
        let mid_push = child.try_wait().unwrap().is_none();
        server.kill();
        child.wait().unwrap();
        integrity_ok(&db);
        assert!(pending(&eve) <= before, "an acknowledged op came back");
        if mid_push {
            kills += 1;
        }
        server.restart();
    }
    eprintln!("{kills} kills in {attempts} attempts");
    let r = eve.sync();
    assert_eq!(r["pending"], 0, "{r}");
    assert_eq!(r["rejected"], 0, "{r}");
    assert_eq!(r["in_sync"], true, "{r}");
    assert_each_once(&office.order(&id), &notes.written);
}
