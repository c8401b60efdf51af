//! Dirty data reaches the people on call: `govflow run` over the simulator with
//! a check on `_errors` and a Slack stand-in on 127.0.0.1; dirty mutations
//! (`"dirty": true`) make the check fail and post its alert, naming how many
//! `_errors` rows there are.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::pg::eventually;
use common::slack::slack;
use common::*;
use dataflows::{Table, TableRow};
use govflow::runtime::{ProgressHandle, RunOptions};
use govflow::settings::Config;
use govflow_sim::{DIRTY_KINDS, MutateRequest, SimOptions, SimServer};

fn config(sim: &SimServer, options: &SimOptions, dir: &Path, hook: SocketAddr) -> Config {
    let text = format!(
        r#"
check_defaults = false

[bigcommerce]
base_url = "{base}"
store_hash = "{hash}"
access_token = "{token}"
page_size = 100
poll_interval = "200ms"

[warehouse]
dir = "{dir}/warehouse"

[state]
dir = "{dir}/state"

# No reason is accepted: every `_errors` row fails the check.
[[checks]]
table = "_errors"
column = "reason"
kind = "accepted_values"
values = ["none"]
severity = "error"

[alerts.slack]
webhook_url = "http://{hook}/hook"
max_per_minute = 100
"#,
        base = sim.base_url(),
        hash = options.store_hash,
        token = options.access_token,
        dir = dir.display(),
    );
    Config::from_toml_str(&text, "dirty_alerts.toml", &|_| None).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dirty_data_fails_the_errors_check_and_alerts() {
    let options = store(61, 80, 20, 150);
    let sim = start_sim(options.clone()).await;
    let (slack, hook) = slack().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&sim, &options, dir.path(), hook);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(govflow::runtime::run(
        config,
        RunOptions {
            workers: 2,
            flush_interval: Duration::from_millis(100),
            ..RunOptions::default()
        },
        stop_rx,
        ProgressHandle::default(),
    ));
    // Clean data: nothing to report once the store is loaded.
    let loaded = eventually(Duration::from_secs(60), || {
        dir.path().join("state/checks.json").exists()
    })
    .await;
    assert!(loaded);
    assert!(
        !slack.texts().iter().any(|t| t.contains("is failing")),
        "{:#?}",
        slack.texts()
    );

    // Dirty data whose errors the incremental polls see (no deletes among them).
    sim.mutate(MutateRequest {
        count: 4,
        kinds: None,
        dirty: true,
    })
    .unwrap();
    assert!(DIRTY_KINDS.len() > 4);
    let check = "check `_errors.reason.accepted_values` on `_errors` is failing";
    let alerted = eventually(Duration::from_secs(60), || {
        slack.texts().iter().any(|t| t.contains(check))
    })
    .await;
    assert!(alerted, "no alert: {:#?}", slack.texts());
    stop.send(true).unwrap();
    run.await.unwrap().unwrap();

    // The alert counts `_errors` rows: some or all of those the warehouse
    // holds (a repeated alert is deduplicated, so it may be an early count).
    let errors = tables(dir.path())
        .into_iter()
        .find(|(t, _)| *t == Table::Errors)
        .map(|(_, rows)| rows)
        .unwrap_or_default();
    assert!(errors.iter().all(|r| matches!(r, TableRow::Errors(_))));
    let texts = slack.texts();
    let alert = texts.iter().find(|t| t.contains(check)).expect("the alert");
    let count: usize = alert
        .split(&format!("{check}: "))
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count in {alert}"));
    assert!(
        (1..=errors.len()).contains(&count),
        "{alert}: {} errors",
        errors.len()
    );
    sim.shutdown().await;
}
