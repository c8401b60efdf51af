//! Sources: each turns upstream state into upserts of typed records.

pub mod bigcommerce;
pub mod postgres;
