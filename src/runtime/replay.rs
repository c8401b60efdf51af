//! A restart's replay: the dataflow's input state rebuilt from the committed
//! raw tables ([`replay_committed`]).
//!
//! The tables are read a Parquet batch at a time and stepped in chunks, and
//! the workers only count what the steps change (their output is already
//! published), so a restart holds one batch, one chunk and the dataflow's
//! state, never a whole table or the whole published output.

use std::collections::BTreeMap;

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
        // An order's lines are one upsert: they are gathered by order over the
        // whole table, then replayed as the orders are taken out.
        let mut lines: BTreeMap<i64, Vec<RawBcOrderItem>> = BTreeMap::new();
        warehouse.scan_table(table.name(), None, |batch| -> Result<(), RunError> {
            let rows = format::rows_from_batch(table, &batch)?;
            if table == Table::RawBcOrderItem {
                for row in rows {
                    if let TableRow::RawBcOrderItem(line) = row {
                        lines.entry(line.order_id).or_default().push(line);
                    }
                }
                return Ok(());
            }
            replay.add(dataflows::upserts_from_raw(rows), REPLAY_CHUNK)
        })?;
        while let Some((order_id, mut order_lines)) = lines.pop_first() {
            order_lines.sort_by_key(|line| line.id);
            let upsert = Upsert::OrderItems(order_id, Some(order_lines));
            replay.add(vec![upsert], REPLAY_CHUNK)?;
        }
    }
    replay.add(Vec::new(), 0)?;
    if replay.replayed == 0 {
        replay.dataflow.replay(Vec::new())?;
    }
    Ok((replay.replayed, replay.rows))
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
