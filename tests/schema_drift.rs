//! Schema evolution while `govflow run` runs: a configured PostgreSQL table
//! gains a column, loses one, has a type widened and a type changed in a way
//! that would lose values; each time the warehouse shows the documented
//! outcome (docs/tables.md, Schema evolution) without a restart, and the
//! process never stops.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::pg::{self, eventually};
use common::{duckdb, try_duckdb};

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path, url: &str) -> Running {
    let config = dir.join("govflow.toml");
    std::fs::write(
        &config,
        format!(
            "[postgres.shop]\nurl = \"${{SHOP_URL}}\"\npoll_interval = \"100ms\"\n\
             [[postgres.shop.tables]]\nname = \"item\"\nkey = [\"id\"]\n\
             [warehouse]\ndir = \"{}\"\n[state]\ndir = \"{}\"\n[status]\nlisten = \"off\"\n",
            dir.join("warehouse").display(),
            dir.join("state").display()
        ),
    )
    .unwrap();
    run(&config, url)
}

/// `govflow run` of `config`, always on, quiet.
fn run(config: &Path, url: &str) -> Running {
    let child = Command::new(env!("CARGO_BIN_EXE_govflow"))
        .args([
            "--log",
            "warn",
            "run",
            "--no-schedule",
            "--flush-interval",
            "100ms",
            "--config",
        ])
        .arg(config)
        .env("SHOP_URL", url)
        .stdout(Stdio::null())
        .stderr(log_file(config))
        .spawn()
        .expect("govflow starts");
    Running(child)
}

/// The `schema` check of `raw_pg_shop_item` in `state/checks.json`: how many
/// rows fail it (1 while the columns do not fit) and its samples, as text.
fn schema_check(dir: &Path) -> Option<(u64, String)> {
    let text = std::fs::read_to_string(dir.join("state/checks.json")).ok()?;
    let file: serde_json::Value = serde_json::from_str(&text).ok()?;
    let result = file["results"]
        .as_array()?
        .iter()
        .find(|r| r["spec"]["name"] == "raw_pg_shop_item.columns.schema")?;
    Some((result["failing"].as_u64()?, result["samples"].to_string()))
}

/// Where the run of `config` logs (beside it), for failure messages.
fn log_file(config: &Path) -> std::fs::File {
    std::fs::File::create(config.with_extension("log")).expect("log file")
}

