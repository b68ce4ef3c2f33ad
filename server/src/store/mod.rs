//! Server storage behind one trait, chosen once in `main`. SQLite is the embedded default;
//! every decision about ops (validation, authorisation, merge, conflicts, scope) lives in
//! proto and is shared, so a backend only stores and looks up.

mod board;
mod sqlite;

pub use sqlite::{SqliteStore, PARK_AFTER_RESTORE_MS};

use fieldsync_proto::view::{OrderSummary, OrderView};
use fieldsync_proto::wire::{DigestResponse, PullPage, PushResponse};
use fieldsync_proto::{DeviceId, EntityId, EntityKind, EntityState, Op, OpError, Role};
use serde_json::value::RawValue;
use serde_json::Value;

use fieldsync_proto::state::Version;
use std::collections::BTreeMap;

/// An op as the server received it: decoded, and the JSON text it arrived as, which the op
/// log keeps as is. Serialising every op again only to log it cost a tenth of the push.
#[derive(Clone, Debug)]
pub struct ReceivedOp {
    pub op: Op,
    pub json: Box<RawValue>,
}

impl ReceivedOp {
    /// For ops made in memory (tests, the simulation): their text is their serialisation.
    pub fn encode(op: Op) -> ReceivedOp {
        let json = serde_json::value::to_raw_value(&op).expect("an op serialises");
        ReceivedOp { op, json }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(rusqlite::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Conflict(String),
    #[error("ops must be sent in sequence: expected seq {expected}, got {got}")]
    SeqGap { expected: u64, got: u64 },
    #[error("the database is full or the disk is out of space")]
    Full,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => StoreError::Full,
            _ => StoreError::Db(e),
        }
    }
}

/// Who is making a request, from their token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub user: String,
    pub role: Role,
    /// Set for device tokens; sessions (console, scripts) have none.
    pub device: Option<DeviceId>,
}

impl Actor {
    pub fn is_office(&self) -> bool {
        matches!(self.role, Role::Dispatcher | Role::Admin)
    }
}

#[derive(Clone, Debug)]
pub struct UserRecord {
    pub name: String,
    pub role: Role,
    pub password_hash: String,
}

/// What the token lookup found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenStatus {
    Valid(Actor),
    Revoked,
    Unknown,
}

/// A write made through the API rather than pushed by a device: the server makes it an op
/// of its own device, so it merges, conflicts and syncs like any other.
#[derive(Clone, Debug)]
pub struct ServerWrite {
    pub kind: EntityKind,
    pub id: EntityId,
    pub create: bool,
    pub fields: BTreeMap<String, Value>,
    pub base: BTreeMap<String, Version>,
}

/// What one preventive-maintenance run did.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct MaintenanceRun {
    pub plans: usize,
    /// Orders this run created.
    pub created: Vec<EntityId>,
    /// Orders due in the window that already existed.
    pub existing: usize,
    /// Orders refused (e.g. the plan's assignee no longer exists), with the reason.
    pub refused: Vec<(EntityId, String)>,
}

/// A dispatcher's decision on a requisition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Approve, moving the units from this warehouse into the requesting van.
    Approve {
        from: String,
    },
    Reject {
        note: Option<String>,
    },
}

/// How the console's board orders its rows; every sort ends in the server sequence so
/// pages are stable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BoardSort {
    /// Most recently changed first.
    #[default]
    Recent,
    /// Most urgent (priority 1) first.
    Priority,
    /// Soonest due first; orders without a due time last.
    Due,
    Status,
}

/// One page of the console's work order board.
#[derive(Clone, Debug, Default)]
pub struct BoardQuery {
    pub status: Option<String>,
    pub priority: Option<i64>,
    pub assignee: Option<String>,
    pub customer_id: Option<String>,
    pub sort: BoardSort,
    pub offset: usize,
    pub limit: usize,
}

