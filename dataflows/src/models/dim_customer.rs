//! `dim_customer`: customers with their lifetime order aggregates and point
//! balance.
//!
//! - **Grain**: one row per customer in `raw_bc_customer`.
//! - **Key**: `customer_id`.
//! - **Columns**: `customer_id`, `email`, `full_name` (first and last name joined
//!   by a space, empty parts skipped; the empty string, never null, when both
//!   are empty), `customer_group_id`, `created_at`, `order_count`,
//!   `lifetime_revenue`, `first_order_at`, `last_order_at`, `point_balance`.
//!
//! **Aggregate rule** (the metrics contract, `docs/metrics.md`). The order
//! aggregates are over the customer's *revenue orders*: orders in
//! `raw_bc_order` with this `customer_id` that are live (not `is_deleted`),
//! whose status is a paid one — Shipped (2), Partially Shipped (3), Awaiting
//! Pickup (8), Awaiting Shipment (9), Completed (10), Awaiting Fulfillment (11)
//! or Partially Refunded (14), see [`is_paid_status`] — or Refunded (4), and
//! that are not fully refunded ([`is_fully_refunded`]: a positive
//! `refunded_amount` reaching `total_inc_tax`, or Refunded without an amount).
//! Refunded counts for what is left because BigCommerce also sets it on a
//! partial refund. Unpaid (Incomplete, Pending, Awaiting Payment, Manual
//! Verification Required), cancelled (Cancelled, Declined) and disputed orders
//! are not revenue. `order_count` counts revenue orders, `lifetime_revenue`
//! sums their net revenue `total_inc_tax - refunded_amount` ([`net_revenue`],
//! saturating), `first_order_at` / `last_order_at` are the least / greatest of
//! their `created_at`. A customer without revenue orders has `0`, `0` and
//! nulls. Orders of customers not in `raw_bc_customer` (guests, customers not
//! read yet) are not an error; they show up as soon as the customer does.
//!
//! **Point balance.** `point_balance` is the sum of `points` of the point
//! transactions in `raw_pg_point_transaction` whose `customer_id` is this
//! customer (spent points are negative, so it may be negative); `0` when there
//! are none, e.g. without a PostgreSQL source. The sum saturates at the `i64`
//! bounds (see [`point_balance`]).
//!
//! **Dataflow.** Revenue orders (`(created_at, net revenue)`) and point transactions
//! (`points`) are arranged together by customer as [`CustomerActivity`] and
//! reduced to one [`CustomerStats`] per customer (small state: a timestamp and
//! an amount per order, a number per distinct points value), then left-joined
//! with the customer arrangement (state: ids of customers without activity).

use dataflows_derive::Record;
use differential_dataflow::trace::implementations::ValBuilder;
use serde::{Deserialize, Serialize};

use crate::arrangements::Arrangements;
use crate::models::raw_bc_customer::RawBcCustomer;
use crate::models::raw_bc_order::RawBcOrder;
use crate::ops::{Coll, Diff, Epoch, Spine, left_join};
use crate::records::{Micros, Money};

/// A row of `dim_customer`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Record)]
#[record(
    table = "dim_customer",
    key = "customer_id",
    grain = "one row per customer in raw_bc_customer",
    origin = "model",
    reads = "raw_bc_customer, raw_bc_order, raw_pg_point_transaction"
)]
pub struct DimCustomer {
    /// Customer id.
    pub customer_id: i64,
    /// Email address.
    pub email: String,
    /// First and last name.
    pub full_name: String,
    /// Customer group (0: none).
    pub customer_group_id: i64,
    /// When the customer was created.
    pub created_at: Micros,
    /// Number of revenue orders.
    pub order_count: i64,
    /// Sum of the revenue orders' net revenue (`total_inc_tax - refunded_amount`).
    pub lifetime_revenue: Money,
    /// `created_at` of the first revenue order.
    pub first_order_at: Option<Micros>,
    /// `created_at` of the last revenue order.
    pub last_order_at: Option<Micros>,
    /// Sum of the customer's point transactions' `points`.
    pub point_balance: i64,
}

