//! Pages of a list: every list is ordered by object id (ids are time-ordered, so oldest first)
//! and read a page at a time, from just after the last id of the page before.
//!
//! A client sees the position as an opaque cursor string; only this module knows its form, so
//! it can change without breaking a client that treats it as opaque.

use super::error::{Error, Result};
use super::id::Id;

/// How many items a page holds when the client does not say.
pub const DEFAULT_LIMIT: usize = 100;
/// The most a client may ask for in one page.
pub const MAX_LIMIT: usize = 1000;

/// The version tag every cursor starts with.
const CURSOR_PREFIX: &str = "c1.";

/// Which page to read: the items after `after`, at most `limit` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub after: Option<Id>,
    pub limit: usize,
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            after: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

impl PageRequest {
    /// The first page of `limit` items.
    pub fn first(limit: usize) -> PageRequest {
        PageRequest { after: None, limit }
    }

    /// Reads the client's `limit` and `cursor` parameters (absent ones take their defaults).
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<PageRequest> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(s) => parse_limit(s)?,
        };
        let after = match cursor {
            None | Some("") => None,
            Some(c) => Some(decode_cursor(c)?),
        };
        Ok(PageRequest { after, limit })
    }
}

fn parse_limit(s: &str) -> Result<usize> {
    let bad = || {
        Error::bad_request(format!(
            "limit: expected a whole number from 1 to {MAX_LIMIT}"
        ))
    };
    // Digits only: no sign, no exponent, no fraction; at most four of them, so nothing overflows.
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: usize = s.parse().map_err(|_| bad())?;
    if (1..=MAX_LIMIT).contains(&n) {
        Ok(n)
    } else {
        Err(bad())
    }
}

/// A page of items, and the cursor of the next page when there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The last id of this page when more items follow it.
    pub next: Option<Id>,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next: self.next,
        }
    }

    /// The cursor a client sends for the next page.
    pub fn next_cursor(&self) -> Option<String> {
        self.next.map(encode_cursor)
    }
}

/// The cursor that continues after `id`.
pub fn encode_cursor(id: Id) -> String {
    format!("{CURSOR_PREFIX}{id}")
}

/// The id a cursor continues after.
pub fn decode_cursor(cursor: &str) -> Result<Id> {
    cursor
        .strip_prefix(CURSOR_PREFIX)
        .and_then(Id::parse)
        .ok_or_else(|| {
            Error::bad_request(
                "cursor: not a cursor this server gave out (pass the value of X-Next-Cursor as is)",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_whole_numbers_within_bounds() {
        assert_eq!(
            PageRequest::parse(None, None).unwrap(),
            PageRequest::default()
        );
        assert_eq!(PageRequest::parse(Some("1"), None).unwrap().limit, 1);
        assert_eq!(PageRequest::parse(Some("1000"), None).unwrap().limit, 1000);
        for bad in [
            "0",
            "1001",
            "-1",
            "+5",
            "5.0",
            "1e3",
            "",
            " 5",
            "99999999999999999999",
        ] {
            assert!(
                PageRequest::parse(Some(bad), None).is_err(),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let id = Id::new();
        let c = encode_cursor(id);
        assert_eq!(PageRequest::parse(None, Some(&c)).unwrap().after, Some(id));
        assert_eq!(PageRequest::parse(None, Some("")).unwrap().after, None);
        for bad in [
            id.to_string(),
            "c1.zz".to_owned(),
            "c2.".to_owned() + &id.to_string(),
        ] {
            assert!(PageRequest::parse(None, Some(&bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_page_maps_its_items_and_keeps_its_cursor() {
        let id = Id::new();
        let page = Page {
            items: vec![1, 2],
            next: Some(id),
        }
        .map(|n| n * 10);
        assert_eq!(page.items, vec![10, 20]);
        assert_eq!(page.next_cursor(), Some(encode_cursor(id)));
    }
}
