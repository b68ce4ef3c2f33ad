//! The SLA engine: a contract's targets (priority × customer tier), counted in its
//! calendar's running time, paused while the order waits on the customer or on parts, and
//! stopped by the event time of what the engineer did on site.
//!
//! Three clocks per order, all from the moment the request was reported:
//! - *response*: until someone acts on it (the engineer sets off or arrives, by event time);
//! - *arrival*: until the engineer is on site;
//! - *resolution*: until the order is completed.
//!
//! Pure functions of their inputs: the agent shows the same clocks offline as the console.

pub mod billing;
pub mod calendar;
pub mod clock;
pub mod order;

use serde::{Deserialize, Serialize};

pub use calendar::{BusinessHours, Calendar, CalendarError, Closure, Date, LocalTime};
pub use clock::{evaluate, ClockState, ClockStatus, Deadline, Pause};

use crate::limits::CLOCK_SKEW_MS_MAX;

/// Targets for one priority and tier, in minutes of running time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targets {
    pub response_min: u32,
    pub arrival_min: u32,
    pub resolution_min: u32,
}

/// One cell of the matrix. `tier: "*"` matches any tier without a cell of its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaRule {
    pub priority: u8,
    pub tier: String,
    #[serde(flatten)]
    pub targets: Targets,
}

/// What a contract promises: when the clock runs and the targets per priority × tier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaTerms {
    pub calendar: Calendar,
    pub rules: Vec<SlaRule>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SlaError {
    #[error(transparent)]
    Calendar(#[from] CalendarError),
    #[error("priority {priority}, tier {tier:?} appears twice in the SLA matrix")]
    Duplicate { priority: u8, tier: String },
    #[error("priority must be 1 to 4, not {0}")]
    Priority(u8),
    #[error(
        "targets must grow: response <= arrival <= resolution (priority {priority}, tier {tier:?})"
    )]
    Order { priority: u8, tier: String },
}

impl SlaTerms {
    pub fn validate(&self) -> Result<(), SlaError> {
        self.calendar.validate()?;
        let mut seen = std::collections::BTreeSet::new();
        for r in &self.rules {
            if !(1..=4).contains(&r.priority) {
                return Err(SlaError::Priority(r.priority));
            }
            if !seen.insert((r.priority, r.tier.as_str())) {
                return Err(SlaError::Duplicate {
                    priority: r.priority,
                    tier: r.tier.clone(),
                });
            }
            let t = r.targets;
            if t.response_min > t.arrival_min || t.arrival_min > t.resolution_min {
                return Err(SlaError::Order {
                    priority: r.priority,
                    tier: r.tier.clone(),
                });
            }
        }
        Ok(())
    }

    /// The cell for `priority` and `tier`, else the priority's `*` cell.
    pub fn targets(&self, priority: u8, tier: &str) -> Option<Targets> {
        let cell = |t: &str| {
            self.rules
                .iter()
                .find(|r| r.priority == priority && r.tier == t)
                .map(|r| r.targets)
        };
        cell(tier).or_else(|| cell("*"))
    }
}

/// What happened to an order, by event time (ms): the hybrid-clock time the engineer's
/// device stamped, not when it reached the server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEvents {
    pub reported_at: u64,
    pub responded_at: Option<u64>,
    pub arrived_at: Option<u64>,
    pub resolved_at: Option<u64>,
    /// Waiting on the customer or on parts.
    pub pauses: Vec<Pause>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Escalation {
    None,
    /// A clock is at risk: the dispatcher is warned.
    Warning,
    /// A clock is breached: the service manager is told.
    Breach,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSla {
    pub targets: Targets,
    pub response: ClockStatus,
    pub arrival: ClockStatus,
    pub resolution: ClockStatus,
    pub escalation: Escalation,
}

/// The three clocks of an order with `priority` for a customer of `tier`, as of `now`.
/// `None` when the contract has no targets for them.
pub fn evaluate_order(
    terms: &SlaTerms,
    priority: u8,
    tier: &str,
    events: &OrderEvents,
    now: u64,
) -> Option<OrderSla> {
    let targets = terms.targets(priority, tier)?;
    let min = |m: u32| u64::from(m) * calendar::MINUTE_MS;
    let start = events.reported_at;
    // Whoever arrives has responded, whoever completes has arrived.
    let arrived = events.arrived_at.or(events.resolved_at);
    let responded = events.responded_at.or(arrived);
    let clock = |target: u32, stop: Option<u64>| {
        evaluate(
            &terms.calendar,
            start,
            min(target),
            stop,
            &events.pauses,
            now,
        )
    };
    let response = clock(targets.response_min, responded);
    let arrival = clock(targets.arrival_min, arrived);
    let resolution = clock(targets.resolution_min, events.resolved_at);
    let escalation = [&response, &arrival, &resolution]
        .iter()
        .map(|c| match c.state {
            s if s.is_breach() => Escalation::Breach,
            ClockState::AtRisk => Escalation::Warning,
            _ => Escalation::None,
        })
        .max()
        .unwrap_or(Escalation::None);
    Some(OrderSla {
        targets,
        response,
        arrival,
        resolution,
        escalation,
    })
}

/// The time an event happened, from the hybrid clock of the device that recorded it
/// (`stamped`), kept within what the server can vouch for: not before the request was
/// reported (a device clock hours behind is pulled up by the hybrid clock to the last
/// time it heard from the server, which is after the report), and not more than the skew
/// bound after the server received it (the server refuses ops further ahead).
pub fn event_time(stamped: u64, reported_at: u64, received_at: Option<u64>) -> u64 {
    let t = stamped.max(reported_at);
    match received_at {
        Some(r) => t.min(r.saturating_add(CLOCK_SKEW_MS_MAX)),
        None => t,
    }
}

#[cfg(test)]
mod tests;
