//! Record builders and a runner for the unit tests.

use crate::harness;
use crate::ops::{Diff, Epoch};
use crate::records::Upsert;
use crate::rows::raw_bc_customer::RawBcCustomer;
use crate::rows::raw_bc_inventory::RawBcInventory;
use crate::rows::raw_bc_order::RawBcOrder;
use crate::rows::raw_bc_order_item::RawBcOrderItem;
use crate::rows::raw_bc_product::RawBcProduct;
use crate::rows::raw_bc_variant::RawBcVariant;
use crate::rows::raw_pg_point_transaction::RawPgPointTransaction;
use crate::rows::raw_pg_quotation::RawPgQuotation;
use crate::rows::table::{Table, TableRow};
use crate::scalar::Money;

pub fn customer(id: i64, email: &str) -> RawBcCustomer {
    RawBcCustomer {
        id,
        email: email.into(),
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        company: String::new().into(),
        phone: String::new().into(),
        customer_group_id: 1,
        created_at: 100,
        modified_at: 100,
        payload: Default::default(),
    }
}

pub fn product(id: i64) -> RawBcProduct {
    RawBcProduct {
        id,
        name: format!("product {id}"),
        sku: format!("P{id}"),
        price: Money(100_000),
        sale_price: Money(0),
        is_visible: true,
        availability: "available".into(),
        inventory_tracking: "variant".into(),
        brand_id: 0,
        created_at: 0,
        modified_at: 0,
        payload: Default::default(),
    }
}

pub fn variant(id: i64, product_id: i64, level: i64) -> RawBcVariant {
    RawBcVariant {
        id,
        product_id,
        sku: format!("V{id}"),
        price: None,
        sale_price: None,
        inventory_level: level,
        is_purchasing_disabled: false,
        payload: Default::default(),
    }
}

pub fn inventory(variant_id: i64, available: i64) -> RawBcInventory {
    RawBcInventory {
        variant_id,
        product_id: 0,
        sku: format!("V{variant_id}"),
        available_to_sell: available,
        total_inventory_onhand: available,
        is_in_stock: available > 0,
        payload: Default::default(),
    }
}

pub fn order(id: i64, customer_id: i64, status_id: i64, total: i64, at: i64) -> RawBcOrder {
    RawBcOrder {
        id,
        customer_id,
        status_id,
        status: format!("status {status_id}").into(),
        subtotal_ex_tax: Money(total),
        subtotal_inc_tax: Money(total),
        total_ex_tax: Money(total),
        total_inc_tax: Money(total),
        refunded_amount: Money(0),
        items_total: 1,
        currency_code: "KRW".into(),
        is_deleted: false,
        created_at: at,
        modified_at: at,
        payload: Default::default(),
    }
}

pub fn line(id: i64, order_id: i64, quantity: i64) -> RawBcOrderItem {
    RawBcOrderItem {
        id,
        order_id,
        product_id: 1,
        variant_id: 10,
        sku: "V10".into(),
        name: "line".into(),
        quantity,
        base_price: Money(10_000),
        price_ex_tax: Money(10_000),
        price_inc_tax: Money(11_000),
        total_ex_tax: Money(10_000 * quantity),
        total_inc_tax: Money(11_000 * quantity),
        payload: Default::default(),
    }
}

pub fn point_transaction(id: i64, customer_id: i64, points: i64) -> RawPgPointTransaction {
    RawPgPointTransaction {
        id,
        customer_id,
        points,
        reason: "order".into(),
        created_at: 40,
        updated_at: 41,
    }
}

pub fn quotation(id: i64, email: &str, status: &str) -> RawPgQuotation {
    RawPgQuotation {
        id,
        customer_email: email.into(),
        status: status.into(),
        total: Money(1_234_500),
        currency_code: "KRW".into(),
        created_at: 50,
        updated_at: 60,
    }
}

/// Runs the epochs on one worker; returns the consolidated updates of `table`.
pub fn updates(table: Table, epochs: Vec<Vec<Upsert>>) -> Vec<(TableRow, Epoch, Diff)> {
    let mut all = harness::run_updates(1, epochs).expect("dataflow runs");
    all.retain(|(row, _, _)| row.table_id() == table);
    all
}
