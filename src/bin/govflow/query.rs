//! `govflow query`: one read-only SQL statement against a configured
//! PostgreSQL database.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use govflow::settings::Config;

/// The arguments of `govflow query`.
#[derive(Args)]
pub(crate) struct QueryArgs {
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

/// How `govflow query` prints its result.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum QueryFormat {
    Table,
    Csv,
    Json,
    Parquet,
}

/// `govflow query`: exit 2 for a rejected statement or a bad configuration,
/// 1 when the database fails.
pub(crate) fn main(args: QueryArgs) -> anyhow::Result<ExitCode> {
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
