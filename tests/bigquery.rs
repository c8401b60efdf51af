//! The BigQuery sink end to end: the simulator, `govflow run` rounds into
//! BigQuery (local-bigquery and fake-gcs-server on loopback, started here),
//! every table compared row by row with the local warehouse; replays, a crash
//! between load and MERGE, the emulator down for a while, and a permanent
//! error naming the table and epochs.

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::bigquery::{Emulators, Proxy, bigquery_rows, local_rows};
use common::*;
use dataflows::Table;
use gcp_bigquery_client::model::field_type::FieldType;
use gcp_bigquery_client::model::table::Table as BqTable;
use gcp_bigquery_client::model::table_field_schema::TableFieldSchema;
use gcp_bigquery_client::model::table_schema::TableSchema;
use govflow::format;
use govflow::runtime::{ProgressHandle, RunError, RunOptions};
use govflow::settings::Config;
use govflow::sinks::bigquery::BigQueryConfig;
use govflow::sinks::bigquery::client::Client;
use govflow::sinks::local::{LocalWarehouse, WarehouseOptions};
use govflow::sinks::{StateConfig, WarehouseConfig};
use govflow_sim::{MutateRequest, SimOptions, SimServer};

fn config(sim: &SimServer, options: &SimOptions, bq: BigQueryConfig, dir: &Path) -> Config {
    let mut bc = config_for(sim, options);
    bc.page_size = 100;
    Config {
        bigcommerce: Some(bc),
        warehouse: WarehouseConfig::BigQuery(Box::new(bq)),
        state: StateConfig {
            dir: dir.join("state"),
        },
        ..Config::default()
    }
}

async fn mutate(sim: &SimServer, count: usize) {
    sim.mutate(MutateRequest {
        count,
        kinds: None,
        dirty: false,
    })
    .unwrap();
}

/// Asserts every table in BigQuery equals the local warehouse of `state_dir`,
/// row by row (`_epoch` aside); returns the rows compared.
async fn assert_bigquery_equals_local(bq: &BigQueryConfig, state_dir: &Path) -> usize {
    let wh = LocalWarehouse::open(
        &state_dir.join("warehouse"),
        &format::table_specs(),
        WarehouseOptions::default(),
    )
    .unwrap();
    let client = Client::new(bq).await.unwrap();
    let mut compared = 0;
    let mut problems = Vec::new();
    for table in Table::ALL {
        let Some(batch) = wh.read_table(table.name()).unwrap() else {
            continue;
        };
        let (columns, decimals, want) = local_rows(&batch);
        let got = bigquery_rows(&client, &bq.dataset, table.name(), &columns, &decimals).await;
        let got = match got {
            Some(rows) => rows,
            None if want.is_empty() => continue,
            None => {
                problems.push(format!(
                    "{}: missing in BigQuery ({} rows locally)",
                    table.name(),
                    want.len()
                ));
                continue;
            }
        };
        if got != want {
            let missing: Vec<_> = want.iter().filter(|r| !got.contains(r)).take(2).collect();
            let extra: Vec<_> = got.iter().filter(|r| !want.contains(r)).take(2).collect();
            problems.push(format!(
                "{}: BigQuery {} rows, local {} rows; missing {missing:?}, extra {extra:?}",
                table.name(),
                got.len(),
                want.len()
            ));
        }
        compared += want.len();
    }
    assert!(
        problems.is_empty(),
        "BigQuery differs from the local warehouse:\n{}",
        problems.join("\n")
    );
    compared
}

/// Tables in the dataset whose name marks them as staging tables.
async fn staging_tables(bq: &BigQueryConfig) -> Vec<String> {
    let client = Client::new(bq).await.unwrap();
    let sql = format!(
        "SELECT table_name FROM `{}.{}.INFORMATION_SCHEMA.TABLES` WHERE table_name LIKE '%govflow_stage%'",
        bq.project, bq.dataset
    );
    client
        .query(&sql)
        .await
        .map(|r| r.rows.iter().map(|row| row[0].to_string()).collect())
        .unwrap_or_default()
}

