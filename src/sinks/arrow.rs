//! Arrow conversion of the dataflow's tables: schemas, per-epoch changes, and
//! the way back from committed batches to rows.
//!
//! Every [`Table`] has a stable Arrow schema ([`table_spec`]): one column per
//! field of its row type, named like the field and in the same order, then
//! `_epoch` (Int64, non-null: the commit that wrote the row). Types:
//!
//! | Rust field | Arrow type | note |
//! |---|---|---|
//! | `i64` | `Int64` | |
//! | `String` | `Utf8` | |
//! | `bool` | `Boolean` | |
//! | [`Micros`](dataflows::records::Micros) | `Timestamp(Microsecond, "UTC")` | the raw value is the micros |
//! | [`Money`](dataflows::records::Money) | `Decimal128(18, 4)` | the raw value is the `i64` in 1/10000 units; amounts of 10^14 units or more do not fit and are an error |
//! | [`Table`] (in `_errors`) | `Utf8` | [`Table::name`] |
//! | [`ErrorReason`] (in `_errors`) | `Utf8` | [`ErrorReason::as_str`] |
//! | `Option<T>` | as `T`, nullable | `None` is null |
//!
//! Columns are non-null unless the field is an `Option`. The key column is the
//! table's single key column ([`Table::key_columns`]). `_errors`, whose key is
//! the whole row, gets a leading Utf8 key column `error_id`,
//! `"<table>:<key>:<reason>"` (see [`error_id`]).
//!
//! [`table_changes`] turns one epoch's consolidated changes of a table into the
//! warehouse's upserts and deleted keys; [`rows_from_batch`] is the exact
//! inverse of the upserts' conversion (`_epoch` aside), used to rebuild the
//! dataflow's input from the committed `raw_*` tables at restart.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Decimal128Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use dataflows::models::dim_customer::DimCustomer;
use dataflows::models::dim_product::DimProduct;
use dataflows::models::dim_sku::DimSku;
use dataflows::models::errors::{ErrorReason, ErrorRow};
use dataflows::models::fct_onsale_product_inventory::FctOnsaleProductInventory;
use dataflows::models::fct_order::FctOrder;
use dataflows::models::fct_order_item::FctOrderItem;
use dataflows::models::fct_point_transaction::FctPointTransaction;
use dataflows::models::fct_quotation::FctQuotation;
use dataflows::models::product_notification_event::ProductNotificationEvent;
use dataflows::models::raw_bc_customer::RawBcCustomer;
use dataflows::models::raw_bc_customer_metafield::RawBcCustomerMetafield;
use dataflows::models::raw_bc_inventory::RawBcInventory;
use dataflows::models::raw_bc_order::RawBcOrder;
use dataflows::models::raw_bc_order_item::RawBcOrderItem;
use dataflows::models::raw_bc_product::RawBcProduct;
use dataflows::models::raw_bc_variant::RawBcVariant;
use dataflows::models::raw_pg_point_transaction::RawPgPointTransaction;
use dataflows::models::raw_pg_quotation::RawPgQuotation;
use dataflows::records;
use dataflows::{RowKey, Table, TableRow};

use super::local::{EPOCH, TableChanges, TableSpec};

/// The synthetic key column of tables with a composite key (`_errors`).
pub const ERROR_ID: &str = "error_id";

/// Time zone of every timestamp column.
const UTC: &str = "UTC";
/// Precision and scale of money columns.
const MONEY_PRECISION: u8 = 18;
const MONEY_SCALE: i8 = records::Money::SCALE as i8;
/// Raw money values must stay below this in absolute value (18 digits).
const MONEY_BOUND: u64 = 1_000_000_000_000_000_000;

/// A conversion failure, naming the table and the key, column or row.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArrowConvError {
    /// Changes that are not one epoch's consolidated net changes of the table.
    #[error("table {table}, epoch {epoch}, key {key}: {detail}")]
    Change {
        /// The table.
        table: Table,
        /// The epoch.
        epoch: u64,
        /// The key, as text (an `error_id` for `_errors`).
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// The epoch does not fit the Int64 `_epoch` column.
    #[error("table {table}: epoch {epoch} does not fit the Int64 _epoch column")]
    Epoch {
        /// The table.
        table: Table,
        /// The epoch.
        epoch: u64,
    },
    /// A column missing from a batch, or of the wrong type.
    #[error("table {table}, column {column}: {detail}")]
    Column {
        /// The table.
        table: Table,
        /// The column.
        column: String,
        /// What is wrong.
        detail: String,
    },
    /// A value of a batch that does not convert back.
    #[error("table {table}, column {column}, row {row}: {detail}")]
    Value {
        /// The table.
        table: Table,
        /// The column.
        column: String,
        /// The row's index in the batch.
        row: usize,
        /// What is wrong.
        detail: String,
    },
    /// Arrow refused to assemble a batch (a schema bug of this module).
    #[error("table {table}: {detail}")]
    Arrow {
        /// The table.
        table: Table,
        /// Arrow's message.
        detail: String,
    },
}

