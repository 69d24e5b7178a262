//! The OpenID Connect provider for apps. Every HTTP-type servable is a confidential client:
//! `client_id` is its id, its secret is mounted into its containers, and its redirect URIs are
//! its own addresses (`<id>.<apps-domain>` and `/apps/<id>/`). Each client authenticates at the
//! token endpoint (`client_secret_basic` or `client_secret_post`) and PKCE with S256 is required
//! of every authorization request. The issuer is the appliance's own origin.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /.well-known/openid-configuration` | discovery |
//! | `GET /oidc/jwks` | the public keys (ES256), retired ones while their tokens live |
//! | `GET /oidc/authorize`, `POST` (consent) | the code flow: sign-in page, REQUEST check, consent |
//! | `POST /oidc/token` | `authorization_code` and `refresh_token` grants |
//! | `GET`/`POST /oidc/userinfo` | the claims, for a Bearer access token |
//! | `GET /oidc/logout` | RP-initiated logout (`id_token_hint` required) |
//! | `POST /oidc/keys/rotate` | a new signing key (administrators) |
//!
//! Errors: before the redirect URI is known to be the client's, an HTML error page; after, a
//! redirect with `error=`; at the token endpoint `{"error", "error_description"}` (400, 401).

use super::auth::{self, Auth, Authorization, ClientAddr, Credential, SESSION_COOKIE, Scope};
use super::dashboard::page::{CsrfForm, Viewer, encode};
use super::dashboard::{self, html};
use super::errors;
use super::state::App;
use crate::core::clock;
use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::domains::accounts::{self, User};
use crate::domains::authz::{self, Acl, Capability, Kind, Principal};
use crate::domains::oidc::{self, CodeGrant};
use crate::domains::servables;
use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Redirect, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The largest query or form the provider reads.
const MAX_PARAMS: usize = 16 * 1024;
/// The longest parameter value it takes.
const MAX_VALUE: usize = 2048;

/// The provider's routes.
pub fn routes() -> Router<App> {
    let pages = Router::new()
        .route("/oidc/authorize", get(authorize).post(consent))
        .route("/oidc/logout", get(logout))
        .layer(middleware::from_fn(errors::catch_panic))
        .layer(middleware::from_fn(dashboard::render_errors))
        .layer(middleware::from_fn(form_action));
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/oidc/jwks", get(jwks))
        .route("/oidc/token", post(token))
        .route("/oidc/userinfo", get(userinfo).post(userinfo))
        .route("/oidc/keys/rotate", post(rotate))
        .merge(pages)
}

fn issuer(app: &App) -> String {
    oidc::issuer(
        &app.config.public_url,
        app.config.tls_enabled(),
        app.local_addr(),
    )
}

async fn discovery(State(app): State<App>) -> Json<Value> {
    let i = issuer(&app);
    Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/oidc/authorize"),
        "token_endpoint": format!("{i}/oidc/token"),
        "userinfo_endpoint": format!("{i}/oidc/userinfo"),
        "jwks_uri": format!("{i}/oidc/jwks"),
        "end_session_endpoint": format!("{i}/oidc/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "scopes_supported": ["openid", "profile", "email"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "preferred_username", "name",
            "email", "email_verified", "dtaas_capabilities"
        ],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
    }))
}

async fn jwks(State(app): State<App>) -> Result<Json<Value>> {
    let keys = app
        .blocking(|app| oidc::public_keys(&app.store, app.now()))
        .await?;
    let keys: Vec<Value> = keys.iter().map(oidc::PublicKey::jwk).collect();
    Ok(Json(json!({ "keys": keys })))
}

/// A new signing key (administrators); the old one stays in the JWKS while its tokens live.
async fn rotate(State(app): State<App>, Auth(principal): Auth) -> Result<Json<Value>> {
    authz::require_admin(&principal, "rotating the OpenID Connect signing key")?;
    let kid = app
        .blocking(|app| oidc::rotate_key(&app.store, app.now()))
        .await?;
    Ok(Json(json!({ "kid": kid })))
}

// ---- parameters ----

