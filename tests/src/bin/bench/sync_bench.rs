//! `fieldsync-bench sync`: push 10,000 work-order creates and 10,000 three-field edits from
//! a dispatcher device, bytes on the wire per edit, a fresh engineer device pulling the
//! 10,000 orders, and the real agent's peak memory while it syncs.
//!
//! Runs, each against its own fresh in-process server (HTTPS, SQLite, synchronous=FULL):
//! - `main`: push with the agent's default batch (500), no proxy. Gives the headline push
//!   times; its server then serves the engineer pulls and the memory runs.
//! - `wire`: the same workload through a byte-counting TCP relay (TLS stays end to end).
//! - `batch1000`: the same workload with `push_batch_ops_max = 1000`, no proxy.
//! - `store_only`: the same ops straight into the server's `Store`, no HTTP, to split the
//!   server's SQLite work from transport and agent costs.
//!
//! Setup (recording the ops in the outbox) is not timed. Timed agent stores run at the
//! agent's normal durability (synchronous=FULL): the bulk load relaxes it and the store
//! is reopened before the clock starts.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use fieldsync_agent::client::Client;
use fieldsync_agent::sync::sync_once;
use fieldsync_agent::{actions, Config, Store};
use fieldsync_proto::{EntityId, EntityKind, Hlc, HlcClock, Op, OpKind, Role};
use fieldsync_server::store::{Actor, ReceivedOp};
use fieldsync_tests::proxy::Proxy;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::harness::{
    self, agent_binary, agent_command, now_ms, run_measured, BenchServer, DISPATCHER, ENGINEER,
    ENGINEER2,
};
use crate::report::{round, secs, spread_ms, Checks, Obj};

pub const ORDERS_DEFAULT: usize = 10_000;

const PUSH_CREATES_S_TARGET: f64 = 0.4;
const PUSH_EDITS_S_TARGET: f64 = 0.4;
const EDIT_WIRE_BYTES_TARGET: f64 = 150.0;
const PULL_FRESH_S_TARGET: f64 = 0.5;
const AGENT_RSS_MB_TARGET: f64 = 40.0;

/// The same pseudo-random texts on every run.
const SEED: u64 = 0x5eed_f1e1_d5c0;

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Work orders created, edited and pulled (the targets are for 10000).
    #[arg(long, default_value_t = ORDERS_DEFAULT)]
    pub orders: usize,
    /// Where to create the temporary data dirs (default: the system temp dir). Put it on
    /// the disk you want to measure: the server syncs every commit to disk.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the data dirs after the run (their path is printed on stderr).
    #[arg(long)]
    pub keep: bool,
    /// Run the real agent's syncs under this command, e.g. `heaptrack -o /tmp/agent` or
    /// `perf record -g -o /tmp/agent.data --`. The memory figures then measure the wrapper.
    #[arg(long, value_name = "COMMAND")]
    pub agent_wrapper: Option<String>,
    /// Only the server store's push and pull, N times, without HTTP or the agent: a short
    /// run to profile, e.g. under `valgrind --tool=callgrind` (instruction counts do not
    /// move with the load on the machine, unlike times).
    #[arg(long, value_name = "N")]
    pub store_only_runs: Option<usize>,
}

fn progress(msg: impl AsRef<str>) {
    eprintln!("[fieldsync-bench] {}", msg.as_ref());
}

// ----- workload -----

#[rustfmt::skip]
const WORDS: &[&str] = &[
    "compressor", "short-cycling", "replace", "condenser", "fan", "motor", "check",
    "refrigerant", "leak", "at", "the", "loading", "bay", "customer", "reports", "noise",
    "from", "unit", "after", "power", "cut", "inspect", "valve", "pressure", "sensor",
    "faulty", "door", "seal", "worn", "alarm", "high", "temperature", "overnight",
    "service", "annual", "filter", "drain", "blocked", "ice", "build-up", "evaporator",
    "coil", "thermostat", "calibrate", "wiring", "loose", "contactor", "burnt", "quote",
    "parts", "chiller", "tripping", "since", "Monday", "line", "down", "freezer", "walk-in",
    "intermittent", "gauge", "reading", "low", "oil", "bearing", "vibration", "belt",
    "tension", "adjust", "controller", "firmware", "update", "display", "error", "code",
    "reset", "breaker", "fuse", "blown", "pump", "impeller", "cracked", "hose", "clamp",
    "corroded", "panel", "access", "via", "rear", "gate", "key", "with", "security", "site",
    "manager", "wants", "call", "before", "arrival", "urgent", "stock", "at", "risk",
    "second", "visit", "needed", "ladder", "required", "roof", "and", "not",
];

/// 6-12 words from a vocabulary of about a hundred, often with a number (a unit, a code):
/// about 65 characters that compress roughly like real notes, not like one repeated string.
fn description(rng: &mut StdRng) -> String {
    let n = rng.gen_range(6..=12);
    let mut words: Vec<String> = (0..n)
        .map(|_| WORDS[rng.gen_range(0..WORDS.len())].to_owned())
        .collect();
    if rng.gen_bool(0.5) {
        let at = rng.gen_range(0..=words.len());
        words.insert(at, format!("#{}", rng.gen_range(1..10_000)));
    }
    words.join(" ")
}

