//! Connecting: the connection string, TLS as libpq does it, and the
//! read-only session setting on every connection.
//!
//! tokio-postgres understands `sslmode=disable|prefer|require` only; the
//! connection string is read here first so that `verify-ca` and `verify-full`
//! (and `sslrootcert`) work as in libpq:
//!
//! | `sslmode` | encrypted | certificate checked |
//! |---|---|---|
//! | `disable` | no | — |
//! | `prefer` (default) | if the server offers TLS | no |
//! | `require` | yes | no; with a root certificate (`sslrootcert` or `ca_file`), the chain is checked as for `verify-ca` |
//! | `verify-ca` | yes | chain against the root certificate |
//! | `verify-full` | yes | chain and host name |
//!
//! Without `sslrootcert`/`ca_file`, `verify-ca` and `verify-full` check
//! against the public web roots (webpki-roots), which covers managed
//! services with public certificates.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::error::PgError;

/// The session setting that makes every transaction of a connection read-only.
pub const READ_ONLY_OPTION: &str = "-c default_transaction_read_only=on";

/// TLS as requested by the connection string's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// No TLS.
    Disable,
    /// TLS if offered, unverified.
    Prefer,
    /// TLS, unverified unless a root certificate is given.
    Require,
    /// TLS, chain verified.
    VerifyCa,
    /// TLS, chain and host name verified.
    VerifyFull,
}

/// A parsed connection: the driver's config plus TLS settings.
#[derive(Clone)]
pub struct ConnectSpec {
    /// The database's config name, for errors.
    pub database: String,
    /// tokio-postgres's configuration, read-only option included.
    pub config: tokio_postgres::Config,
    /// The TLS mode.
    pub tls: TlsMode,
    /// Root certificate file (`sslrootcert` or the config's `ca_file`).
    pub root_cert: Option<PathBuf>,
}

