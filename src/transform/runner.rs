//! Runs dbt: one invocation at a time, pinned to one warehouse snapshot.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sinks::local::{SnapshotPin, WarehouseError};
use crate::transform::DbtConfig;

use super::results::{self, DbtRunReport};

/// The dbt commands govflow runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DbtCommand {
    /// Models and their tests, in dependency order.
    Build,
    /// Models only.
    Run,
    /// Tests only.
    Test,
}

impl DbtCommand {
    /// dbt's name of the command.
    pub fn as_str(self) -> &'static str {
        match self {
            DbtCommand::Build => "build",
            DbtCommand::Run => "run",
            DbtCommand::Test => "test",
        }
    }
}

/// A dbt invocation that produced no report.
#[derive(Debug, thiserror::Error)]
pub enum DbtError {
    /// dbt could not be started (not installed: run `./dev.sh test` or see the README).
    #[error("dbt: cannot start {program}: {source}")]
    Spawn {
        /// The executable.
        program: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A file of the run could not be read or written.
    #[error("dbt: {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The warehouse snapshot could not be pinned.
    #[error("dbt: pinning the warehouse snapshot: {0}")]
    Snapshot(#[from] WarehouseError),
    /// Another process holds the dbt lock for longer than the wait allows.
    #[error("dbt: another dbt run (pid {holder}) holds {path}")]
    Busy {
        /// The lock file.
        path: String,
        /// The process holding it.
        holder: String,
    },
    /// dbt itself failed (exit code 2): a bad project, profile, ref, YAML or
    /// flag, or the marts database locked by another process. No node ran.
    #[error("dbt {command} failed (exit code 2): {excerpt}")]
    Invocation {
        /// The command.
        command: String,
        /// dbt's error messages, or the tail of its output.
        excerpt: String,
    },
    /// dbt ended otherwise without results (killed, crashed, unknown exit code).
    #[error("dbt {command} ended without results ({status}): {excerpt}")]
    Crashed {
        /// The command.
        command: String,
        /// The exit status.
        status: String,
        /// The tail of its output.
        excerpt: String,
    },
    /// dbt ran longer than the configured timeout and was stopped.
    #[error("dbt {command} ran longer than {after:?} and was stopped")]
    TimedOut {
        /// The command.
        command: String,
        /// The timeout.
        after: Duration,
    },
    /// `run_results.json` is not what dbt writes.
    #[error("dbt: {path}: {detail}")]
    Results {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
}

impl DbtError {
    /// Whether the same run may succeed if tried again later: a busy lock, a
    /// locked marts database, I/O, a crash or a timeout may; a broken project,
    /// a missing dbt or unreadable results will not.
    pub fn is_retryable(&self) -> bool {
        match self {
            DbtError::Busy { .. }
            | DbtError::Io { .. }
            | DbtError::Crashed { .. }
            | DbtError::TimedOut { .. } => true,
            DbtError::Snapshot(e) => e.is_retryable(),
            DbtError::Invocation { excerpt, .. } => {
                let e = excerpt.to_ascii_lowercase();
                e.contains("could not set lock") || e.contains("conflicting lock")
            }
            DbtError::Spawn { .. } | DbtError::Results { .. } => false,
        }
    }
}

/// Finds the `dbt` executable: `$GOVFLOW_DBT`, else the `dbt` next to
/// `$GOVFLOW_PYTHON` (the project's virtualenv), else `.venv/bin/dbt` in the
/// working directory, else `dbt` on the `PATH`.
pub fn find_dbt() -> PathBuf {
    if let Some(dbt) = std::env::var_os("GOVFLOW_DBT") {
        return PathBuf::from(dbt);
    }
    if let Some(python) = std::env::var_os("GOVFLOW_PYTHON") {
        let dbt = Path::new(&python).with_file_name("dbt");
        if dbt.exists() {
            return dbt;
        }
    }
    let venv = Path::new(".venv/bin/dbt");
    if venv.exists() {
        return venv.to_path_buf();
    }
    PathBuf::from("dbt")
}

/// Serialises dbt invocations within the process.
static IN_PROCESS: Mutex<()> = Mutex::new(());

/// Runs one dbt project. Invocations are serialised: within the process by a
/// mutex, across processes by a lock file in the work directory (one dbt at a
/// time may write the marts database).
#[derive(Clone, Debug)]
pub struct DbtRunner {
    project_dir: PathBuf,
    profiles_dir: PathBuf,
    dbt: PathBuf,
    target: String,
    marts_db: PathBuf,
    work_dir: PathBuf,
    timeout: Duration,
    lock_wait: Duration,
}

impl DbtRunner {
    /// A runner of the project in `project_dir` with the `profiles.yml` of
    /// `profiles_dir`, the `dbt` executable `dbt` and the profile `target`.
    /// dbt's `target/` and `logs/` go under `work_dir`; the `duckdb` target
    /// writes the marts into `marts_db`.
    pub fn new(
        project_dir: impl Into<PathBuf>,
        profiles_dir: impl Into<PathBuf>,
        dbt: impl Into<PathBuf>,
        target: impl Into<String>,
        marts_db: impl Into<PathBuf>,
        work_dir: impl Into<PathBuf>,
    ) -> DbtRunner {
        DbtRunner {
            project_dir: project_dir.into(),
            profiles_dir: profiles_dir.into(),
            dbt: dbt.into(),
            target: target.into(),
            marts_db: marts_db.into(),
            work_dir: work_dir.into(),
            timeout: Duration::from_secs(30 * 60),
            lock_wait: Duration::from_secs(30 * 60),
        }
    }

    /// The runner of a `[dbt]` configuration.
    pub fn from_config(config: &DbtConfig) -> DbtRunner {
        DbtRunner::new(
            &config.project_dir,
            &config.profiles_dir,
            config.executable.clone().unwrap_or_else(find_dbt),
            &config.target,
            &config.marts_db,
            &config.work_dir,
        )
        .with_timeout(config.timeout)
    }

    /// Stops an invocation that runs longer than `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> DbtRunner {
        self.timeout = timeout;
        self
    }

    /// Waits at most `wait` for another process's dbt run to finish.
    pub fn with_lock_wait(mut self, wait: Duration) -> DbtRunner {
        self.lock_wait = wait;
        self
    }

    /// Where dbt writes `run_results.json`, `manifest.json`, compiled SQL.
    pub fn target_path(&self) -> PathBuf {
        self.work_dir.join("target")
    }

    /// Runs `dbt <command>` reading `snapshot` (the local warehouse's pinned
    /// snapshot; `None` for targets that read their own tables, e.g.
    /// BigQuery), held for the whole run. Blocks: from async code, call it in
    /// `spawn_blocking`.
    ///
    /// Exit code 0 (all passed, warnings included) and 1 (a model or a test
    /// failed) give a report; exit code 2 (dbt itself failed) and anything
    /// without results give an error.
    pub fn run(
        &self,
        command: DbtCommand,
        full_refresh: bool,
        snapshot: Option<&SnapshotPin>,
    ) -> Result<DbtRunReport, DbtError> {
        let started = Instant::now();
        let _serial = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
        // dbt resolves relative paths against the project: make them absolute.
        std::fs::create_dir_all(&self.work_dir).map_err(|e| io(&self.work_dir, e))?;
        let work_dir = self
            .work_dir
            .canonicalize()
            .map_err(|e| io(&self.work_dir, e))?;
        let _lock = FileLock::acquire(&work_dir.join("dbt.lock"), self.lock_wait)?;
        let marts_db = std::path::absolute(&self.marts_db).map_err(|e| io(&self.marts_db, e))?;
        if let Some(parent) = marts_db.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        let target_path = work_dir.join("target");
        // An old run_results.json must not pass for this run's.
        let run_results = target_path.join("run_results.json");
        match std::fs::remove_file(&run_results) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io(&run_results, e));
            }
            _ => {}
        }
        let vars = snapshot_vars(snapshot)?;
        if let Some(pin) = snapshot {
            super::sources::write_sources(&self.project_dir, pin)?;
        }
        let mut cmd = Command::new(&self.dbt);
        cmd.arg("--no-use-colors")
            .arg("--log-format")
            .arg("json")
            .arg(command.as_str())
            .arg("--project-dir")
            .arg(&self.project_dir)
            .arg("--profiles-dir")
            .arg(&self.profiles_dir)
            .arg("--target")
            .arg(&self.target)
            .arg("--target-path")
            .arg(&target_path)
            .arg("--log-path")
            .arg(work_dir.join("logs"))
            .arg("--vars")
            .arg(&vars)
            .env("GOVFLOW_MARTS_DB", &marts_db)
            .env("GOVFLOW_DBT_TARGET", &self.target)
            .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if full_refresh {
            cmd.arg("--full-refresh");
        }
        if let Some(json) = key_json_for_dbt(std::env::var("GCP_SERVICE_ACCOUNT_KEY").ok())? {
            cmd.env("GCP_SERVICE_ACCOUNT_KEY", json);
        }
        tracing::info!(
            command = command.as_str(),
            full_refresh,
            epoch = snapshot.and_then(|s| s.epoch()),
            target = %self.target,
            "dbt starts"
        );
        let output = run_with_timeout(cmd, self.timeout).map_err(|e| match e {
            RunError::Spawn(source) => DbtError::Spawn {
                program: self.dbt.display().to_string(),
                source,
            },
            RunError::Wait(source) => io(&self.dbt, source),
            RunError::TimedOut => DbtError::TimedOut {
                command: command.as_str().to_string(),
                after: self.timeout,
            },
        })?;
        let log = results::parse_log_lines(&output.stdout);
        let excerpt = || excerpt(&log.errors, &output.stdout, &output.stderr);
        let code = output.status.code();
        let report = |nodes, invocation_id| DbtRunReport {
            command: command.as_str().to_string(),
            exit_code: code.unwrap_or(-1),
            invocation_id,
            snapshot_epoch: snapshot.and_then(|s| s.epoch()),
            elapsed: started.elapsed(),
            nodes,
            errors: log.errors.clone(),
        };
        let report = match code {
            Some(0 | 1) => match std::fs::read_to_string(&run_results) {
                Ok(text) => {
                    let (id, nodes) =
                        results::parse_run_results(&text).map_err(|detail| DbtError::Results {
                            path: run_results.display().to_string(),
                            detail,
                        })?;
                    report(nodes, id.or(log.invocation_id.clone()))
                }
                // Exit 1 without results: the log lines are all there is.
                Err(_) if code == Some(1) && !log.nodes.is_empty() => {
                    report(log.nodes.clone(), log.invocation_id.clone())
                }
                Err(e) if code == Some(0) => return Err(io(&run_results, e)),
                Err(_) => {
                    return Err(DbtError::Crashed {
                        command: command.as_str().to_string(),
                        status: "exit code 1".into(),
                        excerpt: excerpt(),
                    });
                }
            },
            Some(2) => {
                return Err(DbtError::Invocation {
                    command: command.as_str().to_string(),
                    excerpt: excerpt(),
                });
            }
            _ => {
                return Err(DbtError::Crashed {
                    command: command.as_str().to_string(),
                    status: output.status.to_string(),
                    excerpt: excerpt(),
                });
            }
        };
        tracing::info!(
            command = command.as_str(),
            exit_code = report.exit_code,
            nodes = report.nodes.len(),
            problems = report.problems().count(),
            elapsed_ms = report.elapsed.as_millis() as u64,
            "dbt finished"
        );
        Ok(report)
    }
}

