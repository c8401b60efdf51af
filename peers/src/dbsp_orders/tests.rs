//! The dbsp baseline against govflow's from-scratch oracle.

use std::collections::BTreeMap;

use dataflows::TableRow;
use dataflows::oracle::{RawState, compute};
use dataflows::rows::raw_bc_customer::RawBcCustomer;
use dataflows::rows::raw_bc_order::RawBcOrder;
use dataflows::rows::raw_bc_order_item::RawBcOrderItem;
use dataflows::rows::raw_bc_product::RawBcProduct;
use proptest::prelude::*;

use super::*;

type Rows = (Vec<FctOrder>, Vec<DimCustomer>);

/// The oracle's `fct_order` and `dim_customer` rows, sorted.
fn expected(state: &RawState) -> Rows {
    let (mut fct, mut dim) = (Vec::new(), Vec::new());
    for row in compute(state) {
        match row {
            TableRow::FctOrder(r) => fct.push(r),
            TableRow::DimCustomer(r) => dim.push(r),
            _ => {}
        }
    }
    fct.sort();
    dim.sort();
    (fct, dim)
}

/// The number of rows in one multiset and not the other, both ways.
fn difference<T: Ord + Clone>(before: &[T], after: &[T]) -> usize {
    let mut count: BTreeMap<T, i64> = BTreeMap::new();
    before
        .iter()
        .for_each(|r| *count.entry(r.clone()).or_default() -= 1);
    after
        .iter()
        .for_each(|r| *count.entry(r.clone()).or_default() += 1);
    count.values().map(|c| c.unsigned_abs() as usize).sum()
}

fn customer(id: i64, email: &str, first: &str, last: &str) -> RawBcCustomer {
    RawBcCustomer {
        id,
        email: email.into(),
        first_name: first.into(),
        last_name: last.into(),
        company: Default::default(),
        phone: Default::default(),
        customer_group_id: id % 2,
        created_at: 7,
        modified_at: 8,
    }
}

fn order(id: i64, customer_id: i64, status_id: i64, total: i64, created: i64) -> RawBcOrder {
    RawBcOrder {
        id,
        customer_id,
        status_id,
        status: format!("s{status_id}").into(),
        subtotal_ex_tax: Money(total - 1),
        subtotal_inc_tax: Money(total),
        total_ex_tax: Money(total - 1),
        total_inc_tax: Money(total),
        refunded_amount: Money(0),
        items_total: 1,
        currency_code: "KRW".into(),
        is_deleted: false,
        created_at: created,
        modified_at: created + 1,
    }
}

fn line(id: i64, order_id: i64, quantity: i64) -> RawBcOrderItem {
    RawBcOrderItem {
        id,
        order_id,
        product_id: 1,
        variant_id: 2,
        sku: "V2".into(),
        name: "line".into(),
        quantity,
        base_price: Money(100),
        price_ex_tax: Money(100),
        price_inc_tax: Money(100),
        total_ex_tax: Money(100 * quantity),
        total_inc_tax: Money(100 * quantity),
    }
}

