//! Data-quality checks on the govflow side: declaring them in configuration
//! (`[[checks]]`), and the results file `govflow run` keeps up to date and
//! `govflow check` reads.
//!
//! The checks themselves are maintained incrementally by the dataflow
//! (`dataflows::checks`); the runtime accumulates their changes after every
//! epoch and writes `<state dir>/checks.json`. Freshness depends on the clock,
//! so the file keeps each freshness check's newest timestamp and readers
//! evaluate it against their own `now`.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use dataflows::Table;
use dataflows::checks::{CheckKind, CheckResult, CheckSpec, Severity};
use dataflows::projection::projected_columns;
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::format::table_spec;

/// `[[checks]]`: one check declared in configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    name: Option<String>,
    table: String,
    column: String,
    kind: String,
    #[serde(default)]
    values: Vec<String>,
    to: Option<String>,
    #[serde(default, with = "humantime_serde")]
    max_age: Option<std::time::Duration>,
    severity: Option<String>,
}

fn table_named(name: &str) -> Option<Table> {
    Table::from_name(name)
}

fn has_column(table: Table, column: &str) -> bool {
    table_spec(table).schema.field_with_name(column).is_ok()
}

/// Validates `[[checks]]` entries; `defaults` adds [`dataflows::checks::default_checks`].
/// An entry named like a built-in check replaces it (to change its values or
/// severity); two entries with one name are an error.
pub fn specs_from_config(
    raw: Vec<RawCheck>,
    defaults: bool,
    file: &str,
) -> Result<Vec<CheckSpec>, ConfigError> {
    let mut specs = if defaults {
        dataflows::checks::default_checks()
    } else {
        Vec::new()
    };
    let mut configured: Vec<String> = Vec::new();
    for (i, check) in raw.into_iter().enumerate() {
        let key = format!("checks[{i}]");
        let err = |field: &str, problem: String| ConfigError {
            file: file.to_string(),
            key: format!("{key}.{field}"),
            problem,
        };
        let table = table_named(&check.table)
            .ok_or_else(|| err("table", format!("no table named {:?}", check.table)))?;
        if !has_column(table, &check.column) {
            return Err(err(
                "column",
                format!("table {table} has no column {:?}", check.column),
            ));
        }
        if let Some(held) = projected_columns(table)
            && !held.contains(&check.column.as_str())
        {
            return Err(err(
                "column",
                format!(
                    "{table}.{} is written to the warehouse but no model reads it, so the dataflow does not hold it and cannot check it (check it with a dbt test); the checkable columns of {table} are {}",
                    check.column,
                    held.join(", ")
                ),
            ));
        }
        let kind = match check.kind.as_str() {
            "not_null" => CheckKind::NotNull,
            "unique" => CheckKind::Unique,
            "accepted_values" if check.values.is_empty() => {
                return Err(err("values", "list the accepted values".into()));
            }
            "accepted_values" => CheckKind::AcceptedValues {
                values: check.values,
            },
            "relationships" => {
                let to = check.to.as_deref().unwrap_or_default();
                let (to_table, to_column) = to
                    .split_once('.')
                    .and_then(|(t, c)| Some((table_named(t)?, c)))
                    .filter(|(t, c)| {
                        has_column(*t, c) && projected_columns(*t).is_none_or(|held| held.contains(c))
                    })
                    .ok_or_else(|| {
                        err(
                            "to",
                            format!(
                                "{to:?} is not `table.column` of a govflow table (of a raw table, a column its models read)"
                            ),
                        )
                    })?;
                CheckKind::Relationships {
                    to_table,
                    to_column: to_column.to_string(),
                }
            }
            "freshness" => {
                let max_age = check
                    .max_age
                    .ok_or_else(|| err("max_age", "a freshness check needs max_age".into()))?;
                CheckKind::Freshness {
                    max_age_micros: i64::try_from(max_age.as_micros()).unwrap_or(i64::MAX),
                }
            }
            other => {
                return Err(err(
                    "kind",
                    format!(
                        "unknown kind {other:?}: not_null, unique, accepted_values, relationships or freshness"
                    ),
                ));
            }
        };
        let severity = match check.severity.as_deref().unwrap_or("warn") {
            "warn" => Severity::Warn,
            "error" => Severity::Error,
            other => {
                return Err(err(
                    "severity",
                    format!("unknown severity {other:?}: warn or error"),
                ));
            }
        };
        let mut spec = CheckSpec::new(table, &check.column, kind, severity);
        if let Some(name) = check.name {
            spec.name = name;
        }
        if configured.contains(&spec.name) {
            return Err(err(
                "name",
                format!("another check is named {:?}", spec.name),
            ));
        }
        configured.push(spec.name.clone());
        match specs.iter_mut().find(|s| s.name == spec.name) {
            Some(builtin) => *builtin = spec,
            None => specs.push(spec),
        }
    }
    Ok(specs)
}