/// Parameters as a map: each at most once, each value bounded.
fn params_of(pairs: Vec<(String, String)>) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (k, v) in pairs {
        if v.len() > MAX_VALUE {
            return Err(Error::bad_request(format!("the parameter {k} is too long")));
        }
        if out.insert(k.clone(), v).is_some() {
            return Err(Error::bad_request(format!(
                "the parameter {k} is given more than once"
            )));
        }
    }
    Ok(out)
}

fn parse_params(raw: &[u8]) -> Result<BTreeMap<String, String>> {
    if raw.len() > MAX_PARAMS {
        return Err(Error::bad_request("too many parameters"));
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(raw)
        .map_err(|_| Error::bad_request("the parameters are not valid form encoding"))?;
    params_of(pairs)
}

// ---- clients and redirect URIs ----

/// The HTTP-type servable a `client_id` names.
fn client(app: &App, client_id: Option<&str>) -> Result<Option<servables::Servable>> {
    let Some(id) = client_id.and_then(Id::parse) else {
        return Ok(None);
    };
    Ok(servables::get_servable(&app.store, id)?.filter(|s| s.kind.serves_http() && !s.deleting))
}

/// Whether `uri` is one of the client's own addresses: under its host form
/// (`<id>.<apps-domain>`) or its path form (`<issuer>/apps/<id>/`), with no dot segments,
/// fragment or odd bytes.
fn redirect_allowed(app: &App, client: Id, uri: &str) -> bool {
    if uri.len() > MAX_VALUE
        || uri
            .bytes()
            .any(|b| b <= 0x20 || b >= 0x7f || matches!(b, b'#' | b'\\'))
    {
        return false;
    }
    let host_form = format!("{}/", app_origin(app, client));
    let path_form = format!("{}/apps/{client}/", issuer(app));
    let Some(rest) = uri
        .strip_prefix(&host_form)
        .or_else(|| uri.strip_prefix(&path_form))
    else {
        return false;
    };
    let path = rest.split('?').next().unwrap_or("").to_ascii_lowercase();
    !path.split('/').any(|seg| seg == "." || seg == "..")
        && !["%2e", "%2f", "%5c"].iter().any(|e| path.contains(e))
}

/// The host form origin of an app: the listener's scheme and port.
fn app_origin(app: &App, client: Id) -> String {
    let tls = app.config.tls_enabled();
    let default_port = if tls { 443 } else { 80 };
    let port = match app.local_addr().port() {
        p if p == default_port => String::new(),
        p => format!(":{p}"),
    };
    let domain = app.config.servables.apps_domain.trim_end_matches('.');
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{client}.{domain}{port}")
}

/// The origin of a URI this provider accepted (`scheme://authority`).
fn origin_of(uri: &str) -> &str {
    let after = uri.find("://").map_or(0, |i| i + 3);
    let end = uri[after..].find('/').map_or(uri.len(), |i| after + i);
    &uri[..end]
}

/// `uri` with `query` added.
fn with_query(uri: &str, query: &str) -> Response {
    let sep = if uri.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{uri}{sep}{query}")).into_response()
}

// ---- the authorization endpoint ----

/// An authorization request whose client and redirect URI are good.
struct AuthRequest {
    client: servables::Servable,
    redirect_uri: String,
    state: Option<String>,
    nonce: Option<String>,
    challenge: String,
    prompt: Prompt,
    /// The longest time since the user signed in that the app accepts (`max_age`, seconds).
    max_age: Option<u64>,
    /// The provider's ticket, when it sent the user to sign in again for this request
    /// (`oidc::reauth_ticket`): a sign-in after the ticket was made satisfies `prompt=login`
    /// and `max_age`.
    reauth: Option<String>,
    /// The parameters, for the consent form.
    fields: Vec<(&'static str, String)>,
}

/// What the request's `prompt` asks for.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Prompt {
    /// Nothing may be shown: an answer at once, or an error.
    none: bool,
    /// Sign in again (`login`; also `select_account`: one signs in as the other account).
    login: bool,
    /// Ask for consent even when it was given before.
    consent: bool,
}

impl Prompt {
    /// `prompt`'s space-separated values; `None` for one not understood or `none` with others.
    fn parse(value: Option<&str>) -> Option<Prompt> {
        let mut p = Prompt::default();
        let mut count = 0;
        for v in value.unwrap_or("").split(' ').filter(|v| !v.is_empty()) {
            count += 1;
            match v {
                "none" => p.none = true,
                "login" | "select_account" => p.login = true,
                "consent" => p.consent = true,
                _ => return None,
            }
        }
        (!p.none || count == 1).then_some(p)
    }
}

/// The provider's own parameter on the sign-in round trip (see [`AuthRequest`]).
const REAUTH: &str = "dtaas_reauth";

/// Why a request is refused: a page (the redirect URI is not trusted), or a redirect to it.
enum Refusal {
    Page(Error),
    Redirect(Response),
}

const FIELDS: [&str; 11] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    REAUTH,
];

