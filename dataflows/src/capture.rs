//! Capturing the output tables' changes per epoch for a driver.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use timely::dataflow::ProbeHandle;

use crate::checks::CheckRow;
use crate::ops::{Diff, Epoch};
use crate::rows::table::{Table, TableRow};

/// The changes of one worker's share of every table, buffered as the dataflow
/// produces them. Cloning shares the buffer.
///
/// Take the changes of finished epochs with [`ChangeBuffer::take_before`] once
/// the [`Captured::probe`] has passed them.
#[derive(Clone, Debug)]
pub struct ChangeBuffer<D = TableRow> {
    updates: Rc<RefCell<Vec<(D, Epoch, Diff)>>>,
    /// While set, the table changes of epochs before its bound are counted
    /// per table, not buffered (see [`ChangeBuffer::count_before`]).
    tally: Rc<RefCell<Option<Tally>>>,
}

/// Net row counts per table of the epochs before `upper`.
#[derive(Debug)]
struct Tally {
    upper: Epoch,
    counts: BTreeMap<Table, i64>,
}

impl<D> Default for ChangeBuffer<D> {
    fn default() -> Self {
        ChangeBuffer {
            updates: Rc::new(RefCell::new(Vec::new())),
            tally: Rc::new(RefCell::new(None)),
        }
    }
}

impl ChangeBuffer<TableRow> {
    /// From now on, counts the changes of epochs before `upper` per table
    /// instead of buffering them (a replay of state whose output is already
    /// published needs only its counts); later epochs are still buffered.
    /// Ends with [`ChangeBuffer::take_counts`].
    pub fn count_before(&self, upper: Epoch) {
        *self.tally.borrow_mut() = Some(Tally {
            upper,
            counts: BTreeMap::new(),
        });
    }

    /// Stops counting and returns the net row counts per table since
    /// [`ChangeBuffer::count_before`] (tables without a change left out).
    pub fn take_counts(&self) -> BTreeMap<Table, i64> {
        let mut counts = self
            .tally
            .borrow_mut()
            .take()
            .map(|t| t.counts)
            .unwrap_or_default();
        counts.retain(|_, n| *n != 0);
        counts
    }

    /// Moves table changes in, counting those a tally asks for; used by the
    /// capture operator.
    pub(crate) fn append_rows(&self, updates: &mut Vec<(TableRow, Epoch, Diff)>) {
        match &mut *self.tally.borrow_mut() {
            Some(tally) => {
                let upper = tally.upper;
                let mut later = Vec::new();
                for (row, time, diff) in updates.drain(..) {
                    if time < upper {
                        *tally.counts.entry(row.table_id()).or_default() += diff as i64;
                    } else {
                        later.push((row, time, diff));
                    }
                }
                self.append(&mut later);
            }
            None => self.append(updates),
        }
    }
}

/// The consolidated changes of one epoch: rows to insert (`+1`) and to retract
/// (`-1`), sorted by table, then row. An update of a row is a retraction of the
/// old row and an insertion of the new one, with the same key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochChanges<D = TableRow> {
    /// The epoch.
    pub epoch: Epoch,
    /// Non-zero changes, sorted (for table rows: by table, then row).
    pub changes: Vec<(D, Diff)>,
}

impl<D> Default for EpochChanges<D> {
    fn default() -> Self {
        EpochChanges {
            epoch: 0,
            changes: Vec::new(),
        }
    }
}

impl EpochChanges {
    /// The changes grouped by table: contiguous slices, in [`Table::ALL`] order,
    /// tables without changes left out.
    pub fn tables(&self) -> impl Iterator<Item = (Table, &[(TableRow, Diff)])> + '_ {
        let mut rest = &self.changes[..];
        std::iter::from_fn(move || {
            let table = rest.first()?.0.table_id();
            let end = rest
                .iter()
                .position(|(row, _)| row.table_id() != table)
                .unwrap_or(rest.len());
            let (head, tail) = rest.split_at(end);
            rest = tail;
            Some((table, head))
        })
    }
}

impl<D: Ord> ChangeBuffer<D> {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends updates (tests).
    #[cfg(test)]
    pub(crate) fn extend(&self, updates: &[(D, Epoch, Diff)])
    where
        D: Clone,
    {
        self.updates.borrow_mut().extend_from_slice(updates);
    }

    /// Moves updates in; used by the capture operator.
    pub(crate) fn append(&self, updates: &mut Vec<(D, Epoch, Diff)>) {
        self.updates.borrow_mut().append(updates);
    }

