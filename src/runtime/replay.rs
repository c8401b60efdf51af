//! A restart's replay: the dataflow's input state rebuilt from the committed
//! raw tables ([`replay_committed`]).
//!
//! The tables are read a Parquet batch at a time and stepped in chunks, and
//! the workers only count what the steps change (their output is already
//! published), so a restart holds one batch, one chunk and the dataflow's
//! state, never a whole table or the whole published output.

use std::collections::{BTreeMap, HashMap};

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;

use dataflows::records::Upsert;
use dataflows::rows::raw_bc_order_item::RawBcOrderItem;
use dataflows::{Table, TableRow};

use super::RunError;
use super::dataflow::Dataflow;
use crate::format;
use crate::sinks::local::LocalWarehouse;

/// Upserts replayed per dataflow step: bounds the replay's transient memory
/// (the upserts and the changes the workers count).
const REPLAY_CHUNK: usize = 50_000;

/// Rebuilds the dataflow's input state from the committed raw tables of
/// `warehouse`, in steps of about [`REPLAY_CHUNK`] upserts (one step at
/// least, so the next step never runs at an epoch already committed).
/// Returns the upserts replayed and each table's rows.
pub fn replay_committed(
    dataflow: &mut Dataflow,
    warehouse: &LocalWarehouse,
) -> Result<(usize, BTreeMap<String, i64>), RunError> {
    let mut replay = Replay {
        dataflow,
        pending: Vec::new(),
        replayed: 0,
        rows: BTreeMap::new(),
    };
    for table in Table::ALL.into_iter().filter(|t| t.is_raw()) {
        if table == Table::RawBcOrderItem {
            replay_lines(&mut replay, warehouse)?;
            continue;
        }
        warehouse.scan_table(table.name(), None, |batch| -> Result<(), RunError> {
            let rows = format::rows_from_batch(table, &batch)?;
            replay.add(dataflows::upserts_from_raw(rows), REPLAY_CHUNK)
        })?;
    }
    replay.add(Vec::new(), 0)?;
    if replay.replayed == 0 {
        replay.dataflow.replay(Vec::new())?;
    }
    Ok((replay.replayed, replay.rows))
}

/// Replays the order lines: all lines of an order are one upsert, and the
/// table is keyed by line, so a first pass reads only `order_id` to count
/// each order's lines; the second pass replays an order as soon as its last
/// line is read. Lines written together sit together in the files, so only
/// orders whose lines were rewritten apart wait, not the whole table.
fn replay_lines(replay: &mut Replay, warehouse: &LocalWarehouse) -> Result<(), RunError> {
    let table = Table::RawBcOrderItem;
    let mut unread: HashMap<i64, u32> = HashMap::new();
    warehouse.scan_table(table.name(), Some(&["order_id"]), |batch| {
        if let Some(orders) = batch.column(0).as_primitive_opt::<Int64Type>() {
            for order_id in orders.iter().flatten() {
                *unread.entry(order_id).or_default() += 1;
            }
        }
        Ok::<_, RunError>(())
    })?;
    let mut open: HashMap<i64, Vec<RawBcOrderItem>> = HashMap::new();
    warehouse.scan_table(table.name(), None, |batch| -> Result<(), RunError> {
        for row in format::rows_from_batch(table, &batch)? {
            let TableRow::RawBcOrderItem(line) = row else {
                continue;
            };
            let order_id = line.order_id;
            let lines = open.entry(order_id).or_default();
            lines.push(line);
            if unread
                .get(&order_id)
                .is_none_or(|n| *n as usize <= lines.len())
            {
                unread.remove(&order_id);
                if let Some(lines) = open.remove(&order_id) {
                    replay.add(vec![order_lines(order_id, lines)], REPLAY_CHUNK)?;
                }
            }
        }
        Ok(())
    })?;
    // Counted and read by the same scan, every order completes; a table
    // changed between the passes (it cannot be while this process owns it)
    // would still replay what was read.
    let rest = open.into_iter().map(|(id, lines)| order_lines(id, lines));
    replay.add(rest.collect(), REPLAY_CHUNK)
}

