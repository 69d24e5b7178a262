//! API keys: random secrets shown once, stored as SHA-256, sent as `Authorization: Bearer`.
//! Every key belongs to a principal and is an object of the shared model (its owner may list and
//! revoke it; so may an admin).

use super::{API_KEY_HASHES, API_KEYS};
use crate::core::clock::{self, Timestamp};
use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::core::names;
use crate::core::page::{Page, PageRequest};
use crate::core::secrets::{hex, random_token, secret_hash};
use crate::core::store::{Store, decode, encode};
use crate::domains::authz::{self, Acl, Capability, Kind, ObjectMeta, Principal, PrincipalKind};
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

/// The prefix of every key: recognisable in logs and by secret scanners.
pub const KEY_PREFIX: &str = "dtaas_";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: Id,
    /// The principal the key acts for.
    pub principal: Id,
    pub name: String,
    /// SHA-256 (hex) of the secret.
    pub hash: String,
    pub created: Timestamp,
    #[serde(default)]
    pub expires: Option<Timestamp>,
}

pub struct NewApiKey {
    pub key: ApiKey,
    /// The secret itself, shown once.
    pub secret: String,
}

/// The most days a key may be asked to live (about a thousand years; a key without
/// `expires_in_days` lives until revoked). A fixed bound, which the OpenAPI document states:
/// the bound of the date (below) moves with the clock.
pub const MAX_EXPIRES_IN_DAYS: u32 = 365_000;

/// When a key asked for with `expires_in_days` expires: refused (400) for 0 days, beyond
/// [`MAX_EXPIRES_IN_DAYS`], and when that is after the last time the API can write
/// (9999-12-31T23:59:59Z, see `clock::latest`).
pub fn expiry_in_days(now: Timestamp, days: u32) -> Result<Timestamp> {
    if !(1..=MAX_EXPIRES_IN_DAYS).contains(&days) {
        return Err(Error::bad_request(format!(
            "expires_in_days must be from 1 to {MAX_EXPIRES_IN_DAYS} (leave it out for a key \
             that lives until revoked)"
        )));
    }
    chrono::Duration::try_days(i64::from(days))
        .and_then(|by| clock::checked_later(now, by))
        .ok_or_else(|| {
            let most = (clock::latest() - now).num_days();
            Error::bad_request(format!(
                "expires_in_days must be at most {most}: a key cannot expire after \
                 9999-12-31T23:59:59Z"
            ))
        })
}

/// A key the caller asks for (`POST /v1/api-keys`): users only. A servable acts with the key of
/// its instance, which is revoked when the instance ends; a key it could mint itself would
/// outlive it.
pub fn request_api_key(
    store: &Store,
    caller: &Principal,
    name: &str,
    expires: Option<Timestamp>,
    now: Timestamp,
) -> Result<NewApiKey> {
    if caller.kind == PrincipalKind::Servable {
        return Err(Error::forbidden(
            "a servable cannot create API keys: it acts with its instance's key, which ends \
             with the instance",
        ));
    }
    create_api_key(store, caller, name, expires, now)
}

/// Makes a key for `principal` (the appliance itself, e.g. for a servable's instance).
pub fn create_api_key(
    store: &Store,
    principal: &Principal,
    name: &str,
    expires: Option<Timestamp>,
    now: Timestamp,
) -> Result<NewApiKey> {
    let name = names::display_name(name)?;
    if expires.is_some_and(|e| e <= now) {
        return Err(Error::bad_request("expiry must be in the future"));
    }
    let secret = format!("{KEY_PREFIX}{}", random_token());
    let hash = secret_hash(&secret);
    let key = ApiKey {
        id: Id::new(),
        principal: principal.id,
        name: name.to_owned(),
        hash: hex(&hash),
        created: now,
        expires,
    };
    let txn = store.write()?;
    txn.open_table(API_KEYS)?
        .insert(key.id.0, encode(&key)?.as_slice())?;
    txn.open_table(API_KEY_HASHES)?.insert(&hash, key.id.0)?;
    authz::create_object(
        &txn,
        &ObjectMeta {
            id: key.id,
            kind: Kind::ApiKey,
            owner: Some(principal.id),
            created: now,
        },
    )?;
    txn.commit()?;
    Ok(NewApiKey { key, secret })
}

