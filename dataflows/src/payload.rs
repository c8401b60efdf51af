//! `_payload`: a source record's whole JSON, kept beside its typed columns so
//! a field the source adds reaches the warehouse without a code change.
//!
//! The dataflow never holds the text: a record carries only [`Payload`], the
//! 64-bit hash of its text (so a change of any field, typed or not, is a
//! change of the row, and an unchanged re-read is still no change). The texts
//! of one epoch travel beside the upserts in [`Payloads`], keyed by hash, and
//! the encoder of the epoch's changes looks them up. A text is [`Bytes`]: a
//! record served whole is a slice of its page's body, shared, not copied.
//! Reading a committed row back hashes its stored text, so a restart restores
//! the same [`Payload`].

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::catalog::{Cell, Codec, ColumnType, Value};

/// The hash of a record's JSON text; [`Payload::NONE`] when there is none
/// (rows made in code, fixtures, benchmarks).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Payload(pub u64);

impl Payload {
    /// No payload: the column is null.
    pub const NONE: Payload = Payload(0);

    /// The payload of `text` (xxHash64, stable across processes and
    /// releases; never [`Payload::NONE`]).
    pub fn of(text: &str) -> Payload {
        Payload::of_bytes(text.as_bytes())
    }

    /// The payload of a text given as its UTF-8 bytes.
    fn of_bytes(text: &[u8]) -> Payload {
        let mut hasher = twox_hash::XxHash64::with_seed(0);
        hasher.write(text);
        Payload(hasher.finish().max(1))
    }
}

/// The JSON texts of one epoch's records, by [`Payload`].
#[derive(Clone, Debug, Default)]
pub struct Payloads(HashMap<u64, Bytes, BuildHasherDefault<AlreadyHashed>>);

/// The map's hasher: a key is already a hash of its text, so it is its own
/// hash (SipHash over it again showed in the profile of a BigCommerce pull).
#[derive(Default)]
struct AlreadyHashed(u64);

impl Hasher for AlreadyHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (keys are u64); anything else is folded in.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl Payloads {
    /// Room for `n` texts.
    pub fn with_capacity(n: usize) -> Payloads {
        Payloads(HashMap::with_capacity_and_hasher(n, Default::default()))
    }

    /// Keeps `text` (JSON, so UTF-8) and returns its payload; an empty text
    /// is no payload.
    pub fn keep(&mut self, text: impl Into<Bytes>) -> Payload {
        let text = text.into();
        if text.is_empty() {
            return Payload::NONE;
        }
        let payload = Payload::of_bytes(&text);
        self.0.entry(payload.0).or_insert(text);
        payload
    }

    /// The text of `payload`, if it was kept (and is UTF-8).
    pub fn get(&self, payload: Payload) -> Option<&str> {
        self.0
            .get(&payload.0)
            .and_then(|text| std::str::from_utf8(text).ok())
    }

    /// Adds another set of texts.
    pub fn extend(&mut self, other: Payloads) {
        if self.0.is_empty() {
            self.0 = other.0;
        } else {
            self.0.extend(other.0);
        }
    }

    /// How many texts are kept.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The codec of a [`Payload`] field: a nullable `json` column whose cell is
/// [`Cell::Payload`] (the encoder resolves it through the epoch's
/// [`Payloads`]); a stored text decodes to its hash.
pub struct PayloadCodec;

impl Codec for PayloadCodec {
    type Rust = Payload;
    const TYPE: ColumnType = ColumnType::Json;
    const NULLABLE: bool = true;
    fn cell(value: &Payload) -> Cell<'_> {
        if *value == Payload::NONE {
            Cell::Null
        } else {
            Cell::Payload(value.0)
        }
    }
    fn from_value(value: Value) -> Result<Payload, String> {
        match value {
            Value::Null => Ok(Payload::NONE),
            Value::Json(text) | Value::Text(text) => Ok(Payload::of(&text)),
            other => Err(format!("expected json, got {}", other.kind())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xxHash64 of `{}` with seed 0.
    const STABLE: u64 = 3_320_404_949_056_263_377;

    #[test]
    fn a_text_round_trips_through_its_hash() {
        let mut kept = Payloads::default();
        let p = kept.keep(r#"{"id":1,"x":"a"}"#.to_string());
        assert_ne!(p, Payload::NONE);
        assert_eq!(kept.get(p), Some(r#"{"id":1,"x":"a"}"#));
        assert_eq!(
            PayloadCodec::from_value(Value::Json(r#"{"id":1,"x":"a"}"#.into())),
            Ok(p)
        );
        assert_ne!(Payload::of(r#"{"id":1,"x":"b"}"#), p);
        assert_eq!(kept.keep(String::new()), Payload::NONE);
        assert_eq!(PayloadCodec::cell(&Payload::NONE), Cell::Null);
        assert_eq!(PayloadCodec::from_value(Value::Null), Ok(Payload::NONE));
    }

    #[test]
    fn the_hash_is_stable() {
        // Committed rows are hashed again at restart, maybe by a newer
        // release: the function must never change.
        assert_eq!(Payload::of("{}"), Payload(STABLE));
    }
}
