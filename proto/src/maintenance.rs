//! Preventive maintenance: a plan (monthly inspection, yearly calibration, …) on an asset
//! generates one work order per due date, a lead time ahead of it.
//!
//! Exactly one order per due date, however many generation runs overlap, comes from two
//! things: the order's id is a function of the plan and the due date ([`order_id`]), and a
//! run checks for that id and creates it in one write transaction. A second run, in this
//! process or another one on the same database, finds the order and leaves it alone.
//! Sans-IO: the server's store does the looking up and writing.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::scope::Digester;
use crate::sla::calendar::{Date, DAY_MS};
use crate::{EntityId, EntityKind, EntityState};

/// How often a plan comes due.
pub const INTERVALS: &[&str] = &["weekly", "monthly", "quarterly", "half_yearly", "yearly"];
/// Days ahead of a due date its order is created, unless the plan says otherwise.
pub const LEAD_DAYS_DEFAULT: i64 = 14;
/// Due dates one plan may generate in one run: a weekly plan with a 90-day lead has 13.
pub const DUE_DATES_PER_RUN_MAX: usize = 32;
const ID_LEN_MAX: usize = 64;

/// A plan as generation reads it from its entity.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub id: EntityId,
    pub interval: &'static str,
    pub first_due_ms: u64,
    pub lead_days: i64,
}

impl Plan {
    /// `None` for a paused plan, or one missing what generation needs (validation makes
    /// `interval` and `first_due` required, so only a paused plan normally).
    pub fn of(state: &EntityState) -> Option<Plan> {
        if state.kind != EntityKind::MaintenancePlan || state.bool("paused") {
            return None;
        }
        let interval = state.str("interval")?;
        let interval = INTERVALS.iter().find(|i| **i == interval)?;
        Some(Plan {
            id: state.id.clone(),
            interval,
            first_due_ms: u64::try_from(state.i64("first_due")?).ok()?,
            lead_days: state.i64("lead_days").unwrap_or(LEAD_DAYS_DEFAULT),
        })
    }

    /// The `k`-th due date (0 = the first). Months keep the first due date's day, or the
    /// month's last day when it is shorter (a plan due on the 31st is due on 30 April).
    pub fn due(&self, k: u32) -> u64 {
        let months = match self.interval {
            "weekly" => return self.first_due_ms + u64::from(k) * 7 * DAY_MS,
            "monthly" => 1,
            "quarterly" => 3,
            "half_yearly" => 6,
            _ => 12,
        } * k;
        let day_ms = self.first_due_ms % DAY_MS;
        let first = Date::from_days_since_epoch((self.first_due_ms / DAY_MS) as i64);
        let month0 = i64::from(first.month) - 1 + i64::from(months);
        let year = first.year + month0.div_euclid(12) as i32;
        let month = (month0.rem_euclid(12) + 1) as u8;
        let day = first.day.min(days_in_month(year, month));
        Date::new(year, month, day).days_since_epoch() as u64 * DAY_MS + day_ms
    }

    /// The due dates whose orders a run at `now_ms` creates: from `lead_days` ago (a run
    /// missed while the server was down) up to `lead_days` ahead, oldest first, at most
    /// [`DUE_DATES_PER_RUN_MAX`].
    pub fn due_dates(&self, now_ms: u64) -> Vec<u64> {
        let lead = self.lead_days.max(0) as u64 * DAY_MS;
        let (from, until) = (now_ms.saturating_sub(lead), now_ms + lead);
        let mut out = Vec::new();
        let mut k = self.first_k_from(from);
        loop {
            let due = self.due(k);
            if due > until || out.len() == DUE_DATES_PER_RUN_MAX {
                return out;
            }
            if due >= from {
                out.push(due);
            }
            k += 1;
        }
    }

    /// A `k` at or before the first due date at or after `from`, so a plan that started
    /// years ago does not walk every past date.
    fn first_k_from(&self, from: u64) -> u32 {
        if from <= self.first_due_ms {
            return 0;
        }
        let longest_period = match self.interval {
            "weekly" => 7 * DAY_MS,
            "monthly" => 31 * DAY_MS,
            "quarterly" => 92 * DAY_MS,
            "half_yearly" => 184 * DAY_MS,
            _ => 366 * DAY_MS,
        };
        // No period is longer, so the k-th due date is not past `from`; `due_dates` walks
        // forward from it.
        ((from - self.first_due_ms) / longest_period) as u32
    }
}

fn days_in_month(year: i32, month: u8) -> u8 {
    let next = if month == 12 {
        Date::new(year + 1, 1, 1)
    } else {
        Date::new(year, month + 1, 1)
    };
    (next.days_since_epoch() - Date::new(year, month, 1).days_since_epoch()) as u8
}

