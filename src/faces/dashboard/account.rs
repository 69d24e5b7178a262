//! The account pages: the sign-in page (served at `/login` by the kabuto face, which makes the
//! session; rendered here so that it has the dashboard's look), signing out, who you are,
//! changing the password, API keys (the secret shown once), and registering while registration
//! is open.

use super::format;
use super::html;
use super::page::{CsrfForm, Layout, PAGE_SIZE, Paging, Viewer, encode};
use crate::core::config::RegistrationMode;
use crate::core::error::{Error, Result};
use crate::core::page::PageRequest;
use crate::domains::accounts;
use crate::faces::auth::{ClientAddr, SESSION_COOKIE, session_cookie};
use crate::faces::body::FormOrJson;
use crate::faces::errors::{parse_id, status};
use crate::faces::listing::ListQuery;
use crate::faces::state::App;
use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

/// The cookie that carries a new API key's secret to the one page that shows it (then it is
/// cleared): the secret is never in a URL, and a reload no longer shows it.
const SECRET_COOKIE: &str = "dtaas_new_key";
const SECRET_PATH: &str = "/ui/account";

pub fn routes() -> Router<App> {
    Router::new()
        .route("/ui/logout", post(logout))
        .route("/ui/account", get(account))
        .route("/ui/account/password", post(change_password))
        .route("/ui/account/keys", post(create_key))
        .route("/ui/account/keys/{id}/revoke", post(revoke_key))
        .route("/ui/register", get(register_page).post(register))
        .route("/ui/register/confirm/{login}/{token}", get(confirm))
}

#[derive(Deserialize)]
struct Empty {}

/// Signs out: the session ends on the server, the cookie goes, and the sign-in page follows.
async fn logout(
    State(app): State<App>,
    headers: HeaderMap,
    CsrfForm(_viewer, Empty {}): CsrfForm<Empty>,
) -> Result<Response> {
    if let Some(Ok(token)) = session_cookie(&headers) {
        app.blocking(move |app| accounts::delete_session(&app.store, &token))
            .await?;
    }
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/login")]).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("dtaas_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"),
    );
    Ok(response)
}

// ---- the sign-in page ----

/// The sign-in page. It stands alone (no session, no navigation): on an app host (the proxy's
/// `/.dtaas/login`) every other path is the app's, so it links nothing of the appliance there,
/// not even the stylesheet.
#[derive(Template)]
#[template(path = "dashboard/account/login.html")]
struct SignIn<'a> {
    /// Served on the appliance's own host (not an app host).
    appliance: bool,
    action: &'a str,
    next: &'a str,
    login: &'a str,
    error: Option<String>,
    register: bool,
}

/// What the sign-in page needs to know about where it is served.
pub struct SignInPage<'a> {
    /// The path the form posts to: the path the page was served at (`/login`, `/.dtaas/login`).
    pub action: &'a str,
    /// Where the browser goes once signed in.
    pub next: &'a str,
    /// Served on an app host.
    pub app_host: bool,
}

impl SignInPage<'_> {
    /// The page, empty, or after a failed attempt with the login given and what went wrong
    /// (with the error's status, and `Retry-After` when the attempts ran out).
    pub fn render(&self, app: &App, login: &str, failed: Option<&Error>) -> Response {
        let register = !self.app_host && registration_open(app).unwrap_or(false);
        let page = SignIn {
            appliance: !self.app_host,
            action: self.action,
            next: self.next,
            login,
            error: failed.map(Error::public_message),
            register,
        };
        let code = failed.map_or(StatusCode::OK, status);
        let mut response = match html(&page) {
            Ok(page) => (code, page).into_response(),
            Err(e) => return e.into_response(),
        };
        if let Some(Error::RateLimited { retry_after }) = failed {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        no_store(&mut response);
        response
    }
}

fn registration_open(app: &App) -> Result<bool> {
    Ok(accounts::registration_mode(&app.store, app.config.registration)? == RegistrationMode::Open)
}