    /// Number of buffered (not yet consolidated) updates.
    pub fn len(&self) -> usize {
        self.updates.borrow().len()
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes the changes of every epoch before `upper` and returns them
    /// consolidated, one entry per epoch with a non-zero change, in epoch order.
    ///
    /// Call it when the probe no longer is `less_than(&upper)`: the changes of
    /// those epochs are then complete on this worker.
    pub fn take_before(&self, upper: Epoch) -> Vec<EpochChanges<D>> {
        let mut ready = {
            let mut updates = self.updates.borrow_mut();
            if updates.iter().all(|(_, time, _)| *time < upper) {
                // The usual case: the driver takes every epoch it has finished.
                std::mem::take(&mut *updates)
            } else {
                let (ready, pending): (Vec<_>, Vec<_>) =
                    updates.drain(..).partition(|(_, time, _)| *time < upper);
                *updates = pending;
                ready
            }
        };
        ready.sort_unstable_by(|(r1, t1, _), (r2, t2, _)| (t1, r1).cmp(&(t2, r2)));
        let mut epochs: Vec<EpochChanges<D>> = Vec::new();
        let mut iter = ready.into_iter().peekable();
        while let Some((row, time, mut diff)) = iter.next() {
            while let Some((_, _, more)) = iter.next_if(|(r, t, _)| *t == time && *r == row) {
                diff += more;
            }
            if diff == 0 {
                continue;
            }
            match epochs.last_mut() {
                Some(last) if last.epoch == time => last.changes.push((row, diff)),
                _ => epochs.push(EpochChanges {
                    epoch: time,
                    changes: vec![(row, diff)],
                }),
            }
        }
        epochs
    }
}

/// What [`crate::Outputs::capture`] returns: the buffers the changes land in,
/// and a probe that passes an epoch once all its changes are in the buffers.
#[derive(Clone)]
pub struct Captured {
    /// This worker's share of the changes of every table.
    pub changes: ChangeBuffer,
    /// This worker's share of the check rows' changes (see [`crate::checks`]);
    /// a check's rows may be spread over workers: consolidate across them.
    pub checks: ChangeBuffer<CheckRow>,
    /// Passes epoch `e` when the changes of every epoch before `e` are buffered.
    pub probe: ProbeHandle<Epoch>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::errors::{ErrorReason, ErrorRow};

    fn err(key: i64) -> TableRow {
        TableRow::Errors(ErrorRow {
            table: Table::RawBcVariant,
            key,
            reason: ErrorReason::UnknownProduct,
        })
    }

    fn inv(key: i64) -> TableRow {
        TableRow::RawBcInventory(crate::fixtures::inventory(key, 1))
    }

    #[test]
    fn take_before_consolidates_per_epoch() {
        let buffer = ChangeBuffer::new();
        buffer.extend(&[
            (err(1), 0, 1),
            (inv(2), 0, 1),
            (err(1), 1, -1),
            (err(3), 1, 1),
            (err(3), 1, -1),
        ]);
        buffer.extend(&[(inv(2), 2, -1), (err(1), 0, 1)]);
        assert_eq!(buffer.len(), 7);
        let taken = buffer.take_before(2);
        assert_eq!(
            taken,
            vec![
                EpochChanges {
                    epoch: 0,
                    changes: vec![(inv(2), 1), (err(1), 2)]
                },
                EpochChanges {
                    epoch: 1,
                    changes: vec![(err(1), -1)]
                },
            ]
        );
        assert_eq!(buffer.len(), 1);
        assert_eq!(buffer.take_before(2), vec![]);
        assert_eq!(
            buffer.take_before(3),
            vec![EpochChanges {
                epoch: 2,
                changes: vec![(inv(2), -1)]
            }]
        );
        assert!(buffer.is_empty());
    }

    #[test]
    fn tables_groups_contiguous_rows() {
        let changes = EpochChanges {
            epoch: 4,
            changes: vec![(inv(1), 1), (inv(2), -1), (err(1), 1)],
        };
        let groups: Vec<(Table, usize)> =
            changes.tables().map(|(t, rows)| (t, rows.len())).collect();
        assert_eq!(groups, vec![(Table::RawBcInventory, 2), (Table::Errors, 1)]);
        assert_eq!(EpochChanges::<TableRow>::default().tables().count(), 0);
    }

    #[test]
    fn a_tally_counts_the_epochs_before_its_bound_and_buffers_the_rest() {
        let buffer = ChangeBuffer::new();
        buffer.count_before(2);
        buffer.append_rows(&mut vec![
            (err(1), 1, 1),
            (inv(2), 1, 1),
            (err(3), 1, 1),
            (err(3), 1, -1),
            (inv(4), 2, 1),
        ]);
        assert_eq!(buffer.len(), 1, "only the later epoch is buffered");
        assert_eq!(
            buffer.take_counts(),
            BTreeMap::from([(Table::RawBcInventory, 1), (Table::Errors, 1)])
        );
        // Counting ended: everything is buffered again.
        buffer.append_rows(&mut vec![(err(5), 3, 1)]);
        assert_eq!(buffer.len(), 2);
        assert!(buffer.take_counts().is_empty());
    }
}
