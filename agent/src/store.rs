//! The agent's SQLite store: server-confirmed entity state, the op outbox, and the
//! enrollment, cursor and clock in `meta`.
//!
//! Invariants:
//! - A local change exists only as an outbox row, written with the clock and seq it used
//!   in one transaction. What the engineer sees is the confirmed state with the pending ops
//!   applied on top, by the same `apply_op` the server uses.
//! - An outbox row leaves only in the transaction that records its acknowledgement, and
//!   its effect is folded into the confirmed state in that same transaction.
//! - A pull page, its cursor and the clock it advanced commit together.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fieldsync_proto::apply::apply_op;
use fieldsync_proto::scope::{self, order_of, order_refs};
use fieldsync_proto::validate::{authorize, validate_op, Target};
use fieldsync_proto::view::{self, OrderSummary, OrderView, RejectedView};
use fieldsync_proto::wire::{EnrollResponse, PullPage, PushResponse};
use fieldsync_proto::{
    DeviceId, EntityId, EntityKind, EntityState, Hlc, HlcClock, Op, OpKind, Role,
};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::error::{AgentError, Result};

/// Applied by number (`migrate.rs`), so one numbered lower than one already applied
/// still runs.
const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_gone_index.sql")),
    (3, include_str!("../migrations/0003_photos.sql")),
    (4, include_str!("../migrations/0004_resend_log.sql")),
    (5, include_str!("../migrations/0005_kb_search.sql")),
    (6, include_str!("../migrations/0006_lazy_fold.sql")),
];
/// How long acknowledged ops are kept for re-sending after a server restore: a restore
/// from a backup older than this cannot be fully repaired from this device.
pub const RESEND_LOG_KEEP_MS: u64 = 90 * 24 * 3600 * 1000;
pub const DB_FILE: &str = "agent.db";
pub const CA_FILE: &str = "ca.pem";

/// Who this device is, from enrollment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enrollment {
    pub device_id: DeviceId,
    pub server: String,
    pub user: String,
    pub role: Role,
    pub token: String,
}

/// A refused op, as `info` lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RejectedOp {
    pub seq: u64,
    pub kind: EntityKind,
    pub id: String,
    pub order_id: Option<String>,
    pub code: String,
    pub message: String,
}

/// What one acknowledgement did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AckOutcome {
    pub applied: usize,
    pub rejected: usize,
    /// Acknowledged, but waiting on the server for what they depend on (after a restore).
    pub parked: usize,
}

pub struct Store {
    conn: Connection,
    dir: PathBuf,
    clock: Arc<dyn Clock>,
}

/// Where the store reads wall-clock time (op timestamps, clock observation, bookkeeping).
/// The system clock in the agent; the simulation harness passes its own, so it can run
/// devices whose clocks are skewed by hours and jump.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> u64;
}

/// The machine's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> AgentError {
    AgentError::Corrupt(format!("{what}: {e}"))
}

/// Offsets below this are measurement noise (half a round trip), not a wrong clock.
const CLOCK_OFFSET_IGNORED_MS: i64 = 2_000;

/// The wall-clock time to stamp events with: the device clock moved by the offset from the
/// server measured at the last sync, so on-site times (SLA clocks run on them) stay right
/// on a laptop whose clock is hours off.
fn event_now(conn: &Connection, wall: &dyn Clock) -> Result<u64> {
    let offset = get_meta(conn, "clock_offset_ms")?
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|o| o.abs() >= CLOCK_OFFSET_IGNORED_MS)
        .unwrap_or(0);
    Ok(fieldsync_proto::hlc::aligned(wall.now_ms(), offset))
}

