//! Names: the display names people give objects (keys, trusts, servables, pipelines, jobs,
//! images), checked by one rule; and names made from free text for places with a strict
//! grammar: a repository name's component from a login or an image name, a registry namespace
//! from a login.

use super::error::{Error, Result};

/// The most characters (not bytes) a display name has, as sent.
pub const MAX_NAME_CHARS: usize = 200;

/// The OpenAPI document's pattern for a display name: some character that is not whitespace.
/// The whitespace is Rust's (`char::is_whitespace`, what `str::trim` removes), written out
/// character by character: regex dialects (ECMA-262, Python's `re`) each have their own `\s`.
pub const NAME_PATTERN: &str = "[^\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";

/// A display name as sent: 1 to [`MAX_NAME_CHARS`] characters, not all of them whitespace (the
/// rule the document states with `minLength`, `maxLength` and [`NAME_PATTERN`]). Kept trimmed.
pub fn display_name(name: &str) -> Result<&str> {
    let trimmed = name.trim();
    if trimmed.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(Error::bad_request(format!("name {}", name_rule())));
    }
    Ok(trimmed)
}

/// What [`display_name`] says of a name it refuses.
pub fn name_rule() -> String {
    format!("must be 1-{MAX_NAME_CHARS} characters, not all whitespace")
}

/// A display name's schema in the OpenAPI document (see [`display_name`]).
pub fn name_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_NAME_CHARS))
        .pattern(Some(NAME_PATTERN))
        .description(Some(format!(
            "1 to {MAX_NAME_CHARS} characters, not all whitespace (kept without the whitespace \
             around it)"
        )))
        .build()
}

/// The most bytes a component keeps: two of them and a `/` stay well inside a repository
/// name's 255.
const MAX_COMPONENT: usize = 100;

/// Lower case ASCII letters and digits, every run of anything else one `-`, none at either end,
/// at most 100 bytes; `x` when nothing is left. Logins that differ only in case, `.`, `_` or
/// `-` give the same component (which is why a login's component is its namespace, unique).
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().flat_map(char::to_lowercase) {
        if out.len() >= MAX_COMPONENT {
            break;
        }
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    if out.is_empty() {
        "x".to_owned()
    } else {
        out.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The characters of [`NAME_PATTERN`]'s class, read as a regex engine reads it.
    fn pattern_class() -> Vec<(char, char)> {
        let inner = NAME_PATTERN
            .strip_prefix("[^")
            .and_then(|p| p.strip_suffix(']'))
            .unwrap();
        let mut chars = inner.chars().peekable();
        let mut next = || -> Option<char> {
            let c = chars.next()?;
            if c != '\\' {
                return Some(c);
            }
            Some(match chars.next().unwrap() {
                't' => '\t',
                'n' => '\n',
                'f' => '\x0c',
                'r' => '\r',
                'u' => {
                    let hex: String = (0..4).map(|_| chars.next().unwrap()).collect();
                    char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap()
                }
                other => panic!("unexpected escape {other}"),
            })
        };
        let mut items: Vec<char> = Vec::new();
        while let Some(c) = next() {
            items.push(c);
        }
        // `a-b` is a range; a `-` elsewhere is not in this pattern.
        let mut ranges = Vec::new();
        let mut i = 0;
        while i < items.len() {
            if i + 2 < items.len() && items[i + 1] == '-' {
                ranges.push((items[i], items[i + 2]));
                i += 3;
            } else {
                ranges.push((items[i], items[i]));
                i += 1;
            }
        }
        ranges
    }

    #[test]
    fn the_documented_pattern_names_exactly_rusts_whitespace() {
        let class = pattern_class();
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            let listed = class.iter().any(|(a, b)| (*a..=*b).contains(&c));
            assert_eq!(listed, c.is_whitespace(), "{:?} (U+{:04X})", c, c as u32);
        }
    }

    #[test]
    fn display_names_count_characters_and_need_more_than_whitespace() {
        assert_eq!(display_name("  key  ").unwrap(), "key");
        assert_eq!(display_name(&"é".repeat(200)).unwrap().chars().count(), 200);
        for bad in [
            String::new(),
            " \t\u{3000}\u{85}".to_owned(),
            "é".repeat(201),
            format!(" {}", "a".repeat(200)),
        ] {
            assert!(display_name(&bad).is_err(), "{bad:?}");
        }
        // Not whitespace to Rust (nor a name's trim): a name of its own.
        assert_eq!(display_name("\u{feff}").unwrap(), "\u{feff}");
    }

    #[test]
    fn logins_that_differ_in_punctuation_or_case_meet() {
        assert_eq!(slug("Alice.Smith"), "alice-smith");
        assert_eq!(slug("alice_smith"), "alice-smith");
        assert_eq!(slug("alice--smith-"), "alice-smith");
        assert_eq!(slug("..."), "x");
        assert_eq!(slug(&"a".repeat(300)).len(), MAX_COMPONENT);
        assert!(!slug(&format!("{}.b", "a".repeat(99))).ends_with('-'));
    }
}
