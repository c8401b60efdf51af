//! `govflow check`: the data-quality checks' latest results, from the state
//! directory of the last run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use govflow::checks::{self, ChecksFile};
use govflow::settings::Config;

/// The arguments of `govflow check`.
#[derive(Args)]
pub(crate) struct CheckArgs {
    /// The configuration file.
    #[arg(long, short, default_value = "govflow.toml")]
    config: PathBuf,
}

/// Prints the report; exit 1 if an error-severity check fails.
pub(crate) fn main(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config).map_err(anyhow::Error::new)?;
    let file = ChecksFile::load(&config.state.dir)?;
    let results = file.results_at(chrono::Utc::now());
    print!("{}", checks::render_report(&file, &results));
    Ok(if checks::any_error(&results) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
