//! Google credentials, found the way Google's own client libraries find them:
//! the configured key (a file path or the JSON itself), `GCP_SERVICE_ACCOUNT_KEY`,
//! `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's application default credentials,
//! then the GCE metadata server. Resolving reads files but never the network;
//! no error quotes a key, a secret or a refresh token.

use serde::Deserialize;
use url::Url;

use super::Secret;

/// Google's OAuth token endpoint, when a credentials file names none.
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// The metadata server's host when `GCE_METADATA_HOST` is not set.
pub const METADATA_HOST: &str = "metadata.google.internal";

/// How the BigQuery sink authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BigQueryCredentials {
    /// A service account key: a signed JWT is exchanged for an OAuth access
    /// token at the key's `token_uri`.
    ServiceAccount(ServiceAccountKey),
    /// A user's refresh token (gcloud's `authorized_user` credentials),
    /// exchanged at `token_uri` for access tokens.
    AuthorizedUser(AuthorizedUser),
    /// The GCE metadata server of the machine (GCE, GKE, Cloud Run), asked for
    /// the attached service account's tokens.
    Metadata(MetadataServer),
    /// A fixed bearer token, for emulators.
    AccessToken(Secret),
}

/// The fields of a service account key govflow uses.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceAccountKey {
    /// The account's e-mail (the JWT's issuer).
    pub client_email: String,
    /// The PEM PKCS#8 RSA private key.
    pub private_key: Secret,
    /// Where the JWT is exchanged for an access token.
    pub token_uri: Url,
    /// The key's project, if it names one.
    pub project_id: Option<String>,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key", &self.private_key)
            .field("token_uri", &self.token_uri.as_str())
            .finish_non_exhaustive()
    }
}

impl ServiceAccountKey {
    /// Reads a service account key's JSON. Errors never quote the key.
    pub fn from_json(text: &str) -> Result<ServiceAccountKey, String> {
        match parse_json(text)? {
            BigQueryCredentials::ServiceAccount(key) => Ok(key),
            _ => {
                Err("is not a service account key (its \"type\" is not \"service_account\")".into())
            }
        }
    }
}

/// gcloud's `authorized_user` credentials (`gcloud auth application-default login`).
#[derive(Clone, PartialEq, Eq)]
pub struct AuthorizedUser {
    /// The OAuth client the refresh token was issued to.
    pub client_id: String,
    /// That client's secret.
    pub client_secret: Secret,
    /// The user's refresh token.
    pub refresh_token: Secret,
    /// Where the refresh token is exchanged (default Google's token endpoint).
    pub token_uri: Url,
}

impl std::fmt::Debug for AuthorizedUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizedUser")
            .field("client_id", &self.client_id)
            .field("token_uri", &self.token_uri.as_str())
            .finish_non_exhaustive()
    }
}

/// The GCE metadata server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataServer {
    /// Its base URL: `http://<GCE_METADATA_HOST or metadata.google.internal>/`.
    pub base: Url,
}

/// Reads a credentials file's JSON: a service account key or gcloud's
/// `authorized_user` credentials. Errors never quote the text.
pub fn parse_json(text: &str) -> Result<BigQueryCredentials, String> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(rename = "type")]
        kind: Option<String>,
        client_email: Option<String>,
        private_key: Option<String>,
        token_uri: Option<String>,
        project_id: Option<String>,
        client_id: Option<String>,
        client_secret: Option<String>,
        refresh_token: Option<String>,
    }
    let raw: Raw = serde_json::from_str(text).map_err(|e| {
        format!(
            "is not a credentials JSON (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    let token_uri = raw
        .token_uri
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| GOOGLE_TOKEN_URI.to_string());
    let token_uri = Url::parse(&token_uri).map_err(|e| format!("token_uri: {e}"))?;
    let nonempty = |v: Option<String>, what: &str| {
        v.filter(|v| !v.is_empty())
            .ok_or_else(|| format!("has no {what}"))
    };
    match raw.kind.as_deref() {
        Some("service_account") => {
            let client_email = nonempty(raw.client_email, "client_email")?;
            let private_key = raw
                .private_key
                .filter(|k| k.contains("PRIVATE KEY"))
                .ok_or("has no PEM private_key")?;
            Ok(BigQueryCredentials::ServiceAccount(ServiceAccountKey {
                client_email,
                private_key: Secret::new(private_key),
                token_uri,
                project_id: raw.project_id,
            }))
        }
        Some("authorized_user") => Ok(BigQueryCredentials::AuthorizedUser(AuthorizedUser {
            client_id: nonempty(raw.client_id, "client_id")?,
            client_secret: Secret::new(nonempty(raw.client_secret, "client_secret")?),
            refresh_token: Secret::new(nonempty(raw.refresh_token, "refresh_token")?),
            token_uri,
        })),
        Some(other) if !other.is_empty() && other.len() < 40 => Err(format!(
            "has \"type\": \"{other}\"; govflow reads \"service_account\" and \"authorized_user\""
        )),
        _ => Err("is not a service account key (its \"type\" is not \"service_account\")".into()),
    }
}

/// What was found, and where: the credentials and a description for
/// `govflow validate` (paths and account names, never secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The credentials.
    pub credentials: BigQueryCredentials,
    /// Where they came from, e.g. `GOOGLE_APPLICATION_CREDENTIALS (/k.json): service account a@b`.
    pub origin: String,
}