fn get_meta(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

fn meta_u64(conn: &Connection, key: &str) -> Result<u64> {
    match get_meta(conn, key)? {
        None => Ok(0),
        Some(v) => v.parse().map_err(|e| corrupt(key, e)),
    }
}

fn set_meta(conn: &Connection, key: &str, value: impl ToString) -> Result<()> {
    conn.prepare_cached("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")?
        .execute(params![key, value.to_string()])?;
    Ok(())
}

fn parse_state(json: &str) -> Result<EntityState> {
    serde_json::from_str(json).map_err(|e| corrupt("entity state", e))
}

fn parse_op(json: &str) -> Result<Op> {
    serde_json::from_str(json).map_err(|e| corrupt("outbox op", e))
}

fn load(conn: &Connection, kind: EntityKind, id: &str) -> Result<Option<EntityState>> {
    conn.prepare_cached("SELECT state FROM entities WHERE kind = ?1 AND id = ?2")?
        .query_row(params![kind.as_str(), id], |r| r.get::<_, String>(0))
        .optional()?
        .map(|j| parse_state(&j))
        .transpose()
}

/// `load`, except that a copy marked stale by a server rollback counts as absent.
fn load_fresh(conn: &Connection, kind: EntityKind, id: &str) -> Result<Option<EntityState>> {
    conn.prepare_cached("SELECT state FROM entities WHERE kind = ?1 AND id = ?2 AND stale = 0")?
        .query_row(params![kind.as_str(), id], |r| r.get::<_, String>(0))
        .optional()?
        .map(|j| parse_state(&j))
        .transpose()
}

/// Store `state`. A pull brings it (back) into scope; folding our own acked op into an
/// entity that left the scope must not bring it back.
fn save(conn: &Connection, state: &EntityState, in_scope: bool) -> Result<()> {
    let json = serde_json::to_string(state).expect("entity state serialises");
    let sql = if in_scope {
        "INSERT INTO entities (kind, id, order_id, state, gone) VALUES (?1, ?2, ?3, ?4, 0)
         ON CONFLICT (kind, id) DO UPDATE SET order_id = excluded.order_id, state = excluded.state, gone = 0, stale = 0"
    } else {
        "INSERT INTO entities (kind, id, order_id, state, gone) VALUES (?1, ?2, ?3, ?4, 0)
         ON CONFLICT (kind, id) DO UPDATE SET order_id = excluded.order_id, state = excluded.state"
    };
    conn.prepare_cached(sql)?.execute(params![
        state.kind.as_str(),
        state.id.as_str(),
        order_of(state).map(|o| o.0),
        json
    ])?;
    if state.kind == EntityKind::KbArticle {
        crate::kb::index(conn, state)?;
    }
    Ok(())
}

/// Our ops the confirmed state does not show yet, in seq order: pending ones and
/// acknowledged ones not folded in yet. `filter` may test `kind`, `id` and `order_id`.
fn pending_ops(conn: &Connection, filter: &str, arg: &[&dyn rusqlite::ToSql]) -> Result<Vec<Op>> {
    let sql = format!(
        "SELECT op FROM (
            SELECT seq, kind, id, order_id, op FROM outbox WHERE rejected_code IS NULL
            UNION ALL
            SELECT seq, kind, id, order_id, op FROM sent_log WHERE folded = 0
         ) WHERE 1 {filter} ORDER BY seq"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(arg, |r| r.get::<_, String>(0))?;
    rows.map(|j| parse_op(&j?)).collect()
}

impl Store {
    /// Open (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store> {
        Store::open_with_clock(dir, Arc::new(SystemClock))
    }

    /// `open`, reading time from `clock` instead of the system clock.
    pub fn open_with_clock(dir: &Path, clock: Arc<dyn Clock>) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|e| {
            AgentError::Config(format!("cannot create data dir {}: {e}", dir.display()))
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // The store holds the device token.
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        let mut conn = Connection::open(dir.join(DB_FILE))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // A change reported saved is on disk.
        conn.pragma_update(None, "synchronous", "FULL")?;
        crate::migrate::run(&mut conn, MIGRATIONS)?;
        Ok(Store {
            conn,
            dir: dir.to_owned(),
            clock,
        })
    }

    /// Stop syncing the WAL on every commit. Only for bulk tools and benchmarks that load
    /// data they can recreate: a crash may lose the last commits (never corrupt the file).
    pub fn relax_durability_for_bulk_load(&self) -> Result<()> {
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The connection, for modules that keep their own tables in this store (photos).
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    fn tx(&mut self) -> Result<Transaction<'_>> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }

    // ----- enrollment -----

    pub fn enrollment(&self) -> Result<Option<Enrollment>> {
        let Some(device) = get_meta(&self.conn, "device_id")? else {
            return Ok(None);
        };
        let get = |k: &str| -> Result<String> {
            get_meta(&self.conn, k)?.ok_or_else(|| corrupt("enrollment", format!("{k} missing")))
        };
        let role = get("role")?;
        Ok(Some(Enrollment {
            device_id: device.parse().map_err(|e| corrupt("device_id", e))?,
            server: get("server")?,
            user: get("user")?,
            role: Role::parse(&role).ok_or_else(|| corrupt("role", &role))?,
            token: get("token")?,
        }))
    }

    pub fn require_enrollment(&self) -> Result<Enrollment> {
        self.enrollment()?.ok_or(AgentError::NotEnrolled)
    }

    pub fn save_enrollment(
        &mut self,
        server: &str,
        resp: &EnrollResponse,
        ca_pem: Option<&[u8]>,
    ) -> Result<()> {
        if let Some(e) = self.enrollment()? {
            return Err(AgentError::AlreadyEnrolled {
                device: e.device_id,
                user: e.user,
            });
        }
        if let Some(pem) = ca_pem {
            std::fs::write(self.dir.join(CA_FILE), pem)
                .map_err(|e| AgentError::Config(format!("cannot save the CA certificate: {e}")))?;
        }
        let wall = Arc::clone(&self.clock);
        let tx = self.tx()?;
        set_meta(&tx, "device_id", resp.device_id)?;
        set_meta(&tx, "server", server)?;
        set_meta(&tx, "user", &resp.user)?;
        set_meta(&tx, "role", resp.role.as_str())?;
        set_meta(&tx, "token", &resp.token)?;
        set_meta(&tx, "enrolled_ms", wall.now_ms())?;
        set_meta(
            &tx,
            "clock_offset_ms",
            wall.now_ms() as i64 - resp.server_time_ms as i64,
        )?;
        // Start our clock no earlier than the server's, so a slow device clock cannot
        // stamp our first ops before everything already on the server.
        let mut clock = HlcClock::new(Hlc(meta_u64(&tx, "hlc")?));
        clock.observe(
            Hlc::from_millis(resp.server_time_ms),
            event_now(&tx, &*wall)?,
        );
        set_meta(&tx, "hlc", clock.last().0)?;
        tx.commit()?;
        Ok(())
    }

    /// Knowledge-base articles holding every word of `query`, best first (offline).
    pub fn kb_search(&self, query: &str, limit: usize) -> Result<Vec<crate::kb::KbHit>> {
        crate::kb::search(&self.conn, query, limit)
    }

    pub fn kb_article(&self, id: &str) -> Result<Option<EntityState>> {
        crate::kb::article(&self.conn, id)
    }

    pub fn ca_path(&self) -> Option<PathBuf> {
        Some(self.dir.join(CA_FILE)).filter(|p| p.exists())
    }

    // ----- local changes -----

    /// Record a local change as one op, in one transaction. `build` sees the entity as the
    /// engineer sees it now (None for a create) and the op's timestamp, and returns the
    /// fields to write. For a set, the base versions are the ones in that view.
    pub fn record(
        &mut self,
        kind: EntityKind,
        id: &EntityId,
        op_kind: OpKind,
        build: impl FnOnce(Option<&EntityState>, Hlc) -> Result<BTreeMap<String, Value>>,
    ) -> Result<Op> {
        self.record_with(kind, id, op_kind, build, |_, _| Ok(()))
    }

    /// `record`, plus `also`: more writes that must commit in the same transaction as the
    /// op (a photo's upload bookkeeping).
    pub(crate) fn record_with(
        &mut self,
        kind: EntityKind,
        id: &EntityId,
        op_kind: OpKind,
        build: impl FnOnce(Option<&EntityState>, Hlc) -> Result<BTreeMap<String, Value>>,
        also: impl FnOnce(&Transaction<'_>, &Op) -> Result<()>,
    ) -> Result<Op> {
        let who = self.require_enrollment()?;
        let wall = Arc::clone(&self.clock);
        let tx = self.tx()?;
        let current = local_view(&tx, kind, id.as_str(), &who)?;
        match (op_kind, &current) {
            (OpKind::Set, None) => return Err(AgentError::NoSuchOrder(id.0.clone())),
            (OpKind::Create, Some(_)) => {
                return Err(AgentError::Invalid(format!("{kind} {id} already exists")))
            }
            _ => {}
        }
        let order = match op_kind {
            OpKind::Set => current.as_ref().and_then(order_of),
            OpKind::Create => None,
        };
        if let Some(o) = &order {
            if is_gone(&tx, o.as_str())? {
                return Err(AgentError::Invalid(format!(
                    "work order {o} is no longer assigned to you; nothing was recorded"
                )));
            }
        }
        let mut clock = HlcClock::new(Hlc(meta_u64(&tx, "hlc")?));
        let hlc = clock.tick(event_now(&tx, &*wall)?);
        let fields = build(current.as_ref(), hlc)?;
        let base = match (&current, op_kind) {
            (Some(cur), OpKind::Set) => fields
                .keys()
                .filter_map(|f| cur.version(f).map(|v| (f.clone(), v)))
                .collect(),
            _ => BTreeMap::new(),
        };
        let seq = meta_u64(&tx, "next_seq")? + 1;
        let op = Op {
            seq,
            kind,
            id: id.clone(),
            hlc,
            op: op_kind,
            fields,
            base,
        };
        validate_op(&op, who.role)?;
        if let Some(o) = op.order_link().filter(|_| op_kind == OpKind::Create) {
            if is_gone(&tx, o.as_str())? {
                return Err(AgentError::Invalid(format!(
                    "work order {o} is no longer assigned to you; nothing was recorded"
                )));
            }
        }
        // An order and its records are ours to write only while we hold the order: the
        // store also keeps the past orders of our assets (their service history), to read.
        // A set on a record names no order; its order comes from the record. The outbox row
        // carries it too, so the order's view shows the pending change (a void, say).
        let op_order = op
            .order_link()
            .or_else(|| current.as_ref().and_then(order_of));
        let in_scope = match &op_order {
            // A stock record is the engineer's when it concerns their own van: the same
            // rules the server applies, on what this device holds.
            _ if kind.located() => {
                crate::stock::check_offline(&tx, &op, &who, current.as_ref())?;
                true
            }
            Some(order) => local_view(&tx, EntityKind::WorkOrder, order.as_str(), &who)?
                .is_some_and(|o| scope::holder(&o) == Some(who.user.as_str())),
            None => current.is_some(),
        };
        authorize(
            &op,
            who.role,
            Target {
                exists: current.is_some(),
                in_scope,
            },
        )?;
        // A stock record is not the order's child, but a consumption or return is done on
        // it: filed under it here, the order counts it as pending and shows its refusal.
        let filed_under = op_order.map(|o| o.0).or_else(|| {
            kind.located()
                .then(|| op.fields.get("order_id").and_then(Value::as_str))
                .flatten()
                .map(str::to_owned)
        });
        tx.prepare_cached(
            "INSERT INTO outbox (seq, kind, id, order_id, op, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            seq as i64,
            kind.as_str(),
            id.as_str(),
            filed_under,
            serde_json::to_string(&op).expect("op serialises"),
            wall.now_ms() as i64
        ])?;
        set_meta(&tx, "next_seq", seq)?;
        set_meta(&tx, "hlc", hlc.0)?;
        also(&tx, &op)?;
        tx.commit()?;
        Ok(op)
    }

    // ----- reading -----

    /// The entity as the engineer sees it: confirmed state plus pending ops.
    pub fn view(&self, kind: EntityKind, id: &str) -> Result<Option<EntityState>> {
        let who = self.require_enrollment()?;
        local_view(&self.conn, kind, id, &who)
    }

    /// Every entity of these kinds as the engineer sees them (confirmed state plus pending
    /// ops), leaving out what left the scope.
    pub fn states_of(&self, kinds: &[EntityKind]) -> Result<Vec<EntityState>> {
        let who = self.require_enrollment()?;
        states_of(&self.conn, kinds, &who)
    }

    /// Our own ops not yet acknowledged for this entity.
    pub fn unsent(&self, kind: EntityKind, id: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT 1 FROM outbox WHERE kind = ?1 AND id = ?2 AND rejected_code IS NULL LIMIT 1",
            )?
            .query_row(params![kind.as_str(), id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Work orders as the engineer sees them, newest change first.
    pub fn orders(&self) -> Result<Vec<OrderSummary>> {
        let who = self.require_enrollment()?;
        let mut orders: BTreeMap<String, EntityState> = BTreeMap::new();
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, state FROM entities WHERE kind = 'work_order' AND gone = 0",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (id, json) = row?;
            orders.insert(id, parse_state(&json)?);
        }
        for op in pending_ops(&self.conn, "AND kind = 'work_order'", &[])? {
            let current = orders.get(op.id.as_str());
            if current.is_none() && op.op != OpKind::Create {
                continue; // an order that left our scope
            }
            let applied = apply_op(current, &op, who.device_id, &who.user);
            orders.insert(op.id.0.clone(), applied.state);
        }
        // An engineer's own only: other orders here are the service history of their
        // assets. An office device holds every order, and lists them all.
        let mut list: Vec<OrderSummary> = orders
            .values()
            .filter(|o| who.role != Role::Engineer || scope::holder(o) == Some(who.user.as_str()))
            .map(view::summary)
            .collect();
        list.sort_by(|a, b| (b.updated_ms, &b.id).cmp(&(a.updated_ms, &a.id)));
        Ok(list)
    }

    /// Find a work order by its full id or an unambiguous prefix of it.
    pub fn resolve_order(&self, input: &str) -> Result<EntityId> {
        self.require_enrollment()?;
        let all: Vec<String> = {
            let mut stmt = self.conn.prepare_cached(
                "SELECT id FROM entities WHERE kind = 'work_order'
                 UNION SELECT id FROM outbox WHERE kind = 'work_order'",
            )?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect::<Result<_, _>>()?
        };
        if all.iter().any(|id| id == input) {
            return Ok(EntityId::from(input));
        }
        let matches: Vec<&String> = all.iter().filter(|id| id.starts_with(input)).collect();
        match matches.as_slice() {
            [one] if !input.is_empty() => Ok(EntityId::from(one.as_str())),
            [] | [_] => Err(AgentError::NoSuchOrder(input.to_owned())),
            many => Err(AgentError::AmbiguousOrder {
                input: input.to_owned(),
                matches: many
                    .iter()
                    .take(5)
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// The full view of one order, with its records, conflicts and our own pending and
    /// refused ops for it.
    pub fn order_view(&self, id: &EntityId) -> Result<Option<OrderView>> {
        let who = self.require_enrollment()?;
        let Some(order) = local_view(&self.conn, EntityKind::WorkOrder, id.as_str(), &who)? else {
            return Ok(None);
        };
        let mut related: HashMap<(EntityKind, String), EntityState> = HashMap::new();
        {
            let mut stmt = self.conn.prepare_cached(
                "SELECT state FROM entities WHERE order_id = ?1 AND kind != 'work_order'",
            )?;
            let rows = stmt.query_map([id.as_str()], |r| r.get::<_, String>(0))?;
            for j in rows {
                let s = parse_state(&j?)?;
                related.insert((s.kind, s.id.0.clone()), s);
            }
        }
        for op in pending_ops(
            &self.conn,
            "AND order_id = ?1 AND kind != 'work_order'",
            &[&id.as_str()],
        )? {
            let key = (op.kind, op.id.0.clone());
            let applied = apply_op(related.get(&key), &op, who.device_id, &who.user);
            related.insert(key, applied.state);
        }
        for (kind, rid) in order_refs(&order) {
            if let Some(s) = load(&self.conn, kind, rid.as_str())? {
                related.insert((kind, rid.0), s);
            }
        }
        // Parts used are consumption movements, filed under the van rather than the order;
        // the catalog gives their SKU.
        for s in states_of(
            &self.conn,
            &[EntityKind::StockMovement, EntityKind::Part],
            &who,
        )? {
            let ours = s.kind == EntityKind::Part || s.str("order_id") == Some(id.as_str());
            if ours {
                related.insert((s.kind, s.id.0.clone()), s);
            }
        }
        // Contracts are broadcast, so the clocks show offline; `now` on the server's time.
        if let Some(c) = order.str("contract_id") {
            if let Some(s) = load(&self.conn, EntityKind::Contract, c)? {
                related.insert((EntityKind::Contract, c.to_owned()), s);
            }
        }
        let now = event_now(&self.conn, &*self.clock)?;
        let mut v = view::order_view_at(&order, related.values(), Some(now));
        let model = v
            .asset
            .as_ref()
            .and_then(|a| a.get("model"))
            .and_then(Value::as_str);
        v.suggested_articles = crate::kb::suggest(&self.conn, model, v.fault_code.as_deref())?;
        v.pending_ops = self.conn.query_row(
            "SELECT COUNT(*) FROM outbox WHERE rejected_code IS NULL AND (order_id = ?1 OR (kind = 'work_order' AND id = ?1))",
            [id.as_str()],
            |r| r.get::<_, i64>(0),
        )? as u64;
        v.rejected = self
            .rejected()?
            .into_iter()
            .filter(|r| r.order_id.as_deref() == Some(id.as_str()))
            .map(|r| RejectedView {
                seq: r.seq,
                code: r.code,
                message: r.message,
            })
            .collect();
        Ok(Some(v))
    }

    /// Every entity of `kind` this device holds (confirmed state), by id, at most `max`:
    /// reference data such as checklist templates.
    pub fn all_of_kind(&self, kind: EntityKind, max: usize) -> Result<Vec<EntityState>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT state FROM entities WHERE kind = ?1 AND gone = 0 ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![kind.as_str(), max as i64], |r| {
            r.get::<_, String>(0)
        })?;
        rows.map(|j| parse_state(&j?)).collect()
    }

    /// The views of every work order on `asset` this device holds: our own and, since an
    /// assigned asset brings its history, the past ones. At most `max`, newest change first.
    pub fn asset_order_views(&self, asset: &str, max: usize) -> Result<Vec<OrderView>> {
        let mut ids: Vec<(u64, EntityId)> = Vec::new();
        {
            let mut stmt = self.conn.prepare_cached(
                "SELECT state FROM entities WHERE kind = 'work_order' AND gone = 0",
            )?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            for j in rows {
                let s = parse_state(&j?)?;
                if s.str("asset_id") == Some(asset) {
                    let at = s.max_version().map(|v| v.hlc.millis()).unwrap_or(0);
                    ids.push((at, s.id));
                }
            }
        }
        ids.sort_by(|a, b| b.cmp(a));
        ids.truncate(max);
        let mut out = Vec::with_capacity(ids.len());
        for (_, id) in ids {
            if let Some(v) = self.order_view(&id)? {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// The order left this device's scope (reassigned); kept read-only for our own ops.
    pub fn order_left_scope(&self, id: &EntityId) -> Result<bool> {
        is_gone(&self.conn, id.as_str())
    }

    pub fn pending_count(&self) -> Result<u64> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM outbox WHERE rejected_code IS NULL",
            [],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    pub fn rejected(&self) -> Result<Vec<RejectedOp>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, kind, id, order_id, rejected_code, rejected_message FROM outbox
             WHERE rejected_code IS NOT NULL ORDER BY seq",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        rows.map(|row| {
            let (seq, kind, id, order_id, code, message) = row?;
            Ok(RejectedOp {
                seq: seq as u64,
                kind: EntityKind::parse(&kind).ok_or_else(|| corrupt("outbox kind", &kind))?,
                id,
                order_id,
                code,
                message,
            })
        })
        .collect()
    }

    pub fn meta_u64(&self, key: &str) -> Result<u64> {
        meta_u64(&self.conn, key)
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        get_meta(&self.conn, key)
    }

    /// The pull cursor: the server sequence up to which this device has everything.
    pub fn cursor(&self) -> Result<u64> {
        meta_u64(&self.conn, "cursor")
    }

    /// Digest of the confirmed state in scope, comparable with the server's.
    pub fn digest(&self) -> Result<String> {
        // States are stored as their canonical line and SQLite's default collation orders
        // bytes like Rust's, so the sorted rows stream straight into the digest.
        let mut stmt = self
            .conn
            .prepare_cached("SELECT state FROM entities WHERE gone = 0 ORDER BY state")?;
        let mut rows = stmt.query([])?;
        let mut d = scope::Digester::default();
        while let Some(row) = rows.next()? {
            d.line(
                row.get_ref(0)?
                    .as_str()
                    .map_err(|e| corrupt("entity state", e))?,
            );
        }
        Ok(d.finish())
    }

    // ----- sync -----

    /// The next pending ops to push, oldest first.
    pub fn push_batch(&self, max: usize) -> Result<Vec<Op>> {
        self.push_batch_after(0, max)
    }

    /// The next pending ops after `seq`, oldest first: the batch to send while the one
    /// ending at `seq` is still being acknowledged.
    pub fn push_batch_after(&self, seq: u64, max: usize) -> Result<Vec<Op>> {
        self.outgoing_after(seq, max)?
            .into_iter()
            .map(|(_, json)| parse_op(json.get()))
            .collect()
    }

    /// [`Store::push_batch_after`] as the outbox holds the ops: each seq with the op's
    /// JSON text, to send without parsing and serialising it again.
    pub fn outgoing_after(&self, seq: u64, max: usize) -> Result<Vec<(u64, Box<RawValue>)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, op FROM outbox WHERE rejected_code IS NULL AND seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![seq as i64, max as i64], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))
        })?;
        rows.map(|row| {
            let (seq, json) = row?;
            let raw = RawValue::from_string(json).map_err(|e| corrupt("outbox op", e))?;
            Ok((seq, raw))
        })
        .collect()
    }

    /// Record the server's answer to a push that carried the ops `sent`: refused ops are
    /// kept with their reason, parked ones stay pending, the others leave the outbox for the
    /// sent log. Views show them from there until a pull folds them into the confirmed
    /// state ([`Store::apply_page`]).
    ///
    /// Only ops in `sent` are settled: not earlier ones still pending because the server
    /// parked them (after a restore; this request did not ask about them), nor later ones
    /// even when `acked_seq` is higher. The server
    /// acknowledges every op of ours it has processed, but lists refusals only for the ops
    /// in this request, so a later op it took from an earlier request (one in flight when
    /// the agent crashed, or whose answer was lost) may have been refused in an answer we
    /// never read. Settling it here would fold a refused change into the confirmed state
    /// and lose the refusal; left pending, it is sent again and the server repeats its
    /// verdict. (Found by the simulation, `tests/tests/sim.rs`.)
    pub fn ack(
        &mut self,
        resp: &PushResponse,
        sent: std::ops::RangeInclusive<u64>,
    ) -> Result<AckOutcome> {
        self.require_enrollment()?;
        let wall = Arc::clone(&self.clock);
        let first = *sent.start() as i64;
        let settled = resp.acked_seq.min(*sent.end()) as i64;
        let tx = self.tx()?;
        let seqs: Vec<i64> = {
            let mut stmt = tx.prepare_cached(
                "SELECT seq FROM outbox WHERE rejected_code IS NULL AND seq BETWEEN ?1 AND ?2
                 ORDER BY seq",
            )?;
            let rows = stmt.query_map([first, settled], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let refused: HashMap<u64, _> = resp.rejected.iter().map(|r| (r.seq, r)).collect();
        let parked: std::collections::HashSet<u64> = resp.parked.iter().copied().collect();
        let mut out = AckOutcome::default();
        for seq in seqs {
            // The server holds it but has not applied it yet. It stays in the outbox, shown
            // as ours and sent again with every push, so we learn when the server applies
            // or refuses it; folding it in would show a state the server does not have.
            if parked.contains(&(seq as u64)) {
                out.parked += 1;
                continue;
            }
            if let Some(r) = refused.get(&(seq as u64)) {
                tx.prepare_cached(
                    "UPDATE outbox SET rejected_code = ?1, rejected_message = ?2 WHERE seq = ?3",
                )?
                .execute(params![r.code, r.message, seq])?;
                out.rejected += 1;
                continue;
            }
            out.applied += 1;
        }
        let now = wall.now_ms();
        // Everything this request settled moves to the sent log at once, to be folded into
        // the confirmed state when the pull brings its entity back (see `apply_page`);
        // parked ops stay.
        let parked_seqs = serde_json::to_string(&resp.parked).expect("seqs serialise");
        tx.prepare_cached(
            "INSERT OR REPLACE INTO sent_log (seq, kind, id, order_id, op, created_ms, acked_ms, folded)
             SELECT seq, kind, id, order_id, op, created_ms, ?3, 0 FROM outbox
             WHERE rejected_code IS NULL AND seq BETWEEN ?1 AND ?2
               AND seq NOT IN (SELECT value FROM json_each(?4))",
        )?
        .execute(params![first, settled, now as i64, parked_seqs])?;
        tx.prepare_cached(
            "DELETE FROM outbox WHERE rejected_code IS NULL AND seq BETWEEN ?1 AND ?2
               AND seq NOT IN (SELECT value FROM json_each(?3))",
        )?
        .execute(params![first, settled, parked_seqs])?;
        // An op not folded in yet is the only copy of its change on this device.
        tx.prepare_cached("DELETE FROM sent_log WHERE acked_ms < ?1 AND folded = 1")?
            .execute([now.saturating_sub(RESEND_LOG_KEEP_MS) as i64])?;
        if resp.acked_seq > meta_u64(&tx, "acked_seq")? {
            set_meta(&tx, "acked_seq", resp.acked_seq)?;
        }
        purge_gone(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Apply one pull page: states are joined in, entities that left the scope are dropped
    /// unless our own pending ops still need them, and the cursor and clock advance. Our
    /// acknowledged ops are folded into the confirmed state: into the entities the page
    /// brings back as they are saved, and on the last page, the rest.
    pub fn apply_page(&mut self, page: &PullPage) -> Result<()> {
        let who = self.require_enrollment()?;
        let wall = Arc::clone(&self.clock);
        let tx = self.tx()?;
        let any_unfolded = tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM sent_log WHERE folded = 0)")?
            .query_row([], |r| r.get::<_, bool>(0))?;
        let mut folded = Vec::new();
        for incoming in &page.entities {
            // After a server rollback our copies are stale: they can hold versions from the
            // history the server lost (a console write made after its backup), which a
            // join would keep forever, so the device would never agree with the server
            // again. The first copy the server sends again replaces ours; our own lost
            // ops are back in the outbox and go out again. (Found by the simulation.)
            let mut merged = match load_fresh(&tx, incoming.kind, incoming.id.as_str())? {
                Some(cur) => cur.joined(incoming),
                None => incoming.clone(),
            };
            if any_unfolded {
                // Our acknowledged ops on it are folded into this copy as it is saved: one
                // read and write of the entity instead of two. Applying them is a join, so
                // the copy may already hold them.
                for (seq, op) in unfolded(
                    &tx,
                    "AND kind = ?1 AND id = ?2",
                    &[&incoming.kind.as_str(), &incoming.id.as_str()],
                )? {
                    merged = apply_op(Some(&merged), &op, who.device_id, &who.user).state;
                    folded.push(seq);
                }
            }
            save(&tx, &merged, true)?;
        }
        mark_folded(&tx, &folded)?;
        for gone in &page.left {
            if any_unfolded {
                // Folded first, as if at its acknowledgement, so it leaves with the rest.
                let ops = unfolded(
                    &tx,
                    "AND kind = ?1 AND id = ?2",
                    &[&gone.kind.as_str(), &gone.id.as_str()],
                )?;
                fold(&tx, &ops, &who)?;
            }
            tx.prepare_cached("UPDATE entities SET gone = 1 WHERE kind = ?1 AND id = ?2")?
                .execute(params![gone.kind.as_str(), gone.id.as_str()])?;
            if gone.kind == EntityKind::WorkOrder {
                // Its records go with it, including ours the server filed under the new
                // holder only.
                tx.prepare_cached("UPDATE entities SET gone = 1 WHERE order_id = ?1")?
                    .execute([gone.id.as_str()])?;
            }
        }
        if !page.more && any_unfolded {
            // The rest: ops on what the pull did not bring back.
            let ops = unfolded(&tx, "", &[])?;
            fold(&tx, &ops, &who)?;
        }
        if !page.more && meta_u64(&tx, "repull_after_rollback")? == 1 {
            // The full pull since the rollback is complete: what it did not deliver again
            // is no longer on the server.
            tx.execute("UPDATE entities SET gone = 1 WHERE stale = 1", [])?;
            set_meta(&tx, "repull_after_rollback", 0)?;
        }
        purge_gone(&tx)?;
        if page.cursor > meta_u64(&tx, "cursor")? {
            set_meta(&tx, "cursor", page.cursor)?;
        }
        // The page's own versions count as seen too, not only its `hlc`: the server reads
        // that clock before the rows, so a push committing in between can hand us a
        // version newer than it. An edit stamped below the version it replaces would lose
        // to it with no conflict raised, silently. (Found by the simulation's pull race.)
        let newest = page
            .entities
            .iter()
            .filter_map(EntityState::max_version)
            .map(|v| v.hlc)
            .fold(page.hlc, Hlc::max);
        let mut clock = HlcClock::new(Hlc(meta_u64(&tx, "hlc")?));
        clock.observe(newest, event_now(&tx, &*wall)?);
        set_meta(&tx, "hlc", clock.last().0)?;
        tx.commit()?;
        Ok(())
    }

    /// Check the server's history against ours at the start of a sync. A new epoch, or
    /// fewer of our ops than the server once acknowledged, means it was restored from a
    /// backup: the ops it lost go back in the outbox (refused ones too, to keep the
    /// sequence whole), and the next pull starts from the beginning. Returns how many ops
    /// will be sent again.
    pub fn check_server_history(&mut self, epoch: u64, server_acked: u64) -> Result<u64> {
        let tx = self.tx()?;
        let known = meta_u64(&tx, "server_epoch")?;
        let acked = meta_u64(&tx, "acked_seq")?;
        if known == epoch && server_acked >= acked {
            return Ok(0);
        }
        if known == 0 && server_acked >= acked {
            // First contact since this was recorded (an older agent or a new enrollment).
            set_meta(&tx, "server_epoch", epoch)?;
            tx.commit()?;
            return Ok(0);
        }
        let missing_from = server_acked + 1;
        let logged_from: Option<i64> = tx
            .query_row(
                "SELECT MIN(seq) FROM (SELECT seq FROM sent_log WHERE seq >= ?1
                 UNION ALL SELECT seq FROM outbox WHERE seq >= ?1)",
                [missing_from as i64],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        if acked > server_acked && logged_from != Some(missing_from as i64) {
            return Err(AgentError::RolledBackTooFar(format!(
                "the server was restored to a point before op {missing_from} of this device, \
                 older than this device's log of sent ops (kept {} days); ask an administrator \
                 to restore a newer backup",
                RESEND_LOG_KEEP_MS / (24 * 3600 * 1000)
            )));
        }
        let resent = tx.execute(
            "INSERT OR IGNORE INTO outbox (seq, kind, id, order_id, op, created_ms)
             SELECT seq, kind, id, order_id, op, created_ms FROM sent_log WHERE seq > ?1",
            [server_acked as i64],
        )? + tx.execute(
            "UPDATE outbox SET rejected_code = NULL, rejected_message = NULL
             WHERE seq > ?1 AND rejected_code IS NOT NULL",
            [server_acked as i64],
        )?;
        tx.execute("DELETE FROM sent_log WHERE seq > ?1", [server_acked as i64])?;
        tx.execute("UPDATE entities SET stale = 1", [])?;
        set_meta(&tx, "repull_after_rollback", 1)?;
        set_meta(&tx, "cursor", 0)?;
        set_meta(&tx, "acked_seq", server_acked)?;
        set_meta(&tx, "server_epoch", epoch)?;
        tx.commit()?;
        tracing::warn!(
            "the server's history was rolled back (epoch {known} -> {epoch}, it holds our ops up to {server_acked}); {resent} ops will be sent again"
        );
        Ok(resent as u64)
    }

    /// After a sync: when it ended and how far the device clock is from the server's.
    pub fn note_sync(&mut self, server_time_ms: u64) -> Result<i64> {
        let now = self.clock.now_ms();
        let offset = now as i64 - server_time_ms as i64;
        let tx = self.tx()?;
        set_meta(&tx, "last_sync_ms", now)?;
        set_meta(&tx, "clock_offset_ms", offset)?;
        tx.commit()?;
        Ok(offset)
    }
}

pub(crate) fn is_gone(conn: &Connection, order_id: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT gone FROM entities WHERE kind = 'work_order' AND id = ?1")?
        .query_row([order_id], |r| r.get::<_, bool>(0))
        .optional()?
        .unwrap_or(false))
}

/// Our acknowledged ops not folded into the confirmed state yet, with their seqs, in seq
/// order. `filter` may test `kind` and `id`.
fn unfolded(
    conn: &Connection,
    filter: &str,
    arg: &[&dyn rusqlite::ToSql],
) -> Result<Vec<(i64, Op)>> {
    let sql = format!("SELECT seq, op FROM sent_log WHERE folded = 0 {filter} ORDER BY seq");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(arg, |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
    rows.map(|row| {
        let (seq, json) = row?;
        Ok((seq, parse_op(&json)?))
    })
    .collect()
}

fn mark_folded(conn: &Connection, seqs: &[i64]) -> Result<()> {
    if !seqs.is_empty() {
        conn.prepare_cached(
            "UPDATE sent_log SET folded = 1 WHERE seq IN (SELECT value FROM json_each(?1))",
        )?
        .execute([serde_json::to_string(seqs).expect("seqs serialise")])?;
    }
    Ok(())
}

/// Fold our acknowledged `ops` into the confirmed state, as the server applied them.
fn fold(conn: &Connection, ops: &[(i64, Op)], who: &Enrollment) -> Result<()> {
    // During the full pull after a server rollback only what it delivers is known to be
    // ours to hold: what a fold creates meanwhile is marked stale like everything else, so
    // it leaves with the rest if the pull does not bring it (a record the server applied
    // on an order since taken from us).
    let repulling = meta_u64(conn, "repull_after_rollback")? == 1;
    for (_, op) in ops {
        let current = load(conn, op.kind, op.id.as_str())?;
        // A set on something we no longer hold stays with the server; only keep what we
        // can show whole.
        if current.is_some() || op.op == OpKind::Create {
            let applied = apply_op(current.as_ref(), op, who.device_id, &who.user);
            save(conn, &applied.state, false)?;
            if current.is_none() && repulling {
                conn.prepare_cached("UPDATE entities SET stale = 1 WHERE kind = ?1 AND id = ?2")?
                    .execute(params![op.kind.as_str(), op.id.as_str()])?;
            }
            if let Some(order) =
                order_of(&applied.state).filter(|_| op.kind != EntityKind::WorkOrder)
            {
                // A record made offline on an order that has since left our scope.
                conn.prepare_cached(
                    "UPDATE entities SET gone = 1 WHERE kind = ?1 AND id = ?2 AND NOT EXISTS (
                        SELECT 1 FROM entities o WHERE o.kind = 'work_order' AND o.id = ?3 AND o.gone = 0)",
                )?
                .execute(params![op.kind.as_str(), op.id.as_str(), order.as_str()])?;
            }
        }
    }
    let seqs: Vec<i64> = ops.iter().map(|(seq, _)| *seq).collect();
    mark_folded(conn, &seqs)
}

/// Drop entities that left the scope once none of our ops refer to them: pending ones
/// still need them, and refused ones are shown with the order they were meant for.
fn purge_gone(tx: &Transaction<'_>) -> Result<()> {
    tx.execute(
        "DELETE FROM entities WHERE gone = 1 AND NOT EXISTS (
            SELECT 1 FROM outbox o WHERE (
                (o.kind = entities.kind AND o.id = entities.id)
                OR (entities.kind = 'work_order' AND o.order_id = entities.id)))",
        [],
    )?;
    Ok(())
}