/// The warehouse spec of `table`: its name, key column and Arrow schema.
pub fn table_spec(table: Table) -> TableSpec {
    TableSpec {
        name: table.name().to_string(),
        key: key_column(table).to_string(),
        schema: Arc::new(with_row_type!(table, R => schema_of::<R>(table))),
    }
}

/// The specs of every table, in [`Table::ALL`] order.
pub fn table_specs() -> Vec<TableSpec> {
    Table::ALL.into_iter().map(table_spec).collect()
}

/// The stable key of an `_errors` row: `"<table>:<key>:<reason>"`, e.g.
/// `raw_bc_order_item:52:non_positive_quantity`.
pub fn error_id(row: &ErrorRow) -> String {
    format!("{}:{}:{}", row.table.name(), row.key, row.reason.as_str())
}

/// Converts one epoch's consolidated changes of `table` into the warehouse's
/// upserts (with `_epoch` = `epoch`, in key order) and deleted keys.
///
/// Per key: `+1` alone inserts, `-1` alone deletes, `-1` (old row) with `+1`
/// (new row) updates to the new row. Any other diff, two insertions or two
/// retractions of a key, a row of another table, or a value that does not fit
/// its column is an error naming the table, key and epoch.
pub fn table_changes(
    table: Table,
    epoch: u64,
    changes: &[(TableRow, isize)],
) -> Result<TableChanges, ArrowConvError> {
    #[derive(Default)]
    struct Net<'a> {
        retracted: Option<&'a TableRow>,
        inserted: Option<&'a TableRow>,
    }
    let mut net: BTreeMap<RowKey, Net> = BTreeMap::new();
    for (row, diff) in changes {
        let key = row.key();
        let err = |detail: String| ArrowConvError::Change {
            table,
            epoch,
            key: key_text(&key),
            detail,
        };
        if row.table_id() != table {
            return Err(err(format!("a row of table {}", row.table_id())));
        }
        let entry = net.entry(key).or_default();
        let (slot, what) = match diff {
            1 => (&mut entry.inserted, "inserted"),
            -1 => (&mut entry.retracted, "retracted"),
            d => return Err(err(format!("diff {d}, expected +1 or -1"))),
        };
        if slot.replace(row).is_some() {
            return Err(err(format!("{what} twice in one epoch")));
        }
    }
    let mut upserts = Vec::new();
    let mut deleted = Vec::new();
    for (key, change) in net {
        match change.inserted {
            Some(row) => upserts.push(row),
            None => deleted.push(key),
        }
    }
    let epoch_value = i64::try_from(epoch).map_err(|_| ArrowConvError::Epoch { table, epoch })?;
    let upserts =
        with_row_type!(table, R => upsert_batch::<R>(table, epoch, epoch_value, &upserts))?;
    Ok(TableChanges {
        table: table.name().to_string(),
        upserts,
        deleted_keys: key_array(table, &deleted),
    })
}

/// The rows of a batch of `table` (as written by [`table_changes`] or read
/// back from the warehouse), in batch order; `_epoch` and any other extra
/// column are ignored, and columns are found by name. Exact inverse of the
/// upserts' conversion. Errors name the table, column and row.
pub fn rows_from_batch(table: Table, batch: &RecordBatch) -> Result<Vec<TableRow>, ArrowConvError> {
    let rows: Vec<TableRow> = with_row_type!(table, R => R::read_rows(table, batch))?;
    if has_synthetic_key(table) {
        let ids = read_column::<Str>(table, batch, ERROR_ID)?;
        for (i, (row, id)) in rows.iter().zip(ids).enumerate() {
            let expected = key_text(&row.key());
            if id != expected {
                return Err(ArrowConvError::Value {
                    table,
                    column: ERROR_ID.to_string(),
                    row: i,
                    detail: format!("{id:?} does not match the row, whose id is {expected:?}"),
                });
            }
        }
    }
    Ok(rows)
}

// --- Keys -------------------------------------------------------------------

/// Whether `table`'s key is composite, hence the synthetic `error_id` column.
fn has_synthetic_key(table: Table) -> bool {
    table.key_columns().len() != 1
}

fn key_column(table: Table) -> &'static str {
    match table.key_columns() {
        [single] => single,
        _ => ERROR_ID,
    }
}

/// A key as written to the key column (and shown in errors).
fn key_text(key: &RowKey) -> String {
    match key {
        RowKey::Error(row) => error_id(row),
        other => other.text(),
    }
}

