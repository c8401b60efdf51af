//! The `govflow` command line: global options, logging and dispatch; each
//! command is a module of its own.

mod check;
mod dbt;
mod demo;
mod query;
mod run;
mod sim;
mod sql;
mod status;
mod validate;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
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
    Run(run::RunArgs),
    /// The main job on embedded defaults: a simulated store, a local warehouse under ./govflow-data.
    Demo(demo::DemoArgs),
    /// Serve the BigCommerce simulator (see docs/simulator.md).
    Sim(sim::SimArgs),
    /// Print the data-quality checks' latest results (exit 1 if an error-severity check fails).
    Check(check::CheckArgs),
    /// Run one read-only SQL statement against a configured PostgreSQL database.
    ///
    /// Only a single SELECT, VALUES, WITH … SELECT, EXPLAIN (without ANALYZE)
    /// or SHOW is accepted; it runs in a read-only transaction.
    Query(query::QueryArgs),
    /// Build the marts with dbt (transformer/), pinned to the warehouse's latest snapshot.
    Dbt(dbt::DbtArgs),
    /// Print the status of a running `govflow run` (from its status server) as tables.
    Status(status::StatusArgs),
    /// Print the views of the local warehouse's latest snapshot (as `current.sql`),
    /// for DuckDB readers that see the warehouse under another path (`--root`).
    Sql(sql::SqlArgs),
    /// Check a configuration file without touching the network (with
    /// `--connect`, also connect to the sources and show each configured
    /// table as it will land; `--format json` for scripts).
    Validate(validate::ValidateArgs),
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
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one command; async ones on a runtime of their own.
fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    let runtime = || tokio::runtime::Runtime::new().context("starting the async runtime");
    match command {
        Command::Run(args) => run::main(args),
        Command::Demo(args) => runtime()?
            .block_on(demo::main(args))
            .map(|()| ExitCode::SUCCESS),
        Command::Sim(args) => runtime()?
            .block_on(sim::main(args))
            .map(|()| ExitCode::SUCCESS),
        Command::Check(args) => check::main(args),
        Command::Query(args) => query::main(args),
        Command::Dbt(args) => dbt::main(args),
        Command::Status(args) => runtime()?.block_on(status::main(args)),
        Command::Sql(args) => sql::main(args),
        Command::Validate(args) => Ok(validate::main(args)),
    }
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
