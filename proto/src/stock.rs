//! Parts stock: derived from movements, never stored as a number.
//!
//! A movement (receipt, transfer, consumption on an order, return of a faulty part) is an
//! append-only record created once. Stock at a location is the sum of what moved in minus
//! what moved out, so two engineers who each consume the last unit offline both count:
//! the balance goes to -1 and is flagged as overdrawn, instead of one write overwriting
//! the other. The same functions run on the agent (`fieldsync stock`), in the console and
//! behind `GET /api/v1/stock`, so the numbers cannot drift.
//!
//! Scope: an engineer holds every location (broadcast) and the movements, requisitions
//! and minimums of their own van (`location_refs`, fanned out by the server).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::OpError;
use crate::ids::EntityId;
use crate::op::{Op, OpKind};
use crate::schema::{EntityKind, Role};
use crate::state::{EntityState, Version};

/// Movements named per balance as having overdrawn it: the first ones are what a
/// dispatcher needs to follow up; the count is in `on_hand` anyway.
pub const OVERDRAWN_BY_MAX: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MovementType {
    /// Into a location from outside (a supplier delivery).
    Receipt,
    /// Between two locations (an approved requisition: warehouse -> van).
    Transfer,
    /// Out of a location into a customer's equipment, on a work order.
    Consumption,
    /// A faulty part returned: out of the usable stock of `from_location` when it was
    /// stock (dead on arrival), counted as `faulty` at `to_location` (never usable).
    Rma,
}

impl MovementType {
    pub fn parse(s: &str) -> Option<MovementType> {
        match s {
            "receipt" => Some(MovementType::Receipt),
            "transfer" => Some(MovementType::Transfer),
            "consumption" => Some(MovementType::Consumption),
            "rma" => Some(MovementType::Rma),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MovementType::Receipt => "receipt",
            MovementType::Transfer => "transfer",
            MovementType::Consumption => "consumption",
            MovementType::Rma => "rma",
        }
    }
}

/// A movement as read from its state.
#[derive(Clone, Debug, PartialEq)]
pub struct Movement {
    pub id: String,
    pub ty: MovementType,
    pub part: String,
    pub qty: i64,
    pub from: Option<String>,
    pub to: Option<String>,
    pub order: Option<String>,
    pub voided: bool,
    /// When and by whom it was created: movements apply in this order, which decides only
    /// which of them are named as overdrawing (the balance is a sum).
    pub ver: Version,
    pub by: String,
}

impl Movement {
    /// None for another kind or a state missing what every movement has.
    pub fn of(state: &EntityState) -> Option<Movement> {
        if state.kind != EntityKind::StockMovement {
            return None;
        }
        let created = state.fields.get("type")?;
        let s = |f: &str| state.str(f).map(str::to_owned);
        Some(Movement {
            id: state.id.0.clone(),
            ty: MovementType::parse(state.str("type")?)?,
            part: s("part_id")?,
            qty: state.i64("qty")?,
            from: s("from_location"),
            to: s("to_location"),
            order: s("order_id"),
            voided: state.bool("voided"),
            ver: created.ver,
            by: created.by.clone(),
        })
    }
}

/// The fields of a stored state line that a movement needs, and nothing else: serde skips
/// the rest without building it (`from_state_json`).
#[derive(Deserialize)]
struct StateLine {
    id: String,
    fields: MovementFields,
}

#[derive(Deserialize)]
struct MovementFields {
    #[serde(rename = "type")]
    ty: Option<Written<String>>,
    part_id: Option<Written<String>>,
    qty: Option<Written<i64>>,
    from_location: Option<Written<Option<String>>>,
    to_location: Option<Written<Option<String>>>,
    order_id: Option<Written<Option<String>>>,
    voided: Option<Written<Option<bool>>>,
}

#[derive(Deserialize)]
struct Written<T> {
    v: T,
    ver: Version,
    by: String,
}

