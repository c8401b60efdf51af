//! The two GCS calls the sink makes (JSON API): a media upload of a flush's
//! Parquet file and its deletion once merged. `gcp-bigquery-client` covers
//! BigQuery only (its `bq_load_job` feature brings a whole second GCS crate
//! with its own auth), so these stay here, on the same HTTP client, token
//! source and retries as the BigQuery calls.

use std::sync::Arc;

use serde_json::Value;
use url::Url;

use super::auth::TokenSource;
use super::client::{Retry, join};
use super::error::{BigQueryError, retryable_answer};

/// A bucket of GCS (or of fake-gcs-server in tests).
pub(super) struct Gcs {
    http: reqwest::Client,
    tokens: Arc<TokenSource>,
    endpoint: Url,
    bucket: String,
    retry: Retry,
}

impl std::fmt::Debug for Gcs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gcs")
            .field("endpoint", &self.endpoint.as_str())
            .field("bucket", &self.bucket)
            .field("tokens", &self.tokens)
            .finish()
    }
}

impl Gcs {
    /// The bucket `bucket` of the GCS JSON API at `endpoint`.
    pub(super) fn new(
        http: reqwest::Client,
        tokens: Arc<TokenSource>,
        endpoint: &Url,
        bucket: &str,
        retry: Retry,
    ) -> Gcs {
        Gcs {
            http,
            tokens,
            endpoint: endpoint.clone(),
            bucket: bucket.to_string(),
            retry,
        }
    }

    /// The bucket's name.
    pub(super) fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Uploads `bytes` as `object` (replacing it: a replay uploads the same
    /// bytes again).
    pub(super) async fn upload(&self, object: &str, bytes: Vec<u8>) -> Result<(), BigQueryError> {
        let mut url = join(
            &self.endpoint,
            &format!("upload/storage/v1/b/{}/o", self.bucket),
        )?;
        url.query_pairs_mut()
            .append_pair("uploadType", "media")
            .append_pair("name", object);
        let bytes = bytes::Bytes::from(bytes);
        let op = format!("gcs upload gs://{}/{object}", self.bucket);
        self.retry
            .run(&op, || {
                let request = self
                    .http
                    .post(url.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .body(bytes.clone());
                self.send(&op, request, false)
            })
            .await
    }

    /// Deletes `object`; a missing one is not an error.
    pub(super) async fn delete_object(&self, object: &str) -> Result<(), BigQueryError> {
        let mut url = join(&self.endpoint, "storage/v1/b")?;
        url.path_segments_mut()
            .map_err(|_| BigQueryError::Config("storage_endpoint cannot be a base".into()))?
            .extend([self.bucket.as_str(), "o", object]);
        let op = format!("gcs delete gs://{}/{object}", self.bucket);
        self.retry
            .run(&op, || self.send(&op, self.http.delete(url.clone()), true))
            .await
    }

    /// One exchange: success (or a 404 when `missing_ok`), else the answer's
    /// error, classified like BigQuery's.
    async fn send(
        &self,
        op: &str,
        request: reqwest::RequestBuilder,
        missing_ok: bool,
    ) -> Result<(), BigQueryError> {
        let token = self.tokens.token(&self.http).await?;
        let failed = |status: Option<u16>, message: String| BigQueryError::Request {
            op: op.to_string(),
            status,
            reason: None,
            message,
            retryable: true,
        };
        let response = request
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(|e| failed(None, e.without_url().to_string()))?;
        let status = response.status().as_u16();
        if response.status().is_success() || (missing_ok && status == 404) {
            return Ok(());
        }
        let text = response.text().await.map_err(|e| {
            failed(
                Some(status),
                format!("reading the answer: {}", e.without_url()),
            )
        })?;
        Err(answer_error(op, status, &text))
    }
}

/// The error of a GCS answer with a non-success status.
fn answer_error(op: &str, status: u16, text: &str) -> BigQueryError {
    let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let error = &body["error"];
    let reason = error
        .pointer("/errors/0/reason")
        .and_then(Value::as_str)
        .map(str::to_string);
    let message = error["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| text.chars().take(300).collect());
    BigQueryError::Request {
        op: op.to_string(),
        status: Some(status),
        retryable: retryable_answer(status, reason.as_deref(), &message),
        reason,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_name_the_reason() {
        let body = r#"{"error": {"code": 429, "message": "The rate of change requests to the object is too high", "errors": [{"reason": "rateLimitExceeded"}]}}"#;
        let e = answer_error("gcs upload gs://b/o", 429, body);
        assert!(e.is_retryable());
        assert_eq!(e.reason(), Some("rateLimitExceeded"));
        let body = r#"{"error": {"code": 403, "message": "Access denied", "errors": [{"reason": "forbidden"}]}}"#;
        assert!(!answer_error("gcs upload gs://b/o", 403, body).is_retryable());
        let e = answer_error("gcs delete gs://b/o", 502, "<html>Bad Gateway</html>");
        assert!(
            e.is_retryable() && e.to_string().contains("Bad Gateway"),
            "{e}"
        );
    }
}
