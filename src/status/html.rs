//! The status page: server-rendered HTML with the graph drawn as inline SVG,
//! no external asset (it works offline). A small script fetches the status
//! fragment again every two seconds and swaps it in. Every string that comes
//! from outside (source errors, check samples, alert texts, dbt messages) is
//! escaped here.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::{Graph, StatusReport};

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1d2330; background: #f7f8fa; }
h1 { font-size: 1.4em; margin: 0 0 .2em; } h2 { font-size: 1.1em; margin: 1.4em 0 .4em; }
table { border-collapse: collapse; background: #fff; } td, th { padding: .25em .7em; border-bottom: 1px solid #e3e6eb; text-align: left; }
th { background: #eef1f5; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #17803d; } .bad { color: #b42318; font-weight: 600; } .muted { color: #6b7280; }
svg { background: #fff; border: 1px solid #e3e6eb; } svg text { font: 11px system-ui, sans-serif; }
.grid { display: flex; flex-wrap: wrap; gap: 2em; } .alert { white-space: pre-wrap; }
"#;

const SCRIPT: &str = r#"
(function () {
  var q = window.location.search;
  setInterval(function () {
    fetch('/status.html' + q, { cache: 'no-store' })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) { document.getElementById('status').innerHTML = html; })
      .catch(function () {});
  }, 2000);
})();
"#;

/// The whole page.
pub fn render_page(report: &StatusReport) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>govflow status</title><style>{STYLE}</style></head>\
         <body><div id=\"status\">{}</div><script>{SCRIPT}</script></body></html>\n",
        render_status(report)
    )
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map_or("-".to_string(), |t| {
        t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
    })
}

