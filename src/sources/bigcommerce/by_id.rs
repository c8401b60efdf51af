//! Reads by id: the entity a webhook names, fetched on its own.

use dataflows::records::{Payloads, Upsert};

use super::client::Client;
use super::dead_letter::DeadLetter;
use super::error::BigCommerceError;
use super::pull::{fetch, order_lines};
use super::wire::{
    Page, Record, WireCustomer, WireInventoryItem, WireMetafield, WireOrder, WireProduct,
    WireVariant,
};

/// One entity a webhook names, to read by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// A variant (`store/sku/*`): the variant and its inventory.
    Variant(i64),
    /// A product (`store/product/*`): the product, its variants and their inventory.
    Product(i64),
    /// A customer (`store/customer/*`).
    Customer(i64),
    /// A customer metafield (`store/metafield/*`).
    Metafield(i64),
    /// An order (`store/order/*`) with its lines.
    Order(i64),
}

/// What [`fetch_by_id`] read: upserts with their payload texts, dead
/// letters, and when the first request started.
pub type ReadById = (Vec<Upsert>, Payloads, Vec<DeadLetter>, std::time::Instant);

/// Reads one entity by id, as upserts (nothing when it is gone: deletes are
/// left to the full refresh).
pub(super) async fn fetch_by_id(
    client: &Client,
    target: Target,
    limit: u32,
) -> Result<ReadById, BigCommerceError> {
    let started = std::time::Instant::now();
    let mut upserts = Vec::new();
    let mut texts = Payloads::default();
    let mut dead = Vec::new();
    let id = |id: i64| id.to_string();
    match target {
        Target::Variant(v) => {
            let q = [("id:in", id(v))];
            let page: Page<WireVariant> = fetch(client, "v3/catalog/variants", &q, false).await?;
            upserts.extend(page.records.into_iter().map(|r| r.into_upsert(&mut texts)));
            dead.extend(page.dead_letters);
            let q = [("variant_id:in", id(v))];
            let page: Page<WireInventoryItem> =
                fetch(client, "v3/inventory/items", &q, false).await?;
            upserts.extend(page.records.into_iter().map(|r| r.into_upsert(&mut texts)));
            dead.extend(page.dead_letters);
        }
        Target::Product(p) => {
            let q = [("id:in", id(p)), ("include", "variants".to_string())];
            let page: Page<WireProduct> = fetch(client, "v3/catalog/products", &q, false).await?;
            for product in page.records {
                product.into_upserts(&mut upserts, &mut texts);
            }
            dead.extend(page.dead_letters);
            for page_no in 1.. {
                let q = [
                    ("product_id:in", id(p)),
                    ("limit", limit.to_string()),
                    ("page", page_no.to_string()),
                ];
                let page: Page<WireInventoryItem> =
                    fetch(client, "v3/inventory/items", &q, false).await?;
                let full = page.returned >= limit as usize;
                upserts.extend(page.records.into_iter().map(|r| r.into_upsert(&mut texts)));
                dead.extend(page.dead_letters);
                if !full {
                    break;
                }
            }
        }
        Target::Customer(c) => {
            let q = [("id:in", id(c))];
            let page: Page<WireCustomer> = fetch(client, "v3/customers", &q, false).await?;
            upserts.extend(page.records.into_iter().map(|r| r.into_upsert(&mut texts)));
            dead.extend(page.dead_letters);
        }
        Target::Metafield(m) => {
            let q = [("id:in", id(m))];
            let page: Page<WireMetafield> =
                fetch(client, "v3/customers/metafields", &q, false).await?;
            upserts.extend(page.records.into_iter().map(|r| r.into_upsert(&mut texts)));
            dead.extend(page.dead_letters);
        }
        Target::Order(o) => {
            let q = [
                ("min_id", id(o)),
                ("max_id", id(o)),
                ("include", "consignments.line_items".to_string()),
            ];
            let page: Page<WireOrder> = fetch(client, "v2/orders", &q, true).await?;
            dead.extend(page.dead_letters);
            for order in page.records {
                if !order.has_lines() {
                    match order_lines(client, order.id(), limit, &mut texts).await? {
                        (lines, bad) if bad.is_empty() => {
                            upserts.push(Upsert::OrderItems(order.id(), Some(lines)))
                        }
                        (_, bad) => dead.extend(bad),
                    }
                }
                order.into_upserts(&mut upserts, &mut texts);
            }
        }
    }
    Ok((upserts, texts, dead, started))
}
