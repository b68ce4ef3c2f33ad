//! The promises, checked at quiescence against the real stores:
//!
//! 1. **Convergence.** Nothing is pending anywhere, and every device's digest and cursor
//!    equal the server's for that device's scope.
//! 2. **Nothing acknowledged is lost.** Every op a device reported saved is in the
//!    server's op log with the very body the device recorded (same seq, event time,
//!    fields, base), and every console write the server confirmed is too. Refused ops
//!    are refused for a reason the workload can cause (`out_of_scope`), and the device
//!    keeps each one with the server's code.
//! 3. **Exactly once.** Each device's ops appear once each in the log, densely `1..=n`,
//!    nothing else; the server's per-device `acked_seq` is `n`; every record created
//!    exists once.
//! 4. **No silent overwrite.** Every applied field write either holds the field now, or
//!    equals its value, or was overwritten by a write whose author had seen it (its base
//!    is this write's version), or is the loser of a recorded conflict. And every conflict
//!    names real applied writes.
//! 5. **Event time.** Arrival and completion times are the event time of the op that set
//!    them; the server never took an op stamped further ahead of its clock than the bound.

use std::collections::{BTreeMap, BTreeSet};

use fieldsync_proto::limits::CLOCK_SKEW_MS_MAX;
use fieldsync_proto::state::Version;
use fieldsync_proto::{
    DeviceId, EntityId, EntityKind, EntityState, Hlc, Op, OpKind, SERVER_DEVICE,
};
use fieldsync_server::store::Store;
use serde_json::Value;

use super::World;

/// Refusals the workload causes legitimately: work stamped after the order was
/// reassigned away. Anything else means agent and server disagree, or an op went twice,
/// except `not_found` for an edit of a record whose own creation was refused (the device
/// could not know yet when it recorded the edit) or whose console creation a restore
/// took away.
const EXPECTED_REFUSALS: &[&str] = &["out_of_scope"];

/// Fields that record event time: set to the HLC time of the op that sets them.
const EVENT_TIME_FIELDS: &[&str] = &["arrived_at", "completed_at"];

struct LoggedOp {
    op: Op,
    received_ms: u64,
    reject: Option<String>,
}

struct Write {
    dev: DeviceId,
    seq: u64,
    ver: Version,
    value: Value,
    base: Option<Version>,
}

type FieldKey = (EntityKind, String, String);

pub(super) fn check(world: &World) -> Vec<String> {
    let mut v = Vec::new();
    let (log, entities, acked) = match read_server(world) {
        Ok(x) => x,
        Err(e) => return vec![format!("reading the server database: {e}")],
    };
    convergence(world, &mut v);
    acknowledged(world, &log, &acked, &mut v);
    exactly_once(&log, &entities, &mut v);
    no_silent_overwrite(&log, &entities, &mut v);
    event_time(world, &log, &entities, &mut v);
    v
}

type ServerData = (
    BTreeMap<(DeviceId, u64), LoggedOp>,
    BTreeMap<(EntityKind, String), EntityState>,
    BTreeMap<DeviceId, u64>,
);