fn secs(s: Option<f64>) -> String {
    match s {
        None => "-".to_string(),
        Some(s) if s < 120.0 => format!("{s:.1} s"),
        Some(s) if s < 7200.0 => format!("{:.1} min", s / 60.0),
        Some(s) => format!("{:.1} h", s / 3600.0),
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("-".to_string(), |v| v.to_string())
}

/// The part of the page that refreshes: the graph and every table.
pub fn render_status(r: &StatusReport) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<h1>govflow</h1><p class=\"muted\">epoch <b id=\"epoch\">{}</b> · last commit {} · \
         running since {} · page generated {}</p>",
        opt(r.epoch),
        time(r.last_commit_at),
        time(Some(r.started_at)),
        time(Some(r.generated_at)),
    );
    let rows: BTreeMap<&str, i64> = r.tables.iter().map(|t| (t.name.as_str(), t.rows)).collect();
    h.push_str("<h2>Dataflow</h2>");
    h.push_str(&graph_svg(&r.graph, &rows));

    if !r.reads.is_empty() {
        h.push_str("<h2>Full reads in progress</h2><table id=\"reads\"><tr><th>source</th><th>read</th><th>entity</th><th>progress</th></tr>");
        for read in &r.reads {
            for e in &read.entities {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&read.source),
                    esc(&read.kind),
                    esc(&e.name),
                    esc(&super::progress::plain_line(e, read.elapsed_seconds))
                );
            }
        }
        h.push_str("</table>");
    }
    h.push_str("<div class=\"grid\"><div><h2>Tables</h2><table id=\"tables\"><tr><th>table</th><th>rows</th><th>last epoch</th><th>last commit</th><th>freshness lag</th></tr>");
    for t in &r.tables {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
            esc(&t.name),
            t.rows,
            opt(t.last_epoch),
            time(t.last_commit_at),
            secs(t.freshness_lag_seconds)
        );
    }
    h.push_str("</table></div><div>");

    h.push_str("<h2>Sources</h2><table id=\"sources\"><tr><th>source</th><th>lag</th><th>pulls</th><th>records</th><th>requests</th><th>quota used</th><th>errors</th><th>dead letters</th></tr>");
    for s in &r.sources {
        let quota = match (s.quota_used, s.quota) {
            (Some(used), Some(quota)) => format!("{used} / {quota}"),
            _ => "-".to_string(),
        };
        let errors = if s.consecutive_failures > 0 {
            format!(
                "<span class=\"bad\">{} ({} in a row)</span>",
                s.errors, s.consecutive_failures
            )
        } else {
            s.errors.to_string()
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{quota}</td><td class=\"num\">{errors}</td><td class=\"num\">{}</td></tr>",
            esc(&s.name),
            secs(s.lag_seconds),
            s.pulls,
            s.records,
            s.requests,
            s.dead_letters
        );
        if let Some(e) = &s.last_error {
            let _ = write!(
                h,
                "<tr><td></td><td colspan=\"7\" class=\"muted\">last error: {}</td></tr>",
                esc(e)
            );
        }
        if !s.cursors.is_empty() {
            let cursors: Vec<String> = s
                .cursors
                .iter()
                .map(|(k, v)| format!("{} {}", esc(k), esc(v)))
                .collect();
            let _ = write!(
                h,
                "<tr><td></td><td colspan=\"7\" class=\"muted\">cursors: {}</td></tr>",
                cursors.join(" · ")
            );
        }
    }
    h.push_str("</table>");

    h.push_str("<h2>Checks</h2><table id=\"checks\"><tr><th>check</th><th>severity</th><th>state</th><th>failing</th><th>sample keys</th></tr>");
    for c in &r.checks {
        let state = if c.passed {
            "<span class=\"ok\">pass</span>"
        } else {
            "<span class=\"bad\">FAIL</span>"
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{state}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&c.name),
            esc(&c.severity),
            c.failing,
            esc(&c.sample_keys.join(", "))
        );
    }
    h.push_str("</table>");

    h.push_str("<h2>Scheduled jobs</h2><table id=\"jobs\"><tr><th>job</th><th>last tick</th><th>last finished</th><th>outcome</th><th>runs</th><th>failures</th></tr>");
    for j in &r.schedule {
        let outcome = match (j.last_outcome.as_deref(), &j.last_error) {
            (Some("failure"), Some(e)) => format!("<span class=\"bad\">failure</span>: {}", esc(e)),
            (Some(o), _) => esc(o),
            (None, _) => "-".into(),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{outcome}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&j.job),
            time(j.last_tick),
            time(j.last_finished_at),
            j.runs,
            j.failures
        );
    }
    h.push_str("</table></div></div>");

    h.push_str("<h2>Last dbt run</h2>");
    match &r.dbt {
        None => h.push_str("<p class=\"muted\">none yet</p>"),
        Some(d) => {
            let state = if d.success {
                "<span class=\"ok\">passed</span>"
            } else {
                "<span class=\"bad\">failed</span>"
            };
            let _ = write!(
                h,
                "<p><code>{}</code> {state} at {} in {:.1} s{}</p>",
                esc(&d.command),
                time(Some(d.finished_at)),
                d.elapsed_seconds,
                d.error
                    .as_ref()
                    .map(|e| format!(": {}", esc(e)))
                    .unwrap_or_default()
            );
            h.push_str("<table id=\"dbt\"><tr><th>node</th><th>kind</th><th>status</th><th>seconds</th><th>failing rows</th></tr>");
            for n in &d.nodes {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{:.2}</td><td class=\"num\">{}</td></tr>",
                    esc(&n.name),
                    esc(&n.kind),
                    esc(&n.status),
                    n.seconds,
                    opt(n.failures)
                );
            }
            h.push_str("</table>");
        }
    }

    let _ = write!(
        h,
        "<h2>Notifications</h2><p>{} delivered since start; per minute (last {} minutes): <span id=\"notifications\">{}</span></p>",
        r.notifications.delivered,
        r.notifications.per_minute.len(),
        r.notifications
            .per_minute
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );

    let _ = write!(
        h,
        "<h2>Alerts</h2><p>{} sent since start; failing now: {}</p><table id=\"alerts\"><tr><th>at</th><th>message</th></tr>",
        r.alerts.sent,
        if r.alerts.failing.is_empty() {
            "none".to_string()
        } else {
            esc(&r.alerts.failing.join(", "))
        }
    );
    for a in &r.alerts.recent {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"alert\">{}</td></tr>",
            time(Some(a.at)),
            esc(&a.text)
        );
    }
    h.push_str("</table>");
    h
}

