//! The scheduler: cron expressions evaluated in a time zone (default
//! `Asia/Seoul`) trigger the periodic jobs of `govflow run`, one at a time.
//!
//! - [`Schedule`]: a cron expression in a zone; [`Schedule::next_after`] gives
//!   the next tick as a UTC instant.
//! - [`Scheduler`]: given each job's last satisfied tick (persisted as JSON in
//!   the state dir), runs due jobs through a runner the runtime supplies.
//!
//! Rules (see `docs/scheduling-and-alerts.md`):
//! - **No overlap.** At most one job runs at a time. Ticks that pass while a
//!   job runs (its own or another job's) are coalesced: each job then runs
//!   once, however many of its ticks passed.
//! - **Catch-up.** At start, a job whose tick passed while the process was
//!   down runs once ([`CatchUp::Once`], the default) or waits for its next
//!   tick ([`CatchUp::Skip`]). A job without recorded state starts from now:
//!   a first start never counts as downtime.
//! - **Failures** do not retry before the next tick; the runner's error is
//!   recorded and handed back to the caller (which alerts).
//! - **Daylight saving** (zones that have it): a wall time skipped by a
//!   spring-forward fires at the first instant after the gap; a wall time
//!   repeated by a fall-back fires once, at its first occurrence (so an
//!   every-5-minutes job pauses during the repeated hour).

pub mod config;
pub use config::ScheduleConfig;

mod clock;
mod state;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use tokio::sync::watch;

pub use self::clock::{Clock, ManualClock, SystemClock};
pub use self::state::{JobState, Outcome, ScheduleState};

/// Default zone of the schedules.
pub const DEFAULT_TIMEZONE: Tz = chrono_tz::Asia::Seoul;
/// Default cron of the full refresh: every day at 02:00.
pub const DEFAULT_FULL_REFRESH: &str = "0 2 * * *";
/// Default cron of the mart builds: every 5 minutes.
pub const DEFAULT_MARTS: &str = "*/5 * * * *";
/// File name of the scheduler state in the state dir.
pub const STATE_FILE: &str = "schedule.json";

/// The periodic jobs of `govflow run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Job {
    /// Full refresh of every source (deletes reconciled), then `dbt build --full-refresh`.
    FullRefresh,
    /// `dbt build` of the marts.
    Marts,
}

impl Job {
    /// Every job, in priority order (a tie between due jobs goes to the first).
    pub const ALL: [Job; 2] = [Job::FullRefresh, Job::Marts];

    /// The job's name in config, state and logs (`full_refresh`, `marts`).
    pub fn name(self) -> &'static str {
        match self {
            Job::FullRefresh => "full_refresh",
            Job::Marts => "marts",
        }
    }
}

impl std::fmt::Display for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What to do at start with ticks that passed while the process was down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CatchUp {
    /// Run each such job once at start, however many ticks it missed.
    #[default]
    Once,
    /// Skip the missed ticks; wait for the next one.
    Skip,
}

impl std::str::FromStr for CatchUp {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "once" => Ok(CatchUp::Once),
            "skip" => Ok(CatchUp::Skip),
            other => Err(format!(
                "unknown catch-up policy {other:?}: expected \"once\" or \"skip\""
            )),
        }
    }
}

/// A failure of the scheduler itself (never of a job: see [`JobRun`]).
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// A cron expression that does not parse or never fires.
    #[error("invalid cron expression {expr:?}: {problem}")]
    InvalidCron {
        /// The expression.
        expr: String,
        /// What is wrong.
        problem: String,
    },
    /// The state file cannot be read, parsed or written.
    #[error("scheduler state {path}: {detail}")]
    State {
        /// The state file.
        path: String,
        /// What went wrong.
        detail: String,
    },
}

impl ScheduleError {
    /// Whether trying again may succeed (a state file write may; a bad cron never does).
    pub fn is_retryable(&self) -> bool {
        matches!(self, ScheduleError::State { .. })
    }
}

/// A cron expression evaluated in a time zone.
#[derive(Clone, Debug)]
pub struct Schedule {
    name: String,
    expr: String,
    cron: Cron,
    tz: Tz,
}

