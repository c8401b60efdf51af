//! The timely workers, driven one epoch at a time from the runtime's thread.
//!
//! Each worker owns its `UpsertInput` and capture buffer; the runtime sends
//! every worker its share of an epoch's upserts (a key always goes to the same
//! worker, as the models require) and collects each worker's share of the
//! consolidated output changes. Workers advance together: timely waits for all.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dataflows::checks::{CheckRow, CheckSpec};
use dataflows::records::Upsert;
use dataflows::{Diff, Epoch, EpochChanges, Table, TableRow, UpsertInput};
use timely::WorkerConfig;
use timely::communication::Config as CommunicationConfig;
use timely::execute::Config as TimelyConfig;

use super::memory::release_freed_memory;
use super::whole_rows::WholeRows;

/// An epoch's consolidated output changes, by table.
pub type TableChangeSet = BTreeMap<Table, Vec<(TableRow, Diff)>>;

/// Errors of the dataflow workers.
#[derive(Debug, thiserror::Error)]
pub enum DataflowError {
    /// Timely could not start its workers.
    #[error("dataflow: cannot start {workers} workers: {detail}")]
    Start {
        /// Workers asked for.
        workers: usize,
        /// Timely's message.
        detail: String,
    },
    /// The dataflow inserted a `raw_*` key no upsert of the epoch carries
    /// (a bug: an insertion only comes from a row read in its epoch).
    #[error("dataflow: epoch {epoch} inserted {table} key {key}, which no row read in it has")]
    NoWholeRow {
        /// The epoch.
        epoch: Epoch,
        /// The raw table.
        table: Table,
        /// The key, as text.
        key: String,
    },
    /// A worker stopped (it panicked or its channel closed) during `epoch`.
    #[error("dataflow: a worker stopped during epoch {epoch}")]
    WorkerGone {
        /// The epoch being computed.
        epoch: Epoch,
    },
}

/// The processes of a cluster run (timely's own communication).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    /// This process's index; process 0 reads the sources and commits.
    pub process: usize,
    /// `host:port` of every process, in process order.
    pub addresses: Vec<String>,
}

impl Cluster {
    /// Reads a host file: one `host:port` per process, in process order
    /// (blank lines and `#` comments skipped); `processes` must match it.
    pub fn from_hostfile(
        path: &std::path::Path,
        processes: usize,
        process: usize,
    ) -> Result<Cluster, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let addresses: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect();
        for (i, a) in addresses.iter().enumerate() {
            if a.rsplit_once(':')
                .is_none_or(|(_, port)| port.parse::<u16>().is_err())
            {
                return Err(format!(
                    "{}: line {}: {a:?} is not host:port",
                    path.display(),
                    i + 1
                ));
            }
        }
        if addresses.len() != processes {
            return Err(format!(
                "{}: {} addresses for -n {processes} processes",
                path.display(),
                addresses.len()
            ));
        }
        if process >= processes {
            return Err(format!(
                "-p {process}: processes are numbered 0 to {}",
                processes - 1
            ));
        }
        Ok(Cluster { process, addresses })
    }
}

/// Longest a worker sleeps between checks when it has nothing to do; a
/// message from another worker wakes it sooner.
const PARK: Duration = Duration::from_millis(1);

/// How long a worker waits idle before it gives freed memory back to the OS
/// (see [`release_freed_memory`]).
const IDLE: Duration = Duration::from_secs(1);

/// How often a follower process's worker gives freed memory back to the OS.
const FOLLOWER_RELEASE: Duration = Duration::from_secs(10);

/// What a worker hands back after an epoch: its share of the tables'
/// changes (or only their net row counts, for a replay) and of the check
/// rows' changes.
struct WorkerShare {
    changes: Vec<EpochChanges>,
    counts: BTreeMap<Table, i64>,
    checks: Vec<EpochChanges<CheckRow>>,
}

/// What a worker keeps of an epoch's table changes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// The changes themselves.
    Changes,
    /// Only each table's net row count: the capture counts the epoch's
    /// changes instead of buffering them.
    Counts,
}

enum Command {
    /// Send these upserts at `epoch`, then close it.
    Epoch(Epoch, Vec<Upsert>, Keep),
    Stop,
}

/// Handle on the running workers.
pub struct Dataflow {
    commands: Vec<Sender<Command>>,
    results: Receiver<WorkerShare>,
    check_changes: Vec<(CheckRow, Diff)>,
    guards: Option<timely::communication::WorkerGuards<()>>,
    next_epoch: Epoch,
}