fn check_request(
    app: &App,
    p: &BTreeMap<String, String>,
) -> Result<std::result::Result<AuthRequest, Refusal>> {
    let get = |k: &str| p.get(k).map(String::as_str);
    let Some(client) = client(app, get("client_id"))? else {
        return Ok(Err(Refusal::Page(Error::bad_request(
            "client_id does not name an app of this appliance",
        ))));
    };
    let Some(redirect_uri) = get("redirect_uri").filter(|u| redirect_allowed(app, client.id, u))
    else {
        return Ok(Err(Refusal::Page(Error::bad_request(
            "redirect_uri is missing or is not one of this app's own addresses",
        ))));
    };
    let state = get("state").map(str::to_owned);
    let refuse = |error: &str, why: &str| {
        let mut q = format!("error={error}&error_description={}", encode(why));
        if let Some(s) = &state {
            q.push_str(&format!("&state={}", encode(s)));
        }
        Ok(Err(Refusal::Redirect(with_query(redirect_uri, &q))))
    };
    if get("response_type") != Some("code") {
        return refuse(
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    if !get("scope").is_some_and(|s| s.split(' ').any(|s| s == "openid")) {
        return refuse("invalid_scope", "the scope must include openid");
    }
    let challenge = get("code_challenge").filter(|c| c.len() == 43 && oidc::pkce_shape(c, 43));
    let (Some(challenge), Some("S256")) = (challenge, get("code_challenge_method")) else {
        return refuse(
            "invalid_request",
            "PKCE is required: send code_challenge with code_challenge_method=S256",
        );
    };
    let nonce = get("nonce").map(str::to_owned);
    if nonce.as_ref().is_some_and(|n| n.len() > 512) {
        return refuse("invalid_request", "the nonce is too long");
    }
    let Some(prompt) = Prompt::parse(get("prompt")) else {
        return refuse(
            "invalid_request",
            "prompt: none (alone), or any of login, consent and select_account",
        );
    };
    let max_age = match get("max_age").map(str::parse::<u64>) {
        None => None,
        Some(Ok(age)) => Some(age),
        Some(Err(_)) => return refuse("invalid_request", "max_age: a whole number of seconds"),
    };
    let reauth = get(REAUTH).map(str::to_owned);
    let fields = FIELDS
        .iter()
        .filter_map(|k| p.get(*k).map(|v| (*k, v.clone())))
        .collect();
    Ok(Ok(AuthRequest {
        redirect_uri: redirect_uri.to_owned(),
        challenge: challenge.to_owned(),
        client,
        state,
        nonce,
        prompt,
        max_age,
        reauth,
        fields,
    }))
}

/// The capabilities `principal` holds on the app, when they include REQUEST.
fn capabilities(app: &App, principal: &Principal, client: Id) -> Result<Option<Vec<&'static str>>> {
    let txn = app.store.read()?;
    let acl = Acl::read(&txn)?;
    let Some(meta) = acl.object(client)?.filter(|m| m.kind == Kind::Servable) else {
        return Ok(None);
    };
    let caps = acl.caps(principal, &meta)?;
    Ok(caps
        .contains(Capability::Request)
        .then(|| caps.list().into_iter().map(Capability::as_str).collect()))
}

/// A code for the request, sent back to its redirect URI.
fn code_redirect(app: &App, req: &AuthRequest, viewer: &Viewer) -> Result<Response> {
    let grant = CodeGrant {
        client: req.client.id,
        user: viewer.principal.id,
        redirect_uri: req.redirect_uri.clone(),
        challenge: req.challenge.clone(),
        nonce: req.nonce.clone(),
        auth_time: Some(viewer.signed_in),
        expires: app.now(),
    };
    let code = oidc::issue_code(&app.store, grant, app.now())?;
    let mut q = format!("code={}", encode(&code));
    if let Some(s) = &req.state {
        q.push_str(&format!("&state={}", encode(s)));
    }
    q.push_str(&format!("&iss={}", encode(&issuer(app))));
    Ok(with_query(&req.redirect_uri, &q))
}

/// The consent page; its form may post here and its answer go to the app.
#[derive(Template)]
#[template(path = "oidc/consent.html")]
struct ConsentPage<'a> {
    appliance: bool,
    app_name: &'a str,
    app_id: String,
    login: &'a str,
    redirect_uri: &'a str,
    csrf: &'a str,
    fields: &'a [(&'static str, String)],
}

