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
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreatedResponse {
    pub id: EntityId,
}
