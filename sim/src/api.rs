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

/// Where BigCommerce documents its status codes (the `type` of V3 errors).
const ERROR_TYPE: &str =
    "https://developer.bigcommerce.com/api-docs/getting-started/api-status-codes";

/// Why a request fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ApiError {
    /// No or a wrong `X-Auth-Token`.
    Unauthorized,
    /// Unknown store hash, path or id.
    NotFound,
    /// A filter or paging value that cannot be read (400 on V2, 422 on V3).
    BadParam {
        /// The parameter.
        name: String,
        /// What is wrong with it.
        message: String,
    },
    /// `limit` above 250 (413).
    TooLarge(String),
    /// Not a GET.
    MethodNotAllowed,
    /// Over the quota (429).
    TooManyRequests,
    /// An injected server error (500/502/503).
    Server(u16),
}

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

/// `sort=field:asc|desc` of customers and metafields.
fn v3_sort(p: &Params) -> Result<(Sort, bool), ApiError> {
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

fn lowercase_set(list: Option<Vec<String>>) -> Option<BTreeSet<String>> {
    list.map(|l| l.into_iter().map(|s| s.to_lowercase()).collect())
}

fn customers(store: &Store, lx: &mut Lister<'_>, ctx: &Ctx, p: &Params) -> Result<Out, ApiError> {
    let ids = p.ids("id:in")?;
    let groups = p.ids("customer_group_id:in")?;
    let emails = lowercase_set(p.strings("email:in"));
    let (clo, chi) = p.date_range(
        "date_created:min",
        "date_created:max",
        BareDate::Midnight,
        false,
    )?;
    let modified = p.date_range(
        "date_modified:min",
        "date_modified:max",
        BareDate::Midnight,
        false,
    )?;
    let (sort, desc) = v3_sort(p)?;
    let spec = ListSpec {
        ids: ids.as_ref(),
        modified,
        sort,
        desc,
    };
    let render_one = |buf: &mut Vec<u8>, id: u64| {
        if let Some(c) = store.customers.get(id) {
            render::customer(buf, ctx, c);
        }
    };
    if sort == Sort::Modified
        && !desc
        && ids.is_none()
        && groups.is_none()
        && emails.is_none()
        && (clo, chi) == (Ts::MIN, Ts::MAX)
    {
        // The keyset walk of a sync client: page straight off the date index.
        let paging = p.paging()?;
        let skip = paging.range(usize::MAX).start;
        let (page, total) = store
            .customers
            .modified_page(modified, None, skip, paging.limit, true);
        return v3_render(p, paging, &page, total, render_one);
    }
    let key = ids.is_none().then(|| {
        format!("customers|{groups:?}|{emails:?}|{clo}|{chi}|{modified:?}|{sort:?}|{desc}")
    });
    let list = lx.ids(key, || {
        store.customers.list(&spec, |c| {
            c.date_created >= clo
                && c.date_created <= chi
                && emails
                    .as_ref()
                    .is_none_or(|e| e.contains(&c.email.to_lowercase()))
                && groups
                    .as_ref()
                    .is_none_or(|g| g.contains(&(c.customer_group_id as u64)))
        })
    });
    v3_page(p, &list, render_one)
}

fn metafields(
    store: &Store,
    lx: &mut Lister<'_>,
    ctx: &Ctx,
    p: &Params,
    customer: Option<u64>,
) -> Result<Out, ApiError> {
    let mut ids = p.ids("id:in")?;
    if let Some(c) = customer {
        let own: BTreeSet<u64> = store.metafields_of(c).into_iter().collect();
        ids = Some(match ids {
            Some(wanted) => own.intersection(&wanted).copied().collect(),
            None => own,
        });
    }
    let resources = p.ids("resource_id:in")?;
    let namespaces = join(p.strings("namespace"), p.strings("namespace:in"));
    let keys = join(p.strings("key"), p.strings("key:in"));
    let modified = p.date_range(
        "date_modified:min",
        "date_modified:max",
        BareDate::Midnight,
        false,
    )?;
    let (sort, desc) = v3_sort(p)?;
    let spec = ListSpec {
        ids: ids.as_ref(),
        modified,
        sort,
        desc,
    };
    let key = ids.is_none().then(|| {
        format!("metafields|{resources:?}|{namespaces:?}|{keys:?}|{modified:?}|{sort:?}|{desc}")
    });
    let list = lx.ids(key, || {
        store.metafields.list(&spec, |m| {
            resources
                .as_ref()
                .is_none_or(|r| r.contains(&m.resource_id))
                && namespaces.as_ref().is_none_or(|n| n.contains(&m.namespace))
                && keys.as_ref().is_none_or(|k| k.contains(&m.key))
        })
    });
    v3_page(p, &list, |buf, id| {
        if let Some(m) = store.metafields.get(id) {
            render::metafield(buf, ctx, m);
        }
    })
}

fn join(a: Option<Vec<String>>, b: Option<Vec<String>>) -> Option<BTreeSet<String>> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.into_iter().chain(b).flatten().collect()),
    }
}

