//! The simulated store: entities in `BTreeMap`s keyed by id, with a
//! `(date_modified, id)` index per dated entity, and the listing helper the API uses.

use std::collections::{BTreeMap, BTreeSet};

use rand_chacha::ChaCha8Rng;

pub(crate) use super::dates::Ts;

/// Money in cents (minor units).
pub(crate) type Cents = i64;

/// A customer.
#[derive(Clone, Debug)]
pub(crate) struct Customer {
    pub id: u64,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub company: String,
    pub phone: String,
    pub customer_group_id: u32,
    pub date_created: Ts,
    pub date_modified: Ts,
    pub address_count: u32,
    pub attribute_count: u32,
}

/// A customer metafield.
#[derive(Clone, Debug)]
pub(crate) struct Metafield {
    pub id: u64,
    pub resource_id: u64,
    pub namespace: String,
    pub key: String,
    pub value: String,
    pub description: String,
    pub permission_set: &'static str,
    pub date_created: Ts,
    pub date_modified: Ts,
}

/// A catalog product. Its inventory level is the sum of its variants'.
#[derive(Clone, Debug)]
pub(crate) struct Product {
    pub id: u64,
    pub name: String,
    pub sku: String,
    pub price: Cents,
    /// 0 = no sale price.
    pub sale_price: Cents,
    pub is_visible: bool,
    pub availability: &'static str,
    pub inventory_tracking: &'static str,
    pub brand_id: u32,
    pub date_created: Ts,
    pub date_modified: Ts,
    /// Variant ids, the first is the base variant.
    pub variants: Vec<u64>,
}

/// One option value of a variant (e.g. Size: M).
#[derive(Clone, Debug)]
pub(crate) struct OptionValue {
    pub id: u64,
    pub label: String,
    pub option_id: u64,
    pub option_display_name: &'static str,
}

/// A product variant (a SKU).
#[derive(Clone, Debug)]
pub(crate) struct Variant {
    pub id: u64,
    pub product_id: u64,
    pub sku: String,
    /// `None` = the product's price.
    pub price: Option<Cents>,
    pub sale_price: Option<Cents>,
    pub inventory_level: i64,
    pub purchasing_disabled: bool,
    pub option_values: Vec<OptionValue>,
    /// What the inventory API serves for the variant (dirty data aside, the
    /// catalog's level).
    pub inventory: InventoryRow,
}

/// A variant's inventory item as the inventory API serves it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum InventoryRow {
    /// `available_to_sell` is the catalog level (never below 0).
    #[default]
    Mirror,
    /// `available_to_sell` is this level, whatever the catalog says (dirty data).
    Level(i64),
    /// The inventory API has no item for the variant (dirty data).
    Missing,
}

impl InventoryRow {
    /// `available_to_sell` of the item for a catalog level; `None` without one.
    pub(crate) fn available(self, catalog_level: i64) -> Option<i64> {
        match self {
            InventoryRow::Mirror => Some(catalog_level.max(0)),
            InventoryRow::Level(level) => Some(level),
            InventoryRow::Missing => None,
        }
    }
}

/// An order line item.
#[derive(Clone, Debug)]
pub(crate) struct OrderItem {
    pub id: u64,
    pub order_id: u64,
    pub product_id: u64,
    pub variant_id: u64,
    pub sku: String,
    pub name: String,
    pub quantity: u32,
    /// Unit price excluding tax (`base_price` = `price_ex_tax`).
    pub price_ex_tax: Cents,
    /// Unit price including tax.
    pub price_inc_tax: Cents,
}

/// An order (V2).
#[derive(Clone, Debug)]
pub(crate) struct Order {
    pub id: u64,
    pub customer_id: u64,
    pub date_created: Ts,
    pub date_modified: Ts,
    pub status_id: u8,
    pub is_deleted: bool,
    pub payment_method: &'static str,
    pub items: Vec<OrderItem>,
    /// Amount refunded, including tax (served at most the order's total).
    pub refunded: Cents,
}