/// What `checks.json` holds: every check's result after an epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecksFile {
    /// The epoch the results are for.
    pub epoch: Option<u64>,
    /// When they were computed.
    pub updated_at: DateTime<Utc>,
    /// One result per check.
    pub results: Vec<CheckResult>,
}

/// Errors reading the results file.
#[derive(Debug, thiserror::Error)]
pub enum ChecksFileError {
    /// No results yet.
    #[error("{path}: no check results yet: run `govflow run` (or `govflow run --once`) first")]
    Missing {
        /// The file.
        path: String,
    },
    /// The file cannot be read or parsed.
    #[error("{path}: {detail}")]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
}

impl ChecksFile {
    /// Path of the results in a state directory.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("checks.json")
    }

    /// Replaces the results file (atomically for readers).
    pub fn store(&self, state_dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::fsutil::write_atomic_unsynced(&Self::path(state_dir), &bytes)
    }

    /// Reads the results file.
    pub fn load(state_dir: &Path) -> Result<ChecksFile, ChecksFileError> {
        let path = Self::path(state_dir);
        let shown = path.display().to_string();
        match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(ChecksFileError::Missing { path: shown })
            }
            Err(e) => Err(ChecksFileError::Unreadable {
                path: shown,
                detail: e.to_string(),
            }),
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ChecksFileError::Unreadable {
                path: shown,
                detail: e.to_string(),
            }),
        }
    }

    /// The results with freshness evaluated at `now`.
    pub fn results_at(&self, now: DateTime<Utc>) -> Vec<CheckResult> {
        let now = now.timestamp_micros();
        self.results
            .iter()
            .cloned()
            .map(|mut r| {
                r.judge_freshness(now);
                r
            })
            .collect()
    }
}

