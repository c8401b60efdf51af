//! The dbt marts over a real pipeline run: `dbt build` through the runner
//! passes, each mart equals an independent SQL computation over the warehouse
//! (also after an incremental run), a failing dbt test is reported as `fail`
//! with its failure count (exit code 1), and a broken project is an exit-code-2
//! error. One simulated store and pipeline run are shared by the tests; dbt
//! invocations are serialised by the runner.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use govflow::runtime::{ProgressHandle, RunOptions};
use govflow::settings::Config;
use govflow::sinks::local::pin_latest;
use govflow::sinks::{StateConfig, WarehouseConfig};
use govflow::transform::DbtConfig;
use govflow::transform::{DbtCommand, DbtError, DbtRunner, NodeKind, NodeStatus};
use govflow_sim::{MutateRequest, SimOptions, SimServer};

struct Fixture {
    runtime: tokio::runtime::Runtime,
    sim: SimServer,
    options: SimOptions,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn config(&self) -> Config {
        let mut bc = config_for(&self.sim, &self.options);
        bc.page_size = 100;
        Config {
            bigcommerce: Some(bc),
            warehouse: WarehouseConfig::Local {
                dir: self.warehouse(),
            },
            state: StateConfig {
                dir: self.dir.path().join("state"),
            },
            ..Config::default()
        }
    }

    fn warehouse(&self) -> PathBuf {
        self.dir.path().join("warehouse")
    }

    fn run_pipeline(&self, full_refresh: bool) {
        let config = self.config();
        self.runtime.block_on(async move {
            let (_stop, stop_rx) = tokio::sync::watch::channel(false);
            let options = RunOptions {
                workers: 2,
                flush_interval: Duration::from_millis(100),
                once: true,
                full_refresh,
                ..RunOptions::default()
            };
            govflow::runtime::run(config, options, stop_rx, ProgressHandle::default())
                .await
                .expect("run --once succeeds");
        });
    }

    /// A runner of `project` writing its marts and dbt files under `name`.
    fn runner(&self, project: &Path, name: &str) -> DbtRunner {
        let python = PathBuf::from(python());
        let config = DbtConfig {
            project_dir: project.to_path_buf(),
            profiles_dir: project.to_path_buf(),
            marts_db: self.dir.path().join(name).join("marts.duckdb"),
            work_dir: self.dir.path().join(name).join("dbt"),
            executable: Some(python.with_file_name("dbt")),
            ..DbtConfig::default()
        };
        DbtRunner::from_config(&config).with_timeout(Duration::from_secs(300))
    }
}

/// The simulated store and one pipeline run into a temporary warehouse.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let options = store(41, 300, 60, 900);
        let sim = runtime.block_on(start_sim(options.clone()));
        let fixture = Fixture {
            runtime,
            sim,
            options,
            dir: tempfile::tempdir().unwrap(),
        };
        fixture.run_pipeline(false);
        fixture
    })
}

fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("transformer")
}

/// A copy of the project to change (without dbt's own files).
fn copy_project(to: &Path) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            if name == "target" || name == "logs" {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &to.join(&name));
            } else {
                std::fs::copy(entry.path(), to.join(&name)).unwrap();
            }
        }
    }
    copy(&project(), to);
    to.to_path_buf()
}

/// Each mart next to an independent computation over the warehouse's views.
const MART_CHECK: &str = r#"
import sys, duckdb
current, marts = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
con.execute(open(current).read())
con.execute(f"ATTACH '{marts}' AS marts (READ_ONLY)")
# docs/metrics.md, from the raw fields: a paid status or Refunded, not fully
# refunded (a Refunded order needs a partial amount).
PAID = """(status_id IN (2, 3, 4, 8, 9, 10, 11, 14)
            AND (refunded_amount = 0 OR refunded_amount < total_inc_tax)
            AND NOT (status_id = 4 AND refunded_amount = 0))"""
