//! Online backup and offline restore of the SQLite store.
//!
//! A backup is `VACUUM INTO` from its own connection: one read transaction, so the copy is
//! a consistent snapshot even while the server keeps taking pushes (WAL readers never
//! block the writer). A restore needs the server stopped, keeps the database it replaces,
//! and gives the restored one a new epoch so every agent notices the rollback and re-sends
//! what the server lost.

use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::Serialize;

use crate::db_path;

/// How long a backup waits for the writer to let go of the database.
const BACKUP_BUSY_TIMEOUT_MS: u64 = 30_000;
/// Epochs stay below 2^53 so a browser reads them exactly.
const EPOCH_MAX: u64 = (1 << 53) - 1;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("no database at {0}: is this the server's data dir?")]
    NoDatabase(PathBuf),
    #[error("{0} already exists: choose another --out, or move the old backup away first")]
    Exists(PathBuf),
    #[error("{path} is not a usable backup: {reason}")]
    BadBackup { path: PathBuf, reason: String },
    #[error("a server is running on {0}: stop it first (restore and import change the database under it)")]
    ServerRunning(PathBuf),
    #[error("{0} is being restored or imported into: wait until that has finished")]
    Exclusive(PathBuf),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let context = context.into();
    move |source| BackupError::Io { context, source }
}

/// What a backup or restore wrote.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub file: PathBuf,
    pub bytes: u64,
    /// The epoch the database carries (after a restore: the new one).
    pub epoch: u64,
    /// The change sequence the copy holds up to.
    pub seq: u64,
    pub entities: u64,
}

/// The lock on a data dir. Serving servers and `maintenance run` share it (the store
/// continues another process's sequence, so their writes interleave safely); restore and
/// import take it alone, so nothing writes while the database is swapped or bulk-loaded.
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Alone: refused while anything else holds the lock.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, BackupError> {
        Self::take(data_dir, false)
    }

    /// Shared with other servers and commands that write through the store.
    pub fn acquire_shared(data_dir: &Path) -> Result<DataDirLock, BackupError> {
        Self::take(data_dir, true)
    }

    fn take(data_dir: &Path, shared: bool) -> Result<DataDirLock, BackupError> {
        let path = data_dir.join("server.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(format!("opening {}", path.display())))?;
        let locked = if shared {
            file.try_lock_shared()
        } else {
            file.try_lock()
        };
        match locked {
            Ok(()) => Ok(DataDirLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) if shared => {
                Err(BackupError::Exclusive(data_dir.to_owned()))
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(BackupError::ServerRunning(data_dir.to_owned()))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                Err(io(format!("locking {}", path.display()))(e))
            }
        }
    }
}

fn meta(conn: &Connection, key: &str) -> Result<u64, BackupError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?
        .unwrap_or(0) as u64)
}

