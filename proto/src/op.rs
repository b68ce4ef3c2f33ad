//! Ops: every change anyone makes is one op, identified by `(device, seq)`.
//!
//! The device is not on the wire: the server knows it from the device token, so a device
//! cannot speak for another. `seq` is dense per device, which lets the server remember a
//! single "highest contiguous seq applied" per device and answer re-sends idempotently.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::hlc::Hlc;
use crate::ids::{DeviceId, EntityId};
use crate::schema::EntityKind;
use crate::state::{FieldState, Version};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// Create an entity with these fields. The id is new, chosen by the creator.
    Create,
    /// Set fields of an existing entity.
    Set,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Op {
    pub seq: u64,
    pub kind: EntityKind,
    pub id: EntityId,
    /// Event time: when the engineer did this, on the device's hybrid logical clock.
    pub hlc: Hlc,
    pub op: OpKind,
    pub fields: BTreeMap<String, Value>,
    /// Per field, the version the author saw when writing (absent: the field was unset).
    /// A mismatch with the server's current version is what makes a conflict.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub base: BTreeMap<String, Version>,
}

impl Op {
    /// The version every field this op writes gets.
    pub fn version(&self, dev: DeviceId) -> Version {
        Version { hlc: self.hlc, dev }
    }

    /// The field writes of this op as merge-ready states.
    pub fn writes<'a>(
        &'a self,
        dev: DeviceId,
        author: &'a str,
    ) -> impl Iterator<Item = (&'a str, FieldState)> + 'a {
        let ver = self.version(dev);
        self.fields.iter().map(move |(name, v)| {
            (
                name.as_str(),
                FieldState {
                    v: v.clone(),
                    ver,
                    by: author.to_owned(),
                },
            )
        })
    }

    /// The work order this op belongs to, when the op itself says so.
    pub fn order_link(&self) -> Option<EntityId> {
        if self.kind == EntityKind::WorkOrder {
            return Some(self.id.clone());
        }
        let link = self.kind.spec().order_link?;
        self.fields
            .get(link)
            .and_then(Value::as_str)
            .map(EntityId::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wire_shape_is_compact_and_strict() {
        let op: Op = serde_json::from_value(json!({
            "seq": 3, "kind": "work_order", "id": "w1", "hlc": 65536, "op": "set",
            "fields": {"status": "on-site"}, "base": {"status": [10, 2]}
        }))
        .unwrap();
        assert_eq!(
            op.base["status"],
            Version {
                hlc: Hlc(10),
                dev: 2
            }
        );
        let back = serde_json::to_value(&op).unwrap();
        assert_eq!(back["base"]["status"], json!([10, 2]));

        let unknown_field = json!({"seq": 1, "kind": "note", "id": "n", "hlc": 1, "op": "create",
            "fields": {}, "extra": 1});
        assert!(serde_json::from_value::<Op>(unknown_field).is_err());
        let unknown_kind = json!({"seq": 1, "kind": "note", "id": "n", "hlc": 1, "op": "explode",
            "fields": {}});
        let err = serde_json::from_value::<Op>(unknown_kind).unwrap_err();
        assert!(err.to_string().contains("explode"), "{err}");
    }

    #[test]
    fn order_link_of_children() {
        let op = Op {
            seq: 1,
            kind: EntityKind::Note,
            id: "n1".into(),
            hlc: Hlc(1),
            op: OpKind::Create,
            fields: BTreeMap::from([("order_id".to_owned(), json!("w9"))]),
            base: BTreeMap::new(),
        };
        assert_eq!(op.order_link(), Some(EntityId::from("w9")));
    }
}
