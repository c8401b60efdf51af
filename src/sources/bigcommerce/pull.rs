//! Walking BigCommerce's lists: keyset walks on `date_modified` for entities
//! that have it, full scans for those that do not.
//!
//! **Why keyset, not page numbers.** Walking `sort=date_modified:asc` by page
//! number skips a record whenever one on an earlier page is modified during the
//! walk (it moves to the end and everything after it shifts back by one). The
//! walk therefore restarts each request at page 1 with `date_modified:min` set
//! to the newest `date_modified` of the previous page (inclusive, so records of
//! that second are read again rather than skipped). Only when a whole page
//! shares one second does it fall back to the next page number within that
//! second. A record of that second modified mid-walk leaves it and may shift an
//! unread one past the walk; such a record is always met again later in the
//! same walk (with its new date), so when that happens the walk's cursor stops
//! at that second and the next poll reads it again, even with no lookback. A record modified during the walk gets a newer
//! `date_modified`, so it is either met later in the same walk or read by the
//! next poll, whose window starts at the cursor minus the lookback.
//!
//! Variants and inventory have no date filter: they are scanned whole on every
//! poll (pages after the first fetched concurrently); unchanged rows cost the
//! dataflow nothing, as upserts of an unchanged value are no change.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use dataflows::records::{Payloads, Upsert};
use dataflows::scalar::Micros;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::client::{Client, Payload};
use super::dead_letter::DeadLetter;
use super::error::BigCommerceError;
use super::wire::{
    self, Page, Record, WireCustomer, WireInventoryItem, WireMetafield, WireOrder, WireOrderItem,
    WireProduct, WireVariant,
};

/// What the source reads, one list endpoint each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    /// `/v3/customers`.
    Customers,
    /// `/v3/customers/metafields`.
    CustomerMetafields,
    /// `/v3/catalog/products?include=variants`.
    Products,
    /// `/v3/catalog/variants` (scanned).
    Variants,
    /// `/v3/inventory/items` (scanned).
    Inventory,
    /// `/v2/orders` with their lines.
    Orders,
    /// `/v2/orders?is_deleted=true`: archived orders.
    ArchivedOrders,
}

impl Entity {
    /// Every entity, in pull order.
    pub const ALL: [Entity; 7] = [
        Entity::Customers,
        Entity::CustomerMetafields,
        Entity::Products,
        Entity::Variants,
        Entity::Inventory,
        Entity::Orders,
        Entity::ArchivedOrders,
    ];

    /// Snake-case name, as in cursors and logs.
    pub fn name(self) -> &'static str {
        match self {
            Entity::Customers => "customers",
            Entity::CustomerMetafields => "customer_metafields",
            Entity::Products => "products",
            Entity::Variants => "variants",
            Entity::Inventory => "inventory",
            Entity::Orders => "orders",
            Entity::ArchivedOrders => "archived_orders",
        }
    }

    /// Whether the entity is read incrementally from a `date_modified` cursor.
    pub fn has_cursor(self) -> bool {
        !matches!(self, Entity::Variants | Entity::Inventory)
    }
}

/// How much to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullMode {
    /// From each cursor minus the lookback (everything for an entity without cursor).
    Incremental,
    /// Everything, ignoring cursors: the basis of a full refresh.
    FullSnapshot,
}

/// The records of one page, handed on as soon as the page is parsed.
#[derive(Debug)]
pub struct Batch {
    /// The entity the page belongs to.
    pub entity: Entity,
    /// Parsed records as upserts.
    pub upserts: Vec<Upsert>,
    /// The JSON texts of their `_payload`s.
    pub payloads: Payloads,
    /// Records that failed to parse.
    pub dead_letters: Vec<DeadLetter>,
    /// When the request for the page started: older than any change the
    /// page may have missed (see `webhooks::Freshness`).
    pub fetched_at: Option<std::time::Instant>,
    /// How many pages the entity's walk is expected to take in all, when the
    /// API tells (V3 `meta.pagination`), for progress and ETA.
    pub expected_pages: Option<u64>,
}

