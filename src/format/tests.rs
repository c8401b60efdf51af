use std::collections::BTreeSet;

use arrow_array::cast::AsArray;
use dataflows::scalar::Money as M;
use proptest::prelude::*;

use super::*;
use crate::sinks::local::{LocalWarehouse, WarehouseOptions};
use arrow_array::types::{Decimal128Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Decimal128Array, Int64Array, StringArray};
use arrow_schema::TimeUnit;
use dataflows::rows::dim_customer::DimCustomer;
use dataflows::rows::dim_product::DimProduct;
use dataflows::rows::dim_sku::DimSku;
use dataflows::rows::errors::ErrorReason;
use dataflows::rows::fct_onsale_product_inventory::FctOnsaleProductInventory;
use dataflows::rows::fct_order::FctOrder;
use dataflows::rows::fct_order_item::FctOrderItem;
use dataflows::rows::fct_point_transaction::FctPointTransaction;
use dataflows::rows::fct_quotation::FctQuotation;
use dataflows::rows::product_notification_event::ProductNotificationEvent;
use dataflows::rows::raw_bc_customer::RawBcCustomer;
use dataflows::rows::raw_bc_customer_metafield::RawBcCustomerMetafield;
use dataflows::rows::raw_bc_inventory::RawBcInventory;
use dataflows::rows::raw_bc_order::RawBcOrder;
use dataflows::rows::raw_bc_order_item::RawBcOrderItem;
use dataflows::rows::raw_bc_product::RawBcProduct;
use dataflows::rows::raw_bc_variant::RawBcVariant;
use dataflows::rows::raw_pg_point_transaction::RawPgPointTransaction;
use dataflows::rows::raw_pg_quotation::RawPgQuotation;

/// Row `i` of `table`, with key `i` (but in `_errors`).
fn sample(table: Table, i: i64) -> TableRow {
    sample_keyed(table, i, i)
}

