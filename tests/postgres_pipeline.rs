//! PostgreSQL through the whole pipeline: two databases and the simulated
//! store feed one run; point transactions reach `dim_customer.point_balance`,
//! quotations find their customer by email; updates appear after one poll,
//! deletes after a full refresh, and the result equals a fresh full refresh
//! into an empty warehouse.

mod common;

use std::path::Path;
use std::time::Duration;

use common::pg;
use common::*;
use dataflows::checks::{Value, field};
use dataflows::{Table, TableRow};
use govflow::config::Secret;
use govflow::settings::Config;
use govflow::sinks::{StateConfig, WarehouseConfig};
use govflow::sources::postgres::{PostgresConfig, PostgresTable};
use govflow_sim::{SimOptions, SimServer};

const POINTS: &str = "CREATE TABLE point_transaction (
    id bigint PRIMARY KEY,
    customer_id bigint NOT NULL,
    points bigint NOT NULL,
    reason text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);";

const QUOTATIONS: &str = "CREATE TABLE quotation (
    id bigint PRIMARY KEY,
    customer_email text NOT NULL,
    status text NOT NULL,
    total numeric(18,4) NOT NULL,
    currency_code text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);";

fn table(name: &str) -> PostgresTable {
    PostgresTable {
        name: name.into(),
        key: vec!["id".into()],
        cursor: Some("updated_at".into()),
        columns: None,
        filter: None,
    }
}

fn config(sim: &SimServer, options: &SimOptions, urls: [&str; 2], dir: &Path) -> Config {
    let mut bc = config_for(sim, options);
    bc.page_size = 100;
    let db = |url: &str, name: &str| {
        let mut c = PostgresConfig::new(Secret::new(url), vec![table(name)]);
        c.connect_timeout = Duration::from_secs(5);
        c
    };
    Config {
        bigcommerce: Some(bc),
        warehouse: WarehouseConfig::Local {
            dir: dir.join("warehouse"),
        },
        state: StateConfig {
            dir: dir.join("state"),
        },
        postgres: [
            ("wise".to_string(), db(urls[0], "point_transaction")),
            ("commerce".to_string(), db(urls[1], "quotation")),
        ]
        .into_iter()
        .collect(),
        checks: Vec::new(),
        ..Config::default()
    }
}

fn rows(dir: &Path, table: Table) -> Vec<TableRow> {
    tables(dir)
        .into_iter()
        .find(|(t, _)| *t == table)
        .map(|(_, rows)| rows)
        .unwrap_or_default()
}

fn int(row: &TableRow, column: &str) -> Option<i64> {
    match field(row, column) {
        Some(Value::Int(v)) => Some(v),
        _ => None,
    }
}

/// `customer_id → point_balance` of every customer with a non-zero balance.
fn balances(dir: &Path) -> Vec<(i64, i64)> {
    rows(dir, Table::DimCustomer)
        .iter()
        .filter_map(|r| Some((int(r, "customer_id")?, int(r, "point_balance")?)))
        .filter(|(_, b)| *b != 0)
        .collect()
}

/// `quotation_id → customer_id` of every quotation.
fn quotation_customers(dir: &Path) -> Vec<(i64, Option<i64>)> {
    rows(dir, Table::FctQuotation)
        .iter()
        .filter_map(|r| Some((int(r, "quotation_id")?, int(r, "customer_id"))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rows_reach_the_models_and_deletes_reconcile_on_full_refresh() {
    let options = store(41, 120, 20, 150);
    let sim = start_sim(options.clone()).await;
    let truth = truth(&sim).await;
    let mut customers = truth.customers.values();
    let (a, b) = (customers.next().unwrap(), customers.next().unwrap());

    let server = pg::shared();
    let wise = server.create_database("pipeline_wise", "").await;
    let commerce = server.create_database("pipeline_commerce", "").await;
    let points = server.admin("pipeline_wise").await;
    let quotes = server.admin("pipeline_commerce").await;
    points.batch_execute(POINTS).await.unwrap();
    quotes.batch_execute(QUOTATIONS).await.unwrap();
    points
        .execute(
            "INSERT INTO point_transaction (id, customer_id, points, reason) VALUES
             (1, $1, 100, 'order'), (2, $1, -30, 'redeem'), (3, $2, 7, 'review')",
            &[&a.id, &b.id],
        )
        .await
        .unwrap();
    let shouted = format!("  {}", a.email.to_uppercase());
    quotes
        .execute(
            "INSERT INTO quotation (id, customer_email, status, total, currency_code) VALUES
             (10, $1, 'sent', 1250.5, 'KRW'), (11, 'nobody@example.com', 'draft', 3, 'KRW')",
            &[&shouted],
        )
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = config(&sim, &options, [&wise, &commerce], dir.path());
    run_once(&config, false, 2).await;
    let mut want = vec![(a.id, 70), (b.id, 7)];
    want.sort();
    assert_eq!(balances(dir.path()), want);
    assert_eq!(
        quotation_customers(dir.path()),
        vec![(10, Some(a.id)), (11, None)]
    );
    let checkpoint =
        govflow::runtime::checkpoint::Checkpoint::load(&dir.path().join("state")).unwrap();
    let cursors = |source: &str| -> govflow::sources::postgres::PgCursors {
        checkpoint.cursors(source).unwrap()
    };
    assert!(cursors("postgres.wise").get("point_transaction").is_some());
    assert!(cursors("postgres.commerce").get("quotation").is_some());

    // An update and an insert appear after one poll; a delete needs a full refresh.
    points
        .batch_execute(&format!(
            "UPDATE point_transaction SET points = 50, updated_at = clock_timestamp() WHERE id = 3;
             INSERT INTO point_transaction (id, customer_id, points, reason) VALUES (4, {}, 1, 'order');
             DELETE FROM point_transaction WHERE id = 2;",
            b.id
        ))
        .await
        .unwrap();
    quotes
        .batch_execute("DELETE FROM quotation WHERE id = 11")
        .await
        .unwrap();
    run_once(&config, false, 2).await;
    let mut want = vec![(a.id, 70), (b.id, 51)];
    want.sort();
    assert_eq!(balances(dir.path()), want, "the delete is not seen yet");
    assert_eq!(quotation_customers(dir.path()).len(), 2);

    run_once(&config, true, 2).await;
    let mut want = vec![(a.id, 100), (b.id, 51)];
    want.sort();
    assert_eq!(balances(dir.path()), want);
    assert_eq!(quotation_customers(dir.path()), vec![(10, Some(a.id))]);

    // The same as a full refresh into an empty warehouse.
    let fresh = tempfile::tempdir().unwrap();
    run_once(&config_in(&config, fresh.path()), true, 2).await;
    assert_same_warehouses(&tables(dir.path()), &tables(fresh.path()));
}

fn config_in(config: &Config, dir: &Path) -> Config {
    let mut c = config.clone();
    c.warehouse = WarehouseConfig::Local {
        dir: dir.join("warehouse"),
    };
    c.state = StateConfig {
        dir: dir.join("state"),
    };
    c
}