#[derive(Clone, Debug, Default)]
pub struct BoardPage {
    pub rows: Vec<OrderSummary>,
    /// Orders matching the filters, on every page.
    pub total: u64,
    /// Every order per effective status, ignoring the filters.
    pub counts: Vec<(String, u64)>,
    /// The names of the customers on this page, by id.
    pub customer_names: std::collections::BTreeMap<String, String>,
    /// The board's read model had not caught up with every commit when this was read (a
    /// rebuild after a restart, a large import): rows may be missing or out of date.
    pub behind: bool,
}

/// One op on an order's timeline, from the server's op log.
#[derive(Clone, Debug)]
pub struct TimelineEntry {
    pub user: String,
    pub device: DeviceId,
    pub device_name: String,
    pub kind: String,
    pub id: String,
    /// Event time (the author's HLC, in ms).
    pub event_ms: u64,
    /// When the server received it.
    pub received_ms: u64,
    /// The op as the device sent it.
    pub op: Value,
    pub rejected: Option<String>,
}

#[derive(Clone, Debug)]
pub struct DeviceInfo {
    pub id: DeviceId,
    pub name: String,
    pub created_ms: u64,
    pub last_seen_ms: Option<u64>,
    pub revoked: bool,
    pub acked_seq: u64,
    pub rejected: u64,
    /// How far ahead of the server's clock the device's newest op was stamped; event
    /// times may be behind (work done offline), never this far ahead.
    pub ahead_ms: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct PersonInfo {
    pub name: String,
    pub role: Role,
    /// The user entity's dispatcher-owned profile, when one exists.
    pub region: Option<String>,
    pub skills: Option<String>,
    /// Orders assigned and neither completed nor cancelled.
    pub open_load: u64,
    pub devices: Vec<DeviceInfo>,
}

pub trait Store: Send + Sync + 'static {
    fn add_user(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
        now_ms: u64,
    ) -> Result<(), StoreError>;
    fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError>;
    fn enroll_device(
        &self,
        user: &str,
        device_name: &str,
        token_hash: &str,
        now_ms: u64,
    ) -> Result<DeviceId, StoreError>;
    fn add_session(
        &self,
        user: &str,
        token_hash: &str,
        now_ms: u64,
        expires_ms: u64,
    ) -> Result<(), StoreError>;
    fn token(&self, token_hash: &str, now_ms: u64) -> Result<TokenStatus, StoreError>;
    fn revoke_device(&self, device: DeviceId) -> Result<bool, StoreError>;

    /// Apply a batch of one device's ops in one transaction.
    fn push_received(
        &self,
        actor: &Actor,
        device: DeviceId,
        ops: &[ReceivedOp],
        now_ms: u64,
    ) -> Result<PushResponse, StoreError>;
    /// [`Store::push_received`] for ops made in memory.
    fn push(
        &self,
        actor: &Actor,
        device: DeviceId,
        ops: &[Op],
        now_ms: u64,
    ) -> Result<PushResponse, StoreError> {
        let received: Vec<ReceivedOp> = ops.iter().cloned().map(ReceivedOp::encode).collect();
        self.push_received(actor, device, &received, now_ms)
    }
    /// Changes in the actor's scope after `cursor`.
    fn pull(
        &self,
        actor: &Actor,
        cursor: u64,
        limit: usize,
    ) -> Result<PullPage<Box<RawValue>>, StoreError>;
    fn digest(&self, actor: &Actor) -> Result<DigestResponse, StoreError>;
    /// The database's epoch and the last op of `device` it holds.
    fn hello(&self, device: DeviceId) -> Result<(u64, u64), StoreError>;
    /// Write through the API. `Ok(Err(_))` is a refusal of the write itself.
    fn server_write(
        &self,
        actor: &Actor,
        write: ServerWrite,
        now_ms: u64,
    ) -> Result<Result<(), OpError>, StoreError>;

    /// Many server writes in one transaction, all or nothing (`fieldsync-server import`):
    /// the rows refused, by their index in `writes`; empty when every row was written.
    fn import(
        &self,
        actor: &Actor,
        writes: Vec<ServerWrite>,
        now_ms: u64,
    ) -> Result<Vec<(usize, OpError)>, StoreError>;

