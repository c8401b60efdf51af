//! The dataflow of `raw_bc_customer`; its contract:
//! [`crate::rows::raw_bc_customer`].

use crate::ops::{Arr, Coll};
use crate::rows::raw_bc_customer::CustomerIn;

/// The table's changes: the upsert arrangement's contents.
pub(crate) fn render<'s>(customers: &Arr<'s, CustomerIn>) -> Coll<'s, CustomerIn> {
    customers.clone().as_collection(|_, row| row.clone())
}

#[cfg(test)]
mod tests {
    use crate::fixtures::{customer, updates};
    use crate::records::Upsert;
    use crate::rows::table::{Table, TableRow};

    fn row(email: &str) -> TableRow {
        TableRow::RawBcCustomer(customer(1, email)).projected()
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
