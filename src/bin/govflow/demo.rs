//! `govflow demo`: the main job on embedded defaults, against a simulated
//! store that changes every second, into a local warehouse under `--dir`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use govflow::config::Secret;
use govflow::runtime::RunOptions;
use govflow::settings::Config;
use govflow::sinks::{StateConfig, WarehouseConfig};
use govflow::sources::bigcommerce::BigCommerceConfig;
use govflow_sim::{MutateRequest, SimOptions, SimServer};

use crate::run::{run_pipeline, system_clock};

/// The arguments of `govflow demo`.
#[derive(Args)]
pub(crate) struct DemoArgs {
    /// Where the warehouse and the state go.
    #[arg(long, default_value = "govflow-data")]
    dir: PathBuf,
    /// Dataflow worker threads.
    #[arg(short = 'w', long, default_value_t = 2)]
    workers: usize,
    /// Random store changes per second.
    #[arg(long, default_value_t = 20)]
    changes_per_second: usize,
    /// Stop after this long (default: until Ctrl-C).
    #[arg(long = "for", value_parser = humantime::parse_duration)]
    run_for: Option<std::time::Duration>,
    /// Seed of the simulated store.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Address of the status page (0 as the port picks a free one).
    #[arg(long, default_value = "127.0.0.1:3000")]
    status: SocketAddr,
}

/// Runs the demo until Ctrl-C (or `--for`).
pub(crate) async fn main(args: DemoArgs) -> anyhow::Result<()> {
    let options = SimOptions {
        seed: args.seed,
        customers: 2_000,
        products: 300,
        orders: 5_000,
        quota: Some(450),
        ..SimOptions::default()
    };
    let server = SimServer::bind(options.clone(), SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .context("starting the simulated store")?;
    let base_url = server.base_url();
    let warehouse = args.dir.join("warehouse");
    let state = args.dir.join("state");
    let config = demo_config(&base_url, &options, &warehouse, &state)?;
    let current = warehouse.join("current.sql");
    println!(
        "govflow demo: a simulated BigCommerce store at {base_url}/stores/{}/ changing {} times a second,",
        options.store_hash, args.changes_per_second
    );
    println!(
        "maintained into the local warehouse {} ({} workers).",
        warehouse.display(),
        args.workers
    );
    println!("Query it while it runs:");
    println!(
        "  duckdb -c \".read {}\" -c \"SELECT * FROM dim_customer ORDER BY lifetime_revenue DESC LIMIT 5\"",
        current.display()
    );
    let tables: Vec<&str> = dataflows::Table::ALL.iter().map(|t| t.name()).collect();
    println!("Tables: {}. Ctrl-C stops.", tables.join(", "));
    let mutator = {
        let per_second = args.changes_per_second;
        let server = std::sync::Arc::new(server);
        let handle = server.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                if per_second > 0 {
                    let _ = handle.mutate(MutateRequest {
                        count: per_second,
                        kinds: None,
                        dirty: false,
                    });
                }
            }
        });
        (server, task)
    };
    let options = RunOptions {
        workers: args.workers,
        scheduler: Some(system_clock()),
        ..RunOptions::default()
    };
    // A demo must start even where the port is taken: fall back to a free one.
    let listen = match std::net::TcpListener::bind(args.status) {
        Ok(probe) => {
            drop(probe);
            args.status
        }
        Err(_) => SocketAddr::new(args.status.ip(), 0),
    };
    let result = run_pipeline(config, options, args.run_for, Some(listen), None).await;
    mutator.1.abort();
    if let Ok(server) = std::sync::Arc::try_unwrap(mutator.0) {
        server.shutdown().await;
    }
    result?;
    println!(
        "The warehouse stays in {}; `govflow demo` again resumes from its checkpoint.",
        args.dir.display()
    );
    Ok(())
}

/// The demo's configuration: the simulated store polled every 2 s, the
/// local warehouse and state under `--dir`, every other default.
fn demo_config(
    base_url: &str,
    store: &SimOptions,
    warehouse: &Path,
    state: &Path,
) -> anyhow::Result<Config> {
    let base_url = base_url
        .parse()
        .with_context(|| format!("the simulator's URL {base_url}"))?;
    let mut bigcommerce = BigCommerceConfig::new(
        base_url,
        store.store_hash.clone(),
        Secret::new(store.access_token.clone()),
    );
    bigcommerce.poll_interval = std::time::Duration::from_secs(2);
    Ok(Config {
        bigcommerce: Some(bigcommerce),
        warehouse: WarehouseConfig::Local {
            dir: warehouse.to_path_buf(),
        },
        state: StateConfig {
            dir: state.to_path_buf(),
        },
        ..Config::default()
    })
}
