//! Deterministic simulation: a dispatcher and a few engineers' devices and the server, on a
//! virtual network and a virtual clock, with the real stores underneath.
//!
//! - Devices run the agent's real SQLite `Store` (on tmpfs when there is one); the server
//!   runs the real `SqliteStore`, called directly (`push`, `pull`, `digest`,
//!   `server_write`) instead of over HTTP. Requests and responses cross the virtual network
//!   as the JSON of proto's wire types, so decoding is exercised as on the wire.
//! - Each device drives a sync round step by step, mirroring `agent::sync::sync_once`:
//!   hello (the server's epoch and how far it has our ops), push the outbox in batches
//!   (the next batch goes out before the previous ack is folded, as the agent pipelines
//!   them), pull every page, then compare digests.
//! - Faults: dropped, duplicated and reordered messages, request timeouts (a lost ack),
//!   partitions and heals, device crashes at any step (the `Store` is dropped and reopened
//!   from its file, so only committed transactions survive; one crash point sits between
//!   receiving a response and folding it), server crashes before and after committing a
//!   request, and device clocks skewed by up to ±24 h that jump.
//! - At quiescence (everything healed, clocks fixed, every device synced until nothing
//!   moves) `check` asserts the promises: see its module docs.
//!
//! One seed names one run: all randomness comes from one `SimRng`, time is virtual, and
//! nothing iterates a hash map to decide anything.

pub mod check;
mod device;
pub mod rng;
mod server;
mod workload;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use fieldsync_agent::store::Clock;
use fieldsync_proto::limits::CLOCK_SKEW_MS_MAX;
use fieldsync_proto::Role;
use serde::Serialize;

use self::device::Device;
use self::rng::SimRng;
use self::server::ServerNode;

/// The command that replays one seed.
pub fn replay_command(seed: u64) -> String {
    format!("SEED={seed} cargo test -p fieldsync-tests --test sim sim")
}

/// Events (network deliveries, user actions, faults) in one run, at most. A run ends
/// earlier once its user actions are done; this only stops a run whose network keeps
/// itself busy forever.
const STEPS_MAX: usize = 2_000;
/// Full sync passes over every device at quiescence before "did not converge".
const QUIESCE_PASSES_MAX: usize = 8;
/// Messages one synchronous round may exchange at quiescence before it counts as stuck.
const ROUND_MESSAGES_MAX: usize = 500;
/// Trace lines printed with a failure (the end of the run, where it went wrong).
const TRACE_TAIL_LINES: usize = 150;
/// Characters of a response body shown in the trace.
const SUMMARY_CHARS_MAX: usize = 160;
/// Virtual start of time: mid-2025, so timestamps look like real ones.
const EPOCH_MS: u64 = 1_750_000_000_000;
const DAY_MS: u64 = 24 * 3600 * 1000;

/// What varies from seed to seed besides the events themselves.
#[derive(Clone, Debug, Serialize)]
pub struct Params {
    /// No faults and right clocks: plain interleavings.
    pub calm: bool,
    pub engineers: usize,
    pub user_actions: usize,
    pub push_batch_ops_max: usize,
    pub pull_page_entities_max: usize,
    /// Per mille, per delivery.
    pub drop: u32,
    pub duplicate: u32,
    /// Per mille, per response a device receives: crash before handling it.
    pub device_crash_on_receive: u32,
    /// Per mille, per step inside a response's handling (after sending the next batch,
    /// before folding the ack).
    pub device_crash_mid_fold: u32,
    /// Per mille, per request the server receives: crash before / after committing it.
    pub server_crash: u32,
    /// Per mille, per pull: a push commits between the pull reading the server clock and
    /// reading its rows (threads interleaving inside the real server).
    pub pull_race: u32,
    /// Weights of standalone fault events.
    pub crash_weight: u32,
    pub partition_weight: u32,
    pub clock_weight: u32,
    pub backup_weight: u32,
    pub restore_weight: u32,
}

