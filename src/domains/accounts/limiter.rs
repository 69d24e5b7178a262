//! Rate limits kept in memory, in fixed windows: failed logins per client address and per login
//! name ([`LoginLimiter`]), registrations per client address ([`RegistrationLimiter`]); both
//! count in [`Windows`].
//!
//! Kept in memory: a restart forgets the counters, which costs an attacker a restart per window
//! and keeps the database out of the hot path of a flood.

use crate::core::clock::{self, Timestamp};
use crate::core::config::{LoginLimitConfig, RegistrationLimitConfig};
use chrono::Duration;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

/// Entries kept before stale ones are swept.
const SWEEP_AT: usize = 10_000;

/// Counters per key in fixed windows: a key's window starts with its first count and lasts
/// `window`; a key at its limit is blocked until its window ends.
#[derive(Debug)]
pub struct Windows {
    window: Duration,
    counts: HashMap<String, (Timestamp, u32)>,
}

impl Windows {
    pub fn new(window_secs: u64) -> Windows {
        Windows {
            window: clock::seconds(window_secs),
            counts: HashMap::new(),
        }
    }

    /// When a window that started at `start` ends (a window of "forever" ends never).
    fn ends(&self, start: Timestamp) -> Timestamp {
        clock::later(start, self.window)
    }

    /// Seconds until `key` may count again, if it has reached `limit` in its window.
    pub fn blocked_for(&self, key: &str, limit: u32, now: Timestamp) -> Option<u64> {
        let (start, count) = self.counts.get(key)?;
        let ends = self.ends(*start);
        (*count >= limit && ends > now)
            .then(|| u64::try_from((ends - now).num_seconds().max(1)).unwrap_or(1))
    }

    /// Counts one for `key` (a new window if its last one ended); returns when the window it
    /// counted in started.
    pub fn count(&mut self, key: &str, now: Timestamp) -> Timestamp {
        if self.counts.len() >= SWEEP_AT {
            let window = self.window;
            self.counts
                .retain(|_, (start, _)| clock::later(*start, window) > now);
        }
        let ends = self.counts.get(key).map(|(start, _)| self.ends(*start));
        let entry = self.counts.entry(key.to_owned()).or_insert((now, 0));
        if ends.is_some_and(|ends| ends <= now) {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.0
    }

    /// Counts one for `key` unless it has reached `limit`: `Err(seconds to wait)` then. The
    /// check and the count are one step, so callers holding the lock cannot overshoot. Returns
    /// when the window it counted in started.
    pub fn take(&mut self, key: &str, limit: u32, now: Timestamp) -> Result<Timestamp, u64> {
        if limit == 0 {
            return Err(u64::try_from(self.window.num_seconds().max(1)).unwrap_or(1));
        }
        if let Some(wait) = self.blocked_for(key, limit, now) {
            return Err(wait);
        }
        Ok(self.count(key, now))
    }

    /// Takes back one count of `key` made in the window that started at `window`; a count of
    /// a window that has been replaced since stays where it was.
    pub fn give_back(&mut self, key: &str, window: Timestamp) {
        if let Some((start, count)) = self.counts.get_mut(key)
            && *start == window
        {
            *count = count.saturating_sub(1);
        }
    }

    pub fn forget(&mut self, key: &str) {
        self.counts.remove(key);
    }
}

#[cfg(test)]
impl Windows {
    fn len(&self) -> usize {
        self.counts.len()
    }

    fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

/// Failed logins per client address and per login name.
///
/// An attempt is counted as a failure before its password is hashed ([`LoginLimiter::reserve`],
/// checked and counted under one lock), and a correct password gives its count back
/// ([`LoginLimiter::succeeded`]: the login's failures are cleared, the address's count taken
/// back). So at most `per_login` attempts on a login and `per_address` attempts from an address
/// reach argon2 in a window, however many arrive at once. A limit of 0 counts as 1.
#[derive(Debug)]
pub struct LoginLimiter {
    per_login: u32,
    per_address: u32,
    windows: Mutex<Windows>,
}

/// An attempt counted ahead of its verdict (see [`LoginLimiter::reserve`]): where its counts
/// went, to give them back.
#[derive(Debug)]
#[must_use = "an attempt ends as succeeded, failed or abandoned"]
pub struct Attempt {
    address: (String, Timestamp),
    login: (String, Timestamp),
}

impl LoginLimiter {
    pub fn new(config: &LoginLimitConfig) -> LoginLimiter {
        LoginLimiter {
            per_login: config.per_login.max(1),
            per_address: config.per_address.max(1),
            windows: Mutex::new(Windows::new(config.window_secs)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Windows> {
        self.windows.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn login_key(login: &str) -> String {
        format!("login:{}", login.to_lowercase())
    }

    fn address_key(addr: IpAddr) -> String {
        format!("addr:{addr}")
    }

    /// Counts an attempt from `addr` on `login` as a failure of both, before its password is
    /// checked; or refuses it with the seconds to wait when either has reached its limit (then
    /// nothing is counted).
    pub fn reserve(&self, addr: IpAddr, login: &str, now: Timestamp) -> Result<Attempt, u64> {
        let (address, login) = (Self::address_key(addr), Self::login_key(login));
        let mut windows = self.lock();
        let wait = [
            windows.blocked_for(&address, self.per_address, now),
            windows.blocked_for(&login, self.per_login, now),
        ]
        .into_iter()
        .flatten()
        .max();
        if let Some(wait) = wait {
            return Err(wait);
        }
        let address_window = windows.count(&address, now);
        let login_window = windows.count(&login, now);
        Ok(Attempt {
            address: (address, address_window),
            login: (login, login_window),
        })
    }

    /// A wrong password: the attempt stays counted.
    pub fn failed(&self, attempt: Attempt) {
        let _ = attempt;
    }

    /// A correct password: the login's failures are cleared and the address's count given
    /// back.
    pub fn succeeded(&self, attempt: Attempt) {
        let mut windows = self.lock();
        windows.forget(&attempt.login.0);
        windows.give_back(&attempt.address.0, attempt.address.1);
    }

    /// No verdict (the database failed): both counts are given back.
    pub fn abandoned(&self, attempt: Attempt) {
        let mut windows = self.lock();
        windows.give_back(&attempt.login.0, attempt.login.1);
        windows.give_back(&attempt.address.0, attempt.address.1);
    }
}

/// Registrations per client address (each costs an argon2 hash): at most `per_address` in a
/// window. An IPv6 client counts by its /64, the block one host usually holds.
#[derive(Debug)]
pub struct RegistrationLimiter {
    per_address: u32,
    windows: Mutex<Windows>,
}

impl RegistrationLimiter {
    pub fn new(config: &RegistrationLimitConfig) -> RegistrationLimiter {
        RegistrationLimiter {
            per_address: config.per_address,
            windows: Mutex::new(Windows::new(config.window_secs)),
        }
    }

    fn key(addr: IpAddr) -> String {
        match addr {
            IpAddr::V4(v4) => format!("addr:{v4}"),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => format!("addr:{v4}"),
                None => {
                    let s = v6.segments();
                    format!("addr:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
                }
            },
        }
    }

    /// Counts a registration from `addr`, or refuses it: `Err(seconds to wait)` once the
    /// address has registered `per_address` times in its window. Checked and counted under one
    /// lock, so concurrent requests cannot get past the limit.
    pub fn admit(&self, addr: IpAddr, now: Timestamp) -> Result<(), u64> {
        self.windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(&Self::key(addr), self.per_address, now)
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(secs: i64) -> Timestamp {
        chrono::Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn a_key_is_blocked_at_its_limit_until_its_window_ends() {
        let mut w = Windows::new(60);
        assert_eq!(w.blocked_for("k", 2, at(0)), None);
        w.count("k", at(0));
        assert_eq!(w.blocked_for("k", 2, at(1)), None);
        w.count("k", at(10));
        // The window started with the first count: it ends at 60.
        assert_eq!(w.blocked_for("k", 2, at(10)), Some(50));
        assert_eq!(w.blocked_for("k", 2, at(59)), Some(1));
        assert_eq!(w.blocked_for("k", 2, at(60)), None);
        assert_eq!(w.blocked_for("other", 2, at(10)), None, "keys are apart");
        // A count after the window starts a new one.
        w.count("k", at(61));
        assert_eq!(w.blocked_for("k", 2, at(62)), None);
        w.forget("k");
        assert!(w.is_empty());
    }

    #[test]
    fn take_checks_and_counts_in_one_step() {
        let mut w = Windows::new(100);
        assert_eq!(w.take("k", 3, at(0)), Ok(at(0)));
        assert_eq!(w.take("k", 3, at(1)), Ok(at(0)));
        assert_eq!(w.take("k", 3, at(2)), Ok(at(0)));
        assert_eq!(w.take("k", 3, at(3)), Err(97));
        assert_eq!(w.take("k", 3, at(99)), Err(1));
        // Refusals do not count: the window still ends at 100.
        assert_eq!(w.take("k", 3, at(100)), Ok(at(100)));
        assert_eq!(
            w.take("new", 0, at(100)),
            Err(100),
            "a limit of 0 refuses all"
        );
    }

    #[test]
    fn stale_windows_are_swept_when_the_map_is_full() {
        let mut w = Windows::new(10);
        for i in 0..SWEEP_AT {
            w.count(&format!("k{i}"), at(0));
        }
        assert_eq!(w.len(), SWEEP_AT);
        w.count("fresh", at(20));
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn registrations_are_limited_per_address() {
        let limiter = RegistrationLimiter::new(&RegistrationLimitConfig {
            per_address: 2,
            window_secs: 3600,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(limiter.admit(a, at(0)), Ok(()));
        assert_eq!(limiter.admit(a, at(1)), Ok(()));
        assert_eq!(limiter.admit(a, at(2)), Err(3598));
        assert_eq!(limiter.admit(b, at(2)), Ok(()), "another address");
        assert_eq!(limiter.admit(a, at(3600)), Ok(()), "a new window");
    }

    #[test]
    fn an_ipv6_client_counts_by_its_64() {
        let limiter = RegistrationLimiter::new(&RegistrationLimitConfig {
            per_address: 1,
            window_secs: 3600,
        });
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(limiter.admit(one, at(0)), Ok(()));
        assert!(limiter.admit(same_64, at(0)).is_err());
        assert_eq!(limiter.admit(other_64, at(0)), Ok(()));
        // An IPv4 address written as IPv6 is that IPv4 address.
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(limiter.admit(v4, at(0)), Ok(()));
        assert!(limiter.admit(mapped, at(0)).is_err());
    }

    #[test]
    fn concurrent_registrations_never_pass_the_limit() {
        let limiter = std::sync::Arc::new(RegistrationLimiter::new(&RegistrationLimitConfig {
            per_address: 5,
            window_secs: 3600,
        }));
        let addr: IpAddr = "192.0.2.9".parse().unwrap();
        let threads: Vec<_> = (0..32)
            .map(|_| {
                let limiter = limiter.clone();
                std::thread::spawn(move || limiter.admit(addr, at(0)).is_ok())
            })
            .collect();
        let admitted = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|ok| *ok)
            .count();
        assert_eq!(admitted, 5);
    }

    #[test]
    fn failed_logins_are_limited_per_address_and_per_login() {
        let limiter = LoginLimiter::new(&LoginLimitConfig {
            per_login: 2,
            per_address: 3,
            window_secs: 60,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        limiter.failed(limiter.reserve(a, "Alice", at(0)).unwrap());
        limiter.failed(limiter.reserve(b, "alice", at(0)).unwrap());
        assert_eq!(
            limiter.reserve(a, "ALICE", at(0)).unwrap_err(),
            60,
            "per login"
        );
        // A success clears the login's failures and gives the address its count back.
        limiter.succeeded(limiter.reserve(a, "carol", at(0)).unwrap());
        limiter.succeeded(limiter.reserve(a, "carol", at(0)).unwrap());
        limiter.failed(limiter.reserve(a, "bob", at(1)).unwrap());
        limiter.failed(limiter.reserve(a, "frank", at(1)).unwrap());
        assert_eq!(
            limiter.reserve(a, "dave", at(2)).unwrap_err(),
            58,
            "per address: Alice, bob and frank failed from a; carol's successes do not count"
        );
        limiter.succeeded(limiter.reserve(b, "dave", at(2)).unwrap());
        // An abandoned attempt (no verdict) counts for neither.
        let c: IpAddr = "192.0.2.3".parse().unwrap();
        for _ in 0..10 {
            limiter.abandoned(limiter.reserve(c, "erin", at(3)).unwrap());
        }
        limiter.failed(limiter.reserve(c, "erin", at(3)).unwrap());
    }

    #[test]
    fn an_attempt_is_counted_before_its_verdict_so_concurrent_ones_never_pass_the_limit() {
        let limiter = std::sync::Arc::new(LoginLimiter::new(&LoginLimitConfig {
            per_login: 5,
            per_address: 20,
            window_secs: 600,
        }));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        // 32 attempts on one login at once, none with a verdict yet: 5 get through.
        let attempts: Vec<_> = (0..32)
            .map(|_| {
                let limiter = limiter.clone();
                std::thread::spawn(move || limiter.reserve(a, "alice", at(0)))
            })
            .map(|t| t.join().unwrap())
            .collect();
        let (through, refused): (Vec<_>, Vec<_>) = attempts.into_iter().partition(Result::is_ok);
        assert_eq!((through.len(), refused.len()), (5, 27));
        for attempt in through {
            limiter.failed(attempt.unwrap());
        }
        // Per address: 15 more on other logins, then the address is at its 20.
        for i in 0..15 {
            limiter.failed(limiter.reserve(a, &format!("u{i}"), at(1)).unwrap());
        }
        assert!(limiter.reserve(a, "zed", at(1)).is_err());
    }

    #[test]
    fn a_limit_of_zero_allows_one_attempt_and_a_huge_window_does_not_overflow() {
        let limiter = LoginLimiter::new(&LoginLimitConfig {
            per_login: 0,
            per_address: 0,
            window_secs: u64::MAX,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        limiter.failed(limiter.reserve(a, "alice", at(0)).unwrap());
        let wait = limiter.reserve(a, "alice", at(1)).unwrap_err();
        assert!(wait > 1_000_000_000, "{wait}");
    }

    #[test]
    fn a_count_given_back_is_taken_from_its_own_window_only() {
        let mut w = Windows::new(10);
        let first = w.count("k", at(0));
        w.count("k", at(1));
        w.give_back("k", first);
        assert_eq!(w.blocked_for("k", 2, at(2)), None);
        w.count("k", at(2));
        assert_eq!(w.blocked_for("k", 2, at(2)), Some(8));
        // A new window: a count of the old one is not taken back from it.
        let second = w.count("k", at(20));
        assert_ne!(first, second);
        w.count("k", at(21));
        w.give_back("k", first);
        assert_eq!(w.blocked_for("k", 2, at(22)), Some(8));
    }
}