/// Where the consent form's answer may go (the CSP's `form-action`).
#[derive(Clone)]
struct FormTarget(String);

/// An error sent back to the app (the redirect URI is the client's).
fn refuse_to_app(req: &AuthRequest, error: &str, why: &str) -> Response {
    let mut q = format!("error={error}&error_description={}", encode(why));
    if let Some(s) = &req.state {
        q.push_str(&format!("&state={}", encode(s)));
    }
    with_query(&req.redirect_uri, &q)
}

/// The sign-in page, coming back to this request once the user has signed in: the request
/// as it was, with (when it asks for a fresh sign-in) a new ticket of the provider's, which a
/// sign-in made after it satisfies.
fn sign_in_again(
    app: &App,
    params: &BTreeMap<String, String>,
    req: &AuthRequest,
) -> Result<Response> {
    let mut query: Vec<(&str, String)> = FIELDS
        .iter()
        .filter(|k| **k != REAUTH)
        .filter_map(|k| params.get(*k).map(|v| (*k, v.clone())))
        .collect();
    if req.prompt.login || req.max_age.is_some() {
        let (client, uri, now) = (req.client.id, &req.redirect_uri, app.now());
        let ticket = oidc::reauth_ticket(&app.store, client, uri, &req.challenge, now)?;
        query.push((REAUTH, ticket));
    }
    let back = format!(
        "/oidc/authorize?{}",
        serde_urlencoded::to_string(&query).unwrap_or_default()
    );
    Ok(Redirect::to(&format!("/login?next={}", encode(&back))).into_response())
}

/// Checks the request and the user; `decided` is the consent form's answer.
async fn flow(
    app: &App,
    params: BTreeMap<String, String>,
    viewer: std::result::Result<Viewer, Error>,
    decided: Option<bool>,
) -> Result<Response> {
    let req = match check_request(app, &params)? {
        Ok(req) => req,
        Err(Refusal::Page(e)) => return Err(e),
        Err(Refusal::Redirect(r)) => return Ok(r),
    };
    // No session: the sign-in page, which comes back here (once: the sign-in it makes is
    // fresh for `prompt=login` and `max_age`); with `prompt=none`, an error for the app.
    let viewer = match viewer {
        Ok(viewer) => viewer,
        Err(Error::Unauthorized(_)) if req.prompt.none => {
            return Ok(refuse_to_app(
                &req,
                "login_required",
                "the user is not signed in",
            ));
        }
        Err(Error::Unauthorized(_)) => return sign_in_again(app, &params, &req),
        Err(e) => return Err(e),
    };
    let user = viewer.principal.id;
    if viewer.principal.kind != authz::PrincipalKind::User
        || capabilities(app, &viewer.principal, req.client.id)?.is_none()
    {
        if req.prompt.none {
            return Ok(refuse_to_app(
                &req,
                "access_denied",
                "the user may not use this app (signing in to it needs REQUEST on it)",
            ));
        }
        return Err(Error::forbidden(
            "you may not use this app: signing in to it needs REQUEST on it",
        ));
    }
    // A fresh sign-in asked for (`prompt=login`), or the last one too long ago (`max_age`):
    // satisfied only by a sign-in after the provider sent the user to sign in for this very
    // request (its ticket).
    let now = app.now();
    let asked = match &req.reauth {
        Some(ticket) => {
            let (client, uri) = (req.client.id, &req.redirect_uri);
            oidc::reauth_asked(&app.store, ticket, client, uri, &req.challenge, now)?
        }
        None => None,
    };
    let renewed = asked.is_some_and(|asked| viewer.signed_in >= asked);
    let too_old = req
        .max_age
        .is_some_and(|age| clock::later(viewer.signed_in, clock::seconds(age)) < now);
    if !renewed && (req.prompt.login || too_old) {
        if req.prompt.none {
            return Ok(refuse_to_app(
                &req,
                "login_required",
                "the user signed in longer ago than max_age allows",
            ));
        }
        return sign_in_again(app, &params, &req);
    }
    match decided {
        Some(true) => oidc::give_consent(&app.store, user, req.client.id)?,
        Some(false) => return Ok(refuse_to_app(&req, "access_denied", "the user said no")),
        None if req.prompt.none && !oidc::has_consent(&app.store, user, req.client.id)? => {
            return Ok(refuse_to_app(
                &req,
                "consent_required",
                "the user has not allowed this app yet",
            ));
        }
        None if req.prompt.consent || !oidc::has_consent(&app.store, user, req.client.id)? => {
            let page = ConsentPage {
                appliance: true,
                app_name: &req.client.name,
                app_id: req.client.id.to_string(),
                login: &viewer.principal.name,
                redirect_uri: &req.redirect_uri,
                csrf: &viewer.csrf,
                fields: &req.fields,
            };
            let mut response = html(&page)?.into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            let target = FormTarget(origin_of(&req.redirect_uri).to_owned());
            response.extensions_mut().insert(target);
            return Ok(response);
        }
        None => {}
    }
    code_redirect(app, &req, &viewer)
}