/// The result of walking one entity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntityPull {
    /// The entity.
    pub entity: Entity,
    /// The newest `date_modified` seen (never older than the previous cursor).
    pub cursor: Option<Micros>,
    /// Records delivered (order lines not counted separately).
    pub records: u64,
    /// Records dead-lettered.
    pub dead_letters: u64,
    /// Pages read.
    pub pages: u64,
}

/// Walks one entity, sending a [`Batch`] per page to `out`.
pub(super) async fn walk(
    client: &Client,
    entity: Entity,
    since: Option<Micros>,
    previous_cursor: Option<Micros>,
    page_size: u32,
    concurrency: usize,
    out: &mpsc::Sender<Batch>,
) -> Result<EntityPull, BigCommerceError> {
    let mut pull = EntityPull {
        entity,
        cursor: previous_cursor,
        records: 0,
        dead_letters: 0,
        pages: 0,
    };
    match entity {
        Entity::Customers => {
            let q = Keyset::v3("v3/customers", vec![("sort", "date_modified:asc".into())]);
            keyset(
                client,
                &q,
                since,
                page_size,
                out,
                &mut pull,
                WireCustomer::modified,
                |c, up, texts| up.push(c.into_upsert(texts)),
            )
            .await?
        }
        Entity::CustomerMetafields => {
            let q = Keyset::v3(
                "v3/customers/metafields",
                vec![("sort", "date_modified:asc".into())],
            );
            keyset(
                client,
                &q,
                since,
                page_size,
                out,
                &mut pull,
                WireMetafield::modified,
                |m, up, texts| up.push(m.into_upsert(texts)),
            )
            .await?
        }
        Entity::Products => {
            let q = Keyset::v3(
                "v3/catalog/products",
                vec![
                    ("include", "variants".into()),
                    ("sort", "date_modified".into()),
                    ("direction", "asc".into()),
                ],
            );
            keyset(
                client,
                &q,
                since,
                page_size,
                out,
                &mut pull,
                WireProduct::modified,
                WireProduct::into_upserts,
            )
            .await?
        }
        Entity::Orders | Entity::ArchivedOrders => {
            let mut fixed = vec![
                ("sort", "date_modified:asc".into()),
                ("include", "consignments.line_items".into()),
            ];
            if entity == Entity::ArchivedOrders {
                fixed.push(("is_deleted", "true".into()));
            }
            let q = Keyset {
                path: "v2/orders",
                v2: true,
                date_param: "min_date_modified",
                fixed,
            };
            keyset_orders(client, &q, since, page_size, out, &mut pull).await?
        }
        Entity::Variants => {
            scan(
                client,
                "v3/catalog/variants",
                entity,
                page_size,
                concurrency,
                out,
                &mut pull,
                |v: WireVariant, up, texts| up.push(v.into_upsert(texts)),
            )
            .await?
        }
        Entity::Inventory => {
            scan(
                client,
                "v3/inventory/items",
                entity,
                page_size,
                concurrency,
                out,
                &mut pull,
                |i: WireInventoryItem, up, texts| up.push(i.into_upsert(texts)),
            )
            .await?
        }
    }
    Ok(pull)
}

/// One date-keyed list endpoint.
struct Keyset {
    path: &'static str,
    v2: bool,
    date_param: &'static str,
    fixed: Vec<(&'static str, String)>,
}

impl Keyset {
    fn v3(path: &'static str, fixed: Vec<(&'static str, String)>) -> Self {
        Keyset {
            path,
            v2: false,
            date_param: "date_modified:min",
            fixed,
        }
    }

    fn query(&self, min: Option<Micros>, page: u64, limit: u32) -> Vec<(&'static str, String)> {
        let mut q = self.fixed.clone();
        q.push(("limit", limit.to_string()));
        q.push(("page", page.to_string()));
        if let Some(min) = min {
            q.push((self.date_param, format_date(min, self.v2)));
        }
        q
    }
}

