//! The shapes people and scripts read: an order in a list, and an order in full with its
//! notes, parts and conflicts. The agent's `show --json` and the server's
//! `GET /api/v1/work-orders/{id}` are built by the same function, so they cannot drift.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::schema::EntityKind;
use crate::state::EntityState;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderSummary {
    pub id: String,
    pub status: String,
    pub priority: Option<i64>,
    pub description: String,
    pub assignee: Option<String>,
    pub customer_id: Option<String>,
    pub site_id: Option<String>,
    pub asset_id: Option<String>,
    pub scheduled_start: Option<u64>,
    pub scheduled_end: Option<u64>,
    pub cancelled: bool,
    /// Event time of the order's latest change.
    pub updated_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordView {
    pub id: String,
    /// The record's fields, e.g. `text` for a note, `sku` and `qty` for a part usage;
    /// a consumption movement adds `type`, `part_id` and `from_location`.
    #[serde(flatten)]
    pub fields: Map<String, Value>,
    /// Who created it and when (event time).
    pub by: String,
    pub at_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConflictView {
    pub id: String,
    pub entity_kind: String,
    pub entity_id: String,
    pub field: String,
    /// `{value, by, device, hlc, at_ms}` of the value that won.
    pub winner: Value,
    /// The same for the value that lost, kept until a dispatcher resolves it.
    pub loser: Value,
    pub resolved: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
}

/// A local op the server refused, as the agent shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RejectedView {
    pub seq: u64,
    pub code: String,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderView {
    #[serde(flatten)]
    pub summary: OrderSummary,
    pub resolution: Option<String>,
    pub fault_code: Option<String>,
    pub arrived_at: Option<u64>,
    pub completed_at: Option<u64>,
    pub customer: Option<Map<String, Value>>,
    pub site: Option<Map<String, Value>>,
    pub asset: Option<Map<String, Value>>,
    pub notes: Vec<RecordView>,
    pub parts: Vec<RecordView>,
    /// Photos and scanned documents, oldest first: `hash`, `size`, `mime` and, when
    /// known, `name`, `caption`, `taken_at`, `lat`, `lon`. The server adds whether it holds
    /// the bytes verified (`stored`).
    #[serde(default)]
    pub photos: Vec<RecordView>,
    pub conflicts: Vec<ConflictView>,
    /// Per field: `[hlc, device]` of the write that set it, for clients that edit and so
    /// must send the version they saw.
    pub versions: Map<String, Value>,
    /// Agent only: local ops for this order not yet acknowledged by the server.
    #[serde(default)]
    pub pending_ops: u64,
    /// Agent only: knowledge-base articles about this order's asset model or fault code,
    /// the most relevant first.
    #[serde(default)]
    pub suggested_articles: Vec<ArticleRef>,
    /// Agent only: local ops for this order the server refused, with the reason.
    #[serde(default)]
    pub rejected: Vec<RejectedView>,
    /// The contract in force (`contract_id`): its id, name and what it includes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<Map<String, Value>>,
    /// The SLA clocks as of when the view was made: response, arrival and resolution,
    /// each with its state, deadline and time used, and the escalation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla: Option<crate::sla::OrderSla>,
    // The service report (issue 5): records oldest first, voided ones included (marked).
    #[serde(default)]
    pub work_type: Option<String>,
    #[serde(default)]
    pub root_cause: Option<String>,
    /// Checklist answers: `template_id`, `item`, `value`.
    #[serde(default)]
    pub checklist: Vec<RecordView>,
    /// `activity` (labour, travel) and `minutes`.
    #[serde(default)]
    pub time_entries: Vec<RecordView>,
    /// `signer_name`, `signature` (hash) and `signature_photo` (the photo holding it).
    #[serde(default)]
    pub signoffs: Vec<RecordView>,
    /// `score` 1-5 and `comment`.
    #[serde(default)]
    pub ratings: Vec<RecordView>,
    /// `text`, `follow_up_order`, `resolved`.
    #[serde(default)]
    pub complaints: Vec<RecordView>,
    /// Calls, emails and visits with the customer about this order (`contact_log`):
    /// `channel`, `direction`, `at` (when it happened), `contact`, `summary`; by event
    /// time, oldest first.
    #[serde(default)]
    pub contact_log: Vec<RecordView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArticleRef {
    pub id: String,
    pub title: String,
}

/// An order's status as lists show it (an order nobody has progressed is `open`).
pub fn status(order: &EntityState) -> &str {
    order.str("status").unwrap_or("open")
}

pub fn summary(order: &EntityState) -> OrderSummary {
    let s = |f: &str| order.str(f).map(str::to_owned);
    let t = |f: &str| order.get(f).and_then(Value::as_u64);
    OrderSummary {
        id: order.id.0.clone(),
        status: status(order).to_owned(),
        priority: order.i64("priority"),
        description: s("description").unwrap_or_default(),
        assignee: s("assignee"),
        customer_id: s("customer_id"),
        site_id: s("site_id"),
        asset_id: s("asset_id"),
        scheduled_start: t("scheduled_start"),
        scheduled_end: t("scheduled_end"),
        cancelled: order.bool("cancelled"),
        updated_ms: order.max_version().map(|v| v.hlc.millis()).unwrap_or(0),
    }
}

/// An entity's field values as a flat object with its id.
pub fn plain(state: &EntityState) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), Value::String(state.id.0.clone()));
    for (k, f) in &state.fields {
        m.insert(k.clone(), f.v.clone());
    }
    m
}