impl std::fmt::Debug for ConnectSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectSpec")
            .field("database", &self.database)
            .field("hosts", &self.config.get_hosts())
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl ConnectSpec {
    /// Parses a `postgres://` URL or a `key=value` string. Errors never quote it.
    pub fn parse(
        database: &str,
        url: &str,
        ca_file: Option<&Path>,
        connect_timeout: Duration,
    ) -> Result<ConnectSpec, PgError> {
        let err = |detail: String| PgError::Config {
            database: database.to_string(),
            detail,
        };
        let (rest, sslmode, rootcert) = extract_tls_params(url).map_err(err)?;
        let tls = match sslmode.as_deref() {
            None | Some("prefer") => TlsMode::Prefer,
            Some("disable") => TlsMode::Disable,
            Some("allow") => TlsMode::Prefer,
            Some("require") => TlsMode::Require,
            Some("verify-ca") => TlsMode::VerifyCa,
            Some("verify-full") => TlsMode::VerifyFull,
            Some(other) => {
                return Err(err(format!(
                    "unknown sslmode {other:?} (expected disable, allow, prefer, require, verify-ca or verify-full)"
                )));
            }
        };
        let mut config: tokio_postgres::Config = rest.parse().map_err(|e| {
            // The driver's parse errors name the option, not its value.
            err(format!("invalid connection string: {e}"))
        })?;
        config.ssl_mode(match tls {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        });
        let options = match config.get_options() {
            Some(existing) if !existing.trim().is_empty() => {
                format!("{existing} {READ_ONLY_OPTION}")
            }
            _ => READ_ONLY_OPTION.to_string(),
        };
        config.options(options);
        if config.get_application_name().is_none() {
            config.application_name("govflow");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(connect_timeout);
        }
        Ok(ConnectSpec {
            database: database.to_string(),
            config,
            tls,
            root_cert: rootcert
                .map(PathBuf::from)
                .or(ca_file.map(Path::to_path_buf)),
        })
    }

    /// The TLS connector for this spec.
    pub fn tls_connector(&self) -> Result<MakeRustlsConnect, PgError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let err = |detail: String| PgError::Config {
            database: self.database.clone(),
            detail,
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| err(format!("TLS setup: {e}")))?;
        let verify = match (self.tls, &self.root_cert) {
            (TlsMode::Disable | TlsMode::Prefer, _) | (TlsMode::Require, None) => None,
            (TlsMode::Require | TlsMode::VerifyCa, _) => Some(false),
            (TlsMode::VerifyFull, _) => Some(true),
        };
        let config = match verify {
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
                .with_no_client_auth(),
            Some(check_name) => {
                let roots = Arc::new(self.roots()?);
                let webpki =
                    rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
                        .build()
                        .map_err(|e| err(format!("TLS setup: {e}")))?;
                let verifier: Arc<dyn ServerCertVerifier> = if check_name {
                    webpki
                } else {
                    Arc::new(ChainOnly(webpki))
                };
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(verifier)
                    .with_no_client_auth()
            }
        };
        Ok(MakeRustlsConnect::new(config))
    }

    fn roots(&self) -> Result<RootCertStore, PgError> {
        let mut roots = RootCertStore::empty();
        match &self.root_cert {
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            Some(path) => {
                let err = |detail: String| PgError::Config {
                    database: self.database.clone(),
                    detail: format!("root certificate {}: {detail}", path.display()),
                };
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                    .map_err(|e| err(e.to_string()))?
                    .collect::<Result<_, _>>()
                    .map_err(|e| err(e.to_string()))?;
                if certs.is_empty() {
                    return Err(err("no PEM certificate in the file".into()));
                }
                for cert in certs {
                    roots.add(cert).map_err(|e| err(e.to_string()))?;
                }
            }
        }
        Ok(roots)
    }

    /// Connects once: a client whose connection runs on its own task, with the
    /// read-only setting checked (`SHOW default_transaction_read_only`).
    pub async fn connect(&self) -> Result<tokio_postgres::Client, PgError> {
        let tls = self.tls_connector()?;
        let (client, connection) = self
            .config
            .connect(tls)
            .await
            .map_err(|e| PgError::from_driver(&self.database, "connecting", e))?;
        let database = self.database.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(database, error = %e, "connection ended");
            }
        });
        let row = client
            .query_one("SHOW default_transaction_read_only", &[])
            .await
            .map_err(|e| PgError::from_driver(&self.database, "checking the session", e))?;
        let setting: &str = row
            .try_get(0)
            .map_err(|e| PgError::from_driver(&self.database, "checking the session", e))?;
        // A SQL_ASCII database can hold any bytes; PostgreSQL would refuse to
        // send invalid UTF-8 to a UTF8 client and fail the whole page. Take the
        // bytes as stored instead: text is validated per value, so a bad row
        // becomes a dead letter. (Other encodings are converted to UTF-8 by the
        // server as usual.)
        let encoding = client
            .query_one("SHOW server_encoding", &[])
            .await
            .map_err(|e| PgError::from_driver(&self.database, "checking the session", e))?;
        let encoding: &str = encoding
            .try_get(0)
            .map_err(|e| PgError::from_driver(&self.database, "checking the session", e))?;
        if encoding == "SQL_ASCII" {
            client
                .batch_execute("SET client_encoding = 'SQL_ASCII'")
                .await
                .map_err(|e| PgError::from_driver(&self.database, "checking the session", e))?;
        }
        if setting != "on" {
            return Err(PgError::Config {
                database: self.database.clone(),
                detail: format!(
                    "the session is not read-only (default_transaction_read_only = {setting}); a connection pooler may be dropping startup options"
                ),
            });
        }
        Ok(client)
    }
}