impl Params {
    fn draw(rng: &mut SimRng) -> Params {
        // A quarter of the seeds run calm, so plain interleavings get covered too.
        let calm = rng.chance(250);
        let f = |rng: &mut SimRng, max: u64| if calm { 0 } else { rng.range(0, max) as u32 };
        Params {
            calm,
            engineers: rng.range(2, 3) as usize,
            user_actions: rng.range(20, 60) as usize,
            push_batch_ops_max: rng.range(1, 4) as usize,
            pull_page_entities_max: rng.range(1, 6) as usize,
            drop: f(rng, 150),
            duplicate: f(rng, 100),
            device_crash_on_receive: f(rng, 50),
            device_crash_mid_fold: f(rng, 80),
            server_crash: f(rng, 30),
            pull_race: f(rng, 1000),
            crash_weight: f(rng, 4),
            partition_weight: f(rng, 4),
            clock_weight: f(rng, 3),
            backup_weight: f(rng, 2),
            restore_weight: f(rng, 1),
        }
    }
}

/// Faults injected in one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Faults {
    pub dropped: u64,
    pub duplicated: u64,
    pub timeouts: u64,
    pub partitions: u64,
    pub device_crashes: u64,
    pub server_crashes: u64,
    pub clock_jumps: u64,
    pub pull_races: u64,
    pub restores: u64,
}

impl Faults {
    pub fn total(&self) -> u64 {
        self.dropped
            + self.duplicated
            + self.timeouts
            + self.partitions
            + self.device_crashes
            + self.server_crashes
            + self.clock_jumps
            + self.pull_races
            + self.restores
    }

    pub fn add(&mut self, o: &Faults) {
        self.dropped += o.dropped;
        self.duplicated += o.duplicated;
        self.timeouts += o.timeouts;
        self.partitions += o.partitions;
        self.device_crashes += o.device_crashes;
        self.server_crashes += o.server_crashes;
        self.clock_jumps += o.clock_jumps;
        self.pull_races += o.pull_races;
        self.restores += o.restores;
    }
}

/// What one passing seed did.
#[derive(Clone, Debug, Serialize)]
pub struct SeedReport {
    pub seed: u64,
    pub params: Params,
    pub steps: usize,
    /// Ops devices recorded (reported saved to the user), and console writes.
    pub device_ops: u64,
    pub console_writes: u64,
    pub refused_by_server: u64,
    pub conflicts: u64,
    pub faults: Faults,
}

/// A seed that broke a promise.
#[derive(Debug)]
pub struct SimFailure {
    pub seed: u64,
    pub violations: Vec<String>,
    pub trace: Vec<String>,
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "simulation seed {} failed:", self.seed)?;
        for v in &self.violations {
            writeln!(f, "  - {v}")?;
        }
        writeln!(
            f,
            "(ops are named device/seq by device id: 0 is the console, n is dev{{n-1}})"
        )?;
        let skip = self.trace.len().saturating_sub(TRACE_TAIL_LINES);
        writeln!(
            f,
            "trace (last {} of {} events):",
            self.trace.len() - skip,
            self.trace.len()
        )?;
        for line in &self.trace[skip..] {
            writeln!(f, "  {line}")?;
        }
        writeln!(f, "simulation seed {} failed", self.seed)?;
        write!(f, "replay: {}", replay_command(self.seed))
    }
}

impl std::error::Error for SimFailure {}

/// A device's wall clock: the true virtual time plus the device's skew, set by the world
/// before anything on the device reads it.
#[derive(Debug, Default)]
pub struct SimClock {
    now: AtomicU64,
}

impl SimClock {
    fn set(&self, ms: u64) {
        self.now.store(ms, Ordering::Relaxed);
    }
}

impl Clock for SimClock {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }
}