/// A start time in the next two weeks, on a quarter hour.
fn scheduled_start(rng: &mut StdRng) -> u64 {
    let quarter = 15 * 60 * 1000;
    (now_ms() / quarter + rng.gen_range(4..1344)) * quarter
}

fn order_id(rng: &mut StdRng) -> EntityId {
    EntityId::generate(now_ms(), rng.gen())
}

fn create_fields(rng: &mut StdRng, assignee: &str) -> BTreeMap<String, Value> {
    BTreeMap::from([
        ("description".to_owned(), json!(description(rng))),
        ("priority".to_owned(), json!(rng.gen_range(1..=4))),
        ("assignee".to_owned(), json!(assignee)),
        ("scheduled_start".to_owned(), json!(scheduled_start(rng))),
    ])
}

/// The three-field edit: priority, schedule and description.
fn edit_fields(rng: &mut StdRng) -> BTreeMap<String, Value> {
    BTreeMap::from([
        ("priority".to_owned(), json!(rng.gen_range(1..=4))),
        ("scheduled_start".to_owned(), json!(scheduled_start(rng))),
        ("description".to_owned(), json!(description(rng))),
    ])
}

/// Record `n` work-order creates in the outbox (bulk load: durability relaxed).
fn record_creates(
    store: &mut Store,
    n: usize,
    assignee: &str,
    rng: &mut StdRng,
) -> anyhow::Result<Vec<EntityId>> {
    store.relax_durability_for_bulk_load()?;
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let id = order_id(rng);
        let fields = create_fields(rng, assignee);
        store.record(EntityKind::WorkOrder, &id, OpKind::Create, |_, _| {
            Ok(fields)
        })?;
        ids.push(id);
    }
    Ok(ids)
}

