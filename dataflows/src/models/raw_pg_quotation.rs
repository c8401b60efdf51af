//! The dataflow of `raw_pg_quotation`; its contract:
//! [`crate::rows::raw_pg_quotation`].

use crate::ops::{Arr, Coll};
use crate::rows::raw_pg_quotation::QuotationIn;

/// The table's changes: the upsert arrangement's contents.
pub(crate) fn render<'s>(quotations: &Arr<'s, QuotationIn>) -> Coll<'s, QuotationIn> {
    quotations.clone().as_collection(|_, row| row.clone())
}

#[cfg(test)]
mod tests {
    use crate::fixtures::{quotation, updates};
    use crate::records::Upsert;
    use crate::rows::table::{Table, TableRow};

    fn row(email: &str) -> TableRow {
        TableRow::RawPgQuotation(quotation(1, email, "sent")).projected()
    }

    #[test]
    fn upsert_semantics() {
        let put = |email: &str| Upsert::Quotation(1, Some(quotation(1, email, "sent")));
        let got = updates(
            Table::RawPgQuotation,
            vec![
                vec![put("a@x")],
                vec![put("a@x")],                 // unchanged: nothing
                vec![put("A@x")],                 // stored as read, case included
                vec![Upsert::Quotation(1, None)], // delete
            ],
        );
        assert_eq!(
            got,
            vec![
                (row("a@x"), 0, 1),
                (row("A@x"), 2, 1),
                (row("a@x"), 2, -1),
                (row("A@x"), 3, -1),
            ]
        );
    }
}
