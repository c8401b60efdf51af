//! govflow's models: the typed records that sources produce and the
//! differential-dataflow code that maintains dimensions and facts over them.
//!
//! This crate does no I/O and knows nothing of tokio: sources (in the `govflow`
//! crate) turn outside data into [`records::Upsert`]s, and everything here is a
//! pure function of those.
//!
//! # Tables
//!
//! Each table has two modules of the same name. Under [`rows`], its contract:
//! grain, key, columns and rules, with its row type and the rules as
//! functions of rows. Under [`models`], its dataflow: how its rows are computed
//! and kept up to date. The tables: the `raw_bc_*` (BigCommerce) and
//! `raw_pg_*` (PostgreSQL: [`rows::raw_pg_point_transaction`],
//! [`rows::raw_pg_quotation`]) tables (current source state, built with upsert
//! semantics), [`rows::dim_customer`], [`rows::dim_product`],
//! [`rows::dim_sku`], [`rows::fct_order`], [`rows::fct_order_item`],
//! [`rows::fct_point_transaction`], [`rows::fct_quotation`],
//! [`rows::fct_onsale_product_inventory`],
//! [`rows::product_notification_event`] (restock notifications: the one table
//! that depends on the history of the raw state, not only on its current
//! value) and [`rows::errors`] (`_errors`). [`Table`] names them; [`TableRow`]
//! holds a row of any of them. [`oracle`] recomputes every table from scratch.
//!
//! Modules import only from those below them: [`scalar`] (money, timestamps),
//! [`catalog`], [`payload`], [`rows`] (with [`Table`]), [`records`] (the
//! upserts), then the dataflow: [`ops`], the input, [`arrangements`],
//! [`models`], and [`build`] on top.
//!
//! # State
//!
//! Arranged once and shared ([`Arrangements`]): one arrangement per `raw_*`
//! table (by upsert key, each row's [`projection`]: the columns the models
//! read and a fingerprint of the whole row; an order's lines as one value),
//! variants-with-inventory by product, `(id, points)` of point transactions
//! by customer, and one customer id per normalized email. Besides those,
//! `dim_customer` keeps `(created_at, total)` per revenue order and each
//! distinct points value by customer plus one stats value per customer,
//! `dim_product` one stats value per product, `fct_quotation` the quotations'
//! normalized emails and their matched customer ids, and each left join the
//! ids of left rows currently without a match. Everything else (`dim_sku`,
//! the other facts, `_errors`' row checks) is joins and maps over those,
//! without state of its own.
//!
//! # Driving the dataflow
//!
//! Inside a timely worker, [`build`] wires the models onto an [`UpsertInput`]
//! and returns [`Outputs`]: one collection of `(row, epoch, diff)` changes per
//! table. [`Outputs::capture`] buffers every table's changes for the driver and
//! gives the probe to wait on. Each epoch, every worker sends its upserts
//! (`send`; the last one per key wins within an epoch), advances its input, steps
//! until the probe passes the new epoch, and takes the finished epochs'
//! consolidated changes, grouped by table:
//!
//! ```
//! use dataflows::rows::raw_bc_customer::RawBcCustomer;
//! use dataflows::records::Upsert;
//!
//! timely::execute(timely::Config::process(2), |worker| {
//!     let mut input = dataflows::UpsertInput::new();
//!     let captured = worker.dataflow(|scope| dataflows::build(scope, &mut input).capture());
//!     for epoch in 0..3u64 {
//!         if worker.index() == 0 {
//!             let customer = RawBcCustomer {
//!                 id: 7,
//!                 email: format!("v{epoch}@example.com").into(),
//!                 first_name: "Ada".into(),
//!                 last_name: "Lovelace".into(),
//!                 company: Default::default(),
//!                 phone: Default::default(),
//!                 customer_group_id: 0,
//!                 created_at: 0,
//!                 modified_at: epoch as i64,
//!                 payload: Default::default(),
//!             };
//!             input.send(Upsert::Customer(7, Some(customer)));
//!         }
//!         input.advance_to(epoch + 1);
//!         worker.step_while(|| captured.probe.less_than(&input.epoch()));
//!         for changes in captured.changes.take_before(input.epoch()) {
//!             for (table, rows) in changes.tables() {
//!                 println!("epoch {} {table}: {} changes", changes.epoch, rows.len());
//!             }
//!         }
//!     }
//! })
//! .expect("timely runs");
//! ```
//!
//! Notes for drivers:
//! - Every worker must create and advance its own [`UpsertInput`], sending or
//!   not. A key's upserts within one epoch should come from one worker (see
//!   [`UpsertInput`]).
//! - Each worker captures its own share of the changes: [`Outputs::capture`]
//!   routes every change by `(table, key)`, so a worker holds the complete,
//!   consolidated change of each key it owns (an updated row's retraction and
//!   insertion together). The union over workers is the epoch's change set;
//!   shares can be written independently or merged in any order.
//! - Epochs without net changes produce no [`EpochChanges`] entry.
//! - A `raw_*` table's changes are [`TableRow::Projected`] rows: they name the
//!   keys inserted and retracted. The whole row of an insertion is the one the
//!   driver sent in that epoch (the last for its key): keep the epoch's
//!   upserts to write the raw tables.
//! - A worker's capture buffer holds an epoch's changes until the driver takes
//!   them: split a large load into epochs of some thousands of upserts to
//!   bound that memory (the peak of a load in epochs of a million upserts was
//!   four times the state it built).
//! - At restart, replaying the committed `raw_*` state (see
//!   [`upserts_from_raw`]) in the first epochs reproduces exactly the committed
//!   rows of every table (the models are functions of the raw state): a
//!   driver can drop those epochs' changes instead of publishing them again.
//!   `product_notification_event` is the exception that proves the rule:
//!   the replay announces every on-sale SKU afresh, and dropping that output
//!   is what keeps an episode from being announced twice.
//! - [`Outputs::arrangements`] exposes the shared arrangements for further
//!   models; [`Outputs::all`] gives every table as one collection of
//!   [`TableRow`] for a custom capture (probe it downstream of your capture).
//! - [`upserts_from_raw`] turns committed `raw_*` rows back into upserts, to
//!   rebuild the input state at restart.

