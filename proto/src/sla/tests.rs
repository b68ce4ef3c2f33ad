//! Table-driven SLA tests: business hours, holidays across midnight and weekends, pauses,
//! priority × tier, 24×7 contracts, and a device clock skewed by hours.

use super::billing::{billing, ContractCover, Included, Reason, WorkType};
use super::calendar::{BusinessHours, Calendar, Closure, Date, LocalTime, MINUTE_MS};
use super::clock::{deadline, evaluate, running_ms, ClockState, Deadline, Pause};
use super::{evaluate_order, event_time, Escalation, OrderEvents, SlaRule, SlaTerms, Targets};
use crate::hlc::{aligned, Hlc, HlcClock};
use crate::limits::CLOCK_SKEW_MS_MAX;

const SHANGHAI: i32 = 8 * 60;
const NEW_YORK: i32 = -5 * 60;
const HOUR: u64 = 60 * MINUTE_MS;

/// UTC ms of a local time at `offset` minutes from UTC.
fn at(offset: i32, y: i32, mo: u8, d: u8, h: u16, mi: u16) -> u64 {
    let local = Date::new(y, mo, d).days_since_epoch() * 86_400_000
        + i64::from(h * 60 + mi) * MINUTE_MS as i64;
    (local - i64::from(offset) * MINUTE_MS as i64) as u64
}

/// Shanghai local time in the week of Monday 2026-11-30.
fn sh(mo: u8, d: u8, h: u16, mi: u16) -> u64 {
    let y = if mo == 1 { 2027 } else { 2026 };
    at(SHANGHAI, y, mo, d, h, mi)
}

fn office() -> Calendar {
    Calendar::Business(BusinessHours::weekdays(SHANGHAI, (9, 0), (17, 0)))
}

fn office_closed(closures: Vec<Closure>) -> Calendar {
    let mut h = BusinessHours::weekdays(SHANGHAI, (9, 0), (17, 0));
    h.closures = closures;
    Calendar::Business(h)
}

/// Open 08:00 to 02:00 the next morning, every day.
fn late_service(closures: Vec<Closure>) -> Calendar {
    let day = vec![(0, 120), (480, 1440)];
    Calendar::Business(BusinessHours {
        utc_offset_min: SHANGHAI,
        week: std::array::from_fn(|_| day.clone()),
        closures,
    })
}

fn lt(y: i32, mo: u8, d: u8, h: u16, mi: u16) -> LocalTime {
    LocalTime::new(Date::new(y, mo, d), h, mi)
}

#[test]
fn deadlines_in_business_time() {
    let christmas = Closure {
        from: lt(2026, 12, 24, 18, 0),
        to: lt(2026, 12, 26, 8, 0),
    };
    let new_year = Closure {
        from: lt(2026, 12, 31, 18, 0),
        to: lt(2027, 1, 2, 0, 0),
    };
    let monday_off = Closure::days(Date::new(2026, 12, 7), Date::new(2026, 12, 7));
    let friday_off = Closure::days(Date::new(2026, 12, 4), Date::new(2026, 12, 4));
    let new_york = Calendar::Business(BusinessHours::weekdays(NEW_YORK, (8, 0), (18, 0)));
    #[rustfmt::skip]
    let table: Vec<(&str, Calendar, u64, u64, u64)> = vec![
        ("24x7 runs through the day", Calendar::Always, sh(11, 30, 10, 0), 240, sh(11, 30, 14, 0)),
        ("24x7 runs through the weekend", Calendar::Always, sh(12, 4, 22, 0), 240, sh(12, 5, 2, 0)),
        ("within one business day", office(), sh(11, 30, 10, 0), 240, sh(11, 30, 14, 0)),
        ("ending exactly at closing time", office(), sh(11, 30, 13, 0), 240, sh(11, 30, 17, 0)),
        ("carried over to the next morning", office(), sh(11, 30, 15, 0), 240, sh(12, 1, 11, 0)),
        ("reported at closing time", office(), sh(11, 30, 17, 0), 60, sh(12, 1, 10, 0)),
        ("reported in the evening", office(), sh(12, 1, 20, 0), 60, sh(12, 2, 10, 0)),
        ("reported before opening", office(), sh(12, 1, 6, 30), 30, sh(12, 1, 9, 30)),
        ("over the weekend", office(), sh(12, 4, 16, 0), 240, sh(12, 7, 12, 0)),
        ("reported on Saturday", office(), sh(12, 5, 10, 0), 120, sh(12, 7, 11, 0)),
        ("a Monday holiday after the weekend", office_closed(vec![monday_off]), sh(12, 4, 16, 0), 240, sh(12, 8, 12, 0)),
        ("a Friday holiday before the weekend", office_closed(vec![friday_off]), sh(12, 3, 16, 0), 120, sh(12, 7, 10, 0)),
        ("several business days", office(), sh(11, 30, 9, 0), 3 * 480, sh(12, 2, 17, 0)),
        ("past midnight in late service", late_service(vec![]), sh(12, 22, 23, 0), 240, sh(12, 23, 9, 0)),
        ("a holiday from evening to the morning two days later", late_service(vec![christmas]), sh(12, 24, 17, 0), 240, sh(12, 26, 11, 0)),
        ("a holiday that starts after closing", office_closed(vec![new_year]), sh(12, 31, 16, 0), 180, sh(1, 4, 11, 0)),
        ("west of UTC across the UTC date line", new_york, at(NEW_YORK, 2026, 11, 30, 17, 0), 120, at(NEW_YORK, 2026, 12, 1, 9, 0)),
    ];
    for (name, cal, start, minutes, want) in table {
        assert_eq!(cal.validate(), Ok(()), "{name}");
        let got = deadline(&cal, start, minutes * MINUTE_MS, &[]);
        assert_eq!(got, Deadline::At { ms: want }, "{name}");
        assert_eq!(
            running_ms(&cal, start, want, &[]),
            minutes * MINUTE_MS,
            "{name}: the clock ran exactly the target"
        );
    }
}

