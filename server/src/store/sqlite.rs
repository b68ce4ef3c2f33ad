//! The embedded SQLite backend: one writer connection behind a mutex (SQLite has one
//! writer anyway; the mutex makes server sequences contiguous per commit), and a small
//! pool of readers that WAL lets run beside it.

use std::cell::{RefCell, RefMut};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use fieldsync_proto::apply::{apply_op, conflict_entity, conflict_id};
use fieldsync_proto::maintenance;
use fieldsync_proto::report::checklist;
use fieldsync_proto::scope::{self, order_move, order_of, order_refs};
use fieldsync_proto::sla;
use fieldsync_proto::state::Version;
use fieldsync_proto::stock::{self, LocationInfo, StockContext};
use fieldsync_proto::validate::{authorize, validate_op, Target};
use fieldsync_proto::view::{self, OrderSummary, OrderView};
use fieldsync_proto::wire::{DigestResponse, EntityRef, PullPage, PushResponse, Rejection};
use fieldsync_proto::{
    DeviceId, EntityId, EntityKind, EntityState, Hlc, HlcClock, Op, OpError, OpKind, Role,
    SERVER_DEVICE,
};
use rusqlite::{
    params, params_from_iter, CachedStatement, Connection, OptionalExtension, ToSql, Transaction,
    TransactionBehavior,
};
use serde_json::value::RawValue;
use serde_json::Value;

use super::board::Board;
use super::{
    Actor, BoardPage, BoardQuery, BoardSort, Decision, DeviceInfo, MaintenanceRun, PersonInfo,
    ReceivedOp, ServerWrite, Store, StoreError, TimelineEntry, TokenStatus, UserRecord,
};

const WRITER_CACHE_KIB: i64 = 64 * 1024;
/// Prepared statements the writer connection keeps.
const WRITER_STATEMENTS_CACHED: usize = 64;
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_init.sql"),
    include_str!("../../migrations/0002_epoch.sql"),
    include_str!("../../migrations/0003_console.sql"),
    include_str!("../../migrations/0004_board_speed.sql"),
    include_str!("../../migrations/0005_board_read_model.sql"),
    include_str!("../../migrations/0006_asset_history.sql"),
    include_str!("../../migrations/0007_integer_keys.sql"),
    include_str!("../../migrations/0008_parked.sql"),
    include_str!("../../migrations/0009_lost_applied.sql"),
];
/// How long after a restore an op whose target is missing is parked instead of refused:
/// long enough for every device to come back online and re-send what the server lost.
pub const PARK_AFTER_RESTORE_MS: u64 = 7 * 24 * 3_600_000;
/// Parked ops retried after one write.
const PARKED_RETRY_MAX: i64 = 1_000;
/// The op log's mark for a parked op.
const PARKED_CODE: &str = "parked";
/// Idle reader connections kept open.
const READER_POOL_CONNECTIONS_MAX: usize = 8;
/// Orders returned by one list request.
const LIST_ORDERS_MAX: usize = 5_000;
/// Past orders of an asset that reach an engineer newly assigned to it (newest first):
/// the service history worth carrying offline. Later writes to older ones still arrive.
const ASSET_HISTORY_ORDERS_MAX: usize = 200;

pub struct SqliteStore {
    path: std::path::PathBuf,
    writer: Mutex<Writer>,
    readers: Mutex<Vec<Connection>>,
    /// The newest timestamp the server has seen, for pull pages.
    hlc: AtomicU64,
    /// The server sequence, published after each commit that moved it.
    changes: tokio::sync::watch::Sender<u64>,
    /// The console board's read model, following `entities` (see `board.rs`).
    board: Board,
}

struct Writer {
    conn: Connection,
    seq: u64,
    clock: HlcClock,
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // An ack means the op is on disk: FULL syncs the WAL on every commit.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let have: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if have > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "database schema version {have} is newer than this server ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(have) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}

fn meta(conn: &Connection, key: &str) -> Result<u64, StoreError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?
        .unwrap_or(0) as u64)
}

fn meta_cached(conn: &Connection, key: &str) -> Result<u64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |r| r.get::<_, i64>(0))
        .optional()?
        .unwrap_or(0) as u64)
}

fn parse_state(json: &str) -> Result<EntityState, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("entity state: {e}")))
}

fn parse_role(s: &str) -> Result<Role, StoreError> {
    Role::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown role {s:?}")))
}

/// The copies of fields the console's board, search and inbox indexes read (migration
/// 0005): computed here from the parsed state, so a write never re-parses its JSON.
struct BoardColumns {
    priority: Option<i64>,
    due_ms: Option<i64>,
    label: Option<String>,
    open_conflict: Option<i64>,
    cancelled: Option<i64>,
}

impl BoardColumns {
    fn of(state: &EntityState) -> BoardColumns {
        let order = state.kind == EntityKind::WorkOrder;
        let label = match state.kind {
            EntityKind::Customer | EntityKind::Site => state.str("name").map(str::to_owned),
            EntityKind::Asset => state
                .str("model")
                .map(|m| format!("{m} {}", state.str("serial").unwrap_or(""))),
            EntityKind::Part => state
                .str("sku")
                .map(|sku| format!("{sku} {}", state.str("name").unwrap_or(""))),
            _ => None,
        };
        BoardColumns {
            priority: order.then(|| state.i64("priority")).flatten(),
            due_ms: order
                .then(|| state.get("scheduled_end").and_then(Value::as_i64))
                .flatten(),
            label,
            open_conflict: (state.kind == EntityKind::Conflict && !state.bool("resolved"))
                .then_some(1),
            cancelled: order.then(|| i64::from(state.bool("cancelled"))),
        }
    }
}

/// The `entities` columns that indexes cover, as a write computes them from the state.
#[derive(PartialEq)]
struct IndexedColumns {
    order_id: Option<String>,
    assignee: Option<String>,
    customer_id: Option<String>,
    site_id: Option<String>,
    asset_id: Option<String>,
    label: Option<String>,
    open_conflict: Option<i64>,
}

impl IndexedColumns {
    /// `board`: the state's [`BoardColumns`], which hold two of these.
    fn of(state: &EntityState, board: &BoardColumns) -> IndexedColumns {
        let order = state.kind == EntityKind::WorkOrder;
        let s = |f: &str| order.then(|| state.str(f).map(str::to_owned)).flatten();
        // A consumption or return names its order without being the order's child (it is
        // scoped by its van): the column still files it under the order, so the order's
        // view and timeline list it; `children` leaves it out of reassignments.
        let order_id = match state.kind {
            EntityKind::StockMovement => state.str("order_id").map(str::to_owned),
            _ => order_of(state).map(|o| o.0),
        };
        IndexedColumns {
            order_id,
            assignee: s("assignee"),
            customer_id: s("customer_id"),
            site_id: s("site_id"),
            asset_id: s("asset_id"),
            label: board.label.clone(),
            open_conflict: board.open_conflict,
        }
    }
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let mut conn = Connection::open(path)?;
        configure(&conn)?;
        // The single writer gets a large page cache (negative = KiB): a push batch touches
        // the entity, feed and op-log indexes at once, and the default 2 MiB thrashes once
        // a few thousand orders exist. Readers keep the default so the pool stays small.
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
        // A push alone runs a dozen distinct statements: with rusqlite's default of 16
        // cached, console, import and maintenance writes evicted and re-prepared them.
        conn.set_prepared_statement_cache_capacity(WRITER_STATEMENTS_CACHED);
        migrate(&mut conn)?;
        let seq = meta(&conn, "seq")?;
        let hlc = Hlc(meta(&conn, "hlc")?);
        let board = Board::open(path, &conn)?;
        Ok(SqliteStore {
            path: path.to_owned(),
            writer: Mutex::new(Writer {
                conn,
                seq,
                clock: HlcClock::new(hlc),
            }),
            readers: Mutex::new(Vec::new()),
            hlc: AtomicU64::new(hlc.0),
            changes: tokio::sync::watch::Sender::new(seq),
            board,
        })
    }

    fn read<R>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let pooled = self.readers.lock().expect("reader pool").pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open(&self.path)?;
                configure(&c)?;
                let board = self.board.path().to_string_lossy().into_owned();
                c.execute("ATTACH DATABASE ?1 AS board", [board])?;
                c
            }
        };
        let out = f(&conn);
        let mut pool = self.readers.lock().expect("reader pool");
        if pool.len() < READER_POOL_CONNECTIONS_MAX {
            pool.push(conn);
        }
        out
    }

    fn write<R>(
        &self,
        f: impl FnOnce(&mut WriteTx<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut guard = self.writer.lock().expect("writer");
        let Writer { conn, seq, clock } = &mut *guard;
        // Immediate: take the write lock first, so what we read below cannot change under us.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Another process may have written since our last commit (`user add`, `maintenance
        // run`, a second server on this data dir): go on from its sequence and clock, so no
        // feed position or version is handed out twice.
        let (db_seq, db_hlc) = (meta_cached(&tx, "seq")?, meta_cached(&tx, "hlc")?);
        *seq = (*seq).max(db_seq);
        if db_hlc > clock.last().0 {
            *clock = HlcClock::new(Hlc(db_hlc));
        }
        let start_seq = *seq;
        let start_clock = *clock;
        let mut w = WriteTx {
            tx: &tx,
            seq: *seq,
            clock: *clock,
            users_seen: HashSet::new(),
            hot: Default::default(),
        };
        let out = f(&mut w);
        let (new_seq, new_clock) = (w.seq, w.clock);
        // Its statements go back to the cache before the commit.
        drop(w);
        let out = out.and_then(|r| {
            if new_seq != start_seq {
                set_meta(&tx, "seq", new_seq)?;
            }
            if new_clock != start_clock {
                set_meta(&tx, "hlc", new_clock.last().0)?;
            }
            tx.commit()?;
            Ok(r)
        });
        if out.is_ok() {
            *seq = new_seq;
            *clock = new_clock;
            self.hlc.store(new_clock.last().0, Ordering::Release);
            if new_seq != start_seq {
                // After the commit, so whoever wakes up reads the new rows.
                self.changes.send_replace(new_seq);
                self.board.committed(new_seq);
            }
        }
        out
    }
}

fn set_meta(tx: &Transaction<'_>, key: &str, value: u64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, value as i64])?;
    Ok(())
}

/// The statements a push runs for every op. `prepare_cached` hashes the whole SQL text
/// on every call and moves the statement out of and back into its LRU list: about a
/// twentieth of a push's instructions. A transaction takes each from the cache once and
/// keeps it until it ends.
#[derive(Clone, Copy)]
enum Hot {
    Load,
    SaveUpdate,
    SaveInsert,
    FeedPut,
    Held,
    LogOp,
}

impl Hot {
    const COUNT: usize = 6;

    fn sql(self) -> &'static str {
        match self {
            Hot::Load => "SELECT n, state FROM entities WHERE kind = ?1 AND id = ?2",
            Hot::SaveUpdate => {
                "UPDATE entities SET status = ?2, state = ?3, seq = ?4, priority = ?5,
                   due_ms = ?6, cancelled = ?7
                 WHERE n = ?1"
            }
            Hot::SaveInsert => {
                "INSERT INTO entities (kind, id, order_id, assignee, status, customer_id, site_id, asset_id, state, seq,
                                       priority, due_ms, label, open_conflict, cancelled)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
            }
            Hot::FeedPut => {
                "INSERT INTO feed (ent, user, seq, gone) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (ent, user) DO UPDATE SET seq = excluded.seq, gone = excluded.gone"
            }
            Hot::Held => "INSERT OR IGNORE INTO held (ent, user) VALUES (?1, ?2)",
            Hot::LogOp => {
                "INSERT INTO ops (dev, seq, user, kind, id, ent, hlc, body, received_ms, reject_code,
                                  reject_message)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            }
        }
    }
}

/// One write transaction with the server sequence and clock it advances.
struct WriteTx<'a> {
    tx: &'a Transaction<'a>,
    seq: u64,
    clock: HlcClock,
    /// Users this transaction has already found in the users table: a batch assigns
    /// its orders to a few engineers, so one lookup each instead of one per op.
    users_seen: HashSet<String>,
    hot: [RefCell<Option<CachedStatement<'a>>>; Hot::COUNT],
}

impl<'a> WriteTx<'a> {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// One of the per-op statements, prepared once per transaction.
    fn hot(&self, h: Hot) -> Result<RefMut<'_, CachedStatement<'a>>, StoreError> {
        let mut slot = self.hot[h as usize].borrow_mut();
        if slot.is_none() {
            *slot = Some(self.tx.prepare_cached(h.sql())?);
        }
        Ok(RefMut::map(slot, |s| s.as_mut().expect("prepared above")))
    }

    fn load(&self, kind: EntityKind, id: &str) -> Result<Option<EntityState>, StoreError> {
        Ok(self.load_row(kind, id)?.map(|(_, s)| s))
    }