/// Order totals derived from the line items.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub ex_tax: Cents,
    pub inc_tax: Cents,
    pub items_total: u64,
    pub items_shipped: u64,
}

/// BigCommerce order statuses by id.
pub(crate) const STATUSES: [&str; 15] = dataflows::records::ORDER_STATUSES;

/// The name of a status id.
pub(crate) fn status_name(id: u8) -> &'static str {
    STATUSES.get(id as usize).copied().unwrap_or("Unknown")
}

impl Order {
    /// The share of a partial refund, 10–59% of the total, from the id (no
    /// random draw, so refunds keep the mutation sequence as it was).
    pub(crate) fn partial_refund_percent(&self) -> i64 {
        10 + (self.id % 50) as i64
    }

    /// Sets `refunded` for the status: a part for Partially Refunded (14); all
    /// of it for Refunded (4), except one order in five, refunded in part (the
    /// control panel sets Refunded on partial refunds too); refunds never
    /// shrink (BigCommerce keeps them).
    pub(crate) fn refund_for_status(&mut self) {
        let total = self.totals().inc_tax;
        let partial = total * self.partial_refund_percent() / 100;
        let due = match self.status_id {
            4 if self.id % 5 == 0 => partial,
            4 => total,
            14 => partial,
            _ => 0,
        };
        self.refunded = self.refunded.max(due);
    }

    /// `refunded_amount` as served: the refunds, at most the total.
    pub(crate) fn refunded_amount(&self) -> Cents {
        self.refunded.min(self.totals().inc_tax).max(0)
    }

    /// Totals from the lines; shipped items follow the status.
    pub(crate) fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for it in &self.items {
            t.ex_tax += it.price_ex_tax * it.quantity as i64;
            t.inc_tax += it.price_inc_tax * it.quantity as i64;
            t.items_total += it.quantity as u64;
        }
        t.items_shipped = match self.status_id {
            2 | 10 => t.items_total,
            3 => t.items_total / 2,
            _ => 0,
        };
        t
    }
}

impl Variant {
    /// The price that applies: the variant's own or the product's.
    pub(crate) fn effective_price(&self, product_price: Cents) -> Cents {
        self.price.unwrap_or(product_price)
    }
    /// The price a shopper pays: the sale price when there is one.
    pub(crate) fn calculated_price(&self, product: &Product) -> Cents {
        match self.sale_price {
            Some(s) if s > 0 => s,
            _ if product.sale_price > 0 && self.price.is_none() => product.sale_price,
            _ => self.effective_price(product.price),
        }
    }
}

/// An entity with an id and creation/modification dates.
pub(crate) trait Dated {
    fn id(&self) -> u64;
    fn date_created(&self) -> Ts;
    fn date_modified(&self) -> Ts;
    fn set_date_modified(&mut self, ts: Ts);
}

macro_rules! dated {
    ($t:ty) => {
        impl Dated for $t {
            fn id(&self) -> u64 {
                self.id
            }
            fn date_created(&self) -> Ts {
                self.date_created
            }
            fn date_modified(&self) -> Ts {
                self.date_modified
            }
            fn set_date_modified(&mut self, ts: Ts) {
                self.date_modified = ts;
            }
        }
    };
}
dated!(Customer);
dated!(Metafield);
dated!(Product);
dated!(Order);

/// Rows keyed by id plus a `(date_modified, id)` index kept in step.
#[derive(Debug)]
pub(crate) struct Table<T> {
    rows: BTreeMap<u64, T>,
    by_modified: BTreeSet<(Ts, u64)>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            rows: BTreeMap::new(),
            by_modified: BTreeSet::new(),
        }
    }
}

impl<T: Dated> Table<T> {
    /// Inserts or replaces a row.
    pub(crate) fn insert(&mut self, row: T) {
        let (id, ts) = (row.id(), row.date_modified());
        if let Some(old) = self.rows.insert(id, row) {
            self.by_modified.remove(&(old.date_modified(), id));
        }
        self.by_modified.insert((ts, id));
    }

