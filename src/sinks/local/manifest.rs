//! Snapshot manifests: which Parquet files make up each table at one epoch.
//!
//! A manifest is the commit point of the local warehouse: the files it names
//! were written and synced before it, and it is itself published atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One Parquet file of a table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the warehouse directory.
    pub path: String,
    /// Rows in the file, tombstones included.
    pub rows: u64,
    /// Whether the file is the table's compacted base (no tombstones, oldest).
    pub base: bool,
}

/// The files of one table, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableFiles {
    /// The key column.
    pub key: String,
    /// Files, oldest first; a key's newest row (highest `_epoch`) wins.
    pub files: Vec<FileEntry>,
}

/// A consistent snapshot of every table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The epoch this snapshot commits; `None` for the empty warehouse.
    pub epoch: Option<u64>,
    /// Publication time, RFC 3339.
    pub published_at: String,
    /// Tables by name.
    pub tables: BTreeMap<String, TableFiles>,
}

/// Directory of manifests inside the warehouse.
pub const MANIFEST_DIR: &str = "manifests";

impl Manifest {
    /// File name of the manifest of `epoch` (sortable).
    pub fn file_name(epoch: Option<u64>) -> String {
        match epoch {
            Some(e) => format!("{e:020}.json"),
            None => "initial.json".to_string(),
        }
    }

    /// Path of this manifest under `dir`.
    pub fn path(&self, dir: &Path) -> PathBuf {
        dir.join(MANIFEST_DIR).join(Self::file_name(self.epoch))
    }

    /// Every file any table of this snapshot reads.
    pub fn files(&self) -> impl Iterator<Item = &FileEntry> {
        self.tables.values().flat_map(|t| t.files.iter())
    }
}

/// Lists the manifests in `dir`, oldest first, as (path, manifest).
pub fn list(dir: &Path) -> std::io::Result<Vec<(PathBuf, Manifest)>> {
    let mdir = dir.join(MANIFEST_DIR);
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(&mdir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|x| x == "json")
            && !path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            let bytes = std::fs::read(&path)?;
            let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?;
            found.push((path, manifest));
        }
    }
    found.sort_by_key(|(_, m)| m.epoch.map_or(0, |e| e + 1));
    Ok(found)
}
