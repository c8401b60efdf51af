//! The dataflow of `_errors`; its contract and checks: [`crate::rows::errors`].

use crate::arrangements::Arrangements;
use crate::ops::{Coll, left_join, left_join_stateless};
use crate::rows::errors::{ErrorReason, ErrorRow};
use crate::rows::fct_quotation::email_key;
use crate::rows::product_notification_event::{is_subscription, parse_subscriptions};
use crate::rows::raw_bc_customer::CustomerIn;
use crate::rows::raw_bc_customer_metafield::MetafieldIn;
use crate::rows::raw_bc_inventory::InventoryIn;
use crate::rows::raw_bc_order::OrderIn;
use crate::rows::raw_bc_order_item::LineIn;
use crate::rows::raw_bc_product::ProductIn;
use crate::rows::raw_bc_variant::VariantIn;
use crate::rows::raw_pg_point_transaction::PointTransactionIn;
use crate::rows::raw_pg_quotation::QuotationIn;
use crate::rows::table::Table;
use crate::scalar::Money;

impl ErrorRow {
    fn new(table: Table, key: i64, reason: ErrorReason) -> Self {
        ErrorRow { table, key, reason }
    }
}

fn mismatch(table: Table, key: i64, id: i64) -> Option<ErrorRow> {
    (key != id).then(|| ErrorRow::new(table, key, ErrorReason::KeyMismatch))
}

fn negative(table: Table, key: i64, level: i64) -> Option<ErrorRow> {
    (level < 0).then(|| ErrorRow::new(table, key, ErrorReason::NegativeInventory))
}

fn sale_above(table: Table, key: i64, price: Money, sale_price: Money) -> Option<ErrorRow> {
    (sale_price.0 > 0 && sale_price > price)
        .then(|| ErrorRow::new(table, key, ErrorReason::SaleAbovePrice))
}

/// Row-level checks of a customer upserted under `key`.
pub(crate) fn customer_errors(key: i64, row: &CustomerIn) -> Option<ErrorRow> {
    mismatch(Table::RawBcCustomer, key, row.id)
}

/// Row-level checks of a metafield upserted under `key`.
pub(crate) fn metafield_errors(
    key: i64,
    row: &MetafieldIn,
) -> impl Iterator<Item = ErrorRow> + use<> {
    let malformed = (is_subscription(row) && parse_subscriptions(&row.value).is_err()).then(|| {
        ErrorRow::new(
            Table::RawBcCustomerMetafield,
            key,
            ErrorReason::MalformedSubscription,
        )
    });
    mismatch(Table::RawBcCustomerMetafield, key, row.id)
        .into_iter()
        .chain(malformed)
}

/// Row-level checks of a product upserted under `key`.
pub(crate) fn product_errors(key: i64, row: &ProductIn) -> impl Iterator<Item = ErrorRow> + use<> {
    let table = Table::RawBcProduct;
    [
        mismatch(table, key, row.id),
        sale_above(table, key, row.price, row.sale_price),
    ]
    .into_iter()
    .flatten()
}

/// Row-level checks of a variant upserted under `key`.
pub(crate) fn variant_errors(key: i64, row: &VariantIn) -> impl Iterator<Item = ErrorRow> + use<> {
    let table = Table::RawBcVariant;
    let above = match (row.price, row.sale_price) {
        (Some(price), Some(sale)) => sale_above(table, key, price, sale),
        _ => None,
    };
    [
        mismatch(table, key, row.id),
        negative(table, key, row.inventory_level),
        above,
    ]
    .into_iter()
    .flatten()
}

/// Row-level checks of an inventory row upserted under `key`.
pub(crate) fn inventory_errors(
    key: i64,
    row: &InventoryIn,
) -> impl Iterator<Item = ErrorRow> + use<> {
    let table = Table::RawBcInventory;
    [
        mismatch(table, key, row.variant_id),
        negative(table, key, row.available_to_sell),
    ]
    .into_iter()
    .flatten()
}

