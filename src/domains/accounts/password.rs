//! Password hashing: argon2id with the crate's default (OWASP) parameters, stored as a PHC string.

use crate::core::error::{Error, Result};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use std::sync::OnceLock;

/// Hashes a password. CPU-heavy (tens of milliseconds): call from a blocking thread.
pub fn hash_password(password: &str) -> Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::internal(format!("password hashing failed: {e}")))
}

/// Checks a password against a PHC string. CPU-heavy: call from a blocking thread.
pub fn verify_password(password: &str, phc: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

/// Spends the same effort as a real verification, so that unknown logins cannot be told from
/// wrong passwords by timing.
pub fn burn_verification(password: &str) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    if let Some(phc) =
        DUMMY.get_or_init(|| hash_password(&crate::core::secrets::random_token()).ok())
    {
        let _ = verify_password(password, phc);
    }
}