impl Dataflow {
    /// Starts `workers` threads running govflow's models.
    pub fn start(workers: usize) -> Result<Dataflow, DataflowError> {
        Self::start_with_checks(workers, Vec::new())
    }

    /// As [`Dataflow::start`], also maintaining `checks`; each step's check
    /// changes are taken with [`Dataflow::take_check_changes`].
    pub fn start_with_checks(
        workers: usize,
        checks: Vec<CheckSpec>,
    ) -> Result<Dataflow, DataflowError> {
        Self::start_on(workers, None, checks)
    }

    /// Runs a process of a cluster other than process 0: its `workers`
    /// threads hold their share of the state and compute, with no input of
    /// their own (process 0 feeds every key; the models exchange them) and no
    /// output (changes go to process 0's workers). Blocks until process 0
    /// closes the dataflow.
    pub fn follow(
        workers: usize,
        cluster: &Cluster,
        checks: Vec<CheckSpec>,
    ) -> Result<(), DataflowError> {
        let workers = workers.max(1);
        let config = cluster_config(workers, cluster);
        let guards = timely::execute(config, move |worker| {
            let mut input = UpsertInput::new();
            let _captured = worker.dataflow(|scope| {
                dataflows::build(scope, &mut input).capture_on(&checks, Some(workers))
            });
            input.close();
            // Followers cannot tell idle from busy: they release memory on a timer.
            let mut released = Instant::now();
            while worker.step_or_park(Some(PARK)) {
                if released.elapsed() >= FOLLOWER_RELEASE {
                    release_freed_memory();
                    released = Instant::now();
                }
            }
        })
        .map_err(|detail| DataflowError::Start { workers, detail })?;
        let _ = guards.join();
        Ok(())
    }

