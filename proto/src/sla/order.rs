//! The SLA engine applied to stored entities: which contract is in force for an order,
//! the deadlines set at intake, and the live clocks from the order's event-time fields.
//! The server (intake, console) and the agent (offline `show`) call the same functions,
//! so both show the same clocks for the same states.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{evaluate_order, Deadline, OrderEvents, OrderSla, Pause, SlaTerms};
use crate::{EntityKind, EntityState};

/// Hold intervals one order keeps (`holds`); an order on hold more often than this is
/// a data problem, and the oldest are what a dispatcher needs least.
pub const HOLDS_MAX: usize = 200;

/// The contract's SLA terms, when it has valid ones.
pub fn terms(contract: &EntityState) -> Option<SlaTerms> {
    let terms: SlaTerms = serde_json::from_value(contract.get("sla")?.clone()).ok()?;
    terms.validate().ok()?;
    Some(terms)
}

fn listed(contract: &EntityState, field: &str) -> Vec<String> {
    contract
        .str(field)
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether `contract` covers an order of `customer` on `asset`/`site` at `at`: the same
/// customer, valid then, and either listing the asset or site or listing none (all of the
/// customer's equipment).
pub fn covers(
    contract: &EntityState,
    customer: &str,
    asset: Option<&str>,
    site: Option<&str>,
    at: u64,
) -> bool {
    let valid = |f: &str| contract.i64(f).map(|v| v.max(0) as u64);
    if contract.kind != EntityKind::Contract || contract.str("customer_id") != Some(customer) {
        return false;
    }
    if !(valid("valid_from").is_some_and(|v| v <= at)
        && valid("valid_until").is_some_and(|v| at < v))
    {
        return false;
    }
    let (assets, sites) = (listed(contract, "asset_ids"), listed(contract, "site_ids"));
    if assets.is_empty() && sites.is_empty() {
        return true;
    }
    asset.is_some_and(|a| assets.iter().any(|x| x == a))
        || site.is_some_and(|s| sites.iter().any(|x| x == s))
}

/// The contract in force for a new order with `fields`, among the customer's `contracts`:
/// one that lists the asset or site before one that covers everything, then by id.
pub fn contract_for<'a>(
    contracts: &'a [EntityState],
    fields: &BTreeMap<String, Value>,
    at: u64,
) -> Option<&'a EntityState> {
    let customer = fields.get("customer_id")?.as_str()?;
    let asset = fields.get("asset_id").and_then(Value::as_str);
    let site = fields.get("site_id").and_then(Value::as_str);
    let mut fitting: Vec<&EntityState> = contracts
        .iter()
        .filter(|c| covers(c, customer, asset, site, at) && terms(c).is_some())
        .collect();
    fitting.sort_by_key(|c| {
        let general = listed(c, "asset_ids").is_empty() && listed(c, "site_ids").is_empty();
        (general, c.id.clone())
    });
    fitting.first().copied()
}

/// Intake: the contract, the report time and the three deadlines, as order fields. No
/// pause exists yet, so these are the deadlines as promised; the live clocks move them
/// while the order waits.
pub fn intake_fields(
    contract: &EntityState,
    priority: u8,
    tier: &str,
    reported_at: u64,
) -> BTreeMap<String, Value> {
    let mut f = BTreeMap::from([
        ("contract_id".to_owned(), json!(contract.id.as_str())),
        ("reported_at".to_owned(), json!(reported_at)),
    ]);
    let Some(terms) = terms(contract) else {
        return f;
    };
    let Some(t) = terms.targets(priority, tier) else {
        return f;
    };
    for (field, minutes) in [
        ("response_due", t.response_min),
        ("arrival_due", t.arrival_min),
        ("resolution_due", t.resolution_min),
    ] {
        let target = u64::from(minutes) * super::calendar::MINUTE_MS;
        if let Deadline::At { ms } =
            super::clock::deadline(&terms.calendar, reported_at, target, &[])
        {
            f.insert(field.to_owned(), json!(ms));
        }
    }
    f
}