/// Finds the credentials in Google's order. `lookup(NAME)` reads an
/// environment variable and `lookup("file:PATH")` a file. Errors are
/// `(key, problem)`.
pub fn resolve(
    service_account_key: Option<Secret>,
    access_token: Option<Secret>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Resolved, (String, String)> {
    const KEY: &str = "warehouse.service_account_key";
    let env = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    match (service_account_key, access_token) {
        (Some(_), Some(_)) => Err((
            "warehouse.access_token".into(),
            "give either service_account_key or access_token, not both".into(),
        )),
        (None, Some(token)) => {
            if token.expose().trim().is_empty() {
                return Err(("warehouse.access_token".into(), "must not be empty".into()));
            }
            Ok(Resolved {
                credentials: BigQueryCredentials::AccessToken(token),
                origin: "access_token (a fixed bearer token)".into(),
            })
        }
        (Some(key), None) => {
            key_value(key.expose(), "service_account_key", lookup).map_err(|p| (KEY.into(), p))
        }
        (None, None) => {
            if let Some(key) = env("GCP_SERVICE_ACCOUNT_KEY") {
                return key_value(&key, "GCP_SERVICE_ACCOUNT_KEY", lookup)
                    .map_err(|p| (KEY.into(), p));
            }
            if let Some(path) = env("GOOGLE_APPLICATION_CREDENTIALS") {
                let origin = format!("GOOGLE_APPLICATION_CREDENTIALS ({path})");
                let text = read(&path, lookup)
                    .map_err(|p| (KEY.into(), format!("GOOGLE_APPLICATION_CREDENTIALS: {p}")))?;
                return found(&text, origin).map_err(|p| (KEY.into(), p));
            }
            let gcloud = env("CLOUDSDK_CONFIG")
                .or_else(|| env("HOME").map(|home| format!("{home}/.config/gcloud")));
            if let Some(dir) = gcloud {
                let path = format!(
                    "{}/application_default_credentials.json",
                    dir.trim_end_matches('/')
                );
                if let Some(text) = lookup(&format!("file:{path}")) {
                    return found(
                        &text,
                        format!("gcloud application default credentials ({path})"),
                    )
                    .map_err(|p| (KEY.into(), p));
                }
            }
            let host = env("GCE_METADATA_HOST").unwrap_or_else(|| METADATA_HOST.to_string());
            let base = Url::parse(&format!("http://{}/", host.trim().trim_end_matches('/')))
                .map_err(|e| (KEY.into(), format!("GCE_METADATA_HOST {host:?}: {e}")))?;
            Ok(Resolved {
                credentials: BigQueryCredentials::Metadata(MetadataServer { base }),
                origin: format!(
                    "the GCE metadata server at {host} (no key, GOOGLE_APPLICATION_CREDENTIALS or gcloud credentials found; not contacted before the first flush)"
                ),
            })
        }
    }
}

/// A key given as JSON (it starts with `{`) or as the path of a file holding it.
fn key_value(
    value: &str,
    name: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Resolved, String> {
    if value.trim_start().starts_with('{') {
        return found(value, format!("{name} (JSON)")).map_err(|p| format!("{name} {p}"));
    }
    let path = value.trim();
    let text = read(path, lookup).map_err(|p| format!("{name}: {p}"))?;
    found(&text, format!("{name} (file {path})")).map_err(|p| format!("{name}: {path} {p}"))
}

/// The contents of the file at `path`.
fn read(path: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    // A value that is neither JSON nor a path: do not echo it (it may be a
    // mangled key), only its length.
    if path.len() > 4096 || path.contains('\n') {
        return Err(format!(
            "is neither a key's JSON nor a file path ({} characters)",
            path.len()
        ));
    }
    lookup(&format!("file:{path}")).ok_or_else(|| format!("cannot read the file {path}"))
}

/// Parses `text` and describes the credentials found at `origin`.
fn found(text: &str, origin: String) -> Result<Resolved, String> {
    let credentials = parse_json(text)?;
    let who = match &credentials {
        BigQueryCredentials::ServiceAccount(key) => format!("service account {}", key.client_email),
        BigQueryCredentials::AuthorizedUser(user) => {
            format!("authorized user of OAuth client {}", user.client_id)
        }
        _ => String::new(),
    };
    Ok(Resolved {
        credentials,
        origin: format!("{origin}: {who}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SA: &str = r#"{"type": "service_account", "client_email": "gf@p.iam.gserviceaccount.com", "private_key": "-----BEGIN PRIVATE KEY-----\nSECRETKEYBODY\n-----END PRIVATE KEY-----\n"}"#;
    const USER: &str = r#"{"type": "authorized_user", "client_id": "cid.apps", "client_secret": "CLIENTSECRET", "refresh_token": "REFRESHTOKEN"}"#;

    fn world(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    fn origin(key: Option<&str>, pairs: &[(&str, &str)]) -> Result<Resolved, (String, String)> {
        resolve(key.map(Secret::new), None, &world(pairs))
    }

    #[test]
    fn a_key_is_json_or_a_path() {
        let r = origin(Some(SA), &[]).unwrap();
        assert!(matches!(
            r.credentials,
            BigQueryCredentials::ServiceAccount(_)
        ));
        assert_eq!(
            r.origin,
            "service_account_key (JSON): service account gf@p.iam.gserviceaccount.com"
        );
        let r = origin(Some("keys/k.json"), &[("file:keys/k.json", SA)]).unwrap();
        assert!(
            r.origin
                .starts_with("service_account_key (file keys/k.json)"),
            "{r:?}"
        );
        let r = origin(
            None,
            &[
                ("GCP_SERVICE_ACCOUNT_KEY", "/s/k.json"),
                ("file:/s/k.json", SA),
            ],
        )
        .unwrap();
        assert!(
            r.origin
                .starts_with("GCP_SERVICE_ACCOUNT_KEY (file /s/k.json)"),
            "{r:?}"
        );
        let r = origin(None, &[("GCP_SERVICE_ACCOUNT_KEY", SA)]).unwrap();
        assert!(
            r.origin.starts_with("GCP_SERVICE_ACCOUNT_KEY (JSON)"),
            "{r:?}"
        );
        let (key, problem) =
            origin(None, &[("GCP_SERVICE_ACCOUNT_KEY", "/missing.json")]).unwrap_err();
        assert_eq!(key, "warehouse.service_account_key");
        assert_eq!(
            problem,
            "GCP_SERVICE_ACCOUNT_KEY: cannot read the file /missing.json"
        );
    }

    #[test]
    fn the_chain_is_searched_in_googles_order() {
        let all = [
            ("GCP_SERVICE_ACCOUNT_KEY", SA),
            ("GOOGLE_APPLICATION_CREDENTIALS", "/g/creds.json"),
            ("file:/g/creds.json", USER),
            ("HOME", "/home/u"),
            (
                "file:/home/u/.config/gcloud/application_default_credentials.json",
                SA,
            ),
            ("GCE_METADATA_HOST", "127.0.0.1:9"),
        ];
        assert!(
            origin(None, &all)
                .unwrap()
                .origin
                .starts_with("GCP_SERVICE_ACCOUNT_KEY")
        );
        let r = origin(None, &all[1..]).unwrap();
        assert_eq!(
            r.origin,
            "GOOGLE_APPLICATION_CREDENTIALS (/g/creds.json): authorized user of OAuth client cid.apps"
        );
        let BigQueryCredentials::AuthorizedUser(user) = &r.credentials else {
            panic!("authorized_user expected")
        };
        assert_eq!(user.token_uri.as_str(), GOOGLE_TOKEN_URI);
        assert!(!format!("{r:?}").contains("REFRESHTOKEN"));
        assert!(!format!("{r:?}").contains("CLIENTSECRET"));
        let r = origin(None, &all[3..]).unwrap();
        assert!(
            r.origin
                .starts_with("gcloud application default credentials (/home/u/.config/gcloud/"),
            "{r:?}"
        );
        // CLOUDSDK_CONFIG wins over HOME.
        let r = origin(
            None,
            &[
                ("CLOUDSDK_CONFIG", "/gc"),
                ("file:/gc/application_default_credentials.json", USER),
                ("HOME", "/home/u"),
            ],
        )
        .unwrap();
        assert!(
            r.origin
                .contains("(/gc/application_default_credentials.json)"),
            "{r:?}"
        );
        let r = origin(None, &all[5..]).unwrap();
        assert_eq!(
            r.credentials,
            BigQueryCredentials::Metadata(MetadataServer {
                base: Url::parse("http://127.0.0.1:9/").unwrap()
            })
        );
        let r = origin(None, &[]).unwrap();
        assert!(r.origin.contains("metadata.google.internal"), "{r:?}");
    }

    #[test]
    fn bad_files_are_errors_without_their_secrets() {
        let (_, p) = origin(
            None,
            &[
                ("GOOGLE_APPLICATION_CREDENTIALS", "/x"),
                ("file:/x", "nope SECRETKEYBODY"),
            ],
        )
        .unwrap_err();
        assert!(
            p.contains("not a credentials JSON") && !p.contains("SECRETKEYBODY"),
            "{p}"
        );
        let broken =
            r#"{"type": "authorized_user", "client_id": "c", "refresh_token": "REFRESHTOKEN"}"#;
        let (_, p) = origin(Some(broken), &[]).unwrap_err();
        assert!(
            p.contains("has no client_secret") && !p.contains("REFRESHTOKEN"),
            "{p}"
        );
        let (_, p) = origin(Some(r#"{"type": "external_account"}"#), &[]).unwrap_err();
        assert!(p.contains("external_account"), "{p}");
        let (_, p) = origin(Some("-----BEGIN PRIVATE KEY-----\nSECRETKEYBODY\n"), &[]).unwrap_err();
        assert!(
            p.contains("neither a key's JSON nor a file path") && !p.contains("SECRETKEYBODY"),
            "{p}"
        );
    }
}
