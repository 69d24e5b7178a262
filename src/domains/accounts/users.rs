//! User accounts: the `users` table and its two unique indexes (login and email, both compared
//! case-insensitively).

use super::{SESSIONS, SETTINGS, USER_EMAILS, USER_LOGINS, USER_NAMESPACES, USERS};
use crate::core::clock::Timestamp;
use crate::core::config::RegistrationMode;
use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::core::names::slug;
use crate::core::secrets::{constant_time_eq, hex, secret_hash};
use crate::core::store::{Store, StoreError, decode, encode};
use crate::domains::authz::{self, Caps, Kind, ObjectMeta};
use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: Id,
    pub login: String,
    #[serde(default)]
    pub email: Option<String>,
    /// argon2id PHC string.
    pub password_hash: String,
    pub confirmed: bool,
    /// SHA-256 (hex) of the confirmation token handed out at registration.
    #[serde(default)]
    pub confirm_token_hash: Option<String>,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub admin: bool,
    pub created: Timestamp,
}

/// What is needed to create an account. The password is already hashed (off the async threads).
pub struct NewUser {
    pub login: String,
    pub email: Option<String>,
    pub password_hash: String,
    pub confirmed: bool,
    pub confirm_token: Option<String>,
    pub admin: bool,
}

pub fn validate_login(login: &str) -> Result<()> {
    let ok = !login.is_empty()
        && login.len() <= 64
        && login
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && login
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::bad_request(
            "login must be 1-64 characters of letters, digits, '.', '_' or '-', starting with a \
             letter or digit",
        ))
    }
}

pub fn validate_email(email: &str) -> Result<()> {
    let ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::bad_request("email must look like name@example.org"))
    }
}

pub fn validate_password(password: &str) -> Result<()> {
    if password.chars().count() < 6 {
        return Err(Error::bad_request(
            "password must be at least 6 characters long",
        ));
    }
    if password.len() > 1024 {
        return Err(Error::bad_request(
            "password must be at most 1024 bytes long",
        ));
    }
    Ok(())
}

/// Creates an account, enforcing unique login and email (409 otherwise).
pub fn create_user(store: &Store, new: NewUser, now: Timestamp) -> Result<User> {
    validate_login(&new.login)?;
    if let Some(email) = &new.email {
        validate_email(email)?;
    }
    let user = User {
        id: Id::new(),
        login: new.login,
        email: new.email,
        password_hash: new.password_hash,
        confirmed: new.confirmed,
        confirm_token_hash: new.confirm_token.as_deref().map(|t| hex(&secret_hash(t))),
        disabled: false,
        admin: new.admin,
        created: now,
    };
    let txn = store.write()?;
    {
        let mut logins = txn.open_table(USER_LOGINS)?;
        let login_key = user.login.to_lowercase();
        if logins.get(login_key.as_str())?.is_some() {
            return Err(Error::conflict(format!(
                "login {:?} is already taken",
                user.login
            )));
        }
        logins.insert(login_key.as_str(), user.id.0)?;
        let namespace = slug(&user.login);
        let mut namespaces = txn.open_table(USER_NAMESPACES)?;
        if namespaces.get(namespace.as_str())?.is_some() {
            return Err(Error::conflict(format!(
                "login {:?} is too close to an existing one: logins that differ only in case, \
                 '.', '_' or '-' would share the registry namespace {namespace}/",
                user.login
            )));
        }
        namespaces.insert(namespace.as_str(), user.id.0)?;
        if let Some(email) = &user.email {
            let mut emails = txn.open_table(USER_EMAILS)?;
            let email_key = email.to_lowercase();
            if emails.get(email_key.as_str())?.is_some() {
                return Err(Error::conflict("this email is already registered"));
            }
            emails.insert(email_key.as_str(), user.id.0)?;
        }
        txn.open_table(USERS)?
            .insert(user.id.0, encode(&user)?.as_slice())?;
    }
    authz::create_object(
        &txn,
        &ObjectMeta {
            id: user.id,
            kind: Kind::User,
            owner: Some(user.id),
            created: now,
        },
    )?;
    // By default every user may discover other users (SPEC.md, DTaaS defaults).
    authz::grant(
        &txn,
        user.id,
        authz::ALL_USERS,
        Caps::of(&[authz::Capability::Discover]),
    )?;
    txn.commit()?;
    Ok(user)
}

/// The registry namespace of an account (`<namespace>/...` repositories are its alone).
pub fn namespace_of(store: &Store, account: Id) -> Result<Option<String>> {
    Ok(get_user(store, account)?.map(|u| slug(&u.login)))
}

/// Fills the namespace index of a database made before it existed (first come keeps a
/// namespace two old logins would share).
pub(super) fn index_namespaces(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut namespaces = txn.open_table(USER_NAMESPACES)?;
    if namespaces.first()?.is_some() {
        return Ok(());
    }
    let users = txn.open_table(USERS)?;
    for entry in users.iter()? {
        let (id, v) = entry?;
        let user: User = decode(v.value())?;
        let namespace = slug(&user.login);
        if namespaces.get(namespace.as_str())?.is_none() {
            namespaces.insert(namespace.as_str(), id.value())?;
        }
    }
    Ok(())
}