/// Row `i` of `table` under key `key` (but in `_errors`, keyed by the
/// whole row): odd rows have positive money and `Some` options, even rows
/// negative money and `None`; strings carry non-ASCII text.
fn sample_keyed(table: Table, key: i64, i: i64) -> TableRow {
    let text = |s: &str| format!("{s}-{i} Zoë Ångström 日本語 🚀");
    let money = |raw: i64| M(if i % 2 == 0 { -raw * i } else { raw * i });
    let opt = |v: i64| (i % 2 == 1).then_some(v);
    let at = -86_400_000_000 + i * 1_700_000_000_123_456;
    match table {
        Table::RawBcCustomer => TableRow::RawBcCustomer(RawBcCustomer {
            id: key,
            email: text("a@example.com").into(),
            first_name: text("Ada").into(),
            last_name: Default::default(),
            company: text("Co").into(),
            phone: "+33 1 23".into(),
            customer_group_id: -i,
            created_at: at,
            modified_at: at + 1,
            payload: Default::default(),
        }),
        Table::RawBcCustomerMetafield => TableRow::RawBcCustomerMetafield(RawBcCustomerMetafield {
            id: key,
            customer_id: 10 + i,
            namespace: text("ns"),
            key: text("k"),
            value: text("{\"v\": \"\\u00e9\"}"),
            created_at: at,
            modified_at: i64::MIN + i,
            payload: Default::default(),
        }),
        Table::RawBcProduct => TableRow::RawBcProduct(RawBcProduct {
            id: key,
            name: text("Chaise"),
            sku: text("SKU"),
            price: money(1_999_900),
            sale_price: M(0),
            is_visible: i % 2 == 0,
            availability: "available".into(),
            inventory_tracking: "variant".into(),
            brand_id: 0,
            created_at: at,
            modified_at: i64::MAX - i,
            payload: Default::default(),
        }),
        Table::RawBcVariant => TableRow::RawBcVariant(RawBcVariant {
            id: key,
            product_id: 100,
            sku: text("V"),
            price: opt(12_345).map(M),
            sale_price: if i == 3 { Some(M(-5)) } else { None },
            inventory_level: -i,
            is_purchasing_disabled: true,
            payload: Default::default(),
        }),
        Table::RawBcInventory => TableRow::RawBcInventory(RawBcInventory {
            variant_id: key,
            product_id: 100,
            sku: text("V"),
            available_to_sell: -3,
            total_inventory_onhand: 7,
            is_in_stock: false,
            payload: Default::default(),
        }),
        Table::RawBcOrder => TableRow::RawBcOrder(RawBcOrder {
            id: key,
            customer_id: 0,
            status_id: 11,
            status: text("Awaiting Fulfillment").into(),
            subtotal_ex_tax: money(1),
            subtotal_inc_tax: money(999_999_999_999_999 / 3),
            total_ex_tax: M(-999_999_999_999_999_999),
            total_inc_tax: M(999_999_999_999_999_999),
            refunded_amount: money(12_345),
            items_total: 2,
            currency_code: "EUR".into(),
            is_deleted: i == 2,
            created_at: at,
            modified_at: at,
            payload: Default::default(),
        }),
        Table::RawBcOrderItem => TableRow::RawBcOrderItem(RawBcOrderItem {
            id: key,
            order_id: 5,
            product_id: 0,
            variant_id: 8,
            sku: Default::default(),
            name: text("Ligne").into(),
            quantity: -i,
            base_price: money(3_619_500),
            price_ex_tax: money(1),
            price_inc_tax: money(2),
            total_ex_tax: money(3),
            total_inc_tax: money(4),
            payload: Default::default(),
        }),
        Table::RawPgPointTransaction => TableRow::RawPgPointTransaction(RawPgPointTransaction {
            id: key,
            customer_id: 10 + i,
            points: if i % 2 == 0 { -i * 100 } else { i64::MAX - i },
            reason: text("redeem"),
            created_at: at,
            updated_at: i64::MIN + i,
        }),
        Table::RawPgQuotation => TableRow::RawPgQuotation(RawPgQuotation {
            id: key,
            customer_email: text(" Ada@Example.com"),
            status: text("accepted"),
            total: money(999_999_999_999_999 / 7),
            currency_code: "KRW".into(),
            created_at: at,
            updated_at: at + 3,
        }),
        Table::DimCustomer => TableRow::DimCustomer(DimCustomer {
            customer_id: key,
            email: text("b@example.com"),
            full_name: text("Ada Lovelace"),
            customer_group_id: 0,
            created_at: at,
            order_count: i,
            lifetime_revenue: money(123_456_789),
            first_order_at: opt(at - 5),
            last_order_at: opt(at + 5),
            point_balance: if i % 2 == 0 { -i * 1_000 } else { i },
        }),
        Table::DimProduct => TableRow::DimProduct(DimProduct {
            product_id: key,
            name: text("P"),
            brand_id: opt(77),
            sku: text("S"),
            price: money(10_000),
            sale_price: opt(5_000).map(money),
            is_visible: true,
            availability: "preorder".into(),
            inventory_tracking: "none".into(),
            variant_count: 3,
            total_inventory: -4,
        }),
        Table::DimSku => TableRow::DimSku(DimSku {
            sku_id: key,
            product_id: 2,
            product_name: text("P"),
            sku: text("S"),
            price: money(10_000),
            sale_price: Some(money(1)),
            effective_price: money(1),
            inventory_level: 0,
            is_purchasable: false,
            is_in_stock: true,
        }),
        Table::FctOrder => TableRow::FctOrder(FctOrder {
            order_id: key,
            customer_id: opt(9),
            status_id: 10,
            status: text("Completed"),
            is_complete: true,
            subtotal_ex_tax: money(100),
            total_ex_tax: money(200),
            total_inc_tax: money(300),
            refunded_amount: money(100),
            is_revenue: true,
            net_revenue: money(200),
            item_count: 1,
            quantity: 4,
            ordered_at: at,
            modified_at: at + 7,
        }),
        Table::FctOrderItem => TableRow::FctOrderItem(FctOrderItem {
            order_item_id: key,
            order_id: 1,
            customer_id: opt(9),
            product_id: 2,
            sku_id: 3,
            sku: text("S"),
            quantity: 4,
            unit_price: money(25),
            line_total: money(100),
            status_id: 2,
            status: text("Shipped"),
            ordered_at: at,
        }),
        Table::FctPointTransaction => TableRow::FctPointTransaction(FctPointTransaction {
            point_transaction_id: key,
            customer_id: -i,
            points: -i,
            is_earned: i % 2 == 1,
            reason: text("order"),
            created_at: at,
            updated_at: at + 1,
        }),
        Table::FctQuotation => TableRow::FctQuotation(FctQuotation {
            quotation_id: key,
            customer_id: opt(9),
            customer_email: text("ada@example.com"),
            status: text("sent"),
            is_accepted: i % 2 == 0,
            total: money(-1),
            currency_code: "USD".into(),
            created_at: at,
            updated_at: at + 2,
        }),
        Table::FctOnsaleProductInventory => {
            TableRow::FctOnsaleProductInventory(FctOnsaleProductInventory {
                sku_id: key,
                product_id: 2,
                sku: text("S"),
                inventory_level: 12,
                price: money(10),
                sale_price: None,
                effective_price: money(10),
            })
        }
        Table::ProductNotificationEvent => {
            TableRow::ProductNotificationEvent(ProductNotificationEvent {
                event_id: dataflows::rows::product_notification_event::event_id(key, 3, i),
                customer_id: key,
                customer_email: text("ada@example.com"),
                sku_id: 3,
                product_id: 2,
                sku: text("S"),
                episode: i,
                inventory_level: 12,
                price: money(10),
                sale_price: money(9),
            })
        }
        Table::Errors => TableRow::Errors(ErrorRow {
            table: Table::ALL[i as usize % 7],
            key: -i,
            reason: ErrorReason::ALL[i as usize % 6],
        }),
    }
}

