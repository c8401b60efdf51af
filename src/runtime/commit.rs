//! The commit protocol: an epoch's changes go to every sink, the local
//! warehouse last.
//!
//! A restart rebuilds the dataflow from the local warehouse and reopens the
//! other sinks at its committed epoch, discarding what they hold above it. So
//! every other sink holds an epoch durably before the local warehouse commits
//! it, and is told it is committed only after (the BigQuery flusher may then
//! load it). The epoch loop writes the checkpoint after all of this.

use std::time::{Duration, Instant};

use crate::format::{TableChanges, TableSpec};
use crate::sinks::local::LocalWarehouse;
use crate::sinks::{Sink, SinkError};

/// The sinks an epoch is committed to: `primary` (the local warehouse, what
/// restarts rebuild from) and the others.
pub(super) struct Sinks<P = LocalWarehouse> {
    primary: P,
    others: Vec<Box<dyn Sink>>,
}

impl<P: Sink> Sinks<P> {
    /// Opens the `others` at `committed`, the primary's committed epoch.
    pub(super) fn open(
        primary: P,
        mut others: Vec<Box<dyn Sink>>,
        committed: Option<u64>,
    ) -> Result<Sinks<P>, SinkError> {
        for sink in &mut others {
            sink.open(committed)?;
        }
        Ok(Sinks { primary, others })
    }

    /// The primary sink.
    pub(super) fn primary(&self) -> &P {
        &self.primary
    }

    /// Fails when a sink has failed for good.
    pub(super) fn check(&self) -> Result<(), SinkError> {
        self.others.iter().try_for_each(|sink| sink.check())?;
        self.primary.check()
    }

    /// Commits `epoch`: every other sink writes it, then the primary, then
    /// the others are told it is committed. Returns how long the primary's
    /// write took. On an error nothing is told committed.
    pub(super) fn commit(
        &mut self,
        epoch: u64,
        changes: &[TableChanges],
    ) -> Result<Duration, SinkError> {
        for sink in &mut self.others {
            sink.write(epoch, changes)?;
        }
        let started = Instant::now();
        self.primary.write(epoch, changes)?;
        let took = started.elapsed();
        for sink in &mut self.others {
            sink.committed(epoch);
        }
        Ok(took)
    }

    /// Moves a table to an evolved schema in every sink.
    pub(super) fn evolve(&mut self, spec: TableSpec) -> Result<(), SinkError> {
        self.primary.evolve(spec.clone())?;
        for sink in &mut self.others {
            sink.evolve(spec.clone())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::sinks::bigquery::BigQueryError;

    /// A sink that logs what it is asked, and fails writes when told.
    struct Logged {
        name: &'static str,
        log: Arc<Mutex<Vec<String>>>,
        fail_writes: bool,
    }

    impl Logged {
        fn boxed(name: &'static str, log: &Arc<Mutex<Vec<String>>>, fail: bool) -> Box<dyn Sink> {
            Box::new(Logged {
                name,
                log: log.clone(),
                fail_writes: fail,
            })
        }
        fn note(&self, what: String) {
            self.log
                .lock()
                .unwrap()
                .push(format!("{} {what}", self.name));
        }
    }

    impl Sink for Logged {
        fn name(&self) -> &str {
            self.name
        }
        fn open(&mut self, committed: Option<u64>) -> Result<(), SinkError> {
            self.note(format!("open {committed:?}"));
            Ok(())
        }
        fn write(&mut self, epoch: u64, _: &[TableChanges]) -> Result<(), SinkError> {
            if self.fail_writes {
                return Err(BigQueryError::Spool {
                    path: "spool".into(),
                    detail: "disk full".into(),
                }
                .into());
            }
            self.note(format!("write {epoch}"));
            Ok(())
        }
        fn committed(&mut self, epoch: u64) {
            self.note(format!("committed {epoch}"));
        }
        fn evolve(&mut self, spec: TableSpec) -> Result<(), SinkError> {
            self.note(format!("evolve {}", spec.name));
            Ok(())
        }
    }

    fn primary(log: &Arc<Mutex<Vec<String>>>) -> Logged {
        Logged {
            name: "local",
            log: log.clone(),
            fail_writes: false,
        }
    }

    #[test]
    fn the_others_hold_an_epoch_before_the_primary_commits_it() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let others = vec![Logged::boxed("bq", &log, false)];
        let mut sinks = Sinks::open(primary(&log), others, Some(4)).unwrap();
        sinks.commit(5, &[]).unwrap();
        assert_eq!(
            *log.lock().unwrap(),
            [
                "bq open Some(4)",
                "bq write 5",
                "local write 5",
                "bq committed 5"
            ]
        );
    }

    #[test]
    fn a_failed_write_commits_nothing_and_announces_nothing() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let others = vec![Logged::boxed("bq", &log, true)];
        let mut sinks = Sinks::open(primary(&log), others, None).unwrap();
        let err = sinks.commit(1, &[]).unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_eq!(*log.lock().unwrap(), ["bq open None"]);
    }

    #[test]
    fn a_schema_evolves_in_every_sink_the_primary_first() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let others = vec![Logged::boxed("bq", &log, false)];
        let mut sinks = Sinks::open(primary(&log), others, None).unwrap();
        let spec = crate::format::table_specs().remove(0);
        let name = spec.name.clone();
        sinks.evolve(spec).unwrap();
        let log = log.lock().unwrap();
        assert_eq!(
            log[1..],
            [format!("local evolve {name}"), format!("bq evolve {name}")]
        );
    }
}
