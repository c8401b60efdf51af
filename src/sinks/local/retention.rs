//! Which snapshots stay readable, and which files they keep alive.
//!
//! Every retained snapshot holds a reference on each file it names; a file is
//! deleted when its count drops to zero (and no merge in flight is writing
//! it). Kept in memory so that a commit costs O(files of the snapshots it
//! publishes and drops), not O(every retained manifest).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::manifest::Manifest;
use super::{WarehouseError, WarehouseOptions, pins};

struct Snapshot {
    epoch: Option<u64>,
    published_at: Option<DateTime<Utc>>,
    manifest_path: PathBuf,
    files: Vec<String>,
}

/// The retained snapshots, oldest first, and the reference count of every file.
#[derive(Default)]
pub(crate) struct Retention {
    snapshots: VecDeque<Snapshot>,
    refs: HashMap<String, usize>,
}

impl Retention {
    /// The snapshots found on disk at start, oldest first.
    pub fn from_snapshots(manifests: &[(PathBuf, Manifest)]) -> Retention {
        let mut retention = Retention::default();
        for (path, manifest) in manifests {
            retention.add(path.clone(), manifest);
        }
        retention
    }

    /// Retains a newly published snapshot (replacing one published at the same path).
    pub fn add(&mut self, manifest_path: PathBuf, manifest: &Manifest) {
        let files: Vec<String> = manifest.files().map(|f| f.path.clone()).collect();
        for f in &files {
            *self.refs.entry(f.clone()).or_default() += 1;
        }
        if self
            .snapshots
            .back()
            .is_some_and(|s| s.manifest_path == manifest_path)
            && let Some(replaced) = self.snapshots.pop_back()
        {
            self.release(&replaced.files);
        }
        self.snapshots.push_back(Snapshot {
            epoch: manifest.epoch,
            published_at: DateTime::parse_from_rfc3339(&manifest.published_at)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            manifest_path,
            files,
        });
    }

    fn release(&mut self, files: &[String]) -> Vec<String> {
        let mut unreferenced = Vec::new();
        for f in files {
            if let Some(count) = self.refs.get_mut(f) {
                *count -= 1;
                if *count == 0 {
                    self.refs.remove(f);
                    unreferenced.push(f.clone());
                }
            }
        }
        unreferenced
    }

    /// Drops the snapshots no reader can still use (all but the newest
    /// `keep_snapshots`, those older than the retention period, never the
    /// current one nor a pinned one), then deletes the files no retained
    /// snapshot names.
    pub fn collect<'a>(
        &mut self,
        dir: &Path,
        options: &WarehouseOptions,
        current: Option<u64>,
        pending: impl Iterator<Item = &'a String>,
    ) -> Result<(), WarehouseError> {
        let cutoff = Utc::now() - chrono::Duration::from_std(options.retention).unwrap_or_default();
        let keep_from = self.snapshots.len().saturating_sub(options.keep_snapshots);
        let mut kept = VecDeque::with_capacity(self.snapshots.len());
        let mut unreferenced = Vec::new();
        let mut dropped = Vec::new();
        for (i, snapshot) in std::mem::take(&mut self.snapshots).into_iter().enumerate() {
            let recent = snapshot.published_at.is_some_and(|t| t >= cutoff);
            let keep = i >= keep_from || recent || snapshot.epoch == current;
            if !keep {
                // The manifest goes before the pins are read (see `pins`).
                remove(&snapshot.manifest_path)?;
            }
            dropped.push((snapshot, !keep));
        }
        let pinned = if dropped.iter().any(|(_, drop)| *drop) {
            pins::pinned_epochs(dir)
        } else {
            HashSet::new()
        };
        for (snapshot, drop) in dropped {
            if drop && !pinned.contains(&snapshot.epoch) {
                unreferenced.extend(self.release(&snapshot.files));
            } else {
                kept.push_back(snapshot);
            }
        }
        self.snapshots = kept;
        let pending: HashSet<&String> = pending.collect();
        for f in unreferenced.iter().filter(|f| !pending.contains(f)) {
            remove(&dir.join(f))?;
        }
        Ok(())
    }

    /// Deletes every file under `tables/` that no retained snapshot nor live
    /// pin names: what a crash left behind (run at start, before any merge is
    /// in flight).
    pub fn remove_unreferenced_files(&self, dir: &Path) -> Result<(), WarehouseError> {
        let tables = dir.join("tables");
        let Ok(table_dirs) = std::fs::read_dir(&tables) else {
            return Ok(());
        };
        let pinned = pins::pinned_files(dir);
        for table_dir in table_dirs.flatten() {
            let Ok(files) = std::fs::read_dir(table_dir.path()) else {
                continue;
            };
            for file in files.flatten() {
                let path = file.path();
                let rel = path
                    .strip_prefix(dir)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if !self.refs.contains_key(&rel) && !pinned.contains(&rel) {
                    remove(&path)?;
                }
            }
        }
        Ok(())
    }
}

/// Removes a file; one already gone is fine.
fn remove(path: &Path) -> Result<(), WarehouseError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(WarehouseError::io(path, e)),
        _ => Ok(()),
    }
}
