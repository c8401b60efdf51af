//! The delivery log: which outbox events are done (acknowledged by the
//! endpoint, or refused for good), kept in the state directory.
//!
//! `state/notifications/delivered.log` is append-only text, one line per
//! outcome, synced before the event counts as done:
//!
//! ```text
//! through 41
//! ok restock-7-101-42
//! dead restock-9-101-42 422
//! ```
//!
//! `through E` (first line, optional) says every event of an episode up to
//! epoch `E` is done. At start, [`DeliveryLog::open`] compacts the file
//! against the outbox: it moves `through` as far as every older event is done
//! and keeps only the ids above it; while running, [`DeliveryLog::compact`]
//! does the same up to a mark the notifier knows is all done. The file stays
//! about as small as the undelivered tail.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use dataflows::rows::product_notification_event::ProductNotificationEvent;

use super::NotifyError;

/// Name of the log file inside `state/notifications/`.
pub const LOG_FILE: &str = "delivered.log";

/// The done events, and the open file new outcomes are appended to.
#[derive(Debug)]
pub struct DeliveryLog {
    path: PathBuf,
    through: Option<i64>,
    /// Done events above `through`, with their episodes.
    done: HashMap<String, i64>,
    file: std::fs::File,
}

/// How an event ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The endpoint acknowledged it (2xx).
    Delivered,
    /// The endpoint refused it for good (the HTTP status).
    Refused(u16),
}

impl DeliveryLog {
    /// Opens (or creates) the log in `dir`, compacted against `outbox` (every
    /// committed event). Lines that do not parse are an error naming the line.
    pub fn open(
        dir: &Path,
        outbox: &[ProductNotificationEvent],
    ) -> Result<DeliveryLog, NotifyError> {
        std::fs::create_dir_all(dir).map_err(|e| NotifyError::state(dir, e))?;
        let path = dir.join(LOG_FILE);
        let (through, done) = match std::fs::read_to_string(&path) {
            Ok(text) => parse(&path, &text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, HashSet::new()),
            Err(e) => return Err(NotifyError::state(&path, e)),
        };
        // Move `through` up to just below the oldest event not yet done.
        let is_done = |e: &ProductNotificationEvent| {
            through.is_some_and(|t| e.episode <= t) || done.contains(&e.event_id)
        };
        let first_pending = outbox
            .iter()
            .filter(|e| !is_done(e))
            .map(|e| e.episode)
            .min();
        let max_done = outbox.iter().map(|e| e.episode).max();
        let new_through = match (first_pending, max_done) {
            (Some(p), _) => Some(p - 1).filter(|_| p > i64::MIN),
            (None, m) => m,
        }
        .max(through);
        // Ids not in the outbox cannot be told apart from future ones: none
        // exist (the outbox is append-only), so they are dropped.
        let keep: HashMap<String, i64> = outbox
            .iter()
            .filter(|e| new_through.is_none_or(|t| e.episode > t) && done.contains(&e.event_id))
            .map(|e| (e.event_id.clone(), e.episode))
            .collect();
        let file = rewrite(&path, new_through, &keep)?;
        Ok(DeliveryLog {
            path,
            through: new_through,
            done: keep,
            file,
        })
    }

    /// Folds every done event of an episode up to `through` into the mark
    /// and rewrites the file: the caller guarantees that every event of those
    /// episodes is done (none is pending or still to come).
    pub fn compact(&mut self, through: i64) -> Result<(), NotifyError> {
        if self.through.is_some_and(|t| t >= through) {
            return Ok(());
        }
        self.done.retain(|_, episode| *episode > through);
        self.file = rewrite(&self.path, Some(through), &self.done)?;
        self.through = Some(through);
        Ok(())
    }

    /// Whether `event` is done.
    pub fn is_done(&self, event: &ProductNotificationEvent) -> bool {
        self.through.is_some_and(|t| event.episode <= t) || self.done.contains_key(&event.event_id)
    }

