//! `fct_quotation`: quotations (PostgreSQL, commerce database) with the
//! BigCommerce customer they were made for.
//!
//! - **Grain**: one row per quotation in `raw_pg_quotation`.
//! - **Key**: `quotation_id`.
//! - **Columns**: `quotation_id`, `customer_id` (the BigCommerce customer
//!   whose email matches; null when none does), `customer_email` (the match
//!   key: trimmed, lower-cased), `status` (as read), `is_accepted`, `total`,
//!   `currency_code`, `created_at`, `updated_at`.
//!
//! **Rules.** Quotations name their customer by email only. The match is on
//! [`email_key`] of both sides: trimmed and lower-cased, so `" Ada@X.com"`
//! matches a customer `ada@x.com`. BigCommerce emails are unique; should
//! several customers share a key anyway, the least customer id is taken. A
//! quotation whose email matches no customer (a prospect, a customer not read
//! yet) is kept with a null `customer_id`: not an error. An empty email is
//! kept too, with a null `customer_id`, and reported in `_errors` as
//! `empty_email`. The row follows its customer: a customer created, deleted
//! or changing email re-points the quotations of the emails involved.
//! `is_accepted`: `status` is `accepted` (case-insensitive, trimmed).

use dataflows_derive::Record;
use serde::{Deserialize, Serialize};

use crate::scalar::{Micros, Money};

/// A row of `fct_quotation`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Record)]
#[record(
    table = "fct_quotation",
    key = "quotation_id",
    grain = "one row per quotation",
    origin = "model",
    reads = "raw_pg_quotation, raw_bc_customer"
)]
pub struct FctQuotation {
    /// Quotation id.
    pub quotation_id: i64,
    /// The BigCommerce customer with that email; null when there is none.
    pub customer_id: Option<i64>,
    /// The email, trimmed and lower-cased (empty if the source's is).
    pub customer_email: String,
    /// Status, as read.
    pub status: String,
    /// Whether the status is `accepted`.
    pub is_accepted: bool,
    /// Quoted total.
    pub total: Money,
    /// ISO currency code.
    pub currency_code: String,
    /// When the quotation was created.
    pub created_at: Micros,
    /// When it was last updated upstream.
    pub updated_at: Micros,
}

/// The key emails are matched on: trimmed and lower-cased; `None` when empty.
pub fn email_key(email: &str) -> Option<String> {
    let email = email.trim();
    (!email.is_empty()).then(|| email.to_lowercase())
}

/// Whether a quotation status means accepted: `accepted`, any case, trimmed.
pub fn is_accepted(status: &str) -> bool {
    status.trim().eq_ignore_ascii_case("accepted")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(
            email_key("  Ada@Example.COM\t"),
            Some("ada@example.com".into())
        );
        assert_eq!(email_key("   "), None);
        assert_eq!(email_key("Ünïcode@X"), Some("ünïcode@x".into()));
        assert!(is_accepted("accepted") && is_accepted(" ACCEPTED "));
        assert!(!is_accepted("sent") && !is_accepted("not accepted"));
    }
}
