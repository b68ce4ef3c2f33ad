//! `fieldsync-server demo`, the README's first command: it must start on a fresh data dir,
//! print instructions that work as printed, and hold the data the walkthrough uses.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use fieldsync_tests::{bin, Agent};

/// The demo server, killed however the test ends (a failed assertion too).
struct Demo(std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How long the demo may take to seed and print its instructions.
const DEMO_START_MAX: Duration = Duration::from_secs(60);

/// The value after `flag ` on the printed enroll line.
fn arg_after<'a>(line: &'a str, flag: &str) -> &'a str {
    let at = line
        .find(flag)
        .unwrap_or_else(|| panic!("{flag} in {line}"));
    line[at + flag.len()..].split_whitespace().next().unwrap()
}

#[test]
fn the_demo_prints_working_instructions_and_holds_the_walkthrough_data() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("demo");
    let mut server = Demo(
        Command::new(bin("fieldsync-server"))
            .args(["demo", "--data-dir", data.to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0"])
            .env("FIELDSYNC_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let out = server.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let mut printed = Vec::new();
    while !printed
        .iter()
        .any(|l: &String| l.contains("Stop with Ctrl-C"))
    {
        match rx.recv_timeout(DEMO_START_MAX) {
            Ok(line) => printed.push(line),
            Err(e) => panic!("the demo printed no instructions ({e}): {printed:?}"),
        }
    }
    let enroll = printed
        .iter()
        .find(|l| l.contains(" enroll "))
        .expect("an enroll command");
    let url = arg_after(enroll, "--server ");
    assert!(
        !url.ends_with(":0"),
        "the real port is printed, not the one asked for: {url}"
    );
    let ca = arg_after(enroll, "--ca-cert ");

    let eve = Agent::new(&tmp.path().join("eve"));
    let o = eve.run_stdin(
        &[
            "enroll",
            "--server",
            url,
            "--ca-cert",
            ca,
            "--user",
            "eve",
            "--password-stdin",
        ],
        Some("field-demo"),
    );
    assert!(o.status.success(), "enroll as printed: {o:?}");
    assert_eq!(eve.sync()["pending"], 0);

    let orders = eve.json(&["orders"]);
    let ids: Vec<&str> = orders
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["id"].as_str())
        .collect();
    assert!(ids.contains(&"wo-1001"), "{ids:?}");

    let wo = eve.show("wo-1001");
    let log = wo["contact_log"]
        .as_array()
        .expect("the order's contact log");
    assert!(
        log.iter().any(|e| e["summary"]
            .as_str()
            .is_some_and(|s| s.contains("tripping again"))),
        "the customer's call about this order: {wo}"
    );

    // The walkthrough's fault code, and the Chinese article, found offline.
    let hits = eve.json(&["kb", "search", "HP-TRIP"]);
    assert!(hits.to_string().contains("kb-hp-trip"), "{hits}");
    let hits = eve.json(&["kb", "search", "乙二醇"]);
    assert!(hits.to_string().contains("kb-glycol-leak"), "{hits}");
}
