//! The server's disk fills up during a push: the push is refused as a whole with 507, the
//! agent keeps every op, nothing half-applied remains, and the next sync after space is
//! freed delivers everything exactly once. A real tmpfs in a private mount namespace.

use std::process::Command;

use fieldsync_tests::bin;

#[test]
fn server_disk_full_refuses_the_push_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/server_disk_full.sh");
    let out = Command::new("unshare")
        .args(["-rm", "bash", script])
        .arg(bin("fieldsync-server"))
        .arg(bin("fieldsync"))
        .arg(&mnt)
        .arg(tmp.path().join("eve"))
        .arg(port.to_string())
        .output()
        .expect("unshare (util-linux) runs the script in a private mount namespace");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let log = std::fs::read_to_string(tmp.path().join("eve.server.log")).unwrap_or_default();
    let ctx = format!("{text}\nserver log:\n{log}");
    assert!(
        !text.contains("MOUNT_FAILED"),
        "cannot mount a tmpfs here: {ctx}"
    );
    assert!(
        !text.contains("ENROLL_FAILED") && !text.contains("SYNC0_FAILED"),
        "{ctx}"
    );
    assert!(
        text.contains("FREE_KB=0"),
        "the disk really was full: {ctx}"
    );
    assert!(text.contains("SYNC1_EXIT=1"), "the sync fails: {ctx}");
    assert!(
        text.contains("507") && text.contains("storage_full"),
        "and says why: {ctx}"
    );
    assert!(
        text.contains("AFTER_FULL \"pending_ops\": 40"),
        "every op kept: {ctx}"
    );
    assert!(
        text.contains("\"pending\":0") && text.contains("\"in_sync\":true"),
        "then syncs: {ctx}"
    );
    assert!(text.contains("NOTES=40"), "each note exactly once: {ctx}");
    assert!(
        text.contains("SERVER_EXIT=0"),
        "the server kept serving and stopped cleanly: {ctx}"
    );
}
