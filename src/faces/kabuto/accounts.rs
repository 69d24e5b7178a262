//! Accounts on the kabuto face (seed 003): registering, confirming, logging in and out (also the
//! app proxy's sign-in page), and `GET /` as the authenticated probe. Field names and JSON
//! shapes are the seed's.

use crate::core::error::{Error, Result};
use crate::domains::accounts;
use crate::faces::auth::{AppHost, Auth, ClientAddr, SESSION_COOKIE};
use crate::faces::body::FormOrJson;
use crate::faces::dashboard::account::SignInPage;
use crate::faces::state::App;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::Deserialize;
use serde_json::{Value, json};

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/", get(root))
        .route("/register", post(register))
        .route("/register/confirm/{login}/{token}", get(confirm))
        .route("/login", post(login).get(login_page))
        // On an app host the proxy leaves these to the appliance (see `proxy::host_layer`).
        .route("/.dtaas/login", post(login).get(login_page))
        .route("/.dtaas/logout", post(logout))
        .route("/logout", post(logout))
}

#[derive(Deserialize)]
struct RegisterForm {
    login: String,
    password: String,
    email: String,
}

/// Registers an account (unconfirmed; the answer carries the confirmation token). Each costs an
/// argon2 hash: at most `registration_limit.per_address` per client address in a window, 429
/// with `Retry-After` beyond.
async fn register(
    State(app): State<App>,
    ClientAddr(addr): ClientAddr,
    FormOrJson(form): FormOrJson<RegisterForm>,
) -> Result<Json<Value>> {
    let token =
        crate::faces::registration::register(&app, addr, form.login, form.email, form.password)
            .await?;
    Ok(Json(json!({ "status": "success", "token": token })))
}

async fn confirm(
    State(app): State<App>,
    Path((login, token)): Path<(String, String)>,
) -> Result<Json<Value>> {
    app.blocking(move |app| accounts::confirm(&app.store, &login, &token))
        .await?;
    Ok(Json(json!({ "status": "success" })))
}

#[derive(Deserialize)]
struct LoginForm {
    login: String,
    password: String,
    /// Where a browser goes once logged in (a path on this host), e.g. back to an app.
    #[serde(default)]
    next: Option<String>,
}

/// A path on this host, not another site (`//evil`, `/\evil` and absolute URLs are refused).
fn safe_next(next: Option<&str>) -> Option<&str> {
    next.filter(|n| {
        n.starts_with('/')
            && !n.starts_with("//")
            && !n.contains('\\')
            // Browsers drop tabs and newlines from URLs: `/%09/evil` would become `//evil`.
            && !n.bytes().any(|b| b < 0x20 || b == 0x7f)
    })
}

#[derive(Deserialize)]
struct LoginPageQuery {
    next: Option<String>,
}

/// Where a browser goes once signed in when the page was given nowhere (or somewhere that is
/// not a path on this host): the dashboard, or on an app host the app's own page.
fn default_next(app_host: bool) -> &'static str {
    if app_host { "/" } else { "/ui" }
}

/// The browser's sign-in page (the dashboard's look; the app proxy sends people here too). It
/// posts to the path it was served at (on an app host the proxy maps `/.dtaas/login` there),
/// which returns to `next`.
async fn login_page(
    State(app): State<App>,
    app_host: Option<axum::Extension<AppHost>>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    axum::extract::Query(q): axum::extract::Query<LoginPageQuery>,
) -> axum::response::Response {
    let app_host = app_host.is_some();
    let page = SignInPage {
        action: uri.path(),
        next: safe_next(q.next.as_deref()).unwrap_or(default_next(app_host)),
        app_host,
    };
    page.render(&app, "", None)
}