/// The report `govflow check` prints, one line per check.
pub fn render_report(file: &ChecksFile, results: &[CheckResult]) -> String {
    let mut out = format!(
        "checks at epoch {} (computed {})\n",
        file.epoch.map_or("-".to_string(), |e| e.to_string()),
        file.updated_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    for r in results {
        let verdict = match (r.passed(), r.spec.severity) {
            (true, _) => "pass",
            (false, Severity::Warn) => "WARN",
            (false, Severity::Error) => "FAIL",
        };
        out.push_str(&format!("{verdict:<5} {}", r.spec.name));
        if let CheckKind::Freshness { .. } = r.spec.kind {
            let newest = r
                .newest
                .and_then(DateTime::<Utc>::from_timestamp_micros)
                .map_or("no rows".to_string(), |t| {
                    format!(
                        "newest {}",
                        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    )
                });
            out.push_str(&format!("  ({newest})"));
        } else if !r.passed() {
            let samples: Vec<String> = r
                .samples
                .iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect();
            out.push_str(&format!(
                "  {} failing, e.g. {}",
                r.failing,
                samples.join(", ")
            ));
        }
        out.push('\n');
    }
    out
}

/// Whether any error-severity check fails (then `govflow check` exits 1).
pub fn any_error(results: &[CheckResult]) -> bool {
    results
        .iter()
        .any(|r| !r.passed() && r.spec.severity == Severity::Error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(toml_text: &str) -> Vec<RawCheck> {
        #[derive(Deserialize)]
        struct File {
            checks: Vec<RawCheck>,
        }
        toml::from_str::<File>(toml_text).unwrap().checks
    }

    #[test]
    fn config_entries_become_specs() {
        let specs = specs_from_config(
            raw(r#"
                [[checks]]
                table = "fct_order"
                column = "customer_id"
                kind = "relationships"
                to = "dim_customer.customer_id"
                severity = "error"
                [[checks]]
                name = "orders_fresh"
                table = "raw_bc_order"
                column = "modified_at"
                kind = "freshness"
                max_age = "1h"
            "#),
            false,
            "govflow.toml",
        )
        .unwrap();
        assert_eq!(specs[0].name, "fct_order.customer_id.relationships");
        assert_eq!(specs[0].severity, Severity::Error);
        assert_eq!(
            specs[1].kind,
            CheckKind::Freshness {
                max_age_micros: 3_600_000_000
            }
        );
        assert_eq!(specs[1].name, "orders_fresh");
        assert_eq!(
            specs_from_config(Vec::new(), true, "f").unwrap(),
            dataflows::checks::default_checks()
        );
    }

    #[test]
    fn bad_entries_name_the_key() {
        let cases = [
            (r#"table = "nope""#, "checks[0].table"),
            (r#"table = "fct_order""#, "checks[0].column"),
        ];
        for (table, key) in cases {
            let text = format!("[[checks]]\n{table}\ncolumn = \"x\"\nkind = \"unique\"\n");
            let e = specs_from_config(raw(&text), false, "f.toml").unwrap_err();
            assert_eq!(e.key, key, "{e}");
        }
        // A raw column no model reads is not held by the dataflow.
        let e = specs_from_config(
            raw("[[checks]]\ntable = \"raw_bc_order_item\"\ncolumn = \"name\"\nkind = \"not_null\"\n"),
            false,
            "f.toml",
        )
        .unwrap_err();
        assert_eq!(e.key, "checks[0].column");
        assert!(
            e.problem.contains("no model reads it") && e.problem.contains("sku"),
            "{e}"
        );
        assert!(
            specs_from_config(
                raw("[[checks]]\ntable = \"raw_bc_order_item\"\ncolumn = \"sku\"\nkind = \"not_null\"\n"),
                false,
                "f.toml",
            )
            .is_ok()
        );
        let e = specs_from_config(
            raw("[[checks]]\ntable = \"fct_order\"\ncolumn = \"status\"\nkind = \"accepted_values\"\n"),
            false,
            "f.toml",
        )
        .unwrap_err();
        assert_eq!(e.key, "checks[0].values");
        let e = specs_from_config(
            raw("[[checks]]\ntable = \"fct_order\"\ncolumn = \"status\"\nkind = \"relationships\"\nto = \"dim_customer.nope\"\n"),
            false,
            "f.toml",
        )
        .unwrap_err();
        assert_eq!(e.key, "checks[0].to");
    }

    #[test]
    fn results_file_round_trips_and_freshness_uses_the_reader_clock() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            ChecksFile::load(dir.path()),
            Err(ChecksFileError::Missing { .. })
        ));
        let fresh = CheckSpec::new(
            Table::RawBcOrder,
            "modified_at",
            CheckKind::Freshness {
                max_age_micros: 60_000_000,
            },
            Severity::Error,
        );
        let at = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let file = ChecksFile {
            epoch: Some(3),
            updated_at: at,
            results: vec![CheckResult {
                spec: fresh,
                failing: 0,
                samples: Vec::new(),
                newest: Some(at.timestamp_micros()),
            }],
        };
        file.store(dir.path()).unwrap();
        let loaded = ChecksFile::load(dir.path()).unwrap();
        assert_eq!(loaded, file);
        assert!(!any_error(&loaded.results_at(at)));
        let later = loaded.results_at(at + chrono::Duration::minutes(2));
        assert!(any_error(&later));
        let report = render_report(&loaded, &later);
        assert!(
            report.contains("FAIL  raw_bc_order.modified_at.freshness"),
            "{report}"
        );
    }
}
