//! The dispatcher board's read model: one row per work order with the columns the board
//! filters and sorts on, and per-status counts, in its own SQLite file beside the main
//! database.
//!
//! Why a separate file: the board needs a dozen sort indexes to page 50,000 orders without
//! sorting them, and paying for those inside every push made a 10,000-op push several times
//! slower. Here a follower thread copies what each commit changed (found by `entities.seq`)
//! after the fact, on its own connection and its own write lock, so pushes never wait for
//! it. Everything in the file is derived: it is rebuilt from `entities` whenever its schema,
//! epoch (a restore) or sequence disagrees with the main database, so it needs neither
//! backups nor full fsyncs.
//!
//! Readers that need the board as of "now" call [`Board::wait_caught_up`] first, so a
//! dispatcher who has just saved an order sees it on the next page.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension};

use super::StoreError;

/// Bump when the schema below changes: the file is then rebuilt from the main database.
const BOARD_SCHEMA_VERSION: i64 = 1;
/// Orders copied per follower transaction: small enough that a push arriving meanwhile
/// waits for at most one of them.
const CATCH_UP_ROWS_MAX: i64 = 1_000;
/// Within a copy, how often the follower checks whether a writer has committed since it
/// began; if so it stops there (unless a reader waits or it is too far behind) and waits
/// for quiet again, so a push that starts meanwhile shares the CPU with at most this many.
const YIELD_CHECK_ROWS: usize = 100;
/// How long a reader waits for the follower before it reads a slightly stale board.
const CATCH_UP_WAIT_MAX: Duration = Duration::from_secs(5);
/// Pause before retrying after the follower failed (a full disk, say).
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// The follower copies once commits have paused this long, so a burst of pushes is copied
/// in a few large transactions after it instead of competing with it for the CPU.
const QUIET_BEFORE_COPY: Duration = Duration::from_millis(50);
/// ... but never lets the board fall further behind than this while writes go on.
/// Readers that need it current do not wait for this: they wake the follower.
const COPY_DELAY_MAX: Duration = Duration::from_secs(5);
/// How often an idle follower looks for commits made by other processes.
const OTHER_WRITERS_POLL: Duration = Duration::from_secs(2);
/// SQLite `cache_size` of the board's connections; negative means KiB, so 16 MB. Enough
/// for a catch-up not to evict and re-read index pages, and a bound on what the board adds
/// to the server's memory.
const BOARD_CACHE_SIZE: i64 = -16_000;
/// The follower thread's nice value. Copying an order costs a dozen index updates, more
/// than applying the op that changed it, so on a small machine a catch-up running beside
/// a push slowed the push by about a fifth. At nice 10 the scheduler gives it about a
/// tenth of a core while syncs want the CPU, and all of it when they do not.
const FOLLOWER_NICE: i32 = 10;

const SCHEMA: &str = "
CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    priority INTEGER,
    due_ms INTEGER,
    assignee TEXT,
    customer_id TEXT,
    cancelled INTEGER NOT NULL
) WITHOUT ROWID;
-- Each index matches one filter and one sort of the board column for column and direction
-- for direction, so a page is an index walk that stops after `offset + limit` rows.
CREATE INDEX board_recent ON orders (seq DESC);
CREATE INDEX board_status ON orders (status, seq DESC);
CREATE INDEX board_priority ON orders (priority, seq DESC);
CREATE INDEX board_due ON orders ((due_ms IS NULL), due_ms, seq DESC);
-- Status and priority each match thousands of orders, so a filter on one with a sort on
-- another needs both in one index to stop after a page instead of sorting the matches.
CREATE INDEX board_status_priority ON orders (status, priority, seq DESC);
CREATE INDEX board_status_due ON orders (status, (due_ms IS NULL), due_ms, seq DESC);
CREATE INDEX board_priority_status ON orders (priority, status, seq DESC);
CREATE INDEX board_priority_due ON orders (priority, (due_ms IS NULL), due_ms, seq DESC);
-- An engineer or customer has few orders; these find them and count them.
CREATE INDEX board_assignee ON orders (assignee, seq DESC);
CREATE INDEX board_assignee_due ON orders (assignee, (due_ms IS NULL), due_ms, seq DESC);
CREATE INDEX board_customer ON orders (customer_id, seq DESC);
CREATE INDEX board_open_load ON orders (assignee, cancelled, status);

