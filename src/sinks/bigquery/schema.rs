//! govflow's Arrow schemas as BigQuery tables: column types, the layout of
//! each table (day partitions and clustering of facts) and schema evolution.
//!
//! | Arrow | BigQuery |
//! |---|---|
//! | `Int64` | `INTEGER` |
//! | `Utf8` | `STRING` |
//! | `Boolean` | `BOOLEAN` |
//! | `Timestamp(µs, UTC)` | `TIMESTAMP` |
//! | `Decimal128(18, 4)` (money) | `NUMERIC` |
//! | `Decimal128(p, s)`, s ≤ 9 and p − s ≤ 29 | `NUMERIC` |
//! | any other `Decimal128(p, s)` | `BIGNUMERIC` |
//! | `Float64` | `FLOAT` |
//! | `Date32` | `DATE` |
//! | `Binary` | `BYTES` |
//!
//! Every column is `NULLABLE` in BigQuery except the key (`REQUIRED`), so a
//! column govflow adds later can always be added to an existing table.

use arrow_schema::{DataType, TimeUnit};
use gcp_bigquery_client::model::clustering::Clustering;
use gcp_bigquery_client::model::field_type::FieldType;
use gcp_bigquery_client::model::table::Table;
use gcp_bigquery_client::model::table_field_schema::TableFieldSchema;
use gcp_bigquery_client::model::table_schema::TableSchema;
use gcp_bigquery_client::model::time_partitioning::TimePartitioning;

use super::error::BigQueryError;
use crate::format::{DELETED, TableSpec};

/// How a target table is laid out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The TIMESTAMP column of the day partitions, for facts that have one.
    pub partition_by_day: Option<&'static str>,
    /// Clustering columns: a fact's main foreign key, else the key.
    pub cluster_by: Vec<String>,
}

/// The layout of `spec`'s table: facts are partitioned by the day they
/// happened and clustered by their main foreign key; other tables are
/// clustered by their key (which the MERGE joins on).
pub fn layout(spec: &TableSpec) -> Layout {
    let (partition, cluster): (Option<&'static str>, Option<&'static str>) =
        match spec.name.as_str() {
            "fct_order" => (Some("ordered_at"), Some("customer_id")),
            "fct_order_item" => (Some("ordered_at"), Some("order_id")),
            "fct_point_transaction" => (Some("created_at"), Some("customer_id")),
            "fct_quotation" => (Some("created_at"), Some("customer_id")),
            "fct_onsale_product_inventory" => (None, Some("product_id")),
            _ => (None, None),
        };
    let has = |c: &str| spec.schema.fields().iter().any(|f| f.name() == c);
    Layout {
        partition_by_day: partition.filter(|c| has(c)),
        cluster_by: vec![cluster.filter(|c| has(c)).unwrap_or(&spec.key).to_string()],
    }
}

/// The BigQuery type of an Arrow type, or an error naming the column.
pub fn bigquery_type(table: &str, column: &str, t: &DataType) -> Result<FieldType, BigQueryError> {
    Ok(match t {
        DataType::Int64 => FieldType::Integer,
        DataType::Utf8 => FieldType::String,
        DataType::Boolean => FieldType::Boolean,
        DataType::Timestamp(TimeUnit::Microsecond, _) => FieldType::Timestamp,
        DataType::Decimal128(p, s) if *s >= 0 && *s <= 9 && (*p as i16 - *s as i16) <= 29 => {
            FieldType::Numeric
        }
        DataType::Decimal128(_, s) if *s >= 0 => FieldType::Bignumeric,
        DataType::Float64 => FieldType::Float,
        DataType::Date32 => FieldType::Date,
        DataType::Binary => FieldType::Bytes,
        other => {
            return Err(BigQueryError::Schema {
                table: table.to_string(),
                detail: format!("column {column}: Arrow type {other} has no BigQuery mapping"),
            });
        }
    })
}

