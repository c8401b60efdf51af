//! `_errors`: source rows that break a model's expectations.
//!
//! - **Grain**: one row per (source row, broken expectation) currently true.
//! - **Key**: (`table`, `key`, `reason`); in the warehouse the composite key
//!   is also written as one text column `error_id`, `"<table>:<key>:<reason>"`
//!   (e.g. `raw_bc_variant:12:negative_inventory`), stable for as long as the
//!   error holds and the merge key of the BigQuery sink.
//! - **Columns**: `table` (the `raw_*` table holding the offending row),
//!   `key` (that row's key: the upsert key, or the line id for order lines),
//!   `reason` (a [`ErrorReason`] code).
//!
//! Like every table here `_errors` is *state*, not a log: an error row appears
//! when the offending row (or the absence of a referenced row) appears, and is
//! retracted when it is fixed. Bad rows never panic the dataflow. The checks:
//!
//! | reason | table | rule | effect on models |
//! |---|---|---|---|
//! | `key_mismatch` | any `raw_*` | the row's own id (`order_id` for lines) differs from the key it was upserted under | models use the upsert key |
//! | `non_positive_quantity` | `raw_bc_order_item` | `quantity <= 0` | line excluded from `fct_order_item` and from `fct_order.item_count` / `quantity` |
//! | `unknown_order` | `raw_bc_order_item` | no `raw_bc_order` row for the line's order | line excluded from `fct_order_item` |
//! | `negative_inventory` | `raw_bc_variant`, `raw_bc_inventory` | `inventory_level` / `available_to_sell` `< 0` | kept as read; a SKU with a negative level is not in stock |
//! | `sale_above_price` | `raw_bc_product`, `raw_bc_variant` | the row's own positive sale price is above its own price (a variant: only when it has both) | kept: the storefront charges it, so it is `dim_sku.effective_price` |
//! | `unknown_product` | `raw_bc_variant` | no `raw_bc_product` row for the variant's product | variant excluded from `dim_sku`, `dim_product` counts and `fct_onsale_product_inventory` |
//! | `unknown_variant` | `raw_bc_inventory` | no `raw_bc_variant` row for the inventory's variant | inventory row unused |
//! | `unknown_customer` | `raw_pg_point_transaction` | no `raw_bc_customer` row for the transaction's `customer_id` | kept in `fct_point_transaction`; counts in no `dim_customer.point_balance` |
//! | `empty_email` | `raw_pg_quotation` | `customer_email` empty once trimmed | kept in `fct_quotation` with a null `customer_id` |
//! | `malformed_subscription` | `raw_bc_customer_metafield` | a `govflow` / `restock_subscriptions` metafield whose value is not a JSON array of positive variant ids | subscribes to nothing (`product_notification_event`) |
//!
//! Deliberately **not** errors: an order or metafield whose `customer_id` is
//! not (yet) in `raw_bc_customer` (guest checkouts and customers read later are
//! normal), an order without lines, and a quotation whose email matches no
//! customer (quotations go to prospects too). A point transaction, which has no
//! guest case, does report an unknown customer. Errors caused by read order (a
//! line read before its order, points read before their customer) appear and
//! then vanish as the state catches up.

use dataflows_derive::Record;
use serde::{Deserialize, Serialize};

use crate::catalog::TextValue;
use crate::rows::table::{RowKey, Table};

/// Why a row is in `_errors`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorReason {
    /// The row's own id differs from the key it was upserted under.
    KeyMismatch,
    /// An order line with `quantity <= 0`.
    NonPositiveQuantity,
    /// An order line whose order is not in `raw_bc_order`.
    UnknownOrder,
    /// A negative inventory level.
    NegativeInventory,
    /// A row's own sale price above its own price.
    SaleAbovePrice,
    /// A variant whose product is not in `raw_bc_product`.
    UnknownProduct,
    /// An inventory row whose variant is not in `raw_bc_variant`.
    UnknownVariant,
    /// A point transaction whose customer is not in `raw_bc_customer`.
    UnknownCustomer,
    /// A quotation whose `customer_email` is empty (once trimmed).
    EmptyEmail,
    /// A restock subscriptions metafield whose value does not parse.
    MalformedSubscription,
}

