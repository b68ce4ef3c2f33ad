//! The agent CLI without a server: clear one-line errors and non-zero exits.

use std::process::Command;

fn fieldsync(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fieldsync"))
        .args(args)
        .env("FIELDSYNC_DATA_DIR", dir)
        .env_remove("FIELDSYNC_SERVER")
        .output()
        .unwrap()
}

#[test]
fn commands_before_enrollment_say_how_to_enroll() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["orders"][..],
        &["sync"],
        &["info", "--json"],
        &["note", "wo-1", "x"],
    ] {
        let o = fieldsync(dir.path(), args);
        assert!(!o.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("not enrolled") && err.contains("fieldsync enroll"),
            "{args:?}: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "one-line reason: {err}");
    }
}

#[test]
fn enroll_to_an_unreachable_server_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fieldsync"))
        .args([
            "enroll",
            "--server",
            &format!("http://127.0.0.1:{port}"),
            "--user",
            "eve",
            "--password-stdin",
        ])
        .env("FIELDSYNC_DATA_DIR", dir.path())
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"pw\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot reach the server"), "{err}");
    let o = fieldsync(dir.path(), &["info"]);
    assert!(
        !o.status.success(),
        "still not enrolled after a failed enroll"
    );
}

#[test]
fn plain_http_to_a_remote_host_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_fieldsync"))
        .args([
            "enroll",
            "--server",
            "http://192.0.2.10:8443",
            "--user",
            "eve",
            "--password-stdin",
        ])
        .env("FIELDSYNC_DATA_DIR", dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("plain http"));
}