/// A type's name, legacy and standard spellings alike (`INT64` is `INTEGER`).
pub fn type_name(t: &FieldType) -> &'static str {
    match t {
        FieldType::String => "STRING",
        FieldType::Bytes => "BYTES",
        FieldType::Integer | FieldType::Int64 => "INTEGER",
        FieldType::Float | FieldType::Float64 => "FLOAT",
        FieldType::Numeric => "NUMERIC",
        FieldType::Bignumeric => "BIGNUMERIC",
        FieldType::Boolean | FieldType::Bool => "BOOLEAN",
        FieldType::Timestamp => "TIMESTAMP",
        FieldType::Date => "DATE",
        FieldType::Time => "TIME",
        FieldType::Datetime => "DATETIME",
        FieldType::Record | FieldType::Struct => "RECORD",
        FieldType::Geography => "GEOGRAPHY",
        FieldType::Json => "JSON",
        FieldType::Interval => "INTERVAL",
    }
}

/// A column of `name`, `type` and `mode`.
fn field(name: &str, t: FieldType, mode: &str) -> TableFieldSchema {
    let mut field = TableFieldSchema::new(name, t);
    field.mode = Some(mode.to_string());
    field
}

/// The target table's fields (`schema.fields` of a table resource).
pub fn target_fields(spec: &TableSpec) -> Result<Vec<TableFieldSchema>, BigQueryError> {
    spec.schema
        .fields()
        .iter()
        .map(|f| {
            let mode = if f.name() == &spec.key {
                "REQUIRED"
            } else {
                "NULLABLE"
            };
            let t = bigquery_type(&spec.name, f.name(), f.data_type())?;
            Ok(field(f.name(), t, mode))
        })
        .collect()
}

/// The staging table's fields: the target's, all nullable, then `_deleted`.
pub fn staging_fields(spec: &TableSpec) -> Result<Vec<TableFieldSchema>, BigQueryError> {
    let mut fields: Vec<TableFieldSchema> = spec
        .schema
        .fields()
        .iter()
        .map(|f| {
            let t = bigquery_type(&spec.name, f.name(), f.data_type())?;
            Ok(field(f.name(), t, "NULLABLE"))
        })
        .collect::<Result<_, BigQueryError>>()?;
    fields.push(field(DELETED, FieldType::Boolean, "NULLABLE"));
    Ok(fields)
}

/// The resource that creates `spec`'s target table.
pub fn target_resource(
    project: &str,
    dataset: &str,
    spec: &TableSpec,
) -> Result<Table, BigQueryError> {
    let layout = layout(spec);
    let mut resource = Table::new(
        project,
        dataset,
        &spec.name,
        TableSchema::new(target_fields(spec)?),
    );
    resource.description = Some(format!(
        "govflow table {}, key {}; merged per epoch by govflow",
        spec.name, spec.key
    ));
    resource.clustering = Some(Clustering {
        fields: Some(layout.cluster_by),
    });
    if let Some(column) = layout.partition_by_day {
        resource.time_partitioning = Some(TimePartitioning::per_day().field(column));
    }
    Ok(resource)
}

/// What an existing table needs to take govflow's rows.
#[derive(Debug, Default)]
pub struct Evolution {
    /// Columns govflow writes that the table lacks: added as NULLABLE.
    pub added: Vec<String>,
    /// The full field list to patch the table with, when columns are added.
    pub patched_fields: Option<Vec<TableFieldSchema>>,
    /// NULLABLE columns of the table govflow no longer writes (left alone).
    pub unused: Vec<String>,
    /// Columns whose type widens without loss (`INTEGER` → `NUMERIC` or
    /// `BIGNUMERIC`, `NUMERIC` → `BIGNUMERIC`): (column, new type), changed
    /// with `ALTER COLUMN … SET DATA TYPE`.
    pub widened: Vec<(String, String)>,
}

impl Evolution {
    /// Whether the table takes govflow's rows as it is.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.patched_fields.is_none()
            && self.unused.is_empty()
            && self.widened.is_empty()
    }
}

/// Whether BigQuery changes a column of type `have` to `want` in place
/// without losing a value (its `SET DATA TYPE` coercions).
fn widens(have: &str, want: &str) -> bool {
    matches!(
        (have, want),
        ("INTEGER", "NUMERIC") | ("INTEGER", "BIGNUMERIC") | ("NUMERIC", "BIGNUMERIC")
    )
}

