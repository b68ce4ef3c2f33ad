//! Request and response bodies of the sync and dispatcher APIs. Changing one is an API
//! change: add optional fields, never rename. Requests refuse unknown fields, so a typo in
//! a client is an error, not a silently ignored value.

use serde::{Deserialize, Serialize};

use crate::hlc::Hlc;
use crate::ids::{DeviceId, EntityId};
use crate::op::Op;
use crate::schema::{EntityKind, Role};
use crate::state::EntityState;

/// Sent by the agent on every sync request; the server refuses any other.
pub const PROTOCOL_VERSION: u32 = 1;
pub const PROTOCOL_HEADER: &str = "x-fieldsync-protocol";
/// On a blob chunk upload: the lowercase hex SHA-256 of this chunk's bytes. The server
/// checks it before it counts the chunk as held, so a corrupted chunk costs one chunk.
pub const CHUNK_SHA256_HEADER: &str = "x-fieldsync-chunk-sha256";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    pub user: String,
    pub password: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionResponse {
    pub token: String,
    pub role: Role,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub user: String,
    pub password: String,
    #[serde(default)]
    pub device_name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub device_id: DeviceId,
    pub token: String,
    pub user: String,
    pub role: Role,
    pub protocol: u32,
    pub server_time_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    pub ops: Vec<Op>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    pub seq: u64,
    pub code: String,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PushResponse {
    /// Every op of this device up to this seq is processed: applied, or listed in
    /// `rejected` (now or in the answer to an earlier send).
    pub acked_seq: u64,
    pub rejected: Vec<Rejection>,
    pub server_time_ms: u64,
    /// Ops acknowledged but not applied yet: after a restore they arrived before what they
    /// depend on was re-sent by another device. The server applies them when it is; the
    /// device keeps them out of its confirmed state until a pull brings the result.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parked: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityRef {
    pub kind: EntityKind,
    pub id: EntityId,
}

/// One page of changes in the device's scope. Generic over the entity representation so
/// the server can splice stored JSON without re-parsing it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PullPage<E = EntityState> {
    /// Current full state of every entity that changed or entered the scope.
    pub entities: Vec<E>,
    /// Entities that left the scope.
    pub left: Vec<EntityRef>,
    pub cursor: u64,
    pub more: bool,
    /// The newest timestamp the server has seen; the agent's clock moves past it.
    pub hlc: Hlc,
    pub server_time_ms: u64,
}

/// `GET /api/v1/sync/hello`, first in every sync round: which history of the database
/// the server is on, and how far it has this device's ops. A different epoch, or fewer of
/// our ops than it once acknowledged, means the server was restored from a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloResponse {
    pub protocol: u32,
    pub epoch: u64,
    /// The last of this device's ops the server holds.
    pub acked_seq: u64,
    pub server_time_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DigestResponse {
    pub entities: u64,
    pub digest: String,
    pub cursor: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    pub description: String,
    pub priority: i64,
    #[serde(default)]
    pub customer_id: Option<String>,
    #[serde(default)]
    pub site_id: Option<String>,
    #[serde(default)]
    pub asset_id: Option<String>,
    #[serde(default)]
    pub assignee: Option<String>,
    #[serde(default)]
    pub scheduled_start: Option<u64>,
    #[serde(default)]
    pub scheduled_end: Option<u64>,
    /// `phone`, `email`, `web` or `on-site`.
    #[serde(default)]
    pub channel: Option<String>,
    /// The reporter's name and contact.
    #[serde(default)]
    pub reporter: Option<String>,
    /// When the customer reported the fault (default: now); the SLA clocks start here.
    #[serde(default)]
    pub reported_at: Option<u64>,
    /// The contract in force (default: the customer's contract covering the asset/site).
    #[serde(default)]
    pub contract_id: Option<String>,
    /// `inspection`, `repair` or `installation`: picks the checklist.
    #[serde(default)]
    pub work_type: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreatedResponse {
    pub id: EntityId,
}

/// `GET /api/v1/blobs/{hash}` and the answer to every chunk upload: how much of a blob the
/// server holds. `verified: true` is the receipt: the server has all the bytes and they
/// hash to the name; only then may a device delete its copy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobStatus {
    pub hash: String,
    /// The blob's full size, once the server knows it (from the photo record).
    pub size: Option<u64>,
    /// Bytes held: the offset the next chunk must start at.
    pub held: u64,
    pub verified: bool,
    /// The largest photo this server accepts.
    pub size_max: u64,
    /// When the server stored it, Unix ms (verified blobs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_ms: Option<u64>,
}
