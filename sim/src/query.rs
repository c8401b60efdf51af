//! Query strings: filters, paging and pagination links. Bad values become
//! [`ApiError::BadParam`] naming the parameter.

use std::collections::BTreeSet;

use super::dates::{BareDate, Ts, parse_filter};
use super::error::ApiError;

/// Default page size.
pub(crate) const DEFAULT_LIMIT: usize = 50;
/// Largest page size; more is 413.
pub(crate) const MAX_LIMIT: usize = 250;

/// The decoded query string, in order.
#[derive(Debug, Default, Clone)]
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

/// A page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Paging {
    /// From 1.
    pub page: usize,
    /// Records per page.
    pub limit: usize,
}

impl Paging {
    /// The slice of `total` records this page covers.
    pub(crate) fn range(&self, total: usize) -> std::ops::Range<usize> {
        let start = (self.page - 1).saturating_mul(self.limit).min(total);
        let end = start.saturating_add(self.limit).min(total);
        start..end
    }
}

fn bad(name: &str, message: impl Into<String>) -> ApiError {
    ApiError::BadParam {
        name: name.to_string(),
        message: message.into(),
    }
}

impl Params {
    /// Decodes a raw query string.
    pub(crate) fn parse(raw: Option<&str>) -> Params {
        let pairs = raw
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        Params { pairs }
    }

    /// The last value of a parameter.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// An unsigned integer parameter.
    pub(crate) fn u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.trim().parse::<u64>().map(Some).map_err(|_| {
                bad(
                    name,
                    format!("{name} must be a non-negative integer, got {v:?}"),
                )
            }),
        }
    }

    /// A comma-separated list of strings (all occurrences together).
    pub(crate) fn strings(&self, name: &str) -> Option<Vec<String>> {
        let mut out = Vec::new();
        let mut seen = false;
        for (k, v) in &self.pairs {
            if k == name {
                seen = true;
                out.extend(
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty()),
                );
            }
        }
        seen.then_some(out)
    }

    /// A comma-separated list of ids (all occurrences together).
    pub(crate) fn ids(&self, name: &str) -> Result<Option<BTreeSet<u64>>, ApiError> {
        let Some(list) = self.strings(name) else {
            return Ok(None);
        };
        list.iter()
            .map(|s| {
                s.parse::<u64>().map_err(|_| {
                    bad(
                        name,
                        format!("{name} must be a comma-separated list of ids, got {s:?}"),
                    )
                })
            })
            .collect::<Result<BTreeSet<u64>, _>>()
            .map(Some)
    }

    /// A date filter (see [`parse_filter`]).
    pub(crate) fn date(
        &self,
        name: &str,
        bare: BareDate,
        rfc2822: bool,
    ) -> Result<Option<Ts>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => parse_filter(v, bare, rfc2822).map(Some).ok_or_else(|| {
                let formats = if rfc2822 {
                    "RFC 2822, ISO 8601 or a date"
                } else {
                    "ISO 8601 or a date"
                };
                bad(
                    name,
                    format!("{name} must be a date ({formats}), got {v:?}"),
                )
            }),
        }
    }

    /// A `min`/`max` pair of date filters as an inclusive range.
    pub(crate) fn date_range(
        &self,
        min: &str,
        max: &str,
        bare: BareDate,
        rfc2822: bool,
    ) -> Result<(Ts, Ts), ApiError> {
        let lo = self.date(min, bare, rfc2822)?.unwrap_or(Ts::MIN);
        let hi = self.date(max, bare, rfc2822)?.unwrap_or(Ts::MAX);
        Ok((lo, hi))
    }

    /// A boolean parameter (`true`/`false`/`1`/`0`).
    pub(crate) fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                _ => Err(bad(
                    name,
                    format!("{name} must be true or false, got {v:?}"),
                )),
            },
        }
    }

    /// Whether a comma-separated `include` names `what`.
    pub(crate) fn includes(&self, what: &str) -> bool {
        self.strings("include")
            .is_some_and(|l| l.iter().any(|s| s == what))
    }

    /// `page` (from 1) and `limit` (default 50, at most 250: more is 413).
    pub(crate) fn paging(&self) -> Result<Paging, ApiError> {
        let page = match self.u64("page")? {
            None => 1,
            Some(0) => return Err(bad("page", "page must be at least 1")),
            Some(p) => usize::try_from(p).unwrap_or(usize::MAX),
        };
        let limit = match self.u64("limit")? {
            None => DEFAULT_LIMIT,
            Some(0) => return Err(bad("limit", "limit must be at least 1")),
            Some(l) if l > MAX_LIMIT as u64 => {
                return Err(ApiError::TooLarge(format!(
                    "limit must be at most {MAX_LIMIT}, got {l}"
                )));
            }
            Some(l) => l as usize,
        };
        Ok(Paging { page, limit })
    }

    /// A pagination link: `?page=N&limit=L` followed by the other parameters.
    pub(crate) fn link(&self, page: usize, limit: usize) -> String {
        let mut s = format!("?page={page}&limit={limit}");
        for (k, v) in &self.pairs {
            if k == "page" || k == "limit" {
                continue;
            }
            s.push('&');
            s.push_str(&encode(k));
            s.push('=');
            s.push_str(&encode(v));
        }
        s
    }
}

/// Percent-encodes a query component, keeping `:` and `,` readable.
fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace("%3A", ":")
        .replace("%2C", ",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_and_links() {
        let p = Params::parse(Some(
            "date_modified%3Amin=2024-01-01T00:00:00%2B00:00&page=2&limit=10",
        ));
        assert_eq!(p.paging().ok(), Some(Paging { page: 2, limit: 10 }));
        assert_eq!(
            p.link(3, 10),
            "?page=3&limit=10&date_modified:min=2024-01-01T00:00:00%2B00:00"
        );
        assert!(matches!(
            Params::parse(Some("limit=251")).paging(),
            Err(ApiError::TooLarge(_))
        ));
        assert!(matches!(
            Params::parse(Some("limit=x")).paging(),
            Err(ApiError::BadParam { .. })
        ));
        assert_eq!(Paging { page: 3, limit: 10 }.range(25), 20..25);
        assert_eq!(Paging { page: 4, limit: 10 }.range(25), 25..25);
    }

    #[test]
    fn lists() {
        let p = Params::parse(Some("id:in=1,2&id:in=5&email:in=a@x.com"));
        let ids = p.ids("id:in").ok().flatten();
        assert_eq!(ids, Some([1, 2, 5].into_iter().collect()));
        assert!(Params::parse(Some("id:in=1,x")).ids("id:in").is_err());
        assert_eq!(p.strings("email:in"), Some(vec!["a@x.com".to_string()]));
    }
}