/// Whether a status id is a paid one: Shipped (2), Partially Shipped (3),
/// Awaiting Pickup (8), Awaiting Shipment (9), Completed (10), Awaiting
/// Fulfillment (11) or Partially Refunded (14).
pub fn is_paid_status(status_id: i64) -> bool {
    matches!(status_id, 2 | 3 | 8 | 9 | 10 | 11 | 14)
}

/// An order's revenue net of refunds: `total_inc_tax - refunded_amount`,
/// never below 0 (saturating).
pub fn net_revenue(order: &RawBcOrder) -> Money {
    Money(
        order
            .total_inc_tax
            .0
            .saturating_sub(order.refunded_amount.0)
            .max(0),
    )
}

/// Whether an order is fully refunded: something was refunded and nothing is
/// left (`0 < refunded_amount >= total_inc_tax`), or it is Refunded (4)
/// without an amount (the status says all of it), whatever else it says.
pub fn is_fully_refunded(order: &RawBcOrder) -> bool {
    let refunded = order.refunded_amount.0;
    (refunded > 0 && refunded >= order.total_inc_tax.0) || (order.status_id == 4 && refunded <= 0)
}

/// Whether an order counts toward its customer's aggregates: live, in a paid
/// status ([`is_paid_status`]) or Refunded (4, which BigCommerce also sets on
/// partial refunds), and not fully refunded ([`is_fully_refunded`]).
pub fn is_revenue_order(order: &RawBcOrder) -> bool {
    !order.is_deleted
        && (is_paid_status(order.status_id) || order.status_id == 4)
        && !is_fully_refunded(order)
}

/// A customer's aggregates over revenue orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CustomerOrderStats {
    /// Number of revenue orders.
    pub order_count: i64,
    /// Sum of the net revenues.
    pub lifetime_revenue: Money,
    /// Least `created_at`.
    pub first_order_at: Micros,
    /// Greatest `created_at`.
    pub last_order_at: Micros,
}

impl CustomerOrderStats {
    /// Aggregates `(created_at, net revenue)` pairs with multiplicities;
    /// `None` when there are none.
    pub fn from_orders(orders: impl IntoIterator<Item = ((Micros, Money), Diff)>) -> Option<Self> {
        let mut stats: Option<CustomerOrderStats> = None;
        for ((at, total), count) in orders {
            if count <= 0 {
                continue;
            }
            let count = count as i64;
            let revenue = Money(total.0.saturating_mul(count));
            stats = Some(match stats {
                None => CustomerOrderStats {
                    order_count: count,
                    lifetime_revenue: revenue,
                    first_order_at: at,
                    last_order_at: at,
                },
                Some(s) => CustomerOrderStats {
                    order_count: s.order_count.saturating_add(count),
                    lifetime_revenue: Money(s.lifetime_revenue.0.saturating_add(revenue.0)),
                    first_order_at: s.first_order_at.min(at),
                    last_order_at: s.last_order_at.max(at),
                },
            });
        }
        stats
    }
}

/// What a customer's aggregates are computed from, arranged by customer id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CustomerActivity {
    /// A revenue order: its `created_at` and [`net_revenue`].
    Order(Micros, Money),
    /// A point transaction's `points`.
    Points(i64),
}

/// A customer's aggregates: over revenue orders, and the point balance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CustomerStats {
    /// Aggregates over revenue orders; `None` without any.
    pub orders: Option<CustomerOrderStats>,
    /// Sum of the point transactions' points.
    pub point_balance: i64,
}

impl CustomerStats {
    /// Aggregates a customer's activities with multiplicities (non-positive
    /// ones skipped); `None` when there are none.
    pub fn from_activity(activity: &[(&CustomerActivity, Diff)]) -> Option<Self> {
        if activity.iter().all(|(_, count)| *count <= 0) {
            return None;
        }
        let orders = activity.iter().filter_map(|(a, count)| match a {
            CustomerActivity::Order(at, total) => Some(((*at, *total), *count)),
            CustomerActivity::Points(_) => None,
        });
        let points = activity.iter().filter_map(|(a, count)| match a {
            CustomerActivity::Points(points) => Some((*points, *count)),
            CustomerActivity::Order(..) => None,
        });
        Some(CustomerStats {
            orders: CustomerOrderStats::from_orders(orders),
            point_balance: point_balance(points),
        })
    }
}