#[test]
fn pauses_stop_the_clock() {
    let p = |from: u64, to: Option<u64>| Pause { from, to };
    #[rustfmt::skip]
    let table: Vec<(&str, Vec<Pause>, u64, u64, Deadline)> = vec![
        ("waiting for the customer overnight", vec![p(sh(11, 30, 11, 0), Some(sh(12, 1, 10, 0)))],
            sh(11, 30, 10, 0), 240, Deadline::At { ms: sh(12, 1, 13, 0) }),
        ("a pause outside business hours changes nothing", vec![p(sh(12, 5, 10, 0), Some(sh(12, 6, 10, 0)))],
            sh(12, 4, 16, 0), 240, Deadline::At { ms: sh(12, 7, 12, 0) }),
        ("overlapping pauses count once", vec![p(sh(11, 30, 11, 0), Some(sh(11, 30, 12, 0))), p(sh(11, 30, 11, 30), Some(sh(11, 30, 13, 0)))],
            sh(11, 30, 10, 0), 240, Deadline::At { ms: sh(11, 30, 16, 0) }),
        ("still waiting for parts", vec![p(sh(11, 30, 11, 0), None)],
            sh(11, 30, 10, 0), 240, Deadline::Paused { remaining_ms: 3 * HOUR }),
        ("paused after the deadline", vec![p(sh(11, 30, 15, 0), None)],
            sh(11, 30, 10, 0), 240, Deadline::At { ms: sh(11, 30, 14, 0) }),
    ];
    for (name, pauses, start, minutes, want) in table {
        assert_eq!(
            deadline(&office(), start, minutes * MINUTE_MS, &pauses),
            want,
            "{name}"
        );
    }
}

fn matrix() -> SlaTerms {
    let rule = |priority: u8, tier: &str, r: u32, a: u32, s: u32| SlaRule {
        priority,
        tier: tier.into(),
        targets: Targets {
            response_min: r,
            arrival_min: a,
            resolution_min: s,
        },
    };
    SlaTerms {
        calendar: office(),
        rules: vec![
            rule(1, "gold", 60, 240, 480),
            rule(1, "silver", 120, 480, 960),
            rule(1, "*", 240, 960, 1920),
            rule(2, "gold", 120, 480, 960),
            rule(3, "*", 480, 1440, 4800),
        ],
    }
}

#[test]
fn priority_by_tier_picks_the_cell_then_the_default() {
    let m = matrix();
    assert_eq!(m.validate(), Ok(()));
    #[rustfmt::skip]
    let table: Vec<(u8, &str, Option<u32>)> = vec![
        (1, "gold", Some(60)),
        (1, "silver", Some(120)),
        (1, "standard", Some(240)),
        (2, "gold", Some(120)),
        (2, "silver", None),
        (3, "gold", Some(480)),
        (4, "gold", None),
    ];
    for (priority, tier, want) in table {
        assert_eq!(
            m.targets(priority, tier).map(|t| t.response_min),
            want,
            "P{priority} {tier}"
        );
    }
    let mut dup = matrix();
    dup.rules.push(dup.rules[0].clone());
    assert!(dup.validate().is_err());
    let mut backwards = matrix();
    backwards.rules[0].targets.arrival_min = 30;
    assert!(backwards.validate().is_err());
}