    /// Give an existing user their `user` entity (`name`, `role`) if they have none, as an
    /// op of the server's own device: those fields are the server's alone, so no actor's
    /// write may create it, yet dispatchers set its `region`, `skills` and `display_name`.
    /// False when there is no such user. A name that cannot be an entity id (one with `.`
    /// or `@`) gets no entity.
    fn ensure_profile(&self, user: &str, now_ms: u64) -> Result<bool, StoreError>;

    /// Create the work orders maintenance plans have coming due around `now_ms`, in one
    /// transaction that skips every order that already exists: however many runs overlap,
    /// in this process or another, each plan gets one order per due date.
    fn generate_maintenance(&self, now_ms: u64) -> Result<MaintenanceRun, StoreError>;

    fn order_view(&self, actor: &Actor, id: &str) -> Result<Option<OrderView>, StoreError>;
    fn list_orders(
        &self,
        actor: &Actor,
        assignee: Option<&str>,
        status: Option<&str>,
    ) -> Result<Vec<OrderSummary>, StoreError>;
    /// Any entity visible to the actor.
    fn entity(
        &self,
        actor: &Actor,
        kind: EntityKind,
        id: &str,
    ) -> Result<Option<EntityState>, StoreError>;

    /// Up to `limit` entities of `kind`, by id: reference data the office reads whole
    /// (checklist templates).
    fn all_of_kind(&self, kind: EntityKind, limit: usize) -> Result<Vec<EntityState>, StoreError>;

    /// Up to `limit` entities of `kind` whose `customer_id` is `customer` (office reads:
    /// the customer page's sites, assets, contracts and contact log).
    fn of_customer(
        &self,
        kind: EntityKind,
        customer: &str,
        limit: usize,
    ) -> Result<Vec<EntityState>, StoreError>;

    /// The server sequence after the last commit; it changes on every write, so
    /// notifications (console, agents' live channel) wait on it instead of polling.
    fn changes(&self) -> tokio::sync::watch::Receiver<u64>;
    /// The newest feed row of `user`: it moves exactly when their pull would return
    /// something new.
    fn feed_seq(&self, user: &str) -> Result<u64, StoreError>;
    /// Log out: a session token stops working. Device tokens are revoked per device.
    fn end_session(&self, token_hash: &str) -> Result<(), StoreError>;
    /// The console's board (office only; no per-user scope).
    fn board(&self, q: &BoardQuery) -> Result<BoardPage, StoreError>;
    /// Customers, sites or assets whose id or label starts with `prefix`.
    fn search(
        &self,
        kind: EntityKind,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError>;
    /// Every op on an order and its records, oldest first.
    fn timeline(&self, order_id: &str, limit: usize) -> Result<Vec<TimelineEntry>, StoreError>;
    /// Unresolved conflicts across all orders, newest first.
    fn open_conflicts(&self, limit: usize) -> Result<Vec<EntityState>, StoreError>;
    /// Users with their devices and open load.
    fn people(&self) -> Result<Vec<PersonInfo>, StoreError>;

    /// Everything stock is derived from (office reads): every stock location, part,
    /// requisition and minimum, and up to `movements_max` movements, read as
    /// `stock::Movement`s rather than whole states (it is most of the cost of a view).
    fn stock_states(
        &self,
        movements_max: usize,
    ) -> Result<(Vec<EntityState>, Vec<fieldsync_proto::stock::Movement>), StoreError>;
    /// Approve a pending requisition (a transfer from the warehouse into the van, recorded
    /// with the decision in one transaction) or reject it. `Ok(Err(_))` is a refusal:
    /// unknown, already decided, or a transfer the stock rules refuse.
    fn decide_requisition(
        &self,
        actor: &Actor,
        id: &str,
        decision: Decision,
        now_ms: u64,
    ) -> Result<Result<(), OpError>, StoreError>;
}