fn read_server(world: &World) -> Result<ServerData, String> {
    let conn = rusqlite::Connection::open(&world.server.path).map_err(|e| e.to_string())?;
    let mut log = BTreeMap::new();
    let mut stmt = conn
        .prepare("SELECT dev, seq, body, received_ms, reject_code FROM ops")
        .map_err(|e| e.to_string())?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, DeviceId>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })
        .map_err(|e| e.to_string())?;
    for row in rows {
        let (dev, seq, body, received_ms, reject) = row.map_err(|e| e.to_string())?;
        let op: Op = serde_json::from_str(&body).map_err(|e| format!("op log body: {e}"))?;
        log.insert(
            (dev, seq as u64),
            LoggedOp {
                op,
                received_ms: received_ms as u64,
                reject,
            },
        );
    }
    let mut entities = BTreeMap::new();
    let mut stmt = conn
        .prepare("SELECT state FROM entities")
        .map_err(|e| e.to_string())?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(|e| e.to_string())?;
    for row in rows {
        let s: EntityState = serde_json::from_str(&row.map_err(|e| e.to_string())?)
            .map_err(|e| format!("entity state: {e}"))?;
        entities.insert((s.kind, s.id.0.clone()), s);
    }
    let mut acked = BTreeMap::new();
    let mut stmt = conn
        .prepare("SELECT id, acked_seq FROM devices")
        .map_err(|e| e.to_string())?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, DeviceId>(0)?, r.get::<_, i64>(1)?)))
        .map_err(|e| e.to_string())?;
    for row in rows {
        let (id, seq) = row.map_err(|e| e.to_string())?;
        acked.insert(id, seq as u64);
    }
    Ok((log, entities, acked))
}

fn convergence(world: &World, v: &mut Vec<String>) {
    let server = world.server.store();
    for dev in &world.devices {
        let d = dev.idx;
        let store = dev.store.as_ref().expect("every device runs at quiescence");
        let theirs = match server.digest(&dev.actor()) {
            Ok(x) => x,
            Err(e) => {
                v.push(format!("server digest for dev{d}: {e}"));
                continue;
            }
        };
        let ours = (store.pending_count(), store.cursor(), store.digest());
        match ours {
            (Ok(pending), Ok(cursor), Ok(digest)) => {
                if pending != 0 {
                    v.push(format!("dev{d}: {pending} ops still pending at quiescence"));
                }
                if cursor != theirs.cursor {
                    v.push(format!(
                        "dev{d}: cursor {cursor}, the server's feed ends at {}",
                        theirs.cursor
                    ));
                }
                if digest != theirs.digest {
                    v.push(format!(
                        "dev{d} ({}): digest differs from the server's for its scope ({} entities there): {}",
                        dev.user,
                        theirs.entities,
                        scope_diff(world, d)
                    ));
                }
            }
            _ => v.push(format!("dev{d}: reading the store failed")),
        }
    }
}

