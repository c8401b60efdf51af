//! The built-in tables as markdown, for docs/tables.md: generated from the
//! catalogue, and checked against the file by a test so the docs stay true.

use std::fmt::Write as _;

use dataflows::catalog::{Catalogue, Origin};

/// Marks the start of the generated part of docs/tables.md.
pub const BEGIN: &str = "<!-- catalogue: generated from the code, checked by a test -->";
/// Marks its end.
pub const END: &str = "<!-- end of catalogue -->";

/// One section per built-in table: what it is, its grain, key, where it comes
/// from, and its columns with their types.
pub fn builtin_tables_markdown() -> String {
    let mut out = String::new();
    for def in Catalogue::builtin().tables() {
        let _ = writeln!(out, "### `{}`\n", def.name);
        let _ = writeln!(out, "{}\n", def.doc);
        let origin = match &def.origin {
            Origin::Source(kind) => format!("source `{kind}`"),
            Origin::Model => {
                let reads: Vec<String> = def.reads.iter().map(|r| format!("`{r}`")).collect();
                format!("model over {}", reads.join(", "))
            }
        };
        let key: Vec<String> = def.key.iter().map(|k| format!("`{k}`")).collect();
        let _ = writeln!(out, "- **Grain**: {}.", def.grain);
        let _ = write!(out, "- **Key**: {}", key.join(", "));
        if def.synthetic_key {
            let _ = write!(out, " (warehouse key column `{}`)", def.key_column);
        }
        let _ = writeln!(out, ".\n- **Filled by**: {origin}.\n");
        let _ = writeln!(out, "| column | type | null | what |\n|---|---|---|---|");
        for c in &def.columns {
            let null = if c.nullable { "yes" } else { "" };
            let _ = writeln!(
                out,
                "| `{}` | {} | {null} | {} |",
                c.name,
                c.ty.describe(),
                c.doc
            );
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With `GOVFLOW_UPDATE_DOCS=1` the test rewrites the section instead.
    #[test]
    fn docs_tables_md_lists_the_catalogue() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/tables.md");
        let text = std::fs::read_to_string(path).expect("docs/tables.md");
        let start = text.find(BEGIN).expect("begin marker") + BEGIN.len();
        let end = text.find(END).expect("end marker");
        let expected = builtin_tables_markdown();
        if std::env::var_os("GOVFLOW_UPDATE_DOCS").is_some() {
            let updated = format!("{}\n\n{}{}", &text[..start], expected, &text[end..]);
            std::fs::write(path, updated).expect("docs/tables.md written");
            return;
        }
        assert!(
            text[start..end].trim() == expected.trim(),
            "docs/tables.md is out of date (GOVFLOW_UPDATE_DOCS=1 cargo test --lib catalogue_doc rewrites it); it should read:\n{expected}"
        );
    }
}