/// Compares the existing table's `fields` with govflow's: new columns are
/// added (as NULLABLE, keeping every existing column); a column of another
/// type, or a REQUIRED column govflow does not write, is an error naming it
/// (nothing is changed, nothing lost).
pub fn evolve(spec: &TableSpec, existing: &[TableFieldSchema]) -> Result<Evolution, BigQueryError> {
    let err = |detail: String| BigQueryError::Schema {
        table: spec.name.clone(),
        detail,
    };
    let wanted = target_fields(spec)?;
    let mut evolution = Evolution::default();
    let mut patched: Vec<TableFieldSchema> = existing.to_vec();
    for want in &wanted {
        let name = want.name.as_str();
        let want_type = type_name(&want.r#type);
        match existing.iter().find(|e| e.name == name) {
            Some(e) => {
                let have = type_name(&e.r#type);
                if have != want_type && widens(have, want_type) {
                    evolution
                        .widened
                        .push((name.to_string(), want_type.to_string()));
                    if let Some(p) = patched.iter_mut().find(|p| p.name == name) {
                        p.r#type = want.r#type.clone();
                    }
                } else if have != want_type {
                    return Err(err(format!(
                        "column {name} is {have} in BigQuery but govflow writes {want_type}: \
                         an incompatible change; migrate the table (or drop it to have it rebuilt)"
                    )));
                }
                if e.mode.as_deref() == Some("REPEATED") {
                    return Err(err(format!("column {name} is REPEATED in BigQuery")));
                }
            }
            None => {
                evolution.added.push(name.to_string());
                let mut added = want.clone();
                added.mode = Some("NULLABLE".into());
                patched.push(added);
            }
        }
    }
    for e in existing {
        if wanted.iter().any(|w| w.name == e.name) {
            continue;
        }
        if e.mode.as_deref() == Some("REQUIRED") {
            return Err(err(format!(
                "column {} is REQUIRED in BigQuery but govflow does not write it",
                e.name
            )));
        }
        evolution.unused.push(e.name.clone());
    }
    if !evolution.added.is_empty() {
        evolution.patched_fields = Some(patched);
    }
    Ok(evolution)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::table_spec;
    use dataflows::Table;

    #[test]
    fn facts_are_partitioned_by_day_and_clustered_by_their_foreign_key() {
        let l = layout(&table_spec(Table::FctOrder));
        assert_eq!(l.partition_by_day, Some("ordered_at"));
        assert_eq!(l.cluster_by, vec!["customer_id".to_string()]);
        let l = layout(&table_spec(Table::FctOrderItem));
        assert_eq!(l.cluster_by, vec!["order_id".to_string()]);
        let l = layout(&table_spec(Table::DimCustomer));
        assert_eq!(l.partition_by_day, None);
        assert_eq!(l.cluster_by, vec!["customer_id".to_string()]);
        // Every table maps to BigQuery types.
        for t in Table::ALL {
            let spec = table_spec(t);
            target_resource("p", "d", &spec).unwrap();
            staging_fields(&spec).unwrap();
        }
    }

    #[test]
    fn a_new_column_is_added_and_a_type_change_is_refused() {
        let spec = table_spec(Table::DimSku);
        let mut existing = target_fields(&spec).unwrap();
        assert!(evolve(&spec, &existing).unwrap().is_empty());
        // The table lacks a column govflow writes: it is added, nullable.
        let removed = existing.remove(2);
        let e = evolve(&spec, &existing).unwrap();
        assert_eq!(e.added, vec![removed.name.clone()]);
        let patched = e.patched_fields.unwrap();
        assert_eq!(patched.len(), existing.len() + 1);
        assert_eq!(patched.last().unwrap().mode.as_deref(), Some("NULLABLE"));
        // A column BigQuery has that govflow does not write: kept if nullable.
        existing.insert(2, removed);
        existing.push(field("legacy", FieldType::String, "NULLABLE"));
        assert_eq!(
            evolve(&spec, &existing).unwrap().unused,
            vec!["legacy".to_string()]
        );
        existing.pop();
        // A type change is an error naming the table and column.
        existing[1].r#type = FieldType::String;
        let msg = evolve(&spec, &existing).unwrap_err().to_string();
        assert!(
            msg.contains("table dim_sku") && msg.contains("incompatible"),
            "{msg}"
        );
    }
}