fn acknowledged(
    world: &World,
    log: &BTreeMap<(DeviceId, u64), LoggedOp>,
    acked: &BTreeMap<DeviceId, u64>,
    v: &mut Vec<String>,
) {
    let never_created: BTreeSet<(EntityKind, &str)> = {
        let refused: BTreeSet<(EntityKind, &str)> = log
            .values()
            .filter(|l| l.op.op == OpKind::Create && l.reject.is_some())
            .map(|l| (l.op.kind, l.op.id.as_str()))
            .collect();
        let made: BTreeSet<(EntityKind, &str)> = log
            .values()
            .filter(|l| l.op.op == OpKind::Create && l.reject.is_none())
            .map(|l| (l.op.kind, l.op.id.as_str()))
            .collect();
        refused.difference(&made).copied().collect()
    };
    for dev in &world.devices {
        let d = dev.idx;
        let id = dev.device_id;
        let store = dev.store.as_ref().expect("every device runs at quiescence");
        let device_refused: BTreeMap<u64, String> = match store.rejected() {
            Ok(r) => r.into_iter().map(|r| (r.seq, r.code)).collect(),
            Err(e) => {
                v.push(format!("dev{d}: listing refused ops: {e}"));
                continue;
            }
        };
        for (seq, op) in &dev.recorded {
            let Some(logged) = log.get(&(id, *seq)) else {
                v.push(format!(
                    "dev{d}: op {seq} ({} {}) was reported saved but never reached the server",
                    op.kind, op.id
                ));
                continue;
            };
            if &logged.op != op {
                v.push(format!(
                    "dev{d}: op {seq} on the server is not the op the device recorded: {:?} vs {:?}",
                    logged.op, op
                ));
            }
            let touches = |set: &BTreeSet<(EntityKind, EntityId)>| {
                set.contains(&(op.kind, op.id.clone()))
                    || op
                        .order_link()
                        .is_some_and(|o| set.contains(&(EntityKind::WorkOrder, o)))
            };
            match (&logged.reject, device_refused.get(seq)) {
                (None, None) => {}
                // The simulation waits out the parking window before it checks, and every
                // push settles what the window's end decided: nothing may still wait.
                (Some(code), None) if code == "parked" => v.push(format!(
                    "dev{d}: op {seq} ({} {}) is still parked at quiescence",
                    op.kind, op.id
                )),
                (Some(code), Some(kept)) if code == kept => {
                    let orphan_edit = (code == "not_found"
                        && ((op.op == OpKind::Set
                            && never_created.contains(&(op.kind, op.id.as_str())))
                            || touches(&world.server.lost_creates)))
                        // Waited, parked, for a console write the restore took for good.
                        || touches(&world.server.lost_console_targets);
                    // After a restore, devices re-send in whatever order they sync; an op on
                    // something another device wrote after the backup waits, parked, for
                    // that device's re-send instead of being refused for arriving first.
                    let resend_refused = !orphan_edit
                        && touches(&world.server.lost_targets)
                        && (code == "not_found"
                            || (code == "out_of_scope" && dev.applied_once.contains(seq)));
                    if resend_refused {
                        v.push(format!(
                            "dev{d}: op {seq} ({} {}) refused with {code} after a restore, before the ops it depends on were re-sent",
                            op.kind, op.id
                        ));
                    } else if !EXPECTED_REFUSALS.contains(&code.as_str()) && !orphan_edit {
                        v.push(format!(
                            "dev{d}: op {seq} ({} {}) refused with unexpected code {code}",
                            op.kind, op.id
                        ));
                    }
                }
                (server, device) => v.push(format!(
                    "dev{d}: op {seq} refused on the server as {server:?} but on the device as {device:?}"
                )),
            }
        }
        let last = dev.recorded.keys().next_back().copied().unwrap_or(0);
        if acked.get(&id).copied() != Some(last) {
            v.push(format!(
                "dev{d}: the server acknowledged up to {:?}, the device recorded up to {last}",
                acked.get(&id)
            ));
        }
    }
    let console: Vec<&LoggedOp> = log
        .range((SERVER_DEVICE, 0)..=(SERVER_DEVICE, u64::MAX))
        .map(|(_, l)| l)
        .collect();
    if console.len() != world.server.console_writes.len() {
        v.push(format!(
            "{} console writes confirmed, {} in the op log",
            world.server.console_writes.len(),
            console.len()
        ));
    }
    for (w, logged) in world.server.console_writes.iter().zip(&console) {
        let w = &w.write;
        let op = &logged.op;
        if (op.kind, &op.id, &op.fields) != (w.kind, &w.id, &w.fields) {
            v.push(format!(
                "console write {:?} {} logged as {:?}",
                w.kind, w.id, op
            ));
        }
    }
}

fn exactly_once(
    log: &BTreeMap<(DeviceId, u64), LoggedOp>,
    entities: &BTreeMap<(EntityKind, String), EntityState>,
    v: &mut Vec<String>,
) {
    let mut by_dev: BTreeMap<DeviceId, Vec<u64>> = BTreeMap::new();
    for (dev, seq) in log.keys() {
        by_dev.entry(*dev).or_default().push(*seq);
    }
    for (dev, seqs) in &by_dev {
        let dense = seqs.iter().enumerate().all(|(i, s)| *s == i as u64 + 1);
        if !dense {
            v.push(format!("device {dev}: op log seqs are not 1..=n: {seqs:?}"));
        }
    }
    let mut created: BTreeSet<(EntityKind, String)> = BTreeSet::new();
    for ((dev, seq), l) in log {
        if l.reject.is_some() || l.op.op != OpKind::Create {
            continue;
        }
        let key = (l.op.kind, l.op.id.0.clone());
        if !created.insert(key.clone()) {
            v.push(format!(
                "{} {} created twice (again by {dev}/{seq})",
                key.0, key.1
            ));
        }
        if !entities.contains_key(&key) {
            v.push(format!(
                "{} {} was created ({dev}/{seq}) but does not exist",
                key.0, key.1
            ));
        }
    }
    for kind in [
        EntityKind::Note,
        EntityKind::PartUsage,
        EntityKind::WorkOrder,
    ] {
        let stored = entities.keys().filter(|(k, _)| *k == kind).count();
        let made = created.iter().filter(|(k, _)| *k == kind).count();
        if stored != made {
            v.push(format!(
                "{stored} {kind} records on the server, {made} applied creates"
            ));
        }
    }
}