/// Pages with secrets or a password field are not kept by caches or the browser's history.
fn no_store(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

// ---- who you are, password, API keys ----

struct Me {
    id: String,
    login: String,
    email: String,
    admin: bool,
    created: String,
}

struct KeyRow {
    id: String,
    short: String,
    name: String,
    created: String,
    expires: String,
}

/// What a form on the account page got wrong, shown next to its fields.
#[derive(Default)]
struct Problems {
    current: Option<String>,
    new: Option<String>,
    key: Option<String>,
    /// What the key form held, given back when it is refused.
    key_name: String,
    key_days: String,
}

#[derive(Template)]
#[template(path = "dashboard/account/account.html")]
struct AccountPage {
    layout: Layout,
    me: Me,
    keys: Vec<KeyRow>,
    next: Option<String>,
    /// A key's secret, right after it was made (shown once).
    secret: Option<String>,
    problems: Problems,
}

/// Who the viewer is, the password form, and its API keys; right after a key was made, its
/// secret (from its cookie, which this answer clears).
async fn account(
    State(app): State<App>,
    viewer: Viewer,
    headers: HeaderMap,
    q: ListQuery,
) -> Result<Response> {
    let paging = Paging::of(&q)?;
    let secret = cookie_of(&headers, SECRET_COOKIE).filter(|s| s.starts_with(accounts::KEY_PREFIX));
    let shown = secret.is_some();
    let (code, page) = account_page(
        &app,
        viewer,
        paging,
        secret,
        Problems::default(),
        StatusCode::OK,
    )
    .await?;
    let mut response = (code, page).into_response();
    no_store(&mut response);
    if shown {
        let clear =
            format!("{SECRET_COOKIE}=; Path={SECRET_PATH}; Max-Age=0; HttpOnly; SameSite=Strict");
        if let Ok(v) = HeaderValue::from_str(&clear) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(response)
}

/// The account page: the viewer, its keys (a page of them), and what a refused form got wrong.
async fn account_page(
    app: &App,
    viewer: Viewer,
    paging: Paging,
    secret: Option<String>,
    problems: Problems,
    code: StatusCode,
) -> Result<(StatusCode, Html<String>)> {
    let principal = viewer.principal.clone();
    let request = paging.request;
    let (user, keys) = app
        .listing(move |app| {
            let user = accounts::get_user(&app.store, principal.id)?
                .ok_or_else(|| Error::not_found("User not found"))?;
            let keys = accounts::list_api_keys(&app.store, principal.id, request)?;
            Ok((user, keys))
        })
        .await?;
    let next = paging.next("/ui/account", &[], &keys);
    let page = AccountPage {
        layout: viewer.layout("Account", "account"),
        me: Me {
            id: user.id.to_string(),
            login: user.login,
            email: user.email.unwrap_or_default(),
            admin: user.admin,
            created: format::time(&user.created),
        },
        keys: keys
            .items
            .into_iter()
            .map(|k| KeyRow {
                id: k.id.to_string(),
                short: format::short(&k.id),
                name: k.name,
                created: format::time(&k.created),
                expires: k
                    .expires
                    .as_ref()
                    .map_or_else(|| "never".to_owned(), format::time),
            })
            .collect(),
        next,
        secret,
        problems,
    };
    Ok((code, html(&page)?))
}

/// The first page of keys, for the page a refused form answers with.
fn first_page() -> Paging {
    Paging {
        request: PageRequest {
            after: None,
            limit: PAGE_SIZE,
        },
    }
}

/// A cookie's value, percent-decoded.
fn cookie_of(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, v)| *n == name && !v.is_empty())
        .and_then(|(_, value)| {
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_str(&format!("v={value}")).ok()?;
            pairs.into_iter().next().map(|(_, v)| v)
        })
}

#[derive(Deserialize)]
struct PasswordForm {
    current: String,
    new: String,
    again: String,
}

