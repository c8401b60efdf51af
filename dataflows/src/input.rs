//! The dataflow's single input: upserts of every source table, fed per epoch.

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::{InputHandleVec, Scope, StreamVec};
use timely::progress::operate::FrontierInterest;

use crate::models::raw_bc_customer::RawBcCustomer;
use crate::models::raw_bc_customer_metafield::RawBcCustomerMetafield;
use crate::models::raw_bc_inventory::RawBcInventory;
use crate::models::raw_bc_order::RawBcOrder;
use crate::models::raw_bc_order_item::OrderLines;
use crate::models::raw_bc_product::RawBcProduct;
use crate::models::raw_bc_variant::RawBcVariant;
use crate::models::raw_pg_point_transaction::RawPgPointTransaction;
use crate::models::raw_pg_quotation::RawPgQuotation;
use crate::ops::{Epoch, UpsertStream};
use crate::records::Upsert;

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

/// The input split per source table, with the epoch attached to each upsert.
pub(crate) struct SourceStreams<'s> {
    pub customers: UpsertStream<'s, RawBcCustomer>,
    pub customer_metafields: UpsertStream<'s, RawBcCustomerMetafield>,
    pub products: UpsertStream<'s, RawBcProduct>,
    pub variants: UpsertStream<'s, RawBcVariant>,
    pub inventory: UpsertStream<'s, RawBcInventory>,
    pub orders: UpsertStream<'s, RawBcOrder>,
    pub order_items: UpsertStream<'s, OrderLines>,
    pub point_transactions: UpsertStream<'s, RawPgPointTransaction>,
    pub quotations: UpsertStream<'s, RawPgQuotation>,
}

type Out<V> = OutputBuilder<Epoch, CapacityContainerBuilder<Vec<(i64, Option<V>, Epoch)>>>;

/// Splits the upsert stream by table in one pass, converting records to raw
/// rows by move, and stamps each upsert with its epoch.
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
    let mut customers: Out<RawBcCustomer> = OutputBuilder::from(customers);
    let mut metafields: Out<RawBcCustomerMetafield> = OutputBuilder::from(metafields);
    let mut products: Out<RawBcProduct> = OutputBuilder::from(products);
    let mut variants: Out<RawBcVariant> = OutputBuilder::from(variants);
    let mut inventory: Out<RawBcInventory> = OutputBuilder::from(inventory);
    let mut orders: Out<RawBcOrder> = OutputBuilder::from(orders);
    let mut items: Out<OrderLines> = OutputBuilder::from(items);
    let mut points: Out<RawPgPointTransaction> = OutputBuilder::from(points);
    let mut quotations: Out<RawPgQuotation> = OutputBuilder::from(quotations);

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
                        Upsert::Customer(k, v) => customers.give((k, v, time)),
                        Upsert::CustomerMetafield(k, v) => metafields.give((k, v, time)),
                        Upsert::Product(k, v) => products.give((k, v, time)),
                        Upsert::Variant(k, v) => variants.give((k, v, time)),
                        Upsert::Inventory(k, v) => inventory.give((k, v, time)),
                        Upsert::Order(k, v) => orders.give((k, v, time)),
                        Upsert::OrderItems(k, v) => {
                            // Lines are kept sorted, so that an order re-read with its
                            // lines in another order is an unchanged value.
                            let lines = v.map(|mut lines| {
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
    use crate::fixtures::customer;
    use crate::table::TableRow;

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
                        (TableRow::RawBcCustomer(customer(1, "a")), 1),
                        (TableRow::RawBcCustomer(customer(2, "b")), 1)
                    ]
                ),
                (3, vec![(TableRow::RawBcCustomer(customer(2, "b")), -1)]),
            ]
        );
    }
}
