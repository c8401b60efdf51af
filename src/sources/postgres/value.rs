//! Typed values decoded from PostgreSQL's binary wire format.
//!
//! Every column is fetched in binary and decoded here by a [`Decoder`] chosen
//! once per column from its type, so a row costs one pass over its bytes. Types
//! without a decoder are read through a `::text` cast (the plan in
//! [`super::read`] does that) and arrive as [`PgValue::Text`].
//!
//! Text is taken as raw bytes and validated as UTF-8 here, not by the driver,
//! so a database in `SQL_ASCII` holding invalid bytes yields a dead letter for
//! that row instead of failing the whole page.

use std::fmt;

use serde::{Deserialize, Serialize};
use tokio_postgres::types::{FromSql, Type};

/// Microseconds between 1970-01-01 and PostgreSQL's epoch 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days between 1970-01-01 and 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
/// Largest precision kept exactly (Arrow's and BigQuery's `Decimal128`).
pub const MAX_DECIMAL_DIGITS: u32 = 38;

/// One value of a row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum PgValue {
    /// SQL `NULL`.
    Null,
    /// `boolean`.
    Bool(bool),
    /// `smallint`, `integer`, `bigint`, `oid`.
    Int(i64),
    /// `real`, `double precision`.
    Float(f64),
    /// `numeric`, exactly, up to 38 digits.
    Numeric(Decimal),
    /// `text`, `varchar`, `char(n)`, `name`, `uuid`, and every type read through `::text`.
    Text(String),
    /// `bytea`.
    Bytes(Vec<u8>),
    /// `timestamptz` (and `timestamp`, taken as UTC): microseconds since 1970-01-01 UTC.
    Timestamp(i64),
    /// `date`: days since 1970-01-01.
    Date(i32),
    /// `json`, `jsonb`: the document's text.
    Json(String),
}

impl PgValue {
    /// Whether the value is SQL `NULL`.
    pub fn is_null(&self) -> bool {
        matches!(self, PgValue::Null)
    }
}

impl fmt::Display for PgValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgValue::Null => f.write_str("NULL"),
            PgValue::Bool(b) => write!(f, "{b}"),
            PgValue::Int(i) => write!(f, "{i}"),
            PgValue::Float(x) => write!(f, "{x}"),
            PgValue::Numeric(d) => write!(f, "{d}"),
            PgValue::Text(s) | PgValue::Json(s) => f.write_str(s),
            PgValue::Bytes(b) => {
                f.write_str("\\x")?;
                b.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
            }
            PgValue::Timestamp(micros) => match chrono::DateTime::from_timestamp_micros(*micros) {
                Some(t) => write!(f, "{}", t.format("%Y-%m-%d %H:%M:%S%.6fZ")),
                None => write!(f, "{micros}us"),
            },
            PgValue::Date(days) => {
                match chrono::DateTime::from_timestamp(i64::from(*days) * 86_400, 0) {
                    Some(t) => write!(f, "{}", t.format("%Y-%m-%d")),
                    None => write!(f, "{days}d"),
                }
            }
        }
    }
}

/// An exact decimal: `mantissa × 10^-scale`, at most 38 significant digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Decimal {
    /// The digits as an integer.
    pub mantissa: i128,
    /// Digits after the decimal point.
    pub scale: u16,
}

impl Decimal {
    /// The same value with `scale` digits after the point, if it fits in 38 digits.
    pub fn rescale(self, scale: u16) -> Option<Decimal> {
        if scale < self.scale {
            return None;
        }
        let factor = 10i128.checked_pow(u32::from(scale - self.scale))?;
        let mantissa = self.mantissa.checked_mul(factor)?;
        (mantissa.unsigned_abs() < 10u128.pow(MAX_DECIMAL_DIGITS))
            .then_some(Decimal { mantissa, scale })
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.mantissa.unsigned_abs().to_string();
        let sign = if self.mantissa < 0 { "-" } else { "" };
        let scale = usize::from(self.scale);
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        write!(f, "{sign}{int}.{frac}")
    }
}

