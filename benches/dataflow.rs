//! `cargo bench --bench dataflow`: govflow's models on the anchor workload
//! (customers, orders, order lines; changes = order updates, new orders with
//! 1–5 lines, customer email changes), side by side with its baselines in one
//! run: a from-scratch recompute of the same outputs, and, with
//! `--features bench-dbsp`, Feldera's dbsp maintaining `fct_order` and
//! `dim_customer` (the `peers` crate).
//!
//! Each engine runs in a child process of its own, so each RSS figure is that
//! engine's alone; every child generates the same deterministic workload.
//!
//! `GOVFLOW_BENCH_SCALE` scales the anchor (1.0 = 1M customers, 5M orders,
//! 15M lines; default 0.1). `GOVFLOW_BENCH_WORKERS` sets the workers (default
//! 2), `GOVFLOW_BENCH_EPOCHS` the 1k-change epochs (default 60),
//! `GOVFLOW_BENCH_ENGINES` which engines run (default all built),
//! `GOVFLOW_BENCH_LOAD_EPOCH` the upserts per epoch of the initial load
//! (default: the runtime's `--max-epoch-rows`, 10,000).
//!
//! The `restart` engine times a restart: a `warehouse` child commits the
//! loaded state's raw tables to a local warehouse, then a `restart` child
//! rebuilds a fresh dataflow from it with the runtime's replay.