pub fn get_user(store: &Store, id: Id) -> Result<Option<User>> {
    let txn = store.read()?;
    let users = txn.open_table(USERS)?;
    match users.get(id.0)? {
        Some(v) => Ok(Some(decode(v.value())?)),
        None => Ok(None),
    }
}

pub fn find_user_by_login(store: &Store, login: &str) -> Result<Option<User>> {
    let txn = store.read()?;
    let logins = txn.open_table(USER_LOGINS)?;
    let Some(id) = logins
        .get(login.to_lowercase().as_str())?
        .map(|v| v.value())
    else {
        return Ok(None);
    };
    let users = txn.open_table(USERS)?;
    match users.get(id)? {
        Some(v) => Ok(Some(decode(v.value())?)),
        None => Ok(None),
    }
}

/// The users `caller` may DISCOVER (every user may discover every other through the grant to
/// `authz::ALL_USERS`, unless that user took it back), in login order (compared ignoring case):
/// those whose login starts with `prefix`, after the login `after`, at most `limit` of them, and
/// whether more may follow. Reads the login index from the position on: O(limit + the users in
/// the range the caller may not discover), whatever the number of users outside the range.
pub fn discoverable_users(
    store: &Store,
    caller: &authz::Principal,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<(Vec<User>, bool)> {
    use std::ops::Bound;
    let prefix = prefix.to_lowercase();
    let after = after.map(str::to_lowercase);
    let start = match &after {
        Some(a) if a.as_str() >= prefix.as_str() => Bound::Excluded(a.as_str()),
        _ => Bound::Included(prefix.as_str()),
    };
    let txn = store.read()?;
    let acl = authz::Acl::read(&txn)?;
    let logins = txn.open_table(USER_LOGINS)?;
    let users = txn.open_table(USERS)?;
    let mut out = Vec::new();
    for entry in logins.range::<&str>((start, Bound::Unbounded))? {
        let (login, id) = entry?;
        if !login.value().starts_with(prefix.as_str()) {
            break;
        }
        let id = Id(id.value());
        let Some(meta) = acl.object(id)? else {
            continue;
        };
        if !acl
            .caps(caller, &meta)?
            .contains(authz::Capability::Discover)
        {
            continue;
        }
        if out.len() == limit {
            return Ok((out, true));
        }
        if let Some(v) = users.get(id.0)? {
            out.push(decode(v.value())?);
        }
    }
    Ok((out, false))
}

pub fn list_users(store: &Store) -> Result<Vec<User>> {
    let txn = store.read()?;
    let users = txn.open_table(USERS)?;
    let mut out = Vec::new();
    for entry in users.iter()? {
        let (_, v) = entry?;
        out.push(decode(v.value())?);
    }
    Ok(out)
}

/// Loads a user by login inside a write transaction, changes it, and stores it back.
fn update_user(
    txn: &WriteTransaction,
    login: &str,
    change: impl FnOnce(&mut User),
) -> Result<User> {
    let id = txn
        .open_table(USER_LOGINS)?
        .get(login.to_lowercase().as_str())?
        .map(|v| v.value())
        .ok_or_else(|| Error::not_found(format!("no user with login {login:?}")))?;
    let mut users = txn.open_table(USERS)?;
    let mut user: User = match users.get(id)? {
        Some(v) => decode(v.value())?,
        None => return Err(Error::not_found(format!("no user with login {login:?}"))),
    };
    change(&mut user);
    users.insert(id, encode(&user)?.as_slice())?;
    Ok(user)
}

/// Activates an account with the token from registration. Unknown login and wrong token give
/// the same answer, so that the link cannot be used to probe for logins.
pub fn confirm(store: &Store, login: &str, token: &str) -> Result<User> {
    let invalid = || Error::not_found("unknown login or invalid confirmation token");
    let user = find_user_by_login(store, login)?.ok_or_else(invalid)?;
    let given = hex(&secret_hash(token));
    let matches = user
        .confirm_token_hash
        .as_deref()
        .is_some_and(|stored| constant_time_eq(stored.as_bytes(), given.as_bytes()));
    if !matches {
        return Err(invalid());
    }
    if user.confirmed {
        return Ok(user);
    }
    let txn = store.write()?;
    let user = update_user(&txn, login, |u| u.confirmed = true)?;
    txn.commit()?;
    Ok(user)
}

pub fn set_disabled(store: &Store, login: &str, disabled: bool) -> Result<User> {
    let txn = store.write()?;
    let user = update_user(&txn, login, |u| u.disabled = disabled)?;
    if disabled {
        delete_sessions_of(&txn, user.id)?;
    }
    txn.commit()?;
    Ok(user)
}

/// Confirms an account on an administrator's word (no token): it may sign in from then on.
pub fn set_confirmed(store: &Store, login: &str) -> Result<User> {
    let txn = store.write()?;
    let user = update_user(&txn, login, |u| {
        u.confirmed = true;
        u.confirm_token_hash = None;
    })?;
    txn.commit()?;
    Ok(user)
}

/// Makes an account an administrator, or takes that away. Its sessions follow at once: the
/// credential resolver reads the account on every request.
pub fn set_admin(store: &Store, login: &str, admin: bool) -> Result<User> {
    let txn = store.write()?;
    let user = update_user(&txn, login, |u| u.admin = admin)?;
    txn.commit()?;
    Ok(user)
}

/// Replaces a password (hashed by the caller) and ends the user's sessions.
pub fn set_password(store: &Store, login: &str, password_hash: String) -> Result<User> {
    let txn = store.write()?;
    let user = update_user(&txn, login, |u| {
        u.password_hash = password_hash;
        // An admin resetting a password vouches for the account.
        u.confirmed = true;
    })?;
    delete_sessions_of(&txn, user.id)?;
    txn.commit()?;
    Ok(user)
}

fn delete_sessions_of(txn: &WriteTransaction, user: Id) -> Result<()> {
    let mut sessions = txn.open_table(SESSIONS)?;
    let mut doomed = Vec::new();
    for entry in sessions.iter()? {
        let (k, v) = entry?;
        let s: super::Session = decode(v.value())?;
        if s.user == user {
            doomed.push(*k.value());
        }
    }
    for k in doomed {
        sessions.remove(&k)?;
    }
    Ok(())
}

/// The registration mode in force: an admin's setting in the database wins over the config file.
pub fn registration_mode(store: &Store, configured: RegistrationMode) -> Result<RegistrationMode> {
    Ok(match setting(store, "registration")? {
        Some(s) => s.parse().unwrap_or(configured),
        None => configured,
    })
}

pub fn set_registration_mode(store: &Store, mode: RegistrationMode) -> Result<()> {
    set_setting(store, "registration", mode.as_str())
}

/// A setting the appliance keeps in its database (changed at run time, survives restarts).
pub fn setting(store: &Store, key: &str) -> Result<Option<String>> {
    let txn = store.read()?;
    let settings = txn.open_table(SETTINGS)?;
    Ok(settings.get(key)?.map(|v| v.value().to_owned()))
}

/// How many settings [`settings`] answers at most (the appliance keeps a handful).
const MAX_SETTINGS: usize = 200;

/// The settings the appliance keeps in its database, by key (at most 200).
pub fn settings(store: &Store) -> Result<Vec<(String, String)>> {
    let txn = store.read()?;
    let table = txn.open_table(SETTINGS)?;
    let mut out = Vec::new();
    for entry in table.iter()?.take(MAX_SETTINGS) {
        let (k, v) = entry?;
        out.push((k.value().to_owned(), v.value().to_owned()));
    }
    Ok(out)
}

pub fn set_setting(store: &Store, key: &str, value: &str) -> Result<()> {
    let txn = store.write()?;
    txn.open_table(SETTINGS)?.insert(key, value)?;
    txn.commit()?;
    Ok(())
}

/// The checks a new account's fields must pass, before any hashing is spent on them.
pub fn validate_new_account(login: &str, email: Option<&str>, password: &str) -> Result<()> {
    validate_login(login)?;
    if let Some(email) = email {
        validate_email(email)?;
    }
    validate_password(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_user(store: &Store, login: &str) -> User {
        create_user(
            store,
            NewUser {
                login: login.into(),
                email: None,
                password_hash: "x".into(),
                confirmed: false,
                confirm_token: Some("token".into()),
                admin: false,
            },
            chrono::Utc::now(),
        )
        .unwrap()
    }

    #[test]
    fn an_administrator_confirms_promotes_and_demotes_accounts() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::domains::open_store(dir.path()).unwrap();
        new_user(&store, "Carol");
        let carol = set_confirmed(&store, "carol").unwrap();
        assert!(carol.confirmed && carol.confirm_token_hash.is_none());
        assert!(set_admin(&store, "carol", true).unwrap().admin);
        assert!(find_user_by_login(&store, "CAROL").unwrap().unwrap().admin);
        assert!(!set_admin(&store, "carol", false).unwrap().admin);
        assert!(matches!(
            set_confirmed(&store, "nobody"),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            set_admin(&store, "nobody", true),
            Err(Error::NotFound(_))
        ));
    }

    #[test]
    fn settings_are_listed_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::domains::open_store(dir.path()).unwrap();
        assert!(settings(&store).unwrap().is_empty());
        set_setting(&store, "z.last", "1").unwrap();
        set_registration_mode(&store, RegistrationMode::Closed).unwrap();
        assert_eq!(
            settings(&store).unwrap(),
            vec![
                ("registration".to_owned(), "closed".to_owned()),
                ("z.last".to_owned(), "1".to_owned())
            ]
        );
    }
}