impl Movement {
    /// `Movement::of` for a state still in its stored JSON form, reading only what a
    /// movement needs: a console view of 100,000 movements spent most of its time
    /// building whole states (`fieldsync-bench stock`). None for a state that is not a
    /// well-formed movement.
    pub fn from_state_json(json: &str) -> Option<Movement> {
        let line: StateLine = serde_json::from_str(json).ok()?;
        let f = line.fields;
        let created = f.ty?;
        Some(Movement {
            id: line.id,
            ty: MovementType::parse(&created.v)?,
            part: f.part_id?.v,
            qty: f.qty?.v,
            from: f.from_location.and_then(|w| w.v),
            to: f.to_location.and_then(|w| w.v),
            order: f.order_id.and_then(|w| w.v),
            voided: f.voided.and_then(|w| w.v).unwrap_or(false),
            ver: created.ver,
            by: created.by,
        })
    }
}

/// Stock of one part at one location.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    /// Usable units. Negative when more was consumed than the location held: consumption
    /// offline is never blocked, so this is how an overdraw shows.
    pub on_hand: i64,
    /// Faulty units returned here (RMA), waiting to go back to the supplier.
    pub faulty: i64,
    /// The outgoing movements that left `on_hand` below zero since it was last at or above
    /// zero, oldest first (at most `OVERDRAWN_BY_MAX`).
    pub overdrawn_by: Vec<String>,
}

impl Balance {
    pub fn overdrawn(&self) -> bool {
        self.on_hand < 0
    }
}

/// `(location id, part id)`.
pub type StockKey = (String, String);

/// Balances from movements, in any order and with repeats of the same state ignored by
/// id. Voided movements count for nothing.
pub fn derive<'a>(
    states: impl IntoIterator<Item = &'a EntityState>,
) -> BTreeMap<StockKey, Balance> {
    derive_movements(states.into_iter().filter_map(Movement::of))
}

/// `derive` over movements already read (the server reads them straight out of its
/// table, without building whole states: `fieldsync-bench stock`).
pub fn derive_movements(moves: impl IntoIterator<Item = Movement>) -> BTreeMap<StockKey, Balance> {
    let mut moves: Vec<Movement> = moves.into_iter().collect();
    moves.sort_by(|a, b| (a.ver, &a.id).cmp(&(b.ver, &b.id)));
    // A record given twice is one record (its creation version is fixed, so its copies
    // sort together); if one copy is voided, it is voided.
    moves.dedup_by(|later, kept| {
        let same = later.id == kept.id;
        if same {
            kept.voided |= later.voided;
        }
        same
    });
    // Keyed by borrowed names while summing: one allocation per balance, not per movement.
    let mut acc: HashMap<(&str, &str), Balance> = HashMap::new();
    for m in moves.iter().filter(|m| !m.voided) {
        if let Some(from) = &m.from {
            let b = acc.entry((from.as_str(), m.part.as_str())).or_default();
            b.on_hand -= m.qty;
            if b.on_hand < 0 && b.overdrawn_by.len() < OVERDRAWN_BY_MAX {
                b.overdrawn_by.push(m.id.clone());
            }
        }
        if let Some(to) = &m.to {
            let b = acc.entry((to.as_str(), m.part.as_str())).or_default();
            if m.ty == MovementType::Rma {
                b.faulty += m.qty;
            } else {
                b.on_hand += m.qty;
                if b.on_hand >= 0 {
                    b.overdrawn_by.clear();
                }
            }
        }
    }
    acc.into_iter()
        .map(|((l, p), b)| ((l.to_owned(), p.to_owned()), b))
        .collect()
}

/// A location as the stock rules need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocationInfo {
    pub id: String,
    pub name: String,
    pub van: bool,
    /// The engineers whose van it is (a crew may share one).
    pub engineers: Vec<String>,
}

impl LocationInfo {
    pub fn of(state: &EntityState) -> Option<LocationInfo> {
        (state.kind == EntityKind::StockLocation).then(|| LocationInfo {
            id: state.id.0.clone(),
            name: state.str("name").unwrap_or_default().to_owned(),
            van: state.str("type") == Some("van"),
            engineers: crew(state.str("engineers").unwrap_or_default()),
        })
    }

