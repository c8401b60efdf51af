//! The `govflow` command line.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use govflow::config::{Config, WarehouseConfig};
use govflow::sim::{SimOptions, SimServer};
use tracing_subscriber::EnvFilter;

/// govflow keeps an e-commerce data warehouse fresh from BigCommerce and PostgreSQL.
#[derive(Parser)]
#[command(name = "govflow", version, about)]
struct Cli {
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `govflow=debug`.
    #[arg(long, global = true, env = "GOVFLOW_LOG", default_value = "info")]
    log: String,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the BigCommerce simulator (see docs/simulator.md).
    Sim(SimArgs),
    /// Check a configuration file without touching the network.
    Validate {
        /// The configuration file.
        #[arg(long, short, default_value = "govflow.toml")]
        config: PathBuf,
    },
}

#[derive(Args)]
struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8600)]
    port: u16,
    /// Seed of the generated store.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Customers to generate.
    #[arg(long, default_value_t = 1000)]
    customers: usize,
    /// Products to generate (each with 1 to 4 variants).
    #[arg(long, default_value_t = 200)]
    products: usize,
    /// Orders to generate (each with 1 to 5 lines).
    #[arg(long, default_value_t = 3000)]
    orders: usize,
    /// Requests per 30 s window; 0 turns rate limiting off.
    #[arg(long, default_value_t = 150)]
    quota: u32,
    /// Store hash of the API paths (`/stores/{hash}/...`).
    #[arg(long, default_value = "govflowsim")]
    store_hash: String,
    /// Access token clients must send as `X-Auth-Token`.
    #[arg(
        long,
        env = "BIGCOMMERCE_ACCESS_TOKEN",
        default_value = "sim-token",
        hide_env_values = true
    )]
    access_token: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_new(&cli.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Validate { config } => Ok(validate(&config)),
        Command::Sim(args) => {
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(sim(args))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn validate(path: &std::path::Path) -> ExitCode {
    match Config::load(path) {
        Ok(config) => {
            println!("{}: ok", path.display());
            if let Some(bc) = &config.bigcommerce {
                println!(
                    "  bigcommerce: store {} at {} (lookback {}, poll every {}, pages of {})",
                    bc.store_hash,
                    bc.base_url,
                    humantime::format_duration(bc.lookback),
                    humantime::format_duration(bc.poll_interval),
                    bc.page_size
                );
            }
            match &config.warehouse {
                WarehouseConfig::Local { dir } => println!("  warehouse: local, {}", dir.display()),
                WarehouseConfig::BigQuery { project, dataset } => {
                    println!("  warehouse: bigquery, {project}.{dataset}")
                }
            }
            println!("  state: {}", config.state.dir.display());
            for (name, db) in &config.postgres {
                let tables: Vec<&str> = db.tables.iter().map(|t| t.name.as_str()).collect();
                println!("  postgres.{name}: tables {}", tables.join(", "));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn sim(args: SimArgs) -> anyhow::Result<()> {
    let options = SimOptions {
        seed: args.seed,
        customers: args.customers,
        products: args.products,
        orders: args.orders,
        quota: (args.quota > 0).then_some(args.quota),
        store_hash: args.store_hash.clone(),
        access_token: args.access_token,
        ..SimOptions::default()
    };
    let server = SimServer::bind(options, SocketAddr::new(args.host, args.port))
        .await
        .with_context(|| format!("starting the simulator on {}:{}", args.host, args.port))?;
    println!(
        "BigCommerce simulator on {}/stores/{}/ (control API under {}/_sim/); Ctrl-C stops it",
        server.base_url(),
        args.store_hash,
        server.base_url()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    server.shutdown().await;
    Ok(())
}