fn products(store: &Store, lx: &mut Lister<'_>, ctx: &Ctx, p: &Params) -> Result<Out, ApiError> {
    let ids = p.ids("id:in")?;
    let id_min = p.u64("id:min")?.unwrap_or(0);
    let id_max = p.u64("id:max")?.unwrap_or(u64::MAX);
    let modified = p.date_range(
        "date_modified:min",
        "date_modified:max",
        BareDate::NowTimeOfDay,
        false,
    )?;
    let sort = match p.get("sort") {
        None | Some("id") => Sort::Id,
        Some("date_modified") => Sort::Modified,
        Some(s) => {
            return Err(bad(
                "sort",
                format!("sort must be id or date_modified, got {s:?}"),
            ));
        }
    };
    let desc = match p.get("direction") {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(d) => {
            return Err(bad(
                "direction",
                format!("direction must be asc or desc, got {d:?}"),
            ));
        }
    };
    let with_variants = p.includes("variants");
    let spec = ListSpec {
        ids: ids.as_ref(),
        modified,
        sort,
        desc,
    };
    let key = ids
        .is_none()
        .then(|| format!("products|{id_min}|{id_max}|{modified:?}|{sort:?}|{desc}"));
    let list = lx.ids(key, || {
        store
            .products
            .list(&spec, |x| x.id >= id_min && x.id <= id_max)
    });
    v3_page(p, &list, |buf, id| {
        if let Some(x) = store.products.get(id) {
            render::product(buf, ctx, store, x, with_variants);
        }
    })
}

fn product(store: &Store, ctx: &Ctx, p: &Params, id: u64) -> Result<Out, ApiError> {
    let x = store.products.get(id).ok_or(ApiError::NotFound)?;
    let mut buf = Vec::with_capacity(2048);
    buf.extend_from_slice(b"{\"data\":");
    render::product(&mut buf, ctx, store, x, p.includes("variants"));
    buf.extend_from_slice(b",\"meta\":{}}");
    Ok(Out::Json(buf))
}

/// Variant ids matching `id:in`/`variant_id:in`, `product_id:in` and `sku:in`, by id.
/// The variants a listing serves; `inventory` leaves out those without an
/// inventory item (dirty data).
fn variant_ids(
    store: &Store,
    lx: &mut Lister<'_>,
    p: &Params,
    id_param: &str,
    inventory: bool,
) -> Result<Arc<Vec<u64>>, ApiError> {
    let ids = p.ids(id_param)?;
    let products = p.ids("product_id:in")?;
    let skus: Option<BTreeSet<String>> = p.strings("sku:in").map(|l| l.into_iter().collect());
    let key = (ids.is_none() && products.is_none() && skus.is_none())
        .then(|| if inventory { "inventory" } else { "variants" }.to_string());
    let keep = |v: &super::model::Variant| {
        (!inventory || v.inventory != super::model::InventoryRow::Missing)
            && products.as_ref().is_none_or(|s| s.contains(&v.product_id))
            && skus.as_ref().is_none_or(|s| s.contains(&v.sku))
    };
    Ok(lx.ids(key, || match (&ids, &products) {
        (Some(ids), _) => ids
            .iter()
            .filter(|id| store.variants.get(id).is_some_and(keep))
            .copied()
            .collect(),
        (None, Some(products)) => products
            .iter()
            .filter_map(|id| store.products.get(*id))
            .flat_map(|x| x.variants.iter())
            .filter(|id| store.variants.get(id).is_some_and(keep))
            .copied()
            .collect::<BTreeSet<u64>>()
            .into_iter()
            .collect(),
        (None, None) => store
            .variants
            .values()
            .chain(store.orphan_inventory.values().filter(|_| inventory))
            .filter(|v| keep(v))
            .map(|v| v.id)
            .collect(),
    }))
}

