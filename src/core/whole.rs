//! Whole numbers in JSON bodies, read as JSON Schema reads `integer`: any number without a
//! fraction, `42` and `42.0` alike. serde reads `42.0` into an integer type as an error, yet a
//! client in a language with one number type (JavaScript, or Python's `json` with a float) sends
//! it, and the OpenAPI document promises it is an integer. Use with
//! `#[serde(deserialize_with = "crate::core::whole::number")]` (or `optional` on an `Option`,
//! with `#[serde(default)]`).

use serde::de::{Deserialize, Deserializer, Error};

/// A whole number of type `T`: a JSON integer, or a number with no fraction, within `T`'s range.
pub fn number<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let n = serde_json::Number::deserialize(d)?;
    let value = match (n.as_u64(), n.as_f64()) {
        (Some(u), _) => Some(u),
        // Below 2^64 and without a fraction: exact in a u64 (a float that large is whole).
        (None, Some(f)) if f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&f) =>
        {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Some(f as u64)
        }
        _ => None,
    };
    value
        .and_then(|u| T::try_from(u).ok())
        .ok_or_else(|| D::Error::custom(format!("{n} is not a whole number in range")))
}

/// [`number`] for an optional field: `null` (or, with `#[serde(default)]`, no field) is `None`.
pub fn optional<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    match Option::<serde_json::Number>::deserialize(d)? {
        None => Ok(None),
        Some(n) => number(n).map(Some).map_err(D::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize, Debug, PartialEq)]
    struct Sizes {
        #[serde(deserialize_with = "super::number")]
        small: u32,
        #[serde(deserialize_with = "super::number")]
        big: u64,
        #[serde(default, deserialize_with = "super::optional")]
        maybe: Option<u32>,
    }

    fn read(v: serde_json::Value) -> Result<Sizes, serde_json::Error> {
        serde_json::from_value(v)
    }

    #[test]
    fn whole_numbers_are_read_with_or_without_a_fraction_part() {
        let s = read(json!({"small": 4031.0, "big": 77567506.0, "maybe": 5.0})).unwrap();
        assert_eq!((s.small, s.big, s.maybe), (4031, 77_567_506, Some(5)));
        let s = read(json!({"small": 1, "big": u64::MAX})).unwrap();
        assert_eq!((s.small, s.big, s.maybe), (1, u64::MAX, None));
        assert_eq!(
            read(json!({"small": 1, "big": 2, "maybe": null}))
                .unwrap()
                .maybe,
            None
        );
        let s: Sizes = serde_json::from_str(r#"{"small": 1e3, "big": 1.0e18}"#).unwrap();
        assert_eq!((s.small, s.big), (1000, 1_000_000_000_000_000_000));
    }

    #[test]
    fn fractions_negatives_and_numbers_out_of_range_are_refused() {
        for bad in [
            json!({"small": 1.5, "big": 1}),
            json!({"small": -1, "big": 1}),
            json!({"small": -1.0, "big": 1}),
            json!({"small": 4_294_967_296_u64, "big": 1}),
            json!({"small": 1, "big": 18_446_744_073_709_551_616.0}),
            json!({"small": 1, "big": 1e300}),
            json!({"small": "1", "big": 1}),
            json!({"small": 1, "big": 1, "maybe": 0.5}),
        ] {
            assert!(read(bad.clone()).is_err(), "{bad}");
        }
        let e: Result<Sizes, _> =
            serde_json::from_str(r#"{"small": 1, "big": 18446744073709551616}"#);
        assert!(e.is_err());
    }
}
