//! The scheduler's persisted state: per job, the last satisfied tick and the
//! last run. One small JSON file in the state dir, replaced atomically.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{JobRun, ScheduleError};

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The runner returned success.
    Succeeded,
    /// The runner returned an error.
    Failed,
}

/// One job's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobState {
    /// The latest tick already satisfied: run, skipped, or the start baseline.
    pub last_tick: DateTime<Utc>,
    /// When the last run started.
    #[serde(default)]
    pub last_started_at: Option<DateTime<Utc>>,
    /// When the last run finished.
    #[serde(default)]
    pub last_finished_at: Option<DateTime<Utc>>,
    /// How the last run ended.
    #[serde(default)]
    pub last_outcome: Option<Outcome>,
    /// The last run's error, if it failed.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Runs recorded.
    #[serde(default)]
    pub runs: u64,
    /// Failed runs recorded.
    #[serde(default)]
    pub failures: u64,
}

impl JobState {
    /// A job that has not run, satisfied up to `last_tick`.
    pub fn new(last_tick: DateTime<Utc>) -> JobState {
        JobState {
            last_tick,
            last_started_at: None,
            last_finished_at: None,
            last_outcome: None,
            last_error: None,
            runs: 0,
            failures: 0,
        }
    }
}

/// The state file's content (`schedule.json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// Format version (1).
    #[serde(default = "version")]
    pub version: u32,
    /// Per job name (`full_refresh`, `marts`).
    #[serde(default)]
    pub jobs: BTreeMap<String, JobState>,
}

fn version() -> u32 {
    1
}

impl ScheduleState {
    /// Reads the state file; a missing file is an empty state.
    pub fn load(path: &Path) -> Result<ScheduleState, ScheduleError> {
        let err = |detail: String| ScheduleError::State {
            path: path.display().to_string(),
            detail,
        };
        match std::fs::read(path) {
            Ok(bytes) => {
                let state: ScheduleState = serde_json::from_slice(&bytes)
                    .map_err(|e| err(format!("not a scheduler state file: {e}")))?;
                if state.version != 1 {
                    return Err(err(format!("unsupported version {}", state.version)));
                }
                Ok(state)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ScheduleState {
                version: 1,
                jobs: BTreeMap::new(),
            }),
            Err(e) => Err(err(format!("cannot read: {e}"))),
        }
    }

    /// Writes the state file atomically.
    pub fn save(&self, path: &Path) -> Result<(), ScheduleError> {
        let err = |detail: String| ScheduleError::State {
            path: path.display().to_string(),
            detail,
        };
        let mut state = self.clone();
        state.version = 1;
        let bytes = serde_json::to_vec_pretty(&state).map_err(|e| err(e.to_string()))?;
        crate::fsutil::write_atomic(path, &bytes).map_err(|e| err(format!("cannot write: {e}")))
    }

    /// Records a finished run.
    pub fn record(&mut self, run: &JobRun) {
        let state = self
            .jobs
            .entry(run.job.name().to_string())
            .or_insert_with(|| JobState::new(run.tick));
        state.last_tick = state.last_tick.max(run.tick);
        state.last_started_at = Some(run.started_at);
        state.last_finished_at = Some(run.finished_at);
        state.last_outcome = Some(if run.error.is_some() {
            Outcome::Failed
        } else {
            Outcome::Succeeded
        });
        state.last_error = run.error.clone();
        state.runs += 1;
        if run.error.is_some() {
            state.failures += 1;
        }
    }
}
