//! `govflow validate`: checks a configuration file the way `govflow run`
//! would, and prints what it configures as one report, as text or JSON.
//!
//! Exit 0 when the file is runnable, 2 when it is not (or, with `--connect`,
//! when a source refuses a configured table).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use dataflows::catalog::TableDef;
use govflow::alerts::SlackTarget;
use govflow::settings::Config;
use govflow::sinks::WarehouseConfig;
use serde::Serialize;

/// The arguments of `govflow validate`.
#[derive(Args)]
pub(crate) struct ValidateArgs {
    /// The configuration file.
    #[arg(long, short, default_value = "govflow.toml")]
    config: PathBuf,
    /// Connect to the sources: discover the configured tables' columns
    /// and fail as `govflow run` would on a missing table or column.
    #[arg(long)]
    connect: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,
}

/// How the report is printed.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ReportFormat {
    /// One line per component, for people.
    Text,
    /// One JSON object, for scripts.
    Json,
}

/// What `govflow validate` found.
#[derive(Debug, Serialize)]
struct Report {
    /// The configuration file.
    config: String,
    /// Whether `govflow run` would accept it.
    ok: bool,
    /// Why not, when it would not.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Each configured component and what it does, in a fixed order.
    components: Vec<Component>,
    /// The tables every run maintains.
    builtin_tables: Vec<String>,
    /// The configured tables as they will land; absent when not discovered
    /// (without `--connect`).
    configured_tables: Option<Vec<TableReport>>,
}

/// One component of the configuration.
#[derive(Debug, Serialize)]
struct Component {
    /// Its name: `bigcommerce`, `warehouse`, `postgres.NAME`, `schedule`…
    name: String,
    /// What it is set to do.
    summary: String,
}

/// A configured table as it will land.
#[derive(Debug, Serialize)]
struct TableReport {
    name: String,
    key: Vec<String>,
    columns: Vec<ColumnReport>,
}

/// A column of a configured table.
#[derive(Debug, Serialize)]
struct ColumnReport {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    nullable: bool,
}

/// Validates, prints the report and tells the exit code.
pub(crate) fn main(args: ValidateArgs) -> ExitCode {
    let report = report(&args.config, args.connect);
    match args.format {
        ReportFormat::Json => match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("error: cannot print the report: {e}");
                return ExitCode::FAILURE;
            }
        },
        ReportFormat::Text => match &report.error {
            Some(error) => eprintln!("error: {error}"),
            None => print!("{}", render_text(&report)),
        },
    }
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

/// Loads `path` as `govflow run` would and, with `connect`, discovers the
/// configured tables.
fn report(path: &Path, connect: bool) -> Report {
    let file = path.display().to_string();
    let failed = |error: String| Report {
        config: file.clone(),
        ok: false,
        error: Some(error),
        components: Vec::new(),
        builtin_tables: Vec::new(),
        configured_tables: None,
    };
    let config = match Config::load(path).and_then(|c| {
        c.check_runnable(&file)?;
        Ok(c)
    }) {
        Ok(config) => config,
        Err(e) => return failed(e.to_string()),
    };
    let configured_tables = if connect {
        let discovered = tokio::runtime::Runtime::new()
            .map_err(|e| e.to_string())
            .and_then(|rt| {
                rt.block_on(govflow::runtime::discover(&config))
                    .map_err(|e| e.to_string())
            });
        match discovered {
            Ok(defs) => Some(defs.iter().map(table_report).collect()),
            Err(e) => return failed(format!("{file}: {e}")),
        }
    } else {
        None
    };
    Report {
        config: file.clone(),
        ok: true,
        error: None,
        components: components(&config),
        builtin_tables: dataflows::Table::ALL
            .iter()
            .map(|t| t.name().to_string())
            .collect(),
        configured_tables,
    }
}

fn table_report(def: &TableDef) -> TableReport {
    TableReport {
        name: def.name.clone(),
        key: def.key.clone(),
        columns: def
            .columns
            .iter()
            .map(|c| ColumnReport {
                name: c.name.clone(),
                ty: c.ty.describe(),
                nullable: c.nullable,
            })
            .collect(),
    }
}

