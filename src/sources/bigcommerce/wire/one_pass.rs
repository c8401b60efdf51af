//! A page read in one pass when every record on it parses.
//!
//! Each record is deserialized straight from the page's text, and its JSON
//! (for `_payload`) is the span the deserializer consumed, told by
//! [`serde_json::StreamDeserializer::byte_offset`]. The careful way
//! ([`super::records`]) first splits the page into raw records, which is a
//! serde pass over every byte, and then parses each record again; it is what
//! keeps a bad record from costing the rest of its page. So a page with a bad
//! record, or laid out otherwise than expected, gives `None` here and is read
//! the careful way: the records are the same either way.

use bytes::Bytes;
use serde::Deserialize;

use super::payload_text::{PageBody, payload};
use super::{Page, Record, V3Meta};

/// A V2 page (a bare array), if all its records parse.
pub(super) fn v2<T: Record>(body: &Bytes) -> Option<Page<T>> {
    let text = std::str::from_utf8(body).ok()?;
    let start = expect(text, 0, b'[')?;
    let (records, end) = array(body, text, start)?;
    (skip_ws(text, end) == text.len()).then(|| page(records, None))
}

/// A V3 page (`{"data": [...], ...}` with `data` first, as BigCommerce
/// writes it), if all its records parse.
pub(super) fn v3<T: Record>(body: &Bytes) -> Option<Page<T>> {
    let text = std::str::from_utf8(body).ok()?;
    let at = expect(text, 0, b'{')?;
    let at = skip_ws(text, at);
    let at = text[at..]
        .starts_with("\"data\"")
        .then_some(at + "\"data\"".len())?;
    let at = expect(text, at, b':')?;
    let at = expect(text, at, b'[')?;
    let (records, end) = array(body, text, at)?;
    // What follows the records: `}`, or more entries (`meta`) to read as an
    // object of their own.
    let rest = text[end..].trim();
    let total_pages = match rest.strip_prefix(',') {
        Some(entries) => {
            #[derive(Deserialize)]
            struct Rest {
                #[serde(default)]
                meta: Option<V3Meta>,
            }
            let rest: Rest = serde_json::from_str(&format!("{{{entries}")).ok()?;
            rest.meta
                .and_then(|m| m.pagination)
                .and_then(|p| p.total_pages)
        }
        None if rest == "}" => None,
        None => return None,
    };
    Some(page(records, total_pages))
}

fn page<T>(records: Vec<T>, total_pages: Option<u64>) -> Page<T> {
    Page {
        returned: records.len(),
        records,
        dead_letters: Vec::new(),
        total_pages,
        fetched_at: None,
    }
}

/// The records of the array whose elements start at `at` (just past its
/// `[`), and the offset just past its `]`.
fn array<T: Record>(body: &Bytes, text: &str, at: usize) -> Option<(Vec<T>, usize)> {
    let _body = PageBody::enter(body);
    let mut records = Vec::new();
    let mut at = skip_ws(text, at);
    if text.as_bytes().get(at) == Some(&b']') {
        return Some((records, at + 1));
    }
    loop {
        let mut stream = serde_json::Deserializer::from_str(&text[at..]).into_iter::<T>();
        let mut record = stream.next()?.ok()?;
        let end = at + stream.byte_offset();
        record.keep_json(payload::<T>(&text[at..end]));
        records.push(record);
        at = skip_ws(text, end);
        match text.as_bytes().get(at)? {
            b',' => at = skip_ws(text, at + 1),
            b']' => return Some((records, at + 1)),
            _ => return None,
        }
    }
}

/// The offset just past `byte`, which must come next after whitespace.
fn expect(text: &str, at: usize, byte: u8) -> Option<usize> {
    let at = skip_ws(text, at);
    (text.as_bytes().get(at) == Some(&byte)).then_some(at + 1)
}