    /// The entity's number (feed and op-log rows point at it) and state.
    fn load_row(
        &self,
        kind: EntityKind,
        id: &str,
    ) -> Result<Option<(i64, EntityState)>, StoreError> {
        let row: Option<(i64, String)> = self
            .hot(Hot::Load)?
            .query_row(params![kind.as_str(), id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        row.map(|(n, j)| Ok((n, parse_state(&j)?))).transpose()
    }

    /// The number of an entity named by kind and id, if it exists.
    fn ent(&self, kind: EntityKind, id: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .tx
            .prepare_cached("SELECT n FROM entities WHERE kind = ?1 AND id = ?2")?
            .query_row(params![kind.as_str(), id], |r| r.get(0))
            .optional()?)
    }

    /// Whether `user` held work order `order` at event time `hlc`: they held it once and
    /// it was reassigned after `hlc`. Work done on site before a reassignment reached the
    /// device is still that engineer's work, and must not be lost.
    fn held_at(&self, user: &str, order: Option<&EntityId>, hlc: Hlc) -> Result<bool, StoreError> {
        let Some(order) = order else {
            return Ok(false);
        };
        let held_once = self
            .tx
            .prepare_cached(
                "SELECT 1 FROM held
                 WHERE ent = (SELECT n FROM entities WHERE kind = 'work_order' AND id = ?2)
                   AND user = ?1",
            )?
            .query_row(params![user, order.as_str()], |_| Ok(()))
            .optional()?
            .is_some();
        if !held_once {
            return Ok(false);
        }
        let reassigned = self
            .load(EntityKind::WorkOrder, order.as_str())?
            .and_then(|o| o.version("assignee"));
        Ok(reassigned.is_some_and(|v| hlc < v.hlc))
    }

    fn in_feed(&self, user: &str, kind: EntityKind, id: &str) -> Result<bool, StoreError> {
        in_feed(self.tx, user, kind, id)
    }

    fn holder_of(&self, order_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .tx
            .prepare_cached("SELECT assignee FROM entities WHERE kind = 'work_order' AND id = ?1")?
            .query_row([order_id], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten())
    }

    /// Entity number `ent` enters (or, `gone`, leaves) `user`'s feed at the next sequence.
    fn feed_put(&mut self, user: &str, ent: i64, gone: bool) -> Result<(), StoreError> {
        let seq = self.next_seq();
        self.hot(Hot::FeedPut)?
            .execute(params![ent, user, seq as i64, gone])?;
        Ok(())
    }

    /// [`Self::feed_put`] for an entity named by kind and id (one an order refers to). One
    /// that does not exist has nothing to send.
    fn feed_put_ref(
        &mut self,
        user: &str,
        kind: EntityKind,
        id: &str,
        gone: bool,
    ) -> Result<(), StoreError> {
        match self.ent(kind, id)? {
            Some(ent) => self.feed_put(user, ent, gone),
            None => Ok(()),
        }
    }

    /// The numbers of an order's records.
    fn children(&self, order_id: &str) -> Result<Vec<i64>, StoreError> {
        Ok(self
            .tx
            .prepare_cached(
                "SELECT n FROM entities WHERE order_id = ?1
                 AND kind NOT IN ('work_order', 'stock_movement')",
            )?
            .query_map([order_id], |r| r.get(0))?
            .collect::<Result<_, _>>()?)
    }

    /// Whether `user` still holds an order (other than `except`) that refers to `r`.
    fn still_referenced(
        &self,
        user: &str,
        r: &(EntityKind, EntityId),
        except: &str,
    ) -> Result<bool, StoreError> {
        let column = match r.0 {
            EntityKind::Customer => "customer_id",
            EntityKind::Site => "site_id",
            _ => "asset_id",
        };
        let sql = format!(
            "SELECT 1 FROM entities WHERE kind = 'work_order' AND assignee = ?1 AND {column} = ?2 AND id != ?3 LIMIT 1"
        );
        Ok(self
            .tx
            .prepare_cached(&sql)?
            .query_row(params![user, r.1.as_str(), except], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Write `after` over `before` (with its number), keep the feeds in step, and return
    /// the entity's number.
    fn save(
        &mut self,
        before: Option<(i64, &EntityState)>,
        after: &EntityState,
    ) -> Result<i64, StoreError> {
        let seq = self.next_seq();
        let json = serde_json::to_string(after).expect("entity state serialises");
        let is_order = after.kind == EntityKind::WorkOrder;
        let status = is_order.then(|| view::status(after));
        let board = BoardColumns::of(after);
        let keys = IndexedColumns::of(after, &board);
        let unmoved = before.filter(|(_, b)| IndexedColumns::of(b, &BoardColumns::of(b)) == keys);
        if let Some((n, b)) = unmoved {
            // Most edits change no indexed column: leaving them out of the SET list spares
            // SQLite rewriting those indexes' entries (it skips only columns not assigned).
            self.hot(Hot::SaveUpdate)?.execute(params![
                n,
                status,
                json,
                seq as i64,
                board.priority,
                board.due_ms,
                board.cancelled,
            ])?;
            self.fan_out(n, Some(b), after)?;
            return Ok(n);
        }
        // No upsert: `before` comes from a lookup in this transaction, so the row's
        // existence is known (and a duplicate INSERT fails rather than overwrites). An
        // upsert with `RETURNING n` cost twice an INSERT per new entity.
        let seq = seq as i64;
        // Every column the row holds, in the order both statements number them after its
        // key (`n`, or kind and id).
        let columns: [&dyn ToSql; 13] = [
            &keys.order_id,
            &keys.assignee,
            &status,
            &keys.customer_id,
            &keys.site_id,
            &keys.asset_id,
            &json,
            &seq,
            &board.priority,
            &board.due_ms,
            &keys.label,
            &keys.open_conflict,
            &board.cancelled,
        ];
        let n = match before {
            Some((n, _)) => {
                self.tx
                    .prepare_cached(
                        "UPDATE entities SET order_id = ?2, assignee = ?3, status = ?4,
                           customer_id = ?5, site_id = ?6, asset_id = ?7, state = ?8, seq = ?9,
                           priority = ?10, due_ms = ?11, label = ?12, open_conflict = ?13,
                           cancelled = ?14
                         WHERE n = ?1",
                    )?
                    .execute(params_from_iter(
                        std::iter::once(&n as &dyn ToSql).chain(columns),
                    ))?;
                n
            }
            None => {
                let (kind, id) = (after.kind.as_str(), after.id.as_str());
                self.hot(Hot::SaveInsert)?.execute(params_from_iter(
                    [&kind as &dyn ToSql, &id].into_iter().chain(columns),
                ))?;
                self.tx.last_insert_rowid()
            }
        };
        self.fan_out(n, before.map(|(_, b)| b), after)?;
        Ok(n)
    }

    /// Keep every engineer's feed in step with this write: the changed entity for whoever
    /// holds it, and on reassignment everything hanging off the order for the new holder
    /// and a departure for the old one.
    fn fan_out(
        &mut self,
        n: i64,
        before: Option<&EntityState>,
        after: &EntityState,
    ) -> Result<(), StoreError> {
        let id = after.id.as_str();
        match after.kind {
            EntityKind::WorkOrder => {
                let m = order_move(before, after);
                let asset_before = before.and_then(|b| b.str("asset_id"));
                let asset_after = after.str("asset_id");
                let (held_before, held_after) =
                    (before.and_then(scope::holder), scope::holder(after));
                // Who sees the order: its holder, and whoever holds another order on its
                // asset (the asset's service history). Those who start seeing it get its
                // records too; those who stop get departures.
                let mut seen_before: BTreeSet<String> =
                    held_before.into_iter().map(str::to_owned).collect();
                if let Some(a) = asset_before {
                    seen_before.extend(self.asset_holders(a, id)?);
                }
                let mut seen_after: BTreeSet<String> =
                    held_after.into_iter().map(str::to_owned).collect();
                if let Some(a) = asset_after {
                    seen_after.extend(self.asset_holders(a, id)?);
                }
                for u in &seen_after {
                    self.feed_put(u, n, false)?;
                    // A new order has no records yet: their creates need it to exist.
                    if before.is_some() && !seen_before.contains(u) {
                        for child in self.children(id)? {
                            self.feed_put(u, child, false)?;
                        }
                    }
                }
                for u in seen_before.difference(&seen_after) {
                    self.feed_put(u, n, true)?;
                    for child in self.children(id)? {
                        self.feed_put(u, child, true)?;
                    }
                }
                if let Some(h) = &m.holder {
                    if m.entered {
                        // Recorded once per holding, not on every write.
                        self.hot(Hot::Held)?.execute(params![n, h])?;
                    }
                    let arriving = if m.entered {
                        order_refs(after)
                    } else {
                        m.refs_added.clone()
                    };
                    for (kind, rid) in arriving {
                        self.feed_put_ref(h, kind, rid.as_str(), false)?;
                    }
                    if !m.entered {
                        for r in &m.refs_removed {
                            if !self.still_referenced(h, r, id)? {
                                self.feed_put_ref(h, r.0, r.1.as_str(), true)?;
                            }
                        }
                    }
                }
                if let Some(l) = &m.left {
                    for r in before.map(order_refs).unwrap_or_default() {
                        if !self.still_referenced(l, &r, id)? {
                            self.feed_put_ref(l, r.0, r.1.as_str(), true)?;
                        }
                    }
                }
                // The asset's history follows its holders: one new to the asset receives
                // its other orders; one who no longer holds any order on it loses them.
                if let (Some(h), Some(a)) = (held_after, asset_after) {
                    let had = held_before == Some(h) && asset_before == Some(a);
                    let asset = (EntityKind::Asset, EntityId::from(a));
                    if !had && !self.still_referenced(h, &asset, id)? {
                        for (o, oid) in self.asset_orders(a, id, ASSET_HISTORY_ORDERS_MAX)? {
                            self.feed_with_children(h, o, &oid, false)?;
                        }
                    }
                }
                if let (Some(h), Some(a)) = (held_before, asset_before) {
                    let has = held_after == Some(h) && asset_after == Some(a);
                    let asset = (EntityKind::Asset, EntityId::from(a));
                    if !has && !self.still_referenced(h, &asset, id)? {
                        for (o, oid) in self.asset_orders(a, id, usize::MAX)? {
                            self.feed_with_children(h, o, &oid, true)?;
                        }
                    }
                }
            }
            EntityKind::Customer | EntityKind::Site | EntityKind::Asset => {
                let column = match after.kind {
                    EntityKind::Customer => "customer_id",
                    EntityKind::Site => "site_id",
                    _ => "asset_id",
                };
                let sql = format!(
                    "SELECT DISTINCT assignee FROM entities
                     WHERE kind = 'work_order' AND {column} = ?1 AND assignee IS NOT NULL"
                );
                let holders: Vec<String> = self
                    .tx
                    .prepare_cached(&sql)?
                    .query_map([id], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                for h in holders {
                    self.feed_put(&h, n, false)?;
                }
            }
            EntityKind::StockLocation => {
                for engineer in self.engineers()? {
                    self.feed_put(&engineer, n, false)?;
                }
                self.van_moved(before, after)?;
            }
            kind if kind.broadcast() => {
                for engineer in self.engineers()? {
                    self.feed_put(&engineer, n, false)?;
                }
            }
            kind if kind.located() => {
                for engineer in self.van_holders(after)? {
                    self.feed_put(&engineer, n, false)?;
                }
            }
            _ => {
                if let Some(order) = order_of(after) {
                    let (holder, asset) = self.holder_and_asset(order.as_str())?;
                    let mut seen: BTreeSet<String> = holder.into_iter().collect();
                    if let Some(a) = asset {
                        seen.extend(self.asset_holders(&a, "")?);
                    }
                    for u in seen {
                        self.feed_put(&u, n, false)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The engineers holding an order on `asset` other than `except`: they hold its
    /// service history.
    fn asset_holders(&self, asset: &str, except: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .tx
            .prepare_cached(
                "SELECT DISTINCT assignee FROM entities
                 WHERE kind = 'work_order' AND asset_id = ?1 AND id != ?2 AND assignee IS NOT NULL",
            )?
            .query_map(params![asset, except], |r| r.get(0))?
            .collect::<Result<_, _>>()?)
    }

    /// The orders on `asset` other than `except` (number and id), newest first, at most
    /// `max`.
    fn asset_orders(
        &self,
        asset: &str,
        except: &str,
        max: usize,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        Ok(self
            .tx
            .prepare_cached(
                "SELECT n, id FROM entities WHERE kind = 'work_order' AND asset_id = ?1 AND id != ?2
                 ORDER BY seq DESC LIMIT ?3",
            )?
            .query_map(
                params![asset, except, max.min(i64::MAX as usize) as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .collect::<Result<_, _>>()?)
    }

    /// An order and every record on it, entering (or leaving) `user`'s feed.
    fn feed_with_children(
        &mut self,
        user: &str,
        order: i64,
        order_id: &str,
        gone: bool,
    ) -> Result<(), StoreError> {
        self.feed_put(user, order, gone)?;
        for child in self.children(order_id)? {
            self.feed_put(user, child, gone)?;
        }
        Ok(())
    }

    /// Who holds a stock record: the crew of every van it names, and the holder of the
    /// order it names (a faulty part taken out of the customer's equipment leaves no van,
    /// yet it is that engineer's record).
    fn van_holders(&self, state: &EntityState) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        if let Some(order) = state.str("order_id") {
            out.extend(self.holder_of(order)?);
        }
        for l in self.locations(&stock::location_refs(state))? {
            for e in l.engineers.into_iter().filter(|_| l.van) {
                if !out.contains(&e) {
                    out.push(e);
                }
            }
        }
        Ok(out)
    }

    fn locations(&self, ids: &[EntityId]) -> Result<Vec<LocationInfo>, StoreError> {
        let mut out = Vec::new();
        for id in ids {
            if let Some(l) = self.load(EntityKind::StockLocation, id.as_str())? {
                out.extend(LocationInfo::of(&l));
            }
        }
        Ok(out)
    }

    /// A van handed to another engineer: its records follow it. A full scan of the stock
    /// records, which is fine for something a dispatcher does a few times a year.
    fn van_moved(
        &mut self,
        before: Option<&EntityState>,
        after: &EntityState,
    ) -> Result<(), StoreError> {
        let crew = |s: Option<&EntityState>| {
            s.and_then(LocationInfo::of)
                .filter(|l| l.van)
                .map(|l| l.engineers)
                .unwrap_or_default()
        };
        let (old, new) = (crew(before), crew(Some(after)));
        let joined: Vec<&String> = new.iter().filter(|e| !old.contains(e)).collect();
        let left: Vec<&String> = old.iter().filter(|e| !new.contains(e)).collect();
        if joined.is_empty() && left.is_empty() {
            return Ok(());
        }
        let records: Vec<i64> = self
            .tx
            .prepare_cached(
                "SELECT n FROM entities
                 WHERE kind IN ('stock_movement', 'requisition', 'stock_min') AND ?1 IN (
                   json_extract(state, '$.fields.from_location.v'),
                   json_extract(state, '$.fields.to_location.v'),
                   json_extract(state, '$.fields.van_id.v'),
                   json_extract(state, '$.fields.location_id.v'))",
            )?
            .query_map([after.id.as_str()], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for ent in records {
            for n in &joined {
                self.feed_put(n, ent, false)?;
            }
            for o in &left {
                self.feed_put(o, ent, true)?;
            }
        }
        Ok(())
    }

    fn holder_and_asset(
        &self,
        order_id: &str,
    ) -> Result<(Option<String>, Option<String>), StoreError> {
        Ok(self
            .tx
            .prepare_cached(
                "SELECT assignee, asset_id FROM entities WHERE kind = 'work_order' AND id = ?1",
            )?
            .query_row([order_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .unwrap_or((None, None)))
    }

    /// The stock rules (`stock::check_located`) with what this store knows: the locations,
    /// part and order the record names, and whether the author may write to that order.
    fn check_stock(
        &self,
        user: &str,
        role: Role,
        dev: DeviceId,
        op: &Op,
        current: Option<&EntityState>,
    ) -> Result<Option<OpError>, StoreError> {
        let after = apply_op(current, op, dev, user).state;
        let locations = self.locations(&stock::location_refs(&after))?;
        let part = match after.str("part_id") {
            Some(p) => self.load(EntityKind::Part, p)?,
            None => None,
        };
        let order_ok = match op.fields.get("order_id").and_then(Value::as_str) {
            None => true,
            Some(o) => {
                self.load(EntityKind::WorkOrder, o)?.is_some()
                    && (role != Role::Engineer
                        || self.in_feed(user, EntityKind::WorkOrder, o)?
                        || self.held_at(user, Some(&EntityId::from(o)), op.hlc)?)
            }
        };
        let ctx = StockContext {
            user,
            role,
            locations: &locations,
            part: part.as_ref(),
            order_ok,
            current,
        };
        Ok(stock::check_located(op, &ctx).err())
    }

    /// One van per engineer (a crew may share one), and a van's crew are engineers.
    fn check_van(
        &self,
        op: &Op,
        current: Option<&EntityState>,
    ) -> Result<Option<OpError>, StoreError> {
        let after = apply_op(current, op, SERVER_DEVICE, "").state;
        let Some(van) = LocationInfo::of(&after).filter(|l| l.van) else {
            return Ok(None);
        };
        let others: Vec<String> = self
            .tx
            .prepare_cached(
                "SELECT state FROM entities WHERE kind = 'stock_location' AND id != ?1",
            )?
            .query_map([op.id.as_str()], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let others: Vec<LocationInfo> = others
            .iter()
            .map(|j| parse_state(j))
            .collect::<Result<Vec<_>, _>>()?
            .iter()
            .filter_map(LocationInfo::of)
            .collect();
        for engineer in &van.engineers {
            let role: Option<String> = self
                .tx
                .prepare_cached("SELECT role FROM users WHERE name = ?1")?
                .query_row([engineer], |r| r.get(0))
                .optional()?;
            if role.as_deref() != Some("engineer") {
                return Ok(Some(OpError::new(
                    "unknown_user",
                    format!("a van's crew are engineers; {engineer:?} is not one"),
                )));
            }
            if let Some(other) = others.iter().find(|l| l.is_van_of(engineer)) {
                return Ok(Some(OpError::new(
                    "invalid_value",
                    format!("{engineer} already has a van ({})", other.name),
                )));
            }
        }
        Ok(None)
    }

    fn engineers(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .tx
            .prepare_cached("SELECT name FROM users WHERE role = 'engineer'")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?)
    }

    /// A new engineer's feed starts with every broadcast entity (the parts catalog), each
    /// under its own sequence so pull pages never split a run of equal cursors.
    fn feed_broadcast_to(&mut self, user: &str) -> Result<(), StoreError> {
        for kind in EntityKind::ALL.into_iter().filter(|k| k.broadcast()) {
            let ents: Vec<i64> = self
                .tx
                .prepare_cached("SELECT n FROM entities WHERE kind = ?1 ORDER BY id")?
                .query_map([kind.as_str()], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            for ent in ents {
                self.feed_put(user, ent, false)?;
            }
        }
        Ok(())
    }

    /// Validate, authorise and apply one op. `Err(_)` in the outcome is a permanent
    /// refusal; beside it, the number of the op's entity if it exists (the op log files
    /// the op under it).
    fn apply(
        &mut self,
        user: &str,
        role: Role,
        dev: DeviceId,
        op: &Op,
        now_ms: u64,
    ) -> Result<(Option<i64>, Result<(), OpError>), StoreError> {
        if let Err(e) = validate_op(op, role) {
            return Ok((self.ent(op.kind, op.id.as_str())?, Err(e)));
        }
        self.clock.observe(op.hlc, now_ms);
        let row = self.load_row(op.kind, op.id.as_str())?;
        let mut ent = row.as_ref().map(|(n, _)| *n);
        let current = row.as_ref().map(|(_, s)| s);
        let link = op.order_link();
        let located = op.kind.located();
        // A stock record is scoped by its van, not an order: `check_stock` below decides
        // whether an engineer's create concerns their own van.
        let in_scope = role != Role::Engineer
            || (located
                && (op.op == OpKind::Create || self.in_feed(user, op.kind, op.id.as_str())?))
            || {
                let order = match op.op {
                    OpKind::Set => current.and_then(order_of),
                    OpKind::Create => link.clone(),
                };
                // An order and its records are the holder's to write. Being in the feed is
                // not enough: the feed also holds the asset's past orders, to read.
                let order_scoped =
                    op.kind == EntityKind::WorkOrder || op.kind.spec().order_link.is_some();
                let now_in = match (&order, op.op) {
                    (Some(o), _) if order_scoped => {
                        self.holder_of(o.as_str())?.as_deref() == Some(user)
                    }
                    (_, OpKind::Set) if !order_scoped => {
                        self.in_feed(user, op.kind, op.id.as_str())?
                    }
                    _ => false,
                };
                now_in
                    || self.held_at(user, order.as_ref(), op.hlc)?
                    || self.applied_before_restore(dev, op.seq, now_ms)?
            };
        let target = Target {
            exists: current.is_some(),
            in_scope,
        };
        if let Err(e) = authorize(op, role, target) {
            return Ok((ent, Err(e)));
        }
        if located {
            if let Some(e) = self.check_stock(user, role, dev, op, current)? {
                return Ok((ent, Err(e)));
            }
        }
        if op.kind == EntityKind::StockLocation {
            if let Some(e) = self.check_van(op, current)? {
                return Ok((ent, Err(e)));
            }
        }
        if let Some(e) = self.check_refs(op, link.as_ref())? {
            return Ok((ent, Err(e)));
        }
        if let Some(e) = self.check_report(op, link.as_ref())? {
            return Ok((ent, Err(e)));
        }
        let applied = apply_op(current, op, dev, user);
        if !applied.changed.is_empty() {
            let before = row.as_ref().map(|(n, s)| (*n, s));
            ent = Some(self.save(before, &applied.state)?);
        }
        let order = order_of(&applied.state);
        for c in &applied.conflicts {
            let cid = conflict_id(dev, op.seq, &c.field);
            if self.load(EntityKind::Conflict, cid.as_str())?.is_some() {
                continue;
            }
            let ver = Version {
                hlc: self.clock.tick(now_ms),
                dev: SERVER_DEVICE,
            };
            let entity = conflict_entity(cid, c, &applied.state, order.as_ref(), ver);
            self.save(None, &entity)?;
        }
        Ok((ent, Ok(())))
    }

    fn user_exists(&mut self, name: &str) -> Result<bool, StoreError> {
        if self.users_seen.contains(name) {
            return Ok(true);
        }
        let known = self
            .tx
            .prepare_cached("SELECT 1 FROM users WHERE name = ?1")?
            .query_row([name], |_| Ok(()))
            .optional()?
            .is_some();
        if known {
            self.users_seen.insert(name.to_owned());
        }
        Ok(known)
    }

    /// References that must point at something real: a child's work order, an assignee.
    fn check_refs(
        &mut self,
        op: &Op,
        link: Option<&EntityId>,
    ) -> Result<Option<OpError>, StoreError> {
        if op.op == OpKind::Create && op.kind != EntityKind::WorkOrder {
            if let Some(order) = link {
                if self.load(EntityKind::WorkOrder, order.as_str())?.is_none() {
                    return Ok(Some(OpError::new(
                        "not_found",
                        format!("no work order with id {order}"),
                    )));
                }
            }
        }
        let spec = op.kind.spec();
        for (name, value) in &op.fields {
            let (Some(field), Some(id)) = (spec.field(name), value.as_str()) else {
                continue;
            };
            if let fieldsync_proto::schema::FieldType::Ref(kind) = field.ty {
                if kind != EntityKind::WorkOrder && self.load(kind, id)?.is_none() {
                    return Ok(Some(OpError::new(
                        "not_found",
                        format!("{name} refers to no {kind} with id {id}"),
                    )));
                }
            }
        }
        if op.kind == EntityKind::WorkOrder {
            if let Some(name) = op.fields.get("assignee").and_then(Value::as_str) {
                if !self.user_exists(name)? {
                    return Ok(Some(OpError::new(
                        "unknown_user",
                        format!("cannot assign to {name:?}: no such user"),
                    )));
                }
            }
        }
        Ok(None)
    }

    /// SLA at intake: the contract in force for a new order (unless the dispatcher named
    /// one), the report time and the deadlines it promises. Fields the writer gave win.
    fn intake(&self, fields: &mut BTreeMap<String, Value>, now_ms: u64) -> Result<(), StoreError> {
        let reported_at = fields
            .get("reported_at")
            .and_then(Value::as_u64)
            .unwrap_or(now_ms);
        let contract = match fields.get("contract_id").and_then(Value::as_str) {
            Some(id) => self.load(EntityKind::Contract, id)?,
            None => {
                let contracts: Vec<EntityState> = self
                    .tx
                    .prepare_cached("SELECT state FROM entities WHERE kind = 'contract'")?
                    .query_map([], |r| r.get::<_, String>(0))?
                    .map(|j| parse_state(&j?))
                    .collect::<Result<_, _>>()?;
                sla::order::contract_for(&contracts, fields, reported_at).cloned()
            }
        };
        let Some(contract) = contract else {
            return Ok(());
        };
        let tier = match fields.get("customer_id").and_then(Value::as_str) {
            Some(c) => self
                .load(EntityKind::Customer, c)?
                .and_then(|c| c.str("tier").map(str::to_owned)),
            None => None,
        };
        let priority = fields
            .get("priority")
            .and_then(Value::as_u64)
            .and_then(|p| u8::try_from(p).ok())
            .unwrap_or(0);
        let given = sla::order::intake_fields(
            &contract,
            priority,
            tier.as_deref().unwrap_or("standard"),
            reported_at,
        );
        for (k, v) in given {
            fields.entry(k).or_insert(v);
        }
        Ok(())
    }

    /// Report records checked against what they refer to: an answer against its checklist
    /// template (the agent runs the same `check_answer` offline), a sign-off against the
    /// photo record holding its signature.
    fn check_report(
        &self,
        op: &Op,
        link: Option<&EntityId>,
    ) -> Result<Option<OpError>, StoreError> {
        if op.op != OpKind::Create {
            return Ok(None);
        }
        let s = |k: &str| op.fields.get(k).and_then(Value::as_str).unwrap_or_default();
        match op.kind {
            EntityKind::ChecklistAnswer => {
                let template = self.load(EntityKind::ChecklistTemplate, s("template_id"))?;
                Ok(checklist::check_answer(
                    template.as_ref(),
                    s("template_id"),
                    s("item"),
                    s("value"),
                )
                .err())
            }
            EntityKind::Signoff => {
                let photo = self.load(EntityKind::Photo, s("signature_photo"))?;
                let fits = photo.is_some_and(|p| {
                    p.str("hash") == Some(s("signature"))
                        && p.str("order_id") == link.map(EntityId::as_str)
                });
                Ok((!fits).then(|| {
                    OpError::new(
                        "invalid_value",
                        format!(
                            "sign-off {}: photo {} is not this order's signature image {}",
                            op.id,
                            s("signature_photo"),
                            s("signature")
                        ),
                    )
                }))
            }
            EntityKind::ContactLog => {
                let order = match link {
                    Some(o) => self.load(EntityKind::WorkOrder, o.as_str())?,
                    None => None,
                };
                Ok(fieldsync_proto::contact::check_order_customer(op, order.as_ref()).err())
            }
            _ => Ok(None),
        }
    }

    /// A write made on the server (console, API, import) as the server device's next op.
    fn server_op(
        &mut self,
        actor: &Actor,
        write: ServerWrite,
        now_ms: u64,
    ) -> Result<Result<(), OpError>, StoreError> {
        let mut write = write;
        if write.create && write.kind == EntityKind::WorkOrder {
            self.intake(&mut write.fields, now_ms)?;
        }
        let seq = 1 + self
            .tx
            .prepare_cached("SELECT acked_seq FROM devices WHERE id = 0")?
            .query_row([], |r| r.get::<_, i64>(0))? as u64;
        let mut base = write.base;
        if !write.create && base.is_empty() {
            // No base given: the writer looked at the current server state, which is
            // what every console and API read shows. Conflicts are still recorded for
            // any device op that arrives later without having seen this write.
            if let Some(cur) = self.load(write.kind, write.id.as_str())? {
                base = write
                    .fields
                    .keys()
                    .filter_map(|f| cur.version(f).map(|v| (f.clone(), v)))
                    .collect();
            }
        }
        let op = Op {
            seq,
            kind: write.kind,
            id: write.id,
            hlc: self.clock.tick(now_ms),
            op: if write.create {
                OpKind::Create
            } else {
                OpKind::Set
            },
            fields: write.fields,
            base,
        };
        let (ent, outcome) = self.apply(&actor.user, actor.role, SERVER_DEVICE, &op, now_ms)?;
        if outcome.is_ok() {
            self.log_server_op(&actor.user, &op, ent, now_ms)?;
            self.tx.execute(
                "UPDATE devices SET acked_seq = ?1 WHERE id = 0",
                [seq as i64],
            )?;
            // An assignment made here can be what a parked op waits for.
            self.retry_parked(now_ms)?;
        }
        Ok(outcome)
    }

    /// Log an op the server made itself (it has no received text).
    fn log_server_op(
        &self,
        user: &str,
        op: &Op,
        ent: Option<i64>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(op).expect("op serialises");
        self.log_op(SERVER_DEVICE, user, op, ent, &body, now_ms, &Ok(()))
    }

    /// Whether `op`, refused for a missing target, may be waiting for a re-send, within the
    /// window after a restore: it is on something the restore took away and nobody has
    /// re-sent yet, or on what a parked op writes. Anything else is judged on arrival.
    /// When the op was written does not matter: a device offline at the restore goes on
    /// working on the history it last pulled until its next sync tells it (seed 1214).
    /// `parked_as` is the op's own place in the parked queue when it is being retried:
    /// only ops parked before it hold it back, else two ops on one entity would wait for
    /// each other until the window closed.
    fn parking_open(
        &self,
        op: &Op,
        parked_as: Option<ParkedAt>,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        if !self.restore_window_open(now_ms)? {
            return Ok(false);
        }
        let order = match op.order_link() {
            Some(o) => Some(o),
            None => self
                .load(op.kind, op.id.as_str())?
                .as_ref()
                .and_then(order_of),
        };
        // Without the replaced database (a disaster restore) anything may have been lost.
        let lost_unknown = meta(self.tx, "lost_known")? == 0;
        let before = parked_as.unwrap_or((i64::MAX, DeviceId::MAX, i64::MAX));
        let targets = std::iter::once((op.kind, op.id.as_str()))
            .chain(order.as_ref().map(|o| (EntityKind::WorkOrder, o.as_str())));
        for (kind, id) in targets {
            // An op on what a parked op creates or changes waits with it, whenever written.
            let waits_on_parked = self
                .tx
                .prepare_cached(
                    // From the few parked rows, not the op log, whatever its indexes.
                    "SELECT 1 FROM parked p CROSS JOIN ops o ON o.dev = p.dev AND o.seq = p.seq
                     WHERE o.kind = ?1 AND o.id = ?2
                       AND (p.parked_ms, p.dev, p.seq) < (?3, ?4, ?5)
                     LIMIT 1",
                )?
                .query_row(
                    params![kind.as_str(), id, before.0, before.1, before.2],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            // Only what a restore took away and no one has re-sent yet can still come back:
            // an op refused for anything else is refused at once, as always.
            let lost = lost_unknown
                || self
                    .tx
                    .prepare_cached(
                        // Console writes (device 0) never come back; the server's new
                        // ones reuse their seqs after a restore.
                        "SELECT 1 FROM lost_ops l WHERE l.kind = ?1 AND l.id = ?2
                             AND (l.dev = 0 OR NOT EXISTS
                                  (SELECT 1 FROM ops o WHERE o.dev = l.dev AND o.seq = l.seq))
                             LIMIT 1",
                    )?
                    .query_row(params![kind.as_str(), id], |_| Ok(()))
                    .optional()?
                    .is_some();
            if waits_on_parked || lost {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether a restore happened less than [`PARK_AFTER_RESTORE_MS`] ago: while it did,
    /// re-sent ops are judged by what the server held before it, not only by what it holds.
    fn restore_window_open(&self, now_ms: u64) -> Result<bool, StoreError> {
        let restored = meta(self.tx, "restored_ms")?;
        Ok(restored != 0 && now_ms < restored.saturating_add(PARK_AFTER_RESTORE_MS))
    }

    /// Whether the database the last restore replaced had applied op `seq` of `dev`, and
    /// the window after that restore is still open. Such an op was authorised when it
    /// first arrived and acknowledged as applied; its re-send may now arrive after ops
    /// that reached the server after it the first time (another device's unassignment)
    /// and must not lose the verdict it was given (simulation seeds 1003602, 1005526).
    fn applied_before_restore(
        &self,
        dev: DeviceId,
        seq: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        if !self.restore_window_open(now_ms)? {
            return Ok(false);
        }
        Ok(self
            .tx
            .prepare_cached("SELECT 1 FROM lost_applied WHERE dev = ?1 AND seq = ?2")?
            .query_row(params![dev, seq as i64], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn park(&self, dev: DeviceId, actor: &Actor, seq: u64, now_ms: u64) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT OR REPLACE INTO parked (dev, seq, user, role, parked_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![dev, seq as i64, actor.user, actor.role.as_str(), now_ms as i64])?;
        Ok(())
    }

    /// Try the parked ops again, in the order they were parked, until a round applies none:
    /// one applied op (an order re-created) can be what the next one waits for. Once the
    /// window after the restore has closed, what still cannot apply is refused, as it
    /// would have been on arrival; the refusal shows in the op log and the device's count.
    fn retry_parked(&mut self, now_ms: u64) -> Result<(), StoreError> {
        loop {
            type Row = (i64, DeviceId, i64, String, String, String);
            let rows: Vec<Row> = self
                .tx
                .prepare_cached(
                    // CROSS JOIN keeps `parked` (nearly always empty) the outer loop:
                    // the planner, left alone, scanned the whole op log on every push.
                    "SELECT p.parked_ms, p.dev, p.seq, p.user, p.role, o.body FROM parked p
                     CROSS JOIN ops o ON o.dev = p.dev AND o.seq = p.seq
                     ORDER BY p.parked_ms, p.dev, p.seq LIMIT ?1",
                )?
                .query_map([PARKED_RETRY_MAX], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })?
                .collect::<Result<_, _>>()?;
            let mut settled = 0;
            for (parked_ms, dev, seq, user, role, body) in rows {
                let op: Op = serde_json::from_str(&body)
                    .map_err(|e| StoreError::Corrupt(format!("parked op {dev}/{seq}: {e}")))?;
                let (ent, outcome) = self.apply(&user, parse_role(&role)?, dev, &op, now_ms)?;
                let verdict = match outcome {
                    Ok(()) => None,
                    Err(e)
                        if parkable(&e)
                            && self.parking_open(&op, Some((parked_ms, dev, seq)), now_ms)? =>
                    {
                        continue
                    }
                    Err(e) => Some(e),
                };
                self.tx
                    .prepare_cached(
                        "UPDATE ops SET reject_code = ?3, reject_message = ?4, ent = ?5
                         WHERE dev = ?1 AND seq = ?2",
                    )?
                    .execute(params![
                        dev,
                        seq,
                        verdict.as_ref().map(|e| e.code.as_str()),
                        verdict.as_ref().map(|e| e.message.as_str()),
                        ent
                    ])?;
                self.tx
                    .prepare_cached("DELETE FROM parked WHERE dev = ?1 AND seq = ?2")?
                    .execute(params![dev, seq])?;
                settled += 1;
            }
            if settled == 0 {
                return Ok(());
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn log_op(
        &self,
        dev: DeviceId,
        user: &str,
        op: &Op,
        ent: Option<i64>,
        body: &str,
        now_ms: u64,
        outcome: &Result<(), OpError>,
    ) -> Result<(), StoreError> {
        let (code, message) = match outcome {
            Ok(()) => (None, None),
            Err(e) => (Some(e.code.as_str()), Some(e.message.as_str())),
        };
        self.hot(Hot::LogOp)?.execute(params![
            dev,
            op.seq as i64,
            user,
            op.kind.as_str(),
            op.id.as_str(),
            ent,
            op.hlc.0 as i64,
            body,
            now_ms as i64,
            code,
            message
        ])?;
        Ok(())
    }
}

/// Where a parked op stands in the queue: (parked_ms, device, seq).
type ParkedAt = (i64, DeviceId, i64);

/// Refusals that mean "what this op needs is not here": after a restore, possibly not yet.
fn parkable(e: &OpError) -> bool {
    e.code == "not_found" || e.code == "out_of_scope"
}

fn load(conn: &Connection, kind: EntityKind, id: &str) -> Result<Option<EntityState>, StoreError> {
    let json: Option<String> = conn
        .prepare_cached("SELECT state FROM entities WHERE kind = ?1 AND id = ?2")?
        .query_row(params![kind.as_str(), id], |r| r.get(0))
        .optional()?;
    json.map(|j| parse_state(&j)).transpose()
}

fn in_feed(conn: &Connection, user: &str, kind: EntityKind, id: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM feed
             WHERE ent = (SELECT n FROM entities WHERE kind = ?2 AND id = ?3)
               AND user = ?1 AND gone = 0",
        )?
        .query_row(params![user, kind.as_str(), id], |_| Ok(()))
        .optional()?
        .is_some())
}

fn can_see(
    conn: &Connection,
    actor: &Actor,
    kind: EntityKind,
    id: &str,
) -> Result<bool, StoreError> {
    Ok(actor.is_office() || in_feed(conn, &actor.user, kind, id)?)
}

impl Store for SqliteStore {
    fn add_user(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.write(|w| {
            let exists =
                w.tx.query_row("SELECT 1 FROM users WHERE name = ?1", [name], |_| Ok(()))
                    .optional()?
                    .is_some();
            if exists {
                return Err(StoreError::Conflict(format!(
                    "user {name:?} already exists"
                )));
            }
            w.tx.execute(
                "INSERT INTO users (name, role, password_hash, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![name, role.as_str(), password_hash, now_ms as i64],
            )?;
            if role == Role::Engineer {
                w.feed_broadcast_to(name)?;
            }
            Ok(())
        })
    }

    fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        self.read(|c| {
            let row: Option<(String, String)> = c
                .query_row(
                    "SELECT role, password_hash FROM users WHERE name = ?1",
                    [name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            row.map(|(role, password_hash)| {
                Ok(UserRecord {
                    name: name.to_owned(),
                    role: parse_role(&role)?,
                    password_hash,
                })
            })
            .transpose()
        })
    }

    fn enroll_device(
        &self,
        user: &str,
        device_name: &str,
        token_hash: &str,
        now_ms: u64,
    ) -> Result<DeviceId, StoreError> {
        self.write(|w| {
            w.tx.execute(
                "INSERT INTO devices (user, name, created_ms) VALUES (?1, ?2, ?3)",
                params![user, device_name, now_ms as i64],
            )?;
            let id = w.tx.last_insert_rowid() as DeviceId;
            w.tx.execute(
                "INSERT INTO tokens (hash, user, device, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![token_hash, user, id, now_ms as i64],
            )?;
            Ok(id)
        })
    }

    fn add_session(
        &self,
        user: &str,
        token_hash: &str,
        now_ms: u64,
        expires_ms: u64,
    ) -> Result<(), StoreError> {
        self.write(|w| {
            w.tx.execute(
                "INSERT INTO tokens (hash, user, created_ms, expires_ms) VALUES (?1, ?2, ?3, ?4)",
                params![token_hash, user, now_ms as i64, expires_ms as i64],
            )?;
            Ok(())
        })
    }

    fn token(&self, token_hash: &str, now_ms: u64) -> Result<TokenStatus, StoreError> {
        self.read(|c| {
            let row = c
                .prepare_cached(
                    "SELECT t.user, u.role, t.device, t.revoked OR COALESCE(d.revoked, 0), t.expires_ms
                     FROM tokens t JOIN users u ON u.name = t.user
                     LEFT JOIN devices d ON d.id = t.device
                     WHERE t.hash = ?1",
                )?
                .query_row([token_hash], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<DeviceId>>(2)?,
                        r.get::<_, bool>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                    ))
                })
                .optional()?;
            Ok(match row {
                None => TokenStatus::Unknown,
                Some((_, _, _, true, _)) => TokenStatus::Revoked,
                Some((_, _, _, _, Some(exp))) if (exp as u64) <= now_ms => TokenStatus::Unknown,
                Some((user, role, device, false, _)) => TokenStatus::Valid(Actor {
                    user,
                    role: parse_role(&role)?,
                    device,
                }),
            })
        })
    }

    fn revoke_device(&self, device: DeviceId) -> Result<bool, StoreError> {
        if device == SERVER_DEVICE {
            return Ok(false);
        }
        self.write(|w| {
            Ok(w.tx
                .execute("UPDATE devices SET revoked = 1 WHERE id = ?1", [device])?
                > 0)
        })
    }

    fn push_received(
        &self,
        actor: &Actor,
        device: DeviceId,
        ops: &[ReceivedOp],
        now_ms: u64,
    ) -> Result<PushResponse, StoreError> {
        self.write(|w| {
            let mut acked: u64 =
                w.tx.prepare_cached("SELECT acked_seq FROM devices WHERE id = ?1")?
                    .query_row([device], |r| r.get::<_, i64>(0))? as u64;
            // Settle what the closed window or another device's re-send has decided before
            // answering re-sends, so a device asking about a parked op hears the verdict
            // now, not only at a push that may never come.
            w.retry_parked(now_ms)?;
            let mut rejected = Vec::new();
            let mut parked = Vec::new();
            for ReceivedOp { op, json } in ops {
                if op.seq <= acked {
                    // A re-send: repeat the verdict it had (a lost answer), parked included.
                    let earlier: Option<(String, String)> =
                        w.tx.prepare_cached(
                            "SELECT reject_code, reject_message FROM ops
                             WHERE dev = ?1 AND seq = ?2 AND reject_code IS NOT NULL",
                        )?
                        .query_row(params![device, op.seq as i64], |r| {
                            Ok((r.get(0)?, r.get(1)?))
                        })
                        .optional()?;
                    match earlier {
                        Some((code, _)) if code == PARKED_CODE => parked.push(op.seq),
                        Some((code, message)) => rejected.push(Rejection {
                            seq: op.seq,
                            code,
                            message,
                        }),
                        None => {}
                    }
                    continue;
                }
                if op.seq != acked + 1 {
                    return Err(StoreError::SeqGap {
                        expected: acked + 1,
                        got: op.seq,
                    });
                }
                let (ent, outcome) = w.apply(&actor.user, actor.role, device, op, now_ms)?;
                match outcome {
                    Err(e) if parkable(&e) && w.parking_open(op, None, now_ms)? => {
                        let waiting = OpError::new(
                            PARKED_CODE,
                            format!("waiting for what it depends on to be re-sent after the server's restore: {}", e.message),
                        );
                        w.log_op(device, &actor.user, op, ent, json.get(), now_ms, &Err(waiting))?;
                        w.park(device, actor, op.seq, now_ms)?;
                        parked.push(op.seq);
                    }
                    outcome => {
                        w.log_op(device, &actor.user, op, ent, json.get(), now_ms, &outcome)?;
                        if let Err(e) = outcome {
                            rejected.push(Rejection {
                                seq: op.seq,
                                code: e.code,
                                message: e.message,
                            });
                        }
                    }
                }
                acked = op.seq;
            }
            w.retry_parked(now_ms)?;
            w.tx.prepare_cached(
                "UPDATE devices SET acked_seq = ?1, last_seen_ms = ?2 WHERE id = ?3",
            )?
            .execute(params![acked as i64, now_ms as i64, device])?;
            Ok(PushResponse {
                acked_seq: acked,
                rejected,
                server_time_ms: now_ms,
                parked,
            })
        })
    }

    fn pull(
        &self,
        actor: &Actor,
        cursor: u64,
        limit: usize,
    ) -> Result<PullPage<Box<RawValue>>, StoreError> {
        let hlc = Hlc(self.hlc.load(Ordering::Acquire));
        self.read(|c| {
            let mut page = PullPage {
                entities: Vec::new(),
                left: Vec::new(),
                cursor,
                more: false,
                hlc,
                server_time_ms: 0,
            };
            let fetch = (limit + 1) as i64;
            let mut rows_seen = 0;
            let mut take = |seq: i64, gone: bool, kind: String, id: String, state: Option<String>| -> Result<(), StoreError> {
                rows_seen += 1;
                if rows_seen > limit {
                    page.more = true;
                    return Ok(());
                }
                page.cursor = seq as u64;
                match (gone, state) {
                    (false, Some(s)) => page.entities.push(
                        RawValue::from_string(s).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    ),
                    _ => page.left.push(EntityRef {
                        kind: EntityKind::parse(&kind)
                            .ok_or_else(|| StoreError::Corrupt(format!("unknown kind {kind:?}")))?,
                        id: EntityId(id),
                    }),
                }
                Ok(())
            };
            if actor.is_office() {
                let mut stmt = c.prepare_cached(
                    "SELECT seq, kind, id, state FROM entities WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )?;
                let mut rows = stmt.query(params![cursor as i64, fetch])?;
                while let Some(r) = rows.next()? {
                    take(r.get(0)?, false, r.get(1)?, r.get(2)?, Some(r.get(3)?))?;
                }
            } else {
                let mut stmt = c.prepare_cached(
                    "SELECT f.seq, f.gone, e.kind, e.id, e.state FROM feed f
                     JOIN entities e ON e.n = f.ent
                     WHERE f.user = ?1 AND f.seq > ?2 ORDER BY f.seq LIMIT ?3",
                )?;
                let mut rows = stmt.query(params![actor.user, cursor as i64, fetch])?;
                while let Some(r) = rows.next()? {
                    take(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)?;
                }
            }
            Ok(page)
        })
    }

    fn hello(&self, device: DeviceId) -> Result<(u64, u64), StoreError> {
        self.read(|c| {
            let acked: i64 = c
                .prepare_cached("SELECT acked_seq FROM devices WHERE id = ?1")?
                .query_row([device], |r| r.get(0))
                .optional()?
                .unwrap_or(0);
            Ok((meta(c, "epoch")?, acked as u64))
        })
    }

    fn digest(&self, actor: &Actor) -> Result<DigestResponse, StoreError> {
        self.read(|c| {
            let tx = c.unchecked_transaction()?;
            let (sql_states, sql_cursor) = if actor.is_office() {
                (
                    "SELECT state FROM entities WHERE ?1 = ?1",
                    "SELECT COALESCE(MAX(seq), 0) FROM entities WHERE ?1 = ?1",
                )
            } else {
                (
                    "SELECT e.state FROM feed f JOIN entities e ON e.n = f.ent
                     WHERE f.user = ?1 AND f.gone = 0",
                    "SELECT COALESCE(MAX(seq), 0) FROM feed WHERE user = ?1",
                )
            };
            // Stored states are their canonical lines; sorted by SQLite's byte collation
            // they stream into the digest without being parsed or held.
            let mut d = scope::Digester::default();
            let mut entities = 0u64;
            {
                let mut stmt = tx.prepare(&format!("{sql_states} ORDER BY 1"))?;
                let mut rows = stmt.query([&actor.user])?;
                while let Some(row) = rows.next()? {
                    let line = row
                        .get_ref(0)?
                        .as_str()
                        .map_err(|e| StoreError::Corrupt(format!("entity state: {e}")))?;
                    d.line(line);
                    entities += 1;
                }
            }
            let cursor: i64 = tx.query_row(sql_cursor, [&actor.user], |r| r.get(0))?;
            tx.commit()?;
            Ok(DigestResponse {
                entities,
                digest: d.finish(),
                cursor: cursor as u64,
            })
        })
    }

    fn server_write(
        &self,
        actor: &Actor,
        write: ServerWrite,
        now_ms: u64,
    ) -> Result<Result<(), OpError>, StoreError> {
        self.write(|w| w.server_op(actor, write, now_ms))
    }

    fn import(
        &self,
        actor: &Actor,
        writes: Vec<ServerWrite>,
        now_ms: u64,
    ) -> Result<Vec<(usize, OpError)>, StoreError> {
        let mut refused = Vec::new();
        let done = self.write(|w| {
            for (row, write) in writes.into_iter().enumerate() {
                if let Err(e) = w.server_op(actor, write, now_ms)? {
                    refused.push((row, e));
                }
            }
            if refused.is_empty() {
                Ok(())
            } else {
                // All or nothing: the transaction rolls back.
                Err(StoreError::Conflict(format!(
                    "{} rows refused",
                    refused.len()
                )))
            }
        });
        match done {
            Ok(()) => Ok(Vec::new()),
            Err(StoreError::Conflict(_)) if !refused.is_empty() => Ok(refused),
            Err(e) => Err(e),
        }
    }

    fn ensure_profile(&self, user: &str, now_ms: u64) -> Result<bool, StoreError> {
        self.write(|w| {
            let role: Option<String> =
                w.tx.query_row("SELECT role FROM users WHERE name = ?1", [user], |r| {
                    r.get(0)
                })
                .optional()?;
            let Some(role) = role else {
                return Ok(false);
            };
            if !EntityId::is_valid(user) || w.load(EntityKind::User, user)?.is_some() {
                return Ok(true);
            }
            let seq = 1 + w
                .tx
                .prepare_cached("SELECT acked_seq FROM devices WHERE id = 0")?
                .query_row([], |r| r.get::<_, i64>(0))? as u64;
            let op = Op {
                seq,
                kind: EntityKind::User,
                id: EntityId(user.to_owned()),
                hlc: w.clock.tick(now_ms),
                op: OpKind::Create,
                fields: std::collections::BTreeMap::from([
                    ("name".to_owned(), Value::from(user)),
                    ("role".to_owned(), Value::from(role)),
                ]),
                base: std::collections::BTreeMap::new(),
            };
            // The server's own op: the ownership checks are for actors, and these fields
            // come from the users table, not from a request.
            let applied = apply_op(None, &op, SERVER_DEVICE, "server");
            let ent = w.save(None, &applied.state)?;
            w.log_server_op("server", &op, Some(ent), now_ms)?;
            w.tx.execute(
                "UPDATE devices SET acked_seq = ?1 WHERE id = 0",
                [seq as i64],
            )?;
            Ok(true)
        })
    }

    fn generate_maintenance(&self, now_ms: u64) -> Result<MaintenanceRun, StoreError> {
        // The runs' writes carry this name in the orders' history.
        let actor = Actor {
            user: "maintenance".into(),
            role: Role::Admin,
            device: None,
        };
        self.write(|w| {
            let plans: Vec<EntityState> =
                w.tx.prepare_cached(
                    "SELECT state FROM entities WHERE kind = 'maintenance_plan' ORDER BY id",
                )?
                .query_map([], |r| r.get::<_, String>(0))?
                .map(|j| parse_state(&j?))
                .collect::<Result<_, _>>()?;
            let mut run = MaintenanceRun {
                plans: plans.len(),
                ..MaintenanceRun::default()
            };
            for state in &plans {
                let Some(plan) = maintenance::Plan::of(state) else {
                    continue;
                };
                let asset = match state.str("asset_id") {
                    Some(a) => w.load(EntityKind::Asset, a)?,
                    None => None,
                };
                for due in plan.due_dates(now_ms) {
                    let id = maintenance::order_id(&plan.id, due);
                    if w.load(EntityKind::WorkOrder, id.as_str())?.is_some() {
                        run.existing += 1;
                        continue;
                    }
                    let write = ServerWrite {
                        kind: EntityKind::WorkOrder,
                        id: id.clone(),
                        create: true,
                        fields: maintenance::order_fields(state, asset.as_ref(), due),
                        base: Default::default(),
                    };
                    match w.server_op(&actor, write, now_ms)? {
                        Ok(()) => run.created.push(id),
                        Err(e) => run.refused.push((id, e.message)),
                    }
                }
            }
            Ok(run)
        })
    }

    fn order_view(&self, actor: &Actor, id: &str) -> Result<Option<OrderView>, StoreError> {
        self.read(|c| {
            if !can_see(c, actor, EntityKind::WorkOrder, id)? {
                return Ok(None);
            }
            let Some(order) = load(c, EntityKind::WorkOrder, id)? else {
                return Ok(None);
            };
            let mut related: Vec<EntityState> = c
                .prepare_cached(
                    "SELECT state FROM entities WHERE order_id = ?1 AND kind != 'work_order'",
                )?
                .query_map([id], |r| r.get::<_, String>(0))?
                .map(|j| parse_state(&j?))
                .collect::<Result<_, _>>()?;
            for (kind, rid) in order_refs(&order) {
                if let Some(s) = load(c, kind, rid.as_str())? {
                    related.push(s);
                }
            }
            // The catalog entries of the parts used, for their SKU.
            let parts: std::collections::BTreeSet<String> = related
                .iter()
                .filter(|s| s.kind == EntityKind::StockMovement)
                .filter_map(|s| s.str("part_id").map(str::to_owned))
                .collect();
            for p in parts {
                related.extend(load(c, EntityKind::Part, &p)?);
            }
            if let Some(contract) = order.str("contract_id") {
                related.extend(load(c, EntityKind::Contract, contract)?);
            }
            let now = crate::now_ms();
            Ok(Some(view::order_view_at(&order, &related, Some(now))))
        })
    }

    fn all_of_kind(&self, kind: EntityKind, limit: usize) -> Result<Vec<EntityState>, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT state FROM entities WHERE kind = ?1 ORDER BY id LIMIT ?2")?
                .query_map(params![kind.as_str(), limit as i64], |r| {
                    r.get::<_, String>(0)
                })?
                .map(|j| parse_state(&j?))
                .collect()
        })
    }

    fn of_customer(
        &self,
        kind: EntityKind,
        customer: &str,
        limit: usize,
    ) -> Result<Vec<EntityState>, StoreError> {
        // A scan of the kind's rows (the primary key's prefix), reading the field from the
        // state: only work orders keep `customer_id` in its column, and these kinds are
        // the office's reference data and call log, read one customer page at a time.
        self.read(|c| {
            c.prepare_cached(
                "SELECT state FROM entities WHERE kind = ?1
                 AND json_extract(state, '$.fields.customer_id.v') = ?2 ORDER BY id LIMIT ?3",
            )?
            .query_map(params![kind.as_str(), customer, limit as i64], |r| {
                r.get::<_, String>(0)
            })?
            .map(|j| parse_state(&j?))
            .collect()
        })
    }

    fn list_orders(
        &self,
        actor: &Actor,
        assignee: Option<&str>,
        status: Option<&str>,
    ) -> Result<Vec<OrderSummary>, StoreError> {
        let assignee = if actor.is_office() {
            assignee
        } else {
            Some(actor.user.as_str())
        };
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT state FROM entities WHERE kind = 'work_order'
                 AND (?1 IS NULL OR assignee = ?1) AND (?2 IS NULL OR status = ?2)
                 ORDER BY seq DESC LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![assignee, status, LIST_ORDERS_MAX as i64], |r| {
                r.get::<_, String>(0)
            })?;
            rows.map(|j| Ok(view::summary(&parse_state(&j?)?)))
                .collect()
        })
    }

    fn entity(
        &self,
        actor: &Actor,
        kind: EntityKind,
        id: &str,
    ) -> Result<Option<EntityState>, StoreError> {
        self.read(|c| {
            if !can_see(c, actor, kind, id)? {
                return Ok(None);
            }
            load(c, kind, id)
        })
    }

    fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn feed_seq(&self, user: &str) -> Result<u64, StoreError> {
        self.read(|c| {
            let seq: i64 = c
                .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM feed WHERE user = ?1")?
                .query_row([user], |r| r.get(0))?;
            Ok(seq as u64)
        })
    }

    fn end_session(&self, token_hash: &str) -> Result<(), StoreError> {
        self.write(|w| {
            w.tx.execute(
                "UPDATE tokens SET revoked = 1 WHERE hash = ?1 AND device IS NULL",
                [token_hash],
            )?;
            Ok(())
        })
    }

    fn board(&self, q: &BoardQuery) -> Result<BoardPage, StoreError> {
        let behind = !self.board.wait_caught_up(*self.changes.borrow());
        let mut filter = String::from("1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut add = |sql: &str, v: rusqlite::types::Value| {
            args.push(v);
            filter.push_str(&format!(" AND {sql} ?{}", args.len()));
        };
        if let Some(v) = &q.status {
            add("status =", v.clone().into());
        }
        if let Some(v) = q.priority {
            add("priority =", v.into());
        }
        if let Some(v) = &q.assignee {
            add("assignee =", v.clone().into());
        }
        if let Some(v) = &q.customer_id {
            add("customer_id =", v.clone().into());
        }
        // Each matches an index of the board's column for column and direction for
        // direction, so a page is an index walk that stops after `offset + limit` rows.
        let order = match q.sort {
            BoardSort::Recent => "seq DESC",
            BoardSort::Priority => "priority, seq DESC",
            BoardSort::Due => "(due_ms IS NULL), due_ms, seq DESC",
            BoardSort::Status => "status, seq DESC",
        };
        let filtered = !args.is_empty();
        self.read(|c| {
            let tx = c.unchecked_transaction()?;
            let counts = tx
                .prepare_cached("SELECT status, n FROM board.counts WHERE n > 0 ORDER BY status")?
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?
                .collect::<Result<Vec<_>, _>>()?;
            // Unfiltered, the total is the counts' sum; a filter's own index counts the rest.
            let total = if filtered {
                tx.prepare_cached(&format!("SELECT COUNT(*) FROM board.orders WHERE {filter}"))?
                    .query_row(rusqlite::params_from_iter(args.iter()), |r| {
                        r.get::<_, i64>(0)
                    })? as u64
            } else {
                counts.iter().map(|c| c.1).sum()
            };
            let mut page_args = args.clone();
            page_args.push((q.limit as i64).into());
            page_args.push((q.offset as i64).into());
            let n = page_args.len();
            let ids = tx
                .prepare_cached(&format!(
                    "SELECT id FROM board.orders WHERE {filter} ORDER BY {order} LIMIT ?{} OFFSET ?{n}",
                    n - 1
                ))?
                .query_map(rusqlite::params_from_iter(page_args.iter()), |r| {
                    r.get::<_, String>(0)
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut rows = Vec::with_capacity(ids.len());
            let mut customer_names = std::collections::BTreeMap::new();
            for id in ids {
                if let Some(order) = load(&tx, EntityKind::WorkOrder, &id)? {
                    rows.push(view::summary(&order));
                }
            }
            for c in rows.iter().filter_map(|r| r.customer_id.as_deref()) {
                if customer_names.contains_key(c) {
                    continue;
                }
                if let Some(name) = load(&tx, EntityKind::Customer, c)?
                    .and_then(|e| e.str("name").map(str::to_owned))
                {
                    customer_names.insert(c.to_owned(), name);
                }
            }
            tx.commit()?;
            Ok(BoardPage {
                rows,
                total,
                counts,
                customer_names,
                behind,
            })
        })
    }

    fn search(
        &self,
        kind: EntityKind,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        // A range on the index instead of LIKE, which SQLite cannot use an index for here.
        let hi = format!("{prefix}\u{10ffff}");
        self.read(|c| {
            let mut out: Vec<(String, String)> = Vec::new();
            for sql in [
                "SELECT id, COALESCE(label, id) FROM entities WHERE kind = ?1 AND label >= ?2 AND label < ?3 ORDER BY label LIMIT ?4",
                "SELECT id, COALESCE(label, id) FROM entities WHERE kind = ?1 AND id >= ?2 AND id < ?3 ORDER BY id LIMIT ?4",
            ] {
                let rows = c
                    .prepare_cached(sql)?
                    .query_map(params![kind.as_str(), prefix, hi, limit as i64], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                for r in rows {
                    if out.len() < limit && !out.iter().any(|o| o.0 == r.0) {
                        out.push(r);
                    }
                }
            }
            Ok(out)
        })
    }

    fn timeline(&self, order_id: &str, limit: usize) -> Result<Vec<TimelineEntry>, StoreError> {
        self.read(|c| {
            let rows = c
                .prepare_cached(
                    "SELECT o.user, o.dev, COALESCE(d.name, ''), o.kind, o.id, o.hlc, o.received_ms, o.body,
                            o.reject_code
                     FROM ops o LEFT JOIN devices d ON d.id = o.dev
                     WHERE o.ent IN (SELECT n FROM entities WHERE kind = 'work_order' AND id = ?1
                                     UNION ALL SELECT n FROM entities WHERE order_id = ?1)
                     ORDER BY o.hlc LIMIT ?2",
                )?
                .query_map(params![order_id, limit as i64], |r| {
                    Ok(TimelineEntry {
                        user: r.get(0)?,
                        device: r.get(1)?,
                        device_name: r.get(2)?,
                        kind: r.get(3)?,
                        id: r.get(4)?,
                        event_ms: Hlc(r.get::<_, i64>(5)? as u64).millis(),
                        received_ms: r.get::<_, i64>(6)? as u64,
                        op: serde_json::from_str(&r.get::<_, String>(7)?)
                            .unwrap_or(Value::Null),
                        rejected: r.get(8)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    fn open_conflicts(&self, limit: usize) -> Result<Vec<EntityState>, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT state FROM entities WHERE open_conflict = 1 ORDER BY seq DESC LIMIT ?1",
            )?
            .query_map([limit as i64], |r| r.get::<_, String>(0))?
            .map(|j| parse_state(&j?))
            .collect()
        })
    }

    fn stock_states(
        &self,
        movements_max: usize,
    ) -> Result<(Vec<EntityState>, Vec<stock::Movement>), StoreError> {
        self.read(|c| {
            let states: Vec<EntityState> = c
                .prepare_cached(
                    "SELECT state FROM entities
                     WHERE kind IN ('stock_location', 'part', 'requisition', 'stock_min')",
                )?
                .query_map([], |r| r.get::<_, String>(0))?
                .map(|j| parse_state(&j?))
                .collect::<Result<_, _>>()?;
            // Read as movements straight from their stored lines, without building whole
            // states, in primary-key order: sorting by anything else made SQLite sort the
            // whole states in a temporary b-tree, most of a stock view's time
            // (`fieldsync-bench stock`). Past the bound the report says it is incomplete,
            // so which movements the bound leaves out does not matter.
            let mut stmt = c.prepare_cached(
                "SELECT id, state FROM entities WHERE kind = 'stock_movement' LIMIT ?1",
            )?;
            let rows = stmt.query_map([movements_max as i64], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut moves = Vec::new();
            for row in rows {
                let (id, json) = row?;
                moves.push(stock::Movement::from_state_json(&json).ok_or_else(|| {
                    StoreError::Corrupt(format!("stock movement {id} lacks its fields"))
                })?);
            }
            Ok((states, moves))
        })
    }

    fn decide_requisition(
        &self,
        actor: &Actor,
        id: &str,
        decision: Decision,
        now_ms: u64,
    ) -> Result<Result<(), OpError>, StoreError> {
        let mut refused: Option<OpError> = None;
        let done = self.write(|w| {
            let mut refuse = |e: OpError| {
                refused = Some(e);
                // Rolls the whole decision back, transfer included.
                Err(StoreError::Conflict("requisition decision refused".into()))
            };
            let Some(req) = w.load(EntityKind::Requisition, id)? else {
                return refuse(OpError::new("not_found", format!("no requisition {id}")));
            };
            if let Some(status) = req.str("status") {
                return refuse(OpError::new(
                    "already_decided",
                    format!("requisition {id} was {status} already"),
                ));
            }
            let mut fields =
                BTreeMap::from([("decided_by".to_owned(), Value::from(actor.user.as_str()))]);
            let mut writes = Vec::new();
            match decision {
                Decision::Approve { from } => {
                    let transfer = stock::transfer_id(id);
                    let get = |f: &str| req.get(f).cloned().unwrap_or(Value::Null);
                    writes.push(ServerWrite {
                        kind: EntityKind::StockMovement,
                        id: transfer.clone(),
                        create: true,
                        fields: BTreeMap::from([
                            ("type".to_owned(), Value::from("transfer")),
                            ("part_id".to_owned(), get("part_id")),
                            ("qty".to_owned(), get("qty")),
                            ("from_location".to_owned(), Value::from(from)),
                            ("to_location".to_owned(), get("van_id")),
                            ("requisition_id".to_owned(), Value::from(id)),
                        ]),
                        base: BTreeMap::new(),
                    });
                    fields.insert("status".into(), Value::from("approved"));
                    fields.insert("transfer_id".into(), Value::from(transfer.0));
                }
                Decision::Reject { note } => {
                    fields.insert("status".into(), Value::from("rejected"));
                    if let Some(n) = note.filter(|n| !n.trim().is_empty()) {
                        fields.insert("decision_note".into(), Value::from(n));
                    }
                }
            }
            writes.push(ServerWrite {
                kind: EntityKind::Requisition,
                id: EntityId::from(id),
                create: false,
                fields,
                base: BTreeMap::new(),
            });
            for write in writes {
                if let Err(e) = w.server_op(actor, write, now_ms)? {
                    return refuse(e);
                }
            }
            Ok(())
        });
        match (done, refused) {
            (Ok(()), _) => Ok(Ok(())),
            (Err(StoreError::Conflict(_)), Some(e)) => Ok(Err(e)),
            (Err(e), _) => Err(e),
        }
    }

    fn people(&self) -> Result<Vec<PersonInfo>, StoreError> {
        let _ = self.board.wait_caught_up(*self.changes.borrow());
        self.read(|c| {
            let users = c
                .prepare_cached("SELECT name, role FROM users ORDER BY name")?
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            let mut out = Vec::with_capacity(users.len());
            for (name, role) in users {
                let profile = load(c, EntityKind::User, &name)?;
                let text = |f: &str| profile.as_ref().and_then(|p| p.str(f)).map(str::to_owned);
                let open_load: i64 = c
                    .prepare_cached(
                        "SELECT COUNT(*) FROM board.orders WHERE assignee = ?1
                         AND cancelled = 0 AND status != 'completed'",
                    )?
                    .query_row([&name], |r| r.get(0))?;
                let devices = c
                    .prepare_cached(
                        "SELECT d.id, d.name, d.created_ms, d.last_seen_ms, d.revoked, d.acked_seq,
                           (SELECT COUNT(*) FROM ops o WHERE o.dev = d.id AND o.reject_code IS NOT NULL
                              AND o.reject_code != 'parked'),
                           (SELECT (o.hlc >> 16) - o.received_ms FROM ops o WHERE o.dev = d.id
                              ORDER BY o.seq DESC LIMIT 1)
                         FROM devices d WHERE d.user = ?1 AND d.id != 0 ORDER BY d.id",
                    )?
                    .query_map([&name], |r| {
                        Ok(DeviceInfo {
                            id: r.get(0)?,
                            name: r.get(1)?,
                            created_ms: r.get::<_, i64>(2)? as u64,
                            last_seen_ms: r.get::<_, Option<i64>>(3)?.map(|v| v as u64),
                            revoked: r.get(4)?,
                            acked_seq: r.get::<_, i64>(5)? as u64,
                            rejected: r.get::<_, i64>(6)? as u64,
                            ahead_ms: r.get(7)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                out.push(PersonInfo {
                    region: text("region"),
                    skills: text("skills"),
                    name,
                    role: parse_role(&role)?,
                    open_load: open_load as u64,
                    devices,
                });
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use fieldsync_proto::{EntityId, EntityKind, Hlc, Op, OpKind, Role, Version};
    use serde_json::Value;

    use super::*;
    use crate::store::{Actor, BoardQuery, BoardSort, Store};

    const NOW_MS: u64 = 1_700_000_000_000;
    const ORDERS: u64 = 30;

    fn order_op(seq: u64, id: &str, op: OpKind, fields: &[(&str, Value)]) -> Op {
        Op {
            seq,
            kind: EntityKind::WorkOrder,
            id: EntityId(id.to_owned()),
            hlc: Hlc((NOW_MS << 16) | seq),
            op,
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            base: BTreeMap::new(),
        }
    }

    fn seeded() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("fs.db")).unwrap();
        store
            .add_user("dana", Role::Dispatcher, "x", NOW_MS)
            .unwrap();
        store.add_user("eve", Role::Engineer, "x", NOW_MS).unwrap();
        let dev = store.enroll_device("dana", "t", "tok", NOW_MS).unwrap();
        let eve_dev = store.enroll_device("eve", "t", "tok-eve", NOW_MS).unwrap();
        let dana = Actor {
            user: "dana".into(),
            role: Role::Dispatcher,
            device: Some(dev),
        };
        let eve = Actor {
            user: "eve".into(),
            role: Role::Engineer,
            device: Some(eve_dev),
        };
        let creates: Vec<Op> = (1..=ORDERS)
            .map(|i| {
                let mut f = vec![
                    ("priority", Value::from((i % 3 + 1) as i64)),
                    ("assignee", Value::from("eve")),
                    ("description", Value::from("unit not cooling")),
                ];
                if i % 4 != 0 {
                    f.push(("scheduled_end", Value::from(NOW_MS + (i * 37 % 11) * 1_000)));
                }
                order_op(i, &format!("wo-{i}"), OpKind::Create, &f)
            })
            .collect();
        let r = store.push(&dana, dev, &creates, NOW_MS).unwrap();
        assert!(r.rejected.is_empty(), "{:?}", r.rejected);
        // Statuses move after creation (engineers own them), some twice: counts must follow.
        let statuses = ["open", "on-hold", "completed"];
        let mut moves: Vec<Op> = (1..=ORDERS)
            .map(|i| {
                let status = Value::from(statuses[i as usize % 3]);
                order_op(i, &format!("wo-{i}"), OpKind::Set, &[("status", status)])
            })
            .collect();
        let again = |seq: u64, id: &str, status: &str, after: &Op| {
            let mut op = order_op(seq, id, OpKind::Set, &[("status", status.into())]);
            op.base
                .insert("status".into(), Version::from((after.hlc, eve_dev)));
            op
        };
        moves.push(again(ORDERS + 1, "wo-3", "on-hold", &moves[2]));
        moves.push(again(ORDERS + 2, "wo-6", "en-route", &moves[5]));
        for m in &mut moves {
            m.hlc = Hlc(((NOW_MS + 1) << 16) | m.seq);
        }
        let r = store.push(&eve, eve_dev, &moves, NOW_MS).unwrap();
        assert!(r.rejected.is_empty(), "{:?}", r.rejected);
        (dir, store)
    }

    fn all_orders(store: &SqliteStore) -> Vec<fieldsync_proto::view::OrderSummary> {
        store
            .board(&BoardQuery {
                limit: 1_000,
                ..Default::default()
            })
            .unwrap()
            .rows
    }

    #[test]
    fn board_counts_follow_every_status_change() {
        let (_dir, store) = seeded();
        let orders = all_orders(&store);
        let mut want: BTreeMap<String, u64> = BTreeMap::new();
        for o in &orders {
            *want.entry(o.status.clone()).or_default() += 1;
        }
        assert_eq!(want.get("en-route"), Some(&1));
        let page = store.board(&BoardQuery {
            limit: 5,
            ..Default::default()
        });
        let page = page.unwrap();
        assert_eq!(page.counts, want.into_iter().collect::<Vec<_>>());
        assert_eq!(page.total, 30);
        let filtered = store
            .board(&BoardQuery {
                status: Some("on-hold".into()),
                priority: Some(1),
                limit: 5,
                ..Default::default()
            })
            .unwrap();
        let expect = orders
            .iter()
            .filter(|o| o.status == "on-hold" && o.priority == Some(1))
            .count();
        assert_eq!(filtered.total, expect as u64);
    }

    #[test]
    fn board_pages_follow_each_sort_across_offsets() {
        let (_dir, store) = seeded();
        for sort in [
            BoardSort::Recent,
            BoardSort::Priority,
            BoardSort::Due,
            BoardSort::Status,
        ] {
            let whole = store
                .board(&BoardQuery {
                    sort,
                    limit: 1_000,
                    ..Default::default()
                })
                .unwrap()
                .rows;
            let key = |o: &fieldsync_proto::view::OrderSummary| match sort {
                BoardSort::Recent => (0, 0, String::new()),
                BoardSort::Priority => (o.priority.unwrap_or(0), 0, String::new()),
                BoardSort::Due => (
                    i64::from(o.scheduled_end.is_none()),
                    o.scheduled_end.unwrap_or(0) as i64,
                    String::new(),
                ),
                BoardSort::Status => (0, 0, o.status.clone()),
            };
            assert!(
                whole.windows(2).all(|w| key(&w[0]) <= key(&w[1])),
                "{sort:?} out of order"
            );
            // Paging by offset yields the same sequence, with no order twice.
            let mut paged = Vec::new();
            for offset in (0..30).step_by(7) {
                paged.extend(
                    store
                        .board(&BoardQuery {
                            sort,
                            offset,
                            limit: 7,
                            ..Default::default()
                        })
                        .unwrap()
                        .rows,
                );
            }
            let ids = |v: &[fieldsync_proto::view::OrderSummary]| {
                v.iter().map(|o| o.id.clone()).collect::<Vec<_>>()
            };
            assert_eq!(ids(&paged), ids(&whole), "{sort:?}");
        }
    }

    #[test]
    fn board_sorts_walk_an_index_instead_of_sorting() {
        let (_dir, store) = seeded();
        let sorts = [
            "seq DESC",
            "priority, seq DESC",
            "(due_ms IS NULL), due_ms, seq DESC",
            "status, seq DESC",
        ];
        let filters = [
            "",
            " AND status = 'open'",
            " AND priority = 1",
            " AND assignee = 'x'",
        ];
        store
            .read(|c| {
                for order in sorts {
                    for filter in filters {
                        let sql = format!(
                            "EXPLAIN QUERY PLAN SELECT id FROM board.orders
                             WHERE 1{filter} ORDER BY {order} LIMIT 50"
                        );
                        let plan = c
                            .prepare(&sql)?
                            .query_map([], |r| r.get::<_, String>(3))?
                            .collect::<Result<Vec<_>, _>>()?
                            .join("; ");
                        // An engineer's orders are few; sorting them is cheap.
                        if filter.contains("assignee") && !order.starts_with("seq") {
                            continue;
                        }
                        assert!(!plan.contains("TEMP B-TREE"), "{sql}: {plan}");
                        assert!(plan.contains("board_"), "{sql}: {plan}");
                    }
                }
                Ok(())
            })
            .unwrap();
    }

    /// Rows whose board columns differ from what 0003's virtual columns computed.
    fn board_columns_off(store: &SqliteStore) -> i64 {
        let conn = store.writer.lock().unwrap();
        conn.conn
            .query_row(
                "SELECT COUNT(*) FROM entities WHERE
                   priority IS NOT (CASE WHEN kind = 'work_order' THEN json_extract(state, '$.fields.priority.v') END)
                   OR due_ms IS NOT (CASE WHEN kind = 'work_order' THEN json_extract(state, '$.fields.scheduled_end.v') END)
                   OR label IS NOT (CASE kind
                        WHEN 'customer' THEN json_extract(state, '$.fields.name.v')
                        WHEN 'site' THEN json_extract(state, '$.fields.name.v')
                        WHEN 'asset' THEN json_extract(state, '$.fields.model.v') || ' ' || COALESCE(json_extract(state, '$.fields.serial.v'), '')
                      END)
                   OR open_conflict IS NOT (CASE WHEN kind = 'conflict' AND COALESCE(json_extract(state, '$.fields.resolved.v'), 0) = 0 THEN 1 END)
                   OR cancelled IS NOT (CASE WHEN kind = 'work_order' THEN COALESCE(json_extract(state, '$.fields.cancelled.v'), 0) END)",
                [],
                |r| r.get(0),
            )
            .unwrap()
    }

    #[test]
    fn board_columns_match_the_state_on_write_and_after_backfill() {
        let (dir, store) = seeded();
        let dana = Actor {
            user: "dana".into(),
            role: Role::Dispatcher,
            device: None,
        };
        let dev: DeviceId = {
            let w = store.writer.lock().unwrap();
            w.conn
                .query_row("SELECT id FROM devices WHERE user = 'dana'", [], |r| {
                    r.get::<_, i64>(0)
                })
                .unwrap() as DeviceId
        };
        let op = |seq: u64, kind: EntityKind, id: &str, f: &[(&str, Value)]| Op {
            kind,
            ..order_op(seq, id, OpKind::Create, f)
        };
        let mut ops = vec![
            op(31, EntityKind::Customer, "c-1", &[("name", "Acme".into())]),
            op(
                32,
                EntityKind::Site,
                "s-1",
                &[("name", "Plant 2".into()), ("customer_id", "c-1".into())],
            ),
            op(
                33,
                EntityKind::Asset,
                "a-1",
                &[
                    ("model", "X200".into()),
                    ("serial", "SN9".into()),
                    ("site_id", "s-1".into()),
                ],
            ),
            op(
                34,
                EntityKind::Asset,
                "a-2",
                &[("model", "X300".into()), ("site_id", "s-1".into())],
            ),
        ];
        let mut cancel = order_op(35, "wo-2", OpKind::Set, &[("cancelled", true.into())]);
        cancel.hlc = Hlc(((NOW_MS + 2) << 16) | 35);
        ops.push(cancel);
        let r = store.push(&dana, dev, &ops, NOW_MS).unwrap();
        assert!(r.rejected.is_empty(), "{:?}", r.rejected);
        let labelled: i64 = {
            let w = store.writer.lock().unwrap();
            w.conn
                .query_row(
                    "SELECT COUNT(*) FROM entities WHERE label IN ('Acme', 'Plant 2', 'X200 SN9', 'X300 ')
                     OR (kind = 'work_order' AND id = 'wo-2' AND cancelled = 1)",
                    [],
                    |r| r.get(0),
                )
                .unwrap()
        };
        assert_eq!(labelled, 5, "labels and cancellation written by save()");
        assert_eq!(
            board_columns_off(&store),
            0,
            "save() writes what 0003 computed"
        );

        // A database from before 0005, holding the same rows: the upgrade backfills them
        // and the board is built from them.
        let rows: Vec<Vec<rusqlite::types::Value>> = {
            let w = store.writer.lock().unwrap();
            let mut stmt = w
                .conn
                .prepare("SELECT kind, id, order_id, assignee, status, customer_id, site_id, asset_id, state, seq FROM entities")
                .unwrap();
            stmt.query_map([], |r| (0..10).map(|i| r.get(i)).collect())
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let head = store.writer.lock().unwrap().seq;
        drop(store);
        let old = dir.path().join("v4.db");
        {
            let mut c = Connection::open(&old).unwrap();
            let tx = c.transaction().unwrap();
            for sql in &MIGRATIONS[..4] {
                tx.execute_batch(sql).unwrap();
            }
            tx.pragma_update(None, "user_version", 4).unwrap();
            for row in &rows {
                tx.execute(
                    "INSERT INTO entities (kind, id, order_id, assignee, status, customer_id, site_id, asset_id, state, seq)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    rusqlite::params_from_iter(row.iter()),
                )
                .unwrap();
            }
            set_meta(&tx, "seq", head).unwrap();
            tx.commit().unwrap();
        }
        let store = SqliteStore::open(&old).unwrap();
        assert_eq!(board_columns_off(&store), 0, "0005 backfills every row");
        let orders = all_orders(&store);
        assert_eq!(orders.len(), ORDERS as usize);
        assert!(
            orders.iter().any(|o| o.cancelled),
            "the board read the backfilled columns"
        );
    }

    /// 0007 (integer keys) on a database written before it: the same pulls, digests,
    /// timeline and refusals as the store it was copied from, and pushes go on.
    #[test]
    fn a_v6_database_upgrades_to_integer_keys_with_the_same_answers() {
        let (dir, store) = seeded();
        store.add_user("sam", Role::Engineer, "x", NOW_MS).unwrap();
        let dana = Actor {
            user: "dana".into(),
            role: Role::Dispatcher,
            device: Some(1),
        };
        let eve = Actor {
            user: "eve".into(),
            role: Role::Engineer,
            device: Some(2),
        };
        let sam = Actor {
            user: "sam".into(),
            role: Role::Engineer,
            device: None,
        };
        let note = Op {
            kind: EntityKind::Note,
            ..order_op(
                31,
                "n-1",
                OpKind::Create,
                &[("order_id", "wo-1".into()), ("text", "fan replaced".into())],
            )
        };
        // wo-5 moves from eve to sam: eve's feed keeps departures.
        let reassign = order_op(32, "wo-5", OpKind::Set, &[("assignee", "sam".into())]);
        let r = store.push(&dana, 1, &[note, reassign], NOW_MS).unwrap();
        assert!(r.rejected.is_empty(), "{:?}", r.rejected);
        // Priority is the dispatcher's: refused, and logged with its reason.
        let refused = order_op(33, "wo-2", OpKind::Set, &[("priority", 1.into())]);
        let r = store
            .push(&eve, 2, std::slice::from_ref(&refused), NOW_MS)
            .unwrap();
        assert_eq!(r.rejected.len(), 1);

        let answers = |s: &SqliteStore| -> Vec<String> {
            let mut out = Vec::new();
            for who in [&dana, &eve, &sam] {
                let page = s.pull(who, 0, 1_000).unwrap();
                assert!(!page.more);
                let page = PullPage {
                    hlc: Hlc(0),
                    ..page
                };
                out.push(format!("{page:?}"));
                out.push(format!("{:?}", s.digest(who).unwrap()));
                out.push(format!("{}", s.feed_seq(&who.user).unwrap()));
            }
            out.push(format!("{:?}", s.timeline("wo-1", 100).unwrap()));
            out.push(format!("{:?}", s.timeline("wo-5", 100).unwrap()));
            // A re-send is answered from the log: the same refusal, nothing applied.
            out.push(format!(
                "{:?}",
                s.push(&eve, 2, std::slice::from_ref(&refused), NOW_MS)
                    .unwrap()
            ));
            out
        };
        let before = answers(&store);
        let head = store.writer.lock().unwrap().seq;

        // The same rows in the v6 layout: entities keyed by (kind, id), the feed and the
        // op log by text.
        let copy = dir.path().join("copy.db");
        {
            let w = store.writer.lock().unwrap();
            w.conn
                .execute("VACUUM INTO ?1", [copy.to_str().unwrap()])
                .unwrap();
        }
        drop(store);
        let old = dir.path().join("v6.db");
        {
            let mut c = Connection::open(&old).unwrap();
            let tx = c.transaction().unwrap();
            for sql in &MIGRATIONS[..6] {
                tx.execute_batch(sql).unwrap();
            }
            tx.pragma_update(None, "user_version", 6).unwrap();
            tx.execute("ATTACH DATABASE ?1 AS v7", [copy.to_str().unwrap()])
                .unwrap();
            tx.execute_batch(
                "INSERT OR REPLACE INTO meta SELECT * FROM v7.meta;
                 INSERT OR REPLACE INTO devices SELECT * FROM v7.devices;
                 INSERT INTO users SELECT * FROM v7.users;
                 INSERT INTO tokens SELECT * FROM v7.tokens;
                 INSERT INTO held (user, order_id)
                     SELECT h.user, e.id FROM v7.held h JOIN v7.entities e ON e.n = h.ent;
                 INSERT INTO entities (kind, id, order_id, assignee, status, customer_id, site_id,
                                       asset_id, state, seq, priority, due_ms, label,
                                       open_conflict, cancelled)
                     SELECT kind, id, order_id, assignee, status, customer_id, site_id,
                            asset_id, state, seq, priority, due_ms, label, open_conflict,
                            cancelled
                     FROM v7.entities ORDER BY n DESC;
                 INSERT INTO feed (user, kind, id, seq, gone)
                     SELECT f.user, e.kind, e.id, f.seq, f.gone
                     FROM v7.feed f JOIN v7.entities e ON e.n = f.ent;
                 INSERT INTO ops (dev, seq, user, kind, id, hlc, body, received_ms,
                                  reject_code, reject_message)
                     SELECT dev, seq, user, kind, id, hlc, body, received_ms, reject_code,
                            reject_message
                     FROM v7.ops;",
            )
            .unwrap();
            tx.commit().unwrap();
            c.execute("DETACH DATABASE v7", []).unwrap();
        }
        let store = SqliteStore::open(&old).unwrap();
        assert_eq!(store.writer.lock().unwrap().seq, head);
        let version: usize = store
            .writer
            .lock()
            .unwrap()
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len());
        let after = answers(&store);
        for (b, a) in before.iter().zip(&after) {
            assert_eq!(b, a);
        }
        assert_eq!(before.len(), after.len());

        // Who held what survived: eve's note on wo-5, done on site before it went to sam,
        // is still hers to write; one stamped after the reassignment is not.
        let eve_note = |seq: u64, id: &str, hlc: Hlc| Op {
            kind: EntityKind::Note,
            hlc,
            ..order_op(
                seq,
                id,
                OpKind::Create,
                &[("order_id", "wo-5".into()), ("text", "done".into())],
            )
        };
        let early = eve_note(34, "n-early", Hlc(NOW_MS << 16));
        let late = eve_note(35, "n-late", Hlc((NOW_MS + 1) << 16));
        let r = store.push(&eve, 2, &[early, late], NOW_MS).unwrap();
        assert_eq!(
            r.rejected.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![35],
            "{:?}",
            r.rejected
        );

        // And the upgraded store goes on: an edit reaches the holder's next pull.
        let cursor = store.pull(&sam, 0, 1_000).unwrap().cursor;
        let edit = order_op(33, "wo-5", OpKind::Set, &[("priority", 1.into())]);
        let r = store.push(&dana, 1, &[edit], NOW_MS).unwrap();
        assert!(r.rejected.is_empty(), "{:?}", r.rejected);
        let page = store.pull(&sam, cursor, 1_000).unwrap();
        let ids: Vec<Value> = page
            .entities
            .iter()
            .map(|e| serde_json::from_str::<Value>(e.get()).unwrap()["id"].clone())
            .collect();
        // The edit did not name the priority it replaced: wo-5 and a conflict on it.
        assert!(ids.contains(&Value::from("wo-5")), "{ids:?}");
    }

    #[test]
    fn the_board_is_rebuilt_after_a_restore_and_follows_new_writes() {
        let (dir, store) = seeded();
        let main = dir.path().join("fs.db");
        let backup = dir.path().join("backup.db");
        {
            let w = store.writer.lock().unwrap();
            w.conn
                .execute("VACUUM INTO ?1", [backup.to_str().unwrap()])
                .unwrap();
        }
        let dana = Actor {
            user: "dana".into(),
            role: Role::Dispatcher,
            device: None,
        };
        let more: Vec<Op> = (ORDERS + 1..=ORDERS + 5)
            .map(|i| {
                let f = [
                    ("priority", Value::from(1)),
                    ("description", "after".into()),
                ];
                order_op(i, &format!("wo-{i}"), OpKind::Create, &f)
            })
            .collect();
        assert!(store
            .push(&dana, 1, &more, NOW_MS)
            .unwrap()
            .rejected
            .is_empty());
        let total = |s: &SqliteStore| {
            let page = s
                .board(&BoardQuery {
                    limit: 1_000,
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(page.counts.iter().map(|c| c.1).sum::<u64>(), page.total);
            (page.total, page.rows.len() as u64)
        };
        assert_eq!(
            total(&store),
            (ORDERS + 5, ORDERS + 5),
            "new writes reach the board"
        );
        drop(store);

        // What `fieldsync-server restore` does to the main database: an older copy, a new epoch.
        for side in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{side}", main.display()));
        }
        std::fs::rename(&backup, &main).unwrap();
        Connection::open(&main)
            .unwrap()
            .execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('epoch', 77)",
                [],
            )
            .unwrap();
        let store = SqliteStore::open(&main).unwrap();
        assert_eq!(
            total(&store),
            (ORDERS, ORDERS),
            "the board forgot what the restore undid"
        );

        // A board file from another history (same sequence, other epoch) is not trusted.
        drop(store);
        Connection::open(&main)
            .unwrap()
            .execute("UPDATE meta SET value = 78 WHERE key = 'epoch'", [])
            .unwrap();
        Connection::open(super::super::board::path_for(&main))
            .unwrap()
            .execute("UPDATE orders SET status = 'bogus'", [])
            .unwrap();
        let store = SqliteStore::open(&main).unwrap();
        let page = store
            .board(&BoardQuery {
                status: Some("bogus".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(page.total, 0);
        assert_eq!(total(&store), (ORDERS, ORDERS));
    }

    #[test]
    fn every_engineer_holds_the_parts_catalog() {
        let (_dir, store) = seeded();
        let dana = Actor {
            user: "dana".into(),
            role: Role::Dispatcher,
            device: None,
        };
        let part = |seq: u64, id: &str, sku: &str| Op {
            kind: EntityKind::Part,
            ..order_op(
                seq,
                id,
                OpKind::Create,
                &[("sku", sku.into()), ("name", "HP switch".into())],
            )
        };
        let r = store
            .push(
                &dana,
                1,
                &[part(31, "p-1", "HP-1"), part(32, "p-2", "HP-2")],
                NOW_MS,
            )
            .unwrap();
        assert!(r.rejected.is_empty(), "{:?}", r.rejected);
        store.add_user("zoe", Role::Engineer, "x", NOW_MS).unwrap();
        for user in ["eve", "zoe"] {
            let actor = Actor {
                user: user.into(),
                role: Role::Engineer,
                device: None,
            };
            let page = store.pull(&actor, 0, 1_000).unwrap();
            let parts = page
                .entities
                .iter()
                .filter(|e| e.get().contains("\"sku\""))
                .count();
            assert_eq!(parts, 2, "{user} holds the catalog");
            let digest = store.digest(&actor).unwrap();
            assert!(
                digest.entities >= 2,
                "{user}: the catalog is in the scope digest"
            );
        }
    }

    #[test]
    fn an_assigned_asset_brings_its_history_to_read_not_to_write() {
        let (_dir, store) = seeded();
        store.add_user("sam", Role::Engineer, "x", NOW_MS).unwrap();
        let dana = Actor {
            user: "dana".into(),
            role: Role::Dispatcher,
            device: None,
        };
        let eve = Actor {
            user: "eve".into(),
            role: Role::Engineer,
            device: None,
        };
        let op = |seq: u64, kind: EntityKind, id: &str, o: OpKind, f: &[(&str, Value)]| Op {
            kind,
            ..order_op(seq, id, o, f)
        };
        let ids = |page: &PullPage<Box<RawValue>>| -> Vec<String> {
            page.entities
                .iter()
                .map(|e| {
                    serde_json::from_str::<Value>(e.get()).unwrap()["id"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect()
        };
        let r = store
            .push(
                &dana,
                1,
                &[
                    op(
                        31,
                        EntityKind::Asset,
                        "a1",
                        OpKind::Create,
                        &[("model", "CR 15".into())],
                    ),
                    op(
                        32,
                        EntityKind::WorkOrder,
                        "w-past",
                        OpKind::Create,
                        &[
                            ("description", "noisy".into()),
                            ("priority", 3.into()),
                            ("assignee", "sam".into()),
                            ("asset_id", "a1".into()),
                        ],
                    ),
                    op(
                        33,
                        EntityKind::Note,
                        "n-past",
                        OpKind::Create,
                        &[
                            ("order_id", "w-past".into()),
                            ("text", "bearing replaced".into()),
                        ],
                    ),
                ],
                NOW_MS,
            )
            .unwrap();
        assert!(r.rejected.is_empty(), "{:?}", r.rejected);
        let cursor = store.pull(&eve, 0, 1_000).unwrap().cursor;
        let r = store
            .push(
                &dana,
                1,
                &[op(
                    34,
                    EntityKind::WorkOrder,
                    "w-new",
                    OpKind::Create,
                    &[
                        ("description", "leaking".into()),
                        ("priority", 2.into()),
                        ("assignee", "eve".into()),
                        ("asset_id", "a1".into()),
                    ],
                )],
                NOW_MS,
            )
            .unwrap();
        assert!(r.rejected.is_empty(), "{:?}", r.rejected);
        let page = store.pull(&eve, cursor, 1_000).unwrap();
        let got = ids(&page);
        for id in ["w-new", "a1", "w-past", "n-past"] {
            assert!(got.contains(&id.to_owned()), "{id} reaches eve: {got:?}");
        }
        // Later records on the past order follow.
        let cursor = page.cursor;
        store
            .push(
                &dana,
                1,
                &[op(
                    35,
                    EntityKind::Note,
                    "n-past-2",
                    OpKind::Create,
                    &[
                        ("order_id", "w-past".into()),
                        ("text", "customer called".into()),
                    ],
                )],
                NOW_MS,
            )
            .unwrap();
        let page = store.pull(&eve, cursor, 1_000).unwrap();
        assert_eq!(ids(&page), vec!["n-past-2".to_owned()]);
        let cursor = page.cursor;

        // To read, not to write: the past order and its records are sam's. (Eve's device
        // pushed seqs 1-32 in `seeded`.)
        let eve_dev = Actor {
            device: Some(2),
            ..eve.clone()
        };
        let r = store
            .push(
                &eve_dev,
                2,
                &[
                    op(
                        33,
                        EntityKind::WorkOrder,
                        "w-past",
                        OpKind::Set,
                        &[("status", "on-site".into())],
                    ),
                    op(
                        34,
                        EntityKind::Note,
                        "n-eve",
                        OpKind::Create,
                        &[("order_id", "w-past".into()), ("text", "me too".into())],
                    ),
                    op(
                        35,
                        EntityKind::Note,
                        "n-eve-2",
                        OpKind::Create,
                        &[("order_id", "w-new".into()), ("text", "on my way".into())],
                    ),
                ],
                NOW_MS,
            )
            .unwrap();
        let refused: Vec<(u64, &str)> = r
            .rejected
            .iter()
            .map(|x| (x.seq, x.code.as_str()))
            .collect();
        assert_eq!(refused, vec![(33, "out_of_scope"), (34, "out_of_scope")]);

        // When eve holds no order on the asset any more, its history leaves her feed.
        store
            .push(
                &dana,
                1,
                &[op(
                    36,
                    EntityKind::WorkOrder,
                    "w-new",
                    OpKind::Set,
                    &[("assignee", "sam".into())],
                )],
                NOW_MS,
            )
            .unwrap();
        let page = store.pull(&eve, cursor, 1_000).unwrap();
        let left: Vec<&str> = page.left.iter().map(|l| l.id.as_str()).collect();
        for id in ["w-new", "w-past", "n-past", "n-past-2", "n-eve-2", "a1"] {
            assert!(left.contains(&id), "{id} left eve's scope: {left:?}");
        }
        let digest = store.digest(&eve).unwrap();
        let rest: Vec<String> = ids(&store.pull(&eve, 0, 1_000).unwrap());
        assert!(!rest.iter().any(|i| i == "w-past"), "{rest:?}");
        assert!(digest.entities >= 30, "eve still holds her own 30 orders");
    }

    #[test]
    fn a_vans_records_follow_its_crew_and_an_approval_moves_stock_once() {
        let (_dir, store) = seeded();
        store.add_user("zoe", Role::Engineer, "x", NOW_MS).unwrap();
        let dana = Actor {
            user: "dana".into(),
            role: Role::Dispatcher,
            device: None,
        };
        let write = |kind: EntityKind, id: &str, create: bool, fields: Value| {
            store
                .server_write(
                    &dana,
                    ServerWrite {
                        kind,
                        id: id.into(),
                        create,
                        fields: serde_json::from_value(fields).unwrap(),
                        base: BTreeMap::new(),
                    },
                    NOW_MS,
                )
                .unwrap()
        };
        use serde_json::json;
        write(
            EntityKind::Part,
            "p-1",
            true,
            json!({"sku": "HP-1", "name": "HP switch"}),
        )
        .unwrap();
        write(
            EntityKind::StockLocation,
            "wh",
            true,
            json!({"name": "WH", "type": "warehouse"}),
        )
        .unwrap();
        write(
            EntityKind::StockLocation,
            "van",
            true,
            json!({"name": "Van", "type": "van", "engineers": "eve"}),
        )
        .unwrap();
        write(
            EntityKind::StockMovement,
            "m-1",
            true,
            json!({"type": "receipt", "part_id": "p-1", "qty": 2, "to_location": "van"}),
        )
        .unwrap();
        let holds = |user: &str, id: &str| {
            let actor = Actor {
                user: user.into(),
                role: Role::Engineer,
                device: None,
            };
            let page = store.pull(&actor, 0, 10_000).unwrap();
            let held = page
                .entities
                .iter()
                .any(|e| e.get().contains(&format!("\"id\":\"{id}\"")));
            let left = page.left.iter().any(|l| l.id.as_str() == id);
            held && !left
        };
        assert!(holds("eve", "m-1") && !holds("zoe", "m-1"));
        // The van is handed to zoe: its movements go with it.
        write(
            EntityKind::StockLocation,
            "van",
            false,
            json!({"engineers": "zoe"}),
        )
        .unwrap();
        assert!(!holds("eve", "m-1") && holds("zoe", "m-1"));
        // Eve now has no van; a second van for zoe is refused.
        let e = write(
            EntityKind::StockLocation,
            "van-2",
            true,
            json!({"name": "Van 2", "type": "van", "engineers": "zoe"}),
        )
        .unwrap_err();
        assert_eq!(e.code, "invalid_value", "{e}");

        write(
            EntityKind::Requisition,
            "rq-1",
            true,
            json!({"part_id": "p-1", "qty": 3, "van_id": "van"}),
        )
        .unwrap();
        let approve = || {
            store
                .decide_requisition(
                    &dana,
                    "rq-1",
                    Decision::Approve { from: "wh".into() },
                    NOW_MS,
                )
                .unwrap()
        };
        assert_eq!(approve(), Ok(()));
        assert_eq!(approve().unwrap_err().code, "already_decided");
        let refused = store
            .decide_requisition(&dana, "rq-none", Decision::Reject { note: None }, NOW_MS)
            .unwrap();
        assert_eq!(refused.unwrap_err().code, "not_found");
        let (states, moves) = store.stock_states(1_000).unwrap();
        // The movements read by SQL are exactly what `Movement::of` reads from the states.
        let mut whole: Vec<stock::Movement> = moves
            .iter()
            .map(|m| {
                let state = store
                    .entity(&dana, EntityKind::StockMovement, &m.id)
                    .unwrap()
                    .unwrap();
                stock::Movement::of(&state).unwrap()
            })
            .collect();
        whole.sort_by(|a, b| a.id.cmp(&b.id));
        let mut read = moves.clone();
        read.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(read, whole);
        assert_eq!(read.len(), 2);
        let lines = fieldsync_proto::stock::report_from(moves, &states, None);
        let at = |l: &str| lines.iter().find(|x| x.location_id == l).unwrap().on_hand;
        assert_eq!(
            (at("van"), at("wh")),
            (5, -3),
            "one transfer of 3, the warehouse overdrawn"
        );
        assert!(
            holds("zoe", &stock::transfer_id("rq-1").0),
            "the transfer reaches the van's crew"
        );
    }
}
