//! `fieldsync-bench load`: many agents syncing at once against one server process on
//! loopback. Each simulated agent is a real enrolled device with its own HTTPS connection
//! (the agent's `Client`), syncing at random moments: hello, a push of a few notes, a pull.
//! Reports push latency p50/p99, errors, and the server process's peak RSS during the load.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use fieldsync_agent::client::Client;
use fieldsync_agent::config::Config;
use fieldsync_proto::wire::EnrollRequest;
use fieldsync_proto::{EntityId, EntityKind, HlcClock, Op, OpKind, Role};
use fieldsync_server::store::{Actor, ServerWrite};
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::harness::{machine, now_ms};
use crate::report::{round, secs, Checks, Obj};

const DISPATCHER: (&str, &str) = ("dana", "load-dispatch-pass");
const ENGINEER_PASSWORD: &str = "load-field-pass";
/// Enrollments in flight at once during setup (the server checks two passwords at a time).
const ENROLL_CONCURRENCY: usize = 8;
/// How often the server's RSS is sampled during the load.
const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(10);
/// Pull page size, as the agent's default.
const PULL_PAGE: usize = 500;

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Simulated agents (enrolled devices), all online at once.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Engineers the devices belong to; each has one order the notes go to.
    #[arg(long, default_value_t = 50)]
    engineers: usize,
    /// How long the load runs.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Each agent syncs once per this interval on average (uniform jitter).
    #[arg(long, default_value_t = 5000)]
    sync_interval_ms: u64,
    /// Notes recorded and pushed per sync.
    #[arg(long, default_value_t = 5)]
    ops_per_push: usize,
    /// Where to create the temporary data dir.
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn server_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let p = exe
        .parent()
        .context("the bench binary has no directory")?
        .join("fieldsync-server");
    anyhow::ensure!(
        p.exists(),
        "{} not found: run `cargo build --release --workspace --bins` first",
        p.display()
    );
    Ok(p)
}

fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The server as its own process, so its memory is measured alone.
struct ServerProcess {
    child: Child,
    url: String,
}

