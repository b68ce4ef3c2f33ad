//! Test harness: real `fieldsync-server` and `fieldsync` processes on loopback, each with
//! its own temp data dir, a dispatcher API client, and a fault-injecting TCP proxy.
//!
//! The binaries are the ones cargo built next to the test executable. `cargo test
//! --workspace` builds them (the agent and server crates have integration tests of their
//! own, which makes cargo build their binaries first).

pub mod console;
pub mod fuzz_checks;
pub mod photos;
pub mod proxy;
pub mod sim;
pub mod webdriver;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const DISPATCHER: (&str, &str) = ("dana", "dispatch-pass");
pub const ENGINEER: (&str, &str) = ("eve", "field-pass");
pub const ENGINEER2: (&str, &str) = ("sam", "field-pass-2");
pub const ADMIN: (&str, &str) = ("root", "admin-pass");

/// The directory holding the workspace's binaries (`target/debug` or `target/release`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let mut dir = exe.parent().expect("exe dir").to_owned();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` (or `cargo test --workspace`)",
        p.display()
    );
    p
}

/// Run `fieldsync-server` with `args`, feeding `stdin`.
pub fn server_cmd(args: &[&str], stdin: Option<&str>) -> Output {
    run_cmd(Command::new(bin("fieldsync-server")).args(args), stdin)
}