/// Record one three-field edit per order; returns each order's new description.
fn record_edits(
    store: &mut Store,
    ids: &[EntityId],
    rng: &mut StdRng,
) -> anyhow::Result<HashMap<String, String>> {
    store.relax_durability_for_bulk_load()?;
    let mut descriptions = HashMap::with_capacity(ids.len());
    for id in ids {
        let fields = edit_fields(rng);
        let desc = fields["description"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let op = store.record(EntityKind::WorkOrder, id, OpKind::Set, |_, _| Ok(fields))?;
        anyhow::ensure!(
            op.base.len() == 3,
            "edit of {id} carries {} base versions, want 3",
            op.base.len()
        );
        descriptions.insert(id.0.clone(), desc);
    }
    Ok(descriptions)
}

/// Close and reopen, so the timed part runs at the agent's normal durability (FULL).
fn reopen(store: Store) -> anyhow::Result<Store> {
    let dir = store.dir().to_owned();
    drop(store);
    Ok(Store::open(&dir)?)
}

async fn enroll(
    dir: &Path,
    server: &BenchServer,
    user: (&str, &str),
    name: &str,
    cfg: &Config,
) -> anyhow::Result<Store> {
    let mut store = Store::open(dir)?;
    actions::enroll(
        &mut store,
        &server.url(),
        Some(&server.ca_pem),
        user.0,
        user.1,
        Some(name.to_owned()),
        cfg,
    )
    .await
    .with_context(|| format!("enrolling {}", user.0))?;
    Ok(store)
}

fn client_for(store: &Store, url: &str, ca: &[u8], cfg: &Config) -> anyhow::Result<Client> {
    let who = store.require_enrollment()?;
    Ok(Client::new(url, Some(ca), cfg)?.with_token(&who.token))
}

// ----- push -----

#[derive(Default)]
struct PushStats {
    total: Duration,
    /// CPU time of every thread of this process (agent, server, board follower) meanwhile.
    cpu: Duration,
    requests: usize,
    applied: usize,
    rejected: usize,
}

impl PushStats {
    fn to_obj(&self, n: usize) -> Obj {
        let mut o = Obj::new();
        o.put("total_s", secs(self.total))
            .put("process_cpu_s", secs(self.cpu))
            .put(
                "ops_per_s",
                round(n as f64 / self.total.as_secs_f64().max(1e-9), 0),
            )
            .put("requests", self.requests);
        o
    }
}

/// The push half of `sync_once`: the agent's own pipelined push, timed in-process.
async fn timed_push(
    store: &mut Store,
    client: &Client,
    batch_max: usize,
) -> anyhow::Result<PushStats> {
    let pending = store.pending_count()? as usize;
    let cpu = harness::process_cpu();
    let start = Instant::now();
    let out = fieldsync_agent::sync::push_pending(store, client, batch_max).await?;
    Ok(PushStats {
        total: start.elapsed(),
        cpu: harness::process_cpu().saturating_sub(cpu),
        requests: pending.div_ceil(batch_max),
        applied: (out.acked - out.rejected) as usize,
        rejected: out.rejected as usize,
    })
}

struct PushRun {
    label: &'static str,
    batch: usize,
    creates: PushStats,
    edits: PushStats,
    /// (up, down) bytes through the proxy, when there was one.
    wire_creates: Option<(u64, u64)>,
    wire_edits: Option<(u64, u64)>,
    obj: Obj,
    /// Each order's description after the edits.
    descriptions: HashMap<String, String>,
}

/// A fresh server and dispatcher device: record and push `n` creates (assigned to eve),
/// pull them back, record and push one three-field edit of each, pull back again.
fn push_run(
    rt: &tokio::runtime::Runtime,
    base: &Path,
    label: &'static str,
    n: usize,
    batch: usize,
    via_proxy: bool,
    checks: &mut Checks,
) -> anyhow::Result<(PushRun, BenchServer)> {
    progress(format!(
        "run {label}: fresh server, dispatcher pushes {n} creates then {n} edits, batch {batch}{}",
        if via_proxy {
            ", through the byte-counting proxy"
        } else {
            ""
        }
    ));
    let server = BenchServer::start(&base.join(format!("{label}-server")))?;
    let proxy = via_proxy.then(|| Proxy::start(server.addr));
    let cfg = Config {
        push_batch_ops_max: batch,
        ..Config::default()
    };
    let dir = base.join(format!("{label}-dispatcher"));
    let mut store = rt.block_on(enroll(
        &dir,
        &server,
        DISPATCHER,
        &format!("bench-{label}"),
        &cfg,
    ))?;
    let url = match &proxy {
        Some(p) => format!("https://127.0.0.1:{}", p.addr.port()),
        None => server.url(),
    };
    let client = client_for(&store, &url, &server.ca_pem, &cfg)?;
    let mut rng = StdRng::seed_from_u64(SEED);
    let c = |name: &str| format!("{label}_{name}");
    let mut o = Obj::new();
    o.put("push_batch_ops_max", batch)
        .put("via_proxy", via_proxy);

    // Creates.
    let t = Instant::now();
    let ids = record_creates(&mut store, n, ENGINEER.0, &mut rng)?;
    let setup_creates = t.elapsed();
    store = reopen(store)?;
    checks.eq(
        &c("creates_pending_before_push"),
        store.pending_count()?,
        n as u64,
    );
    if let Some(p) = &proxy {
        p.reset_counters();
    }
    let creates = rt.block_on(timed_push(&mut store, &client, batch))?;
    let wire_creates = proxy.as_ref().map(Proxy::bytes);
    checks.eq(&c("creates_acked"), creates.applied + creates.rejected, n);
    checks.eq(&c("creates_rejected"), creates.rejected, 0);
    checks.eq(&c("creates_pending_after_push"), store.pending_count()?, 0);
    checks.eq(&c("creates_requests"), creates.requests, n.div_ceil(batch));
    progress(format!(
        "  pushed {n} creates in {:.3} s ({} requests)",
        creates.total.as_secs_f64(),
        creates.requests
    ));

    let t = Instant::now();
    let r = rt.block_on(sync_once(&mut store, &client, &cfg))?;
    let pull_back_creates = t.elapsed();
    checks.eq(&c("creates_pulled_back"), r.pulled, n as u64);
    checks.eq(&c("creates_in_sync"), r.in_sync, Some(true));

    // Edits.
    let t = Instant::now();
    let descriptions = record_edits(&mut store, &ids, &mut rng)?;
    let setup_edits = t.elapsed();
    store = reopen(store)?;
    checks.eq(
        &c("edits_pending_before_push"),
        store.pending_count()?,
        n as u64,
    );
    if let Some(p) = &proxy {
        p.reset_counters();
    }
    let edits = rt.block_on(timed_push(&mut store, &client, batch))?;
    let wire_edits = proxy.as_ref().map(Proxy::bytes);
    checks.eq(&c("edits_acked"), edits.applied + edits.rejected, n);
    checks.eq(&c("edits_rejected"), edits.rejected, 0);
    checks.eq(&c("edits_pending_after_push"), store.pending_count()?, 0);
    progress(format!(
        "  pushed {n} edits in {:.3} s ({} requests)",
        edits.total.as_secs_f64(),
        edits.requests
    ));

    let cpu = harness::process_cpu();
    let t = Instant::now();
    let r = rt.block_on(sync_once(&mut store, &client, &cfg))?;
    let pull_back_edits = t.elapsed();
    let pull_back_edits_cpu = harness::process_cpu().saturating_sub(cpu);
    // Exactly the edited orders come back: an edit whose base did not match would have
    // added a conflict entity.
    checks.eq(&c("edits_pulled_back_no_conflicts"), r.pulled, n as u64);
    checks.eq(&c("edits_in_sync"), r.in_sync, Some(true));
    let digest = rt.block_on(client.digest())?;
    checks.eq(&c("server_entities"), digest.entities, n as u64);
    let orders = store.orders()?;
    let matching = orders
        .iter()
        .filter(|s| descriptions.get(&s.id) == Some(&s.description))
        .count();
    checks.eq(
        &c("dispatcher_orders_edited"),
        (orders.len(), matching),
        (n, n),
    );

    o.put("setup_record_creates_s_untimed", secs(setup_creates))
        .put("setup_record_edits_s_untimed", secs(setup_edits))
        .obj("creates", creates.to_obj(n))
        .obj("edits", edits.to_obj(n))
        .put(
            "dispatcher_sync_pull_back_creates_s",
            secs(pull_back_creates),
        )
        .put("dispatcher_sync_pull_back_edits_s", secs(pull_back_edits))
        .put(
            "dispatcher_sync_pull_back_edits_process_cpu_s",
            secs(pull_back_edits_cpu),
        );
    if let (Some((cu, cd)), Some((eu, ed))) = (wire_creates, wire_edits) {
        let mut w = Obj::new();
        w.put("creates_up_bytes", cu)
            .put("creates_down_bytes", cd)
            .put("edits_up_bytes", eu)
            .put("edits_down_bytes", ed)
            .put(
                "proxy_connections",
                proxy.as_ref().map_or(0, Proxy::connections),
            )
            .put(
                "note",
                "TCP payload both ways (TLS records, HTTP/2 frames, gzip JSON); the create \
                 phase includes the connection's TLS handshake, the edit phase reuses it",
            );
        o.obj("wire", w);
    }
    drop(client);
    drop(proxy);
    Ok((
        PushRun {
            label,
            batch,
            creates,
            edits,
            wire_creates,
            wire_edits,
            obj: o,
            descriptions,
        },
        server,
    ))
}

// ----- pull -----

/// A fresh engineer device's first `sync_once`: the headline pull figure.
fn fresh_engineer_sync(
    rt: &tokio::runtime::Runtime,
    server: &BenchServer,
    dir: &Path,
    n: usize,
    descriptions: &HashMap<String, String>,
    checks: &mut Checks,
) -> anyhow::Result<(Duration, Obj)> {
    let cfg = Config::default();
    let mut store = rt.block_on(enroll(dir, server, ENGINEER, "bench-eve-1", &cfg))?;
    let client = client_for(&store, &server.url(), &server.ca_pem, &cfg)?;
    let t = Instant::now();
    let r = rt.block_on(sync_once(&mut store, &client, &cfg))?;
    let took = t.elapsed();
    progress(format!(
        "  fresh engineer device: first sync pulled {} in {:.3} s",
        r.pulled,
        took.as_secs_f64()
    ));
    checks.eq("fresh_engineer_pulled", r.pulled, n as u64);
    checks.eq("fresh_engineer_in_sync", r.in_sync, Some(true));
    checks.eq("fresh_engineer_pending", r.pending, 0);
    let orders = store.orders()?;
    let own = orders
        .iter()
        .filter(|s| s.assignee.as_deref() == Some(ENGINEER.0))
        .count();
    let edited = orders
        .iter()
        .filter(|s| descriptions.get(&s.id) == Some(&s.description))
        .count();
    checks.eq(
        "fresh_engineer_orders_assigned_and_edited",
        (orders.len(), own, edited),
        (n, n, n),
    );
    let mut o = Obj::new();
    o.put("sync_once_s", secs(took))
        .put("pulled", r.pulled)
        .put("in_sync", r.in_sync);
    Ok((took, o))
}

/// Another fresh device, pulling page by page with the same calls as `sync_once`, but one
/// at a time (`sync_once` fetches the next page while it applies one), to split the time
/// into server+transport and the agent's own store work.
fn engineer_pull_breakdown(
    rt: &tokio::runtime::Runtime,
    server: &BenchServer,
    dir: &Path,
    n: usize,
    checks: &mut Checks,
) -> anyhow::Result<(usize, Obj)> {
    let cfg = Config::default();
    let mut store = rt.block_on(enroll(dir, server, ENGINEER, "bench-eve-2", &cfg))?;
    let client = client_for(&store, &server.url(), &server.ca_pem, &cfg)?;
    let (mut http, mut apply) = (Duration::ZERO, Duration::ZERO);
    let mut per_page = Vec::new();
    let mut entities = 0;
    let start = Instant::now();
    loop {
        let cursor = store.cursor()?;
        let t = Instant::now();
        let page = rt.block_on(client.pull(cursor, cfg.pull_page_entities_max))?;
        let dt = t.elapsed();
        http += dt;
        per_page.push(dt);
        entities += page.entities.len() + page.left.len();
        let t = Instant::now();
        store.apply_page(&page)?;
        apply += t.elapsed();
        if !page.more {
            break;
        }
    }
    let pull_total = start.elapsed();
    let t = Instant::now();
    let server_digest = rt.block_on(client.digest())?;
    let digest_http = t.elapsed();
    let t = Instant::now();
    let local_digest = store.digest()?;
    let digest_local = t.elapsed();
    checks.eq("engineer_pages_entities", entities, n);
    checks.eq(
        "engineer_pages_digest_match",
        local_digest,
        server_digest.digest,
    );
    let pages = per_page.len();
    let mut o = Obj::new();
    o.put("pages", pages)
        .put("pull_page_entities_max", cfg.pull_page_entities_max)
        .put("pull_all_pages_s", secs(pull_total))
        .put("http_pull_s", secs(http))
        .put("agent_apply_page_s", secs(apply))
        .obj("per_page", spread_ms(&per_page))
        .put("http_digest_s", secs(digest_http))
        .put("agent_local_digest_s", secs(digest_local));
    Ok((pages, o))
}

// ----- the real agent binary -----

/// The real `fieldsync` binary, and the profiler to run it under, if any.
struct AgentBin {
    path: PathBuf,
    wrapper: Option<String>,
}

struct AgentRun {
    peak_mb: f64,
    wall: Duration,
    obj: Obj,
}

fn agent_sync_measured(
    agent: &AgentBin,
    dir: &Path,
    what: &str,
    checks: &mut Checks,
    check: impl FnOnce(&Value, &mut Checks),
) -> anyhow::Result<AgentRun> {
    let m = run_measured(
        &mut agent_command(
            &agent.path,
            dir,
            &["sync", "--json"],
            agent.wrapper.as_deref(),
        ),
        None,
    )?;
    checks.check(
        &format!("{what}_exit"),
        m.success,
        format!("{}: {}", m.status, m.stderr.trim()),
    );
    let report = first_json_object(&m.stdout);
    check(&report, checks);
    let peak_mb = round(m.peak_rss_kib as f64 / 1024.0, 1);
    progress(format!(
        "  `fieldsync sync` ({what}): peak RSS {peak_mb} MB, {:.3} s",
        m.wall.as_secs_f64()
    ));
    let mut o = Obj::new();
    o.put("peak_rss_mb", peak_mb)
        .put("wall_s", secs(m.wall))
        .put("rss_samples", m.samples)
        .obj("rss_profile", m.rss_profile())
        .put("report", report);
    Ok(AgentRun {
        peak_mb,
        wall: m.wall,
        obj: o,
    })
}

/// The first JSON object in `text` (a wrapper such as heaptrack may print around it).
fn first_json_object(text: &str) -> Value {
    let Some(at) = text.find('{') else {
        return Value::Null;
    };
    serde_json::Deserializer::from_str(&text[at..])
        .into_iter::<Value>()
        .next()
        .and_then(Result::ok)
        .unwrap_or(Value::Null)
}

/// Enroll a fresh data dir with the real CLI, then measure `fieldsync sync`.
fn cli_engineer_sync(
    agent: &AgentBin,
    server: &BenchServer,
    dir: &Path,
    n: usize,
    checks: &mut Checks,
) -> anyhow::Result<AgentRun> {
    let url = server.url();
    let ca = server.ca_path.to_string_lossy().into_owned();
    let enroll = run_measured(
        &mut agent_command(
            &agent.path,
            dir,
            &[
                "enroll",
                "--server",
                &url,
                "--ca-cert",
                &ca,
                "--user",
                ENGINEER.0,
                "--password-stdin",
                "--device-name",
                "bench-eve-cli",
            ],
            None,
        ),
        Some(ENGINEER.1),
    )?;
    anyhow::ensure!(
        enroll.success,
        "fieldsync enroll failed ({}): {}",
        enroll.status,
        enroll.stderr.trim()
    );
    agent_sync_measured(agent, dir, "cli_engineer_sync", checks, |r, c| {
        c.eq(
            "cli_engineer_sync_pulled",
            r["pulled"].as_u64(),
            Some(n as u64),
        );
        c.eq(
            "cli_engineer_sync_in_sync",
            r["in_sync"].as_bool(),
            Some(true),
        );
    })
}

/// A dispatcher store with `n` pending creates (made in-process), pushed by the real CLI.
fn cli_dispatcher_push(
    rt: &tokio::runtime::Runtime,
    agent: &AgentBin,
    server: &BenchServer,
    dir: &Path,
    n: usize,
    already_on_server: usize,
    checks: &mut Checks,
) -> anyhow::Result<AgentRun> {
    let cfg = Config::default();
    let mut store = rt.block_on(enroll(dir, server, DISPATCHER, "bench-dana-cli", &cfg))?;
    let mut rng = StdRng::seed_from_u64(SEED ^ 1);
    record_creates(&mut store, n, ENGINEER2.0, &mut rng)?;
    drop(store);
    agent_sync_measured(agent, dir, "cli_dispatcher_push", checks, |r, c| {
        c.eq(
            "cli_dispatcher_push_pushed",
            r["pushed"].as_u64(),
            Some(n as u64),
        );
        c.eq(
            "cli_dispatcher_push_rejected",
            r["rejected"].as_u64(),
            Some(0),
        );
        c.eq(
            "cli_dispatcher_push_pulled",
            r["pulled"].as_u64(),
            Some((n + already_on_server) as u64),
        );
        c.eq(
            "cli_dispatcher_push_in_sync",
            r["in_sync"].as_bool(),
            Some(true),
        );
    })
}

// ----- the server's store alone -----

/// The same workload straight into `fieldsync_server::Store`: no HTTP, TLS, JSON or agent.
fn store_only(base: &Path, n: usize, batch: usize, checks: &mut Checks) -> anyhow::Result<Obj> {
    progress(format!(
        "run store_only: {n} creates and {n} edits straight into the server's SQLite store"
    ));
    let dir = base.join("store-only-server");
    let store = fieldsync_server::open_store(&dir)?;
    // Nobody logs in here, so the password hashes need not be real.
    store.add_user(DISPATCHER.0, Role::Dispatcher, "unused", now_ms())?;
    store.add_user(ENGINEER.0, Role::Engineer, "unused", now_ms())?;
    let dev = store.enroll_device(
        DISPATCHER.0,
        "bench-store-only",
        "unused-token-hash",
        now_ms(),
    )?;
    let actor = Actor {
        user: DISPATCHER.0.into(),
        role: Role::Dispatcher,
        device: Some(dev),
    };
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut clock = HlcClock::new(Hlc(0));
    let creates: Vec<Op> = (1..=n as u64)
        .map(|seq| {
            let id = order_id(&mut rng);
            Op {
                seq,
                kind: EntityKind::WorkOrder,
                id,
                hlc: clock.tick(now_ms()),
                op: OpKind::Create,
                fields: create_fields(&mut rng, ENGINEER.0),
                base: BTreeMap::new(),
            }
        })
        .collect();
    let edits: Vec<Op> = creates
        .iter()
        .map(|c| {
            let fields = edit_fields(&mut rng);
            let ver = c.version(dev);
            Op {
                seq: c.seq + n as u64,
                kind: EntityKind::WorkOrder,
                id: c.id.clone(),
                hlc: clock.tick(now_ms()),
                op: OpKind::Set,
                base: fields.keys().map(|f| (f.clone(), ver)).collect(),
                fields,
            }
        })
        .collect();

    let chars: usize = edits
        .iter()
        .map(|op| op.fields["description"].as_str().map_or(0, str::len))
        .sum();
    let mut o = Obj::new();
    o.put("push_batch_ops_max", batch).put(
        "edit_description_chars_mean",
        round(chars as f64 / n as f64, 1),
    );
    for (name, ops) in [("creates", &creates), ("edits", &edits)] {
        // What the HTTP handler hands the store: each op with the text it arrived as.
        let received: Vec<ReceivedOp> = ops.iter().cloned().map(ReceivedOp::encode).collect();
        let mut per_batch = Vec::new();
        let mut rejected = 0;
        let cpu = harness::thread_cpu();
        let start = Instant::now();
        for chunk in received.chunks(batch) {
            let t = Instant::now();
            let resp = store.push_received(&actor, dev, chunk, now_ms())?;
            per_batch.push(t.elapsed());
            rejected += resp.rejected.len();
        }
        let took = start.elapsed();
        let cpu = harness::thread_cpu().saturating_sub(cpu);
        checks.eq(&format!("store_only_{name}_rejected"), rejected, 0);
        let (json_bytes, gzip_bytes) = encoded_size(ops, batch)?;
        let mut s = Obj::new();
        s.put("total_s", secs(took))
            .put("cpu_s", secs(cpu))
            .obj("per_batch", spread_ms(&per_batch))
            .put(
                "push_body_json_bytes_per_op",
                round(json_bytes as f64 / n as f64, 1),
            )
            .put(
                "push_body_gzip_bytes_per_op",
                round(gzip_bytes as f64 / n as f64, 1),
            );
        o.obj(name, s);
    }
    let eve = Actor {
        user: ENGINEER.0.into(),
        role: Role::Engineer,
        device: None,
    };
    let (mut cursor, mut pages, mut entities, mut body_bytes) = (0, 0, 0, 0);
    let mut encode = Duration::ZERO;
    let start = Instant::now();
    loop {
        let page = store.pull(
            &eve,
            cursor,
            fieldsync_proto::limits::PULL_PAGE_ENTITIES_MAX,
        )?;
        let t = Instant::now();
        body_bytes += serde_json::to_vec(&page)?.len();
        encode += t.elapsed();
        pages += 1;
        entities += page.entities.len();
        cursor = page.cursor;
        if !page.more {
            break;
        }
    }
    let took = start.elapsed();
    checks.eq("store_only_pull_entities", entities, n);
    let mut p = Obj::new();
    p.put("total_s", secs(took))
        .put("pages", pages)
        .put("json_encode_s", secs(encode))
        .put(
            "body_json_bytes_per_order",
            round(body_bytes as f64 / n as f64, 1),
        );
    o.obj("engineer_pull", p);
    Ok(o)
}

/// Bytes of the push request bodies for `ops` in batches, as JSON and gzipped the way the
/// agent's client does it (gzip level "fast").
fn encoded_size(ops: &[Op], batch: usize) -> anyhow::Result<(usize, usize)> {
    use std::io::Write;
    let (mut json_bytes, mut gzip_bytes) = (0, 0);
    for chunk in ops.chunks(batch) {
        let raw = serde_json::to_vec(&json!({ "ops": chunk }))?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&raw)?;
        json_bytes += raw.len();
        gzip_bytes += gz.finish()?.len();
    }
    Ok((json_bytes, gzip_bytes))
}