/// How one column's bytes are decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoder {
    /// `boolean`.
    Bool,
    /// `smallint`.
    Int2,
    /// `integer`.
    Int4,
    /// `bigint`.
    Int8,
    /// `oid`.
    Oid,
    /// `real`.
    Float4,
    /// `double precision`.
    Float8,
    /// `numeric`.
    Numeric,
    /// Text-like types (and anything read through `::text`).
    Text,
    /// `json`.
    Json,
    /// `jsonb` (a version byte, then the text).
    Jsonb,
    /// `timestamp` and `timestamptz`.
    Timestamp,
    /// `date`.
    Date,
    /// `uuid`, shown as text.
    Uuid,
    /// `bytea`.
    Bytea,
}

impl Decoder {
    /// The decoder of a type, or `None` when the column must be read as `::text`.
    pub fn for_type(ty: &Type) -> Option<Decoder> {
        Some(match *ty {
            Type::BOOL => Decoder::Bool,
            Type::INT2 => Decoder::Int2,
            Type::INT4 => Decoder::Int4,
            Type::INT8 => Decoder::Int8,
            Type::OID => Decoder::Oid,
            Type::FLOAT4 => Decoder::Float4,
            Type::FLOAT8 => Decoder::Float8,
            Type::NUMERIC => Decoder::Numeric,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => Decoder::Text,
            Type::JSON => Decoder::Json,
            Type::JSONB => Decoder::Jsonb,
            Type::TIMESTAMP | Type::TIMESTAMPTZ => Decoder::Timestamp,
            Type::DATE => Decoder::Date,
            Type::UUID => Decoder::Uuid,
            Type::BYTEA => Decoder::Bytea,
            _ => return None,
        })
    }

    /// Decodes one value; `None` is SQL `NULL`. The error says why, without the value.
    pub fn decode(self, raw: Option<&[u8]>) -> Result<PgValue, String> {
        let Some(raw) = raw else {
            return Ok(PgValue::Null);
        };
        Ok(match self {
            Decoder::Bool => PgValue::Bool(fixed::<1>(raw, "boolean")?[0] != 0),
            Decoder::Int2 => PgValue::Int(i16::from_be_bytes(fixed(raw, "smallint")?).into()),
            Decoder::Int4 => PgValue::Int(i32::from_be_bytes(fixed(raw, "integer")?).into()),
            Decoder::Int8 => PgValue::Int(i64::from_be_bytes(fixed(raw, "bigint")?)),
            Decoder::Oid => PgValue::Int(u32::from_be_bytes(fixed(raw, "oid")?).into()),
            Decoder::Float4 => PgValue::Float(f32::from_be_bytes(fixed(raw, "real")?).into()),
            Decoder::Float8 => PgValue::Float(f64::from_be_bytes(fixed(raw, "double")?)),
            Decoder::Numeric => PgValue::Numeric(decode_numeric(raw)?),
            Decoder::Text => PgValue::Text(utf8(raw)?),
            Decoder::Json => PgValue::Json(utf8(raw)?),
            Decoder::Jsonb => match raw.split_first() {
                Some((1, text)) => PgValue::Json(utf8(text)?),
                _ => return Err("unsupported jsonb wire version".into()),
            },
            Decoder::Timestamp => PgValue::Timestamp(timestamp_micros(i64::from_be_bytes(fixed(
                raw,
                "timestamp",
            )?))?),
            Decoder::Date => {
                let days = i32::from_be_bytes(fixed(raw, "date")?);
                if days == i32::MAX || days == i32::MIN {
                    return Err("date is infinite".into());
                }
                PgValue::Date(days.checked_add(PG_EPOCH_DAYS).ok_or("date out of range")?)
            }
            Decoder::Uuid => {
                let b: [u8; 16] = fixed(raw, "uuid")?;
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                PgValue::Text(format!(
                    "{}-{}-{}-{}-{}",
                    &hex[0..8],
                    &hex[8..12],
                    &hex[12..16],
                    &hex[16..20],
                    &hex[20..32]
                ))
            }
            Decoder::Bytea => PgValue::Bytes(raw.to_vec()),
        })
    }
}