/// A conflict entity's side: (device, hlc, value).
fn side(c: &EntityState, which: &str) -> Option<(DeviceId, Hlc, Value)> {
    let s = c.get(which)?;
    Some((
        s.get("device")?.as_u64()? as DeviceId,
        Hlc(s.get("hlc")?.as_u64()?),
        s.get("value")?.clone(),
    ))
}

fn no_silent_overwrite(
    log: &BTreeMap<(DeviceId, u64), LoggedOp>,
    entities: &BTreeMap<(EntityKind, String), EntityState>,
    v: &mut Vec<String>,
) {
    let mut writes: BTreeMap<FieldKey, Vec<Write>> = BTreeMap::new();
    for ((dev, seq), l) in log {
        if l.reject.is_some() {
            continue;
        }
        for (field, value) in &l.op.fields {
            writes
                .entry((l.op.kind, l.op.id.0.clone(), field.clone()))
                .or_default()
                .push(Write {
                    dev: *dev,
                    seq: *seq,
                    ver: l.op.version(*dev),
                    value: value.clone(),
                    base: l.op.base.get(field).copied(),
                });
        }
    }
    let mut losers: BTreeSet<(FieldKey, DeviceId, Hlc)> = BTreeSet::new();
    for c in entities.values().filter(|e| e.kind == EntityKind::Conflict) {
        let (Some(kind), Some(id), Some(field)) = (
            c.str("entity_kind").and_then(EntityKind::parse),
            c.str("entity_id"),
            c.str("field"),
        ) else {
            v.push(format!("conflict {} is malformed", c.id));
            continue;
        };
        let key = (kind, id.to_owned(), field.to_owned());
        for which in ["winner", "loser"] {
            let Some((dev, hlc, value)) = side(c, which) else {
                v.push(format!("conflict {} has no readable {which}", c.id));
                continue;
            };
            let real = writes.get(&key).is_some_and(|ws| {
                ws.iter()
                    .any(|w| w.ver == Version { hlc, dev } && w.value == value)
            });
            if !real {
                v.push(format!(
                    "conflict {} names a {which} ({dev} at {hlc}) that is no applied write of {kind} {id}.{field}",
                    c.id
                ));
            }
            if which == "loser" {
                losers.insert((key.clone(), dev, hlc));
            }
        }
    }
    for (key, ws) in &writes {
        let (kind, id, field) = key;
        let Some(now) = entities
            .get(&(*kind, id.clone()))
            .and_then(|e| e.fields.get(field))
        else {
            v.push(format!("{kind} {id}.{field} was written but is not there"));
            continue;
        };
        let value_at: BTreeMap<Version, &Value> = ws.iter().map(|w| (w.ver, &w.value)).collect();
        for w in ws {
            let holds = now.ver == w.ver;
            let same_value = now.v == w.value;
            // Overwritten by someone who saw this value: this write, or an equal one.
            let seen_over = ws.iter().any(|o| {
                o.ver > w.ver
                    && o.base
                        .is_some_and(|b| b == w.ver || value_at.get(&b) == Some(&&w.value))
            });
            let recorded = losers.contains(&(key.clone(), w.dev, w.ver.hlc));
            if !(holds || same_value || seen_over || recorded) {
                v.push(format!(
                    "silent overwrite: {kind} {id}.{field} = {} by {}/{} at {} lost to {} at {:?} with no conflict recorded",
                    w.value, w.dev, w.seq, w.ver.hlc, now.v, now.ver
                ));
            }
        }
    }
}