-- Orders per status for the board's header; the triggers keep it exact in the same
-- transaction as the rows.
CREATE TABLE counts (
    status TEXT PRIMARY KEY,
    n INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER counts_insert AFTER INSERT ON orders
BEGIN
    INSERT INTO counts (status, n) VALUES (new.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER counts_update AFTER UPDATE OF status ON orders
    WHEN old.status IS NOT new.status
BEGIN
    UPDATE counts SET n = n - 1 WHERE status = old.status;
    INSERT INTO counts (status, n) VALUES (new.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;

-- How far the copy has got, and which history (the main database's epoch) it copies.
CREATE TABLE progress (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
";

/// The read model's file, its follower thread, and how far that thread has got.
pub(super) struct Board {
    path: PathBuf,
    shared: Arc<Shared>,
    follower: Option<JoinHandle<()>>,
}

struct Shared {
    progress: Mutex<Progress>,
    moved: Condvar,
}

#[derive(Default)]
struct Progress {
    /// Main-database sequence the board reflects.
    copied: u64,
    /// Newest main-database sequence committed.
    wanted: u64,
    /// A reader is waiting for the board: copy now, without waiting for quiet.
    urgent: bool,
    stop: bool,
}

/// Where the board file of the main database at `main` lives.
pub(super) fn path_for(main: &Path) -> PathBuf {
    main.with_extension("board.db")
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // Derived data: a commit lost to a power cut is copied again from the main database.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // A catch-up touches a page of each of a dozen indexes per order; with SQLite's 2 MB
    // default those pages were evicted and read back within one copy.
    conn.pragma_update(None, "cache_size", BOARD_CACHE_SIZE)?;
    Ok(())
}

fn progress_value(conn: &Connection, key: &str) -> Result<Option<u64>, StoreError> {
    Ok(conn
        .query_row("SELECT value FROM progress WHERE key = ?1", [key], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?
        .map(|v| v as u64))
}

fn set_progress(conn: &Connection, key: &str, value: u64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO progress (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, value as i64])?;
    Ok(())
}

fn main_meta(conn: &Connection, key: &str) -> Result<u64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |r| r.get::<_, i64>(0))
        .optional()?
        .unwrap_or(0) as u64)
}

/// Open the board file, starting it over when it does not describe this main database
/// (`main_seq`, `main_epoch`): a new schema, a restored backup, or a file from elsewhere.
/// Returns the main sequence it reflects.
fn open_board_file(
    path: &Path,
    main_seq: u64,
    main_epoch: u64,
) -> Result<(Connection, u64), StoreError> {
    let mut conn = Connection::open(path)?;
    configure(&conn)?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let copied = if version == BOARD_SCHEMA_VERSION {
        let epoch = progress_value(&conn, "epoch")?;
        let seq = progress_value(&conn, "seq")?;
        match (epoch, seq) {
            (Some(e), Some(s)) if e == main_epoch && s <= main_seq => Some(s),
            _ => None,
        }
    } else {
        None
    };
    if let Some(copied) = copied {
        return Ok((conn, copied));
    }
    let tx = conn.transaction()?;
    let tables: Vec<String> = tx
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for name in tables {
        // Dropping a table drops its indexes and triggers with it.
        tx.execute_batch(&format!("DROP TABLE IF EXISTS \"{name}\""))?;
    }
    tx.execute_batch(SCHEMA)?;
    set_progress(&tx, "epoch", main_epoch)?;
    set_progress(&tx, "seq", 0)?;
    tx.pragma_update(None, "user_version", BOARD_SCHEMA_VERSION)?;
    tx.commit()?;
    Ok((conn, 0))
}

/// Copy orders changed after `copied` from `main` into `board`, one bounded transaction.
/// Every [`YIELD_CHECK_ROWS`] orders it asks `go_on` whether to continue, and when told
/// not to, commits what it copied and stops there. Returns the main sequence the board now
/// reflects.
fn copy_changes(
    main: &Connection,
    board: &mut Connection,
    copied: u64,
    go_on: &mut dyn FnMut() -> bool,
) -> Result<u64, StoreError> {
    // One read transaction: the sequence and the rows come from the same snapshot, and the
    // writer commits sequences in order, so nothing below `head` can still appear.
    let read = main.unchecked_transaction()?;
    let head = main_meta(&read, "seq")?;
    if head <= copied {
        return Ok(copied);
    }
    let rows = read
        .prepare_cached(
            "SELECT id, seq, status, priority, due_ms, assignee, customer_id, COALESCE(cancelled, 0)
             FROM entities WHERE seq > ?1 AND kind = 'work_order' ORDER BY seq LIMIT ?2",
        )?
        .query_map(params![copied as i64, CATCH_UP_ROWS_MAX], |r| {
            Ok(OrderRow {
                id: r.get(0)?,
                seq: r.get(1)?,
                status: r.get::<_, Option<String>>(2)?.unwrap_or_else(|| "open".into()),
                priority: r.get(3)?,
                due_ms: r.get(4)?,
                assignee: r.get(5)?,
                customer_id: r.get(6)?,
                cancelled: r.get(7)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    read.commit()?;
    let mut reached = if rows.len() as i64 == CATCH_UP_ROWS_MAX {
        rows.last().map(|r| r.seq as u64).unwrap_or(head)
    } else {
        head
    };
    let tx = board.transaction()?;
    {
        let mut upsert = tx.prepare_cached(
            "INSERT INTO orders (id, seq, status, priority, due_ms, assignee, customer_id, cancelled)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, status = excluded.status,
               priority = excluded.priority, due_ms = excluded.due_ms,
               assignee = excluded.assignee, customer_id = excluded.customer_id,
               cancelled = excluded.cancelled",
        )?;
        for (i, r) in rows.iter().enumerate() {
            // Each order has its own `seq`, so stopping between two leaves nothing behind.
            if i > 0 && i % YIELD_CHECK_ROWS == 0 && !go_on() {
                reached = rows[i - 1].seq as u64;
                break;
            }
            upsert.execute(params![
                r.id,
                r.seq,
                r.status,
                r.priority,
                r.due_ms,
                r.assignee,
                r.customer_id,
                r.cancelled
            ])?;
        }
    }
    set_progress(&tx, "seq", reached)?;
    tx.commit()?;
    Ok(reached)
}

struct OrderRow {
    id: String,
    seq: i64,
    status: String,
    priority: Option<i64>,
    due_ms: Option<i64>,
    assignee: Option<String>,
    customer_id: Option<String>,
    cancelled: i64,
}

impl Board {
    /// Open (or rebuild) the board of the main database at `main_path`, whose connection
    /// `main` has just been migrated, and start following it.
    pub(super) fn open(main_path: &Path, main: &Connection) -> Result<Board, StoreError> {
        let main_seq = main_meta(main, "seq")?;
        let main_epoch = main_meta(main, "epoch")?;
        let path = path_for(main_path);
        let (board_conn, copied) = open_board_file(&path, main_seq, main_epoch)?;
        let reader = Connection::open(main_path)?;
        reader.busy_timeout(Duration::from_secs(10))?;
        let shared = Arc::new(Shared {
            progress: Mutex::new(Progress {
                copied,
                wanted: main_seq,
                urgent: false,
                stop: false,
            }),
            moved: Condvar::new(),
        });
        let follower = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("board-follower".into())
                .spawn(move || follow(reader, board_conn, &shared))
                .map_err(|e| StoreError::Corrupt(format!("starting the board follower: {e}")))?
        };
        Ok(Board {
            path,
            shared,
            follower: Some(follower),
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The main database committed up to `seq`.
    pub(super) fn committed(&self, seq: u64) {
        let mut p = self.shared.progress.lock().expect("board progress");
        if seq > p.wanted {
            p.wanted = seq;
            self.shared.moved.notify_all();
        }
    }

    /// Block until the board reflects every commit up to `seq`, or [`CATCH_UP_WAIT_MAX`]
    /// has passed: then the caller reads a board still behind (a rebuild of a large
    /// database), says so, and the result is false.
    pub(super) fn wait_caught_up(&self, seq: u64) -> bool {
        let deadline = Instant::now() + CATCH_UP_WAIT_MAX;
        let mut p = self.shared.progress.lock().expect("board progress");
        if p.copied < seq {
            p.urgent = true;
            self.shared.moved.notify_all();
        }
        while p.copied < seq {
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(
                    copied = p.copied,
                    wanted = seq,
                    "the board is behind the database"
                );
                return false;
            }
            p = self
                .shared
                .moved
                .wait_timeout(p, deadline - now)
                .expect("board progress")
                .0;
        }
        true
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        self.shared.progress.lock().expect("board progress").stop = true;
        self.shared.moved.notify_all();
        if let Some(t) = self.follower.take() {
            let _ = t.join();
        }
    }
}

fn follow(main: Connection, mut board: Connection, shared: &Shared) {
    lower_priority();
    let mut behind_since: Option<Instant> = None;
    loop {
        let (copied, wanted_at_start, since) = {
            let mut p = shared.progress.lock().expect("board progress");
            while !p.stop && p.copied >= p.wanted {
                behind_since = None;
                p.urgent = false;
                let (next, waited) = shared
                    .moved
                    .wait_timeout(p, OTHER_WRITERS_POLL)
                    .expect("board progress");
                p = next;
                if waited.timed_out() {
                    // Another process (a second server, `maintenance run`) commits without
                    // calling `committed`.
                    if let Ok(seq) = main_meta(&main, "seq") {
                        p.wanted = p.wanted.max(seq);
                    }
                }
            }
            // Between chunks too: writers go first unless a reader waits or the board has
            // been behind for too long.
            let since = *behind_since.get_or_insert_with(Instant::now);
            while !p.stop && !p.urgent && since.elapsed() < COPY_DELAY_MAX {
                let seen = p.wanted;
                let (next, waited) = shared
                    .moved
                    .wait_timeout(p, QUIET_BEFORE_COPY)
                    .expect("board progress");
                p = next;
                if waited.timed_out() && p.wanted == seen {
                    break;
                }
            }
            if p.stop {
                return;
            }
            (p.copied, p.wanted, since)
        };
        let mut go_on = || {
            let p = shared.progress.lock().expect("board progress");
            !p.stop
                && (p.wanted == wanted_at_start || p.urgent || since.elapsed() >= COPY_DELAY_MAX)
        };
        match copy_changes(&main, &mut board, copied, &mut go_on) {
            Ok(reached) => {
                let mut p = shared.progress.lock().expect("board progress");
                p.copied = reached;
                // The main database may have moved on before `committed` was first called.
                p.wanted = p.wanted.max(reached);
                shared.moved.notify_all();
            }
            Err(e) => {
                tracing::error!(error = %e, "copying changes to the board failed; retrying");
                let p = shared.progress.lock().expect("board progress");
                if p.stop {
                    return;
                }
                drop(
                    shared
                        .moved
                        .wait_timeout(p, RETRY_AFTER)
                        .expect("board progress"),
                );
            }
        }
    }
}

/// Make the calling thread (the follower) yield the CPU to the server's other threads.
#[cfg(target_os = "linux")]
fn lower_priority() {
    // On Linux a thread id names just that thread here, not the whole process.
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), FOLLOWER_NICE) {
        tracing::debug!(error = %e, "the board follower keeps its priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A main database with just what the follower reads: `n` work orders, seqs 1..=n.
    fn main_with_orders(n: i64) -> Connection {
        let main = Connection::open_in_memory().unwrap();
        main.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER);
             CREATE TABLE entities (kind TEXT, id TEXT, seq INTEGER, status TEXT,
                 priority INTEGER, due_ms INTEGER, assignee TEXT, customer_id TEXT,
                 cancelled INTEGER);",
        )
        .unwrap();
        for i in 1..=n {
            main.execute(
                "INSERT INTO entities VALUES ('work_order', ?1, ?2, 'open', 2, NULL, 'eve', NULL, 0)",
                params![format!("wo-{i:04}"), i],
            )
            .unwrap();
        }
        main.execute("INSERT INTO meta VALUES ('seq', ?1)", [n])
            .unwrap();
        main
    }

    fn board_rows(board: &Connection) -> i64 {
        board
            .query_row("SELECT COUNT(*) FROM orders", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_copy_told_to_stop_keeps_what_it_copied_and_resumes_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let main = main_with_orders(450);
        let (mut board, copied) = open_board_file(&dir.path().join("b.db"), 450, 1).unwrap();
        assert_eq!(copied, 0);
        // A writer commits while the first hundred are copied.
        let mut asked = 0;
        let reached = copy_changes(&main, &mut board, 0, &mut || {
            asked += 1;
            false
        })
        .unwrap();
        assert_eq!((reached, asked, board_rows(&board)), (100, 1, 100));
        // Quiet again: the rest, from where it stopped, nothing twice and nothing skipped.
        let reached = copy_changes(&main, &mut board, reached, &mut || true).unwrap();
        assert_eq!((reached, board_rows(&board)), (450, 450));
        let open: i64 = board
            .query_row("SELECT n FROM counts WHERE status = 'open'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(open, 450, "the counts saw each order once");
    }
}
