//! One parse of a record's JSON for both its typed fields and its `_payload`.
//!
//! The payload is the text as served. The typed record is read by serde in
//! one pass; a record with [`Record::LEFT_OUT`] keys is then scanned once at
//! its top level, byte by byte (strings and nesting tracked, nothing decoded
//! or allocated per field), and its payload is the kept entries copied
//! verbatim, in their order, joined by commas. The scan is written here
//! because serde_json tells no byte offsets of an object's entries; reading
//! them as `RawValue`s instead costs a second serde pass over the record
//! (measured: docs/PERFORMANCE.md). A proptest checks it against serde on
//! random objects.
//!
//! A record served whole is not copied: its payload is a slice of the page's
//! body ([`PageBody`]), which the epoch's payloads share until it commits.

use std::cell::RefCell;
use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::value::RawValue;

use super::Record;

thread_local! {
    /// The body of the page being parsed on this thread, if any.
    static BODY: RefCell<Option<Bytes>> = const { RefCell::new(None) };
}

/// The page body records are parsed from, for the length of a page's parse
/// on this thread: serde's derive cannot hand it down to the records nested
/// in others (an order's lines, a product's variants), so they find it here.
pub(super) struct PageBody(Option<Bytes>);

impl PageBody {
    /// Makes `body` the current page until the guard drops.
    pub(super) fn enter(body: &Bytes) -> PageBody {
        PageBody(BODY.with(|b| b.borrow_mut().replace(body.clone())))
    }

    /// `text` as a slice of the current page's body when it lies in it (no
    /// copy), else a copy.
    fn slice(text: &str) -> Bytes {
        BODY.with(|b| match b.borrow().as_ref() {
            Some(body) if contains(body, text) => body.slice_ref(text.as_bytes()),
            _ => Bytes::copy_from_slice(text.as_bytes()),
        })
    }
}

impl Drop for PageBody {
    fn drop(&mut self) {
        let previous = self.0.take();
        BODY.with(|b| *b.borrow_mut() = previous);
    }
}

/// Whether `text` lies within `body`'s memory.
fn contains(body: &Bytes, text: &str) -> bool {
    let (start, end) = (body.as_ptr() as usize, body.as_ptr() as usize + body.len());
    let at = text.as_ptr() as usize;
    at >= start && at + text.len() <= end
}

/// A record and its `_payload` from the record's JSON text.
pub(super) fn parse_record<T: Record>(raw: &str) -> Result<(T, Bytes), serde_json::Error> {
    Ok((serde_json::from_str(raw)?, payload::<T>(raw)))
}

/// The `_payload` of a record of type `T` whose JSON text is `raw`.
pub(super) fn payload<T: Record>(raw: &str) -> Bytes {
    if T::LEFT_OUT.is_empty() {
        return PageBody::slice(raw);
    }
    let Some(entries) = top_level_entries(raw) else {
        // A key written with escapes: compared only once unescaped.
        return sorted_without_left_out::<T>(raw).into();
    };
    let mut payload = String::with_capacity(raw.len());
    payload.push('{');
    for entry in entries {
        if T::LEFT_OUT.contains(&&raw[entry.key.start + 1..entry.key.end - 1]) {
            continue;
        }
        if payload.len() > 1 {
            payload.push(',');
        }
        // From the key's opening quote to the value's end, as written.
        payload.push_str(&raw[entry.key.start..entry.value_end]);
    }
    payload.push('}');
    payload.into()
}

/// One top-level entry of an object's text, as byte offsets.
struct Entry {
    /// The key with its quotes.
    key: std::ops::Range<usize>,
    /// Where the value ends (trailing whitespace excluded).
    value_end: usize,
}

