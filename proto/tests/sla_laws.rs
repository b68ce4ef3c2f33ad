//! Laws of the SLA clock over random calendars, closures and pauses: a deadline is exactly
//! where the running time reaches the target, and waiting never brings it forward.

use fieldsync_proto::sla::calendar::{
    BusinessHours, Calendar, Closure, Date, LocalTime, MINUTE_MS,
};
use fieldsync_proto::sla::clock::{deadline, running_ms, Deadline, Pause};
use proptest::prelude::*;

const START_2026: u64 = 1_767_225_600_000;
const YEAR_MS: u64 = 365 * 24 * 60 * MINUTE_MS;

fn day_hours() -> impl Strategy<Value = Vec<(u16, u16)>> {
    prop_oneof![
        Just(vec![]),
        (0u16..1380, 1u16..600).prop_map(|(s, len)| vec![(s, (s + len).min(1440))]),
        (0u16..600, 1u16..300, 1u16..300, 1u16..400).prop_map(|(s, a, gap, b)| {
            let e1 = s + a;
            let s2 = e1 + gap;
            vec![(s, e1), (s2, (s2 + b).min(1440))]
        }),
    ]
}

fn calendar() -> impl Strategy<Value = Calendar> {
    let hours = (
        -720i32..=840,
        prop::array::uniform7(day_hours()),
        prop::collection::vec((0i64..400, 0u16..1440, 1u64..5000), 0..4),
    )
        .prop_map(|(utc_offset_min, week, closures)| {
            let closures = closures
                .into_iter()
                .map(|(day, minute, len)| {
                    let from_days = Date::new(2026, 1, 1).days_since_epoch() + day;
                    let to_min = i64::from(minute) + len as i64;
                    Closure {
                        from: LocalTime {
                            date: Date::from_days_since_epoch(from_days),
                            minute,
                        },
                        to: LocalTime {
                            date: Date::from_days_since_epoch(from_days + to_min / 1440),
                            minute: (to_min % 1440) as u16,
                        },
                    }
                })
                .collect();
            Calendar::Business(BusinessHours {
                utc_offset_min,
                week,
                closures,
            })
        });
    prop_oneof![1 => Just(Calendar::Always), 6 => hours]
}

fn pauses(start: u64) -> impl Strategy<Value = Vec<Pause>> {
    prop::collection::vec((0u64..20_000, 1u64..5_000, any::<bool>()), 0..3).prop_map(move |v| {
        v.into_iter()
            .map(|(from_min, len_min, open)| Pause {
                from: start + from_min * MINUTE_MS,
                to: (!open || len_min % 5 != 0).then_some(start + (from_min + len_min) * MINUTE_MS),
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn the_deadline_is_where_running_time_reaches_the_target(
        cal in calendar(),
        start in START_2026..START_2026 + YEAR_MS,
        target_min in 0u64..6_000,
        pauses in (START_2026..START_2026 + YEAR_MS).prop_flat_map(pauses),
    ) {
        prop_assume!(cal.validate().is_ok());
        let target = target_min * MINUTE_MS;
        match deadline(&cal, start, target, &pauses) {
            Deadline::At { ms } => {
                prop_assert_eq!(running_ms(&cal, start, ms, &pauses), target);
                if target > 0 {
                    prop_assert!(running_ms(&cal, start, ms - 1, &pauses) < target);
                }
            }
            Deadline::Paused { remaining_ms } => {
                prop_assert!(pauses.iter().any(|p| p.to.is_none()));
                prop_assert!(remaining_ms > 0 && remaining_ms <= target);
                let far = start + 4 * YEAR_MS;
                prop_assert_eq!(running_ms(&cal, start, far, &pauses), target - remaining_ms);
            }
            Deadline::Never => prop_assert!(target > 0),
        }
    }

    #[test]
    fn waiting_never_brings_a_deadline_forward(
        cal in calendar(),
        start in START_2026..START_2026 + YEAR_MS,
        target_min in 1u64..6_000,
        pauses in (START_2026..START_2026 + YEAR_MS).prop_flat_map(pauses),
    ) {
        prop_assume!(cal.validate().is_ok());
        let target = target_min * MINUTE_MS;
        let without = deadline(&cal, start, target, &[]);
        let with = deadline(&cal, start, target, &pauses);
        if let (Deadline::At { ms: a }, Deadline::At { ms: b }) = (without, with) {
            prop_assert!(b >= a);
        }
        if let Deadline::Never = without {
            let found = matches!(with, Deadline::At { .. });
            prop_assert!(!found, "no open time without pauses, yet a deadline with them");
        }
    }
}