/// The keyset walk, generic over the record type.
#[allow(clippy::too_many_arguments)]
async fn keyset<T: Record>(
    client: &Client,
    list: &Keyset,
    since: Option<Micros>,
    limit: u32,
    out: &mpsc::Sender<Batch>,
    pull: &mut EntityPull,
    modified: fn(&T) -> Micros,
    to_upserts: fn(T, &mut Vec<Upsert>, &mut Payloads),
) -> Result<(), BigCommerceError> {
    let mut min = since;
    let mut page_no = 1;
    let mut walk = Progress::default();
    loop {
        let page: Page<T> =
            fetch(client, list.path, &list.query(min, page_no, limit), list.v2).await?;
        let returned = page.returned;
        let fetched_at = page.fetched_at;
        // Pages read, this one, and what the current query has left after it.
        let expected = page
            .total_pages
            .map(|t| pull.pages + 1 + t.saturating_sub(page_no));
        let keys: Vec<(i64, Micros)> = page.records.iter().map(|r| (r.id(), modified(r))).collect();
        let mut upserts = Vec::with_capacity(page.records.len() * 2);
        let mut payloads = Payloads::with_capacity(page.records.len());
        pull.records += page.records.len() as u64;
        for record in page.records {
            to_upserts(record, &mut upserts, &mut payloads);
        }
        let read = (upserts, payloads);
        deliver(pull, out, read, page.dead_letters, fetched_at, expected).await?;
        walk.saw(&keys);
        if returned < limit as usize {
            pull.cursor = pull.cursor.max(walk.cursor());
            return Ok(());
        }
        (min, page_no) = walk.next(min, page_no, &keys);
    }
}

/// Orders: the keyset walk, plus a fetch of lines for any order served without them.
async fn keyset_orders(
    client: &Client,
    list: &Keyset,
    since: Option<Micros>,
    limit: u32,
    out: &mpsc::Sender<Batch>,
    pull: &mut EntityPull,
) -> Result<(), BigCommerceError> {
    let mut min = since;
    let mut page_no = 1;
    let mut walk = Progress::default();
    loop {
        let page: Page<WireOrder> =
            fetch(client, list.path, &list.query(min, page_no, limit), true).await?;
        let returned = page.returned;
        let fetched_at = page.fetched_at;
        let keys: Vec<(i64, Micros)> = page
            .records
            .iter()
            .map(|o| (o.id(), o.modified()))
            .collect();
        let mut upserts = Vec::with_capacity(page.records.len() * 2);
        let mut payloads = Payloads::with_capacity(page.records.len());
        let mut dead = page.dead_letters;
        pull.records += page.records.len() as u64;
        for order in page.records {
            if !order.has_lines() {
                match order_lines(client, order.id(), limit, &mut payloads).await? {
                    (lines, bad) if bad.is_empty() => {
                        upserts.push(Upsert::OrderItems(order.id(), Some(lines)))
                    }
                    // A bad line would make the order's line set incomplete:
                    // keep the previous lines rather than retract good ones.
                    (_, bad) => dead.extend(bad),
                }
            }
            order.into_upserts(&mut upserts, &mut payloads);
        }
        deliver(pull, out, (upserts, payloads), dead, fetched_at, None).await?;
        walk.saw(&keys);
        if returned < limit as usize {
            pull.cursor = pull.cursor.max(walk.cursor());
            return Ok(());
        }
        (min, page_no) = walk.next(min, page_no, &keys);
    }
}

/// All lines of one order via `/v2/orders/{id}/products` (their JSON texts
/// into `payloads`).
pub(super) async fn order_lines(
    client: &Client,
    order_id: i64,
    limit: u32,
    payloads: &mut Payloads,
) -> Result<
    (
        Vec<dataflows::rows::raw_bc_order_item::RawBcOrderItem>,
        Vec<DeadLetter>,
    ),
    BigCommerceError,
> {
    let path = format!("v2/orders/{order_id}/products");
    let (mut lines, mut dead) = (Vec::new(), Vec::new());
    for page_no in 1.. {
        let q = [("limit", limit.to_string()), ("page", page_no.to_string())];
        let page: Page<WireOrderItem> = fetch(client, &path, &q, true).await?;
        lines.extend(page.records.into_iter().map(|l| l.into_record(payloads)));
        dead.extend(page.dead_letters);
        if page.returned < limit as usize {
            break;
        }
    }
    lines.sort_by_key(|l| l.id);
    Ok((lines, dead))
}