/// The top-level entries of `raw`, a JSON object that already parsed, found
/// by one pass over its bytes (strings and nesting tracked, nothing
/// decoded); `None` when it is not an object or a key has an escape.
fn top_level_entries(raw: &str) -> Option<Vec<Entry>> {
    let b = raw.as_bytes();
    let skip_ws = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let mut i = skip_ws(0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(i + 1);
    let mut entries = Vec::with_capacity(32);
    if b.get(i) == Some(&b'}') {
        return Some(entries);
    }
    loop {
        // The key: a string without escapes.
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key_start = i;
        i += 1;
        while i < b.len() && b[i] != b'"' {
            if b[i] == b'\\' {
                return None;
            }
            i += 1;
        }
        let key = key_start..i + 1;
        i = skip_ws(i + 1);
        if b.get(i) != Some(&b':') {
            return None;
        }
        // The value: up to a `,` or `}` outside strings and nesting; inside
        // a string, straight to its next quote or backslash.
        let mut depth = 0usize;
        i += 1;
        while i < b.len() {
            match b[i] {
                b'"' => i = string_end(b, i + 1)?,
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth > 0 => depth -= 1,
                b',' | b'}' if depth == 0 => break,
                _ => {}
            }
            i += 1;
        }
        let mut value_end = i;
        while value_end > key.end && b[value_end - 1].is_ascii_whitespace() {
            value_end -= 1;
        }
        entries.push(Entry { key, value_end });
        match b.get(i) {
            Some(b',') => i = skip_ws(i + 1),
            Some(b'}') => return Some(entries),
            _ => return None,
        }
    }
}

/// The offset of the quote that closes the string whose text starts at `i`.
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i += memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
        if b[i] == b'"' {
            return Some(i);
        }
        i += 2;
    }
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::Deserialize;

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
        fn keep_json(&mut self, _: Bytes) {}
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

    #[derive(Deserialize, Debug, PartialEq)]
    struct Whole {
        id: i64,
    }
    impl Record for Whole {
        const ENTITY: &'static str = "whole";
        fn keep_json(&mut self, _: Bytes) {}
        fn id(&self) -> i64 {
            self.id
        }
    }

    #[test]
    fn a_whole_record_is_a_slice_of_its_page_and_a_copy_elsewhere() {
        let body = Bytes::from_static(br#"[{"id":1,"x":[2]}]"#);
        let raw = std::str::from_utf8(&body[1..body.len() - 1]).unwrap();
        let (record, payload) = {
            let _page = PageBody::enter(&body);
            parse_record::<Whole>(raw).unwrap()
        };
        assert_eq!(record, Whole { id: 1 });
        assert_eq!(&payload[..], br#"{"id":1,"x":[2]}"#);
        assert_eq!(payload.as_ptr(), raw.as_ptr(), "shared, not copied");
        // Outside a page (or from other memory), the text is copied.
        let (_, copied) = parse_record::<Whole>(raw).unwrap();
        assert_eq!(copied, payload);
        assert_ne!(copied.as_ptr(), raw.as_ptr());
    }

    #[test]
    fn strings_and_nesting_do_not_end_an_entry() {
        let raw = " {\"id\":1, \"name\" : \"}{,\\\"]\" ,\"lines\":[3],\"seen\":[{\"a\":\"x,}\"},[]],\"z\":{\"k\":[1,{\"m\":\"\\\\\"}]}}\n";
        let (record, payload) = parse_record::<Lines>(raw).unwrap();
        assert_eq!(record.id, 1);
        assert_eq!(
            payload,
            r#"{"id":1,"name" : "}{,\"]","z":{"k":[1,{"m":"\\"}]}}"#
        );
        let kept: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(kept["name"], r#"}{,"]"#);
        assert_eq!(kept["z"]["k"][1]["m"], "\\");
        let (_, empty) = parse_record::<Lines>(r#"{ "id": 2 , "lines" : [] }"#).unwrap();
        assert_eq!(empty, r#"{"id": 2}"#);
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

    /// Any JSON value, strings drawn from text that stresses the scan.
    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let text = proptest::string::string_regex(r#"[a-z{}\[\],:" \\\n\u00e9]{0,12}"#)
            .expect("a valid pattern");
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(serde_json::Value::from),
            text.prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                proptest::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// The scan agrees with serde: the payload is the object without
        /// the left-out keys, whatever the values hold and however the text
        /// is spaced.
        #[test]
        fn the_payload_is_the_object_without_the_left_out_keys(
            fields in proptest::collection::btree_map("[a-z]{1,6}", json_value(), 0..6),
            lines in proptest::collection::vec(any::<i64>(), 0..3),
            pretty in any::<bool>(),
        ) {
            let mut object: serde_json::Map<String, serde_json::Value> =
                fields.into_iter().collect();
            object.remove("name"); // typed as a string in `Lines`
            object.insert("id".into(), 1.into());
            object.insert("lines".into(), lines.clone().into());
            let value = serde_json::Value::Object(object.clone());
            let raw = if pretty {
                serde_json::to_string_pretty(&value).unwrap()
            } else {
                serde_json::to_string(&value).unwrap()
            };
            let (record, payload) = parse_record::<Lines>(&raw).unwrap();
            prop_assert_eq!(record.lines, lines);
            let kept: serde_json::Value = serde_json::from_slice(&payload).unwrap();
            object.remove("lines");
            object.remove("seen");
            prop_assert_eq!(kept, serde_json::Value::Object(object));
        }
    }
}
