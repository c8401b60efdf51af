//! The built-in tables' contracts: one module per table, each documenting
//! its grain, key, columns and rules, with its row type (whose
//! `#[derive(Record)]` declares the table to the [`crate::catalog`]) and the
//! pure rules on rows that compute its columns. [`crate::Table`] names the
//! tables and [`crate::TableRow`] holds a row of any of them.
//!
//! What maintains each table incrementally, the dataflow, is in the module
//! of the same name under [`crate::models`].

pub mod dim_customer;
pub mod dim_product;
pub mod dim_sku;
pub mod errors;
pub mod fct_onsale_product_inventory;
pub mod fct_order;
pub mod fct_order_item;
pub mod fct_point_transaction;
pub mod fct_quotation;
pub mod product_notification_event;
pub mod raw_bc_customer;
pub mod raw_bc_customer_metafield;
pub mod raw_bc_inventory;
pub mod raw_bc_order;
pub mod raw_bc_order_item;
pub mod raw_bc_product;
pub mod raw_bc_variant;
pub mod raw_pg_point_transaction;
pub mod raw_pg_quotation;
pub(crate) mod table;

#[cfg(test)]
mod tests;
