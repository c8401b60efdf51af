//! Redaction of secrets from alert texts and error messages.

use crate::config::Secret;

/// Replaces known secret values, Slack tokens (`xox?-…`) and URL passwords with `***`.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Secret values, longest first (so a secret containing another is replaced whole).
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

/// What replaces a secret.
pub const REDACTED: &str = "***";

impl Redactor {
    /// A redactor of `secrets` (values shorter than 4 characters are ignored:
    /// replacing them would mangle ordinary words).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> Redactor {
        let mut r = Redactor::default();
        for s in secrets {
            r.add(s);
        }
        r
    }

    /// Adds one secret value.
    pub fn add(&mut self, secret: &Secret) {
        let value = secret.expose().trim();
        if value.len() >= 4 && !self.secrets.iter().any(|s| s == value) {
            self.secrets.push(value.to_string());
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// `text` without secrets.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        redact_url_passwords(&redact_slack_tokens(&out))
    }
}

/// Replaces Slack tokens (`xoxb-…`, `xoxp-…`, `xapp-…`, …) with `***`.
fn redact_slack_tokens(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let found = ["xox", "xapp-"].iter().filter_map(|p| rest.find(p)).min();
        let Some(pos) = found else { break };
        let tail = &rest[pos..];
        let is_token = tail.starts_with("xapp-")
            || (tail.len() > 4
                && tail.as_bytes()[3].is_ascii_alphabetic()
                && tail.as_bytes()[4] == b'-');
        let len = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(tail.len());
        out.push_str(&rest[..pos]);
        if is_token && len >= 8 {
            out.push_str(REDACTED);
            rest = &tail[len..];
        } else {
            out.push_str(&tail[..3]);
            rest = &tail[3..];
        }
    }
    out.push_str(rest);
    out
}

/// Replaces the password of `scheme://user:password@host` URLs with `***`.
fn redact_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..colon + 1]);
                out.push_str(REDACTED);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

/// A URL for logs and errors: scheme, host and port only (webhook URLs carry
/// their secret in the path).
pub fn url_for_logs(url: &url::Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or("?"));
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    if url.path() != "/" && !url.path().is_empty() {
        shown.push_str("/***");
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_secrets_tokens_and_url_passwords_are_redacted() {
        let r = Redactor::new([&Secret::new("s3cr3t-value"), &Secret::new("ab")]);
        assert_eq!(
            r.redact("auth s3cr3t-value failed for ab"),
            "auth *** failed for ab"
        );
        assert_eq!(
            r.redact("token xoxb-1234-5678-abcdef rejected"),
            "token *** rejected"
        );
        assert_eq!(r.redact("the xox pattern"), "the xox pattern");
        assert_eq!(
            r.redact("connect postgres://app:pw@db:5432/wise: refused"),
            "connect postgres://app:***@db:5432/wise: refused"
        );
        assert_eq!(
            r.redact("GET http://127.0.0.1:8600/x"),
            "GET http://127.0.0.1:8600/x"
        );
    }

    #[test]
    fn urls_for_logs_hide_paths() {
        let url = url::Url::parse("https://hooks.slack.com/services/T0/B0/XYZ").unwrap();
        assert_eq!(url_for_logs(&url), "https://hooks.slack.com/***");
        let url = url::Url::parse("http://127.0.0.1:9000/").unwrap();
        assert_eq!(url_for_logs(&url), "http://127.0.0.1:9000");
    }
}
