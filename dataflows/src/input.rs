//! The dataflow's single input: upserts of every source table, fed per epoch;
//! and [`upserts_from_raw`], the upserts that rebuild committed `raw_*` state.

use std::collections::BTreeMap;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::{InputHandleVec, Scope, StreamVec};
use timely::progress::operate::FrontierInterest;

use crate::ops::{Epoch, UpsertStream};
use crate::records::Upsert;
use crate::rows::raw_bc_customer::CustomerIn;
use crate::rows::raw_bc_customer_metafield::MetafieldIn;
use crate::rows::raw_bc_inventory::InventoryIn;
use crate::rows::raw_bc_order::OrderIn;
use crate::rows::raw_bc_order_item::{LineIn, OrderLines, RawBcOrderItem};
use crate::rows::raw_bc_product::ProductIn;
use crate::rows::raw_bc_variant::VariantIn;
use crate::rows::raw_pg_point_transaction::PointTransactionIn;
use crate::rows::raw_pg_quotation::QuotationIn;
use crate::rows::table::TableRow;

/// A worker's handle on the dataflow's input: it feeds [`Upsert`]s at the
/// current epoch and advances every source table together.
///
/// Within one epoch the **last** upsert sent for a `(table, key)` wins, in the
/// order this worker sent them: a row read twice in one flush interval (a poll
/// and a webhook fetch) is applied once, as last read. Upserts of one key sent
/// by *different* workers in the same epoch have no defined order: route a
/// key to one worker per epoch (e.g. `key % peers`, see
/// [`crate::harness::route`]) or read each source on one worker.
///
/// Every worker must advance its own `UpsertInput` (timely waits for all of
/// them), even one that sends nothing.
pub struct UpsertInput {
    handle: InputHandleVec<Epoch, Upsert>,
}

impl Default for UpsertInput {
    fn default() -> Self {
        Self::new()
    }
}

impl UpsertInput {
    /// A new input at epoch 0; connect it with [`crate::build`].
    pub fn new() -> Self {
        UpsertInput {
            handle: InputHandleVec::new(),
        }
    }

    /// The current epoch: what is sent now belongs to it.
    pub fn epoch(&self) -> Epoch {
        *self.handle.time()
    }

    /// Sends an upsert at the current epoch.
    pub fn send(&mut self, upsert: Upsert) {
        self.handle.send(upsert);
    }

    /// Sends upserts at the current epoch, in order.
    pub fn send_all(&mut self, upserts: impl IntoIterator<Item = Upsert>) {
        for upsert in upserts {
            self.handle.send(upsert);
        }
    }

    /// Hands buffered upserts to the dataflow without ending the epoch.
    pub fn flush(&mut self) {
        self.handle.flush();
    }

    /// Ends the current epoch and moves to `epoch` (an epoch below the current
    /// one is taken as the current one). After this, [`crate::Captured::probe`]
    /// passing `epoch` means every table's changes before `epoch` are complete.
    pub fn advance_to(&mut self, epoch: Epoch) {
        let epoch = epoch.max(self.epoch());
        self.handle.advance_to(epoch);
    }

    /// Closes the input; the dataflow then drains and shuts down.
    pub fn close(self) {}

    pub(crate) fn stream<'s>(&mut self, scope: Scope<'s, Epoch>) -> StreamVec<'s, Epoch, Upsert> {
        self.handle.to_stream(scope)
    }
}

