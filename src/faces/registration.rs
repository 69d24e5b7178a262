//! Registering an account, the one sequence every face that signs people up runs (kabuto's
//! `POST /register`, the dashboard's `/ui/register`): registration open, the login, email and
//! password valid, the login free (checked before hashing, so that a duplicate costs no argon2
//! hash; the write checks again), the per-address limit counted, then the hash and the write
//! on the blocking pool. The account is unconfirmed; the answer is its confirmation token.

use super::state::App;
use crate::core::config::RegistrationMode;
use crate::core::error::{Error, Result};
use crate::core::secrets::random_token;
use crate::domains::accounts::{self, NewUser};
use std::net::IpAddr;

/// Registers `login` from the client at `addr`; the confirmation token.
pub async fn register(
    app: &App,
    addr: IpAddr,
    login: String,
    email: String,
    password: String,
) -> Result<String> {
    if accounts::registration_mode(&app.store, app.config.registration)? == RegistrationMode::Closed
    {
        return Err(Error::forbidden(
            "registration is closed on this appliance; ask an administrator for an account",
        ));
    }
    accounts::validate_new_account(&login, Some(&email), &password)?;
    if accounts::find_user_by_login(&app.store, &login)?.is_some() {
        return Err(Error::conflict(format!("login {login:?} is already taken")));
    }
    // Counted before the hash, checked and counted in one step.
    app.registrations
        .admit(addr, app.now())
        .map_err(|retry_after| Error::RateLimited { retry_after })?;
    let token = random_token();
    let confirm_token = token.clone();
    app.blocking(move |app| {
        let password_hash = accounts::hash_password(&password)?;
        accounts::create_user(
            &app.store,
            NewUser {
                login,
                email: Some(email),
                password_hash,
                confirmed: false,
                confirm_token: Some(confirm_token),
                admin: false,
            },
            app.now(),
        )
    })
    .await?;
    Ok(token)
}
