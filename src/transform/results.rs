//! What a dbt invocation did: `run_results.json` and dbt's JSON log lines,
//! turned into per-node status, timing and failure counts.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// The status of one node (model, test, seed, snapshot) in a run.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeStatus {
    /// A model, seed or snapshot was built.
    Success,
    /// A test found no failing rows.
    Pass,
    /// A test with `severity: warn` found failing rows (the run still succeeds).
    Warn,
    /// A test found failing rows (see [`NodeResult::failures`]).
    Fail,
    /// The node's SQL failed (a model that did not build, a test that did not run).
    Error,
    /// Not run, because something it depends on failed.
    Skipped,
    /// Nothing to do (dbt's `no-op`).
    NoOp,
    /// A status this runner does not know, as dbt wrote it.
    Other(String),
}

impl NodeStatus {
    /// dbt's spelling (`success`, `pass`, `fail`, …) to a status.
    pub fn parse(text: &str) -> NodeStatus {
        match text {
            "success" => NodeStatus::Success,
            "pass" => NodeStatus::Pass,
            "warn" => NodeStatus::Warn,
            "fail" => NodeStatus::Fail,
            "error" | "runtime error" => NodeStatus::Error,
            "skipped" => NodeStatus::Skipped,
            "no-op" => NodeStatus::NoOp,
            other => NodeStatus::Other(other.to_string()),
        }
    }

    /// dbt's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            NodeStatus::Success => "success",
            NodeStatus::Pass => "pass",
            NodeStatus::Warn => "warn",
            NodeStatus::Fail => "fail",
            NodeStatus::Error => "error",
            NodeStatus::Skipped => "skipped",
            NodeStatus::NoOp => "no-op",
            NodeStatus::Other(s) => s,
        }
    }

    /// Whether the node did what it should (success, pass, warn, no-op).
    pub fn is_ok(&self) -> bool {
        matches!(
            self,
            NodeStatus::Success | NodeStatus::Pass | NodeStatus::Warn | NodeStatus::NoOp
        )
    }
}

impl std::fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of a node, from its `unique_id` (`model.govflow.x`, `test.govflow.y`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeKind {
    /// A model.
    Model,
    /// A data test (generic or singular) or a unit test.
    Test,
    /// A seed.
    Seed,
    /// A snapshot.
    Snapshot,
    /// Anything else (operations, sources).
    Other,
}

impl NodeKind {
    /// The kind of `unique_id`.
    pub fn of(unique_id: &str) -> NodeKind {
        match unique_id.split('.').next() {
            Some("model") => NodeKind::Model,
            Some("test" | "unit_test") => NodeKind::Test,
            Some("seed") => NodeKind::Seed,
            Some("snapshot") => NodeKind::Snapshot,
            _ => NodeKind::Other,
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Model => "model",
            NodeKind::Test => "test",
            NodeKind::Seed => "seed",
            NodeKind::Snapshot => "snapshot",
            NodeKind::Other => "other",
        }
    }
}

/// One node's result.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeResult {
    /// dbt's unique id, e.g. `test.govflow.unique_stg_govflow__orders_order_id.1a2b3c`.
    pub unique_id: String,
    /// The node's name (the unique id without its kind, package and hash).
    pub name: String,
    /// Model, test, …
    pub kind: NodeKind,
    /// What happened.
    pub status: NodeStatus,
    /// How long the node ran.
    pub execution_time: Duration,
    /// Failing rows found by a test (`None` for models).
    pub failures: Option<u64>,
    /// dbt's message (an error text, or e.g. `Got 3 results, configured to fail if != 0`).
    pub message: Option<String>,
}

/// What one dbt invocation did.
#[derive(Clone, Debug, PartialEq)]
pub struct DbtRunReport {
    /// `build`, `run` or `test`.
    pub command: String,
    /// dbt's exit code: 0 (everything passed, warnings included) or 1 (a model
    /// or a test failed). Exit code 2 is an error, not a report.
    pub exit_code: i32,
    /// dbt's invocation id (from `run_results.json`).
    pub invocation_id: Option<String>,
    /// The warehouse epoch the run read (`None` when nothing was pinned).
    pub snapshot_epoch: Option<u64>,
    /// Wall time of the whole invocation (Python start-up included).
    pub elapsed: Duration,
    /// Per node, in the order dbt finished them.
    pub nodes: Vec<NodeResult>,
    /// Error-level messages of dbt's log.
    pub errors: Vec<String>,
}

impl DbtRunReport {
    /// Whether every node succeeded (warnings allowed): exit code 0.
    pub fn success(&self) -> bool {
        self.exit_code == 0 && self.nodes.iter().all(|n| n.status.is_ok())
    }

    /// The nodes that did not succeed (fail, error, skipped, unknown).
    pub fn problems(&self) -> impl Iterator<Item = &NodeResult> {
        self.nodes.iter().filter(|n| !n.status.is_ok())
    }