/// The sum of `points` with multiplicities (non-positive ones skipped),
/// computed exactly and then clamped to the `i64` range: the result does not
/// depend on the order of the terms.
pub fn point_balance(points: impl IntoIterator<Item = (i64, Diff)>) -> i64 {
    let sum: i128 = points
        .into_iter()
        .filter(|(_, count)| *count > 0)
        .map(|(p, count)| i128::from(p) * count as i128)
        .sum();
    sum.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// `first_name` and `last_name` joined by a space, empty parts skipped.
pub fn full_name(first_name: &str, last_name: &str) -> String {
    let (first, last) = (first_name.trim(), last_name.trim());
    match (first.is_empty(), last.is_empty()) {
        (true, _) => last.to_owned(),
        (_, true) => first.to_owned(),
        _ => format!("{first} {last}"),
    }
}

impl DimCustomer {
    /// The row of customer `customer_id` with its aggregates, if any.
    pub fn new(customer_id: i64, customer: &RawBcCustomer, stats: Option<&CustomerStats>) -> Self {
        let point_balance = stats.map_or(0, |s| s.point_balance);
        let stats = stats.and_then(|s| s.orders.as_ref());
        DimCustomer {
            customer_id,
            email: customer.email.to_string(),
            full_name: full_name(&customer.first_name, &customer.last_name),
            customer_group_id: customer.customer_group_id,
            created_at: customer.created_at,
            order_count: stats.map_or(0, |s| s.order_count),
            lifetime_revenue: stats.map_or(Money(0), |s| s.lifetime_revenue),
            first_order_at: stats.map(|s| s.first_order_at),
            last_order_at: stats.map(|s| s.last_order_at),
            point_balance,
        }
    }
}

/// The table's changes.
pub(crate) fn render<'s>(arr: &Arrangements<'s>) -> Coll<'s, DimCustomer> {
    let orders = arr.orders.clone().flat_map_ref(|_, order| {
        (is_revenue_order(order) && order.customer_id != 0).then_some((
            order.customer_id,
            CustomerActivity::Order(order.created_at, net_revenue(order)),
        ))
    });
    let points = arr
        .point_transactions_by_customer
        .clone()
        .flat_map_ref(|customer_id, t| Some((*customer_id, CustomerActivity::Points(t.points))));
    let stats = orders
        .concat(points)
        .arrange_by_key_named("dim_customer_activity")
        .reduce_abelian::<_, ValBuilder<i64, CustomerStats, Epoch, Diff>, Spine<CustomerStats>, _, _>(
            "dim_customer_stats",
            |_, activity, output| {
                if let Some(stats) = CustomerStats::from_activity(activity) {
                    output.push((stats, 1));
                }
            },
            |buffer, key, updates| {
                buffer.clear();
                buffer.extend(updates.drain(..).map(|(v, t, r)| ((*key, v), t, r)));
            },
        );
    left_join(arr.customers.clone(), stats, |k, customer, stats| {
        Some(DimCustomer::new(*k, customer, stats))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{customer, order, point_transaction, updates};
    use crate::records::Upsert;
    use crate::table::{Table, TableRow};

    fn dim(count: i64, revenue: i64, first: Option<i64>, last: Option<i64>) -> TableRow {
        TableRow::DimCustomer(DimCustomer {
            customer_id: 1,
            email: "a@x".into(),
            full_name: "Ada Lovelace".into(),
            customer_group_id: 1,
            created_at: 100,
            order_count: count,
            lifetime_revenue: Money(revenue),
            first_order_at: first,
            last_order_at: last,
            point_balance: 0,
        })
    }

    fn with_points(count: i64, revenue: i64, at: Option<i64>, points: i64) -> TableRow {
        match dim(count, revenue, at, at) {
            TableRow::DimCustomer(mut d) => {
                d.point_balance = points;
                TableRow::DimCustomer(d)
            }
            other => other,
        }
    }

    #[test]
    fn point_balance_sums_point_transactions() {
        let t = |id, customer_id, points| {
            Upsert::PointTransaction(id, Some(point_transaction(id, customer_id, points)))
        };
        let got = updates(
            Table::DimCustomer,
            vec![
                // Points before their customer: no row yet.
                vec![t(1, 1, 100), t(2, 1, -30)],
                vec![Upsert::Customer(1, Some(customer(1, "a@x")))],
                // Two transactions with the same points count twice; another
                // customer's points are not counted.
                vec![t(3, 1, -30), t(4, 2, 999)],
                vec![Upsert::Order(10, Some(order(10, 1, 11, 500, 20)))],
                // A transaction moved to another customer, then all removed.
                vec![t(1, 2, 100)],
                vec![
                    Upsert::PointTransaction(2, None),
                    Upsert::PointTransaction(3, None),
                ],
            ],
        );
        assert_eq!(
            got,
            vec![
                (with_points(0, 0, None, 70), 1, 1),
                (with_points(0, 0, None, 40), 2, 1),
                (with_points(0, 0, None, 70), 2, -1),
                (with_points(0, 0, None, 40), 3, -1),
                (with_points(1, 500, Some(20), 40), 3, 1),
                (with_points(1, 500, Some(20), -60), 4, 1),
                (with_points(1, 500, Some(20), 40), 4, -1),
                (with_points(1, 500, Some(20), -60), 5, -1),
                (with_points(1, 500, Some(20), 0), 5, 1),
            ]
        );
    }

    #[test]
    fn point_balance_is_exact_then_clamped() {
        assert_eq!(point_balance([]), 0);
        assert_eq!(point_balance([(5, 2), (-3, 1), (100, -1)]), 7);
        // The order of the terms does not matter, even past the bounds.
        assert_eq!(
            point_balance([(i64::MAX, 1), (1, 1), (-5, 1)]),
            i64::MAX - 4
        );
        assert_eq!(point_balance([(i64::MAX, 2)]), i64::MAX);
        assert_eq!(point_balance([(i64::MIN, 3)]), i64::MIN);
        let only_points = [(&CustomerActivity::Points(0), 1)];
        assert_eq!(
            CustomerStats::from_activity(&only_points),
            Some(CustomerStats {
                orders: None,
                point_balance: 0
            })
        );
        assert_eq!(CustomerStats::from_activity(&[]), None);
    }

    #[test]
    fn aggregates_revenue_orders() {
        let mut archived = order(14, 1, 10, 900, 5);
        archived.is_deleted = true;
        let got = updates(
            Table::DimCustomer,
            vec![
                // An order before its customer: no row, no error.
                vec![Upsert::Order(10, Some(order(10, 1, 11, 500, 20)))],
                vec![Upsert::Customer(1, Some(customer(1, "a@x")))],
                vec![
                    Upsert::Order(11, Some(order(11, 1, 2, 300, 10))),
                    // Not counted: incomplete, cancelled, declined, archived, another customer.
                    Upsert::Order(12, Some(order(12, 1, 0, 1, 1))),
                    Upsert::Order(13, Some(order(13, 1, 5, 1, 1))),
                    Upsert::Order(15, Some(order(15, 1, 6, 1, 1))),
                    Upsert::Order(14, Some(archived)),
                    Upsert::Order(16, Some(order(16, 2, 10, 1, 1))),
                ],
                // Cancelling an order removes it from the aggregates.
                vec![Upsert::Order(10, Some(order(10, 1, 5, 500, 20)))],
                vec![Upsert::Order(11, None)],
                vec![Upsert::Customer(1, None)],
            ],
        );
        assert_eq!(
            got,
            vec![
                (dim(1, 500, Some(20), Some(20)), 1, 1),
                (dim(1, 500, Some(20), Some(20)), 2, -1),
                (dim(2, 800, Some(10), Some(20)), 2, 1),
                (dim(1, 300, Some(10), Some(10)), 3, 1),
                (dim(2, 800, Some(10), Some(20)), 3, -1),
                (dim(0, 0, None, None), 4, 1),
                (dim(1, 300, Some(10), Some(10)), 4, -1),
                (dim(0, 0, None, None), 5, -1),
            ]
        );
    }

    #[test]
    fn revenue_is_paid_statuses_net_of_refunds() {
        let raw = |status: i64, total: i64, refunded: i64| {
            let mut o = order(1, 1, status, total, 1);
            o.refunded_amount = Money(refunded);
            o
        };
        // Paid statuses count; unpaid, cancelled, disputed and refunded ones do not.
        for status in 0..=14 {
            let paid = [2, 3, 8, 9, 10, 11, 14].contains(&status);
            assert_eq!(is_revenue_order(&raw(status, 100, 0)), paid, "{status}");
        }
        // Refunded: out when fully refunded or without an amount; a partial
        // refund BigCommerce marked Refunded counts for what is left.
        assert!(!is_revenue_order(&raw(4, 100, 100)));
        assert!(is_revenue_order(&raw(4, 100, 40)));
        assert_eq!(net_revenue(&raw(4, 100, 40)), Money(60));
        // A partial refund is netted out; a full one removes the order.
        assert_eq!(net_revenue(&raw(14, 100, 30)), Money(70));
        assert!(is_revenue_order(&raw(14, 100, 30)));
        assert!(!is_revenue_order(&raw(10, 100, 100)));
        assert!(!is_revenue_order(&raw(14, 100, 130)));
        assert_eq!(net_revenue(&raw(14, 100, 130)), Money(0));
        // A zero-total paid order still counts, with no revenue.
        assert!(is_revenue_order(&raw(10, 0, 0)));
        let got = updates(
            Table::DimCustomer,
            vec![
                vec![
                    Upsert::Customer(1, Some(customer(1, "a@x"))),
                    Upsert::Order(10, Some(order(10, 1, 10, 500, 20))),
                ],
                vec![Upsert::Order(
                    10,
                    Some({
                        let mut o = order(10, 1, 14, 500, 20);
                        o.refunded_amount = Money(200);
                        o
                    }),
                )],
                vec![Upsert::Order(
                    10,
                    Some({
                        let mut o = order(10, 1, 4, 500, 20);
                        o.refunded_amount = Money(500);
                        o
                    }),
                )],
            ],
        );
        assert_eq!(
            got,
            vec![
                (dim(1, 500, Some(20), Some(20)), 0, 1),
                (dim(1, 300, Some(20), Some(20)), 1, 1),
                (dim(1, 500, Some(20), Some(20)), 1, -1),
                (dim(0, 0, None, None), 2, 1),
                (dim(1, 300, Some(20), Some(20)), 2, -1),
            ]
        );
    }

    #[test]
    fn identical_orders_count_twice() {
        let pairs = [(20, Money(500)), (20, Money(500)), (10, Money(1))];
        let stats = CustomerOrderStats::from_orders([(pairs[0], 2), (pairs[2], 1)]);
        assert_eq!(
            stats,
            Some(CustomerOrderStats {
                order_count: 3,
                lifetime_revenue: Money(1001),
                first_order_at: 10,
                last_order_at: 20
            })
        );
        assert_eq!(CustomerOrderStats::from_orders([]), None);
    }

    #[test]
    fn full_name_skips_empty_parts() {
        assert_eq!(full_name("Ada", "Lovelace"), "Ada Lovelace");
        assert_eq!(full_name(" Ada ", ""), "Ada");
        assert_eq!(full_name("", "Lovelace"), "Lovelace");
        // Both empty (or blank): the empty string, never null.
        assert_eq!(full_name("", ""), "");
        assert_eq!(full_name("  ", " "), "");
    }
}