fn event_time(
    world: &World,
    log: &BTreeMap<(DeviceId, u64), LoggedOp>,
    entities: &BTreeMap<(EntityKind, String), EntityState>,
    v: &mut Vec<String>,
) {
    for dev in &world.devices {
        for op in dev.recorded.values() {
            for f in EVENT_TIME_FIELDS {
                if let Some(t) = op.fields.get(*f) {
                    if t.as_u64() != Some(op.hlc.millis()) {
                        v.push(format!(
                            "dev{}: op {} stamps {f} = {t}, not its event time {}",
                            dev.idx,
                            op.seq,
                            op.hlc.millis()
                        ));
                    }
                }
            }
        }
    }
    for ((dev, seq), l) in log {
        if l.reject.is_none() && l.op.hlc.millis() > l.received_ms + CLOCK_SKEW_MS_MAX {
            v.push(format!(
                "op {dev}/{seq} stamped {} ms ahead of the server clock was applied",
                l.op.hlc.millis() - l.received_ms
            ));
        }
    }
    for e in entities
        .values()
        .filter(|e| e.kind == EntityKind::WorkOrder)
    {
        for f in EVENT_TIME_FIELDS {
            if let Some(fs) = e.fields.get(*f) {
                if fs.v.as_u64() != Some(fs.ver.hlc.millis()) {
                    v.push(format!(
                        "work order {}: {f} = {} but the write that set it happened at {}",
                        e.id,
                        fs.v,
                        fs.ver.hlc.millis()
                    ));
                }
            }
        }
    }
}

/// Which entities differ between device `d` and the server's view of its scope, for a
/// failure message.
pub(super) fn scope_diff(world: &World, d: usize) -> String {
    let dev = &world.devices[d];
    let read = |path: &std::path::Path,
                sql: &str,
                arg: &str|
     -> Result<BTreeMap<String, String>, String> {
        let conn = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
        let mut stmt = conn.prepare(sql).map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map([arg], |r| r.get::<_, String>(0))
            .map_err(|e| e.to_string())?;
        let mut out = BTreeMap::new();
        for row in rows {
            let line = row.map_err(|e| e.to_string())?;
            let s: EntityState = serde_json::from_str(&line).map_err(|e| e.to_string())?;
            out.insert(format!("{} {}", s.kind, s.id), line);
        }
        Ok(out)
    };
    let ours = read(
        &dev.dir.join(fieldsync_agent::store::DB_FILE),
        "SELECT state FROM entities WHERE gone = 0 AND ?1 = ?1",
        "",
    );
    let sql = if dev.role == fieldsync_proto::Role::Engineer {
        "SELECT e.state FROM feed f JOIN entities e ON e.n = f.ent
         WHERE f.user = ?1 AND f.gone = 0"
    } else {
        "SELECT state FROM entities WHERE ?1 = ?1"
    };
    let theirs = read(&world.server.path, sql, &dev.user);
    let (ours, theirs) = match (ours, theirs) {
        (Ok(o), Ok(t)) => (o, t),
        (Err(e), _) | (_, Err(e)) => return format!("(cannot compare: {e})"),
    };
    let mut diff = Vec::new();
    for (k, line) in &ours {
        match theirs.get(k) {
            None => diff.push(format!("only on the device: {line}")),
            Some(t) if t != line => diff.push(format!("device has {line}, server has {t}")),
            Some(_) => {}
        }
    }
    for (k, line) in &theirs {
        if !ours.contains_key(k) {
            diff.push(format!("only on the server: {line}"));
        }
    }
    diff.join("; ")
}