/// What a message carries.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Payload {
    Hello,
    /// A `PushRequest` as JSON.
    Push(String),
    Pull {
        cursor: u64,
        limit: usize,
    },
    Digest,
    /// The server's answer: a wire body as JSON, or an HTTP error.
    Response(Result<String, WireError>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct WireError {
    status: u16,
    code: String,
}

#[derive(Clone, Debug)]
struct Msg {
    device: usize,
    to_server: bool,
    /// The request this is, or answers.
    req: u64,
    /// The device incarnation that sent the request: a restarted device ignores answers
    /// meant for the process that crashed.
    incarnation: u64,
    payload: Payload,
}

/// The run: virtual time, network, server, devices, and what was observed.
pub(crate) struct World {
    seed: u64,
    rng: SimRng,
    params: Params,
    /// True virtual time (the server's clock is right).
    now: u64,
    /// Kept so the stores' files outlive the run.
    _dir: tempfile::TempDir,
    server: ServerNode,
    devices: Vec<Device>,
    net: Vec<Msg>,
    next_req: u64,
    faults_on: bool,
    faults: Faults,
    violations: Vec<String>,
    trace: Vec<String>,
    steps: usize,
}

/// A temp dir on tmpfs where there is one: the stores sync on every commit, which is
/// free there and costs a real disk flush elsewhere.
fn temp_dir() -> std::io::Result<tempfile::TempDir> {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::Builder::new()
            .prefix("fieldsync-sim-")
            .tempdir_in(&shm)
        {
            return Ok(d);
        }
    }
    tempfile::Builder::new().prefix("fieldsync-sim-").tempdir()
}

/// Run one seed to quiescence and check every promise.
pub fn run_seed(seed: u64) -> Result<SeedReport, SimFailure> {
    let mut rng = SimRng::new(seed);
    let params = Params::draw(&mut rng);
    let dir = temp_dir().map_err(|e| SimFailure {
        seed,
        violations: vec![format!("cannot make a temp dir: {e}")],
        trace: vec![],
    })?;
    let mut world = World::new(seed, rng, params, dir);
    world.run();
    if world.violations.is_empty() {
        Ok(world.report())
    } else {
        Err(SimFailure {
            seed,
            violations: std::mem::take(&mut world.violations),
            trace: std::mem::take(&mut world.trace),
        })
    }
}

impl World {
    fn new(seed: u64, mut rng: SimRng, params: Params, dir: tempfile::TempDir) -> World {
        let now = EPOCH_MS + rng.below(DAY_MS * 365);
        let server = ServerNode::new(dir.path().join("server"));
        let mut world = World {
            seed,
            rng,
            params,
            now,
            server,
            devices: Vec::new(),
            net: Vec::new(),
            next_req: 0,
            faults_on: true,
            faults: Faults::default(),
            violations: Vec::new(),
            trace: Vec::new(),
            steps: 0,
            _dir: dir,
        };
        world.setup();
        world
    }

    fn trace(&mut self, line: impl Into<String>) {
        let line = line.into();
        if std::env::var_os("SIM_TRACE").is_some() {
            eprintln!("[{}] {line}", self.seed);
        }
        self.trace
            .push(format!("t+{}s {line}", (self.now - EPOCH_MS) / 1000));
    }

    fn violation(&mut self, what: impl Into<String>) {
        let what = what.into();
        self.trace(format!("VIOLATION: {what}"));
        self.violations.push(what);
    }

    /// Users, devices, and a few customers and orders the dispatcher set up beforehand.
    fn setup(&mut self) {
        let mut users = vec![(workload::DISPATCHER.to_owned(), Role::Dispatcher)];
        for name in workload::ENGINEERS.iter().take(self.params.engineers) {
            users.push(((*name).to_owned(), Role::Engineer));
        }
        if let Err(e) = self.server.open() {
            self.violation(format!("server store does not open: {e}"));
            return;
        }
        for (i, (user, role)) in users.iter().enumerate() {
            let device_id = match self.server.add_device(user, *role, self.now) {
                Ok(id) => id,
                Err(e) => {
                    self.violation(format!("enrolling {user}: {e}"));
                    return;
                }
            };
            let dir = self._dir.path().join(format!("dev{i}"));
            let mut dev = Device::new(i, user, *role, device_id, dir);
            if !self.params.calm {
                dev.skew_ms = self.draw_skew(false);
            }
            dev.clock.set(self.now.saturating_add_signed(dev.skew_ms));
            self.devices.push(dev);
        }
        for i in 0..self.devices.len() {
            let server_time = self.now;
            let dev = &mut self.devices[i];
            if let Err(e) = dev.open().and_then(|()| dev.enroll(server_time)) {
                self.violation(format!("device {i} does not open: {e}"));
                return;
            }
        }
        workload::seed_server(self);
    }

