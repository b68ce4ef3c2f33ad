//! The customer's communication log, offline: an engineer who phones or emails the
//! customer about an order they hold records it against that order (`fieldsync contact`).
//! The entry is a `contact_log` record, the order's child, so it syncs like a note and
//! shows in `fieldsync show`, on the order's page and on the customer's page in the console.

use std::collections::BTreeMap;

use fieldsync_proto::contact::{CONTACT_CHANNELS, CONTACT_DIRECTIONS};
use fieldsync_proto::{EntityId, EntityKind, Op, OpKind};
use serde_json::{json, Value};

use crate::error::{AgentError, Result};
use crate::store::Store;

/// What was said, and to whom, about one order.
#[derive(Clone, Debug, Default)]
pub struct Entry<'a> {
    pub channel: &'a str,
    pub direction: Option<&'a str>,
    pub contact: Option<&'a str>,
    pub summary: &'a str,
    /// When it happened (Unix ms); default now, by the device's aligned clock.
    pub at_ms: Option<u64>,
}

/// `2026-11-24 09:30` or `2026-11-24T09:30` (UTC), or Unix milliseconds.
pub fn parse_at(s: &str) -> Result<u64> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(ms);
    }
    let civil = || -> Option<u64> {
        let (date, clock) = s.split_once(['T', ' '])?;
        let mut d = date.split('-');
        let (y, m, day): (i32, u8, u8) = (
            d.next()?.parse().ok()?,
            d.next()?.parse().ok()?,
            d.next()?.parse().ok()?,
        );
        let (h, mi) = clock.trim().split_once(':')?;
        let date = time::Date::from_calendar_date(y, time::Month::try_from(m).ok()?, day).ok()?;
        let t = time::Time::from_hms(h.parse().ok()?, mi.parse().ok()?, 0).ok()?;
        let ns = time::PrimitiveDateTime::new(date, t)
            .assume_utc()
            .unix_timestamp_nanos();
        u64::try_from(ns / 1_000_000).ok()
    };
    civil().ok_or_else(|| {
        AgentError::Invalid(format!(
            "--at {s:?}: give the time as YYYY-MM-DD HH:MM (UTC); nothing was recorded"
        ))
    })
}

/// Record a call, email or visit about `order`, for the order's customer. Checked in full
/// before anything is stored, like every command.
pub fn log(store: &mut Store, order: &EntityId, e: &Entry<'_>) -> Result<Op> {
    if !CONTACT_CHANNELS.contains(&e.channel) {
        return Err(AgentError::Invalid(format!(
            "--channel is one of {}, not {:?}; nothing was recorded",
            CONTACT_CHANNELS.join(", "),
            e.channel
        )));
    }
    if let Some(d) = e.direction.filter(|d| !CONTACT_DIRECTIONS.contains(d)) {
        return Err(AgentError::Invalid(format!(
            "--direction is in or out, not {d:?}; nothing was recorded"
        )));
    }
    let summary = e.summary.trim();
    if summary.is_empty() {
        return Err(AgentError::Invalid(
            "--summary: say what was said; nothing was recorded".into(),
        ));
    }
    let customer = store
        .view(EntityKind::WorkOrder, order.as_str())?
        .and_then(|o| o.str("customer_id").map(str::to_owned))
        .ok_or_else(|| {
            AgentError::Invalid(format!(
                "work order {order} names no customer to log this against; nothing was recorded"
            ))
        })?;
    let id = crate::actions::new_id();
    store.record(EntityKind::ContactLog, &id, OpKind::Create, |_, hlc| {
        let mut f: BTreeMap<String, Value> = BTreeMap::from([
            ("order_id".to_owned(), json!(order)),
            ("customer_id".to_owned(), json!(customer)),
            ("channel".to_owned(), json!(e.channel)),
            ("summary".to_owned(), json!(summary)),
            // The event time of the op itself unless the engineer says otherwise: the
            // device's clock, aligned with the server's at the last sync.
            ("at".to_owned(), json!(e.at_ms.unwrap_or(hlc.millis()))),
        ]);
        if let Some(d) = e.direction {
            f.insert("direction".into(), json!(d));
        }
        if let Some(c) = e.contact.map(str::trim).filter(|c| !c.is_empty()) {
            f.insert("contact".into(), json!(c));
        }
        Ok(f)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_or_milliseconds() {
        assert_eq!(parse_at("2026-11-24 09:30").unwrap(), 1_795_512_600_000);
        assert_eq!(parse_at("2026-11-24T09:30").unwrap(), 1_795_512_600_000);
        assert_eq!(parse_at("1795512600000").unwrap(), 1_795_512_600_000);
        assert!(parse_at("yesterday").is_err());
    }
}