pub(crate) fn states_of(
    conn: &Connection,
    kinds: &[EntityKind],
    who: &Enrollment,
) -> Result<Vec<EntityState>> {
    let mut out: BTreeMap<(EntityKind, String), EntityState> = BTreeMap::new();
    for kind in kinds {
        let mut stmt =
            conn.prepare_cached("SELECT state FROM entities WHERE kind = ?1 AND gone = 0")?;
        let rows = stmt.query_map([kind.as_str()], |r| r.get::<_, String>(0))?;
        for j in rows {
            let s = parse_state(&j?)?;
            out.insert((s.kind, s.id.0.clone()), s);
        }
        for op in pending_ops(conn, "AND kind = ?1", &[&kind.as_str()])? {
            let key = (op.kind, op.id.0.clone());
            let current = out.get(&key);
            if current.is_none() && op.op != OpKind::Create {
                continue; // it left our scope
            }
            let applied = apply_op(current, &op, who.device_id, &who.user);
            out.insert(key, applied.state);
        }
    }
    Ok(out.into_values().collect())
}

pub(crate) fn local_view(
    conn: &Connection,
    kind: EntityKind,
    id: &str,
    who: &Enrollment,
) -> Result<Option<EntityState>> {
    let mut state = load(conn, kind, id)?;
    for op in pending_ops(conn, "AND kind = ?1 AND id = ?2", &[&kind.as_str(), &id])? {
        if state.is_none() && op.op != OpKind::Create {
            continue; // it left our scope; a change alone is not the whole entity
        }
        state = Some(apply_op(state.as_ref(), &op, who.device_id, &who.user).state);
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldsync_proto::wire::Rejection;
    use fieldsync_proto::Version;
    use serde_json::json;

    fn enrolled(dir: &Path) -> Store {
        enrolled_with(Store::open(dir).unwrap())
    }

    /// A clock stopped at one instant.
    struct Stopped(u64);

    impl Clock for Stopped {
        fn now_ms(&self) -> u64 {
            self.0
        }
    }

    fn enrolled_with(s: Store) -> Store {
        enrolled_at(s, 1_000)
    }

    /// Enrolled as eve's device 7 by a server whose clock read `server_time_ms`.
    fn enrolled_at(mut s: Store, server_time_ms: u64) -> Store {
        s.save_enrollment(
            "https://example.test",
            &EnrollResponse {
                device_id: 7,
                token: "t".into(),
                user: "eve".into(),
                role: Role::Engineer,
                protocol: 1,
                server_time_ms,
            },
            None,
        )
        .unwrap();
        s
    }

    fn order(id: &str, assignee: &str) -> EntityState {
        let op = Op {
            seq: 1,
            kind: EntityKind::WorkOrder,
            id: id.into(),
            hlc: Hlc::from_millis(500),
            op: OpKind::Create,
            fields: BTreeMap::from([
                ("description".into(), json!("pump")),
                ("priority".into(), json!(2)),
                ("assignee".into(), json!(assignee)),
            ]),
            base: BTreeMap::new(),
        };
        apply_op(None, &op, 0, "dana").state
    }

    fn page(entities: Vec<EntityState>, cursor: u64) -> PullPage {
        PullPage {
            entities,
            left: vec![],
            cursor,
            more: false,
            hlc: Hlc::from_millis(600),
            server_time_ms: 600,
        }
    }

    fn set_status(s: &mut Store, id: &str, status: &str) -> Op {
        s.record(EntityKind::WorkOrder, &id.into(), OpKind::Set, |_, _| {
            Ok(BTreeMap::from([("status".into(), json!(status))]))
        })
        .unwrap()
    }

    /// A device clock `skew_ms` off a real time the test moves.
    struct Skewed {
        real: std::sync::atomic::AtomicU64,
        skew_ms: i64,
    }

    impl Clock for Skewed {
        fn now_ms(&self) -> u64 {
            (self.real.load(std::sync::atomic::Ordering::SeqCst) as i64 + self.skew_ms) as u64
        }
    }

    #[test]
    fn events_are_stamped_on_the_servers_time_when_the_device_clock_is_hours_off() {
        const HOUR: u64 = 3_600_000;
        let enrolled_ms = 1_796_000_000_000;
        for skew_h in [-26i64, -3, 0, 5] {
            let dir = tempfile::tempdir().unwrap();
            let clock = Arc::new(Skewed {
                real: enrolled_ms.into(),
                skew_ms: skew_h * HOUR as i64,
            });
            let mut s = enrolled_at(
                Store::open_with_clock(dir.path(), clock.clone()).unwrap(),
                enrolled_ms,
            );
            let mut o = order("w1", "eve");
            o.fields
                .values_mut()
                .for_each(|f| f.ver.hlc = Hlc::from_millis(enrolled_ms - HOUR));
            let mut p = page(vec![o], 1);
            p.hlc = Hlc::from_millis(enrolled_ms);
            s.apply_page(&p).unwrap();
            // Two hours later, offline, on site.
            let arrived = enrolled_ms + 2 * HOUR;
            clock
                .real
                .store(arrived, std::sync::atomic::Ordering::SeqCst);
            let op = set_status(&mut s, "w1", "on-site");
            let error = op.hlc.millis().abs_diff(arrived);
            assert!(error < 1_000, "skew {skew_h} h: stamped {error} ms off");
        }
    }

    #[test]
    fn local_edit_is_visible_pending_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = enrolled(dir.path());
        s.apply_page(&page(vec![order("w1", "eve")], 3)).unwrap();
        let op = set_status(&mut s, "w1", "on-site");
        assert_eq!(op.seq, 1);
        assert!(
            op.hlc > Hlc::from_millis(600),
            "clock moved past the server's"
        );
        assert!(
            op.base.is_empty(),
            "status was unset when the engineer wrote it"
        );
        let second = set_status(&mut s, "w1", "completed");
        assert_eq!(
            second.base["status"],
            op.version(7),
            "base is the version seen, our own"
        );
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.pending_count().unwrap(), 2);
        assert_eq!(
            s.view(EntityKind::WorkOrder, "w1")
                .unwrap()
                .unwrap()
                .str("status"),
            Some("completed")
        );
        assert_eq!(s.cursor().unwrap(), 3);
    }

    #[test]
    fn streamed_digest_equals_the_digest_of_the_states() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = enrolled(dir.path());
        let states: Vec<EntityState> = ["w3", "w1", "w20", "w2"]
            .iter()
            .map(|id| order(id, "eve"))
            .collect();
        s.apply_page(&page(states.clone(), 3)).unwrap();
        assert_eq!(s.digest().unwrap(), scope::digest(&states));
        s.apply_page(&page(vec![], 4)).unwrap();
        let empty: Vec<EntityState> = vec![];
        let other = Store::open(tempfile::tempdir().unwrap().path()).unwrap();
        assert_eq!(other.digest().unwrap(), scope::digest(&empty));
        assert_ne!(s.digest().unwrap(), scope::digest(&states[..3]));
    }

    #[test]
    fn ack_folds_applied_and_keeps_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = enrolled(dir.path());
        s.apply_page(&page(vec![order("w1", "eve")], 3)).unwrap();
        set_status(&mut s, "w1", "en-route");
        set_status(&mut s, "w1", "on-site");
        let out = s
            .ack(
                &PushResponse {
                    acked_seq: 2,
                    rejected: vec![Rejection {
                        seq: 2,
                        code: "not_owner".into(),
                        message: "no".into(),
                    }],
                    server_time_ms: 700,
                    parked: vec![],
                },
                1..=2,
            )
            .unwrap();
        assert_eq!(
            out,
            AckOutcome {
                applied: 1,
                rejected: 1,
                parked: 0
            }
        );
        assert_eq!(s.pending_count().unwrap(), 0);
        let r = s.rejected().unwrap();
        assert_eq!((r.len(), r[0].seq, r[0].code.as_str()), (1, 2, "not_owner"));
        let v = s.view(EntityKind::WorkOrder, "w1").unwrap().unwrap();
        assert_eq!(
            v.str("status"),
            Some("en-route"),
            "refused op no longer shows"
        );
        assert!(s.push_batch(10).unwrap().is_empty());
    }

    #[test]
    fn an_ack_settles_only_the_ops_its_push_carried() {
        // Ops 3 and 4 went out in a batch before a crash; the server refused 3 in an
        // answer that was never read. The resent batch [1, 2] is answered "acked 4, no
        // refusals": 3 and 4 must stay pending, so their resend brings the refusal back.
        let dir = tempfile::tempdir().unwrap();
        let mut s = enrolled(dir.path());
        s.apply_page(&page(vec![order("w1", "eve")], 3)).unwrap();
        for status in ["en-route", "on-site", "on-hold", "completed"] {
            set_status(&mut s, "w1", status);
        }
        let answer = |rejected: Vec<Rejection>| PushResponse {
            acked_seq: 4,
            rejected,
            server_time_ms: 700,
            parked: vec![],
        };
        let out = s.ack(&answer(vec![]), 1..=2).unwrap();
        assert_eq!(
            out,
            AckOutcome {
                applied: 2,
                rejected: 0,
                parked: 0
            }
        );
        assert_eq!(s.pending_count().unwrap(), 2, "3 and 4 are not settled");
        let refusal = Rejection {
            seq: 3,
            code: "out_of_scope".into(),
            message: "reassigned".into(),
        };
        let out = s.ack(&answer(vec![refusal]), 3..=4).unwrap();
        assert_eq!(
            out,
            AckOutcome {
                applied: 1,
                rejected: 1,
                parked: 0
            }
        );
        let r = s.rejected().unwrap();
        assert_eq!((r.len(), r[0].seq), (1, 3), "the refusal is kept");
        let v = s.view(EntityKind::WorkOrder, "w1").unwrap().unwrap();
        assert_eq!(v.str("status"), Some("completed"));
    }

    #[test]
    fn a_parked_op_stays_pending_through_later_acks_until_its_verdict() {
        // After a restore the server parked op 1 (what it depends on was not re-sent yet).
        // The answer to the next batch, [2, 3], says nothing about 1: it must stay pending
        // and unfolded, and be settled only by an answer to a request that carried it.
        let dir = tempfile::tempdir().unwrap();
        let mut s = enrolled(dir.path());
        s.apply_page(&page(vec![order("w1", "eve")], 3)).unwrap();
        for status in ["en-route", "on-site", "on-hold"] {
            set_status(&mut s, "w1", status);
        }
        let answer = |acked_seq, parked: Vec<u64>| PushResponse {
            acked_seq,
            rejected: vec![],
            server_time_ms: 700,
            parked,
        };
        let out = s.ack(&answer(1, vec![1]), 1..=1).unwrap();
        assert_eq!((out.applied, out.parked), (0, 1));
        let out = s.ack(&answer(3, vec![]), 2..=3).unwrap();
        assert_eq!(
            (out.applied, out.parked),
            (2, 0),
            "only 2 and 3 are settled"
        );
        assert_eq!(
            s.pending_count().unwrap(),
            1,
            "the parked op is still pending"
        );
        assert_eq!(
            s.push_batch_after(0, 10).unwrap()[0].seq,
            1,
            "and asked about again"
        );
        let out = s.ack(&answer(3, vec![]), 1..=1).unwrap();
        assert_eq!(out.applied, 1, "applied once what it waited for came back");
        assert_eq!(s.pending_count().unwrap(), 0);
    }

    #[test]
    fn an_edit_orders_after_every_version_a_page_brought() {
        // The page's clock was read before a push committed a newer version into the
        // page; our clock is behind both. The edit must still order after what it saw.
        let dir = tempfile::tempdir().unwrap();
        let mut s =
            enrolled_with(Store::open_with_clock(dir.path(), Arc::new(Stopped(1_000))).unwrap());
        let mut w1 = order("w1", "eve");
        let newer = Version {
            hlc: Hlc::from_millis(2_000),
            dev: 3,
        };
        w1.fields.get_mut("description").unwrap().ver = newer;
        let mut p = page(vec![w1], 3);
        p.hlc = Hlc::from_millis(1_000);
        s.apply_page(&p).unwrap();
        let op = s
            .record(EntityKind::WorkOrder, &"w1".into(), OpKind::Set, |_, _| {
                Ok(BTreeMap::from([(
                    "description".into(),
                    json!("pump, leaking"),
                )]))
            })
            .unwrap();
        assert_eq!(op.base["description"], newer);
        assert!(
            op.version(7) > newer,
            "{} does not order after {}",
            op.hlc,
            newer.hlc
        );
    }

    #[test]
    fn after_a_rollback_the_servers_copy_replaces_ours() {
        // Our copy holds a console write the restored server no longer has, at a newer
        // version than anything it still has: a join would keep it forever.
        let dir = tempfile::tempdir().unwrap();
        let mut s = enrolled(dir.path());
        let restored = order("w1", "eve");
        let mut lost = restored.clone();
        let later = Version {
            hlc: Hlc::from_millis(900),
            dev: 0,
        };
        let assignee = lost.fields.get_mut("assignee").unwrap();
        (assignee.v, assignee.ver) = (json!("sam"), later);
        s.apply_page(&page(vec![lost], 3)).unwrap();
        assert_eq!(s.check_server_history(1, 0).unwrap(), 0, "first contact");
        s.check_server_history(2, 0).unwrap();
        assert_eq!(s.cursor().unwrap(), 0, "the rollback starts a full pull");
        s.apply_page(&page(vec![restored.clone()], 2)).unwrap();
        let w1 = s.view(EntityKind::WorkOrder, "w1").unwrap().unwrap();
        assert_eq!(
            w1, restored,
            "the server's copy, not a join with the lost write"
        );
        assert_eq!(s.digest().unwrap(), scope::digest([&restored]));
    }

    fn unfolded_count(s: &Store) -> i64 {
        s.conn
            .query_row("SELECT COUNT(*) FROM sent_log WHERE folded = 0", [], |r| {
                r.get(0)
            })
            .unwrap()
    }

    fn acked(acked_seq: u64) -> PushResponse {
        PushResponse {
            acked_seq,
            rejected: vec![],
            server_time_ms: 700,
            parked: vec![],
        }
    }

    /// A store holding order w1 as the server sent it, with our status change on it
    /// acknowledged and not folded in yet.
    fn with_acked_change() -> (tempfile::TempDir, Store, EntityState, Op) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = enrolled(dir.path());
        let w1 = order("w1", "eve");
        s.apply_page(&page(vec![w1.clone()], 3)).unwrap();
        let op = set_status(&mut s, "w1", "on-site");
        s.ack(&acked(1), 1..=1).unwrap();
        (dir, s, w1, op)
    }

    #[test]
    fn an_acked_op_shows_until_the_pull_folds_it_into_the_confirmed_state() {
        let (_dir, mut s, w1, op) = with_acked_change();
        let folded = apply_op(Some(&w1), &op, 7, "eve").state;
        assert_eq!(s.pending_count().unwrap(), 0, "nothing left to send");
        assert_eq!(
            s.view(EntityKind::WorkOrder, "w1").unwrap(),
            Some(folded.clone()),
            "the view shows the acknowledged change"
        );
        assert_eq!(s.orders().unwrap()[0].status, "on-site");
        assert_eq!(
            s.digest().unwrap(),
            scope::digest([&w1]),
            "not folded into the confirmed state yet"
        );
        assert_eq!(unfolded_count(&s), 1);
        // A pull that does not bring w1 back folds it in on its last page.
        s.apply_page(&page(vec![], 4)).unwrap();
        assert_eq!(unfolded_count(&s), 0);
        assert_eq!(s.digest().unwrap(), scope::digest([&folded]));
        assert_eq!(
            s.view(EntityKind::WorkOrder, "w1").unwrap(),
            Some(folded),
            "applied once, not twice"
        );
    }

    #[test]
    fn an_acked_op_is_folded_into_the_copy_the_pull_brings_back() {
        let (_dir, mut s, w1, op) = with_acked_change();
        // The server's copy holds our change and a dispatcher's later one.
        let mut server = apply_op(Some(&w1), &op, 7, "eve").state;
        let dispatcher = Op {
            seq: 9,
            kind: EntityKind::WorkOrder,
            id: "w1".into(),
            hlc: Hlc::from_millis(900_000),
            op: OpKind::Set,
            fields: BTreeMap::from([("priority".into(), json!(1))]),
            base: BTreeMap::new(),
        };
        server = apply_op(Some(&server), &dispatcher, 2, "dana").state;
        let mut p = page(vec![server.clone()], 5);
        p.more = true;
        s.apply_page(&p).unwrap();
        assert_eq!(unfolded_count(&s), 0, "folded as the copy was saved");
        assert_eq!(s.digest().unwrap(), scope::digest([&server]));
        // A copy older than our change (it cannot happen in `sync_once`, which pulls after
        // the push) loses nothing either: folding is a join.
        let (_dir, mut s, w1, op) = with_acked_change();
        s.apply_page(&page(vec![w1.clone()], 4)).unwrap();
        assert_eq!(
            s.digest().unwrap(),
            scope::digest([&apply_op(Some(&w1), &op, 7, "eve").state])
        );
    }

    #[test]
    fn an_acked_op_on_an_order_that_left_goes_with_it() {
        let (_dir, mut s, _, _) = with_acked_change();
        let mut p = page(vec![], 5);
        p.left = vec![fieldsync_proto::wire::EntityRef {
            kind: EntityKind::WorkOrder,
            id: "w1".into(),
        }];
        s.apply_page(&p).unwrap();
        assert_eq!(unfolded_count(&s), 0);
        assert!(s.orders().unwrap().is_empty());
        assert!(s.view(EntityKind::WorkOrder, "w1").unwrap().is_none());
        assert_eq!(
            s.digest().unwrap(),
            scope::digest(&Vec::<EntityState>::new())
        );
        // Kept for a re-send after a server restore all the same.
        let logged: i64 = s
            .conn
            .query_row("SELECT COUNT(*) FROM sent_log", [], |r| r.get(0))
            .unwrap();
        assert_eq!(logged, 1);
    }

    #[test]
    fn left_scope_is_kept_until_own_ops_are_acked() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = enrolled(dir.path());
        s.apply_page(&page(vec![order("w1", "eve"), order("w2", "eve")], 3))
            .unwrap();
        set_status(&mut s, "w1", "on-site");
        let mut p = page(vec![], 5);
        p.left = vec![
            fieldsync_proto::wire::EntityRef {
                kind: EntityKind::WorkOrder,
                id: "w1".into(),
            },
            fieldsync_proto::wire::EntityRef {
                kind: EntityKind::WorkOrder,
                id: "w2".into(),
            },
        ];
        s.apply_page(&p).unwrap();
        assert!(s.orders().unwrap().is_empty(), "neither is listed as ours");
        assert!(
            s.view(EntityKind::WorkOrder, "w2").unwrap().is_none(),
            "w2 dropped"
        );
        assert!(
            s.order_view(&"w1".into()).unwrap().is_some(),
            "w1 kept for its pending op"
        );
        s.ack(
            &PushResponse {
                acked_seq: 1,
                rejected: vec![],
                server_time_ms: 0,
                parked: vec![],
            },
            1..=1,
        )
        .unwrap();
        assert!(
            s.view(EntityKind::WorkOrder, "w1").unwrap().is_none(),
            "dropped once the op is safe"
        );
    }

    #[test]
    fn refused_ops_keep_their_order_visible_but_not_listed() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = enrolled(dir.path());
        s.apply_page(&page(vec![order("w1", "eve")], 3)).unwrap();
        set_status(&mut s, "w1", "on-site");
        let mut p = page(vec![], 5);
        p.left = vec![fieldsync_proto::wire::EntityRef {
            kind: EntityKind::WorkOrder,
            id: "w1".into(),
        }];
        s.apply_page(&p).unwrap();
        let err = s
            .record(EntityKind::WorkOrder, &"w1".into(), OpKind::Set, |_, _| {
                Ok(BTreeMap::from([("status".into(), json!("completed"))]))
            })
            .unwrap_err();
        assert!(err.to_string().contains("no longer assigned"), "{err}");
        s.ack(
            &PushResponse {
                acked_seq: 1,
                rejected: vec![Rejection {
                    seq: 1,
                    code: "out_of_scope".into(),
                    message: "reassigned".into(),
                }],
                server_time_ms: 0,
                parked: vec![],
            },
            1..=1,
        )
        .unwrap();
        assert!(s.orders().unwrap().is_empty(), "not in the list");
        assert!(s.order_left_scope(&"w1".into()).unwrap());
        let v = s.order_view(&"w1".into()).unwrap().expect("still shown");
        assert_eq!(v.rejected.len(), 1);
        assert_eq!(v.rejected[0].code, "out_of_scope");
    }

    #[test]
    fn engineer_cannot_write_dispatcher_fields_offline() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = enrolled(dir.path());
        s.apply_page(&page(vec![order("w1", "eve")], 3)).unwrap();
        let err = s
            .record(EntityKind::WorkOrder, &"w1".into(), OpKind::Set, |_, _| {
                Ok(BTreeMap::from([("priority".into(), json!(1))]))
            })
            .unwrap_err();
        assert!(
            matches!(&err, AgentError::Refused(e) if e.code == "not_owner"),
            "{err}"
        );
        assert_eq!(s.pending_count().unwrap(), 0, "nothing half-written");
        assert_eq!(s.meta_u64("next_seq").unwrap(), 0, "seq not consumed");
    }

    #[test]
    fn resolve_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = enrolled(dir.path());
        s.apply_page(&page(vec![order("abc-1", "eve"), order("abd-2", "eve")], 3))
            .unwrap();
        assert_eq!(s.resolve_order("abc").unwrap().as_str(), "abc-1");
        assert_eq!(s.resolve_order("abd-2").unwrap().as_str(), "abd-2");
        assert!(matches!(
            s.resolve_order("ab"),
            Err(AgentError::AmbiguousOrder { .. })
        ));
        assert!(matches!(
            s.resolve_order("zz"),
            Err(AgentError::NoSuchOrder(_))
        ));
    }

    fn article(id: &str, title: &str, body: &str, extra: &[(&str, Value)]) -> EntityState {
        let mut fields = BTreeMap::from([
            ("title".to_owned(), json!(title)),
            ("body".to_owned(), json!(body)),
        ]);
        for (k, v) in extra {
            fields.insert((*k).to_owned(), v.clone());
        }
        let op = Op {
            seq: 1,
            kind: EntityKind::KbArticle,
            id: id.into(),
            hlc: Hlc::from_millis(500),
            op: OpKind::Create,
            fields,
            base: BTreeMap::new(),
        };
        apply_op(None, &op, 0, "dana").state
    }

    #[test]
    fn kb_search_finds_substrings_in_english_and_chinese_offline() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = enrolled(dir.path());
        s.apply_page(&page(
            vec![
                article(
                    "kb-e42",
                    "E42 on the 30RB: pump fault",
                    "Check the condenser pump relay before replacing the pump.",
                    &[
                        ("fault_codes", json!("E42")),
                        ("models", json!("Carrier 30RB")),
                    ],
                ),
                article(
                    "kb-relay",
                    "Relays",
                    "A stuck relay can look like a pump fault (E42 on some units).",
                    &[],
                ),
                article(
                    "kb-zh",
                    "压缩机过热报警",
                    "检查水泵和冷却水流量，压缩机过热通常由冷凝器结垢引起。",
                    &[("tags", json!("制冷, 维修"))],
                ),
                article(
                    "kb-old",
                    "Old pump notes",
                    "pump pump pump",
                    &[("retired", json!(true))],
                ),
            ],
            1,
        ))
        .unwrap();
        let ids = |s: &Store, q: &str| -> Vec<String> {
            s.kb_search(q, 10)
                .unwrap()
                .into_iter()
                .map(|h| h.id)
                .collect()
        };
        assert_eq!(
            ids(&s, "e42 PUMP"),
            ["kb-e42", "kb-relay"],
            "every word, title first"
        );
        assert_eq!(
            ids(&s, "水泵"),
            ["kb-zh"],
            "two Chinese characters, inside a sentence"
        );
        assert_eq!(ids(&s, "压缩机 结垢"), ["kb-zh"]);
        assert!(ids(&s, "pump 压缩机").is_empty(), "all words must match");
        assert!(
            !ids(&s, "pump").contains(&"kb-old".to_owned()),
            "retired articles are not found"
        );
        let hit = &s.kb_search("condenser", 10).unwrap()[0];
        assert!(
            hit.snippet.contains("condenser pump relay"),
            "{}",
            hit.snippet
        );
        assert!(s.kb_search("  ", 10).is_err());

        // An edit re-indexes: the old wording is gone, the new found.
        let mut edited = article("kb-relay", "Relays", "Contactors wear out.", &[]);
        edited
            .fields
            .values_mut()
            .for_each(|f| f.ver.hlc = Hlc::from_millis(700));
        s.apply_page(&page(vec![edited], 2)).unwrap();
        assert_eq!(ids(&s, "pump fault"), ["kb-e42"]);
        assert_eq!(ids(&s, "contactor"), ["kb-relay"]);
    }
}
