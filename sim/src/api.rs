//! The BigCommerce API routes (`/stores/{store_hash}/v2|v3/...`): faults, rate limit,
//! auth, then the endpoint; every answer is counted in the stats.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::any;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::json;

use super::dates::BareDate;
use super::dates::Ts;
use super::extras;
use super::faults::Decision;
use super::listcache::ListCache;
use super::model::{ListSpec, Order, Sort, Store};
use super::query::{Paging, Params};
use super::ratelimit::RateHeaders;
use super::render::{self, Ctx};
use super::{Shared, lock, read};

mod entities;
pub(crate) use crate::error::ApiError;
use entities::{
    customers, inventory, metafields, order, order_products, orders, product, products, variants,
};

/// Where BigCommerce documents its status codes (the `type` of V3 errors).
const ERROR_TYPE: &str =
    "https://developer.bigcommerce.com/api-docs/getting-started/api-status-codes";

/// The API version of a path, which decides the error shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V2,
    V3,
}

/// A body or a 204.
enum Out {
    Json(Vec<u8>),
    Empty,
}

/// An answer before delays and truncation.
struct Reply {
    status: StatusCode,
    body: Out,
    rate: Option<RateHeaders>,
}

impl ApiError {
    fn status(&self, v: Version) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::BadParam { .. } if v == Version::V2 => StatusCode::BAD_REQUEST,
            ApiError::BadParam { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Server(s) => {
                StatusCode::from_u16(*s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    fn title(&self) -> String {
        match self {
            ApiError::Unauthorized => {
                "Missing or invalid X-Auth-Token header: authentication required".into()
            }
            ApiError::NotFound => "The requested resource was not found.".into(),
            ApiError::BadParam { message, .. } => message.clone(),
            ApiError::TooLarge(m) => m.clone(),
            ApiError::MethodNotAllowed => "Only GET is supported by this simulator.".into(),
            ApiError::TooManyRequests => "You have exceeded your request quota.".into(),
            ApiError::Server(502) => "Bad Gateway".into(),
            ApiError::Server(503) => "Service Unavailable: the store is under maintenance.".into(),
            ApiError::Server(_) => "Internal Server Error".into(),
        }
    }

    /// The V2 (array) or V3 (object) error body.
    fn body(&self, v: Version) -> Vec<u8> {
        let status = self.status(v).as_u16();
        let title = self.title();
        let value = match v {
            Version::V2 => json!([{ "status": status, "message": title }]),
            Version::V3 => {
                let errors = match self {
                    ApiError::BadParam { name, message } => json!({ name.as_str(): message }),
                    ApiError::TooLarge(m) => json!({ "limit": m }),
                    _ => json!({}),
                };
                json!({ "status": status, "title": title, "type": ERROR_TYPE, "errors": errors })
            }
        };
        serde_json::to_vec(&value).unwrap_or_default()
    }

    fn reply(&self, v: Version, rate: Option<RateHeaders>) -> Reply {
        Reply {
            status: self.status(v),
            body: Out::Json(self.body(v)),
            rate,
        }
    }
}

/// The API router (with the 404 fallback for every other path).
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/stores/{*rest}", any(handle))
        .fallback(not_found)
        .with_state(shared)
}

async fn not_found() -> Response {
    let mut resp = Response::new(Body::from(ApiError::NotFound.body(Version::V3)));
    *resp.status_mut() = StatusCode::NOT_FOUND;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn version_of(path: &str) -> Version {
    if path.split('/').nth(3) == Some("v2") {
        Version::V2
    } else {
        Version::V3
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let arrival = Instant::now();
    let since = arrival.duration_since(shared.started).as_millis() as u64;
    lock(&shared.stats).arrive(since);
    let decision = lock(&shared.faults).decide();
    let reply = respond(&shared, &method, &uri, &headers, arrival, &decision);
    if decision.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(decision.delay_ms)).await;
    }
    let status = reply.status;
    lock(&shared.stats).answered(status.as_u16());
    tracing::debug!(%method, path = uri.path(), status = status.as_u16(), "sim api");
    build(reply, decision.truncate)
}

/// Decides the answer: storms, quota, store hash, auth, injected errors, the endpoint.
fn respond(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    arrival: Instant,
    decision: &Decision,
) -> Reply {
    let path = uri.path();
    let v = version_of(path);
    let mut rate = None;
    {
        let mut limiter = lock(&shared.limiter);
        if let Some(reset_ms) = decision.storm_reset_ms {
            let headers = RateHeaders {
                window_ms: limiter
                    .as_ref()
                    .map_or(shared.opts.window.as_millis() as u64, |l| l.window_ms()),
                quota: limiter.as_ref().map_or(0, |l| l.quota()),
                left: 0,
                reset_ms,
            };
            return ApiError::TooManyRequests.reply(v, Some(headers));
        }
        if decision.bare_429 {
            return ApiError::TooManyRequests.reply(v, None);
        }
        if let Some(l) = limiter.as_mut() {
            let (allowed, headers) = l.admit(arrival);
            if !allowed {
                return ApiError::TooManyRequests.reply(v, Some(headers));
            }
            rate = Some(headers);
        }
    }
    let segments: Vec<&str> = path
        .trim_start_matches("/stores/")
        .trim_end_matches('/')
        .split('/')
        .collect();
    if segments.first() != Some(&shared.opts.store_hash.as_str()) {
        return ApiError::NotFound.reply(v, rate);
    }
    let token = headers.get("x-auth-token").and_then(|t| t.to_str().ok());
    if token != Some(shared.opts.access_token.as_str()) {
        return ApiError::Unauthorized.reply(v, rate);
    }
    if let Some(s) = decision.error {
        return ApiError::Server(s).reply(v, rate);
    }
    if method != Method::GET {
        return ApiError::MethodNotAllowed.reply(v, rate);
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map_or_else(|| shared.addr.to_string(), str::to_string);
    let ctx = Ctx {
        seed: shared.opts.seed,
        malformed_rate: decision.malformed_rate,
        v2_base: format!("http://{host}/stores/{}/v2", shared.opts.store_hash),
        truth: false,
        added: Default::default(),
    };
    let params = Params::parse(uri.query());
    let result = {
        let store = read(&shared.store);
        let ctx = Ctx {
            added: store.added_fields.clone(),
            ..ctx
        };
        let mut lister = Lister {
            cache: &shared.list_cache,
            generation: store.generation,
        };
        route(&store, &mut lister, &ctx, &params, &segments[1..])
    };
    match result {
        Ok(Out::Empty) => Reply {
            status: StatusCode::NO_CONTENT,
            body: Out::Empty,
            rate,
        },
        Ok(body) => Reply {
            status: StatusCode::OK,
            body,
            rate,
        },
        Err(e) => e.reply(v, rate),
    }
}

/// Turns a reply into a response: headers, and a body cut half way when `truncate`.
fn build(reply: Reply, truncate: bool) -> Response {
    let ok = reply.status == StatusCode::OK;
    let mut resp = match reply.body {
        Out::Empty => Response::new(Body::empty()),
        Out::Json(bytes) if truncate && ok => {
            let mut whole = Bytes::from(bytes);
            let first = whole.split_to(whole.len() / 2);
            let head = futures::stream::once(async move { Ok::<Bytes, std::io::Error>(first) });
            let cut = futures::stream::once(async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Err(std::io::Error::other("simulated truncated body"))
            });
            Response::new(Body::from_stream(head.chain(cut)))
        }
        Out::Json(bytes) => Response::new(Body::from(bytes)),
    };
    *resp.status_mut() = reply.status;
    let h = resp.headers_mut();
    if reply.status != StatusCode::NO_CONTENT {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    if let Some(rate) = reply.rate {
        for (name, value) in rate.pairs() {
            if let Ok(value) = HeaderValue::from_str(&value) {
                h.insert(name, value);
            }
        }
    }
    resp
}

/// Lists matching ids, through the listing cache when there is a key.
struct Lister<'a> {
    cache: &'a Mutex<ListCache>,
    generation: u64,
}

impl Lister<'_> {
    /// The ids of a listing; `key` (the resolved filters) is `None` for cheap listings
    /// that are not worth caching (an explicit id list).
    fn ids(&mut self, key: Option<String>, compute: impl FnOnce() -> Vec<u64>) -> Arc<Vec<u64>> {
        let Some(key) = key else {
            return Arc::new(compute());
        };
        if let Some(ids) = lock(self.cache).get(&key, self.generation) {
            return ids;
        }
        let ids = Arc::new(compute());
        lock(self.cache).put(key, self.generation, ids.clone());
        ids
    }
}

/// Dispatches on the path after the store hash (`["v3", "customers"]`, ...).
fn route(
    store: &Store,
    lx: &mut Lister<'_>,
    ctx: &Ctx,
    p: &Params,
    seg: &[&str],
) -> Result<Out, ApiError> {
    match seg {
        ["v3", "customers"] => customers(store, lx, ctx, p),
        ["v3", "customers", "metafields"] => metafields(store, lx, ctx, p, None),
        ["v3", "customers", id, "metafields"] => {
            let id = path_id(id)?;
            if store.customers.get(id).is_none() {
                return Err(ApiError::NotFound);
            }
            metafields(store, lx, ctx, p, Some(id))
        }
        ["v3", "catalog", "products"] => products(store, lx, ctx, p),
        ["v3", "catalog", "products", id] => product(store, ctx, p, path_id(id)?),
        ["v3", "catalog", "variants"] => variants(store, lx, ctx, p),
        ["v3", "inventory", "items"] => inventory(store, lx, ctx, p),
        ["v2", "orders"] => orders(store, lx, ctx, p),
        ["v2", "orders", id] => order(store, ctx, p, path_id(id)?),
        ["v2", "orders", id, "products"] => order_products(store, ctx, p, path_id(id)?),
        ["v3", "catalog", "brands"] => {
            let ids: Vec<u64> = store.extras.brands.keys().copied().collect();
            v3_page(p, &ids, |buf, id| {
                if let Some(b) = store.extras.brands.get(&id) {
                    let _ = serde_json::to_writer(&mut *buf, &extras::brand_json(b));
                }
            })
        }
        ["v2", "coupons"] => {
            let lo = p.u64("min_id")?.unwrap_or(0);
            let hi = p.u64("max_id")?.unwrap_or(u64::MAX);
            let ids: Vec<u64> = store
                .extras
                .coupons
                .range(lo..=hi)
                .map(|(id, _)| *id)
                .collect();
            v2_page(p, &ids, |buf, id| {
                if let Some(c) = store.extras.coupons.get(&id) {
                    let _ = serde_json::to_writer(&mut *buf, &extras::coupon_json(c));
                }
            })
        }
        _ => Err(ApiError::NotFound),
    }
}

fn path_id(s: &str) -> Result<u64, ApiError> {
    s.parse().map_err(|_| ApiError::NotFound)
}

fn bad(name: &str, message: String) -> ApiError {
    ApiError::BadParam {
        name: name.to_string(),
        message,
    }
}

/// A V3 list page: `{"data": [...], "meta": {"pagination": ...}}`.
fn v3_page(p: &Params, ids: &[u64], write: impl FnMut(&mut Vec<u8>, u64)) -> Result<Out, ApiError> {
    let paging = p.paging()?;
    let range = paging.range(ids.len());
    v3_render(p, paging, &ids[range], ids.len(), write)
}

/// A V3 list page of ids already cut to the page, out of `total` matches.
fn v3_render(
    p: &Params,
    paging: Paging,
    page: &[u64],
    total: usize,
    mut write: impl FnMut(&mut Vec<u8>, u64),
) -> Result<Out, ApiError> {
    let ids_len = total;
    let mut buf = Vec::with_capacity(64 + page.len() * 512);
    buf.extend_from_slice(b"{\"data\":[");
    for (i, id) in page.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        write(&mut buf, *id);
    }
    buf.extend_from_slice(b"],\"meta\":");
    let meta = pagination(p, paging, ids_len, page.len());
    let _ = serde_json::to_writer(&mut buf, &meta);
    buf.push(b'}');
    Ok(Out::Json(buf))
}

