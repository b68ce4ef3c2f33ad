//! Backup while the server takes pushes, restore of an older backup, and agents repairing
//! the rollback from their own logs: zero loss of acknowledged work.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use fieldsync_tests::{server_cmd, stderr, stdout, Server, DISPATCHER, ENGINEER, ENGINEER2};
use serde_json::{json, Value};

fn backup(server: &Server, out: &Path) -> Value {
    let o = server_cmd(
        &[
            "backup",
            "--data-dir",
            server.dir.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert!(o.status.success(), "backup: {}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

fn restore(dir: &Path, from: &Path) -> std::process::Output {
    server_cmd(
        &[
            "restore",
            "--data-dir",
            dir.to_str().unwrap(),
            "--from",
            from.to_str().unwrap(),
        ],
        None,
    )
}

fn note_counts(order: &Value) -> BTreeMap<String, usize> {
    let mut count = BTreeMap::new();
    for n in order["notes"].as_array().unwrap() {
        *count
            .entry(n["text"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    count
}

#[test]
fn agents_resend_what_a_restored_server_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(&tmp.path().join("server"));
    let office = server.api(DISPATCHER);
    let id = office.create_order(
        json!({"description": "Chiller tripping on high pressure", "priority": 1, "assignee": "eve"}),
    );
    let other = office.create_order(
        json!({"description": "Cold room door seal", "priority": 3, "assignee": "sam"}),
    );
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    let sam = server.agent(&tmp.path().join("sam"), ENGINEER2);
    assert_eq!(eve.sync()["in_sync"], true);
    assert_eq!(sam.sync()["in_sync"], true);

    let before: Vec<String> = (0..5).map(|i| format!("before backup {i}")).collect();
    eve.bulk_notes(&id, &before);
    assert_eq!(eve.sync()["pending"], 0);

    // The backup runs while sam keeps pushing: it must still be one consistent snapshot.
    let busy = Arc::new(AtomicBool::new(true));
    let pusher = {
        let busy = busy.clone();
        let sam = sam.clone();
        let other = other.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while busy.load(Ordering::Relaxed) || n < 3 {
                sam.bulk_notes(&other, &[format!("sam {n}")]);
                let r = sam.sync();
                assert_eq!(r["pending"], 0, "{r}");
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let file = tmp.path().join("backups/monday.db");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let summary = backup(&server, &file);
    busy.store(false, Ordering::Relaxed);
    let sam_notes = pusher.join().unwrap();
    assert!(summary["bytes"].as_u64().unwrap() > 0, "{summary}");
    assert!(summary["epoch"].as_u64().unwrap() > 0, "{summary}");
    let again = server_cmd(
        &[
            "backup",
            "--data-dir",
            server.dir.to_str().unwrap(),
            "--out",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        !again.status.success(),
        "an existing backup is never overwritten"
    );
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );

    // Work after the backup: acknowledged by the server, then lost by the restore.
    let after: Vec<String> = (0..7).map(|i| format!("after backup {i}")).collect();
    eve.bulk_notes(&id, &after);
    eve.ok(&["progress", &id, "on-site"]);
    let r = eve.sync();
    assert_eq!(
        (r["pending"].clone(), r["pushed"].clone()),
        (json!(0), json!(8))
    );
    assert_eq!(eve.info()["pending_ops"], 0);

    let running = restore(&server.dir, &file);
    assert!(!running.status.success(), "restore under a running server");
    assert!(
        stderr(&running).contains("a server is running")
            && stderr(&running).contains("stop it first"),
        "{}",
        stderr(&running)
    );

    server.stop();
    let o = restore(&server.dir, &file);
    assert!(o.status.success(), "restore: {}", stderr(&o));
    let restored: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_ne!(
        restored["epoch"], summary["epoch"],
        "a restore starts a new epoch"
    );
    assert!(
        std::fs::read_dir(&server.dir).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("fieldsync.db.replaced-")),
        "the replaced database is kept"
    );
    server.restart();

    let lost = office.order(&id);
    assert_eq!(
        note_counts(&lost).len(),
        5,
        "the backup predates eve's later notes"
    );

    let r = eve.sync();
    assert_eq!(r["resent_after_rollback"], 8, "{r}");
    assert_eq!(r["pending"], 0, "{r}");
    assert_eq!(r["rejected"], 0, "{r}");
    assert_eq!(r["in_sync"], true, "{r}");
    let r = sam.sync();
    assert_eq!(r["pending"], 0, "{r}");
    assert_eq!(r["in_sync"], true, "{r}");

    let seen = office.order(&id);
    let counts = note_counts(&seen);
    assert_eq!(counts.len(), 12, "every note is back: {counts:?}");
    assert!(counts.values().all(|&c| c == 1), "none twice: {counts:?}");
    assert_eq!(seen["status"], "on-site", "{seen}");
    let sams = note_counts(&office.order(&other));
    assert_eq!(sams.len(), sam_notes, "sam's notes all back: {sams:?}");
    assert!(sams.values().all(|&c| c == 1), "{sams:?}");

    // A second sync is quiet: nothing is resent twice.
    let r = eve.sync();
    assert_eq!(
        (r["resent_after_rollback"].clone(), r["pushed"].clone()),
        (json!(0), json!(0))
    );
}

#[test]
fn a_damaged_backup_is_refused_and_the_database_is_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(&tmp.path().join("server"));
    let office = server.api(DISPATCHER);
    let id = office.create_order(json!({"description": "Pump seal", "priority": 2}));
    server.stop();

    let junk = tmp.path().join("junk.db");
    std::fs::write(&junk, b"this is not a database at all, just some bytes").unwrap();
    let o = restore(&server.dir, &junk);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("is not a usable backup"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one-line reason: {err:?}");
    assert!(
        !server.dir.join("fieldsync.db.restore-partial").exists(),
        "nothing partial left behind"
    );

    let missing = restore(&server.dir, &tmp.path().join("nope.db"));
    assert!(!missing.status.success());

    server.restart();
    assert_eq!(office.order(&id)["description"], "Pump seal");
}

/// After a restore, devices come back in any order. Eve's tablet voids a note her laptop
/// wrote after the backup; the tablet syncs first, so its re-sent void arrives before the
/// note it voids. It must wait on the server (parked), not be refused, and apply once the
/// laptop has re-sent the note.
#[test]
fn a_resent_op_that_arrives_before_what_it_depends_on_waits_for_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(&tmp.path().join("server"));
    let office = server.api(DISPATCHER);
    let id = office.create_order(
        json!({"description": "Ice machine leaking", "priority": 2, "assignee": "eve"}),
    );
    let laptop = server.agent(&tmp.path().join("laptop"), ENGINEER);
    let tablet = server.agent(&tmp.path().join("tablet"), ENGINEER);
    assert_eq!(laptop.sync()["in_sync"], true);
    let file = tmp.path().join("backup.db");
    backup(&server, &file);

    laptop.ok(&["note", &id, "drain line blocked, cleared"]);
    assert_eq!(laptop.sync()["pending"], 0);
    assert_eq!(tablet.sync()["in_sync"], true);
    let notes = tablet.show(&id)["notes"].clone();
    let note = notes[0]["id"]
        .as_str()
        .expect("the laptop's note reached the tablet");
    tablet.ok(&["void", note]);
    assert_eq!(tablet.sync()["pending"], 0);

    server.stop();
    let o = restore(&server.dir, &file);
    assert!(o.status.success(), "restore: {}", stderr(&o));
    server.restart();

    let r = tablet.sync();
    assert_eq!(r["resent_after_rollback"], 1, "{r}");
    assert_eq!(
        (r["parked"].clone(), r["rejected"].clone()),
        (json!(1), json!(0)),
        "{r}"
    );
    assert_eq!(
        r["pending"], 1,
        "the parked void stays pending on the tablet: {r}"
    );
    assert_eq!(tablet.info()["rejected_ops"], 0);

    let r = laptop.sync();
    assert_eq!(
        (r["resent_after_rollback"].clone(), r["rejected"].clone()),
        (json!(1), json!(0)),
        "{r}"
    );
    let r = tablet.sync();
    assert_eq!(
        (
            r["pending"].clone(),
            r["rejected"].clone(),
            r["parked"].clone()
        ),
        (json!(0), json!(0), json!(0)),
        "the void applied once the note came back: {r}"
    );
    assert_eq!(r["in_sync"], true, "{r}");
    assert_eq!(laptop.sync()["in_sync"], true);

    let seen = office.order(&id);
    let notes = seen["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "{seen}");
    assert_eq!(notes[0]["id"], note, "{seen}");
    assert_eq!(
        notes[0]["voided"], true,
        "the tablet's void is on the server: {seen}"
    );
}