    /// As [`Dataflow::start_with_checks`]; with `cluster` (process 0 of it),
    /// the other processes' workers join the computation and every change is
    /// captured here.
    pub fn start_on(
        workers: usize,
        cluster: Option<&Cluster>,
        checks: Vec<CheckSpec>,
    ) -> Result<Dataflow, DataflowError> {
        let workers = workers.max(1);
        let mut commands = Vec::with_capacity(workers);
        let mut inboxes = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (tx, rx) = channel();
            commands.push(tx);
            inboxes.push(Mutex::new(Some(rx)));
        }
        let inboxes = Arc::new(inboxes);
        let (result_tx, results) = channel();
        let result_tx = Mutex::new(result_tx);
        let config = match cluster {
            Some(cluster) => cluster_config(workers, cluster),
            None => TimelyConfig {
                communication: if workers == 1 {
                    CommunicationConfig::Thread
                } else {
                    CommunicationConfig::Process(workers)
                },
                worker: WorkerConfig::default(),
            },
        };
        let collectors = cluster.map(|_| workers);
        let guards = timely::execute(config, move |worker| {
            let index = worker.index();
            let inbox = inboxes.get(index).and_then(|m| m.lock().ok()?.take());
            let Some(inbox) = inbox else { return };
            let results = match result_tx.lock() {
                Ok(tx) => tx.clone(),
                Err(_) => return,
            };
            let mut input = UpsertInput::new();
            let captured = worker.dataflow(|scope| {
                dataflows::build(scope, &mut input).capture_on(&checks, collectors)
            });
            // Whether this worker has worked since it last released memory.
            let mut busy = false;
            loop {
                let (epoch, upserts, keep) = match inbox.recv_timeout(IDLE) {
                    Ok(Command::Epoch(epoch, upserts, keep)) => (epoch, upserts, keep),
                    Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                    Err(RecvTimeoutError::Timeout) => {
                        if std::mem::take(&mut busy) {
                            release_freed_memory();
                        }
                        continue;
                    }
                };
                busy = true;
                if keep == Keep::Counts {
                    captured.changes.count_before(epoch + 1);
                }
                input.advance_to(epoch);
                input.send_all(upserts);
                input.advance_to(epoch + 1);
                // Park rather than spin while waiting for the other workers: on
                // two cores a spinning worker takes the CPU the others need.
                while captured.probe.less_than(&input.epoch()) {
                    worker.step_or_park(Some(PARK));
                }
                let epoch = input.epoch();
                let (changes, counts) = match keep {
                    Keep::Changes => (captured.changes.take_before(epoch), BTreeMap::new()),
                    Keep::Counts => (Vec::new(), captured.changes.take_counts()),
                };
                let share = WorkerShare {
                    changes,
                    counts,
                    checks: captured.checks.take_before(epoch),
                };
                if results.send(share).is_err() {
                    break;
                }
            }
        })
        .map_err(|detail| DataflowError::Start { workers, detail })?;
        Ok(Dataflow {
            commands,
            results,
            guards: Some(guards),
            next_epoch: 0,
            check_changes: Vec::new(),
        })
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.commands.len()
    }

    /// Makes the next step run at `epoch` at the earliest (epochs only move
    /// forward): the runtime starts a restarted dataflow at the committed
    /// epoch, so every later step runs at the epoch it is committed as, and
    /// epoch-stamped rows (`product_notification_event.episode`) are unique
    /// across restarts.
    pub fn skip_to(&mut self, epoch: Epoch) {
        self.next_epoch = self.next_epoch.max(epoch);
    }

    /// The epoch the next [`Dataflow::step`] runs at.
    pub fn next_epoch(&self) -> Epoch {
        self.next_epoch
    }

    /// Runs one epoch over `upserts` and returns its consolidated changes,
    /// with whole `raw_*` rows (the dataflow holds projections of them; see
    /// [`WholeRows`]).
    pub fn step(&mut self, upserts: Vec<Upsert>) -> Result<TableChangeSet, DataflowError> {
        let epoch = self.next_epoch;
        let mut whole = WholeRows::of(&upserts);
        let mut changes = TableChangeSet::new();
        for share in self.run_epoch(upserts, Keep::Changes)? {
            for e in share.changes {
                // Rows come sorted by table: move each table's run at once.
                let mut rows = e.changes.into_iter().peekable();
                while let Some(first) = rows.next() {
                    let table = first.0.table_id();
                    let share = changes.entry(table).or_default();
                    share.push(first);
                    while let Some(row) = rows.next_if(|(r, _)| r.table_id() == table) {
                        share.push(row);
                    }
                }
            }
        }
        whole.fill(epoch, &mut changes)?;
        Ok(changes)
    }

    /// Runs one epoch over `upserts` whose output is already published (a
    /// restart's replay of the committed state): the workers drop the
    /// changes and hand back only each table's net row count.
    pub fn replay(&mut self, upserts: Vec<Upsert>) -> Result<BTreeMap<Table, i64>, DataflowError> {
        let mut counts = BTreeMap::new();
        for share in self.run_epoch(upserts, Keep::Counts)? {
            for (table, n) in share.counts {
                *counts.entry(table).or_default() += n;
            }
        }
        Ok(counts)
    }

    /// Sends each worker its share of `upserts` at the next epoch and
    /// gathers what they keep of it; the check changes are kept here.
    fn run_epoch(
        &mut self,
        upserts: Vec<Upsert>,
        keep: Keep,
    ) -> Result<Vec<WorkerShare>, DataflowError> {
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        let peers = self.commands.len();
        let mut shares: Vec<Vec<Upsert>> = (0..peers).map(|_| Vec::new()).collect();
        for u in upserts {
            shares[dataflows::harness::route(&u, peers)].push(u);
        }
        for (tx, share) in self.commands.iter().zip(shares) {
            tx.send(Command::Epoch(epoch, share, keep))
                .map_err(|_| DataflowError::WorkerGone { epoch })?;
        }
        let mut shares = Vec::with_capacity(peers);
        for _ in 0..peers {
            let mut share = self
                .results
                .recv()
                .map_err(|_| DataflowError::WorkerGone { epoch })?;
            self.check_changes.extend(
                std::mem::take(&mut share.checks)
                    .into_iter()
                    .flat_map(|c| c.changes),
            );
            shares.push(share);
        }
        Ok(shares)
    }
}

/// Timely's configuration of one process of `cluster`.
fn cluster_config(workers: usize, cluster: &Cluster) -> TimelyConfig {
    TimelyConfig {
        communication: CommunicationConfig::Cluster {
            threads: workers,
            process: cluster.process,
            addresses: cluster.addresses.clone(),
            report: false,
            zerocopy: false,
        },
        worker: WorkerConfig::default(),
    }
}

impl Dataflow {
    /// The check rows' changes of the steps since the last call (unconsolidated
    /// across workers: apply them to a `CheckState`).
    pub fn take_check_changes(&mut self) -> Vec<(CheckRow, Diff)> {
        std::mem::take(&mut self.check_changes)
    }
}

