//! The catalog's shapes: products (with embedded variants), variants and
//! inventory items.

use bytes::Bytes;
use dataflows::records::{Payloads, Upsert};
use dataflows::rows::raw_bc_inventory::RawBcInventory;
use dataflows::rows::raw_bc_product::RawBcProduct;
use dataflows::rows::raw_bc_variant::RawBcVariant;
use dataflows::scalar::{Micros, Money};
use serde::Deserialize;

use super::{Nested, Record, money, null_as_empty, opt_money, timestamp};

/// `GET /v3/catalog/products` item (`include=variants` adds `variants`).
#[derive(Deserialize)]
pub struct WireProduct {
    id: i64,
    name: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    sku: String,
    #[serde(deserialize_with = "money")]
    price: Money,
    #[serde(default, deserialize_with = "opt_money")]
    sale_price: Option<Money>,
    is_visible: bool,
    availability: String,
    inventory_tracking: String,
    #[serde(default)]
    brand_id: i64,
    #[serde(deserialize_with = "timestamp")]
    date_created: Micros,
    #[serde(deserialize_with = "timestamp")]
    date_modified: Micros,
    #[serde(default)]
    variants: Option<Vec<Nested<WireVariant>>>,
    /// The record's JSON, for `_payload`.
    #[serde(skip)]
    json: Bytes,
}

// A product's `inventory_level` follows its variants' stock, not its `date_modified`.
wire_record!(WireProduct, "product", left_out: ["variants", "inventory_level"]);

impl WireProduct {
    /// `date_modified`, the cursor field.
    pub fn modified(&self) -> Micros {
        self.date_modified
    }

    /// The upserts of this product and its embedded variants.
    pub fn into_upserts(self, out: &mut Vec<Upsert>, payloads: &mut Payloads) {
        for Nested(v) in self.variants.into_iter().flatten() {
            out.push(v.into_upsert(payloads));
        }
        out.push(Upsert::Product(
            self.id,
            Some(RawBcProduct {
                id: self.id,
                name: self.name,
                sku: self.sku,
                price: self.price,
                sale_price: self.sale_price.unwrap_or_default(),
                is_visible: self.is_visible,
                availability: self.availability,
                inventory_tracking: self.inventory_tracking,
                brand_id: self.brand_id,
                created_at: self.date_created,
                modified_at: self.date_modified,
                payload: payloads.keep(self.json),
            }),
        ));
    }
}

/// `GET /v3/catalog/variants` item.
#[derive(Deserialize)]
pub struct WireVariant {
    id: i64,
    product_id: i64,
    #[serde(default, deserialize_with = "null_as_empty")]
    sku: String,
    #[serde(default, deserialize_with = "opt_money")]
    price: Option<Money>,
    #[serde(default, deserialize_with = "opt_money")]
    sale_price: Option<Money>,
    #[serde(default)]
    inventory_level: i64,
    #[serde(default)]
    purchasing_disabled: bool,
    /// The record's JSON, for `_payload`.
    #[serde(skip)]
    json: Bytes,
}

wire_record!(WireVariant, "variant");

impl WireVariant {
    /// The upsert of this variant.
    pub fn into_upsert(self, payloads: &mut Payloads) -> Upsert {
        Upsert::Variant(
            self.id,
            Some(RawBcVariant {
                id: self.id,
                product_id: self.product_id,
                sku: self.sku,
                price: self.price,
                sale_price: self.sale_price,
                inventory_level: self.inventory_level,
                is_purchasing_disabled: self.purchasing_disabled,
                payload: payloads.keep(self.json),
            }),
        )
    }
}

/// `GET /v3/inventory/items` item.
#[derive(Deserialize)]
pub struct WireInventoryItem {
    identity: InventoryIdentity,
    #[serde(default)]
    locations: Vec<InventoryLocation>,
    /// The record's JSON, for `_payload`.
    #[serde(skip)]
    json: Bytes,
}

#[derive(Deserialize)]
struct InventoryIdentity {
    #[serde(default, deserialize_with = "null_as_empty")]
    sku: String,
    variant_id: i64,
    product_id: i64,
}

#[derive(Deserialize)]
struct InventoryLocation {
    available_to_sell: i64,
    total_inventory_onhand: i64,
    settings: InventorySettings,
}

#[derive(Deserialize)]
struct InventorySettings {
    is_in_stock: bool,
}

impl Record for WireInventoryItem {
    const ENTITY: &'static str = "inventory_item";
    fn keep_json(&mut self, json: Bytes) {
        self.json = json;
    }
    fn id(&self) -> i64 {
        self.identity.variant_id
    }
    fn id_of(raw: &str) -> Option<i64> {
        #[derive(Deserialize)]
        struct Item {
            identity: Id,
        }
        #[derive(Deserialize)]
        struct Id {
            variant_id: i64,
        }
        serde_json::from_str::<Item>(raw)
            .ok()
            .map(|i| i.identity.variant_id)
    }
}

impl WireInventoryItem {
    /// The upsert of this item, summed over locations.
    pub fn into_upsert(self, payloads: &mut Payloads) -> Upsert {
        let id = self.identity.variant_id;
        Upsert::Inventory(
            id,
            Some(RawBcInventory {
                variant_id: id,
                product_id: self.identity.product_id,
                sku: self.identity.sku,
                available_to_sell: self.locations.iter().map(|l| l.available_to_sell).sum(),
                total_inventory_onhand: self
                    .locations
                    .iter()
                    .map(|l| l.total_inventory_onhand)
                    .sum(),
                is_in_stock: self.locations.iter().any(|l| l.settings.is_in_stock),
                payload: payloads.keep(self.json),
            }),
        )
    }
}
