//! `[bigcommerce]`: the store, how it is read, and its configured
//! collections; and their validation.

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::config::{ConfigError, Secret};

/// `[bigcommerce]`: the store and how to read it.
#[derive(Debug, Clone)]
pub struct BigCommerceConfig {
    /// API root, `https://api.bigcommerce.com` in production.
    pub base_url: Url,
    /// The store hash of `/stores/{store_hash}/...`.
    pub store_hash: String,
    /// The API account's access token (`X-Auth-Token`).
    pub access_token: Secret,
    /// How far behind its cursor each poll starts reading (default 1 h).
    pub lookback: Duration,
    /// How often the store is polled (default 30 s).
    pub poll_interval: Duration,
    /// Records per page, 1 to 250 (default 250).
    pub page_size: u32,
    /// Most requests in flight at once (default 4); the rate-limit headers may allow fewer.
    pub max_concurrency: usize,
    /// Timeout of one request (default 30 s).
    pub request_timeout: Duration,
    /// Attempts per request before the pull fails (default 10).
    pub max_attempts: u32,
    /// Collections read by path beside the built-in entities
    /// (`[[bigcommerce.collections]]`).
    pub collections: Vec<CollectionConfig>,
}

/// `[[bigcommerce.collections]]`: a BigCommerce list endpoint that lands as
/// `raw_bc_<name>` (docs/bigcommerce-source.md, Collections).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionConfig {
    /// The collection's name (`brands`): the table is `raw_bc_<name>`.
    pub name: String,
    /// The list endpoint, `/v3/...` or `/v2/...` (`/v3/catalog/brands`).
    pub path: String,
    /// The key field(s) (default `id`).
    pub key: Vec<String>,
    /// The query parameter that filters by modification time, when the
    /// endpoint has one (`date_modified:min` on V3, `min_date_modified` on
    /// V2); without it the collection is scanned whole every `scan_every` polls.
    pub cursor_filter: Option<String>,
    /// The field holding each record's modification time (default `date_modified`).
    pub cursor_field: String,
    /// Without a cursor filter: read the whole collection every N polls (default 10).
    pub scan_every: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBigCommerce {
    base_url: Option<String>,
    store_hash: String,
    access_token: Secret,
    #[serde(default, with = "humantime_serde")]
    lookback: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    poll_interval: Option<Duration>,
    page_size: Option<u32>,
    max_concurrency: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    request_timeout: Option<Duration>,
    max_attempts: Option<u32>,
    #[serde(default)]
    collections: Vec<RawCollection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCollection {
    name: String,
    path: String,
    key: Option<Vec<String>>,
    cursor_filter: Option<String>,
    cursor_field: Option<String>,
    scan_every: Option<u32>,
}

impl RawBigCommerce {
    /// Checks the section and fills in the defaults.
    pub(crate) fn validate(
        self,
        err: &dyn Fn(&str, &str) -> ConfigError,
    ) -> Result<BigCommerceConfig, ConfigError> {
        let base = self
            .base_url
            .unwrap_or_else(|| "https://api.bigcommerce.com".to_string());
        let base_url = Url::parse(&base)
            .map_err(|e| err("bigcommerce.base_url", &format!("not a URL: {e}")))?;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.host().is_none() {
            return Err(err(
                "bigcommerce.base_url",
                "must be an http(s) URL with a host",
            ));
        }
        if self.store_hash.is_empty()
            || !self
                .store_hash
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(err(
                "bigcommerce.store_hash",
                "must be the store hash (letters and digits), not empty",
            ));
        }
        if self.access_token.expose().trim().is_empty() {
            return Err(err("bigcommerce.access_token", "must not be empty"));
        }
        let positive =
            |value, default, key: &str| crate::config::positive(value, default, key, err);
        let page_size = self.page_size.unwrap_or(250);
        if !(1..=250).contains(&page_size) {
            return Err(err(
                "bigcommerce.page_size",
                &format!("must be between 1 and 250 (BigCommerce's maximum), got {page_size}"),
            ));
        }
        let max_concurrency = self.max_concurrency.unwrap_or(4);
        if !(1..=64).contains(&max_concurrency) {
            return Err(err(
                "bigcommerce.max_concurrency",
                "must be between 1 and 64",
            ));
        }
        let max_attempts = self.max_attempts.unwrap_or(10);
        if max_attempts == 0 {
            return Err(err("bigcommerce.max_attempts", "must be at least 1"));
        }
        let mut collections: Vec<CollectionConfig> = Vec::new();
        for (i, c) in self.collections.into_iter().enumerate() {
            let key = format!("bigcommerce.collections[{i}]");
            let name_ok = !c.name.is_empty()
                && c.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !name_ok {
                return Err(err(
                    &format!("{key}.name"),
                    "must be a lowercase name like `brands` (letters, digits, _)",
                ));
            }
            if collections.iter().any(|o| o.name == c.name) {
                return Err(err(
                    &format!("{key}.name"),
                    &format!("collection {:?} is listed twice", c.name),
                ));
            }
            let path_ok = (c.path.starts_with("/v2/") || c.path.starts_with("/v3/"))
                && !c.path.contains(['?', '#', ' '])
                && !c.path.contains("..");
            if !path_ok {
                return Err(err(
                    &format!("{key}.path"),
                    "must be an API path starting /v2/ or /v3/, without a query (`/v3/catalog/brands`)",
                ));
            }
            let scan_every = c.scan_every.unwrap_or(10);
            if scan_every == 0 {
                return Err(err(&format!("{key}.scan_every"), "must be at least 1"));
            }
            let fields = c.key.clone().unwrap_or_else(|| vec!["id".into()]);
            if fields.is_empty() || fields.iter().any(|f| f.is_empty()) {
                return Err(err(&format!("{key}.key"), "must name at least one field"));
            }
            collections.push(CollectionConfig {
                name: c.name,
                path: c.path,
                key: fields,
                cursor_filter: c.cursor_filter.filter(|f| !f.is_empty()),
                cursor_field: c.cursor_field.unwrap_or_else(|| "date_modified".into()),
                scan_every,
            });
        }
        Ok(BigCommerceConfig {
            base_url,
            store_hash: self.store_hash,
            access_token: self.access_token,
            lookback: self.lookback.unwrap_or(Duration::from_secs(3600)),
            poll_interval: positive(
                self.poll_interval,
                Duration::from_secs(30),
                "bigcommerce.poll_interval",
            )?,
            page_size,
            max_concurrency,
            request_timeout: positive(
                self.request_timeout,
                Duration::from_secs(30),
                "bigcommerce.request_timeout",
            )?,
            max_attempts,
            collections,
        })
    }
}

impl BigCommerceConfig {
    /// A configuration with production defaults for the given store.
    pub fn new(base_url: Url, store_hash: impl Into<String>, access_token: Secret) -> Self {
        BigCommerceConfig {
            base_url,
            store_hash: store_hash.into(),
            access_token,
            lookback: Duration::from_secs(3600),
            poll_interval: Duration::from_secs(30),
            page_size: 250,
            max_concurrency: 4,
            request_timeout: Duration::from_secs(30),
            max_attempts: 10,
            collections: Vec::new(),
        }
    }
}
