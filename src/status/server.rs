//! The HTTP server of a run: `/` (the page), `/status.html` (its refreshing
//! part), `/api/status` (JSON), `/metrics` (Prometheus), `/healthz` and
//! `/readyz`. With a token, everything but the two probes needs
//! `Authorization: Bearer <token>` (or `?token=<token>`, for a browser).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use tokio::sync::watch;

use super::{StatusReport, Telemetry, render_page, render_status};
use crate::config::Secret;

/// How the server behaves.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// The bearer token every request but the probes needs, if any.
    pub token: Option<Secret>,
    /// `/readyz` fails when a source's last committed pull is older than this.
    pub ready_max_lag: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            token: None,
            ready_max_lag: Duration::from_secs(300),
        }
    }
}

#[derive(Clone)]
struct AppState {
    telemetry: Arc<Telemetry>,
    options: ServerOptions,
}

/// The routes, over `telemetry`.
pub fn router(telemetry: Arc<Telemetry>, options: ServerOptions) -> Router {
    let state = AppState { telemetry, options };
    let guarded = Router::new()
        .route("/", get(page))
        .route("/status.html", get(fragment))
        .route("/api/status", get(api_status))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(guarded)
        .with_state(state)
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

async fn authorize(
    State(state): State<AppState>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = &state.options.token else {
        return next.run(request).await;
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let given = bearer.or(query.token.as_deref());
    if given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.expose().as_bytes())) {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a bearer token is required\n",
        )
            .into_response()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn page(State(state): State<AppState>) -> Html<String> {
    Html(render_page(&state.telemetry.report()))
}

async fn fragment(State(state): State<AppState>) -> Html<String> {
    Html(render_status(&state.telemetry.report()))
}

async fn api_status(State(state): State<AppState>) -> Json<StatusReport> {
    Json(state.telemetry.report())
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.telemetry.encode_metrics(),
    )
        .into_response()
}

/// Ready when every source has a pull committed within `ready_max_lag` and
/// its last pull did not fail.
async fn readyz(State(state): State<AppState>) -> Response {
    let report = state.telemetry.report();
    let max = state.options.ready_max_lag.as_secs_f64();
    let mut problems = Vec::new();
    if report.sources.is_empty() {
        problems.push("no source yet".to_string());
    }
    for s in &report.sources {
        match s.lag_seconds {
            None => problems.push(format!("{}: no pull committed yet", s.name)),
            Some(lag) if lag > max => problems.push(format!(
                "{}: last pull committed {lag:.0} s ago (over {max:.0} s)",
                s.name
            )),
            _ => {}
        }
        if s.consecutive_failures > 0 {
            problems.push(format!(
                "{}: {} failed pulls in a row",
                s.name, s.consecutive_failures
            ));
        }
    }
    let body = serde_json::json!({ "ready": problems.is_empty(), "problems": problems });
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// A running server.
#[derive(Debug)]
pub struct StatusServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl StatusServer {
    /// Binds `addr` and serves until `stop` turns true.
    pub async fn start(
        addr: SocketAddr,
        telemetry: Arc<Telemetry>,
        options: ServerOptions,
        mut stop: watch::Receiver<bool>,
    ) -> std::io::Result<StatusServer> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = router(telemetry, options);
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::warn!(error = %e, "the status server stopped");
            }
        });
        tracing::info!(%addr, "status page at http://{addr}/");
        Ok(StatusServer { addr, task })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits for the server to end (after stop).
    pub async fn join(self) {
        let _ = self.task.await;
    }
}
