//! The `govflow` command line.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use govflow::checks::{self, ChecksFile};
use govflow::config::{Config, SlackTarget, WarehouseConfig};
use govflow::runtime::{ProgressHandle, RunOptions};
use govflow_sim::{MutateRequest, SimOptions, SimServer};
use govflow::status::{ServerOptions, StatusReport, StatusServer, Telemetry};
use govflow::transform::{DbtCommand, DbtRunner};
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
    /// ANSI colours on stderr: `auto` only when it is a terminal (and `NO_COLOR`
    /// is not set), `always`, or `never`.
    #[arg(long, global = true, env = "GOVFLOW_COLOR", value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour: `auto` means a terminal without `NO_COLOR`.
    fn enabled(self, terminal: bool, no_color: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal && !no_color,
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline: poll the sources, maintain the tables, publish each epoch.
    Run(RunArgs),
    /// The main job on embedded defaults: a simulated store, a local warehouse under ./govflow-data.
    Demo(DemoArgs),
    /// Serve the BigCommerce simulator (see docs/simulator.md).
    Sim(SimArgs),
    /// Print the data-quality checks' latest results (exit 1 if an error-severity check fails).
    Check {
        /// The configuration file.
        #[arg(long, short, default_value = "govflow.toml")]
        config: PathBuf,
    },
    /// Run one read-only SQL statement against a configured PostgreSQL database.
    ///
    /// Only a single SELECT, VALUES, WITH … SELECT, EXPLAIN (without ANALYZE)
    /// or SHOW is accepted; it runs in a read-only transaction.
    Query(QueryArgs),
    /// Build the marts with dbt (transformer/), pinned to the warehouse's latest snapshot.
    Dbt(DbtArgs),
    /// Print the status of a running `govflow run` (from its status server) as tables.
    Status(StatusArgs),
    /// Print the views of the local warehouse's latest snapshot (as `current.sql`),
    /// for DuckDB readers that see the warehouse under another path (`--root`).
    Sql(SqlArgs),
    /// Check a configuration file without touching the network (with
    /// `--connect`, also connect to the sources and show each configured
    /// table as it will land).
    Validate {
        /// The configuration file.
        #[arg(long, short, default_value = "govflow.toml")]
        config: PathBuf,
        /// Connect to the sources: discover the configured tables' columns
        /// and fail as `govflow run` would on a missing table or column.
        #[arg(long)]
        connect: bool,
    },
}

#[derive(Args)]
struct SqlArgs {
    /// The configuration file (its warehouse directory), when `--warehouse` is not given.
    #[arg(long, short, default_value = "govflow.toml")]
    config: PathBuf,
    /// The warehouse directory to read the latest snapshot of.
    #[arg(long)]
    warehouse: Option<PathBuf>,
    /// Where the readers see the warehouse (a mount point, a copy); default: the
    /// warehouse directory itself.
    #[arg(long)]
    root: Option<PathBuf>,
}

#[derive(Args)]
struct StatusArgs {
    /// The configuration file (its `[status]` address and token).
    #[arg(long, short, default_value = "govflow.toml")]
    config: PathBuf,
    /// The status server's base URL, instead of the configuration's `[status] listen`.
    #[arg(long)]
    url: Option<String>,
    /// Print the JSON of `/api/status` instead of tables.
    #[arg(long)]
    json: bool,
    /// Only probe `/healthz` (no token needed): exit 0 when it answers 200,
    /// 1 otherwise (a container's health check).
    #[arg(long)]
    health: bool,
}