/// What a keyset walk has seen, and so how far its cursor may go.
#[derive(Debug, Default)]
struct Progress {
    /// Newest `date_modified` read.
    newest: Option<Micros>,
    /// Seconds paged through by page number, with the ids read in each.
    groups: Vec<(Micros, HashSet<i64>)>,
    /// The oldest such second in which a record read was modified again during
    /// the walk: its leaving may have shifted an unread record of that second
    /// past the walk, so the cursor stops there.
    floor: Option<Micros>,
}

impl Progress {
    /// Notes a page's `(id, date_modified)` pairs.
    fn saw(&mut self, keys: &[(i64, Micros)]) {
        self.newest = self.newest.max(keys.iter().map(|k| k.1).max());
        for (second, ids) in &mut self.groups {
            for (id, modified) in keys {
                if *modified > *second && ids.contains(id) {
                    self.floor = Some(self.floor.map_or(*second, |f| f.min(*second)));
                } else if *modified == *second {
                    ids.insert(*id);
                }
            }
        }
    }

    /// The cursor this walk earns: everything modified before it has been read.
    fn cursor(&self) -> Option<Micros> {
        match (self.newest, self.floor) {
            (Some(newest), Some(floor)) => Some(newest.min(floor)),
            (newest, _) => newest,
        }
    }

    /// Where the walk goes after a full page whose pairs were `keys`.
    fn next(
        &mut self,
        min: Option<Micros>,
        page_no: u64,
        keys: &[(i64, Micros)],
    ) -> (Option<Micros>, u64) {
        let page_max = keys.iter().map(|k| k.1).max();
        match (page_max, min) {
            // The page reached a newer second: restart from it.
            (Some(max), Some(min)) if max > min => (Some(max), 1),
            (Some(max), None) => (Some(max), 1),
            // A full page within one second (or of bad records only): next page number.
            _ => {
                if let Some(second) = min
                    && !self.groups.iter().any(|(s, _)| *s == second)
                {
                    let ids = keys.iter().filter(|k| k.1 == second).map(|k| k.0).collect();
                    self.groups.push((second, ids));
                }
                (min, page_no + 1)
            }
        }
    }
}

/// Full scan of an endpoint without a date filter, sorted by id.
#[allow(clippy::too_many_arguments)]
async fn scan<T: Record>(
    client: &Client,
    path: &'static str,
    entity: Entity,
    limit: u32,
    concurrency: usize,
    out: &mpsc::Sender<Batch>,
    pull: &mut EntityPull,
    to_upserts: fn(T, &mut Vec<Upsert>, &mut Payloads),
) -> Result<(), BigCommerceError> {
    let query = |page_no: u64| vec![("limit", limit.to_string()), ("page", page_no.to_string())];
    let first: Page<T> = fetch(client, path, &query(1), false).await?;
    let total_pages = first.total_pages.unwrap_or(1);
    let mut last_full = first.returned >= limit as usize;
    emit(pull, out, first, to_upserts).await?;
    // Pages 2..=total are independent: fetch them concurrently, deliver in order.
    let mut rest = futures::stream::iter(2..=total_pages)
        .map(|page_no| {
            let q = query(page_no);
            async move { fetch::<T>(client, path, &q, false).await }
        })
        .buffered(concurrency.max(1));
    while let Some(page) = rest.try_next().await? {
        last_full = page.returned >= limit as usize;
        emit(pull, out, page, to_upserts).await?;
    }
    // Rows added since the first page may spill past the total it announced.
    let mut page_no = total_pages;
    while last_full && total_pages > 1 {
        page_no += 1;
        let page: Page<T> = fetch(client, path, &query(page_no), false).await?;
        last_full = page.returned >= limit as usize;
        emit(pull, out, page, to_upserts).await?;
    }
    tracing::debug!(entity = entity.name(), pages = pull.pages, "scan done");
    Ok(())
}

