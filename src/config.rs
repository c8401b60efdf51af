//! Configuration: TOML with `${VAR}` and `${file:PATH}` expansion, validated
//! without touching the network or the file system beyond reading the file
//! itself and the files it names (`${file:...}`, Google credentials files).
//!
//! Parsing is pure ([`Config::from_toml_str`]), so `govflow validate` and the
//! running service see exactly the same checks. Every error names the file, the
//! key and the problem; secrets ([`Secret`]) never reach `Debug`, logs or errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::schedule::{self, CatchUp, Job, Schedule};

pub mod gcp;
pub mod live;
pub use gcp::{AuthorizedUser, BigQueryCredentials, MetadataServer, ServiceAccountKey};
pub use live::{LiveSecret, LiveSecrets};

/// A configuration value that must never be printed: `Debug` shows `***`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it upstream.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// A configuration error, naming the file, the key (dotted path) and the problem.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {problem}")]
pub struct ConfigError {
    /// The configuration file (or `<inline>` for a string).
    pub file: String,
    /// Dotted path of the offending key; empty for the whole file.
    pub key: String,
    /// What is wrong, without secret values.
    pub problem: String,
}

/// The whole govflow configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The BigCommerce source; absent when the store is not read.
    pub bigcommerce: Option<BigCommerceConfig>,
    /// Where tables are published.
    pub warehouse: WarehouseConfig,
    /// Where checkpoints and cursors are kept.
    pub state: StateConfig,
    /// PostgreSQL databases by name (`[postgres.wise]`, `[postgres.commerce]`).
    pub postgres: BTreeMap<String, PostgresConfig>,
    /// Data-quality checks: the built-in ones (unless `check_defaults = false`)
    /// and the `[[checks]]` entries.
    pub checks: Vec<dataflows::checks::CheckSpec>,
    /// The dbt project of the marts and how it is run.
    pub dbt: DbtConfig,
    /// `[schedule]`: the periodic full refresh and mart builds.
    pub schedule: ScheduleConfig,
    /// `[alerts]`: where alerts go and when.
    pub alerts: AlertsConfig,
    /// `[status]`: the status page, metrics and probes of `govflow run`.
    pub status: StatusConfig,
    /// `[notifications]`: where restock notification events are delivered;
    /// `None`: they are only kept in the outbox table.
    pub notifications: Option<NotificationsConfig>,
    /// `[webhooks]`: the BigCommerce webhook receiver of `govflow run`;
    /// `None`: the store is only polled.
    pub webhooks: Option<WebhooksConfig>,
}

/// `[notifications]`: HTTP delivery of `product_notification_event` (see
/// docs/notifications.md).
#[derive(Debug, Clone)]
pub struct NotificationsConfig {
    /// The endpoint each event is POSTed to, as JSON with an `Idempotency-Key`
    /// header equal to its `event_id`.
    pub endpoint: Url,
    /// Extra request headers (e.g. `Authorization`); values are secrets.
    pub headers: Vec<(String, Secret)>,
    /// Timeout of one request (default 10 s).
    pub timeout: Duration,
    /// Customers delivered to concurrently (default 8); one customer's events
    /// always go one at a time, in order.
    pub max_in_flight: usize,
    /// First retry delay (default 200 ms), doubled per attempt up to `retry_max`.
    pub retry_initial: Duration,
    /// Longest retry delay (default 30 s). Retries never stop on their own.
    pub retry_max: Duration,
    /// With `govflow run --once`: longest wait for the outbox to drain before
    /// exiting (default 30 s; what is left is delivered by the next run).
    pub drain_timeout: Duration,
    /// A Slack incoming-webhook URL each event is also posted to, as a
    /// message, through its own delivery lane (a secret).
    pub slack_webhook: Option<Secret>,
}

/// `[webhooks]`: the BigCommerce webhook receiver (see docs/notifications.md).
#[derive(Debug, Clone)]
pub struct WebhooksConfig {
    /// Address to listen on, e.g. `0.0.0.0:8700`.
    pub listen: std::net::SocketAddr,
    /// Request header that carries the shared secret (default
    /// `X-Govflow-Webhook-Secret`), set as a custom header when the webhook is
    /// registered with BigCommerce.
    pub secret_header: String,
    /// The shared secret.
    pub secret: Secret,
}

/// `[status]`: the HTTP server of `govflow run` and `govflow demo` (docs/status.md).
#[derive(Debug, Clone)]
pub struct StatusConfig {
    /// Where it listens (default `127.0.0.1:3000`); `None` when `listen = "off"`.
    pub listen: Option<std::net::SocketAddr>,
    /// A bearer token every request but `/healthz` and `/readyz` must carry.
    pub token: Option<Secret>,
    /// `/readyz` fails when a source's last committed pull is older (default 5 min).
    pub ready_max_lag: Duration,
}

/// Default address of the status server.
pub const DEFAULT_STATUS_LISTEN: &str = "127.0.0.1:3000";

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            listen: DEFAULT_STATUS_LISTEN.parse().ok(),
            token: None,
            ready_max_lag: Duration::from_secs(300),
        }
    }
}

/// `[dbt]`: the marts' dbt project (see docs/transformer.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbtConfig {
    /// The dbt project (default `transformer`).
    pub project_dir: PathBuf,
    /// Where `profiles.yml` is (default: the project directory).
    pub profiles_dir: PathBuf,
    /// The profile target: `duckdb` (default, marts over the local warehouse) or `bigquery`.
    pub target: String,
    /// The DuckDB database the `duckdb` target writes the marts into
    /// (default `marts.duckdb` next to the warehouse directory).
    pub marts_db: PathBuf,
    /// dbt's `target/` and `logs/` (default `dbt` in the state directory).
    pub work_dir: PathBuf,
    /// The `dbt` executable; default: found (see `transform::find_dbt`).
    pub executable: Option<PathBuf>,
    /// Longest a dbt invocation may run before it is stopped (default 30 min).
    pub timeout: Duration,
}

impl Default for DbtConfig {
    fn default() -> Self {
        DbtConfig::with_dirs(
            Path::new(DEFAULT_WAREHOUSE_DIR),
            Path::new(DEFAULT_STATE_DIR),
        )
    }
}

impl DbtConfig {
    /// The defaults for a warehouse and a state directory.
    pub fn with_dirs(warehouse_dir: &Path, state_dir: &Path) -> Self {
        let project_dir = PathBuf::from(DEFAULT_DBT_PROJECT_DIR);
        DbtConfig {
            profiles_dir: project_dir.clone(),
            project_dir,
            target: "duckdb".to_string(),
            marts_db: warehouse_dir
                .parent()
                .unwrap_or(Path::new(""))
                .join("marts.duckdb"),
            work_dir: state_dir.join("dbt"),
            executable: None,
            timeout: Duration::from_secs(30 * 60),
        }
    }
}

impl Config {
    /// Every secret value of the configuration, for redaction of error texts.
    pub fn secrets(&self) -> Vec<&Secret> {
        let mut secrets: Vec<&Secret> = Vec::new();
        if let Some(bc) = &self.bigcommerce {
            secrets.push(&bc.access_token);
        }
        secrets.extend(self.postgres.values().map(|db| &db.url));
        if let Some(slack) = &self.alerts.slack {
            secrets.extend(slack.secrets());
        }
        secrets.extend(&self.status.token);
        if let WarehouseConfig::BigQuery(bq) = &self.warehouse {
            match &bq.credentials {
                BigQueryCredentials::ServiceAccount(key) => secrets.push(&key.private_key),
                BigQueryCredentials::AuthorizedUser(user) => {
                    secrets.extend([&user.client_secret, &user.refresh_token]);
                }
                BigQueryCredentials::Metadata(_) => {}
                BigQueryCredentials::AccessToken(token) => secrets.push(token),
            }
        }
        if let Some(n) = &self.notifications {
            secrets.extend(n.headers.iter().map(|(_, v)| v));
            secrets.extend(&n.slack_webhook);
        }
        if let Some(w) = &self.webhooks {
            secrets.push(&w.secret);
        }
        secrets
    }
}