/// Logs in: a session cookie. On an app's own host (the proxy's `/.dtaas/login`), the session
/// is good for that app alone. A browser's form that fails gets the sign-in page again, with
/// what went wrong; any other client gets kabuto's JSON error.
async fn login(
    State(app): State<App>,
    ClientAddr(addr): ClientAddr,
    app_host: Option<axum::Extension<AppHost>>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    jar: CookieJar,
    headers: axum::http::HeaderMap,
    FormOrJson(form): FormOrJson<LoginForm>,
) -> Result<axum::response::Response> {
    use axum::response::IntoResponse;
    let now = app.now();
    let scope = app_host.map(|axum::Extension(AppHost(id))| id);
    let (login, password) = (form.login.clone(), form.password);
    let session = app
        .blocking(move |app| {
            let user = app.logins.login(&app.store, addr, &login, &password, now)?;
            accounts::create_session(&app.store, user.id, scope, &app.sessions, now)
        })
        .await;
    let session = match session {
        Ok(session) => session,
        Err(e) if wants_html(&headers) && crate::faces::body::is_urlencoded(&headers) => {
            let page = SignInPage {
                action: uri.path(),
                next: safe_next(form.next.as_deref()).unwrap_or(default_next(scope.is_some())),
                app_host: scope.is_some(),
            };
            return Ok(page.render(&app, &form.login, Some(&e)));
        }
        Err(e) => return Err(e),
    };
    let max_age = (session.session.expires - now).num_seconds().max(0);
    // Secure over TLS: a browser then never sends it over plain HTTP (e.g. to the redirect
    // listener).
    let cookie = Cookie::build((SESSION_COOKIE, session.token))
        .http_only(true)
        .secure(app.config.tls_enabled())
        .same_site(SameSite::Lax)
        .path("/")
        .max_age(cookie::time::Duration::seconds(max_age))
        .build();
    let jar = jar.add(cookie);
    Ok(match safe_next(form.next.as_deref()) {
        Some(next) => (jar, axum::response::Redirect::to(next)).into_response(),
        // A browser's form without a place to return to: the dashboard (an app host's own
        // page on an app host).
        None if wants_html(&headers) => {
            let home = if scope.is_some() { "/" } else { "/ui" };
            (jar, axum::response::Redirect::to(home)).into_response()
        }
        None => (jar, Json(json!({ "login": "success" }))).into_response(),
    })
}

async fn logout(State(app): State<App>, jar: CookieJar) -> Result<(CookieJar, Json<Value>)> {
    if let Some(token) = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned()) {
        app.blocking(move |app| accounts::delete_session(&app.store, &token))
            .await?;
    }
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/").build());
    Ok((jar, Json(json!({ "logout": "success" }))))
}

/// Whether a request comes from a browser asking for a page (`Accept` names `text/html`), as
/// opposed to curl or a script (`*/*`, JSON).
fn wants_html(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|kind| {
            kind.split(';')
                .next()
                .is_some_and(|k| k.trim().eq_ignore_ascii_case("text/html"))
        })
}

/// `/`: a browser goes to the dashboard when its session is live, else to the sign-in page;
/// anything else gets kabuto's probe (seed 003).
async fn root(
    State(app): State<App>,
    ClientAddr(addr): ClientAddr,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response> {
    use axum::response::{IntoResponse, Redirect};
    let credential = crate::faces::auth::standard_credential(&headers);
    let signed_in = match credential {
        Ok(c) => Some(
            crate::faces::auth::resolve(&app, c, addr, crate::faces::auth::Scope::Appliance).await,
        ),
        Err(e) => {
            if wants_html(&headers) {
                None
            } else {
                return Err(e);
            }
        }
    };
    if wants_html(&headers) {
        return Ok(match signed_in {
            Some(Ok(_)) => Redirect::to("/ui").into_response(),
            _ => Redirect::to("/login?next=/ui").into_response(),
        });
    }
    match signed_in {
        Some(Ok(principal)) => Ok(whoami(Auth(principal)).await.into_response()),
        Some(Err(e)) => Err(e),
        None => Err(Error::unauthorized("not logged in")),
    }
}

/// The authenticated probe: 200 with who you are, 401 otherwise.
async fn whoami(Auth(principal): Auth) -> Json<Value> {
    Json(json!({ "status": "ok", "login": principal.name, "id": principal.id }))
}
