//! `[schedule]`: the cron jobs and their time zone, and their validation.

use serde::Deserialize;

use super::{CatchUp, Job, Schedule};
use crate::config::ConfigError;

/// `[schedule]`: cron expressions evaluated in one time zone.
#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    /// IANA zone of the expressions (default `Asia/Seoul`).
    pub timezone: chrono_tz::Tz,
    /// Full refresh of every source, then `dbt build --full-refresh`
    /// (default `0 2 * * *`); `None` when set to `"off"`.
    pub full_refresh: Option<Schedule>,
    /// `dbt build` of the marts (default every 5 minutes); `None` when `"off"`.
    pub marts: Option<Schedule>,
    /// What to do at start with ticks missed while the process was down (default once).
    pub catch_up: CatchUp,
}

impl ScheduleConfig {
    /// The enabled jobs with their schedules, for [`super::Scheduler::start`].
    pub fn jobs(&self) -> Vec<(Job, Schedule)> {
        [
            (Job::FullRefresh, &self.full_refresh),
            (Job::Marts, &self.marts),
        ]
        .into_iter()
        .filter_map(|(job, s)| s.clone().map(|s| (job, s)))
        .collect()
    }
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        let tz = super::DEFAULT_TIMEZONE;
        ScheduleConfig {
            timezone: tz,
            full_refresh: Schedule::new("full_refresh", super::DEFAULT_FULL_REFRESH, tz).ok(),
            marts: Schedule::new("marts", super::DEFAULT_MARTS, tz).ok(),
            catch_up: CatchUp::Once,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSchedule {
    timezone: Option<String>,
    full_refresh: Option<String>,
    marts: Option<String>,
    catch_up: Option<String>,
}

pub(crate) fn validate_schedule(
    raw: Option<RawSchedule>,
    err: &dyn Fn(&str, &str) -> ConfigError,
) -> Result<ScheduleConfig, ConfigError> {
    let Some(raw) = raw else {
        return Ok(ScheduleConfig::default());
    };
    let timezone = match raw.timezone.as_deref().map(str::trim) {
        None => super::DEFAULT_TIMEZONE,
        Some(name) => name.parse::<chrono_tz::Tz>().map_err(|_| {
            err(
                "schedule.timezone",
                &format!("unknown time zone {name:?}: expected an IANA name such as \"Asia/Seoul\" or \"UTC\""),
            )
        })?,
    };
    let job = |value: Option<String>, default: &str, job: Job| {
        let key = format!("schedule.{}", job.name());
        let expr = value.unwrap_or_else(|| default.to_string());
        if expr.trim() == "off" {
            return Ok(None);
        }
        Schedule::new(job.name(), &expr, timezone)
            .map(Some)
            .map_err(|e| err(&key, &format!("{e} (or \"off\" to disable the job)")))
    };
    let full_refresh = job(
        raw.full_refresh,
        super::DEFAULT_FULL_REFRESH,
        Job::FullRefresh,
    )?;
    let marts = job(raw.marts, super::DEFAULT_MARTS, Job::Marts)?;
    let catch_up = match raw.catch_up {
        None => CatchUp::Once,
        Some(v) => v
            .parse()
            .map_err(|e: String| err("schedule.catch_up", &e))?,
    };
    Ok(ScheduleConfig {
        timezone,
        full_refresh,
        marts,
        catch_up,
    })
}