fn pagination(p: &Params, paging: Paging, total: usize, count: usize) -> serde_json::Value {
    let total_pages = total.div_ceil(paging.limit);
    let mut links = serde_json::Map::new();
    if paging.page > 1 {
        links.insert(
            "previous".into(),
            p.link(paging.page - 1, paging.limit).into(),
        );
    }
    links.insert("current".into(), p.link(paging.page, paging.limit).into());
    if paging.page < total_pages {
        links.insert("next".into(), p.link(paging.page + 1, paging.limit).into());
    }
    json!({ "pagination": {
        "total": total,
        "count": count,
        "per_page": paging.limit,
        "current_page": paging.page,
        "total_pages": total_pages,
        "links": links,
    }})
}

/// A V2 list page: a bare array, or 204 when the page is empty.
fn v2_page(p: &Params, ids: &[u64], write: impl FnMut(&mut Vec<u8>, u64)) -> Result<Out, ApiError> {
    let paging = p.paging()?;
    v2_render(&ids[paging.range(ids.len())], write)
}

/// A V2 list page of ids already cut to the page.
fn v2_render(page: &[u64], mut write: impl FnMut(&mut Vec<u8>, u64)) -> Result<Out, ApiError> {
    if page.is_empty() {
        return Ok(Out::Empty);
    }
    let mut buf = Vec::with_capacity(2 + page.len() * 1024);
    buf.push(b'[');
    for (i, id) in page.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        write(&mut buf, *id);
    }
    buf.push(b']');
    Ok(Out::Json(buf))
}