/// Changes the viewer's password: the current one is checked by the one password-login
/// sequence (its failed-login limiter counts wrong guesses), the new one must pass the rules
/// of a new account. Every session of the account ends, as when an administrator resets it;
/// this browser gets a new one, so it stays signed in.
async fn change_password(
    State(app): State<App>,
    ClientAddr(addr): ClientAddr,
    CsrfForm(viewer, form): CsrfForm<PasswordForm>,
) -> Result<Response> {
    let refuse = |viewer: Viewer, problems: Problems, code: StatusCode| {
        let app = app.clone();
        async move {
            let (code, page) =
                account_page(&app, viewer, first_page(), None, problems, code).await?;
            let mut response = (code, page).into_response();
            no_store(&mut response);
            Ok::<Response, Error>(response)
        }
    };
    if form.new != form.again {
        let problems = Problems {
            new: Some("the two new passwords differ: type the same one twice".into()),
            ..Problems::default()
        };
        return refuse(viewer, problems, StatusCode::BAD_REQUEST).await;
    }
    let login = viewer.principal.name.clone();
    // The login was checked when the account was made: only the password can fail here.
    if let Err(e) = accounts::validate_new_account(&login, None, &form.new) {
        let problems = Problems {
            new: Some(e.public_message()),
            ..Problems::default()
        };
        return refuse(viewer, problems, status(&e)).await;
    }
    let now = app.now();
    let changed = app
        .blocking(move |app| {
            let user = app
                .logins
                .login(&app.store, addr, &login, &form.current, now)?;
            let hash = accounts::hash_password(&form.new)?;
            accounts::set_password(&app.store, &user.login, hash)?;
            accounts::create_session(&app.store, user.id, None, &app.sessions, now)
        })
        .await;
    let session = match changed {
        Ok(session) => session,
        Err(Error::Unauthorized(_)) => {
            let problems = Problems {
                current: Some("this is not your current password".into()),
                ..Problems::default()
            };
            return refuse(viewer, problems, StatusCode::FORBIDDEN).await;
        }
        Err(e @ Error::RateLimited { .. }) => {
            let problems = Problems {
                current: Some(e.public_message()),
                ..Problems::default()
            };
            let mut response = refuse(viewer, problems, status(&e)).await?;
            if let Error::RateLimited { retry_after } = e {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            return Ok(response);
        }
        Err(e) => return Err(e),
    };
    let mut response = viewer.see_other(
        "/ui/account",
        "Password changed. Every other session of this account is signed out.",
    );
    let max_age = (session.session.expires - now).num_seconds().max(0);
    let cookie = cookie::Cookie::build((SESSION_COOKIE, session.token))
        .http_only(true)
        .secure(app.config.tls_enabled())
        .same_site(cookie::SameSite::Lax)
        .path("/")
        .max_age(cookie::time::Duration::seconds(max_age))
        .build();
    if let Ok(v) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(response)
}

#[derive(Deserialize)]
struct KeyForm {
    name: String,
    #[serde(default)]
    expires_in_days: String,
}

/// Makes an API key; the page it leads to shows the secret once.
async fn create_key(
    State(app): State<App>,
    CsrfForm(viewer, form): CsrfForm<KeyForm>,
) -> Result<Response> {
    let now = app.now();
    let days = form.expires_in_days.trim();
    let expires = if days.is_empty() {
        Ok(None)
    } else {
        days.parse::<u32>()
            .map_err(|_| {
                Error::bad_request(format!(
                    "expires in days: a whole number of days from 1 to {} (leave it empty for \
                     a key that lives until revoked)",
                    accounts::MAX_EXPIRES_IN_DAYS
                ))
            })
            .and_then(|d| accounts::expiry_in_days(now, d).map(Some))
    };
    let principal = viewer.principal.clone();
    let name = form.name.clone();
    let created = match expires {
        Ok(expires) => {
            app.blocking(move |app| {
                accounts::request_api_key(&app.store, &principal, &name, expires, now)
            })
            .await
        }
        Err(e) => Err(e),
    };
    let created = match created {
        Ok(created) => created,
        Err(e @ Error::BadRequest(_)) => {
            let problems = Problems {
                key: Some(e.public_message()),
                key_name: form.name,
                key_days: form.expires_in_days,
                ..Problems::default()
            };
            let (code, page) = account_page(
                &app,
                viewer,
                first_page(),
                None,
                problems,
                StatusCode::BAD_REQUEST,
            )
            .await?;
            return Ok((code, page).into_response());
        }
        Err(e) => return Err(e),
    };
    let mut response = viewer.see_other(
        "/ui/account",
        &format!(
            "API key \"{}\" created. Copy its secret now: it is not shown again.",
            created.key.name
        ),
    );
    let cookie = format!(
        "{SECRET_COOKIE}={}; Path={SECRET_PATH}; Max-Age=60; HttpOnly; SameSite=Strict{}",
        encode(&created.secret),
        if app.config.tls_enabled() {
            "; Secure"
        } else {
            ""
        }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// Revokes a key (DELETE on it, as `DELETE /v1/api-keys/{id}`).
async fn revoke_key(
    State(app): State<App>,
    Path(id): Path<String>,
    CsrfForm(viewer, Empty {}): CsrfForm<Empty>,
) -> Result<Response> {
    let id = parse_id(&id, "API key")?;
    let principal = viewer.principal.clone();
    app.blocking(move |app| accounts::revoke_api_key(&app.store, &principal, id))
        .await?;
    Ok(viewer.see_other("/ui/account", "API key revoked: it no longer works."))
}

// ---- registration ----

#[derive(Template)]
#[template(path = "dashboard/account/register.html")]
struct RegisterPage {
    appliance: bool,
    open: bool,
    login: String,
    email: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/account/registered.html")]
struct RegisteredPage {
    appliance: bool,
    login: String,
    confirm: String,
}

#[derive(Template)]
#[template(path = "dashboard/account/confirmed.html")]
struct ConfirmedPage {
    appliance: bool,
    login: String,
}

async fn register_page(State(app): State<App>) -> Result<Html<String>> {
    let open = app.blocking(registration_open).await?;
    html(&RegisterPage {
        appliance: true,
        open,
        login: String::new(),
        email: String::new(),
        error: None,
    })
}

#[derive(Deserialize)]
struct RegisterForm {
    login: String,
    email: String,
    password: String,
    again: String,
}

/// Registers an account as `POST /register` does (the same checks in the same order, the same
/// limit per client address), unconfirmed; the answer is the page with its confirmation link.
/// There is no session yet, so no CSRF token: what a forged form could do here, `/register`
/// takes from any client anyway.
async fn register(
    State(app): State<App>,
    ClientAddr(addr): ClientAddr,
    FormOrJson(form): FormOrJson<RegisterForm>,
) -> Result<Response> {
    let login = form.login.trim().to_owned();
    let email = form.email.trim().to_owned();
    let refuse = |e: Error, open: bool| {
        let page = RegisterPage {
            appliance: true,
            open,
            login: login.clone(),
            email: email.clone(),
            error: Some(e.public_message()),
        };
        let mut response = match html(&page) {
            Ok(page) => (status(&e), page).into_response(),
            Err(e) => return e.into_response(),
        };
        if let Error::RateLimited { retry_after } = e {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        no_store(&mut response);
        response
    };
    if !app.blocking(registration_open).await? {
        return Ok(refuse(
            Error::forbidden(
                "registration is closed on this appliance; ask an administrator for an account",
            ),
            false,
        ));
    }
    if form.password != form.again {
        return Ok(refuse(
            Error::bad_request("the two passwords differ: type the same one twice"),
            true,
        ));
    }
    let made = crate::faces::registration::register(
        &app,
        addr,
        login.clone(),
        email.clone(),
        form.password,
    )
    .await;
    let token = match made {
        Ok(token) => token,
        Err(
            e @ (Error::Conflict(_)
            | Error::BadRequest(_)
            | Error::Forbidden(_)
            | Error::RateLimited { .. }),
        ) => return Ok(refuse(e, true)),
        Err(e) => return Err(e),
    };
    let page = RegisteredPage {
        appliance: true,
        confirm: format!("/ui/register/confirm/{}/{}", encode(&login), encode(&token)),
        login,
    };
    let mut response = html(&page)?.into_response();
    no_store(&mut response);
    Ok(response)
}

/// Confirms an account with the token from registration, as `GET /register/confirm/...`
/// does; an unknown login and a wrong token are the same 404.
async fn confirm(
    State(app): State<App>,
    Path((login, token)): Path<(String, String)>,
) -> Result<Html<String>> {
    let user = app
        .blocking(move |app| accounts::confirm(&app.store, &login, &token))
        .await?;
    html(&ConfirmedPage {
        appliance: true,
        login: user.login,
    })
}
