//! Date formats: rendering (ISO 8601, RFC 2822) and parsing filter values.
//!
//! All times are whole Unix seconds (BigCommerce has second resolution).

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, Timelike, Utc};

/// Unix seconds.
pub(crate) type Ts = i64;

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn utc(ts: Ts) -> DateTime<Utc> {
    DateTime::from_timestamp(ts, 0).unwrap_or(DateTime::UNIX_EPOCH)
}

/// How a date is rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Style {
    /// `2024-05-14T09:34:00Z` (customers, metafields).
    IsoZ,
    /// `2024-05-14T09:34:00+00:00` (catalog).
    IsoOffset,
    /// `Tue, 14 May 2024 09:34:00 +0000` (V2).
    Rfc2822,
}

/// A date rendered without allocating: serialises as a JSON string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Date(pub Ts, pub Style);

fn two(buf: &mut [u8], at: usize, v: u32) {
    buf[at] = b'0' + (v / 10 % 10) as u8;
    buf[at + 1] = b'0' + (v % 10) as u8;
}

fn four(buf: &mut [u8], at: usize, v: i32) {
    let v = v.clamp(0, 9999) as u32;
    two(buf, at, v / 100);
    two(buf, at + 2, v % 100);
}

impl Date {
    /// Writes the date into `buf` and returns it as text.
    fn render<'b>(&self, buf: &'b mut [u8; 32]) -> &'b str {
        let d = utc(self.0);
        let len = match self.1 {
            Style::IsoZ | Style::IsoOffset => {
                buf[..19].copy_from_slice(b"0000-00-00T00:00:00");
                four(buf, 0, d.year());
                two(buf, 5, d.month());
                two(buf, 8, d.day());
                two(buf, 11, d.hour());
                two(buf, 14, d.minute());
                two(buf, 17, d.second());
                if self.1 == Style::IsoZ {
                    buf[19] = b'Z';
                    20
                } else {
                    buf[19..25].copy_from_slice(b"+00:00");
                    25
                }
            }
            Style::Rfc2822 => {
                buf[..31].copy_from_slice(b"Mon, 00 Jan 0000 00:00:00 +0000");
                let wd = WEEKDAYS[d.weekday().num_days_from_monday() as usize];
                buf[..3].copy_from_slice(wd.as_bytes());
                two(buf, 5, d.day());
                buf[8..11].copy_from_slice(MONTHS[d.month0() as usize].as_bytes());
                four(buf, 12, d.year());
                two(buf, 17, d.hour());
                two(buf, 20, d.minute());
                two(buf, 23, d.second());
                31
            }
        };
        std::str::from_utf8(&buf[..len]).unwrap_or("")
    }
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.render(&mut [0; 32]))
    }
}

impl serde::Serialize for Date {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.render(&mut [0; 32]))
    }
}

/// `2024-05-14T09:34:00Z` (customers, metafields).
#[cfg(test)]
pub(crate) fn iso_z(ts: Ts) -> String {
    Date(ts, Style::IsoZ).to_string()
}

/// `2024-05-14T09:34:00+00:00` (catalog).
#[cfg(test)]
pub(crate) fn iso_offset(ts: Ts) -> String {
    Date(ts, Style::IsoOffset).to_string()
}

/// `Tue, 14 May 2024 09:34:00 +0000` (V2).
#[cfg(test)]
pub(crate) fn rfc2822(ts: Ts) -> String {
    Date(ts, Style::Rfc2822).to_string()
}

/// How a bare date (no time part) in a filter is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BareDate {
    /// Midnight UTC.
    Midnight,
    /// The current UTC time of day is appended (the catalog quirk).
    NowTimeOfDay,
}