    fn report(&self) -> SeedReport {
        SeedReport {
            seed: self.seed,
            params: self.params.clone(),
            steps: self.steps,
            device_ops: self.devices.iter().map(|d| d.recorded.len() as u64).sum(),
            console_writes: self.server.console_writes.len() as u64,
            refused_by_server: self.server.refused_count(),
            conflicts: self.server.conflict_count(),
            faults: self.faults,
        }
    }

    fn set_clocks(&self) {
        for d in &self.devices {
            d.clock.set(self.now.saturating_add_signed(d.skew_ms));
        }
    }

    fn run(&mut self) {
        if !self.violations.is_empty() {
            return;
        }
        let mut actions = 0;
        while actions < self.params.user_actions && self.steps < STEPS_MAX {
            self.steps += 1;
            // Mostly seconds between events, now and then a long pause (a night offline).
            self.now += if self.rng.chance(10) {
                self.rng.range(3_600_000, 16 * 3_600_000)
            } else {
                self.rng.range(0, 30_000)
            };
            self.set_clocks();
            if self.step() {
                actions += 1;
            }
            if !self.violations.is_empty() {
                return;
            }
        }
        self.quiesce();
        if self.violations.is_empty() {
            for v in check::check(self) {
                self.violation(v);
            }
        }
    }

    /// One event. Returns whether it was a user action.
    fn step(&mut self) -> bool {
        let p = &self.params;
        let any_idle = self.devices.iter().any(|d| d.can_start_round());
        let any_waiting = self.devices.iter().any(|d| d.waiting());
        let any_down = self.devices.iter().any(|d| d.store.is_none());
        let any_cut = self.devices.iter().any(|d| d.partitioned);
        let weights = [
            if self.net.is_empty() { 0 } else { 40 }, // deliver
            20,                                       // user action
            if any_idle { 14 } else { 0 },            // start a sync round
            4,                                        // console write
            if any_waiting { 3 } else { 0 },          // request timeout
            p.crash_weight,                           // device crash
            if any_down { 12 } else { 0 },            // device restart
            p.crash_weight / 2,                       // server crash
            if self.server.is_up() { 0 } else { 12 }, // server restart
            p.partition_weight,                       // partition
            if any_cut { 6 } else { 0 },              // heal
            p.clock_weight,                           // clock jump
            if self.server.is_up() {
                p.backup_weight
            } else {
                0
            }, // backup
            if self.server.has_backup() {
                p.restore_weight
            } else {
                0
            }, // restore
        ];
        match self.rng.weighted(&weights) {
            0 => self.deliver_random(),
            1 => {
                let d = self.rng.index(self.devices.len());
                workload::user_action(self, d);
                return true;
            }
            2 => {
                let idle: Vec<usize> = (0..self.devices.len())
                    .filter(|&i| self.devices[i].can_start_round())
                    .collect();
                let d = *self.rng.pick(&idle).expect("an idle device");
                self.start_round(d);
            }
            3 => workload::console_write(self),
            4 => {
                let waiting: Vec<usize> = (0..self.devices.len())
                    .filter(|&i| self.devices[i].waiting())
                    .collect();
                let d = *self.rng.pick(&waiting).expect("a waiting device");
                self.faults.timeouts += 1;
                self.trace(format!("dev{d}: request timed out, round abandoned"));
                self.devices[d].end_round();
            }
            5 => {
                let d = self.rng.index(self.devices.len());
                if self.devices[d].store.is_some() {
                    self.crash_device(d, "at rest");
                }
            }
            6 => {
                let down: Vec<usize> = (0..self.devices.len())
                    .filter(|&i| self.devices[i].store.is_none())
                    .collect();
                let d = *self.rng.pick(&down).expect("a crashed device");
                self.restart_device(d);
            }
            7 => {
                if self.server.is_up() {
                    self.crash_server("at rest");
                }
            }
            8 => self.restart_server(),
            9 => {
                let d = self.rng.index(self.devices.len());
                if !self.devices[d].partitioned {
                    self.faults.partitions += 1;
                    self.devices[d].partitioned = true;
                    self.trace(format!("dev{d}: partitioned from the server"));
                }
            }
            10 => {
                for d in &mut self.devices {
                    d.partitioned = false;
                }
                self.trace("partitions healed");
            }
            11 => self.jump_clock(),
            12 => match self.server.backup() {
                Ok(f) => self.trace(format!("server: backed up to {}", f.display())),
                Err(e) => self.violation(format!("backup failed: {e}")),
            },
            _ => self.restore(),
        }
        false
    }

