//! Progress of full reads (a full refresh, or the first backfill) on the
//! terminal: one bar per source and entity with pages, records, rate and,
//! where the API announces its page count, an ETA. Without a terminal, a
//! plain log line per entity every ten seconds instead.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::watch;

use super::{EntityProgress, Telemetry};

/// How often a plain progress line is logged per entity.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Shows the progress of full reads until `stop`: bars when standard error is
/// a terminal, log lines otherwise.
pub async fn show_progress(telemetry: Arc<Telemetry>, mut stop: watch::Receiver<bool>) {
    let terminal = std::io::stderr().is_terminal();
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let mut bars: BTreeMap<(String, String), ProgressBar> = BTreeMap::new();
    let mut logged: BTreeMap<(String, String), Instant> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let reads = telemetry.reads();
        let mut active = Vec::new();
        for read in &reads {
            for e in &read.entities {
                let key = (read.source.clone(), e.name.clone());
                active.push(key.clone());
                let rate = e.records as f64 / read.elapsed_seconds.max(0.001);
                if terminal {
                    let bar = bars.entry(key).or_insert_with(|| {
                        let bar = multi.add(ProgressBar::new(0));
                        bar.set_style(style(e.expected_pages.is_some()));
                        bar.set_prefix(format!("{} {} {}", read.kind, read.source, e.name));
                        bar
                    });
                    if let Some(total) = e.expected_pages {
                        bar.set_length(total.max(e.pages));
                    }
                    bar.set_position(e.pages);
                    bar.set_message(format!("{} records, {rate:.0}/s", e.records));
                } else {
                    let due = logged.get(&key).is_none_or(|t| t.elapsed() >= LOG_EVERY);
                    if due {
                        logged.insert(key, Instant::now());
                        tracing::info!(
                            "{} {} {}: {}",
                            read.kind,
                            read.source,
                            e.name,
                            plain_line(e, read.elapsed_seconds)
                        );
                    }
                }
            }
        }
        bars.retain(|key, bar| {
            let keep = active.contains(key);
            if !keep {
                bar.finish_and_clear();
            }
            keep
        });
        logged.retain(|key, _| active.contains(key));
    }
    for bar in bars.values() {
        bar.finish_and_clear();
    }
}

/// Whether progress bars may use ANSI styles (`--color`); on by default.
static COLOR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Allows or forbids ANSI styles in the progress bars (`govflow --color`).
pub fn set_color(enabled: bool) {
    COLOR.store(enabled, std::sync::atomic::Ordering::Relaxed);
}

fn style(known_total: bool) -> ProgressStyle {
    let color = COLOR.load(std::sync::atomic::Ordering::Relaxed);
    let template = match (known_total, color) {
        (true, true) => "{prefix:.bold} [{bar:30}] {pos}/{len} pages, {msg}, ETA {eta}",
        (true, false) => "{prefix} [{bar:30}] {pos}/{len} pages, {msg}, ETA {eta}",
        (false, true) => "{prefix:.bold} {spinner} {pos} pages, {msg}",
        (false, false) => "{prefix} {spinner} {pos} pages, {msg}",
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// One entity's progress as a log line: pages (of the total), records, rate, ETA.
pub fn plain_line(e: &EntityProgress, elapsed_seconds: f64) -> String {
    let rate = e.records as f64 / elapsed_seconds.max(0.001);
    match e.expected_pages {
        Some(total) if total > 0 && e.pages > 0 => {
            let left = total.saturating_sub(e.pages) as f64;
            let per_page = elapsed_seconds / e.pages as f64;
            format!(
                "{}/{total} pages, {} records, {rate:.0} records/s, ETA {:.0} s",
                e.pages,
                e.records,
                left * per_page
            )
        }
        _ => format!(
            "{} pages, {} records, {rate:.0} records/s",
            e.pages, e.records
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_give_the_eta_when_the_total_is_known() {
        let e = EntityProgress {
            name: "customers".into(),
            pages: 10,
            expected_pages: Some(40),
            records: 2500,
        };
        assert_eq!(
            plain_line(&e, 5.0),
            "10/40 pages, 2500 records, 500 records/s, ETA 15 s"
        );
        let unknown = EntityProgress {
            expected_pages: None,
            ..e
        };
        assert_eq!(
            plain_line(&unknown, 5.0),
            "10 pages, 2500 records, 500 records/s"
        );
        let t = Telemetry::new(None, vec![]);
        t.page_read("bigcommerce", "orders", 5, None);
        assert!(
            t.reads().is_empty(),
            "pages outside a full read are not tracked"
        );
        t.read_started("bigcommerce", "backfill");
        t.page_read("bigcommerce", "orders", 5, Some(3));
        t.page_read("bigcommerce", "orders", 7, None);
        let reads = t.reads();
        assert_eq!(reads[0].entities[0].pages, 2);
        assert_eq!(reads[0].entities[0].records, 12);
        assert_eq!(reads[0].entities[0].expected_pages, Some(3));
        t.read_ended("bigcommerce");
        assert!(t.reads().is_empty());
    }
}
