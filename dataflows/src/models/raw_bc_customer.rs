//! `raw_bc_customer`: the current state of BigCommerce customers, as read.
//!
//! - **Grain**: one row per customer currently known upstream.
//! - **Key**: `id` (the upsert key).
//! - **Columns**: `id`, `email`, `first_name`, `last_name`, `company`, `phone`,
//!   `customer_group_id`, `created_at`, `modified_at` (the source's
//!   `date_created` / `date_modified`, µs UTC).
//!
//! Built with upsert semantics: re-reading an unchanged customer changes
//! nothing; `Upsert::Customer(id, None)` removes it.

use dataflows_derive::Record;
use serde::{Deserialize, Serialize};

use crate::ops::{Arr, Coll};
use crate::payload::Payload;
use crate::records::{Micros, Text};

/// A row of `raw_bc_customer`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Record)]
#[record(
    table = "raw_bc_customer",
    key = "id",
    grain = "one row per customer currently known upstream",
    origin = "bigcommerce"
)]
pub struct RawBcCustomer {
    /// Customer id.
    pub id: i64,
    /// Email address.
    pub email: Text,
    /// Given name.
    pub first_name: Text,
    /// Family name.
    pub last_name: Text,
    /// Company, possibly empty.
    pub company: Text,
    /// Phone, possibly empty.
    pub phone: Text,
    /// Customer group (0: none).
    pub customer_group_id: i64,
    /// When the customer was created.
    pub created_at: Micros,
    /// When the customer was last modified upstream.
    pub modified_at: Micros,
    /// The record's JSON as BigCommerce returned it; embedded records and
    /// fields that change without `date_modified` are left out
    /// (docs/bigcommerce-source.md). Null when unknown.
    #[record(column = "_payload")]
    #[serde(rename = "_payload")]
    pub payload: Payload,
}

/// The table's changes: the upsert arrangement's contents.
pub(crate) fn render<'s>(customers: &Arr<'s, RawBcCustomer>) -> Coll<'s, RawBcCustomer> {
    customers.clone().as_collection(|_, row| row.clone())
}

#[cfg(test)]
mod tests {
    use crate::fixtures::{customer, updates};
    use crate::records::Upsert;
    use crate::table::{Table, TableRow};

    fn row(email: &str) -> TableRow {
        TableRow::RawBcCustomer(customer(1, email))
    }

    #[test]
    fn upsert_semantics() {
        let put = |email: &str| Upsert::Customer(1, Some(customer(1, email)));
        let got = updates(
            Table::RawBcCustomer,
            vec![
                vec![put("a")],
                vec![put("a")],                            // unchanged: nothing
                vec![put("b")],                            // update
                vec![Upsert::Customer(1, None)],           // delete
                vec![Upsert::Customer(1, None)],           // delete of a missing key: nothing
                vec![put("c"), put("d")],                  // last one in an epoch wins
                vec![Upsert::Customer(1, None), put("d")], // delete then re-insert: unchanged
            ],
        );
        assert_eq!(
            got,
            vec![
                (row("a"), 0, 1),
                (row("a"), 2, -1),
                (row("b"), 2, 1),
                (row("b"), 3, -1),
                (row("d"), 5, 1),
            ]
        );
    }
}
