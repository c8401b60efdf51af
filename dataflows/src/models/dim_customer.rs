//! The dataflow of `dim_customer`; its contract: [`crate::rows::dim_customer`].
//!
//! **Dataflow.** Revenue orders (`(created_at, net revenue)`) and point transactions
//! (`points`) are arranged together by customer as [`CustomerActivity`] and
//! reduced to one [`CustomerStats`] per customer (small state: a timestamp and
//! an amount per order, a number per distinct points value), then left-joined
//! with the customer arrangement (state: ids of customers without activity).

use differential_dataflow::trace::implementations::ValBuilder;
use serde::{Deserialize, Serialize};

use crate::arrangements::Arrangements;
use crate::ops::{Coll, Diff, Epoch, Spine, left_join};
use crate::rows::dim_customer::{DimCustomer, full_name, is_revenue_order, net_revenue};
use crate::rows::raw_bc_customer::CustomerIn;
use crate::scalar::{Micros, Money};

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

impl DimCustomer {
    /// The row of customer `customer_id` with its aggregates, if any.
    pub fn new(customer_id: i64, customer: &CustomerIn, stats: Option<&CustomerStats>) -> Self {
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
    use crate::rows::table::{Table, TableRow};

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
    fn revenue_follows_refunds() {
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
}