impl Schedule {
    /// Parses `expr` (5 fields `min hour dom month dow`, an optional leading
    /// seconds field, or `@daily`-style nicknames) in zone `tz`. Fails when it
    /// does not parse or never fires.
    pub fn new(name: impl Into<String>, expr: &str, tz: Tz) -> Result<Schedule, ScheduleError> {
        let invalid = |problem: String| ScheduleError::InvalidCron {
            expr: expr.to_string(),
            problem,
        };
        let cron = Cron::new(expr.trim())
            .with_seconds_optional()
            .parse()
            .map_err(|e| invalid(e.to_string()))?;
        let schedule = Schedule {
            name: name.into(),
            expr: expr.trim().to_string(),
            cron,
            tz,
        };
        // A pattern such as `0 0 30 2 *` parses but never fires.
        let probe = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).single();
        if probe.and_then(|t| schedule.next_after(t)).is_none() {
            return Err(invalid("never fires".into()));
        }
        Ok(schedule)
    }

    /// The schedule's name (the job's, in logs).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cron expression as written.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The zone the expression is evaluated in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The first tick strictly after `t`, or `None` if there is none (before the year 5000).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut wall = t.with_timezone(&self.tz).naive_local();
        // Bounded: each round moves the wall time forward; only a wall time in a
        // fall-back's repeated hour whose first occurrence is already past loops.
        for _ in 0..10_000 {
            wall = self.next_wall_after(wall)?;
            match self.tz.from_local_datetime(&wall) {
                LocalResult::Single(at) => return Some(at.with_timezone(&Utc)),
                // Repeated by a fall-back: fires at its first occurrence only.
                LocalResult::Ambiguous(first, _) => {
                    let first = first.with_timezone(&Utc);
                    if first > t {
                        return Some(first);
                    }
                }
                // Skipped by a spring-forward: fires when the gap ends.
                LocalResult::None => {
                    let end = self.gap_end(wall)?;
                    if end > t {
                        return Some(end);
                    }
                }
            }
        }
        None
    }

    /// The last tick at or before `t` that is after `since`, if any.
    pub fn last_at_or_before(
        &self,
        since: DateTime<Utc>,
        t: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let first = self.next_after(since).filter(|n| *n <= t)?;
        // Probe windows of growing width before `t`, so a long downtime of a
        // frequent job does not walk every missed tick since `since`.
        for window in [
            TimeDelta::minutes(2),
            TimeDelta::hours(2),
            TimeDelta::days(2),
            TimeDelta::days(64),
            TimeDelta::days(800),
        ] {
            let from = (t - window).max(since);
            if let Some(mut last) = self.next_after(from).filter(|n| *n <= t) {
                while let Some(n) = self.next_after(last).filter(|n| *n <= t) {
                    last = n;
                }
                return Some(last);
            }
        }
        let mut last = first;
        while let Some(n) = self.next_after(last).filter(|n| *n <= t) {
            last = n;
        }
        Some(last)
    }

    /// The next wall time strictly after `wall` that matches the expression,
    /// computed on naive wall times (treated as UTC, which has no transitions).
    fn next_wall_after(&self, wall: NaiveDateTime) -> Option<NaiveDateTime> {
        self.cron
            .find_next_occurrence(&Utc.from_utc_datetime(&wall), false)
            .ok()
            .map(|t| t.naive_utc())
    }

    /// The first instant after a spring-forward gap that contains `wall`.
    fn gap_end(&self, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
        // Gaps are at most a few hours; walk forward a minute at a time.
        let mut probe = wall;
        for _ in 0..(24 * 60) {
            probe += TimeDelta::minutes(1);
            let whole_minute = probe.date().and_hms_opt(
                chrono::Timelike::hour(&probe),
                chrono::Timelike::minute(&probe),
                0,
            )?;
            match self.tz.from_local_datetime(&whole_minute) {
                LocalResult::Single(at) => return Some(at.with_timezone(&Utc)),
                LocalResult::Ambiguous(first, _) => return Some(first.with_timezone(&Utc)),
                LocalResult::None => {}
            }
        }
        None
    }
}

/// One execution of a job, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRun {
    /// The job.
    pub job: Job,
    /// The tick the run satisfies (the latest one that had passed when it started).
    pub tick: DateTime<Utc>,
    /// Whether the run catches up ticks missed while the process was down.
    pub catch_up: bool,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: DateTime<Utc>,
    /// The runner's error, if it failed.
    pub error: Option<String>,
}