/// The BigQuery profile reads the key's JSON from `GCP_SERVICE_ACCOUNT_KEY`;
/// govflow also accepts the path of the key file there (docs/bigquery.md).
/// For a path, the file's contents to hand dbt instead; `None` when the
/// variable is unset, empty or already JSON.
fn key_json_for_dbt(value: Option<String>) -> Result<Option<String>, DbtError> {
    let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    if value.trim_start().starts_with('{') {
        return Ok(None);
    }
    let path = Path::new(value.trim());
    std::fs::read_to_string(path)
        .map(Some)
        .map_err(|e| io(path, e))
}

fn io(path: &Path, source: std::io::Error) -> DbtError {
    DbtError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Longest `--vars` argument: Linux refuses a single argument over 128 KiB.
const MAX_VARS_BYTES: usize = 120 * 1024;

/// The `--vars` of a run: `govflow_epoch` and, per table of the snapshot,
/// `govflow__<table>`, the parenthesised query of its current rows (what the
/// project's sources read through dbt-duckdb's `external_location`, whose
/// `{…}` placeholders are escaped).
pub fn snapshot_vars(snapshot: Option<&SnapshotPin>) -> Result<String, DbtError> {
    let mut vars = serde_json::Map::new();
    if let Some(pin) = snapshot {
        vars.insert("govflow_epoch".into(), pin.epoch().into());
        for table in pin.manifest().tables.keys() {
            if let Some(query) = pin.table_query(table) {
                let location = format!("({query})").replace('{', "{{").replace('}', "}}");
                vars.insert(format!("govflow__{table}"), location.into());
            }
        }
    }
    let text = serde_json::Value::Object(vars).to_string();
    if text.len() > MAX_VARS_BYTES {
        return Err(DbtError::Io {
            path: "--vars".into(),
            source: std::io::Error::other(format!(
                "the snapshot's file list is {} bytes, over the {MAX_VARS_BYTES} an argument may hold",
                text.len()
            )),
        });
    }
    Ok(text)
}

/// dbt's error messages, else the tail of its output, shortened.
fn excerpt(errors: &[String], stdout: &str, stderr: &str) -> String {
    let text = if errors.is_empty() {
        let tail: Vec<&str> = stderr
            .lines()
            .chain(stdout.lines())
            .filter(|l| !l.trim().is_empty())
            .collect();
        tail[tail.len().saturating_sub(8)..].join("\n")
    } else {
        errors.join("\n")
    };
    const MAX: usize = 2000;
    if text.len() <= MAX {
        return text;
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

struct Output {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

enum RunError {
    Spawn(std::io::Error),
    Wait(std::io::Error),
    TimedOut,
}

/// Runs `cmd` to completion, reading its output, killing it after `timeout`.
fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Result<Output, RunError> {
    let mut child = cmd.spawn().map_err(RunError::Spawn)?;
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
            text
        })
    };
    let stdout = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(RunError::TimedOut);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                let _ = child.kill();
                return Err(RunError::Wait(e));
            }
        }
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// A lock file naming its holder's pid; a lock whose process is gone is taken over.
struct FileLock {
    path: PathBuf,
}