/// Rows 1..=n of `table`, in key order.
fn samples(table: Table, n: i64) -> Vec<TableRow> {
    let mut rows: Vec<TableRow> = (1..=n).map(|i| sample(table, i)).collect();
    rows.sort_by_key(TableRow::key);
    rows
}

fn inserts(rows: &[TableRow]) -> Vec<(TableRow, isize)> {
    rows.iter().map(|r| (r.clone(), 1)).collect()
}

fn field(table: Table, name: &str) -> Field {
    let spec = table_spec(table);
    spec.schema
        .field_with_name(name)
        .unwrap_or_else(|_| panic!("{table}.{name}"))
        .clone()
}

fn int_keys(array: &ArrayRef) -> Vec<i64> {
    array.as_primitive::<Int64Type>().values().to_vec()
}

#[test]
fn schemas_follow_the_row_types() {
    let specs = table_specs();
    assert_eq!(specs.len(), Table::ALL.len());
    for (spec, table) in specs.iter().zip(Table::ALL) {
        assert_eq!(spec.name, table.name());
        let fields = spec.schema.fields();
        let key = spec.schema.field_with_name(&spec.key).unwrap();
        assert!(!key.is_nullable(), "{table}");
        assert!(matches!(key.data_type(), DataType::Int64 | DataType::Utf8));
        let last = fields.last().unwrap();
        assert_eq!(
            (last.name().as_str(), last.data_type(), last.is_nullable()),
            (EPOCH, &DataType::Int64, false)
        );
        // Column names are the row's (serde) field names, in field order.
        let json = serde_json::to_value(sample(table, 1)).unwrap();
        let serde_names: BTreeSet<String> = json
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let names: BTreeSet<String> = fields
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| n != EPOCH && n != ERROR_ID)
            .collect();
        assert_eq!(names, serde_names, "{table}");
        let text = serde_json::to_string(&sample(table, 1)).unwrap();
        let positions: Vec<usize> = fields
            .iter()
            .filter(|f| f.name() != EPOCH && f.name() != ERROR_ID)
            .map(|f| text.find(&format!("\"{}\":", f.name())).unwrap())
            .collect();
        assert!(positions.is_sorted(), "{table}: columns out of field order");
        // Stable: the same schema every time.
        assert_eq!(table_spec(table).schema, spec.schema);
    }
    assert_eq!(table_spec(Table::DimCustomer).key, "customer_id");
    assert_eq!(table_spec(Table::RawBcInventory).key, "variant_id");
    assert_eq!(table_spec(Table::RawBcOrder).key, "id");
    assert_eq!(table_spec(Table::RawPgPointTransaction).key, "id");
    assert_eq!(table_spec(Table::RawPgQuotation).key, "id");
    assert_eq!(
        table_spec(Table::FctPointTransaction).key,
        "point_transaction_id"
    );
    assert_eq!(table_spec(Table::FctQuotation).key, "quotation_id");
}