/// Whether `table`'s key column is text: `_errors`' synthetic `error_id`, or
/// `product_notification_event.event_id`.
fn has_text_key(table: Table) -> bool {
    has_synthetic_key(table) || table == Table::ProductNotificationEvent
}

/// The key column's values for `keys`: Utf8 `error_id`s / `event_id`s or Int64 ids.
fn key_array(table: Table, keys: &[RowKey]) -> ArrayRef {
    if has_text_key(table) {
        Arc::new(StringArray::from_iter_values(keys.iter().map(key_text)))
    } else {
        Arc::new(Int64Array::from_iter(keys.iter().map(|k| match k {
            RowKey::Id(id) => Some(*id),
            RowKey::Error(_) | RowKey::Event { .. } => None,
        })))
    }
}

// --- Tables -----------------------------------------------------------------

/// Runs `$body` with the type alias `$R` set to the row type of `$table`.
#[rustfmt::skip]
macro_rules! with_row_type {
    ($table:expr, $R:ident => $body:expr) => {
        match $table {
            Table::RawBcCustomer => { type $R = RawBcCustomer; $body }
            Table::RawBcCustomerMetafield => { type $R = RawBcCustomerMetafield; $body }
            Table::RawBcProduct => { type $R = RawBcProduct; $body }
            Table::RawBcVariant => { type $R = RawBcVariant; $body }
            Table::RawBcInventory => { type $R = RawBcInventory; $body }
            Table::RawBcOrder => { type $R = RawBcOrder; $body }
            Table::RawBcOrderItem => { type $R = RawBcOrderItem; $body }
            Table::RawPgPointTransaction => { type $R = RawPgPointTransaction; $body }
            Table::RawPgQuotation => { type $R = RawPgQuotation; $body }
            Table::DimCustomer => { type $R = DimCustomer; $body }
            Table::DimProduct => { type $R = DimProduct; $body }
            Table::DimSku => { type $R = DimSku; $body }
            Table::FctOrder => { type $R = FctOrder; $body }
            Table::FctOrderItem => { type $R = FctOrderItem; $body }
            Table::FctPointTransaction => { type $R = FctPointTransaction; $body }
            Table::FctQuotation => { type $R = FctQuotation; $body }
            Table::FctOnsaleProductInventory => { type $R = FctOnsaleProductInventory; $body }
            Table::ProductNotificationEvent => { type $R = ProductNotificationEvent; $body }
            Table::Errors => { type $R = ErrorRow; $body }
        }
    };
}
use with_row_type;

/// The full schema of `table`, whose rows are `R`s.
fn schema_of<R: ArrowRow>(table: Table) -> Schema {
    let mut fields = Vec::new();
    if has_synthetic_key(table) {
        fields.push(Field::new(ERROR_ID, DataType::Utf8, false));
    }
    fields.extend(R::fields());
    fields.push(Field::new(EPOCH, DataType::Int64, false));
    Schema::new(fields)
}

/// The upserts batch of `rows`, all of `table`, whose rows are `R`s.
fn upsert_batch<R: ArrowRow>(
    table: Table,
    epoch: u64,
    epoch_value: i64,
    rows: &[&TableRow],
) -> Result<RecordBatch, ArrowConvError> {
    let change_err = |row: &TableRow, detail: String| ArrowConvError::Change {
        table,
        epoch,
        key: key_text(&row.key()),
        detail,
    };
    let typed = rows
        .iter()
        .map(|row| {
            R::from_row(row).ok_or_else(|| change_err(row, format!("a row of {}", row.table())))
        })
        .collect::<Result<Vec<&R>, _>>()?;
    let mut columns: Vec<ArrayRef> = Vec::new();
    if has_synthetic_key(table) {
        let keys: Vec<RowKey> = rows.iter().map(|row| row.key()).collect();
        columns.push(key_array(table, &keys));
    }
    let values = R::columns(&typed).map_err(|e| match rows.get(e.row) {
        Some(row) => change_err(row, format!("column {}: {}", e.column, e.detail)),
        None => ArrowConvError::Arrow {
            table,
            detail: format!("column {}: {}", e.column, e.detail),
        },
    })?;
    columns.extend(values);
    columns.push(Arc::new(Int64Array::from(vec![epoch_value; rows.len()])));
    RecordBatch::try_new(Arc::new(schema_of::<R>(table)), columns).map_err(|e| {
        ArrowConvError::Arrow {
            table,
            detail: e.to_string(),
        }
    })
}

/// A value of one row that does not fit its column.
struct BuildError {
    row: usize,
    column: &'static str,
    detail: String,
}

