//! Who is calling the registry. `docker login` sends Basic credentials with every request:
//! a password is verified with argon2 once and then remembered for a few minutes by the
//! SHA-256 of the credential (checked against the account's current password hash, so a reset
//! ends it); an API key (`dtaas_...`, as password or Bearer token) is a hash lookup anyway. A
//! session cookie works too (a browser). Anonymous requests get the 401 challenge.

use super::error::{RResult, RegistryError};
use crate::accounts::{self, secret_hash};
use crate::authz::Principal;
use crate::id::Id;
use crate::server::App;
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};
use base64::Engine as _;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

const REMEMBER: Duration = Duration::from_secs(300);
const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
pub struct CredentialCache {
    entries: Mutex<HashMap<[u8; 32], (Id, String, Instant)>>,
}

impl CredentialCache {
    fn get(&self, key: &[u8; 32]) -> Option<(Id, String)> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .filter(|(_, _, until)| *until > Instant::now())
            .map(|(id, hash, _)| (*id, hash.clone()))
    }

    fn put(&self, key: [u8; 32], user: Id, password_hash: String) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES {
            let now = Instant::now();
            entries.retain(|_, (_, _, until)| *until > now);
        }
        entries.insert(key, (user, password_hash, Instant::now() + REMEMBER));
    }
}

/// The caller, or the 401 challenge.
pub async fn authenticate(app: &App, headers: &HeaderMap, addr: IpAddr) -> RResult<Principal> {
    let now = app.now();
    if let Some(value) = headers.get(AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| RegistryError::unauthorized("malformed Authorization header"))?;
        let (scheme, credential) = value.split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            return Ok(accounts::authenticate_api_key(
                &app.store,
                credential.trim(),
                now,
            )?);
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(RegistryError::unauthorized(
                "unsupported authorization scheme",
            ));
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credential.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| RegistryError::unauthorized("malformed Basic credentials"))?;
        let (login, secret) = decoded
            .split_once(':')
            .ok_or_else(|| RegistryError::unauthorized("malformed Basic credentials"))?;
        if secret.starts_with(accounts::KEY_PREFIX) {
            return Ok(accounts::authenticate_api_key(&app.store, secret, now)?);
        }
        return password(app, login, secret, addr).await;
    }
    let session = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == crate::api::auth::SESSION_COOKIE)
        .map(|(_, v)| v.to_owned());
    match session {
        Some(token) => Ok(accounts::authenticate_session(
            &app.store,
            &token,
            &app.sessions,
            now,
        )?),
        None => Err(RegistryError::unauthorized("authentication required")),
    }
}

async fn password(app: &App, login: &str, secret: &str, addr: IpAddr) -> RResult<Principal> {
    let key = secret_hash(&format!("{login}\u{0}{secret}"));
    if let Some((id, hash)) = app.registry.credentials.get(&key)
        && let Some(user) = accounts::get_user(&app.store, id)?
        && user.password_hash == hash
    {
        return Ok(accounts::user_principal(&user)?);
    }
    let now = app.now();
    if let Some(retry_after) = app.limiter.blocked_for(addr, login, now) {
        return Err(crate::Error::RateLimited { retry_after }.into());
    }
    let (login_owned, secret_owned) = (login.to_owned(), secret.to_owned());
    let user = app
        .blocking(move |app| {
            let user = accounts::find_user_by_login(&app.store, &login_owned)?;
            Ok(match user {
                Some(u) if accounts::verify_password(&secret_owned, &u.password_hash) => Some(u),
                Some(_) => None,
                None => {
                    accounts::burn_verification(&secret_owned);
                    None
                }
            })
        })
        .await?;
    let Some(user) = user else {
        app.limiter.record_failure(addr, login, now);
        return Err(RegistryError::unauthorized("invalid login or password"));
    };
    if !user.confirmed {
        return Err(RegistryError::unauthorized(
            "this account is not confirmed yet",
        ));
    }
    app.limiter.record_success(login);
    let principal = accounts::user_principal(&user)?;
    app.registry
        .credentials
        .put(key, user.id, user.password_hash.clone());
    Ok(principal)
}
