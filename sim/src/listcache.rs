//! A small LRU cache of listing results (matching ids in order), keyed by the resolved
//! filters and valid for one store generation: paging through a listing costs a slice,
//! not a scan of the table per page.

use std::collections::VecDeque;
use std::sync::Arc;

/// Listings kept.
const CAPACITY: usize = 32;

/// Cached listings, least recently used first.
#[derive(Debug, Default)]
pub(crate) struct ListCache {
    entries: VecDeque<Entry>,
}

#[derive(Debug)]
struct Entry {
    key: String,
    generation: u64,
    ids: Arc<Vec<u64>>,
}

impl ListCache {
    /// The ids cached under `key` for `generation` (a hit becomes most recently used).
    pub(crate) fn get(&mut self, key: &str, generation: u64) -> Option<Arc<Vec<u64>>> {
        let pos = self
            .entries
            .iter()
            .position(|e| e.key == key && e.generation == generation)?;
        let entry = self.entries.remove(pos)?;
        let ids = entry.ids.clone();
        self.entries.push_back(entry);
        Some(ids)
    }

    /// Caches `ids` under `key` for `generation`, replacing an older entry of the key.
    pub(crate) fn put(&mut self, key: String, generation: u64, ids: Arc<Vec<u64>>) {
        self.entries.retain(|e| e.key != key);
        self.entries.push_back(Entry {
            key,
            generation,
            ids,
        });
        while self.entries.len() > CAPACITY {
            self.entries.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_misses_and_generations() {
        let mut c = ListCache::default();
        assert!(c.get("a", 1).is_none());
        c.put("a".into(), 1, Arc::new(vec![1]));
        assert_eq!(c.get("a", 1).as_deref(), Some(&vec![1]));
        assert!(c.get("a", 2).is_none());
        c.put("a".into(), 2, Arc::new(vec![3]));
        assert_eq!(c.get("a", 2).as_deref(), Some(&vec![3]));
        for i in 0..CAPACITY {
            c.put(format!("k{i}"), 2, Arc::new(Vec::new()));
        }
        assert!(c.get("a", 2).is_none());
    }
}