/// Converts PostgreSQL's `timestamp` wire value (µs since 2000-01-01) to µs since 1970.
pub fn timestamp_micros(pg: i64) -> Result<i64, String> {
    if pg == i64::MAX || pg == i64::MIN {
        return Err("timestamp is infinite".into());
    }
    pg.checked_add(PG_EPOCH_MICROS)
        .ok_or_else(|| "timestamp out of range".into())
}

/// The `timestamp` wire value of µs since 1970.
pub fn timestamp_to_pg(micros: i64) -> i64 {
    micros.saturating_sub(PG_EPOCH_MICROS)
}

fn fixed<const N: usize>(raw: &[u8], what: &str) -> Result<[u8; N], String> {
    raw.try_into()
        .map_err(|_| format!("{what} value has {} bytes, expected {N}", raw.len()))
}

fn utf8(raw: &[u8]) -> Result<String, String> {
    match std::str::from_utf8(raw) {
        Ok(s) => Ok(s.to_owned()),
        Err(e) => Err(format!(
            "invalid UTF-8 at byte {} of {}",
            e.valid_up_to(),
            raw.len()
        )),
    }
}

/// Decodes `numeric`'s binary form: digit count, weight (in base-10000 digits),
/// sign, display scale, then the base-10000 digits.
pub fn decode_numeric(raw: &[u8]) -> Result<Decimal, String> {
    let word = |i: usize| -> Result<u16, String> {
        raw.get(i * 2..i * 2 + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated numeric".to_string())
    };
    let ndigits = usize::from(word(0)?);
    let weight = i64::from(word(1)? as i16);
    let sign = word(2)?;
    let dscale = word(3)?;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Err("numeric is NaN".into()),
        0xD000 | 0xF000 => return Err("numeric is infinite".into()),
        other => return Err(format!("unknown numeric sign {other:#x}")),
    }
    if raw.len() != 8 + ndigits * 2 {
        return Err("numeric length does not match its digit count".into());
    }
    let overflow = || format!("numeric overflow: more than {MAX_DECIMAL_DIGITS} digits");
    if u32::from(dscale) > MAX_DECIMAL_DIGITS {
        return Err(overflow());
    }
    let mut acc: i128 = 0;
    for i in 0..ndigits {
        let d = word(4 + i)?;
        if d >= 10_000 {
            return Err("numeric digit out of range".into());
        }
        acc = acc
            .checked_mul(10_000)
            .and_then(|a| a.checked_add(i128::from(d)))
            .ok_or_else(overflow)?;
    }
    // value = acc × 10000^(weight - ndigits + 1); mantissa = value × 10^dscale.
    let exp10 = 4 * (weight - ndigits as i64 + 1) + i64::from(dscale);
    let mantissa = if ndigits == 0 {
        0
    } else if exp10 >= 0 {
        let factor = u32::try_from(exp10)
            .ok()
            .and_then(|e| 10i128.checked_pow(e))
            .ok_or_else(overflow)?;
        acc.checked_mul(factor).ok_or_else(overflow)?
    } else {
        // Digits below the display scale are zeros: divide them away.
        let divisor = u32::try_from(-exp10)
            .ok()
            .and_then(|e| 10i128.checked_pow(e));
        match divisor {
            Some(d) => acc / d,
            None => 0,
        }
    };
    if mantissa.unsigned_abs() >= 10u128.pow(MAX_DECIMAL_DIGITS) {
        return Err(overflow());
    }
    let mantissa = if sign == 0x4000 { -mantissa } else { mantissa };
    Ok(Decimal {
        mantissa,
        scale: dscale,
    })
}

/// A column's raw binary bytes, for any type (bounds are sent back as received).
pub struct RawBytes<'a>(pub &'a [u8]);