    /// The node of `name` (or of unique id `name`).
    pub fn node(&self, name: &str) -> Option<&NodeResult> {
        self.nodes
            .iter()
            .find(|n| n.name == name || n.unique_id == name)
    }

    /// How many nodes of `kind` ended in each status.
    pub fn counts(&self, kind: NodeKind) -> BTreeMap<NodeStatus, usize> {
        let mut counts = BTreeMap::new();
        for n in self.nodes.iter().filter(|n| n.kind == kind) {
            *counts.entry(n.status.clone()).or_default() += 1;
        }
        counts
    }

    /// A human summary: one line per node, then totals.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        for n in &self.nodes {
            let failures = match n.failures {
                Some(f) if f > 0 => format!(" ({f} failing rows)"),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "{:<8} {:<5} {:>7.2}s  {}{failures}",
                n.kind.as_str(),
                n.status.as_str(),
                n.execution_time.as_secs_f64(),
                n.name
            );
            if !n.status.is_ok()
                && let Some(m) = &n.message
            {
                let _ = writeln!(out, "         {}", first_line(m));
            }
        }
        let totals = |kind| {
            self.counts(kind)
                .iter()
                .map(|(s, c)| format!("{c} {s}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            out,
            "dbt {} on epoch {}: models: {}; tests: {}; exit code {} in {:.1}s",
            self.command,
            self.snapshot_epoch
                .map_or("-".to_string(), |e| e.to_string()),
            or_none(totals(NodeKind::Model)),
            or_none(totals(NodeKind::Test)),
            self.exit_code,
            self.elapsed.as_secs_f64()
        );
        out
    }
}

fn or_none(s: String) -> String {
    if s.is_empty() { "none".to_string() } else { s }
}

fn first_line(s: &str) -> &str {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

/// The name of a node from its unique id: `model.govflow.mart_x` → `mart_x`;
/// tests lose their trailing hash (`test.govflow.unique_x.1a2b3c4d5e` → `unique_x`).
pub fn node_name(unique_id: &str) -> String {
    let mut parts: Vec<&str> = unique_id.split('.').collect();
    if NodeKind::of(unique_id) == NodeKind::Test
        && parts.len() > 3
        && parts
            .last()
            .is_some_and(|h| h.len() == 10 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        parts.pop();
    }
    parts.get(2..).map(|p| p.join(".")).unwrap_or_default()
}

#[derive(Deserialize)]
struct RunResults {
    metadata: Metadata,
    results: Vec<RawResult>,
}

#[derive(Deserialize)]
struct Metadata {
    invocation_id: Option<String>,
}

#[derive(Deserialize)]
struct RawResult {
    unique_id: String,
    status: String,
    #[serde(default)]
    execution_time: f64,
    failures: Option<u64>,
    message: Option<String>,
}

/// Parses `run_results.json` into (invocation id, nodes).
pub fn parse_run_results(text: &str) -> Result<(Option<String>, Vec<NodeResult>), String> {
    let raw: RunResults = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let nodes = raw
        .results
        .into_iter()
        .map(|r| {
            let kind = NodeKind::of(&r.unique_id);
            NodeResult {
                name: node_name(&r.unique_id),
                kind,
                status: NodeStatus::parse(&r.status),
                execution_time: Duration::try_from_secs_f64(r.execution_time).unwrap_or_default(),
                failures: if kind == NodeKind::Test {
                    r.failures
                } else {
                    None
                },
                message: r.message,
                unique_id: r.unique_id,
            }
        })
        .collect();
    Ok((raw.metadata.invocation_id, nodes))
}

/// What dbt's `--log-format json` lines say.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogSummary {
    /// Node results as logged (`LogModelResult`, `LogTestResult`, …), in order.
    pub nodes: Vec<NodeResult>,
    /// Messages of error level (`MainEncounteredError`, compilation errors, …).
    pub errors: Vec<String>,
    /// The invocation id the log lines carry.
    pub invocation_id: Option<String>,
}

/// Reads dbt's JSON log lines (others, e.g. Python warnings, are skipped).
pub fn parse_log_lines(text: &str) -> LogSummary {
    let mut summary = LogSummary::default();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line.trim()) else {
            continue;
        };
        let info = &v["info"];
        let data = &v["data"];
        if summary.invocation_id.is_none() {
            summary.invocation_id = info["invocation_id"].as_str().map(str::to_string);
        }
        let name = info["name"].as_str().unwrap_or_default();
        let msg = info["msg"].as_str().unwrap_or_default();
        if info["level"].as_str() == Some("error") && !msg.is_empty() && !is_result_event(name) {
            summary.errors.push(msg.to_string());
        }
        if is_result_event(name)
            && let Some(unique_id) = data["node_info"]["unique_id"].as_str()
        {
            let kind = NodeKind::of(unique_id);
            let status = data["status"]
                .as_str()
                .or_else(|| data["node_info"]["node_status"].as_str())
                .unwrap_or_default();
            summary.nodes.push(NodeResult {
                unique_id: unique_id.to_string(),
                name: node_name(unique_id),
                kind,
                status: NodeStatus::parse(status),
                execution_time: data["execution_time"]
                    .as_f64()
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .unwrap_or_default(),
                failures: if kind == NodeKind::Test {
                    data["num_failures"].as_u64()
                } else {
                    None
                },
                message: (!msg.is_empty()).then(|| msg.to_string()),
            });
        }
    }
    summary
}

