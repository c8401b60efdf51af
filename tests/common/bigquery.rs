//! The BigQuery and GCS emulators on loopback (local-bigquery and
//! fake-gcs-server, installed by `./dev.sh test`), a fault-injecting HTTP
//! proxy in front of them, and reading BigQuery tables back for comparison.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use govflow::config::{BigQueryCredentials, Secret};
use govflow::sinks::bigquery::BigQueryConfig;
use govflow::sinks::bigquery::client::Client;

/// The project the emulator serves.
pub const PROJECT: &str = "test-proj";
/// The bucket created in fake-gcs-server.
pub const BUCKET: &str = "govflow-test";

fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("govflow/emulators")
}

fn tool(var: &str, default: impl FnOnce() -> Option<PathBuf>) -> PathBuf {
    let path = std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(default);
    match path {
        Some(p) if p.exists() => p,
        _ => panic!(
            "{var}: the BigQuery/GCS emulators are not installed: run the tests with ./dev.sh test, which installs them"
        ),
    }
}

fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        if path.file_name().is_some_and(|n| n == name) && path.is_file() {
            return Some(path);
        }
        if path.is_dir()
            && let Some(found) = find(&path, name)
        {
            return Some(found);
        }
    }
    None
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Both emulators, stopped on drop.
pub struct Emulators {
    bq: Option<Child>,
    gcs: Child,
    /// The BigQuery emulator's port.
    pub bq_port: u16,
    /// fake-gcs-server's port.
    pub gcs_port: u16,
    dir: tempfile::TempDir,
}