impl<'a> FromSql<'a> for RawBytes<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawBytes(raw))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut v = Vec::new();
        for w in [ndigits, weight as u16, sign, dscale] {
            v.extend_from_slice(&w.to_be_bytes());
        }
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numeric_decodes_exactly() {
        // 12345.678 = [1, 2345, 6780] weight 1, dscale 3
        let d = decode_numeric(&numeric(3, 1, 0, 3, &[1, 2345, 6780])).unwrap();
        assert_eq!(d.to_string(), "12345.678");
        // -0.0005 = [5] weight -1, dscale 4
        let d = decode_numeric(&numeric(1, -1, 0x4000, 4, &[5])).unwrap();
        assert_eq!(d.to_string(), "-0.0005");
        // 1e8 = [1] weight 2, dscale 0
        let d = decode_numeric(&numeric(1, 2, 0, 0, &[1])).unwrap();
        assert_eq!(d.to_string(), "100000000");
        // 0.00 = no digits, dscale 2
        assert_eq!(
            decode_numeric(&numeric(0, 0, 0, 2, &[]))
                .unwrap()
                .to_string(),
            "0.00"
        );
    }

    #[test]
    fn numeric_overflow_nan_and_garbage_are_errors() {
        // 10^40 = [1] weight 10
        let e = decode_numeric(&numeric(1, 10, 0, 0, &[1])).unwrap_err();
        assert!(e.contains("overflow"), "{e}");
        assert!(
            decode_numeric(&numeric(0, 0, 0xC000, 0, &[]))
                .unwrap_err()
                .contains("NaN")
        );
        assert!(decode_numeric(&[0, 1]).is_err());
        assert!(decode_numeric(&numeric(2, 0, 0, 0, &[1])).is_err());
    }

    #[test]
    fn text_is_validated_as_utf8() {
        assert_eq!(
            Decoder::Text.decode(Some("héllo".as_bytes())).unwrap(),
            PgValue::Text("héllo".into())
        );
        let e = Decoder::Text.decode(Some(b"ab\xffcd")).unwrap_err();
        assert!(e.contains("invalid UTF-8 at byte 2"), "{e}");
        assert_eq!(Decoder::Text.decode(None).unwrap(), PgValue::Null);
    }

    #[test]
    fn timestamps_and_dates_use_the_unix_epoch() {
        let v = Decoder::Timestamp
            .decode(Some(&0i64.to_be_bytes()))
            .unwrap();
        assert_eq!(v, PgValue::Timestamp(PG_EPOCH_MICROS));
        assert_eq!(v.to_string(), "2000-01-01 00:00:00.000000Z");
        assert!(
            Decoder::Timestamp
                .decode(Some(&i64::MAX.to_be_bytes()))
                .is_err()
        );
        assert_eq!(
            Decoder::Date
                .decode(Some(&0i32.to_be_bytes()))
                .unwrap()
                .to_string(),
            "2000-01-01"
        );
        assert_eq!(timestamp_to_pg(PG_EPOCH_MICROS), 0);
    }

    #[test]
    fn fixed_width_types_check_their_length() {
        assert!(Decoder::Int8.decode(Some(&[0, 1])).is_err());
        assert_eq!(
            Decoder::Int2.decode(Some(&(-2i16).to_be_bytes())).unwrap(),
            PgValue::Int(-2)
        );
        assert_eq!(
            Decoder::Jsonb.decode(Some(b"\x01{\"a\":1}")).unwrap(),
            PgValue::Json("{\"a\":1}".into())
        );
        let uuid = Decoder::Uuid.decode(Some(&[0xab; 16])).unwrap();
        assert_eq!(uuid.to_string(), "abababab-abab-abab-abab-abababababab");
    }

    #[test]
    fn decimal_rescale_and_display() {
        let d = Decimal {
            mantissa: -5,
            scale: 1,
        };
        assert_eq!(d.to_string(), "-0.5");
        assert_eq!(d.rescale(3).unwrap().mantissa, -500);
        assert!(d.rescale(0).is_none());
        assert!(d.rescale(40).is_none());
    }
}