#![warn(missing_docs)]

pub mod arrangements;
mod capture;
pub mod catalog;
pub mod checks;
pub mod harness;
mod input;
pub mod models;
pub mod ops;
pub mod oracle;
pub mod payload;
pub mod projection;
#[allow(missing_docs)] // the source owners' record types document their structs
pub mod records;
pub mod rows;
pub mod scalar;
mod upsert;

#[cfg(test)]
mod fixtures;

pub use arrangements::Arrangements;
pub use capture::{Captured, ChangeBuffer, EpochChanges};
pub use input::{UpsertInput, upserts_from_raw};
pub use ops::{Coll, Diff, Epoch};
pub use rows::table::{RowKey, Table, TableRow};

use differential_dataflow::Hashable;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Exchange, Probe};
use timely::dataflow::{ProbeHandle, Scope};

use projection::Projected;
use rows::dim_customer::DimCustomer;
use rows::dim_product::DimProduct;
use rows::dim_sku::DimSku;
use rows::errors::ErrorRow;
use rows::fct_onsale_product_inventory::FctOnsaleProductInventory;
use rows::fct_order::FctOrder;
use rows::fct_order_item::FctOrderItem;
use rows::fct_point_transaction::FctPointTransaction;
use rows::fct_quotation::FctQuotation;
use rows::product_notification_event::ProductNotificationEvent;
use rows::raw_bc_customer::CustomerIn;
use rows::raw_bc_customer_metafield::MetafieldIn;
use rows::raw_bc_inventory::InventoryIn;
use rows::raw_bc_order::OrderIn;
use rows::raw_bc_order_item::LineIn;
use rows::raw_bc_product::ProductIn;
use rows::raw_bc_variant::VariantIn;
use rows::raw_pg_point_transaction::PointTransactionIn;
use rows::raw_pg_quotation::QuotationIn;