/// Row-level checks of an order upserted under `key`.
pub(crate) fn order_errors(key: i64, row: &OrderIn) -> Option<ErrorRow> {
    mismatch(Table::RawBcOrder, key, row.id)
}

/// Row-level checks of the lines upserted under order `order_id`.
pub(crate) fn order_item_errors(order_id: i64, lines: &[LineIn]) -> Vec<ErrorRow> {
    let table = Table::RawBcOrderItem;
    let mut errors = Vec::new();
    for line in lines {
        if line.order_id != order_id {
            errors.push(ErrorRow::new(table, line.id, ErrorReason::KeyMismatch));
        }
        if line.quantity <= 0 {
            errors.push(ErrorRow::new(
                table,
                line.id,
                ErrorReason::NonPositiveQuantity,
            ));
        }
    }
    errors
}

/// Row-level checks of a point transaction upserted under `key`.
pub(crate) fn point_transaction_errors(key: i64, row: &PointTransactionIn) -> Option<ErrorRow> {
    mismatch(Table::RawPgPointTransaction, key, row.id)
}

/// Row-level checks of a quotation upserted under `key`.
pub(crate) fn quotation_errors(
    key: i64,
    row: &QuotationIn,
) -> impl Iterator<Item = ErrorRow> + use<> {
    let table = Table::RawPgQuotation;
    let empty = email_key(&row.customer_email)
        .is_none()
        .then(|| ErrorRow::new(table, key, ErrorReason::EmptyEmail));
    [mismatch(table, key, row.id), empty].into_iter().flatten()
}

/// `unknown_customer` error of a point transaction.
pub(crate) fn unknown_customer_error(point_transaction_id: i64) -> ErrorRow {
    ErrorRow::new(
        Table::RawPgPointTransaction,
        point_transaction_id,
        ErrorReason::UnknownCustomer,
    )
}

/// `unknown_order` errors for the lines of an order, when the order is missing.
pub(crate) fn unknown_order_errors(lines: &[LineIn]) -> Vec<ErrorRow> {
    let table = Table::RawBcOrderItem;
    lines
        .iter()
        .map(|line| ErrorRow::new(table, line.id, ErrorReason::UnknownOrder))
        .collect()
}

/// `unknown_product` error of a variant.
pub(crate) fn unknown_product_error(sku_id: i64) -> ErrorRow {
    ErrorRow::new(Table::RawBcVariant, sku_id, ErrorReason::UnknownProduct)
}

/// `unknown_variant` error of an inventory row.
pub(crate) fn unknown_variant_error(variant_id: i64) -> ErrorRow {
    ErrorRow::new(
        Table::RawBcInventory,
        variant_id,
        ErrorReason::UnknownVariant,
    )
}

