//! An asset's service history: every order on it, newest first, with what was found and
//! done. Built from order views, so the agent (`fieldsync history ASSET`) shows exactly
//! what each order's own view holds.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::view::{OrderView, RecordView};

/// Orders listed in one asset history; older ones are summarised by count.
pub const HISTORY_ORDERS_MAX: usize = 500;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub id: String,
    pub status: String,
    pub work_type: Option<String>,
    pub description: String,
    pub assignee: Option<String>,
    pub arrived_at: Option<u64>,
    pub completed_at: Option<u64>,
    pub fault_code: Option<String>,
    pub root_cause: Option<String>,
    pub resolution: Option<String>,
    pub labour_minutes: i64,
    pub travel_minutes: i64,
    /// `[sku, qty]` of every part used (not voided).
    pub parts: Vec<(String, i64)>,
    pub notes: usize,
    pub photos: usize,
    pub signed_by: Option<String>,
    pub rating: Option<i64>,
    /// When the order last changed (event time), for ordering.
    pub updated_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AssetHistory {
    pub asset_id: String,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub orders: Vec<HistoryEntry>,
    /// Orders beyond `HISTORY_ORDERS_MAX`, not listed.
    pub more: usize,
}

fn live(records: &[RecordView]) -> impl Iterator<Item = &RecordView> {
    records
        .iter()
        .filter(|r| r.fields.get("voided").and_then(Value::as_bool) != Some(true))
}

fn minutes(v: &OrderView, activity: &str) -> i64 {
    live(&v.time_entries)
        .filter(|e| e.fields.get("activity").and_then(Value::as_str) == Some(activity))
        .filter_map(|e| e.fields.get("minutes").and_then(Value::as_i64))
        .sum()
}

pub fn entry(v: &OrderView) -> HistoryEntry {
    let s = |r: &RecordView, k: &str| r.fields.get(k).and_then(Value::as_str).map(str::to_owned);
    HistoryEntry {
        id: v.summary.id.clone(),
        status: v.summary.status.clone(),
        work_type: v.work_type.clone(),
        description: v.summary.description.clone(),
        assignee: v.summary.assignee.clone(),
        arrived_at: v.arrived_at,
        completed_at: v.completed_at,
        fault_code: v.fault_code.clone(),
        root_cause: v.root_cause.clone(),
        resolution: v.resolution.clone(),
        labour_minutes: minutes(v, "labour"),
        travel_minutes: minutes(v, "travel"),
        parts: live(&v.parts)
            .map(|p| {
                (
                    s(p, "sku").unwrap_or_default(),
                    p.fields.get("qty").and_then(Value::as_i64).unwrap_or(0),
                )
            })
            .collect(),
        notes: live(&v.notes).count(),
        photos: live(&v.photos).count(),
        signed_by: live(&v.signoffs).last().and_then(|r| s(r, "signer_name")),
        rating: live(&v.ratings)
            .last()
            .and_then(|r| r.fields.get("score").and_then(Value::as_i64)),
        updated_ms: v.summary.updated_ms,
    }
}

/// The history of `asset_id` from the views of the orders on it (in any order).
pub fn asset_history(
    asset_id: &str,
    model: Option<String>,
    serial: Option<String>,
    views: &[OrderView],
) -> AssetHistory {
    let mut orders: Vec<HistoryEntry> = views
        .iter()
        .filter(|v| v.summary.asset_id.as_deref() == Some(asset_id))
        .map(entry)
        .collect();
    // Newest work first: completion time when done, else the latest change.
    orders.sort_by(|a, b| {
        let key = |e: &HistoryEntry| (e.completed_at.unwrap_or(e.updated_ms), e.id.clone());
        key(b).cmp(&key(a))
    });
    let more = orders.len().saturating_sub(HISTORY_ORDERS_MAX);
    orders.truncate(HISTORY_ORDERS_MAX);
    AssetHistory {
        asset_id: asset_id.to_owned(),
        model,
        serial,
        orders,
        more,
    }
}