/// `[schedule]`: cron expressions evaluated in one time zone.
#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    /// IANA zone of the expressions (default `Asia/Seoul`).
    pub timezone: chrono_tz::Tz,
    /// Full refresh of every source, then `dbt build --full-refresh`
    /// (default `0 2 * * *`); `None` when set to `"off"`.
    pub full_refresh: Option<Schedule>,
    /// `dbt build` of the marts (default every 5 minutes); `None` when `"off"`.
    pub marts: Option<Schedule>,
    /// What to do at start with ticks missed while the process was down (default once).
    pub catch_up: CatchUp,
}

impl ScheduleConfig {
    /// The enabled jobs with their schedules, for [`schedule::Scheduler::start`].
    pub fn jobs(&self) -> Vec<(Job, Schedule)> {
        [
            (Job::FullRefresh, &self.full_refresh),
            (Job::Marts, &self.marts),
        ]
        .into_iter()
        .filter_map(|(job, s)| s.clone().map(|s| (job, s)))
        .collect()
    }
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        let tz = schedule::DEFAULT_TIMEZONE;
        ScheduleConfig {
            timezone: tz,
            full_refresh: Schedule::new("full_refresh", schedule::DEFAULT_FULL_REFRESH, tz).ok(),
            marts: Schedule::new("marts", schedule::DEFAULT_MARTS, tz).ok(),
            catch_up: CatchUp::Once,
        }
    }
}

/// `[alerts]`: alert destinations and thresholds.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// `[alerts.slack]`; without it alerts are only logged.
    pub slack: Option<SlackConfig>,
    /// Consecutive failures of a source before it is alerted (default 3).
    pub source_failure_threshold: u32,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            slack: None,
            source_failure_threshold: crate::alerts::DEFAULT_SOURCE_FAILURE_THRESHOLD,
        }
    }
}

/// `[alerts.slack]`: one Slack destination.
#[derive(Debug, Clone)]
pub struct SlackConfig {
    /// Bot token and channel, or incoming webhook.
    pub target: SlackTarget,
    /// Most messages per minute (default 10); more are dropped and counted.
    pub max_per_minute: u32,
    /// Timeout of one request (default 10 s).
    pub timeout: Duration,
    /// Attempts per message on 429/5xx/transport errors (default 5).
    pub max_attempts: u32,
}

impl SlackConfig {
    /// The secret values of this destination.
    pub fn secrets(&self) -> Vec<&Secret> {
        match &self.target {
            SlackTarget::BotToken { token, .. } => vec![token],
            SlackTarget::Webhook { url } => vec![url],
        }
    }
}

/// Where Slack messages go.
#[derive(Debug, Clone)]
pub enum SlackTarget {
    /// `POST {base_url}/api/chat.postMessage` with `Authorization: Bearer {token}`.
    BotToken {
        /// API root, `https://slack.com` by default.
        base_url: Url,
        /// The bot token (`SLACK_BOT_TOKEN`, `xoxb-…`).
        token: Secret,
        /// Channel id or name, e.g. `#data-alerts` or `C0123456`.
        channel: String,
    },
    /// `POST {url}` of an incoming webhook; the URL itself is the secret.
    Webhook {
        /// The webhook URL (`https://hooks.slack.com/services/…`).
        url: Secret,
    },
}

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

/// `[warehouse]`: the sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarehouseConfig {
    /// The embedded Parquet warehouse in a directory.
    Local {
        /// The warehouse directory.
        dir: PathBuf,
    },
    /// BigQuery (production): tables merged into a dataset; the local
    /// warehouse in `local_dir` stays the source of truth for restarts.
    BigQuery(Box<BigQueryConfig>),
}

/// `[warehouse] kind = "bigquery"`: where and how often epochs are flushed to
/// BigQuery (see docs/bigquery.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BigQueryConfig {
    /// GCP project id (jobs run and tables live there).
    pub project: String,
    /// Dataset of govflow's tables (created in `location` if missing).
    pub dataset: String,
    /// Location of the dataset and the jobs (default `US`).
    pub location: String,
    /// How requests are authenticated.
    pub credentials: BigQueryCredentials,
    /// Where the credentials were found (for `govflow validate`; no secret).
    pub credentials_origin: String,
    /// GCS bucket the Parquet files are uploaded to (must exist).
    pub bucket: String,
    /// Object prefix inside the bucket (default `govflow`).
    pub prefix: String,
    /// BigQuery REST endpoint (default `https://bigquery.googleapis.com`).
    pub api_endpoint: Url,
    /// GCS JSON API endpoint (default `https://storage.googleapis.com`).
    pub storage_endpoint: Url,
    /// How often committed epochs are flushed (default 5 min).
    pub flush_interval: Duration,
    /// Shortest time between two loads into one table (default 1 min).
    pub min_table_interval: Duration,
    /// Expiry of staging tables, in case a flush dies before cleaning up (default 1 day).
    pub staging_expiration: Duration,
    /// Timeout of one HTTP request (default 60 s).
    pub request_timeout: Duration,
    /// Longest wait for one job (default 10 min).
    pub job_timeout: Duration,
    /// Attempts per request or job before a flush fails (default 8).
    pub max_attempts: u32,
    /// First retry delay, doubled per attempt up to 32 times it (default 1 s).
    pub retry_backoff: Duration,
    /// Tables flushed at the same time (default 4; one flush per table at a time).
    pub parallel_tables: usize,
    /// The local warehouse kept next to BigQuery: the source of truth for
    /// restarts (default `<state dir>/warehouse`).
    pub local_dir: PathBuf,
}

/// `[state]`: checkpoint, cursors, changelog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateConfig {
    /// The state directory.
    pub dir: PathBuf,
}

/// `[postgres.NAME]`: one PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// Connection URL (`postgres://…` or `key=value`); a secret, as it usually
    /// carries a password. `sslmode` and `sslrootcert` are honoured as in libpq.
    pub url: Secret,
    /// Tables read from this database.
    pub tables: Vec<PostgresTable>,
    /// How far behind its cursor each poll starts reading (default 1 h).
    pub lookback: Duration,
    /// How often the tables are polled (default 30 s).
    pub poll_interval: Duration,
    /// Rows per keyset page (default 5000, at most 100000).
    pub page_size: u32,
    /// PEM file of the root certificate(s) that verify the server (TLS); the
    /// URL's `sslrootcert` takes precedence.
    pub ca_file: Option<PathBuf>,
    /// Consecutive failed attempts (connect or query) before a read fails (default 10).
    pub max_attempts: u32,
    /// Timeout of establishing one connection (default 10 s).
    pub connect_timeout: Duration,
}