    /// The server is stopped and restored from one of its backups: ops it acknowledged
    /// since are gone from it, and the devices must notice and send them again.
    fn restore(&mut self) {
        let i = self.rng.index(self.server.backups());
        let now = self.now;
        match self.server.restore(i, now) {
            Ok(f) => {
                self.faults.restores += 1;
                for d in &mut self.devices {
                    d.expect_rollback = true;
                }
                self.trace(format!("server: RESTORED from {}", f.display()));
                self.restart_server();
            }
            Err(e) => self.violation(format!("restore failed: {e}")),
        }
    }

    /// A device clock's error: ordinary drift of seconds, a few minutes ahead (still
    /// within the server's bound), half an hour behind, or with `wild`, an hour or a day
    /// either way.
    fn draw_skew(&mut self, wild: bool) -> i64 {
        const MINUTE: i64 = 60_000;
        let within_bound = (CLOCK_SKEW_MS_MAX as i64 / MINUTE - 1).max(0) as u64;
        match self.rng.below(if wild { 6 } else { 3 }) {
            0 => self.rng.range(0, 180_000) as i64 - 90_000,
            1 => self.rng.range(0, within_bound) as i64 * MINUTE,
            2 => -(self.rng.range(0, 30) as i64) * MINUTE,
            3 => 3_600_000 * if self.rng.chance(500) { 1 } else { -1 },
            4 => DAY_MS as i64,
            _ => -(DAY_MS as i64),
        }
    }

    fn jump_clock(&mut self) {
        let d = self.rng.index(self.devices.len());
        let minute = 60_000i64;
        let skew = self.draw_skew(true);
        self.faults.clock_jumps += 1;
        self.devices[d].skew_ms = skew;
        self.set_clocks();
        self.trace(format!("dev{d}: clock jumps to {} min off", skew / minute));
    }

    fn crash_device(&mut self, d: usize, when: &str) {
        self.faults.device_crashes += 1;
        self.devices[d].crash();
        self.trace(format!("dev{d}: CRASH {when}"));
    }

    fn restart_device(&mut self, d: usize) {
        match self.devices[d].open() {
            Ok(()) => self.trace(format!("dev{d}: restarted")),
            Err(e) => self.violation(format!("dev{d} does not reopen after a crash: {e}")),
        }
    }

    fn crash_server(&mut self, when: &str) {
        self.faults.server_crashes += 1;
        self.server.crash();
        self.trace(format!("server: CRASH {when}"));
    }

    fn restart_server(&mut self) {
        match self.server.open() {
            Ok(()) => self.trace("server: restarted"),
            Err(e) => self.violation(format!("server does not reopen after a crash: {e}")),
        }
    }

    fn send(&mut self, msg: Msg) {
        self.net.push(msg);
    }

    fn new_req(&mut self) -> u64 {
        self.next_req += 1;
        self.next_req
    }

    /// Deliver one message, picked at random from everything in flight: that is the
    /// reordering. Faults apply on the way.
    fn deliver_random(&mut self) {
        let i = self.rng.index(self.net.len());
        let msg = self.net.swap_remove(i);
        if self.devices[msg.device].partitioned {
            self.faults.dropped += 1;
            self.trace(format!("net: dropped (partition) {}", describe(&msg)));
            return;
        }
        if self.rng.chance(self.params.drop) {
            self.faults.dropped += 1;
            self.trace(format!("net: dropped {}", describe(&msg)));
            return;
        }
        if self.rng.chance(self.params.duplicate) {
            self.faults.duplicated += 1;
            self.trace(format!("net: duplicated {}", describe(&msg)));
            self.net.push(msg.clone());
        }
        self.deliver(msg);
    }

    fn deliver(&mut self, msg: Msg) {
        if msg.to_server {
            self.server_receive(msg);
        } else {
            self.device_receive(msg);
        }
    }

