//! A full disk on the engineer's laptop: the change is refused with a clear message,
//! nothing half-written remains, earlier changes are intact, and work resumes once space
//! is freed. A real tmpfs in a private mount namespace (`unshare -rm`) makes the disk full.

use std::process::Command;

use fieldsync_tests::{bin, Server, DISPATCHER, ENGINEER};
use serde_json::json;

#[test]
fn full_disk_refuses_the_change_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(&tmp.path().join("server"));
    let office = server.api(DISPATCHER);
    let id =
        office.create_order(json!({"description": "Boiler", "priority": 2, "assignee": "eve"}));
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    eve.sync();
    server.stop();

    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/disk_full.sh");
    let out = Command::new("unshare")
        .args(["-rm", "bash", script])
        .arg(bin("fieldsync"))
        .arg(&eve.dir)
        .arg(&mnt)
        .arg(&id)
        .output()
        .expect("unshare (util-linux) runs the script in a private mount namespace");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !text.contains("MOUNT_FAILED"),
        "cannot mount a tmpfs here: {text}"
    );
    assert!(text.contains("NOTE1_OK"), "{text}");
    assert!(
        text.contains("FREE_KB=0"),
        "the disk really was full: {text}"
    );
    assert!(
        text.contains("NOTE2_EXIT=1"),
        "the change on a full disk fails: {text}"
    );
    assert!(
        text.contains("disk is full") && text.contains("NOT saved"),
        "and says so: {text}"
    );
    assert!(
        text.contains("AFTER_FULL \"pending_ops\": 1"),
        "nothing half-written, nothing lost: {text}"
    );
    assert!(
        text.contains("NOTE3_OK"),
        "works again once space is freed: {text}"
    );
    assert!(text.contains("AFTER_FREE \"pending_ops\": 2"), "{text}");
}
