//! `fieldsync-bench photos`: the photo pipeline's figures.
//!
//! 1. Blob stores, sled against plain files: import N photos of M bytes and read them all
//!    back verified, each in its own child process (so its peak RSS is its own), the disk
//!    they take, and crash safety: an importer SIGKILLed at random moments, then every
//!    photo it had reported stored must still be there and verify.
//! 2. Upload: the real `fieldsync` agent uploads 200 photos of 3 MB to an in-process
//!    server over HTTPS on loopback; in the same run, the same files go by plain HTTPS
//!    PUT (one request per file, on the same TLS and HTTP stack) to an endpoint that
//!    writes, fsyncs and renames each, as durably as the photo store: the ratio measures
//!    what chunking, resumability and verification cost. The same PUTs to a sink that
//!    drops the bytes give the transport alone (`throughput_ratio_vs_dropped`), which
//!    on a slow disk mostly measures the disk. The agent's peak RSS is sampled
//!    throughout.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use fieldsync_agent::blob::{self, Backend};
use fieldsync_tests::photos::jpeg;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::harness::{
    self, agent_binary, agent_command, run_measured, BenchServer, DISPATCHER, ENGINEER,
};
use crate::report::{round, Checks, Obj};

const UPLOAD_RATIO_TARGET: f64 = 0.7;
const AGENT_RSS_MB_TARGET: f64 = 64.0;
/// Crash rounds per backend, and the window in which each kill lands.
const CRASH_KILL_MS_MIN: u64 = 200;
const CRASH_KILL_MS_MAX: u64 = 1_500;
const MB: f64 = 1024.0 * 1024.0;

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Photos uploaded by the agent.
    #[arg(long, default_value_t = 200)]
    pub photos: usize,
    /// Bytes per photo.
    #[arg(long, default_value_t = 3_000_000)]
    pub photo_bytes: usize,
    /// Photos imported and read back per blob store.
    #[arg(long, default_value_t = 500)]
    pub store_photos: usize,
    /// The agent's upload chunk (default: the agent's default).
    #[arg(long)]
    pub upload_chunk_bytes: Option<usize>,
    /// SIGKILLs per blob store in the crash-safety run.
    #[arg(long, default_value_t = 5)]
    pub crashes: usize,
    /// Skip the blob store comparison (upload figures only).
    #[arg(long)]
    pub skip_stores: bool,
    /// Where to create the temporary data dirs (default: the system temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the data dirs after the run.
    #[arg(long)]
    pub keep: bool,
}

/// The hidden child process of the blob store runs.
#[derive(clap::Args, Clone, Debug)]
pub struct WorkerArgs {
    #[arg(long, value_enum)]
    pub backend: Backend,
    #[arg(long)]
    pub dir: PathBuf,
    /// `import`, `read` or `crash` (import until killed, printing each stored hash).
    #[arg(long)]
    pub mode: String,
    #[arg(long, default_value_t = 0)]
    pub count: usize,
    #[arg(long, default_value_t = 0)]
    pub size: usize,
    #[arg(long, default_value_t = 0)]
    pub first_seed: u64,
}

fn progress(msg: impl AsRef<str>) {
    eprintln!("[fieldsync-bench photos] {}", msg.as_ref());
}

/// `size` pseudo-random bytes from `seed`, generated as they are read: the store's cost is
/// measured, not a source file's.
struct Generated {
    state: u64,
    left: usize,
}

impl Generated {
    fn new(seed: u64, size: usize) -> Generated {
        Generated {
            state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            left: size,
        }
    }
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.left) & !7;
        let n = if n == 0 { buf.len().min(self.left) } else { n };
        for chunk in buf[..n].chunks_mut(8) {
            // xorshift64: fast, and every seed gives different bytes.
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            let b = self.state.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        self.left -= n;
        Ok(n)
    }
}

