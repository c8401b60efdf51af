//! The status server of a running pipeline over the simulator: `/api/status`
//! tells the committed row counts, `/metrics` the counters and histograms,
//! the probes answer, a token guards everything but the probes, and headless
//! Chromium renders the page (graph and tables with live numbers) and
//! refreshes it; a screenshot is kept under the target directory.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::{self, Next};
use common::*;
use govflow::config::Secret;
use govflow::runtime::{ProgressHandle, RunOptions};
use govflow::settings::Config;
use govflow::sinks::{StateConfig, WarehouseConfig};
use govflow::status::{ServerOptions, StatusReport, Telemetry, router};

const TOKEN: &str = "status-token-123";

/// The Chromium that `./dev.sh test` installs.
fn chromium() -> PathBuf {
    if let Ok(path) = std::env::var("GOVFLOW_CHROMIUM") {
        return PathBuf::from(path);
    }
    for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if std::path::Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!("Chromium is missing: run the tests with ./dev.sh test, which installs it");
}

/// Runs headless Chromium on `url` with `args`; returns its standard output.
fn headless(url: &str, args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_server_of_a_running_pipeline() {
    let options = store(11, 80, 25, 200);
    let sim = start_sim(options.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut bc = config_for(&sim, &options);
    bc.page_size = 100;
    bc.poll_interval = Duration::from_millis(200);
    let config = Config {
        bigcommerce: Some(bc),
        warehouse: WarehouseConfig::Local {
            dir: dir.path().join("warehouse"),
        },
        state: StateConfig {
            dir: dir.path().join("state"),
        },
        ..Config::default()
    };
    let telemetry = Arc::new(Telemetry::new(
        Some(dir.path().join("state")),
        vec!["local warehouse".into()],
    ));
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(govflow::runtime::run(
        config,
        RunOptions {
            workers: 2,
            flush_interval: Duration::from_millis(100),
            telemetry: Some(telemetry.clone()),
            ..RunOptions::default()
        },
        stop_rx,
        ProgressHandle::default(),
    ));

    // The server, with a layer counting the page's refresh requests.
    let refreshes = Arc::new(AtomicU64::new(0));
    let counted = refreshes.clone();
    let app = router(
        telemetry.clone(),
        ServerOptions {
            token: Some(Secret::new(TOKEN)),
            ready_max_lag: Duration::from_secs(60),
        },
    )
    .layer(middleware::from_fn(move |req: Request, next: Next| {
        let counted = counted.clone();
        async move {
            if req.uri().path() == "/status.html" {
                counted.fetch_add(1, Ordering::Relaxed);
            }
            next.run(req).await
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let get = |path: &str, token: Option<&str>| {
        let mut request = http.get(format!("{base}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };

    // Until the first pull is committed the pipeline is not ready.
    let truth = truth(&sim).await;
    let customers = truth.customers.len() as i64;
    let orders = truth.orders.len() as i64;
    let committed = |r: &StatusReport| {
        r.tables
            .iter()
            .any(|t| t.name == "raw_bc_customer" && t.rows == customers)
    };
    let latest: Arc<Mutex<Option<StatusReport>>> = Arc::default();
    let mut ready = false;
    for _ in 0..600 {
        let report: StatusReport = get("/api/status", Some(TOKEN))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let done = committed(&report);
        *latest.lock().unwrap() = Some(report);
        if done {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the store was never committed: {:#?}", latest.lock());

    // /api/status: row counts as committed, the source's figures, the checks.
    let report: StatusReport = get("/api/status", Some(TOKEN))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = |name: &str| {
        report
            .tables
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.rows)
            .unwrap()
    };
    assert_eq!(rows("raw_bc_customer"), customers);
    assert_eq!(rows("dim_customer"), customers);
    assert_eq!(rows("raw_bc_order"), orders);
    assert_eq!(report.tables.len(), dataflows::Table::ALL.len());
    let source = &report.sources[0];
    assert_eq!(source.name, "bigcommerce");
    assert!(source.pulls >= 1 && source.requests >= 7, "{source:?}");
    assert!(source.records as i64 >= customers + orders);
    assert!(
        source.cursors.contains_key("orders") && source.cursors.contains_key("customers"),
        "{source:?}"
    );
    assert!(report.epoch.is_some());
    assert!(
        report
            .graph
            .edges
            .contains(&("bigcommerce".into(), "raw_bc_order".into()))
    );
    assert!(
        report
            .graph
            .edges
            .contains(&("dim_sku".into(), "fct_onsale_product_inventory".into()))
    );
    assert_eq!(report.checks.len(), 2);

    // /metrics: Prometheus text with counters and histograms.
    let metrics = get("/metrics", Some(TOKEN)).await.unwrap();
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let metrics = metrics.text().await.unwrap();
    for needle in [
        "govflow_epochs_total ",
        "govflow_pulls_total{source=\"bigcommerce\"}",
        &format!("govflow_table_rows{{table=\"raw_bc_customer\"}} {customers}"),
        "# TYPE govflow_epoch_duration_seconds histogram",
        "govflow_flush_duration_seconds_bucket{le=",
        "govflow_source_request_duration_seconds_count{source=\"bigcommerce\"}",
    ] {
        assert!(metrics.contains(needle), "{needle} missing in\n{metrics}");
    }

    // Probes need no token; everything else does, and never shows it.
    assert_eq!(get("/healthz", None).await.unwrap().status(), 200);
    let mut ready = false;
    for _ in 0..300 {
        if get("/readyz", None).await.unwrap().status() == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "/readyz never turned ready");
    assert_eq!(get("/api/status", None).await.unwrap().status(), 401);
    assert_eq!(get("/", Some("wrong")).await.unwrap().status(), 401);
    let page = get("/", Some(TOKEN)).await.unwrap().text().await.unwrap();
    assert!(!page.contains(TOKEN));
    assert!(!page.contains(&options.access_token));

    // Headless Chromium: the page renders the graph and the tables with the
    // committed numbers, and its script fetches the live fragment.
    let url = format!("{base}/?token={TOKEN}");
    let dom = tokio::task::spawn_blocking({
        let url = url.clone();
        move || headless(&url, &["--virtual-time-budget=7000", "--dump-dom"])
    })
    .await
    .unwrap();
    assert!(dom.contains("<svg id=\"graph\""), "{dom}");
    assert!(dom.contains("data-name=\"fct_onsale_product_inventory\""));
    assert!(
        dom.contains(&format!("raw_bc_customer · {customers}")),
        "no live row count in the graph: {dom}"
    );
    assert!(dom.contains(&format!(
        "<td>raw_bc_order</td><td class=\"num\">{orders}</td>"
    )));
    assert!(dom.contains("fct_order.status.accepted_values"));
    assert!(
        refreshes.load(Ordering::Relaxed) >= 1,
        "the page never refreshed itself"
    );
    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    tokio::task::spawn_blocking({
        let shot = shot.clone();
        move || {
            headless(
                &url,
                &[
                    "--window-size=1300,1900",
                    "--hide-scrollbars",
                    &format!("--screenshot={}", shot.display()),
                ],
            )
        }
    })
    .await
    .unwrap();
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    eprintln!("screenshot: {}", shot.display());

    stop.send(true).unwrap();
    run.await.unwrap().unwrap();
}
