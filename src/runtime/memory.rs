//! Giving freed memory back to the operating system.
//!
//! mimalloc, govflow's allocator, returns a thread's freed pages to the OS
//! only when that thread allocates again after a delay. A dataflow worker that
//! goes idle after a large epoch (an initial load builds and frees gigabytes
//! of change rows) would keep them resident for as long as it stays idle:
//! on the anchor workload that was 40% of the process's RSS. Idle workers
//! call [`release_freed_memory`] once after each burst of work.

/// Frees this thread's emptied pages and purges unused memory of the whole
/// process, now rather than after mimalloc's delay. Takes milliseconds on a
/// multi-gigabyte heap; call it when a thread has just gone idle.
pub fn release_freed_memory() {
    // SAFETY: `mi_collect` has no preconditions; with another global
    // allocator it only walks mimalloc's (empty) heap of this thread.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
