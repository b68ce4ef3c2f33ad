//! Hybrid logical clock (Kulkarni et al.), packed into one `u64`.
//!
//! The upper 48 bits hold wall-clock milliseconds since the Unix epoch, the lower 16 bits a
//! logical counter. Packing keeps comparisons a single integer compare and makes the wire
//! form a plain number. A counter overflow carries into the millisecond part, which keeps the
//! clock monotonic at the cost of running at most a few ms ahead under extreme bursts.

use serde::{Deserialize, Serialize};

const COUNTER_BITS: u32 = 16;

/// A hybrid logical timestamp. Ordered first by physical time, then by counter.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Hlc(pub u64);

impl Hlc {
    pub const ZERO: Hlc = Hlc(0);

    /// The timestamp for wall-clock millisecond `ms` with counter 0.
    pub fn from_millis(ms: u64) -> Hlc {
        Hlc(ms << COUNTER_BITS)
    }

    /// Wall-clock milliseconds since the Unix epoch that this timestamp stands for.
    pub fn millis(self) -> u64 {
        self.0 >> COUNTER_BITS
    }

    pub fn counter(self) -> u16 {
        (self.0 & ((1 << COUNTER_BITS) - 1)) as u16
    }
}

impl std::fmt::Display for Hlc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.millis(), self.counter())
    }
}

/// The device's wall clock moved onto the server's: `device_now_ms` minus the offset
/// (device minus server) measured at the last sync. A laptop whose clock is hours off
/// still stamps on-site events close to the real time, which the SLA clocks run on; the
/// error left is the clock's drift since that sync plus half a round trip.
pub fn aligned(device_now_ms: u64, offset_ms: i64) -> u64 {
    (device_now_ms as i64).saturating_sub(offset_ms).max(0) as u64
}

/// The per-device clock state machine. Wall-clock time is passed in, never read here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HlcClock {
    last: Hlc,
}

impl HlcClock {
    pub fn new(last: Hlc) -> Self {
        HlcClock { last }
    }

    pub fn last(&self) -> Hlc {
        self.last
    }

    /// Timestamp for a local event happening at wall-clock `now_ms`.
    pub fn tick(&mut self, now_ms: u64) -> Hlc {
        let next = Hlc::from_millis(now_ms).max(Hlc(self.last.0 + 1));
        self.last = next;
        next
    }

    /// Fold in a timestamp seen from another replica, so that every later local event
    /// orders after everything this device has observed.
    pub fn observe(&mut self, remote: Hlc, now_ms: u64) -> Hlc {
        let next = Hlc::from_millis(now_ms)
            .max(Hlc(self.last.0 + 1))
            .max(Hlc(remote.0.saturating_add(1)));
        self.last = next;
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_is_strictly_monotonic_even_when_wall_clock_goes_back() {
        let mut c = HlcClock::default();
        let a = c.tick(1_000);
        let b = c.tick(900);
        let d = c.tick(1_000);
        assert!(a < b && b < d);
        assert_eq!(a.millis(), 1_000);
        assert_eq!(b.millis(), 1_000);
        assert_eq!(b.counter(), 1);
    }

    #[test]
    fn observe_moves_past_remote() {
        let mut c = HlcClock::default();
        c.tick(1_000);
        let remote = Hlc::from_millis(5_000);
        let seen = c.observe(remote, 1_001);
        assert!(seen > remote);
        assert!(c.tick(1_002) > seen);
    }

    #[test]
    fn wall_clock_wins_when_ahead() {
        let mut c = HlcClock::new(Hlc::from_millis(10));
        assert_eq!(c.tick(20), Hlc::from_millis(20));
    }
}
