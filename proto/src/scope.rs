//! Scope: what an engineer's device holds. An engineer sees the work orders assigned to
//! them, the records hanging off those orders (notes, parts used, conflicts), and the
//! customer, site and asset each order refers to. Office roles see everything.
//!
//! These functions decide membership; the server turns their answers into per-user change
//! feeds, the agent uses them to drop what left its scope.

use sha2::{Digest, Sha256};

use crate::ids::EntityId;
use crate::schema::EntityKind;
use crate::state::EntityState;

/// The work order an entity belongs to: itself for an order, its link for a child record.
pub fn order_of(state: &EntityState) -> Option<EntityId> {
    if state.kind == EntityKind::WorkOrder {
        return Some(state.id.clone());
    }
    let link = state.kind.spec().order_link?;
    state.str(link).map(EntityId::from)
}

/// The user holding a work order in their scope.
pub fn holder(order: &EntityState) -> Option<&str> {
    order.str("assignee").filter(|s| !s.is_empty())
}

/// The customer, site and asset a work order refers to.
pub fn order_refs(order: &EntityState) -> Vec<(EntityKind, EntityId)> {
    [
        ("customer_id", EntityKind::Customer),
        ("site_id", EntityKind::Site),
        ("asset_id", EntityKind::Asset),
    ]
    .into_iter()
    .filter_map(|(field, kind)| order.str(field).map(|id| (kind, EntityId::from(id))))
    .collect()
}

/// How an order's write moved it between scopes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderMove {
    /// The user who now holds it, if any.
    pub holder: Option<String>,
    /// Set when the holder is new: everything hanging off the order enters their scope.
    pub entered: bool,
    /// The user who held it before and no longer does.
    pub left: Option<String>,
    /// Refs the order did not have before (they enter the holder's scope).
    pub refs_added: Vec<(EntityKind, EntityId)>,
    /// Refs the order no longer has.
    pub refs_removed: Vec<(EntityKind, EntityId)>,
}

pub fn order_move(before: Option<&EntityState>, after: &EntityState) -> OrderMove {
    let old = before.and_then(holder);
    let new = holder(after);
    let old_refs = before.map(order_refs).unwrap_or_default();
    let new_refs = order_refs(after);
    OrderMove {
        holder: new.map(str::to_owned),
        entered: new.is_some() && new != old,
        left: old.filter(|o| Some(*o) != new).map(str::to_owned),
        refs_added: new_refs
            .iter()
            .filter(|r| !old_refs.contains(r))
            .cloned()
            .collect(),
        refs_removed: old_refs
            .into_iter()
            .filter(|r| !new_refs.contains(r))
            .collect(),
    }
}

/// A digest of a set of entity states, independent of order, so agent and server can
/// check "in sync" as a fact. States serialise canonically (fields are sorted maps).
pub fn digest<'a>(states: impl IntoIterator<Item = &'a EntityState>) -> String {
    let mut lines: Vec<String> = states
        .into_iter()
        .map(|s| serde_json::to_string(s).expect("entity state serialises"))
        .collect();
    lines.sort_unstable();
    let mut d = Digester::default();
    for l in &lines {
        d.line(l);
    }
    d.finish()
}

/// The same digest, fed one canonical state line at a time in ascending byte order. Stores
/// keep each state as exactly that line, so they can stream a sorted query into it instead
/// of parsing and holding every state.
#[derive(Default)]
pub struct Digester {
    hash: Sha256,
}

impl Digester {
    pub fn line(&mut self, canonical_state: &str) {
        self.hash.update(canonical_state.as_bytes());
        self.hash.update(b"\n");
    }

    pub fn finish(self) -> String {
        hex::encode(self.hash.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlc::Hlc;
    use crate::state::{FieldState, Version};
    use serde_json::json;

    fn order(assignee: Option<&str>, customer: Option<&str>) -> EntityState {
        let mut s = EntityState::new(EntityKind::WorkOrder, "w1".into());
        let ver = Version {
            hlc: Hlc(1),
            dev: 0,
        };
        for (k, v) in [("assignee", assignee), ("customer_id", customer)] {
            if let Some(v) = v {
                s.fields.insert(
                    k.into(),
                    FieldState {
                        v: json!(v),
                        ver,
                        by: "d".into(),
                    },
                );
            }
        }
        s
    }

    #[test]
    fn reassignment_moves_scope() {
        let a = order(Some("ann"), Some("c1"));
        let b = order(Some("bob"), Some("c2"));
        let m = order_move(Some(&a), &b);
        assert_eq!(m.holder.as_deref(), Some("bob"));
        assert!(m.entered);
        assert_eq!(m.left.as_deref(), Some("ann"));
        assert_eq!(
            m.refs_added,
            vec![(EntityKind::Customer, EntityId::from("c2"))]
        );
        assert_eq!(
            m.refs_removed,
            vec![(EntityKind::Customer, EntityId::from("c1"))]
        );
        let same = order_move(Some(&b), &b);
        assert!(!same.entered && same.left.is_none() && same.refs_added.is_empty());
        let unassigned = order_move(Some(&a), &order(None, Some("c1")));
        assert_eq!(
            (unassigned.holder, unassigned.left.as_deref()),
            (None, Some("ann"))
        );
    }

    #[test]
    fn digest_ignores_order_but_not_content() {
        let a = order(Some("ann"), None);
        let mut b = order(Some("bob"), None);
        b.id = "w2".into();
        assert_eq!(digest([&a, &b]), digest([&b, &a]));
        assert_ne!(digest([&a]), digest([&b]));
    }
}
