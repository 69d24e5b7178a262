//! Accounts: users, registration and confirmation, passwords, the one password-login sequence
//! with its failed-login limiter, sessions, API keys, and the appliance's run-time settings.
//! Owns the tables below. Turning presented credentials into a principal is the faces' shared
//! resolver (`faces::auth`), which calls in here.

mod admin_log;
mod api_keys;
mod credentials;
mod limiter;
mod password;
mod sessions;
mod users;

pub use admin_log::{AdminAction, admin_actions, record_admin_action};
pub use api_keys::{
    ApiKey, KEY_PREFIX, MAX_EXPIRES_IN_DAYS, NewApiKey, api_key_principal, create_api_key,
    delete_api_key, expiry_in_days, list_api_keys, request_api_key, revoke_api_key,
};
pub use credentials::PasswordLogins;
pub use limiter::LoginLimiter;
pub use limiter::RegistrationLimiter;
pub use password::{burn_verification, hash_password, verify_password};
pub use sessions::{
    NewSession, Session, SessionPolicy, create_session, delete_session, live_session,
};
pub use users::{
    NewUser, User, confirm, create_user, discoverable_users, find_user_by_login, get_user,
    list_users, namespace_of, registration_mode, set_admin, set_confirmed, set_disabled,
    set_password, set_registration_mode, set_setting, setting, settings, validate_new_account,
};

use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::core::store::{Opening, Store, StoreError};
use crate::domains::authz::{self, Acl, Kind, Principal, PrincipalKind};
use redb::{TableDefinition, WriteTransaction};

pub(crate) const USERS: TableDefinition<u128, &[u8]> = TableDefinition::new("users");
pub(crate) const USER_LOGINS: TableDefinition<&str, u128> = TableDefinition::new("user_logins");
pub(crate) const USER_EMAILS: TableDefinition<&str, u128> = TableDefinition::new("user_emails");
pub(crate) const SESSIONS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("sessions");
pub(crate) const API_KEYS: TableDefinition<u128, &[u8]> = TableDefinition::new("api_keys");
pub(crate) const API_KEY_HASHES: TableDefinition<&[u8; 32], u128> =
    TableDefinition::new("api_key_hashes");
pub(crate) const SETTINGS: TableDefinition<&str, &str> = TableDefinition::new("settings");
/// Administrators' actions (see `admin_log`): id (time-ordered) -> `AdminAction`.
pub(crate) const ADMIN_LOG: TableDefinition<u128, &[u8]> = TableDefinition::new("admin_log");
/// A login's registry namespace (`core::names::slug` of it) -> the user: unique, so that logins
/// differing only in case, `.`, `_` or `-` cannot share one.
pub(crate) const USER_NAMESPACES: TableDefinition<&str, u128> =
    TableDefinition::new("user_namespaces");

pub(crate) fn init_tables(txn: &WriteTransaction, _: Opening) -> Result<(), StoreError> {
    txn.open_table(USERS)?;
    txn.open_table(USER_LOGINS)?;
    txn.open_table(USER_EMAILS)?;
    txn.open_table(SESSIONS)?;
    txn.open_table(API_KEYS)?;
    txn.open_table(API_KEY_HASHES)?;
    txn.open_table(SETTINGS)?;
    txn.open_table(ADMIN_LOG)?;
    users::index_namespaces(txn)
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

/// A principal named by id, login or `everyone` (every user): a user, servable or trust that
/// exists and that `caller` can see (404 otherwise, alike for missing and invisible).
pub fn principal_named(store: &Store, caller: &Principal, name: &str) -> Result<Id> {
    if name == "everyone" {
        return Ok(authz::ALL_USERS);
    }
    let unknown = || Error::not_found("no such user, servable or trust");
    let id = match Id::parse(name) {
        Some(id) => id,
        None => find_user_by_login(store, name)?
            .map(|u| u.id)
            .ok_or_else(unknown)?,
    };
    let txn = store.read()?;
    let acl = Acl::read(&txn)?;
    match acl.object(id)? {
        Some(meta)
            if matches!(meta.kind, Kind::User | Kind::Servable | Kind::Trust)
                && acl.visible(caller, &meta)? =>
        {
            Ok(id)
        }
        _ => Err(unknown()),
    }
}