/// The order's events by event time: reported (intake, else its creation), responded
/// (first set off or arrival), arrived, completed, and its holds as pauses.
pub fn events(order: &EntityState) -> OrderEvents {
    let time = |f: &str| order.i64(f).map(|v| v.max(0) as u64);
    let created = order
        .fields
        .values()
        .map(|f| f.ver.hlc.millis())
        .min()
        .unwrap_or(0);
    let reported_at = time("reported_at").unwrap_or(created);
    let pauses = order
        .get("holds")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|p| {
                    let p = p.as_array()?;
                    Some(Pause {
                        from: p.first()?.as_u64()?,
                        to: p.get(1).and_then(Value::as_u64),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    // Event times come from the device's hybrid clock; none is before the report.
    let after_report = |t: Option<u64>| t.map(|t| t.max(reported_at));
    OrderEvents {
        reported_at,
        responded_at: after_report(time("responded_at")),
        arrived_at: after_report(time("arrived_at")),
        resolved_at: after_report(time("completed_at")),
        pauses,
    }
}

/// The order's live SLA clocks under `contract` for a customer of `tier`, as of `now`;
/// `None` without a contract with targets for its priority and tier. A cancelled order
/// has no clocks.
pub fn order_sla(
    order: &EntityState,
    contract: Option<&EntityState>,
    tier: Option<&str>,
    now: u64,
) -> Option<OrderSla> {
    if order.bool("cancelled") {
        return None;
    }
    let terms = terms(contract?)?;
    let priority = u8::try_from(order.i64("priority")?).ok()?;
    evaluate_order(
        &terms,
        priority,
        tier.unwrap_or("standard"),
        &events(order),
        now,
    )
}

/// `holds` after a progress report at event time `at` to `status`: going on hold opens an
/// interval, leaving it closes the open one. `None` when nothing changes.
pub fn holds_after(current: Option<&Value>, status: &str, at: u64) -> Option<Value> {
    let mut list: Vec<Value> = current
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let open = list
        .last()
        .and_then(Value::as_array)
        .is_some_and(|p| p.get(1).is_some_and(Value::is_null));
    let last_end = list
        .last()
        .and_then(Value::as_array)
        .and_then(|p| p.iter().filter_map(Value::as_u64).max())
        .unwrap_or(0);
    let at = at.max(last_end);
    match (status == "on-hold", open) {
        (true, false) => {
            if list.len() == HOLDS_MAX {
                list.remove(0);
            }
            list.push(json!([at, null]));
        }
        (false, true) => {
            let from = list.last().and_then(|p| p[0].as_u64()).unwrap_or(at);
            *list.last_mut().expect("an open hold") = json!([from, at]);
        }
        _ => return None,
    }
    Some(Value::Array(list))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::EntityKind;
    use crate::sla::calendar::{Date, HOUR_MS, MINUTE_MS};
    use crate::sla::ClockState;
    use crate::state::{FieldState, Version};
    use crate::{EntityId, Hlc};

    fn state(kind: EntityKind, id: &str, fields: Value, at: u64) -> EntityState {
        let mut s = EntityState::new(kind, EntityId::from(id));
        for (k, v) in fields.as_object().unwrap() {
            s.fields.insert(
                k.clone(),
                FieldState {
                    v: v.clone(),
                    ver: Version {
                        hlc: Hlc::from_millis(at),
                        dev: 1,
                    },
                    by: "dana".into(),
                },
            );
        }
        s
    }

    /// Mon 2027-03-01 09:00 UTC.
    fn monday_9() -> u64 {
        Date::new(2027, 3, 1).days_since_epoch() as u64 * 24 * HOUR_MS + 9 * HOUR_MS
    }

    fn contract(assets: &str) -> EntityState {
        let sla = json!({
            "calendar": {"kind": "business", "utc_offset_min": 0,
                "week": [[[480, 1020]], [[480, 1020]], [[480, 1020]], [[480, 1020]], [[480, 1020]], [], []]},
            "rules": [{"priority": 1, "tier": "*", "response_min": 60, "arrival_min": 240, "resolution_min": 480}]
        });
        state(
            EntityKind::Contract,
            if assets.is_empty() {
                "c-all"
            } else {
                "c-listed"
            },
            json!({"customer_id": "acme", "name": "Gold cover", "valid_from": 0,
                   "valid_until": monday_9() + 365 * 24 * HOUR_MS, "sla": sla,
                   "asset_ids": assets}),
            1,
        )
    }

    #[test]
    fn the_contract_listing_the_asset_wins_over_the_general_one() {
        let contracts = vec![contract(""), contract("ch-2, ch-3")];
        let fields = |asset: &str| {
            BTreeMap::from([
                ("customer_id".to_owned(), json!("acme")),
                ("asset_id".to_owned(), json!(asset)),
            ])
        };
        let at = monday_9();
        assert_eq!(
            contract_for(&contracts, &fields("ch-3"), at)
                .unwrap()
                .id
                .as_str(),
            "c-listed"
        );
        assert_eq!(
            contract_for(&contracts, &fields("boiler"), at)
                .unwrap()
                .id
                .as_str(),
            "c-all"
        );
        let mut other = fields("ch-3");
        other.insert("customer_id".into(), json!("globex"));
        assert!(contract_for(&contracts, &other, at).is_none());
        let expired = monday_9() + 400 * 24 * HOUR_MS;
        assert!(contract_for(&contracts, &fields("ch-3"), expired).is_none());
    }

    #[test]
    fn intake_sets_deadlines_in_business_hours_and_holds_pause_the_live_clock() {
        let c = contract("");
        // Reported Friday 16:30: one business hour is 16:30-17:00 Friday, 08:00-08:30 Monday.
        let friday_1630 = monday_9() + 4 * 24 * HOUR_MS + 7 * HOUR_MS + 30 * MINUTE_MS;
        let f = intake_fields(&c, 1, "gold", friday_1630);
        let monday_0830 = monday_9() + 7 * 24 * HOUR_MS - 30 * MINUTE_MS;
        assert_eq!(f["response_due"], json!(monday_0830));
        assert_eq!(f["contract_id"], json!("c-all"));

        let mut fields = json!({"description": "x", "priority": 1});
        for (k, v) in &f {
            fields[k] = v.clone();
        }
        let order = state(EntityKind::WorkOrder, "wo-1", fields, friday_1630);
        let sla = order_sla(&order, Some(&c), Some("gold"), friday_1630 + 10 * MINUTE_MS).unwrap();
        assert_eq!(sla.response.state, ClockState::Running);
        // Two days later, no response: breached.
        let late = order_sla(&order, Some(&c), Some("gold"), monday_0830 + MINUTE_MS).unwrap();
        assert_eq!(late.response.state, ClockState::Breached);

        // The engineer put it on hold from Friday 16:40 to Monday 10:00: paused, not breached.
        let mut held = order.clone();
        let holds = holds_after(None, "on-hold", friday_1630 + 10 * MINUTE_MS).unwrap();
        held.fields.insert(
            "holds".into(),
            FieldState {
                v: holds,
                ver: order.fields["priority"].ver,
                by: "eve".into(),
            },
        );
        let paused = order_sla(&held, Some(&c), Some("gold"), monday_0830 + MINUTE_MS).unwrap();
        assert_eq!(paused.response.state, ClockState::Paused);
        let resumed = holds_after(
            held.get("holds"),
            "on-site",
            monday_9() + 7 * 24 * HOUR_MS + HOUR_MS,
        )
        .unwrap();
        assert_eq!(resumed.as_array().unwrap().len(), 1);
        assert!(resumed[0][1].is_u64(), "{resumed}");
        assert!(
            holds_after(Some(&resumed), "on-site", 0).is_none(),
            "no change"
        );
    }
}