/// Every output table as a collection of changes, and the shared arrangements.
#[derive(Clone)]
pub struct Outputs<'s> {
    /// `raw_bc_customer`
    pub raw_bc_customer: Coll<'s, CustomerIn>,
    /// `raw_bc_customer_metafield`
    pub raw_bc_customer_metafield: Coll<'s, MetafieldIn>,
    /// `raw_bc_product`
    pub raw_bc_product: Coll<'s, ProductIn>,
    /// `raw_bc_variant`
    pub raw_bc_variant: Coll<'s, VariantIn>,
    /// `raw_bc_inventory`
    pub raw_bc_inventory: Coll<'s, InventoryIn>,
    /// `raw_bc_order`
    pub raw_bc_order: Coll<'s, OrderIn>,
    /// `raw_bc_order_item`
    pub raw_bc_order_item: Coll<'s, LineIn>,
    /// `raw_pg_point_transaction`
    pub raw_pg_point_transaction: Coll<'s, PointTransactionIn>,
    /// `raw_pg_quotation`
    pub raw_pg_quotation: Coll<'s, QuotationIn>,
    /// `dim_customer`
    pub dim_customer: Coll<'s, DimCustomer>,
    /// `dim_product`
    pub dim_product: Coll<'s, DimProduct>,
    /// `dim_sku`
    pub dim_sku: Coll<'s, DimSku>,
    /// `fct_order`
    pub fct_order: Coll<'s, FctOrder>,
    /// `fct_order_item`
    pub fct_order_item: Coll<'s, FctOrderItem>,
    /// `fct_point_transaction`
    pub fct_point_transaction: Coll<'s, FctPointTransaction>,
    /// `fct_quotation`
    pub fct_quotation: Coll<'s, FctQuotation>,
    /// `fct_onsale_product_inventory`
    pub fct_onsale_product_inventory: Coll<'s, FctOnsaleProductInventory>,
    /// `product_notification_event` (insertions only: see the model)
    pub product_notification_event: Coll<'s, ProductNotificationEvent>,
    /// `_errors`
    pub errors: Coll<'s, ErrorRow>,
    /// The arrangements the models share, for further models.
    pub arrangements: Arrangements<'s>,
}

/// Builds every model in `scope`, reading the upserts fed through `input`.
///
/// Call it once per worker, inside `worker.dataflow(..)`, with that worker's
/// own input.
pub fn build<'s>(scope: Scope<'s, Epoch>, input: &mut UpsertInput) -> Outputs<'s> {
    let arrangements = Arrangements::new(input::split(input.stream(scope)));
    let dim_sku = models::dim_sku::render(&arrangements);
    let fct_onsale_product_inventory = models::fct_onsale_product_inventory::render(&dim_sku);
    let product_notification_event =
        models::product_notification_event::render(&arrangements, &fct_onsale_product_inventory);
    Outputs {
        raw_bc_customer: models::raw_bc_customer::render(&arrangements.customers),
        raw_bc_customer_metafield: models::raw_bc_customer_metafield::render(
            &arrangements.customer_metafields,
        ),
        raw_bc_product: models::raw_bc_product::render(&arrangements.products),
        raw_bc_variant: models::raw_bc_variant::render(&arrangements.variants),
        raw_bc_inventory: models::raw_bc_inventory::render(&arrangements.inventory),
        raw_bc_order: models::raw_bc_order::render(&arrangements.orders),
        raw_bc_order_item: models::raw_bc_order_item::render(&arrangements.order_items),
        raw_pg_point_transaction: models::raw_pg_point_transaction::render(
            &arrangements.point_transactions,
        ),
        raw_pg_quotation: models::raw_pg_quotation::render(&arrangements.quotations),
        dim_customer: models::dim_customer::render(&arrangements),
        dim_product: models::dim_product::render(&arrangements),
        fct_onsale_product_inventory,
        product_notification_event,
        dim_sku,
        fct_order: models::fct_order::render(&arrangements),
        fct_order_item: models::fct_order_item::render(&arrangements),
        fct_point_transaction: models::fct_point_transaction::render(&arrangements),
        fct_quotation: models::fct_quotation::render(&arrangements),
        errors: models::errors::render(&arrangements),
        arrangements,
    }
}