/// The upsert of an order's lines, sorted by line id.
fn order_lines(order_id: i64, mut lines: Vec<RawBcOrderItem>) -> Upsert {
    lines.sort_by_key(|line| line.id);
    Upsert::OrderItems(order_id, Some(lines))
}

/// The steps of a replay.
struct Replay<'d> {
    dataflow: &'d mut Dataflow,
    /// Upserts not replayed yet.
    pending: Vec<Upsert>,
    /// Upserts replayed.
    replayed: usize,
    /// Net rows per table of the replayed steps.
    rows: BTreeMap<String, i64>,
}

impl Replay<'_> {
    /// Adds `upserts`, then replays in steps of `chunk` upserts while as
    /// many are pending (all that are pending when `chunk` is 0). Keys are
    /// distinct within a table, so the steps may take them in any order.
    fn add(&mut self, upserts: Vec<Upsert>, chunk: usize) -> Result<(), RunError> {
        self.pending.extend(upserts);
        while !self.pending.is_empty() && self.pending.len() >= chunk {
            let step = if chunk == 0 {
                std::mem::take(&mut self.pending)
            } else {
                self.pending.split_off(self.pending.len() - chunk)
            };
            self.replayed += step.len();
            for (table, n) in self.dataflow.replay(step)? {
                *self.rows.entry(table.name().to_string()).or_default() += n;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{table_changes, table_specs};
    use crate::sinks::local::WarehouseOptions;
    use dataflows::payload::Payloads;
    use dataflows::scalar::Money;

    fn line(id: i64, order_id: i64, quantity: i64) -> RawBcOrderItem {
        RawBcOrderItem {
            id,
            order_id,
            product_id: 1,
            variant_id: 2,
            sku: "S".into(),
            name: "N".into(),
            quantity,
            base_price: Money(100),
            price_ex_tax: Money(100),
            price_inc_tax: Money(100),
            total_ex_tax: Money(100 * quantity),
            total_inc_tax: Money(100 * quantity),
            payload: Default::default(),
        }
    }

    fn lines(order_id: i64, lines: Vec<RawBcOrderItem>) -> Upsert {
        Upsert::OrderItems(order_id, Some(lines))
    }

    #[test]
    fn lines_written_apart_replay_as_one_upsert_per_order() {
        // Order 5's line 52 is rewritten alone in epoch 2, so its lines sit in
        // two files; order 6 comes in epoch 2, order 7 loses a line in epoch 3.
        let epochs = vec![
            vec![
                lines(5, vec![line(51, 5, 1), line(52, 5, 1)]),
                lines(7, vec![line(71, 7, 1), line(72, 7, 1)]),
            ],
            vec![
                lines(5, vec![line(51, 5, 1), line(52, 5, 3)]),
                lines(6, vec![line(61, 6, 2)]),
            ],
            vec![lines(7, vec![line(72, 7, 1)])],
        ];
        let dir = tempfile::tempdir().unwrap();
        let mut wh =
            LocalWarehouse::open(dir.path(), &table_specs(), WarehouseOptions::default()).unwrap();
        let mut live = Dataflow::start(2).unwrap();
        for (epoch, upserts) in (1u64..).zip(epochs) {
            let changes = live.step(upserts).unwrap();
            let commit: Vec<_> = changes
                .iter()
                .map(|(table, rows)| table_changes(*table, epoch, rows, &Payloads::default()))
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(wh.commit(epoch, &commit).unwrap().published);
        }
        let mut restarted = Dataflow::start(2).unwrap();
        let (upserts, rows) = replay_committed(&mut restarted, &wh).unwrap();
        assert_eq!(upserts, 3, "one upsert per order");
        assert_eq!(rows["raw_bc_order_item"], 4);
        assert_eq!(
            rows.get("fct_order_item"),
            None,
            "no orders: no order facts"
        );
        // The replayed state is the live one: the same reads change nothing.
        let last = vec![
            lines(5, vec![line(51, 5, 1), line(52, 5, 3)]),
            lines(6, vec![line(61, 6, 2)]),
            lines(7, vec![line(72, 7, 1)]),
        ];
        assert!(live.step(last.clone()).unwrap().is_empty());
        assert!(restarted.step(last).unwrap().is_empty());
    }
}