/// Rebuilds the upserts that recreate committed `raw_*` state, e.g. at
/// restart from the warehouse's `raw_*` tables. Rows of other tables are
/// ignored. Order lines are grouped into one `Upsert::OrderItems` per
/// `order_id` (lines sorted by id). Keys are the rows' own ids, so a row that
/// was upserted under a different key (an `_errors` `key_mismatch`) comes
/// back under its own id. There is one upsert per key: feed them with
/// [`UpsertInput::send_all`].
pub fn upserts_from_raw(rows: impl IntoIterator<Item = TableRow>) -> Vec<Upsert> {
    let mut upserts = Vec::new();
    let mut lines: BTreeMap<i64, Vec<RawBcOrderItem>> = BTreeMap::new();
    for row in rows {
        match row {
            TableRow::RawBcCustomer(r) => upserts.push(Upsert::Customer(r.id, Some(r))),
            TableRow::RawBcCustomerMetafield(r) => {
                upserts.push(Upsert::CustomerMetafield(r.id, Some(r)))
            }
            TableRow::RawBcProduct(r) => upserts.push(Upsert::Product(r.id, Some(r))),
            TableRow::RawBcVariant(r) => upserts.push(Upsert::Variant(r.id, Some(r))),
            TableRow::RawBcInventory(r) => upserts.push(Upsert::Inventory(r.variant_id, Some(r))),
            TableRow::RawBcOrder(r) => upserts.push(Upsert::Order(r.id, Some(r))),
            TableRow::RawBcOrderItem(r) => lines.entry(r.order_id).or_default().push(r),
            TableRow::RawPgPointTransaction(r) => {
                upserts.push(Upsert::PointTransaction(r.id, Some(r)))
            }
            TableRow::RawPgQuotation(r) => upserts.push(Upsert::Quotation(r.id, Some(r))),
            _ => {}
        }
    }
    for (order_id, mut items) in lines {
        items.sort_by_key(|item| item.id);
        upserts.push(Upsert::OrderItems(order_id, Some(items)));
    }
    upserts
}

/// The input split per source table, with the epoch attached to each upsert.
pub(crate) struct SourceStreams<'s> {
    pub customers: UpsertStream<'s, CustomerIn>,
    pub customer_metafields: UpsertStream<'s, MetafieldIn>,
    pub products: UpsertStream<'s, ProductIn>,
    pub variants: UpsertStream<'s, VariantIn>,
    pub inventory: UpsertStream<'s, InventoryIn>,
    pub orders: UpsertStream<'s, OrderIn>,
    pub order_items: UpsertStream<'s, OrderLines>,
    pub point_transactions: UpsertStream<'s, PointTransactionIn>,
    pub quotations: UpsertStream<'s, QuotationIn>,
}

type Out<V> = OutputBuilder<Epoch, CapacityContainerBuilder<Vec<(i64, Option<V>, Epoch)>>>;

