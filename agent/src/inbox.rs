//! The photo inbox: a file dropped into `<data-dir>/inbox/<order-id>/` is attached to that
//! order, once it is complete, and then moved to `<data-dir>/inbox/imported/<order-id>/`
//! (never deleted). `fieldsync photo scan` runs one pass; `fieldsync daemon` watches the
//! folder with notify and rescans on every change.
//!
//! "Complete" means all of: its size and mtime did not change over `inbox_settle_ms`,
//! it can be opened, and its own structure says it is whole (a JPEG's end marker and so
//! on: see `photos::looks_complete`). A slow writer that pauses longer than the settle
//! time still does not get a half-written JPEG imported, because the end marker is
//! missing. Refused files stay where they are, with the reason in `fieldsync photos`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use fieldsync_proto::EntityId;
use notify::Watcher as _;
use serde::Serialize;

use crate::blob::{self, BlobStore};
use crate::config::Config;
use crate::error::{AgentError, Result};
use crate::photos::{self, mtime_ms, Attached, Refused};
use crate::store::Store;

pub const INBOX_DIR: &str = "inbox";
pub const IMPORTED_DIR: &str = "imported";
/// Files looked at in one pass over the whole inbox; the rest wait for the next pass.
pub const SCAN_FILES_MAX: usize = 10_000;
/// How long a settled file may still look incomplete (a writer stalled, or a file cut
/// short) before it is refused rather than waited for.
pub const INCOMPLETE_GRACE_MS: u64 = 10 * 60 * 1000;
/// The watcher rescans this often even without events: events can be dropped (queue
/// overflow, network filesystems) and waiting files need a second look anyway.
pub const WATCH_RESCAN_MS: u64 = 30_000;
/// Names that writers use for files still in progress; they are left alone.
const PARTIAL_SUFFIXES: &[&str] = &[".part", ".partial", ".tmp", ".crdownload", ".download", "~"];

pub fn inbox_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(INBOX_DIR)
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ScanReport {
    pub imported: Vec<Attached>,
    /// `(path, reason)` of files refused in this pass.
    pub refused: Vec<(String, String)>,
    /// Files not complete yet.
    pub waiting: Vec<String>,
}

/// What the scanner saw of a file: its size and mtime, and since when they have not
/// changed.
#[derive(Clone, Copy, Debug)]
struct Seen {
    size: u64,
    mtime_ms: u64,
    since: Instant,
}

/// Remembers files between passes so stability can be judged.
#[derive(Default)]
pub struct Scanner {
    seen: HashMap<PathBuf, Seen>,
}

fn is_partial_name(name: &str) -> bool {
    name.starts_with('.') || PARTIAL_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// A free name for `name` in `dir`: `name`, else `stem-1.ext`, `stem-2.ext`...
fn free_name(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    let p = Path::new(name);
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = p
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (1..)
        .map(|i| dir.join(format!("{stem}-{i}{ext}")))
        .find(|c| !c.exists())
        .expect("some suffix is free")
}

fn move_to_imported(data_dir: &Path, order: &str, path: &Path) -> Result<PathBuf> {
    let dir = inbox_dir(data_dir).join(IMPORTED_DIR).join(order);
    let io = |e: std::io::Error| AgentError::Invalid(format!("moving {}: {e}", path.display()));
    std::fs::create_dir_all(&dir).map_err(io)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "photo".into());
    let dest = free_name(&dir, &name);
    std::fs::rename(path, &dest).map_err(io)?;
    Ok(dest)
}