/// The table's changes. Row-level checks read each arrangement's batches; the
/// referential checks are left joins over existing arrangements, whose only
/// state is the set of keys currently without a match.
pub(crate) fn render<'s>(arr: &Arrangements<'s>) -> Coll<'s, ErrorRow> {
    let customers = arr
        .customers
        .clone()
        .flat_map_ref(|k, row| customer_errors(*k, row));
    let metafields = arr
        .customer_metafields
        .clone()
        .flat_map_ref(|k, row| metafield_errors(*k, row));
    let products = arr
        .products
        .clone()
        .flat_map_ref(|k, row| product_errors(*k, row));
    let variants = arr
        .variants
        .clone()
        .flat_map_ref(|k, row| variant_errors(*k, row));
    let inventory = arr
        .inventory
        .clone()
        .flat_map_ref(|k, row| inventory_errors(*k, row));
    let orders = arr
        .orders
        .clone()
        .flat_map_ref(|k, row| order_errors(*k, row));
    let lines = arr
        .order_items
        .clone()
        .flat_map_ref(|k, lines| order_item_errors(*k, lines));

    let point_transactions = arr
        .point_transactions
        .clone()
        .flat_map_ref(|k, row| point_transaction_errors(*k, row));
    let quotations = arr
        .quotations
        .clone()
        .flat_map_ref(|k, row| quotation_errors(*k, row));

    let unknown_order = left_join(
        arr.order_items.clone(),
        arr.orders.clone(),
        |_, lines, order| match order {
            Some(_) => Vec::new(),
            None => unknown_order_errors(lines),
        },
    );
    // Several variants per product: the stateless form (its rows are tiny).
    let unknown_product = left_join_stateless(
        arr.skus_by_product.clone(),
        arr.products.clone(),
        |_, sku, product| product.is_none().then(|| unknown_product_error(sku.sku_id)),
    );
    let unknown_variant = left_join(
        arr.inventory.clone(),
        arr.variants.clone(),
        |k, _, variant| variant.is_none().then(|| unknown_variant_error(*k)),
    );

    // Several transactions per customer: the stateless form again.
    let unknown_customer = left_join_stateless(
        arr.point_transactions_by_customer.clone(),
        arr.customers.clone(),
        |_, t, customer| {
            customer
                .is_none()
                .then(|| unknown_customer_error(t.point_transaction_id))
        },
    );

    customers.concatenate([
        metafields,
        products,
        variants,
        inventory,
        orders,
        lines,
        point_transactions,
        quotations,
        unknown_order,
        unknown_product,
        unknown_variant,
        unknown_customer,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{
        customer, inventory, line, order, point_transaction, product, quotation, updates, variant,
    };
    use crate::records::Upsert;
    use crate::rows::table::TableRow;
    use crate::scalar::Money;

    fn err(table: Table, key: i64, reason: ErrorReason) -> TableRow {
        TableRow::Errors(ErrorRow { table, key, reason })
    }

    #[test]
    fn errors_appear_and_vanish_with_their_cause() {
        use ErrorReason::*;
        let got = updates(
            Table::Errors,
            vec![
                vec![
                    Upsert::OrderItems(5, Some(vec![line(51, 5, 0), line(52, 6, 1)])),
                    Upsert::Variant(10, Some(variant(10, 1, -2))),
                    Upsert::Inventory(11, Some(inventory(11, -1))),
                    Upsert::Customer(2, Some(customer(3, "x"))),
                    // Not errors: an order of an unknown customer, a metafield likewise.
                    Upsert::Order(6, Some(order(6, 99, 10, 1, 1))),
                ],
                vec![
                    Upsert::Order(5, Some(order(5, 0, 10, 1, 1))),
                    Upsert::Product(1, Some(product(1))),
                    Upsert::Variant(11, Some(variant(11, 1, 1))),
                ],
                vec![
                    Upsert::OrderItems(5, Some(vec![line(51, 5, 1)])),
                    Upsert::Variant(10, Some(variant(10, 1, 0))),
                    Upsert::Inventory(11, Some(inventory(11, 0))),
                    Upsert::Customer(2, None),
                ],
            ],
        );
        let mut expected = vec![
            (err(Table::RawBcCustomer, 2, KeyMismatch), 0, 1),
            (err(Table::RawBcVariant, 10, NegativeInventory), 0, 1),
            (err(Table::RawBcVariant, 10, UnknownProduct), 0, 1),
            (err(Table::RawBcInventory, 11, NegativeInventory), 0, 1),
            (err(Table::RawBcInventory, 11, UnknownVariant), 0, 1),
            (err(Table::RawBcOrderItem, 51, NonPositiveQuantity), 0, 1),
            (err(Table::RawBcOrderItem, 51, UnknownOrder), 0, 1),
            (err(Table::RawBcOrderItem, 52, KeyMismatch), 0, 1),
            (err(Table::RawBcOrderItem, 52, UnknownOrder), 0, 1),
            (err(Table::RawBcVariant, 10, UnknownProduct), 1, -1),
            (err(Table::RawBcInventory, 11, UnknownVariant), 1, -1),
            (err(Table::RawBcOrderItem, 51, UnknownOrder), 1, -1),
            (err(Table::RawBcOrderItem, 52, UnknownOrder), 1, -1),
            (err(Table::RawBcCustomer, 2, KeyMismatch), 2, -1),
            (err(Table::RawBcVariant, 10, NegativeInventory), 2, -1),
            (err(Table::RawBcInventory, 11, NegativeInventory), 2, -1),
            (err(Table::RawBcOrderItem, 51, NonPositiveQuantity), 2, -1),
            (err(Table::RawBcOrderItem, 52, KeyMismatch), 2, -1),
        ];
        expected.sort_by(|(r1, t1, _), (r2, t2, _)| (t1, r1).cmp(&(t2, r2)));
        assert_eq!(got, expected);
    }

    #[test]
    fn sale_prices_above_the_price_are_reported() {
        use ErrorReason::*;
        let mut p = product(1);
        p.sale_price = Money(p.price.0 + 1);
        let mut v = variant(10, 1, 1);
        v.price = Some(Money(500));
        v.sale_price = Some(Money(600));
        // A variant on the product's price with its own sale price: not row-level.
        let mut inherits = variant(11, 1, 1);
        inherits.sale_price = Some(Money(i64::MAX));
        let mut fixed = product(1);
        fixed.sale_price = Money(0);
        let got = updates(
            Table::Errors,
            vec![
                vec![
                    Upsert::Product(1, Some(p)),
                    Upsert::Variant(10, Some(v)),
                    Upsert::Variant(11, Some(inherits)),
                ],
                vec![
                    Upsert::Product(1, Some(fixed)),
                    Upsert::Variant(10, Some(variant(10, 1, 1))),
                ],
            ],
        );
        assert_eq!(
            got,
            vec![
                (err(Table::RawBcProduct, 1, SaleAbovePrice), 0, 1),
                (err(Table::RawBcVariant, 10, SaleAbovePrice), 0, 1),
                (err(Table::RawBcProduct, 1, SaleAbovePrice), 1, -1),
                (err(Table::RawBcVariant, 10, SaleAbovePrice), 1, -1),
            ]
        );
    }

    #[test]
    fn postgres_rows_errors() {
        use ErrorReason::*;
        let t = |key, id, customer_id| {
            Upsert::PointTransaction(key, Some(point_transaction(id, customer_id, 5)))
        };
        let got = updates(
            Table::Errors,
            vec![
                vec![
                    t(1, 1, 7),
                    t(2, 3, 7),
                    Upsert::Quotation(1, Some(quotation(1, "  ", "sent"))),
                    Upsert::Quotation(2, Some(quotation(4, "x@y", "sent"))),
                ],
                // The customer arrives; the quotation gets an email.
                vec![
                    Upsert::Customer(7, Some(customer(7, "a@x"))),
                    Upsert::Quotation(1, Some(quotation(1, "nobody@x", "sent"))),
                ],
                // The customer goes: its transactions are unknown again.
                vec![Upsert::Customer(7, None), Upsert::PointTransaction(2, None)],
            ],
        );
        assert_eq!(
            got,
            vec![
                (err(Table::RawPgPointTransaction, 1, UnknownCustomer), 0, 1),
                (err(Table::RawPgPointTransaction, 2, KeyMismatch), 0, 1),
                (err(Table::RawPgPointTransaction, 2, UnknownCustomer), 0, 1),
                (err(Table::RawPgQuotation, 1, EmptyEmail), 0, 1),
                (err(Table::RawPgQuotation, 2, KeyMismatch), 0, 1),
                (err(Table::RawPgPointTransaction, 1, UnknownCustomer), 1, -1),
                (err(Table::RawPgPointTransaction, 2, UnknownCustomer), 1, -1),
                (err(Table::RawPgQuotation, 1, EmptyEmail), 1, -1),
                (err(Table::RawPgPointTransaction, 1, UnknownCustomer), 2, 1),
                (err(Table::RawPgPointTransaction, 2, KeyMismatch), 2, -1),
            ]
        );
    }
}
