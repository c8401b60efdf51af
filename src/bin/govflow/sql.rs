//! `govflow sql`: the views of the local warehouse's latest snapshot, for
//! DuckDB readers that see the warehouse under another path.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use govflow::settings::Config;
use govflow::sinks::WarehouseConfig;

/// The arguments of `govflow sql`.
#[derive(Args)]
pub(crate) struct SqlArgs {
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

/// `govflow sql`: the views of the latest snapshot for readers at `--root`.
pub(crate) fn main(args: SqlArgs) -> anyhow::Result<ExitCode> {
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