fn record(state: &EntityState, link: &str) -> RecordView {
    let mut r = record_of(state);
    r.fields.remove(link);
    r
}

/// A record with every field, its link included (a list not under one order).
pub fn record_of(state: &EntityState) -> RecordView {
    let mut fields = plain(state);
    fields.remove("id");
    let first = state
        .fields
        .values()
        .min_by_key(|f| f.ver)
        .expect("records have fields");
    RecordView {
        id: state.id.0.clone(),
        fields,
        by: first.by.clone(),
        at_ms: first.ver.hlc.millis(),
    }
}

fn conflict(state: &EntityState) -> ConflictView {
    let s = |f: &str| state.str(f).unwrap_or_default().to_owned();
    ConflictView {
        id: state.id.0.clone(),
        entity_kind: s("entity_kind"),
        entity_id: s("entity_id"),
        field: s("field"),
        winner: state.get("winner").cloned().unwrap_or(Value::Null),
        loser: state.get("loser").cloned().unwrap_or(Value::Null),
        resolved: state.bool("resolved"),
        resolution: state.get("resolution").cloned().filter(|v| !v.is_null()),
        resolved_by: state.str("resolved_by").map(str::to_owned),
    }
}

/// The full view of `order`, given the records that hang off it and the entities it
/// refers to (in any order; unrelated ones are ignored). No SLA clocks: see
/// [`order_view_at`].
pub fn order_view<'a>(
    order: &EntityState,
    related: impl IntoIterator<Item = &'a EntityState>,
) -> OrderView {
    order_view_at(order, related, None)
}

