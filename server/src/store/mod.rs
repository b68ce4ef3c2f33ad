//! Server storage behind one trait, chosen once in `main`. SQLite is the embedded default;
//! every decision about ops (validation, authorisation, merge, conflicts, scope) lives in
//! proto and is shared, so a backend only stores and looks up.

mod sqlite;

pub use sqlite::SqliteStore;

use fieldsync_proto::view::{OrderSummary, OrderView};
use fieldsync_proto::wire::{DigestResponse, PullPage, PushResponse};
use fieldsync_proto::{DeviceId, EntityId, EntityKind, EntityState, Op, OpError, Role};
use serde_json::value::RawValue;
use serde_json::Value;

use fieldsync_proto::state::Version;
use std::collections::BTreeMap;

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
    fn push(
        &self,
        actor: &Actor,
        device: DeviceId,
        ops: &[Op],
        now_ms: u64,
    ) -> Result<PushResponse, StoreError>;
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
}