    /// Removes a row.
    pub(crate) fn remove(&mut self, id: u64) -> Option<T> {
        let old = self.rows.remove(&id)?;
        self.by_modified.remove(&(old.date_modified(), id));
        Some(old)
    }

    /// Changes a row with `f`; with `touch`, sets its `date_modified` too.
    pub(crate) fn update<R>(
        &mut self,
        id: u64,
        touch: Option<Ts>,
        f: impl FnOnce(&mut T) -> R,
    ) -> Option<R> {
        let row = self.rows.get_mut(&id)?;
        let before = row.date_modified();
        let r = f(row);
        if let Some(ts) = touch {
            row.set_date_modified(ts);
        }
        let after = row.date_modified();
        if after != before {
            self.by_modified.remove(&(before, id));
            self.by_modified.insert((after, id));
        }
        Some(r)
    }

    /// The row with this id.
    pub(crate) fn get(&self, id: u64) -> Option<&T> {
        self.rows.get(&id)
    }

    /// All rows by id.
    pub(crate) fn rows(&self) -> &BTreeMap<u64, T> {
        &self.rows
    }

    /// Ids matching `spec`, in the order it asks for (ties by id ascending).
    /// One page of a `date_modified`-ascending listing within `modified`, and
    /// the number of matches (all of them with `count_all`, else only as far as
    /// the page). Walks the date index from the range start instead of
    /// collecting every match, so a keyset walk (a new `date_modified:min` per
    /// request) costs O(page) per request rather than O(rest of the table).
    pub(crate) fn modified_page(
        &self,
        modified: (Ts, Ts),
        pred: Option<&dyn Fn(&T) -> bool>,
        skip: usize,
        take: usize,
        count_all: bool,
    ) -> (Vec<u64>, usize) {
        let (lo, hi) = modified;
        let mut page = Vec::with_capacity(take.min(1024));
        if hi < lo {
            return (page, 0);
        }
        let mut matched = 0;
        for (_, id) in self.by_modified.range((lo, 0)..=(hi, u64::MAX)) {
            if let Some(pred) = pred
                && !self.rows.get(id).is_some_and(pred)
            {
                continue;
            }
            if matched >= skip && page.len() < take {
                page.push(*id);
            }
            matched += 1;
            if !count_all && page.len() == take {
                break;
            }
        }
        (page, matched)
    }

    pub(crate) fn list(&self, spec: &ListSpec<'_>, pred: impl Fn(&T) -> bool) -> Vec<u64> {
        let (lo, hi) = spec.modified;
        let keep = |r: &T| {
            let m = r.date_modified();
            m >= lo && m <= hi && pred(r)
        };
        let mut keyed: Vec<(Ts, u64)> = match (spec.ids, spec.sort) {
            (Some(ids), _) => ids
                .iter()
                .filter_map(|id| self.rows.get(id))
                .filter(|r| keep(r))
                .map(|r| (spec.sort.key(r), r.id()))
                .collect(),
            (None, Sort::Id) => {
                let it = self.rows.values().filter(|r| keep(r)).map(|r| r.id());
                return if spec.desc {
                    let mut v: Vec<u64> = it.collect();
                    v.reverse();
                    v
                } else {
                    it.collect()
                };
            }
            (None, Sort::Modified) => {
                if hi < lo {
                    return Vec::new();
                }
                let range = self.by_modified.range((lo, 0)..=(hi, u64::MAX));
                let it = range
                    .filter(|(_, id)| self.rows.get(id).is_some_and(&pred))
                    .copied();
                if !spec.desc {
                    return it.map(|(_, id)| id).collect();
                }
                it.collect()
            }
            (None, Sort::Created) => self
                .rows
                .values()
                .filter(|r| keep(r))
                .map(|r| (r.date_created(), r.id()))
                .collect(),
        };
        if spec.desc {
            keyed.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        } else {
            keyed.sort_unstable();
        }
        keyed.into_iter().map(|(_, id)| id).collect()
    }
}