    fn server_receive(&mut self, msg: Msg) {
        if !self.server.is_up() {
            self.trace(format!("server down, refused {}", describe(&msg)));
            return;
        }
        if self.faults_on && self.rng.chance(self.params.server_crash) {
            self.crash_server(&format!("before handling {}", describe(&msg)));
            return;
        }
        let stale_hlc = match &msg.payload {
            Payload::Pull { .. } if self.faults_on && self.rng.chance(self.params.pull_race) => {
                self.push_during_pull()
            }
            _ => None,
        };
        if !self.server.is_up() {
            return;
        }
        let d = msg.device;
        let dev = &self.devices[d];
        let actor = dev.actor();
        let device_id = dev.device_id;
        let limit_max = self.params.pull_page_entities_max;
        let result = self.server.handle(
            &actor,
            device_id,
            &msg.payload,
            self.now,
            limit_max,
            stale_hlc,
        );
        let result = match result {
            Ok(r) => r,
            Err(e) => {
                self.violation(format!("server store failed on {}: {e}", describe(&msg)));
                return;
            }
        };
        self.trace(format!(
            "server: {} -> {}",
            describe(&msg),
            summarize(&result)
        ));
        if self.faults_on && self.rng.chance(self.params.server_crash) {
            self.crash_server("after committing, before answering");
            return;
        }
        self.send(Msg {
            device: d,
            to_server: false,
            req: msg.req,
            incarnation: msg.incarnation,
            payload: Payload::Response(result),
        });
    }

    /// The server handles requests on many threads. `pull` reads the newest timestamp
    /// for its page before its rows, so a write committing in between puts versions
    /// newer than the page's `hlc` into the page. Play that interleaving: take the clock,
    /// handle another device's push from the network (or a console write if none is in
    /// flight), then serve the pull with the clock taken before. Returns that clock.
    fn push_during_pull(&mut self) -> Option<fieldsync_proto::Hlc> {
        let before = match self.server.newest_hlc() {
            Ok(h) => h,
            Err(e) => {
                self.violation(format!("server clock: {e}"));
                return None;
            }
        };
        self.faults.pull_races += 1;
        let push = self
            .net
            .iter()
            .position(|m| m.to_server && matches!(m.payload, Payload::Push(_)));
        match push {
            Some(i) => {
                let push = self.net.remove(i);
                self.trace(format!(
                    "server: a pull read its clock, then {} commits before the pull reads its rows",
                    describe(&push)
                ));
                self.server_receive(push);
            }
            None => {
                self.trace("server: a pull read its clock, then a console write commits");
                workload::console_write(self);
            }
        }
        Some(before)
    }

    fn device_receive(&mut self, msg: Msg) {
        let d = msg.device;
        let dev = &self.devices[d];
        if dev.store.is_none()
            || dev.incarnation != msg.incarnation
            || dev.phase.req() != Some(msg.req)
        {
            self.trace(format!("dev{d}: ignored stale {}", describe(&msg)));
            return;
        }
        if self.faults_on && self.rng.chance(self.params.device_crash_on_receive) {
            self.crash_device(d, &format!("on receiving {}", describe(&msg)));
            return;
        }
        let Payload::Response(result) = msg.payload else {
            unreachable!("devices receive responses only");
        };
        self.on_response(d, result);
    }

