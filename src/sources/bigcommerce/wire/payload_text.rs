//! One parse of a record's JSON for both its typed fields and its `_payload`.
//!
//! The payload is the text as served: a record without [`Record::LEFT_OUT`]
//! keys is copied whole. One with them is scanned once at its top level (keys
//! and raw values borrowed from the text, nothing allocated per field): the
//! typed record is read from those entries, and the payload is the kept
//! entries copied verbatim, in their order, joined by commas.

use std::collections::BTreeMap;

use serde::de::value::MapDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::Record;

/// A record and its `_payload` from the record's JSON text.
pub(super) fn parse_record<T: Record>(raw: &str) -> Result<(T, String), serde_json::Error> {
    if T::LEFT_OUT.is_empty() {
        return Ok((serde_json::from_str(raw)?, raw.to_string()));
    }
    let Ok(Entries(entries)) = serde_json::from_str::<Entries>(raw) else {
        // Not an object, or a key written with escapes (it cannot be borrowed).
        let record = serde_json::from_str(raw)?;
        return Ok((record, sorted_without_left_out::<T>(raw)));
    };
    let record = T::deserialize(MapDeserializer::new(entries.iter().copied()))?;
    let base = raw.as_ptr() as usize;
    let mut payload = String::with_capacity(raw.len());
    payload.push('{');
    for (key, value) in entries {
        if T::LEFT_OUT.contains(&key) {
            continue;
        }
        // Both borrow `raw`: the entry runs from the key's opening quote to
        // the value's end, as written.
        let start = key.as_ptr() as usize - base - 1;
        let end = value.get().as_ptr() as usize - base + value.get().len();
        if payload.len() > 1 {
            payload.push(',');
        }
        payload.push_str(&raw[start..end]);
    }
    payload.push('}');
    Ok((record, payload))
}

/// The payload of a record whose keys cannot be borrowed: its top level as a
/// map without the [`Record::LEFT_OUT`] keys (keys sorted, values as served).
fn sorted_without_left_out<T: Record>(raw: &str) -> String {
    match serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(raw) {
        Ok(mut fields) => {
            for key in T::LEFT_OUT {
                fields.remove(*key);
            }
            serde_json::to_string(&fields).unwrap_or_default()
        }
        // Unreachable for a record that parsed: no payload rather than a wrong one.
        Err(_) => String::new(),
    }
}

/// An object's top-level entries: each key (without its quotes) and its raw
/// value, both borrowed from the input.
struct Entries<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Scan;
        impl<'de> Visitor<'de> for Scan {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(32));
                while let Some(key) = map.next_key::<&'de str>()? {
                    entries.push((key, map.next_value::<&'de RawValue>()?));
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(Scan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug, PartialEq)]
    struct Lines {
        id: i64,
        name: Option<String>,
        #[serde(default)]
        lines: Vec<i64>,
    }
    impl Record for Lines {
        const ENTITY: &'static str = "test";
        const LEFT_OUT: &'static [&'static str] = &["lines", "seen"];
        fn keep_json(&mut self, _: String) {}
        fn id(&self) -> i64 {
            self.id
        }
    }

    #[test]
    fn left_out_keys_are_cut_and_the_rest_kept_as_written() {
        let raw = r#"{"lines": [1, 2], "id" :7,"name":"a, \"b\"","seen":{"x":[1]} , "z":null}"#;
        let (record, payload) = parse_record::<Lines>(raw).unwrap();
        let name = Some(r#"a, "b""#.to_string());
        assert_eq!(
            record,
            Lines {
                id: 7,
                name,
                lines: vec![1, 2]
            }
        );
        assert_eq!(payload, r#"{"id" :7,"name":"a, \"b\"","z":null}"#);
        let (_, all_left_out) = parse_record::<Lines>(r#"{"lines":[],"seen":1,"id":1}"#).unwrap();
        assert_eq!(all_left_out, r#"{"id":1}"#);
    }

    #[test]
    fn an_escaped_key_falls_back_to_a_sorted_map() {
        let raw = r#"{"b\u0041":1,"lines":[2],"id":3}"#;
        let (record, payload) = parse_record::<Lines>(raw).unwrap();
        assert_eq!(record.lines, vec![2]);
        assert_eq!(payload, r#"{"bA":1,"id":3}"#);
    }

    #[test]
    fn a_bad_value_or_a_non_object_is_an_error() {
        let err = parse_record::<Lines>(r#"{"id":"x","lines":[]}"#).unwrap_err();
        assert!(err.to_string().contains("invalid type"), "{err}");
        assert!(parse_record::<Lines>("[1]").is_err());
    }
}