#[test]
fn order_clocks_states_and_escalation() {
    let m = matrix();
    let reported = sh(11, 30, 10, 0);
    let ev = |responded: Option<u64>,
              arrived: Option<u64>,
              resolved: Option<u64>,
              pauses: Vec<Pause>| OrderEvents {
        reported_at: reported,
        responded_at: responded,
        arrived_at: arrived,
        resolved_at: resolved,
        pauses,
    };
    use ClockState::*;
    #[rustfmt::skip]
    let table: Vec<(&str, OrderEvents, u64, [ClockState; 3], Escalation)> = vec![
        ("just reported", ev(None, None, None, vec![]), sh(11, 30, 10, 30), [Running, Running, Running], Escalation::None),
        ("response nearly due", ev(None, None, None, vec![]), sh(11, 30, 10, 50), [AtRisk, Running, Running], Escalation::Warning),
        ("nobody responded", ev(None, None, None, vec![]), sh(11, 30, 11, 30), [Breached, Running, Running], Escalation::Breach),
        ("the night adds nothing", ev(Some(sh(11, 30, 10, 20)), None, None, vec![]), sh(12, 1, 8, 0), [Met, Breached, AtRisk], Escalation::Breach),
        ("a business day later", ev(Some(sh(11, 30, 10, 20)), None, None, vec![]), sh(12, 1, 10, 1), [Met, Breached, Breached], Escalation::Breach),
        ("all met", ev(Some(sh(11, 30, 10, 40)), Some(sh(11, 30, 13, 0)), Some(sh(11, 30, 16, 0)), vec![]), sh(12, 3, 9, 0), [Met, Met, Met], Escalation::None),
        ("arriving meets the response", ev(None, Some(sh(11, 30, 10, 55)), None, vec![]), sh(11, 30, 12, 0), [Met, Met, Running], Escalation::None),
        ("arrived late", ev(Some(sh(11, 30, 10, 30)), Some(sh(11, 30, 14, 30)), None, vec![]), sh(11, 30, 15, 0), [Met, Missed, Running], Escalation::Breach),
        ("completed after hours on the deadline's day", ev(Some(sh(11, 30, 10, 10)), Some(sh(11, 30, 11, 0)), Some(sh(12, 1, 18, 0)), vec![]), sh(12, 2, 9, 0), [Met, Met, Missed], Escalation::Breach),
        ("waiting for parts", ev(Some(sh(11, 30, 10, 20)), Some(sh(11, 30, 11, 0)), None, vec![Pause { from: sh(11, 30, 12, 0), to: None }]), sh(12, 3, 9, 0), [Met, Met, Paused], Escalation::None),
        ("parts came, clock runs on", ev(Some(sh(11, 30, 10, 20)), Some(sh(11, 30, 11, 0)), None, vec![Pause { from: sh(11, 30, 12, 0), to: Some(sh(12, 3, 9, 0)) }]), sh(12, 3, 15, 0), [Met, Met, AtRisk], Escalation::Warning),
    ];
    for (name, events, now, want, escalation) in table {
        let sla = evaluate_order(&m, 1, "gold", &events, now).expect("gold P1 has targets");
        assert_eq!(
            [sla.response.state, sla.arrival.state, sla.resolution.state],
            want,
            "{name}"
        );
        assert_eq!(sla.escalation, escalation, "{name}");
    }
    assert_eq!(
        evaluate_order(&m, 4, "gold", &ev(None, None, None, vec![]), reported),
        None
    );
}

#[test]
fn a_clock_with_no_open_time_has_no_deadline() {
    let mut h = BusinessHours::weekdays(SHANGHAI, (9, 0), (17, 0));
    h.week = Default::default();
    let cal = Calendar::Business(h);
    assert_eq!(
        deadline(&cal, sh(11, 30, 10, 0), HOUR, &[]),
        Deadline::Never
    );
    let c = evaluate(&cal, sh(11, 30, 10, 0), HOUR, None, &[], sh(12, 30, 10, 0));
    assert_eq!(c.state, ClockState::Running);
    assert_eq!(c.used_ms, 0);
}

