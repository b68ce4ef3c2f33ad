//! One SLA clock: how much of its target a contract's calendar and the order's waiting
//! periods have used, its deadline, and whether it is met, at risk or breached.

use serde::{Deserialize, Serialize};

use super::calendar::{merge, subtract, Calendar, DAY_MS};

/// How far ahead a deadline is searched for. A calendar with no open time in this span
/// (all closures) has no deadline rather than an endless search.
pub const DEADLINE_SEARCH_DAYS_MAX: u64 = 3 * 366;
/// Days of calendar expanded per step of the search.
const SEARCH_STEP_DAYS: u64 = 31;
/// Share of the target used, in percent, from which a running clock is at risk.
pub const NEAR_BREACH_PERCENT: u64 = 80;

/// A period the clock stood still (waiting for the customer, for parts). `to: None`
/// means it still stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    pub from: u64,
    pub to: Option<u64>,
}

/// Pauses as sorted, merged `[from, to)` holes; an open pause runs to the end of time.
fn holes(pauses: &[Pause]) -> Vec<(i64, i64)> {
    let mut v: Vec<(i64, i64)> = pauses
        .iter()
        .map(|p| (p.from as i64, p.to.map_or(i64::MAX, |t| t as i64)))
        .filter(|(a, b)| a < b)
        .collect();
    v.sort_unstable();
    merge(v)
}

/// Periods within `[from, to)` when the clock runs: open by the calendar and not paused.
fn running(cal: &Calendar, from: u64, to: u64, pauses: &[(i64, i64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for (a, b) in cal.open_between(from, to) {
        let mut parts = Vec::new();
        subtract(a as i64, b as i64, pauses, &mut parts);
        out.extend(parts.into_iter().map(|(a, b)| (a as u64, b as u64)));
    }
    out
}

/// Running time (ms) of the clock within `[from, to)`.
pub fn running_ms(cal: &Calendar, from: u64, to: u64, pauses: &[Pause]) -> u64 {
    running(cal, from, to, &holes(pauses))
        .iter()
        .map(|(a, b)| b - a)
        .sum()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Deadline {
    At {
        ms: u64,
    },
    /// The clock stands in a pause with this much of the target left.
    Paused {
        remaining_ms: u64,
    },
    /// The calendar has no open time for the target within the search span.
    Never,
}

/// When `target_ms` of running time after `start` is used up.
pub fn deadline(cal: &Calendar, start: u64, target_ms: u64, pauses: &[Pause]) -> Deadline {
    // Nothing to use up: due at once, whatever the calendar or a pause says. (Found by
    // `sla_laws`: an open pause made it `Paused` with nothing remaining.)
    if target_ms == 0 {
        return Deadline::At { ms: start };
    }
    let holes = holes(pauses);
    let mut left = target_ms;
    let mut from = start;
    let end = start.saturating_add(DEADLINE_SEARCH_DAYS_MAX * DAY_MS);
    while from < end {
        let to = from.saturating_add(SEARCH_STEP_DAYS * DAY_MS).min(end);
        for (a, b) in running(cal, from, to, &holes) {
            if b - a >= left {
                return Deadline::At { ms: a + left };
            }
            left -= b - a;
        }
        // Nothing runs after an open pause: the deadline waits for it to end.
        if holes
            .last()
            .is_some_and(|h| h.1 == i64::MAX && (h.0 as u64) < to)
        {
            return Deadline::Paused { remaining_ms: left };
        }
        from = to;
    }
    Deadline::Never
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockState {
    /// Running with time to spare.
    Running,
    /// Running with at least [`NEAR_BREACH_PERCENT`] of the target used.
    AtRisk,
    /// Standing in a pause, not yet breached.
    Paused,
    /// Past its deadline and not stopped.
    Breached,
    /// Stopped in time.
    Met,
    /// Stopped after its deadline.
    Missed,
}

impl ClockState {
    pub fn is_breach(self) -> bool {
        matches!(self, ClockState::Breached | ClockState::Missed)
    }
}

/// One clock of an order, as of `now`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockStatus {
    pub state: ClockState,
    pub target_ms: u64,
    /// Running time used so far (until the clock stopped, if it did).
    pub used_ms: u64,
    pub deadline: Deadline,
    /// When the clock stopped (the event that meets it), by event time.
    pub stopped_at: Option<u64>,
}

/// The clock that starts at `start`, stops at `stopped_at` (the event time of the arrival,
/// the completion, …) and has `target_ms` of running time, seen at `now`.
pub fn evaluate(
    cal: &Calendar,
    start: u64,
    target_ms: u64,
    stopped_at: Option<u64>,
    pauses: &[Pause],
    now: u64,
) -> ClockStatus {
    let until = stopped_at.unwrap_or(now).max(start);
    let used_ms = running_ms(cal, start, until, pauses);
    let deadline = deadline(cal, start, target_ms, pauses);
    let late = used_ms > target_ms
        || matches!(deadline, Deadline::At { ms } if until > ms && used_ms >= target_ms);
    let state = match stopped_at {
        Some(_) if late => ClockState::Missed,
        Some(_) => ClockState::Met,
        None if late => ClockState::Breached,
        None if matches!(deadline, Deadline::Paused { .. })
            && pauses.iter().any(|p| p.to.is_none() && p.from <= now) =>
        {
            ClockState::Paused
        }
        None if used_ms * 100 >= target_ms * NEAR_BREACH_PERCENT => ClockState::AtRisk,
        None => ClockState::Running,
    };
    ClockStatus {
        state,
        target_ms,
        used_ms,
        deadline,
        stopped_at,
    }
}