struct Entry {
    job: Job,
    schedule: Schedule,
    /// The latest tick already satisfied (run, skipped, or the start baseline).
    last_tick: DateTime<Utc>,
    /// A tick passed while the process was down and `CatchUp::Once` applies.
    catching_up: bool,
}

/// What [`Scheduler::start`] decided for one job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartDecision {
    /// No state recorded: the job's first tick is the next one after now.
    Fresh,
    /// No tick passed while the process was down.
    UpToDate,
    /// Ticks passed while the process was down; the job runs once at start.
    CatchUp {
        /// The first missed tick.
        first_missed: DateTime<Utc>,
        /// The last missed tick.
        last_missed: DateTime<Utc>,
    },
    /// Ticks passed while the process was down and were skipped.
    Skipped {
        /// The first missed tick.
        first_missed: DateTime<Utc>,
        /// The last missed tick.
        last_missed: DateTime<Utc>,
    },
}

/// Runs the periodic jobs, one at a time, and records each run.
pub struct Scheduler {
    entries: Vec<Entry>,
    clock: Arc<dyn Clock>,
    state_path: Option<PathBuf>,
    state: ScheduleState,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("state_path", &self.state_path)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// Loads the state (from `state_path`, if given; a missing file is a fresh
    /// start), applies the catch-up policy for ticks missed while the process
    /// was down, and saves the state. Jobs are `(job, schedule)` pairs; a job
    /// left out (disabled) keeps its recorded state untouched.
    pub fn start(
        jobs: Vec<(Job, Schedule)>,
        catch_up: CatchUp,
        state_path: Option<PathBuf>,
        clock: Arc<dyn Clock>,
    ) -> Result<(Scheduler, Vec<(Job, StartDecision)>), ScheduleError> {
        let state = match &state_path {
            Some(path) => ScheduleState::load(path)?,
            None => ScheduleState::default(),
        };
        let now = clock.now();
        let mut entries = Vec::new();
        let mut decisions = Vec::new();
        for (job, schedule) in jobs {
            let recorded = state.jobs.get(job.name()).map(|s| s.last_tick);
            let (last_tick, catching_up, decision) = match recorded {
                None => (now, false, StartDecision::Fresh),
                Some(last) => match schedule.next_after(last).filter(|n| *n <= now) {
                    None => (last, false, StartDecision::UpToDate),
                    Some(first_missed) => {
                        let last_missed = schedule
                            .last_at_or_before(last, now)
                            .unwrap_or(first_missed);
                        match catch_up {
                            CatchUp::Once => (
                                last,
                                true,
                                StartDecision::CatchUp {
                                    first_missed,
                                    last_missed,
                                },
                            ),
                            CatchUp::Skip => (
                                last_missed,
                                false,
                                StartDecision::Skipped {
                                    first_missed,
                                    last_missed,
                                },
                            ),
                        }
                    }
                },
            };
            match &decision {
                StartDecision::CatchUp {
                    first_missed,
                    last_missed,
                } => tracing::info!(
                    job = job.name(),
                    %first_missed,
                    %last_missed,
                    "ticks missed while down; running once now"
                ),
                StartDecision::Skipped {
                    first_missed,
                    last_missed,
                } => tracing::info!(
                    job = job.name(),
                    %first_missed,
                    %last_missed,
                    "ticks missed while down; skipped (catch_up = \"skip\")"
                ),
                _ => {}
            }
            decisions.push((job, decision));
            entries.push(Entry {
                job,
                schedule,
                last_tick,
                catching_up,
            });
        }
        entries.sort_by_key(|e| e.job);
        let mut scheduler = Scheduler {
            entries,
            clock,
            state_path,
            state,
        };
        for i in 0..scheduler.entries.len() {
            let (name, last_tick) = (
                scheduler.entries[i].job.name(),
                scheduler.entries[i].last_tick,
            );
            scheduler
                .state
                .jobs
                .entry(name.to_string())
                .or_insert_with(|| JobState::new(last_tick))
                .last_tick = last_tick;
        }
        scheduler.save()?;
        Ok((scheduler, decisions))
    }

