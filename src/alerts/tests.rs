use super::*;

fn check_failing(count: u64) -> Alert {
    Alert::CheckFailing {
        check: "not_null(email)".into(),
        table: "dim_customer".into(),
        failing_count: count,
        sample_keys: vec!["17".into(), "42".into()],
    }
}

#[test]
fn texts() {
    assert_eq!(
        check_failing(2).text(),
        ":red_circle: govflow check `not_null(email)` on `dim_customer` is failing: 2 failing rows; sample keys: 17, 42"
    );
    let many = Alert::CheckFailing {
        check: "unique".into(),
        table: "fct_order".into(),
        failing_count: 1,
        sample_keys: (1..=7).map(|k| k.to_string()).collect(),
    };
    assert_eq!(
        many.text(),
        ":red_circle: govflow check `unique` on `fct_order` is failing: 1 failing row; sample keys: 1, 2, 3, 4, 5, …"
    );
    assert_eq!(
        Alert::DbtFailed {
            command: "dbt build".into(),
            failed_nodes: vec![],
            summary: "Compilation Error in model mart_x".into()
        }
        .text(),
        ":red_circle: govflow `dbt build` failed: Compilation Error in model mart_x"
    );
    assert_eq!(
        Alert::SourceRecovered {
            source: "bigcommerce".into(),
            failures: 1
        }
        .text(),
        ":large_green_circle: govflow source `bigcommerce` recovered after 1 failure in a row"
    );
    let long = Alert::FullRefreshFailed {
        error: "x".repeat(2000),
    }
    .text();
    assert!(long.chars().count() < 600, "{}", long.len());
    assert!(long.ends_with('…'));
}

#[test]
fn keys_pair_failures_with_recoveries() {
    assert_eq!(
        check_failing(1).key(),
        Alert::CheckRecovered {
            check: "not_null(email)".into(),
            table: "dim_customer".into()
        }
        .key()
    );
    assert_ne!(check_failing(1).fingerprint(), "x");
    assert_eq!(
        check_failing(1).fingerprint(),
        check_failing(9).fingerprint()
    );
    assert!(Alert::FullRefreshRecovered.is_recovery());
    assert!(!check_failing(1).is_recovery());
    let drift = Alert::SchemaIncompatible {
        table: "raw_pg_shop_item".into(),
        change: "qty is text upstream but stays decimal(30,2)".into(),
    };
    let fixed = Alert::SchemaRecovered {
        table: "raw_pg_shop_item".into(),
    };
    assert_eq!(drift.key(), fixed.key());
    assert_eq!(drift.key(), "schema:raw_pg_shop_item");
    assert!(fixed.is_recovery() && !drift.is_recovery());
    assert!(drift.text().contains("`raw_pg_shop_item`") && drift.text().contains("qty"));
    assert_eq!(
        drift.fingerprint(),
        "qty is text upstream but stays decimal(30,2)"
    );
}

#[test]
fn classification() {
    let status = |status| AlertError::Status {
        sink: "slack webhook",
        status,
        body: String::new(),
        retry_after: None,
    };
    assert!(status(429).is_retryable());
    assert!(status(503).is_retryable());
    assert!(!status(404).is_retryable());
    assert!(!status(403).is_retryable());
    let slack = |e: &str| AlertError::Slack { error: e.into() };
    assert!(!slack("invalid_auth").is_retryable());
    assert!(!slack("channel_not_found").is_retryable());
    assert!(slack("ratelimited").is_retryable());
}

#[tokio::test]
async fn without_a_sink_alerts_are_logged_and_still_deduplicated() {
    let alerter = Alerter::new(&AlertsConfig::default(), []).unwrap();
    assert_eq!(
        alerter.notify(check_failing(2)).await.unwrap(),
        Delivery::Logged
    );
    assert_eq!(
        alerter.notify(check_failing(3)).await.unwrap(),
        Delivery::Duplicate
    );
    let recovered = Alert::CheckRecovered {
        check: "not_null(email)".into(),
        table: "dim_customer".into(),
    };
    assert_eq!(
        alerter.notify(recovered.clone()).await.unwrap(),
        Delivery::Logged
    );
    assert_eq!(
        alerter.notify(recovered).await.unwrap(),
        Delivery::NotFailing
    );
}

#[tokio::test]
async fn source_failures_count_against_the_threshold() {
    let config = AlertsConfig {
        slack: None,
        source_failure_threshold: 3,
    };
    let alerter = Alerter::new(&config, []).unwrap();
    assert_eq!(
        alerter
            .source_failed("bigcommerce", "HTTP 503")
            .await
            .unwrap(),
        Delivery::BelowThreshold
    );
    assert_eq!(
        alerter.source_succeeded("bigcommerce").await.unwrap(),
        Delivery::NotFailing
    );
    for _ in 0..2 {
        alerter
            .source_failed("bigcommerce", "HTTP 503")
            .await
            .unwrap();
    }
    assert_eq!(
        alerter
            .source_failed("bigcommerce", "HTTP 503")
            .await
            .unwrap(),
        Delivery::Logged
    );
    assert_eq!(
        alerter
            .source_failed("bigcommerce", "HTTP 503")
            .await
            .unwrap(),
        Delivery::Duplicate
    );
    assert_eq!(
        alerter.source_succeeded("bigcommerce").await.unwrap(),
        Delivery::Logged
    );
}

#[test]
fn the_alerter_can_be_shared_across_tasks() {
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    fn assert_send<T: Send>(_: T) {}
    let alerter = Alerter::new(&AlertsConfig::default(), []).unwrap();
    assert_send_sync(&alerter);
    assert_send(alerter.notify(Alert::FullRefreshRecovered));
    assert_send(alerter.source_failed("s", "e"));
}

#[tokio::test]
async fn failing_keys_survive_a_restart_through_the_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state").join("alerts.json");
    let first = Alerter::new(&AlertsConfig::default(), [])
        .unwrap()
        .with_state_file(&path);
    assert_eq!(
        first.notify(check_failing(2)).await.unwrap(),
        Delivery::Logged
    );
    assert_eq!(first.failing_keys(), ["check:dim_customer:not_null(email)"]);
    drop(first);

    // A new process: the failure is known, so it is not sent again; its recovery is.
    let second = Alerter::new(&AlertsConfig::default(), [])
        .unwrap()
        .with_state_file(&path);
    assert_eq!(
        second.notify(check_failing(3)).await.unwrap(),
        Delivery::Duplicate
    );
    let recovered = Alert::CheckRecovered {
        check: "not_null(email)".into(),
        table: "dim_customer".into(),
    };
    assert_eq!(
        second.notify(recovered.clone()).await.unwrap(),
        Delivery::Logged
    );
    drop(second);

    let third = Alerter::new(&AlertsConfig::default(), [])
        .unwrap()
        .with_state_file(&path);
    assert!(third.failing_keys().is_empty());
    assert_eq!(third.notify(recovered).await.unwrap(), Delivery::NotFailing);

    // A corrupt file is replaced, not fatal.
    std::fs::write(&path, b"{not json").unwrap();
    let fourth = Alerter::new(&AlertsConfig::default(), [])
        .unwrap()
        .with_state_file(&path);
    assert!(fourth.failing_keys().is_empty());
    assert_eq!(
        fourth.notify(check_failing(1)).await.unwrap(),
        Delivery::Logged
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("check:dim_customer:not_null(email)"),
        "{text}"
    );
}
