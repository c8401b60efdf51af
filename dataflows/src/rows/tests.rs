use crate::catalog::{Catalogue, ColumnType, Record, Value};
use crate::fixtures::customer;
use crate::rows::raw_bc_customer::RawBcCustomer;
use crate::rows::table::{Table, TableRow};

#[test]
fn builtin_tables_are_declared_once_by_their_row_types() {
    let catalogue = Catalogue::builtin();
    assert_eq!(catalogue.tables().len(), Table::ALL.len());
    for (def, table) in catalogue.tables().iter().zip(Table::ALL) {
        assert_eq!(def.name, table.name());
        assert_eq!(def.is_raw(), table.is_raw());
        assert_eq!(def.key_column, table.key_column());
        assert!(
            !def.grain.is_empty() && !def.columns.is_empty(),
            "{}",
            def.name
        );
        for column in &def.columns {
            assert!(
                !column.doc.is_empty(),
                "{}.{} has no doc",
                def.name,
                column.name
            );
        }
        for input in &def.reads {
            assert!(catalogue.get(input).is_some(), "{} reads {input}", def.name);
        }
        assert_eq!(def.is_raw(), def.reads.is_empty(), "{}", def.name);
    }
    assert_eq!(catalogue.raw_tables_of("bigcommerce").count(), 7);
    assert_eq!(catalogue.raw_tables_of("postgres").count(), 2);
}

#[test]
fn columns_follow_the_fields() {
    let def = RawBcCustomer::table_def();
    let columns: Vec<(&str, ColumnType, bool)> = def
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.ty, c.nullable))
        .collect();
    assert_eq!(columns[0], ("id", ColumnType::Int64, false));
    assert_eq!(columns[1], ("email", ColumnType::Text, false));
    assert_eq!(columns[7], ("created_at", ColumnType::Timestamp, false));
    let sku = Table::DimProduct.def();
    let brand = sku.column("brand_id").map(|c| (c.ty, c.nullable));
    assert_eq!(brand, Some((ColumnType::Int64, true)));
    let errors = Table::Errors.def();
    assert!(errors.synthetic_key);
    assert_eq!(errors.key_column, "error_id");
    assert_eq!(errors.key, ["table", "key", "reason"]);
}

#[test]
fn rows_round_trip_through_values() {
    let row = TableRow::RawBcCustomer(customer(4, "a"));
    let def = Table::RawBcCustomer.def();
    let values: Vec<Value> = (0..def.columns.len())
        .map(|i| row.cell(i).to_value())
        .collect();
    let back = TableRow::from_values(Table::RawBcCustomer, &mut values.into_iter());
    assert_eq!(back, Ok(row));
    let bad = TableRow::from_values(
        Table::RawBcCustomer,
        &mut vec![Value::Bool(true)].into_iter(),
    );
    assert_eq!(
        bad.map_err(|e| e.to_string()),
        Err("column id: expected int64, got bool".to_string())
    );
}
