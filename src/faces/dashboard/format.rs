//! Values as pages show them: times, sizes, durations, short ids. Pure text; the templates
//! escape it.

use crate::core::clock::Timestamp;
use crate::core::id::Id;

/// `2026-12-01 20:12` (UTC).
pub fn time(t: &Timestamp) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

/// A time that may not be there: `-` then.
pub fn maybe_time(t: Option<&Timestamp>) -> String {
    t.map_or_else(|| "-".to_owned(), time)
}

/// A size for people: `12.3 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A duration in seconds for people: `42 s`, `3 min 5 s`, `2 h 10 min`.
pub fn duration(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, (secs % 3600) / 60),
    }
}

/// The last 8 hex digits of an id, for tables (the full id is in the link and the title). Ids
/// are time-ordered (UUID v7): their first digits are a timestamp, the same for ids made close
/// together; the last ones are random.
pub fn short(id: &Id) -> String {
    id.to_string()[24..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_for_people() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(3 << 20), "3.0 MiB");
        assert_eq!(duration(42), "42 s");
        assert_eq!(duration(185), "3 min 5 s");
        assert_eq!(duration(7800), "2 h 10 min");
        assert_eq!(short(&Id(0xabcdef12)), "abcdef12");
        let t = chrono::DateTime::parse_from_rfc3339("2026-12-01T20:12:56Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(time(&t), "2026-12-01 20:12");
        assert_eq!(maybe_time(None), "-");
    }
}
