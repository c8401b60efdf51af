//! The control API (`/_sim/*`): JSON, no auth, never rate-limited, not in the stats.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::faults::FaultSettings;
use super::render::{self, Ctx};
use super::webhooks::WebhookRequest;
use super::{MutateRequest, Shared, SimError, lock, read};

/// Chunk size of the streamed truth.
const TRUTH_CHUNK: usize = 64 * 1024;

/// The `/_sim` router.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_sim/mutate", post(mutate))
        .route("/_sim/faults", post(set_faults).get(get_faults))
        .route("/_sim/truth", get(truth))
        .route("/_sim/stats", get(stats))
        .route("/_sim/webhooks", post(set_webhooks))
        .route("/_sim/fields", post(add_fields))
        .with_state(shared)
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut resp = Response::new(Body::from(serde_json::to_vec(body).unwrap_or_default()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A 422 naming the field at fault.
fn unprocessable(field: &str, message: &str) -> Response {
    json_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        &json!({ "status": 422, "title": message, "errors": { field: message } }),
    )
}

/// Parses a JSON body (an empty body reads as `{}`).
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, Box<Response>> {
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(text)
        .map_err(|e| Box::new(unprocessable("body", &format!("invalid JSON body: {e}"))))
}

async fn mutate(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let req: MutateRequest = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    match shared.mutate(&req) {
        Ok(report) => json_response(StatusCode::OK, &json!(report)),
        Err(e @ (SimError::UnknownKind(_) | SimError::NoKinds)) => {
            unprocessable("kinds", &e.to_string())
        }
        Err(e) => unprocessable("body", &e.to_string()),
    }
}

/// `POST /_sim/fields`: a newer API release adds fields to an entity.
#[derive(serde::Deserialize)]
struct AddFields {
    /// `customer`, `customer_metafield`, `product`, `variant`,
    /// `inventory_item` or `order`.
    entity: String,
    /// The fields and their value on every record.
    fields: serde_json::Map<String, serde_json::Value>,
}

async fn add_fields(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    use super::render::entity;
    let req: AddFields = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let known = [
        entity::CUSTOMER,
        entity::METAFIELD,
        entity::PRODUCT,
        entity::VARIANT,
        entity::INVENTORY,
        entity::ORDER,
    ];
    if !known.contains(&req.entity.as_str()) {
        let message = format!(
            "unknown entity {:?}; one of {}",
            req.entity,
            known.join(", ")
        );
        return unprocessable("entity", &message);
    }
    let mut store = super::write(&shared.store);
    store
        .added_fields
        .entry(req.entity)
        .or_default()
        .extend(req.fields);
    // Cached listings were rendered without the fields.
    store.generation += 1;
    json_response(StatusCode::OK, &json!(store.added_fields))
}

async fn set_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let settings: FaultSettings = match parse(&body) {
        Ok(s) => s,
        Err(resp) => return *resp,
    };
    if let Err((field, message)) = settings.validate() {
        return unprocessable(&field, &message);
    }
    let mut faults = lock(&shared.faults);
    faults.set(settings);
    json_response(StatusCode::OK, &json!(faults.current()))
}

async fn get_faults(State(shared): State<Arc<Shared>>) -> Response {
    let current = lock(&shared.faults).current();
    json_response(StatusCode::OK, &json!(current))
}

async fn truth(State(shared): State<Arc<Shared>>) -> Response {
    let ctx = Ctx {
        seed: shared.opts.seed,
        malformed_rate: 0.0,
        v2_base: format!("/stores/{}/v2", shared.opts.store_hash),
        truth: true,
        added: read(&shared.store).added_fields.clone(),
    };
    let all = {
        let store = read(&shared.store);
        render::truth(&store, &ctx)
    };
    let mut all = Bytes::from(all);
    let mut chunks = Vec::with_capacity(all.len() / TRUTH_CHUNK + 1);
    while !all.is_empty() {
        chunks.push(Ok::<Bytes, std::io::Error>(
            all.split_to(TRUTH_CHUNK.min(all.len())),
        ));
    }
    let mut resp = Response::new(Body::from_stream(futures::stream::iter(chunks)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    resp
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    let body = {
        let stats = lock(&shared.stats);
        serde_json::to_vec(&*stats).unwrap_or_default()
    };
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

async fn set_webhooks(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let req: WebhookRequest = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    match shared.webhooks.configure(req) {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err((field, message)) => unprocessable(&field, &message),
    }
}
