//! UTC days, outcomes and the totals summed on read.

use crate::{DayEntry, KindTotals, Outcome, UtcDay};

#[test]
fn an_instant_falls_on_its_utc_day() {
    let day = |micros| UtcDay::of_micros(micros).to_string();
    assert_eq!(day(0), "1970-01-01");
    assert_eq!(day(-1), "1969-12-31");
    assert_eq!(day(86_400_000_000 - 1), "1970-01-01");
    assert_eq!(day(86_400_000_000), "1970-01-02");
    assert_eq!(day(1_772_409_599_999_999), "2026-03-01");
    assert_eq!(day(1_772_409_600_000_000), "2026-03-02");
    assert_eq!(UtcDay::of_micros(i64::MIN).ymd().0, -290_308);
}

#[test]
fn calendar_dates_and_days_convert_both_ways() {
    for days in (-800_000..800_000)
        .step_by(997)
        .chain([-1, 0, 1, 59, 60, 11_016, 11_017])
    {
        let day = UtcDay::from_days_since_epoch(days);
        let (year, month, date) = day.ymd();
        assert_eq!(UtcDay::from_ymd(year, month, date), Some(day), "{day}");
    }
    assert_eq!(
        UtcDay::from_ymd(2000, 2, 29).map(UtcDay::days_since_epoch),
        Some(11_016)
    );
    assert_eq!(UtcDay::from_ymd(2100, 2, 29), None, "2100 is no leap year");
    assert_eq!(UtcDay::from_ymd(2026, 13, 1), None);
    assert_eq!(UtcDay::from_ymd(2026, 4, 31), None);
}

#[test]
fn a_day_is_a_cql_date_counted_from_two_to_the_31_days_before_the_epoch() {
    assert_eq!(UtcDay::from_days_since_epoch(0).to_cql().0, 1 << 31);
    assert_eq!(UtcDay::from_days_since_epoch(-1).to_cql().0, (1 << 31) - 1);
    assert_eq!(UtcDay::from_days_since_epoch(20_513).to_cql().0, (1 << 31) + 20_513);
}

#[test]
fn totals_add_executions_and_reverts_per_kind() {
    let entry = |kind: &str, entry: &str, cents, automatic| DayEntry {
        kind: kind.into(),
        entry: entry.into(),
        amount_cents: Some(cents),
        automatic,
    };
    let totals = KindTotals::sum([
        entry("payout", "executed", 100, Some(true)),
        entry("payout", "executed", 250, Some(false)),
        entry("payout", "reverted", 100, None),
        entry("data_export", "executed", 0, Some(true)),
    ]);
    assert_eq!(
        totals,
        [
            KindTotals {
                kind: "data_export".into(),
                executed_count: 1,
                automatic_count: 1,
                ..KindTotals::default()
            },
            KindTotals {
                kind: "payout".into(),
                executed_count: 2,
                executed_cents: 350,
                automatic_count: 1,
                automatic_cents: 100,
                reverted_count: 1,
                reverted_cents: 100,
            },
        ]
    );
}

#[test]
fn outcomes_read_back_as_stored() {
    for outcome in Outcome::ALL {
        assert_eq!(Outcome::parse(outcome.as_str()), Some(outcome));
    }
    assert_eq!(Outcome::parse("approved"), None);
}
