//! Login sessions, stored in redb under the SHA-256 of their token so that a copy of the
//! database does not hand out live sessions. They survive restarts and end after an idle timeout
//! or an absolute lifetime, whichever comes first.
//!
//! A session made by signing in on an app's own host (the app proxy's host form) is scoped to
//! that app: it is good for requests to that app alone, so that a cookie the app gets hold of
//! can never act on the appliance's API.

use super::SESSIONS;
use crate::core::clock::{self, Timestamp};
use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::core::secrets::{random_token, secret_hash};
use crate::core::store::{Store, decode, encode};
use chrono::Duration;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub user: Id,
    /// The one app (servable) the session is good for; `None`: the appliance itself.
    #[serde(default)]
    pub scope: Option<Id>,
    pub created: Timestamp,
    pub last_seen: Timestamp,
    pub expires: Timestamp,
}

#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    pub idle_timeout: Duration,
    pub lifetime: Duration,
}

impl SessionPolicy {
    /// `last_seen` is written at most this often, so that reading a session stays a pure read.
    const TOUCH_EVERY: i64 = 60;

    pub fn from_config(c: &crate::core::config::SessionConfig) -> SessionPolicy {
        SessionPolicy {
            idle_timeout: clock::seconds(c.idle_timeout_secs),
            lifetime: clock::seconds(c.lifetime_secs),
        }
    }
}

pub struct NewSession {
    /// The cookie value; shown once, never stored.
    pub token: String,
    pub session: Session,
}

pub fn create_session(
    store: &Store,
    user: Id,
    scope: Option<Id>,
    policy: &SessionPolicy,
    now: Timestamp,
) -> Result<NewSession> {
    let token = random_token();
    let session = Session {
        user,
        scope,
        created: now,
        last_seen: now,
        expires: clock::later(now, policy.lifetime),
    };
    let txn = store.write()?;
    txn.open_table(SESSIONS)?
        .insert(&secret_hash(&token), encode(&session)?.as_slice())?;
    txn.commit()?;
    Ok(NewSession { token, session })
}

pub fn delete_session(store: &Store, token: &str) -> Result<()> {
    let txn = store.write()?;
    txn.open_table(SESSIONS)?.remove(&secret_hash(token))?;
    txn.commit()?;
    Ok(())
}

/// A live session; ends expired ones on the way.
pub fn live_session(
    store: &Store,
    token: &str,
    policy: &SessionPolicy,
    now: Timestamp,
) -> Result<Session> {
    lookup(store, token, policy, now)
}

/// Finds a live session; ends expired ones on the way.
fn lookup(store: &Store, token: &str, policy: &SessionPolicy, now: Timestamp) -> Result<Session> {
    let key = secret_hash(token);
    let session: Option<Session> = {
        let txn = store.read()?;
        let table = txn.open_table(SESSIONS)?;
        match table.get(&key)? {
            Some(v) => Some(decode(v.value())?),
            None => None,
        }
    };
    let invalid = || Error::unauthorized("your session has ended; log in again");
    let mut session = session.ok_or_else(invalid)?;
    if now >= session.expires || now - session.last_seen > policy.idle_timeout {
        let txn = store.write()?;
        txn.open_table(SESSIONS)?.remove(&key)?;
        txn.commit()?;
        return Err(invalid());
    }
    if (now - session.last_seen).num_seconds() >= SessionPolicy::TOUCH_EVERY {
        session.last_seen = now;
        let txn = store.write_lazy()?;
        txn.open_table(SESSIONS)?
            .insert(&key, encode(&session)?.as_slice())?;
        txn.commit()?;
    }
    Ok(session)
}
