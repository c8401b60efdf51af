//! `cargo bench --bench dataflow`: govflow's models on the anchor workload
//! (customers, orders, order lines; changes = order updates, new orders with
//! 1–5 lines, customer email changes), beside a from-scratch recompute of the
//! same outputs, and the warehouse flush of such changes.
//!
//! `GOVFLOW_BENCH_SCALE` scales the anchor (1.0 = 1M customers, 5M orders,
//! 15M lines; default 0.1). `GOVFLOW_BENCH_WORKERS` sets the workers (default 2).

use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use dataflows::oracle::{RawState, compute};
use dataflows::records::{Customer, Inventory, Money, Order, OrderItem, Product, Upsert, Variant};
use govflow::runtime::dataflow::Dataflow;
use govflow::sinks::arrow;
use govflow::sinks::local::{LocalWarehouse, WarehouseOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const PRODUCTS: i64 = 5_000;

fn customer(id: i64, version: u32) -> Upsert {
    Upsert::Customer(
        id,
        Some(Customer {
            id,
            email: format!("c{id}.v{version}@example.com"),
            first_name: "Ada".into(),
            last_name: format!("L{id}"),
            company: String::new(),
            phone: String::new(),
            customer_group_id: id % 3,
            date_created: 1_700_000_000_000_000 + id,
            date_modified: 1_700_000_000_000_000 + id + version as i64,
        }),
    )
}

fn order(id: i64, customer_id: i64, status_id: i64, lines: &[OrderItem]) -> [Upsert; 2] {
    let total: i64 = lines.iter().map(|l| l.total_inc_tax.0).sum();
    [
        Upsert::OrderItems(id, Some(lines.to_vec())),
        Upsert::Order(
            id,
            Some(Order {
                id,
                customer_id,
                status_id,
                status: if status_id == 10 {
                    "Completed".into()
                } else {
                    "Pending".into()
                },
                subtotal_ex_tax: Money(total),
                subtotal_inc_tax: Money(total),
                total_ex_tax: Money(total),
                total_inc_tax: Money(total),
                items_total: lines.iter().map(|l| l.quantity).sum(),
                currency_code: "USD".into(),
                is_deleted: false,
                date_created: 1_710_000_000_000_000 + id,
                date_modified: 1_710_000_000_000_000 + id,
            }),
        ),
    ]
}

fn lines(rng: &mut StdRng, order_id: i64, first_line: i64, n: i64) -> Vec<OrderItem> {
    (0..n)
        .map(|i| {
            let product = rng.random_range(1..=PRODUCTS);
            let price = rng.random_range(1_000..2_000_000);
            let quantity = rng.random_range(1..4);
            OrderItem {
                id: first_line + i,
                order_id,
                product_id: product,
                variant_id: product * 2,
                sku: format!("SKU-{product}"),
                name: format!("Product {product}"),
                quantity,
                base_price: Money(price),
                price_ex_tax: Money(price),
                price_inc_tax: Money(price),
                total_ex_tax: Money(price * quantity),
                total_inc_tax: Money(price * quantity),
            }
        })
        .collect()
}

fn catalog() -> Vec<Upsert> {
    let mut out = Vec::new();
    for p in 1..=PRODUCTS {
        out.push(Upsert::Product(
            p,
            Some(Product {
                id: p,
                name: format!("Product {p}"),
                sku: format!("P-{p}"),
                price: Money(100_000),
                sale_price: Money(0),
                is_visible: true,
                availability: "available".into(),
                inventory_tracking: "variant".into(),
                brand_id: p % 20,
                date_created: 0,
                date_modified: 0,
            }),
        ));
        for v in [p * 2, p * 2 + 1] {
            out.push(Upsert::Variant(
                v,
                Some(Variant {
                    id: v,
                    product_id: p,
                    sku: format!("SKU-{v}"),
                    price: None,
                    sale_price: None,
                    inventory_level: 10,
                    purchasing_disabled: false,
                }),
            ));
            out.push(Upsert::Inventory(
                v,
                Some(Inventory {
                    variant_id: v,
                    product_id: p,
                    sku: format!("SKU-{v}"),
                    available_to_sell: 10,
                    total_inventory_onhand: 10,
                    is_in_stock: true,
                }),
            ));
        }
    }
    out
}

/// Resident memory of this process, in MiB.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_owned)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Workload {
    rng: StdRng,
    customers: i64,
    next_order: i64,
    next_line: i64,
    version: u32,
}

