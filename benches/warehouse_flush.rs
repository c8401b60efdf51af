//! `cargo bench --bench warehouse_flush`: committing 1k changes to the local
//! warehouse when the table already holds 1M or 15M rows (the anchor's
//! customer and order-line counts), beside the baseline of rewriting the
//! whole table (the old platform's full reload of a table into Parquet).
//!
//! Each size gets a fresh warehouse holding one `fct_order_item` table, loaded
//! in epochs of 1M rows (the warehouse merges them in the background as it
//! would during an initial load), then `GOVFLOW_BENCH_EPOCHS` (default 100)
//! epochs of 1,000 changes: 600 updates, 300 inserts and 100 deletes. A
//! commit's time is the Arrow conversion plus `LocalWarehouse::commit` (files
//! written and synced, manifest and `current.sql` published), background
//! merges running as they do in the service.
//!
//! `GOVFLOW_BENCH_SIZES` (default `1000000,15000000`) sets the table sizes.

#[path = "common/stats.rs"]
mod stats;
use stats::{env, percentile};

use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use dataflows::rows::fct_order_item::FctOrderItem;
use dataflows::scalar::Money;
use dataflows::{Table, TableRow};
use govflow::format::{table_changes, table_spec};
use govflow::sinks::local::{LocalWarehouse, WarehouseOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Rows per load epoch.
const LOAD_CHUNK: i64 = 1_000_000;

/// Changes per measured epoch.
const CHANGES: usize = 1_000;

/// The line with key `id`, version `version` (versions differ in quantity and totals).
fn line(id: i64, version: i64) -> TableRow {
    let product = id % 5_000 + 1;
    let quantity = version % 3 + 1;
    let price = 1_000 + (id * 7_919) % 2_000_000;
    TableRow::FctOrderItem(FctOrderItem {
        order_item_id: id,
        order_id: id / 3 + 1,
        customer_id: Some(id / 15 + 1),
        product_id: product,
        sku_id: product * 2,
        sku: format!("SKU-{}", product * 2),
        quantity,
        unit_price: Money(price),
        line_total: Money(price * quantity),
        status_id: [10, 11, 2][(id % 3) as usize],
        status: ["Completed", "Pending", "Shipped"][(id % 3) as usize].into(),
        ordered_at: 1_710_000_000_000_000 + id,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Commits `rows` (as inserts) at `epoch`; returns the time taken.
fn commit(wh: &mut LocalWarehouse, epoch: u64, rows: &[(TableRow, isize)]) -> Duration {
    let t = Instant::now();
    let changes =
        table_changes(Table::FctOrderItem, epoch, rows, &Default::default()).expect("arrow");
    wh.commit(epoch, &[changes]).expect("commit");
    t.elapsed()
}

fn bench_size(root: &std::path::Path, size: i64, epochs: usize) {
    let specs = [table_spec(Table::FctOrderItem)];

    // Baseline: the whole table written in one commit, as a full reload does.
    let full: Vec<(TableRow, isize)> = (1..=size).map(|id| (line(id, 0), 1)).collect();
    let dir = root.join(format!("full-{size}"));
    let mut wh = LocalWarehouse::open(&dir, &specs, WarehouseOptions::default()).expect("open");
    let reload = commit(&mut wh, 1, &full);
    drop((wh, full));
    let _ = std::fs::remove_dir_all(&dir);

    // govflow: the table loaded in epochs, then 1k-change commits.
    let dir = root.join(format!("incremental-{size}"));
    let mut wh = LocalWarehouse::open(&dir, &specs, WarehouseOptions::default()).expect("open");
    let mut epoch = 0;
    let load_started = Instant::now();
    for first in (1..=size).step_by(LOAD_CHUNK as usize) {
        let rows: Vec<_> = (first..(first + LOAD_CHUNK).min(size + 1))
            .map(|id| (line(id, 0), 1))
            .collect();
        epoch += 1;
        commit(&mut wh, epoch, &rows);
    }
    wh.wait_for_merges();
    let load = load_started.elapsed();

    let mut rng = StdRng::seed_from_u64(7);
    // Live keys are 1..=next-1 minus `deleted`; versions count updates.
    let mut next = size + 1;
    let mut deleted = std::collections::HashSet::new();
    let mut versions = std::collections::HashMap::new();
    let mut times = Vec::with_capacity(epochs);
    for _ in 0..epochs {
        let mut rows = Vec::with_capacity(2 * CHANGES);
        let mut touched = std::collections::HashSet::new();
        while touched.len() < CHANGES {
            let pick = touched.len() % 10;
            if pick < 3 {
                touched.insert(next);
                rows.push((line(next, 0), 1));
                next += 1;
                continue;
            }
            let id = rng.random_range(1..next);
            if deleted.contains(&id) || !touched.insert(id) {
                continue;
            }
            let version: &mut i64 = versions.entry(id).or_default();
            rows.push((line(id, *version), -1));
            if pick < 9 {
                *version += 1;
                rows.push((line(id, *version), 1));
            } else {
                deleted.insert(id);
            }
        }
        epoch += 1;
        times.push(commit(&mut wh, epoch, &rows));
    }
    let total: Duration = times.iter().sum();
    times.sort();
    println!(
        "  {size:>9} rows  govflow 1k-change commit  p50 {:>6.1} ms  p99 {:>6.1} ms  max {:>6.1} ms  ({:.0} changes/s)",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(times[times.len() - 1]),
        (CHANGES * epochs) as f64 / total.as_secs_f64(),
    );
    println!(
        "  {size:>9} rows  baseline: full rewrite    {:>8.0} ms per batch  ({:.0}× the govflow p50)",
        ms(reload),
        reload.as_secs_f64() / percentile(&times, 0.5).as_secs_f64(),
    );
    println!(
        "  {size:>9} rows  (load in {} epochs of up to {LOAD_CHUNK} rows, merges included: {:.1} s)",
        (size + LOAD_CHUNK - 1) / LOAD_CHUNK,
        load.as_secs_f64()
    );
    drop(wh);
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let sizes: String = env("GOVFLOW_BENCH_SIZES", "1000000,15000000".to_owned());
    let epochs: usize = env("GOVFLOW_BENCH_EPOCHS", 100);
    let root = std::env::temp_dir().join(format!("govflow-flush-bench-{}", std::process::id()));
    println!(
        "warehouse flush bench: {CHANGES} changes per commit into fct_order_item, {epochs} commits per size (target ≤ 20 ms whatever the table size)"
    );
    for size in sizes
        .split(',')
        .filter_map(|s| s.trim().parse::<i64>().ok())
    {
        bench_size(&root, size, epochs);
    }
    let _ = std::fs::remove_dir_all(&root);
}
