//! Alerts delivered to a local Slack stand-in on 127.0.0.1: exact texts,
//! deduplication, recovery, rate limit, Slack's `ok:false`, 429 and 5xx.

use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use govflow::alerts::{Alert, AlertError, Alerter, Delivery, FailedNode};
use govflow::alerts::{AlertsConfig, SlackConfig, SlackTarget};
use govflow::config::Secret;

const TOKEN: &str = "xoxb-111-222-SECRETTOKEN";

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    authorization: Option<String>,
    body: serde_json::Value,
}

/// A canned answer: status, extra header, body.
type Answer = (u16, Option<(&'static str, &'static str)>, &'static str);

#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    /// Answers to give first, in order; then 200 with `ok_body`.
    script: Arc<Mutex<VecDeque<Answer>>>,
    ok_body: &'static str,
}

impl Receiver {
    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn texts(&self) -> Vec<String> {
        self.received()
            .iter()
            .map(|r| r.body["text"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.script.lock().unwrap().extend(answers);
    }
}

async fn record(
    State(r): State<Receiver>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    r.received.lock().unwrap().push(Received {
        path: uri.path().to_string(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(String::from),
        body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    });
    let next = r.script.lock().unwrap().pop_front();
    let (status, header, body) = next.unwrap_or((200, None, r.ok_body));
    let mut response = (StatusCode::from_u16(status).unwrap(), body.to_string()).into_response();
    if let Some((name, value)) = header {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

async fn receiver(ok_body: &'static str) -> (Receiver, SocketAddr) {
    let r = Receiver {
        ok_body,
        ..Receiver::default()
    };
    let app = Router::new()
        .route("/api/chat.postMessage", post(record))
        .route("/services/T000/B000/{secret}", post(record))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (r, addr)
}

fn bot_config(addr: SocketAddr, max_per_minute: u32) -> AlertsConfig {
    AlertsConfig {
        slack: Some(SlackConfig {
            target: SlackTarget::BotToken {
                base_url: format!("http://{addr}").parse().unwrap(),
                token: Secret::new(TOKEN),
                channel: "#data-alerts".into(),
            },
            max_per_minute,
            timeout: Duration::from_secs(10),
            max_attempts: 3,
        }),
        source_failure_threshold: 3,
    }
}

fn alerter(config: &AlertsConfig, secrets: &[Secret]) -> Alerter {
    captured_logs();
    Alerter::new(config, secrets)
        .unwrap()
        .with_retry_backoff(Duration::from_millis(1), Duration::from_millis(5))
}

fn check_failing(count: u64) -> Alert {
    Alert::CheckFailing {
        check: "not_null(email)".into(),
        table: "dim_customer".into(),
        failing_count: count,
        sample_keys: vec!["17".into(), "42".into(), "99".into()],
    }
}

fn check_recovered() -> Alert {
    Alert::CheckRecovered {
        check: "not_null(email)".into(),
        table: "dim_customer".into(),
    }
}

#[tokio::test]
async fn a_failing_check_posts_once_and_its_recovery_once() {
    let (r, addr) = receiver(r#"{"ok":true,"channel":"C1","ts":"1.2"}"#).await;
    let a = alerter(&bot_config(addr, 10), &[]);
    assert_eq!(a.notify(check_failing(3)).await.unwrap(), Delivery::Sent);
    // Still failing, more rows: not sent again.
    assert_eq!(
        a.notify(check_failing(5)).await.unwrap(),
        Delivery::Duplicate
    );
    assert_eq!(
        a.notify(check_failing(5)).await.unwrap(),
        Delivery::Duplicate
    );
    assert_eq!(a.notify(check_recovered()).await.unwrap(), Delivery::Sent);
    assert_eq!(
        a.notify(check_recovered()).await.unwrap(),
        Delivery::NotFailing
    );

    let got = r.received();
    assert_eq!(got.len(), 2);
    for req in &got {
        assert_eq!(req.path, "/api/chat.postMessage");
        assert_eq!(
            req.authorization.as_deref(),
            Some(&*format!("Bearer {TOKEN}"))
        );
        assert_eq!(req.body["channel"], "#data-alerts");
    }
    assert_eq!(
        r.texts(),
        vec![
            ":red_circle: govflow check `not_null(email)` on `dim_customer` is failing: 3 failing rows; sample keys: 17, 42, 99",
            ":large_green_circle: govflow check `not_null(email)` on `dim_customer` passes again",
        ]
    );
    // Failing again after the recovery is a new alert.
    assert_eq!(a.notify(check_failing(1)).await.unwrap(), Delivery::Sent);
    assert_eq!(r.received().len(), 3);
}

#[tokio::test]
async fn a_dbt_failure_lists_its_failed_nodes_and_recovers_once() {
    let (r, addr) = receiver("ok").await;
    let config = AlertsConfig {
        slack: Some(SlackConfig {
            target: SlackTarget::Webhook {
                url: Secret::new(format!("http://{addr}/services/T000/B000/WEBHOOKSECRET")),
            },
            max_per_minute: 10,
            timeout: Duration::from_secs(10),
            max_attempts: 3,
        }),
        source_failure_threshold: 3,
    };
    let a = alerter(&config, &[]);
    let failed = |nodes: &[&str]| Alert::DbtFailed {
        command: "dbt build".into(),
        failed_nodes: nodes
            .iter()
            .map(|n| FailedNode {
                name: n.to_string(),
                message: if n.starts_with("test.") {
                    "Got 3 results, configured to fail if != 0".into()
                } else {
                    "Runtime Error: division by zero".into()
                },
            })
            .collect(),
        summary: "2 of 14 nodes failed".into(),
    };
    let nodes = [
        "test.not_null_mart_complete_purchase_order_order_id",
        "model.mart_daily_revenue",
    ];
    assert_eq!(a.notify(failed(&nodes)).await.unwrap(), Delivery::Sent);
    assert_eq!(a.notify(failed(&nodes)).await.unwrap(), Delivery::Duplicate);
    assert_eq!(
        a.notify(Alert::DbtRecovered {
            command: "dbt build".into()
        })
        .await
        .unwrap(),
        Delivery::Sent
    );
    let got = r.received();
    assert_eq!(got.len(), 2);
    assert!(
        got.iter()
            .all(|g| g.path == "/services/T000/B000/WEBHOOKSECRET")
    );
    assert!(got.iter().all(|g| g.authorization.is_none()));
    assert_eq!(
        r.texts(),
        vec![
            ":red_circle: govflow `dbt build` failed: 2 nodes failed\n\
             • `test.not_null_mart_complete_purchase_order_order_id`: Got 3 results, configured to fail if != 0\n\
             • `model.mart_daily_revenue`: Runtime Error: division by zero",
            ":large_green_circle: govflow `dbt build` succeeds again",
        ]
    );
    // A webhook body is {"text": ...} only.
    assert_eq!(got[0].body.as_object().unwrap().len(), 1);
}

#[tokio::test]
async fn dbt_failing_on_other_nodes_is_a_new_alert() {
    let (r, addr) = receiver(r#"{"ok":true}"#).await;
    let a = alerter(&bot_config(addr, 10), &[]);
    let failed = |name: &str| Alert::DbtFailed {
        command: "dbt build".into(),
        failed_nodes: vec![FailedNode {
            name: name.into(),
            message: "failed".into(),
        }],
        summary: String::new(),
    };
    assert_eq!(a.notify(failed("model.a")).await.unwrap(), Delivery::Sent);
    assert_eq!(
        a.notify(failed("model.a")).await.unwrap(),
        Delivery::Duplicate
    );
    assert_eq!(a.notify(failed("model.b")).await.unwrap(), Delivery::Sent);
    assert_eq!(r.received().len(), 2);
}

#[tokio::test]
async fn sources_and_full_refresh_alert_with_secrets_redacted() {
    let (r, addr) = receiver(r#"{"ok":true}"#).await;
    let bc_token = Secret::new("bc-token-SECRET-123");
    let pg = Secret::new("postgres://app:pg-SECRET@db/wise");
    let a = alerter(&bot_config(addr, 10), &[bc_token, pg]);
    for _ in 0..2 {
        assert_eq!(
            a.source_failed("bigcommerce", "HTTP 401 for token bc-token-SECRET-123")
                .await
                .unwrap(),
            Delivery::BelowThreshold
        );
    }
    assert_eq!(
        a.source_failed("bigcommerce", "HTTP 401 for token bc-token-SECRET-123")
            .await
            .unwrap(),
        Delivery::Sent
    );
    assert_eq!(
        a.source_failed("bigcommerce", "HTTP 401").await.unwrap(),
        Delivery::Duplicate
    );
    assert_eq!(
        a.source_succeeded("bigcommerce").await.unwrap(),
        Delivery::Sent
    );
    let error = format!(
        "postgres.wise: connecting to postgres://app:pg-SECRET@db/wise failed; slack said {TOKEN}"
    );
    assert_eq!(
        a.notify(Alert::FullRefreshFailed { error }).await.unwrap(),
        Delivery::Sent
    );
    assert_eq!(
        a.notify(Alert::FullRefreshRecovered).await.unwrap(),
        Delivery::Sent
    );
    assert_eq!(
        r.texts(),
        vec![
            ":red_circle: govflow source `bigcommerce` is failing: 3 failures in a row; last error: HTTP 401 for token ***",
            ":large_green_circle: govflow source `bigcommerce` recovered after 4 failures in a row",
            ":red_circle: govflow full refresh failed: postgres.wise: connecting to *** failed; slack said ***",
            ":large_green_circle: govflow full refresh succeeds again",
        ]
    );
}

#[tokio::test]
async fn the_rate_limit_drops_excess_and_says_so_later() {
    let (r, addr) = receiver(r#"{"ok":true}"#).await;
    let a = alerter(&bot_config(addr, 2), &[]);
    let check = |n: u32| Alert::CheckFailing {
        check: format!("check_{n}"),
        table: "dim_sku".into(),
        failing_count: 1,
        sample_keys: vec![],
    };
    let mut deliveries = Vec::new();
    for n in 0..5 {
        deliveries.push(a.notify(check(n)).await.unwrap());
    }
    assert_eq!(
        deliveries,
        vec![
            Delivery::Sent,
            Delivery::Sent,
            Delivery::RateLimited,
            Delivery::RateLimited,
            Delivery::RateLimited
        ]
    );
    assert_eq!(r.received().len(), 2);
    assert_eq!(
        a.stats()
            .rate_limited
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    // A dropped failure is not recorded as sent: reported again later, it is sent.
    assert!(!a.is_failing(&check(3)));
    assert!(a.is_failing(&check(0)));
    // A minute later (tokio's clock moved, not the wall clock) the bucket has
    // refilled; the next message says what was dropped.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(60)).await;
    tokio::time::resume();
    assert_eq!(a.notify(check(3)).await.unwrap(), Delivery::Sent);
    assert_eq!(
        r.texts().last().map(String::as_str),
        Some(
            ":red_circle: govflow check `check_3` on `dim_sku` is failing: 1 failing row\n\
             _(3 alerts dropped by the rate limit before this one)_"
        )
    );
    assert_eq!(a.notify(check(4)).await.unwrap(), Delivery::Sent);
    assert!(
        !r.texts()[3].contains("dropped"),
        "the count is reported once"
    );
}

#[tokio::test]
async fn slack_ok_false_is_an_error_and_nothing_is_recorded() {
    let (r, addr) = receiver(r#"{"ok":true}"#).await;
    r.script([(200, None, r#"{"ok":false,"error":"channel_not_found"}"#)]);
    let a = alerter(&bot_config(addr, 10), &[]);
    let e = a.notify(check_failing(1)).await.unwrap_err();
    assert!(
        matches!(&e, AlertError::Slack { error } if error == "channel_not_found"),
        "{e}"
    );
    assert!(!e.is_retryable());
    assert_eq!(r.received().len(), 1, "not retried");
    // Not recorded as sent: the next report of the failure tries again.
    assert_eq!(a.notify(check_failing(1)).await.unwrap(), Delivery::Sent);
    assert_eq!(r.received().len(), 2);
}

#[tokio::test]
async fn status_429_honours_retry_after_and_5xx_is_retried() {
    let (r, addr) = receiver(r#"{"ok":true}"#).await;
    r.script([
        (429, Some(("retry-after", "0")), "rate limited"),
        (503, None, "upstream down"),
    ]);
    let a = alerter(&bot_config(addr, 10), &[]);
    assert_eq!(a.notify(check_failing(1)).await.unwrap(), Delivery::Sent);
    assert_eq!(r.received().len(), 3);
    assert_eq!(
        a.stats().retries.load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    let texts = r.texts();
    assert!(
        texts.iter().all(|t| t == &texts[0]),
        "the same message each time"
    );

    // Retries run out: an error naming the attempts, and nothing recorded.
    r.script([
        (500, None, "boom"),
        (500, None, "boom"),
        (500, None, "boom"),
    ]);
    let e = a.notify(Alert::FullRefreshRecovered).await;
    assert_eq!(e.unwrap(), Delivery::NotFailing);
    let e = a
        .notify(Alert::FullRefreshFailed { error: "x".into() })
        .await
        .unwrap_err();
    assert!(
        matches!(e, AlertError::Exhausted { attempts: 3, .. }),
        "{e}"
    );
    assert!(!a.is_failing(&Alert::FullRefreshRecovered));
}

/// Collects everything tracing writes during a test.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The logs of every test of this file from the first call on: one global
/// subscriber (a per-thread one misses events whose callsite another test
/// thread registered first).
fn captured_logs() -> &'static Logs {
    static LOGS: std::sync::OnceLock<Logs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        logs
    })
}

#[tokio::test]
async fn the_token_and_webhook_url_never_appear_in_bodies_errors_or_logs() {
    let logs = captured_logs();

    let (r, addr) = receiver(r#"{"ok":true}"#).await;
    r.script([
        (200, None, r#"{"ok":false,"error":"invalid_auth"}"#),
        (503, None, "no"),
    ]);
    let a = alerter(&bot_config(addr, 10), &[]);
    let mut errors = Vec::new();
    errors.push(a.notify(check_failing(1)).await.unwrap_err().to_string());
    a.notify(Alert::FullRefreshFailed {
        error: format!("dbt said: Authorization: Bearer {TOKEN}"),
    })
    .await
    .unwrap();

    // A webhook that cannot be reached: the error must not quote its URL.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let webhook = AlertsConfig {
        slack: Some(SlackConfig {
            target: SlackTarget::Webhook {
                url: Secret::new(format!(
                    "http://127.0.0.1:{port}/services/T000/B000/WEBHOOKSECRET"
                )),
            },
            max_per_minute: 10,
            timeout: Duration::from_secs(5),
            max_attempts: 2,
        }),
        source_failure_threshold: 1,
    };
    let w = alerter(&webhook, &[]);
    errors.push(w.notify(check_failing(1)).await.unwrap_err().to_string());

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("alert sent"), "{logs}");
    assert!(logs.contains("alert not delivered"), "{logs}");
    for text in errors.iter().chain([&logs]).chain(r.texts().iter()) {
        assert!(!text.contains("SECRETTOKEN"), "{text}");
        assert!(!text.contains("WEBHOOKSECRET"), "{text}");
    }
    assert!(
        r.texts()
            .iter()
            .any(|t| t.ends_with("Authorization: Bearer ***")),
        "{:?}",
        r.texts()
    );
}

#[tokio::test]
async fn a_reloaded_bot_token_is_used_for_the_next_alert_and_redacted() {
    let (r, addr) = receiver(r#"{"ok":true,"channel":"C1","ts":"1.2"}"#).await;
    let a = alerter(&bot_config(addr, 10), &[]);
    assert_eq!(a.notify(check_failing(3)).await.unwrap(), Delivery::Sent);
    // What a SIGHUP does: the run registered the sink's token; a reload replaces it.
    let secrets = govflow::config::LiveSecrets::default();
    let (key, token) = a.slack_secret().expect("a Slack sink");
    assert_eq!(key, "alerts.slack.bot_token");
    secrets.register(key, token);
    let mut reloaded = govflow::settings::Config {
        alerts: bot_config(addr, 10),
        ..govflow::settings::Config::default()
    };
    let Some(SlackConfig {
        target: SlackTarget::BotToken { token, .. },
        ..
    }) = reloaded.alerts.slack.as_mut()
    else {
        panic!("bot token config")
    };
    *token = Secret::new("ROTATED-bot-token-0123456789");
    let shared = Arc::new(a);
    let redacting = shared.clone();
    secrets.on_change(move |values| redacting.redact_also(values));
    assert_eq!(
        secrets.apply(&reloaded.reloadable_secrets()),
        ["alerts.slack.bot_token"]
    );
    // The next alert carries the new token; a text holding it is redacted
    // (a value without the `xoxb-` shape: only the reload taught the redactor).
    let leaky = Alert::SourceFailing {
        source: "bigcommerce".into(),
        consecutive_failures: 3,
        last_error: "refused ROTATED-bot-token-0123456789 here".into(),
    };
    assert_eq!(shared.notify(leaky).await.unwrap(), Delivery::Sent);
    let got = r.received();
    assert_eq!(
        got.last().unwrap().authorization.as_deref(),
        Some("Bearer ROTATED-bot-token-0123456789")
    );
    let text = r.texts().pop().unwrap();
    assert!(!text.contains("ROTATED"), "{text}");
}