/// Parses a filter value: Unix seconds, a bare date, ISO 8601 with or without an offset
/// (none = UTC), and RFC 2822 when `allow_rfc2822`. A `+` turned into a space by form
/// decoding is tolerated. Fractions of a second are dropped.
pub(crate) fn parse_filter(raw: &str, bare: BareDate, allow_rfc2822: bool) -> Option<Ts> {
    let s = raw.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().ok();
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let day = d.and_hms_opt(0, 0, 0)?.and_utc().timestamp();
        return Some(match bare {
            BareDate::Midnight => day,
            BareDate::NowTimeOfDay => day + Utc::now().num_seconds_from_midnight() as i64,
        });
    }
    if let Some(ts) = parse_iso(s) {
        return Some(ts);
    }
    if allow_rfc2822 {
        if let Ok(d) = DateTime::parse_from_rfc2822(s) {
            return Some(d.timestamp());
        }
    }
    // A '+' of an offset that was not percent-encoded arrives as a space.
    if let Some(pos) = s.rfind(' ') {
        let (head, tail) = s.split_at(pos);
        let tail = &tail[1..];
        if tail.len() >= 4 && tail.bytes().all(|b| b.is_ascii_digit() || b == b':') {
            let fixed = format!("{head}+{tail}");
            if let Some(ts) = parse_iso(&fixed) {
                return Some(ts);
            }
            if allow_rfc2822 {
                if let Ok(d) = DateTime::parse_from_rfc2822(&format!("{head} +{tail}")) {
                    return Some(d.timestamp());
                }
            }
        }
    }
    None
}

fn parse_iso(s: &str) -> Option<Ts> {
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.timestamp());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(d) = DateTime::<FixedOffset>::parse_from_str(s, fmt) {
            return Some(d.timestamp());
        }
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(d.and_utc().timestamp());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let ts = 1715679240; // 2024-05-14T09:34:00Z, a Tuesday
        assert_eq!(iso_z(ts), "2024-05-14T09:34:00Z");
        assert_eq!(iso_offset(ts), "2024-05-14T09:34:00+00:00");
        assert_eq!(rfc2822(ts), "Tue, 14 May 2024 09:34:00 +0000");
        assert_eq!(rfc2822(1704067200), "Mon, 01 Jan 2024 00:00:00 +0000");
        assert_eq!(iso_z(1767225599), "2025-12-31T23:59:59Z");
        assert_eq!(
            serde_json::to_string(&Date(ts, Style::IsoZ))
                .ok()
                .as_deref(),
            Some("\"2024-05-14T09:34:00Z\"")
        );
    }

    #[test]
    fn parses() {
        let ts = 1715679240;
        let m = BareDate::Midnight;
        assert_eq!(parse_filter("2024-05-14T09:34:00Z", m, false), Some(ts));
        assert_eq!(parse_filter("2024-05-14T09:34:00", m, false), Some(ts));
        assert_eq!(
            parse_filter("2024-05-14T11:34:00+02:00", m, false),
            Some(ts)
        );
        assert_eq!(
            parse_filter("2024-05-14T09:34:00 00:00", m, false),
            Some(ts)
        );
        assert_eq!(parse_filter("2024-05-14T09:34:00.999Z", m, false), Some(ts));
        assert_eq!(
            parse_filter("Tue, 14 May 2024 09:34:00 +0000", m, true),
            Some(ts)
        );
        assert_eq!(
            parse_filter("Tue, 14 May 2024 09:34:00 0000", m, true),
            Some(ts)
        );
        assert_eq!(
            parse_filter("Tue, 14 May 2024 09:34:00 +0000", m, false),
            None
        );
        assert_eq!(parse_filter("2024-05-14", m, false), Some(1715644800));
        assert_eq!(parse_filter("1715679240", m, false), Some(ts));
        assert_eq!(parse_filter("yesterday", m, true), None);
        let quirk = parse_filter("2024-05-14", BareDate::NowTimeOfDay, false);
        assert!(quirk.is_some_and(|t| (1715644800..1715644800 + 86400).contains(&t)));
    }
}