/// What V3 listings share: `date_modified:min`/`:max` and `sort`, over `ids`
/// when given.
fn v3_spec<'a>(p: &Params, ids: Option<&'a BTreeSet<u64>>) -> Result<ListSpec<'a>, ApiError> {
    let modified = p.date_range(
        "date_modified:min",
        "date_modified:max",
        BareDate::Midnight,
        false,
    )?;
    let (sort, desc) = sort_param(p)?;
    Ok(ListSpec {
        ids,
        modified,
        sort,
        desc,
    })
}

/// `sort=field[:asc|:desc]`, read alike on V2 and V3 (default `id`, ascending).
fn sort_param(p: &Params) -> Result<(Sort, bool), ApiError> {
    let Some(s) = p.get("sort") else {
        return Ok((Sort::Id, false));
    };
    let (field, dir) = s.split_once(':').unwrap_or((s, "asc"));
    let sort = match field {
        "id" => Sort::Id,
        "date_modified" => Sort::Modified,
        "date_created" => Sort::Created,
        _ => {
            return Err(bad(
                "sort",
                format!(
                    "sort must be id, date_created or date_modified with :asc or :desc, got {s:?}"
                ),
            ));
        }
    };
    let desc = match dir {
        "asc" => false,
        "desc" => true,
        _ => {
            return Err(bad(
                "sort",
                format!("sort direction must be asc or desc, got {s:?}"),
            ));
        }
    };
    Ok((sort, desc))
}