/// The child side: one blob store operation, reporting JSON on stdout.
pub fn worker(a: &WorkerArgs) -> anyhow::Result<()> {
    let opened = Instant::now();
    let store = blob::open(&a.dir, a.backend)?;
    let open_s = opened.elapsed().as_secs_f64();
    let out = std::io::stdout();
    match a.mode.as_str() {
        "import" => {
            let t = Instant::now();
            for i in 0..a.count as u64 {
                store.import(&mut Generated::new(a.first_seed + i, a.size))?;
            }
            let s = t.elapsed().as_secs_f64();
            println!("{}", json!({"open_s": open_s, "import_s": s}));
        }
        "read" => {
            let t = Instant::now();
            let (mut ok, mut bad, mut bytes) = (0u64, 0u64, 0u64);
            let hashes = store.list()?;
            for h in &hashes {
                match blob::verify(&*store, h) {
                    Ok(true) => {
                        ok += 1;
                        bytes += store.size(h)?.unwrap_or(0);
                    }
                    _ => bad += 1,
                }
            }
            println!(
                "{}",
                json!({"open_s": open_s, "read_s": t.elapsed().as_secs_f64(), "ok": ok,
                       "bad": bad, "bytes": bytes, "hashes": hashes})
            );
        }
        "crash" => {
            let mut lock = out.lock();
            for i in 0.. {
                let got = store.import(&mut Generated::new(a.first_seed + i, a.size))?;
                writeln!(lock, "{}", got.hash)?;
                lock.flush()?;
            }
        }
        other => anyhow::bail!("unknown worker mode {other:?}"),
    }
    Ok(())
}

fn worker_command(
    backend: Backend,
    dir: &Path,
    mode: &str,
    count: usize,
    size: usize,
    seed: u64,
) -> anyhow::Result<Command> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args([
        "photo-store-worker",
        "--backend",
        backend.as_str(),
        "--dir",
        dir.to_str().context("utf-8 path")?,
        "--mode",
        mode,
        "--count",
        &count.to_string(),
        "--size",
        &size.to_string(),
        "--first-seed",
        &seed.to_string(),
    ]);
    Ok(cmd)
}

/// Allocated bytes under `path`, like `du`.
fn du(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        for e in std::fs::read_dir(path).into_iter().flatten().flatten() {
            total += du(&e.path());
        }
    }
    total
}

fn last_json(text: &str) -> Value {
    text.lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null)
}

/// One backend: import, disk, read back, crash safety.
fn store_run(
    backend: Backend,
    base: &Path,
    n: usize,
    size: usize,
    crashes: usize,
    checks: &mut Checks,
) -> anyhow::Result<Obj> {
    let name = backend.as_str();
    let dir = base.join(format!("store-{name}"));
    progress(format!("{name}: import {n} x {size} B"));
    let import = run_measured(
        &mut worker_command(backend, &dir, "import", n, size, 0)?,
        None,
    )?;
    anyhow::ensure!(
        import.success,
        "{name} import failed: {}",
        import.stderr.trim()
    );
    let disk = du(&dir);
    progress(format!("{name}: read back and verify"));
    let read = run_measured(&mut worker_command(backend, &dir, "read", 0, 0, 0)?, None)?;
    anyhow::ensure!(read.success, "{name} read failed: {}", read.stderr.trim());
    let r = last_json(&read.stdout);
    let i = last_json(&import.stdout);
    checks.eq(
        &format!("{name}_read_back_ok"),
        r["ok"].as_u64(),
        Some(n as u64),
    );
    checks.eq(&format!("{name}_read_back_bad"), r["bad"].as_u64(), Some(0));
    let payload = (n * size) as f64;
    let import_s = i["import_s"].as_f64().unwrap_or(f64::NAN);
    let read_s = r["read_s"].as_f64().unwrap_or(f64::NAN);
    std::fs::remove_dir_all(&dir).ok();

    progress(format!(
        "{name}: crash safety, {crashes} SIGKILLs mid-import"
    ));
    let crash_dir = base.join(format!("crash-{name}"));
    let mut committed: Vec<String> = Vec::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xc4a5_u64 + backend as u64);
    for round_no in 0..crashes {
        let mut child = worker_command(
            backend,
            &crash_dir,
            "crash",
            0,
            size,
            1_000_000 * (round_no as u64 + 1),
        )?
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
        let stdout = child.stdout.take().context("worker stdout")?;
        let reader = std::thread::spawn(move || {
            std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        });
        std::thread::sleep(Duration::from_millis(
            rng.gen_range(CRASH_KILL_MS_MIN..CRASH_KILL_MS_MAX),
        ));
        child.kill()?; // SIGKILL
        child.wait()?;
        committed.extend(reader.join().unwrap_or_default());
    }
    let after = run_measured(
        &mut worker_command(backend, &crash_dir, "read", 0, 0, 0)?,
        None,
    )?;
    let a = last_json(&after.stdout);
    let present: Vec<String> = a["hashes"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|h| h.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let lost = committed.iter().filter(|h| !present.contains(h)).count();
    let corrupt = a["bad"].as_u64().unwrap_or(u64::MAX);
    checks.check(
        &format!("{name}_reopens_after_crashes"),
        after.success,
        after.stderr.trim().to_owned(),
    );
    checks.eq(&format!("{name}_crash_lost_committed"), lost, 0);
    checks.eq(&format!("{name}_crash_corrupt_blobs"), corrupt, 0);
    // At most the one in flight when killed may be present without having been reported.
    checks.check(
        &format!("{name}_crash_no_partial_blobs"),
        present.len() <= committed.len() + crashes,
        format!("{} present, {} reported", present.len(), committed.len()),
    );
    std::fs::remove_dir_all(&crash_dir).ok();

    let mut o = Obj::new();
    o.put("import_s", round(import_s, 3))
        .put("import_mb_s", round(payload / MB / import_s, 1))
        .put("read_verify_s", round(read_s, 3))
        .put("read_verify_mb_s", round(payload / MB / read_s, 1))
        .put("payload_mb", round(payload / MB, 1))
        .put("disk_mb", round(disk as f64 / MB, 1))
        .put(
            "disk_overhead_pct",
            round((disk as f64 / payload - 1.0) * 100.0, 1),
        )
        .put(
            "import_peak_rss_mb",
            round(import.peak_rss_kib as f64 / 1024.0, 1),
        )
        .put(
            "read_peak_rss_mb",
            round(read.peak_rss_kib as f64 / 1024.0, 1),
        )
        .put("open_s", round(r["open_s"].as_f64().unwrap_or(f64::NAN), 3));
    let mut c = Obj::new();
    c.put("sigkills", crashes)
        .put("photos_reported_stored", committed.len())
        .put("present_after_reopen", present.len())
        .put("lost", lost)
        .put("corrupt", corrupt)
        .put(
            "reopen_s",
            round(a["open_s"].as_f64().unwrap_or(f64::NAN), 3),
        );
    o.obj("crash_safety", c);
    Ok(o)
}

