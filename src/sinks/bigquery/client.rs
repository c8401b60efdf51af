//! A small BigQuery and GCS REST client: the calls the sink makes, each
//! retried with exponential backoff while its error is retryable.
//!
//! Endpoints come from the configuration, so tests point it at emulators on
//! loopback. Request bodies are never gzipped (the emulator refuses that).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use url::Url;

use super::auth::TokenSource;
use super::error::{BigQueryError, retryable_answer, retryable_job};
use crate::config::BigQueryConfig;

/// BigQuery and GCS over HTTP, with retries.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    tokens: TokenSource,
    api: Url,
    storage: Url,
    project: String,
    location: String,
    bucket: String,
    max_attempts: u32,
    backoff: Duration,
    job_timeout: Duration,
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
    pub resource: Value,
}

impl FinishedJob {
    /// The job's error, if it failed.
    pub fn error(&self) -> Option<BigQueryError> {
        let result = self.resource.pointer("/status/errorResult")?;
        let reason = result["reason"].as_str().map(str::to_string);
        let message = result["message"].as_str().unwrap_or_default().to_string();
        let retryable = retryable_job(reason.as_deref(), &message);
        Some(BigQueryError::Job {
            job_id: self.job_id.clone(),
            reason,
            message,
            retryable,
        })
    }

    /// Rows a DML statement changed, when reported.
    pub fn dml_rows(&self) -> Option<u64> {
        self.resource
            .pointer("/statistics/query/numDmlAffectedRows")
            .and_then(|v| v.as_str().and_then(|s| s.parse().ok()).or(v.as_u64()))
    }
}

/// Rows of a query's result: column names and JSON values (`f[].v`).
#[derive(Debug, Default)]
pub struct QueryRows {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Each row's values, as BigQuery's REST API gives them (strings or null).
    pub rows: Vec<Vec<Value>>,
}

