//! `govflow run`: the pipeline, its status line and status server, and its
//! signals (Ctrl-C and SIGTERM stop it after the current epoch, SIGHUP
//! re-reads the secrets). The demo runs the same [`run_pipeline`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use govflow::runtime::{ProgressHandle, RunOptions};
use govflow::settings::Config;
use govflow::status::{ServerOptions, StatusServer, Telemetry};

/// The arguments of `govflow run`.
#[derive(Args)]
#[command(disable_help_flag = true)]
pub(crate) struct RunArgs {
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
    /// Commit an epoch once it gathered this many rows, before the flush
    /// interval ends; sources wait while twice as many are in flight.
    #[arg(long, default_value_t = govflow::runtime::DEFAULT_MAX_EPOCH_ROWS, value_parser = at_least_one)]
    max_epoch_rows: usize,
}

/// A count of one or more.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// `govflow run`: the pipeline until Ctrl-C or SIGTERM (or, with `--once`,
/// until it caught up and committed).
pub(crate) fn main(args: RunArgs) -> anyhow::Result<ExitCode> {
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
        max_epoch_rows: args.max_epoch_rows,
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

/// Runs the pipeline until Ctrl-C or SIGTERM (or `run_for`), printing a
/// status line; SIGHUP re-reads the secrets of `config_path`.
pub(crate) async fn run_pipeline(
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
    let sinks = config.warehouse.sink_names();
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

/// The wall clock, for the scheduler.
pub(crate) fn system_clock() -> std::sync::Arc<dyn govflow::schedule::Clock> {
    std::sync::Arc::new(govflow::schedule::SystemClock)
}