#[test]
fn schema_types() {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let money = DataType::Decimal128(18, 4);
    let created = field(Table::DimCustomer, "created_at");
    assert_eq!((created.data_type(), created.is_nullable()), (&ts, false));
    let first = field(Table::DimCustomer, "first_order_at");
    assert_eq!((first.data_type(), first.is_nullable()), (&ts, true));
    let revenue = field(Table::DimCustomer, "lifetime_revenue");
    assert_eq!(
        (revenue.data_type(), revenue.is_nullable()),
        (&money, false)
    );
    let price = field(Table::RawBcVariant, "price");
    assert_eq!((price.data_type(), price.is_nullable()), (&money, true));
    let brand = field(Table::DimProduct, "brand_id");
    assert_eq!(
        (brand.data_type(), brand.is_nullable()),
        (&DataType::Int64, true)
    );
    let balance = field(Table::DimCustomer, "point_balance");
    assert_eq!(
        (balance.data_type(), balance.is_nullable()),
        (&DataType::Int64, false)
    );
    let total = field(Table::RawPgQuotation, "total");
    assert_eq!((total.data_type(), total.is_nullable()), (&money, false));
    let updated = field(Table::RawPgPointTransaction, "updated_at");
    assert_eq!((updated.data_type(), updated.is_nullable()), (&ts, false));
    let quoted_for = field(Table::FctQuotation, "customer_id");
    assert_eq!(
        (quoted_for.data_type(), quoted_for.is_nullable()),
        (&DataType::Int64, true)
    );
    let earned = field(Table::FctPointTransaction, "is_earned");
    assert_eq!(earned.data_type(), &DataType::Boolean);
    let visible = field(Table::RawBcProduct, "is_visible");
    assert_eq!(visible.data_type(), &DataType::Boolean);
    assert_eq!(
        field(Table::RawBcProduct, "name").data_type(),
        &DataType::Utf8
    );
    let errors = table_spec(Table::Errors);
    assert_eq!(errors.key, ERROR_ID);
    let columns: Vec<(&str, &DataType, bool)> = errors
        .schema
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f.data_type(), f.is_nullable()))
        .collect();
    assert_eq!(
        columns,
        vec![
            (ERROR_ID, &DataType::Utf8, false),
            ("table", &DataType::Utf8, false),
            ("key", &DataType::Int64, false),
            ("reason", &DataType::Utf8, false),
            (EPOCH, &DataType::Int64, false),
        ]
    );
}

#[test]
fn every_table_round_trips() {
    for table in Table::ALL {
        let rows = samples(table, 4);
        let changes = changes_of(table, 42, &inserts(&rows)).unwrap();
        assert_eq!(changes.table, table.name());
        assert_eq!(changes.upserts.schema(), table_spec(table).schema);
        assert_eq!(changes.upserts.num_rows(), 4);
        assert_eq!(changes.deleted_keys.len(), 0);
        let epochs = changes.upserts.column_by_name(EPOCH).unwrap();
        assert_eq!(int_keys(epochs), vec![42; 4]);
        assert_eq!(
            rows_from_batch(table, &changes.upserts).unwrap(),
            rows,
            "{table}"
        );
    }
}