async fn authorize(
    State(app): State<App>,
    RawQuery(query): RawQuery,
    viewer: std::result::Result<Viewer, Error>,
) -> Result<Response> {
    let params = parse_params(query.unwrap_or_default().as_bytes())?;
    flow(&app, params, viewer, None).await
}

/// The consent form's answer (`decision` = `allow` or `deny`), with the request's parameters.
async fn consent(
    State(app): State<App>,
    CsrfForm(viewer, pairs): CsrfForm<Vec<(String, String)>>,
) -> Result<Response> {
    let params = params_of(pairs)?;
    let decided = match params.get("decision").map(String::as_str) {
        Some("allow") => true,
        Some("deny") => false,
        _ => return Err(Error::bad_request("decide: allow or deny")),
    };
    flow(&app, params, Ok(viewer), Some(decided)).await
}

/// The consent page's form posts here and is then redirected to the app: its CSP names both.
async fn form_action(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if let Some(FormTarget(origin)) = response.extensions_mut().remove::<FormTarget>() {
        let csp = format!(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; frame-ancestors 'none'; form-action 'self' {origin}; \
             base-uri 'none'"
        );
        if let Ok(v) = HeaderValue::from_str(&csp) {
            response
                .headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
    response
}

// ---- the token endpoint ----

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut response = (
        status,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"dtaas\""),
        );
    }
    response
}

fn bad(error: &str, description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, error, description)
}

fn invalid_client(description: &str) -> Response {
    oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description)
}

/// The client a token request authenticates as (Basic, or the form's `client_id` and
/// `client_secret`; not both).
fn authenticated_client(
    app: &App,
    headers: &HeaderMap,
    form: &BTreeMap<String, String>,
) -> Result<std::result::Result<servables::Servable, Response>> {
    let in_form = (form.get("client_id"), form.get("client_secret"));
    let (id, secret) = match (auth::authorization(headers), in_form) {
        (Authorization::Basic { .. }, (_, Some(_))) => {
            return Ok(Err(bad(
                "invalid_request",
                "use one way of client authentication",
            )));
        }
        (Authorization::Basic { login, secret }, (form_id, None)) => {
            if form_id.is_some_and(|f| *f != login) {
                return Ok(Err(invalid_client(
                    "client_id differs from the authenticated client",
                )));
            }
            (login, secret)
        }
        (Authorization::Absent, (Some(id), Some(secret))) => (id.clone(), secret.clone()),
        (Authorization::Absent, _) => {
            return Ok(Err(invalid_client("client authentication is required")));
        }
        _ => {
            return Ok(Err(invalid_client(
                "unreadable or unsupported Authorization header",
            )));
        }
    };
    let client = client(app, Some(&id))?;
    match client {
        Some(c) if oidc::client_secret_matches(&app.store, c.id, &secret)? => Ok(Ok(c)),
        _ => Ok(Err(invalid_client("unknown client or wrong secret"))),
    }
}