/// Splits `sslmode` and `sslrootcert` off a URL or key=value string; returns
/// the rest (which tokio-postgres parses) and the two values.
fn extract_tls_params(url: &str) -> Result<(String, Option<String>, Option<String>), String> {
    let mut sslmode = None;
    let mut rootcert = None;
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, q),
            None => (url, ""),
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let value = || {
                url::form_urlencoded::parse(format!("v={v}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            match k {
                "sslmode" => sslmode = Some(value()),
                "sslrootcert" => rootcert = Some(value()),
                "sslcert" | "sslkey" => {
                    return Err("client certificates (sslcert, sslkey) are not supported".into());
                }
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rest, sslmode, rootcert));
    }
    // key=value form: values may be single-quoted with backslash escapes.
    let mut kept = String::new();
    let mut chars = url.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!(
                "invalid connection string: expected `=` after {key:?}"
            ));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut raw = String::new();
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            raw.push('\'');
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                raw.push(c);
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            raw.push(n);
                            value.push(n);
                        }
                    }
                    '\'' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err("invalid connection string: unterminated quoted value".into());
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                raw.push(c);
                value.push(c);
                chars.next();
            }
        }
        match key.as_str() {
            "sslmode" => sslmode = Some(value),
            "sslrootcert" => rootcert = Some(value),
            "sslcert" | "sslkey" => {
                return Err("client certificates (sslcert, sslkey) are not supported".into());
            }
            _ => {
                if !kept.is_empty() {
                    kept.push(' ');
                }
                kept.push_str(&key);
                kept.push('=');
                kept.push_str(&raw);
            }
        }
    }
    Ok((kept, sslmode, rootcert))
}

/// `sslmode=require` without a root certificate: encrypted, not authenticated
/// (as libpq). Handshake signatures are still checked.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the host name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str) -> Result<ConnectSpec, PgError> {
        ConnectSpec::parse("wise", url, None, Duration::from_secs(5))
    }

    #[test]
    fn url_sslmode_is_read_and_read_only_option_added() {
        let s = spec("postgres://u:pw@db.example:5433/wise?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&application_name=x").unwrap();
        assert_eq!(s.tls, TlsMode::VerifyFull);
        assert_eq!(s.root_cert.as_deref(), Some(Path::new("/tmp/ca.pem")));
        assert_eq!(s.config.get_options(), Some(READ_ONLY_OPTION));
        assert_eq!(s.config.get_application_name(), Some("x"));
        assert_eq!(s.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(s.config.get_dbname(), Some("wise"));
        let s = spec("postgresql://127.0.0.1/wise").unwrap();
        assert_eq!(s.tls, TlsMode::Prefer);
        assert_eq!(s.config.get_application_name(), Some("govflow"));
    }

    #[test]
    fn key_value_strings_keep_quoted_values_and_existing_options() {
        let s = spec(
            "host=127.0.0.1 password='a b\\'c' options='-c search_path=app' sslmode=disable dbname=wise",
        )
        .unwrap();
        assert_eq!(s.tls, TlsMode::Disable);
        assert_eq!(s.config.get_password(), Some(&b"a b'c"[..]));
        assert_eq!(
            s.config.get_options(),
            Some("-c search_path=app -c default_transaction_read_only=on")
        );
        assert_eq!(s.config.get_ssl_mode(), SslMode::Disable);
    }

    #[test]
    fn errors_do_not_quote_the_url() {
        let e = spec("postgres://u:pw-SECRET@h/db?sslmode=sometimes").unwrap_err();
        assert!(!e.to_string().contains("SECRET"), "{e}");
        assert!(e.to_string().contains("sslmode"), "{e}");
        let e = spec("postgres://u:pw-SECRET@h/db?sslcert=/x").unwrap_err();
        assert!(!e.to_string().contains("SECRET"), "{e}");
        let e = spec("host=h password='pw-SECRET").unwrap_err();
        assert!(!e.to_string().contains("SECRET"), "{e}");
        let e = spec("postgres://u:pw-SECRET@h/db?bogus_option=1").unwrap_err();
        assert!(!e.to_string().contains("SECRET"), "{e}");
        assert!(!format!("{:?}", spec("postgres://u:pw-SECRET@h/db").unwrap()).contains("SECRET"));
    }

    #[test]
    fn a_missing_root_certificate_file_is_a_config_error() {
        let s = spec("postgres://h/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem").unwrap();
        let e = s.tls_connector().err().expect("error");
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        assert!(!e.is_retryable());
        // Without a root certificate, verify-full uses the public roots.
        assert!(
            spec("postgres://h/db?sslmode=verify-full")
                .unwrap()
                .tls_connector()
                .is_ok()
        );
    }
}
