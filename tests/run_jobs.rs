//! `govflow run` with its scheduler and alerts, over the simulator, a small
//! dbt project and a Slack stand-in on 127.0.0.1, on a manual clock (no test
//! sleeps for a tick): a stale table and its fix, a failing dbt test and its
//! fix, the nightly full refresh (which deletes what is gone upstream, then
//! runs `dbt build --full-refresh`), a failing source and a failed full
//! refresh each post one alert and one recovery, with their texts.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Utc};
use common::pg::eventually;
use common::slack::{Slack, slack};
use common::*;
use govflow::runtime::{ProgressHandle, RunOptions};
use govflow::schedule::ManualClock;
use govflow::settings::Config;
use govflow_sim::{MutateRequest, SimOptions, SimServer};
use serde_json::json;

/// A dbt project with one model and one singular test that fails while the
/// flag file says `fail = 1`.
fn dbt_project(dir: &Path, flag: &Path) -> PathBuf {
    let project = dir.join("project");
    std::fs::create_dir_all(project.join("models")).unwrap();
    std::fs::create_dir_all(project.join("tests")).unwrap();
    std::fs::write(
        project.join("dbt_project.yml"),
        "name: jobs\nversion: '1.0'\nconfig-version: 2\nprofile: jobs\n",
    )
    .unwrap();
    std::fs::write(
        project.join("profiles.yml"),
        "jobs:\n  target: duckdb\n  outputs:\n    duckdb:\n      type: duckdb\n      path: \"{{ env_var('GOVFLOW_MARTS_DB') }}\"\n",
    )
    .unwrap();
    std::fs::write(project.join("models/one.sql"), "select 1 as id\n").unwrap();
    std::fs::write(
        project.join("tests/flag_is_clear.sql"),
        format!(
            "select * from read_csv_auto('{}') where fail = 1\n",
            flag.display()
        ),
    )
    .unwrap();
    project
}

fn set_flag(flag: &Path, fail: bool) {
    std::fs::write(flag, format!("fail\n{}\n", u8::from(fail))).unwrap();
}

fn config(sim: &SimServer, options: &SimOptions, dir: &Path, hook: SocketAddr) -> Config {
    let flag = dir.join("flag.csv");
    set_flag(&flag, true);
    let project = dbt_project(dir, &flag);
    let dbt = PathBuf::from(python()).with_file_name("dbt");
    let text = format!(
        r#"
check_defaults = false

[bigcommerce]
base_url = "{base}"
store_hash = "{hash}"
access_token = "{token}"
page_size = 100
poll_interval = "200ms"
max_attempts = 2

[warehouse]
dir = "{dir}/warehouse"

[state]
dir = "{dir}/state"

[[checks]]
table = "raw_bc_order"
column = "modified_at"
kind = "freshness"
max_age = "1h"
severity = "error"

[dbt]
project_dir = "{project}"
marts_db = "{dir}/marts.duckdb"
executable = "{dbt}"

[schedule]
timezone = "Asia/Seoul"
full_refresh = "0 2 * * *"
marts = "*/5 * * * *"

[alerts]
source_failure_threshold = 2

[alerts.slack]
webhook_url = "http://{hook}/hook"
max_per_minute = 100
"#,
        base = sim.base_url(),
        hash = options.store_hash,
        token = options.access_token,
        dir = dir.display(),
        project = project.display(),
        dbt = dbt.display(),
    );
    Config::from_toml_str(&text, "run_jobs.toml", &|_| None).unwrap()
}

const WAIT: Duration = Duration::from_secs(120);