    /// Quiescence: heal everything, fix the clocks, wait out timestamps stamped ahead,
    /// then sync every device with a perfect network until nothing moves.
    fn quiesce(&mut self) {
        self.faults_on = false;
        self.trace("=== quiescence: heal, fix clocks, sync until nothing moves ===");
        self.net.clear();
        if !self.server.is_up() {
            self.restart_server();
        }
        for d in 0..self.devices.len() {
            let dev = &mut self.devices[d];
            dev.partitioned = false;
            dev.skew_ms = 0;
            dev.end_round();
            if dev.store.is_none() {
                self.restart_device(d);
            }
        }
        if !self.violations.is_empty() {
            return;
        }
        // Ops stamped by a clock that ran ahead wait on their device until the server's
        // clock reaches them: a person fixing the clock does not re-stamp recorded work.
        let ahead = self
            .devices
            .iter()
            .filter_map(|d| d.hlc_millis())
            .max()
            .unwrap_or(0);
        if ahead > self.now + CLOCK_SKEW_MS_MAX {
            self.trace(format!(
                "waiting {} min for the server clock to reach stamps made ahead",
                (ahead - self.now) / 60_000
            ));
            self.now = ahead;
        }
        self.now += 60_000;
        self.set_clocks();
        let mut last = self.fingerprints();
        let mut waited_out_parking = false;
        for pass in 0..QUIESCE_PASSES_MAX {
            for d in 0..self.devices.len() {
                self.sync_round_now(d);
                if !self.violations.is_empty() {
                    return;
                }
            }
            self.now += 1_000;
            self.set_clocks();
            let now = self.fingerprints();
            let pending: u64 = now.iter().map(|f| f.0).sum();
            if now == last && pending == 0 {
                self.trace(format!("quiet after {} passes", pass + 1));
                return;
            }
            if now == last && self.server.backups() > 0 && !waited_out_parking {
                // Ops parked after a restore on what only a lost console write had made
                // wait for the window to close, then are refused like any other.
                self.trace("waiting out the parking window after the restores".to_owned());
                self.now += fieldsync_server::store::PARK_AFTER_RESTORE_MS + 60_000;
                self.set_clocks();
                waited_out_parking = true;
            }
            last = now;
        }
        let states: Vec<String> = self
            .fingerprints()
            .iter()
            .enumerate()
            .map(|(i, f)| format!("dev{i} pending {} cursor {}", f.0, f.1))
            .collect();
        self.violation(format!(
            "did not converge after {QUIESCE_PASSES_MAX} sync passes of every device: {}",
            states.join(", ")
        ));
    }

    /// (pending ops, cursor, digest) per device.
    fn fingerprints(&mut self) -> Vec<(u64, u64, String)> {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for d in &self.devices {
            match d.fingerprint() {
                Ok(f) => out.push(f),
                Err(e) => errors.push(format!("dev{}: reading the store: {e}", d.idx)),
            }
        }
        for e in errors {
            self.violation(e);
        }
        out
    }

    /// One whole round for device `d` with every message delivered at once, in order.
    fn sync_round_now(&mut self, d: usize) {
        self.start_round(d);
        let mut exchanged = 0;
        while self.devices[d].waiting() {
            exchanged += 1;
            if exchanged > ROUND_MESSAGES_MAX {
                self.violation(format!(
                    "dev{d}: a sync round exchanged over {ROUND_MESSAGES_MAX} messages"
                ));
                return;
            }
            let Some(i) = self.net.iter().position(|m| m.device == d) else {
                self.violation(format!("dev{d}: waits for an answer nothing will send"));
                return;
            };
            let msg = self.net.remove(i);
            self.deliver(msg);
            if !self.violations.is_empty() {
                return;
            }
        }
    }
}

fn describe(msg: &Msg) -> String {
    let what = match &msg.payload {
        Payload::Push(json) => {
            let seqs: Vec<u64> = serde_json::from_str::<fieldsync_proto::wire::PushRequest>(json)
                .map(|r| r.ops.iter().map(|o| o.seq).collect())
                .unwrap_or_default();
            format!("push {seqs:?}")
        }
        Payload::Pull { cursor, limit } => format!("pull from {cursor} (limit {limit})"),
        Payload::Hello => "hello".to_owned(),
        Payload::Digest => "digest".to_owned(),
        Payload::Response(Ok(_)) => "response".to_owned(),
        Payload::Response(Err(e)) => format!("error {} {}", e.status, e.code),
    };
    let dir = if msg.to_server { "->" } else { "<-" };
    format!("dev{} {dir} req {} {what}", msg.device, msg.req)
}

fn summarize(r: &Result<String, WireError>) -> String {
    match r {
        Ok(body) => match body.char_indices().nth(SUMMARY_CHARS_MAX) {
            Some((cut, _)) => format!("{}…", &body[..cut]),
            None => body.clone(),
        },
        Err(e) => format!("{} {}", e.status, e.code),
    }
}