#[test]
fn hand_written_epochs() -> Result<(), PeersError> {
    let mut engine = DbspOrders::with_snapshots(2)?;
    let fct = |id, customer_id, status_id: i64, total, created, item_count, quantity| FctOrder {
        order_id: id,
        customer_id,
        status_id,
        status: format!("s{status_id}"),
        is_complete: is_complete(status_id),
        subtotal_ex_tax: Money(total - 1),
        total_ex_tax: Money(total - 1),
        total_inc_tax: Money(total),
        refunded_amount: Money(0),
        is_revenue: [2, 3, 8, 9, 10, 11, 14].contains(&status_id),
        net_revenue: Money(if [2, 3, 8, 9, 10, 11, 14].contains(&status_id) {
            total
        } else {
            0
        }),
        item_count,
        quantity,
        ordered_at: created,
        modified_at: created + 1,
    };
    let dim = |order_count, lifetime_revenue, first: Option<i64>, last: Option<i64>| DimCustomer {
        customer_id: 1,
        email: "ada@example.com".into(),
        full_name: "Ada Lovelace".into(),
        customer_group_id: 1,
        created_at: 7,
        order_count,
        lifetime_revenue: Money(lifetime_revenue),
        first_order_at: first,
        last_order_at: last,
        point_balance: 0,
    };

    // A customer, a completed order with three lines (one of quantity 0), a
    // guest order without lines, and a cancelled order.
    let changes = engine.step(vec![
        Upsert::Customer(1, Some(customer(1, "ada@example.com", " Ada", "Lovelace "))),
        Upsert::Order(10, Some(order(10, 1, 10, 500, 20))),
        Upsert::OrderItems(
            10,
            Some(vec![line(1, 10, 2), line(2, 10, 3), line(3, 10, 0)]),
        ),
        Upsert::Order(11, Some(order(11, 0, 11, 300, 10))),
        Upsert::Order(12, Some(order(12, 1, 5, 900, 5))),
        Upsert::Product(1, None),
    ])?;
    assert_eq!(changes, 4);
    assert_eq!(
        engine.snapshot(),
        Some((
            vec![
                fct(10, Some(1), 10, 500, 20, 2, 5),
                fct(11, None, 11, 300, 10, 0, 0),
                fct(12, Some(1), 5, 900, 5, 0, 0),
            ],
            vec![dim(1, 500, Some(20), Some(20))],
        ))
    );

    // The cancelled order becomes pending; order 10 loses a line; order 11 is
    // archived; a delete of an unknown key changes nothing. The last upsert
    // of a key in an epoch wins.
    let mut archived = order(11, 0, 11, 300, 10);
    archived.is_deleted = true;
    let changes = engine.step(vec![
        Upsert::Order(12, Some(order(12, 1, 1, 900, 5))),
        Upsert::Order(12, None),
        Upsert::Order(12, Some(order(12, 1, 11, 900, 5))),
        Upsert::OrderItems(10, Some(vec![line(1, 10, 2)])),
        Upsert::Order(11, Some(archived)),
        Upsert::Customer(2, None),
    ])?;
    // fct_order: 10 and 12 updated (2 each), 11 retracted; dim_customer updated.
    assert_eq!(changes, 7);
    assert_eq!(
        engine.snapshot(),
        Some((
            vec![
                fct(10, Some(1), 10, 500, 20, 1, 2),
                fct(12, Some(1), 11, 900, 5, 0, 0),
            ],
            vec![dim(2, 1400, Some(5), Some(20))],
        ))
    );

    // Unchanged upserts change nothing; deleting the customer and order 10's
    // lines does.
    let changes = engine.step(vec![
        Upsert::Order(10, Some(order(10, 1, 10, 500, 20))),
        Upsert::Customer(1, None),
        Upsert::OrderItems(10, None),
    ])?;
    assert_eq!(changes, 3);
    assert_eq!(
        engine.snapshot(),
        Some((
            vec![
                fct(10, Some(1), 10, 500, 20, 0, 0),
                fct(12, Some(1), 11, 900, 5, 0, 0),
            ],
            vec![],
        ))
    );
    Ok(())
}

#[test]
fn snapshots_are_opt_in() -> Result<(), PeersError> {
    assert!(matches!(DbspOrders::new(0), Err(PeersError::NoWorkers)));
    let mut engine = DbspOrders::new(1)?;
    let changes = engine.step(vec![
        Upsert::Customer(1, Some(customer(1, "a@x", "A", ""))),
        Upsert::Order(10, Some(order(10, 1, 10, 500, 20))),
    ])?;
    assert_eq!(changes, 2);
    assert_eq!(engine.snapshot(), None);
    Ok(())
}

fn money() -> impl Strategy<Value = Money> {
    (-1i64..4).prop_map(|x| Money(x * 2_500))
}

/// `Some(row)` three times in four, else a delete.
fn maybe<T: std::fmt::Debug + Clone>(
    row: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    prop_oneof![3 => row.prop_map(Some), 1 => Just(None)]
}

fn arb_customer() -> impl Strategy<Value = Upsert> {
    (1i64..=4).prop_flat_map(|key| {
        let row = (0u8..3, 0u8..3, 0u8..2, 0i64..2, 0i64..3).prop_map(
            move |(email, first, last, group, created)| RawBcCustomer {
                id: key,
                email: format!("c{email}@example.com").into(),
                first_name: ["", "Ada", " Ada "][first as usize].into(),
                last_name: ["", "Lovelace"][last as usize].into(),
                company: Default::default(),
                phone: Default::default(),
                customer_group_id: group,
                created_at: created,
                modified_at: created,
            },
        );
        maybe(row).prop_map(move |row| Upsert::Customer(key, row))
    })
}