#[test]
fn values_are_stored_raw() {
    let row = sample(Table::RawBcOrder, 2);
    let batch = changes_of(Table::RawBcOrder, 1, &[(row, 1)])
        .unwrap()
        .upserts;
    let total = batch.column_by_name("total_ex_tax").unwrap();
    assert_eq!(
        total.as_primitive::<Decimal128Type>().value(0),
        -999_999_999_999_999_999
    );
    let sub = batch.column_by_name("subtotal_ex_tax").unwrap();
    assert_eq!(sub.as_primitive::<Decimal128Type>().value(0), -2);
    let created = batch.column_by_name("created_at").unwrap();
    assert_eq!(
        created.as_primitive::<TimestampMicrosecondType>().value(0),
        -86_400_000_000 + 2 * 1_700_000_000_123_456
    );
    // Options become nulls.
    let row = sample(Table::DimCustomer, 2);
    let batch = changes_of(Table::DimCustomer, 1, &[(row, 1)])
        .unwrap()
        .upserts;
    assert!(batch.column_by_name("first_order_at").unwrap().is_null(0));
    assert!(!batch.column_by_name("created_at").unwrap().is_null(0));
}

#[test]
fn changes_are_classified_per_key() {
    let table = Table::DimCustomer;
    let old = samples(table, 4);
    let mut updated = old[1].clone();
    if let TableRow::DimCustomer(r) = &mut updated {
        r.email = "nouveau@example.com".into();
        r.first_order_at = None;
    }
    let changes = vec![
        (old[0].clone(), 1),  // key 1: insert
        (old[1].clone(), -1), // key 2: update
        (updated.clone(), 1),
        (old[2].clone(), -1), // key 3: delete
        (old[3].clone(), 1),  // key 4: insert
    ];
    let out = changes_of(table, 7, &changes).unwrap();
    assert_eq!(
        rows_from_batch(table, &out.upserts).unwrap(),
        vec![old[0].clone(), updated, old[3].clone()]
    );
    assert_eq!(int_keys(&out.deleted_keys), vec![3]);
    // The order of changes does not matter.
    let mut reversed = changes.clone();
    reversed.reverse();
    let again = changes_of(table, 7, &reversed).unwrap();
    assert_eq!(again.upserts, out.upserts);
    // No changes: empty batch and keys, still in schema.
    let empty = changes_of(table, 7, &[]).unwrap();
    assert_eq!(empty.upserts.num_rows(), 0);
    assert_eq!(empty.upserts.schema(), table_spec(table).schema);
    assert_eq!(empty.deleted_keys.data_type(), &DataType::Int64);
}

#[test]
fn errors_are_keyed_by_error_id() {
    let rows = samples(Table::Errors, 3);
    let changes = vec![
        (rows[0].clone(), -1),
        (rows[1].clone(), 1),
        (rows[2].clone(), 1),
    ];
    let out = changes_of(Table::Errors, 3, &changes).unwrap();
    let deleted: Vec<&str> = out
        .deleted_keys
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect();
    assert_eq!(
        deleted,
        vec!["raw_bc_customer_metafield:-1:non_positive_quantity"]
    );
    let ids = out
        .upserts
        .column_by_name(ERROR_ID)
        .unwrap()
        .as_string::<i32>();
    let ids: Vec<&str> = ids.iter().flatten().collect();
    assert_eq!(
        ids,
        vec![
            "raw_bc_product:-2:unknown_order",
            "raw_bc_variant:-3:negative_inventory"
        ]
    );
    assert_eq!(
        rows_from_batch(Table::Errors, &out.upserts).unwrap(),
        rows[1..]
    );
}

#[test]
fn invalid_changes_are_errors() {
    let table = Table::FctOrder;
    let rows = samples(table, 2);
    let mut other = rows[0].clone();
    if let TableRow::FctOrder(r) = &mut other {
        r.status = "x".into();
    }
    let cases: Vec<(Vec<(TableRow, isize)>, &str)> = vec![
        (vec![(rows[0].clone(), 2)], "diff 2, expected +1 or -1"),
        (vec![(rows[0].clone(), 0)], "diff 0"),
        (
            vec![(rows[0].clone(), 1), (other.clone(), 1)],
            "inserted twice",
        ),
        (vec![(rows[0].clone(), -1), (other, -1)], "retracted twice"),
        (
            vec![(sample(Table::DimSku, 1), 1)],
            "a row of table dim_sku",
        ),
    ];
    for (changes, expected) in cases {
        let err = changes_of(table, 9, &changes).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("table fct_order, epoch 9, key 1: ") && text.contains(expected),
            "{text}"
        );
    }
    let err = changes_of(table, u64::MAX, &inserts(&rows)).unwrap_err();
    assert_eq!(
        err,
        ArrowConvError::Epoch {
            table: table.name().to_string(),
            epoch: u64::MAX
        }
    );
}