    pub fn is_van_of(&self, user: &str) -> bool {
        self.van && self.engineers.iter().any(|e| e == user)
    }
}

/// A van's `engineers` as a list: comma-separated, trimmed, empty entries dropped.
pub fn crew(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The van of `user` among `locations`.
pub fn van_of<'a>(
    user: &str,
    locations: impl IntoIterator<Item = &'a EntityState>,
) -> Option<LocationInfo> {
    locations
        .into_iter()
        .filter_map(LocationInfo::of)
        .filter(|l| l.is_van_of(user))
        .min_by(|a, b| a.id.cmp(&b.id))
}

/// The locations a stock record concerns: whose engineer (for a van) holds it.
pub fn location_refs(state: &EntityState) -> Vec<EntityId> {
    ["from_location", "to_location", "van_id", "location_id"]
        .into_iter()
        .filter_map(|f| state.str(f))
        .map(EntityId::from)
        .collect()
}

fn short_hash(prefix: &str, parts: &[&str]) -> EntityId {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    EntityId(format!("{prefix}{}", &hex::encode(h.finalize())[..32]))
}

/// The id of the minimum of `part` at `location`: one record per pair, whoever sets it.
pub fn min_id(location: &str, part: &str) -> EntityId {
    short_hash("min-", &[location, part])
}

/// The id of the transfer that approving `requisition` records: a second approval (two
/// dispatchers, a double click) finds it taken instead of moving the stock twice.
pub fn transfer_id(requisition: &str) -> EntityId {
    short_hash("tr-", &[requisition])
}

/// One line of a stock report: a part at a location.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLine {
    pub location_id: String,
    pub location: String,
    pub part_id: String,
    pub sku: String,
    pub name: String,
    pub on_hand: i64,
    pub faulty: i64,
    /// The low-stock threshold set for this part here, if any.
    pub min_qty: Option<i64>,
    /// Below its minimum: time to requisition or reorder.
    pub low: bool,
    /// Below zero: more was consumed than the location held.
    pub overdrawn: bool,
    pub overdrawn_by: Vec<String>,
}

fn of_kind<'s, 'a>(
    states: &'s [&'a EntityState],
    kind: EntityKind,
) -> impl Iterator<Item = &'a EntityState> + 's {
    states.iter().copied().filter(move |s| s.kind == kind)
}

/// The stock report over a mix of states (locations, parts, movements, minimums; others
/// ignored), for one location or all. Sorted by location name, then SKU.
pub fn report<'a>(
    states: impl IntoIterator<Item = &'a EntityState>,
    only: Option<&str>,
) -> Vec<StockLine> {
    let states: Vec<&EntityState> = states.into_iter().collect();
    let moves = of_kind(&states, EntityKind::StockMovement).filter_map(Movement::of);
    report_from(moves, states.iter().copied(), only)
}

