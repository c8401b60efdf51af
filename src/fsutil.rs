//! Crash-safe file publication: write to a temporary name, flush to disk,
//! rename over the target, flush the directory.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically: readers see the old or the new content, never a mix.
/// Durable once it returns.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace(path, bytes, true)
}

/// Like [`write_atomic`], for a file that is rebuilt at start anyway: readers
/// never see a mix, but a machine crash may leave the old content.
pub fn write_atomic_unsynced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace(path, bytes, false)
}

fn replace(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        if durable {
            file.sync_all()?;
        }
    }
    std::fs::rename(&tmp, path)?;
    if durable { sync_dir(dir) } else { Ok(()) }
}

/// Flushes a directory's entries (renames, creations) to disk.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Runs `job` on every item, each on its own thread, and returns the first
/// error. For syncs: the file system batches concurrent syncs into one journal
/// commit, where one after another each waits for its own.
pub fn in_parallel<T: Sync, E: Send>(
    items: &[T],
    job: impl Fn(&T) -> Result<(), E> + Sync,
    panicked: impl Fn(&T) -> E,
) -> Result<(), E> {
    if let [only] = items {
        return job(only);
    }
    std::thread::scope(|scope| {
        let job = &job;
        let handles: Vec<_> = items
            .iter()
            .map(|item| (item, scope.spawn(move || job(item))))
            .collect();
        let mut first = Ok(());
        for (item, handle) in handles {
            let result = handle.join().unwrap_or_else(|_| Err(panicked(item)));
            if first.is_ok() {
                first = result;
            }
        }
        first
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/current.sql");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("current.sql")]);
    }
}
