//! Access tokens: a fixed one (emulators), or a service account's signed JWT
//! exchanged for an OAuth access token (RFC 7523), cached until shortly
//! before it expires. Neither the key nor a token is ever logged.

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
use crate::config::{BigQueryCredentials, Secret, ServiceAccountKey};

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
    ServiceAccount(Box<ServiceAccount>),
}

struct ServiceAccount {
    key: ServiceAccountKey,
    signer: Arc<RsaKeyPair>,
    cached: tokio::sync::Mutex<Option<(Secret, Instant)>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Fixed(_) => f.write_str("TokenSource::Fixed(***)"),
            Kind::ServiceAccount(sa) => {
                write!(f, "TokenSource::ServiceAccount({})", sa.key.client_email)
            }
        }
    }
}

impl TokenSource {
    /// A token source for `credentials`; fails if the private key does not parse.
    pub fn new(credentials: &BigQueryCredentials) -> Result<TokenSource, BigQueryError> {
        let kind = match credentials {
            BigQueryCredentials::AccessToken(token) => Kind::Fixed(token.clone()),
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
                Kind::ServiceAccount(Box::new(ServiceAccount {
                    key: key.clone(),
                    signer: Arc::new(signer),
                    cached: tokio::sync::Mutex::new(None),
                }))
            }
        };
        Ok(TokenSource { kind })
    }

    /// A valid bearer token, exchanging a new JWT when the cached token is
    /// missing or about to expire.
    pub async fn token(&self, http: &reqwest::Client) -> Result<Secret, BigQueryError> {
        let (key, signer, cached) = match &self.kind {
            Kind::Fixed(token) => return Ok(token.clone()),
            Kind::ServiceAccount(sa) => (&sa.key, &sa.signer, &sa.cached),
        };
        let mut cached = cached.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && Instant::now() + RENEW_BEFORE < *until
        {
            return Ok(token.clone());
        }
        let now = chrono::Utc::now().timestamp();
        let assertion = jwt(key, signer, now)?;
        let auth = |detail: String, retryable: bool| BigQueryError::Auth { detail, retryable };
        let response = http
            .post(key.token_uri.clone())
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|e| {
                auth(
                    format!("token exchange at {}: {}", key.token_uri, e.without_url()),
                    true,
                )
            })?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if !status.is_success() {
            // The answer names the problem (`invalid_grant`, ...), never the key.
            let detail: String = body.chars().take(300).collect();
            return Err(auth(
                format!(
                    "token exchange at {} for {}: HTTP {status}: {detail}",
                    key.token_uri, key.client_email
                ),
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
                format!(
                    "token exchange at {}: unexpected answer: {e}",
                    key.token_uri
                ),
                false,
            )
        })?;
        let until = Instant::now() + Duration::from_secs(answer.expires_in.unwrap_or(3600));
        tracing::debug!(account = %key.client_email, "bigquery: access token renewed");
        *cached = Some((answer.access_token.clone(), until));
        Ok(answer.access_token)
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
mod tests {
    use super::*;
    use ring::signature::{KeyPair, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A throwaway key made for this test only; it grants nothing anywhere.
    const TEST_KEY: &str = include_str!("../../../tests/data/test-service-account-key.pem");

    async fn token_server(public_key: Vec<u8>, exchanges: Arc<AtomicUsize>, refuse: bool) -> Url {
        use axum::body::Bytes;
        use axum::extract::State;
        use axum::http::StatusCode;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url: Url = format!("http://{}/token", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let audience = url.to_string();
        let handler = move |State(()): State<()>, body: Bytes| {
            let form: std::collections::HashMap<String, String> =
                url::form_urlencoded::parse(&body).into_owned().collect();
            let public_key = public_key.clone();
            let exchanges = exchanges.clone();
            let audience = audience.clone();
            async move {
                exchanges.fetch_add(1, Ordering::SeqCst);
                if refuse {
                    return (
                        StatusCode::BAD_REQUEST,
                        r#"{"error":"invalid_grant"}"#.to_string(),
                    );
                }
                assert_eq!(
                    form["grant_type"],
                    "urn:ietf:params:oauth:grant-type:jwt-bearer"
                );
                let jwt = &form["assertion"];
                let (message, signature) = jwt.rsplit_once('.').unwrap();
                let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
                UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &public_key)
                    .verify(message.as_bytes(), &signature)
                    .expect("the JWT is signed by the key");
                let claims = message.split('.').nth(1).unwrap();
                let claims: serde_json::Value =
                    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
                assert_eq!(claims["iss"], "govflow@test-proj.iam.gserviceaccount.com");
                assert_eq!(claims["aud"], audience.as_str());
                assert_eq!(claims["scope"], SCOPES);
                assert_eq!(
                    claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
                    3600
                );
                (
                    StatusCode::OK,
                    r#"{"access_token":"ya29.test-token","expires_in":3599,"token_type":"Bearer"}"#
                        .to_string(),
                )
            }
        };
        let app = axum::Router::new()
            .route("/token", axum::routing::post(handler))
            .with_state(());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        url
    }

    fn credentials(token_uri: &Url) -> BigQueryCredentials {
        let json = serde_json::json!({
            "type": "service_account",
            "project_id": "test-proj",
            "private_key_id": "k1",
            "private_key": TEST_KEY,
            "client_email": "govflow@test-proj.iam.gserviceaccount.com",
            "token_uri": token_uri.as_str(),
        });
        BigQueryCredentials::ServiceAccount(
            ServiceAccountKey::from_json(&json.to_string()).unwrap(),
        )
    }

    fn public_key() -> Vec<u8> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(TEST_KEY.as_bytes()).unwrap();
        let pair = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap();
        pair.public_key().as_ref().to_vec()
    }

    #[tokio::test]
    async fn a_service_account_jwt_is_exchanged_once_and_the_token_cached() {
        let exchanges = Arc::new(AtomicUsize::new(0));
        let uri = token_server(public_key(), exchanges.clone(), false).await;
        let source = TokenSource::new(&credentials(&uri)).unwrap();
        let http = reqwest::Client::new();
        assert_eq!(
            source.token(&http).await.unwrap().expose(),
            "ya29.test-token"
        );
        assert_eq!(
            source.token(&http).await.unwrap().expose(),
            "ya29.test-token"
        );
        assert_eq!(exchanges.load(Ordering::SeqCst), 1, "the token is cached");
        assert!(!format!("{source:?}").contains("PRIVATE"));
    }

    #[tokio::test]
    async fn a_refused_exchange_is_a_permanent_error_without_the_key() {
        let exchanges = Arc::new(AtomicUsize::new(0));
        let uri = token_server(public_key(), exchanges, true).await;
        let source = TokenSource::new(&credentials(&uri)).unwrap();
        let error = source.token(&reqwest::Client::new()).await.unwrap_err();
        let text = error.to_string();
        assert!(!error.is_retryable());
        assert!(
            text.contains("invalid_grant") && text.contains("govflow@test-proj"),
            "{text}"
        );
        assert!(!text.contains("PRIVATE KEY"), "{text}");
    }

    #[test]
    fn a_key_that_is_not_rsa_pkcs8_is_a_config_error() {
        let key = ServiceAccountKey {
            client_email: "a@b".into(),
            private_key: Secret::new(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            ),
            token_uri: "http://127.0.0.1:1/token".parse().unwrap(),
            project_id: None,
        };
        let e = TokenSource::new(&BigQueryCredentials::ServiceAccount(key)).unwrap_err();
        assert!(matches!(e, BigQueryError::Config(_)), "{e}");
    }
}
