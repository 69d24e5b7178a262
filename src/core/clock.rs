//! Time is passed in, never read from the wall clock deep inside domain code, so that expiry is
//! testable: the server holds an `Arc<dyn Clock>` and hands `now` to the functions it calls.

use chrono::{DateTime, Duration, Utc};
use std::sync::{Arc, Mutex, PoisonError};

pub type Timestamp = DateTime<Utc>;

/// 9999-12-31T23:59:59Z in Unix seconds: the last second RFC 3339 can write (its years have
/// four digits), and so the last a timestamp of the API may be.
const LATEST_SECS: i64 = 253_402_300_799;

/// The latest timestamp the appliance writes: 9999-12-31T23:59:59Z.
pub fn latest() -> Timestamp {
    DateTime::from_timestamp(LATEST_SECS, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `t + by`, or `None` when that is after [`latest`] (or before the year 0): for times a client
/// asks for, which are refused rather than stored unwritable.
pub fn checked_later(t: Timestamp, by: Duration) -> Option<Timestamp> {
    t.checked_add_signed(by)
        .filter(|later| *later <= latest() && later.timestamp() >= RFC3339_EARLIEST_SECS)
}

/// 0000-01-01T00:00:00Z in Unix seconds.
const RFC3339_EARLIEST_SECS: i64 = -62_167_219_200;

/// `t + by`, at most [`latest`]: for times computed from the configuration, where "later than
/// anything" is what a huge setting means.
pub fn later(t: Timestamp, by: Duration) -> Timestamp {
    t.checked_add_signed(by)
        .map_or_else(latest, |later| later.min(latest()))
}

/// `secs` seconds as a duration, at most chrono's largest (a setting of `u64::MAX` seconds
/// means "forever", not a panic).
pub fn seconds(secs: u64) -> Duration {
    i64::try_from(secs)
        .ok()
        .and_then(Duration::try_seconds)
        .unwrap_or(Duration::MAX)
}

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Utc::now()
    }
}

/// A clock that starts at the real time and moves only when told to (tests).
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    pub fn new() -> Arc<Self> {
        Arc::new(ManualClock(Mutex::new(Utc::now())))
    }

    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_stay_within_what_rfc_3339_writes() {
        assert_eq!(latest().to_rfc3339(), "9999-12-31T23:59:59+00:00");
        let now = Utc::now();
        let day = Duration::days(1);
        assert_eq!(checked_later(now, day), Some(now + day));
        assert_eq!(checked_later(latest(), Duration::seconds(1)), None);
        assert_eq!(checked_later(now, Duration::MAX), None);
        assert_eq!(checked_later(now, Duration::days(-365 * 3000)), None);
        assert_eq!(later(now, day), now + day);
        assert_eq!(later(now, Duration::MAX), latest());
        assert_eq!(later(now, seconds(u64::MAX)), latest());
        assert_eq!(seconds(90), Duration::seconds(90));
        assert_eq!(seconds(u64::MAX), Duration::MAX);
        assert_eq!(seconds(i64::MAX as u64), Duration::MAX);
    }
}
