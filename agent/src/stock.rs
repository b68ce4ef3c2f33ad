//! The engineer's van stock, offline: consumption on an order, returns of faulty parts
//! (RMA), requisitions, and the van's stock derived from what this device holds (the
//! van's movements arrive with every pull; our own unsent ones count at once).
//!
//! Nothing here checks a quantity against stock: a part fitted is recorded even when the
//! van shows none left, and the overdraw is flagged (`proto::stock`), never refused.

use std::collections::BTreeMap;

use fieldsync_proto::schema::STOCK_QTY_MAX;
use fieldsync_proto::stock::{self, LocationInfo, RequisitionView, StockContext, StockLine};
use fieldsync_proto::{EntityId, EntityKind, EntityState, Op, OpKind};
use rusqlite::Connection;
use serde::Serialize;
use serde_json::{json, Value};

use crate::actions::new_id;
use crate::error::{AgentError, Result};
use crate::store::{is_gone, local_view, states_of, Enrollment, Store};

/// The van stock `fieldsync stock` shows.
#[derive(Clone, Debug, Serialize)]
pub struct VanStock {
    pub van_id: String,
    pub van: String,
    pub lines: Vec<StockLine>,
    /// Lines below their minimum or overdrawn.
    pub alerts: usize,
    /// Stock records of ours not yet acknowledged by the server (already counted here).
    pub unsent: u64,
}

/// A requisition as `fieldsync requisition list` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct MyRequisition {
    #[serde(flatten)]
    pub view: RequisitionView,
    /// Made on this device and not yet acknowledged by the server.
    pub unsent: bool,
}

fn van(store: &Store) -> Result<LocationInfo> {
    let who = store.require_enrollment()?;
    let locations = store.states_of(&[EntityKind::StockLocation])?;
    stock::van_of(&who.user, &locations).ok_or_else(|| {
        AgentError::Invalid(
            "no van is assigned to you on this device: ask the office to set one up, then sync"
                .into(),
        )
    })
}

/// The van's stock, with low and overdrawn flags.
pub fn van_stock(store: &Store) -> Result<VanStock> {
    let van = van(store)?;
    let states = store.states_of(&[
        EntityKind::StockLocation,
        EntityKind::Part,
        EntityKind::StockMovement,
        EntityKind::StockMin,
    ])?;
    let lines = stock::report(&states, Some(&van.id));
    let unsent = store.conn().query_row(
        "SELECT COUNT(*) FROM outbox WHERE rejected_code IS NULL
             AND kind IN ('stock_movement', 'requisition')",
        [],
        |r| r.get::<_, i64>(0),
    )? as u64;
    Ok(VanStock {
        van_id: van.id,
        van: van.name,
        alerts: lines.iter().filter(|l| l.low || l.overdrawn).count(),
        lines,
        unsent,
    })
}

/// The catalog part with this SKU (or id), from what this device holds.
fn part(store: &Store, sku: &str) -> Result<EntityState> {
    let parts = store.states_of(&[EntityKind::Part])?;
    let sku = sku.trim();
    let found = parts
        .iter()
        .find(|p| p.str("sku") == Some(sku))
        .or_else(|| parts.iter().find(|p| p.id.as_str() == sku));
    found.cloned().ok_or_else(|| {
        AgentError::Invalid(format!(
            "unknown part {sku:?}: no such SKU in this device's parts catalog (sync to refresh it)"
        ))
    })
}

fn quantity(qty: i64) -> Result<i64> {
    if (1..=STOCK_QTY_MAX).contains(&qty) {
        Ok(qty)
    } else {
        Err(AgentError::Invalid(format!(
            "quantity {qty} is not possible: give a whole number from 1 to {STOCK_QTY_MAX}"
        )))
    }
}

fn warehouse(store: &Store, name_or_id: &str) -> Result<String> {
    let locations = store.states_of(&[EntityKind::StockLocation])?;
    locations
        .iter()
        .filter_map(LocationInfo::of)
        .find(|l| l.id == name_or_id || l.name.eq_ignore_ascii_case(name_or_id))
        .map(|l| l.id)
        .ok_or_else(|| {
            AgentError::Invalid(format!(
                "unknown stock location {name_or_id:?}: give a warehouse's id or name"
            ))
        })
}

fn create(store: &mut Store, kind: EntityKind, fields: BTreeMap<String, Value>) -> Result<Op> {
    let id = new_id();
    store.record(kind, &id, OpKind::Create, |_, _| Ok(fields))
}

fn put(fields: &mut BTreeMap<String, Value>, k: &str, v: Option<&str>) {
    if let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) {
        fields.insert(k.to_owned(), json!(v));
    }
}