async fn wait_for(slack: &Slack, needle: &str) {
    assert!(
        eventually(WAIT, || slack.count(needle) > 0).await,
        "no alert containing {needle:?}; received: {:#?}",
        slack.texts()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_jobs_and_alerts_over_a_running_pipeline() {
    let options = store(7, 60, 20, 150);
    let sim = start_sim(options.clone()).await;
    let (slack, hook) = slack().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&sim, &options, dir.path(), hook);
    let flag = dir.path().join("flag.csv");
    // 01:50 in Seoul: marts are due at 01:55, the full refresh at 02:00.
    let start = Utc.with_ymd_and_hms(2026, 11, 26, 16, 50, 0).unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let progress = ProgressHandle::default();
    let run = tokio::spawn(govflow::runtime::run(
        config.clone(),
        RunOptions {
            workers: 2,
            flush_interval: Duration::from_millis(100),
            scheduler: Some(clock.clone()),
            ..RunOptions::default()
        },
        stop_rx,
        progress.clone(),
    ));

    // The seeded orders are older than an hour: the freshness check fails...
    let check = "check `raw_bc_order.modified_at.freshness` on `raw_bc_order`";
    wait_for(&slack, &format!("{check} is failing: 1 failing row")).await;
    // ... until an order changes now.
    sim.mutate(MutateRequest {
        count: 1,
        kinds: Some(vec!["order_update".into()]),
        dirty: false,
    })
    .unwrap();
    wait_for(&slack, &format!("{check} passes again")).await;

    // 01:55: the marts job runs dbt build, whose test fails.
    clock.set(start + TimeDelta::minutes(5));
    wait_for(&slack, "`dbt build` failed: 1 node failed").await;
    let failed = slack
        .texts()
        .into_iter()
        .find(|t| t.contains("`dbt build` failed"))
        .unwrap();
    assert!(
        failed.contains("`test.jobs.flag_is_clear`: Got 1 result, configured to fail if != 0"),
        "{failed}"
    );

    // 02:00: customers deleted upstream are only seen by the full refresh,
    // which then rebuilds the marts with --full-refresh (the test passes now).
    set_flag(&flag, false);
    let deleted = sim
        .mutate(MutateRequest {
            count: 3,
            kinds: Some(vec!["customer_delete".into()]),
            dirty: false,
        })
        .unwrap();
    assert_eq!(deleted.total, 3);
    let schedule = dir.path().join("state/schedule.json");
    let full_refresh_runs = || -> u64 {
        let text = std::fs::read_to_string(&schedule).unwrap_or_default();
        let state: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        state["jobs"]["full_refresh"]["runs"].as_u64().unwrap_or(0)
    };
    clock.set(start + TimeDelta::minutes(10));
    wait_for(&slack, "`dbt build --full-refresh` succeeds again").await;
    assert!(eventually(WAIT, || full_refresh_runs() == 1).await);

    // The store fails every request: the source alerts after two failed
    // pulls, and the next night's full refresh fails.
    control(&sim, "/_sim/faults", json!({"error_rate": 1.0})).await;
    wait_for(
        &slack,
        "source `bigcommerce` is failing: 2 failures in a row",
    )
    .await;
    clock.set(start + TimeDelta::days(1) + TimeDelta::minutes(10));
    wait_for(&slack, "full refresh failed: sources: bigcommerce:").await;
    control(&sim, "/_sim/faults", json!({})).await;
    wait_for(&slack, "source `bigcommerce` recovered after").await;
    // The night after, it succeeds again.
    clock.set(start + TimeDelta::days(2) + TimeDelta::minutes(10));
    wait_for(&slack, "full refresh succeeds again").await;
    assert!(eventually(WAIT, || full_refresh_runs() == 3).await);

    stop.send(true).unwrap();
    run.await.unwrap().expect("the run ends cleanly");

    // One message per failure and one per recovery, nothing else.
    let texts = slack.texts();
    for needle in [
        "is failing: 1 failing row",
        "passes again",
        "`dbt build` failed",
        "`dbt build --full-refresh` succeeds again",
        "source `bigcommerce` is failing",
        "source `bigcommerce` recovered",
        "full refresh failed",
        "full refresh succeeds again",
    ] {
        assert_eq!(slack.count(needle), 1, "{needle:?} in {texts:#?}");
    }
    assert_eq!(texts.len(), 8, "{texts:#?}");
    assert!(
        texts
            .iter()
            .all(|t| !t.contains(options.access_token.as_str())),
        "{texts:#?}"
    );

    // The full refresh deleted the customers gone upstream.
    let truth = truth(&sim).await;
    let warehouse = tables(dir.path());
    let customers = warehouse
        .iter()
        .find(|(t, _)| *t == dataflows::Table::RawBcCustomer)
        .map(|(_, rows)| rows.len())
        .unwrap();
    assert_eq!(customers, truth.customers.len());
    assert_eq!(customers, 60 - 3);
}
