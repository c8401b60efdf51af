//! The scalar value types of rows: timestamps are microseconds since the
//! Unix epoch, UTC ([`Micros`]); money is a fixed-point [`Money`] with four
//! decimals, the precision BigCommerce uses (PostgreSQL `numeric(18,4)`
//! columns map to it exactly); short texts are [`Text`].

use serde::{Deserialize, Serialize};

/// Microseconds since 1970-01-01T00:00:00Z.
pub type Micros = i64;

/// Text held in the large raw arrangements (order lines, orders,
/// customers): up to 24 bytes inline, with no allocation of its own, so that
/// copying a row (arrangement merges copy every value they keep) costs no
/// allocation for short codes, names, statuses and emails, and a row costs
/// no allocator block per string.
pub type Text = compact_str::CompactString;

/// A money amount in ten-thousandths of the currency unit (`"361.9500"` = 3_619_500).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Money(pub i64);

impl Money {
    /// Decimal places of the fixed-point representation.
    pub const SCALE: u32 = 4;
    const FACTOR: i64 = 10_000;

    /// Parses a decimal string such as `"361.95"`, `"-0.5000"` or `"12"`.
    /// More than four decimals, exponents and overflow are rejected.
    pub fn parse(text: &str) -> Option<Money> {
        let text = text.trim();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        if fraction.len() > Self::SCALE as usize
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let mut frac: i64 = if fraction.is_empty() {
            0
        } else {
            fraction.parse().ok()?
        };
        for _ in fraction.len()..Self::SCALE as usize {
            frac *= 10;
        }
        let value = whole.checked_mul(Self::FACTOR)?.checked_add(frac)?;
        Some(Money(if negative { -value } else { value }))
    }

    /// Converts a JSON number (V3 money) to fixed point, rounding to four decimals.
    pub fn from_f64(value: f64) -> Option<Money> {
        let scaled = (value * Self::FACTOR as f64).round();
        (scaled.is_finite() && scaled.abs() < i64::MAX as f64).then_some(Money(scaled as i64))
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:04}", abs / 10_000, abs % 10_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_parses_bigcommerce_strings() {
        assert_eq!(Money::parse("361.9500"), Some(Money(3_619_500)));
        assert_eq!(Money::parse("0.5"), Some(Money(5_000)));
        assert_eq!(Money::parse("-12"), Some(Money(-120_000)));
        assert_eq!(Money::parse(".25"), Some(Money(2_500)));
        assert_eq!(Money::parse("1.23456"), None);
        assert_eq!(Money::parse("abc"), None);
        assert_eq!(Money::parse(""), None);
        assert_eq!(Money::parse("1e3"), None);
        assert_eq!(Money::parse("99999999999999999999"), None);
        assert_eq!(Money(3_619_500).to_string(), "361.9500");
        assert_eq!(Money(-5).to_string(), "-0.0005");
    }

    #[test]
    fn money_from_json_numbers() {
        assert_eq!(Money::from_f64(24.99), Some(Money(249_900)));
        assert_eq!(Money::from_f64(0.1 + 0.2), Some(Money(3_000)));
        assert_eq!(Money::from_f64(f64::NAN), None);
    }
}
