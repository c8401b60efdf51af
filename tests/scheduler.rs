//! The scheduler against a manual clock: no test sleeps, every instant is exact.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use govflow::schedule::{
    CatchUp, Clock, DEFAULT_FULL_REFRESH, DEFAULT_MARTS, DEFAULT_TIMEZONE, Job, JobRun,
    ManualClock, Outcome, STATE_FILE, Schedule, ScheduleState, Scheduler, StartDecision,
};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn default_jobs() -> Vec<(Job, Schedule)> {
    vec![
        (
            Job::FullRefresh,
            Schedule::new("full_refresh", DEFAULT_FULL_REFRESH, DEFAULT_TIMEZONE).unwrap(),
        ),
        (
            Job::Marts,
            Schedule::new("marts", DEFAULT_MARTS, DEFAULT_TIMEZONE).unwrap(),
        ),
    ]
}

/// A runner that records what ran and advances the clock by each job's duration.
fn timed_runner(
    clock: Arc<ManualClock>,
    full_refresh: TimeDelta,
    marts: TimeDelta,
    in_flight: Arc<AtomicUsize>,
) -> impl FnMut(Job) -> futures::future::BoxFuture<'static, Result<(), String>> {
    move |job| {
        let clock = clock.clone();
        let in_flight = in_flight.clone();
        Box::pin(async move {
            assert_eq!(in_flight.fetch_add(1, Ordering::SeqCst), 0, "jobs overlap");
            clock.advance(match job {
                Job::FullRefresh => full_refresh,
                Job::Marts => marts,
            });
            in_flight.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        })
    }
}

#[tokio::test]
async fn seoul_ticks_cross_the_utc_day_boundary() {
    // 01:50 KST on 11 March = 16:50 UTC on 10 March.
    let clock = Arc::new(ManualClock::new(utc(2025, 3, 10, 16, 50)));
    let (mut s, decisions) =
        Scheduler::start(default_jobs(), CatchUp::Once, None, clock.clone()).expect("start");
    assert_eq!(
        decisions,
        vec![
            (Job::FullRefresh, StartDecision::Fresh),
            (Job::Marts, StartDecision::Fresh)
        ]
    );
    let mut runner = timed_runner(
        clock.clone(),
        TimeDelta::zero(),
        TimeDelta::zero(),
        Arc::default(),
    );
    assert_eq!(s.next_due(), Some((Job::Marts, utc(2025, 3, 10, 16, 55))));
    assert_eq!(
        s.run_due(&mut runner).await.unwrap(),
        None,
        "nothing due yet"
    );

    let mut runs: Vec<JobRun> = Vec::new();
    for minute in 51..=65 {
        clock.set(utc(2025, 3, 10, 16, 0) + TimeDelta::minutes(minute));
        while let Some(run) = s.run_due(&mut runner).await.unwrap() {
            runs.push(run);
        }
    }
    let ran: Vec<(Job, DateTime<Utc>)> = runs.iter().map(|r| (r.job, r.tick)).collect();
    assert_eq!(
        ran,
        vec![
            (Job::Marts, utc(2025, 3, 10, 16, 55)),
            // 02:00 KST on 11 March: both due, the full refresh first.
            (Job::FullRefresh, utc(2025, 3, 10, 17, 0)),
            (Job::Marts, utc(2025, 3, 10, 17, 0)),
            (Job::Marts, utc(2025, 3, 10, 17, 5)),
        ]
    );
    let kst = runs[1].tick.with_timezone(&DEFAULT_TIMEZONE);
    assert_eq!(kst.to_rfc3339(), "2025-03-11T02:00:00+09:00");
    // The next full refresh is 02:00 KST on 12 March.
    clock.set(utc(2025, 3, 10, 17, 6));
    assert_eq!(s.run_due(&mut runner).await.unwrap(), None);
    assert_eq!(s.next_due(), Some((Job::Marts, utc(2025, 3, 10, 17, 10))));
}