/// Splits the upsert stream by table in one pass, projecting each row to the
/// columns the models read ([`crate::projection`]; PostgreSQL rows are read
/// whole and move as they are), and stamps each upsert with its epoch.
pub(crate) fn split<'s>(stream: StreamVec<'s, Epoch, Upsert>) -> SourceStreams<'s> {
    let mut builder = OperatorBuilder::new("SplitUpserts".to_owned(), stream.scope());
    let mut input = builder.new_input(stream, Pipeline);
    builder.set_notify_for(0, FrontierInterest::Never);

    let (customers, customers_stream) = builder.new_output();
    let (metafields, metafields_stream) = builder.new_output();
    let (products, products_stream) = builder.new_output();
    let (variants, variants_stream) = builder.new_output();
    let (inventory, inventory_stream) = builder.new_output();
    let (orders, orders_stream) = builder.new_output();
    let (items, items_stream) = builder.new_output();
    let (points, points_stream) = builder.new_output();
    let (quotations, quotations_stream) = builder.new_output();
    let mut customers: Out<CustomerIn> = OutputBuilder::from(customers);
    let mut metafields: Out<MetafieldIn> = OutputBuilder::from(metafields);
    let mut products: Out<ProductIn> = OutputBuilder::from(products);
    let mut variants: Out<VariantIn> = OutputBuilder::from(variants);
    let mut inventory: Out<InventoryIn> = OutputBuilder::from(inventory);
    let mut orders: Out<OrderIn> = OutputBuilder::from(orders);
    let mut items: Out<OrderLines> = OutputBuilder::from(items);
    let mut points: Out<PointTransactionIn> = OutputBuilder::from(points);
    let mut quotations: Out<QuotationIn> = OutputBuilder::from(quotations);

    builder.build(move |_| {
        move |_frontiers| {
            let mut customers = customers.activate();
            let mut metafields = metafields.activate();
            let mut products = products.activate();
            let mut variants = variants.activate();
            let mut inventory = inventory.activate();
            let mut orders = orders.activate();
            let mut items = items.activate();
            let mut points = points.activate();
            let mut quotations = quotations.activate();
            input.for_each_stamp(|cap, data| {
                // Input-handle messages always carry their epoch; a message with an
                // empty stamp carries no data.
                let Some(&time) = cap.least() else { return };
                let mut customers = customers.session(&cap);
                let mut metafields = metafields.session(&cap);
                let mut products = products.session(&cap);
                let mut variants = variants.session(&cap);
                let mut inventory = inventory.session(&cap);
                let mut orders = orders.session(&cap);
                let mut items = items.session(&cap);
                let mut points = points.session(&cap);
                let mut quotations = quotations.session(&cap);
                for upsert in data.flat_map(|d| d.drain(..)) {
                    match upsert {
                        Upsert::Customer(k, v) => customers.give((k, v.map(|r| r.project()), time)),
                        Upsert::CustomerMetafield(k, v) => {
                            metafields.give((k, v.map(|r| r.project()), time))
                        }
                        Upsert::Product(k, v) => products.give((k, v.map(|r| r.project()), time)),
                        Upsert::Variant(k, v) => variants.give((k, v.map(|r| r.project()), time)),
                        Upsert::Inventory(k, v) => {
                            inventory.give((k, v.map(|r| r.project()), time))
                        }
                        Upsert::Order(k, v) => orders.give((k, v.map(|r| r.project()), time)),
                        Upsert::OrderItems(k, v) => {
                            // Lines are kept sorted, so that an order re-read with its
                            // lines in another order is an unchanged value.
                            let lines = v.map(|lines| {
                                let mut lines: Vec<LineIn> =
                                    lines.iter().map(RawBcOrderItem::project).collect();
                                lines.sort();
                                OrderLines::from(lines)
                            });
                            items.give((k, lines, time))
                        }
                        Upsert::PointTransaction(k, v) => points.give((k, v, time)),
                        Upsert::Quotation(k, v) => quotations.give((k, v, time)),
                    }
                }
            });
        }
    });

    SourceStreams {
        customers: customers_stream,
        customer_metafields: metafields_stream,
        products: products_stream,
        variants: variants_stream,
        inventory: inventory_stream,
        orders: orders_stream,
        order_items: items_stream,
        point_transactions: points_stream,
        quotations: quotations_stream,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{customer, line, point_transaction, quotation};
    use crate::rows::errors::{ErrorReason, ErrorRow};
    use crate::rows::table::Table;

    #[test]
    fn batches_and_epochs_that_do_not_move_back() {
        let got = timely::execute_directly(|worker| {
            let mut input = UpsertInput::new();
            let captured = worker.dataflow(|scope| crate::build(scope, &mut input).capture());
            input.send_all([
                Upsert::Customer(1, Some(customer(1, "a"))),
                Upsert::Customer(2, Some(customer(2, "b"))),
            ]);
            input.advance_to(3);
            input.advance_to(2); // stays at 3
            input.send(Upsert::Customer(2, None));
            input.advance_to(4);
            worker.step_while(|| captured.probe.less_than(&input.epoch()));
            captured.changes.take_before(input.epoch())
        });
        let summary: Vec<(Epoch, Vec<(TableRow, isize)>)> = got
            .into_iter()
            .map(|c| {
                let raw = c
                    .changes
                    .into_iter()
                    .filter(|(r, _)| r.table() == "raw_bc_customer");
                (c.epoch, raw.collect())
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    0,
                    vec![
                        (TableRow::RawBcCustomer(customer(1, "a")).projected(), 1),
                        (TableRow::RawBcCustomer(customer(2, "b")).projected(), 1)
                    ]
                ),
                (
                    3,
                    vec![(TableRow::RawBcCustomer(customer(2, "b")).projected(), -1)]
                ),
            ]
        );
    }

    #[test]
    fn raw_rows_become_upserts_again() {
        let rows = vec![
            TableRow::RawBcCustomer(customer(1, "a")),
            TableRow::RawBcOrderItem(line(52, 5, 1)),
            TableRow::RawPgQuotation(quotation(3, "a@x", "sent")),
            TableRow::RawBcOrderItem(line(51, 5, 2)),
            TableRow::RawPgPointTransaction(point_transaction(4, 1, -5)),
            TableRow::Errors(ErrorRow {
                table: Table::RawBcCustomer,
                key: 1,
                reason: ErrorReason::KeyMismatch,
            }),
        ];
        assert_eq!(
            upserts_from_raw(rows),
            vec![
                Upsert::Customer(1, Some(customer(1, "a"))),
                Upsert::Quotation(3, Some(quotation(3, "a@x", "sent"))),
                Upsert::PointTransaction(4, Some(point_transaction(4, 1, -5))),
                Upsert::OrderItems(5, Some(vec![line(51, 5, 2), line(52, 5, 1)])),
            ]
        );
    }
}
