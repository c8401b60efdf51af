//! BigQuery flush throughput against the emulators on loopback
//! (local-bigquery + fake-gcs-server, installed by `./dev.sh test`):
//! rows/s per flush and BigQuery jobs per epoch.
//!
//! `cargo bench --bench bigquery_flush` (options: `-- --rows 1000,10000,50000 --epochs 10`).
//! Each case spools `epochs` epochs of `rows / epochs` changed rows of
//! `fct_order_item` (a wide fact: integers, text, money, timestamps; a tenth
//! of the rows in later epochs update or delete earlier ones), then flushes
//! them in one round: Parquet → GCS → load job → MERGE.

#[path = "../tests/common/bigquery.rs"]
#[allow(dead_code)]
mod bigquery;

use std::sync::Arc;
use std::time::Instant;

use arrow_array::{
    ArrayRef, BooleanArray, Decimal128Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_schema::DataType;
use dataflows::Table;
use govflow::format::{TableChanges, TableSpec};
use govflow::format::{table_spec, table_specs};
use govflow::sinks::bigquery::{Flusher, Spool};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// `n` rows of `spec` with keys `first..first + n`, all columns filled by type.
fn rows(spec: &TableSpec, first: i64, n: usize, epoch: u64, salt: i64) -> RecordBatch {
    let columns: Vec<ArrayRef> = spec
        .schema
        .fields()
        .iter()
        .map(|f| -> ArrayRef {
            let ids = (0..n as i64).map(|i| first + i);
            if f.name() == "_epoch" {
                return Arc::new(Int64Array::from(vec![epoch as i64; n]));
            }
            if f.name() == &spec.key {
                return Arc::new(Int64Array::from_iter_values(ids));
            }
            match f.data_type() {
                DataType::Int64 => Arc::new(Int64Array::from_iter_values(
                    ids.map(|i| (i * 7 + salt) % 10_000),
                )),
                DataType::Utf8 => Arc::new(StringArray::from_iter_values(
                    ids.map(|i| format!("{}-{i}-{salt}", f.name())),
                )),
                DataType::Boolean => Arc::new(BooleanArray::from_iter(
                    ids.map(|i| Some((i + salt) % 2 == 0)),
                )),
                DataType::Timestamp(_, tz) => Arc::new(
                    TimestampMicrosecondArray::from_iter_values(
                        ids.map(|i| 1_750_000_000_000_000 + i * 60_000_000 + salt),
                    )
                    .with_timezone_opt(tz.clone()),
                ),
                DataType::Decimal128(p, s) => Arc::new(
                    Decimal128Array::from_iter_values(
                        ids.map(|i| ((i * 1234 + salt) % 10_000_000) as i128),
                    )
                    .with_precision_and_scale(*p, *s)
                    .unwrap(),
                ),
                other => panic!("no generator for {other}"),
            }
        })
        .collect();
    RecordBatch::try_new(spec.schema.clone(), columns).unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let cases: Vec<usize> = arg("--rows")
        .unwrap_or_else(|| "1000,10000,50000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("--rows N,N,..."))
        .collect();
    let epochs: u64 = arg("--epochs").map_or(10, |e| e.parse().expect("--epochs N"));
    let emulators = bigquery::Emulators::start().await;
    let spec = table_spec(Table::FctOrderItem);
    println!(
        "bigquery flush into local-bigquery 0.4.0 + fake-gcs-server on loopback, table {}, {epochs} epochs per flush",
        spec.name
    );
    println!(
        "{:>8} {:>10} {:>10} {:>10} {:>9} {:>11} {:>12} {:>10}",
        "rows", "spool ms", "flush ms", "rows/s", "jobs", "jobs/epoch", "parquet KiB", "merged"
    );
    for (case, &total) in cases.iter().enumerate() {
        let state = tempfile::tempdir().unwrap();
        let config = emulators.config(&format!("bench_{case}"), state.path());
        let spool = Spool::open(state.path(), &table_specs(), Some(epochs)).unwrap();
        let per_epoch = (total as u64 / epochs).max(1) as usize;
        let started = Instant::now();
        let mut next_key = 1i64;
        for epoch in 1..=epochs {
            // New rows, plus updates of a tenth of the previous epoch's and a few deletes.
            let mut batches = vec![rows(&spec, next_key, per_epoch, epoch, epoch as i64)];
            let mut deleted = Vec::new();
            if epoch > 1 {
                let prev = next_key - per_epoch as i64;
                batches.push(rows(&spec, prev, per_epoch / 10, epoch, epoch as i64 * 31));
                deleted = (0..(per_epoch / 50) as i64)
                    .map(|i| prev + per_epoch as i64 / 10 + i)
                    .collect();
            }
            next_key += per_epoch as i64;
            let upserts = arrow_select::concat::concat_batches(&spec.schema, &batches).unwrap();
            let change = TableChanges {
                table: spec.name.clone(),
                upserts,
                deleted_keys: Arc::new(Int64Array::from(deleted)),
            };
            spool.write(epoch, &[change]).unwrap();
        }
        let spool_ms = started.elapsed().as_secs_f64() * 1e3;
        let flusher = Flusher::new(
            &config,
            Spool::attach(state.path(), &table_specs()).unwrap(),
        )
        .await
        .unwrap();
        flusher.prepare().await.unwrap();
        let started = Instant::now();
        let stats = flusher
            .flush_all(epochs)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", emulators.bq_log()));
        let secs = started.elapsed().as_secs_f64();
        let merged = flusher
            .client()
            .query(&format!(
                "SELECT COUNT(*) FROM `{}.{}.{}`",
                config.project, config.dataset, spec.name
            ))
            .await
            .unwrap()
            .rows[0][0]
            .as_str()
            .unwrap_or("?")
            .to_string();
        println!(
            "{:>8} {:>10.1} {:>10.0} {:>10.0} {:>9} {:>11.2} {:>12.0} {:>10}",
            stats.rows,
            spool_ms,
            secs * 1e3,
            stats.rows as f64 / secs,
            stats.jobs(),
            stats.jobs() as f64 / epochs as f64,
            stats.bytes as f64 / 1024.0,
            merged
        );
    }
}