/// The user behind a grant, with the capabilities they hold on the app (REQUEST among them).
fn user_on(app: &App, user: Id, client: Id) -> Result<Option<(User, Vec<&'static str>)>> {
    let Some(user) = accounts::get_user(&app.store, user)? else {
        return Ok(None);
    };
    let Ok(principal) = accounts::user_principal(&user) else {
        return Ok(None);
    };
    Ok(capabilities(app, &principal, client)?.map(|caps| (user, caps)))
}

/// What the provider says of a user.
fn user_claims(user: &User, caps: &[&str]) -> Value {
    let mut claims = json!({
        "sub": user.id.to_string(),
        "preferred_username": user.login,
        "name": user.login,
        "email_verified": user.confirmed && user.email.is_some(),
        "dtaas_capabilities": caps,
    });
    if let Some(email) = &user.email {
        claims["email"] = json!(email);
    }
    claims
}

async fn token(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    if !crate::faces::body::is_urlencoded(&headers) {
        return bad(
            "invalid_request",
            "send the request as application/x-www-form-urlencoded",
        );
    }
    let form = match parse_params(&body) {
        Ok(form) => form,
        Err(e) => return bad("invalid_request", &e.public_message()),
    };
    let answer = app.blocking(move |app| grant(app, &headers, &form)).await;
    answer.unwrap_or_else(|e| {
        tracing::error!("the token endpoint: {e}");
        oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal error (see the server log)",
        )
    })
}

fn grant(app: &App, headers: &HeaderMap, form: &BTreeMap<String, String>) -> Result<Response> {
    let client = match authenticated_client(app, headers, form)? {
        Ok(c) => c,
        Err(response) => return Ok(response),
    };
    let get = |k: &str| form.get(k).map(String::as_str);
    let now = app.now();
    let (user, nonce, auth_time, refresh) = match get("grant_type") {
        Some("authorization_code") => {
            let (Some(code), Some(uri)) = (get("code"), get("redirect_uri")) else {
                return Ok(bad("invalid_request", "code and redirect_uri are required"));
            };
            let verifier = get("code_verifier").unwrap_or("");
            match oidc::redeem_code(&app.store, code, client.id, uri, verifier, now)? {
                Ok(g) => {
                    let refresh =
                        oidc::issue_refresh(&app.store, g.user, client.id, g.auth_time, now)?;
                    (g.user, g.nonce, g.auth_time, refresh)
                }
                Err(why) => return Ok(bad("invalid_grant", why)),
            }
        }
        Some("refresh_token") => {
            let Some(token) = get("refresh_token") else {
                return Ok(bad("invalid_request", "refresh_token is required"));
            };
            match oidc::rotate_refresh(&app.store, token, client.id, now)? {
                Ok((r, refresh)) => (r.grant.user, None, r.auth_time, refresh),
                Err(why) => return Ok(bad("invalid_grant", why)),
            }
        }
        _ => {
            return Ok(bad(
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token",
            ));
        }
    };
    let Some((user, caps)) = user_on(app, user, client.id)? else {
        return Ok(bad(
            "invalid_grant",
            "the user is gone, disabled, or may no longer use this app",
        ));
    };
    let mut claims = user_claims(&user, &caps);
    claims["iss"] = json!(issuer(app));
    claims["aud"] = json!(client.id.to_string());
    claims["iat"] = json!(now.timestamp());
    claims["exp"] = json!(now.timestamp() + oidc::TOKEN_SECS);
    if let Some(n) = nonce {
        claims["nonce"] = json!(n);
    }
    if let Some(t) = auth_time {
        claims["auth_time"] = json!(t.timestamp());
    }
    let id_token = oidc::sign(&app.store, &claims, now)?;
    let access = oidc::issue_access(&app.store, user.id, client.id, now)?;
    let body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": oidc::TOKEN_SECS,
        "id_token": id_token,
        "refresh_token": refresh,
        "scope": "openid profile email",
    });
    Ok((
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(body),
    )
        .into_response())
}

// ---- userinfo ----

