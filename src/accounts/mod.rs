//! Accounts: users, registration and confirmation, password logins, sessions, API keys, and the
//! failed-login limiter. Owns the tables below; HTTP lives in `api`, the admin face in `admin`.

mod api_keys;
mod limiter;
mod password;
mod sessions;
mod users;

pub use api_keys::{
    ApiKey, KEY_PREFIX, NewApiKey, create_api_key, delete_api_key, list_api_keys, revoke_api_key,
};
pub use limiter::LoginLimiter;
pub use password::{burn_verification, hash_password, verify_password};
pub use sessions::{NewSession, Session, SessionPolicy, create_session, delete_session};
pub use users::{
    NewUser, User, confirm, create_user, find_user_by_login, get_user, list_users,
    registration_mode, set_disabled, set_password, set_registration_mode, set_setting, setting,
    validate_new_account,
};

use crate::authz::{Principal, PrincipalKind};
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::store::{Store, StoreError};
use base64::Engine as _;
use rand::RngCore;
use redb::{TableDefinition, WriteTransaction};
use sha2::{Digest, Sha256};

pub(crate) const USERS: TableDefinition<u128, &[u8]> = TableDefinition::new("users");
pub(crate) const USER_LOGINS: TableDefinition<&str, u128> = TableDefinition::new("user_logins");
pub(crate) const USER_EMAILS: TableDefinition<&str, u128> = TableDefinition::new("user_emails");
pub(crate) const SESSIONS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("sessions");
pub(crate) const API_KEYS: TableDefinition<u128, &[u8]> = TableDefinition::new("api_keys");
pub(crate) const API_KEY_HASHES: TableDefinition<&[u8; 32], u128> =
    TableDefinition::new("api_key_hashes");
pub(crate) const SETTINGS: TableDefinition<&str, &str> = TableDefinition::new("settings");

pub(crate) fn init_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(USERS)?;
    txn.open_table(USER_LOGINS)?;
    txn.open_table(USER_EMAILS)?;
    txn.open_table(SESSIONS)?;
    txn.open_table(API_KEYS)?;
    txn.open_table(API_KEY_HASHES)?;
    txn.open_table(SETTINGS)?;
    Ok(())
}

/// A random secret: 32 bytes, URL-safe base64 without padding (43 characters).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored form of a high-entropy secret (session tokens, API keys, confirmation tokens).
/// These are random, so a fast hash is enough; passwords use argon2id.
pub fn secret_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Who holds a session token or an API key, checked against the account's current state.
pub fn authenticate_session(
    store: &Store,
    token: &str,
    policy: &SessionPolicy,
    now: Timestamp,
) -> Result<Principal> {
    let session = sessions::lookup(store, token, policy, now)?;
    principal_for(store, session.user)
}

pub fn authenticate_api_key(store: &Store, key: &str, now: Timestamp) -> Result<Principal> {
    let key = api_keys::lookup(store, key, now)?;
    principal_for(store, key.principal)
}

/// The principal behind credentials: a user, or a servable (whose keys its instances hold).
fn principal_for(store: &Store, id: crate::id::Id) -> Result<Principal> {
    let gone = || Error::unauthorized("the account behind these credentials is gone");
    match get_user(store, id)? {
        Some(user) => user_principal(&user),
        None => crate::servables::servable_principal(store, id)?.ok_or_else(gone),
    }
}

/// The principal of an account, unless it is disabled.
pub fn user_principal(user: &User) -> Result<Principal> {
    if user.disabled {
        return Err(Error::unauthorized("this account is disabled"));
    }
    Ok(Principal {
        id: user.id,
        kind: PrincipalKind::User,
        name: user.login.clone(),
        admin: user.admin,
        user: user.id,
    })
}