/// A row type with a fixed list of columns (implemented by [`arrow_rows!`]).
trait ArrowRow: Sized + 'static {
    /// The row's own columns, in field order.
    fn fields() -> Vec<Field>;
    /// One array per column, in field order.
    fn columns(rows: &[&Self]) -> Result<Vec<ArrayRef>, BuildError>;
    /// The rows of a batch, by column name.
    fn read_rows(table: Table, batch: &RecordBatch) -> Result<Vec<TableRow>, ArrowConvError>;
    /// The row inside a [`TableRow`] of this type.
    fn from_row(row: &TableRow) -> Option<&Self>;
}

/// Implements [`ArrowRow`] for `Struct` (held by `TableRow::Variant`) from its
/// fields and their column kinds: `Variant(Struct) { field: Kind, .. }`, with
/// `Option<Kind>` for a nullable column. List every field, in declaration
/// order: the struct literal built in `read_rows` makes a missing field a
/// compile error, and a kind whose value type differs from the field's too.
macro_rules! arrow_rows {
    ($($variant:ident($row:ident) { $($field:ident: $kind:ty),+ $(,)? })+) => {$(
        impl ArrowRow for $row {
            fn fields() -> Vec<Field> {
                vec![$(Field::new(
                    stringify!($field),
                    <$kind as Column>::data_type(),
                    <$kind as Column>::NULLABLE,
                )),+]
            }

            fn columns(rows: &[&Self]) -> Result<Vec<ArrayRef>, BuildError> {
                Ok(vec![$(
                    <$kind as Column>::build(rows.iter().map(|r| &r.$field)).map_err(
                        |(row, detail)| BuildError { row, column: stringify!($field), detail },
                    )?
                ),+])
            }

            fn read_rows(
                table: Table,
                batch: &RecordBatch,
            ) -> Result<Vec<TableRow>, ArrowConvError> {
                // One iterator per column, each exactly `num_rows` long.
                $(let mut $field =
                    read_column::<$kind>(table, batch, stringify!($field))?.into_iter();)+
                let mut rows = Vec::with_capacity(batch.num_rows());
                while let ($(Some($field),)+) = ($($field.next(),)+) {
                    rows.push(TableRow::$variant($row { $($field),+ }));
                }
                Ok(rows)
            }

            fn from_row(row: &TableRow) -> Option<&Self> {
                match row {
                    TableRow::$variant(r) => Some(r),
                    _ => None,
                }
            }
        }
    )+};
}