impl Emulators {
    /// Starts both on free loopback ports with fresh data and the test bucket.
    pub async fn start() -> Emulators {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("gcs").join(BUCKET)).unwrap();
        std::fs::create_dir_all(dir.path().join("bq")).unwrap();
        let gcs_bin = tool("GOVFLOW_FAKE_GCS", || {
            find(&cache_dir().join("venv"), "fake-gcs-server-linux-amd64")
        });
        let gcs_port = free_port();
        let root = dir.path().join("gcs");
        let gcs = Command::new(gcs_bin)
            .args([
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-port",
                &gcs_port.to_string(),
            ])
            .args(["-backend", "filesystem", "-filesystem-root"])
            .arg(&root)
            .args(["-external-url", &format!("http://127.0.0.1:{gcs_port}")])
            .args(["-public-host", &format!("127.0.0.1:{gcs_port}")])
            .args(["-log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("fake-gcs-server starts");
        let mut emulators = Emulators {
            bq: None,
            gcs,
            bq_port: free_port(),
            gcs_port,
            dir,
        };
        emulators.start_bigquery().await;
        wait_ready(
            &format!("http://127.0.0.1:{gcs_port}/storage/v1/b"),
            "fake-gcs-server",
        )
        .await;
        emulators
    }

    /// (Re)starts the BigQuery emulator on its port, over its data directory.
    pub async fn start_bigquery(&mut self) {
        let bin = tool("GOVFLOW_BQ_EMULATOR", || {
            Some(cache_dir().join("venv/bin/local-bigquery"))
        });
        let home = tool("GOVFLOW_BQ_EMULATOR_HOME", || {
            Some(cache_dir().join("home"))
        });
        let log = std::fs::File::create(self.dir.path().join("bq.log")).unwrap();
        let child = Command::new(bin)
            .env("HOME", home)
            .env("GCS_LOCAL_ROOT", self.dir.path().join("gcs"))
            .args([
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                &self.bq_port.to_string(),
            ])
            .args([
                "--grpc-port",
                &free_port().to_string(),
                "--project",
                PROJECT,
            ])
            .arg("--data-dir")
            .arg(self.dir.path().join("bq"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("local-bigquery starts");
        self.bq = Some(child);
        wait_ready(
            &format!(
                "http://127.0.0.1:{}/bigquery/v2/projects/{PROJECT}/datasets",
                self.bq_port
            ),
            "local-bigquery",
        )
        .await;
    }

    /// Stops the BigQuery emulator (its data stays).
    pub fn stop_bigquery(&mut self) {
        if let Some(mut child) = self.bq.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The emulator's log, for failure messages.
    pub fn bq_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bq.log")).unwrap_or_default()
    }

    /// Objects left in the bucket.
    pub fn objects(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out)
                } else {
                    out.push(p)
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.dir.path().join("gcs").join(BUCKET), &mut out);
        out
    }

    /// A sink configuration for `dataset` through these emulators (or
    /// through `bq_port` / `gcs_port` overrides such as a proxy).
    pub fn config(&self, dataset: &str, state_dir: &Path) -> BigQueryConfig {
        self.config_via(dataset, state_dir, self.bq_port)
    }

    /// Like [`Emulators::config`], with BigQuery reached on `bq_port`.
    pub fn config_via(&self, dataset: &str, state_dir: &Path, bq_port: u16) -> BigQueryConfig {
        BigQueryConfig {
            project: PROJECT.into(),
            dataset: dataset.into(),
            location: "US".into(),
            credentials: BigQueryCredentials::AccessToken(Secret::new("emulator-token")),
            credentials_origin: "access_token (a fixed bearer token)".into(),
            bucket: BUCKET.into(),
            prefix: "govflow".into(),
            api_endpoint: format!("http://127.0.0.1:{bq_port}").parse().unwrap(),
            storage_endpoint: format!("http://127.0.0.1:{}", self.gcs_port)
                .parse()
                .unwrap(),
            flush_interval: Duration::from_millis(200),
            min_table_interval: Duration::ZERO,
            staging_expiration: Duration::from_secs(3600),
            request_timeout: Duration::from_secs(30),
            job_timeout: Duration::from_secs(120),
            max_attempts: 4,
            retry_backoff: Duration::from_millis(100),
            // local-bigquery (DuckLake) fails concurrent commits ("Failed to
            // commit DuckLake transaction"): one table at a time.
            parallel_tables: 1,
            local_dir: state_dir.join("warehouse"),
        }
    }
}

impl Drop for Emulators {
    fn drop(&mut self) {
        self.stop_bigquery();
        let _ = self.gcs.kill();
        let _ = self.gcs.wait();
    }
}

async fn wait_ready(url: &str, what: &str) {
    let started = Instant::now();
    let client = reqwest::Client::new();
    loop {
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{what} did not start at {url}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A table's rows as text, sorted: one string per row, values in column order
/// (`_epoch` left out), in BigQuery's REST text form.
pub type Rows = Vec<String>;

/// Every row of `dataset.table` in BigQuery (without `_epoch`), in the column
/// order of `columns`; `None` when the table does not exist.
pub async fn bigquery_rows(
    client: &Client,
    dataset: &str,
    table: &str,
    columns: &[String],
    decimals: &[bool],
) -> Option<Rows> {
    client
        .get_table(dataset, table)
        .await
        .expect("tables.get")?;
    let list: Vec<String> = columns.iter().map(|c| format!("`{c}`")).collect();
    let sql = format!(
        "SELECT {} FROM `{PROJECT}.{dataset}.{table}`",
        list.join(", ")
    );
    let result = client
        .query(&sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut rows: Rows = result
        .rows
        .iter()
        .map(|r| {
            r.iter()
                .zip(decimals)
                .map(|(v, is_decimal)| match v {
                    serde_json::Value::Null => "NULL".to_string(),
                    serde_json::Value::String(s) if *is_decimal => canon_decimal(s),
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    rows.sort();
    Some(rows)
}

/// A decimal's text without trailing zeros (`12.3400` → `12.34`, `5.0` → `5`).
pub fn canon_decimal(s: &str) -> String {
    if !s.contains('.') {
        return s.to_string();
    }
    let t = s.trim_end_matches('0').trim_end_matches('.');
    if t == "-0" { "0".into() } else { t.to_string() }
}

/// A local batch's rows in the same text form as [`bigquery_rows`]; returns
/// (column names without `_epoch`, whether each is a decimal, rows).
pub fn local_rows(batch: &RecordBatch) -> (Vec<String>, Vec<bool>, Rows) {
    let schema = batch.schema();
    let keep: Vec<usize> = (0..schema.fields().len())
        .filter(|i| schema.field(*i).name() != "_epoch")
        .collect();
    let columns = keep
        .iter()
        .map(|i| schema.field(*i).name().clone())
        .collect();
    let decimals = keep
        .iter()
        .map(|i| matches!(schema.field(*i).data_type(), DataType::Decimal128(..)))
        .collect();
    let mut rows: Rows = (0..batch.num_rows())
        .map(|r| {
            keep.iter()
                .map(|&i| cell(batch.column(i).as_ref(), r))
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    rows.sort();
    (columns, decimals, rows)
}

fn cell(col: &dyn Array, r: usize) -> String {
    if col.is_null(r) {
        return "NULL".into();
    }
    match col.data_type() {
        DataType::Int64 => col.as_primitive::<Int64Type>().value(r).to_string(),
        DataType::Utf8 => col.as_string::<i32>().value(r).to_string(),
        DataType::Boolean => col.as_boolean().value(r).to_string(),
        DataType::Timestamp(..) => col
            .as_primitive::<TimestampMicrosecondType>()
            .value(r)
            .to_string(),
        DataType::Decimal128(_, scale) => {
            let v = col.as_primitive::<Decimal128Type>().value(r);
            let scale = *scale as u32;
            let div = 10i128.pow(scale);
            let sign = if v < 0 { "-" } else { "" };
            let (int, frac) = (v.abs() / div, v.abs() % div);
            canon_decimal(&format!(
                "{sign}{int}.{frac:0width$}",
                width = scale as usize
            ))
        }
        other => panic!("column type {other} not compared"),
    }
}

/// Faults the proxy injects.
#[derive(Default)]
pub struct Faults {
    /// Answer every request with 503 (the emulator looks down).
    pub down: AtomicBool,
    /// Hold requests whose body contains this text until the flag clears
    /// (e.g. `MERGE`: a crash between load and MERGE).
    pub hold_merge: AtomicBool,
    /// Answer `jobs.insert` of MERGE jobs with a permanent 403 accessDenied.
    pub deny_merge: AtomicBool,
    /// Answer this many of the next `jobs.insert` requests with 403
    /// `jobRateLimitExceeded` (as BigQuery does under load).
    pub rate_limit_jobs: AtomicU64,
    /// Answer this many of the next requests (any) with 500 `backendError`.
    pub server_errors: AtomicU64,
    /// Requests forwarded.
    pub forwarded: AtomicU64,
    /// `jobs.insert` requests seen, by kind (`load`, `merge`, ...).
    pub job_inserts: std::sync::Mutex<BTreeMap<String, u64>>,
    /// `jobs.insert` requests that created a job (HTTP 200), by kind.
    pub jobs_created: std::sync::Mutex<BTreeMap<String, u64>>,
    /// Every `jobs.insert`: the job id and the status answered (0: held, never forwarded).
    pub job_log: std::sync::Mutex<Vec<(String, u16)>>,
}

/// An HTTP proxy in front of the BigQuery emulator that injects [`Faults`].
pub struct Proxy {
    /// The proxy's port.
    pub port: u16,
    /// Its faults, shared with the handler.
    pub faults: Arc<Faults>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// Starts a proxy on a free loopback port forwarding to `target_port`.
    pub async fn start(target_port: u16) -> Proxy {
        use axum::body::{Body, Bytes};
        use axum::extract::State;
        use axum::http::{Request, StatusCode};
        use axum::response::{IntoResponse, Response};

        let faults = Arc::new(Faults::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = reqwest::Client::new();
        let state = (faults.clone(), client, target_port);
        async fn forward(
            State((faults, client, target)): State<(Arc<Faults>, reqwest::Client, u16)>,
            request: Request<Body>,
        ) -> Response {
            let (parts, body) = request.into_parts();
            let body: Bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&body);
            let is_job_insert = parts.method == "POST" && parts.uri.path().ends_with("/jobs");
            let is_merge = is_job_insert && text.contains("MERGE ");
            let kind = if is_merge {
                "merge"
            } else if text.contains("\"load\"") {
                "load"
            } else {
                "other"
            };
            let job_id = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    v.pointer("/jobReference/jobId")
                        .and_then(|j| j.as_str())
                        .map(str::to_string)
                })
                .unwrap_or_default();
            if is_job_insert {
                *faults
                    .job_inserts
                    .lock()
                    .unwrap()
                    .entry(kind.to_string())
                    .or_default() += 1;
            }
            if faults.down.load(Ordering::SeqCst) {
                return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
            }
            let take = |n: &AtomicU64| {
                n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
                    .is_ok()
            };
            if take(&faults.server_errors) {
                let body = serde_json::json!({"error": {"code": 500, "message": "Backend error", "errors": [{"reason": "backendError", "message": "Backend error"}]}});
                return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response();
            }
            if is_job_insert && take(&faults.rate_limit_jobs) {
                let body = serde_json::json!({"error": {"code": 403, "message": "Exceeded rate limits: too many job insert requests", "errors": [{"reason": "jobRateLimitExceeded", "message": "Exceeded rate limits"}]}});
                return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
            }
            if is_merge && faults.deny_merge.load(Ordering::SeqCst) {
                let body = serde_json::json!({"error": {"code": 403, "message": "Access Denied: the test denies MERGE", "errors": [{"reason": "accessDenied", "message": "Access Denied"}]}});
                return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
            }
            if is_merge && faults.hold_merge.load(Ordering::SeqCst) {
                // Never forwarded: the MERGE does not reach BigQuery (a crash
                // between load and MERGE); answered only once released.
                faults.job_log.lock().unwrap().push((job_id, 0));
                while faults.hold_merge.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                return (StatusCode::SERVICE_UNAVAILABLE, "held").into_response();
            }
            faults.forwarded.fetch_add(1, Ordering::SeqCst);
            let url = format!("http://127.0.0.1:{target}{}", parts.uri);
            let mut req = client
                .request(parts.method.clone(), url)
                .body(body.to_vec());
            for (name, value) in &parts.headers {
                if name != "host" && name != "content-length" {
                    req = req.header(name, value);
                }
            }
            match req.send().await {
                Ok(r) => {
                    let status = r.status();
                    if is_job_insert {
                        faults
                            .job_log
                            .lock()
                            .unwrap()
                            .push((job_id, status.as_u16()));
                    }
                    if is_job_insert && status.is_success() {
                        *faults
                            .jobs_created
                            .lock()
                            .unwrap()
                            .entry(kind.to_string())
                            .or_default() += 1;
                    }
                    let ct = r.headers().get("content-type").cloned();
                    let bytes = r.bytes().await.unwrap_or_default();
                    let mut resp = (status, bytes).into_response();
                    if let Some(ct) = ct {
                        resp.headers_mut().insert("content-type", ct);
                    }
                    resp
                }
                Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
            }
        }
        let app = axum::Router::new().fallback(forward).with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Proxy { port, faults, task }
    }

    /// Jobs of `kind` created through the proxy so far.
    pub fn jobs_created(&self, kind: &str) -> u64 {
        self.faults
            .jobs_created
            .lock()
            .unwrap()
            .get(kind)
            .copied()
            .unwrap_or(0)
    }

    /// The `jobs.insert` requests so far: job id and status (0: held).
    pub fn job_log(&self) -> Vec<(String, u16)> {
        self.faults.job_log.lock().unwrap().clone()
    }

    /// `jobs.insert` requests of `kind` seen so far.
    pub fn job_inserts(&self, kind: &str) -> u64 {
        self.faults
            .job_inserts
            .lock()
            .unwrap()
            .get(kind)
            .copied()
            .unwrap_or(0)
    }
}
