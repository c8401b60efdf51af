//! The local warehouse as a [`Sink`]: writing an epoch is committing it.

use super::LocalWarehouse;
use crate::format::{TableChanges, TableSpec};
use crate::sinks::{Sink, SinkError};

/// The local warehouse's name as a sink (status page, logs).
pub const NAME: &str = "local warehouse";

impl Sink for LocalWarehouse {
    fn name(&self) -> &str {
        NAME
    }

    fn open(&mut self, _committed: Option<u64>) -> Result<(), SinkError> {
        // Opened by `LocalWarehouse::open`: its committed epoch is the run's.
        Ok(())
    }

    fn write(&mut self, epoch: u64, changes: &[TableChanges]) -> Result<(), SinkError> {
        self.commit(epoch, changes)?;
        Ok(())
    }

    fn evolve(&mut self, spec: TableSpec) -> Result<(), SinkError> {
        Ok(LocalWarehouse::evolve(self, spec)?)
    }
}
