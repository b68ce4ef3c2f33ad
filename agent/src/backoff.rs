//! Capped exponential backoff with jitter for the daemon's retries. Jitter spreads a fleet
//! of agents that lost the server at the same moment, so they do not return in lockstep.

/// Delay before retry number `attempt` (1 for the first retry): `base * 2^(attempt-1)`,
/// capped at `max`, then scaled into `[delay/2, delay]` by `jitter` in `[0, 1)`.
pub fn retry_delay_ms(attempt: u32, base: u64, max: u64, jitter: f64) -> u64 {
    let doublings = attempt.saturating_sub(1).min(40);
    let delay = base.saturating_mul(1u64 << doublings).min(max);
    let half = delay / 2;
    half + ((delay - half) as f64 * jitter.clamp(0.0, 1.0)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_caps_and_stays_within_jitter_bounds() {
        assert_eq!(retry_delay_ms(1, 1000, 60_000, 1.0), 1000);
        assert_eq!(retry_delay_ms(1, 1000, 60_000, 0.0), 500);
        assert_eq!(retry_delay_ms(3, 1000, 60_000, 1.0), 4000);
        assert_eq!(retry_delay_ms(30, 1000, 60_000, 1.0), 60_000, "capped");
        assert_eq!(
            retry_delay_ms(u32::MAX, 1000, 60_000, 0.0),
            30_000,
            "no overflow"
        );
        for attempt in 1..50 {
            for j in [0.0, 0.3, 0.99] {
                let d = retry_delay_ms(attempt, 250, 10_000, j);
                assert!(
                    (125..=10_000).contains(&d),
                    "attempt {attempt} jitter {j}: {d}"
                );
            }
        }
    }
}