#[tokio::test]
async fn a_job_longer_than_its_interval_never_overlaps_and_coalesces_ticks() {
    let start = utc(2025, 3, 10, 0, 0);
    let clock = Arc::new(ManualClock::new(start - TimeDelta::seconds(1)));
    let (mut s, _) = Scheduler::start(default_jobs(), CatchUp::Once, None, clock.clone()).unwrap();
    let in_flight = Arc::new(AtomicUsize::new(0));
    // Marts take 12 minutes, longer than two 5-minute ticks.
    let mut runner = timed_runner(
        clock.clone(),
        TimeDelta::minutes(40),
        TimeDelta::minutes(12),
        in_flight,
    );
    clock.set(start);
    let mut runs = Vec::new();
    for _ in 0..5 {
        runs.push(s.run_next(&mut runner).await.unwrap());
    }
    let ticks: Vec<DateTime<Utc>> = runs.iter().map(|r| r.tick).collect();
    let at = |m| start + TimeDelta::minutes(m);
    // Each run satisfies every tick passed by its start: 00:05 and 00:10
    // passed during the first run and make one run, not two.
    assert_eq!(ticks, vec![at(0), at(10), at(20), at(35), at(45)]);
    let starts: Vec<DateTime<Utc>> = runs.iter().map(|r| r.started_at).collect();
    assert_eq!(starts, vec![at(0), at(12), at(24), at(36), at(48)]);
    for pair in runs.windows(2) {
        assert!(pair[1].started_at >= pair[0].finished_at, "{pair:?}");
    }
    assert_eq!(
        runs[1].started_at,
        at(12),
        "starts as soon as the last run ends"
    );
    assert!(
        runs.iter()
            .all(|r| r.job == Job::Marts && r.error.is_none())
    );
}

#[tokio::test]
async fn the_full_refresh_holds_back_marts_which_then_run_once() {
    // 02:00 KST on 11 March; the full refresh takes 23 minutes.
    let clock = Arc::new(ManualClock::new(utc(2025, 3, 10, 16, 59)));
    let (mut s, _) = Scheduler::start(default_jobs(), CatchUp::Once, None, clock.clone()).unwrap();
    let mut runner = timed_runner(
        clock.clone(),
        TimeDelta::minutes(23),
        TimeDelta::minutes(1),
        Arc::default(),
    );
    clock.set(utc(2025, 3, 10, 17, 0));
    let first = s.run_next(&mut runner).await.unwrap();
    assert_eq!(
        (first.job, first.tick),
        (Job::FullRefresh, utc(2025, 3, 10, 17, 0))
    );
    assert_eq!(first.finished_at, utc(2025, 3, 10, 17, 23));
    // Marts ticks 17:00 to 17:20 passed meanwhile: one run, at once, for 17:20.
    let second = s.run_next(&mut runner).await.unwrap();
    assert_eq!(
        (second.job, second.tick),
        (Job::Marts, utc(2025, 3, 10, 17, 20))
    );
    assert_eq!(second.started_at, utc(2025, 3, 10, 17, 23));
    assert_eq!(s.next_due(), Some((Job::Marts, utc(2025, 3, 10, 17, 25))));
}

