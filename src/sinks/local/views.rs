//! `current.sql`: one `CREATE OR REPLACE VIEW` per table over the files of the
//! latest snapshot, so any DuckDB client can `.read current.sql`.

use std::fmt::Write;
use std::path::Path;

use super::files::{DELETED, EPOCH};
use super::manifest::{Manifest, TableFiles};

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The query of one table's current rows in a snapshot, with absolute paths
/// under `dir`: a key's newest row (highest `_epoch`) wins, tombstones are
/// dropped, `_deleted` is left out. The body of the table's view in
/// `current.sql`, and of the dbt sources of a pinned run.
pub fn table_query(dir: &Path, table: &TableFiles) -> String {
    let files: Vec<String> = table
        .files
        .iter()
        .map(|f| quote_literal(&dir.join(&f.path).to_string_lossy()))
        .collect();
    let source = format!("read_parquet([{}], union_by_name = true)", files.join(", "));
    if table.files.len() == 1 && table.files[0].base {
        // A compacted base has one row per key and no tombstones.
        format!("SELECT * EXCLUDE ({DELETED}) FROM {source}")
    } else {
        format!(
            "SELECT * EXCLUDE ({DELETED}, _govflow_rank) FROM (SELECT *, row_number() OVER \
             (PARTITION BY {key} ORDER BY {EPOCH} DESC) AS _govflow_rank FROM {source}) \
             WHERE _govflow_rank = 1 AND NOT {DELETED}",
            key = quote_ident(&table.key)
        )
    }
}

/// The SQL of `current.sql` for `manifest`, with absolute paths under `dir`.
pub fn render(dir: &Path, manifest: &Manifest) -> String {
    let mut sql = String::new();
    let epoch = manifest.epoch.map_or("none".to_string(), |e| e.to_string());
    let _ = writeln!(
        sql,
        "-- govflow local warehouse: snapshot of epoch {epoch}, published {}.\n\
         -- Rewritten atomically at every commit; the files it names are immutable.",
        manifest.published_at
    );
    for (name, table) in &manifest.tables {
        let _ = writeln!(
            sql,
            "CREATE OR REPLACE VIEW {} AS {};",
            quote_ident(name),
            table_query(dir, table)
        );
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::local::manifest::FileEntry;

    #[test]
    fn one_view_per_table() {
        let mut m = Manifest {
            epoch: Some(7),
            published_at: "now".into(),
            ..Manifest::default()
        };
        m.tables.insert(
            "dim_customer".into(),
            TableFiles {
                key: "customer_id".into(),
                files: vec![FileEntry {
                    path: "tables/dim_customer/a.parquet".into(),
                    rows: 1,
                    base: true,
                }],
            },
        );
        m.tables.insert(
            "fct_order".into(),
            TableFiles {
                key: "order_id".into(),
                files: vec![
                    FileEntry {
                        path: "tables/fct_order/a.parquet".into(),
                        rows: 1,
                        base: true,
                    },
                    FileEntry {
                        path: "tables/fct_order/o'b.parquet".into(),
                        rows: 1,
                        base: false,
                    },
                ],
            },
        );
        let sql = render(Path::new("/w"), &m);
        assert!(sql.contains("CREATE OR REPLACE VIEW \"dim_customer\" AS SELECT * EXCLUDE (_deleted) FROM read_parquet(['/w/tables/dim_customer/a.parquet']"));
        assert!(sql.contains("PARTITION BY \"order_id\""));
        assert!(sql.contains("'/w/tables/fct_order/o''b.parquet'"));
    }
}