#[derive(Args)]
#[command(disable_help_flag = true)]
struct RunArgs {
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Processes of a cluster run (with -p and -h; timely's communication).
    #[arg(short = 'n', long, default_value_t = 1)]
    processes: usize,
    /// This process's index in the cluster; process 0 reads the sources and commits.
    #[arg(short = 'p', long, default_value_t = 0)]
    process: usize,
    /// The cluster's host file: one host:port per process, in process order.
    #[arg(short = 'h', long)]
    hostfile: Option<PathBuf>,
    /// The configuration file.
    #[arg(long, short, default_value = "govflow.toml")]
    config: PathBuf,
    /// Catch up once, commit, and exit (non-zero on failure).
    #[arg(long)]
    once: bool,
    /// Reload every source from scratch; keys absent upstream are deleted downstream.
    #[arg(long)]
    full_refresh: bool,
    /// Dataflow worker threads.
    #[arg(short = 'w', long, default_value_t = 1)]
    workers: usize,
    /// How often inputs advance to a new epoch (e.g. 1s, 500ms).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    flush_interval: std::time::Duration,
    /// Run no `[schedule]` job (no periodic full refresh, no mart builds).
    #[arg(long)]
    no_schedule: bool,
}

#[derive(Args)]
struct QueryArgs {
    /// The database: the NAME of a `[postgres.NAME]` section of the configuration.
    #[arg(long)]
    db: String,
    /// The configuration file.
    #[arg(long, short, default_value = "govflow.toml")]
    config: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
    format: QueryFormat,
    /// Write the result to this file instead of standard output (required for parquet).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// The SQL statement.
    sql: String,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum QueryFormat {
    Table,
    Csv,
    Json,
    Parquet,
}

#[derive(Args)]
struct DbtArgs {
    /// The dbt command (`sources` prints the generated sources of every raw
    /// table instead of running dbt).
    #[arg(value_enum, default_value_t = DbtAction::Build)]
    command: DbtAction,
    /// Rebuild incremental marts from scratch.
    #[arg(long)]
    full_refresh: bool,
    /// The configuration file (its `[warehouse]` and `[dbt]`); defaults apply
    /// when the default file is absent.
    #[arg(long, short, default_value = "govflow.toml")]
    config: PathBuf,
}

/// What `govflow dbt` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum DbtAction {
    /// `dbt build`: models and their tests.
    Build,
    /// `dbt run`: models only.
    Run,
    /// `dbt test`: tests only.
    Test,
    /// Print the dbt sources of every raw table of the latest snapshot.
    Sources,
}

#[derive(Args)]
struct DemoArgs {
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
    /// Share (0 to 1) of mutations that are dirty ones: negative stock, inventory
    /// rows off or missing, zero quantities, empty names, malformed subscriptions,
    /// sale prices above the price, orphan variants (docs/simulator.md).
    #[arg(long, default_value_t = 0.0)]
    dirty_rate: f64,
}

/// mimalloc instead of the system allocator: the dataflow allocates and frees
/// many small rows, where glibc's allocator fragments (about twice the resident
/// memory after a load, see docs/PERFORMANCE.md) and spends its time consolidating.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_new(&cli.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let color = cli.color.enabled(
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
    );
    govflow::status::set_color(color);
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(color)
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
        Command::Validate { config, connect } => Ok(validate(&config, connect)),
        Command::Sql(args) => sql(args),
        Command::Check { config } => {
            let config = Config::load(&config).map_err(anyhow::Error::new)?;
            let file = ChecksFile::load(&config.state.dir)?;
            let results = file.results_at(chrono::Utc::now());
            print!("{}", checks::render_report(&file, &results));
            Ok(if checks::any_error(&results) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Query(args) => query(args),
        Command::Status(args) => {
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(status(args))
        }
        Command::Dbt(args) => dbt(args),
        Command::Run(args) => {
            let config = Config::load(&args.config).map_err(anyhow::Error::new)?;
            let cluster = match (&args.hostfile, args.processes) {
                (None, 1) => None,
                (None, _) => anyhow::bail!("-n {} needs a host file (-h)", args.processes),
                (Some(path), n) => Some(
                    govflow::runtime::dataflow::Cluster::from_hostfile(path, n, args.process)
                        .map_err(anyhow::Error::msg)?,
                ),
            };
            let leader = cluster.as_ref().is_none_or(|c| c.process == 0);
            let options = RunOptions {
                workers: args.workers,
                flush_interval: args.flush_interval,
                once: args.once,
                full_refresh: args.full_refresh,
                scheduler: (!args.no_schedule && leader).then(system_clock),
                telemetry: None,
                cluster,
                secrets: Default::default(),
            };
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let listen = if args.once || !leader {
                None
            } else {
                config.status.listen
            };
            runtime.block_on(run_pipeline(
                config,
                options,
                None,
                listen,
                Some(&args.config),
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => {
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(demo(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sim(args) => {
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(sim(args))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `govflow dbt`: exit 0 when every node passed, 1 when a model or test
/// failed (the summary says which), 2 when dbt itself failed.
fn dbt(args: DbtArgs) -> anyhow::Result<ExitCode> {
    let config = if args.config.exists() || args.config != std::path::Path::new("govflow.toml") {
        Config::load(&args.config).map_err(anyhow::Error::new)?
    } else {
        Config::from_toml_str("", "<defaults>", &|_| None).map_err(anyhow::Error::new)?
    };
    let command = match args.command {
        DbtAction::Build => DbtCommand::Build,
        DbtAction::Run => DbtCommand::Run,
        DbtAction::Test => DbtCommand::Test,
        DbtAction::Sources => {
            let dir = match &config.warehouse {
                WarehouseConfig::Local { dir } => dir,
                WarehouseConfig::BigQuery(bq) => &bq.local_dir,
            };
            let pin = govflow::sinks::local::pin_latest(dir)
                .with_context(|| format!("pinning the warehouse {}", dir.display()))?;
            print!("{}", govflow::transform::sources::sources_yaml(&pin)?);
            return Ok(ExitCode::SUCCESS);
        }
    };
    let runner = DbtRunner::from_config(&config.dbt);
    let pin = match (&config.warehouse, config.dbt.target.as_str()) {
        (WarehouseConfig::Local { dir }, "duckdb") => Some(
            govflow::sinks::local::pin_latest(dir)
                .with_context(|| format!("pinning the warehouse {}", dir.display()))?,
        ),
        _ => None,
    };
    match runner.run(command, args.full_refresh, pin.as_ref()) {
        Ok(report) => {
            print!("{}", report.summary());
            Ok(if report.success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(2))
        }
    }
}

fn validate(path: &std::path::Path, connect: bool) -> ExitCode {
    let loaded = Config::load(path).and_then(|c| {
        c.check_runnable(&path.display().to_string())?;
        Ok(c)
    });
    match loaded {
        Ok(config) => {
            let configured = if connect {
                let discovered = tokio::runtime::Runtime::new()
                    .map_err(|e| e.to_string())
                    .and_then(|rt| {
                        rt.block_on(govflow::runtime::discover(&config))
                            .map_err(|e| e.to_string())
                    });
                match discovered {
                    Ok(defs) => Some(defs),
                    Err(e) => {
                        eprintln!("error: {}: {e}", path.display());
                        return ExitCode::from(2);
                    }
                }
            } else {
                None
            };
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
                WarehouseConfig::BigQuery(bq) => println!(
                    "  warehouse: bigquery, {}.{} ({}), via gs://{}/{}, flush every {}; local copy {}",
                    bq.project,
                    bq.dataset,
                    bq.location,
                    bq.bucket,
                    bq.prefix,
                    humantime::format_duration(bq.flush_interval),
                    bq.local_dir.display()
                ),
            }
            if let WarehouseConfig::BigQuery(bq) = &config.warehouse {
                println!("  bigquery credentials: {}", bq.credentials_origin);
            }
            println!("  state: {}", config.state.dir.display());
            println!("  checks: {}", config.checks.len());
            println!(
                "  dbt: project {}, target {}, marts {}",
                config.dbt.project_dir.display(),
                config.dbt.target,
                config.dbt.marts_db.display()
            );
            for (name, db) in &config.postgres {
                let tables: Vec<&str> = db.tables.iter().map(|t| t.name.as_str()).collect();
                println!(
                    "  postgres.{name}: tables {} (lookback {}, poll every {}, pages of {})",
                    tables.join(", "),
                    humantime::format_duration(db.lookback),
                    humantime::format_duration(db.poll_interval),
                    db.page_size
                );
            }
            let schedule = &config.schedule;
            let cron = |s: &Option<govflow::schedule::Schedule>| {
                s.as_ref()
                    .map_or("off".to_string(), |s| format!("{:?}", s.expr()))
            };
            println!(
                "  schedule: full_refresh {}, marts {} ({}; catch-up {})",
                cron(&schedule.full_refresh),
                cron(&schedule.marts),
                schedule.timezone,
                match schedule.catch_up {
                    govflow::schedule::CatchUp::Once => "once",
                    govflow::schedule::CatchUp::Skip => "skip",
                }
            );
            match &config.alerts.slack {
                None => println!("  alerts: logged only (no [alerts.slack])"),
                Some(slack) => {
                    let target = match &slack.target {
                        SlackTarget::BotToken {
                            base_url, channel, ..
                        } => format!("chat.postMessage to {channel} via {base_url}"),
                        SlackTarget::Webhook { .. } => "incoming webhook".to_string(),
                    };
                    println!(
                        "  alerts: slack {target} (at most {}/min); a source alerts after {} failures in a row",
                        slack.max_per_minute, config.alerts.source_failure_threshold
                    );
                }
            }
            match &config.notifications {
                None => println!("  notifications: kept in product_notification_event only"),
                // The endpoint's host and path only: a query string may carry a token.
                Some(n) => println!(
                    "  notifications: POST {}://{}{}{} ({} customers at a time, {} extra headers)",
                    n.endpoint.scheme(),
                    n.endpoint.host_str().unwrap_or_default(),
                    n.endpoint
                        .port()
                        .map(|p| format!(":{p}"))
                        .unwrap_or_default(),
                    n.endpoint.path(),
                    n.max_in_flight,
                    n.headers.len()
                ),
            }
            match &config.webhooks {
                None => println!("  webhooks: off (polling only)"),
                Some(w) => println!(
                    "  webhooks: listening on {} (secret in {})",
                    w.listen, w.secret_header
                ),
            }
            let builtin: Vec<&str> = dataflows::Table::ALL.iter().map(|t| t.name()).collect();
            println!("  built-in tables: {}", builtin.join(", "));
            match configured {
                None => println!("  configured tables: not discovered (--connect discovers them)"),
                Some(defs) if defs.is_empty() => println!("  configured tables: none"),
                Some(defs) => {
                    for def in defs {
                        let columns: Vec<String> = def
                            .columns
                            .iter()
                            .map(|c| {
                                let null = if c.nullable { "" } else { " not null" };
                                format!("{} {}{null}", c.name, c.ty.describe())
                            })
                            .collect();
                        println!(
                            "  table {} (key {}): {}",
                            def.name,
                            def.key.join(", "),
                            columns.join(", ")
                        );
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// `govflow query`: exit 2 for a rejected statement or a bad configuration,
/// 1 when the database fails.
fn query(args: QueryArgs) -> anyhow::Result<ExitCode> {
    use govflow::sources::postgres::{output, query};
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let Some(db) = config.postgres.get(&args.db) else {
        let known: Vec<&str> = config.postgres.keys().map(String::as_str).collect();
        eprintln!(
            "error: {}: no [postgres.{}] section (configured: {})",
            args.config.display(),
            args.db,
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
        return Ok(ExitCode::from(2));
    };
    let format = match args.format {
        QueryFormat::Table => output::Format::Table,
        QueryFormat::Csv => output::Format::Csv,
        QueryFormat::Json => output::Format::Json,
        QueryFormat::Parquet => output::Format::Parquet,
    };
    if matches!(format, output::Format::Parquet) && args.output.is_none() {
        eprintln!("error: --format parquet needs --output FILE");
        return Ok(ExitCode::from(2));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = match runtime.block_on(query::run(&args.db, db, &args.sql)) {
        Ok(r) => r,
        Err(query::QueryError::Rejected(e)) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };
    match &args.output {
        Some(path) => {
            let mut file = std::io::BufWriter::new(
                std::fs::File::create(path)
                    .with_context(|| format!("creating {}", path.display()))?,
            );
            output::write(&result, format, &mut file)?;
            std::io::Write::flush(&mut file)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            output::write(&result, format, &mut lock)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the pipeline until Ctrl-C or SIGTERM (or `run_for`), printing a
/// status line; SIGHUP re-reads the secrets of `config_path`.
async fn run_pipeline(
    config: Config,
    mut options: RunOptions,
    run_for: Option<std::time::Duration>,
    listen: Option<SocketAddr>,
    config_path: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut hangup = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
    let running = config.clone();
    let secrets = options.secrets.clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let progress = ProgressHandle::default();
    let once = options.once;
    let mut sinks = vec!["local warehouse".to_string()];
    if matches!(config.warehouse, WarehouseConfig::BigQuery(_)) {
        sinks.push("bigquery".to_string());
    }
    let telemetry = std::sync::Arc::new(Telemetry::new(Some(config.state.dir.clone()), sinks));
    options.telemetry = Some(telemetry.clone());
    let progress_bars = tokio::spawn(govflow::status::show_progress(
        telemetry.clone(),
        stop_rx.clone(),
    ));
    let server = match listen {
        None => None,
        Some(addr) => {
            let server_options = ServerOptions {
                token: config.status.token.clone(),
                ready_max_lag: config.status.ready_max_lag,
            };
            let server = StatusServer::start(addr, telemetry, server_options, stop_rx.clone())
                .await
                .with_context(|| format!("status.listen: cannot listen on {addr}"))?;
            eprintln!("status page: http://{}/", server.addr());
            Some(server)
        }
    };
    let mut pipeline = tokio::spawn(govflow::runtime::run(
        config,
        options,
        stop_rx,
        progress.clone(),
    ));
    let deadline = async {
        match run_for {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut last_changes = 0;
    let mut stopping = false;
    let result = loop {
        tokio::select! {
            r = &mut pipeline => break r,
            _ = tokio::signal::ctrl_c() => { let _ = stop_tx.send(true); }
            // Orchestrators stop containers with SIGTERM: the current epoch
            // is committed, then the run exits 0.
            _ = terminate.recv() => {
                tracing::info!("SIGTERM: stopping after the current epoch");
                let _ = stop_tx.send(true);
            }
            _ = hangup.recv() => reload_secrets(config_path, &running, &secrets),
            _ = &mut deadline, if !stopping => {
                stopping = true;
                let _ = stop_tx.send(true);
            }
            _ = ticker.tick(), if !once => {
                let p = progress.lock().map(|p| p.clone()).unwrap_or_default();
                let lag = p.last_pull_at.map_or("-".to_string(), |t| format!("{:.1} s", t.elapsed().as_secs_f64()));
                eprintln!(
                    "epoch {} | {} changes/s | {} changes, {} upserts, {} dead letters | last pull committed {lag} ago | last commit {} ms",
                    p.epoch.map_or("-".to_string(), |e| e.to_string()),
                    p.changes - last_changes,
                    p.changes,
                    p.upserts,
                    p.dead_letters,
                    p.last_commit.as_millis(),
                );
                last_changes = p.changes;
            }
        }
    };
    let _ = stop_tx.send(true);
    let _ = progress_bars.await;
    if let Some(server) = server {
        server.join().await;
    }
    result.context("the pipeline task stopped")??;
    let p = progress.lock().map(|p| p.clone()).unwrap_or_default();
    println!(
        "committed through epoch {}: {} changes from {} upserts ({} dead letters)",
        p.epoch.map_or("-".to_string(), |e| e.to_string()),
        p.changes,
        p.upserts,
        p.dead_letters
    );
    Ok(())
}

/// SIGHUP: applies the configuration file's secrets, or logs why not.
fn reload_secrets(
    path: Option<&std::path::Path>,
    running: &Config,
    secrets: &govflow::config::LiveSecrets,
) {
    let Some(path) = path else {
        tracing::warn!("SIGHUP: no configuration file to reload");
        return;
    };
    match govflow::runtime::reload::reload(path, running, secrets) {
        Ok(reloaded) => {
            if reloaded.changed.is_empty() {
                tracing::info!(config = %path.display(), "SIGHUP: configuration re-read; no secret changed");
            } else {
                tracing::info!(
                    config = %path.display(),
                    changed = %reloaded.changed.join(", "),
                    "SIGHUP: secrets replaced; used from the next request or reconnect"
                );
            }
            if reloaded.other_settings_changed {
                tracing::warn!(config = %path.display(), "SIGHUP: settings other than secrets changed; they take effect at the next restart");
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: configuration refused; the running one stays")
        }
    }
}

/// `govflow sql`: the views of the latest snapshot for readers at `--root`.
fn sql(args: SqlArgs) -> anyhow::Result<ExitCode> {
    let dir = match args.warehouse {
        Some(dir) => dir,
        None => {
            let config = if args.config.exists() {
                Config::load(&args.config).map_err(anyhow::Error::new)?
            } else {
                Config::default()
            };
            match config.warehouse {
                WarehouseConfig::Local { dir } => dir,
                WarehouseConfig::BigQuery(bq) => bq.local_dir,
            }
        }
    };
    let root = match args.root {
        Some(root) => root,
        None => dir
            .canonicalize()
            .with_context(|| format!("the warehouse {}", dir.display()))?,
    };
    let views = govflow::sinks::local::render_latest(&dir, &root)
        .with_context(|| format!("reading the manifests of {}", dir.display()))?;
    match views {
        Some(views) => {
            print!("{views}");
            Ok(ExitCode::SUCCESS)
        }
        None => anyhow::bail!("{}: no committed snapshot yet", dir.display()),
    }
}

/// `govflow status`: fetches `/api/status` and prints it.
async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let config = if args.config.exists() {
        Config::load(&args.config).map_err(anyhow::Error::new)?
    } else {
        Config::default()
    };
    let base = match (&args.url, config.status.listen) {
        (Some(url), _) => url.trim_end_matches('/').to_string(),
        (None, Some(addr)) => format!("http://{addr}"),
        (None, None) => anyhow::bail!(
            "{}: status.listen is \"off\": pass --url",
            args.config.display()
        ),
    };
    if args.health {
        let healthy = reqwest::Client::new()
            .get(format!("{base}/healthz"))
            .timeout(std::time::Duration::from_secs(5))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        println!(
            "{base}/healthz: {}",
            if healthy { "ok" } else { "unhealthy" }
        );
        return Ok(if healthy {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let mut request = reqwest::Client::new().get(format!("{base}/api/status"));
    if let Some(token) = &config.status.token {
        request = request.bearer_auth(token.expose());
    }
    let response = request
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .with_context(|| format!("{base}/api/status: is govflow run running?"))?;
    if !response.status().is_success() {
        anyhow::bail!("{base}/api/status: HTTP {}", response.status());
    }
    let report: StatusReport = response
        .json()
        .await
        .with_context(|| format!("{base}/api/status: not a status report"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", govflow::status::render_table(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// The wall clock, for the scheduler.
fn system_clock() -> std::sync::Arc<dyn govflow::schedule::Clock> {
    std::sync::Arc::new(govflow::schedule::SystemClock)
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
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
    let text = format!(
        "[bigcommerce]\nbase_url = {base_url:?}\nstore_hash = {:?}\naccess_token = {:?}\npoll_interval = \"2s\"\n\n[warehouse]\nkind = \"local\"\ndir = {:?}\n\n[state]\ndir = {:?}\n",
        options.store_hash,
        options.access_token,
        warehouse.display().to_string(),
        state.display().to_string()
    );
    let config = Config::from_toml_str(&text, "<demo>", &|_| None).map_err(anyhow::Error::new)?;
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

async fn sim(args: SimArgs) -> anyhow::Result<()> {
    let options = SimOptions {
        seed: args.seed,
        customers: args.customers,
        products: args.products,
        orders: args.orders,
        quota: (args.quota > 0).then_some(args.quota),
        store_hash: args.store_hash.clone(),
        access_token: args.access_token,
        dirty_rate: args.dirty_rate,
        ..SimOptions::default()
    };
    let server = SimServer::bind(options, SocketAddr::new(args.host, args.port))
        .await
        .with_context(|| format!("starting the simulator on {}:{}", args.host, args.port))?;
    println!(
        "BigCommerce simulator on {}/stores/{}/ (control API under {}/_sim/); Ctrl-C or SIGTERM stops it",
        server.base_url(),
        args.store_hash,
        server.base_url()
    );
    // Ctrl-C, or SIGTERM from a container runtime.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = terminate.recv() => {}
    }
    server.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ColorChoice;

    #[test]
    fn colours_only_on_a_terminal_unless_asked() {
        assert!(ColorChoice::Auto.enabled(true, false));
        assert!(!ColorChoice::Auto.enabled(false, false), "a file or a pipe");
        assert!(!ColorChoice::Auto.enabled(true, true), "NO_COLOR");
        assert!(ColorChoice::Always.enabled(false, true));
        assert!(!ColorChoice::Never.enabled(true, false));
    }
}
