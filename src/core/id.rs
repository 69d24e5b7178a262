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