expected = {
 "mart_complete_purchase_order": """
   SELECT i.order_item_id, o.order_id, o.ordered_at, o.status, o.total_inc_tax, o.item_count,
          o.customer_id, c.email, c.full_name, c.customer_group_id,
          i.product_id, i.sku_id, i.sku, i.quantity, i.unit_price, i.line_total,
          greatest(o._epoch, i._epoch, coalesce(c._epoch, 0))
   FROM fct_order o
   JOIN fct_order_item i ON i.order_id = o.order_id
   LEFT JOIN dim_customer c ON c.customer_id = o.customer_id
   WHERE o.status_id IN (2, 10)""",
 "mart_daily_product_sales": """
   SELECT strftime(CAST(i.ordered_at AT TIME ZONE 'UTC' AS DATE), '%Y-%m-%d') || ':' || i.product_id,
          CAST(i.ordered_at AT TIME ZONE 'UTC' AS DATE), i.product_id, any_value(p.name),
          count(DISTINCT i.order_id), count(DISTINCT i.customer_id), count(*),
          sum(i.quantity), sum(i.line_total), max(i._epoch)
   FROM fct_order_item i LEFT JOIN dim_product p ON p.product_id = i.product_id
   WHERE i.order_id IN (SELECT order_id FROM fct_order WHERE """ + PAID + """)
   GROUP BY 2, 3""",
 "mart_customer_lifetime_value": """
   WITH o AS (
     SELECT customer_id, count(*) AS n, sum(total_inc_tax - refunded_amount) AS revenue,
            sum(total_inc_tax) AS gross, sum(refunded_amount) AS refunded,
            min(ordered_at) AS first_at, max(ordered_at) AS last_at, max(_epoch) AS e
     FROM fct_order WHERE """ + PAID + """ GROUP BY customer_id),
   l AS (
     SELECT customer_id, sum(quantity) AS items, count(DISTINCT product_id) AS products,
            max(_epoch) AS e
     FROM fct_order_item
     WHERE order_id IN (SELECT order_id FROM fct_order WHERE """ + PAID + """)
     GROUP BY customer_id)
   SELECT c.customer_id, c.email, c.full_name, c.customer_group_id, c.created_at,
          o.first_at, o.last_at, coalesce(o.n, 0), coalesce(o.revenue, 0),
          coalesce(o.gross, 0), coalesce(o.refunded, 0),
          CASE WHEN o.n > 0 THEN CAST(o.revenue / o.n AS DECIMAL(18, 4)) END,
          coalesce(l.items, 0), coalesce(l.products, 0),
          CASE WHEN coalesce(o.revenue, 0) >= 1000 THEN 'high'
               WHEN coalesce(o.revenue, 0) >= 250 THEN 'medium'
               WHEN coalesce(o.revenue, 0) > 0 THEN 'low' ELSE 'none' END,
          greatest(c._epoch, coalesce(l.e, 0), coalesce(o.e, 0))
   FROM dim_customer c
   LEFT JOIN o ON o.customer_id = c.customer_id
   LEFT JOIN l ON l.customer_id = c.customer_id""",
}
bad = 0
# The store has partial refunds, so net and gross revenue differ.
partial = con.execute("SELECT count(*) FROM fct_order WHERE is_revenue AND refunded_amount > 0").fetchone()[0]
print(f"revenue orders with a partial refund: {partial}")
if partial == 0:
    bad += 1
for mart, query in expected.items():
    got = f"SELECT * FROM marts.main.{mart}"
    rows = con.execute(f"SELECT count(*) FROM ({got})").fetchone()[0]
    missing = con.execute(f"SELECT * FROM ({query}) EXCEPT ALL {got}").fetchall()
    extra = con.execute(f"{got} EXCEPT ALL SELECT * FROM ({query})").fetchall()
    print(f"{mart}: {rows} rows, {len(missing)} missing, {len(extra)} unexpected")
    if missing or extra or rows == 0:
        bad += 1
        print("  missing:", missing[:3])
        print("  unexpected:", extra[:3])
sys.exit(1 if bad else 0)
"#;

fn assert_marts_match(f: &Fixture, marts_db: &Path) {
    let out = std::process::Command::new(python())
        .args(["-c", MART_CHECK])
        .arg(f.warehouse().join("current.sql"))
        .arg(marts_db)
        .output()
        .expect("python runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}", text.trim());
    assert!(out.status.success(), "marts differ: {text}");
}