impl Drop for Dataflow {
    fn drop(&mut self) {
        for tx in &self.commands {
            let _ = tx.send(Command::Stop);
        }
        if let Some(guards) = self.guards.take() {
            let _ = guards.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataflows::rows::raw_bc_customer::RawBcCustomer;

    fn customer(id: i64, email: &str) -> Upsert {
        Upsert::Customer(
            id,
            Some(RawBcCustomer {
                id,
                email: email.into(),
                first_name: "A".into(),
                last_name: "B".into(),
                company: String::new().into(),
                phone: String::new().into(),
                customer_group_id: 0,
                created_at: 0,
                modified_at: 0,
                payload: Default::default(),
            }),
        )
    }

    #[test]
    fn epochs_give_consolidated_changes_on_two_workers() {
        let mut df = Dataflow::start(2).unwrap();
        let first = df
            .step((1..=10).map(|i| customer(i, "a@x")).collect())
            .unwrap();
        assert_eq!(first[&Table::RawBcCustomer].len(), 10);
        assert_eq!(first[&Table::DimCustomer].len(), 10);
        // Re-reading unchanged rows changes nothing; a changed row is -old +new.
        let second = df
            .step(vec![customer(3, "a@x"), customer(4, "b@x")])
            .unwrap();
        let raw = &second[&Table::RawBcCustomer];
        assert_eq!(raw.iter().map(|(_, d)| *d).collect::<Vec<_>>().len(), 2);
        assert!(
            raw.iter()
                .all(|(row, _)| matches!(row.key(), dataflows::RowKey::Id(4)))
        );
        let third = df.step(vec![Upsert::Customer(4, None)]).unwrap();
        assert_eq!(
            third[&Table::DimCustomer],
            vec![(
                second[&Table::DimCustomer]
                    .iter()
                    .find(|(_, d)| *d == 1)
                    .unwrap()
                    .0
                    .clone(),
                -1
            )]
        );
        assert!(df.step(Vec::new()).unwrap().is_empty());
    }

    #[test]
    fn raw_changes_carry_the_whole_rows_read_even_for_an_unread_column() {
        let with_phone = |id: i64, phone: &str| match customer(id, "a@x") {
            Upsert::Customer(id, Some(row)) => Upsert::Customer(
                id,
                Some(RawBcCustomer {
                    phone: phone.into(),
                    ..row
                }),
            ),
            other => other,
        };
        let whole = |upsert: Upsert| match upsert {
            Upsert::Customer(_, Some(row)) => TableRow::RawBcCustomer(row),
            other => panic!("{other:?}"),
        };
        let mut df = Dataflow::start(2).unwrap();
        let first = df
            .step(vec![with_phone(1, "555"), with_phone(2, "556")])
            .unwrap();
        let mut inserted: Vec<TableRow> = first[&Table::RawBcCustomer]
            .iter()
            .map(|(row, _)| row.clone())
            .collect();
        inserted.sort();
        assert_eq!(
            inserted,
            vec![whole(with_phone(1, "555")), whole(with_phone(2, "556"))]
        );
        // Only the phone, which no model reads, changes: the raw table gets
        // the whole new row (and the old one's key); no model changes.
        let second = df.step(vec![with_phone(1, "557")]).unwrap();
        assert_eq!(
            second.keys().collect::<Vec<_>>(),
            vec![&Table::RawBcCustomer]
        );
        let raw = &second[&Table::RawBcCustomer];
        assert_eq!(raw.len(), 2);
        assert!(raw.contains(&(whole(with_phone(1, "557")), 1)));
        assert!(
            raw.iter()
                .any(|(row, diff)| *diff == -1 && matches!(row, TableRow::Projected(_)))
        );
        // The same row again is no change.
        assert!(df.step(vec![with_phone(1, "557")]).unwrap().is_empty());
    }

    #[test]
    fn a_replay_counts_the_changes_and_keeps_the_state() {
        let upserts = || (1..=10).map(|i| customer(i, "a@x")).collect::<Vec<_>>();
        let counted = |changes: TableChangeSet| -> BTreeMap<Table, i64> {
            changes
                .into_iter()
                .map(|(t, rows)| (t, rows.iter().map(|(_, d)| *d as i64).sum()))
                .collect()
        };
        let want = counted(Dataflow::start(2).unwrap().step(upserts()).unwrap());
        let mut df = Dataflow::start(2).unwrap();
        // In two steps: the counts are net over both.
        let mut got = df.replay(upserts()[..4].to_vec()).unwrap();
        for (table, n) in df.replay(upserts()[4..].to_vec()).unwrap() {
            *got.entry(table).or_default() += n;
        }
        got.retain(|_, n| *n != 0);
        assert_eq!(got, want);
        assert_eq!(got[&Table::DimCustomer], 10);
        assert_eq!(df.next_epoch(), 2, "each replay step has its own epoch");
        // The replayed state is there: reading the same rows changes nothing.
        assert!(df.step(upserts()).unwrap().is_empty());
    }
}