#[test]
fn money_beyond_decimal_18_4_is_an_error() {
    let mut row = sample(Table::DimSku, 2);
    if let TableRow::DimSku(r) = &mut row {
        r.sale_price = Some(M(i64::MIN));
    }
    let err = changes_of(Table::DimSku, 5, &[(row, 1)]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "table dim_sku, epoch 5, key 2: column sale_price: \
         money -922337203685477.5808 does not fit Decimal128(18, 4)"
    );
}

/// `batch` with column `name` replaced by `array` (and its field retyped).
fn replace(batch: &RecordBatch, name: &str, array: ArrayRef) -> RecordBatch {
    let schema = batch.schema();
    let i = schema.index_of(name).unwrap();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[i] = Field::new(name, array.data_type().clone(), true);
    let mut columns = batch.columns().to_vec();
    columns[i] = array;
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

#[test]
fn invalid_batches_are_errors() {
    let batch = |table| {
        changes_of(table, 1, &inserts(&samples(table, 2)))
            .unwrap()
            .upserts
    };
    let customers = batch(Table::DimCustomer);
    let cases: Vec<(Table, RecordBatch, &str)> = vec![
        (
            Table::DimCustomer,
            customers.project(&[0, 1]).unwrap(),
            "table dim_customer, column full_name: missing from the batch",
        ),
        (
            Table::DimCustomer,
            replace(
                &customers,
                "created_at",
                Arc::new(Int64Array::from(vec![1, 2])),
            ),
            "table dim_customer, column created_at: type Int64, expected Timestamp(µs, \"UTC\")",
        ),
        (
            Table::DimCustomer,
            replace(
                &customers,
                "email",
                Arc::new(StringArray::from(vec![Some("a"), None])),
            ),
            "table dim_customer, column email, row 1: null in a non-null column",
        ),
        (
            Table::DimCustomer,
            replace(
                &customers,
                "lifetime_revenue",
                Arc::new(
                    Decimal128Array::from(vec![1, i128::from(i64::MAX) + 1])
                        .with_precision_and_scale(18, 4)
                        .unwrap(),
                ),
            ),
            "table dim_customer, column lifetime_revenue, row 1: money 9223372036854775808e-4 does not fit i64",
        ),
        (
            Table::Errors,
            replace(
                &batch(Table::Errors),
                "reason",
                Arc::new(StringArray::from(vec!["key_mismatch", "nope"])),
            ),
            "table _errors, column reason, row 1: unknown error reason \"nope\"",
        ),
        (
            Table::Errors,
            replace(
                &batch(Table::Errors),
                "table",
                Arc::new(StringArray::from(vec!["dim_nope", "raw_bc_order"])),
            ),
            "table _errors, column table, row 0: unknown table \"dim_nope\"",
        ),
        (
            Table::Errors,
            replace(
                &batch(Table::Errors),
                ERROR_ID,
                Arc::new(StringArray::from(vec!["x", "y"])),
            ),
            "table _errors, column error_id, row 0: \"x\" does not match the row, \
             whose id is \"raw_bc_customer_metafield:-1:non_positive_quantity\"",
        ),
    ];
    for (table, batch, expected) in cases {
        let err = rows_from_batch(table, &batch).unwrap_err();
        assert_eq!(err.to_string(), expected);
    }
}

#[test]
fn committed_changes_read_back_from_the_warehouse() {
    let dir = tempfile::tempdir().unwrap();
    let specs = table_specs();
    let mut wh = LocalWarehouse::open(dir.path(), &specs, WarehouseOptions::default()).unwrap();
    // Epoch 1: three rows per table.
    let mut model: BTreeMap<Table, BTreeMap<RowKey, TableRow>> = BTreeMap::new();
    let mut commit = Vec::new();
    for table in Table::ALL {
        let rows = samples(table, 3);
        commit.push(changes_of(table, 1, &inserts(&rows)).unwrap());
        model
            .entry(table)
            .or_default()
            .extend(rows.into_iter().map(|r| (r.key(), r)));
    }
    assert!(wh.commit(1, &commit).unwrap().published);
    // Epoch 2: per table, delete the first row, insert row 4, and update
    // the (new) first row to other values (but in `_errors` and the
    // insert-only events, keyed by what they hold).
    let mut commit = Vec::new();
    for table in Table::ALL {
        let current = model.entry(table).or_default();
        let first = current.values().next().unwrap().clone();
        let mut changes = vec![(first.clone(), -1), (sample(table, 4), 1)];
        current.remove(&first.key());
        current.insert(sample(table, 4).key(), sample(table, 4));
        if !matches!(table, Table::Errors | Table::ProductNotificationEvent) {
            let old = current.values().next().unwrap().clone();
            let RowKey::Id(key) = old.key() else {
                panic!("{table} has an id key")
            };
            let new = sample_keyed(table, key, 6);
            changes.push((old, -1));
            changes.push((new.clone(), 1));
            current.insert(new.key(), new);
        }
        commit.push(changes_of(table, 2, &changes).unwrap());
    }
    assert!(wh.commit(2, &commit).unwrap().published);
    for table in Table::ALL {
        let batch = wh.read_table(table.name()).unwrap().unwrap();
        let mut rows = rows_from_batch(table, &batch).unwrap();
        rows.sort_by_key(TableRow::key);
        let expected: Vec<TableRow> = model[&table].values().cloned().collect();
        assert_eq!(rows, expected, "{table}");
    }
    // The committed raw tables rebuild the dataflow's input.
    let raw: Vec<TableRow> = Table::ALL
        .into_iter()
        .filter(|t| t.is_raw())
        .flat_map(|t| {
            let batch = wh.read_table(t.name()).unwrap().unwrap();
            rows_from_batch(t, &batch).unwrap()
        })
        .collect();
    let expected: Vec<TableRow> = Table::ALL
        .into_iter()
        .filter(|t| t.is_raw())
        .flat_map(|t| model[&t].values().cloned())
        .collect();
    let mut got = dataflows::upserts_from_raw(raw);
    let mut want = dataflows::upserts_from_raw(expected);
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

/// PostgreSQL upserts through the dataflow, committed to a warehouse:
/// the committed `raw_pg_*` tables alone (with the customers) rebuild
/// every table exactly, as the runtime's restore does.
#[test]
fn postgres_tables_restore_from_the_warehouse() {
    use dataflows::records::Upsert;
    let customer = |id: i64, email: &str| {
        Upsert::Customer(
            id,
            Some(RawBcCustomer {
                id,
                email: email.into(),
                first_name: "Ada".into(),
                last_name: String::new().into(),
                company: String::new().into(),
                phone: String::new().into(),
                customer_group_id: 0,
                created_at: 1,
                modified_at: 2,
                payload: Default::default(),
            }),
        )
    };
    let points = |id: i64, customer_id: i64, points: i64| {
        Upsert::PointTransaction(
            id,
            Some(RawPgPointTransaction {
                id,
                customer_id,
                points,
                reason: "order".into(),
                created_at: 1_700_000_000_000_000 + id,
                updated_at: 1_700_000_000_000_000 + id,
            }),
        )
    };
    let quotation = |id: i64, email: &str| {
        Upsert::Quotation(
            id,
            Some(RawPgQuotation {
                id,
                customer_email: email.into(),
                status: "accepted".into(),
                total: M(1_234_567),
                currency_code: "KRW".into(),
                created_at: 5,
                updated_at: 6,
            }),
        )
    };
    let epochs = vec![
        vec![
            customer(1, "ada@example.com"),
            customer(2, "bob@example.com"),
            points(10, 1, 500),
            points(11, 1, -120),
            points(12, 9, 40),
            quotation(20, " ADA@example.com"),
            quotation(21, ""),
            quotation(22, "nobody@example.com"),
        ],
        vec![points(11, 2, -120), Upsert::Quotation(22, None)],
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut wh =
        LocalWarehouse::open(dir.path(), &table_specs(), WarehouseOptions::default()).unwrap();
    // The runtime's dataflow: its raw changes carry the whole rows read.
    let mut dataflow = crate::runtime::dataflow::Dataflow::start(2).unwrap();
    for (epoch, upserts) in (0..2u64).zip(epochs) {
        let changes = dataflow.step(upserts).unwrap();
        let commit: Vec<TableChanges> = Table::ALL
            .into_iter()
            .map(|table| {
                let rows = changes.get(&table).map_or(&[][..], Vec::as_slice);
                changes_of(table, epoch + 1, rows).unwrap()
            })
            .collect();
        assert!(wh.commit(epoch + 1, &commit).unwrap().published);
    }
    let committed = |table: Table| {
        let batch = wh.read_table(table.name()).unwrap().unwrap();
        let mut rows = rows_from_batch(table, &batch).unwrap();
        rows.sort();
        rows
    };
    let balances: Vec<i64> = committed(Table::DimCustomer)
        .into_iter()
        .map(|r| match r {
            TableRow::DimCustomer(d) => d.point_balance,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(balances, vec![500, -120]);
    let quoted: Vec<Option<i64>> = committed(Table::FctQuotation)
        .into_iter()
        .map(|r| match r {
            TableRow::FctQuotation(q) => q.customer_id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(quoted, vec![Some(1), None]);
    assert_eq!(committed(Table::RawPgPointTransaction).len(), 3);
    assert_eq!(committed(Table::Errors).len(), 2); // unknown_customer, empty_email

    // Restore: the raw tables, replayed in one epoch, give every table back.
    let raw: Vec<TableRow> = Table::ALL
        .into_iter()
        .filter(|t| t.is_raw())
        .flat_map(committed)
        .collect();
    let replayed = crate::runtime::dataflow::Dataflow::start(1)
        .unwrap()
        .step(dataflows::upserts_from_raw(raw))
        .unwrap();
    for table in Table::ALL {
        let mut rows: Vec<TableRow> = replayed
            .get(&table)
            .into_iter()
            .flatten()
            .filter(|(_, diff)| *diff == 1)
            .map(|(row, _)| row.clone())
            .collect();
        rows.sort();
        assert_eq!(rows, committed(table), "{table}");
    }
}

proptest! {
    #[test]
    fn arbitrary_rows_round_trip(
        rows in prop::collection::btree_map(
            any::<i64>(),
            (
                ".*",
                any::<Option<i64>>(),
                -999_999_999_999_999_999i64..=999_999_999_999_999_999,
                any::<bool>(),
            ),
            0..20,
        ),
    ) {
        let rows: Vec<TableRow> = rows
            .into_iter()
            .map(|(id, (text, opt, money, flag))| {
                TableRow::DimCustomer(DimCustomer {
                    customer_id: id,
                    email: text.clone(),
                    full_name: if flag { text } else { String::new() },
                    customer_group_id: opt.unwrap_or(id),
                    created_at: id,
                    order_count: money,
                    lifetime_revenue: M(money),
                    first_order_at: opt,
                    last_order_at: opt.map(|v| v.wrapping_neg()),
                    point_balance: money.wrapping_neg(),
                })
            })
            .collect();
        let changes = changes_of(Table::DimCustomer, 3, &inserts(&rows)).unwrap();
        prop_assert_eq!(rows_from_batch(Table::DimCustomer, &changes.upserts).unwrap(), rows);
    }
}

/// `table_changes` of rows without payload texts.
fn changes_of(
    table: Table,
    epoch: u64,
    changes: &[(TableRow, isize)],
) -> Result<TableChanges, ArrowConvError> {
    table_changes(
        table,
        epoch,
        changes,
        &dataflows::payload::Payloads::default(),
    )
}
