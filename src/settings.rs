//! The whole configuration file: one section per component, each parsed and
//! validated by the component that owns it (`sources/postgres/config.rs`,
//! `sinks/bigquery/config.rs`, `alerts/config.rs`, …), assembled here.
//!
//! Parsing is pure ([`Config::from_toml_str`]), so `govflow validate` and the
//! running service see exactly the same checks. Every error names the file,
//! the key and the problem; secrets never reach `Debug`, logs or errors.
//! The primitives (secrets, `${VAR}` expansion, errors) are in
//! [`crate::config`], which imports nothing from the components.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::alerts::config::{RawAlerts, validate_alerts};
use crate::alerts::{AlertsConfig, SlackTarget};
use crate::config::{BigQueryCredentials, ConfigError, Secret, system_lookup};
use crate::notify::NotificationsConfig;
use crate::notify::config::{RawNotifications, validate_notifications};
use crate::schedule::ScheduleConfig;
use crate::schedule::config::{RawSchedule, validate_schedule};
use crate::sinks::config::{RawState, RawWarehouse};
use crate::sinks::{DEFAULT_STATE_DIR, DEFAULT_WAREHOUSE_DIR, StateConfig, WarehouseConfig};
use crate::sources::bigcommerce::BigCommerceConfig;
use crate::sources::bigcommerce::config::RawBigCommerce;
use crate::sources::bigcommerce::webhooks::WebhooksConfig;
use crate::sources::bigcommerce::webhooks::config::{RawWebhooks, validate_webhooks};
use crate::sources::postgres::PostgresConfig;
use crate::sources::postgres::config::RawPostgres;
use crate::status::StatusConfig;
use crate::status::config::{RawStatus, validate_status};
use crate::transform::DbtConfig;
use crate::transform::config::{RawDbt, validate_dbt};

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

impl Config {
    /// The secrets a reload can replace without a restart, by key (see
    /// [`LiveSecrets::apply`](crate::config::LiveSecrets::apply)).
    pub fn reloadable_secrets(&self) -> BTreeMap<String, Secret> {
        let mut out = BTreeMap::new();
        if let Some(bc) = &self.bigcommerce {
            out.insert(
                "bigcommerce.access_token".to_string(),
                bc.access_token.clone(),
            );
        }
        for (name, db) in &self.postgres {
            out.insert(format!("postgres.{name}.url"), db.url.clone());
        }
        match self.alerts.slack.as_ref().map(|s| &s.target) {
            Some(SlackTarget::BotToken { token, .. }) => {
                out.insert("alerts.slack.bot_token".to_string(), token.clone());
            }
            Some(SlackTarget::Webhook { url }) => {
                out.insert("alerts.slack.webhook_url".to_string(), url.clone());
            }
            None => {}
        }
        out
    }
}

impl Config {
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

    /// Reads, expands and validates a configuration file.
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
        let raw: RawConfig = crate::config::parse(text, file, env)?;
        raw.validate(file, env)
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
        let (warehouse, state) =
            crate::sinks::config::validate_warehouse(self.warehouse, self.state, env, &err)?;
        let mut postgres = BTreeMap::new();
        for (name, db) in self.postgres {
            let config = db.validate(&name, &err)?;
            postgres.insert(name, config);
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
        let dbt = validate_dbt(self.dbt, &warehouse_dir, &state.dir, &err)?;
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
            state,
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

#[cfg(test)]
mod tests;
