//! The table catalogue: every table declared once, with its name, grain, key,
//! typed columns, what fills it and what it reads.
//!
//! A built-in table is declared by its row type (in [`crate::rows`]) with
//! `#[derive(Record)]` (see the `dataflows-derive` crate): the struct's fields
//! are the columns.
//! Everything else about tables is derived from the [`TableDef`]s of
//! [`Catalogue::builtin`]: the warehouse's Arrow/Parquet schemas and encoding,
//! BigQuery schemas, `current.sql`, the status page's lineage graph, the full
//! refresh's covered tables and the demo banner.
//!
//! Values cross the boundary between a row type and a format as [`Cell`]s
//! (borrowed, to encode) and [`Value`]s (owned, to decode), so a format is
//! written once per [`ColumnType`], not once per table.

mod codec;
mod value;

pub use codec::{Codec, Nullable, Plain, TextValue, Timestamp};
pub use value::{Cell, Value, ValueError};

/// The type of a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ColumnType {
    /// A 64-bit signed integer.
    Int64,
    /// A boolean.
    Bool,
    /// UTF-8 text.
    Text,
    /// Money: a decimal with 18 digits, 4 after the point, held as an `i64`
    /// in ten-thousandths.
    Money,
    /// A UTC timestamp, held as microseconds since the Unix epoch.
    Timestamp,
    /// A 64-bit float.
    Float64,
    /// An exact decimal of `precision` digits, `scale` of them after the
    /// point (at most 38 digits), held as an `i128` at that scale.
    Decimal {
        /// Total digits.
        precision: u8,
        /// Digits after the point.
        scale: i8,
    },
    /// A calendar date, held as days since 1970-01-01.
    Date,
    /// A JSON document, held as its text.
    Json,
    /// Bytes.
    Bytes,
}

impl ColumnType {
    /// The type's name in docs and `govflow validate` (`int64`, `money`, …).
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Int64 => "int64",
            ColumnType::Bool => "bool",
            ColumnType::Text => "text",
            ColumnType::Money => "money",
            ColumnType::Timestamp => "timestamp",
            ColumnType::Float64 => "float64",
            ColumnType::Decimal { .. } => "decimal",
            ColumnType::Date => "date",
            ColumnType::Json => "json",
            ColumnType::Bytes => "bytes",
        }
    }

    /// The type as docs and `govflow validate` show it (`decimal(12,2)`).
    pub fn describe(self) -> String {
        match self {
            ColumnType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
            other => other.name().to_string(),
        }
    }
}

/// A column of a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnDef {
    /// The column's name (`snake_case`).
    pub name: String,
    /// Its type.
    pub ty: ColumnType,
    /// Whether it may be null.
    pub nullable: bool,
    /// What it holds (the field's doc comment).
    pub doc: String,
}

/// What fills a table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// A raw table, filled by a source of this kind (`bigcommerce`, `postgres`).
    Source(String),
    /// A model of the dataflow, computed from the tables it reads.
    Model,
}

impl Origin {
    /// `model`, or a source kind.
    pub fn parse(text: &str) -> Origin {
        match text {
            "model" => Origin::Model,
            kind => Origin::Source(kind.to_string()),
        }
    }
}

/// A table of the catalogue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableDef {
    /// The table's name: a contract (docs/tables.md).
    pub name: String,
    /// What the table is (the row type's doc comment).
    pub doc: String,
    /// One line on what a row is.
    pub grain: String,
    /// The key column(s).
    pub key: Vec<String>,
    /// The warehouse's single key column: the key itself, or a synthetic
    /// text column holding the key's text when the key is composite.
    pub key_column: String,
    /// Whether [`key_column`](Self::key_column) is synthetic (not a column).
    pub synthetic_key: bool,
    /// What fills it.
    pub origin: Origin,
    /// The tables a model reads (empty for a raw table).
    pub reads: Vec<String>,
    /// The columns, in order (without the synthetic key or `_epoch`).
    pub columns: Vec<ColumnDef>,
}

/// The synthetic key column of configured tables whose key is not one
/// `int64` or `text` column: the key values as a JSON array.
pub const SYNTHETIC_KEY: &str = "_key";

impl TableDef {
    /// A raw table filled by a source of kind `source` (a configured table),
    /// keyed by `key`. The warehouse keeps the key in the key column itself
    /// when the key is one `int64` or `text` column, else in [`SYNTHETIC_KEY`].
    pub fn raw(name: &str, source: &str, key: Vec<String>, columns: Vec<ColumnDef>) -> TableDef {
        let single = match key.as_slice() {
            [single] => columns
                .iter()
                .find(|c| &c.name == single && matches!(c.ty, ColumnType::Int64 | ColumnType::Text))
                .map(|c| c.name.clone()),
            _ => None,
        };
        TableDef {
            name: name.to_string(),
            doc: String::new(),
            grain: String::new(),
            synthetic_key: single.is_none(),
            key_column: single.unwrap_or_else(|| SYNTHETIC_KEY.to_string()),
            key,
            origin: Origin::Source(source.to_string()),
            reads: Vec::new(),
            columns,
        }
    }

    /// Whether this is a raw table (the current state of a source table).
    pub fn is_raw(&self) -> bool {
        matches!(self.origin, Origin::Source(_))
    }

    /// The column of that name.
    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// A row type that declares a table (implemented by `#[derive(Record)]`).
pub trait Record: Sized {
    /// The table's name.
    const NAME: &'static str;
    /// The key column(s).
    const KEY: &'static [&'static str];
    /// The warehouse's key column (see [`TableDef::key_column`]).
    const KEY_COLUMN: &'static str;
    /// `model`, or the kind of source that fills the table.
    const ORIGIN: &'static str;
    /// The table's declaration.
    fn table_def() -> TableDef;
    /// The value of column `column` (an index into the columns).
    fn cell(&self, column: usize) -> Cell<'_>;
    /// The row of these values, one per column in order.
    fn from_values(values: &mut dyn Iterator<Item = Value>) -> Result<Self, ValueError>;
}

/// The tables of a pipeline, in a fixed order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalogue {
    tables: Vec<TableDef>,
}

impl Catalogue {
    /// The catalogue of these tables, in this order.
    pub fn new(tables: Vec<TableDef>) -> Catalogue {
        Catalogue { tables }
    }

    /// Every table, in order.
    pub fn tables(&self) -> &[TableDef] {
        &self.tables
    }

    /// The table of that name.
    pub fn get(&self, name: &str) -> Option<&TableDef> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// The raw tables filled by sources of `kind`.
    pub fn raw_tables_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a TableDef> + 'a {
        self.tables
            .iter()
            .filter(move |t| matches!(&t.origin, Origin::Source(k) if k == kind))
    }
}