arrow_rows! {
    RawBcCustomer(RawBcCustomer) {
        id: I64,
        email: Txt,
        first_name: Txt,
        last_name: Txt,
        company: Txt,
        phone: Txt,
        customer_group_id: I64,
        created_at: Ts,
        modified_at: Ts,
    }
    RawBcCustomerMetafield(RawBcCustomerMetafield) {
        id: I64,
        customer_id: I64,
        namespace: Str,
        key: Str,
        value: Str,
        created_at: Ts,
        modified_at: Ts,
    }
    RawBcProduct(RawBcProduct) {
        id: I64,
        name: Str,
        sku: Str,
        price: Money,
        sale_price: Money,
        is_visible: Bool,
        availability: Str,
        inventory_tracking: Str,
        brand_id: I64,
        created_at: Ts,
        modified_at: Ts,
    }
    RawBcVariant(RawBcVariant) {
        id: I64,
        product_id: I64,
        sku: Str,
        price: Option<Money>,
        sale_price: Option<Money>,
        inventory_level: I64,
        is_purchasing_disabled: Bool,
    }
    RawBcInventory(RawBcInventory) {
        variant_id: I64,
        product_id: I64,
        sku: Str,
        available_to_sell: I64,
        total_inventory_onhand: I64,
        is_in_stock: Bool,
    }
    RawBcOrder(RawBcOrder) {
        id: I64,
        customer_id: I64,
        status_id: I64,
        status: Txt,
        subtotal_ex_tax: Money,
        subtotal_inc_tax: Money,
        total_ex_tax: Money,
        total_inc_tax: Money,
        refunded_amount: Money,
        items_total: I64,
        currency_code: Txt,
        is_deleted: Bool,
        created_at: Ts,
        modified_at: Ts,
    }
    RawBcOrderItem(RawBcOrderItem) {
        id: I64,
        order_id: I64,
        product_id: I64,
        variant_id: I64,
        sku: Txt,
        name: Txt,
        quantity: I64,
        base_price: Money,
        price_ex_tax: Money,
        price_inc_tax: Money,
        total_ex_tax: Money,
        total_inc_tax: Money,
    }
    RawPgPointTransaction(RawPgPointTransaction) {
        id: I64,
        customer_id: I64,
        points: I64,
        reason: Str,
        created_at: Ts,
        updated_at: Ts,
    }
    RawPgQuotation(RawPgQuotation) {
        id: I64,
        customer_email: Str,
        status: Str,
        total: Money,
        currency_code: Str,
        created_at: Ts,
        updated_at: Ts,
    }
    DimCustomer(DimCustomer) {
        customer_id: I64,
        email: Str,
        full_name: Str,
        customer_group_id: I64,
        created_at: Ts,
        order_count: I64,
        lifetime_revenue: Money,
        first_order_at: Option<Ts>,
        last_order_at: Option<Ts>,
        point_balance: I64,
    }
    DimProduct(DimProduct) {
        product_id: I64,
        name: Str,
        brand_id: Option<I64>,
        sku: Str,
        price: Money,
        sale_price: Option<Money>,
        is_visible: Bool,
        availability: Str,
        inventory_tracking: Str,
        variant_count: I64,
        total_inventory: I64,
    }
    DimSku(DimSku) {
        sku_id: I64,
        product_id: I64,
        product_name: Str,
        sku: Str,
        price: Money,
        sale_price: Option<Money>,
        effective_price: Money,
        inventory_level: I64,
        is_purchasable: Bool,
        is_in_stock: Bool,
    }
    FctOrder(FctOrder) {
        order_id: I64,
        customer_id: Option<I64>,
        status_id: I64,
        status: Str,
        is_complete: Bool,
        subtotal_ex_tax: Money,
        total_ex_tax: Money,
        total_inc_tax: Money,
        refunded_amount: Money,
        is_revenue: Bool,
        net_revenue: Money,
        item_count: I64,
        quantity: I64,
        ordered_at: Ts,
        modified_at: Ts,
    }
    FctOrderItem(FctOrderItem) {
        order_item_id: I64,
        order_id: I64,
        customer_id: Option<I64>,
        product_id: I64,
        sku_id: I64,
        sku: Str,
        quantity: I64,
        unit_price: Money,
        line_total: Money,
        status_id: I64,
        status: Str,
        ordered_at: Ts,
    }
    FctPointTransaction(FctPointTransaction) {
        point_transaction_id: I64,
        customer_id: I64,
        points: I64,
        is_earned: Bool,
        reason: Str,
        created_at: Ts,
        updated_at: Ts,
    }
    FctQuotation(FctQuotation) {
        quotation_id: I64,
        customer_id: Option<I64>,
        customer_email: Str,
        status: Str,
        is_accepted: Bool,
        total: Money,
        currency_code: Str,
        created_at: Ts,
        updated_at: Ts,
    }
    FctOnsaleProductInventory(FctOnsaleProductInventory) {
        sku_id: I64,
        product_id: I64,
        sku: Str,
        inventory_level: I64,
        price: Money,
        sale_price: Option<Money>,
        effective_price: Money,
    }
    ProductNotificationEvent(ProductNotificationEvent) {
        event_id: Str,
        customer_id: I64,
        customer_email: Str,
        sku_id: I64,
        product_id: I64,
        sku: Str,
        episode: I64,
        inventory_level: I64,
        price: Money,
        sale_price: Money,
    }
    Errors(ErrorRow) {
        table: TableName,
        key: I64,
        reason: Reason,
    }
}

// --- Columns ----------------------------------------------------------------

/// Where a column is being read, for errors.
#[derive(Clone, Copy)]
struct Ctx {
    table: Table,
    column: &'static str,
}

impl Ctx {
    fn column_err(self, detail: impl Into<String>) -> ArrowConvError {
        ArrowConvError::Column {
            table: self.table,
            column: self.column.to_string(),
            detail: detail.into(),
        }
    }

    fn value_err(self, row: usize, detail: impl Into<String>) -> ArrowConvError {
        ArrowConvError::Value {
            table: self.table,
            column: self.column.to_string(),
            row,
            detail: detail.into(),
        }
    }
}

/// The values of column `column` of `batch`, checked against `C`'s type.
fn read_column<C: Column>(
    table: Table,
    batch: &RecordBatch,
    column: &'static str,
) -> Result<Vec<C::Value>, ArrowConvError> {
    let ctx = Ctx { table, column };
    let array = batch
        .column_by_name(column)
        .ok_or_else(|| ctx.column_err("missing from the batch"))?;
    let expected = C::data_type();
    if array.data_type() != &expected {
        return Err(ctx.column_err(format!("type {}, expected {expected}", array.data_type())));
    }
    let values = C::read(array.as_ref(), ctx)?;
    if values.len() != batch.num_rows() {
        return Err(ctx.column_err(format!(
            "{} values for {} rows",
            values.len(),
            batch.num_rows()
        )));
    }
    Ok(values)
}

fn downcast<A: ?Sized>(array: Option<&A>, ctx: Ctx) -> Result<&A, ArrowConvError> {
    array.ok_or_else(|| ctx.column_err("unexpected array type"))
}

