//! What every benchmark needs: an in-process server on its own runtime, the real agent
//! binary, peak-memory sampling of a child process, and a description of the machine.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use fieldsync_proto::Role;
use fieldsync_server::Settings;

use crate::report::{round, Obj};

pub const DISPATCHER: (&str, &str) = ("dana", "bench-dispatch-pass");
pub const ENGINEER: (&str, &str) = ("eve", "bench-field-pass");
pub const ENGINEER2: (&str, &str) = ("sam", "bench-field-pass-2");

/// How often a child's `/proc/PID/status` is read while it runs.
const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(2);

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `fieldsync_server::run` on a multi-thread runtime in its own thread, serving HTTPS on
/// `127.0.0.1:0` with a fresh CA and the bench users.
pub struct BenchServer {
    pub addr: SocketAddr,
    pub ca_path: PathBuf,
    pub ca_pem: Vec<u8>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl BenchServer {
    pub fn start(data_dir: &Path) -> anyhow::Result<BenchServer> {
        let ca_path =
            fieldsync_server::tls::init(data_dir, &["localhost".into(), "127.0.0.1".into()])
                .context("tls init")?;
        let ca_pem = std::fs::read(&ca_path)?;
        {
            let store = fieldsync_server::open_store(data_dir)?;
            for ((name, pass), role) in [
                (DISPATCHER, Role::Dispatcher),
                (ENGINEER, Role::Engineer),
                (ENGINEER2, Role::Engineer),
            ] {
                let hash = fieldsync_server::auth::hash_password(pass)?;
                store.add_user(name, role, &hash, now_ms())?;
            }
        }
        let settings = Settings {
            // Clients may keep idle connections open; do not wait for them at the end.
            shutdown_grace_ms: 200,
            ..Settings::default()
        };
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let dir = data_dir.to_owned();
        let thread = std::thread::Builder::new()
            .name("bench-server".into())
            .spawn(move || -> anyhow::Result<()> {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                    addr_tx.send(listener.local_addr()?)?;
                    fieldsync_server::run(listener, &dir, settings, async {
                        let _ = stop_rx.await;
                    })
                    .await
                })
            })?;
        let addr = match addr_rx.recv() {
            Ok(a) => a,
            Err(_) => {
                let r = thread.join();
                anyhow::bail!("the server thread ended before listening: {r:?}");
            }
        };
        Ok(BenchServer {
            addr,
            ca_path,
            ca_pem,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The server certificate names `127.0.0.1`, so TLS verifies end to end.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    /// Shut down gracefully and report how the server ended.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> anyhow::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow::anyhow!("the server thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// The real `fieldsync` binary next to this executable.
pub fn agent_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the bench executable")?;
    let dir = exe
        .parent()
        .context("the bench executable has no directory")?;
    let p = dir.join(format!("fieldsync{}", std::env::consts::EXE_SUFFIX));
    anyhow::ensure!(
        p.exists(),
        "the agent binary {} is missing: run `cargo build --release --workspace --bins` \
         (it builds fieldsync, fieldsync-server and fieldsync-bench together)",
        p.display()
    );
    Ok(p)
}

/// A `fieldsync` command on `data_dir`, isolated from the caller's `FIELDSYNC_*` settings,
/// optionally run under `wrapper` (a profiler command line, split on spaces).
pub fn agent_command(bin: &Path, data_dir: &Path, args: &[&str], wrapper: Option<&str>) -> Command {
    let mut words = wrapper.unwrap_or("").split_whitespace();
    let mut cmd = match words.next() {
        Some(w) => {
            let mut c = Command::new(w);
            c.args(words).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("FIELDSYNC_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args)
        .env("FIELDSYNC_DATA_DIR", data_dir)
        .env("FIELDSYNC_LOG", "warn");
    cmd
}

pub struct Measured {
    pub success: bool,
    pub status: String,
    pub stdout: String,
    pub stderr: String,
    pub wall: Duration,
    /// Highest `VmHWM` (peak resident set) seen, in KiB.
    pub peak_rss_kib: u64,
    pub samples: u64,
    /// (time since start, VmRSS in KiB) of every sample.
    pub rss_timeline: Vec<(Duration, u64)>,
}

impl Measured {
    /// Resident memory (MB) at the end of each tenth of the run, and when the peak was
    /// first reached: shows which phase of the run holds the memory.
    pub fn rss_profile(&self) -> Obj {
        let mb = |kib: u64| round(kib as f64 / 1024.0, 1);
        let mut o = Obj::new();
        let Some(last) = self.rss_timeline.last() else {
            return o;
        };
        let end = last.0.as_secs_f64();
        let tenths: Vec<String> = (1..=10)
            .filter_map(|i| {
                let t = end * i as f64 / 10.0 + 1e-9;
                self.rss_timeline
                    .iter()
                    .take_while(|(at, _)| at.as_secs_f64() <= t)
                    .last()
                    .map(|(_, kib)| mb(*kib).to_string())
            })
            .collect();
        let max = self.rss_timeline.iter().map(|(_, k)| *k).max().unwrap_or(0);
        if let Some((at, _)) = self.rss_timeline.iter().find(|(_, k)| *k == max) {
            o.put("max_vmrss_mb", mb(max))
                .put("max_vmrss_at_s", round(at.as_secs_f64(), 3));
        }
        o.put("vmrss_mb_each_tenth_of_run", tenths.join(" "));
        o
    }
}

/// Run `cmd` with `stdin`, sampling its peak resident set from `/proc/PID/status` until it
/// exits. `VmHWM` is the kernel's own high-water mark, so a sample taken just before the
/// exit covers the whole run up to then.
pub fn run_measured(cmd: &mut Command, stdin: Option<&str>) -> anyhow::Result<Measured> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().context("spawning the agent")?;
    let status_path = format!("/proc/{}/status", child.id());
    {
        let mut sin = child.stdin.take().context("child stdin")?;
        if let Some(s) = stdin {
            sin.write_all(s.as_bytes())?;
        }
    }
    let mut out_pipe = child.stdout.take().context("child stdout")?;
    let mut err_pipe = child.stderr.take().context("child stderr")?;
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let kib = |rest: &str| -> u64 {
        rest.trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap_or(0)
    };
    let mut peak = 0u64;
    let mut samples = 0u64;
    let mut rss_timeline = Vec::new();
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_path) {
            samples += 1;
            for line in text.lines() {
                if let Some(rest) = line.strip_prefix("VmHWM:") {
                    peak = peak.max(kib(rest));
                } else if let Some(rest) = line.strip_prefix("VmRSS:") {
                    let now = kib(rest);
                    peak = peak.max(now);
                    rss_timeline.push((start.elapsed(), now));
                }
            }
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(RSS_SAMPLE_INTERVAL);
    };
    let wall = start.elapsed();
    Ok(Measured {
        success: status.success(),
        status: status.to_string(),
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
        wall,
        peak_rss_kib: peak,
        samples,
        rss_timeline,
    })
}

fn first_line_value(path: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

/// The mount holding `path` (longest matching mount point), as (mount point, fs type).
fn filesystem_of(path: &Path) -> Option<(String, String)> {
    let path = std::fs::canonicalize(path).ok()?;
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (_dev, mnt, ty) = (it.next()?, it.next()?, it.next()?);
            path.starts_with(mnt)
                .then(|| (mnt.to_owned(), ty.to_owned()))
        })
        .max_by_key(|(mnt, _)| mnt.len())
}

/// Median time to write 4 KiB and `fdatasync` it in `dir`: the floor under every commit of
/// a store with synchronous=FULL there.
fn fsync_ms_median(dir: &Path) -> anyhow::Result<f64> {
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path)?;
    let block = [0x5au8; 4096];
    let mut ms = Vec::new();
    for _ in 0..21 {
        let t = Instant::now();
        f.write_all(&block)?;
        f.sync_data()?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    drop(f);
    std::fs::remove_file(&path)?;
    ms.sort_by(f64::total_cmp);
    Ok(round(ms[ms.len() / 2], 3))
}

pub fn machine(bench_dir: &Path) -> Obj {
    let mut o = Obj::new();
    o.put(
        "cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    );
    if let Some(cpu) = first_line_value("/proc/cpuinfo", "model name") {
        o.put("cpu", cpu);
    }
    if let Some(mem) = first_line_value("/proc/meminfo", "MemTotal") {
        let kib: f64 = mem.trim_end_matches("kB").trim().parse().unwrap_or(0.0);
        o.put("memory_gib", round(kib / 1024.0 / 1024.0, 1));
    }
    o.put(
        "os",
        format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
    );
    if let Ok(k) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        o.put("kernel", k.trim());
    }
    o.put("bench_dir", bench_dir.display().to_string());
    if let Some((mnt, ty)) = filesystem_of(bench_dir) {
        o.put("bench_dir_filesystem", format!("{ty} on {mnt}"));
    }
    if let Ok(ms) = fsync_ms_median(bench_dir) {
        o.put("bench_dir_fsync_4k_ms_median", ms);
    }
    o.put(
        "build",
        if cfg!(debug_assertions) {
            "debug (numbers are meaningless: use --release)"
        } else {
            "release"
        },
    );
    o
}

/// CPU time this thread has used (Linux `schedstat`, in ns): unlike wall time, it barely
/// moves when other processes load the machine, so it compares code on a busy box.
pub fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

/// CPU time used so far by every thread of this process, live or ended. Wall times move
/// with whatever else the machine runs; this shows whether a change saved work.
pub fn process_cpu() -> Duration {
    // utime and stime, fields 14 and 15 of /proc/self/stat, in clock ticks (1/100 s on
    // Linux). They include threads that have ended, unlike a sum over /proc/self/task.
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after_name = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = after_name.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or_default();
    Duration::from_millis(ticks * 10)
}
