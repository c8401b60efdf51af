//! Access tokens: a fixed one (emulators), a service account's signed JWT
//! exchanged for an OAuth access token (RFC 7523), a user's refresh token
//! exchanged at its token endpoint, or the GCE metadata server's token; each
//! cached until shortly before it expires. No key or token is ever logged.

use std::sync::Arc;

use std::time::{Duration, Instant};
#[cfg(test)]
use url::Url;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;

use super::error::BigQueryError;
use crate::config::{
    AuthorizedUser, BigQueryCredentials, MetadataServer, Secret, ServiceAccountKey,
};

/// The OAuth scopes the sink needs: BigQuery jobs and tables, GCS objects.
pub const SCOPES: &str = "https://www.googleapis.com/auth/bigquery https://www.googleapis.com/auth/devstorage.read_write";

/// A token is renewed this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// Where bearer tokens come from.
pub struct TokenSource {
    kind: Kind,
}

enum Kind {
    Fixed(Secret),
    Exchange(Box<Exchange>),
}

/// A source of expiring tokens, and the token it last gave.
struct Exchange {
    how: How,
    cached: tokio::sync::Mutex<Option<(Secret, Instant)>>,
}

enum How {
    ServiceAccount {
        key: ServiceAccountKey,
        signer: Arc<RsaKeyPair>,
    },
    AuthorizedUser(AuthorizedUser),
    Metadata(MetadataServer),
}

impl How {
    /// Names the account or server, never a secret.
    fn describe(&self) -> String {
        match self {
            How::ServiceAccount { key, .. } => format!("service account {}", key.client_email),
            How::AuthorizedUser(user) => format!("authorized user of client {}", user.client_id),
            How::Metadata(server) => format!("metadata server {}", server.base),
        }
    }
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Fixed(_) => f.write_str("TokenSource::Fixed(***)"),
            Kind::Exchange(e) => write!(f, "TokenSource({})", e.how.describe()),
        }
    }
}