impl ErrorReason {
    /// Every reason, in code order.
    pub const ALL: [ErrorReason; 10] = [
        ErrorReason::KeyMismatch,
        ErrorReason::NonPositiveQuantity,
        ErrorReason::UnknownOrder,
        ErrorReason::NegativeInventory,
        ErrorReason::SaleAbovePrice,
        ErrorReason::UnknownProduct,
        ErrorReason::UnknownVariant,
        ErrorReason::UnknownCustomer,
        ErrorReason::EmptyEmail,
        ErrorReason::MalformedSubscription,
    ];

    /// The stable `snake_case` code written to the `reason` column.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorReason::KeyMismatch => "key_mismatch",
            ErrorReason::NonPositiveQuantity => "non_positive_quantity",
            ErrorReason::UnknownOrder => "unknown_order",
            ErrorReason::NegativeInventory => "negative_inventory",
            ErrorReason::SaleAbovePrice => "sale_above_price",
            ErrorReason::UnknownProduct => "unknown_product",
            ErrorReason::UnknownVariant => "unknown_variant",
            ErrorReason::UnknownCustomer => "unknown_customer",
            ErrorReason::EmptyEmail => "empty_email",
            ErrorReason::MalformedSubscription => "malformed_subscription",
        }
    }

    /// A sentence for humans (status page, alerts).
    pub fn description(self) -> &'static str {
        match self {
            ErrorReason::KeyMismatch => "the row's id differs from the key it was upserted under",
            ErrorReason::NonPositiveQuantity => {
                "order line with quantity <= 0, excluded from fct_order_item and fct_order counts"
            }
            ErrorReason::UnknownOrder => "order line whose order is not in raw_bc_order",
            ErrorReason::NegativeInventory => "negative inventory level, treated as out of stock",
            ErrorReason::SaleAbovePrice => {
                "sale price above the regular price, still charged by the storefront"
            }
            ErrorReason::UnknownProduct => "variant whose product is not in raw_bc_product",
            ErrorReason::UnknownVariant => "inventory row whose variant is not in raw_bc_variant",
            ErrorReason::UnknownCustomer => {
                "point transaction whose customer is not in raw_bc_customer, left out of point balances"
            }
            ErrorReason::EmptyEmail => {
                "quotation with an empty customer email, matched to no customer"
            }
            ErrorReason::MalformedSubscription => {
                "restock subscriptions metafield that is not a JSON array of variant ids, subscribing to nothing"
            }
        }
    }
}

impl std::fmt::Display for ErrorReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TextValue for ErrorReason {
    const WHAT: &'static str = "error reason";
    fn all() -> &'static [ErrorReason] {
        &ErrorReason::ALL
    }
    fn as_text(self) -> &'static str {
        self.as_str()
    }
}

/// A row of `_errors`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Record,
)]
#[record(
    table = "_errors",
    key = "table, key, reason",
    grain = "one row per (source row, broken expectation) currently true",
    origin = "model",
    reads = "raw_bc_customer, raw_bc_customer_metafield, raw_bc_product, raw_bc_variant, raw_bc_order, raw_pg_quotation",
    key_column = "error_id",
    key_fn = "error_key"
)]
pub struct ErrorRow {
    /// The `raw_*` table holding the offending row.
    pub table: Table,
    /// The offending row's key in that table.
    pub key: i64,
    /// The broken expectation.
    pub reason: ErrorReason,
}

/// The key of an `_errors` row: the whole row.
fn error_key(row: &ErrorRow) -> RowKey {
    RowKey::Error(*row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_have_stable_codes() {
        let codes: Vec<&str> = ErrorReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            codes,
            [
                "key_mismatch",
                "non_positive_quantity",
                "unknown_order",
                "negative_inventory",
                "sale_above_price",
                "unknown_product",
                "unknown_variant",
                "unknown_customer",
                "empty_email",
                "malformed_subscription"
            ]
        );
        for reason in ErrorReason::ALL {
            assert!(!reason.description().is_empty());
            assert_eq!(
                serde_json::to_string(&reason).ok(),
                Some(format!("\"{reason}\""))
            );
        }
    }
}
