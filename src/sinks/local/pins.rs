//! Pins: a reader's hold on one snapshot, so that its files stay on disk for
//! as long as the reader needs them (a dbt run can outlast the retention period).
//!
//! A pin is a file `pins/<epoch>-<pid>-<n>.pin` holding a copy of the pinned
//! manifest; it works across processes. The writer's garbage collection keeps
//! every snapshot that a live pin names (a pin whose process is gone is
//! stale and removed), and opening the warehouse keeps the files of pinned
//! manifests. Protocol, free of races: the reader writes its pin and then
//! checks that the snapshot's manifest still exists (else it pins the newer
//! latest); the writer removes a dropped snapshot's manifest first and reads
//! the pins after, so one of the two always sees the other.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::WarehouseError;
use super::manifest::{self, Manifest};

/// Directory of pins inside the warehouse.
pub const PIN_DIR: &str = "pins";

static NEXT_PIN: AtomicU64 = AtomicU64::new(0);

/// A held snapshot: its files are not deleted until this is dropped.
#[derive(Debug)]
pub struct SnapshotPin {
    dir: PathBuf,
    path: PathBuf,
    manifest: Manifest,
}

impl SnapshotPin {
    /// The pinned snapshot.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The pinned snapshot's epoch (`None` for the empty warehouse).
    pub fn epoch(&self) -> Option<u64> {
        self.manifest.epoch
    }

    /// The warehouse directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The query of `table`'s current rows in the pinned snapshot (see
    /// [`super::table_query`]); `None` for a table the snapshot lacks.
    pub fn table_query(&self, table: &str) -> Option<String> {
        self.manifest
            .tables
            .get(table)
            .map(|t| super::views::table_query(&self.dir, t))
    }
}

impl Drop for SnapshotPin {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Pins the latest snapshot of the warehouse at `dir` (which another process
/// may be writing).
pub fn pin_latest(dir: &Path) -> Result<SnapshotPin, WarehouseError> {
    let dir = dir.canonicalize().map_err(|e| WarehouseError::io(dir, e))?;
    for _ in 0..10 {
        let manifests = manifest::list(&dir).map_err(|e| WarehouseError::io(&dir, e))?;
        let Some((manifest_path, manifest)) = manifests.into_iter().next_back() else {
            return Err(WarehouseError::io(
                &dir.join(manifest::MANIFEST_DIR),
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no snapshot: the warehouse has never been published",
                ),
            ));
        };
        let pin = write_pin(&dir, manifest)?;
        if manifest_path.exists() {
            return Ok(pin);
        }
        // The snapshot was dropped before the pin was seen: pin the newer one.
    }
    Err(WarehouseError::io(
        &dir,
        std::io::Error::other("the latest snapshot changed ten times while pinning it"),
    ))
}

/// Pins `manifest`, a snapshot of the warehouse at `dir` (absolute), held by this process.
pub(crate) fn write_pin(dir: &Path, manifest: Manifest) -> Result<SnapshotPin, WarehouseError> {
    let pins = dir.join(PIN_DIR);
    std::fs::create_dir_all(&pins).map_err(|e| WarehouseError::io(&pins, e))?;
    let epoch = manifest
        .epoch
        .map_or("initial".to_string(), |e| format!("{e:020}"));
    let n = NEXT_PIN.fetch_add(1, Ordering::Relaxed);
    let path = pins.join(format!("{epoch}-{}-{n}.pin", std::process::id()));
    let bytes = serde_json::to_vec(&manifest).map_err(|e| WarehouseError::Schema {
        table: String::new(),
        detail: e.to_string(),
    })?;
    crate::fsutil::write_atomic_unsynced(&path, &bytes)
        .map_err(|e| WarehouseError::io(&path, e))?;
    Ok(SnapshotPin {
        dir: dir.to_path_buf(),
        path,
        manifest,
    })
}

/// The live pins under `dir`, as (path, epoch, pid); stale pins (their process
/// is gone) are removed.
fn live_pins(dir: &Path) -> Vec<(PathBuf, Option<u64>)> {
    let Ok(entries) = std::fs::read_dir(dir.join(PIN_DIR)) else {
        return Vec::new();
    };
    let mut live = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".pin").filter(|_| !name.starts_with('.')) else {
            continue;
        };
        let mut parts = stem.split('-');
        let (Some(epoch), Some(pid)) = (parts.next(), parts.next()) else {
            continue;
        };
        let epoch = if epoch == "initial" {
            None
        } else {
            match epoch.parse() {
                Ok(e) => Some(e),
                Err(_) => continue,
            }
        };
        if !process_alive(pid) {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        live.push((path, epoch));
    }
    live
}

/// Whether the process `pid` runs (Linux: `/proc/<pid>`; elsewhere every pin counts as live).
fn process_alive(pid: &str) -> bool {
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid).exists()
}

/// The epochs that live pins hold.
pub(crate) fn pinned_epochs(dir: &Path) -> HashSet<Option<u64>> {
    live_pins(dir).into_iter().map(|(_, e)| e).collect()
}

/// Every file that a live pin's snapshot reads (relative paths).
pub(crate) fn pinned_files(dir: &Path) -> HashSet<String> {
    let mut files = HashSet::new();
    for (path, _) in live_pins(dir) {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        if let Ok(m) = serde_json::from_slice::<Manifest>(&bytes) {
            files.extend(m.files().map(|f| f.path.clone()));
        }
    }
    files
}