    /// Records outcomes `(event_id, episode, outcome)` durably (one sync for all of them).
    pub fn record(&mut self, outcomes: &[(String, i64, Outcome)]) -> Result<(), NotifyError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for (id, _, outcome) in outcomes {
            match outcome {
                Outcome::Delivered => text.push_str(&format!("ok {id}\n")),
                Outcome::Refused(status) => text.push_str(&format!("dead {id} {status}\n")),
            }
        }
        self.file
            .write_all(text.as_bytes())
            .and_then(|_| self.file.sync_data())
            .map_err(|e| NotifyError::state(&self.path, e))?;
        self.done.extend(
            outcomes
                .iter()
                .map(|(id, episode, _)| (id.clone(), *episode)),
        );
        Ok(())
    }

    /// Done events above the `through` mark (for tests and status).
    pub fn done_ids(&self) -> usize {
        self.done.len()
    }
}

/// Rewrites the log atomically as `through` plus `done`, and opens it for appends.
fn rewrite(
    path: &Path,
    through: Option<i64>,
    done: &HashMap<String, i64>,
) -> Result<std::fs::File, NotifyError> {
    let mut text = String::new();
    if let Some(t) = through {
        text.push_str(&format!("through {t}\n"));
    }
    let mut ids: Vec<&String> = done.keys().collect();
    ids.sort();
    for id in ids {
        text.push_str(&format!("ok {id}\n"));
    }
    crate::fsutil::write_atomic(path, text.as_bytes()).map_err(|e| NotifyError::state(path, e))?;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| NotifyError::state(path, e))
}

fn parse(path: &Path, text: &str) -> Result<(Option<i64>, HashSet<String>), NotifyError> {
    let mut through = None;
    let mut done = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let bad = || NotifyError::Log {
            path: path.to_path_buf(),
            line: i + 1,
        };
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next()) {
            (None, _) => {}
            (Some("through"), Some(t)) => through = Some(t.parse::<i64>().map_err(|_| bad())?),
            (Some("ok"), Some(id)) => {
                done.insert(id.to_string());
            }
            (Some("dead"), Some(id)) => {
                done.insert(id.to_string());
            }
            _ => return Err(bad()),
        }
    }
    Ok((through, done))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataflows::rows::product_notification_event::event_id;
    use dataflows::scalar::Money;

    fn event(customer_id: i64, episode: i64) -> ProductNotificationEvent {
        ProductNotificationEvent {
            event_id: event_id(customer_id, 5, episode),
            customer_id,
            customer_email: String::new(),
            sku_id: 5,
            product_id: 1,
            sku: "S".into(),
            episode,
            inventory_level: 1,
            price: Money(0),
            sale_price: Money(0),
        }
    }

    #[test]
    fn outcomes_survive_reopen_and_compact() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = vec![event(1, 3), event(2, 3), event(1, 5), event(3, 7)];
        let mut log = DeliveryLog::open(dir.path(), &outbox).unwrap();
        assert!(outbox.iter().all(|e| !log.is_done(e)));
        let done = |i: usize, outcome| (outbox[i].event_id.clone(), outbox[i].episode, outcome);
        log.record(&[
            done(0, Outcome::Delivered),
            done(1, Outcome::Refused(422)),
            done(3, Outcome::Delivered),
        ])
        .unwrap();
        drop(log);
        let log = DeliveryLog::open(dir.path(), &outbox).unwrap();
        let done: Vec<bool> = outbox.iter().map(|e| log.is_done(e)).collect();
        assert_eq!(done, [true, true, false, true]);
        // Episode 3 is all done: folded into `through`; 7 kept by id.
        assert_eq!(log.done_ids(), 1);
        let text = std::fs::read_to_string(dir.path().join(LOG_FILE)).unwrap();
        assert_eq!(text, "through 4\nok restock-3-5-7\n");

        // Compaction while running folds what the caller says is all done.
        let mut log = log;
        log.record(&[(outbox[2].event_id.clone(), 5, Outcome::Delivered)])
            .unwrap();
        log.compact(6).unwrap();
        assert_eq!(log.done_ids(), 1);
        assert!(outbox.iter().all(|e| log.is_done(e)));
        log.record(&[(event(4, 9).event_id, 9, Outcome::Delivered)])
            .unwrap();
        let text = std::fs::read_to_string(dir.path().join(LOG_FILE)).unwrap();
        assert_eq!(text, "through 6\nok restock-3-5-7\nok restock-4-5-9\n");
    }

    #[test]
    fn a_damaged_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOG_FILE), "ok a\nwhat\n").unwrap();
        let e = DeliveryLog::open(dir.path(), &[]).unwrap_err();
        assert!(e.to_string().contains(":2"), "{e}");
    }
}