/// The sort key of a listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sort {
    Id,
    Modified,
    Created,
}

impl Sort {
    fn key<T: Dated>(self, r: &T) -> Ts {
        match self {
            Sort::Id => r.id() as Ts,
            Sort::Modified => r.date_modified(),
            Sort::Created => r.date_created(),
        }
    }
}

/// What a listing asks for: an optional id set, a `date_modified` range and an order.
#[derive(Clone, Debug)]
pub(crate) struct ListSpec<'a> {
    pub ids: Option<&'a BTreeSet<u64>>,
    pub modified: (Ts, Ts),
    pub sort: Sort,
    pub desc: bool,
}

impl Default for ListSpec<'_> {
    fn default() -> Self {
        ListSpec {
            ids: None,
            modified: (Ts::MIN, Ts::MAX),
            sort: Sort::Id,
            desc: false,
        }
    }
}

/// The whole store.
#[derive(Debug)]
pub struct Store {
    pub(crate) customers: Table<Customer>,
    pub(crate) metafields: Table<Metafield>,
    /// `(customer id, metafield id)`.
    pub(crate) metafields_by_customer: BTreeSet<(u64, u64)>,
    pub(crate) products: Table<Product>,
    pub(crate) variants: BTreeMap<u64, Variant>,
    pub(crate) orders: Table<Order>,
    pub(crate) next: NextIds,
    /// Time of the last mutation; mutations never go back in time.
    pub(crate) clock: Ts,
    /// Bumped by every mutation batch; cached listings of older generations are stale.
    pub(crate) generation: u64,
    /// The random source of mutations.
    pub(crate) rng: ChaCha8Rng,
    /// Brands and coupons (collections no built-in entity covers).
    pub(crate) extras: super::extras::Extras,
    /// Variants gone from the catalog that the inventory API still serves
    /// (dirty data): their inventory items name a variant nobody lists.
    pub(crate) orphan_inventory: BTreeMap<u64, Variant>,
    /// Share of mutations that are dirty ones (`--dirty-rate`).
    pub(crate) dirty_rate: f64,
    /// The next dirty kind to apply (they take turns).
    pub(crate) dirty_next: usize,
    /// Fields a newer API release added (`POST /_sim/fields`), by entity:
    /// served on every record of that entity from then on.
    pub(crate) added_fields: AddedFields,
}

/// Added fields by entity name (see [`Store::added_fields`]).
pub(crate) type AddedFields = BTreeMap<String, serde_json::Map<String, serde_json::Value>>;

/// The next free id per entity.
#[derive(Debug, Clone, Default)]
pub(crate) struct NextIds {
    pub customer: u64,
    pub metafield: u64,
    pub product: u64,
    pub variant: u64,
    pub option_value: u64,
    pub order: u64,
    pub order_item: u64,
}

impl Store {
    /// Adds a metafield with its customer index entry.
    pub(crate) fn insert_metafield(&mut self, m: Metafield) {
        self.metafields_by_customer.insert((m.resource_id, m.id));
        self.metafields.insert(m);
    }

    /// Removes a metafield with its customer index entry.
    pub(crate) fn remove_metafield(&mut self, id: u64) -> Option<Metafield> {
        let m = self.metafields.remove(id)?;
        self.metafields_by_customer.remove(&(m.resource_id, id));
        Some(m)
    }

    /// Metafield ids of a customer.
    pub(crate) fn metafields_of(&self, customer_id: u64) -> Vec<u64> {
        self.metafields_by_customer
            .range((customer_id, 0)..=(customer_id, u64::MAX))
            .map(|(_, id)| *id)
            .collect()
    }

    /// A product's inventory level: the sum of its variants'.
    pub(crate) fn product_inventory(&self, p: &Product) -> i64 {
        p.variants
            .iter()
            .filter_map(|v| self.variants.get(v))
            .map(|v| v.inventory_level)
            .sum()
    }
}