/// The work order a plan generates for a due date: `pm-PLAN-YYYYMMDD`, or with the plan id
/// replaced by a hash of it when that would be too long for an id.
pub fn order_id(plan: &EntityId, due_ms: u64) -> EntityId {
    let d = Date::from_days_since_epoch((due_ms / DAY_MS) as i64);
    let date = format!("{:04}{:02}{:02}", d.year, d.month, d.day);
    let plain = format!("pm-{plan}-{date}");
    if plain.len() <= ID_LEN_MAX {
        return EntityId(plain);
    }
    let mut h = Digester::default();
    h.line(plan.as_str());
    let hash = h.finish();
    EntityId(format!("pm-{}-{date}", &hash[..hash.len().min(24)]))
}

/// The generated order's fields: the plan's description, priority and assignee, the asset
/// and where it is (`asset`'s site and customer), scheduled at the due date.
pub fn order_fields(
    plan: &EntityState,
    asset: Option<&EntityState>,
    due_ms: u64,
) -> BTreeMap<String, Value> {
    let mut f = BTreeMap::new();
    let name = plan.str("name").unwrap_or("Preventive maintenance");
    let description = match plan.str("description") {
        Some(d) if !d.is_empty() => format!("{name}: {d}"),
        _ => name.to_owned(),
    };
    f.insert("description".into(), json!(description));
    f.insert("priority".into(), json!(plan.i64("priority").unwrap_or(3)));
    f.insert("channel".into(), json!("preventive"));
    f.insert("maintenance_plan_id".into(), json!(plan.id.as_str()));
    f.insert("scheduled_start".into(), json!(due_ms));
    if let Some(a) = plan.str("assignee") {
        f.insert("assignee".into(), json!(a));
    }
    if let Some(asset_id) = plan.str("asset_id") {
        f.insert("asset_id".into(), json!(asset_id));
    }
    for link in ["site_id", "customer_id"] {
        if let Some(v) = plan.str(link).or_else(|| asset.and_then(|a| a.str(link))) {
            f.insert(link.into(), json!(v));
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, m: u8, d: u8) -> u64 {
        Date::new(y, m, d).days_since_epoch() as u64 * DAY_MS + 9 * 3_600_000
    }

    fn plan(interval: &'static str, first: u64, lead: i64) -> Plan {
        Plan {
            id: EntityId::from("chiller-monthly"),
            interval,
            first_due_ms: first,
            lead_days: lead,
        }
    }

    #[test]
    fn months_keep_the_day_or_take_the_last_day_of_a_shorter_month() {
        let p = plan("monthly", at(2027, 1, 31), 14);
        let dues: Vec<u64> = (0..4).map(|k| p.due(k)).collect();
        assert_eq!(
            dues,
            vec![
                at(2027, 1, 31),
                at(2027, 2, 28),
                at(2027, 3, 31),
                at(2027, 4, 30)
            ]
        );
        let leap = plan("yearly", at(2028, 2, 29), 14);
        assert_eq!(leap.due(1), at(2029, 2, 28));
        assert_eq!(leap.due(4), at(2032, 2, 29));
        let q = plan("quarterly", at(2027, 11, 15), 14);
        assert_eq!(q.due(1), at(2028, 2, 15));
        let w = plan("weekly", at(2027, 12, 30), 14);
        assert_eq!(w.due(1), at(2028, 1, 6));
    }

    #[test]
    fn a_run_covers_the_lead_window_on_both_sides_and_nothing_else() {
        let p = plan("weekly", at(2027, 1, 4), 10);
        let dues = p.due_dates(at(2027, 3, 1));
        // 2027-03-01 is a Monday, as is the first due date: -10 days .. +10 days.
        assert_eq!(dues, vec![at(2027, 2, 22), at(2027, 3, 1), at(2027, 3, 8)]);
        // Before the first due date only what falls within the lead.
        let early = plan("monthly", at(2027, 6, 1), 14);
        assert!(early.due_dates(at(2027, 5, 1)).is_empty());
        assert_eq!(early.due_dates(at(2027, 5, 20)), vec![at(2027, 6, 1)]);
        // A plan started decades ago does not walk (or emit) every past date.
        let old = plan("monthly", at(1990, 1, 15), 14);
        assert_eq!(old.due_dates(at(2027, 5, 20)), vec![at(2027, 5, 15)]);
        // A long lead on a weekly plan stops at the per-run bound.
        let busy = plan("weekly", at(2020, 1, 6), 10_000);
        assert_eq!(busy.due_dates(at(2027, 1, 4)).len(), DUE_DATES_PER_RUN_MAX);
    }

    #[test]
    fn order_ids_are_one_per_plan_and_day_and_always_valid() {
        let p = EntityId::from("chiller-monthly");
        assert_eq!(
            order_id(&p, at(2027, 6, 1)).as_str(),
            "pm-chiller-monthly-20270601"
        );
        assert_eq!(
            order_id(&p, at(2027, 6, 1)),
            order_id(&p, at(2027, 6, 1) + 1)
        );
        assert_ne!(order_id(&p, at(2027, 6, 1)), order_id(&p, at(2027, 7, 1)));
        let long = EntityId("x".repeat(64));
        let id = order_id(&long, at(2027, 6, 1));
        assert!(EntityId::is_valid(id.as_str()), "{id}");
        assert_ne!(id, order_id(&EntityId("y".repeat(64)), at(2027, 6, 1)));
    }
}
