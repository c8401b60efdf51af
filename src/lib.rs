//! govflow: keeps an e-commerce data warehouse correct and fresh by streaming
//! BigCommerce and PostgreSQL changes through a differential dataflow.
//!
//! Layers, with dependencies pointing one way: [`config`] (pure parsing and
//! validation), [`sources`] (turn outside data into upserts), [`sinks`]
//! (publish committed epochs), [`notify`] (delivers restock notification
//! events from the outbox table) and [`transform`] (the dbt runner of the
//! marts). The BigCommerce simulator the demo and the tests run against is
//! the workspace crate `govflow-sim` (`sim/`): it imports nothing from here.

pub mod alerts;
pub mod checks;
pub mod config;
pub mod format;
pub mod fsutil;
pub mod notify;
pub mod raw;
pub mod runtime;
pub mod schedule;
pub mod settings;
pub mod sinks;
pub mod sources;
pub mod status;
pub mod transform;