/// A laptop whose clock is hours off records the arrival offline; the SLA result is the
/// same as with a right clock, within the design's skew bound. The device learnt its
/// offset at its last sync (`hlc::aligned`); without that, a clock three hours slow would
/// have stamped the arrival at the last sync instead.
#[test]
fn a_device_clock_skewed_by_hours_does_not_move_the_result() {
    let m = matrix();
    let reported = sh(11, 30, 10, 0);
    let synced = sh(11, 30, 10, 5);
    let arrived = sh(11, 30, 13, 58);
    let uploaded = sh(11, 30, 17, 30);
    let round_trip_ms = 800;
    let truth = |t: u64| OrderEvents {
        reported_at: reported,
        responded_at: Some(sh(11, 30, 10, 30)),
        arrived_at: Some(t),
        ..Default::default()
    };
    let right = evaluate_order(&m, 1, "gold", &truth(arrived), uploaded).unwrap();
    assert_eq!(right.arrival.state, ClockState::Met);
    for skew_h in [-26i64, -6, -3, -1, 0, 2, 7, 25] {
        let skew = skew_h * HOUR as i64;
        let device = |real: u64| (real as i64 + skew) as u64;
        // The sync: the device hears the server's clock half a round trip late.
        // It learns its offset first and observes the server's clock on the aligned one.
        let mut clock = HlcClock::new(Hlc::ZERO);
        let server_time = synced;
        let offset = device(synced + round_trip_ms / 2) as i64 - server_time as i64;
        clock.observe(
            Hlc::from_millis(server_time),
            aligned(device(synced + round_trip_ms / 2), offset),
        );
        // Offline, on site.
        let stamp = clock.tick(aligned(device(arrived), offset));
        let at = event_time(stamp.millis(), reported, Some(uploaded));
        assert!(
            at.abs_diff(arrived) <= CLOCK_SKEW_MS_MAX,
            "skew {skew_h} h: {at} vs {arrived}"
        );
        let got = evaluate_order(&m, 1, "gold", &truth(at), uploaded).unwrap();
        assert_eq!(got.arrival.state, right.arrival.state, "skew {skew_h} h");
        assert_eq!(got.escalation, right.escalation, "skew {skew_h} h");

        // Unaligned, a slow clock falls back on the hybrid clock's floor: the last sync.
        let mut naive = HlcClock::new(Hlc::ZERO);
        naive.observe(Hlc::from_millis(server_time), device(synced));
        let stamp = naive.tick(device(arrived));
        if skew_h <= -3 {
            assert!(arrived - event_time(stamp.millis(), reported, Some(uploaded)) > HOUR);
        }
    }
}

/// Name, work, service time, warranty end, contract; labour, travel, parts.
type BillingCase = (
    &'static str,
    WorkType,
    u64,
    Option<u64>,
    Option<ContractCover>,
    [(bool, Reason); 3],
);

#[test]
fn warranty_contract_and_hours_decide_who_pays() {
    let contract = |included: Included, covers: bool| ContractCover {
        valid_from: sh(11, 1, 0, 0),
        valid_until: at(SHANGHAI, 2027, 11, 1, 0, 0),
        covers,
        included,
        calendar: office(),
    };
    let all = Included {
        labour: true,
        travel: true,
        parts: true,
        after_hours: false,
    };
    let no_parts = Included {
        parts: false,
        ..all
    };
    let day = sh(12, 1, 11, 0);
    let night = sh(12, 1, 22, 0);
    let warranty = Some(sh(12, 15, 0, 0));
    let expired = Some(sh(11, 15, 0, 0));
    #[rustfmt::skip]
    let table: Vec<BillingCase> = vec![
        ("repair under warranty", WorkType::Repair, day, warranty, None,
            [(false, Reason::Warranty), (false, Reason::Warranty), (false, Reason::Warranty)]),
        ("inspection is not a warranty matter", WorkType::Inspection, day, warranty, None,
            [(true, Reason::NotCovered), (true, Reason::NotCovered), (true, Reason::NotCovered)]),
        ("warranty expired, contract covers all", WorkType::Repair, day, expired, Some(contract(all, true)),
            [(false, Reason::Contract), (false, Reason::Contract), (false, Reason::Contract)]),
        ("contract without parts", WorkType::Repair, day, None, Some(contract(no_parts, true)),
            [(false, Reason::Contract), (false, Reason::Contract), (true, Reason::NotIncluded)]),
        ("night visit on a business-hours contract", WorkType::Repair, night, None, Some(contract(all, true)),
            [(true, Reason::AfterHours), (true, Reason::AfterHours), (false, Reason::Contract)]),
        ("night visit, after hours included", WorkType::Repair, night, None, Some(contract(Included { after_hours: true, ..all }, true)),
            [(false, Reason::Contract), (false, Reason::Contract), (false, Reason::Contract)]),
        ("contract not yet valid", WorkType::Repair, sh(10, 1, 11, 0), None, Some(contract(all, true)),
            [(true, Reason::NotCovered), (true, Reason::NotCovered), (true, Reason::NotCovered)]),
        ("asset not on the contract", WorkType::Repair, day, None, Some(contract(all, false)),
            [(true, Reason::NotCovered), (true, Reason::NotCovered), (true, Reason::NotCovered)]),
    ];
    for (name, work, when, warranty_end, cover, want) in table {
        let b = billing(work, when, warranty_end, cover.as_ref());
        let got = [b.labour, b.travel, b.parts].map(|c| (c.billable, c.reason));
        assert_eq!(got, want, "{name}");
    }
}
