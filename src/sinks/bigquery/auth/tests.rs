//! Token sources against fake token endpoints and a fake metadata server on loopback.

use super::*;
use ring::signature::{KeyPair, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A throwaway key made for this test only; it grants nothing anywhere.
const TEST_KEY: &str = include_str!("../../../../tests/data/test-service-account-key.pem");

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
    BigQueryCredentials::ServiceAccount(ServiceAccountKey::from_json(&json.to_string()).unwrap())
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
        private_key: Secret::new("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
        token_uri: "http://127.0.0.1:1/token".parse().unwrap(),
        project_id: None,
    };
    let e = TokenSource::new(&BigQueryCredentials::ServiceAccount(key)).unwrap_err();
    assert!(matches!(e, BigQueryError::Config(_)), "{e}");
}

/// What the fake Google endpoints saw.
#[derive(Default)]
struct Seen {
    refreshes: AtomicUsize,
    metadata: AtomicUsize,
}

/// A fake OAuth token endpoint (`POST /token`, refresh-token grant) and a fake
/// metadata server (`GET /computeMetadata/...`) on a free loopback port.
async fn google_fakes(seen: Arc<Seen>) -> std::net::SocketAddr {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let refresh_seen = seen.clone();
    let refresh = move |body: Bytes| {
        let seen = refresh_seen.clone();
        async move {
            seen.refreshes.fetch_add(1, Ordering::SeqCst);
            let form: std::collections::HashMap<String, String> =
                url::form_urlencoded::parse(&body).into_owned().collect();
            let expected = [
                ("grant_type", "refresh_token"),
                ("client_id", "cid.apps.example"),
                ("client_secret", "CLIENTSECRET"),
                ("refresh_token", "REFRESHTOKEN"),
            ];
            if expected
                .iter()
                .any(|(k, v)| form.get(*k).map(String::as_str) != Some(v))
            {
                return (
                    StatusCode::BAD_REQUEST,
                    r#"{"error":"invalid_grant"}"#.to_string(),
                );
            }
            (
                StatusCode::OK,
                r#"{"access_token":"ya29.user-token","expires_in":3599,"token_type":"Bearer"}"#
                    .to_string(),
            )
        }
    };
    let metadata = move |headers: HeaderMap, query: axum::extract::RawQuery| {
        let seen = seen.clone();
        async move {
            seen.metadata.fetch_add(1, Ordering::SeqCst);
            // The real server refuses requests without this header.
            if headers.get("metadata-flavor").map(|v| v.as_bytes()) != Some(b"Google") {
                return (StatusCode::FORBIDDEN, "missing Metadata-Flavor".to_string());
            }
            let scopes = query.0.unwrap_or_default();
            assert!(scopes.contains("auth%2Fbigquery"), "{scopes}");
            (
                StatusCode::OK,
                r#"{"access_token":"ya29.metadata-token","expires_in":1800,"token_type":"Bearer"}"#
                    .to_string(),
            )
        }
    };
    let app = axum::Router::new()
        .route("/token", axum::routing::post(refresh))
        .route(
            "/computeMetadata/v1/instance/service-accounts/default/token",
            axum::routing::get(metadata),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// Credentials resolved from a configuration as `govflow run` does, with
/// `env` as the environment and the real file system.
fn resolved(env: &[(&str, String)]) -> (BigQueryCredentials, String) {
    let text = "[warehouse]\nkind = 'bigquery'\nproject = 'p'\ndataset = 'd'\nbucket = 'b'\n";
    let env: std::collections::HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let lookup = move |name: &str| {
        if name.starts_with("file:") {
            crate::config::system_lookup(name)
        } else {
            env.get(name).cloned()
        }
    };
    let config = crate::settings::Config::from_toml_str(text, "t.toml", &lookup).unwrap();
    let crate::sinks::WarehouseConfig::BigQuery(bq) = config.warehouse else {
        panic!("bigquery expected")
    };
    (bq.credentials, bq.credentials_origin)
}

#[tokio::test]
async fn gcloud_authorized_user_credentials_are_refreshed_at_their_token_uri() {
    let seen = Arc::new(Seen::default());
    let addr = google_fakes(seen.clone()).await;
    let gcloud = tempfile::tempdir().unwrap();
    let adc = serde_json::json!({
        "type": "authorized_user",
        "client_id": "cid.apps.example",
        "client_secret": "CLIENTSECRET",
        "refresh_token": "REFRESHTOKEN",
        "token_uri": format!("http://{addr}/token"),
    });
    std::fs::write(
        gcloud.path().join("application_default_credentials.json"),
        adc.to_string(),
    )
    .unwrap();
    let (credentials, origin) =
        resolved(&[("CLOUDSDK_CONFIG", gcloud.path().display().to_string())]);
    assert!(
        origin.starts_with("gcloud application default credentials"),
        "{origin}"
    );
    let source = TokenSource::new(&credentials).unwrap();
    let http = reqwest::Client::new();
    for _ in 0..2 {
        assert_eq!(
            source.token(&http).await.unwrap().expose(),
            "ya29.user-token"
        );
    }
    assert_eq!(
        seen.refreshes.load(Ordering::SeqCst),
        1,
        "the token is cached"
    );
    let debug = format!("{source:?} {credentials:?}");
    assert!(
        !debug.contains("REFRESHTOKEN") && !debug.contains("CLIENTSECRET"),
        "{debug}"
    );
}

#[tokio::test]
async fn a_revoked_refresh_token_is_a_permanent_error_without_secrets() {
    let seen = Arc::new(Seen::default());
    let addr = google_fakes(seen.clone()).await;
    let user = AuthorizedUser {
        client_id: "cid.apps.example".into(),
        client_secret: Secret::new("CLIENTSECRET"),
        refresh_token: Secret::new("REVOKEDTOKEN"),
        token_uri: format!("http://{addr}/token").parse().unwrap(),
    };
    let source = TokenSource::new(&BigQueryCredentials::AuthorizedUser(user)).unwrap();
    let error = source.token(&reqwest::Client::new()).await.unwrap_err();
    let text = error.to_string();
    assert!(!error.is_retryable(), "{text}");
    assert!(
        text.contains("invalid_grant") && text.contains("cid.apps.example"),
        "{text}"
    );
    assert!(
        !text.contains("REVOKEDTOKEN") && !text.contains("CLIENTSECRET"),
        "{text}"
    );
}

#[tokio::test]
async fn without_any_key_the_metadata_server_at_gce_metadata_host_gives_tokens() {
    let seen = Arc::new(Seen::default());
    let addr = google_fakes(seen.clone()).await;
    let empty_home = tempfile::tempdir().unwrap();
    let (credentials, origin) = resolved(&[
        ("HOME", empty_home.path().display().to_string()),
        ("GCE_METADATA_HOST", addr.to_string()),
    ]);
    assert!(
        origin.starts_with(&format!("the GCE metadata server at {addr}")),
        "{origin}"
    );
    let source = TokenSource::new(&credentials).unwrap();
    let http = reqwest::Client::new();
    for _ in 0..3 {
        assert_eq!(
            source.token(&http).await.unwrap().expose(),
            "ya29.metadata-token"
        );
    }
    assert_eq!(
        seen.metadata.load(Ordering::SeqCst),
        1,
        "the token is cached"
    );
}

#[tokio::test]
async fn a_key_file_named_by_gcp_service_account_key_signs_the_jwt() {
    let exchanges = Arc::new(AtomicUsize::new(0));
    let uri = token_server(public_key(), exchanges.clone(), false).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.json");
    let key = serde_json::json!({
        "type": "service_account",
        "private_key": TEST_KEY,
        "client_email": "govflow@test-proj.iam.gserviceaccount.com",
        "token_uri": uri.as_str(),
    });
    std::fs::write(&path, key.to_string()).unwrap();
    let (credentials, origin) =
        resolved(&[("GCP_SERVICE_ACCOUNT_KEY", path.display().to_string())]);
    assert_eq!(
        origin,
        format!(
            "GCP_SERVICE_ACCOUNT_KEY (file {}): service account govflow@test-proj.iam.gserviceaccount.com",
            path.display()
        )
    );
    let source = TokenSource::new(&credentials).unwrap();
    assert_eq!(
        source
            .token(&reqwest::Client::new())
            .await
            .unwrap()
            .expose(),
        "ya29.test-token"
    );
    assert_eq!(exchanges.load(Ordering::SeqCst), 1);
}
