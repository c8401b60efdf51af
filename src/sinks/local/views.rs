//! `current.sql`: one `CREATE OR REPLACE VIEW` per table over the files of the
//! latest snapshot, so any DuckDB client can `.read current.sql`. The paths
//! are relative to the warehouse directory, so a copied or mounted warehouse
//! reads the same.

use std::fmt::Write;
use std::path::Path;

use super::manifest::{Manifest, TableFiles};
use crate::format::{DELETED, EPOCH};

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The query of one table's current rows in a snapshot, with absolute paths
/// under `dir`: a key's newest row (highest `_epoch`) wins, tombstones are
/// dropped, `_deleted` is left out. The body of the dbt sources of a pinned run.
pub fn table_query(dir: &Path, table: &TableFiles) -> String {
    query(Some(dir), table)
}

/// [`table_query`] with the files' paths as they are in the manifest
/// (`under` `None`: relative to the warehouse directory).
fn query(under: Option<&Path>, table: &TableFiles) -> String {
    let files: Vec<String> = table
        .files
        .iter()
        .map(|f| match under {
            Some(dir) => quote_literal(&dir.join(&f.path).to_string_lossy()),
            None => quote_literal(&f.path),
        })
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

/// The SQL of `current.sql` for `manifest`: file paths relative to the
/// warehouse directory, found through DuckDB's `file_search_path`, set to
/// `root` (where readers see the warehouse). DuckDB looks in its working
/// directory first, so a copy or a mount read from inside its directory reads
/// itself, whatever `root` names.
pub fn render(root: &Path, manifest: &Manifest) -> String {
    let mut sql = String::new();
    let epoch = manifest.epoch.map_or("none".to_string(), |e| e.to_string());
    let _ = writeln!(
        sql,
        "-- govflow local warehouse: snapshot of epoch {epoch}, published {}.\n\
         -- Rewritten atomically at every commit; the files it names are immutable.\n\
         -- Paths are relative to the warehouse directory: found from inside it, or under\n\
         -- file_search_path (`govflow sql --root DIR` prints these views for another mount point).",
        manifest.published_at
    );
    let _ = writeln!(
        sql,
        "SET file_search_path = {};",
        quote_literal(&root.to_string_lossy())
    );
    for (name, table) in &manifest.tables {
        let _ = writeln!(
            sql,
            "CREATE OR REPLACE VIEW {} AS {};",
            quote_ident(name),
            query(None, table)
        );
    }
    sql
}

/// The views of the latest snapshot of the warehouse at `dir`, for readers
/// that see it at `root` (`govflow sql`). `None` when nothing was committed.
pub fn render_latest(dir: &Path, root: &Path) -> std::io::Result<Option<String>> {
    let latest = super::manifest::list(dir)?.pop();
    Ok(latest.map(|(_, manifest)| render(root, &manifest)))
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
        assert!(sql.contains("SET file_search_path = '/w';"));
        assert!(sql.contains("CREATE OR REPLACE VIEW \"dim_customer\" AS SELECT * EXCLUDE (_deleted) FROM read_parquet(['tables/dim_customer/a.parquet']"));
        assert!(sql.contains("PARTITION BY \"order_id\""));
        assert!(sql.contains("'tables/fct_order/o''b.parquet'"));
        assert!(!sql.contains("'/w/tables"), "paths are relative");
        // dbt's pinned sources keep absolute paths.
        assert!(
            table_query(Path::new("/w"), &m.tables["fct_order"])
                .contains("'/w/tables/fct_order/a.parquet'")
        );
    }
}
