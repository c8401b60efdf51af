//! The dbt runner: govflow builds the marts of `transformer/` with dbt.
//!
//! dbt is reserved for marts; govflow maintains every other table itself. A
//! run ([`DbtRunner::run`]) pins one snapshot of the local warehouse for its
//! whole duration (its files stay on disk until the run ends, and dbt's
//! sources read exactly those files, passed as `--vars`), takes the dbt lock
//! (one invocation at a time, in the process and across processes), runs dbt
//! with JSON logs, and reads `run_results.json` and the log lines into a
//! [`DbtRunReport`]: per model and per test, status, timing and failure
//! counts. dbt's exit code 1 (a model or a test failed) is a report; exit code
//! 2 (dbt itself failed: bad project, profile or flag, a locked database) is a
//! [`DbtError::Invocation`]. See docs/transformer.md.

pub mod config;
pub use config::{DEFAULT_DBT_PROJECT_DIR, DbtConfig};

mod results;
mod runner;
pub mod sources;

pub use results::{
    DbtRunReport, LogSummary, NodeKind, NodeResult, NodeStatus, node_name, parse_log_lines,
    parse_run_results,
};
pub use runner::{DbtCommand, DbtError, DbtRunner, find_dbt, snapshot_vars};
