//! `cargo bench --bench dataflow`: govflow's models on the anchor workload
//! (customers, orders, order lines; changes = order updates, new orders with
//! 1–5 lines, customer email changes), beside a from-scratch recompute of the
//! same outputs, and the warehouse flush of such changes.
//!
//! `GOVFLOW_BENCH_SCALE` scales the anchor (1.0 = 1M customers, 5M orders,
//! 15M lines; default 0.1). `GOVFLOW_BENCH_WORKERS` sets the workers (default 2).

use std::time::{Duration, Instant};

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
    fn change(&mut self, out: &mut Vec<Upsert>) -> u64 {
        let pick = self.rng.random_range(0..10);
        if pick < 4 {
            let id = self.rng.random_range(1..self.next_order);
            let customer = (id % self.customers) + 1;
            let n = self.rng.random_range(1..=5);
            let ls = lines(&mut self.rng, id, self.next_line, n);
            self.next_line += n;
            out.extend(order(id, customer, [10, 11, 2][id as usize % 3], &ls));
            1 + n as u64
        } else if pick < 8 {
            let id = self.next_order;
            self.next_order += 1;
            let customer = self.rng.random_range(1..=self.customers);
            let n = self.rng.random_range(1..=5);
            let ls = lines(&mut self.rng, id, self.next_line, n);
            self.next_line += n;
            out.extend(order(id, customer, 11, &ls));
            1 + n as u64
        } else {
            self.version += 1;
            out.push(customer(
                self.rng.random_range(1..=self.customers),
                self.version,
            ));
            1
        }
    }
}

fn main() {
    let scale: f64 = std::env::var("GOVFLOW_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.1);
    let workers: usize = std::env::var("GOVFLOW_BENCH_WORKERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let customers = (1_000_000.0 * scale) as i64;
    let orders = (5_000_000.0 * scale) as i64;
    let mut w = Workload {
        rng: StdRng::seed_from_u64(1),
        customers,
        next_order: 1,
        next_line: 1,
        version: 0,
    };
    println!(
        "dataflow bench: {customers} customers, {orders} orders, ~{} lines, {workers} workers",
        orders * 3
    );

    // Initial load, in epochs of about a million input rows.
    let mut df = Dataflow::start(workers).expect("workers");
    let mut state = RawState::default();
    let mut input_rows = 0u64;
    let mut load_time = Duration::ZERO;
    let mut epoch_in: Vec<Upsert> = catalog();
    let mut c = 1;
    while c <= customers || w.next_order <= orders {
        while c <= customers && epoch_in.len() < 1_000_000 {
            epoch_in.push(customer(c, 0));
            c += 1;
            input_rows += 1;
        }
        while c > customers && w.next_order <= orders && epoch_in.len() < 1_000_000 {
            let id = w.next_order;
            w.next_order += 1;
            let n = 3;
            let ls = lines(&mut w.rng, id, w.next_line, n);
            w.next_line += n;
            epoch_in.extend(order(
                id,
                (id % customers) + 1,
                [10, 11, 2, 5][id as usize % 4],
                &ls,
            ));
            input_rows += 1 + n as u64;
        }
        for u in &epoch_in {
            state.apply(u.clone());
        }
        let t = Instant::now();
        df.step(std::mem::take(&mut epoch_in)).expect("step");
        load_time += t.elapsed();
    }
    let rss = rss_mib();
    println!(
        "  initial load            {:>10.0} rows/s  ({input_rows} rows in {:.1} s; target ≥ 2.5M rows/s at scale 1)",
        input_rows as f64 / load_time.as_secs_f64(),
        load_time.as_secs_f64()
    );
    println!(
        "  RSS after load          {rss:>10.0} MiB   (includes the recompute baseline's copy of the state)"
    );

    // Change epochs.
    for batch in [1_000usize, 10_000] {
        let epochs = if batch == 1_000 { 60 } else { 10 };
        let mut times = Vec::new();
        let mut changes = 0u64;
        for _ in 0..epochs {
            let mut ups = Vec::new();
            for _ in 0..batch {
                changes += w.change(&mut ups);
            }
            for u in &ups {
                state.apply(u.clone());
            }
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
        let _ = changes;
    }

    // Baseline: recompute every output from scratch after a batch.
    let t = Instant::now();
    let rows = compute(&state).len();
    let recompute = t.elapsed();
    println!(
        "  baseline: recompute     {:>10.1} s per batch ({rows} output rows)",
        recompute.as_secs_f64()
    );

    // Warehouse flush: the load, then 1k-change epochs into tables of that size.
    let dir = std::env::temp_dir().join(format!("govflow-bench-{}", std::process::id()));
    let mut wh = LocalWarehouse::open(&dir, &arrow::table_specs(), WarehouseOptions::default())
        .expect("warehouse");
    let mut df2 = Dataflow::start(workers).expect("workers");
    let load: Vec<Upsert> = state.upserts();
    let initial = df2.step(load).expect("step");
    let batches: Vec<_> = initial
        .iter()
        .map(|(t, rows)| arrow::table_changes(*t, 1, rows).expect("arrow"))
        .collect();
    wh.commit(1, &batches).expect("commit");
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
        wh.commit(epoch, &batches).expect("commit");
        flush_times.push(t.elapsed());
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
