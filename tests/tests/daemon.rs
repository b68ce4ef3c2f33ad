//! `fieldsync daemon`: keeps syncing in the background, rides out a server outage with
//! backoff, stops cleanly on SIGTERM and stops for good when the device is revoked.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use fieldsync_tests::{wait_for, Agent, Server, DISPATCHER, ENGINEER};
use serde_json::json;

fn spawn_daemon(agent: &Agent) -> Child {
    agent
        .command(&["daemon"])
        .env("FIELDSYNC_POLL_INTERVAL_MS", "150")
        .env("FIELDSYNC_RETRY_DELAY_MS_BASE", "100")
        .env("FIELDSYNC_RETRY_DELAY_MS_MAX", "400")
        .env("FIELDSYNC_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn daemon")
}

fn term(child: &mut Child) -> std::process::ExitStatus {
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "daemon ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn has_order(agent: &Agent, id: &str) -> bool {
    agent
        .json(&["orders"])
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["id"] == id)
}

#[test]
fn daemon_delivers_assignments_and_survives_an_outage() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(&tmp.path().join("server"));
    let office = server.api(DISPATCHER);
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    let mut daemon = spawn_daemon(&eve);

    let id = office.create_order(
        json!({"description": "Compressor tripping", "priority": 1, "assignee": "eve"}),
    );
    wait_for(
        Duration::from_secs(10),
        "the assignment on the agent",
        || has_order(&eve, &id).then_some(()),
    );

    server.kill();
    eve.ok(&["note", &id, "written while the server is down"]);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        eve.info()["pending_ops"],
        1,
        "kept while the server is down"
    );
    let still_running = daemon.try_wait().unwrap();
    assert!(
        still_running.is_none(),
        "the daemon keeps going through an outage: {still_running:?}"
    );

    server.restart();
    let office = server.api(DISPATCHER);
    wait_for(Duration::from_secs(10), "the note on the server", || {
        let notes = office.order(&id)["notes"].clone();
        (notes.as_array().unwrap().len() == 1).then_some(())
    });
    assert_eq!(
        office.order(&id)["notes"][0]["text"],
        "written while the server is down"
    );
    wait_for(Duration::from_secs(5), "pending to drain", || {
        (eve.info()["pending_ops"] == 0).then_some(())
    });

    let status = term(&mut daemon);
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
}

#[test]
fn daemon_stops_when_the_device_is_revoked() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"));
    let office = server.api(DISPATCHER);
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    let device = eve.info()["device_id"].as_u64().unwrap();
    let (status, body) = office.post(&format!("/api/v1/devices/{device}/revoke"), &json!({}));
    assert_eq!(status, 200, "{body}");
    let mut daemon = spawn_daemon(&eve);
    let exit = wait_for(Duration::from_secs(10), "the daemon to give up", || {
        daemon.try_wait().unwrap()
    });
    assert!(!exit.success(), "a revoked device's daemon exits non-zero");
    let mut err = String::new();
    std::io::Read::read_to_string(daemon.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains("revoked"), "says why: {err}");
}

/// CPU seconds a process has used (user + system), from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // SC_CLK_TCK is 100 on every Linux this runs on.
    ticks / 100.0
}

/// An idle daemon (nothing to sync, nothing in the photo inbox) must idle: it runs on a
/// laptop's battery all day. Its inbox watcher used to wake on its own scans' directory
/// opens and rescan in a loop, at full CPU.
#[test]
#[cfg(target_os = "linux")]
fn an_idle_daemon_uses_almost_no_cpu() {
    /// How long the daemon is watched once its first sync is done.
    const WATCHED: Duration = Duration::from_secs(4);
    /// A spinning loop takes a whole core, or whatever share a loaded machine leaves it;
    /// an idle daemon polling every 15 s takes next to nothing.
    const CPU_SHARE_MAX: f64 = 0.2;
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"));
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    let mut daemon = eve
        .command(&["daemon"])
        .env("FIELDSYNC_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn daemon");
    wait_for(Duration::from_secs(10), "the daemon's first sync", || {
        eve.meta("last_sync_ms").map(|_| ())
    });
    let before = cpu_seconds(daemon.id());
    let started = Instant::now();
    std::thread::sleep(WATCHED);
    let used = cpu_seconds(daemon.id()) - before;
    let share = used / started.elapsed().as_secs_f64();
    term(&mut daemon);
    assert!(
        share < CPU_SHARE_MAX,
        "the idle daemon used {used:.2} CPU seconds in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
