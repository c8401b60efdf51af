//! The dataflow of `product_notification_event`; its contract:
//! [`crate::rows::product_notification_event`].
//!
//! # Dataflow
//!
//! Episode starts are the `+1`s of the consolidated on-sale `sku_id`s. Each
//! start is a *transient* record: inserted at its epoch `t` and retracted at
//! `t + 1`. It is joined, as of `t` only, with the on-sale rows, then with the
//! subscribers by SKU: the joins keep exactly the outputs timed `t`, which
//! sum to "the start ⋈ the state at the end of `t`" (the start did not exist
//! before `t`), and drop everything later (the retraction, and any
//! subscription change after `t`). State: the on-sale SKU ids and rows, the
//! subscribers by SKU and the distinct (customer, SKU) pairs; the transient
//! arrangements hold only the current epoch's starts.
//!
//! The output only depends on the raw state's history through the epochs
//! in which SKUs enter the on-sale set, so replaying a committed raw state in
//! epochs of its own "starts" every on-sale SKU during the replay: the runtime
//! drops the replay epochs' output (as it does for every table), which is
//! exactly "no event on restart for an episode already announced".

use differential_dataflow::AsCollection;
use differential_dataflow::consolidation::ConsolidatingContainerBuilder;
use differential_dataflow::operators::join::join_traces;
use serde::{Deserialize, Serialize};
use timely::container::PushInto;
use timely::dataflow::operators::vec::Map;

use crate::arrangements::Arrangements;
use crate::ops::{Arr, Coll, Diff, Epoch};
use crate::rows::fct_onsale_product_inventory::FctOnsaleProductInventory;
use crate::rows::product_notification_event::{
    ProductNotificationEvent, event_id, subscriptions_of,
};

/// An epoch as the `episode` column (Int64): epochs beyond `i64::MAX` saturate.
pub fn episode_of(epoch: Epoch) -> i64 {
    i64::try_from(epoch).unwrap_or(i64::MAX)
}

impl ProductNotificationEvent {
    /// The event announcing the episode of `sku` started at `episode` to
    /// `subscriber`.
    pub fn new(subscriber: &Subscriber, sku: &FctOnsaleProductInventory, episode: Epoch) -> Self {
        let episode = episode_of(episode);
        ProductNotificationEvent {
            event_id: event_id(subscriber.customer_id, sku.sku_id, episode),
            customer_id: subscriber.customer_id,
            customer_email: subscriber.email.clone(),
            sku_id: sku.sku_id,
            product_id: sku.product_id,
            sku: sku.sku.clone(),
            episode,
            inventory_level: sku.inventory_level,
            price: sku.price,
            sale_price: sku.sale_price.unwrap_or_default(),
        }
    }
}

/// A customer subscribed to a SKU, as arranged by SKU.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Subscriber {
    /// Customer id.
    pub customer_id: i64,
    /// The customer's email.
    pub email: String,
}