/// A column kind: a Rust value type and its Arrow type, nulls allowed. A kind
/// `K` is a non-null column of `K::Value`s; `Option<K>` a nullable one.
trait Kind {
    type Value: 'static;
    fn data_type() -> DataType;
    /// The array of `values`; `Err((row, why))` for a value that does not fit.
    fn build<'a>(
        values: impl Iterator<Item = Option<&'a Self::Value>>,
    ) -> Result<ArrayRef, (usize, String)>;
    /// The values of `array`, already known to be of [`Kind::data_type`].
    fn read(array: &dyn Array, ctx: Ctx) -> Result<Vec<Option<Self::Value>>, ArrowConvError>;
}

/// A column of a row type: a [`Kind`], or `Option<Kind>` for a nullable one.
trait Column {
    type Value: 'static;
    const NULLABLE: bool;
    fn data_type() -> DataType;
    fn build<'a>(
        values: impl Iterator<Item = &'a Self::Value>,
    ) -> Result<ArrayRef, (usize, String)>;
    fn read(array: &dyn Array, ctx: Ctx) -> Result<Vec<Self::Value>, ArrowConvError>;
}

impl<K: Kind> Column for K {
    type Value = K::Value;
    const NULLABLE: bool = false;

    fn data_type() -> DataType {
        K::data_type()
    }

    fn build<'a>(
        values: impl Iterator<Item = &'a Self::Value>,
    ) -> Result<ArrayRef, (usize, String)> {
        K::build(values.map(Some))
    }

    fn read(array: &dyn Array, ctx: Ctx) -> Result<Vec<Self::Value>, ArrowConvError> {
        K::read(array, ctx)?
            .into_iter()
            .enumerate()
            .map(|(row, v)| v.ok_or_else(|| ctx.value_err(row, "null in a non-null column")))
            .collect()
    }
}

impl<K: Kind> Column for Option<K> {
    type Value = Option<K::Value>;
    const NULLABLE: bool = true;

    fn data_type() -> DataType {
        K::data_type()
    }

    fn build<'a>(
        values: impl Iterator<Item = &'a Self::Value>,
    ) -> Result<ArrayRef, (usize, String)> {
        K::build(values.map(Option::as_ref))
    }

    fn read(array: &dyn Array, ctx: Ctx) -> Result<Vec<Self::Value>, ArrowConvError> {
        K::read(array, ctx)
    }
}

/// `i64` as Int64.
struct I64;
/// `String` as Utf8.
struct Str;
/// Utf8, held as [`records::Text`].
struct Txt;
/// `bool` as Boolean.
struct Bool;
/// [`records::Micros`] as `Timestamp(Microsecond, "UTC")`.
struct Ts;
/// [`records::Money`] as `Decimal128(18, 4)`.
struct Money;
/// [`Table`] as its name (Utf8).
struct TableName;
/// [`ErrorReason`] as its code (Utf8).
struct Reason;

impl Kind for I64 {
    type Value = i64;

    fn data_type() -> DataType {
        DataType::Int64
    }

    fn build<'a>(
        values: impl Iterator<Item = Option<&'a i64>>,
    ) -> Result<ArrayRef, (usize, String)> {
        Ok(Arc::new(values.map(|v| v.copied()).collect::<Int64Array>()))
    }

    fn read(array: &dyn Array, ctx: Ctx) -> Result<Vec<Option<i64>>, ArrowConvError> {
        Ok(downcast(array.as_primitive_opt::<Int64Type>(), ctx)?
            .iter()
            .collect())
    }
}

impl Kind for Str {
    type Value = String;

    fn data_type() -> DataType {
        DataType::Utf8
    }

    fn build<'a>(
        values: impl Iterator<Item = Option<&'a String>>,
    ) -> Result<ArrayRef, (usize, String)> {
        Ok(Arc::new(
            values
                .map(|v| v.map(String::as_str))
                .collect::<StringArray>(),
        ))
    }

    fn read(array: &dyn Array, ctx: Ctx) -> Result<Vec<Option<String>>, ArrowConvError> {
        Ok(downcast(array.as_string_opt::<i32>(), ctx)?
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect())
    }
}

impl Kind for Txt {
    type Value = records::Text;

    fn data_type() -> DataType {
        DataType::Utf8
    }

    fn build<'a>(
        values: impl Iterator<Item = Option<&'a records::Text>>,
    ) -> Result<ArrayRef, (usize, String)> {
        Ok(Arc::new(
            values
                .map(|v| v.map(records::Text::as_str))
                .collect::<StringArray>(),
        ))
    }

    fn read(array: &dyn Array, ctx: Ctx) -> Result<Vec<Option<records::Text>>, ArrowConvError> {
        Ok(downcast(array.as_string_opt::<i32>(), ctx)?
            .iter()
            .map(|v| v.map(records::Text::from))
            .collect())
    }
}

impl Kind for Bool {
    type Value = bool;

    fn data_type() -> DataType {
        DataType::Boolean
    }