fn spooled_files(state_dir: &Path) -> usize {
    fn count(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                if e.path().is_dir() {
                    count(&e.path())
                } else {
                    1
                }
            })
            .sum()
    }
    count(&state_dir.join("bigquery/spool"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bigquery_equals_the_local_warehouse_after_mutation_rounds() {
    let emulators = Emulators::start().await;
    let options = store(41, 300, 60, 400);
    let sim = start_sim(options.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let bq = emulators.config("govflow_rounds", &dir.path().join("state"));
    let config = config(&sim, &options, bq.clone(), dir.path());
    try_run_once(&config, false, 1)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", emulators.bq_log()));
    let rows = assert_bigquery_equals_local(&bq, &dir.path().join("state")).await;
    assert!(rows > 1000, "the store was loaded: {rows} rows");
    for _ in 0..3 {
        mutate(&sim, 150).await;
        try_run_once(&config, false, 1).await.unwrap();
        assert_bigquery_equals_local(&bq, &dir.path().join("state")).await;
    }
    // Hard deletes reach BigQuery through the full refresh's tombstones.
    try_run_once(&config, true, 1).await.unwrap();
    assert_bigquery_equals_local(&bq, &dir.path().join("state")).await;
    assert_eq!(
        spooled_files(&dir.path().join("state")),
        0,
        "everything flushed is unspooled"
    );
    assert_eq!(
        staging_tables(&bq).await,
        Vec::<String>::new(),
        "staging tables are removed"
    );
    assert!(
        emulators.objects().is_empty(),
        "uploaded files are removed: {:?}",
        emulators.objects()
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_load_and_merge_replays_without_loss_or_duplicate() {
    let emulators = Emulators::start().await;
    let proxy = Proxy::start(emulators.bq_port).await;
    let options = store(43, 200, 40, 250);
    let sim = start_sim(options.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let bq = emulators.config_via("govflow_crash", &state, proxy.port);
    let config = config(&sim, &options, bq.clone(), dir.path());
    // MERGEs never reach BigQuery; once loads ran and a MERGE is pending, the run is killed.
    proxy.faults.hold_merge.store(true, Ordering::SeqCst);
    let run = tokio::spawn({
        let config = config.clone();
        async move { try_run_once(&config, false, 1).await }
    });
    let started = Instant::now();
    while proxy.job_inserts("merge") == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no MERGE was attempted"
        );
        if run.is_finished() {
            panic!("the run ended before any MERGE: {:?}", run.await);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the other tables' loads (running in parallel) get to their MERGE too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    run.abort();
    let _ = run.await;
    assert_eq!(proxy.jobs_created("merge"), 0, "no MERGE reached BigQuery");
    // The table whose MERGE was cut off, and its load (done before the crash).
    let log = proxy.job_log();
    let held = log
        .iter()
        .find(|(_, status)| *status == 0)
        .map(|(id, _)| id.clone())
        .unwrap();
    let base = held
        .strip_suffix("_merge_0")
        .expect("the first MERGE attempt was held");
    let load = format!("{base}_load_0");
    assert!(
        log.contains(&(load.clone(), 200)),
        "the load ran before the crash: {log:?}"
    );
    proxy.faults.hold_merge.store(false, Ordering::SeqCst);
    // Restart: every table's epochs are flushed; the load already done is
    // reused (its id answers 409), not run again, and the MERGE runs once.
    try_run_once(&config, false, 1).await.unwrap();
    assert_bigquery_equals_local(&bq, &state).await;
    let after: Vec<(String, u16)> = proxy.job_log().into_iter().skip(log.len()).collect();
    let loads_of_table: Vec<_> = after
        .iter()
        .filter(|(id, _)| id.starts_with(&format!("{base}_load")))
        .collect();
    assert_eq!(
        loads_of_table,
        vec![&(load.clone(), 409)],
        "the load is reused after the crash"
    );
    let merged: Vec<_> = after
        .iter()
        .filter(|(id, status)| id.starts_with(&format!("{base}_merge")) && *status == 200)
        .collect();
    assert_eq!(merged.len(), 1, "the MERGE ran once: {after:?}");
    let tables_flushed = proxy.jobs_created("merge");
    // Nothing changed upstream: a further run adds no job and changes nothing.
    try_run_once(&config, false, 1).await.unwrap();
    assert_eq!(proxy.jobs_created("merge"), tables_flushed);
    assert_bigquery_equals_local(&bq, &state).await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_flush_changes_nothing() {
    let emulators = Emulators::start().await;
    let options = store(47, 200, 40, 250);
    let sim = start_sim(options.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let proxy = Proxy::start(emulators.bq_port).await;
    let bq = emulators.config_via("govflow_replay", &state, proxy.port);
    let config = config(&sim, &options, bq.clone(), dir.path());
    try_run_once(&config, false, 1).await.unwrap();
    // Updates and deletes, committed locally while BigQuery is down: the
    // epochs wait in the spool; keep a copy of it.
    mutate(&sim, 200).await;
    proxy.faults.down.store(true, Ordering::SeqCst);
    let down = try_run_once(&config, true, 1)
        .await
        .expect_err("BigQuery is down");
    assert!(
        matches!(&down, RunError::BigQuery(e) if e.is_retryable()),
        "{down}"
    );
    assert!(spooled_files(&state) > 0);
    let saved = dir.path().join("saved-bigquery");
    copy_dir(&state.join("bigquery"), &saved);
    proxy.faults.down.store(false, Ordering::SeqCst);
    try_run_once(&config, false, 1).await.unwrap();
    assert_bigquery_equals_local(&bq, &state).await;
    let merges = proxy.jobs_created("merge");
    // A crash after the MERGEs and before the flush state was written: the
    // same epochs are flushed again. Under new job ids (a new generation),
    // so BigQuery really loads and merges them a second time.
    std::fs::remove_dir_all(state.join("bigquery")).unwrap();
    copy_dir(&saved, &state.join("bigquery"));
    let path = state.join("bigquery/flush_state.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut flush_state: serde_json::Value = serde_json::from_str(&text).unwrap();
    flush_state["generation"] = serde_json::json!("replayed");
    std::fs::write(&path, flush_state.to_string()).unwrap();
    try_run_once(&config, false, 1).await.unwrap();
    assert!(
        proxy.jobs_created("merge") > merges,
        "the replay ran its MERGEs again"
    );
    assert_eq!(spooled_files(&state), 0);
    assert_bigquery_equals_local(&bq, &state).await;
    sim.shutdown().await;
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_down_for_a_while_loses_nothing() {
    let mut emulators = Emulators::start().await;
    let options = store(53, 200, 40, 250);
    let sim = start_sim(options.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let bq = emulators.config("govflow_down", &state);
    let mut config = config(&sim, &options, bq.clone(), dir.path());
    if let Some(bc) = config.bigcommerce.as_mut() {
        bc.poll_interval = Duration::from_millis(200);
    }
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let options_run = RunOptions {
        workers: 1,
        flush_interval: Duration::from_millis(100),
        once: false,
        full_refresh: false,
        ..RunOptions::default()
    };
    let run = tokio::spawn(govflow::runtime::run(
        config.clone(),
        options_run,
        stop_rx,
        ProgressHandle::default(),
    ));
    // Wait for the first flush, then take BigQuery away while the store changes.
    let started = Instant::now();
    while !(spooled_files(&state) == 0
        && state.join("bigquery/flush_state.json").exists()
        && state.join("checkpoint.json").exists())
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the first flush did not happen"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    emulators.stop_bigquery();
    for _ in 0..3 {
        mutate(&sim, 60).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    assert!(
        spooled_files(&state) > 0,
        "epochs wait in the spool while BigQuery is down"
    );
    emulators.start_bigquery().await;
    let started = Instant::now();
    while spooled_files(&state) > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the spool was not flushed after BigQuery came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(true).unwrap();
    run.await.unwrap().unwrap();
    assert_bigquery_equals_local(&bq, &state).await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_error_names_the_table_and_epochs_and_keeps_them_for_replay() {
    let emulators = Emulators::start().await;
    let proxy = Proxy::start(emulators.bq_port).await;
    let options = store(59, 100, 20, 100);
    let sim = start_sim(options.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let bq = emulators.config_via("govflow_denied", &state, proxy.port);
    let config = config(&sim, &options, bq.clone(), dir.path());
    proxy.faults.deny_merge.store(true, Ordering::SeqCst);
    let error = try_run_once(&config, false, 1)
        .await
        .expect_err("MERGE is denied");
    let text = error.to_string();
    assert!(
        matches!(&error, RunError::BigQuery(e) if !e.is_retryable()),
        "{text}"
    );
    assert!(
        text.contains("epochs 1..=1")
            && text.contains("bigquery: table ")
            && text.contains("accessDenied"),
        "{text}"
    );
    assert!(spooled_files(&state) > 0, "the epoch stays spooled");
    // Once fixed, the next start flushes the kept epoch.
    proxy.faults.deny_merge.store(false, Ordering::SeqCst);
    try_run_once(&config, false, 1).await.unwrap();
    assert_eq!(spooled_files(&state), 0);
    assert_bigquery_equals_local(&bq, &state).await;
    sim.shutdown().await;
}

/// dbt with the BigQuery adapter, installed by `./dev.sh test`.
fn dbt_bigquery() -> std::path::PathBuf {
    let path = std::env::var_os("GOVFLOW_DBT_BIGQUERY")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| std::path::PathBuf::from(h).join(".cache/govflow/dbt-bigquery/bin/dbt"))
        })
        .filter(|p| p.exists());
    path.expect("dbt-bigquery is missing: run the tests with ./dev.sh test, which installs it")
}

#[test]
fn the_transformer_parses_with_the_bigquery_profile_over_the_sink_dataset() {
    let work = tempfile::tempdir().unwrap();
    let key = serde_json::json!({
        "type": "service_account",
        "project_id": "test-proj",
        "private_key_id": "k1",
        "private_key": include_str!("data/test-service-account-key.pem"),
        "client_email": "govflow@test-proj.iam.gserviceaccount.com",
        "client_id": "1",
        "auth_uri": "http://127.0.0.1:9/auth",
        "token_uri": "http://127.0.0.1:9/token",
        "auth_provider_x509_cert_url": "http://127.0.0.1:9/certs",
        "client_x509_cert_url": "http://127.0.0.1:9/x509",
    });
    let project = concat!(env!("CARGO_MANIFEST_DIR"), "/transformer");
    // With the key's JSON (the old platform's variable), then without any key:
    // Google's default credentials, the project from GCP_PROJECT.
    for with_key in [true, false] {
        let mut dbt = std::process::Command::new(dbt_bigquery());
        if with_key {
            dbt.env("GCP_SERVICE_ACCOUNT_KEY", key.to_string());
        } else {
            dbt.env_remove("GCP_SERVICE_ACCOUNT_KEY")
                .env("GCP_PROJECT", "test-proj");
        }
        let out = dbt
            .args([
                "parse",
                "--no-use-colors",
                "--target",
                "bigquery",
                "--project-dir",
                project,
                "--profiles-dir",
                project,
            ])
            .arg("--target-path")
            .arg(work.path().join(format!("target-{with_key}")))
            .arg("--log-path")
            .arg(work.path().join("logs"))
            .env("BIGQUERY_DATASET", "govflow_prod")
            .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
            .output()
            .expect("dbt runs");
        assert!(
            out.status.success(),
            "dbt parse --target bigquery failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(work.path().join(format!("target-{with_key}/manifest.json"))).unwrap(),
        )
        .unwrap();
        let sources = manifest["sources"].as_object().unwrap();
        assert!(!sources.is_empty());
        let tables: Vec<&str> = Table::ALL.iter().map(|t| t.name()).collect();
        for source in sources.values() {
            let name = source["name"].as_str().unwrap();
            assert!(
                tables.contains(&name),
                "source {name} is a table the sink writes"
            );
            assert_eq!(
                source["relation_name"].as_str().unwrap(),
                format!("`test-proj`.`govflow_prod`.`{name}`"),
                "sources read the sink's dataset"
            );
        }
        let marts: Vec<&serde_json::Value> = manifest["nodes"]
            .as_object()
            .unwrap()
            .values()
            .filter(|n| {
                n["resource_type"] == "model" && n["name"].as_str().unwrap().starts_with("mart_")
            })
            .collect();
        assert!(!marts.is_empty());
        for mart in marts {
            assert_eq!(mart["schema"], "marts", "{}", mart["name"]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_column_is_added_and_an_incompatible_one_is_refused() {
    let emulators = Emulators::start().await;
    let options = store(61, 100, 20, 100);
    let sim = start_sim(options.clone()).await;
    // An older dim_customer: without point_balance, with a column govflow no longer writes.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let bq = emulators.config("govflow_evolve", &state);
    let client = Client::new(&bq).await.unwrap();
    client.ensure_dataset(&bq.dataset).await.unwrap();
    let spec = format::table_spec(Table::DimCustomer);
    let mut fields = govflow::sinks::bigquery::schema::target_fields(&spec).unwrap();
    fields.retain(|f| f.name != "point_balance");
    let mut legacy = TableFieldSchema::string("legacy_note");
    legacy.mode = Some("NULLABLE".into());
    fields.push(legacy);
    let resource = BqTable::new(
        &bq.project,
        &bq.dataset,
        "dim_customer",
        TableSchema::new(fields),
    );
    client.insert_table(resource).await.unwrap();
    try_run_once(&config(&sim, &options, bq.clone(), dir.path()), false, 1)
        .await
        .unwrap();
    let table = client
        .get_table(&bq.dataset, "dim_customer")
        .await
        .unwrap()
        .unwrap();
    let names: Vec<&str> = table
        .schema
        .fields
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert!(
        names.contains(&"point_balance") && names.contains(&"legacy_note"),
        "{names:?}"
    );
    assert_bigquery_equals_local(&bq, &state).await;

    // fct_order.status as INTEGER: an incompatible change, refused with the table and column named.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let bq = emulators.config("govflow_incompatible", &state);
    client.ensure_dataset(&bq.dataset).await.unwrap();
    let spec = format::table_spec(Table::FctOrder);
    let mut fields = govflow::sinks::bigquery::schema::target_fields(&spec).unwrap();
    for f in fields.iter_mut().filter(|f| f.name == "status") {
        f.r#type = FieldType::Integer;
    }
    let resource = BqTable::new(
        &bq.project,
        &bq.dataset,
        "fct_order",
        TableSchema::new(fields),
    );
    client.insert_table(resource).await.unwrap();
    let error = try_run_once(&config(&sim, &options, bq.clone(), dir.path()), false, 1)
        .await
        .expect_err("an incompatible column type");
    let text = error.to_string();
    assert!(
        matches!(&error, RunError::BigQuery(e) if !e.is_retryable()),
        "{text}"
    );
    assert!(
        text.contains("table fct_order, epochs 1..=1") && text.contains("column status is INTEGER"),
        "{text}"
    );
    assert!(spooled_files(&state) > 0, "the epochs stay spooled");
    sim.shutdown().await;
}

/// Whether the flush state records a flush in flight.
fn flush_in_flight(state: &Path) -> bool {
    let flush_state =
        std::fs::read_to_string(state.join("bigquery/flush_state.json")).unwrap_or_default();
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&flush_state) else {
        return false;
    };
    // Any table with a load in flight (the others say `"inflight": null`).
    json["tables"]
        .as_object()
        .is_some_and(|tables| tables.values().any(|t| t["inflight"].is_u64()))
}

/// A `govflow run` of `config` as a child process, quiet.
fn govflow_process(config: &Path, token: &str, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_govflow"));
    cmd.args(["--log", "warn", "run", "--config"])
        .arg(config)
        .args(args)
        .env("TEST_BC_TOKEN", token)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_during_flushes_loses_and_duplicates_nothing() {
    use rand::{Rng, SeedableRng};
    let emulators = Emulators::start().await;
    let options = store(67, 300, 60, 400);
    let sim = start_sim(options.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let bq = emulators.config("govflow_kill", &state);
    let path = dir.path().join("govflow.toml");
    let text = format!(
        "[bigcommerce]\nbase_url = {:?}\nstore_hash = {:?}\naccess_token = \"${{TEST_BC_TOKEN}}\"\npoll_interval = \"200ms\"\npage_size = 50\n\n\
         [warehouse]\nkind = \"bigquery\"\nproject = {:?}\ndataset = {:?}\nbucket = {:?}\naccess_token = \"emulator\"\n\
         api_endpoint = {:?}\nstorage_endpoint = {:?}\nflush_interval = \"300ms\"\nmin_table_interval = \"0s\"\n\
         parallel_tables = 1\nretry_backoff = \"100ms\"\nmax_attempts = 4\n\n[state]\ndir = {:?}\n\n[status]\nlisten = \"127.0.0.1:0\"\n",
        sim.base_url(),
        options.store_hash,
        bq.project,
        bq.dataset,
        bq.bucket,
        bq.api_endpoint.as_str(),
        bq.storage_endpoint.as_str(),
        state.display().to_string(),
    );
    std::fs::write(&path, text).unwrap();
    let kinds: Vec<String> = govflow_sim::MUTATION_KINDS
        .iter()
        .filter(|k| !k.ends_with("_delete"))
        .map(|k| k.to_string())
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut in_flight = 0;
    for round in 0..6 {
        let mut child =
            govflow_process(&path, &options.access_token, &["--flush-interval", "50ms"])
                .spawn()
                .unwrap();
        if round == 0 {
            let started = Instant::now();
            while !state.join("bigquery/flush_state.json").exists() || spooled_files(&state) > 0 {
                assert!(
                    started.elapsed() < Duration::from_secs(180),
                    "no first flush"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        for _ in 0..3 {
            sim.mutate(MutateRequest {
                count: 40,
                kinds: Some(kinds.clone()),
                dirty: false,
            })
            .unwrap();
            tokio::time::sleep(Duration::from_millis(rng.random_range(100..900))).await;
        }
        if round % 2 == 1 {
            // Every other kill waits for a flush in flight, so that a fast
            // emulator (short flushes) cannot leave that case untested; the
            // store keeps changing meanwhile, so flushes keep coming.
            let started = Instant::now();
            let mut last_change = Instant::now();
            while !flush_in_flight(&state) && started.elapsed() < Duration::from_secs(60) {
                if last_change.elapsed() > Duration::from_millis(300) {
                    sim.mutate(MutateRequest {
                        count: 10,
                        kinds: Some(kinds.clone()),
                        dirty: false,
                    })
                    .unwrap();
                    last_change = Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        child.kill().unwrap(); // SIGKILL, wherever it is: spooling, committing, loading, merging
        child.wait().unwrap();
        if flush_in_flight(&state) {
            in_flight += 1;
        }
    }
    // Restart with the store quiet: `--once` flushes everything committed.
    let status = govflow_process(&path, &options.access_token, &["--once"])
        .status()
        .unwrap();
    assert!(
        status.success(),
        "govflow run --once failed: {status}\n{}",
        emulators.bq_log()
    );
    assert_eq!(spooled_files(&state), 0);
    let rows = assert_bigquery_equals_local(&bq, &state).await;
    assert!(rows > 1000, "{rows} rows");
    // And the local warehouse equals a fresh full refresh of the store.
    let fresh = tempfile::tempdir().unwrap();
    let mut local = Config {
        bigcommerce: Some(config_for(&sim, &options)),
        ..Config::default()
    };
    local.warehouse = WarehouseConfig::Local {
        dir: fresh.path().join("warehouse"),
    };
    local.state = StateConfig {
        dir: fresh.path().join("state"),
    };
    try_run_once(&local, true, 1).await.unwrap();
    assert_same_warehouses(&tables(&state), &tables(fresh.path()));
    // Kills fell while a flush was in flight (seen in the flush state), not only between flushes.
    assert!(in_flight >= 1, "no kill fell during a flush");
    eprintln!("kills during a flush in flight: {in_flight} of 6");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_server_errors_are_retried_with_backoff() {
    let emulators = Emulators::start().await;
    let proxy = Proxy::start(emulators.bq_port).await;
    let options = store(71, 100, 20, 100);
    let sim = start_sim(options.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let bq = emulators.config_via("govflow_limits", &state, proxy.port);
    let config = config(&sim, &options, bq.clone(), dir.path());
    proxy.faults.server_errors.store(2, Ordering::SeqCst);
    proxy.faults.rate_limit_jobs.store(3, Ordering::SeqCst);
    try_run_once(&config, false, 1)
        .await
        .expect("transient errors are retried");
    assert_eq!(
        proxy.faults.server_errors.load(Ordering::SeqCst),
        0,
        "the 500s were answered"
    );
    assert_eq!(
        proxy.faults.rate_limit_jobs.load(Ordering::SeqCst),
        0,
        "the rate limits were answered"
    );
    assert_bigquery_equals_local(&bq, &state).await;
    sim.shutdown().await;
}