impl TokenSource {
    /// A token source for `credentials`; fails if the private key does not parse.
    pub fn new(credentials: &BigQueryCredentials) -> Result<TokenSource, BigQueryError> {
        let how = match credentials {
            BigQueryCredentials::AccessToken(token) => {
                return Ok(TokenSource {
                    kind: Kind::Fixed(token.clone()),
                });
            }
            BigQueryCredentials::ServiceAccount(key) => {
                let der = PrivatePkcs8KeyDer::from_pem_slice(key.private_key.expose().as_bytes())
                    .map_err(|_| {
                    BigQueryError::Config(format!(
                        "the private key of {} is not a PEM PKCS#8 key",
                        key.client_email
                    ))
                })?;
                let signer = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).map_err(|e| {
                    BigQueryError::Config(format!(
                        "the private key of {} is not an RSA key: {e}",
                        key.client_email
                    ))
                })?;
                How::ServiceAccount {
                    key: key.clone(),
                    signer: Arc::new(signer),
                }
            }
            BigQueryCredentials::AuthorizedUser(user) => How::AuthorizedUser(user.clone()),
            BigQueryCredentials::Metadata(server) => How::Metadata(server.clone()),
        };
        Ok(TokenSource {
            kind: Kind::Exchange(Box::new(Exchange {
                how,
                cached: tokio::sync::Mutex::new(None),
            })),
        })
    }

    /// A valid bearer token, asking for a new one when the cached token is
    /// missing or about to expire.
    pub async fn token(&self, http: &reqwest::Client) -> Result<Secret, BigQueryError> {
        let exchange = match &self.kind {
            Kind::Fixed(token) => return Ok(token.clone()),
            Kind::Exchange(e) => e,
        };
        let mut cached = exchange.cached.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && Instant::now() + RENEW_BEFORE < *until
        {
            return Ok(token.clone());
        }
        let (endpoint, request) = match &exchange.how {
            How::ServiceAccount { key, signer } => {
                let now = chrono::Utc::now().timestamp();
                let assertion = jwt(key, signer, now)?;
                let request = http.post(key.token_uri.clone()).form(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", assertion.as_str()),
                ]);
                (key.token_uri.clone(), request)
            }
            How::AuthorizedUser(user) => {
                let request = http.post(user.token_uri.clone()).form(&[
                    ("grant_type", "refresh_token"),
                    ("client_id", user.client_id.as_str()),
                    ("client_secret", user.client_secret.expose()),
                    ("refresh_token", user.refresh_token.expose()),
                ]);
                (user.token_uri.clone(), request)
            }
            How::Metadata(server) => {
                let mut url = server
                    .base
                    .join("computeMetadata/v1/instance/service-accounts/default/token")
                    .map_err(|e| BigQueryError::Config(format!("metadata server: {e}")))?;
                url.query_pairs_mut()
                    .append_pair("scopes", &SCOPES.replace(' ', ","));
                let request = http.get(url.clone()).header("Metadata-Flavor", "Google");
                (url, request)
            }
        };
        let who = exchange.how.describe();
        let auth = |detail: String, retryable: bool| BigQueryError::Auth { detail, retryable };
        let response = request.send().await.map_err(|e| {
            auth(
                format!("token request at {endpoint} for {who}: {}", e.without_url()),
                true,
            )
        })?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if !status.is_success() {
            // The answer names the problem (`invalid_grant`, ...), never the key.
            let detail: String = body.chars().take(300).collect();
            return Err(auth(
                format!("token request at {endpoint} for {who}: HTTP {status}: {detail}"),
                status.is_server_error() || status.as_u16() == 429,
            ));
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            access_token: Secret,
            expires_in: Option<u64>,
        }
        let answer: Answer = serde_json::from_str(&body).map_err(|e| {
            auth(
                format!("token request at {endpoint}: unexpected answer: {e}"),
                false,
            )
        })?;
        let until = Instant::now() + Duration::from_secs(answer.expires_in.unwrap_or(3600));
        tracing::debug!(account = %who, "bigquery: access token renewed");
        *cached = Some((answer.access_token.clone(), until));
        Ok(answer.access_token)
    }
}

/// govflow's token source as the `gcp-bigquery-client` crate's
/// `Authenticator`: the crate asks it for a bearer token before each BigQuery
/// request (a cached token, renewed as above; the fixed one for emulators).
#[derive(Clone, Debug)]
pub struct ChainAuthenticator {
    tokens: Arc<TokenSource>,
    http: reqwest::Client,
}

impl ChainAuthenticator {
    /// Tokens of `tokens`, exchanged over `http`.
    pub fn new(tokens: Arc<TokenSource>, http: reqwest::Client) -> ChainAuthenticator {
        ChainAuthenticator { tokens, http }
    }
}

#[async_trait::async_trait]
impl gcp_bigquery_client::auth::Authenticator for ChainAuthenticator {
    async fn access_token(&self) -> Result<String, gcp_bigquery_client::error::BQError> {
        match self.tokens.token(&self.http).await {
            Ok(token) => Ok(token.expose().to_string()),
            Err(e) => Err(e.into_bq()),
        }
    }
}

/// The signed JWT (RS256) asserting `key`'s identity for [`SCOPES`], issued at `now`.
fn jwt(key: &ServiceAccountKey, signer: &RsaKeyPair, now: i64) -> Result<String, BigQueryError> {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "iss": key.client_email,
        "scope": SCOPES,
        "aud": key.token_uri.as_str(),
        "iat": now,
        "exp": now + 3600,
    });
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string().as_bytes());
    let message = format!("{header}.{claims}");
    let mut signature = vec![0; signer.public().modulus_len()];
    signer
        .sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            message.as_bytes(),
            &mut signature,
        )
        .map_err(|_| BigQueryError::Auth {
            detail: "signing the JWT failed".into(),
            retryable: false,
        })?;
    Ok(format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

#[cfg(test)]
mod tests;