fn skip_ws(text: &str, mut at: usize) -> usize {
    let b = text.as_bytes();
    while at < b.len() && b[at].is_ascii_whitespace() {
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::value::RawValue;

    use super::super::{WireCustomer, records};
    use super::*;

    const CUSTOMER: &str = r#"{"id":1,"email":"a@x","date_created":"2024-01-01T00:00:00Z","date_modified":"2024-01-02T00:00:00Z","new_field":[1,{"a":"]"}]}"#;

    #[test]
    fn records_and_their_json_in_one_pass() {
        let body = Bytes::from(format!(
            "{{ \"data\" : [ {CUSTOMER} ,\n{} ], \"meta\": {{\"pagination\": {{\"total_pages\": 4}}}} }}",
            CUSTOMER.replace("\"id\":1", "\"id\":2")
        ));
        let page = v3::<WireCustomer>(&body).expect("one pass");
        assert_eq!((page.returned, page.total_pages), (2, Some(4)));
        assert_eq!(&page.records[0].json[..], CUSTOMER.as_bytes());
        assert_eq!(page.records[1].id, 2);
        let (start, json) = (body.as_ptr() as usize, page.records[0].json.as_ptr());
        let shared = (start..start + body.len()).contains(&(json as usize));
        assert!(shared, "the payload is the page's own memory, not a copy");

        let bare = Bytes::from(format!(" [{CUSTOMER}] "));
        assert_eq!(v2::<WireCustomer>(&bare).expect("one pass").returned, 1);
        assert_eq!(v2::<WireCustomer>(&Bytes::from("[ ]")).unwrap().returned, 0);
        let only_data = Bytes::from(format!("{{\"data\":[{CUSTOMER}]}}"));
        assert_eq!(v3::<WireCustomer>(&only_data).unwrap().total_pages, None);
    }

    #[test]
    fn anything_unexpected_is_left_to_the_careful_way() {
        let bad = CUSTOMER.replace("\"a@x\"", "7");
        for body in [
            format!("[{CUSTOMER},{bad}]"),
            format!("[{CUSTOMER}] x"),
            format!("[{CUSTOMER}"),
            format!("{{\"meta\":{{}},\"data\":[{CUSTOMER}]}}"),
            format!("{{\"data\":[{CUSTOMER}],\"meta\":1}}"),
        ] {
            let v2 = v2::<WireCustomer>(&Bytes::from(body.clone())).is_none();
            let v3 = v3::<WireCustomer>(&Bytes::from(body.clone())).is_none();
            assert!(v2 && v3, "{body}");
        }
    }

    proptest! {
        /// A page reads the same in one pass as the careful way; only a
        /// page with a bad record is left to the careful way.
        #[test]
        fn one_pass_reads_what_the_careful_way_reads(
            customers in proptest::collection::vec(
                (1i64..1000, "[a-z ]{0,8}", proptest::bool::weighted(0.1)),
                0..6,
            ),
            space in "[ \n]{0,2}",
            v3_page in any::<bool>(),
        ) {
            let texts: Vec<String> = customers
                .iter()
                .map(|(id, note, bad)| {
                    let email = if *bad { "7".to_string() } else { format!("\"{note}@x\"") };
                    format!(
                        r#"{{"id":{id},{space}"email":{email},"note":"{note}","date_created":"2024-01-01T00:00:00Z","date_modified":"2024-01-02T00:00:00Z"}}"#
                    )
                })
                .collect();
            let list = format!("[{space}{}{space}]", texts.join(&format!("{space},{space}")));
            let (body, careful) = if v3_page {
                let body = Bytes::from(format!(r#"{{"data":{space}{list},"meta":{{"pagination":{{"total_pages":3}}}}}}"#));
                let envelope: super::super::V3Envelope = serde_json::from_slice(&body).unwrap();
                let careful = records::<WireCustomer>(&envelope.data, &body, "GET x");
                (body, careful)
            } else {
                let body = Bytes::from(list);
                let raw: Vec<&RawValue> = serde_json::from_slice(&body).unwrap();
                let careful = records::<WireCustomer>(&raw, &body, "GET x");
                (body, careful)
            };
            let fast = if v3_page { v3::<WireCustomer>(&body) } else { v2::<WireCustomer>(&body) };
            match fast {
                Some(fast) => {
                    prop_assert!(careful.dead_letters.is_empty());
                    prop_assert_eq!(fast.total_pages, v3_page.then_some(3));
                    let read = |p: &Page<WireCustomer>| -> Vec<(i64, Bytes)> {
                        p.records.iter().map(|c| (c.id, c.json.clone())).collect()
                    };
                    prop_assert_eq!(read(&fast), read(&careful));
                }
                None => prop_assert!(!careful.dead_letters.is_empty()),
            }
        }
    }
}
