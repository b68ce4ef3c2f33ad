//! The server CLI's refusals: each a clear one-line error and a non-zero exit.

use std::io::Write;
use std::process::{Command, Stdio};

fn server(args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fieldsync-server"))
        .args(args)
        .env("FIELDSYNC_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that refuses its arguments exits before reading stdin; the write then
    // meets a closed pipe, which is not the failure under test.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

fn err(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn insecure_http_is_refused_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let o = server(
        &[
            "serve",
            "--data-dir",
            d,
            "--listen",
            "0.0.0.0:0",
            "--insecure-http",
        ],
        "",
    );
    assert!(!o.status.success());
    assert!(err(&o).contains("loopback"), "{}", err(&o));
}

#[test]
fn serve_without_certificates_says_how_to_make_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let o = server(&["serve", "--data-dir", d, "--listen", "127.0.0.1:0"], "");
    assert!(!o.status.success());
    assert!(err(&o).contains("tls init"), "{}", err(&o));
}

#[test]
fn user_add_checks_role_name_and_password() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let add = |name: &str, role: &str, pw: &str| {
        server(
            &[
                "user",
                "add",
                "--data-dir",
                d,
                "--name",
                name,
                "--role",
                role,
                "--password-stdin",
            ],
            pw,
        )
    };
    assert!(add("eve", "engineer", "pw-1\n").status.success());
    let o = add("eve", "engineer", "pw-2\n");
    assert!(!o.status.success(), "duplicate user");
    assert!(err(&o).contains("eve"), "{}", err(&o));
    assert!(
        !add("bob", "wizard", "pw\n").status.success(),
        "unknown role"
    );
    assert!(
        !add("../bob", "engineer", "pw\n").status.success(),
        "bad name"
    );
    let o = add("bob", "engineer", "\n");
    assert!(!o.status.success());
    assert!(err(&o).contains("empty password"), "{}", err(&o));
}

#[test]
fn tls_init_prints_the_ca_path() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let o = server(
        &[
            "tls",
            "init",
            "--data-dir",
            d,
            "--host",
            "localhost",
            "--host",
            "10.1.2.3",
        ],
        "",
    );
    assert!(o.status.success(), "{}", err(&o));
    let ca = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    assert!(
        ca.ends_with("ca.pem") && std::path::Path::new(&ca).exists(),
        "{ca}"
    );
}