/// A page of the keys of one principal, oldest first.
pub fn list_api_keys(store: &Store, principal: Id, page: PageRequest) -> Result<Page<ApiKey>> {
    authz::own_page(store, API_KEYS, principal, Kind::ApiKey, page)
}

/// Revokes a key; needs DELETE on it.
pub fn revoke_api_key(store: &Store, caller: &Principal, id: Id) -> Result<()> {
    {
        let txn = store.read()?;
        Acl::read(&txn)?.check(caller, id, Kind::ApiKey, Capability::Delete)?;
    }
    delete_api_key(store, id)
}

/// Removes a key without asking who may (the appliance revoking an ended instance's key).
pub fn delete_api_key(store: &Store, id: Id) -> Result<()> {
    let txn = store.write()?;
    let key: Option<ApiKey> = match txn.open_table(API_KEYS)?.remove(id.0)? {
        Some(v) => Some(decode(v.value())?),
        None => None,
    };
    if let Some(key) = key {
        let mut hashes = txn.open_table(API_KEY_HASHES)?;
        let doomed: Vec<[u8; 32]> = hashes
            .iter()?
            .filter_map(|e| e.ok())
            .filter(|(_, v)| v.value() == key.id.0)
            .map(|(k, _)| *k.value())
            .collect();
        for h in doomed {
            hashes.remove(&h)?;
        }
    }
    authz::delete_object(&txn, id)?;
    txn.commit()?;
    Ok(())
}

/// The principal (a user or a servable) an API key acts for, if the key is live.
pub fn api_key_principal(store: &Store, secret: &str, now: Timestamp) -> Result<Id> {
    lookup(store, secret, now).map(|k| k.principal)
}

fn lookup(store: &Store, secret: &str, now: Timestamp) -> Result<ApiKey> {
    let invalid = || Error::unauthorized("invalid or revoked API key");
    if !secret.starts_with(KEY_PREFIX) {
        return Err(invalid());
    }
    let txn = store.read()?;
    let id = txn
        .open_table(API_KEY_HASHES)?
        .get(&secret_hash(secret))?
        .map(|v| v.value())
        .ok_or_else(invalid)?;
    let key: ApiKey = match txn.open_table(API_KEYS)?.get(id)? {
        Some(v) => decode(v.value())?,
        None => return Err(invalid()),
    };
    if key.expires.is_some_and(|e| now >= e) {
        return Err(Error::unauthorized("this API key has expired"));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expiry_in_days_is_within_the_documented_bounds() {
        let now = chrono::Utc::now();
        assert_eq!(
            expiry_in_days(now, 30).unwrap(),
            now + chrono::Duration::days(30)
        );
        let last = expiry_in_days(now, MAX_EXPIRES_IN_DAYS).unwrap();
        assert!(last <= clock::latest());
        for days in [0, MAX_EXPIRES_IN_DAYS + 1, 3_000_000, 95_005_449, u32::MAX] {
            let e = expiry_in_days(now, days).unwrap_err();
            assert!(matches!(e, Error::BadRequest(_)), "{days}: {e}");
            assert!(
                e.to_string()
                    .contains(&format!("from 1 to {MAX_EXPIRES_IN_DAYS}")),
                "{e}"
            );
        }
    }

    #[test]
    fn an_expiry_in_days_is_a_date_the_api_can_write() {
        // Late in the year 9999, fewer days are left than the documented bound.
        let now = clock::latest() - chrono::Duration::days(10);
        assert!(expiry_in_days(now, 10).unwrap() <= clock::latest());
        let e = expiry_in_days(now, 11).unwrap_err();
        assert!(matches!(e, Error::BadRequest(_)), "{e}");
        assert!(
            e.to_string().contains("expires_in_days must be at most 10"),
            "{e}"
        );
    }
}
