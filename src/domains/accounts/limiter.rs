//! Failed-login limiting, per client address and per login name, in fixed windows.
//!
//! Only failures count; a success clears the login's counter. Kept in memory: a restart forgets
//! the counters, which costs an attacker a restart per window and keeps the database out of the
//! hot path of a password-guessing flood.

use crate::core::clock::Timestamp;
use crate::core::config::LoginLimitConfig;
use chrono::Duration;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

#[derive(Debug)]
pub struct LoginLimiter {
    per_login: u32,
    per_address: u32,
    window: Duration,
    windows: Mutex<HashMap<String, (Timestamp, u32)>>,
}

/// Entries kept before stale ones are swept.
const SWEEP_AT: usize = 10_000;

impl LoginLimiter {
    pub fn new(config: &LoginLimitConfig) -> LoginLimiter {
        LoginLimiter {
            per_login: config.per_login,
            per_address: config.per_address,
            window: Duration::seconds(i64::try_from(config.window_secs).unwrap_or(i64::MAX / 1000)),
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn keys(addr: IpAddr, login: &str) -> [(String, u32); 2] {
        [
            (format!("addr:{addr}"), 0),
            (format!("login:{}", login.to_lowercase()), 1),
        ]
    }

    /// Seconds to wait before the next attempt is allowed, if blocked.
    pub fn blocked_for(&self, addr: IpAddr, login: &str, now: Timestamp) -> Option<u64> {
        let windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        Self::keys(addr, login)
            .into_iter()
            .filter_map(|(key, which)| {
                let limit = if which == 0 {
                    self.per_address
                } else {
                    self.per_login
                };
                let (start, count) = windows.get(&key)?;
                let ends = *start + self.window;
                (count >= &limit && ends > now)
                    .then(|| u64::try_from((ends - now).num_seconds().max(1)).unwrap_or(1))
            })
            .max()
    }

    pub fn record_failure(&self, addr: IpAddr, login: &str, now: Timestamp) {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if windows.len() >= SWEEP_AT {
            let window = self.window;
            windows.retain(|_, (start, _)| *start + window > now);
        }
        for (key, _) in Self::keys(addr, login) {
            let entry = windows.entry(key).or_insert((now, 0));
            if entry.0 + self.window <= now {
                *entry = (now, 0);
            }
            entry.1 += 1;
        }
    }

    pub fn record_success(&self, login: &str) {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        windows.remove(&format!("login:{}", login.to_lowercase()));
    }
}