impl ServerProcess {
    fn start(dir: &Path) -> anyhow::Result<ServerProcess> {
        let log = dir.join("server.log");
        let child = Command::new(server_binary()?)
            .args(["serve", "--data-dir", dir.to_str().context("utf-8 dir")?])
            .args(["--listen", "127.0.0.1:0"])
            .env("FIELDSYNC_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting fieldsync-server")?;
        let mut server = ServerProcess {
            child,
            url: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(i) = text.find("127.0.0.1:") {
                let port: String = text[i + "127.0.0.1:".len()..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                if !port.is_empty() && text.contains("serving on") {
                    server.url = format!("https://127.0.0.1:{port}");
                    return Ok(server);
                }
            }
            if let Some(st) = server.child.try_wait()? {
                anyhow::bail!("the server exited with {st}: {text}");
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the server did not start: {text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Users and one order per engineer, written straight into the store before it serves.
fn seed(dir: &Path, engineers: usize) -> anyhow::Result<Vec<(String, EntityId)>> {
    fieldsync_server::tls::init(dir, &["localhost".into(), "127.0.0.1".into()])?;
    let store = fieldsync_server::open_store(dir)?;
    let hash = fieldsync_server::auth::hash_password(DISPATCHER.1)?;
    store.add_user(DISPATCHER.0, Role::Dispatcher, &hash, now_ms())?;
    let hash = fieldsync_server::auth::hash_password(ENGINEER_PASSWORD)?;
    let office = Actor {
        user: DISPATCHER.0.into(),
        role: Role::Dispatcher,
        device: None,
    };
    let mut orders = Vec::new();
    for e in 0..engineers {
        let name = format!("eng{e:03}");
        store.add_user(&name, Role::Engineer, &hash, now_ms())?;
        let id = EntityId(format!("wo-load-{e:03}"));
        let write = ServerWrite {
            kind: EntityKind::WorkOrder,
            id: id.clone(),
            create: true,
            fields: BTreeMap::from([
                ("description".into(), json!(format!("Load test order {e}"))),
                ("priority".into(), json!(3)),
                ("assignee".into(), json!(name)),
            ]),
            base: BTreeMap::new(),
        };
        store
            .server_write(&office, write, now_ms())?
            .map_err(|e| anyhow::anyhow!("seeding an order: {}", e.message))?;
        orders.push((name, id));
    }
    Ok(orders)
}

struct Device {
    client: Client,
    order: EntityId,
    device_id: u32,
    seq: u64,
    cursor: u64,
    clock: HlcClock,
}

impl Device {
    fn notes(&mut self, n: usize, rng: &mut impl Rng) -> Vec<Op> {
        (0..n)
            .map(|_| {
                self.seq += 1;
                Op {
                    seq: self.seq,
                    kind: EntityKind::Note,
                    id: EntityId(format!(
                        "n-{}-{}-{:08x}",
                        self.device_id,
                        self.seq,
                        rng.gen::<u32>()
                    )),
                    hlc: self.clock.tick(now_ms()),
                    op: OpKind::Create,
                    fields: BTreeMap::from([
                        ("order_id".into(), json!(self.order)),
                        (
                            "text".into(),
                            json!(format!(
                                "reading {} from device {}",
                                self.seq, self.device_id
                            )),
                        ),
                    ]),
                    base: BTreeMap::new(),
                }
            })
            .collect()
    }

    /// One sync round as the agent does it; returns the push's latency.
    async fn sync(&mut self, ops: usize, rng: &mut impl Rng) -> anyhow::Result<Duration> {
        let hello = self.client.hello().await?;
        anyhow::ensure!(hello.acked_seq == self.seq, "the server lost acks");
        let batch = self.notes(ops, rng);
        let t = Instant::now();
        let resp = self.client.push(&batch).await?;
        let push = t.elapsed();
        anyhow::ensure!(resp.acked_seq == self.seq, "partial ack");
        anyhow::ensure!(resp.rejected.is_empty(), "refused: {:?}", resp.rejected);
        loop {
            let page = self.client.pull(self.cursor, PULL_PAGE).await?;
            self.clock.observe(page.hlc, now_ms());
            self.cursor = page.cursor;
            if !page.more {
                break;
            }
        }
        Ok(push)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    round(sorted[i].as_secs_f64() * 1000.0, 2)
}

pub fn run(args: &Args) -> anyhow::Result<(Obj, bool)> {
    anyhow::ensure!(
        args.agents > 0 && args.engineers > 0,
        "need agents and engineers"
    );
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::Builder::new()
        .prefix("fieldsync-load-")
        .tempdir_in(&parent)?;
    let dir = tmp.path().join("server");
    std::fs::create_dir_all(&dir)?;
    eprintln!("seeding {} engineers with one order each", args.engineers);
    let orders = seed(&dir, args.engineers)?;
    let server = ServerProcess::start(&dir)?;
    let ca = std::fs::read(dir.join("tls/ca.pem")).context("reading the CA")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let cfg = Config::default();

    eprintln!("enrolling {} devices", args.agents);
    let t = Instant::now();
    let devices: Vec<Device> = rt.block_on(async {
        let sem = Arc::new(tokio::sync::Semaphore::new(ENROLL_CONCURRENCY));
        let mut tasks = Vec::new();
        for i in 0..args.agents {
            let (user, order) = orders[i % orders.len()].clone();
            let client = Client::new(&server.url, Some(&ca), &cfg)?;
            let sem = sem.clone();
            tasks.push(tokio::spawn(async move {
                let _p = sem.acquire().await?;
                let resp = client
                    .enroll(&EnrollRequest {
                        user,
                        password: ENGINEER_PASSWORD.into(),
                        device_name: Some(format!("load-{i}")),
                    })
                    .await?;
                anyhow::Ok(Device {
                    client: client.with_token(&resp.token),
                    order,
                    device_id: resp.device_id,
                    seq: 0,
                    cursor: 0,
                    clock: HlcClock::new(resp_hlc(resp.server_time_ms)),
                })
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await??);
        }
        anyhow::Ok(out)
    })?;
    let enroll_s = t.elapsed();

    // Only the load counts: forget the peak from setup (argon2, seeding).
    let pid = server.pid();
    let peak_reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
    let sampling = Arc::new(AtomicBool::new(true));
    let max_rss_kb = Arc::new(AtomicU64::new(0));
    let sampler = {
        let sampling = sampling.clone();
        let max_rss_kb = max_rss_kb.clone();
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                if let Some(kb) = status_kb(pid, "VmRSS:") {
                    max_rss_kb.fetch_max(kb, Ordering::Relaxed);
                }
                std::thread::sleep(RSS_SAMPLE_INTERVAL);
            }
        })
    };

    eprintln!(
        "load: {} agents, one sync each per ~{} ms, for {} s",
        args.agents, args.sync_interval_ms, args.seconds
    );
    let latencies = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let pushed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let end = started + Duration::from_secs(args.seconds);
    rt.block_on(async {
        let mut tasks = Vec::new();
        for (i, mut d) in devices.into_iter().enumerate() {
            let latencies = latencies.clone();
            let errors = errors.clone();
            let pushed = pushed.clone();
            let interval = args.sync_interval_ms;
            let ops = args.ops_per_push;
            tasks.push(tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
                loop {
                    let wait = Duration::from_millis(rng.gen_range(0..=2 * interval));
                    if Instant::now() + wait >= end {
                        break;
                    }
                    tokio::time::sleep(wait).await;
                    match d.sync(ops, &mut rng).await {
                        Ok(l) => {
                            latencies.lock().unwrap().push(l);
                            pushed.fetch_add(ops as u64, Ordering::Relaxed);
                        }
                        Err(e) => errors.lock().unwrap().push(format!("{e:#}")),
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    let wall = started.elapsed();
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.join();
    let hwm_kb = status_kb(pid, "VmHWM:").unwrap_or(0);
    let sampled_kb = max_rss_kb.load(Ordering::Relaxed);
    let peak_mb = round(hwm_kb.max(sampled_kb) as f64 / 1024.0, 1);

    let mut lat = latencies.lock().unwrap().clone();
    lat.sort();
    let errors = errors.lock().unwrap().clone();
    let pushes = lat.len();
    let mut checks = Checks::default();
    checks.check("pushes_happened", pushes > 0, pushes.to_string());
    let mut distinct: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &errors {
        *distinct.entry(e.as_str()).or_default() += 1;
    }

    let mut o = Obj::new();
    o.put("bench", "load")
        .put("agents", args.agents)
        .put("engineers", args.engineers)
        .put("seconds", args.seconds)
        .put("sync_interval_ms", args.sync_interval_ms)
        .put("ops_per_push", args.ops_per_push)
        .put("syncs", pushes)
        .put("syncs_per_s", round(pushes as f64 / wall.as_secs_f64(), 1))
        .put("ops_pushed", pushed.load(Ordering::Relaxed))
        .figure("push_p50_ms", percentile(&lat, 0.50), 50.0)
        .figure("push_p99_ms", percentile(&lat, 0.99), 250.0)
        .put("push_max_ms", percentile(&lat, 1.0))
        .figure("errors", errors.len() as f64, 0.0)
        .figure("server_peak_rss_mb", peak_mb, 200.0)
        .put("server_peak_rss_is_load_only", peak_reset)
        .put("enroll_s", secs(enroll_s));
    let mut met = Obj::new();
    met.put("push_p99", percentile(&lat, 0.99) <= 250.0)
        .put("errors", errors.is_empty())
        .put("server_peak_rss", peak_mb <= 200.0);
    o.obj("targets_met", met);
    if !distinct.is_empty() {
        let mut e = Obj::new();
        for (msg, n) in distinct.iter().take(10) {
            e.put(msg, *n);
        }
        o.obj("error_samples", e);
    }
    o.put("checks_ok", checks.all_ok())
        .obj("checks", checks.to_obj())
        .obj("machine", machine(&parent));
    drop(server);
    Ok((o, checks.all_ok()))
}

/// The server's clock at enrollment, as a starting point for this device's clock.
fn resp_hlc(server_time_ms: u64) -> fieldsync_proto::Hlc {
    fieldsync_proto::Hlc::from_millis(server_time_ms)
}