impl Client {
    /// A client for `config` (no request is made yet).
    pub fn new(config: &BigQueryConfig) -> Result<Client, BigQueryError> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| BigQueryError::Config(format!("HTTP client: {e}")))?;
        Ok(Client {
            http,
            tokens: TokenSource::new(&config.credentials)?,
            api: config.api_endpoint.clone(),
            storage: config.storage_endpoint.clone(),
            project: config.project.clone(),
            location: config.location.clone(),
            bucket: config.bucket.clone(),
            max_attempts: config.max_attempts,
            backoff: config.retry_backoff,
            job_timeout: config.job_timeout,
        })
    }

    /// The project jobs run in.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The bucket objects are uploaded to.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn bq_url(&self, path: &str) -> Result<Url, BigQueryError> {
        join(
            &self.api,
            &format!("bigquery/v2/projects/{}/{path}", self.project),
        )
    }

    /// One HTTP exchange; `Ok` holds the status and JSON body of any answer
    /// (errors included), `Err` a transport failure.
    async fn send(
        &self,
        op: &str,
        method: reqwest::Method,
        url: Url,
        body: Body,
    ) -> Result<(u16, Value), BigQueryError> {
        let token = self.tokens.token(&self.http).await?;
        let mut request = self.http.request(method, url).bearer_auth(token.expose());
        request = match body {
            Body::None => request,
            Body::Json(v) => request.json(&v),
            Body::Bytes(b) => request
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(b),
        };
        let response = request.send().await.map_err(|e| BigQueryError::Request {
            op: op.to_string(),
            status: None,
            reason: None,
            message: e.without_url().to_string(),
            retryable: true,
        })?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| BigQueryError::Request {
            op: op.to_string(),
            status: Some(status),
            reason: None,
            message: format!("reading the answer: {}", e.without_url()),
            retryable: true,
        })?;
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, value))
    }

    /// [`Client::send`] with retries: returns the answer of the first attempt
    /// that succeeded or whose status is in `accept`, or the last error.
    async fn call(
        &self,
        op: &str,
        method: reqwest::Method,
        url: Url,
        body: Body,
        accept: &[u16],
    ) -> Result<(u16, Value), BigQueryError> {
        let mut attempt = 1;
        loop {
            let error = match self
                .send(op, method.clone(), url.clone(), body.clone())
                .await
            {
                Ok((status, value)) if (200..300).contains(&status) || accept.contains(&status) => {
                    return Ok((status, value));
                }
                Ok((status, value)) => answer_error(op, status, &value),
                Err(e) => e,
            };
            if !error.is_retryable() || attempt >= self.max_attempts {
                return Err(error);
            }
            let delay = backoff(self.backoff, attempt);
            tracing::warn!(op, attempt, %error, delay_ms = delay.as_millis() as u64, "bigquery: retrying");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// Creates `dataset` in the configured location unless it exists.
    pub async fn ensure_dataset(&self, dataset: &str) -> Result<(), BigQueryError> {
        let url = self.bq_url(&format!("datasets/{dataset}"))?;
        let (status, _) = self
            .call(
                &format!("datasets.get {dataset}"),
                reqwest::Method::GET,
                url,
                Body::None,
                &[404],
            )
            .await?;
        if status != 404 {
            return Ok(());
        }
        let body = json!({
            "datasetReference": {"projectId": self.project, "datasetId": dataset},
            "location": self.location,
        });
        let url = self.bq_url("datasets")?;
        self.call(
            &format!("datasets.insert {dataset}"),
            reqwest::Method::POST,
            url,
            Body::Json(body),
            &[409],
        )
        .await?;
        Ok(())
    }

    /// The table resource, or `None` if it does not exist.
    pub async fn get_table(
        &self,
        dataset: &str,
        table: &str,
    ) -> Result<Option<Value>, BigQueryError> {
        let url = self.bq_url(&format!("datasets/{dataset}/tables/{table}"))?;
        let (status, value) = self
            .call(
                &format!("tables.get {dataset}.{table}"),
                reqwest::Method::GET,
                url,
                Body::None,
                &[404],
            )
            .await?;
        Ok((status != 404).then_some(value))
    }

    /// Creates a table; false when it already existed.
    pub async fn insert_table(
        &self,
        dataset: &str,
        table: &str,
        resource: Value,
    ) -> Result<bool, BigQueryError> {
        let url = self.bq_url(&format!("datasets/{dataset}/tables"))?;
        let (status, _) = self
            .call(
                &format!("tables.insert {dataset}.{table}"),
                reqwest::Method::POST,
                url,
                Body::Json(resource),
                &[409],
            )
            .await?;
        Ok(status != 409)
    }

    /// Patches a table (e.g. its schema, to add columns).
    pub async fn patch_table(
        &self,
        dataset: &str,
        table: &str,
        patch: Value,
    ) -> Result<(), BigQueryError> {
        let url = self.bq_url(&format!("datasets/{dataset}/tables/{table}"))?;
        self.call(
            &format!("tables.patch {dataset}.{table}"),
            reqwest::Method::PATCH,
            url,
            Body::Json(patch),
            &[],
        )
        .await?;
        Ok(())
    }

    /// Deletes a table; a missing one is not an error.
    pub async fn delete_table(&self, dataset: &str, table: &str) -> Result<(), BigQueryError> {
        let url = self.bq_url(&format!("datasets/{dataset}/tables/{table}"))?;
        self.call(
            &format!("tables.delete {dataset}.{table}"),
            reqwest::Method::DELETE,
            url,
            Body::None,
            &[404],
        )
        .await?;
        Ok(())
    }

    /// Inserts a job with the id `job_id`; an existing job of that id is
    /// reported as [`Inserted::Exists`], not run again.
    pub async fn insert_job(
        &self,
        job_id: &str,
        configuration: Value,
    ) -> Result<Inserted, BigQueryError> {
        let body = json!({
            "jobReference": {"projectId": self.project, "jobId": job_id, "location": self.location},
            "configuration": configuration,
        });
        let url = self.bq_url("jobs")?;
        match self
            .call(
                &format!("jobs.insert {job_id}"),
                reqwest::Method::POST,
                url,
                Body::Json(body),
                &[409],
            )
            .await
        {
            Ok((409, _)) => Ok(Inserted::Exists),
            Ok(_) => Ok(Inserted::Created),
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
        let mut url = self.bq_url(&format!("jobs/{job_id}"))?;
        url.query_pairs_mut()
            .append_pair("location", &self.location);
        loop {
            let (_, resource) = self
                .call(
                    &format!("jobs.get {job_id}"),
                    reqwest::Method::GET,
                    url.clone(),
                    Body::None,
                    &[],
                )
                .await?;
            if resource.pointer("/status/state").and_then(Value::as_str) == Some("DONE") {
                return Ok(FinishedJob {
                    job_id: job_id.to_string(),
                    resource,
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
    /// checks and tests; the sink's own statements run as jobs).
    pub async fn query(&self, sql: &str) -> Result<QueryRows, BigQueryError> {
        let url = self.bq_url("queries")?;
        let body = json!({
            "query": sql,
            "useLegacySql": false,
            "location": self.location,
            "timeoutMs": self.job_timeout.as_millis() as u64,
            "maxResults": 10000,
            "formatOptions": {"useInt64Timestamp": true},
        });
        let (_, mut answer) = self
            .call(
                "jobs.query",
                reqwest::Method::POST,
                url,
                Body::Json(body),
                &[],
            )
            .await?;
        let job_id = answer
            .pointer("/jobReference/jobId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut out = QueryRows::default();
        loop {
            if answer["jobComplete"] == Value::Bool(false) {
                return Err(BigQueryError::Job {
                    job_id,
                    reason: Some("timeout".into()),
                    message: "query not complete".into(),
                    retryable: true,
                });
            }
            if out.columns.is_empty()
                && let Some(fields) = answer.pointer("/schema/fields").and_then(Value::as_array)
            {
                out.columns = fields
                    .iter()
                    .map(|f| f["name"].as_str().unwrap_or_default().to_string())
                    .collect();
            }
            for row in answer["rows"].as_array().into_iter().flatten() {
                let cells = row["f"].as_array().cloned().unwrap_or_default();
                out.rows
                    .push(cells.into_iter().map(|c| c["v"].clone()).collect());
            }
            let Some(token) = answer["pageToken"].as_str().filter(|t| !t.is_empty()) else {
                return Ok(out);
            };
            let mut url = self.bq_url(&format!("queries/{job_id}"))?;
            url.query_pairs_mut()
                .append_pair("pageToken", token)
                .append_pair("location", &self.location)
                .append_pair("formatOptions.useInt64Timestamp", "true");
            answer = self
                .call(
                    "jobs.getQueryResults",
                    reqwest::Method::GET,
                    url,
                    Body::None,
                    &[],
                )
                .await?
                .1;
        }
    }

    /// Uploads `bytes` as `object` of the bucket (replacing it: a replay
    /// uploads the same bytes again).
    pub async fn upload(&self, object: &str, bytes: Vec<u8>) -> Result<(), BigQueryError> {
        let mut url = join(
            &self.storage,
            &format!("upload/storage/v1/b/{}/o", self.bucket),
        )?;
        url.query_pairs_mut()
            .append_pair("uploadType", "media")
            .append_pair("name", object);
        self.call(
            &format!("gcs upload gs://{}/{object}", self.bucket),
            reqwest::Method::POST,
            url,
            Body::Bytes(bytes::Bytes::from(bytes)),
            &[],
        )
        .await?;
        Ok(())
    }

    /// Deletes `object`; a missing one is not an error.
    pub async fn delete_object(&self, object: &str) -> Result<(), BigQueryError> {
        let mut url = join(&self.storage, "storage/v1/b")?;
        url.path_segments_mut()
            .map_err(|_| BigQueryError::Config("storage_endpoint cannot be a base".into()))?
            .extend([self.bucket.as_str(), "o", object]);
        self.call(
            &format!("gcs delete gs://{}/{object}", self.bucket),
            reqwest::Method::DELETE,
            url,
            Body::None,
            &[404],
        )
        .await?;
        Ok(())
    }
}

/// A request body.
#[derive(Clone)]
enum Body {
    None,
    Json(Value),
    Bytes(bytes::Bytes),
}

/// `base` joined with a relative `path` (the base's own path kept).
fn join(base: &Url, path: &str) -> Result<Url, BigQueryError> {
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        let p = format!("{}/", base.path());
        base.set_path(&p);
    }
    base.join(path)
        .map_err(|e| BigQueryError::Config(format!("endpoint {base}: {path}: {e}")))
}

/// The error of an answer with a non-success status.
fn answer_error(op: &str, status: u16, body: &Value) -> BigQueryError {
    let error = &body["error"];
    let reason = error
        .pointer("/errors/0/reason")
        .and_then(Value::as_str)
        .map(str::to_string);
    let message = error["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            let text = body
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| body.to_string());
            text.chars().take(300).collect()
        });
    BigQueryError::Request {
        op: op.to_string(),
        status: Some(status),
        retryable: retryable_answer(status, reason.as_deref(), &message),
        reason,
        message,
    }
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
            join(&base, "bigquery/v2/projects/p/jobs").unwrap().as_str(),
            "http://127.0.0.1:9050/prefix/bigquery/v2/projects/p/jobs"
        );
    }

    #[test]
    fn error_answers_name_the_reason() {
        let body = json!({"error": {"code": 403, "message": "Exceeded rate limits", "errors": [{"reason": "jobRateLimitExceeded"}]}});
        let e = answer_error("jobs.insert j", 403, &body);
        assert!(e.is_retryable());
        assert_eq!(e.reason(), Some("jobRateLimitExceeded"));
        let body = json!({"error": {"code": 403, "message": "Access Denied", "errors": [{"reason": "accessDenied"}]}});
        assert!(!answer_error("tables.get t", 403, &body).is_retryable());
    }
}