#[tokio::test]
async fn the_run_loop_waits_for_a_running_job_before_the_next() {
    let start = utc(2025, 3, 10, 0, 1);
    let clock = Arc::new(ManualClock::new(start));
    let (mut s, _) = Scheduler::start(default_jobs(), CatchUp::Once, None, clock.clone()).unwrap();
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel::<Job>();
    let (release_tx, release_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let release_rx = Arc::new(tokio::sync::Mutex::new(release_rx));
    let (finished_tx, mut finished) = tokio::sync::mpsc::unbounded_channel::<JobRun>();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let runner = move |job: Job| {
        let started_tx = started_tx.clone();
        let release_rx = release_rx.clone();
        async move {
            let _ = started_tx.send(job);
            // The job runs until the test releases it.
            release_rx.lock().await.recv().await;
            Ok::<(), String>(())
        }
    };
    let task = tokio::spawn(async move {
        s.run(
            runner,
            move |run| {
                let _ = finished_tx.send(run.clone());
            },
            stop_rx,
        )
        .await;
        s
    });
    clock.set(utc(2025, 3, 10, 0, 5));
    assert_eq!(started.recv().await, Some(Job::Marts));
    // Three more ticks pass while it runs: nothing else starts.
    clock.set(utc(2025, 3, 10, 0, 21));
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert!(
        started.try_recv().is_err(),
        "a second job started during the first"
    );
    release_tx.send(()).unwrap();
    let first = finished.recv().await.unwrap();
    assert_eq!(first.tick, utc(2025, 3, 10, 0, 5));
    // The passed ticks make exactly one run, for the latest of them.
    assert_eq!(started.recv().await, Some(Job::Marts));
    release_tx.send(()).unwrap();
    let second = finished.recv().await.unwrap();
    assert_eq!(second.tick, utc(2025, 3, 10, 0, 20));
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert!(
        started.try_recv().is_err(),
        "the passed ticks ran more than once"
    );
    stop_tx.send(true).unwrap();
    let s = task.await.unwrap();
    assert_eq!(s.state().jobs["marts"].runs, 2);
}

fn seeded_state(dir: &std::path::Path, full_refresh: DateTime<Utc>, marts: DateTime<Utc>) {
    let json = serde_json::json!({
        "version": 1,
        "jobs": {
            "full_refresh": { "last_tick": full_refresh },
            "marts": { "last_tick": marts },
        }
    });
    std::fs::write(dir.join(STATE_FILE), json.to_string()).unwrap();
}

#[tokio::test]
async fn downtime_catches_up_once_not_once_per_missed_tick() {
    let dir = tempfile::tempdir().unwrap();
    // Last runs: 02:00 KST 2 March and 11:00 KST 2 March; down until 14:02 KST 4 March.
    seeded_state(dir.path(), utc(2025, 3, 1, 17, 0), utc(2025, 3, 2, 2, 0));
    let clock = Arc::new(ManualClock::new(utc(2025, 3, 4, 5, 2)));
    let (mut s, decisions) = Scheduler::start(
        default_jobs(),
        CatchUp::Once,
        Some(dir.path().join(STATE_FILE)),
        clock.clone(),
    )
    .unwrap();
    assert_eq!(
        decisions,
        vec![
            (
                Job::FullRefresh,
                StartDecision::CatchUp {
                    first_missed: utc(2025, 3, 2, 17, 0),
                    last_missed: utc(2025, 3, 3, 17, 0)
                }
            ),
            (
                Job::Marts,
                StartDecision::CatchUp {
                    first_missed: utc(2025, 3, 2, 2, 5),
                    last_missed: utc(2025, 3, 4, 5, 0)
                }
            ),
        ]
    );
    let mut runner = timed_runner(
        clock.clone(),
        TimeDelta::minutes(1),
        TimeDelta::zero(),
        Arc::default(),
    );
    let mut runs = Vec::new();
    while let Some(run) = s.run_due(&mut runner).await.unwrap() {
        runs.push(run);
    }
    let ran: Vec<(Job, DateTime<Utc>, bool)> =
        runs.iter().map(|r| (r.job, r.tick, r.catch_up)).collect();
    // One run each, oldest missed tick first (marts missed 02:05 UTC on 2 March).
    assert_eq!(
        ran,
        vec![
            (Job::Marts, utc(2025, 3, 4, 5, 0), true),
            (Job::FullRefresh, utc(2025, 3, 3, 17, 0), true),
        ]
    );
    // Persisted: a restart now finds both up to date.
    let (_, decisions) = Scheduler::start(
        default_jobs(),
        CatchUp::Once,
        Some(dir.path().join(STATE_FILE)),
        clock.clone(),
    )
    .unwrap();
    assert!(
        decisions.iter().all(|(_, d)| *d == StartDecision::UpToDate),
        "{decisions:?}"
    );
    let saved = ScheduleState::load(&dir.path().join(STATE_FILE)).unwrap();
    assert_eq!(saved.jobs["full_refresh"].runs, 1);
    assert_eq!(
        saved.jobs["full_refresh"].last_outcome,
        Some(Outcome::Succeeded)
    );
    assert_eq!(saved.jobs["marts"].last_tick, utc(2025, 3, 4, 5, 0));
}

#[tokio::test]
async fn skip_policy_waits_for_the_next_tick() {
    let dir = tempfile::tempdir().unwrap();
    seeded_state(dir.path(), utc(2025, 3, 1, 17, 0), utc(2025, 3, 2, 2, 0));
    let clock = Arc::new(ManualClock::new(utc(2025, 3, 4, 5, 2)));
    let path = dir.path().join(STATE_FILE);
    let (mut s, decisions) = Scheduler::start(
        default_jobs(),
        CatchUp::Skip,
        Some(path.clone()),
        clock.clone(),
    )
    .unwrap();
    assert!(
        matches!(decisions[0].1, StartDecision::Skipped { .. }),
        "{decisions:?}"
    );
    let mut runner = timed_runner(
        clock.clone(),
        TimeDelta::zero(),
        TimeDelta::zero(),
        Arc::default(),
    );
    assert_eq!(s.run_due(&mut runner).await.unwrap(), None);
    assert_eq!(s.next_due(), Some((Job::Marts, utc(2025, 3, 4, 5, 5))));
    // Skipping is recorded: a restart before the next tick has nothing to catch up.
    let (_, decisions) =
        Scheduler::start(default_jobs(), CatchUp::Once, Some(path), clock.clone()).unwrap();
    assert!(
        decisions.iter().all(|(_, d)| *d == StartDecision::UpToDate),
        "{decisions:?}"
    );
}

#[tokio::test]
async fn a_failed_job_is_recorded_and_waits_for_its_next_tick() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STATE_FILE);
    let clock = Arc::new(ManualClock::new(utc(2025, 3, 10, 16, 59)));
    let jobs = vec![default_jobs().remove(0)];
    let (mut s, _) =
        Scheduler::start(jobs, CatchUp::Once, Some(path.clone()), clock.clone()).unwrap();
    let mut failing = |_job: Job| async { Err::<(), _>("dbt build --full-refresh: exit status 1") };
    clock.set(utc(2025, 3, 10, 17, 0));
    let run = s.run_next(&mut failing).await.unwrap();
    assert_eq!(
        run.error.as_deref(),
        Some("dbt build --full-refresh: exit status 1")
    );
    assert_eq!(
        s.next_due(),
        Some((Job::FullRefresh, utc(2025, 3, 11, 17, 0)))
    );
    let saved = ScheduleState::load(&path).unwrap();
    let fr = &saved.jobs["full_refresh"];
    assert_eq!(
        (fr.runs, fr.failures, fr.last_outcome),
        (1, 1, Some(Outcome::Failed))
    );
    assert_eq!(
        fr.last_error.as_deref(),
        Some("dbt build --full-refresh: exit status 1")
    );
}