/// Each configured component, summarised (never a secret: an endpoint's
/// query string may carry a token, so only its host and path are shown).
fn components(config: &Config) -> Vec<Component> {
    let mut out = Vec::new();
    let mut add = |name: &str, summary: String| {
        out.push(Component {
            name: name.to_string(),
            summary,
        })
    };
    let every = humantime::format_duration;
    if let Some(bc) = &config.bigcommerce {
        add(
            "bigcommerce",
            format!(
                "store {} at {} (lookback {}, poll every {}, pages of {})",
                bc.store_hash,
                bc.base_url,
                every(bc.lookback),
                every(bc.poll_interval),
                bc.page_size
            ),
        );
    }
    match &config.warehouse {
        WarehouseConfig::Local { dir } => add("warehouse", format!("local, {}", dir.display())),
        WarehouseConfig::BigQuery(bq) => {
            add(
                "warehouse",
                format!(
                    "bigquery, {}.{} ({}), via gs://{}/{}, flush every {}; local copy {}",
                    bq.project,
                    bq.dataset,
                    bq.location,
                    bq.bucket,
                    bq.prefix,
                    every(bq.flush_interval),
                    bq.local_dir.display()
                ),
            );
            add("bigquery credentials", bq.credentials_origin.to_string());
        }
    }
    add("state", config.state.dir.display().to_string());
    add("checks", config.checks.len().to_string());
    add(
        "dbt",
        format!(
            "project {}, target {}, marts {}",
            config.dbt.project_dir.display(),
            config.dbt.target,
            config.dbt.marts_db.display()
        ),
    );
    for (name, db) in &config.postgres {
        let tables: Vec<&str> = db.tables.iter().map(|t| t.name.as_str()).collect();
        add(
            &format!("postgres.{name}"),
            format!(
                "tables {} (lookback {}, poll every {}, pages of {})",
                tables.join(", "),
                every(db.lookback),
                every(db.poll_interval),
                db.page_size
            ),
        );
    }
    let schedule = &config.schedule;
    let cron = |s: &Option<govflow::schedule::Schedule>| {
        s.as_ref()
            .map_or("off".to_string(), |s| format!("{:?}", s.expr()))
    };
    add(
        "schedule",
        format!(
            "full_refresh {}, marts {} ({}; catch-up {})",
            cron(&schedule.full_refresh),
            cron(&schedule.marts),
            schedule.timezone,
            match schedule.catch_up {
                govflow::schedule::CatchUp::Once => "once",
                govflow::schedule::CatchUp::Skip => "skip",
            }
        ),
    );
    let alerts = match &config.alerts.slack {
        None => "logged only (no [alerts.slack])".to_string(),
        Some(slack) => {
            let target = match &slack.target {
                SlackTarget::BotToken {
                    base_url, channel, ..
                } => format!("chat.postMessage to {channel} via {base_url}"),
                SlackTarget::Webhook { .. } => "incoming webhook".to_string(),
            };
            format!(
                "slack {target} (at most {}/min); a source alerts after {} failures in a row",
                slack.max_per_minute, config.alerts.source_failure_threshold
            )
        }
    };
    add("alerts", alerts);
    let notifications = match &config.notifications {
        None => "kept in product_notification_event only".to_string(),
        Some(n) => format!(
            "POST {}://{}{}{} ({} customers at a time, {} extra headers)",
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
    };
    add("notifications", notifications);
    let webhooks = match &config.webhooks {
        None => "off (polling only)".to_string(),
        Some(w) => format!("listening on {} (secret in {})", w.listen, w.secret_header),
    };
    add("webhooks", webhooks);
    out
}

/// The report as lines for people: `FILE: ok`, then one line per component
/// and per configured table.
fn render_text(report: &Report) -> String {
    let mut out = format!("{}: ok\n", report.config);
    for c in &report.components {
        out.push_str(&format!("  {}: {}\n", c.name, c.summary));
    }
    out.push_str(&format!(
        "  built-in tables: {}\n",
        report.builtin_tables.join(", ")
    ));
    match &report.configured_tables {
        None => out.push_str("  configured tables: not discovered (--connect discovers them)\n"),
        Some(tables) if tables.is_empty() => out.push_str("  configured tables: none\n"),
        Some(tables) => {
            for t in tables {
                let columns: Vec<String> = t
                    .columns
                    .iter()
                    .map(|c| {
                        let null = if c.nullable { "" } else { " not null" };
                        format!("{} {}{null}", c.name, c.ty)
                    })
                    .collect();
                out.push_str(&format!(
                    "  table {} (key {}): {}\n",
                    t.name,
                    t.key.join(", "),
                    columns.join(", ")
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("govflow.toml");
        std::fs::write(&path, text).expect("write");
        (dir, path)
    }

    #[test]
    fn a_runnable_file_reports_each_component_in_text_and_json() {
        let (_dir, path) = write(
            "[bigcommerce]\nstore_hash = \"abc\"\naccess_token = \"t0ken\"\n\
             [warehouse]\nkind = \"local\"\ndir = \"wh\"\n",
        );
        let report = report(&path, false);
        assert!(report.ok && report.error.is_none(), "{report:?}");
        let names: Vec<&str> = report.components.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(&names[..3], ["bigcommerce", "warehouse", "state"]);
        assert!(report.builtin_tables.iter().any(|t| t == "fct_order"));
        let text = render_text(&report);
        assert!(
            text.starts_with(&format!("{}: ok\n", path.display())),
            "{text}"
        );
        assert!(text.contains("  warehouse: local, wh\n"), "{text}");
        assert!(text.contains("configured tables: not discovered"), "{text}");
        assert!(!text.contains("t0ken"), "no secret: {text}");
        let json: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&report).expect("json")).expect("parse");
        assert_eq!(json["ok"], true);
        assert_eq!(json["components"][1]["summary"], "local, wh");
        assert!(json["configured_tables"].is_null());
        assert!(!json.to_string().contains("t0ken"));
    }

    #[test]
    fn a_file_without_a_source_is_refused_with_its_reason() {
        let (_dir, path) = write("[warehouse]\nkind = \"local\"\ndir = \"wh\"\n");
        let report = report(&path, false);
        assert!(!report.ok);
        let error = report.error.expect("a reason");
        assert!(error.contains("no source configured"), "{error}");
        assert!(report.components.is_empty());
    }
}