/// Check that `path`, a copy this module made, is a whole fieldsync database and describe
/// it. Opened for writing (a WAL database cannot always be read read-only), which is why
/// the user's own backup file is never inspected in place.
fn inspect(path: &Path, shown_as: &Path) -> Result<Summary, BackupError> {
    let bad = |reason: String| BackupError::BadBackup {
        path: shown_as.to_owned(),
        reason,
    };
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| bad(e.to_string()))?;
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| bad(e.to_string()))?;
    if check != "ok" {
        return Err(bad(format!("integrity check failed: {check}")));
    }
    let entities: i64 = conn
        .query_row("SELECT COUNT(*) FROM entities", [], |r| r.get(0))
        .map_err(|_| bad("it has no fieldsync entities table".into()))?;
    let bytes = std::fs::metadata(path)
        .map_err(io(format!("reading {}", path.display())))?
        .len();
    Ok(Summary {
        file: path.to_owned(),
        bytes,
        epoch: meta(&conn, "epoch")?,
        seq: meta(&conn, "seq")?,
        entities: entities as u64,
    })
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("syncing {}", dir.display())))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Write a consistent copy of the live database in `data_dir` to `out`. The copy appears
/// under its name only once it is whole and checked.
pub fn backup(data_dir: &Path, out: &Path) -> Result<Summary, BackupError> {
    let db = db_path(data_dir);
    if !db.exists() {
        return Err(BackupError::NoDatabase(db));
    }
    if out.exists() {
        return Err(BackupError::Exists(out.to_owned()));
    }
    let partial = out.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.busy_timeout(std::time::Duration::from_millis(BACKUP_BUSY_TIMEOUT_MS))?;
    let target = partial
        .to_str()
        .ok_or_else(|| io("the --out path")(std::io::Error::other("it is not valid UTF-8")))?;
    if let Err(e) = conn.execute("VACUUM INTO ?1", [target]) {
        let _ = std::fs::remove_file(&partial);
        return Err(e.into());
    }
    drop(conn);
    let summary = match inspect(&partial, out) {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    File::open(&partial)
        .and_then(|f| f.sync_all())
        .map_err(io(format!("syncing {}", partial.display())))?;
    std::fs::rename(&partial, out).map_err(io(format!("naming {}", out.display())))?;
    sync_dir(parent(out))?;
    Ok(Summary {
        file: out.to_owned(),
        ..summary
    })
}

/// Replace the database in `data_dir` with the backup `from`. The server must be stopped.
/// The replaced database is kept beside it as `fieldsync.db.replaced-<ms>` (with its WAL),
/// and the restored one gets a new epoch.
/// What the restore takes away, read from the database it replaces: each applied op the
/// backup lacks, under the entity it created or the order it (re)assigned. An op re-sent
/// later that waits on one of them is parked until that op comes back (never, for a
/// console write: devices re-send only their own), see `parked` in `store::sqlite`.
/// Without the replaced database (a disaster restore) nothing is known, so every op that
/// finds its target missing is parked while the window lasts (`lost_known = 0`).
fn record_lost_ops(restored: &Connection, replaced: Option<&Path>) -> Result<(), BackupError> {
    restored.execute_batch(LOST_OPS_TABLE)?;
    restored.execute_batch(LOST_APPLIED_TABLE)?;
    let Some(replaced) = replaced else {
        restored.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('lost_known', 0)",
            [],
        )?;
        return Ok(());
    };
    restored.execute(
        "ATTACH DATABASE ?1 AS replaced",
        [replaced.to_string_lossy().as_ref()],
    )?;
    let copied = (|| -> rusqlite::Result<()> {
        restored.execute_batch(
            "INSERT OR IGNORE INTO lost_ops (dev, seq, kind, id)
                 SELECT o.dev, o.seq, o.kind, o.id FROM replaced.ops o
                 WHERE o.reject_code IS NULL AND json_extract(o.body, '$.op') = 'create'
                   AND NOT EXISTS (SELECT 1 FROM main.ops m WHERE m.dev = o.dev AND m.seq = o.seq);
             INSERT OR IGNORE INTO lost_ops (dev, seq, kind, id)
                 SELECT o.dev, o.seq, 'work_order', o.id FROM replaced.ops o
                 WHERE o.reject_code IS NULL AND o.kind = 'work_order'
                   AND json_type(o.body, '$.fields.assignee') IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM main.ops m WHERE m.dev = o.dev AND m.seq = o.seq);
             INSERT OR IGNORE INTO lost_applied (dev, seq)
                 SELECT o.dev, o.seq FROM replaced.ops o
                 WHERE o.reject_code IS NULL AND o.dev != 0
                   AND NOT EXISTS (SELECT 1 FROM main.ops m WHERE m.dev = o.dev AND m.seq = o.seq);
             INSERT OR REPLACE INTO meta (key, value) VALUES ('lost_known', 1);",
        )?;
        // An earlier restore's losses still count: this copy of the backup has not seen them.
        let replaced_has = |table: &str| -> rusqlite::Result<bool> {
            restored.query_row(
                "SELECT EXISTS (SELECT 1 FROM replaced.sqlite_master WHERE name = ?1)",
                [table],
                |r| r.get(0),
            )
        };
        let earlier = replaced_has("lost_ops")?;
        if replaced_has("lost_applied")? {
            restored.execute_batch(
                "INSERT OR IGNORE INTO lost_applied (dev, seq)
                     SELECT dev, seq FROM replaced.lost_applied;",
            )?;
        }
        if earlier {
            restored.execute_batch(
                "INSERT OR IGNORE INTO lost_ops (dev, seq, kind, id)
                     SELECT dev, seq, kind, id FROM replaced.lost_ops;
                 INSERT OR REPLACE INTO meta (key, value)
                     SELECT 'lost_known', 0 FROM replaced.meta
                     WHERE key = 'lost_known' AND value = 0;",
            )?;
        }
        Ok(())
    })();
    restored.execute("DETACH DATABASE replaced", [])?;
    copied?;
    Ok(())
}

/// Also in migration 0009, for the same reason.
const LOST_APPLIED_TABLE: &str = "CREATE TABLE IF NOT EXISTS lost_applied (
    dev INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (dev, seq)
) WITHOUT ROWID;";

/// Also in migration 0008: a restore of an older backup creates it before that runs.
const LOST_OPS_TABLE: &str = "CREATE TABLE IF NOT EXISTS lost_ops (
    dev INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (kind, id, dev, seq)
) WITHOUT ROWID;";

pub fn restore(data_dir: &Path, from: &Path, now_ms: u64) -> Result<Summary, BackupError> {
    let _lock = DataDirLock::acquire(data_dir)?;
    let db = db_path(data_dir);
    let partial = db.with_extension("db.restore-partial");
    std::fs::copy(from, &partial).map_err(io(format!(
        "copying {} to {}",
        from.display(),
        partial.display()
    )))?;
    if let Err(e) = inspect(&partial, from) {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    let epoch = {
        let conn = Connection::open(&partial)?;
        let old = meta(&conn, "epoch")?;
        let mut epoch = 1 + rand::random::<u64>() % EPOCH_MAX;
        if epoch == old {
            epoch = epoch % EPOCH_MAX + 1;
        }
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('epoch', ?1)",
            [epoch as i64],
        )?;
        // Opens the window in which ops re-sent out of order are parked, not refused.
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('restored_ms', ?1)",
            [now_ms as i64],
        )?;
        record_lost_ops(&conn, db.exists().then_some(db.as_path()))?;
        // Leave a single self-contained file: no WAL beside the copy.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        epoch
    };
    File::open(&partial)
        .and_then(|f| f.sync_all())
        .map_err(io(format!("syncing {}", partial.display())))?;
    if db.exists() {
        let kept = data_dir.join(format!("fieldsync.db.replaced-{now_ms}"));
        for suffix in ["-wal", "-shm"] {
            let side = PathBuf::from(format!("{}{suffix}", db.display()));
            if side.exists() {
                let to = PathBuf::from(format!("{}{suffix}", kept.display()));
                std::fs::rename(&side, &to).map_err(io(format!("moving {}", side.display())))?;
            }
        }
        std::fs::rename(&db, &kept).map_err(io(format!("moving {}", db.display())))?;
    }
    std::fs::rename(&partial, &db).map_err(io(format!("naming {}", db.display())))?;
    sync_dir(data_dir)?;
    let summary = inspect(&db, &db)?;
    debug_assert_eq!(summary.epoch, epoch);
    Ok(summary)
}
