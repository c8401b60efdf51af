//! The checkpoint: the last epoch every sink committed, and the source cursors
//! whose data that epoch contains. Written atomically, only after the commit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::write_atomic;
use crate::sources::bigcommerce::Cursors;
use crate::sources::postgres::PgCursors;

/// What a restart resumes from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The last committed epoch.
    pub epoch: Option<u64>,
    /// BigCommerce cursors covered by that epoch.
    pub bigcommerce: Cursors,
    /// PostgreSQL cursors covered by that epoch, by database config name.
    #[serde(default)]
    pub postgres: BTreeMap<String, PgCursors>,
    /// Cursors of configured BigCommerce collections, by collection name
    /// (µs since the Unix epoch).
    #[serde(default)]
    pub collections: BTreeMap<String, i64>,
}

/// Errors reading or writing the checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be read or written.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The checkpoint file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a checkpoint.
    #[error("checkpoint {path}: not a govflow checkpoint: {detail}")]
    Corrupt {
        /// The checkpoint file.
        path: String,
        /// The parse error.
        detail: String,
    },
}

impl Checkpoint {
    /// Path of the checkpoint in a state directory.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("checkpoint.json")
    }

    /// Loads the checkpoint of `state_dir`; none yet is the empty checkpoint.
    pub fn load(state_dir: &Path) -> Result<Checkpoint, CheckpointError> {
        let path = Self::path(state_dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| CheckpointError::Corrupt {
                path: path.display().to_string(),
                detail: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Checkpoint::default()),
            Err(source) => Err(CheckpointError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Writes the checkpoint atomically.
    pub fn store(&self, state_dir: &Path) -> Result<(), CheckpointError> {
        let path = Self::path(state_dir);
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| CheckpointError::Corrupt {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
        write_atomic(&path, &bytes).map_err(|source| CheckpointError::Io {
            path: path.display().to_string(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::bigcommerce::{Entity, EntityPull};

    #[test]
    fn round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Checkpoint::load(dir.path()).unwrap(), Checkpoint::default());
        let mut c = Checkpoint {
            epoch: Some(4),
            ..Checkpoint::default()
        };
        c.bigcommerce.advance(&[EntityPull {
            entity: Entity::Orders,
            cursor: Some(99),
            records: 1,
            dead_letters: 0,
            pages: 1,
        }]);
        c.store(dir.path()).unwrap();
        assert_eq!(Checkpoint::load(dir.path()).unwrap(), c);
        std::fs::write(Checkpoint::path(dir.path()), b"{").unwrap();
        let e = Checkpoint::load(dir.path()).unwrap_err();
        assert!(e.to_string().contains("checkpoint.json"), "{e}");
    }
}