fn variants(store: &Store, lx: &mut Lister<'_>, ctx: &Ctx, p: &Params) -> Result<Out, ApiError> {
    let list = variant_ids(store, lx, p, "id:in", false)?;
    v3_page(p, &list, |buf, id| {
        if let Some(v) = store.variants.get(&id) {
            render::variant(buf, ctx, store, v);
        }
    })
}

fn inventory(store: &Store, lx: &mut Lister<'_>, ctx: &Ctx, p: &Params) -> Result<Out, ApiError> {
    let list = variant_ids(store, lx, p, "variant_id:in", true)?;
    v3_page(p, &list, |buf, id| {
        if let Some(v) = store.variants.get(&id).or(store.orphan_inventory.get(&id)) {
            render::inventory_item(buf, ctx, v);
        }
    })
}

/// `sort=id|date_created|date_modified[:asc|desc]` of V2 orders.
fn v2_sort(p: &Params) -> Result<(Sort, bool), ApiError> {
    let Some(s) = p.get("sort") else {
        return Ok((Sort::Id, false));
    };
    let (field, dir) = s.split_once(':').unwrap_or((s, "asc"));
    let sort = match field {
        "id" => Sort::Id,
        "date_created" => Sort::Created,
        "date_modified" => Sort::Modified,
        _ => {
            return Err(bad(
                "sort",
                format!(
                    "sort must be id, date_created or date_modified (with :asc or :desc), got {s:?}"
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

fn orders(store: &Store, lx: &mut Lister<'_>, ctx: &Ctx, p: &Params) -> Result<Out, ApiError> {
    let min_id = p.u64("min_id")?.unwrap_or(0);
    let max_id = p.u64("max_id")?.unwrap_or(u64::MAX);
    let customer = p.u64("customer_id")?;
    let status = p.u64("status_id")?;
    let (clo, chi) = p.date_range(
        "min_date_created",
        "max_date_created",
        BareDate::Midnight,
        true,
    )?;
    let modified = p.date_range(
        "min_date_modified",
        "max_date_modified",
        BareDate::Midnight,
        true,
    )?;
    let archived = p.bool("is_deleted")?.unwrap_or(false);
    let (sort, desc) = v2_sort(p)?;
    let with_consignments = p.includes("consignments.line_items") || p.includes("consignments");
    let spec = ListSpec {
        ids: None,
        modified,
        sort,
        desc,
    };
    let matches = |o: &Order| {
        o.is_deleted == archived
            && o.id >= min_id
            && o.id <= max_id
            && o.date_created >= clo
            && o.date_created <= chi
            && customer.is_none_or(|c| o.customer_id == c)
            && status.is_none_or(|s| o.status_id as u64 == s)
    };
    let render_one = |buf: &mut Vec<u8>, id: u64| {
        if let Some(o) = store.orders.get(id) {
            render::order(buf, ctx, o, with_consignments);
        }
    };
    if sort == Sort::Modified && !desc {
        // The keyset walk of a sync client: V2 has no total, so stop at the page.
        let paging = p.paging()?;
        let skip = paging.range(usize::MAX).start;
        let (page, _) =
            store
                .orders
                .modified_page(modified, Some(&matches), skip, paging.limit, false);
        return v2_render(&page, render_one);
    }
    let key = format!(
        "orders|{min_id}|{max_id}|{customer:?}|{status:?}|{clo}|{chi}|{modified:?}|{archived}|{sort:?}|{desc}"
    );
    let list = lx.ids(Some(key), || store.orders.list(&spec, matches));
    v2_page(p, &list, render_one)
}

fn order(store: &Store, ctx: &Ctx, p: &Params, id: u64) -> Result<Out, ApiError> {
    let o = store.orders.get(id).ok_or(ApiError::NotFound)?;
    let mut buf = Vec::with_capacity(2048);
    let with_consignments = p.includes("consignments.line_items") || p.includes("consignments");
    render::order(&mut buf, ctx, o, with_consignments);
    Ok(Out::Json(buf))
}

fn order_products(store: &Store, ctx: &Ctx, p: &Params, id: u64) -> Result<Out, ApiError> {
    let o = store.orders.get(id).ok_or(ApiError::NotFound)?;
    let idx: Vec<u64> = (0..o.items.len() as u64).collect();
    v2_page(p, &idx, |buf, i| {
        if let Some(it) = o.items.get(i as usize) {
            render::order_item(buf, ctx, it);
        }
    })
}