/// The graph as SVG: sources, raw tables, models and sinks in four columns,
/// each table with its row count.
fn graph_svg(graph: &Graph, rows: &BTreeMap<&str, i64>) -> String {
    const BOX_W: f64 = 210.0;
    const BOX_H: f64 = 24.0;
    const GAP: f64 = 8.0;
    const COL: [f64; 4] = [10.0, 270.0, 560.0, 850.0];
    let raw: Vec<&String> = graph
        .tables
        .iter()
        .filter(|t| t.starts_with("raw_"))
        .collect();
    let models: Vec<&String> = graph
        .tables
        .iter()
        .filter(|t| !t.starts_with("raw_"))
        .collect();
    let columns: [Vec<&String>; 4] = [
        graph.sources.iter().collect(),
        raw,
        models,
        graph.sinks.iter().collect(),
    ];
    let mut at: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    let mut tallest: f64 = 0.0;
    for (c, names) in columns.iter().enumerate() {
        for (i, name) in names.iter().enumerate() {
            let y = 10.0 + i as f64 * (BOX_H + GAP);
            at.insert(name.as_str(), (COL[c], y));
            tallest = tallest.max(y + BOX_H + 10.0);
        }
    }
    let width = COL[3] + BOX_W + 10.0;
    let mut s = format!(
        "<svg id=\"graph\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{tallest}\" viewBox=\"0 0 {width} {tallest}\" role=\"img\" aria-label=\"dataflow graph\">"
    );
    for (from, to) in &graph.edges {
        if let (Some((x1, y1)), Some((x2, y2))) = (at.get(from.as_str()), at.get(to.as_str())) {
            let (x1, y1, x2, y2) = (x1 + BOX_W, y1 + BOX_H / 2.0, *x2, y2 + BOX_H / 2.0);
            let mid = (x1 + x2) / 2.0;
            let _ = write!(
                s,
                "<path class=\"edge\" d=\"M{x1:.0},{y1:.0} C{mid:.0},{y1:.0} {mid:.0},{y2:.0} {x2:.0},{y2:.0}\" fill=\"none\" stroke=\"#9aa4b2\" stroke-width=\"1\"/>"
            );
        }
    }
    for (c, names) in columns.iter().enumerate() {
        let fill = ["#e0ecff", "#eef1f5", "#e6f4ea", "#fff4de"][c];
        for name in names {
            let (x, y) = at[name.as_str()];
            let label = match rows.get(name.as_str()) {
                Some(n) => format!("{} · {n}", esc(name)),
                None => esc(name),
            };
            let _ = write!(
                s,
                "<g class=\"node\" data-name=\"{}\"><rect x=\"{x}\" y=\"{y}\" width=\"{BOX_W}\" height=\"{BOX_H}\" rx=\"4\" fill=\"{fill}\" stroke=\"#7b8794\"/><text x=\"{}\" y=\"{}\">{label}</text></g>",
                esc(name),
                x + 6.0,
                y + 16.0
            );
        }
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{SourceStatus, Telemetry};

    #[test]
    fn everything_from_outside_is_escaped() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        let telemetry = Telemetry::new(None, vec!["local warehouse".into()]);
        telemetry.source_added("bigcommerce", &["raw_bc_order".to_string()]);
        telemetry.pull_ended(
            "bigcommerce",
            Some("HTTP 500: <img src=x onerror=alert(1)>".into()),
            3,
            None,
        );
        telemetry.alert_sent("check `<b>` failing");
        telemetry.alerts_failing(vec!["check:<b>".into()]);
        let mut report = telemetry.report();
        report.sources.push(SourceStatus {
            name: "<evil>".into(),
            ..SourceStatus::default()
        });
        let page = render_page(&report);
        assert!(!page.contains("<img"), "{page}");
        assert!(!page.contains("<evil>"));
        assert!(!page.contains("<b>"));
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
        // The graph: every table is a node, with its row count.
        assert!(page.contains("<svg id=\"graph\""));
        assert!(page.contains("data-name=\"fct_order\""));
        assert!(page.contains("raw_bc_order · 0"));
        assert_eq!(
            page.matches("class=\"edge\"").count(),
            report.graph.edges.len()
        );
    }
}

#[cfg(test)]
mod catalogue_tests {
    use dataflows::catalog::{ColumnDef, ColumnType, TableDef};

    use crate::status::Telemetry;

    #[test]
    fn configured_tables_join_the_graph_and_the_tables() {
        let telemetry = Telemetry::new(None, vec!["local warehouse".into()]);
        let id = ColumnDef {
            name: "id".into(),
            ty: ColumnType::Int64,
            nullable: false,
            doc: String::new(),
        };
        let def = TableDef::raw(
            "raw_pg_shop_coupon",
            "postgres",
            vec!["id".into()],
            vec![id],
        );
        telemetry.tables_added(&[def.clone(), def]);
        telemetry.source_added("postgres.shop", &["raw_pg_shop_coupon".to_string()]);
        let mut deltas = std::collections::BTreeMap::new();
        deltas.insert("raw_pg_shop_coupon".to_string(), (3, 3));
        telemetry.epoch_committed(4, &deltas, Default::default(), Default::default());
        let report = telemetry.report();
        let tables: Vec<(&str, i64)> = report
            .tables
            .iter()
            .filter(|t| t.name == "raw_pg_shop_coupon")
            .map(|t| (t.name.as_str(), t.rows))
            .collect();
        assert_eq!(tables, [("raw_pg_shop_coupon", 3)], "added once, counted");
        let edge =
            |from: &str, to: &str| report.graph.edges.iter().any(|(f, t)| f == from && t == to);
        assert!(edge("postgres.shop", "raw_pg_shop_coupon"));
        assert!(edge("raw_pg_shop_coupon", "local warehouse"));
        // Model lineage comes from the catalogue's `reads`.
        assert!(edge("raw_bc_order", "fct_order"));
        assert!(edge("dim_sku", "fct_onsale_product_inventory"));
        assert!(super::render_page(&report).contains("data-name=\"raw_pg_shop_coupon\""));
    }
}