// ----- the whole benchmark -----

/// Run everything; returns the JSON report and whether every check passed.
pub fn run(args: &Args) -> anyhow::Result<(Obj, bool)> {
    let n = args.orders;
    anyhow::ensure!(n > 0, "--orders must be positive");
    let bin = agent_binary()?;
    let parent = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => std::env::temp_dir(),
    };
    let tmp = tempfile::Builder::new()
        .prefix("fieldsync-bench-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temp dir in {}", parent.display()))?;
    let base = tmp.path().to_owned();
    progress(format!("data dirs under {}", base.display()));
    // Like the agent's: the store on this thread, one worker for the network.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let mut checks = Checks::default();
    if let Some(runs) = args.store_only_runs {
        // For profilers (perf, callgrind): only the server store's part, without HTTP.
        let mut o = Obj::new();
        for i in 0..runs {
            let run = store_only(
                &base.join(format!("run-{i}")),
                n,
                Config::default().push_batch_ops_max,
                &mut checks,
            )?;
            o.obj(&format!("run_{i}"), run);
        }
        return Ok((o, checks.all_ok()));
    }

    // 1-2. Headline push figures; the same server then serves the pulls.
    let (main, server) = push_run(
        &rt,
        &base,
        "main",
        n,
        Config::default().push_batch_ops_max,
        false,
        &mut checks,
    )?;

    // 3. A fresh engineer device pulls the orders.
    progress(format!("engineer devices pull {n} orders"));
    let (pull_took, fresh) = fresh_engineer_sync(
        &rt,
        &server,
        &base.join("eve-1"),
        n,
        &main.descriptions,
        &mut checks,
    )?;
    let (pages, pull_parts) =
        engineer_pull_breakdown(&rt, &server, &base.join("eve-2"), n, &mut checks)?;

    // 4. The real agent binary's memory.
    let agent = AgentBin {
        path: bin.clone(),
        wrapper: args.agent_wrapper.clone(),
    };
    progress("real `fieldsync` binary: memory while syncing");
    let cli_pull = cli_engineer_sync(&agent, &server, &base.join("eve-cli"), n, &mut checks)?;
    let cli_push = cli_dispatcher_push(
        &rt,
        &agent,
        &server,
        &base.join("dana-cli"),
        n,
        n,
        &mut checks,
    )?;
    server.stop()?;

    // Wire bytes, then the larger batch.
    let (wire, server) = push_run(
        &rt,
        &base,
        "wire",
        n,
        Config::default().push_batch_ops_max,
        true,
        &mut checks,
    )?;
    server.stop()?;
    let (b1000, server) = push_run(
        &rt,
        &base,
        "batch1000",
        n,
        fieldsync_proto::limits::PUSH_BATCH_OPS_MAX,
        false,
        &mut checks,
    )?;
    server.stop()?;
    let store_profile = store_only(&base, n, Config::default().push_batch_ops_max, &mut checks)?;

    // The report.
    let per = |bytes: u64| round(bytes as f64 / n as f64, 1);
    let (eu, ed) = wire.wire_edits.unwrap_or_default();
    let (cu, cd) = wire.wire_creates.unwrap_or_default();
    let push_creates = main.creates.total.as_secs_f64();
    let push_edits = main.edits.total.as_secs_f64();
    let edit_bytes = per(eu + ed);

    let mut o = Obj::new();
    o.put("bench", "sync").put("orders", n);
    o.figure(
        "push_10k_creates_s",
        secs(main.creates.total),
        PUSH_CREATES_S_TARGET,
    )
    .figure(
        "push_10k_creates_batch1000_s",
        secs(b1000.creates.total),
        PUSH_CREATES_S_TARGET,
    )
    .figure(
        "push_10k_edits_s",
        secs(main.edits.total),
        PUSH_EDITS_S_TARGET,
    )
    .figure(
        "push_10k_edits_batch1000_s",
        secs(b1000.edits.total),
        PUSH_EDITS_S_TARGET,
    )
    .figure(
        "edit_wire_bytes_per_edit",
        edit_bytes,
        EDIT_WIRE_BYTES_TARGET,
    )
    .put("edit_wire_up_bytes_per_edit", per(eu))
    .put("create_wire_bytes_per_create", per(cu + cd))
    .put("create_wire_up_bytes_per_create", per(cu))
    .figure(
        "pull_10k_orders_fresh_device_s",
        secs(pull_took),
        PULL_FRESH_S_TARGET,
    )
    .put("pull_entities", n)
    .put("pull_pages", pages)
    .figure("agent_peak_rss_mb", cli_pull.peak_mb, AGENT_RSS_MB_TARGET)
    .put("agent_sync_wall_s", secs(cli_pull.wall))
    .figure(
        "agent_peak_rss_dispatcher_push_mb",
        cli_push.peak_mb,
        AGENT_RSS_MB_TARGET,
    )
    .put("agent_dispatcher_push_sync_wall_s", secs(cli_push.wall));

    let met = [
        ("push_10k_creates", push_creates <= PUSH_CREATES_S_TARGET),
        (
            "push_10k_creates_batch1000",
            b1000.creates.total.as_secs_f64() <= PUSH_CREATES_S_TARGET,
        ),
        ("push_10k_edits", push_edits <= PUSH_EDITS_S_TARGET),
        (
            "push_10k_edits_batch1000",
            b1000.edits.total.as_secs_f64() <= PUSH_EDITS_S_TARGET,
        ),
        (
            "edit_wire_bytes_per_edit",
            edit_bytes <= EDIT_WIRE_BYTES_TARGET,
        ),
        (
            "pull_10k_orders_fresh_device",
            pull_took.as_secs_f64() <= PULL_FRESH_S_TARGET,
        ),
        ("agent_peak_rss", cli_pull.peak_mb <= AGENT_RSS_MB_TARGET),
        (
            "agent_peak_rss_dispatcher_push",
            cli_push.peak_mb <= AGENT_RSS_MB_TARGET,
        ),
    ];
    let mut targets = Obj::new();
    for (k, v) in met {
        targets.put(k, v);
    }
    o.put("all_targets_met", met.iter().all(|(_, v)| *v))
        .obj("targets_met", targets);

    let ok = checks.all_ok();
    o.put("checks_ok", ok);
    if !ok {
        o.put("checks_failed", checks.failed());
    }
    o.obj("checks", checks.to_obj());

    let mut b = Obj::new();
    for run in [main, wire, b1000] {
        let mut r = run.obj;
        r.put("batch", run.batch);
        b.obj(&format!("push_run_{}", run.label), r);
    }
    let mut pull = Obj::new();
    pull.obj("fresh_device_sync_once", fresh)
        .obj("fresh_device_page_by_page", pull_parts);
    b.obj("engineer_pull", pull)
        .obj("agent_cli_engineer_sync", cli_pull.obj)
        .obj("agent_cli_dispatcher_push", cli_push.obj)
        .obj("server_store_only", store_profile);
    o.obj("breakdown", b);

    let mut s = Obj::new();
    s.put("process", "in-process fieldsync_server::run on its own multi-thread tokio runtime")
        .put("runtime_worker_threads", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
        .put("transport", "HTTPS (rustls, self-signed CA), HTTP/2 via ALPN, gzip request and response bodies, loopback")
        .put("sqlite_journal_mode", "WAL")
        .put("sqlite_synchronous", "FULL")
        .put("push_batch_ops_max", fieldsync_proto::limits::PUSH_BATCH_OPS_MAX)
        .put("pull_page_entities_max", fieldsync_proto::limits::PULL_PAGE_ENTITIES_MAX);
    o.obj("server", s);
    let mut a = Obj::new();
    a.put(
        "in_process_runtime",
        "current_thread (as the fieldsync CLI)",
    )
    .put(
        "sqlite_synchronous_timed",
        "FULL (setup bulk loads relax it, then the store is reopened)",
    )
    .put(
        "push_batch_ops_max_default",
        Config::default().push_batch_ops_max,
    )
    .put("binary", bin.display().to_string());
    o.obj("agent", a);
    o.obj("machine", harness::machine(&base));

    let mut notes = vec![
        "push_*_s: the push half of sync_once (sync::push_pending: pipelined batches until the outbox is empty), timed in-process; the pull-back that sync_once would do next is reported separately (breakdown.push_run_*.dispatcher_sync_pull_back_*)".to_owned(),
        "pull_10k_orders_fresh_device_s: the whole first sync_once of a fresh engineer device (pull pages, digest check, note_sync)".to_owned(),
        "edit_wire_*: bytes through a TCP relay in the 'wire' run (same workload as 'main'), TLS end to end".to_owned(),
        "agent_peak_rss_*: VmHWM of the real fieldsync process (`fieldsync sync --json`), sampled every 2 ms; the dispatcher run pushes n creates and pulls back everything on the server".to_owned(),
        "each figure is one run: push times vary by about +-10% from run to run, so compare several runs before calling a target met or missed".to_owned(),
    ];
    if n != ORDERS_DEFAULT {
        notes.push(format!(
            "--orders {n}: the *_10k_* names and the targets are for {ORDERS_DEFAULT} orders"
        ));
    }
    o.put("notes", notes);

    if args.keep {
        let kept = tmp.keep();
        progress(format!("kept data dirs in {}", kept.display()));
    }
    Ok((o, ok))
}
