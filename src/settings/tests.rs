//! The whole file through `Config::from_toml_str`: defaults, each section's checks and
//! errors that name the file and the key.

use std::time::Duration;

use super::*;
use crate::schedule::{CatchUp, Job};
use crate::sources::bigcommerce::webhooks::DEFAULT_WEBHOOK_SECRET_HEADER;

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

#[test]
fn reloadable_secrets_are_the_source_and_slack_credentials() {
    let text = "[bigcommerce]\nstore_hash = 's'\naccess_token = 'tok'\n\
         [postgres.wise]\nurl = 'postgres://u:pw@h/db'\n[[postgres.wise.tables]]\nname = 'point_transaction'\nkey = ['id']\n\
         [alerts.slack]\nbot_token = 'xoxb-1'\nchannel = '#c'\n";
    let config = Config::from_toml_str(text, "t", &|_| None).unwrap();
    let secrets = config.reloadable_secrets();
    let keys: Vec<&str> = secrets.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "alerts.slack.bot_token",
            "bigcommerce.access_token",
            "postgres.wise.url"
        ]
    );
    assert_eq!(
        secrets["postgres.wise.url"].expose(),
        "postgres://u:pw@h/db"
    );
}
