//! The server node: the real `SqliteStore`, called as the HTTP handlers call it. A crash
//! drops the store; a restart reopens the file, so only committed transactions survive.

use std::path::PathBuf;

use fieldsync_proto::limits::{CLOCK_SKEW_MS_MAX, PUSH_BATCH_OPS_MAX};
use fieldsync_proto::wire::{HelloResponse, PushRequest, PROTOCOL_VERSION};
use fieldsync_proto::{DeviceId, OpError, Role};
use fieldsync_server::store::{Actor, ServerWrite, Store, StoreError};
use fieldsync_server::SqliteStore;

use super::{Payload, WireError};

/// A console write the server confirmed to the dispatcher: its op is `(0, seq)`.
#[derive(Clone, Debug)]
pub(super) struct ConsoleWrite {
    pub write: ServerWrite,
}

pub(super) struct ServerNode {
    pub path: PathBuf,
    store: Option<SqliteStore>,
    pub console_writes: Vec<ConsoleWrite>,
}

fn wire_err(status: u16, code: &str) -> WireError {
    WireError {
        status,
        code: code.to_owned(),
    }
}

impl ServerNode {
    pub(super) fn new(path: PathBuf) -> ServerNode {
        ServerNode {
            path,
            store: None,
            console_writes: Vec::new(),
        }
    }

    pub(super) fn is_up(&self) -> bool {
        self.store.is_some()
    }

    pub(super) fn open(&mut self) -> Result<(), StoreError> {
        self.store = Some(SqliteStore::open(&self.path)?);
        Ok(())
    }

    pub(super) fn crash(&mut self) {
        self.store = None;
    }

    pub(super) fn store(&self) -> &SqliteStore {
        self.store.as_ref().expect("the server is up")
    }

    pub(super) fn add_device(
        &self,
        user: &str,
        role: Role,
        now_ms: u64,
    ) -> Result<DeviceId, StoreError> {
        let s = self.store();
        s.add_user(user, role, "sim-no-password", now_ms)?;
        s.enroll_device(user, "sim", &format!("sim-token-hash-{user}"), now_ms)
    }

    /// One request, as the API handlers in `server/src/api/sync.rs` run it. `Err` is a
    /// store failure the simulation treats as a bug; `Ok(Err(_))` an HTTP error answer.
    pub(super) fn handle(
        &self,
        actor: &Actor,
        device: DeviceId,
        payload: &Payload,
        now_ms: u64,
        page_limit_max: usize,
    ) -> Result<Result<String, WireError>, StoreError> {
        let s = self.store();
        match payload {
            Payload::Push(body) => {
                let req: PushRequest = match serde_json::from_str(body) {
                    Ok(r) => r,
                    Err(_) => return Ok(Err(wire_err(400, "invalid_body"))),
                };
                if req.ops.len() > PUSH_BATCH_OPS_MAX {
                    return Ok(Err(wire_err(413, "batch_too_large")));
                }
                // The handler refuses a batch stamped too far ahead of the server clock
                // before the store sees it: the ops wait on the device.
                if req
                    .ops
                    .iter()
                    .any(|op| op.hlc.millis() > now_ms + CLOCK_SKEW_MS_MAX)
                {
                    return Ok(Err(wire_err(400, "clock_skew")));
                }
                match s.push(actor, device, &req.ops, now_ms) {
                    Ok(resp) => Ok(Ok(serde_json::to_string(&resp).expect("serialises"))),
                    Err(StoreError::SeqGap { .. }) => Ok(Err(wire_err(409, "seq_gap"))),
                    Err(e) => Err(e),
                }
            }
            Payload::Pull { cursor, limit } => {
                let limit = (*limit).clamp(1, page_limit_max);
                let mut page = s.pull(actor, *cursor, limit)?;
                page.server_time_ms = now_ms;
                Ok(Ok(serde_json::to_string(&page).expect("serialises")))
            }
            Payload::Hello => {
                let (epoch, acked_seq) = s.hello(device)?;
                let hello = HelloResponse {
                    protocol: PROTOCOL_VERSION,
                    epoch,
                    acked_seq,
                    server_time_ms: now_ms,
                };
                Ok(Ok(serde_json::to_string(&hello).expect("serialises")))
            }
            Payload::Digest => {
                let d = s.digest(actor)?;
                Ok(Ok(serde_json::to_string(&d).expect("serialises")))
            }
            Payload::Response(_) => unreachable!("the server receives requests only"),
        }
    }

    /// A dispatcher's console write (`PATCH`/`POST` through the JSON API).
    pub(super) fn console_write(
        &mut self,
        actor: &Actor,
        write: ServerWrite,
        now_ms: u64,
    ) -> Result<Result<(), OpError>, StoreError> {
        let out = self.store().server_write(actor, write.clone(), now_ms)?;
        if out.is_ok() {
            self.console_writes.push(ConsoleWrite { write });
        }
        Ok(out)
    }

    pub(super) fn store_list_orders(
        &self,
        actor: &Actor,
    ) -> Result<Vec<fieldsync_proto::view::OrderSummary>, StoreError> {
        self.store().list_orders(actor, None, None)
    }

    fn count(&self, sql: &str) -> u64 {
        rusqlite::Connection::open(&self.path)
            .and_then(|c| c.query_row(sql, [], |r| r.get::<_, i64>(0)))
            .map(|n| n as u64)
            .unwrap_or(0)
    }

    pub(super) fn refused_count(&self) -> u64 {
        self.count("SELECT COUNT(*) FROM ops WHERE reject_code IS NOT NULL")
    }

    pub(super) fn conflict_count(&self) -> u64 {
        self.count("SELECT COUNT(*) FROM entities WHERE kind = 'conflict'")
    }
}