fn arb_order() -> impl Strategy<Value = Upsert> {
    (1i64..=6).prop_flat_map(|key| {
        let statuses = prop::sample::select((0i64..=14).collect::<Vec<_>>());
        // Refunds: none, partial, full, more than the total.
        let refunds = prop::sample::select(vec![0u8, 0, 1, 2, 3]);
        let row = (
            0i64..=5,
            statuses,
            money(),
            money(),
            prop::bool::weighted(0.2),
            0i64..4,
            0i64..2,
            refunds,
        )
            .prop_map(
                move |(
                    customer_id,
                    status_id,
                    subtotal,
                    total,
                    is_deleted,
                    created,
                    modified,
                    refund,
                )| {
                    RawBcOrder {
                        id: key,
                        customer_id,
                        status_id,
                        status: format!("s{status_id}").into(),
                        subtotal_ex_tax: subtotal,
                        subtotal_inc_tax: subtotal,
                        total_ex_tax: total,
                        total_inc_tax: total,
                        refunded_amount: Money(match refund {
                            0 => 0,
                            1 => total.0 / 3,
                            2 => total.0,
                            _ => total.0.saturating_add(1),
                        }),
                        items_total: 1,
                        currency_code: "KRW".into(),
                        is_deleted,
                        created_at: created,
                        modified_at: created + modified,
                    }
                },
            );
        maybe(row).prop_map(move |row| Upsert::Order(key, row))
    })
}

fn arb_order_items() -> impl Strategy<Value = Upsert> {
    (1i64..=7).prop_flat_map(|key| {
        let line = (0i64..3, -1i64..=3, money());
        let lines = prop::collection::vec(line, 0..4).prop_map(move |lines| {
            lines
                .into_iter()
                .map(|(j, quantity, price)| RawBcOrderItem {
                    id: key * 10 + j,
                    order_id: key,
                    product_id: 1,
                    variant_id: 2,
                    sku: "V2".into(),
                    name: "line".into(),
                    quantity,
                    base_price: price,
                    price_ex_tax: price,
                    price_inc_tax: price,
                    total_ex_tax: Money(price.0 * quantity),
                    total_inc_tax: Money(price.0 * quantity),
                })
                .collect::<Vec<_>>()
        });
        maybe(lines).prop_map(move |lines| Upsert::OrderItems(key, lines))
    })
}

/// Upserts of another table, which the baseline ignores.
fn arb_other() -> impl Strategy<Value = Upsert> {
    (1i64..=2).prop_map(|key| {
        Upsert::Product(
            key,
            Some(RawBcProduct {
                id: key,
                name: "p".into(),
                sku: "P".into(),
                price: Money(1),
                sale_price: Money(0),
                is_visible: true,
                availability: "available".into(),
                inventory_tracking: "none".into(),
                brand_id: 0,
                created_at: 0,
                modified_at: 0,
            }),
        )
    })
}

fn arb_upsert() -> impl Strategy<Value = Upsert> {
    prop_oneof![
        3 => arb_customer(),
        4 => arb_order(),
        4 => arb_order_items(),
        1 => arb_other(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// After every epoch, both outputs equal the oracle's, and the number of
    /// changes is the difference from the epoch before.
    #[test]
    fn matches_the_oracle(
        epochs in prop::collection::vec(prop::collection::vec(arb_upsert(), 0..10), 1..7),
        workers in 1usize..=2,
    ) {
        let mut engine = DbspOrders::with_snapshots(workers)?;
        let mut state = RawState::default();
        let mut before: Rows = Default::default();
        for epoch in epochs {
            epoch.iter().cloned().for_each(|u| state.apply(u));
            let changes = engine.step(epoch)?;
            let after = expected(&state);
            let got = engine.snapshot();
            prop_assert_eq!(got.as_ref(), Some(&after));
            prop_assert_eq!(
                changes,
                difference(&before.0, &after.0) + difference(&before.1, &after.1)
            );
            before = after;
        }
    }
}