async fn userinfo(State(app): State<App>, headers: HeaderMap) -> Response {
    let refused = || {
        let mut r = (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_token", "error_description": "a live access token is required"})),
        )
            .into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        r
    };
    let Authorization::Bearer(token) = auth::authorization(&headers) else {
        return refused();
    };
    let answer = app
        .blocking(move |app| {
            let Some(g) = oidc::access_grant(&app.store, &token, app.now())? else {
                return Ok(None);
            };
            Ok(user_on(app, g.user, g.client)?.map(|(user, caps)| user_claims(&user, &caps)))
        })
        .await;
    match answer {
        Ok(Some(claims)) => ([(header::CACHE_CONTROL, "no-store")], Json(claims)).into_response(),
        Ok(None) => refused(),
        Err(e) => {
            tracing::error!("userinfo: {e}");
            oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal error (see the server log)",
            )
        }
    }
}

// ---- logout ----

/// RP-initiated logout: `id_token_hint` (a token this provider signed, still served) names the
/// app and the user; the browser's session ends when it is that user's, and the browser goes
/// to `post_logout_redirect_uri` (one of the app's own addresses) or the sign-in page.
async fn logout(
    State(app): State<App>,
    ClientAddr(addr): ClientAddr,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    let p = parse_params(query.unwrap_or_default().as_bytes())?;
    let hint = p
        .get("id_token_hint")
        .ok_or_else(|| Error::bad_request("id_token_hint is required"))?
        .clone();
    let claims = app
        .blocking(move |app| oidc::verify(&app.store, &hint, app.now()))
        .await?
        .ok_or_else(|| Error::bad_request("id_token_hint is not a token of this provider"))?;
    let client = claims["aud"]
        .as_str()
        .and_then(Id::parse)
        .ok_or_else(|| Error::bad_request("id_token_hint names no client"))?;
    let back = match p.get("post_logout_redirect_uri") {
        Some(uri) if redirect_allowed(&app, client, uri) => Some(uri.clone()),
        Some(_) => {
            return Err(Error::bad_request(
                "post_logout_redirect_uri is not one of this app's own addresses",
            ));
        }
        None => None,
    };
    let mut ended = false;
    if let Some(Ok(token)) = auth::session_cookie(&headers) {
        let who = auth::resolve(
            &app,
            Credential::Session(token.clone()),
            addr,
            Scope::Appliance,
        )
        .await
        .ok();
        if who.is_some_and(|w| Some(w.id.to_string().as_str()) == claims["sub"].as_str()) {
            app.blocking(move |app| accounts::delete_session(&app.store, &token))
                .await?;
            ended = true;
        }
    }
    let mut response = match back {
        Some(uri) => match p.get("state") {
            Some(s) => with_query(&uri, &format!("state={}", encode(s))),
            None => Redirect::to(&uri).into_response(),
        },
        None => Redirect::to("/login").into_response(),
    };
    if ended {
        let cookie = format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_taken_once_each_and_bounded() {
        let p = parse_params(b"a=1&b=x%20y").unwrap();
        assert_eq!(p.get("b").map(String::as_str), Some("x y"));
        assert!(parse_params(b"a=1&a=2").is_err());
        let long = format!("a={}", "x".repeat(MAX_VALUE + 1));
        assert!(parse_params(long.as_bytes()).is_err());
        assert!(parse_params(&vec![b'a'; MAX_PARAMS + 1]).is_err());
    }

    #[test]
    fn prompt_values_are_read_and_none_stands_alone() {
        let p = |v: &str| Prompt::parse(Some(v));
        assert_eq!(Prompt::parse(None), Some(Prompt::default()));
        assert_eq!(p(""), Some(Prompt::default()));
        assert_eq!(
            p("none"),
            Some(Prompt {
                none: true,
                ..Prompt::default()
            })
        );
        let both = p("login consent").unwrap();
        assert!(both.login && both.consent && !both.none);
        assert!(p("select_account").unwrap().login);
        assert_eq!(p("none login"), None);
        assert_eq!(p("none none"), None);
        assert_eq!(p("create"), None);
        assert_eq!(p("LOGIN"), None);
    }

    #[test]
    fn origins_are_cut_at_the_first_path_slash() {
        assert_eq!(
            origin_of("http://a.localhost:5000/cb?x=1"),
            "http://a.localhost:5000"
        );
        assert_eq!(origin_of("https://h"), "https://h");
    }
}