#[test]
fn dbt_build_passes_and_every_mart_equals_an_independent_computation() {
    let f = fixture();
    let runner = f.runner(&project(), "main");
    let pin = pin_latest(&f.warehouse()).unwrap();
    let started = Instant::now();
    let report = runner.run(DbtCommand::Build, false, Some(&pin)).unwrap();
    eprintln!("{}first build: {:?}", report.summary(), started.elapsed());
    assert!(report.success(), "{}", report.summary());
    assert_eq!(report.exit_code, 0);
    assert_eq!(report.snapshot_epoch, pin.epoch());
    assert!(report.invocation_id.is_some());
    let models = report.counts(NodeKind::Model);
    assert_eq!(models.get(&NodeStatus::Success), Some(&8), "{models:?}");
    let tests = report.counts(NodeKind::Test);
    assert!(
        tests.get(&NodeStatus::Pass).is_some_and(|n| *n >= 30),
        "{tests:?}"
    );
    for mart in [
        "mart_complete_purchase_order",
        "mart_daily_product_sales",
        "mart_customer_lifetime_value",
    ] {
        let node = report.node(mart).expect("the mart ran");
        assert_eq!(node.status, NodeStatus::Success);
    }
    let unique = report
        .node("unique_mart_complete_purchase_order_order_item_id")
        .expect("the primary key test ran");
    assert_eq!(
        (unique.status.clone(), unique.failures),
        (NodeStatus::Pass, Some(0))
    );
    drop(pin);
    let marts_db = f.dir.path().join("main/marts.duckdb");
    assert_marts_match(f, &marts_db);

    // The store changes (deletes included, reconciled by a full refresh of the
    // pipeline); the incremental mart catches up on `_epoch` alone.
    for _ in 0..3 {
        f.sim
            .mutate(MutateRequest {
                count: 150,
                kinds: None,
                dirty: false,
            })
            .unwrap();
    }
    f.run_pipeline(true);
    let pin = pin_latest(&f.warehouse()).unwrap();
    assert!(pin.epoch() > report.snapshot_epoch);
    let started = Instant::now();
    let second = runner.run(DbtCommand::Build, false, Some(&pin)).unwrap();
    eprintln!("incremental build: {:?}", started.elapsed());
    assert!(second.success(), "{}", second.summary());
    drop(pin);
    assert_marts_match(f, &marts_db);
}

#[test]
fn a_failing_dbt_test_is_reported_with_its_failure_count() {
    let f = fixture();
    let scratch = tempfile::tempdir().unwrap();
    let project = copy_project(&scratch.path().join("transformer"));
    // Orders have several lines: this singular test fails once per such order.
    std::fs::create_dir_all(project.join("tests")).unwrap();
    std::fs::write(
        project.join("tests/order_has_one_line.sql"),
        "select order_id, count(*) as lines\n\
         from {{ ref('stg_govflow__order_items') }}\n\
         group by order_id\n\
         having count(*) > 1\n",
    )
    .unwrap();
    let runner = f.runner(&project, "failing");
    let pin = pin_latest(&f.warehouse()).unwrap();
    let report = runner.run(DbtCommand::Build, false, Some(&pin)).unwrap();
    assert_eq!(report.exit_code, 1, "{}", report.summary());
    assert!(!report.success());
    let failed = report.node("order_has_one_line").expect("the test ran");
    assert_eq!(failed.kind, NodeKind::Test);
    assert_eq!(failed.status, NodeStatus::Fail);
    // The count dbt reports is the number of orders with several lines.
    let query = pin.table_query("fct_order_item").unwrap();
    let want = duckdb_count(&format!(
        "SELECT count(*) FROM (SELECT order_id FROM ({query}) GROUP BY order_id HAVING count(*) > 1)"
    ));
    assert!(want > 0);
    assert_eq!(failed.failures, Some(want));
    // `dbt build` skips what depends on a failed test: every mart, and its tests.
    let failed: Vec<&str> = report
        .problems()
        .filter(|n| n.status != NodeStatus::Skipped)
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(failed, vec!["order_has_one_line"]);
    let mart = report.node("mart_complete_purchase_order").unwrap();
    assert_eq!(mart.status, NodeStatus::Skipped);
    assert!(report.summary().contains(&format!("({want} failing rows)")));
}

#[test]
fn a_broken_project_is_an_exit_code_2_error() {
    let f = fixture();
    let scratch = tempfile::tempdir().unwrap();
    let project = copy_project(&scratch.path().join("transformer"));
    std::fs::write(
        project.join("models/marts/mart_broken.sql"),
        "select * from {{ ref('stg_govflow__orders' }}\n",
    )
    .unwrap();
    let runner = f.runner(&project, "broken");
    let pin = pin_latest(&f.warehouse()).unwrap();
    let e = runner
        .run(DbtCommand::Build, false, Some(&pin))
        .unwrap_err();
    match &e {
        DbtError::Invocation { command, excerpt } => {
            assert_eq!(command, "build");
            assert!(excerpt.contains("mart_broken"), "{excerpt}");
        }
        other => panic!("expected an exit-code-2 error, got {other:?}"),
    }
    assert!(!e.is_retryable());
}

fn duckdb_count(sql: &str) -> u64 {
    let out = std::process::Command::new(python())
        .args([
            "-c",
            "import sys, duckdb; print(duckdb.connect().execute(sys.argv[1]).fetchone()[0])",
            sql,
        ])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}
