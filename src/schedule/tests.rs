use super::*;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

const NEW_YORK: Tz = chrono_tz::America::New_York;

#[test]
fn seoul_two_am_is_five_pm_utc_the_day_before() {
    let s = Schedule::new("full_refresh", DEFAULT_FULL_REFRESH, DEFAULT_TIMEZONE).unwrap();
    // 09:00 KST on 10 March.
    let next = s.next_after(utc(2025, 3, 10, 0, 0)).unwrap();
    assert_eq!(next, utc(2025, 3, 10, 17, 0));
    assert_eq!(
        next.with_timezone(&DEFAULT_TIMEZONE).to_rfc3339(),
        "2025-03-11T02:00:00+09:00"
    );
    // Exactly on a tick: the next one is a day later.
    assert_eq!(s.next_after(next).unwrap(), utc(2025, 3, 11, 17, 0));
}

#[test]
fn month_and_year_boundaries_in_seoul() {
    let s = Schedule::new("full_refresh", "0 2 1 * *", DEFAULT_TIMEZONE).unwrap();
    // 1 January 02:00 KST is 31 December 17:00 UTC of the year before.
    assert_eq!(
        s.next_after(utc(2024, 12, 15, 0, 0)).unwrap(),
        utc(2024, 12, 31, 17, 0)
    );
}

#[test]
fn every_five_minutes_crosses_midnight() {
    let s = Schedule::new("marts", DEFAULT_MARTS, DEFAULT_TIMEZONE).unwrap();
    // 23:58 KST -> 00:00 KST the next day (15:00 UTC).
    assert_eq!(
        s.next_after(utc(2025, 3, 10, 14, 58)).unwrap(),
        utc(2025, 3, 10, 15, 0)
    );
    assert_eq!(
        s.next_after(utc(2025, 3, 10, 15, 0)).unwrap(),
        utc(2025, 3, 10, 15, 5)
    );
}

#[test]
fn new_york_spring_forward_fires_when_the_gap_ends() {
    // 2025-03-09: 02:00 EST jumps to 03:00 EDT; 02:30 does not exist.
    let s = Schedule::new("full_refresh", "30 2 * * *", NEW_YORK).unwrap();
    let gap_day = s.next_after(utc(2025, 3, 8, 12, 0)).unwrap();
    assert_eq!(gap_day, utc(2025, 3, 9, 7, 0)); // 03:00 EDT
    assert_eq!(s.next_after(gap_day).unwrap(), utc(2025, 3, 10, 6, 30)); // 02:30 EDT

    let every5 = Schedule::new("marts", "*/5 * * * *", NEW_YORK).unwrap();
    // 01:55 EST -> 03:00 EDT, five real minutes later; the ticks of the gap fire once.
    assert_eq!(
        every5.next_after(utc(2025, 3, 9, 6, 55)).unwrap(),
        utc(2025, 3, 9, 7, 0)
    );
    assert_eq!(
        every5.next_after(utc(2025, 3, 9, 7, 0)).unwrap(),
        utc(2025, 3, 9, 7, 5)
    );
}

#[test]
fn new_york_fall_back_fires_a_repeated_time_once() {
    // 2025-11-02: 02:00 EDT falls back to 01:00 EST; 01:00-01:59 happens twice.
    let s = Schedule::new("full_refresh", "30 1 * * *", NEW_YORK).unwrap();
    let first = s.next_after(utc(2025, 11, 1, 12, 0)).unwrap();
    assert_eq!(first, utc(2025, 11, 2, 5, 30)); // 01:30 EDT
    assert_eq!(s.next_after(first).unwrap(), utc(2025, 11, 3, 6, 30)); // next day, 01:30 EST

    let every5 = Schedule::new("marts", "*/5 * * * *", NEW_YORK).unwrap();
    // 01:55 EDT -> 02:00 EST: the repeated hour is not run a second time.
    assert_eq!(
        every5.next_after(utc(2025, 11, 2, 5, 55)).unwrap(),
        utc(2025, 11, 2, 7, 0)
    );
    // Started inside the repeated hour: the next tick is still forward in time.
    assert_eq!(
        every5.next_after(utc(2025, 11, 2, 6, 10)).unwrap(),
        utc(2025, 11, 2, 7, 0)
    );
}

#[test]
fn last_at_or_before_finds_the_latest_missed_tick() {
    let s = Schedule::new("marts", DEFAULT_MARTS, DEFAULT_TIMEZONE).unwrap();
    let since = utc(2025, 1, 1, 0, 0);
    assert_eq!(
        s.last_at_or_before(since, utc(2025, 3, 1, 12, 7)),
        Some(utc(2025, 3, 1, 12, 5))
    );
    assert_eq!(s.last_at_or_before(since, utc(2025, 1, 1, 0, 4)), None);
    let monthly = Schedule::new("x", "0 0 1 1 *", chrono_tz::UTC).unwrap();
    assert_eq!(
        monthly.last_at_or_before(utc(2020, 6, 1, 0, 0), utc(2025, 6, 1, 0, 0)),
        Some(utc(2025, 1, 1, 0, 0))
    );
}

#[test]
fn invalid_crons_are_rejected() {
    for expr in [
        "",
        "0 2 * *",
        "61 * * * *",
        "0 25 * * *",
        "every day",
        "0 0 30 2 *",
    ] {
        let e = Schedule::new("x", expr, DEFAULT_TIMEZONE).expect_err(expr);
        assert!(
            matches!(e, ScheduleError::InvalidCron { .. }),
            "{expr}: {e}"
        );
        assert!(!e.is_retryable());
    }
    assert!(Schedule::new("x", "@daily", DEFAULT_TIMEZONE).is_ok());
    assert!(Schedule::new("x", "30 0 2 * * *", DEFAULT_TIMEZONE).is_ok());
}

#[test]
fn catch_up_policy_parses() {
    assert_eq!("once".parse::<CatchUp>(), Ok(CatchUp::Once));
    assert_eq!("skip".parse::<CatchUp>(), Ok(CatchUp::Skip));
    assert!("always".parse::<CatchUp>().is_err());
}

#[test]
fn the_scheduler_loop_can_run_on_a_spawned_task() {
    fn assert_send<T: Send>(_: T) {}
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(utc(2025, 1, 1, 0, 0)));
    let jobs = vec![(
        Job::Marts,
        Schedule::new("marts", DEFAULT_MARTS, DEFAULT_TIMEZONE).unwrap(),
    )];
    let (mut s, _) = Scheduler::start(jobs, CatchUp::Once, None, clock).unwrap();
    let (_tx, rx) = watch::channel(false);
    assert_send(s.run(|_job| async { Ok::<(), String>(()) }, |_run| {}, rx));
}