fn run_cmd(cmd: &mut Command, stdin: Option<&str>) -> Output {
    cmd.env("FIELDSYNC_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    {
        let mut sin = child.stdin.take().expect("stdin");
        if let Some(s) = stdin {
            // A command that refuses its arguments may exit before reading stdin.
            if let Err(e) = sin.write_all(s.as_bytes()) {
                assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
            }
        }
    }
    child.wait_with_output().expect("wait")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A real server process with its own data dir, users and certificates.
pub struct Server {
    pub dir: PathBuf,
    pub url: String,
    pub ca: PathBuf,
    pub insecure_http: bool,
    port: u16,
    child: Option<Child>,
    extra_args: Vec<String>,
}

impl Server {
    /// TLS init, the standard users, then serve on a free loopback port.
    pub fn start(dir: &Path) -> Server {
        Self::start_with(dir, false, &[])
    }

    /// Plain HTTP on loopback, for tests that put a byte-level proxy in the path.
    pub fn start_http(dir: &Path) -> Server {
        Self::start_with(dir, true, &[])
    }

    pub fn start_with(dir: &Path, insecure_http: bool, extra_args: &[&str]) -> Server {
        std::fs::create_dir_all(dir).unwrap();
        let d = dir.to_str().unwrap();
        let o = server_cmd(
            &[
                "tls",
                "init",
                "--data-dir",
                d,
                "--host",
                "localhost",
                "--host",
                "127.0.0.1",
            ],
            None,
        );
        assert!(o.status.success(), "tls init: {}", stderr(&o));
        let ca = PathBuf::from(stdout(&o).trim());
        for (user, role) in [
            (DISPATCHER, "dispatcher"),
            (ENGINEER, "engineer"),
            (ENGINEER2, "engineer"),
            (ADMIN, "admin"),
        ] {
            let o = server_cmd(
                &[
                    "user",
                    "add",
                    "--data-dir",
                    d,
                    "--name",
                    user.0,
                    "--role",
                    role,
                    "--password-stdin",
                ],
                Some(user.1),
            );
            assert!(o.status.success(), "user add: {}", stderr(&o));
        }
        let mut s = Server {
            dir: dir.to_owned(),
            url: String::new(),
            ca,
            insecure_http,
            port: 0,
            child: None,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        };
        s.spawn();
        s
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn spawn(&mut self) {
        let log = self.dir.join("server.log");
        let _ = std::fs::remove_file(&log);
        let listen = format!("127.0.0.1:{}", self.port);
        let mut cmd = Command::new(bin("fieldsync-server"));
        cmd.args([
            "serve",
            "--data-dir",
            self.dir.to_str().unwrap(),
            "--listen",
            &listen,
        ])
        .args(&self.extra_args)
        .env("FIELDSYNC_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
        if self.insecure_http {
            cmd.arg("--insecure-http");
        }
        self.child = Some(cmd.spawn().expect("spawn server"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(i) = text.find("serving on ") {
                let rest = &text[i + "serving on ".len()..];
                let url = rest.split_whitespace().next().unwrap().trim().to_owned();
                let url = strip_ansi(&url);
                self.port = url
                    .rsplit(':')
                    .next()
                    .unwrap()
                    .parse()
                    .expect("port in url");
                // Certificates name localhost and 127.0.0.1; either works.
                self.url = url;
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("server exited with {status}: {text}");
            }
            assert!(Instant::now() < deadline, "server did not start: {text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no graceful shutdown, whatever was in flight is cut.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for the graceful shutdown.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while c.try_wait().unwrap().is_none() {
                assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Start again on the same port and data dir.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Replace the extra `serve` arguments used by the next `restart`.
    pub fn set_extra_args(&mut self, args: &[&str]) {
        self.extra_args = args.iter().map(|s| s.to_string()).collect();
    }

    /// The server process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM, then wait (at most `timeout`) for the process to exit. Returns its exit
    /// status and how long the shutdown took, or None when it did not exit in time (the
    /// process is then SIGKILLed).
    pub fn terminate(&mut self, timeout: Duration) -> Option<(std::process::ExitStatus, Duration)> {
        let mut c = self.child.take()?;
        let start = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        while start.elapsed() < timeout {
            if let Some(status) = c.try_wait().unwrap() {
                return Some((status, start.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// A logged-in API client for `user`.
    pub fn api(&self, user: (&str, &str)) -> Api {
        let api = Api::anonymous(self);
        let (status, body) = api.post(
            "/api/v1/session",
            &serde_json::json!({"user": user.0, "password": user.1}),
        );
        assert_eq!(status, 200, "login {}: {body}", user.0);
        Api {
            token: Some(body["token"].as_str().unwrap().to_owned()),
            ..api
        }
    }

    pub fn agent(&self, dir: &Path, user: (&str, &str)) -> Agent {
        let agent = Agent::new(dir);
        let mut args = vec![
            "enroll",
            "--server",
            &self.url,
            "--user",
            user.0,
            "--password-stdin",
        ];
        let ca = self.ca.to_str().unwrap();
        if !self.insecure_http {
            args.extend(["--ca-cert", ca]);
        }
        let o = agent.run_stdin(&args, Some(user.1));
        assert!(o.status.success(), "enroll: {}", stderr(&o));
        agent
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The `fieldsync` agent CLI on one data dir.
#[derive(Clone)]
pub struct Agent {
    pub dir: PathBuf,
    /// Sent as `FIELDSYNC_SERVER` when set, e.g. a proxy's URL.
    pub server_override: Option<String>,
}

impl Agent {
    pub fn new(dir: &Path) -> Agent {
        Agent {
            dir: dir.to_owned(),
            server_override: None,
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("fieldsync"));
        cmd.args(args)
            .env("FIELDSYNC_DATA_DIR", &self.dir)
            .env("FIELDSYNC_LOG", "warn")
            .env_remove("FIELDSYNC_SERVER");
        if let Some(s) = &self.server_override {
            cmd.env("FIELDSYNC_SERVER", s);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_stdin(args, None)
    }

    pub fn run_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        run_cmd(&mut self.command(args), stdin)
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "fieldsync {args:?} failed: {}{}",
            stderr(&o),
            stdout(&o)
        );
        stdout(&o)
    }

    /// Run with `--json` appended and parse the output.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.ok(&a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("fieldsync {a:?}: {e}: {out}"))
    }

    pub fn sync(&self) -> Value {
        self.json(&["sync"])
    }

    pub fn show(&self, id: &str) -> Value {
        self.json(&["show", id])
    }

    pub fn info(&self) -> Value {
        self.json(&["info"])
    }

    /// Run and require failure; returns stderr.
    pub fn fail(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            !o.status.success(),
            "fieldsync {args:?} should have failed: {}{}",
            stdout(&o),
            stderr(&o)
        );
        stderr(&o)
    }

    /// `fieldsync sync` as a child process (stdout and stderr discarded), with extra
    /// environment, e.g. `FIELDSYNC_PUSH_BATCH_OPS_MAX`.
    pub fn spawn_sync(&self, env: &[(&str, &str)]) -> Child {
        let mut cmd = self.command(&["sync"]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn fieldsync sync")
    }

    /// The path of the agent's SQLite store.
    pub fn db_path(&self) -> PathBuf {
        self.dir.join(fieldsync_agent::store::DB_FILE)
    }

    /// A value from the agent store's `meta` table (e.g. `token`, `device_id`), read-only.
    pub fn meta(&self, key: &str) -> Option<String> {
        let conn = rusqlite::Connection::open_with_flags(
            self.db_path(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open agent.db");
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .ok()
    }

    /// Record `texts.len()` notes on `order` through the agent library, exactly as
    /// `fieldsync note` does, but in one process: for tests that need many pending ops.
    pub fn bulk_notes(&self, order: &str, texts: &[String]) {
        let mut store = fieldsync_agent::Store::open(&self.dir).expect("open agent store");
        let id = store
            .resolve_order(order)
            .expect("order known to the agent");
        for t in texts {
            fieldsync_agent::actions::note(&mut store, &id, t).expect("note");
        }
    }
}

/// A JSON API client (blocking), as a dispatcher's script would use it.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub token: Option<String>,
    http: reqwest::blocking::Client,
}

impl Api {
    pub fn anonymous(server: &Server) -> Api {
        let ca = std::fs::read(&server.ca).unwrap();
        let http = reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Api {
            base: server.url.clone(),
            token: None,
            http,
        }
    }

    /// An anonymous client that speaks only HTTP/1.1 (so an oversized upload gets the
    /// server's 413 body rather than an HTTP/2 stream reset).
    pub fn http1(server: &Server) -> Api {
        let ca = std::fs::read(&server.ca).unwrap();
        let http = reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .http1_only()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Api {
            base: server.url.clone(),
            token: None,
            http,
        }
    }

    /// The same client with another bearer token.
    pub fn with_token(&self, token: &str) -> Api {
        Api {
            base: self.base.clone(),
            token: Some(token.to_owned()),
            http: self.http.clone(),
        }
    }

    /// Enroll a new device for `user` through the API; returns a client holding the
    /// device token, and the device id.
    pub fn enroll_device(server: &Server, user: (&str, &str)) -> (Api, u64) {
        let api = Api::anonymous(server);
        let (status, body) = api.post(
            "/api/v1/devices/enroll",
            &serde_json::json!({"user": user.0, "password": user.1, "device_name": "test-script"}),
        );
        assert_eq!(status, 200, "enroll {}: {body}", user.0);
        let token = body["token"].as_str().unwrap().to_owned();
        let device = body["device_id"].as_u64().unwrap();
        (api.with_token(&token), device)
    }

    /// `POST /api/v1/sync/push` with the protocol header.
    pub fn push(&self, body: &Value) -> (u16, Value) {
        self.raw(
            reqwest::Method::POST,
            "/api/v1/sync/push",
            &[
                ("content-type", "application/json"),
                ("x-fieldsync-protocol", "1"),
            ],
            serde_json::to_vec(body).unwrap(),
        )
    }

    /// `GET /api/v1/sync/pull?cursor=N` with the protocol header.
    pub fn pull(&self, cursor: u64) -> (u16, Value) {
        self.raw(
            reqwest::Method::GET,
            &format!("/api/v1/sync/pull?cursor={cursor}"),
            &[("x-fieldsync-protocol", "1")],
            Vec::new(),
        )
    }

    fn send(&self, req: reqwest::blocking::RequestBuilder) -> (u16, Value) {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(format!("{}{path}", self.base)))
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
    }

    pub fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.http.patch(format!("{}{path}", self.base)).json(body))
    }

    /// A raw request, for malformed-input tests.
    pub fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .body(body);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        self.send(r)
    }

    /// A GET whose body is bytes (a photo, a thumbnail): status, headers and body.
    pub fn get_bytes(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let mut r = self.http.get(format!("{}{path}", self.base));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().expect("request");
        let status = resp.status().as_u16();
        let h = resp.headers().clone();
        (status, h, resp.bytes().expect("body").to_vec())
    }

    /// Create a work order; returns its id.
    pub fn create_order(&self, body: Value) -> String {
        let (status, resp) = self.post("/api/v1/work-orders", &body);
        assert_eq!(status, 201, "create order: {resp}");
        resp["id"].as_str().unwrap().to_owned()
    }

    pub fn order(&self, id: &str) -> Value {
        let (status, resp) = self.get(&format!("/api/v1/work-orders/{id}"));
        assert_eq!(status, 200, "get order {id}: {resp}");
        resp
    }
}

/// Poll `f` until it returns Some, or panic after `timeout` with `what`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// An HLC timestamp (`unix_ms << 16`) for wall-clock millisecond `ms`.
pub fn hlc_at(ms: u64) -> u64 {
    ms << 16
}

/// Assert that `(status, body)` is an HTTP error with `code`, in the standard envelope.
#[track_caller]
pub fn assert_error(resp: &(u16, Value), status: u16, code: &str) {
    let (got, body) = resp;
    assert_eq!(*got, status, "expected {status} {code}, got {got}: {body}");
    assert_eq!(
        body["error"]["code"], code,
        "expected code {code} with {status}: {body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error envelope needs a message: {body}"
    );
}