impl Workload {
    /// One change of the anchor mix: 40% order update, 40% new order, 20% email change.
    fn change(&mut self, out: &mut Vec<Upsert>) {
        let pick = self.rng.random_range(0..10);
        if pick < 4 {
            let id = self.rng.random_range(1..self.next_order);
            let customer = (id % self.customers) + 1;
            let n = self.rng.random_range(1..=5);
            let ls = lines(&mut self.rng, id, self.next_line, n);
            self.next_line += n;
            out.extend(order(id, customer, [10, 11, 2][id as usize % 3], &ls));
        } else if pick < 8 {
            let id = self.next_order;
            self.next_order += 1;
            let customer = self.rng.random_range(1..=self.customers);
            let n = self.rng.random_range(1..=5);
            let ls = lines(&mut self.rng, id, self.next_line, n);
            self.next_line += n;
            out.extend(order(id, customer, 11, &ls));
        } else {
            self.version += 1;
            out.push(customer(
                self.rng.random_range(1..=self.customers),
                self.version,
            ));
        }
    }
}

/// The workload's initial state, generated in epochs of about a million input
/// rows; deterministic, so the baseline can rebuild it without the dataflow
/// phase holding a second copy in memory.
fn load_epochs(w: &mut Workload, orders: i64, mut each: impl FnMut(Vec<Upsert>, u64)) {
    let mut epoch_in: Vec<Upsert> = catalog();
    let mut c = 1;
    while c <= w.customers || w.next_order <= orders {
        let mut rows = 0u64;
        while c <= w.customers && epoch_in.len() < 1_000_000 {
            epoch_in.push(customer(c, 0));
            c += 1;
            rows += 1;
        }
        while c > w.customers && w.next_order <= orders && epoch_in.len() < 1_000_000 {
            let id = w.next_order;
            w.next_order += 1;
            let n = 3;
            let ls = lines(&mut w.rng, id, w.next_line, n);
            w.next_line += n;
            epoch_in.extend(order(
                id,
                (id % w.customers) + 1,
                [10, 11, 2, 5][id as usize % 4],
                &ls,
            ));
            rows += 1 + n as u64;
        }
        each(std::mem::take(&mut epoch_in), rows);
    }
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let scale: f64 = env("GOVFLOW_BENCH_SCALE", 0.1);
    let workers: usize = env("GOVFLOW_BENCH_WORKERS", 2);
    // `GOVFLOW_BENCH_PARTS`: any of `epochs`, `baseline`, `flush` (default all).
    let parts: String = env("GOVFLOW_BENCH_PARTS", "epochs,baseline,flush".to_owned());
    let small_epochs: usize = env("GOVFLOW_BENCH_EPOCHS", 60);
    let customers = (1_000_000.0 * scale) as i64;
    let orders = (5_000_000.0 * scale) as i64;
    let workload = || Workload {
        rng: StdRng::seed_from_u64(1),
        customers,
        next_order: 1,
        next_line: 1,
        version: 0,
    };
    let mut w = workload();
    println!(
        "dataflow bench: {customers} customers, {orders} orders, ~{} lines, {workers} workers",
        orders * 3
    );

    // Initial load.
    let mut df = Dataflow::start(workers).expect("workers");
    let mut input_rows = 0u64;
    let mut load_time = Duration::ZERO;
    load_epochs(&mut w, orders, |epoch_in, rows| {
        input_rows += rows;
        let t = Instant::now();
        df.step(epoch_in).expect("step");
        load_time += t.elapsed();
    });
    println!(
        "  initial load            {:>10.0} rows/s  ({input_rows} rows in {:.1} s; target ≥ 2.5M rows/s at scale 1)",
        input_rows as f64 / load_time.as_secs_f64(),
        load_time.as_secs_f64()
    );
    println!(
        "  RSS after load          {:>10.0} MiB   (the whole process: the dataflow's state; target ≤ 1.3 GB at scale 1)",
        rss_mib()
    );

    // Change epochs; their upserts are kept for the baseline.
    let mut history: Vec<Upsert> = Vec::new();
    if parts.contains("epochs") {
        for batch in [1_000usize, 10_000] {
            let epochs = if batch == 1_000 { small_epochs } else { 10 };
            let mut times = Vec::new();
            for _ in 0..epochs {
                let mut ups = Vec::new();
                for _ in 0..batch {
                    w.change(&mut ups);
                }
                history.extend(ups.iter().cloned());
                let t = Instant::now();
                df.step(ups).expect("step");
                times.push(t.elapsed());
            }
            let total: Duration = times.iter().sum();
            times.sort();
            println!(
                "  {batch:>5}-change epochs    p50 {:>7.1} ms  p99 {:>7.1} ms  {:>8.0} changes/s  (targets for 1k: p99 ≤ 15 ms, ≥ 150k/s)",
                percentile(&times, 0.5).as_secs_f64() * 1e3,
                percentile(&times, 0.99).as_secs_f64() * 1e3,
                (batch * epochs) as f64 / total.as_secs_f64(),
            );
        }
    }
    drop(df);
    if !parts.contains("baseline") && !parts.contains("flush") {
        return;
    }

    // The same state, rebuilt for the baseline and the flush.
    let mut state = RawState::default();
    load_epochs(&mut workload(), orders, |epoch_in, _| {
        epoch_in.into_iter().for_each(|u| state.apply(u))
    });
    history.into_iter().for_each(|u| state.apply(u));

    // Baseline: recompute every output from scratch after a batch.
    if parts.contains("baseline") {
        let t = Instant::now();
        let rows = compute(&state).len();
        let recompute = t.elapsed();
        println!(
            "  baseline: recompute     {:>10.1} s per batch ({rows} output rows)",
            recompute.as_secs_f64()
        );
    }
    if !parts.contains("flush") {
        return;
    }

    // Warehouse flush: the load, then 1k-change epochs into tables of that size.
    let dir = std::env::temp_dir().join(format!("govflow-bench-{}", std::process::id()));
    let mut wh = LocalWarehouse::open(&dir, &arrow::table_specs(), WarehouseOptions::default())
        .expect("warehouse");
    let mut df2 = Dataflow::start(workers).expect("workers");
    let load: Vec<Upsert> = state.upserts();
    drop(state);
    let initial = df2.step(load).expect("step");
    let batches: Vec<_> = initial
        .iter()
        .map(|(t, rows)| arrow::table_changes(*t, 1, rows).expect("arrow"))
        .collect();
    drop(initial);
    wh.commit(1, &batches).expect("commit");
    drop(batches);
    let mut flush_times = Vec::new();
    for epoch in 2..42u64 {
        let mut ups = Vec::new();
        for _ in 0..1_000 {
            w.change(&mut ups);
        }
        let changes = df2.step(ups).expect("step");
        let t = Instant::now();
        let batches: Vec<_> = changes
            .iter()
            .map(|(t, rows)| arrow::table_changes(*t, epoch, rows).expect("arrow"))
            .collect();
        let arrow_time = t.elapsed();
        wh.commit(epoch, &batches).expect("commit");
        flush_times.push(t.elapsed());
        if std::env::var("GOVFLOW_BENCH_DEBUG").is_ok() {
            eprintln!(
                "epoch {epoch}: {} changes, arrow {arrow_time:?}, total {:?}",
                changes.values().map(Vec::len).sum::<usize>(),
                t.elapsed()
            );
        }
    }
    flush_times.sort();
    let largest = wh
        .manifest()
        .tables
        .values()
        .map(|t| t.files.iter().map(|f| f.rows).sum::<u64>())
        .max()
        .unwrap_or(0);
    println!(
        "  flush of 1k changes     p50 {:>7.1} ms  p99 {:>7.1} ms  into tables of up to {largest} rows (target ≤ 20 ms)",
        percentile(&flush_times, 0.5).as_secs_f64() * 1e3,
        percentile(&flush_times, 0.99).as_secs_f64() * 1e3,
    );
    let _ = std::fs::remove_dir_all(&dir);
}