    fn build<'a>(
        values: impl Iterator<Item = Option<&'a bool>>,
    ) -> Result<ArrayRef, (usize, String)> {
        Ok(Arc::new(
            values.map(|v| v.copied()).collect::<BooleanArray>(),
        ))
    }

    fn read(array: &dyn Array, ctx: Ctx) -> Result<Vec<Option<bool>>, ArrowConvError> {
        Ok(downcast(array.as_boolean_opt(), ctx)?.iter().collect())
    }
}

impl Kind for Ts {
    type Value = records::Micros;

    fn data_type() -> DataType {
        DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
    }

    fn build<'a>(
        values: impl Iterator<Item = Option<&'a i64>>,
    ) -> Result<ArrayRef, (usize, String)> {
        let array = values
            .map(|v| v.copied())
            .collect::<TimestampMicrosecondArray>()
            .with_timezone(UTC);
        Ok(Arc::new(array))
    }

    fn read(array: &dyn Array, ctx: Ctx) -> Result<Vec<Option<i64>>, ArrowConvError> {
        Ok(
            downcast(array.as_primitive_opt::<TimestampMicrosecondType>(), ctx)?
                .iter()
                .collect(),
        )
    }
}

impl Kind for Money {
    type Value = records::Money;

    fn data_type() -> DataType {
        DataType::Decimal128(MONEY_PRECISION, MONEY_SCALE)
    }

    fn build<'a>(
        values: impl Iterator<Item = Option<&'a records::Money>>,
    ) -> Result<ArrayRef, (usize, String)> {
        let raw = values
            .enumerate()
            .map(|(row, v)| match v {
                Some(m) if m.0.unsigned_abs() >= MONEY_BOUND => Err((
                    row,
                    format!("money {m} does not fit Decimal128({MONEY_PRECISION}, {MONEY_SCALE})"),
                )),
                _ => Ok(v.map(|m| i128::from(m.0))),
            })
            .collect::<Result<Decimal128Array, _>>()?;
        // A constant, valid decimal type: `with_data_type` cannot fail here.
        Ok(Arc::new(raw.with_data_type(<Self as Kind>::data_type())))
    }

    fn read(array: &dyn Array, ctx: Ctx) -> Result<Vec<Option<records::Money>>, ArrowConvError> {
        downcast(array.as_primitive_opt::<Decimal128Type>(), ctx)?
            .iter()
            .enumerate()
            .map(|(row, v)| {
                v.map(|raw| {
                    i64::try_from(raw)
                        .map(records::Money)
                        .map_err(|_| ctx.value_err(row, format!("money {raw}e-4 does not fit i64")))
                })
                .transpose()
            })
            .collect()
    }
}

impl Kind for TableName {
    type Value = Table;

    fn data_type() -> DataType {
        DataType::Utf8
    }

    fn build<'a>(
        values: impl Iterator<Item = Option<&'a Table>>,
    ) -> Result<ArrayRef, (usize, String)> {
        Ok(Arc::new(
            values.map(|v| v.map(|t| t.name())).collect::<StringArray>(),
        ))
    }

    fn read(array: &dyn Array, ctx: Ctx) -> Result<Vec<Option<Table>>, ArrowConvError> {
        parse_strings(array, ctx, "table", Table::from_name)
    }
}

impl Kind for Reason {
    type Value = ErrorReason;

    fn data_type() -> DataType {
        DataType::Utf8
    }

    fn build<'a>(
        values: impl Iterator<Item = Option<&'a ErrorReason>>,
    ) -> Result<ArrayRef, (usize, String)> {
        Ok(Arc::new(
            values
                .map(|v| v.map(|r| r.as_str()))
                .collect::<StringArray>(),
        ))
    }

    fn read(array: &dyn Array, ctx: Ctx) -> Result<Vec<Option<ErrorReason>>, ArrowConvError> {
        parse_strings(array, ctx, "error reason", |s| {
            ErrorReason::ALL.into_iter().find(|r| r.as_str() == s)
        })
    }
}

