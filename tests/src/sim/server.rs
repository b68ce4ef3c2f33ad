//! The server node: the real `SqliteStore`, called as the HTTP handlers call it. A crash
//! drops the store; a restart reopens the file, so only committed transactions survive.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use fieldsync_proto::limits::{CLOCK_SKEW_MS_MAX, PUSH_BATCH_OPS_MAX};
use fieldsync_proto::wire::{HelloResponse, PushRequest, PROTOCOL_VERSION};
use fieldsync_proto::{DeviceId, EntityId, EntityKind, Hlc, Op, OpError, Role};
use fieldsync_server::backup::BackupError;
use fieldsync_server::store::{Actor, ServerWrite, Store, StoreError};
use fieldsync_server::SqliteStore;
use rusqlite::OpenFlags;

use super::{Payload, WireError};

/// A console write the server confirmed to the dispatcher: its op is `(0, seq)`.
#[derive(Clone, Debug)]
pub(super) struct ConsoleWrite {
    pub write: ServerWrite,
}

/// A backup file and how many console writes it holds.
struct Backup {
    file: PathBuf,
    console_writes: usize,
}

pub(super) struct ServerNode {
    data_dir: PathBuf,
    pub path: PathBuf,
    store: Option<SqliteStore>,
    pub console_writes: Vec<ConsoleWrite>,
    backups: Vec<Backup>,
    backups_taken: usize,
    /// Which history the database is on; a restore starts a new one.
    epoch: u64,
    /// Entities whose console create a restore took away: the devices' edits of them
    /// are refused `not_found` afterwards, rightly.
    pub lost_creates: BTreeSet<(EntityKind, EntityId)>,
    /// Entities (and the orders of records) that ops a restore took away had written.
    pub lost_targets: BTreeSet<(EntityKind, EntityId)>,
    /// Entities a console write the restore took away had written: nobody re-sends those,
    /// so device ops waiting on them stay parked (until the window after the restore ends).
    pub lost_console_targets: BTreeSet<(EntityKind, EntityId)>,
}

/// The op log of the database at `path`: (device, seq) -> op.
fn op_log(path: &Path) -> rusqlite::Result<BTreeMap<(DeviceId, u64), Op>> {
    let conn = rusqlite::Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut stmt = conn.prepare("SELECT dev, seq, body FROM ops")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, DeviceId>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out = BTreeMap::new();
    for row in rows {
        let (dev, seq, body) = row?;
        let op: Op = serde_json::from_str(&body).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
        })?;
        out.insert((dev, seq as u64), op);
    }
    Ok(out)
}

fn wire_err(status: u16, code: &str) -> WireError {
    WireError {
        status,
        code: code.to_owned(),
    }
}

impl ServerNode {
    pub(super) fn new(data_dir: PathBuf) -> ServerNode {
        ServerNode {
            path: fieldsync_server::db_path(&data_dir),
            data_dir,
            store: None,
            console_writes: Vec::new(),
            backups: Vec::new(),
            backups_taken: 0,
            epoch: 0,
            lost_creates: BTreeSet::new(),
            lost_targets: BTreeSet::new(),
            lost_console_targets: BTreeSet::new(),
        }
    }

    pub(super) fn epoch(&self) -> u64 {
        self.epoch
    }

    pub(super) fn has_backup(&self) -> bool {
        !self.backups.is_empty()
    }

    /// `fieldsync-server backup` while the server runs.
    pub(super) fn backup(&mut self) -> Result<PathBuf, BackupError> {
        let file = self
            .data_dir
            .with_file_name(format!("backup-{}.db", self.backups_taken));
        self.backups_taken += 1;
        fieldsync_server::backup::backup(&self.data_dir, &file)?;
        self.backups.push(Backup {
            file: file.clone(),
            console_writes: self.console_writes.len(),
        });
        Ok(file)
    }

    /// Stop the server and `fieldsync-server restore` backup `i`. Console writes made
    /// since that backup are gone: they lived on the server only. Later backups belong to
    /// the history the restore abandoned, and are not offered again.
    pub(super) fn restore(&mut self, i: usize, now_ms: u64) -> Result<PathBuf, BackupError> {
        self.store = None;
        self.backups.truncate(i + 1);
        let b = &self.backups[i];
        let (now, then) = match (op_log(&self.path), op_log(&b.file)) {
            (Ok(n), Ok(t)) => (n, t),
            (Err(e), _) | (_, Err(e)) => return Err(BackupError::Db(e)),
        };
        for (key, op) in &now {
            if !then.contains_key(key) {
                self.lost_targets.insert((op.kind, op.id.clone()));
                if let Some(order) = op.order_link() {
                    self.lost_targets.insert((EntityKind::WorkOrder, order));
                }
            }
        }
        fieldsync_server::backup::restore(&self.data_dir, &b.file, now_ms)?;
        for lost in self.console_writes.drain(b.console_writes..) {
            self.lost_console_targets
                .insert((lost.write.kind, lost.write.id.clone()));
            if lost.write.create {
                self.lost_creates.insert((lost.write.kind, lost.write.id));
            }
        }
        Ok(b.file.clone())
    }

    pub(super) fn backups(&self) -> usize {
        self.backups.len()
    }

    pub(super) fn is_up(&self) -> bool {
        self.store.is_some()
    }

    pub(super) fn open(&mut self) -> Result<(), StoreError> {
        std::fs::create_dir_all(&self.data_dir)
            .map_err(|e| StoreError::Corrupt(format!("creating the data dir: {e}")))?;
        let store = SqliteStore::open(&self.path)?;
        self.epoch = store.hello(fieldsync_proto::SERVER_DEVICE)?.0;
        self.store = Some(store);
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
        stale_hlc: Option<Hlc>,
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
                if let Some(hlc) = stale_hlc {
                    page.hlc = hlc;
                }
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

    /// The newest timestamp the server has seen, as a pull page would carry it now.
    pub(super) fn newest_hlc(&self) -> Result<Hlc, StoreError> {
        // A cursor past every sequence: the page is empty, only its clock is wanted.
        let past_all = i64::MAX as u64;
        let actor = Actor {
            user: String::new(),
            role: Role::Dispatcher,
            device: None,
        };
        Ok(self.store().pull(&actor, past_all, 1)?.hlc)
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