/// A client like the agent's: rustls, the bench CA only.
fn https_client(ca_pem: &[u8]) -> anyhow::Result<reqwest::blocking::Client> {
    Ok(reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem)?)
        .timeout(Duration::from_secs(600))
        .build()?)
}

fn create_order(server: &BenchServer) -> anyhow::Result<String> {
    let http = https_client(&server.ca_pem)?;
    let s: Value = http
        .post(format!("{}/api/v1/session", server.url()))
        .json(&json!({"user": DISPATCHER.0, "password": DISPATCHER.1}))
        .send()?
        .error_for_status()?
        .json()?;
    let token = s["token"].as_str().context("session token")?;
    let created: Value = http
        .post(format!("{}/api/v1/work-orders", server.url()))
        .bearer_auth(token)
        .json(&json!({"description": "Photo benchmark", "priority": 2, "assignee": ENGINEER.0}))
        .send()?
        .error_for_status()?
        .json()?;
    Ok(created["id"].as_str().context("order id")?.to_owned())
}

/// A sink that reads and drops request bodies, on the server's own TLS and HTTP stack.
struct Sink {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The plain upload server's `PUT /store/{name}`: the body into a file, fsynced and
/// renamed into place, as a simple upload endpoint that keeps what it acknowledges does.
async fn store_body(
    dir: PathBuf,
    name: String,
    body: axum::body::Body,
) -> (axum::http::StatusCode, String) {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    let bad = |e: String| (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e);
    let tmp = dir.join(format!("{name}.part"));
    let Ok(mut f) = tokio::fs::File::create(&tmp).await else {
        return bad("create".into());
    };
    let mut s = body.into_data_stream();
    let mut n = 0u64;
    while let Some(frame) = s.next().await {
        let Ok(b) = frame else {
            return (axum::http::StatusCode::BAD_REQUEST, String::new());
        };
        n += b.len() as u64;
        if let Err(e) = f.write_all(&b).await {
            return bad(e.to_string());
        }
    }
    if let Err(e) = f.sync_all().await {
        return bad(e.to_string());
    }
    if let Err(e) = tokio::fs::rename(&tmp, dir.join(&name)).await {
        return bad(e.to_string());
    }
    (axum::http::StatusCode::OK, n.to_string())
}

impl Sink {
    fn start(server_dir: &Path) -> anyhow::Result<Sink> {
        use futures_util::StreamExt;
        let tls = fieldsync_server::tls::server_config(server_dir)?;
        let store_dir = server_dir.join("plain-uploads");
        std::fs::create_dir_all(&store_dir)?;
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let app = axum::Router::new()
                    .route(
                        "/sink",
                        axum::routing::put(|body: axum::body::Body| async move {
                            let mut s = body.into_data_stream();
                            let mut n = 0u64;
                            while let Some(frame) = s.next().await {
                                match frame {
                                    Ok(b) => n += b.len() as u64,
                                    Err(_) => {
                                        return (axum::http::StatusCode::BAD_REQUEST, String::new())
                                    }
                                }
                            }
                            (axum::http::StatusCode::OK, n.to_string())
                        }),
                    )
                    .route(
                        "/store/{name}",
                        axum::routing::put(
                            move |axum::extract::Path(name): axum::extract::Path<String>,
                                  body: axum::body::Body| {
                                store_body(store_dir.clone(), name, body)
                            },
                        ),
                    );
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                addr_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                let _ = fieldsync_server::serve::run(
                    listener,
                    app,
                    Some(tls),
                    async {
                        let _ = stop_rx.await;
                    },
                    Duration::from_millis(200),
                )
                .await;
            });
        });
        Ok(Sink {
            addr: addr_rx.recv()?,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn upload_run(
    base: &Path,
    n: usize,
    size: usize,
    chunk: usize,
    checks: &mut Checks,
) -> anyhow::Result<Obj> {
    let bin = agent_binary()?;
    let server_dir = base.join("server");
    let server = BenchServer::start(&server_dir)?;
    let order = create_order(&server)?;
    let eve = base.join("eve");
    let url = server.url();
    let ca = server.ca_path.to_string_lossy().into_owned();
    let run = |args: &[&str], stdin: Option<&str>| -> anyhow::Result<harness::Measured> {
        let m = run_measured(&mut agent_command(&bin, &eve, args, None), stdin)?;
        anyhow::ensure!(
            m.success,
            "fieldsync {args:?} failed ({}): {}",
            m.status,
            m.stderr.trim()
        );
        Ok(m)
    };
    run(
        &[
            "enroll",
            "--server",
            &url,
            "--ca-cert",
            &ca,
            "--user",
            ENGINEER.0,
            "--password-stdin",
        ],
        Some(ENGINEER.1),
    )?;
    std::fs::write(
        eve.join("agent.toml"),
        format!("inbox_settle_ms = 50\nupload_chunk_bytes = {chunk}\n"),
    )?;
    run(&["sync"], None)?;

    progress(format!("writing {n} photos of {size} B into the inbox"));
    let inbox = eve.join("inbox").join(&order);
    std::fs::create_dir_all(&inbox)?;
    for i in 0..n {
        std::fs::write(inbox.join(format!("IMG_{i:04}.jpg")), jpeg(size, i as u64))?;
    }
    progress("importing them (fieldsync photo scan)");
    let scan = run(&["photo", "scan", "--json"], None)?;
    let imported = serde_json::from_str::<Value>(&scan.stdout)?["imported"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    checks.eq("photos_imported", imported, n);

    progress("uploading: fieldsync sync (photos after the records)");
    let up = run(&["sync", "--json"], None)?;
    let report: Value = serde_json::from_str(&up.stdout)?;
    let p = &report["photos"];
    checks.eq("upload_verified", p["verified"].as_u64(), Some(n as u64));
    checks.eq(
        "upload_bytes_sent",
        p["bytes_sent"].as_u64(),
        Some((n * size) as u64),
    );
    checks.eq("upload_pending_after", p["pending"].as_u64(), Some(0));
    let listed = run(&["photos", &order, "--json"], None)?;
    let verified = serde_json::from_str::<Value>(&listed.stdout)?
        .as_array()
        .map(|l| l.iter().filter(|x| x["state"] == "verified").count())
        .unwrap_or(0);
    checks.eq("agent_lists_all_verified", verified, n);
    let upload_s = p["upload_ms"].as_f64().unwrap_or(f64::NAN) / 1e3;
    let stored = std::fs::read_dir(server_dir.join("blobs/sha256"))
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|a| std::fs::read_dir(a.path()).into_iter().flatten().flatten())
        .map(|b| std::fs::read_dir(b.path()).map(|d| d.count()).unwrap_or(0))
        .sum::<usize>();
    checks.eq("server_blobs_stored", stored, n);

    progress("baseline: the same files by plain HTTPS PUT to a sink on the same loopback");
    let sink = Sink::start(&server_dir)?;
    let http = https_client(&server.ca_pem)?;
    let imported_dir = eve.join("inbox/imported").join(&order);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&imported_dir)?
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    // Each file in one body: the transfer at its simplest. First to a sink that drops
    // the bytes (transport only), then to an endpoint that keeps them as durably as the
    // photo store does (written, fsynced, renamed), on the same disk.
    let plain = |path: &str| -> anyhow::Result<(f64, u64)> {
        let t = Instant::now();
        let mut bytes = 0u64;
        for (i, f) in files.iter().enumerate() {
            let url = format!("https://127.0.0.1:{}{path}", sink.addr.port())
                .replace("{i}", &i.to_string());
            let resp = http
                .put(&url)
                .body(std::fs::read(f)?)
                .send()?
                .error_for_status()?;
            bytes += resp.text()?.parse::<u64>().unwrap_or(0);
        }
        Ok((t.elapsed().as_secs_f64(), bytes))
    };
    let (plain_s, plain_bytes) = plain("/sink")?;
    let (durable_s, durable_bytes) = plain("/store/photo-{i}")?;
    drop(sink);
    checks.eq("plain_https_bytes", plain_bytes, (n * size) as u64);
    checks.eq("plain_durable_bytes", durable_bytes, (n * size) as u64);
    server.stop()?;

    let payload = (n * size) as f64 / MB;
    let up_mb_s = payload / upload_s;
    let plain_mb_s = payload / plain_s;
    let durable_mb_s = payload / durable_s;
    let rss = up.peak_rss_kib as f64 / 1024.0;
    let mut o = Obj::new();
    o.put("photos", n)
        .put("photo_bytes", size)
        .put("chunk_bytes", chunk)
        .put("upload_s", round(upload_s, 3))
        .put("upload_mb_s", round(up_mb_s, 1))
        .put("sync_wall_s", round(up.wall.as_secs_f64(), 3))
        .put("plain_https_to_disk_s", round(durable_s, 3))
        .put("plain_https_to_disk_mb_s", round(durable_mb_s, 1))
        .figure(
            "throughput_ratio",
            round(up_mb_s / durable_mb_s, 3),
            UPLOAD_RATIO_TARGET,
        )
        .put("plain_https_dropped_s", round(plain_s, 3))
        .put("plain_https_dropped_mb_s", round(plain_mb_s, 1))
        .put(
            "throughput_ratio_vs_dropped",
            round(up_mb_s / plain_mb_s, 3),
        )
        .figure("agent_peak_rss_mb", round(rss, 1), AGENT_RSS_MB_TARGET);
    o.obj("agent_rss_profile", up.rss_profile());
    checks.check(
        "agent_peak_rss_within_target",
        rss <= AGENT_RSS_MB_TARGET,
        format!("{rss:.1} MB"),
    );
    Ok(o)
}

pub fn run(args: &Args) -> anyhow::Result<(Obj, bool)> {
    let parent = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => std::env::temp_dir(),
    };
    let tmp = tempfile::Builder::new()
        .prefix("fieldsync-bench-photos-")
        .tempdir_in(&parent)?;
    let base = tmp.path().to_owned();
    progress(format!("data dirs under {}", base.display()));
    let mut checks = Checks::default();
    let mut o = Obj::new();
    o.put("bench", "photos");
    let chunk = args
        .upload_chunk_bytes
        .unwrap_or(fieldsync_agent::Config::default().upload_chunk_bytes);
    o.obj(
        "upload",
        upload_run(&base, args.photos, args.photo_bytes, chunk, &mut checks)?,
    );
    if !args.skip_stores {
        let mut stores = Obj::new();
        stores
            .put("photos", args.store_photos)
            .put("photo_bytes", args.photo_bytes);
        for backend in [Backend::Files, Backend::Sled] {
            stores.obj(
                backend.as_str(),
                store_run(
                    backend,
                    &base,
                    args.store_photos,
                    args.photo_bytes,
                    args.crashes,
                    &mut checks,
                )?,
            );
        }
        stores.put(
            "default",
            fieldsync_agent::Config::default().blob_store.as_str(),
        );
        o.obj("blob_stores", stores);
    }
    o.obj("machine", harness::machine(&base));
    o.obj("checks", checks.to_obj());
    o.put("checks_failed", checks.failed());
    if args.keep {
        let kept = tmp.keep();
        progress(format!("kept {}", kept.display()));
    }
    let ok = checks.all_ok();
    Ok((o, ok))
}