#[path = "common/stats.rs"]
mod stats;
use dataflows::rows::raw_bc_customer::RawBcCustomer;
use dataflows::rows::raw_bc_inventory::RawBcInventory;
use dataflows::rows::raw_bc_order::RawBcOrder;
use dataflows::rows::raw_bc_order_item::RawBcOrderItem;
use dataflows::rows::raw_bc_product::RawBcProduct;
use dataflows::rows::raw_bc_variant::RawBcVariant;
use stats::{env, percentile};

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use dataflows::oracle::{RawState, compute};
use dataflows::records::{Payloads, Upsert};
use dataflows::scalar::Money;
use dataflows::{Table, TableRow};
use govflow::format::{table_changes, table_specs};
use govflow::runtime::dataflow::Dataflow;
use govflow::runtime::memory::release_freed_memory;
use govflow::runtime::replay::replay_committed;
use govflow::sinks::local::{LocalWarehouse, WarehouseOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const PRODUCTS: i64 = 5_000;

fn customer(id: i64, version: u32) -> Upsert {
    Upsert::Customer(
        id,
        Some(RawBcCustomer {
            id,
            email: format!("c{id}.v{version}@example.com").into(),
            first_name: "Ada".into(),
            last_name: format!("L{id}").into(),
            company: String::new().into(),
            phone: String::new().into(),
            customer_group_id: id % 3,
            created_at: 1_700_000_000_000_000 + id,
            modified_at: 1_700_000_000_000_000 + id + version as i64,
            payload: Default::default(),
        }),
    )
}

fn order(id: i64, customer_id: i64, status_id: i64, lines: &[RawBcOrderItem]) -> [Upsert; 2] {
    let total: i64 = lines.iter().map(|l| l.total_inc_tax.0).sum();
    [
        Upsert::OrderItems(id, Some(lines.to_vec())),
        Upsert::Order(
            id,
            Some(RawBcOrder {
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
                refunded_amount: Money(0),
                items_total: lines.iter().map(|l| l.quantity).sum(),
                currency_code: "USD".into(),
                is_deleted: false,
                created_at: 1_710_000_000_000_000 + id,
                modified_at: 1_710_000_000_000_000 + id,
                payload: Default::default(),
            }),
        ),
    ]
}

fn lines(rng: &mut StdRng, order_id: i64, first_line: i64, n: i64) -> Vec<RawBcOrderItem> {
    (0..n)
        .map(|i| {
            let product = rng.random_range(1..=PRODUCTS);
            let price = rng.random_range(1_000..2_000_000);
            let quantity = rng.random_range(1..4);
            RawBcOrderItem {
                id: first_line + i,
                order_id,
                product_id: product,
                variant_id: product * 2,
                sku: format!("SKU-{product}").into(),
                name: format!("RawBcProduct {product}").into(),
                quantity,
                base_price: Money(price),
                price_ex_tax: Money(price),
                price_inc_tax: Money(price),
                total_ex_tax: Money(price * quantity),
                total_inc_tax: Money(price * quantity),
                payload: Default::default(),
            }
        })
        .collect()
}

fn catalog() -> Vec<Upsert> {
    let mut out = Vec::new();
    for p in 1..=PRODUCTS {
        out.push(Upsert::Product(
            p,
            Some(RawBcProduct {
                id: p,
                name: format!("RawBcProduct {p}"),
                sku: format!("P-{p}"),
                price: Money(100_000),
                sale_price: Money(0),
                is_visible: true,
                availability: "available".into(),
                inventory_tracking: "variant".into(),
                brand_id: p % 20,
                created_at: 0,
                modified_at: 0,
                payload: Default::default(),
            }),
        ));
        for v in [p * 2, p * 2 + 1] {
            out.push(Upsert::Variant(
                v,
                Some(RawBcVariant {
                    id: v,
                    product_id: p,
                    sku: format!("SKU-{v}"),
                    price: None,
                    sale_price: None,
                    inventory_level: 10,
                    is_purchasing_disabled: false,
                    payload: Default::default(),
                }),
            ));
            out.push(Upsert::Inventory(
                v,
                Some(RawBcInventory {
                    variant_id: v,
                    product_id: p,
                    sku: format!("SKU-{v}"),
                    available_to_sell: 10,
                    total_inventory_onhand: 10,
                    is_in_stock: true,
                    payload: Default::default(),
                }),
            ));
        }
    }
    out
}

struct Workload {
    rng: StdRng,
    orders: i64,
    customers: i64,
    next_order: i64,
    next_line: i64,
    version: u32,
}

impl Workload {
    /// The anchor workload at `scale`, before its initial load.
    fn new(scale: f64) -> Workload {
        Workload {
            rng: StdRng::seed_from_u64(1),
            customers: (1_000_000.0 * scale) as i64,
            orders: (5_000_000.0 * scale) as i64,
            next_order: 1,
            next_line: 1,
            version: 0,
        }
    }

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

/// The workload's initial state, generated in epochs of as many upserts as
/// the runtime commits at most in one (`GOVFLOW_BENCH_LOAD_EPOCH` to change
/// it; it was a million before the runtime bounded its epochs); deterministic, so the baseline can rebuild it without the dataflow
/// phase holding a second copy in memory.
fn load_epochs(w: &mut Workload, orders: i64, mut each: impl FnMut(Vec<Upsert>, u64)) {
    // The runtime's own bound on an epoch (docs/runtime.md, "Epochs").
    let per_epoch: usize = env(
        "GOVFLOW_BENCH_LOAD_EPOCH",
        govflow::runtime::DEFAULT_MAX_EPOCH_ROWS,
    );
    let mut epoch_in: Vec<Upsert> = catalog();
    let mut c = 1;
    while c <= w.customers || w.next_order <= orders {
        let mut rows = 0u64;
        while c <= w.customers && epoch_in.len() < per_epoch {
            epoch_in.push(customer(c, 0));
            c += 1;
            rows += 1;
        }
        while c > w.customers && w.next_order <= orders && epoch_in.len() < per_epoch {
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

/// A field of `/proc/self/status` (`VmRSS`, `VmHWM`), in MiB.
fn proc_status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// An engine maintaining `fct_order`/`dim_customer` (and, for govflow, every
/// other table) from the workload's upserts.
trait Engine {
    /// Takes one epoch of the initial load.
    fn load(&mut self, upserts: Vec<Upsert>);
    /// Ends the initial load (an engine may compute its outputs only now).
    fn loaded(&mut self) {}
    /// Takes one epoch of changes and brings the outputs up to date.
    fn step(&mut self, upserts: Vec<Upsert>);
}

/// govflow: all 18 tables of the dataflow, on `workers` threads.
struct Govflow(Dataflow);

impl Engine for Govflow {
    fn load(&mut self, upserts: Vec<Upsert>) {
        self.0.step(upserts).expect("step");
    }
    fn step(&mut self, upserts: Vec<Upsert>) {
        self.0.step(upserts).expect("step");
    }
}

/// Baseline: every output recomputed from scratch (the oracle's HashMap and
/// BTreeMap code, one thread) after each epoch, as a batch job reloading
/// everything does.
#[derive(Default)]
struct Recompute(RawState);

impl Engine for Recompute {
    fn load(&mut self, upserts: Vec<Upsert>) {
        upserts.into_iter().for_each(|u| self.0.apply(u));
    }
    fn loaded(&mut self) {
        drop(compute(&self.0));
    }
    fn step(&mut self, upserts: Vec<Upsert>) {
        self.load(upserts);
        self.loaded();
    }
}

/// Baseline: Feldera's dbsp with the same `fct_order`/`dim_customer` logic.
#[cfg(feature = "bench-dbsp")]
struct Dbsp(peers::DbspOrders);

#[cfg(feature = "bench-dbsp")]
impl Engine for Dbsp {
    fn load(&mut self, upserts: Vec<Upsert>) {
        self.0.step(upserts).expect("dbsp step");
    }
    fn step(&mut self, upserts: Vec<Upsert>) {
        self.0.step(upserts).expect("dbsp step");
    }
}

/// What one engine measured; printed by the child process as a `RESULT` line.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Figures {
    engine: String,
    workers: usize,
    /// Rows of the initial load.
    input_rows: u64,
    load_rows_per_s: f64,
    rss_mib: f64,
    peak_rss_mib: f64,
    /// Per batch size: (batch, epochs, p50 ms, p99 ms, changes/s).
    epochs: Vec<(usize, usize, f64, f64, f64)>,
    /// `restart`: seconds to rebuild the state from the warehouse.
    #[serde(default)]
    restart_s: f64,
}

/// Runs `engine` on the workload and measures it (in a process of its own).
fn measure(
    name: &str,
    workers: usize,
    mut engine: Box<dyn Engine>,
    samples: [usize; 2],
) -> Figures {
    let scale: f64 = env("GOVFLOW_BENCH_SCALE", 0.1);
    let mut w = Workload::new(scale);
    let orders = w.orders;
    let mut input_rows = 0u64;
    let mut load_time = Duration::ZERO;
    load_epochs(&mut w, orders, |epoch_in, rows| {
        input_rows += rows;
        let t = Instant::now();
        engine.load(epoch_in);
        load_time += t.elapsed();
    });
    let t = Instant::now();
    engine.loaded();
    load_time += t.elapsed();
    // Idle workers give freed pages back after a second (runtime/memory.rs).
    std::thread::sleep(Duration::from_millis(1_500));
    release_freed_memory();
    let mut figures = Figures {
        engine: name.to_owned(),
        workers,
        input_rows,
        load_rows_per_s: input_rows as f64 / load_time.as_secs_f64(),
        rss_mib: proc_status_mib("VmRSS:"),
        peak_rss_mib: proc_status_mib("VmHWM:"),
        epochs: Vec::new(),
        restart_s: 0.0,
    };
    eprintln!(
        "  {name}: loaded {input_rows} rows in {:.1} s, RSS {:.0} MiB",
        load_time.as_secs_f64(),
        figures.rss_mib
    );
    for (batch, epochs) in [1_000usize, 10_000].into_iter().zip(samples) {
        let mut times = Vec::new();
        for _ in 0..epochs {
            let mut ups = Vec::new();
            for _ in 0..batch {
                w.change(&mut ups);
            }
            let t = Instant::now();
            engine.step(ups);
            times.push(t.elapsed());
        }
        let total: Duration = times.iter().sum();
        times.sort();
        figures.epochs.push((
            batch,
            epochs,
            percentile(&times, 0.5).as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3,
            (batch * epochs) as f64 / total.as_secs_f64(),
        ));
    }
    figures
}

/// The whole `raw_*` rows an upsert carries.
fn raw_rows(upsert: Upsert) -> Vec<TableRow> {
    match upsert {
        Upsert::Customer(_, Some(r)) => vec![TableRow::RawBcCustomer(r)],
        Upsert::Product(_, Some(r)) => vec![TableRow::RawBcProduct(r)],
        Upsert::Variant(_, Some(r)) => vec![TableRow::RawBcVariant(r)],
        Upsert::Inventory(_, Some(r)) => vec![TableRow::RawBcInventory(r)],
        Upsert::Order(_, Some(r)) => vec![TableRow::RawBcOrder(r)],
        Upsert::OrderItems(_, Some(lines)) => {
            lines.into_iter().map(TableRow::RawBcOrderItem).collect()
        }
        other => panic!("the workload has no {other:?}"),
    }
}

/// The `warehouse` child: commits the loaded state's raw tables to the local
/// warehouse at `GOVFLOW_BENCH_WAREHOUSE`, as a run that read it would have.
fn write_warehouse() -> Figures {
    let dir = std::env::var("GOVFLOW_BENCH_WAREHOUSE").expect("GOVFLOW_BENCH_WAREHOUSE");
    let mut wh = LocalWarehouse::open(
        std::path::Path::new(&dir),
        &table_specs(),
        WarehouseOptions::default(),
    )
    .expect("warehouse");
    let scale: f64 = env("GOVFLOW_BENCH_SCALE", 0.1);
    let mut w = Workload::new(scale);
    let orders = w.orders;
    let mut epoch = 0;
    let mut input_rows = 0;
    let mut pending: BTreeMap<Table, Vec<(TableRow, isize)>> = BTreeMap::new();
    let mut commit = |pending: &mut BTreeMap<Table, Vec<(TableRow, isize)>>, epoch: u64| {
        let changes: Vec<_> = std::mem::take(pending)
            .into_iter()
            .map(|(table, rows)| {
                table_changes(table, epoch, &rows, &Payloads::default()).expect("changes")
            })
            .collect();
        wh.commit(epoch, &changes).expect("commit");
    };
    let started = Instant::now();
    load_epochs(&mut w, orders, |upserts, rows| {
        input_rows += rows;
        for row in upserts.into_iter().flat_map(raw_rows) {
            pending.entry(row.table_id()).or_default().push((row, 1));
        }
        if pending.values().map(Vec::len).sum::<usize>() >= 1_000_000 {
            epoch += 1;
            commit(&mut pending, epoch);
        }
    });
    commit(&mut pending, epoch + 1);
    eprintln!(
        "  warehouse: {input_rows} raw rows written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Figures {
        engine: "warehouse".into(),
        input_rows,
        ..Figures::default()
    }
}

/// The `restart` child: a fresh dataflow rebuilt from the warehouse the
/// `warehouse` child wrote, as `govflow run` does at start.
fn restart(workers: usize) -> Figures {
    let dir = std::env::var("GOVFLOW_BENCH_WAREHOUSE").expect("GOVFLOW_BENCH_WAREHOUSE");
    let wh = LocalWarehouse::open(
        std::path::Path::new(&dir),
        &table_specs(),
        WarehouseOptions::default(),
    )
    .expect("warehouse");
    let mut dataflow = Dataflow::start(workers).expect("workers");
    let started = Instant::now();
    let (upserts, rows) = replay_committed(&mut dataflow, &wh).expect("replay");
    let restart = started.elapsed();
    std::thread::sleep(Duration::from_millis(1_500));
    release_freed_memory();
    let input_rows = rows
        .iter()
        .filter(|(table, _)| table.starts_with("raw_"))
        .map(|(_, n)| *n as u64)
        .sum();
    eprintln!(
        "  restart: {upserts} upserts ({input_rows} raw rows) replayed in {:.1} s",
        restart.as_secs_f64()
    );
    Figures {
        engine: "restart".into(),
        workers,
        input_rows,
        load_rows_per_s: input_rows as f64 / restart.as_secs_f64(),
        rss_mib: proc_status_mib("VmRSS:"),
        peak_rss_mib: proc_status_mib("VmHWM:"),
        epochs: Vec::new(),
        restart_s: restart.as_secs_f64(),
    }
}

/// Runs engine `name` in a child process (so each RSS is its own) and reads
/// its figures.
fn in_child(name: &str) -> Option<Figures> {
    let exe = std::env::current_exe().expect("own path");
    let out = std::process::Command::new(exe)
        .env("GOVFLOW_BENCH_ENGINE", name)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("child bench");
    let text = String::from_utf8_lossy(&out.stdout);
    let figures = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .and_then(|json| serde_json::from_str(json).ok());
    if figures.is_none() {
        eprintln!("  {name}: no figures ({})", out.status);
    }
    figures
}

fn print_table(all: &[Figures]) {
    let row = |label: &str, cell: &dyn Fn(&Figures) -> String| {
        print!("  {label:<28}");
        for f in all {
            print!(" {:>22}", cell(f));
        }
        println!();
    };
    row("", &|f| format!("{} ({}w)", f.engine, f.workers));
    row("initial load, rows/s", &|f| {
        format!("{:.0}", f.load_rows_per_s)
    });
    row("RSS after load, MiB", &|f| format!("{:.0}", f.rss_mib));
    row("peak RSS, MiB", &|f| format!("{:.0}", f.peak_rss_mib));
    row("restart from the warehouse, s", &|f| {
        if f.restart_s > 0.0 {
            format!("{:.1}", f.restart_s)
        } else {
            "-".into()
        }
    });
    let per_row = |mib: f64, rows: u64| mib * 1024.0 * 1024.0 / rows.max(1) as f64;
    row("RSS after load / peak, B/row", &|f| {
        format!(
            "{:.0} / {:.0}",
            per_row(f.rss_mib, f.input_rows),
            per_row(f.peak_rss_mib, f.input_rows)
        )
    });
    for (i, batch) in ["1k", "10k"].iter().enumerate() {
        row(&format!("{batch}-change epoch p50/p99, ms"), &|f| {
            f.epochs
                .get(i)
                .map_or("-".into(), |e| format!("{:.1} / {:.1}", e.2, e.3))
        });
        row(&format!("{batch}-change epochs, changes/s"), &|f| {
            f.epochs
                .get(i)
                .map_or("-".into(), |e| format!("{:.0}", e.4))
        });
    }
    if let (Some(g), Some(r)) = (
        all.iter().find(|f| f.engine == "govflow"),
        all.iter().find(|f| f.engine == "recompute"),
    ) && let (Some(ge), Some(re)) = (g.epochs.first(), r.epochs.first())
    {
        println!(
            "  govflow vs recompute, 1k-change batch: {:.0}× at p50, {:.0}× at p99 (target 1000×)",
            re.2 / ge.2,
            re.2 / ge.3
        );
    }
}

fn main() {
    let scale: f64 = env("GOVFLOW_BENCH_SCALE", 0.1);
    let workers: usize = env("GOVFLOW_BENCH_WORKERS", 2);
    let small_epochs: usize = env("GOVFLOW_BENCH_EPOCHS", 60);
    if let Ok(name) = std::env::var("GOVFLOW_BENCH_ENGINE") {
        let figures = match name.as_str() {
            "govflow" => measure(
                &name,
                workers,
                Box::new(Govflow(Dataflow::start(workers).expect("workers"))),
                [small_epochs, 10],
            ),
            "recompute" => measure(&name, 1, Box::<Recompute>::default(), [3, 1]),
            "warehouse" => write_warehouse(),
            "restart" => restart(workers),
            #[cfg(feature = "bench-dbsp")]
            "dbsp" => measure(
                &name,
                workers,
                Box::new(Dbsp(peers::DbspOrders::new(workers).expect("dbsp"))),
                [small_epochs, 10],
            ),
            other => panic!("unknown engine {other}"),
        };
        println!("RESULT {}", serde_json::to_string(&figures).expect("json"));
        return;
    }
    let w = Workload::new(scale);
    println!(
        "dataflow bench: {} customers, {} orders, ~{} lines; targets at scale 1 on 2 workers: load ≥ 1M rows/s, RSS after load ≤ 2.0 GB and peak ≤ 3 GB, 1k-change epoch p99 ≤ 25 ms and ≥ 100k changes/s",
        w.customers,
        w.orders,
        w.orders * 3
    );
    let default_engines = if cfg!(feature = "bench-dbsp") {
        "govflow,restart,dbsp,recompute"
    } else {
        "govflow,restart,recompute"
    };
    let engines: String = env("GOVFLOW_BENCH_ENGINES", default_engines.to_owned());
    if engines.split(',').any(|e| e == "restart") {
        println!(
            "  restart: the warehouse of the loaded state (raw tables, written by another child) replayed into a fresh dataflow, as at a restart"
        );
    }
    // The restart replays a warehouse another child wrote (so neither's
    // memory counts in the other's figures).
    let warehouse = tempfile::tempdir().expect("temporary warehouse");
    // SAFETY: set before any thread of this process starts.
    unsafe { std::env::set_var("GOVFLOW_BENCH_WAREHOUSE", warehouse.path()) };
    let all: Vec<Figures> = engines
        .split(',')
        .filter(|name| *name != "restart" || in_child("warehouse").is_some())
        .filter_map(in_child)
        .collect();
    print_table(&all);
    if !cfg!(feature = "bench-dbsp") {
        println!("  (dbsp: run `cargo bench --features bench-dbsp --bench dataflow`)");
    }
}