    /// The recorded state (last tick, last run and outcome of each job).
    pub fn state(&self) -> &ScheduleState {
        &self.state
    }

    /// The next job to run and the tick that makes it due (possibly in the
    /// past: then it is due now). Ties go to [`Job::ALL`] order.
    pub fn next_due(&self) -> Option<(Job, DateTime<Utc>)> {
        self.entries
            .iter()
            .filter_map(|e| e.schedule.next_after(e.last_tick).map(|t| (e.job, t)))
            .min_by_key(|(job, t)| (*t, *job))
    }

    /// Runs the next due job if one is due now; `None` when nothing is due.
    pub async fn run_due<F, Fut, E>(
        &mut self,
        runner: &mut F,
    ) -> Result<Option<JobRun>, ScheduleError>
    where
        F: FnMut(Job) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let now = self.clock.now();
        match self.next_due() {
            Some((job, due)) if due <= now => self.run_job(job, runner).await.map(Some),
            _ => Ok(None),
        }
    }

    /// Waits for the next due job, runs it and returns its record. With no
    /// job at all, waits forever.
    pub async fn run_next<F, Fut, E>(&mut self, runner: &mut F) -> Result<JobRun, ScheduleError>
    where
        F: FnMut(Job) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let Some((job, due)) = self.next_due() else {
            return std::future::pending().await;
        };
        self.clock.sleep_until(due).await;
        self.run_job(job, runner).await
    }

    /// Runs jobs as they come due until `stop` turns true, calling
    /// `on_finished` with each record. A running job is not interrupted: the
    /// runner watches `stop` itself if it must. A failure to save the state is
    /// logged and the loop goes on (the next save tries again).
    pub async fn run<F, Fut, E>(
        &mut self,
        mut runner: F,
        mut on_finished: impl FnMut(&JobRun),
        mut stop: watch::Receiver<bool>,
    ) where
        F: FnMut(Job) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        loop {
            if *stop.borrow() {
                return;
            }
            let Some((job, due)) = self.next_due() else {
                let _ = stop.changed().await;
                return;
            };
            tokio::select! {
                _ = self.clock.sleep_until(due) => {}
                r = stop.changed() => {
                    if r.is_err() || *stop.borrow() { return; }
                    continue;
                }
            }
            match self.run_job(job, &mut runner).await {
                Ok(run) => on_finished(&run),
                Err(e) => tracing::warn!(job = job.name(), error = %e, "scheduler state not saved"),
            }
        }
    }

    /// Runs `job` now (whether due or not), records it and saves the state.
    /// The run satisfies every tick of the job that has passed by its start;
    /// ticks that pass while it runs make the job due again afterwards (once).
    pub async fn run_job<F, Fut, E>(
        &mut self,
        job: Job,
        runner: &mut F,
    ) -> Result<JobRun, ScheduleError>
    where
        F: FnMut(Job) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let started_at = self.clock.now();
        let (tick, catch_up) = match self.entries.iter_mut().find(|e| e.job == job) {
            Some(entry) => {
                let tick = entry
                    .schedule
                    .last_at_or_before(entry.last_tick, started_at)
                    .unwrap_or(entry.last_tick.max(started_at));
                entry.last_tick = entry.last_tick.max(tick);
                (tick, std::mem::take(&mut entry.catching_up))
            }
            None => (started_at, false),
        };
        tracing::info!(job = job.name(), %tick, catch_up, "scheduled job starting");
        let result = runner(job).await;
        let finished_at = self.clock.now();
        let error = result.err().map(|e| e.to_string());
        let took = (finished_at - started_at).to_std().unwrap_or_default();
        match &error {
            None => tracing::info!(
                job = job.name(),
                took = %humantime::format_duration(took),
                "scheduled job finished"
            ),
            Some(error) => tracing::warn!(
                job = job.name(),
                took = %humantime::format_duration(took),
                %error,
                "scheduled job failed; it runs again at its next tick"
            ),
        }
        let run = JobRun {
            job,
            tick,
            catch_up,
            started_at,
            finished_at,
            error,
        };
        self.state.record(&run);
        self.save()?;
        Ok(run)
    }

    fn save(&self) -> Result<(), ScheduleError> {
        match &self.state_path {
            Some(path) => self.state.save(path),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
