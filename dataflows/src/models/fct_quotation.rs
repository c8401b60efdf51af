//! The dataflow of `fct_quotation`; its contract:
//! [`crate::rows::fct_quotation`].
//!
//! **Dataflow.** Quotations are arranged by email key and joined with
//! [`Arrangements::customer_by_email`] (customers by email key, the least id
//! per key); the resulting `(quotation_id, customer_id)` pairs are arranged by
//! quotation and left-joined with the quotation arrangement. State: the
//! quotations' email keys and ids, one customer id per matched quotation, and
//! the ids of quotations without a customer.

use crate::arrangements::Arrangements;
use crate::ops::{Coll, left_join};
use crate::rows::fct_quotation::{FctQuotation, email_key, is_accepted};
use crate::rows::raw_pg_quotation::QuotationIn;

impl FctQuotation {
    /// The row of quotation `quotation_id`, matched to `customer_id` (if any).
    pub fn new(quotation_id: i64, quotation: &QuotationIn, customer_id: Option<i64>) -> Self {
        FctQuotation {
            quotation_id,
            customer_id,
            customer_email: email_key(&quotation.customer_email).unwrap_or_default(),
            status: quotation.status.clone(),
            is_accepted: is_accepted(&quotation.status),
            total: quotation.total,
            currency_code: quotation.currency_code.clone(),
            created_at: quotation.created_at,
            updated_at: quotation.updated_at,
        }
    }
}

/// The table's changes.
pub(crate) fn render<'s>(arr: &Arrangements<'s>) -> Coll<'s, FctQuotation> {
    let customer_of_quotation = arr
        .quotations
        .clone()
        .flat_map_ref(|id, q| email_key(&q.customer_email).map(|email| (email, *id)))
        .arrange_by_key_named("quotations_by_email")
        .join_core(
            arr.customer_by_email.clone(),
            |_, quotation_id, customer_id| Some((*quotation_id, *customer_id)),
        )
        .arrange_by_key_named("customer_of_quotation");
    left_join(
        arr.quotations.clone(),
        customer_of_quotation,
        |k, quotation, customer_id| Some(FctQuotation::new(*k, quotation, customer_id.copied())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{customer, quotation, updates};
    use crate::records::Upsert;
    use crate::rows::table::{Table, TableRow};
    use crate::scalar::Money;

    fn row(id: i64, customer_id: Option<i64>, email: &str, status: &str) -> TableRow {
        TableRow::FctQuotation(FctQuotation {
            quotation_id: id,
            customer_id,
            customer_email: email.into(),
            status: status.into(),
            is_accepted: is_accepted(status),
            total: Money(1_234_500),
            currency_code: "KRW".into(),
            created_at: 50,
            updated_at: 60,
        })
    }

    #[test]
    fn matches_customers_by_email_case_insensitively() {
        let q = |id, email: &str, status: &str| {
            Upsert::Quotation(id, Some(quotation(id, email, status)))
        };
        let c = |id, email: &str| Upsert::Customer(id, Some(customer(id, email)));
        let got = updates(
            Table::FctQuotation,
            vec![
                // Before any customer: kept, without a customer.
                vec![q(1, " Ada@Example.COM ", "sent"), q(2, "", "draft")],
                // The customer arrives, in another case.
                vec![c(7, "ada@example.com")],
                // A second customer with the same key: the least id keeps it.
                vec![c(3, "ADA@example.com")],
                // Customer 3 changes email: back to 7.
                vec![
                    c(3, "other@example.com"),
                    q(1, "ada@example.com", "accepted"),
                ],
                // Customer 7 is deleted: no customer any more.
                vec![Upsert::Customer(7, None)],
                vec![Upsert::Quotation(1, None)],
            ],
        );
        assert_eq!(
            got,
            vec![
                (row(1, None, "ada@example.com", "sent"), 0, 1),
                (row(2, None, "", "draft"), 0, 1),
                (row(1, None, "ada@example.com", "sent"), 1, -1),
                (row(1, Some(7), "ada@example.com", "sent"), 1, 1),
                (row(1, Some(3), "ada@example.com", "sent"), 2, 1),
                (row(1, Some(7), "ada@example.com", "sent"), 2, -1),
                (row(1, Some(3), "ada@example.com", "sent"), 3, -1),
                (row(1, Some(7), "ada@example.com", "accepted"), 3, 1),
                (row(1, None, "ada@example.com", "accepted"), 4, 1),
                (row(1, Some(7), "ada@example.com", "accepted"), 4, -1),
                (row(1, None, "ada@example.com", "accepted"), 5, -1),
            ]
        );
    }
}