impl PostgresConfig {
    /// A configuration with defaults for `url` and `tables`.
    pub fn new(url: Secret, tables: Vec<PostgresTable>) -> PostgresConfig {
        PostgresConfig {
            url,
            tables,
            lookback: Duration::from_secs(3600),
            poll_interval: Duration::from_secs(30),
            page_size: 5000,
            ca_file: None,
            max_attempts: 10,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// `[[postgres.NAME.tables]]`: one table, its key and its cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresTable {
    /// Table name, optionally schema-qualified.
    pub name: String,
    /// Key columns.
    pub key: Vec<String>,
    /// Monotonic-ish change column. `None`: `updated_at` when the table has
    /// it, else the table has no cursor and every poll reads a snapshot of it
    /// (which also finds its deletes).
    pub cursor: Option<String>,
    /// The columns to read (the key and cursor are always read); `None`: all.
    pub columns: Option<Vec<String>>,
    /// A filter on the rows read (`where` in the config): a SQL expression.
    pub filter: Option<String>,
}

impl PostgresTable {
    /// Table `name` keyed by `key`, every column, the default cursor, no filter.
    pub fn new(name: &str, key: &[&str]) -> PostgresTable {
        PostgresTable {
            name: name.to_string(),
            key: key.iter().map(|k| k.to_string()).collect(),
            cursor: None,
            columns: None,
            filter: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    bigcommerce: Option<RawBigCommerce>,
    warehouse: Option<RawWarehouse>,
    state: Option<RawState>,
    #[serde(default)]
    postgres: BTreeMap<String, RawPostgres>,
    #[serde(default)]
    checks: Vec<crate::checks::RawCheck>,
    check_defaults: Option<bool>,
    dbt: Option<RawDbt>,
    schedule: Option<RawSchedule>,
    alerts: Option<RawAlerts>,
    status: Option<RawStatus>,
    notifications: Option<RawNotifications>,
    webhooks: Option<RawWebhooks>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatus {
    listen: Option<String>,
    token: Option<Secret>,
    #[serde(default, with = "humantime_serde")]
    ready_max_lag: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotifications {
    endpoint: String,
    #[serde(default)]
    headers: BTreeMap<String, Secret>,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    max_in_flight: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    retry_initial: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    retry_max: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    drain_timeout: Option<Duration>,
    slack_webhook: Option<Secret>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhooks {
    listen: String,
    secret: Secret,
    secret_header: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDbt {
    project_dir: Option<PathBuf>,
    profiles_dir: Option<PathBuf>,
    target: Option<String>,
    marts_db: Option<PathBuf>,
    work_dir: Option<PathBuf>,
    executable: Option<PathBuf>,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    timezone: Option<String>,
    full_refresh: Option<String>,
    marts: Option<String>,
    catch_up: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    source_failure_threshold: Option<u32>,
    slack: Option<RawSlack>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlack {
    bot_token: Option<Secret>,
    channel: Option<String>,
    webhook_url: Option<Secret>,
    base_url: Option<String>,
    max_per_minute: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    max_attempts: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBigCommerce {
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
struct RawCollection {
    name: String,
    path: String,
    key: Option<Vec<String>>,
    cursor_filter: Option<String>,
    cursor_field: Option<String>,
    scan_every: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWarehouse {
    kind: Option<String>,
    dir: Option<PathBuf>,
    project: Option<String>,
    dataset: Option<String>,
    location: Option<String>,
    service_account_key: Option<Secret>,
    access_token: Option<Secret>,
    bucket: Option<String>,
    prefix: Option<String>,
    api_endpoint: Option<String>,
    storage_endpoint: Option<String>,
    #[serde(default, with = "humantime_serde")]
    flush_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    min_table_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    staging_expiration: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    request_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    job_timeout: Option<Duration>,
    max_attempts: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    retry_backoff: Option<Duration>,
    parallel_tables: Option<usize>,
    local_dir: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    dir: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPostgres {
    url: Secret,
    #[serde(default)]
    tables: Vec<RawPostgresTable>,
    #[serde(default, with = "humantime_serde")]
    lookback: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    poll_interval: Option<Duration>,
    page_size: Option<u32>,
    ca_file: Option<PathBuf>,
    max_attempts: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    connect_timeout: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPostgresTable {
    name: String,
    key: Vec<String>,
    cursor: Option<String>,
    columns: Option<Vec<String>>,
    #[serde(rename = "where")]
    filter: Option<String>,
}

impl Default for Config {
    /// No source, the embedded warehouse and state under `govflow-data/`, the
    /// built-in checks: what an empty configuration file gives.
    fn default() -> Self {
        Config {
            bigcommerce: None,
            warehouse: WarehouseConfig::Local {
                dir: PathBuf::from(DEFAULT_WAREHOUSE_DIR),
            },
            state: StateConfig {
                dir: PathBuf::from(DEFAULT_STATE_DIR),
            },
            postgres: BTreeMap::new(),
            checks: dataflows::checks::default_checks(),
            dbt: DbtConfig::default(),
            schedule: ScheduleConfig::default(),
            alerts: AlertsConfig::default(),
            status: StatusConfig::default(),
            notifications: None,
            webhooks: None,
        }
    }
}

/// Default warehouse directory of the embedded warehouse.
pub const DEFAULT_WAREHOUSE_DIR: &str = "govflow-data/warehouse";
/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = "govflow-data/state";
/// Default dbt project directory.
pub const DEFAULT_DBT_PROJECT_DIR: &str = "transformer";

impl Config {
    /// Reads, expands and validates a configuration file.
    /// Whether `govflow run` can run this configuration: it needs at least
    /// one source. `govflow validate` and `govflow run` both ask this, so
    /// they accept and refuse the same files.
    pub fn check_runnable(&self, file: &str) -> Result<(), ConfigError> {
        let has_postgres_table = self.postgres.values().any(|db| !db.tables.is_empty());
        if self.bigcommerce.is_none() && !has_postgres_table {
            return Err(ConfigError {
                file: file.to_string(),
                key: String::new(),
                problem: "no source configured: add a [bigcommerce] section or a [postgres.NAME] section with tables".into(),
            });
        }
        Ok(())
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            key: String::new(),
            problem: format!("cannot read the file: {e}"),
        })?;
        Config::from_toml_str(&text, &file, &system_lookup)
    }

    /// Parses `text` (named `file` in errors), expanding `${VAR}` with `env`;
    /// `env("file:PATH")` reads a file (`${file:PATH}`, key files).
    pub fn from_toml_str(
        text: &str,
        file: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let err = |key: &str, problem: String| ConfigError {
            file: file.to_string(),
            key: key.to_string(),
            problem,
        };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| {
            // toml's message quotes the offending line; the file holds `${VAR}`
            // references, not expanded secrets, so quoting it is safe.
            err("", format!("invalid TOML: {}", e.message()))
        })?;
        expand_table(&mut table, "", env).map_err(|(key, problem)| err(&key, problem))?;
        let raw: RawConfig =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let key = e.path().to_string();
                let key = if key == "." { String::new() } else { key };
                err(&key, e.into_inner().message().to_string())
            })?;
        raw.validate(file, env)
    }
}

impl RawConfig {
    fn validate(
        self,
        file: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let err = |key: &str, problem: &str| ConfigError {
            file: file.to_string(),
            key: key.to_string(),
            problem: problem.to_string(),
        };
        let bigcommerce = self.bigcommerce.map(|bc| bc.validate(&err)).transpose()?;
        let warehouse = match self.warehouse {
            None => WarehouseConfig::Local {
                dir: PathBuf::from(DEFAULT_WAREHOUSE_DIR),
            },
            Some(w) => match w.kind.as_deref().unwrap_or("local") {
                "local" => {
                    let dir = w
                        .dir
                        .unwrap_or_else(|| PathBuf::from(DEFAULT_WAREHOUSE_DIR));
                    if dir.as_os_str().is_empty() {
                        return Err(err("warehouse.dir", "must not be empty"));
                    }
                    WarehouseConfig::Local { dir }
                }
                "bigquery" => {
                    let state_dir = self
                        .state
                        .as_ref()
                        .and_then(|s| s.dir.clone())
                        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
                    WarehouseConfig::BigQuery(Box::new(validate_bigquery(
                        w, &state_dir, env, &err,
                    )?))
                }
                other => {
                    return Err(err(
                        "warehouse.kind",
                        &format!("unknown kind {other:?}: expected \"local\" or \"bigquery\""),
                    ));
                }
            },
        };
        let state_dir = self
            .state
            .and_then(|s| s.dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        if state_dir.as_os_str().is_empty() {
            return Err(err("state.dir", "must not be empty"));
        }
        let mut postgres = BTreeMap::new();
        for (name, db) in self.postgres {
            let key = format!("postgres.{name}");
            let url = db.url.expose();
            if !(url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.contains("host="))
            {
                return Err(err(
                    &format!("{key}.url"),
                    "must be a postgres:// or postgresql:// URL or a key=value connection string",
                ));
            }
            let page_size = db.page_size.unwrap_or(5000);
            if !(1..=100_000).contains(&page_size) {
                return Err(err(
                    &format!("{key}.page_size"),
                    &format!("must be between 1 and 100000, got {page_size}"),
                ));
            }
            let max_attempts = db.max_attempts.unwrap_or(10);
            if max_attempts == 0 {
                return Err(err(&format!("{key}.max_attempts"), "must be at least 1"));
            }
            let positive = |d: Option<Duration>, default: u64, field: &str| match d {
                Some(d) if d.is_zero() => {
                    Err(err(&format!("{key}.{field}"), "must be longer than zero"))
                }
                Some(d) => Ok(d),
                None => Ok(Duration::from_secs(default)),
            };
            let poll_interval = positive(db.poll_interval, 30, "poll_interval")?;
            let connect_timeout = positive(db.connect_timeout, 10, "connect_timeout")?;
            if db
                .ca_file
                .as_ref()
                .is_some_and(|f| f.as_os_str().is_empty())
            {
                return Err(err(&format!("{key}.ca_file"), "must not be empty"));
            }
            let mut tables = Vec::new();
            for (i, t) in db.tables.into_iter().enumerate() {
                let tkey = format!("{key}.tables[{i}]");
                if !is_sql_name(&t.name) {
                    return Err(err(
                        &format!("{tkey}.name"),
                        "must be a table name like `point_transaction` or `schema.table`",
                    ));
                }
                if t.key.is_empty() {
                    return Err(err(&format!("{tkey}.key"), "must name at least one column"));
                }
                if tables.iter().any(|p: &PostgresTable| p.name == t.name) {
                    return Err(err(
                        &format!("{tkey}.name"),
                        &format!("table {:?} is listed twice", t.name),
                    ));
                }
                for column in t
                    .key
                    .iter()
                    .chain(&t.cursor)
                    .chain(t.columns.iter().flatten())
                {
                    if !is_sql_name(column) || column.contains('.') {
                        return Err(err(&tkey, &format!("{column:?} is not a column name")));
                    }
                }
                if t.columns.as_ref().is_some_and(Vec::is_empty) {
                    return Err(err(
                        &format!("{tkey}.columns"),
                        "must name at least one column",
                    ));
                }
                if let Some(filter) = &t.filter {
                    check_filter(filter).map_err(|why| err(&format!("{tkey}.where"), &why))?;
                }
                tables.push(PostgresTable {
                    name: t.name,
                    key: t.key,
                    cursor: t.cursor,
                    columns: t.columns,
                    filter: t.filter,
                });
            }
            postgres.insert(
                name,
                PostgresConfig {
                    url: db.url,
                    tables,
                    lookback: db.lookback.unwrap_or(Duration::from_secs(3600)),
                    poll_interval,
                    page_size,
                    ca_file: db.ca_file,
                    max_attempts,
                    connect_timeout,
                },
            );
        }
        let checks = crate::checks::specs_from_config(
            self.checks,
            self.check_defaults.unwrap_or(true),
            file,
        )?;
        let warehouse_dir = match &warehouse {
            WarehouseConfig::Local { dir } => dir.clone(),
            WarehouseConfig::BigQuery(bq) => bq.local_dir.clone(),
        };
        let mut dbt = DbtConfig::with_dirs(&warehouse_dir, &state_dir);
        if let Some(raw) = self.dbt {
            let nonempty = |p: Option<PathBuf>, key: &str| match p {
                Some(p) if p.as_os_str().is_empty() => Err(err(key, "must not be empty")),
                p => Ok(p),
            };
            if let Some(dir) = nonempty(raw.project_dir, "dbt.project_dir")? {
                dbt.profiles_dir = dir.clone();
                dbt.project_dir = dir;
            }
            if let Some(dir) = nonempty(raw.profiles_dir, "dbt.profiles_dir")? {
                dbt.profiles_dir = dir;
            }
            if let Some(target) = raw.target {
                if target.trim().is_empty() {
                    return Err(err("dbt.target", "must not be empty"));
                }
                dbt.target = target;
            }
            if let Some(path) = nonempty(raw.marts_db, "dbt.marts_db")? {
                dbt.marts_db = path;
            }
            if let Some(dir) = nonempty(raw.work_dir, "dbt.work_dir")? {
                dbt.work_dir = dir;
            }
            dbt.executable = nonempty(raw.executable, "dbt.executable")?;
            match raw.timeout {
                Some(t) if t.is_zero() => {
                    return Err(err("dbt.timeout", "must be longer than zero"));
                }
                Some(t) => dbt.timeout = t,
                None => {}
            }
        }
        let schedule = validate_schedule(self.schedule, &err)?;
        let alerts = validate_alerts(self.alerts, &err)?;
        let status = validate_status(self.status, &err)?;
        let notifications = self
            .notifications
            .map(|n| validate_notifications(n, &err))
            .transpose()?;
        let webhooks = self
            .webhooks
            .map(|w| validate_webhooks(w, &err))
            .transpose()?;
        Ok(Config {
            bigcommerce,
            warehouse,
            state: StateConfig { dir: state_dir },
            postgres,
            checks,
            dbt,
            schedule,
            alerts,
            status,
            notifications,
            webhooks,
        })
    }
}

fn validate_status(
    raw: Option<RawStatus>,
    err: &dyn Fn(&str, &str) -> ConfigError,
) -> Result<StatusConfig, ConfigError> {
    let mut status = StatusConfig::default();
    let Some(raw) = raw else {
        return Ok(status);
    };
    match raw.listen.as_deref().map(str::trim) {
        None => {}
        Some("off") => status.listen = None,
        Some(addr) => {
            status.listen = Some(addr.parse().map_err(|_| {
                err(
                    "status.listen",
                    &format!("{addr:?} is not an address like \"127.0.0.1:3000\" (or \"off\")"),
                )
            })?)
        }
    }
    if let Some(token) = raw.token {
        if token.expose().trim().is_empty() {
            return Err(err("status.token", "must not be empty"));
        }
        status.token = Some(token);
    }
    match raw.ready_max_lag {
        Some(d) if d.is_zero() => {
            return Err(err("status.ready_max_lag", "must be longer than zero"));
        }
        Some(d) => status.ready_max_lag = d,
        None => {}
    }
    Ok(status)
}

fn validate_notifications(
    raw: RawNotifications,
    err: &dyn Fn(&str, &str) -> ConfigError,
) -> Result<NotificationsConfig, ConfigError> {
    let endpoint = Url::parse(raw.endpoint.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| {
            err(
                "notifications.endpoint",
                "must be an http(s) URL with a host",
            )
        })?;
    let mut headers = Vec::new();
    for (name, value) in raw.headers {
        let key = format!("notifications.headers.{name}");
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(err(&key, "is not a valid header name"));
        }
        if name.eq_ignore_ascii_case("idempotency-key") || name.eq_ignore_ascii_case("content-type")
        {
            return Err(err(&key, "is set by govflow itself"));
        }
        if reqwest::header::HeaderValue::from_str(value.expose()).is_err() {
            return Err(err(&key, "is not a valid header value"));
        }
        headers.push((name, value));
    }
    let positive = |value: Option<Duration>, default: Duration, key: &str| match value {
        Some(d) if d.is_zero() => Err(err(key, "must be longer than zero")),
        Some(d) => Ok(d),
        None => Ok(default),
    };
    let timeout = positive(
        raw.timeout,
        Duration::from_secs(10),
        "notifications.timeout",
    )?;
    let retry_initial = positive(
        raw.retry_initial,
        Duration::from_millis(200),
        "notifications.retry_initial",
    )?;
    let retry_max = positive(
        raw.retry_max,
        Duration::from_secs(30),
        "notifications.retry_max",
    )?;
    if retry_max < retry_initial {
        return Err(err(
            "notifications.retry_max",
            "must not be shorter than retry_initial",
        ));
    }
    let drain_timeout = raw.drain_timeout.unwrap_or(Duration::from_secs(30));
    let max_in_flight = raw.max_in_flight.unwrap_or(8);
    if !(1..=256).contains(&max_in_flight) {
        return Err(err(
            "notifications.max_in_flight",
            "must be between 1 and 256",
        ));
    }
    if let Some(url) = &raw.slack_webhook {
        let valid = Url::parse(url.expose().trim())
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !valid {
            // The URL is a secret: not quoted.
            return Err(err(
                "notifications.slack_webhook",
                "must be an http(s) URL with a host",
            ));
        }
    }
    Ok(NotificationsConfig {
        slack_webhook: raw.slack_webhook,
        endpoint,
        headers,
        timeout,
        max_in_flight,
        retry_initial,
        retry_max,
        drain_timeout,
    })
}

fn validate_webhooks(
    raw: RawWebhooks,
    err: &dyn Fn(&str, &str) -> ConfigError,
) -> Result<WebhooksConfig, ConfigError> {
    let listen = raw.listen.trim().parse().map_err(|_| {
        err(
            "webhooks.listen",
            "must be an address with a port, e.g. \"0.0.0.0:8700\"",
        )
    })?;
    if raw.secret.expose().trim().len() < 16 {
        return Err(err(
            "webhooks.secret",
            "must be at least 16 characters (it is the only authentication of the receiver)",
        ));
    }
    let secret_header = raw
        .secret_header
        .unwrap_or_else(|| DEFAULT_WEBHOOK_SECRET_HEADER.to_string());
    if reqwest::header::HeaderName::from_bytes(secret_header.as_bytes()).is_err() {
        return Err(err("webhooks.secret_header", "is not a valid header name"));
    }
    Ok(WebhooksConfig {
        listen,
        secret_header,
        secret: Secret::new(raw.secret.expose().trim()),
    })
}

/// Default header of the webhook receiver's shared secret.
pub const DEFAULT_WEBHOOK_SECRET_HEADER: &str = "X-Govflow-Webhook-Secret";

fn validate_schedule(
    raw: Option<RawSchedule>,
    err: &dyn Fn(&str, &str) -> ConfigError,
) -> Result<ScheduleConfig, ConfigError> {
    let Some(raw) = raw else {
        return Ok(ScheduleConfig::default());
    };
    let timezone = match raw.timezone.as_deref().map(str::trim) {
        None => schedule::DEFAULT_TIMEZONE,
        Some(name) => name.parse::<chrono_tz::Tz>().map_err(|_| {
            err(
                "schedule.timezone",
                &format!("unknown time zone {name:?}: expected an IANA name such as \"Asia/Seoul\" or \"UTC\""),
            )
        })?,
    };
    let job = |value: Option<String>, default: &str, job: Job| {
        let key = format!("schedule.{}", job.name());
        let expr = value.unwrap_or_else(|| default.to_string());
        if expr.trim() == "off" {
            return Ok(None);
        }
        Schedule::new(job.name(), &expr, timezone)
            .map(Some)
            .map_err(|e| err(&key, &format!("{e} (or \"off\" to disable the job)")))
    };
    let full_refresh = job(
        raw.full_refresh,
        schedule::DEFAULT_FULL_REFRESH,
        Job::FullRefresh,
    )?;
    let marts = job(raw.marts, schedule::DEFAULT_MARTS, Job::Marts)?;
    let catch_up = match raw.catch_up {
        None => CatchUp::Once,
        Some(v) => v
            .parse()
            .map_err(|e: String| err("schedule.catch_up", &e))?,
    };
    Ok(ScheduleConfig {
        timezone,
        full_refresh,
        marts,
        catch_up,
    })
}

fn validate_alerts(
    raw: Option<RawAlerts>,
    err: &dyn Fn(&str, &str) -> ConfigError,
) -> Result<AlertsConfig, ConfigError> {
    let Some(raw) = raw else {
        return Ok(AlertsConfig::default());
    };
    let source_failure_threshold = raw
        .source_failure_threshold
        .unwrap_or(crate::alerts::DEFAULT_SOURCE_FAILURE_THRESHOLD);
    if source_failure_threshold == 0 {
        return Err(err("alerts.source_failure_threshold", "must be at least 1"));
    }
    let slack = raw.slack.map(|s| validate_slack(s, err)).transpose()?;
    Ok(AlertsConfig {
        slack,
        source_failure_threshold,
    })
}

fn validate_slack(
    raw: RawSlack,
    err: &dyn Fn(&str, &str) -> ConfigError,
) -> Result<SlackConfig, ConfigError> {
    let http_url = |text: &str| {
        Url::parse(text.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
    };
    let target = match (raw.bot_token, raw.webhook_url) {
        (Some(_), Some(_)) => {
            return Err(err(
                "alerts.slack",
                "set either bot_token (with channel) or webhook_url, not both",
            ));
        }
        (None, None) => {
            return Err(err(
                "alerts.slack",
                "set bot_token = \"${SLACK_BOT_TOKEN}\" with channel, or webhook_url",
            ));
        }
        (Some(token), None) => {
            if token.expose().trim().is_empty() {
                return Err(err("alerts.slack.bot_token", "must not be empty"));
            }
            let channel = match raw.channel {
                Some(c) if !c.trim().is_empty() => c.trim().to_string(),
                _ => {
                    return Err(err(
                        "alerts.slack.channel",
                        "is required with bot_token (a channel id or #name)",
                    ));
                }
            };
            let base = raw
                .base_url
                .unwrap_or_else(|| "https://slack.com".to_string());
            let base_url = http_url(&base).ok_or_else(|| {
                err(
                    "alerts.slack.base_url",
                    "must be an http(s) URL with a host",
                )
            })?;
            SlackTarget::BotToken {
                base_url,
                token: Secret::new(token.expose().trim()),
                channel,
            }
        }
        (None, Some(url)) => {
            if raw.channel.is_some() || raw.base_url.is_some() {
                return Err(err(
                    "alerts.slack",
                    "channel and base_url go with bot_token; a webhook_url has its channel built in",
                ));
            }
            // The URL is the secret: the problem is stated without quoting it.
            if http_url(url.expose()).is_none() {
                return Err(err(
                    "alerts.slack.webhook_url",
                    "must be an http(s) URL with a host",
                ));
            }
            SlackTarget::Webhook {
                url: Secret::new(url.expose().trim()),
            }
        }
    };
    let max_per_minute = raw
        .max_per_minute
        .unwrap_or(crate::alerts::DEFAULT_MAX_PER_MINUTE);
    if !(1..=1000).contains(&max_per_minute) {
        return Err(err(
            "alerts.slack.max_per_minute",
            "must be between 1 and 1000",
        ));
    }
    let timeout = raw.timeout.unwrap_or(Duration::from_secs(10));
    if timeout.is_zero() {
        return Err(err("alerts.slack.timeout", "must be longer than zero"));
    }
    let max_attempts = raw.max_attempts.unwrap_or(5);
    if max_attempts == 0 {
        return Err(err("alerts.slack.max_attempts", "must be at least 1"));
    }
    Ok(SlackConfig {
        target,
        max_per_minute,
        timeout,
        max_attempts,
    })
}

impl RawBigCommerce {
    fn validate(
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
        let positive = |d: Option<Duration>, default: Duration, key: &str| match d {
            Some(d) if d.is_zero() => Err(err(key, "must be longer than zero")),
            Some(d) => Ok(d),
            None => Ok(default),
        };
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

/// Accepts a `where` filter only if it is one SQL expression that keeps a
/// `SELECT` read-only (no statement break, no subquery that writes).
fn check_filter(filter: &str) -> Result<(), String> {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;
    use sqlparser::tokenizer::Token;
    let dialect = PostgreSqlDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(filter)
        .map_err(|e| format!("does not parse as a SQL expression: {e}"))?;
    parser
        .parse_expr()
        .map_err(|e| format!("does not parse as a SQL expression: {e}"))?;
    if parser.peek_token().token != Token::EOF {
        return Err(format!(
            "must be one SQL expression; unexpected {} after it",
            parser.peek_token().token
        ));
    }
    crate::sources::postgres::query::check_read_only(&format!("SELECT 1 WHERE ({filter})"))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn is_sql_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').count() <= 2
        && name.split('.').all(|part| {
            let mut bytes = part.bytes();
            matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
                && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
}

/// Replaces `${VAR}` in every string of the table; `$$` is a literal `$`.
/// Validates `[warehouse] kind = "bigquery"`. Without `service_account_key`
/// or `access_token`, credentials are searched as Google's clients do
/// ([`gcp::resolve`]).
fn validate_bigquery(
    w: RawWarehouse,
    state_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    err: &dyn Fn(&str, &str) -> ConfigError,
) -> Result<BigQueryConfig, ConfigError> {
    let nonempty = |v: Option<String>, key: &str| match v {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(err(key, "is required when kind = \"bigquery\"")),
    };
    let project = nonempty(w.project, "warehouse.project")?;
    let dataset = nonempty(w.dataset, "warehouse.dataset")?;
    let bucket = nonempty(w.bucket, "warehouse.bucket")?;
    let is_name = |v: &str| {
        !v.is_empty() && v.len() <= 1024 && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if !is_name(&dataset) {
        return Err(err(
            "warehouse.dataset",
            "must be letters, digits and underscores (a BigQuery dataset id)",
        ));
    }
    if !project
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '.'))
    {
        return Err(err("warehouse.project", "is not a GCP project id"));
    }
    if w.dir.is_some() {
        return Err(err(
            "warehouse.dir",
            "is for kind = \"local\"; with bigquery the local copy is `local_dir`",
        ));
    }
    let resolved = gcp::resolve(w.service_account_key, w.access_token, env)
        .map_err(|(key, problem)| err(&key, &problem))?;
    let url = |v: Option<String>, key: &str, default: &str| -> Result<Url, ConfigError> {
        let text = v.unwrap_or_else(|| default.to_string());
        let url = Url::parse(&text).map_err(|e| err(key, &format!("invalid URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(err(key, "must be an http:// or https:// URL"));
        }
        Ok(url)
    };
    let positive = |d: Option<Duration>, default: Duration, key: &str| match d {
        Some(d) if d.is_zero() => Err(err(key, "must be longer than zero")),
        Some(d) => Ok(d),
        None => Ok(default),
    };
    let max_attempts = w.max_attempts.unwrap_or(8);
    if max_attempts == 0 {
        return Err(err("warehouse.max_attempts", "must be at least 1"));
    }
    let parallel_tables = w.parallel_tables.unwrap_or(4);
    if !(1..=64).contains(&parallel_tables) {
        return Err(err("warehouse.parallel_tables", "must be between 1 and 64"));
    }
    let prefix = w.prefix.unwrap_or_else(|| "govflow".to_string());
    let prefix = prefix.trim_matches('/').to_string();
    let local_dir = w.local_dir.unwrap_or_else(|| state_dir.join("warehouse"));
    if local_dir.as_os_str().is_empty() {
        return Err(err("warehouse.local_dir", "must not be empty"));
    }
    Ok(BigQueryConfig {
        project,
        dataset,
        location: w
            .location
            .filter(|l| !l.trim().is_empty())
            .unwrap_or_else(|| "US".to_string()),
        credentials: resolved.credentials,
        credentials_origin: resolved.origin,
        bucket,
        prefix,
        api_endpoint: url(
            w.api_endpoint,
            "warehouse.api_endpoint",
            "https://bigquery.googleapis.com",
        )?,
        storage_endpoint: url(
            w.storage_endpoint,
            "warehouse.storage_endpoint",
            "https://storage.googleapis.com",
        )?,
        flush_interval: positive(
            w.flush_interval,
            Duration::from_secs(300),
            "warehouse.flush_interval",
        )?,
        // Zero is allowed: no spacing between loads (tests, emulators).
        min_table_interval: w.min_table_interval.unwrap_or(Duration::from_secs(60)),
        staging_expiration: positive(
            w.staging_expiration,
            Duration::from_secs(24 * 3600),
            "warehouse.staging_expiration",
        )?,
        request_timeout: positive(
            w.request_timeout,
            Duration::from_secs(60),
            "warehouse.request_timeout",
        )?,
        job_timeout: positive(
            w.job_timeout,
            Duration::from_secs(600),
            "warehouse.job_timeout",
        )?,
        max_attempts,
        retry_backoff: positive(
            w.retry_backoff,
            Duration::from_secs(1),
            "warehouse.retry_backoff",
        )?,
        parallel_tables,
        local_dir,
    })
}

fn expand_table(
    table: &mut toml::Table,
    prefix: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, String)> {
    for (name, value) in table.iter_mut() {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        expand_value(value, &key, env)?;
    }
    Ok(())
}

fn expand_value(
    value: &mut toml::Value,
    key: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, String)> {
    match value {
        toml::Value::String(s) => *s = expand_str(s, env).map_err(|p| (key.to_string(), p))?,
        toml::Value::Table(t) => expand_table(t, key, env)?,
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_value(item, &format!("{key}[{i}]"), env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// What [`Config::load`] reads: `NAME` from the environment, `file:PATH`
/// from the file system (the file's contents).
pub fn system_lookup(name: &str) -> Option<String> {
    match name.strip_prefix("file:") {
        Some(path) => std::fs::read_to_string(path).ok(),
        None => std::env::var(name).ok(),
    }
}

/// Expands `${VAR}` and `${file:PATH}` references in one string.
pub fn expand_str(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| "unterminated `${` (expected `${VAR}`)".to_string())?;
            let name = &body[..end];
            if let Some(path) = name.strip_prefix("file:") {
                if path.is_empty() {
                    return Err("`${file:}` names no file (expected `${file:/path}`)".into());
                }
                let value = env(name)
                    .ok_or_else(|| format!("cannot read the file {path} (`${{file:{path}}}`)"))?;
                // Secret files usually end with a newline that is not part of the value.
                out.push_str(value.trim_end_matches(['\n', '\r']));
                rest = &body[end + 1..];
                continue;
            }
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("`${{{name}}}` is not a valid variable reference"));
            }
            let value =
                env(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[bigcommerce]
base_url = "http://127.0.0.1:8600"      # https://api.bigcommerce.com in production
store_hash = "${BIGCOMMERCE_STORE_HASH}"
access_token = "${BIGCOMMERCE_ACCESS_TOKEN}"

[warehouse]
kind = "local"                          # or "bigquery"
dir = "govflow-data/warehouse"

[state]
dir = "govflow-data/state"              # checkpoint, cursors, changelog

[postgres.wise]                         # one section per database
url = "${WISE_POSTGRES_URL}"
[[postgres.wise.tables]]
name = "point_transaction"
key = ["id"]
cursor = "updated_at"
"#;

    fn env(name: &str) -> Option<String> {
        match name {
            "BIGCOMMERCE_STORE_HASH" => Some("abc123".into()),
            "BIGCOMMERCE_ACCESS_TOKEN" => Some("tok-SECRET-value".into()),
            "WISE_POSTGRES_URL" => Some("postgres://u:pw-SECRET@127.0.0.1/wise".into()),
            _ => None,
        }
    }

    #[test]
    fn minimal_config_parses_with_defaults() {
        let cfg = Config::from_toml_str(MINIMAL, "govflow.toml", &env).expect("valid");
        let bc = cfg.bigcommerce.expect("bigcommerce");
        assert_eq!(bc.store_hash, "abc123");
        assert_eq!(bc.access_token.expose(), "tok-SECRET-value");
        assert_eq!(bc.lookback, Duration::from_secs(3600));
        assert_eq!(bc.page_size, 250);
        assert_eq!(
            cfg.warehouse,
            WarehouseConfig::Local {
                dir: "govflow-data/warehouse".into()
            }
        );
        let wise = &cfg.postgres["wise"];
        assert_eq!(wise.tables[0].cursor.as_deref(), Some("updated_at"));
        assert_eq!(wise.lookback, Duration::from_secs(3600));
        assert_eq!(wise.page_size, 5000);
        assert_eq!(wise.ca_file, None);
    }

    #[test]
    fn secrets_never_appear_in_debug() {
        let cfg = Config::from_toml_str(MINIMAL, "govflow.toml", &env).expect("valid");
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("***"));
    }

    #[test]
    fn missing_variable_names_file_key_and_variable() {
        let e = Config::from_toml_str(MINIMAL, "conf/govflow.toml", &|_| None).unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("conf/govflow.toml: bigcommerce."),
            "{text}"
        );
        assert!(text.contains("is not set"), "{text}");
    }

    #[test]
    fn bad_values_are_named() {
        let cases = [
            (
                "[bigcommerce]\nstore_hash='a'\naccess_token='t'\npage_size=500",
                "bigcommerce.page_size",
            ),
            (
                "[bigcommerce]\nstore_hash='a'\naccess_token='t'\nbase_url='ftp://x'",
                "bigcommerce.base_url",
            ),
            (
                "[bigcommerce]\nstore_hash='a b'\naccess_token='t'",
                "bigcommerce.store_hash",
            ),
            (
                "[bigcommerce]\nstore_hash='a'\naccess_token=''",
                "bigcommerce.access_token",
            ),
            (
                "[bigcommerce]\nstore_hash='a'\naccess_token='t'\nlookback='soon'",
                "bigcommerce.lookback",
            ),
            (
                "[bigcommerce]\nstore_hash='a'\naccess_token='t'\npage_size='x'",
                "bigcommerce.page_size",
            ),
            ("[bigcommerce]\naccess_token='t'", "bigcommerce"),
            ("[warehouse]\nkind='s3'", "warehouse.kind"),
            (
                "[warehouse]\nkind='bigquery'\nproject='p'",
                "warehouse.dataset",
            ),
            ("[postgres.wise]\nurl='mysql://x'", "postgres.wise.url"),
            (
                "[postgres.wise]\nurl='postgres://x'\n[[postgres.wise.tables]]\nname='t;drop'\nkey=['id']",
                "postgres.wise.tables[0].name",
            ),
            (
                "[postgres.wise]\nurl='postgres://x'\n[[postgres.wise.tables]]\nname='t'\nkey=[]",
                "postgres.wise.tables[0].key",
            ),
            (
                "[postgres.wise]\nurl='postgres://x'\npage_size=0",
                "postgres.wise.page_size",
            ),
            (
                "[postgres.wise]\nurl='postgres://x'\npoll_interval='0s'",
                "postgres.wise.poll_interval",
            ),
            (
                "[postgres.wise]\nurl='postgres://x'\n[[postgres.wise.tables]]\nname='t'\nkey=['id']\n[[postgres.wise.tables]]\nname='t'\nkey=['id']",
                "postgres.wise.tables[1].name",
            ),
            ("[dbt]\ntimeout='0s'", "dbt.timeout"),
            ("[dbt]\nproject_dir=''", "dbt.project_dir"),
            ("[dbt]\nthreads=4", "dbt.threads"),
        ];
        for (text, key) in cases {
            let e = Config::from_toml_str(text, "f.toml", &env).expect_err(text);
            assert_eq!(e.key, key, "{text}: {e}");
            assert_eq!(e.file, "f.toml");
        }
    }

    #[test]
    fn schedule_defaults_and_overrides() {
        let cfg = Config::from_toml_str("", "f.toml", &env).expect("valid");
        assert_eq!(cfg.schedule.timezone, chrono_tz::Asia::Seoul);
        assert_eq!(cfg.schedule.catch_up, CatchUp::Once);
        let jobs = cfg.schedule.jobs();
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].1.expr(), "0 2 * * *");
        assert_eq!(jobs[1].1.expr(), "*/5 * * * *");
        let cfg = Config::from_toml_str(
            "[schedule]\ntimezone='America/New_York'\nfull_refresh='off'\nmarts='0 * * * *'\ncatch_up='skip'",
            "f.toml",
            &env,
        )
        .expect("valid");
        assert_eq!(cfg.schedule.timezone, chrono_tz::America::New_York);
        assert_eq!(cfg.schedule.catch_up, CatchUp::Skip);
        let jobs = cfg.schedule.jobs();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].0, Job::Marts);
        assert_eq!(jobs[0].1.timezone(), chrono_tz::America::New_York);
    }

    #[test]
    fn slack_bot_and_webhook_configs() {
        let env = |name: &str| match name {
            "SLACK_BOT_TOKEN" => Some("xoxb-SECRET-1".to_string()),
            "SLACK_WEBHOOK_URL" => Some("https://hooks.slack.com/services/T/B/SECRET2".to_string()),
            _ => None,
        };
        let cfg = Config::from_toml_str(
            "[alerts]\nsource_failure_threshold=5\n[alerts.slack]\nbot_token='${SLACK_BOT_TOKEN}'\nchannel='#data-alerts'",
            "f.toml",
            &env,
        )
        .expect("valid");
        assert_eq!(cfg.alerts.source_failure_threshold, 5);
        let slack = cfg.alerts.slack.as_ref().expect("slack");
        assert_eq!(slack.max_per_minute, 10);
        match &slack.target {
            SlackTarget::BotToken {
                base_url,
                token,
                channel,
            } => {
                assert_eq!(base_url.as_str(), "https://slack.com/");
                assert_eq!(token.expose(), "xoxb-SECRET-1");
                assert_eq!(channel, "#data-alerts");
            }
            other => panic!("{other:?}"),
        }
        assert!(!format!("{cfg:?}").contains("SECRET"));
        assert_eq!(cfg.secrets().len(), 1);
        let cfg = Config::from_toml_str(
            "[alerts.slack]\nwebhook_url='${SLACK_WEBHOOK_URL}'\nmax_per_minute=30",
            "f.toml",
            &env,
        )
        .expect("valid");
        assert!(matches!(
            cfg.alerts.slack.as_ref().map(|s| &s.target),
            Some(SlackTarget::Webhook { .. })
        ));
        assert!(!format!("{cfg:?}").contains("SECRET"));
    }

    #[test]
    fn bad_schedule_and_alert_values_are_named() {
        let cases = [
            ("[schedule]\ntimezone='Asia/Sole'", "schedule.timezone"),
            (
                "[schedule]\nfull_refresh='0 2 * *'",
                "schedule.full_refresh",
            ),
            ("[schedule]\nmarts='*/5 * * * * * *'", "schedule.marts"),
            ("[schedule]\nmarts='0 0 31 2 *'", "schedule.marts"),
            ("[schedule]\ncatch_up='all'", "schedule.catch_up"),
            ("[schedule]\nevery='1h'", "schedule.every"),
            (
                "[alerts]\nsource_failure_threshold=0",
                "alerts.source_failure_threshold",
            ),
            ("[alerts.slack]\nchannel='#x'", "alerts.slack"),
            (
                "[alerts.slack]\nbot_token='t'\nwebhook_url='https://h/x'",
                "alerts.slack",
            ),
            ("[alerts.slack]\nbot_token='t'", "alerts.slack.channel"),
            (
                "[alerts.slack]\nbot_token='t'\nchannel='#x'\nbase_url='slack.com'",
                "alerts.slack.base_url",
            ),
            (
                "[alerts.slack]\nwebhook_url='hooks/SECRET'",
                "alerts.slack.webhook_url",
            ),
            (
                "[alerts.slack]\nbot_token='t'\nchannel='#x'\nmax_per_minute=0",
                "alerts.slack.max_per_minute",
            ),
            (
                "[alerts.slack]\nbot_token='t'\nchannel='#x'\nmax_attempts=0",
                "alerts.slack.max_attempts",
            ),
        ];
        for (text, key) in cases {
            let e = Config::from_toml_str(text, "f.toml", &env).expect_err(text);
            assert_eq!(e.key, key, "{text}: {e}");
            assert!(!e.to_string().contains("SECRET"), "{e}");
        }
    }

    #[test]
    fn unknown_keys_and_syntax_errors_are_reported() {
        let e = Config::from_toml_str(
            "[bigcommerce]\nstore_hash='a'\naccess_token='t'\npage_sise=5",
            "f.toml",
            &env,
        )
        .unwrap_err();
        assert!(e.to_string().contains("page_sise"), "{e}");
        let e = Config::from_toml_str("[bigcommerce\n", "f.toml", &env).unwrap_err();
        assert!(e.to_string().contains("invalid TOML"), "{e}");
    }

    #[test]
    fn expansion_rules() {
        let env = |n: &str| (n == "A").then(|| "x".to_string());
        assert_eq!(expand_str("${A}-${A}", &env).unwrap(), "x-x");
        assert_eq!(
            expand_str("cost $$5 and $x", &env).unwrap(),
            "cost $5 and $x"
        );
        assert!(expand_str("${A", &env).is_err());
        assert!(
            expand_str("${B}", &env)
                .unwrap_err()
                .contains("B is not set")
        );
        assert!(expand_str("${a-b}", &env).is_err());
    }

    #[test]
    fn dbt_defaults_follow_the_warehouse_and_state_dirs() {
        let text = "[warehouse]\ndir = 'data/wh'\n[state]\ndir = 'data/st'\n";
        let c = Config::from_toml_str(text, "t", &|_| None).unwrap();
        assert_eq!(c.dbt.project_dir, PathBuf::from("transformer"));
        assert_eq!(c.dbt.profiles_dir, PathBuf::from("transformer"));
        assert_eq!(c.dbt.target, "duckdb");
        assert_eq!(c.dbt.marts_db, PathBuf::from("data/marts.duckdb"));
        assert_eq!(c.dbt.work_dir, PathBuf::from("data/st/dbt"));
        let text = "[dbt]\nproject_dir = 'p'\ntarget = 'bigquery'\ntimeout = '5m'\n";
        let c = Config::from_toml_str(text, "t", &|_| None).unwrap();
        assert_eq!(c.dbt.profiles_dir, PathBuf::from("p"));
        assert_eq!(c.dbt.target, "bigquery");
        assert_eq!(c.dbt.timeout, Duration::from_secs(300));
    }

    const SA_KEY: &str = r#"{"type": "service_account", "project_id": "p1", "client_email": "gf@p1.iam.gserviceaccount.com", "private_key": "-----BEGIN PRIVATE KEY-----\nSECRETKEYBODY\n-----END PRIVATE KEY-----\n", "token_uri": "https://oauth2.example/token"}"#;

    #[test]
    fn bigquery_warehouse_with_defaults_and_the_key_from_the_environment() {
        let text = "[warehouse]\nkind = 'bigquery'\nproject = 'p1'\ndataset = 'govflow'\nbucket = 'b'\n[state]\ndir = 'st'\n";
        let env = |name: &str| (name == "GCP_SERVICE_ACCOUNT_KEY").then(|| SA_KEY.to_string());
        let c = Config::from_toml_str(text, "f", &env).unwrap();
        let WarehouseConfig::BigQuery(bq) = &c.warehouse else {
            panic!("bigquery expected")
        };
        assert_eq!(bq.location, "US");
        assert_eq!(bq.prefix, "govflow");
        assert_eq!(bq.flush_interval, Duration::from_secs(300));
        assert_eq!(bq.min_table_interval, Duration::from_secs(60));
        assert_eq!(bq.local_dir, PathBuf::from("st/warehouse"));
        assert_eq!(bq.api_endpoint.as_str(), "https://bigquery.googleapis.com/");
        let BigQueryCredentials::ServiceAccount(key) = &bq.credentials else {
            panic!("service account expected")
        };
        assert_eq!(key.client_email, "gf@p1.iam.gserviceaccount.com");
        assert_eq!(key.token_uri.as_str(), "https://oauth2.example/token");
        assert!(!format!("{c:?}").contains("SECRETKEYBODY"));
        assert!(
            c.secrets()
                .iter()
                .any(|s| s.expose().contains("SECRETKEYBODY"))
        );
        // The dbt marts default next to the local copy.
        assert_eq!(c.dbt.marts_db, PathBuf::from("st/marts.duckdb"));
    }

    #[test]
    fn bigquery_settings_are_checked_without_quoting_the_key() {
        let base =
            "[warehouse]\nkind = 'bigquery'\nproject = 'p1'\ndataset = 'govflow'\nbucket = 'b'\n";
        let cases = [
            (format!("{base}access_token = 't'\nservice_account_key = 'x'\n"), "warehouse.access_token"),
            (format!("{base}service_account_key = '{{\"type\": \"user\", \"private_key\": \"SECRETKEYBODY\"}}'\n"), "warehouse.service_account_key"),
            (format!("{base}access_token = 't'\ndir = 'x'\n"), "warehouse.dir"),
            (format!("{base}access_token = 't'\nflush_interval = '0s'\n"), "warehouse.flush_interval"),
            (format!("{base}access_token = 't'\napi_endpoint = 'ftp://x'\n"), "warehouse.api_endpoint"),
            (format!("{base}access_token = 't'\nparallel_tables = 0\n"), "warehouse.parallel_tables"),
            ("[warehouse]\nkind = 'bigquery'\nproject = 'p1'\ndataset = 'gov-flow'\nbucket = 'b'\naccess_token = 't'\n".to_string(), "warehouse.dataset"),
            ("[warehouse]\nkind = 'bigquery'\nproject = 'p1'\ndataset = 'd'\naccess_token = 't'\n".to_string(), "warehouse.bucket"),
        ];
        for (text, key) in cases {
            let e = Config::from_toml_str(&text, "f", &|_| None).unwrap_err();
            assert_eq!(e.key, key, "{text}: {e}");
            assert!(!e.to_string().contains("SECRETKEYBODY"), "{e}");
        }
        let ok = format!(
            "{base}access_token = 'emulator'\nmin_table_interval = '0s'\napi_endpoint = 'http://127.0.0.1:9050'\n"
        );
        let c = Config::from_toml_str(&ok, "f", &|_| None).unwrap();
        let WarehouseConfig::BigQuery(bq) = &c.warehouse else {
            panic!("bigquery expected")
        };
        assert_eq!(bq.min_table_interval, Duration::ZERO);
        assert!(matches!(
            bq.credentials,
            BigQueryCredentials::AccessToken(_)
        ));
        // Without any key, the metadata server is the last resort, as in
        // Google's clients (config::gcp has the whole chain).
        let c = Config::from_toml_str(base, "f", &|_| None).unwrap();
        let WarehouseConfig::BigQuery(bq) = &c.warehouse else {
            panic!("bigquery expected")
        };
        assert!(matches!(bq.credentials, BigQueryCredentials::Metadata(_)));
    }

    #[test]
    fn file_references_read_secrets_from_files() {
        let env = |name: &str| match name {
            "file:/run/secrets/bc" => Some("tok-from-file\n".to_string()),
            "STORE" => Some("abc".to_string()),
            _ => None,
        };
        assert_eq!(
            expand_str("${file:/run/secrets/bc}/${STORE}", &env).unwrap(),
            "tok-from-file/abc"
        );
        let e = expand_str("${file:/missing}", &env).unwrap_err();
        assert_eq!(e, "cannot read the file /missing (`${file:/missing}`)");
        assert!(expand_str("${file:}", &env).is_err());
    }

    #[test]
    fn notifications_and_webhooks() {
        let text = "[notifications]\nendpoint='http://127.0.0.1:9000/restock'\n\
                    headers={Authorization='Bearer ${BIGCOMMERCE_ACCESS_TOKEN}'}\nmax_in_flight=2\n\
                    retry_initial='50ms'\n\
                    [webhooks]\nlisten='127.0.0.1:8700'\nsecret='0123456789abcdef-secret'\n";
        let cfg = Config::from_toml_str(text, "f.toml", &env).expect("valid");
        let n = cfg.notifications.as_ref().expect("notifications");
        assert_eq!(n.endpoint.as_str(), "http://127.0.0.1:9000/restock");
        assert_eq!(n.max_in_flight, 2);
        assert_eq!(n.retry_initial, Duration::from_millis(50));
        assert_eq!(n.retry_max, Duration::from_secs(30));
        assert_eq!(n.headers.len(), 1);
        let w = cfg.webhooks.as_ref().expect("webhooks");
        assert_eq!(w.listen.port(), 8700);
        assert_eq!(w.secret_header, DEFAULT_WEBHOOK_SECRET_HEADER);
        // Header values and the webhook secret are secrets.
        assert_eq!(cfg.secrets().len(), 2);
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("0123456789abcdef") && !debug.contains("Bearer"));
        assert!(Config::default().notifications.is_none() && Config::default().webhooks.is_none());

        let cases = [
            (
                "[notifications]\nendpoint='ftp://x/y'",
                "notifications.endpoint",
            ),
            (
                "[notifications]\nendpoint='http://h/'\nheaders={'Idempotency-Key'='x'}",
                "notifications.headers.Idempotency-Key",
            ),
            (
                "[notifications]\nendpoint='http://h/'\nmax_in_flight=0",
                "notifications.max_in_flight",
            ),
            (
                "[notifications]\nendpoint='http://h/'\nretry_initial='1m'\nretry_max='1s'",
                "notifications.retry_max",
            ),
            (
                "[notifications]\nendpoint='http://h/'\ntimeout='0s'",
                "notifications.timeout",
            ),
            (
                "[notifications]\nendpoint='http://h/'\nslack_webhook='SECRET-not-a-url'",
                "notifications.slack_webhook",
            ),
            (
                "[webhooks]\nlisten='8700'\nsecret='0123456789abcdef'",
                "webhooks.listen",
            ),
            (
                "[webhooks]\nlisten='127.0.0.1:1'\nsecret='SECRET'",
                "webhooks.secret",
            ),
            (
                "[webhooks]\nlisten='127.0.0.1:1'\nsecret='0123456789abcdefSECRET'\nsecret_header='a b'",
                "webhooks.secret_header",
            ),
        ];
        for (text, key) in cases {
            let e = Config::from_toml_str(text, "f.toml", &env).expect_err(text);
            assert_eq!(e.key, key, "{text}: {e}");
            assert!(!e.to_string().contains("SECRET"), "{e}");
        }
    }
}