/// The table's changes: only insertions, each at its episode's epoch.
pub(crate) fn render<'s>(
    arr: &Arrangements<'s>,
    onsale: &Coll<'s, FctOnsaleProductInventory>,
) -> Coll<'s, ProductNotificationEvent> {
    // Subscribers by SKU: distinct pairs, joined with their customer.
    let subscribers: Arr<'s, Subscriber> = arr
        .customer_metafields
        .clone()
        .flat_map_ref(|_, m| subscriptions_of(m))
        .distinct()
        .arrange_by_key_named("restock_subscriptions_by_customer")
        .join_core(arr.customers.clone(), |customer_id, sku_id, customer| {
            Some((
                *sku_id,
                Subscriber {
                    customer_id: *customer_id,
                    email: customer.email.to_string(),
                },
            ))
        })
        .arrange_by_key_named("restock_subscribers_by_sku");

    // Episode starts: transient (sku_id, start) records, live for one epoch.
    let starts: Arr<'s, Epoch> = onsale
        .clone()
        .map(|row| row.sku_id)
        .consolidate()
        .inner
        .flat_map(|(sku_id, t, diff): (i64, Epoch, Diff)| {
            let next = t.saturating_add(1);
            (diff > 0)
                .then_some([((sku_id, t), t, 1), ((sku_id, t), next, -1)])
                .into_iter()
                .flatten()
        })
        .as_collection()
        .arrange_by_key_named("restock_episode_starts");

    let onsale_by_sku: Arr<'s, FctOnsaleProductInventory> = onsale
        .clone()
        .map(|row| (row.sku_id, row))
        .arrange_by_key_named("onsale_by_sku");

    // The on-sale row of each start as of its epoch: transient too.
    let started: Arr<'s, (Epoch, FctOnsaleProductInventory)> = join_traces::<
        _,
        _,
        _,
        _,
        ConsolidatingContainerBuilder<
            Vec<((i64, (Epoch, FctOnsaleProductInventory)), Epoch, Diff)>,
        >,
    >(
        starts,
        onsale_by_sku,
        "restock_started_rows",
        |sku_id, start, row, t, r1, r2, out| {
            if t == *start {
                let d = r1 * r2;
                let next = t.saturating_add(1);
                out.push_into(((*sku_id, (*start, row.clone())), t, d));
                out.push_into(((*sku_id, (*start, row.clone())), next, -d));
            }
        },
    )
    .as_collection()
    .arrange_by_key_named("restock_started");

    join_traces::<
        _,
        _,
        _,
        _,
        ConsolidatingContainerBuilder<Vec<(ProductNotificationEvent, Epoch, Diff)>>,
    >(
        started,
        subscribers,
        "product_notification_event",
        |_, (start, row), subscriber, t, r1, r2, out| {
            if t == *start {
                out.push_into((
                    ProductNotificationEvent::new(subscriber, row, *start),
                    t,
                    r1 * r2,
                ));
            }
        },
    )
    .as_collection()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{customer, inventory, product, updates, variant};
    use crate::records::Upsert;
    use crate::rows::product_notification_event::{
        SUBSCRIPTION_KEY, SUBSCRIPTION_NAMESPACE, event_id,
    };
    use crate::rows::raw_bc_customer_metafield::RawBcCustomerMetafield;
    use crate::rows::table::{Table, TableRow};
    use crate::scalar::Money;

    fn subscription(id: i64, customer_id: i64, value: &str) -> Upsert {
        Upsert::CustomerMetafield(
            id,
            Some(RawBcCustomerMetafield {
                id,
                customer_id,
                namespace: SUBSCRIPTION_NAMESPACE.into(),
                key: SUBSCRIPTION_KEY.into(),
                value: value.into(),
                created_at: 0,
                modified_at: 0,
                payload: Default::default(),
            }),
        )
    }

    fn event(customer_id: i64, sku_id: i64, episode: i64, level: i64) -> TableRow {
        TableRow::ProductNotificationEvent(ProductNotificationEvent {
            event_id: event_id(customer_id, sku_id, episode),
            customer_id,
            customer_email: format!("c{customer_id}@x"),
            sku_id,
            product_id: 1,
            sku: format!("V{sku_id}"),
            episode,
            inventory_level: level,
            price: Money(100_000),
            sale_price: Money(0),
        })
    }

    #[test]
    fn episodes() {
        let got = updates(
            Table::ProductNotificationEvent,
            vec![
                // 0: catalog, customers 1 and 2, sku 10 sold out; 1 subscribes to 10 and 11.
                vec![
                    Upsert::Customer(1, Some(customer(1, "c1@x"))),
                    Upsert::Customer(2, Some(customer(2, "c2@x"))),
                    Upsert::Product(1, Some(product(1))),
                    Upsert::Variant(10, Some(variant(10, 1, 0))),
                    Upsert::Variant(11, Some(variant(11, 1, 4))),
                    subscription(100, 1, "[10, 11]"),
                ],
                // 1: restock of 10: one event, for customer 1 only.
                vec![Upsert::Inventory(10, Some(inventory(10, 5)))],
                // 2: level change while on sale; customer 2 subscribes while in stock.
                vec![
                    Upsert::Inventory(10, Some(inventory(10, 3))),
                    subscription(200, 2, "[10]"),
                ],
                // 3: sold out.
                vec![Upsert::Inventory(10, Some(inventory(10, 0)))],
                // 4: restocked: a new episode for both.
                vec![Upsert::Inventory(10, Some(inventory(10, 7)))],
                // 5: sold out and restocked within one epoch: nothing.
                vec![
                    Upsert::Inventory(10, Some(inventory(10, 0))),
                    Upsert::Inventory(10, Some(inventory(10, 8))),
                ],
                // 6: customer 1 unsubscribes, 10 sells out; 7: restock, only 2.
                vec![
                    subscription(100, 1, "[11]"),
                    Upsert::Inventory(10, Some(inventory(10, 0))),
                ],
                vec![Upsert::Inventory(10, Some(inventory(10, 2)))],
            ],
        );
        assert_eq!(
            got,
            vec![
                (event(1, 11, 0, 4), 0, 1),
                (event(1, 10, 1, 5), 1, 1),
                (event(1, 10, 4, 7), 4, 1),
                (event(2, 10, 4, 7), 4, 1),
                (event(2, 10, 7, 2), 7, 1),
            ]
        );
    }

    #[test]
    fn subscription_and_restock_in_one_epoch_announce() {
        let got = updates(
            Table::ProductNotificationEvent,
            vec![
                vec![
                    Upsert::Customer(1, Some(customer(1, "c1@x"))),
                    Upsert::Product(1, Some(product(1))),
                    Upsert::Variant(10, Some(variant(10, 1, 0))),
                ],
                vec![
                    subscription(100, 1, "[10]"),
                    subscription(101, 1, "[10]"),
                    Upsert::Inventory(10, Some(inventory(10, 5))),
                ],
                // A malformed value subscribes to nothing.
                vec![
                    subscription(100, 1, "10"),
                    subscription(101, 1, "oops"),
                    Upsert::Inventory(10, Some(inventory(10, 0))),
                ],
                vec![Upsert::Inventory(10, Some(inventory(10, 5)))],
            ],
        );
        assert_eq!(got, vec![(event(1, 10, 1, 5), 1, 1)]);
    }
}
