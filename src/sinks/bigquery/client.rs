//! The calls the sink makes: BigQuery through the `gcp-bigquery-client`
//! crate, GCS through [`Gcs`] (the crate has no GCS API); each call retried
//! with exponential backoff while its error is retryable.
//!
//! Endpoints come from the configuration, so tests point it at emulators on
//! loopback. Bearer tokens come from govflow's credential chain, which the
//! crate asks through [`ChainAuthenticator`]. See docs/bigquery.md, "Client".

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gcp_bigquery_client::client_builder::ClientBuilder;
use gcp_bigquery_client::error::BQError;
use gcp_bigquery_client::model::data_format_options::DataFormatOptions;
use gcp_bigquery_client::model::dataset::Dataset;
use gcp_bigquery_client::model::field_type::FieldType;
use gcp_bigquery_client::model::get_query_results_parameters::GetQueryResultsParameters;
use gcp_bigquery_client::model::job::Job;
use gcp_bigquery_client::model::job_configuration::JobConfiguration;
use gcp_bigquery_client::model::job_reference::JobReference;
use gcp_bigquery_client::model::query_request::QueryRequest;
use gcp_bigquery_client::model::query_response::QueryResponse;
use gcp_bigquery_client::model::table::Table;
use gcp_bigquery_client::model::table_field_schema::TableFieldSchema;
use gcp_bigquery_client::model::table_schema::TableSchema;
use serde_json::Value;
use url::Url;

use super::auth::{ChainAuthenticator, TokenSource};
use super::error::{BigQueryError, retryable_job};
use super::gcs::Gcs;
use crate::sinks::bigquery::BigQueryConfig;

/// BigQuery and GCS, with retries.
pub struct Client {
    bq: gcp_bigquery_client::Client,
    gcs: Gcs,
    project: String,
    location: String,
    retry: Retry,
    job_timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("project", &self.project)
            .field("location", &self.location)
            .field("gcs", &self.gcs)
            .finish_non_exhaustive()
    }
}

/// What inserting a job with a chosen id did.
#[derive(Debug)]
pub enum Inserted {
    /// A new job was created.
    Created,
    /// A job with this id already exists (a replay): look it up.
    Exists,
}

/// A job that finished, as `jobs.get` reports it.
#[derive(Debug, Clone)]
pub struct FinishedJob {
    /// The job id.
    pub job_id: String,
    /// The job resource.
    pub job: Job,
}

impl FinishedJob {
    /// The job's error, if it failed.
    pub fn error(&self) -> Option<BigQueryError> {
        let result = self.job.status.as_ref()?.error_result.as_ref()?;
        let message = result.message.clone().unwrap_or_default();
        let retryable = retryable_job(result.reason.as_deref(), &message);
        Some(BigQueryError::Job {
            job_id: self.job_id.clone(),
            reason: result.reason.clone(),
            message,
            retryable,
        })
    }

    /// Rows a DML statement changed, when reported.
    pub fn dml_rows(&self) -> Option<u64> {
        let query = self.job.statistics.as_ref()?.query.as_ref()?;
        query.num_dml_affected_rows.as_deref()?.parse().ok()
    }
}

