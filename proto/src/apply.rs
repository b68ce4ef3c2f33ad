//! Applying an op to the authoritative state, with conflict detection.
//!
//! The merge itself is per-field last-writer-wins by `(hlc, device)` (see `state`), so the
//! winner is the same everywhere. What this adds is the record of the loser: when the
//! author's base version for a field is not the current one and the values differ, two
//! people wrote the field without seeing each other, and the losing value is kept as a
//! conflict entity until a dispatcher resolves it.

use serde_json::{json, Value};

use crate::ids::{DeviceId, EntityId};
use crate::op::Op;
use crate::schema::EntityKind;
use crate::state::{EntityState, FieldState, Version};

#[derive(Clone, Debug, PartialEq)]
pub struct ConflictRecord {
    pub field: String,
    pub winner: FieldState,
    pub loser: FieldState,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    pub state: EntityState,
    /// Fields whose value changed.
    pub changed: Vec<String>,
    pub conflicts: Vec<ConflictRecord>,
}

/// Apply `op`, written by `author` on device `dev`, to `current`. Validation and
/// authorisation have already passed.
pub fn apply_op(current: Option<&EntityState>, op: &Op, dev: DeviceId, author: &str) -> Applied {
    let mut state = current
        .cloned()
        .unwrap_or_else(|| EntityState::new(op.kind, op.id.clone()));
    let mut changed = Vec::new();
    let mut conflicts = Vec::new();
    for (name, incoming) in op.writes(dev, author) {
        if let Some(cur) = state.fields.get(name) {
            let saw_current = op.base.get(name) == Some(&cur.ver);
            if !saw_current && cur.v != incoming.v && cur.ver != incoming.ver {
                let (winner, loser) = if incoming.ver > cur.ver {
                    (incoming.clone(), cur.clone())
                } else {
                    (cur.clone(), incoming.clone())
                };
                conflicts.push(ConflictRecord {
                    field: name.to_owned(),
                    winner,
                    loser,
                });
            }
        }
        if state.merge_field(name, &incoming) {
            changed.push(name.to_owned());
        }
    }
    Applied {
        state,
        changed,
        conflicts,
    }
}

/// The id of the conflict raised by op `(dev, seq)` on `field`: derived from the op, so a
/// re-applied op can never raise it twice.
pub fn conflict_id(dev: DeviceId, seq: u64, field: &str) -> EntityId {
    EntityId(format!("cf-{dev}-{seq}-{field}"))
}

fn side(f: &FieldState) -> Value {
    json!({
        "value": f.v,
        "by": f.by,
        "device": f.ver.dev,
        "hlc": f.ver.hlc,
        "at_ms": f.ver.hlc.millis(),
    })
}

/// The conflict entity for `rec`, raised on `target` (which belongs to work order
/// `order_id`, if any), stamped with the server's version `ver`.
pub fn conflict_entity(
    id: EntityId,
    rec: &ConflictRecord,
    target: &EntityState,
    order_id: Option<&EntityId>,
    ver: Version,
) -> EntityState {
    let mut state = EntityState::new(EntityKind::Conflict, id);
    let fields = [
        ("order_id", json!(order_id)),
        ("entity_kind", json!(target.kind.as_str())),
        ("entity_id", json!(target.id)),
        ("field", json!(rec.field)),
        ("winner", side(&rec.winner)),
        ("loser", side(&rec.loser)),
        ("resolved", json!(false)),
    ];
    for (name, v) in fields.into_iter().filter(|(_, v)| !v.is_null()) {
        state.fields.insert(
            name.to_owned(),
            FieldState {
                v,
                ver,
                by: "server".to_owned(),
            },
        );
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlc::Hlc;
    use crate::op::OpKind;
    use std::collections::BTreeMap;

    fn set(field: &str, v: Value, hlc: u64, base: Option<Version>) -> Op {
        Op {
            seq: hlc,
            kind: EntityKind::WorkOrder,
            id: "w1".into(),
            hlc: Hlc(hlc),
            op: OpKind::Set,
            fields: BTreeMap::from([(field.to_owned(), v)]),
            base: base
                .map(|b| BTreeMap::from([(field.to_owned(), b)]))
                .unwrap_or_default(),
        }
    }

    #[test]
    fn concurrent_same_field_keeps_the_loser() {
        let start = apply_op(
            None,
            &set("description", json!("pump"), 10, None),
            1,
            "disp",
        )
        .state;
        let seen = start.version("description");
        let disp = apply_op(
            Some(&start),
            &set("description", json!("pump, loud"), 30, seen),
            1,
            "disp",
        );
        assert!(
            disp.conflicts.is_empty(),
            "dispatcher saw the current value"
        );
        let eng = apply_op(
            Some(&disp.state),
            &set("description", json!("pump, leaking"), 20, seen),
            7,
            "eve",
        );
        assert_eq!(eng.conflicts.len(), 1);
        let c = &eng.conflicts[0];
        assert_eq!(c.winner.v, json!("pump, loud"), "later event wins");
        assert_eq!(c.loser.v, json!("pump, leaking"));
        assert_eq!(c.loser.by, "eve");
        assert_eq!(eng.state.str("description"), Some("pump, loud"));
    }

    #[test]
    fn same_value_or_seen_version_is_no_conflict() {
        let start = apply_op(None, &set("status", json!("open"), 10, None), 1, "d").state;
        let same = apply_op(
            Some(&start),
            &set("status", json!("open"), 20, None),
            2,
            "e",
        );
        assert!(same.conflicts.is_empty());
        let seen = apply_op(
            Some(&start),
            &set("status", json!("on-site"), 20, start.version("status")),
            2,
            "e",
        );
        assert!(seen.conflicts.is_empty());
        assert_eq!(seen.changed, vec!["status".to_owned()]);
    }

    #[test]
    fn reapplying_an_op_changes_nothing() {
        let op = set("status", json!("on-site"), 20, None);
        let once = apply_op(None, &op, 2, "e");
        let twice = apply_op(Some(&once.state), &op, 2, "e");
        assert!(twice.changed.is_empty() && twice.conflicts.is_empty());
        assert_eq!(once.state, twice.state);
    }
}
