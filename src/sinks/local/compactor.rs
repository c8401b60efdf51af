//! Merging a table's files, off the commit path.
//!
//! Each commit appends one file per changed table. Merging the newest files
//! like a binary counter (a run of files is merged while the newer part holds
//! at least half the rows of the file before it) keeps O(log n) files per table
//! and rewrites each row O(log n) times. Rewriting a large file inside a commit
//! would make that commit's latency grow with the table, so merges run on a
//! background thread: a commit plans a merge of a table's newest run of files,
//! the thread writes the merged file (synced), and a later commit swaps it in
//! for the run. The run's files are immutable and stay in every snapshot until
//! then, and the merged file holds exactly their rows, so readers see the same
//! table either way. One merge per table is in flight at a time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use arrow_schema::SchemaRef;

use super::manifest::FileEntry;
use super::{WarehouseError, files, scan};

/// A merge of a contiguous run of one table's files into one new file.
pub(crate) struct MergeJob {
    /// The table.
    pub table: String,
    /// The table's file schema.
    pub schema: SchemaRef,
    /// The key column.
    pub key: String,
    /// The run, oldest first.
    pub inputs: Vec<FileEntry>,
    /// Whether the run starts at the table's base: tombstones are then dropped.
    pub into_base: bool,
    /// Path of the merged file, relative to the warehouse directory.
    pub output: String,
}

/// A finished merge: the run it replaces and the merged file, or why it failed.
pub(crate) struct MergeDone {
    /// The table.
    pub table: String,
    /// Paths of the run, oldest first.
    pub inputs: Vec<String>,
    /// The merged file.
    pub output: Result<FileEntry, WarehouseError>,
}

/// The first index of the newest run of `files` worth merging, if any: the run
/// grows backwards while its rows are at least half those of the file before
/// it, or while the table would keep more than `max_files` files.
pub(crate) fn plan(files: &[FileEntry], max_files: usize) -> Option<usize> {
    let n = files.len();
    if n < 2 {
        return None;
    }
    let mut start = n - 1;
    let mut rows = files[start].rows;
    while start > 0 {
        let older = &files[start - 1];
        if rows * 2 < older.rows && start < max_files {
            break;
        }
        rows += older.rows;
        start -= 1;
    }
    (start < n - 1).then_some(start)
}

/// Runs `job` in `dir`: keeps the newest row of every key of the run (its
/// files read newest first), writes and syncs the merged file.
pub(crate) fn run(dir: &Path, job: &MergeJob) -> Result<FileEntry, WarehouseError> {
    let run = scan::Stored {
        dir,
        table: &job.table,
        key: &job.key,
        files: &job.inputs,
    };
    let merged = scan::newest_rows_in_order(&run, &job.schema, !job.into_base)?;
    files::write(
        &dir.join(&job.output),
        &job.schema,
        &merged,
        files::Encoding::Merged,
    )?;
    Ok(FileEntry {
        path: job.output.clone(),
        rows: merged.iter().map(|b| b.num_rows() as u64).sum(),
        base: job.into_base,
    })
}

fn finish(dir: &Path, job: MergeJob) -> MergeDone {
    let output = run(dir, &job);
    MergeDone {
        table: job.table,
        inputs: job.inputs.into_iter().map(|f| f.path).collect(),
        output,
    }
}

/// Runs merges on a background thread (or inline, when asked to).
pub(crate) struct Compactor {
    dir: PathBuf,
    jobs: Option<Sender<MergeJob>>,
    done: Receiver<MergeDone>,
    /// Merges finished inline, not yet taken.
    ready: Vec<MergeDone>,
    thread: Option<JoinHandle<()>>,
    /// Output path of the merge in flight, by table.
    in_flight: BTreeMap<String, String>,
}

impl Compactor {
    /// A compactor for the warehouse at `dir`; `background` starts its thread.
    pub fn start(dir: &Path, background: bool) -> Compactor {
        let (done_tx, done) = channel::<MergeDone>();
        let (jobs, thread) = if background {
            let (jobs, inbox) = channel::<MergeJob>();
            let thread_dir = dir.to_path_buf();
            let thread = std::thread::Builder::new()
                .name("warehouse-merge".into())
                .spawn(move || {
                    while let Ok(job) = inbox.recv() {
                        if done_tx.send(finish(&thread_dir, job)).is_err() {
                            break;
                        }
                    }
                })
                .ok();
            (thread.as_ref().map(|_| jobs), thread)
        } else {
            (None, None)
        };
        Compactor {
            dir: dir.to_path_buf(),
            jobs,
            done,
            ready: Vec::new(),
            thread,
            in_flight: BTreeMap::new(),
        }
    }

    /// Whether a merge of `table` is in flight.
    pub fn is_busy(&self, table: &str) -> bool {
        self.in_flight.contains_key(table)
    }

    /// Output paths of merges in flight: files that no snapshot names yet but
    /// that must not be collected.
    pub fn pending_outputs(&self) -> impl Iterator<Item = &String> {
        self.in_flight.values()
    }

    /// Starts `job` (runs it inline without a background thread).
    pub fn submit(&mut self, job: MergeJob) {
        self.in_flight.insert(job.table.clone(), job.output.clone());
        let job = match &self.jobs {
            Some(jobs) => match jobs.send(job) {
                Ok(()) => return,
                Err(failed) => failed.0,
            },
            None => job,
        };
        self.ready.push(finish(&self.dir, job));
    }

    /// The merges finished so far.
    pub fn finished(&mut self) -> Vec<MergeDone> {
        let mut done = std::mem::take(&mut self.ready);
        done.extend(self.done.try_iter());
        for d in &done {
            self.in_flight.remove(&d.table);
        }
        done
    }

    /// Waits for every merge in flight; [`Compactor::finished`] then has them.
    pub fn wait(&mut self) {
        while !self.in_flight.is_empty() {
            match self.done.recv() {
                Ok(d) => {
                    self.in_flight.remove(&d.table);
                    self.ready.push(d);
                }
                // The thread is gone: what it had is lost, its outputs are garbage.
                Err(_) => self.in_flight.clear(),
            }
        }
    }
}

impl Drop for Compactor {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(rows: &[u64]) -> Vec<FileEntry> {
        rows.iter()
            .enumerate()
            .map(|(i, r)| FileEntry {
                path: format!("f{i}"),
                rows: *r,
                base: i == 0,
            })
            .collect()
    }

    #[test]
    fn plans_like_a_binary_counter() {
        assert_eq!(plan(&files(&[100]), 16), None);
        assert_eq!(plan(&files(&[100, 10]), 16), None);
        assert_eq!(plan(&files(&[100, 60]), 16), Some(0));
        // 10 + 10 ≥ 40 / 2: the run reaches back over the 40.
        assert_eq!(plan(&files(&[1000, 40, 10, 10]), 16), Some(1));
        assert_eq!(plan(&files(&[1000, 40, 30, 10]), 16), None);
        assert_eq!(plan(&files(&[0, 5]), 16), Some(0));
        // Too many files: merged regardless of size.
        assert_eq!(plan(&files(&[1000, 400, 100, 1]), 3), Some(2));
    }
}