fn is_result_event(name: &str) -> bool {
    matches!(
        name,
        "LogModelResult" | "LogTestResult" | "LogSeedResult" | "LogSnapshotResult"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN_RESULTS: &str = r#"{
      "metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/run-results/v6.json", "invocation_id": "abc"},
      "elapsed_time": 3.2,
      "results": [
        {"unique_id": "model.govflow.mart_x", "status": "success", "execution_time": 0.5, "failures": null, "message": "OK", "timing": [], "thread_id": "Thread-1", "adapter_response": {}},
        {"unique_id": "test.govflow.unique_mart_x_id.1a2b3c4d5e", "status": "fail", "execution_time": 0.1, "failures": 3, "message": "Got 3 results, configured to fail if != 0"},
        {"unique_id": "test.govflow.not_null_mart_x_id.0a2b3c4d5f", "status": "pass", "execution_time": 0.1, "failures": 0, "message": null},
        {"unique_id": "model.govflow.mart_y", "status": "skipped", "execution_time": 0, "failures": null, "message": null}
      ]
    }"#;

    #[test]
    fn run_results_become_node_results() {
        let (id, nodes) = parse_run_results(RUN_RESULTS).unwrap();
        assert_eq!(id.as_deref(), Some("abc"));
        assert_eq!(nodes.len(), 4);
        assert_eq!(nodes[0].name, "mart_x");
        assert_eq!(nodes[0].kind, NodeKind::Model);
        assert_eq!(nodes[0].failures, None);
        assert_eq!(nodes[1].name, "unique_mart_x_id");
        assert_eq!(nodes[1].status, NodeStatus::Fail);
        assert_eq!(nodes[1].failures, Some(3));
        assert_eq!(nodes[3].status, NodeStatus::Skipped);
        let report = DbtRunReport {
            command: "build".into(),
            exit_code: 1,
            invocation_id: id,
            snapshot_epoch: Some(7),
            elapsed: Duration::from_secs(5),
            nodes,
            errors: Vec::new(),
        };
        assert!(!report.success());
        assert_eq!(report.problems().count(), 2);
        assert_eq!(report.counts(NodeKind::Test)[&NodeStatus::Fail], 1);
        let text = report.summary();
        assert!(text.contains("3 failing rows"), "{text}");
        assert!(text.contains("models: 1 success, 1 skipped"), "{text}");
    }

    #[test]
    fn json_log_lines_give_nodes_and_errors() {
        let log = concat!(
            r#"{"info": {"name": "MainReportVersion", "level": "info", "msg": "Running with dbt=1.11", "invocation_id": "inv-1"}, "data": {}}"#,
            "\n",
            "not json\n",
            r#"{"info": {"name": "LogTestResult", "level": "error", "msg": "1 of 2 FAIL 2 unique_x", "invocation_id": "inv-1"}, "data": {"node_info": {"unique_id": "test.govflow.unique_x.aaaaaaaaaa", "node_status": "fail"}, "status": "fail", "num_failures": 2, "execution_time": 0.25}}"#,
            "\n",
            r#"{"info": {"name": "MainEncounteredError", "level": "error", "msg": "Encountered an error:\nParsing Error", "invocation_id": "inv-1"}, "data": {}}"#,
            "\n"
        );
        let s = parse_log_lines(log);
        assert_eq!(s.invocation_id.as_deref(), Some("inv-1"));
        assert_eq!(s.nodes.len(), 1);
        assert_eq!(s.nodes[0].name, "unique_x");
        assert_eq!(s.nodes[0].failures, Some(2));
        assert_eq!(s.nodes[0].status, NodeStatus::Fail);
        assert_eq!(
            s.errors,
            vec!["Encountered an error:\nParsing Error".to_string()]
        );
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            "success", "pass", "warn", "fail", "error", "skipped", "no-op",
        ] {
            assert_eq!(NodeStatus::parse(s).as_str(), s);
        }
        assert_eq!(
            NodeStatus::parse("weird"),
            NodeStatus::Other("weird".into())
        );
        assert!(NodeStatus::Warn.is_ok() && !NodeStatus::Fail.is_ok());
    }
}