impl<'s> Outputs<'s> {
    /// Every table's changes as one collection of [`TableRow`]s.
    pub fn all(&self) -> Coll<'s, TableRow> {
        let o = self.clone();
        o.raw_bc_customer
            .map(|r| TableRow::Projected(Projected::RawBcCustomer(r)))
            .concatenate([
                o.raw_bc_customer_metafield
                    .map(|r| TableRow::Projected(Projected::RawBcCustomerMetafield(r))),
                o.raw_bc_product
                    .map(|r| TableRow::Projected(Projected::RawBcProduct(r))),
                o.raw_bc_variant
                    .map(|r| TableRow::Projected(Projected::RawBcVariant(r))),
                o.raw_bc_inventory
                    .map(|r| TableRow::Projected(Projected::RawBcInventory(r))),
                o.raw_bc_order
                    .map(|r| TableRow::Projected(Projected::RawBcOrder(r))),
                o.raw_bc_order_item
                    .map(|r| TableRow::Projected(Projected::RawBcOrderItem(r))),
                o.raw_pg_point_transaction
                    .map(|r| TableRow::Projected(Projected::RawPgPointTransaction(r))),
                o.raw_pg_quotation
                    .map(|r| TableRow::Projected(Projected::RawPgQuotation(r))),
                o.dim_customer.map(TableRow::DimCustomer),
                o.dim_product.map(TableRow::DimProduct),
                o.dim_sku.map(TableRow::DimSku),
                o.fct_order.map(TableRow::FctOrder),
                o.fct_order_item.map(TableRow::FctOrderItem),
                o.fct_point_transaction.map(TableRow::FctPointTransaction),
                o.fct_quotation.map(TableRow::FctQuotation),
                o.fct_onsale_product_inventory
                    .map(TableRow::FctOnsaleProductInventory),
                o.product_notification_event
                    .map(TableRow::ProductNotificationEvent),
                o.errors.map(TableRow::Errors),
            ])
    }

    /// Buffers every table's changes, and returns the buffer with a probe
    /// placed after it.
    ///
    /// Changes are first exchanged by `(table, key)`: each worker's buffer holds
    /// the complete changes of the keys it owns (for an updated row, both the
    /// retraction of the old version and the insertion of the new one), so
    /// workers' shares can be written independently or merged in any order.
    pub fn capture(&self) -> Captured {
        self.capture_with_checks(&[])
    }

    /// As [`Outputs::capture`], and maintains the rows of `checks` (see
    /// [`checks::render`]) into [`Captured::checks`].
    pub fn capture_with_checks(&self, checks: &[checks::CheckSpec]) -> Captured {
        self.capture_on(checks, None)
    }

    /// As [`Outputs::capture_with_checks`], with every change and check row
    /// captured by the first `collectors` workers only (when given): in a
    /// cluster, the workers of the process that commits (timely numbers the
    /// workers of process `p` from `p × threads`). The other workers' buffers
    /// stay empty.
    pub fn capture_on(&self, checks: &[checks::CheckSpec], collectors: Option<usize>) -> Captured {
        // Timely sends a record to worker `route % peers`: a route below
        // `collectors` (at most the number of peers) picks one of them.
        let collectors = collectors.map(|c| c.max(1) as u64);
        let route = move |hash: u64| collectors.map_or(hash, |c| hash % c);
        let changes = ChangeBuffer::new();
        let check_changes = ChangeBuffer::new();
        let probe = ProbeHandle::new();
        let buffer = changes.clone();
        let all = self.all();
        if !checks.is_empty() {
            let buffer = check_changes.clone();
            checks::render(&all, checks)
                .inner
                .exchange(move |update: &(checks::CheckRow, Epoch, Diff)| route(update.0.hashed()))
                .unary::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
                    Pipeline,
                    "CaptureChecks",
                    move |_, _| {
                        move |input, _output| input.for_each(|_, updates| buffer.append(updates))
                    },
                )
                .probe_with(&probe);
        }
        // The capture operator takes the updates by move; its (empty) output
        // passes an epoch only once it has consumed everything before it.
        all.inner
            .exchange(move |(row, _, _): &(TableRow, Epoch, Diff)| {
                route((row.table_id(), row.key()).hashed())
            })
            .unary::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
                Pipeline,
                "Capture",
                move |_, _| {
                    move |input, _output| input.for_each(|_, updates| buffer.append_rows(updates))
                },
            )
            .probe_with(&probe);
        Captured {
            changes,
            checks: check_changes,
            probe,
        }
    }
}