/// Parts fitted on an order, out of the engineer's van. Recorded whatever the van holds.
pub fn consume(
    store: &mut Store,
    order: &EntityId,
    sku: &str,
    qty: i64,
    serial: Option<&str>,
) -> Result<Op> {
    let qty = quantity(qty)?;
    let van = van(store)?;
    let part = part(store, sku)?;
    let mut f = BTreeMap::from([
        ("type".to_owned(), json!("consumption")),
        ("part_id".to_owned(), json!(part.id)),
        ("qty".to_owned(), json!(qty)),
        ("from_location".to_owned(), json!(van.id)),
        ("order_id".to_owned(), json!(order)),
    ]);
    put(&mut f, "serial", serial);
    create(store, EntityKind::StockMovement, f)
}

/// What a return is of.
pub struct Return<'a> {
    pub sku: &'a str,
    pub qty: i64,
    /// The order it came from (the unit taken out of the customer's equipment).
    pub order: Option<&'a EntityId>,
    /// A unit of the van's own stock (dead on arrival): it leaves the van's usable stock.
    pub from_van: bool,
    /// The warehouse it is sent to.
    pub to: Option<&'a str>,
    pub serial: Option<&'a str>,
    pub reason: Option<&'a str>,
}

/// A faulty part going back (RMA).
pub fn rma(store: &mut Store, r: Return<'_>) -> Result<Op> {
    let qty = quantity(r.qty)?;
    let part = part(store, r.sku)?;
    let mut f = BTreeMap::from([
        ("type".to_owned(), json!("rma")),
        ("part_id".to_owned(), json!(part.id)),
        ("qty".to_owned(), json!(qty)),
    ]);
    if r.from_van {
        f.insert("from_location".into(), json!(van(store)?.id));
    }
    if let Some(to) = r.to {
        f.insert("to_location".into(), json!(warehouse(store, to)?));
    }
    if let Some(o) = r.order {
        f.insert("order_id".into(), json!(o));
    }
    put(&mut f, "serial", r.serial);
    put(&mut f, "note", r.reason);
    create(store, EntityKind::StockMovement, f)
}

/// Ask the office for parts into the van.
pub fn requisition(
    store: &mut Store,
    sku: &str,
    qty: i64,
    from: Option<&str>,
    order: Option<&EntityId>,
    note: Option<&str>,
) -> Result<Op> {
    let qty = quantity(qty)?;
    let van = van(store)?;
    let part = part(store, sku)?;
    let mut f = BTreeMap::from([
        ("part_id".to_owned(), json!(part.id)),
        ("qty".to_owned(), json!(qty)),
        ("van_id".to_owned(), json!(van.id)),
    ]);
    if let Some(w) = from {
        f.insert("from_location".into(), json!(warehouse(store, w)?));
    }
    if let Some(o) = order {
        f.insert("order_id".into(), json!(o));
    }
    put(&mut f, "note", note);
    create(store, EntityKind::Requisition, f)
}

/// Our requisitions, newest first, with their decisions as last synced.
pub fn requisitions(store: &Store) -> Result<Vec<MyRequisition>> {
    let states = store.states_of(&[
        EntityKind::Requisition,
        EntityKind::Part,
        EntityKind::StockLocation,
    ])?;
    stock::requisitions(&states)
        .into_iter()
        .map(|view| {
            let unsent = store.unsent(EntityKind::Requisition, &view.id)?;
            Ok(MyRequisition { view, unsent })
        })
        .collect()
}

/// The stock rules for a record about to be saved, on what this device holds: the
/// server applies the same ones (`stock::check_located`), so an engineer learns at once.
pub(crate) fn check_offline(
    conn: &Connection,
    op: &Op,
    who: &Enrollment,
    current: Option<&EntityState>,
) -> Result<()> {
    let after = fieldsync_proto::apply::apply_op(current, op, who.device_id, &who.user).state;
    let all = states_of(conn, &[EntityKind::StockLocation], who)?;
    let named = stock::location_refs(&after);
    let locations: Vec<LocationInfo> = all
        .iter()
        .filter(|l| named.contains(&l.id))
        .filter_map(LocationInfo::of)
        .collect();
    let part = match after.str("part_id") {
        Some(p) => local_view(conn, EntityKind::Part, p, who)?,
        None => None,
    };
    let order_ok = match op.fields.get("order_id").and_then(Value::as_str) {
        None => true,
        Some(o) => local_view(conn, EntityKind::WorkOrder, o, who)?.is_some() && !is_gone(conn, o)?,
    };
    let ctx = StockContext {
        user: &who.user,
        role: who.role,
        locations: &locations,
        part: part.as_ref(),
        order_ok,
        current,
    };
    stock::check_located(op, &ctx)?;
    Ok(())
}
