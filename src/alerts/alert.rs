//! What an alert says: its kinds, its dedup key and its Slack text.

/// A node of a dbt run that failed (a model error, a failing test).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedNode {
    /// The node's unique id or name, e.g. `test.not_null_mart_order_order_id`.
    pub name: String,
    /// What dbt said about it, e.g. `Got 3 results, configured to fail if != 0`.
    pub message: String,
}

/// Something worth telling people about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Alert {
    /// A data check has failing rows.
    CheckFailing {
        /// The check, e.g. `not_null(email)`.
        check: String,
        /// The table checked.
        table: String,
        /// How many rows fail.
        failing_count: u64,
        /// Some of the failing rows' keys.
        sample_keys: Vec<String>,
    },
    /// A check that was failing passes again.
    CheckRecovered {
        /// The check.
        check: String,
        /// The table checked.
        table: String,
    },
    /// A dbt invocation failed.
    DbtFailed {
        /// The command, e.g. `dbt build` or `dbt build --full-refresh`.
        command: String,
        /// The nodes that failed (empty when dbt failed before running any).
        failed_nodes: Vec<FailedNode>,
        /// The overall error, shown when no node is named.
        summary: String,
    },
    /// dbt succeeds again after a failure.
    DbtRecovered {
        /// The command that succeeded.
        command: String,
    },
    /// A source failed `consecutive_failures` times in a row (at or past the threshold).
    SourceFailing {
        /// The source, e.g. `bigcommerce` or `postgres.wise`.
        source: String,
        /// Failures in a row.
        consecutive_failures: u32,
        /// The last error (redacted before sending).
        last_error: String,
    },
    /// A failing source succeeds again.
    SourceRecovered {
        /// The source.
        source: String,
        /// How many failures in a row it had.
        failures: u32,
    },
    /// A full refresh (sources, then `dbt build --full-refresh`) failed.
    FullRefreshFailed {
        /// What failed.
        error: String,
    },
    /// A full refresh succeeds after a failure.
    FullRefreshRecovered,
    /// A configured table's column changed type upstream in a way that would
    /// lose values: the column keeps its type, rows that do not fit are dead
    /// letters (docs/tables.md, Schema evolution).
    SchemaIncompatible {
        /// The warehouse table.
        table: String,
        /// The columns and their types.
        change: String,
    },
    /// The table's columns fit it again.
    SchemaRecovered {
        /// The warehouse table.
        table: String,
    },
}

/// Most failed nodes listed in one message.
const MAX_NODES: usize = 20;
/// Most sample keys listed in one message.
const MAX_KEYS: usize = 5;
/// Longest error text kept in a message, in characters.
const MAX_ERROR_CHARS: usize = 500;

impl Alert {
    /// The deduplication key: a failing alert and its recovery share it.
    pub fn key(&self) -> String {
        match self {
            Alert::CheckFailing { check, table, .. } | Alert::CheckRecovered { check, table } => {
                format!("check:{table}:{check}")
            }
            Alert::DbtFailed { .. } | Alert::DbtRecovered { .. } => "dbt".to_string(),
            Alert::SourceFailing { source, .. } | Alert::SourceRecovered { source, .. } => {
                format!("source:{source}")
            }
            Alert::FullRefreshFailed { .. } | Alert::FullRefreshRecovered => {
                "full_refresh".to_string()
            }
            Alert::SchemaIncompatible { table, .. } | Alert::SchemaRecovered { table } => {
                format!("schema:{table}")
            }
        }
    }

    /// Whether this alert reports a recovery.
    pub fn is_recovery(&self) -> bool {
        matches!(
            self,
            Alert::CheckRecovered { .. }
                | Alert::DbtRecovered { .. }
                | Alert::SourceRecovered { .. }
                | Alert::FullRefreshRecovered
                | Alert::SchemaRecovered { .. }
        )
    }

    /// What makes a failure new while its key is already failing: dbt failing
    /// on another set of nodes is sent again; a count that changes is not.
    pub(super) fn fingerprint(&self) -> String {
        match self {
            Alert::DbtFailed { failed_nodes, .. } => {
                let mut names: Vec<&str> = failed_nodes.iter().map(|n| n.name.as_str()).collect();
                names.sort_unstable();
                names.join(",")
            }
            // Another incompatible change is news.
            Alert::SchemaIncompatible { change, .. } => change.clone(),
            _ => String::new(),
        }
    }

    /// The message text (Slack mrkdwn), before redaction.
    pub fn text(&self) -> String {
        const FAILING: &str = ":red_circle: govflow";
        const RECOVERED: &str = ":large_green_circle: govflow";
        match self {
            Alert::CheckFailing {
                check,
                table,
                failing_count,
                sample_keys,
            } => {
                let rows = plural(*failing_count, "failing row", "failing rows");
                let mut text = format!("{FAILING} check `{check}` on `{table}` is failing: {rows}");
                if !sample_keys.is_empty() {
                    let shown: Vec<&str> = sample_keys
                        .iter()
                        .take(MAX_KEYS)
                        .map(String::as_str)
                        .collect();
                    text.push_str(&format!("; sample keys: {}", shown.join(", ")));
                    if sample_keys.len() > MAX_KEYS {
                        text.push_str(", …");
                    }
                }
                text
            }
            Alert::CheckRecovered { check, table } => {
                format!("{RECOVERED} check `{check}` on `{table}` passes again")
            }
            Alert::DbtFailed {
                command,
                failed_nodes,
                summary,
            } => {
                if failed_nodes.is_empty() {
                    return format!("{FAILING} `{command}` failed: {}", truncate(summary));
                }
                let count = failed_nodes.len() as u64;
                let mut text = format!(
                    "{FAILING} `{command}` failed: {}",
                    plural(count, "node failed", "nodes failed")
                );
                for node in failed_nodes.iter().take(MAX_NODES) {
                    text.push_str(&format!("\n• `{}`: {}", node.name, truncate(&node.message)));
                }
                if failed_nodes.len() > MAX_NODES {
                    text.push_str(&format!(
                        "\n• … and {} more",
                        failed_nodes.len() - MAX_NODES
                    ));
                }
                text
            }
            Alert::DbtRecovered { command } => format!("{RECOVERED} `{command}` succeeds again"),
            Alert::SourceFailing {
                source,
                consecutive_failures,
                last_error,
            } => format!(
                "{FAILING} source `{source}` is failing: {} in a row; last error: {}",
                plural(u64::from(*consecutive_failures), "failure", "failures"),
                truncate(last_error)
            ),
            Alert::SourceRecovered { source, failures } => format!(
                "{RECOVERED} source `{source}` recovered after {} in a row",
                plural(u64::from(*failures), "failure", "failures")
            ),
            Alert::FullRefreshFailed { error } => {
                format!("{FAILING} full refresh failed: {}", truncate(error))
            }
            Alert::FullRefreshRecovered => format!("{RECOVERED} full refresh succeeds again"),
            Alert::SchemaIncompatible { table, change } => format!(
                "{FAILING} table `{table}` changed upstream in a way it cannot follow: {change}"
            ),
            Alert::SchemaRecovered { table } => {
                format!("{RECOVERED} table `{table}` fits its source's columns again")
            }
        }
    }
}

pub(super) fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

fn truncate(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(MAX_ERROR_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}