/// Rows of a query's result: column names and JSON values (`f[].v`).
#[derive(Debug, Default)]
pub struct QueryRows {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Each row's values, as BigQuery's REST API gives them (strings or
    /// null; timestamps as integer microseconds).
    pub rows: Vec<Vec<Value>>,
}

impl Client {
    /// A client for `config` (no request is made yet).
    pub async fn new(config: &BigQueryConfig) -> Result<Client, BigQueryError> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| BigQueryError::Config(format!("HTTP client: {e}")))?;
        let tokens = Arc::new(TokenSource::new(&config.credentials)?);
        let retry = Retry {
            max_attempts: config.max_attempts,
            base: config.retry_backoff,
        };
        let base = join(&config.api_endpoint, "bigquery/v2")?;
        let bq = ClientBuilder::new()
            .with_v2_base_url(base.as_str().trim_end_matches('/').to_string())
            .with_client(http.clone())
            .build_from_authenticator(Arc::new(ChainAuthenticator::new(
                tokens.clone(),
                http.clone(),
            )))
            .await
            .map_err(|e| BigQueryError::from_bq("client", e))?;
        Ok(Client {
            bq,
            gcs: Gcs::new(
                http,
                tokens,
                &config.storage_endpoint,
                &config.bucket,
                retry,
            ),
            project: config.project.clone(),
            location: config.location.clone(),
            retry,
            job_timeout: config.job_timeout,
        })
    }

    /// The project jobs run in.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The bucket objects are uploaded to.
    pub fn bucket(&self) -> &str {
        self.gcs.bucket()
    }

    /// One crate call `op`, with retries; its error mapped and classified.
    async fn call<T, F, Fut>(&self, op: &str, call: F) -> Result<T, BigQueryError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, BQError>>,
    {
        self.retry
            .run(op, || {
                let answer = call();
                async move { answer.await.map_err(|e| BigQueryError::from_bq(op, e)) }
            })
            .await
    }

    /// Creates `dataset` in the configured location unless it exists.
    pub async fn ensure_dataset(&self, dataset: &str) -> Result<(), BigQueryError> {
        let op = format!("datasets.get {dataset}");
        match self
            .call(&op, move || self.bq.dataset().get(&self.project, dataset))
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(e),
        }
        let op = format!("datasets.insert {dataset}");
        let resource = Dataset::new(&self.project, dataset).location(&self.location);
        match self
            .call(&op, move || self.bq.dataset().create(resource.clone()))
            .await
        {
            Err(e) if e.status() != Some(409) => Err(e),
            _ => Ok(()),
        }
    }

    /// The table resource, or `None` if it does not exist.
    pub async fn get_table(
        &self,
        dataset: &str,
        table: &str,
    ) -> Result<Option<Table>, BigQueryError> {
        let op = format!("tables.get {dataset}.{table}");
        match self
            .call(&op, move || {
                self.bq.table().get(&self.project, dataset, table, None)
            })
            .await
        {
            Ok(resource) => Ok(Some(resource)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a table (in the dataset its reference names); false when it
    /// already existed.
    pub async fn insert_table(&self, resource: Table) -> Result<bool, BigQueryError> {
        let reference = &resource.table_reference;
        let op = format!(
            "tables.insert {}.{}",
            reference.dataset_id, reference.table_id
        );
        match self
            .call(&op, || self.bq.table().create(resource.clone()))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(409) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sets a table's columns (schema evolution: columns added, types widened).
    pub async fn patch_schema(
        &self,
        dataset: &str,
        table: &str,
        fields: Vec<TableFieldSchema>,
    ) -> Result<(), BigQueryError> {
        let op = format!("tables.patch {dataset}.{table}");
        let patch = Table::new(&self.project, dataset, table, TableSchema::new(fields));
        self.call(&op, move || {
            self.bq
                .table()
                .patch(&self.project, dataset, table, patch.clone())
        })
        .await?;
        Ok(())
    }

    /// Deletes a table; a missing one is not an error.
    pub async fn delete_table(&self, dataset: &str, table: &str) -> Result<(), BigQueryError> {
        let op = format!("tables.delete {dataset}.{table}");
        match self
            .call(&op, move || {
                self.bq.table().delete(&self.project, dataset, table)
            })
            .await
        {
            Err(e) if e.status() != Some(404) => Err(e),
            _ => Ok(()),
        }
    }

    /// Inserts a job with the id `job_id`; an existing job of that id is
    /// reported as [`Inserted::Exists`], not run again.
    pub async fn insert_job(
        &self,
        job_id: &str,
        configuration: JobConfiguration,
    ) -> Result<Inserted, BigQueryError> {
        let job = Job {
            job_reference: Some(JobReference {
                job_id: Some(job_id.to_string()),
                location: Some(self.location.clone()),
                project_id: Some(self.project.clone()),
            }),
            configuration: Some(configuration),
            ..Job::default()
        };
        let op = format!("jobs.insert {job_id}");
        match self
            .call(&op, || self.bq.job().insert(&self.project, job.clone()))
            .await
        {
            Ok(_) => Ok(Inserted::Created),
            Err(e) if e.status() == Some(409) => Ok(Inserted::Exists),
            // An insert retried after a lost answer can race the job it
            // created: local-bigquery then reports its catalog's key clash
            // instead of 409.
            // (DuckDB words it either way, depending on its version.)
            Err(BigQueryError::Request { message, .. })
                if (message.contains("violates primary key constraint")
                    || message.contains("PRIMARY KEY or UNIQUE constraint violation"))
                    && message.contains(job_id) =>
            {
                Ok(Inserted::Exists)
            }
            Err(e) => Err(e),
        }
    }

    /// Waits until the job is done (polling `jobs.get`); a failed job is
    /// returned too (see [`FinishedJob::error`]).
    pub async fn wait_job(&self, job_id: &str) -> Result<FinishedJob, BigQueryError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(50);
        let op = format!("jobs.get {job_id}");
        loop {
            let job = self
                .call(&op, move || {
                    self.bq
                        .job()
                        .get_job(&self.project, job_id, Some(&self.location))
                })
                .await?;
            if job.status.as_ref().and_then(|s| s.state.as_deref()) == Some("DONE") {
                return Ok(FinishedJob {
                    job_id: job_id.to_string(),
                    job,
                });
            }
            if started.elapsed() > self.job_timeout {
                return Err(BigQueryError::Job {
                    job_id: job_id.to_string(),
                    reason: Some("timeout".into()),
                    message: format!("not done after {} s", self.job_timeout.as_secs()),
                    retryable: true,
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// Runs a standard-SQL query and reads every row of its result (for
    /// schema changes, checks and tests; the sink's loads and MERGEs run as
    /// jobs with ids of their own).
    pub async fn query(&self, sql: &str) -> Result<QueryRows, BigQueryError> {
        let request = QueryRequest {
            query: sql.to_string(),
            use_legacy_sql: false,
            location: Some(self.location.clone()),
            timeout_ms: Some(i32::try_from(self.job_timeout.as_millis()).unwrap_or(i32::MAX)),
            max_results: Some(10_000),
            format_options: Some(DataFormatOptions {
                use_int64_timestamp: Some(true),
            }),
            ..QueryRequest::default()
        };
        let mut answer: QueryResponse = self
            .call("jobs.query", || {
                self.bq.job().query(&self.project, request.clone())
            })
            .await?;
        let job_id = answer
            .job_reference
            .as_ref()
            .and_then(|r| r.job_id.clone())
            .unwrap_or_default();
        let mut out = QueryRows::default();
        let mut timestamps = Vec::new();
        let mut first_page = true;
        loop {
            if answer.job_complete == Some(false) {
                return Err(BigQueryError::Job {
                    job_id,
                    reason: Some("timeout".into()),
                    message: "query not complete".into(),
                    retryable: true,
                });
            }
            if out.columns.is_empty()
                && let Some(fields) = answer.schema.as_ref().and_then(|s| s.fields.as_ref())
            {
                out.columns = fields.iter().map(|f| f.name.clone()).collect();
                timestamps = fields
                    .iter()
                    .map(|f| matches!(f.r#type, FieldType::Timestamp))
                    .collect();
            }
            for row in answer.rows.take().into_iter().flatten() {
                let cells = row.columns.unwrap_or_default().into_iter().enumerate();
                out.rows.push(
                    cells
                        .map(|(i, cell)| {
                            let value = cell.value.unwrap_or(Value::Null);
                            // Later pages come without `useInt64Timestamp`.
                            if !first_page && timestamps.get(i) == Some(&true) {
                                int64_timestamp(value)
                            } else {
                                value
                            }
                        })
                        .collect(),
                );
            }
            let Some(token) = answer.page_token.take().filter(|t| !t.is_empty()) else {
                return Ok(out);
            };
            // The crate sends these parameters as a query string, where the
            // nested `formatOptions` cannot go: later pages give timestamps
            // as float seconds, turned into microseconds above.
            let parameters = GetQueryResultsParameters {
                page_token: Some(token),
                location: Some(self.location.clone()),
                ..GetQueryResultsParameters::default()
            };
            answer = self
                .call("jobs.getQueryResults", || {
                    self.bq
                        .job()
                        .get_query_results(&self.project, &job_id, parameters.clone())
                })
                .await?
                .into();
            first_page = false;
        }
    }

    /// Uploads `bytes` as `object` of the bucket (replacing it: a replay
    /// uploads the same bytes again).
    pub async fn upload(&self, object: &str, bytes: Vec<u8>) -> Result<(), BigQueryError> {
        self.gcs.upload(object, bytes).await
    }

    /// Deletes `object`; a missing one is not an error.
    pub async fn delete_object(&self, object: &str) -> Result<(), BigQueryError> {
        self.gcs.delete_object(object).await
    }
}

/// How often and how patiently a call is tried.
#[derive(Clone, Copy, Debug)]
pub(super) struct Retry {
    /// Attempts in all (the first included).
    pub max_attempts: u32,
    /// The pause after the first failed attempt.
    pub base: Duration,
}

impl Retry {
    /// Runs `attempt` until it succeeds, fails with an error that is not
    /// retryable, or was made `max_attempts` times (then its last error).
    pub(super) async fn run<T, F, Fut>(&self, op: &str, mut attempt: F) -> Result<T, BigQueryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, BigQueryError>>,
    {
        let mut made = 1;
        loop {
            let error = match attempt().await {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            if !error.is_retryable() || made >= self.max_attempts {
                return Err(error);
            }
            let delay = backoff(self.base, made);
            tracing::warn!(op, attempt = made, %error, delay_ms = delay.as_millis() as u64, "bigquery: retrying");
            tokio::time::sleep(delay).await;
            made += 1;
        }
    }
}

/// `base` joined with a relative `path` (the base's own path kept).
pub(super) fn join(base: &Url, path: &str) -> Result<Url, BigQueryError> {
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        let p = format!("{}/", base.path());
        base.set_path(&p);
    }
    base.join(path)
        .map_err(|e| BigQueryError::Config(format!("endpoint {base}: {path}: {e}")))
}

/// A TIMESTAMP cell in BigQuery's default form (seconds as a float, e.g.
/// `"1.7123456781234E9"`) as integer microseconds (`"1712345678123400"`),
/// converted exactly from the decimal text; any other value is kept.
fn int64_timestamp(value: Value) -> Value {
    let Value::String(text) = &value else {
        return value;
    };
    let (mantissa, exponent) = match text.split_once(['E', 'e']) {
        Some((m, e)) => match e.parse::<i32>() {
            Ok(e) => (m, e),
            Err(_) => return value,
        },
        None => (text.as_str(), 0),
    };
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{whole}{fraction}");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return value;
    }
    // value = digits × 10^(exponent − fraction digits); in µs, 10^6 more.
    let shift = exponent + 6 - fraction.len() as i32;
    let Ok(mut micros) = digits.parse::<i128>() else {
        return value;
    };
    if shift >= 0 {
        match 10i128
            .checked_pow(shift.unsigned_abs())
            .and_then(|p| micros.checked_mul(p))
        {
            Some(m) => micros = m,
            None => return value,
        }
    } else {
        micros /= 10i128
            .checked_pow(shift.unsigned_abs())
            .unwrap_or(i128::MAX);
    }
    Value::String(if negative { -micros } else { micros }.to_string())
}

/// The pause before attempt `attempt + 1`: `base` doubled per attempt, at
/// most 32 times `base`, with up to 25% jitter.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(5);
    let delay = base * factor;
    let jitter = rand::random::<f64>() * 0.25;
    delay + delay.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let base = Duration::from_millis(100);
        assert!(backoff(base, 1) >= base && backoff(base, 1) <= base.mul_f64(1.25));
        assert!(backoff(base, 3) >= base * 4);
        assert!(backoff(base, 40) <= (base * 32).mul_f64(1.25));
    }

    #[test]
    fn endpoints_keep_their_path() {
        let base = Url::parse("http://127.0.0.1:9050/prefix").unwrap();
        assert_eq!(
            join(&base, "bigquery/v2").unwrap().as_str(),
            "http://127.0.0.1:9050/prefix/bigquery/v2"
        );
    }

    #[test]
    fn float_second_timestamps_become_exact_microseconds() {
        let t = |s: &str| int64_timestamp(Value::String(s.into()));
        assert_eq!(t("1.7123456781234E9"), "1712345678123400");
        assert_eq!(t("1.712345678123456E9"), "1712345678123456");
        assert_eq!(t("-1.5E0"), "-1500000");
        assert_eq!(t("soon"), "soon");
        assert_eq!(int64_timestamp(Value::Null), Value::Null);
    }

    #[tokio::test]
    async fn retries_stop_at_a_permanent_error_or_the_last_attempt() {
        let retry = Retry {
            max_attempts: 3,
            base: Duration::from_millis(1),
        };
        let error = |retryable| BigQueryError::Request {
            op: "op".into(),
            status: Some(if retryable { 503 } else { 400 }),
            reason: None,
            message: String::new(),
            retryable,
        };
        let mut calls = 0;
        let r: Result<(), _> = retry
            .run("op", || {
                calls += 1;
                std::future::ready(Err(error(true)))
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls, 3);
        let mut calls = 0;
        let r: Result<(), _> = retry
            .run("op", || {
                calls += 1;
                std::future::ready(Err(error(false)))
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }
}