impl Scanner {
    /// One pass over the inbox. Files that are complete are imported and moved; others
    /// are remembered for the next pass.
    pub fn scan(
        &mut self,
        store: &mut Store,
        blobs: &dyn BlobStore,
        cfg: &Config,
    ) -> Result<ScanReport> {
        let data_dir = store.dir().to_owned();
        let root = inbox_dir(&data_dir);
        std::fs::create_dir_all(root.join(IMPORTED_DIR)).map_err(|e| {
            AgentError::Config(format!("cannot create inbox {}: {e}", root.display()))
        })?;
        let mut report = ScanReport::default();
        let mut present = Vec::new();
        let mut looked = 0usize;
        let mut dirs: Vec<_> = std::fs::read_dir(&root)
            .map_err(|e| AgentError::Config(format!("reading {}: {e}", root.display())))?
            .filter_map(|e| e.ok())
            .collect();
        dirs.sort_by_key(|e| e.file_name());
        for entry in dirs {
            let dir_name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if dir_name == IMPORTED_DIR || is_partial_name(&dir_name) {
                continue;
            }
            if !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                self.refuse(
                    store,
                    &path,
                    "",
                    "put photos in a folder named after the work order: inbox/<order-id>/",
                    true,
                    &mut report,
                )?;
                continue;
            }
            let order = if EntityId::is_valid(&dir_name) {
                store.resolve_order(&dir_name).ok()
            } else {
                None
            };
            let mut files: Vec<_> = match std::fs::read_dir(&path) {
                Ok(rd) => rd.filter_map(|e| e.ok()).collect(),
                Err(_) => continue,
            };
            files.sort_by_key(|e| e.file_name());
            for f in files {
                if looked >= SCAN_FILES_MAX {
                    break;
                }
                looked += 1;
                let fpath = f.path();
                let name = f.file_name().to_string_lossy().into_owned();
                if is_partial_name(&name) {
                    continue;
                }
                present.push(fpath.clone());
                let Some(order) = &order else {
                    let why = if EntityId::is_valid(&dir_name) {
                        format!("no work order {dir_name:?} on this device; sync, or check the folder name")
                    } else {
                        format!("folder name {dir_name:?} is not a work order id")
                    };
                    self.refuse(store, &fpath, &dir_name, &why, true, &mut report)?;
                    continue;
                };
                self.consider(store, blobs, cfg, order, &fpath, &mut report)?;
            }
        }
        self.seen.retain(|p, _| present.contains(p));
        Ok(report)
    }

    /// Record a refusal; reported (and logged) only when it is news.
    fn refuse(
        &mut self,
        store: &Store,
        path: &Path,
        order: &str,
        why: &str,
        retry: bool,
        report: &mut ScanReport,
    ) -> Result<()> {
        if !photos::record_refusal(store, path, order, why, retry)? {
            return Ok(());
        }
        tracing::warn!(path = %path.display(), "photo refused: {why}");
        report
            .refused
            .push((path.display().to_string(), why.to_owned()));
        Ok(())
    }

    fn consider(
        &mut self,
        store: &mut Store,
        blobs: &dyn BlobStore,
        cfg: &Config,
        order: &EntityId,
        path: &Path,
        report: &mut ScanReport,
    ) -> Result<()> {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return Ok(()); // gone meanwhile
        };
        if photos::refused_unchanged(store, path, &meta)? {
            return Ok(());
        }
        let now = Instant::now();
        let (size, mtime) = (meta.len(), mtime_ms(&meta));
        let seen = self.seen.entry(path.to_owned()).or_insert(Seen {
            size,
            mtime_ms: mtime,
            since: now,
        });
        if (seen.size, seen.mtime_ms) != (size, mtime) {
            *seen = Seen {
                size,
                mtime_ms: mtime,
                since: now,
            };
        }
        let stable_for = now.duration_since(seen.since);
        if stable_for < Duration::from_millis(cfg.inbox_settle_ms) {
            report.waiting.push(path.display().to_string());
            return Ok(());
        }
        let (mut file, kind) = match photos::check_file(path, cfg.photo_bytes_max)? {
            Ok(ok) => ok,
            Err(Refused(why)) => {
                return self.refuse(store, path, order.as_str(), &why, false, report)
            }
        };
        let complete = photos::looks_complete(&mut file, kind)
            .map_err(|e| AgentError::Invalid(format!("reading {}: {e}", path.display())))?;
        if !complete {
            if stable_for < Duration::from_millis(INCOMPLETE_GRACE_MS) {
                report.waiting.push(path.display().to_string());
                return Ok(());
            }
            let why = format!(
                "the file looks cut short (no end of {} data); copy it again",
                kind.mime()
            );
            return self.refuse(store, path, order.as_str(), &why, false, report);
        }
        match photos::attach(store, blobs, order, path, file, kind, None) {
            Ok(a) => {
                let dest = move_to_imported(store.dir(), order.as_str(), path)?;
                tracing::info!(from = %path.display(), to = %dest.display(), photo = %a.id, "photo imported");
                self.seen.remove(path);
                report.imported.push(a);
                Ok(())
            }
            // Changed while importing: look again once it settles.
            Err(AgentError::Invalid(why)) if why.contains("changed while") => {
                self.seen.remove(path);
                report.waiting.push(path.display().to_string());
                Ok(())
            }
            Err(AgentError::Invalid(why)) => {
                self.refuse(store, path, order.as_str(), &why, false, report)
            }
            Err(AgentError::Refused(e)) => {
                self.refuse(store, path, order.as_str(), &e.message, false, report)
            }
            Err(e) => Err(e),
        }
    }
}