/// Parses every non-null string of a Utf8 array with `parse`.
fn parse_strings<T>(
    array: &dyn Array,
    ctx: Ctx,
    what: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Vec<Option<T>>, ArrowConvError> {
    downcast(array.as_string_opt::<i32>(), ctx)?
        .iter()
        .enumerate()
        .map(|(row, v)| {
            v.map(|s| parse(s).ok_or_else(|| ctx.value_err(row, format!("unknown {what} {s:?}"))))
                .transpose()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use arrow_array::cast::AsArray;
    use dataflows::records::Money as M;
    use proptest::prelude::*;

    use super::*;
    use crate::sinks::local::{LocalWarehouse, WarehouseOptions};

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
            }),
            Table::RawBcCustomerMetafield => {
                TableRow::RawBcCustomerMetafield(RawBcCustomerMetafield {
                    id: key,
                    customer_id: 10 + i,
                    namespace: text("ns"),
                    key: text("k"),
                    value: text("{\"v\": \"\\u00e9\"}"),
                    created_at: at,
                    modified_at: i64::MIN + i,
                })
            }
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
            }),
            Table::RawBcVariant => TableRow::RawBcVariant(RawBcVariant {
                id: key,
                product_id: 100,
                sku: text("V"),
                price: opt(12_345).map(M),
                sale_price: if i == 3 { Some(M(-5)) } else { None },
                inventory_level: -i,
                is_purchasing_disabled: true,
            }),
            Table::RawBcInventory => TableRow::RawBcInventory(RawBcInventory {
                variant_id: key,
                product_id: 100,
                sku: text("V"),
                available_to_sell: -3,
                total_inventory_onhand: 7,
                is_in_stock: false,
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
            }),
            Table::RawPgPointTransaction => {
                TableRow::RawPgPointTransaction(RawPgPointTransaction {
                    id: key,
                    customer_id: 10 + i,
                    points: if i % 2 == 0 { -i * 100 } else { i64::MAX - i },
                    reason: text("redeem"),
                    created_at: at,
                    updated_at: i64::MIN + i,
                })
            }
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
                    event_id: dataflows::models::product_notification_event::event_id(key, 3, i),
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
            let changes = table_changes(table, 42, &inserts(&rows)).unwrap();
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
        let batch = table_changes(Table::RawBcOrder, 1, &[(row, 1)])
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
        let batch = table_changes(Table::DimCustomer, 1, &[(row, 1)])
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
        let out = table_changes(table, 7, &changes).unwrap();
        assert_eq!(
            rows_from_batch(table, &out.upserts).unwrap(),
            vec![old[0].clone(), updated, old[3].clone()]
        );
        assert_eq!(int_keys(&out.deleted_keys), vec![3]);
        // The order of changes does not matter.
        let mut reversed = changes.clone();
        reversed.reverse();
        let again = table_changes(table, 7, &reversed).unwrap();
        assert_eq!(again.upserts, out.upserts);
        // No changes: empty batch and keys, still in schema.
        let empty = table_changes(table, 7, &[]).unwrap();
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
        let out = table_changes(Table::Errors, 3, &changes).unwrap();
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
            let err = table_changes(table, 9, &changes).unwrap_err();
            let text = err.to_string();
            assert!(
                text.starts_with("table fct_order, epoch 9, key 1: ") && text.contains(expected),
                "{text}"
            );
        }
        let err = table_changes(table, u64::MAX, &inserts(&rows)).unwrap_err();
        assert_eq!(
            err,
            ArrowConvError::Epoch {
                table,
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
        let err = table_changes(Table::DimSku, 5, &[(row, 1)]).unwrap_err();
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
            table_changes(table, 1, &inserts(&samples(table, 2)))
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
            commit.push(table_changes(table, 1, &inserts(&rows)).unwrap());
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
            commit.push(table_changes(table, 2, &changes).unwrap());
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
        use dataflows::records::{Customer, PointTransaction, Quotation, Upsert};
        let customer = |id: i64, email: &str| {
            Upsert::Customer(
                id,
                Some(Customer {
                    id,
                    email: email.into(),
                    first_name: "Ada".into(),
                    last_name: String::new(),
                    company: String::new(),
                    phone: String::new(),
                    customer_group_id: 0,
                    date_created: 1,
                    date_modified: 2,
                }),
            )
        };
        let points = |id: i64, customer_id: i64, points: i64| {
            Upsert::PointTransaction(
                id,
                Some(PointTransaction {
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
                Some(Quotation {
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
        let updates = dataflows::harness::run_updates(2, epochs).unwrap();
        for epoch in 0..2u64 {
            let commit: Vec<TableChanges> = Table::ALL
                .into_iter()
                .map(|table| {
                    let changes: Vec<(TableRow, isize)> = updates
                        .iter()
                        .filter(|(row, e, _)| *e == epoch && row.table_id() == table)
                        .map(|(row, _, diff)| (row.clone(), *diff))
                        .collect();
                    table_changes(table, epoch + 1, &changes).unwrap()
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
        let replayed =
            dataflows::harness::run_updates(1, vec![dataflows::upserts_from_raw(raw)]).unwrap();
        for table in Table::ALL {
            let mut rows: Vec<TableRow> = replayed
                .iter()
                .filter(|(row, _, diff)| row.table_id() == table && *diff == 1)
                .map(|(row, _, _)| row.clone())
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
            let changes = table_changes(Table::DimCustomer, 3, &inserts(&rows)).unwrap();
            prop_assert_eq!(rows_from_batch(Table::DimCustomer, &changes.upserts).unwrap(), rows);
        }
    }
}