#[tokio::test]
async fn a_disabled_job_keeps_its_state_and_never_runs() {
    let dir = tempfile::tempdir().unwrap();
    seeded_state(dir.path(), utc(2025, 3, 1, 17, 0), utc(2025, 3, 2, 2, 0));
    let path = dir.path().join(STATE_FILE);
    let clock = Arc::new(ManualClock::new(utc(2025, 3, 4, 5, 2)));
    let marts_only = vec![default_jobs().remove(1)];
    let (mut s, _) =
        Scheduler::start(marts_only, CatchUp::Once, Some(path.clone()), clock.clone()).unwrap();
    let mut runner = timed_runner(
        clock.clone(),
        TimeDelta::zero(),
        TimeDelta::zero(),
        Arc::default(),
    );
    let run = s.run_due(&mut runner).await.unwrap().unwrap();
    assert_eq!(run.job, Job::Marts);
    assert_eq!(s.run_due(&mut runner).await.unwrap(), None);
    let saved = ScheduleState::load(&path).unwrap();
    assert_eq!(saved.jobs["full_refresh"].last_tick, utc(2025, 3, 1, 17, 0));
    assert_eq!(clock.now(), utc(2025, 3, 4, 5, 2));
}

#[test]
fn a_corrupt_state_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STATE_FILE);
    std::fs::write(&path, "{not json").unwrap();
    let clock = Arc::new(ManualClock::new(utc(2025, 3, 4, 5, 2)));
    let e = Scheduler::start(default_jobs(), CatchUp::Once, Some(path), clock).unwrap_err();
    assert!(e.to_string().contains(STATE_FILE), "{e}");
}
