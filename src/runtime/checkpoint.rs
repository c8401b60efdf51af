//! The checkpoint: the last epoch every sink committed, and the source cursors
//! whose data that epoch contains. Written atomically, only after the commit.
//!
//! Cursors are kept by source name (`bigcommerce`, `postgres.<db>`,
//! `bigcommerce.collections`), each in its source's own shape: the runtime
//! never reads them, a source restores its own. Checkpoints written before
//! that, with one field per source kind, are read into the same map.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::fsutil::write_atomic;

/// What a restart resumes from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Stored")]
pub struct Checkpoint {
    /// The last committed epoch.
    pub epoch: Option<u64>,
    /// Each source's cursors covered by that epoch, by source name.
    pub sources: BTreeMap<String, serde_json::Value>,
}

/// The checkpoint as stored, also in its earlier shape (one field per source kind).
#[derive(Deserialize)]
struct Stored {
    epoch: Option<u64>,
    #[serde(default)]
    sources: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    bigcommerce: Option<serde_json::Value>,
    #[serde(default)]
    postgres: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    collections: Option<serde_json::Value>,
}

impl From<Stored> for Checkpoint {
    fn from(stored: Stored) -> Checkpoint {
        let Stored {
            epoch,
            mut sources,
            bigcommerce,
            postgres,
            collections,
        } = stored;
        let legacy = [
            ("bigcommerce".to_string(), bigcommerce),
            ("bigcommerce.collections".to_string(), collections),
        ]
        .into_iter()
        .chain(
            postgres
                .into_iter()
                .map(|(db, c)| (format!("postgres.{db}"), Some(c))),
        );
        for (source, cursors) in legacy {
            // An empty map was a source never read: no entry.
            if let Some(c) = cursors.filter(|c| c.as_object().is_none_or(|o| !o.is_empty())) {
                sources.entry(source).or_insert(c);
            }
        }
        Checkpoint { epoch, sources }
    }
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

    /// The cursors of `source` (their default when it has none yet).
    pub fn cursors<T: DeserializeOwned + Default>(
        &self,
        source: &str,
    ) -> Result<T, CheckpointError> {
        match self.sources.get(source) {
            None => Ok(T::default()),
            Some(value) => T::deserialize(value).map_err(|e| CheckpointError::Corrupt {
                path: "checkpoint.json".to_string(),
                detail: format!("the cursors of source {source}: {e}"),
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
    use crate::sources::bigcommerce::{Cursors, Entity, EntityPull};
    use crate::sources::postgres::PgCursors;

    #[test]
    fn round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Checkpoint::load(dir.path()).unwrap(), Checkpoint::default());
        let mut cursors = Cursors::default();
        cursors.advance(&[EntityPull {
            entity: Entity::Orders,
            cursor: Some(99),
            records: 1,
            dead_letters: 0,
            pages: 1,
        }]);
        let mut c = Checkpoint {
            epoch: Some(4),
            ..Checkpoint::default()
        };
        c.sources.insert(
            "bigcommerce".into(),
            serde_json::to_value(&cursors).unwrap(),
        );
        c.store(dir.path()).unwrap();
        let back = Checkpoint::load(dir.path()).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.cursors::<Cursors>("bigcommerce").unwrap(), cursors);
        assert_eq!(
            back.cursors::<PgCursors>("postgres.x").unwrap(),
            PgCursors::default()
        );
        let wrong = back.cursors::<PgCursors>("bigcommerce").unwrap_err();
        assert!(wrong.to_string().contains("source bigcommerce"), "{wrong}");
        std::fs::write(Checkpoint::path(dir.path()), b"{").unwrap();
        let e = Checkpoint::load(dir.path()).unwrap_err();
        assert!(e.to_string().contains("checkpoint.json"), "{e}");
    }

    #[test]
    fn a_checkpoint_of_the_earlier_shape_is_read_by_source_name() {
        let dir = tempfile::tempdir().unwrap();
        let earlier = r#"{"epoch": 7, "bigcommerce": {"orders": 5},
            "postgres": {"wise": {"quotation": {"int": 3}}}, "collections": {}}"#;
        std::fs::write(Checkpoint::path(dir.path()), earlier).unwrap();
        let c = Checkpoint::load(dir.path()).unwrap();
        assert_eq!(c.epoch, Some(7));
        let names: Vec<&str> = c.sources.keys().map(String::as_str).collect();
        assert_eq!(names, ["bigcommerce", "postgres.wise"]);
        assert_eq!(c.sources["bigcommerce"], serde_json::json!({"orders": 5}));
    }
}