/// Waits until `query` over the warehouse answers `want`.
async fn until(dir: &Path, query: &str, want: &[&str]) {
    let current = dir.join("warehouse/current.sql");
    let ok = eventually(Duration::from_secs(60), || {
        current.exists() && try_duckdb(dir, &[query]).is_ok_and(|r| r[0] == want)
    })
    .await;
    let log = std::fs::read_to_string(dir.join("govflow.log")).unwrap_or_default();
    assert!(
        ok,
        "{query}: got {:?}, want {want:?}\ngovflow's log:\n{log}",
        try_duckdb(dir, &[query])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn columns_added_dropped_and_retyped_upstream_while_running() {
    let server = pg::shared();
    let url = server.create_database("schema_drift", "").await;
    let admin = server.admin("schema_drift").await;
    admin
        .batch_execute(
            "CREATE TABLE item (id bigint PRIMARY KEY, qty int NOT NULL, label text, note text,
                 updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
             INSERT INTO item (id, qty, label, note) VALUES (1, 5, 'a', 'n1'), (2, 7, 'b', 'n2');",
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut running = start(dir.path(), &url);
    until(
        dir.path(),
        "SELECT id, qty, label, note FROM raw_pg_shop_item ORDER BY id",
        &["1|5|a|n1", "2|7|b|n2"],
    )
    .await;

    // A column added upstream appears, filled in the rows read from then on.
    admin
        .batch_execute(
            "ALTER TABLE item ADD COLUMN color text;
             UPDATE item SET color = 'red', updated_at = clock_timestamp() WHERE id = 1;",
        )
        .await
        .unwrap();
    until(
        dir.path(),
        "SELECT id, color FROM raw_pg_shop_item ORDER BY id",
        &["1|red", "2|NULL"],
    )
    .await;

    // A column dropped upstream stays, null in the rows read from then on
    // (every poll re-reads the lookback: both rows here).
    admin
        .batch_execute(
            "ALTER TABLE item DROP COLUMN note;
             UPDATE item SET qty = 6, updated_at = clock_timestamp() WHERE id = 1;",
        )
        .await
        .unwrap();
    until(
        dir.path(),
        "SELECT id, qty, note FROM raw_pg_shop_item ORDER BY id",
        &["1|6|NULL", "2|7|NULL"],
    )
    .await;

    // A lossless widening (integer → numeric(30,2)): older rows read widened.
    admin
        .batch_execute(
            "ALTER TABLE item ALTER COLUMN qty TYPE numeric(30,2);
             INSERT INTO item (id, qty, label) VALUES (3, 2.5, 'c');",
        )
        .await
        .unwrap();
    until(
        dir.path(),
        "SELECT id, qty FROM raw_pg_shop_item ORDER BY id",
        &["1|6.00", "2|7.00", "3|2.50"],
    )
    .await;
    let types = duckdb(
        dir.path(),
        &[
            "SELECT column_name, column_type FROM (DESCRIBE raw_pg_shop_item) WHERE column_name IN ('qty', 'color', 'note') ORDER BY 1",
        ],
    );
    assert_eq!(
        types[0],
        ["color|VARCHAR", "note|VARCHAR", "qty|DECIMAL(30,2)"]
    );

    // Another type change: the column keeps its type. `label` (text) becomes
    // an integer upstream: integers still fit text, so rows are kept, as text.
    admin
        .batch_execute(
            "UPDATE item SET label = (id * 10)::text;
             ALTER TABLE item ALTER COLUMN label TYPE int USING label::int;
             UPDATE item SET updated_at = clock_timestamp() WHERE id = 3;",
        )
        .await
        .unwrap();
    until(
        dir.path(),
        "SELECT id, label FROM raw_pg_shop_item ORDER BY id",
        &["1|10", "2|20", "3|30"],
    )
    .await;
    // `qty` (decimal) becomes text upstream: a value that is not a number
    // does not fit, and its row is a dead letter naming the column; the
    // warehouse keeps the row as it was.
    admin
        .batch_execute(
            "ALTER TABLE item ALTER COLUMN qty TYPE text;
             UPDATE item SET qty = 'lots', updated_at = clock_timestamp() WHERE id = 2;",
        )
        .await
        .unwrap();
    let dead = dir.path().join("state/dead_letters.jsonl");
    let found = eventually(Duration::from_secs(60), || {
        std::fs::read_to_string(&dead)
            .is_ok_and(|t| t.contains("raw_pg_shop_item") || t.contains("\"item\""))
            && std::fs::read_to_string(&dead).is_ok_and(|t| t.contains("column qty"))
    })
    .await;
    assert!(found, "dead letters: {:?}", std::fs::read_to_string(&dead));
    // And an alert is failing for it (logged here: no Slack configured),
    // kept across restarts in the state directory.
    let alerts = dir.path().join("state/alerts.json");
    let alerted = eventually(Duration::from_secs(30), || {
        std::fs::read_to_string(&alerts).is_ok_and(|t| t.contains("schema:raw_pg_shop_item"))
    })
    .await;
    assert!(alerted, "alerts: {:?}", std::fs::read_to_string(&alerts));
    let types = duckdb(
        dir.path(),
        &[
            "SELECT column_name, column_type FROM (DESCRIBE raw_pg_shop_item) WHERE column_name IN ('label', 'qty') ORDER BY 1",
            "SELECT id, qty FROM raw_pg_shop_item ORDER BY id",
        ],
    );
    assert_eq!(
        types[0],
        ["label|VARCHAR", "qty|DECIMAL(30,2)"],
        "incompatible changes keep the type"
    );
    assert_eq!(types[1], ["1|6.00", "2|7.00", "3|2.50"]);
    // The table's `schema` check fails too (state/checks.json, `govflow check`).
    let failing = eventually(Duration::from_secs(30), || {
        schema_check(dir.path()).is_some_and(|(failing, _)| failing == 1)
    })
    .await;
    assert!(failing, "schema check: {:?}", schema_check(dir.path()));
    let (_, samples) = schema_check(dir.path()).unwrap();
    assert!(
        samples.contains("qty"),
        "the check names the column: {samples}"
    );

    // The columns fit again: the check passes.
    admin
        .batch_execute(
            "UPDATE item SET qty = '2.5' WHERE id = 2;
             ALTER TABLE item ALTER COLUMN qty TYPE numeric(30,2) USING qty::numeric;
             ALTER TABLE item ALTER COLUMN label TYPE text;",
        )
        .await
        .unwrap();
    let passing = eventually(Duration::from_secs(30), || {
        schema_check(dir.path()).is_some_and(|(failing, _)| failing == 0)
    })
    .await;
    assert!(passing, "schema check: {:?}", schema_check(dir.path()));

    // Older snapshots stay readable, and the process is still running.
    assert!(
        running.0.try_wait().unwrap().is_none(),
        "govflow kept running"
    );
    let _ = &mut running;
}

/// The same drift with BigQuery as the warehouse (on the emulators): the
/// target table gains the added column and takes the widened type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bigquery_follows_the_drift() {
    use common::bigquery::{Emulators, bigquery_rows};
    use govflow::sinks::bigquery::client::Client;

    let emulators = Emulators::start().await;
    let server = pg::shared();
    let url = server.create_database("schema_drift_bq", "").await;
    let admin = server.admin("schema_drift_bq").await;
    admin
        .batch_execute(
            "CREATE TABLE item (id bigint PRIMARY KEY, qty int NOT NULL,
                 updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
             INSERT INTO item (id, qty) VALUES (1, 5), (2, 7);",
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let bq = emulators.config("govflow_drift", &state);
    let config = dir.path().join("govflow.toml");
    std::fs::write(
        &config,
        format!(
            "[postgres.shop]\nurl = \"${{SHOP_URL}}\"\npoll_interval = \"100ms\"\n\
             [[postgres.shop.tables]]\nname = \"item\"\nkey = [\"id\"]\n\
             [warehouse]\nkind = \"bigquery\"\nproject = {:?}\ndataset = {:?}\nbucket = {:?}\naccess_token = \"emulator\"\n\
             api_endpoint = {:?}\nstorage_endpoint = {:?}\nflush_interval = \"300ms\"\nmin_table_interval = \"0s\"\n\
             parallel_tables = 1\nretry_backoff = \"100ms\"\n\
             [state]\ndir = {:?}\n[status]\nlisten = \"off\"\n",
            bq.project,
            bq.dataset,
            bq.bucket,
            bq.api_endpoint.as_str(),
            bq.storage_endpoint.as_str(),
            state.display().to_string(),
        ),
    )
    .unwrap();
    let _running = run(&config, &url);
    let client = Client::new(&bq).await.unwrap();
    let rows = |columns: &'static [&'static str], decimals: &'static [bool]| {
        let client = &client;
        let dataset = bq.dataset.clone();
        async move {
            // Not before the table has every column asked for.
            let table = client
                .get_table(&dataset, "raw_pg_shop_item")
                .await
                .ok()??;
            let fields = table.schema.fields?;
            if !columns.iter().all(|c| fields.iter().any(|f| f.name == *c)) {
                return None;
            }
            let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
            bigquery_rows(client, &dataset, "raw_pg_shop_item", &columns, decimals).await
        }
    };
    let wait =
        |columns: &'static [&'static str], decimals: &'static [bool], want: Vec<&'static str>| {
            let rows = &rows;
            async move {
                let deadline = std::time::Instant::now() + Duration::from_secs(120);
                loop {
                    let got = rows(columns, decimals).await;
                    if got
                        .as_deref()
                        .is_some_and(|g| g.iter().map(String::as_str).eq(want.iter().copied()))
                    {
                        return;
                    }
                    assert!(
                        std::time::Instant::now() < deadline,
                        "{columns:?}: got {got:?}, want {want:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        };
    wait(&["id", "qty"], &[false, false], vec!["1|5", "2|7"]).await;
    admin
        .batch_execute(
            "ALTER TABLE item ADD COLUMN color text;
             UPDATE item SET color = 'red', updated_at = clock_timestamp() WHERE id = 1;",
        )
        .await
        .unwrap();
    wait(&["id", "color"], &[false, false], vec!["1|red", "2|NULL"]).await;
    admin
        .batch_execute(
            "ALTER TABLE item ALTER COLUMN qty TYPE numeric(30,2);
             UPDATE item SET qty = 2.5, updated_at = clock_timestamp() WHERE id = 2;",
        )
        .await
        .unwrap();
    wait(&["id", "qty"], &[false, true], vec!["1|5", "2|2.5"]).await;
    let table = client
        .get_table(&bq.dataset, "raw_pg_shop_item")
        .await
        .unwrap()
        .unwrap();
    let qty = table
        .schema
        .fields
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|f| f.name == "qty")
        .map(|f| govflow::sinks::bigquery::schema::type_name(&f.r#type));
    assert_eq!(qty, Some("NUMERIC"));
}