/// [`order_view`] with the SLA clocks as of `now`, when `related` holds the order's
/// contract.
pub fn order_view_at<'a>(
    order: &EntityState,
    related: impl IntoIterator<Item = &'a EntityState>,
    now: Option<u64>,
) -> OrderView {
    let mut view = OrderView {
        summary: summary(order),
        resolution: order.str("resolution").map(str::to_owned),
        fault_code: order.str("fault_code").map(str::to_owned),
        arrived_at: order.get("arrived_at").and_then(Value::as_u64),
        completed_at: order.get("completed_at").and_then(Value::as_u64),
        customer: None,
        site: None,
        asset: None,
        notes: Vec::new(),
        parts: Vec::new(),
        photos: Vec::new(),
        conflicts: Vec::new(),
        versions: order
            .fields
            .iter()
            .map(|(k, f)| (k.clone(), serde_json::to_value(f.ver).expect("version")))
            .collect(),
        pending_ops: 0,
        suggested_articles: Vec::new(),
        rejected: Vec::new(),
        contract: None,
        sla: None,
        work_type: order.str("work_type").map(str::to_owned),
        root_cause: order.str("root_cause").map(str::to_owned),
        checklist: Vec::new(),
        time_entries: Vec::new(),
        signoffs: Vec::new(),
        ratings: Vec::new(),
        complaints: Vec::new(),
        contact_log: Vec::new(),
    };
    let is = |field: &str, s: &EntityState| order.str(field) == Some(s.id.as_str());
    let mut contract = None;
    let related: Vec<&EntityState> = related.into_iter().collect();
    let catalog: std::collections::HashMap<&str, &str> = related
        .iter()
        .filter(|s| s.kind == EntityKind::Part)
        .filter_map(|s| Some((s.id.as_str(), s.str("sku")?)))
        .collect();
    for s in related {
        let linked = s.kind.spec().order_link.and_then(|l| s.str(l)) == Some(order.id.as_str());
        match s.kind {
            EntityKind::Customer if is("customer_id", s) => view.customer = Some(plain(s)),
            EntityKind::Site if is("site_id", s) => view.site = Some(plain(s)),
            EntityKind::Asset if is("asset_id", s) => view.asset = Some(plain(s)),
            EntityKind::Note if linked => view.notes.push(record(s, "order_id")),
            EntityKind::PartUsage if linked => view.parts.push(record(s, "order_id")),
            EntityKind::Photo if linked => view.photos.push(record(s, "order_id")),
            EntityKind::Conflict if linked => view.conflicts.push(conflict(s)),
            EntityKind::Contract if is("contract_id", s) => contract = Some(s),
            EntityKind::ChecklistAnswer if linked => view.checklist.push(record(s, "order_id")),
            EntityKind::TimeEntry if linked => view.time_entries.push(record(s, "order_id")),
            EntityKind::Signoff if linked => view.signoffs.push(record(s, "order_id")),
            EntityKind::Rating if linked => view.ratings.push(record(s, "order_id")),
            EntityKind::Complaint if linked => view.complaints.push(record(s, "order_id")),
            EntityKind::ContactLog if linked => view.contact_log.push(record(s, "order_id")),
            // Parts used are consumption (and return) movements: the one record that both
            // lists a part on the order and moves stock (`stock.rs`).
            EntityKind::StockMovement if s.str("order_id") == Some(order.id.as_str()) => {
                let mut r = record(s, "order_id");
                if let Some(sku) = catalog.get(s.str("part_id").unwrap_or_default()) {
                    r.fields.insert("sku".into(), Value::from(*sku));
                }
                view.parts.push(r);
            }
            _ => {}
        }
    }
    if let Some(c) = contract {
        let mut m = plain(c);
        m.remove("sla");
        view.contract = Some(m);
        if let Some(now) = now {
            let tier = view
                .customer
                .as_ref()
                .and_then(|c| c.get("tier"))
                .and_then(Value::as_str);
            view.sla = crate::sla::order::order_sla(order, Some(c), tier, now);
        }
    }
    for list in [
        &mut view.notes,
        &mut view.parts,
        &mut view.photos,
        &mut view.checklist,
        &mut view.time_entries,
        &mut view.signoffs,
        &mut view.ratings,
        &mut view.complaints,
    ] {
        list.sort_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)));
    }
    view.contact_log
        .sort_by_key(|r| (contact_time(r), r.id.clone()));
    view.conflicts.sort_by(|a, b| a.id.cmp(&b.id));
    view
}

/// When a logged contact happened (`at`), else when it was logged.
pub fn contact_time(r: &RecordView) -> u64 {
    r.fields
        .get("at")
        .and_then(Value::as_u64)
        .unwrap_or(r.at_ms)
}
