//! A Slack incoming-webhook stand-in on a free loopback port: it records the
//! text of every message posted to `/hook`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::routing::post;

/// The texts received so far.
#[derive(Clone, Default)]
pub struct Slack(Arc<Mutex<Vec<String>>>);

impl Slack {
    /// Every text received, in order.
    pub fn texts(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// How many received texts contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.texts().iter().filter(|t| t.contains(needle)).count()
    }
}

/// Starts the stand-in; its webhook URL is `http://{addr}/hook`.
pub async fn slack() -> (Slack, SocketAddr) {
    async fn record(State(s): State<Slack>, body: String) -> &'static str {
        let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let text = body["text"].as_str().unwrap_or_default().to_string();
        s.0.lock().unwrap().push(text);
        "ok"
    }
    let s = Slack::default();
    let app = Router::new()
        .route("/hook", post(record))
        .with_state(s.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (s, addr)
}
