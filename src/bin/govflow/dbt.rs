//! `govflow dbt`: builds the marts with dbt, pinned to the warehouse's
//! latest snapshot.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use govflow::settings::Config;
use govflow::sinks::WarehouseConfig;
use govflow::transform::{DbtCommand, DbtRunner};

/// The arguments of `govflow dbt`.
#[derive(Args)]
pub(crate) struct DbtArgs {
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
pub(crate) enum DbtAction {
    /// `dbt build`: models and their tests.
    Build,
    /// `dbt run`: models only.
    Run,
    /// `dbt test`: tests only.
    Test,
    /// Print the dbt sources of every raw table of the latest snapshot.
    Sources,
}

/// `govflow dbt`: exit 0 when every node passed, 1 when a model or test
/// failed (the summary says which), 2 when dbt itself failed.
pub(crate) fn main(args: DbtArgs) -> anyhow::Result<ExitCode> {
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
