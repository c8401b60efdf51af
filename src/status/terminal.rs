//! `govflow status`: the status report as plain terminal tables.

use std::fmt::Write;

use super::StatusReport;

/// Left-aligned columns, the first row a header, separated by two spaces.
fn columns(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "  {}", line.join("  ").trim_end());
    }
    out
}

fn secs(s: Option<f64>) -> String {
    s.map_or("-".to_string(), |s| format!("{s:.1}s"))
}

/// Strips control characters (a source's error text must not drive the terminal).
fn clean(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

/// The report as text.
pub fn render_table(r: &StatusReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "govflow: epoch {} · last commit {} · running since {}",
        r.epoch.map_or("-".to_string(), |e| e.to_string()),
        r.last_commit_at.map_or("-".to_string(), |t| t
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string()),
        r.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
    );
    out.push_str("\nsources\n");
    let mut rows = vec![
        [
            "source",
            "lag",
            "pulls",
            "records",
            "requests",
            "quota used",
            "errors",
            "dead letters",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for s in &r.sources {
        rows.push(vec![
            clean(&s.name),
            secs(s.lag_seconds),
            s.pulls.to_string(),
            s.records.to_string(),
            s.requests.to_string(),
            match (s.quota_used, s.quota) {
                (Some(u), Some(q)) => format!("{u}/{q}"),
                _ => "-".into(),
            },
            if s.consecutive_failures > 0 {
                format!("{} ({} in a row)", s.errors, s.consecutive_failures)
            } else {
                s.errors.to_string()
            },
            s.dead_letters.to_string(),
        ]);
    }
    out.push_str(&columns(&rows));
    out.push_str("\ntables\n");
    let mut rows = vec![
        ["table", "rows", "last epoch", "freshness lag"]
            .map(String::from)
            .to_vec(),
    ];
    for t in &r.tables {
        rows.push(vec![
            t.name.clone(),
            t.rows.to_string(),
            t.last_epoch.map_or("-".to_string(), |e| e.to_string()),
            secs(t.freshness_lag_seconds),
        ]);
    }
    out.push_str(&columns(&rows));
    if !r.checks.is_empty() {
        out.push_str("\nchecks\n");
        let mut rows = vec![
            ["check", "severity", "state", "failing"]
                .map(String::from)
                .to_vec(),
        ];
        for c in &r.checks {
            rows.push(vec![
                clean(&c.name),
                c.severity.clone(),
                if c.passed { "pass" } else { "FAIL" }.into(),
                c.failing.to_string(),
            ]);
        }
        out.push_str(&columns(&rows));
    }
    if !r.schedule.is_empty() {
        out.push_str("\nscheduled jobs\n");
        let mut rows = vec![
            ["job", "last finished", "outcome", "runs", "failures"]
                .map(String::from)
                .to_vec(),
        ];
        for j in &r.schedule {
            rows.push(vec![
                j.job.clone(),
                j.last_finished_at.map_or("-".to_string(), |t| {
                    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
                }),
                j.last_outcome.clone().unwrap_or_else(|| "-".into()),
                j.runs.to_string(),
                j.failures.to_string(),
            ]);
        }
        out.push_str(&columns(&rows));
    }
    if let Some(d) = &r.dbt {
        let _ = writeln!(
            out,
            "\nlast dbt run: {} {} ({} nodes, {:.1}s)",
            d.command,
            if d.success { "passed" } else { "FAILED" },
            d.nodes.len(),
            d.elapsed_seconds
        );
    }
    let _ = writeln!(
        out,
        "\nalerts: {} sent; failing now: {}",
        r.alerts.sent,
        if r.alerts.failing.is_empty() {
            "none".to_string()
        } else {
            clean(&r.alerts.failing.join(", "))
        }
    );
    let _ = writeln!(
        out,
        "notifications: {} delivered; last minute {}",
        r.notifications.delivered,
        r.notifications.per_minute.last().copied().unwrap_or(0)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Telemetry;

    #[test]
    fn aligned_tables_without_control_characters() {
        let t = Telemetry::new(None, vec!["local".into()]);
        t.source_added("bigcommerce", &[]);
        t.pull_ended(
            "bigcommerce",
            Some("bad\x1b[31m".into()),
            12,
            Some((150, 40)),
        );
        let text = render_table(&t.report());
        assert!(
            text.contains(
                "  bigcommerce  -    0      0        12        40/150      1 (1 in a row)  0"
            ),
            "{text}"
        );
        assert!(text.contains("  fct_order "));
        assert!(!text.contains('\x1b'));
    }
}
