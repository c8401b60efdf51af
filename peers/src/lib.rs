//! Baseline engines for govflow's benchmarks: other incremental engines
//! computing the same models from the same [`dataflows::records::Upsert`]s,
//! so that a benchmark can print govflow next to them.
//!
//! Each engine sits behind a cargo feature of its own, off by default: without
//! features this crate is empty and normal workspace builds stay lean.
//!
//! - `dbsp`: [`DbspOrders`], Feldera's [dbsp](https://docs.rs/dbsp) maintaining
//!   `fct_order` and `dim_customer`.

#![warn(missing_docs)]

#[cfg(feature = "dbsp")]
mod dbsp_orders;

#[cfg(feature = "dbsp")]
pub use dbsp_orders::{DbspOrders, PeersError};
