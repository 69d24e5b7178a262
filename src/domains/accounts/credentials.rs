//! The one password-login sequence, used by every face that takes a password: kabuto's
//! `POST /login` (and the app proxy's sign-in page, which is the same route), and the registry's
//! Basic credentials. Same limits, same order, same answers everywhere:
//!
//! 1. refused with 429 while the client address or the login is at its failure limit; else the
//!    attempt is counted as a failure of both, up front, under the limiter's lock (so however
//!    many arrive at once, no more than the limits reach the hashing);
//! 2. the password verified with argon2 (an unknown login costs the same, so it cannot be told
//!    from a wrong password by timing); a wrong one stays counted and is 401;
//! 3. a correct password clears the login's failures and gives the address its count back; then
//!    an account not confirmed yet, or disabled, is refused with 403 and a message saying which.
//!
//! `docker login` sends Basic credentials with every registry request, so a success through
//! [`PasswordLogins::login_remembering`] is remembered for a few minutes, keyed by the SHA-256 of
//! the credential and checked against the account's current password hash (a reset ends it):
//! later requests cost a hash lookup, not argon2.

use super::{LoginLimiter, User, burn_verification, find_user_by_login, get_user, verify_password};
use crate::core::clock::Timestamp;
use crate::core::config::LoginLimitConfig;
use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::core::secrets::secret_hash;
use crate::core::store::Store;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

const REMEMBER: Duration = Duration::from_secs(300);

/// What a remembered credential is found by: the SHA-256 of login and password.
fn remember_key(login: &str, password: &str) -> [u8; 32] {
    secret_hash(&format!("{login}\u{0}{password}"))
}
const MAX_REMEMBERED: usize = 10_000;

/// Password logins: the failed-login limiter and the remembered Basic credentials.
pub struct PasswordLogins {
    limiter: LoginLimiter,
    remembered: Mutex<HashMap<[u8; 32], (Id, String, Instant)>>,
}

impl PasswordLogins {
    pub fn new(limits: &LoginLimitConfig) -> PasswordLogins {
        PasswordLogins {
            limiter: LoginLimiter::new(limits),
            remembered: Mutex::new(HashMap::new()),
        }
    }

    /// The login sequence (see the module). CPU-heavy: call from a blocking thread.
    pub fn login(
        &self,
        store: &Store,
        addr: IpAddr,
        login: &str,
        password: &str,
        now: Timestamp,
    ) -> Result<User> {
        let attempt = self
            .limiter
            .reserve(addr, login, now)
            .map_err(|retry_after| Error::RateLimited { retry_after })?;
        let found = match find_user_by_login(store, login) {
            Ok(found) => found,
            Err(e) => {
                self.limiter.abandoned(attempt);
                return Err(e);
            }
        };
        let verified = match found {
            Some(user) if verify_password(password, &user.password_hash) => Some(user),
            Some(_) => None,
            None => {
                burn_verification(password);
                None
            }
        };
        let Some(user) = verified else {
            self.limiter.failed(attempt);
            return Err(Error::unauthorized("invalid login or password"));
        };
        self.limiter.succeeded(attempt);
        if !user.confirmed {
            return Err(Error::forbidden(
                "this account is not confirmed yet: open the confirmation link \
                 (/register/confirm/<login>/<token>) first",
            ));
        }
        if user.disabled {
            return Err(Error::forbidden("this account is disabled"));
        }
        Ok(user)
    }

    /// The account of a credential that succeeded in the last few minutes, if it still has
    /// that password (and is still enabled): a hash lookup, cheap enough for the async
    /// threads. `None` when the credential must go through [`PasswordLogins::login_remembering`].
    pub fn remembered(&self, store: &Store, login: &str, password: &str) -> Result<Option<User>> {
        let Some((id, hash)) = self.recall(&remember_key(login, password)) else {
            return Ok(None);
        };
        match get_user(store, id)? {
            Some(user) if user.password_hash == hash => {
                if user.disabled {
                    return Err(Error::forbidden("this account is disabled"));
                }
                Ok(Some(user))
            }
            _ => Ok(None),
        }
    }

    /// [`PasswordLogins::login`], remembering a success for a few minutes. CPU-heavy: call
    /// from a blocking thread.
    pub fn login_remembering(
        &self,
        store: &Store,
        addr: IpAddr,
        login: &str,
        password: &str,
        now: Timestamp,
    ) -> Result<User> {
        let user = self.login(store, addr, login, password, now)?;
        self.remember(
            remember_key(login, password),
            user.id,
            user.password_hash.clone(),
        );
        Ok(user)
    }

    fn recall(&self, key: &[u8; 32]) -> Option<(Id, String)> {
        let entries = self
            .remembered
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .filter(|(_, _, until)| *until > Instant::now())
            .map(|(id, hash, _)| (*id, hash.clone()))
    }

    fn remember(&self, key: [u8; 32], user: Id, password_hash: String) {
        let mut entries = self
            .remembered
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_REMEMBERED {
            let now = Instant::now();
            entries.retain(|_, (_, _, until)| *until > now);
        }
        entries.insert(key, (user, password_hash, Instant::now() + REMEMBER));
    }
}