/// `report` over movements already read and the other states (locations, parts,
/// minimums; movements among them are ignored).
pub fn report_from<'a>(
    moves: impl IntoIterator<Item = Movement>,
    states: impl IntoIterator<Item = &'a EntityState>,
    only: Option<&str>,
) -> Vec<StockLine> {
    let states: Vec<&EntityState> = states.into_iter().collect();
    let locations: HashMap<&str, &EntityState> = of_kind(&states, EntityKind::StockLocation)
        .map(|s| (s.id.as_str(), s))
        .collect();
    let parts: HashMap<&str, &EntityState> = of_kind(&states, EntityKind::Part)
        .map(|s| (s.id.as_str(), s))
        .collect();
    let mut balances = derive_movements(moves);
    let mut mins: BTreeMap<StockKey, i64> = BTreeMap::new();
    for m in of_kind(&states, EntityKind::StockMin) {
        if let (Some(l), Some(p), Some(q)) =
            (m.str("location_id"), m.str("part_id"), m.i64("min_qty"))
        {
            mins.insert((l.to_owned(), p.to_owned()), q);
            balances.entry((l.to_owned(), p.to_owned())).or_default();
        }
    }
    let mut lines: Vec<StockLine> = balances
        .into_iter()
        .filter(|((l, _), _)| only.is_none_or(|o| o == l.as_str()))
        .map(|((l, p), b)| {
            let min_qty = mins.get(&(l.clone(), p.clone())).copied();
            let part = parts.get(p.as_str());
            StockLine {
                location: locations
                    .get(l.as_str())
                    .and_then(|s| s.str("name"))
                    .unwrap_or(&l)
                    .to_owned(),
                sku: part.and_then(|s| s.str("sku")).unwrap_or(&p).to_owned(),
                name: part.and_then(|s| s.str("name")).unwrap_or("").to_owned(),
                low: min_qty.is_some_and(|m| b.on_hand < m),
                overdrawn: b.overdrawn(),
                on_hand: b.on_hand,
                faulty: b.faulty,
                overdrawn_by: b.overdrawn_by,
                min_qty,
                location_id: l,
                part_id: p,
            }
        })
        .collect();
    lines.sort_by(|a, b| {
        (&a.location, &a.sku, &a.location_id).cmp(&(&b.location, &b.sku, &b.location_id))
    });
    lines
}

/// A requisition as people read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequisitionView {
    pub id: String,
    pub part_id: String,
    pub sku: String,
    pub name: String,
    pub qty: i64,
    pub van_id: String,
    pub van: String,
    pub from_location: Option<String>,
    pub order_id: Option<String>,
    pub note: Option<String>,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    pub by: String,
    pub at_ms: u64,
    pub decided_by: Option<String>,
    pub decision_note: Option<String>,
    pub transfer_id: Option<String>,
}

/// The requisitions among `states`, newest first.
pub fn requisitions<'a>(states: impl IntoIterator<Item = &'a EntityState>) -> Vec<RequisitionView> {
    let states: Vec<&EntityState> = states.into_iter().collect();
    let find = |k: EntityKind, id: &str| {
        states
            .iter()
            .copied()
            .find(|s| s.kind == k && s.id.as_str() == id)
    };
    let mut out: Vec<RequisitionView> = states
        .iter()
        .copied()
        .filter(|s| s.kind == EntityKind::Requisition)
        .filter_map(|s| {
            let created = s.fields.get("part_id")?;
            let o = |f: &str| s.str(f).map(str::to_owned);
            let part_id = o("part_id")?;
            let van_id = o("van_id")?;
            let part = find(EntityKind::Part, &part_id);
            Some(RequisitionView {
                sku: part
                    .and_then(|p| p.str("sku"))
                    .unwrap_or(&part_id)
                    .to_owned(),
                name: part.and_then(|p| p.str("name")).unwrap_or("").to_owned(),
                van: find(EntityKind::StockLocation, &van_id)
                    .and_then(|v| v.str("name"))
                    .unwrap_or(&van_id)
                    .to_owned(),
                qty: s.i64("qty").unwrap_or(0),
                from_location: o("from_location"),
                order_id: o("order_id"),
                note: o("note"),
                status: o("status").unwrap_or_else(|| "pending".to_owned()),
                by: created.by.clone(),
                at_ms: created.ver.hlc.millis(),
                decided_by: o("decided_by"),
                decision_note: o("decision_note"),
                transfer_id: o("transfer_id"),
                id: s.id.0.clone(),
                part_id,
                van_id,
            })
        })
        .collect();
    out.sort_by(|a, b| (b.at_ms, &b.id).cmp(&(a.at_ms, &a.id)));
    out
}

fn invalid(msg: impl Into<String>) -> OpError {
    OpError::new("invalid_value", msg)
}

fn field<'a>(op: &'a Op, name: &str) -> Option<&'a str> {
    op.fields.get(name).and_then(Value::as_str)
}

