//! Replicated entity state and its merge.
//!
//! An entity's state is a map of fields, each carrying the version (HLC, device) of the
//! write that set it and who wrote it. Merging two states keeps, per field, the write with
//! the greater version. That makes the merge a join-semilattice — commutative, associative
//! and idempotent — which is exactly what lets replicas converge whatever the order,
//! duplication or delay of delivery (property-tested in `tests/merge_laws.rs`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::hlc::Hlc;
use crate::ids::{DeviceId, EntityId};
use crate::schema::EntityKind;

/// The version of one field write. Ordered by HLC, ties broken by device id, so the winner
/// is the same on every replica. Serialised as `[hlc, device]` to keep the wire small.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(from = "(Hlc, DeviceId)", into = "(Hlc, DeviceId)")]
pub struct Version {
    pub hlc: Hlc,
    pub dev: DeviceId,
}

impl From<(Hlc, DeviceId)> for Version {
    fn from((hlc, dev): (Hlc, DeviceId)) -> Self {
        Version { hlc, dev }
    }
}

impl From<Version> for (Hlc, DeviceId) {
    fn from(v: Version) -> Self {
        (v.hlc, v.dev)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldState {
    pub v: Value,
    pub ver: Version,
    /// The user who wrote it.
    pub by: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityState {
    pub kind: EntityKind,
    pub id: EntityId,
    pub fields: BTreeMap<String, FieldState>,
}

impl EntityState {
    pub fn new(kind: EntityKind, id: EntityId) -> Self {
        EntityState {
            kind,
            id,
            fields: BTreeMap::new(),
        }
    }

    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields.get(field).map(|f| &f.v)
    }

    pub fn str(&self, field: &str) -> Option<&str> {
        self.get(field).and_then(Value::as_str)
    }

    pub fn i64(&self, field: &str) -> Option<i64> {
        self.get(field).and_then(Value::as_i64)
    }

    pub fn bool(&self, field: &str) -> bool {
        self.get(field).and_then(Value::as_bool).unwrap_or(false)
    }

    pub fn version(&self, field: &str) -> Option<Version> {
        self.fields.get(field).map(|f| f.ver)
    }

    /// The newest version of any field: when this entity last changed, in event time.
    pub fn max_version(&self) -> Option<Version> {
        self.fields.values().map(|f| f.ver).max()
    }

    /// The oldest version: when the entity was created, in event time.
    pub fn min_version(&self) -> Option<Version> {
        self.fields.values().map(|f| f.ver).min()
    }

    /// Set one field if `incoming` wins against what is there. Returns whether it changed.
    pub fn merge_field(&mut self, name: &str, incoming: &FieldState) -> bool {
        match self.fields.get_mut(name) {
            Some(cur) if cur.ver >= incoming.ver => false,
            Some(cur) => {
                *cur = incoming.clone();
                true
            }
            None => {
                self.fields.insert(name.to_owned(), incoming.clone());
                true
            }
        }
    }

    /// Join another replica's state of the same entity into this one. Returns the names
    /// of the fields that changed.
    pub fn merge(&mut self, other: &EntityState) -> Vec<String> {
        debug_assert_eq!((self.kind, &self.id), (other.kind, &other.id));
        let mut changed = Vec::new();
        for (name, fs) in &other.fields {
            if self.merge_field(name, fs) {
                changed.push(name.clone());
            }
        }
        changed
    }

    /// The merge as a pure function, for the property tests.
    pub fn joined(mut self, other: &EntityState) -> EntityState {
        self.merge(other);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fs(v: Value, hlc: u64, dev: DeviceId) -> FieldState {
        FieldState {
            v,
            ver: Version { hlc: Hlc(hlc), dev },
            by: format!("u{dev}"),
        }
    }

    #[test]
    fn higher_version_wins_and_ties_break_by_device() {
        let mut s = EntityState::new(EntityKind::WorkOrder, "w1".into());
        assert!(s.merge_field("d", &fs(json!("a"), 10, 1)));
        assert!(!s.merge_field("d", &fs(json!("b"), 9, 5)));
        assert!(s.merge_field("d", &fs(json!("c"), 10, 2)));
        assert_eq!(s.str("d"), Some("c"));
        assert!(!s.merge_field("d", &fs(json!("c"), 10, 2)), "idempotent");
    }

    /// Found by fuzzing (`op_apply`): serde_json's default float parsing may be one ulp
    /// off, so a valid op setting such a `lat` was stored, re-read and re-digested as
    /// another value, and agent and server digests never agreed again. About 6 % of
    /// positions the agent computes from EXIF (deg + min/60 + sec/3600) were affected.
    #[test]
    fn stored_line_decodes_to_the_same_state() {
        for x in [
            11.469_316_138_888_889, // 11° 28' 9.5381"
            5.88334975906786e-308,
            3.9252506537613346e-227,
            -4.616193886330396e305,
            1.0464406974565865e63,
        ] {
            let mut s = EntityState::new(EntityKind::Site, "s1".into());
            s.fields.insert("lat".into(), fs(json!(x), 1, 1));
            let line = serde_json::to_string(&s).unwrap();
            let back: EntityState = serde_json::from_str(&line).unwrap();
            assert_eq!(back, s, "{line}");
            assert_eq!(serde_json::to_string(&back).unwrap(), line);
        }
    }

    #[test]
    fn version_serialises_as_pair() {
        let v = Version {
            hlc: Hlc(7),
            dev: 3,
        };
        assert_eq!(serde_json::to_string(&v).unwrap(), "[7,3]");
        assert_eq!(serde_json::from_str::<Version>("[7,3]").unwrap(), v);
    }
}
