//! Runs the dataflow over in-memory epochs of upserts: for tests, examples and
//! tools that want a table's changes without writing a driver.

use std::sync::{Arc, Mutex};

use crate::capture::EpochChanges;
use crate::checks::{CheckRow, CheckSpec};
use crate::input::UpsertInput;
use crate::ops::{Diff, Epoch};
use crate::records::Upsert;
use crate::rows::table::TableRow;

/// The worker that sends `upsert` when `peers` workers share the input: by key,
/// so that a key's upserts of one epoch all come from the same worker.
pub fn route(upsert: &Upsert, peers: usize) -> usize {
    (upsert.key().unsigned_abs() % peers.max(1) as u64) as usize
}

/// Runs the dataflow on `workers` threads over `epochs` (epoch `i` holds the
/// upserts of epoch `i`, each sent by the worker [`route`] picks, in order),
/// and returns the changes every worker captured: one entry per worker and
/// epoch with a change, sorted by epoch (and worker).
pub fn run(workers: usize, epochs: Vec<Vec<Upsert>>) -> Result<Vec<EpochChanges>, String> {
    Ok(run_with_checks(workers, epochs, Vec::new())?.0)
}

/// As [`run`], also maintaining `checks`: returns the tables' changes and the
/// check rows' changes (each sorted by epoch).
#[allow(clippy::type_complexity)]
pub fn run_with_checks(
    workers: usize,
    epochs: Vec<Vec<Upsert>>,
    checks: Vec<CheckSpec>,
) -> Result<(Vec<EpochChanges>, Vec<EpochChanges<CheckRow>>), String> {
    let epochs = Arc::new(epochs);
    let results: Arc<Mutex<(Vec<EpochChanges>, Vec<EpochChanges<CheckRow>>)>> = Arc::default();
    let shared = Arc::clone(&results);
    let guards = timely::execute(timely::Config::process(workers.max(1)), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let mut input = UpsertInput::new();
        let captured =
            worker.dataflow(|scope| crate::build(scope, &mut input).capture_with_checks(&checks));
        let (mut tables, mut check_rows) = (Vec::new(), Vec::new());
        for (epoch, upserts) in epochs.iter().enumerate() {
            for upsert in upserts.iter().filter(|u| route(u, peers) == index) {
                input.send(upsert.clone());
            }
            input.advance_to(epoch as Epoch + 1);
            worker.step_while(|| captured.probe.less_than(&input.epoch()));
            tables.extend(captured.changes.take_before(input.epoch()));
            check_rows.extend(captured.checks.take_before(input.epoch()));
        }
        if let Ok(mut all) = shared.lock() {
            all.0.extend(tables);
            all.1.extend(check_rows);
        }
    })?;
    for result in guards.join() {
        result?;
    }
    let (mut tables, mut check_rows) =
        std::mem::take(&mut *results.lock().map_err(|e| e.to_string())?);
    tables.sort_by_key(|c| c.epoch);
    check_rows.sort_by_key(|c| c.epoch);
    Ok((tables, check_rows))
}

/// The `(row, epoch, diff)` updates of [`run`], flattened and consolidated
/// across workers, sorted by epoch then row.
pub fn run_updates(
    workers: usize,
    epochs: Vec<Vec<Upsert>>,
) -> Result<Vec<(TableRow, Epoch, Diff)>, String> {
    let mut updates: Vec<(TableRow, Epoch, Diff)> = run(workers, epochs)?
        .into_iter()
        .flat_map(|c| {
            c.changes
                .into_iter()
                .map(move |(row, diff)| (row, c.epoch, diff))
        })
        .collect();
    updates.sort_by(|(r1, t1, _), (r2, t2, _)| (t1, r1).cmp(&(t2, r2)));
    let mut out: Vec<(TableRow, Epoch, Diff)> = Vec::with_capacity(updates.len());
    for (row, time, diff) in updates {
        match out.last_mut() {
            Some((r, t, d)) if *t == time && *r == row => *d += diff,
            _ => out.push((row, time, diff)),
        }
    }
    out.retain(|(_, _, d)| *d != 0);
    Ok(out)
}