/// What a movement or requisition must say, from the op alone (`validate_op` calls it
/// after the field checks): which locations each type names, and that an engineer
/// records only what happens in their van (consumption, returns) or asks for parts.
pub fn check_shape(op: &Op, role: Role) -> Result<(), OpError> {
    if op.op != OpKind::Create {
        return Ok(());
    }
    match op.kind {
        EntityKind::StockMovement => {
            let ty = field(op, "type")
                .and_then(MovementType::parse)
                .ok_or_else(|| invalid("a movement needs a type"))?;
            let (from, to, order) = (
                field(op, "from_location"),
                field(op, "to_location"),
                field(op, "order_id"),
            );
            if role == Role::Engineer
                && !matches!(ty, MovementType::Consumption | MovementType::Rma)
            {
                return Err(OpError::new(
                    "not_owner",
                    format!(
                        "an engineer records consumption and returns; a {} is the office's (ask with a requisition)",
                        ty.as_str()
                    ),
                ));
            }
            match ty {
                MovementType::Receipt if from.is_some() || to.is_none() => {
                    Err(invalid("a receipt goes into a location (to_location) and comes from none"))
                }
                MovementType::Transfer if from.is_none() || to.is_none() => {
                    Err(invalid("a transfer needs from_location and to_location"))
                }
                MovementType::Transfer if from == to => {
                    Err(invalid("a transfer needs two different locations"))
                }
                MovementType::Consumption if from.is_none() || to.is_some() => Err(invalid(
                    "a consumption comes out of a location (from_location) and goes into none",
                )),
                MovementType::Consumption if order.is_none() => {
                    Err(invalid("a consumption is recorded on a work order (order_id)"))
                }
                MovementType::Rma if from.is_none() && to.is_none() => Err(invalid(
                    "a return names the location it leaves (from_location) or the one it goes to (to_location)",
                )),
                _ if op.fields.contains_key("requisition_id") && ty != MovementType::Transfer => {
                    Err(invalid("only a transfer carries a requisition_id"))
                }
                _ => Ok(()),
            }
        }
        EntityKind::Requisition => {
            if field(op, "from_location").is_some()
                && field(op, "from_location") == field(op, "van_id")
            {
                return Err(invalid(
                    "a requisition asks another location than the van itself",
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// What a stock op's author may do, given what the store knows: the locations it names,
/// its part, its order, and for a set the record as it is. The server and the agent (for
/// the engineer, offline) fill this in from their own stores.
#[derive(Clone, Debug)]
pub struct StockContext<'a> {
    pub user: &'a str,
    pub role: Role,
    /// The named locations that exist (a name missing here is unknown).
    pub locations: &'a [LocationInfo],
    /// The named part, if it exists.
    pub part: Option<&'a EntityState>,
    /// A named work order exists and the author may write to it.
    pub order_ok: bool,
    /// For a set: the record now.
    pub current: Option<&'a EntityState>,
}

impl<'a> StockContext<'a> {
    pub fn with_part(self, part: Option<&'a EntityState>) -> Self {
        StockContext { part, ..self }
    }
}

/// The location an op's field names, among those known; an unknown one is an error.
fn named_location<'a>(
    op: &Op,
    locations: &'a [LocationInfo],
    name: &str,
) -> Result<Option<&'a LocationInfo>, OpError> {
    match field(op, name) {
        None => Ok(None),
        Some(id) => locations
            .iter()
            .find(|l| l.id == id)
            .map(Some)
            .ok_or_else(|| OpError::new("not_found", format!("{name}: no stock location {id:?}"))),
    }
}

/// Object-level rules of stock records. Never checks quantities against stock: an
/// overdraw is recorded and flagged, not refused.
pub fn check_located(op: &Op, ctx: &StockContext<'_>) -> Result<(), OpError> {
    let engineer = ctx.role == Role::Engineer;
    let loc = |name: &str| named_location(op, ctx.locations, name);
    let own_van = |l: &LocationInfo| l.is_van_of(ctx.user);
    if op.op == OpKind::Set {
        if op.kind == EntityKind::StockMovement && engineer {
            let cur = ctx.current.and_then(Movement::of);
            let mine = cur.as_ref().is_some_and(|m| {
                matches!(m.ty, MovementType::Consumption | MovementType::Rma)
                    && m.from
                        .as_deref()
                        .is_some_and(|f| ctx.locations.iter().any(|l| l.id == f && own_van(l)))
            });
            if !mine {
                return Err(OpError::new(
                    "out_of_scope",
                    format!("cannot void movement {}: only your own van's consumption and returns are yours to correct", op.id),
                ));
            }
        }
        if op.kind == EntityKind::Requisition && op.fields.contains_key("status") {
            if ctx.current.and_then(|c| c.str("status")).is_some() {
                return Err(OpError::new(
                    "already_decided",
                    format!("requisition {} has been decided already", op.id),
                ));
            }
            if field(op, "status") == Some("approved") && field(op, "transfer_id").is_none() {
                return Err(invalid(
                    "an approval names the transfer it made (transfer_id); approve in the console",
                ));
            }
        }
        return Ok(());
    }
    if op.kind == EntityKind::StockMin {
        loc("location_id")?;
        // One minimum per pair, whoever sets it: the id says which pair.
        let want = min_id(
            field(op, "location_id").unwrap_or_default(),
            field(op, "part_id").unwrap_or_default(),
        );
        if op.id != want {
            return Err(invalid(format!(
                "the minimum of this part at this location has id {want} (leave the id out to get it)"
            )));
        }
        return Ok(());
    }
    let Some(part) = ctx.part else {
        let id = field(op, "part_id").unwrap_or_default();
        return Err(OpError::new(
            "not_found",
            format!("unknown part {id:?}: not in the catalog"),
        ));
    };
    if field(op, "order_id").is_some() && !ctx.order_ok {
        let id = field(op, "order_id").unwrap_or_default();
        return Err(OpError::new(
            if engineer {
                "out_of_scope"
            } else {
                "not_found"
            },
            format!("work order {id} is not one you can record parts on"),
        ));
    }
    let qty = op.fields.get("qty").and_then(Value::as_i64).unwrap_or(0);
    match op.kind {
        EntityKind::StockMovement => {
            let ty = field(op, "type").and_then(MovementType::parse);
            let (from, to) = (loc("from_location")?, loc("to_location")?);
            let used = matches!(ty, Some(MovementType::Consumption | MovementType::Rma));
            if used && part.bool("serial_tracked") {
                if field(op, "serial").is_none_or(|s| s.trim().is_empty()) {
                    return Err(invalid(format!(
                        "part {} is serial-tracked: name the unit's serial",
                        part.str("sku").unwrap_or(part.id.as_str())
                    )));
                }
                if qty != 1 {
                    return Err(invalid(
                        "a serial-tracked part is recorded one unit (one serial) at a time",
                    ));
                }
            }
            if ty == Some(MovementType::Rma) && to.is_some_and(|t| t.van) {
                return Err(invalid(
                    "a faulty part is returned to a warehouse, not a van",
                ));
            }
            if engineer {
                match from {
                    Some(f) if !own_van(f) => {
                        return Err(OpError::new(
                            "out_of_scope",
                            format!("{} is not your van", f.name),
                        ))
                    }
                    None if field(op, "order_id").is_none() => {
                        return Err(invalid(
                            "a return of a part that was not in your van names the work order it came from",
                        ))
                    }
                    _ => {}
                }
            }
            Ok(())
        }
        EntityKind::Requisition => {
            let van = loc("van_id")?.ok_or_else(|| invalid("a requisition names the van"))?;
            if !van.van {
                return Err(invalid(format!("{} is not a van", van.name)));
            }
            if loc("from_location")?.is_some_and(|f| f.van) {
                return Err(invalid("a requisition asks a warehouse, not a van"));
            }
            if engineer && !own_van(van) {
                return Err(OpError::new(
                    "out_of_scope",
                    format!("{} is not your van", van.name),
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