/// `fieldsync photo scan`: one pass, and for files that were still settling, one more
/// after the settle time, so a file dropped just before is not left behind.
pub fn scan_once(store: &mut Store, cfg: &Config) -> Result<ScanReport> {
    let blobs = blob::open_shared(store.dir(), cfg.blob_store)?;
    let mut scanner = Scanner::default();
    let mut report = scanner.scan(store, &*blobs, cfg)?;
    if !report.waiting.is_empty() {
        std::thread::sleep(Duration::from_millis(cfg.inbox_settle_ms));
        let second = scanner.scan(store, &*blobs, cfg)?;
        report.imported.extend(second.imported);
        report.refused.extend(second.refused);
        report.waiting = second.waiting;
    }
    Ok(report)
}

/// The daemon's inbox watcher: a thread with its own store connection, woken by notify
/// events and by a timer. Stops when dropped.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    wake: mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.wake.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Start watching `data_dir`'s inbox. `imported` is notified after each pass that
/// attached something, so the daemon can sync without waiting for its next poll.
pub fn spawn_watcher(
    data_dir: &Path,
    cfg: &Config,
    imported: Arc<tokio::sync::Notify>,
) -> Result<Watcher> {
    let root = inbox_dir(data_dir);
    std::fs::create_dir_all(root.join(IMPORTED_DIR))
        .map_err(|e| AgentError::Config(format!("cannot create inbox {}: {e}", root.display())))?;
    let (tx, rx) = mpsc::channel::<()>();
    let events = tx.clone();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        // Our own scan opens the inbox and its files. An open (or a close after reading)
        // is not a change, and waking on it made every scan trigger the next: an idle
        // daemon spun at full CPU. A close after writing is kept: a photo just finished.
        use notify::event::{AccessKind, AccessMode, EventKind};
        if res.is_ok_and(
            |e| matches!(e.kind, EventKind::Access(k) if k != AccessKind::Close(AccessMode::Write)),
        ) {
            return;
        }
        let _ = events.send(());
    })
    .map_err(|e| AgentError::Config(format!("cannot watch {}: {e}", root.display())))?;
    watcher
        .watch(&root, notify::RecursiveMode::Recursive)
        .map_err(|e| AgentError::Config(format!("cannot watch {}: {e}", root.display())))?;
    let stop = Arc::new(AtomicBool::new(false));
    let (dir, cfg, stop2) = (data_dir.to_owned(), cfg.clone(), stop.clone());
    let thread = std::thread::Builder::new()
        .name("inbox".into())
        .spawn(move || {
            // Owned by the thread so it lives exactly as long as the loop.
            let _watcher = watcher;
            if let Err(e) = watch_loop(&dir, &cfg, &rx, &stop2, &imported) {
                tracing::error!("inbox watcher stopped: {e}");
            }
        })
        .map_err(|e| AgentError::Config(format!("cannot start the inbox watcher: {e}")))?;
    Ok(Watcher {
        stop,
        wake: tx,
        thread: Some(thread),
    })
}

fn watch_loop(
    dir: &Path,
    cfg: &Config,
    rx: &mpsc::Receiver<()>,
    stop: &AtomicBool,
    imported: &tokio::sync::Notify,
) -> Result<()> {
    let mut store = Store::open(dir)?;
    let blobs = blob::open_shared(dir, cfg.blob_store)?;
    let mut scanner = Scanner::default();
    tracing::info!(inbox = %inbox_dir(dir).display(), "watching the photo inbox");
    while !stop.load(Ordering::SeqCst) {
        let wait = match scanner.scan(&mut store, &*blobs, cfg) {
            Ok(r) => {
                if !r.imported.is_empty() {
                    imported.notify_one();
                }
                if r.waiting.is_empty() {
                    WATCH_RESCAN_MS
                } else {
                    (cfg.inbox_settle_ms / 2).max(50)
                }
            }
            Err(e) => {
                tracing::warn!("inbox scan failed: {e}");
                WATCH_RESCAN_MS
            }
        };
        match rx.recv_timeout(Duration::from_millis(wait)) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        // One pass covers a burst of events.
        while rx.try_recv().is_ok() {}
    }
    Ok(())
}
