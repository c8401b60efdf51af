//! Sources: each turns upstream state into upserts of typed records and
//! changes of configured raw tables.
//!
//! A kind of source is a folder here with a `register` function that puts
//! the sources its configuration asks for into the run ([`Register`]); each
//! implements [`Source`], which the runtime's one poll loop drives, and talks
//! to the run through an [`Outlet`].

pub mod bigcommerce;
mod budget;
mod error;
mod outlet;
pub mod postgres;
mod source;

pub use budget::{CloseOnDrop, RowBudget};
pub use error::{SourceError, Transient};
pub use outlet::{FullRead, Msg, Outlet, ReadDone, SourceEvent};
pub use source::{Register, Seen, Source, micros_text, raw_tables_of};