async fn emit<T>(
    pull: &mut EntityPull,
    out: &mpsc::Sender<Batch>,
    page: Page<T>,
    to_upserts: fn(T, &mut Vec<Upsert>, &mut Payloads),
) -> Result<(), BigCommerceError> {
    let mut upserts = Vec::with_capacity(page.records.len());
    let mut payloads = Payloads::with_capacity(page.records.len());
    pull.records += page.records.len() as u64;
    let fetched_at = page.fetched_at;
    for record in page.records {
        to_upserts(record, &mut upserts, &mut payloads);
    }
    let expected = page.total_pages.map(|t| t.max(pull.pages + 1));
    deliver(
        pull,
        out,
        (upserts, payloads),
        page.dead_letters,
        fetched_at,
        expected,
    )
    .await
}

async fn deliver(
    pull: &mut EntityPull,
    out: &mpsc::Sender<Batch>,
    (upserts, payloads): (Vec<Upsert>, Payloads),
    dead_letters: Vec<DeadLetter>,
    fetched_at: Option<std::time::Instant>,
    expected_pages: Option<u64>,
) -> Result<(), BigCommerceError> {
    pull.pages += 1;
    pull.dead_letters += dead_letters.len() as u64;
    for d in &dead_letters {
        tracing::warn!(entity = d.entity, id = ?d.id, reason = %d.reason, request = %d.request, "dead-lettered record");
    }
    if upserts.is_empty() && dead_letters.is_empty() {
        return Ok(());
    }
    out.send(Batch {
        entity: pull.entity,
        upserts,
        payloads,
        dead_letters,
        fetched_at,
        expected_pages,
    })
    .await
    .map_err(|_| BigCommerceError::ConsumerGone {
        entity: pull.entity.name(),
    })
}

pub(super) async fn fetch<T: Record>(
    client: &Client,
    path: &str,
    query: &[(&str, String)],
    v2: bool,
) -> Result<Page<T>, BigCommerceError> {
    let request = format!("GET {path}");
    let started = std::time::Instant::now();
    let mut page = client
        .get(path, query, |payload: Payload| {
            if v2 {
                wire::parse_v2(payload, &request)
            } else {
                wire::parse_v3(payload, &request)
            }
        })
        .await?;
    page.fetched_at = Some(started);
    Ok(page)
}

/// Formats a filter date: RFC 2822 for V2, ISO 8601 UTC for V3 (whole seconds, rounded down).
pub fn format_date(micros: Micros, v2: bool) -> String {
    let t = DateTime::<Utc>::from_timestamp_micros(micros.div_euclid(1_000_000) * 1_000_000)
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    if v2 {
        t.format("%a, %d %b %Y %H:%M:%S +0000").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_dates() {
        let t = wire::parse_timestamp("2018-01-10T21:05:30Z").unwrap() + 999_999;
        assert_eq!(format_date(t, false), "2018-01-10T21:05:30Z");
        assert_eq!(format_date(t, true), "Wed, 10 Jan 2018 21:05:30 +0000");
    }

    #[test]
    fn keyset_advances_or_pages_within_a_second() {
        let mut w = Progress::default();
        assert_eq!(w.next(None, 1, &[(1, 10)]), (Some(10), 1));
        assert_eq!(w.next(Some(5), 1, &[(1, 6), (2, 10)]), (Some(10), 1));
        // A full page all in second 10: page on by number.
        let group = [(3, 10), (4, 10)];
        w.saw(&group);
        assert_eq!(w.next(Some(10), 1, &group), (Some(10), 2));
        w.saw(&[(5, 10), (6, 12)]);
        assert_eq!(
            w.cursor(),
            Some(12),
            "nothing of second 10 moved: the cursor may pass it"
        );
        // Record 4, read in second 10, shows up modified later in the walk.
        w.saw(&[(4, 15)]);
        assert_eq!(w.cursor(), Some(10));
        assert_eq!(Progress::default().next(None, 1, &[]), (None, 2));
    }
}
