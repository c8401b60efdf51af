//! The dataflow that maintains each built-in table: one module per table,
//! named like the table's module in [`crate::rows`] (its contract: grain,
//! key, columns and rules, with the row type), holding how its rows are
//! computed from their inputs and the differential-dataflow operators that
//! keep them up to date as the inputs change.

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
