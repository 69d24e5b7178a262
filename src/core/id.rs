//! Object ids: UUID v7, written as 32 lowercase hex digits without hyphens (the form the seeds show).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub u128);

impl Id {
    /// A fresh, time-ordered id.
    pub fn new() -> Id {
        Id(uuid::Uuid::now_v7().as_u128())
    }

    pub fn as_u128(self) -> u128 {
        self.0
    }

    /// When a fresh id was made: the unix milliseconds in its first 48 bits (UUID v7).
    pub fn millis(self) -> u64 {
        (self.0 >> 80) as u64
    }

    /// The lowest id made at unix millisecond `ms` or later: the lower bound of a time range
    /// over time-ordered ids.
    pub fn first_at(ms: u64) -> Id {
        Id(u128::from(ms & 0xffff_ffff_ffff) << 80)
    }

    /// Parses the 32-hex-digit form (hyphenated UUIDs are accepted too, for convenience).
    pub fn parse(s: &str) -> Option<Id> {
        if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return u128::from_str_radix(s, 16).ok().map(Id);
        }
        if s.len() == 36 {
            return uuid::Uuid::try_parse(s).ok().map(|u| Id(u.as_u128()));
        }
        None
    }
}

impl Default for Id {
    fn default() -> Self {
        Id::new()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({self})")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("not an id: expected 32 hexadecimal digits")]
pub struct BadId;

impl FromStr for Id {
    type Err = BadId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Id::parse(s).ok_or(BadId)
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Id::parse(&s).ok_or_else(|| serde::de::Error::custom(BadId))
    }
}

/// In the OpenAPI document: a string of 32 lowercase hex digits.
impl utoipa::PartialSchema for Id {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[0-9a-f]{32}$"))
            .description(Some("An object id: a UUID v7 as 32 lowercase hex digits"))
            .examples([serde_json::json!("0190b1f3c4d27a8e9b1c2d3e4f506172")])
            .into()
    }
}

impl utoipa::ToSchema for Id {}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0190b1f3c4d27a8e9b1c2d3e4f506172";

    #[test]
    fn thirty_two_hex_digits_parse() {
        assert_eq!(Id::parse(HEX), Some(Id(0x0190b1f3c4d27a8e9b1c2d3e4f506172)));
        assert_eq!(Id::parse(&"0".repeat(32)), Some(Id(0)));
        assert_eq!(Id::parse(&"f".repeat(32)), Some(Id(u128::MAX)));
        assert_eq!(HEX.parse::<Id>().unwrap(), Id::parse(HEX).unwrap());
    }

    /// Upper-case digits are accepted (and printed back in lower case).
    #[test]
    fn upper_case_hex_is_accepted() {
        let upper = HEX.to_ascii_uppercase();
        assert_eq!(Id::parse(&upper), Id::parse(HEX));
        assert_eq!(Id::parse(&upper).unwrap().to_string(), HEX);
    }

    #[test]
    fn hyphenated_uuids_parse_to_the_same_id() {
        let hyphenated = "0190b1f3-c4d2-7a8e-9b1c-2d3e4f506172";
        assert_eq!(Id::parse(hyphenated), Id::parse(HEX));
        assert_eq!(Id::parse(&hyphenated.to_ascii_uppercase()), Id::parse(HEX));
        // Hyphens where a UUID has none are refused.
        assert_eq!(Id::parse("0190b1f3c-4d2-7a8e-9b1c-2d3e4f506172"), None);
        assert_eq!(Id::parse("0190b1f3c4d27a8e9b1c2d3e4f50617200-0"), None);
    }

    #[test]
    fn wrong_lengths_and_characters_are_refused() {
        for bad in [
            "",
            &HEX[..31],
            &format!("{HEX}0"),
            &format!("{}g", &HEX[..31]),
            &format!("{}-", &HEX[..31]),
            &format!(" {}", &HEX[..31]),
            &format!("+{}", &HEX[..31]),
            &format!("0x{}", &HEX[..30]),
            "0190b1f3-c4d2-7a8e-9b1c-2d3e4f50617",
            "0190b1f3-c4d2-7a8e-9b1c-2d3e4f50617z",
            "{0190b1f3-c4d2-7a8e-9b1c-2d3e4f506172}",
            "urn:uuid:0190b1f3-c4d2-7a8e-9b1c-2d3e4f506172",
            // 32 bytes, but not 32 hex digits.
            "0190b1f3c4d27a8e9b1c2d3e4f5061é",
        ] {
            assert_eq!(Id::parse(bad), None, "{bad:?}");
            assert!(bad.parse::<Id>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn display_is_32_lowercase_hex_digits() {
        assert_eq!(Id(0).to_string(), "0".repeat(32));
        assert_eq!(Id(0xAB).to_string(), format!("{}ab", "0".repeat(30)));
        assert_eq!(format!("{:?}", Id(0xAB)), format!("Id({})", Id(0xAB)));
        let fresh = Id::new().to_string();
        assert_eq!(fresh.len(), 32);
        assert!(
            fresh
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "{fresh}"
        );
        assert_eq!(Id::parse(&fresh).unwrap().to_string(), fresh);
    }

    #[test]
    fn serde_writes_the_display_form_and_reads_it_back() {
        let id = Id::parse(HEX).unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{HEX}\""));
        assert_eq!(serde_json::from_str::<Id>(&json).unwrap(), id);
        assert_eq!(
            serde_json::from_str::<Id>("\"0190b1f3-c4d2-7a8e-9b1c-2d3e4f506172\"").unwrap(),
            id
        );
        assert!(serde_json::from_str::<Id>("\"nope\"").is_err());
        assert!(serde_json::from_str::<Id>("42").is_err());
    }

    #[test]
    fn an_id_tells_when_it_was_made() {
        let before = chrono::Utc::now().timestamp_millis() as u64;
        let id = Id::new();
        let after = chrono::Utc::now().timestamp_millis() as u64;
        assert!((before..=after).contains(&id.millis()), "{id}");
        assert!(Id::first_at(before) <= id && id < Id::first_at(after + 1));
        assert_eq!(Id::first_at(before).millis(), before);
    }

    #[test]
    fn fresh_ids_are_uuid_v7_and_increase() {
        let mut last = Id::new();
        assert_eq!(last.to_string().as_bytes()[12], b'7', "version 7");
        for _ in 0..10_000 {
            let next = Id::new();
            assert!(next > last, "{next} after {last}");
            last = next;
        }
    }
}