impl FileLock {
    fn acquire(path: &Path, wait: Duration) -> Result<FileLock, DbtError> {
        let deadline = Instant::now() + wait;
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(mut file) => {
                    use std::io::Write;
                    file.write_all(std::process::id().to_string().as_bytes())
                        .map_err(|e| io(path, e))?;
                    return Ok(FileLock {
                        path: path.to_path_buf(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(path).unwrap_or_default();
                    let holder = holder.trim().to_string();
                    if !holder.is_empty() && !process_alive(&holder) {
                        // Left by a process that is gone.
                        let _ = std::fs::remove_file(path);
                        continue;
                    }
                    if Instant::now() >= deadline {
                        return Err(DbtError::Busy {
                            path: path.display().to_string(),
                            holder,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(io(path, e)),
            }
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether the process `pid` runs (Linux: `/proc/<pid>`; elsewhere assumed).
fn process_alive(pid: &str) -> bool {
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_lock_is_taken_over_and_a_live_one_is_busy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dbt.lock");
        std::fs::write(&path, "999999999").unwrap();
        let lock = FileLock::acquire(&path, Duration::ZERO).unwrap();
        let e = FileLock::acquire(&path, Duration::from_millis(10))
            .err()
            .unwrap();
        assert!(
            matches!(e, DbtError::Busy { .. }) && e.is_retryable(),
            "{e}"
        );
        drop(lock);
        assert!(!path.exists());
    }

    #[test]
    fn a_key_path_is_handed_to_dbt_as_its_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.json");
        std::fs::write(&path, r#"{"type": "service_account"}"#).unwrap();
        let json = key_json_for_dbt(Some(path.display().to_string())).unwrap();
        assert_eq!(json.as_deref(), Some(r#"{"type": "service_account"}"#));
        assert_eq!(
            key_json_for_dbt(Some(r#" {"type": "x"}"#.into())).unwrap(),
            None
        );
        assert_eq!(key_json_for_dbt(None).unwrap(), None);
        assert_eq!(key_json_for_dbt(Some(" ".into())).unwrap(), None);
        let missing = dir.path().join("missing.json").display().to_string();
        assert!(key_json_for_dbt(Some(missing)).is_err());
    }

    #[test]
    fn without_a_snapshot_the_vars_are_empty() {
        assert_eq!(snapshot_vars(None).unwrap(), "{}");
    }

    #[test]
    fn exit_code_two_lock_conflicts_are_retryable_project_errors_not() {
        let lock = DbtError::Invocation {
            command: "build".into(),
            excerpt: "IO Error: Could not set lock on file \"marts.duckdb\": Conflicting lock"
                .into(),
        };
        assert!(lock.is_retryable());
        let project = DbtError::Invocation {
            command: "build".into(),
            excerpt: "Compilation Error in model x".into(),
        };
        assert!(!project.is_retryable());
    }
}
