//! `fct_order` and `dim_customer` as a dbsp circuit.
//!
//! The inputs are three dbsp upsert maps (`add_input_map`), holding the full
//! current rows as read, as govflow's `raw_*` arrangements do: customers and
//! orders by id, and each order's list of lines by order id. dbsp keeps those
//! maps itself, so their memory counts inside the engine.
//!
//! - `fct_order`: the orders left-joined with `(item_count, quantity)` per
//!   order (a linear map of the lines), archived orders dropped.
//! - `dim_customer`: the revenue orders' `(created_at, net revenue)` by
//!   customer, folded into one aggregate per customer, and the customers
//!   left-joined with those. `point_balance` is always 0: there are no point
//!   transactions here.
//!
//! dbsp 0.349 is used with its default `backend-mode` feature, whose typed
//! operators are the monomorphic ones of `dbsp::mono` (as the Feldera SQL
//! compiler's output uses them), with native left joins.
//!
//! Rows and rules are govflow's (see `dataflows::rows::fct_order` and
//! `dataflows::rows::dim_customer`).

use std::collections::BTreeMap;

use dataflows::records::Upsert;
use dataflows::rows::dim_customer::{DimCustomer, full_name, is_paid_status};
use dataflows::rows::fct_order::{FctOrder, customer_ref, is_complete};
use dataflows::rows::raw_bc_customer::RawBcCustomer;
use dataflows::rows::raw_bc_order::RawBcOrder;
use dataflows::rows::raw_bc_order_item::RawBcOrderItem;
use dataflows::scalar::Money;
use dbsp::algebra::Semigroup;
use dbsp::operator::Fold;
use dbsp::operator::input::Update;
use dbsp::trace::BatchReader as _;
use dbsp::utils::Tup2;
use dbsp::{
    DBSPHandle, IndexedZSetReader as _, MapHandle, OrdZSet, OutputHandle, RootCircuit, Runtime,
    ZWeight, typed_batch::SpineSnapshot,
};
use feldera_macros::IsNone;
use size_of::SizeOf;

