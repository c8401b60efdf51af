//! `cargo bench --bench postgres_pull`: rows/s pulled from PostgreSQL on
//! loopback for a narrow table, by the source's keyset walk, with a baseline
//! in the same run: the same rows read by `LIMIT … OFFSET` pagination, what a
//! straightforward paginating client does.
//!
//! A throwaway cluster is started for the run (or `DATABASE_URL` is used).
//! `GOVFLOW_BENCH_ROWS` sets the table size (default 500,000).

#[path = "../tests/common/pg.rs"]
mod pg;

use std::time::{Duration, Instant, SystemTime};

use govflow::config::Secret;
use govflow::sources::postgres::{PgBatch, PgSource};
use govflow::sources::postgres::{PostgresConfig, PostgresTable};
use tokio::sync::mpsc;

const PAGE: u32 = 5000;

async fn govflow_pull(source: &PgSource) -> (u64, f64) {
    let (tx, mut rx) = mpsc::channel::<PgBatch>(16);
    let consumer = tokio::spawn(async move {
        let mut n = 0u64;
        while let Some(b) = rx.recv().await {
            n += b.rows.len() as u64;
        }
        n
    });
    let start = Instant::now();
    source
        .poll_table("point_transaction", None, &tx)
        .await
        .expect("pull");
    drop(tx);
    let n = consumer.await.expect("consumer");
    (n, start.elapsed().as_secs_f64())
}

/// The baseline: OFFSET pages in the same order, values decoded by the driver.
async fn offset_pull(client: &tokio_postgres::Client) -> (u64, f64) {
    let start = Instant::now();
    let statement = client
        .prepare(
            "SELECT id, customer_id, points, updated_at FROM point_transaction
             ORDER BY updated_at, id LIMIT $1 OFFSET $2",
        )
        .await
        .expect("prepare");
    let mut n = 0u64;
    let mut offset = 0i64;
    loop {
        let rows = client
            .query(&statement, &[&i64::from(PAGE), &offset])
            .await
            .expect("page");
        for row in &rows {
            let _: (i64, i64, i32, SystemTime) = (row.get(0), row.get(1), row.get(2), row.get(3));
        }
        n += rows.len() as u64;
        offset += rows.len() as i64;
        if rows.len() < PAGE as usize {
            break;
        }
    }
    (n, start.elapsed().as_secs_f64())
}

fn main() {
    let rows: u64 = std::env::var("GOVFLOW_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = pg::shared();
    runtime.block_on(async {
        let url = server.create_database("govflow_bench_pull", "").await;
        let admin = server.admin("govflow_bench_pull").await;
        admin
            .batch_execute(&format!(
                "CREATE TABLE point_transaction (
                    id bigint PRIMARY KEY, customer_id bigint NOT NULL, points integer NOT NULL,
                    updated_at timestamptz NOT NULL);
                 INSERT INTO point_transaction
                 SELECT i, i % 50000, (i % 1000) - 500,
                        now() - interval '30 days' + i * interval '1 second' / 10
                 FROM generate_series(1, {rows}) i;
                 CREATE INDEX ON point_transaction (updated_at, id);"
            ))
            .await
            .expect("load");
        admin
            .batch_execute("VACUUM ANALYZE point_transaction")
            .await
            .expect("vacuum");
        println!(
            "narrow table: {rows} rows (id bigint, customer_id bigint, points integer, updated_at timestamptz), pages of {PAGE}, loopback"
        );
        let mut config = PostgresConfig::new(
            Secret::new(url),
            vec![PostgresTable {
                name: "point_transaction".into(),
                key: vec!["id".into()],
                cursor: Some("updated_at".into()),
        columns: None,
        filter: None,
            }],
        );
        config.page_size = PAGE;
        config.connect_timeout = Duration::from_secs(10);
        let source = PgSource::new("bench", config).expect("source");
        let mut results = Vec::new();
        let mut best = (0, f64::MAX);
        for _ in 0..3 {
            let (n, secs) = offset_pull(&admin).await;
            if secs < best.1 {
                best = (n, secs);
            }
        }
        results.push(("baseline: LIMIT/OFFSET pages, driver decoding", best));
        let mut best = (0, f64::MAX);
        for _ in 0..3 {
            let (n, secs) = govflow_pull(&source).await;
            if secs < best.1 {
                best = (n, secs);
            }
        }
        results.push(("govflow: keyset pages, typed rows to a channel", best));
        for (label, (n, secs)) in results {
            println!(
                "  {label:<48} {:>9.0} rows/s  ({n} rows in {secs:.2} s, best of 3)",
                n as f64 / secs
            );
        }
    });
}