/// Errors of the dbsp baseline.
#[derive(Debug, thiserror::Error)]
pub enum PeersError {
    /// A circuit needs at least one worker.
    #[error("dbsp needs at least one worker")]
    NoWorkers,
    /// dbsp failed to start the circuit or to run a step.
    #[error("dbsp: {0}")]
    Dbsp(#[from] dbsp::Error),
    /// A retraction of a row that the accumulated snapshot does not hold:
    /// the output stream is inconsistent (checked with snapshots only).
    #[error("{table}: retraction of a row that is not in the output")]
    Retraction {
        /// The output table.
        table: &'static str,
    },
}

/// Derives what dbsp asks of its data: ordering, hashing, `SizeOf`, rkyv
/// (for spilling, which is off here) and `IsNone`.
macro_rules! dbsp_data {
    ($(#[$doc:meta])* struct $name:ident { $($(#[$fdoc:meta])* $field:ident: $ty:ty,)* }) => {
        $(#[$doc])*
        #[derive(
            Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, SizeOf,
            rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, IsNone,
        )]
        #[archive_attr(derive(Ord, Eq, PartialEq, PartialOrd))]
        struct $name { $($(#[$fdoc])* $field: $ty,)* }
    };
}

dbsp_data! {
    /// A `raw_bc_customer` row (`RawBcCustomer`, money as ten-thousandths).
    struct CustomerRow {
        id: i64,
        email: String,
        first_name: String,
        last_name: String,
        company: String,
        phone: String,
        customer_group_id: i64,
        date_created: i64,
        date_modified: i64,
    }
}

dbsp_data! {
    /// A `raw_bc_order` row.
    struct OrderRow {
        id: i64,
        customer_id: i64,
        status_id: i64,
        status: String,
        subtotal_ex_tax: i64,
        subtotal_inc_tax: i64,
        total_ex_tax: i64,
        total_inc_tax: i64,
        refunded_amount: i64,
        items_total: i64,
        currency_code: String,
        is_deleted: bool,
        date_created: i64,
        date_modified: i64,
    }
}

dbsp_data! {
    /// A `raw_bc_order_item` row.
    struct LineRow {
        id: i64,
        order_id: i64,
        product_id: i64,
        variant_id: i64,
        sku: String,
        name: String,
        quantity: i64,
        base_price: i64,
        price_ex_tax: i64,
        price_inc_tax: i64,
        total_ex_tax: i64,
        total_inc_tax: i64,
    }
}

dbsp_data! {
    /// An order's lines, the value of the lines map.
    struct Lines {
        lines: Vec<LineRow>,
    }
}

dbsp_data! {
    /// Number and summed quantity of an order's lines with a positive quantity.
    struct LineStats {
        item_count: i64,
        quantity: i64,
    }
}

dbsp_data! {
    /// A revenue order as its customer's aggregate sees it.
    struct RevenueOrder {
        created_at: i64,
        total_inc_tax: i64,
    }
}

dbsp_data! {
    /// A customer's aggregates over revenue orders.
    struct OrderStats {
        order_count: i64,
        lifetime_revenue: i64,
        first_order_at: i64,
        last_order_at: i64,
    }
}

dbsp_data! {
    /// A `fct_order` row (`FctOrder`).
    struct FctOrderRow {
        order_id: i64,
        customer_id: Option<i64>,
        status_id: i64,
        status: String,
        is_complete: bool,
        subtotal_ex_tax: i64,
        total_ex_tax: i64,
        total_inc_tax: i64,
        refunded_amount: i64,
        is_revenue: bool,
        net_revenue: i64,
        item_count: i64,
        quantity: i64,
        ordered_at: i64,
        modified_at: i64,
    }
}

dbsp_data! {
    /// A `dim_customer` row (`DimCustomer`, without the always-zero points).
    struct DimCustomerRow {
        customer_id: i64,
        email: String,
        full_name: String,
        customer_group_id: i64,
        created_at: i64,
        order_count: i64,
        lifetime_revenue: i64,
        first_order_at: Option<i64>,
        last_order_at: Option<i64>,
    }
}

impl From<RawBcCustomer> for CustomerRow {
    fn from(c: RawBcCustomer) -> Self {
        CustomerRow {
            id: c.id,
            email: c.email.into(),
            first_name: c.first_name.into(),
            last_name: c.last_name.into(),
            company: c.company.into(),
            phone: c.phone.into(),
            customer_group_id: c.customer_group_id,
            date_created: c.created_at,
            date_modified: c.modified_at,
        }
    }
}

impl From<RawBcOrder> for OrderRow {
    fn from(o: RawBcOrder) -> Self {
        OrderRow {
            id: o.id,
            customer_id: o.customer_id,
            status_id: o.status_id,
            status: o.status.into(),
            subtotal_ex_tax: o.subtotal_ex_tax.0,
            subtotal_inc_tax: o.subtotal_inc_tax.0,
            total_ex_tax: o.total_ex_tax.0,
            total_inc_tax: o.total_inc_tax.0,
            refunded_amount: o.refunded_amount.0,
            items_total: o.items_total,
            currency_code: o.currency_code.into(),
            is_deleted: o.is_deleted,
            date_created: o.created_at,
            date_modified: o.modified_at,
        }
    }
}

impl From<RawBcOrderItem> for LineRow {
    fn from(i: RawBcOrderItem) -> Self {
        LineRow {
            id: i.id,
            order_id: i.order_id,
            product_id: i.product_id,
            variant_id: i.variant_id,
            sku: i.sku.into(),
            name: i.name.into(),
            quantity: i.quantity,
            base_price: i.base_price.0,
            price_ex_tax: i.price_ex_tax.0,
            price_inc_tax: i.price_inc_tax.0,
            total_ex_tax: i.total_ex_tax.0,
            total_inc_tax: i.total_inc_tax.0,
        }
    }
}

impl LineStats {
    /// `fct_order`'s line rule: lines with a positive quantity count.
    fn of(lines: &Lines) -> Self {
        lines
            .lines
            .iter()
            .filter(|line| line.quantity > 0)
            .fold(LineStats::default(), |s, line| LineStats {
                item_count: s.item_count + 1,
                quantity: s.quantity.saturating_add(line.quantity),
            })
    }
}

impl FctOrderRow {
    /// As `FctOrder::new`; `None` for an archived order.
    fn new(order_id: i64, order: &OrderRow, lines: &LineStats) -> Option<Self> {
        let net = net_revenue(order);
        (!order.is_deleted).then(|| FctOrderRow {
            order_id,
            customer_id: customer_ref(order.customer_id),
            status_id: order.status_id,
            status: order.status.clone(),
            is_complete: is_complete(order.status_id),
            subtotal_ex_tax: order.subtotal_ex_tax,
            total_ex_tax: order.total_ex_tax,
            total_inc_tax: order.total_inc_tax,
            refunded_amount: order.refunded_amount,
            is_revenue: net.is_some(),
            net_revenue: net.unwrap_or(0),
            item_count: lines.item_count,
            quantity: lines.quantity,
            ordered_at: order.date_created,
            modified_at: order.date_modified,
        })
    }

    fn into_row(self) -> FctOrder {
        FctOrder {
            order_id: self.order_id,
            customer_id: self.customer_id,
            status_id: self.status_id,
            status: self.status,
            is_complete: self.is_complete,
            subtotal_ex_tax: Money(self.subtotal_ex_tax),
            total_ex_tax: Money(self.total_ex_tax),
            total_inc_tax: Money(self.total_inc_tax),
            refunded_amount: Money(self.refunded_amount),
            is_revenue: self.is_revenue,
            net_revenue: Money(self.net_revenue),
            item_count: self.item_count,
            quantity: self.quantity,
            ordered_at: self.ordered_at,
            modified_at: self.modified_at,
        }
    }
}

impl DimCustomerRow {
    /// As `DimCustomer::new`, without point transactions.
    fn new(customer_id: i64, customer: &CustomerRow, stats: Option<&OrderStats>) -> Self {
        DimCustomerRow {
            customer_id,
            email: customer.email.clone(),
            full_name: full_name(&customer.first_name, &customer.last_name),
            customer_group_id: customer.customer_group_id,
            created_at: customer.date_created,
            order_count: stats.map_or(0, |s| s.order_count),
            lifetime_revenue: stats.map_or(0, |s| s.lifetime_revenue),
            first_order_at: stats.map(|s| s.first_order_at),
            last_order_at: stats.map(|s| s.last_order_at),
        }
    }

    fn into_row(self) -> DimCustomer {
        DimCustomer {
            customer_id: self.customer_id,
            email: self.email,
            full_name: self.full_name,
            customer_group_id: self.customer_group_id,
            created_at: self.created_at,
            order_count: self.order_count,
            lifetime_revenue: Money(self.lifetime_revenue),
            first_order_at: self.first_order_at,
            last_order_at: self.last_order_at,
            point_balance: 0,
        }
    }
}

/// `dim_customer`'s revenue rule (`is_revenue_order`, `net_revenue`): the
/// net revenue of a live order in a paid status or Refunded (4) that is not
/// fully refunded (Refunded without an amount is), else `None`.
fn net_revenue(order: &OrderRow) -> Option<i64> {
    let refunded = order.refunded_amount;
    let fully_refunded = (refunded > 0 && refunded >= order.total_inc_tax)
        || (order.status_id == 4 && refunded <= 0);
    let status = is_paid_status(order.status_id) || order.status_id == 4;
    (!order.is_deleted && status && !fully_refunded).then(|| {
        order
            .total_inc_tax
            .saturating_sub(order.refunded_amount)
            .max(0)
    })
}

/// A revenue order by customer; guests (0) have no row.
fn revenue_order(order: &OrderRow) -> Option<(i64, RevenueOrder)> {
    let net = net_revenue(order)?;
    let row = RevenueOrder {
        created_at: order.date_created,
        total_inc_tax: net,
    };
    (order.customer_id != 0).then_some((order.customer_id, row))
}

/// Adds `count` copies of an order to a customer's aggregates (as
/// `CustomerOrderStats::from_orders`: non-positive counts skipped, sums
/// saturating). The fold starts from [`OrderStats::EMPTY`].
fn add_order(stats: &mut OrderStats, order: &RevenueOrder, count: ZWeight) {
    if count <= 0 {
        return;
    }
    stats.order_count = stats.order_count.saturating_add(count);
    stats.lifetime_revenue = stats
        .lifetime_revenue
        .saturating_add(order.total_inc_tax.saturating_mul(count));
    stats.first_order_at = stats.first_order_at.min(order.created_at);
    stats.last_order_at = stats.last_order_at.max(order.created_at);
}

impl OrderStats {
    /// The fold's start: no orders, bounds that any order replaces.
    const EMPTY: OrderStats = OrderStats {
        order_count: 0,
        lifetime_revenue: 0,
        first_order_at: i64::MAX,
        last_order_at: i64::MIN,
    };
}

/// Combines two customers' partial aggregates (dbsp asks aggregators for a
/// semigroup; its plain `aggregate` does not use it).
#[derive(Clone)]
struct CombineStats;

impl Semigroup<OrderStats> for CombineStats {
    fn combine(left: &OrderStats, right: &OrderStats) -> OrderStats {
        OrderStats {
            order_count: left.order_count.saturating_add(right.order_count),
            lifetime_revenue: left.lifetime_revenue.saturating_add(right.lifetime_revenue),
            first_order_at: left.first_order_at.min(right.first_order_at),
            last_order_at: left.last_order_at.max(right.last_order_at),
        }
    }
}

type Map<V> = MapHandle<i64, V, ()>;
/// One transaction's changes of an output, per worker.
type Output<T> = OutputHandle<SpineSnapshot<OrdZSet<T>>>;

/// The circuit's input and output handles.
struct Handles {
    customers: Map<CustomerRow>,
    orders: Map<OrderRow>,
    lines: Map<Lines>,
    fct_order: Output<FctOrderRow>,
    dim_customer: Output<DimCustomerRow>,
}

fn build(circuit: &mut RootCircuit) -> Handles {
    // Only `Update::Insert` and `Update::Delete` are sent: no patches.
    fn replace<V>(_: &mut V, _: &()) {}
    let (customers, customers_in) =
        circuit.add_input_map::<i64, CustomerRow, (), _>(replace::<CustomerRow>);
    let (orders, orders_in) = circuit.add_input_map::<i64, OrderRow, (), _>(replace::<OrderRow>);
    let (lines, lines_in) = circuit.add_input_map::<i64, Lines, (), _>(replace::<Lines>);

    // fct_order: orders left-joined with their line stats (dbsp's left join
    // wants `Option` values on the right, never `None`).
    let line_stats = lines.map_index(|(order_id, lines)| (*order_id, Some(LineStats::of(lines))));
    let fct_order = orders.left_join_flatmap(&line_stats, |id, order, stats| {
        FctOrderRow::new(*id, order, &stats.clone().unwrap_or_default())
    });

    // dim_customer: customers left-joined with their revenue orders' aggregates.
    let stats = orders
        .flat_map_index(|(_, order)| revenue_order(order))
        .aggregate(
            <Fold<RevenueOrder, OrderStats, CombineStats, _, _>>::with_output(
                OrderStats::EMPTY,
                add_order,
                Some,
            ),
        );
    let dim_customer = customers.left_join(&stats, |id, customer, stats| {
        DimCustomerRow::new(*id, customer, stats.as_ref())
    });

    Handles {
        customers: customers_in,
        orders: orders_in,
        lines: lines_in,
        // Operators emit a transaction's output over several steps: the
        // accumulated output holds all of it.
        fct_order: fct_order.accumulate_output(),
        dim_customer: dim_customer.accumulate_output(),
    }
}

/// The accumulated outputs, kept outside dbsp when snapshots are asked for.
#[derive(Default)]
struct Snapshots {
    fct_order: BTreeMap<FctOrderRow, ZWeight>,
    dim_customer: BTreeMap<DimCustomerRow, ZWeight>,
}

/// Takes one step's changes of an output from every worker: adds them to
/// `snapshot` if given, and returns their number.
fn drain<T: dbsp::DBData>(
    output: &Output<T>,
    snapshot: Option<&mut BTreeMap<T, ZWeight>>,
    table: &'static str,
) -> Result<usize, PeersError> {
    // Each worker's share holds the changes of the keys it owns.
    let batches: Vec<_> = output
        .take_from_all()
        .iter()
        .map(|b| b.consolidate())
        .collect();
    let changes = batches.iter().map(|b| b.len()).sum();
    if let Some(snapshot) = snapshot {
        for batch in &batches {
            for (row, (), weight) in batch.iter() {
                let entry = snapshot.entry(row);
                let sum = match entry {
                    std::collections::btree_map::Entry::Occupied(mut e) => {
                        *e.get_mut() += weight;
                        let sum = *e.get();
                        if sum == 0 {
                            e.remove();
                        }
                        sum
                    }
                    std::collections::btree_map::Entry::Vacant(e) => *e.insert(weight),
                };
                if sum < 0 {
                    return Err(PeersError::Retraction { table });
                }
            }
        }
    }
    Ok(changes)
}

/// govflow's `fct_order` and `dim_customer` maintained by a dbsp circuit, fed
/// with the same upserts as govflow's dataflow.
pub struct DbspOrders {
    handle: DBSPHandle,
    handles: Handles,
    snapshots: Option<Snapshots>,
}

impl DbspOrders {
    /// Starts a dbsp circuit on `workers` threads. Outputs are counted, not
    /// kept: [`DbspOrders::snapshot`] returns `None`.
    pub fn new(workers: usize) -> Result<Self, PeersError> {
        Self::start(workers, false)
    }

    /// As [`DbspOrders::new`], and accumulates both outputs outside the
    /// circuit for [`DbspOrders::snapshot`] (memory that a benchmark of the
    /// engine's state should not count).
    pub fn with_snapshots(workers: usize) -> Result<Self, PeersError> {
        Self::start(workers, true)
    }

    fn start(workers: usize, snapshots: bool) -> Result<Self, PeersError> {
        if workers == 0 {
            return Err(PeersError::NoWorkers);
        }
        let (handle, handles) = Runtime::init_circuit(workers, |circuit| Ok(build(circuit)))?;
        Ok(DbspOrders {
            handle,
            handles,
            snapshots: snapshots.then(Snapshots::default),
        })
    }

    /// Feeds one epoch of upserts, runs one step; returns the number of output
    /// changes (`fct_order` and `dim_customer` rows inserted or retracted).
    ///
    /// Within the epoch, the last upsert of a key wins. Upserts of other
    /// tables than customers, orders and order lines are ignored.
    pub fn step(&mut self, upserts: Vec<Upsert>) -> Result<usize, PeersError> {
        let mut customers = Vec::new();
        let mut orders = Vec::new();
        let mut lines = Vec::new();
        fn update<V: dbsp::DBData>(value: Option<V>) -> Update<V, ()> {
            value.map_or(Update::Delete, Update::Insert)
        }
        for upsert in upserts {
            match upsert {
                Upsert::Customer(k, v) => customers.push(Tup2(k, update(v.map(CustomerRow::from)))),
                Upsert::Order(k, v) => orders.push(Tup2(k, update(v.map(OrderRow::from)))),
                Upsert::OrderItems(k, v) => lines.push(Tup2(
                    k,
                    update(v.map(|v| Lines {
                        lines: v.into_iter().map(LineRow::from).collect(),
                    })),
                )),
                _ => {}
            }
        }
        self.handles.customers.append(&mut customers);
        self.handles.orders.append(&mut orders);
        self.handles.lines.append(&mut lines);
        self.handle.transaction()?;
        let snapshots = self.snapshots.as_mut();
        let (fct, dim) = match snapshots {
            Some(s) => (Some(&mut s.fct_order), Some(&mut s.dim_customer)),
            None => (None, None),
        };
        Ok(drain(&self.handles.fct_order, fct, "fct_order")?
            + drain(&self.handles.dim_customer, dim, "dim_customer")?)
    }

    /// The current contents of `fct_order` and `dim_customer`, sorted; `None`
    /// unless started with [`DbspOrders::with_snapshots`].
    pub fn snapshot(&self) -> Option<(Vec<FctOrder>, Vec<DimCustomer>)> {
        fn rows<T: Clone, R: Ord>(map: &BTreeMap<T, ZWeight>, f: impl Fn(T) -> R) -> Vec<R> {
            let mut rows: Vec<R> = map
                .iter()
                .flat_map(|(row, weight)| (0..*weight).map(|_| f(row.clone())))
                .collect();
            rows.sort();
            rows
        }
        self.snapshots.as_ref().map(|s| {
            (
                rows(&s.fct_order, FctOrderRow::into_row),
                rows(&s.dim_customer, DimCustomerRow::into_row),
            )
        })
    }
}

#[cfg(test)]
mod tests;
