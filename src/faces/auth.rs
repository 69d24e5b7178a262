//! Who is calling: the one credential resolver every face uses.
//!
//! Reading (the same for every face): `Authorization` and `Cookie` headers are read as bytes,
//! every occurrence of them, and what cannot be read is malformed (refused), never skipped.
//!
//! | presented | resolved by | faces that take it |
//! | --- | --- | --- |
//! | `Authorization: Bearer dtaas_...` | the API key's principal (a user or a servable) | all |
//! | `Authorization: Basic login:password` | the one password-login sequence, remembered for minutes | /v2 |
//! | `Authorization: Basic login:dtaas_...` | the API key | /v2 |
//! | the `dtaas_session` cookie | the session's user | all |
//!
//! [`resolve`] turns a [`Credential`] into a [`Principal`]; the faces differ only in which
//! credentials they take (the app proxy leaves an app its own `Authorization` schemes; /v2 takes
//! Basic because `docker login` sends it). [`Auth`] is the extractor of the kabuto face and /v1.

use super::state::App;
use crate::core::clock::Timestamp;
use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::domains::accounts::{self, KEY_PREFIX};
use crate::domains::authz::Principal;
use crate::domains::servables;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use base64::Engine as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "dtaas_session";

/// A credential, read from a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Session(String),
    ApiKey(String),
    Password { login: String, password: String },
}

/// What a request's `Authorization` header holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    /// No `Authorization` header.
    Absent,
    /// `Bearer <token>` (an appliance API key when it starts with `dtaas_`).
    Bearer(String),
    /// `Basic base64(login:secret)`.
    Basic { login: String, secret: String },
    /// Another scheme (an app's own, behind the proxy).
    Other,
    /// Unreadable bytes, a broken Basic value, or more than one `Authorization` header.
    Malformed,
}

/// Reads the `Authorization` header, failing closed.
pub fn authorization(headers: &HeaderMap) -> Authorization {
    let mut all = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = all.next() else {
        return Authorization::Absent;
    };
    if all.next().is_some() {
        return Authorization::Malformed;
    }
    parse_authorization(value.as_bytes())
}

/// One `Authorization` value, read (see [`authorization`]).
pub fn parse_authorization(value: &[u8]) -> Authorization {
    let Ok(value) = std::str::from_utf8(value) else {
        return Authorization::Malformed;
    };
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        if rest.is_empty() || rest.contains(char::is_whitespace) {
            return Authorization::Malformed;
        }
        return Authorization::Bearer(rest.to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        return match decoded.as_deref().and_then(|d| d.split_once(':')) {
            Some((login, secret)) => Authorization::Basic {
                login: login.to_owned(),
                secret: secret.to_owned(),
            },
            None => Authorization::Malformed,
        };
    }
    Authorization::Other
}

/// The session cookie, from any `Cookie` header, read as bytes: other cookies (an app's, with
/// any bytes in them) do not hide it. `Some(Err)` when it is there but unreadable.
pub fn session_cookie(headers: &HeaderMap) -> Option<Result<String, ()>> {
    headers.get_all(COOKIE).iter().find_map(session_in)
}

fn session_in(value: &HeaderValue) -> Option<Result<String, ()>> {
    value.as_bytes().split(|b| *b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let at = pair.iter().position(|b| *b == b'=')?;
        let (name, value) = (pair[..at].trim_ascii(), pair[at + 1..].trim_ascii());
        is_session_cookie(name).then(|| {
            std::str::from_utf8(value)
                .ok()
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or(())
        })
    })
}

/// Where a credential is used: on the appliance's own faces, or for one app behind the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Appliance,
    App(Id),
}

/// Set on a request that reached an appliance route (`/.dtaas/login`, `/.dtaas/logout`) on an
/// app's own host: what is signed in there is good for that app alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppHost(pub Id);

/// Whether a cookie name (as bytes) is the session cookie's. Compared without regard to case,
/// so that no spelling of it slips past a check.
pub fn is_session_cookie(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(SESSION_COOKIE.as_bytes())
}

/// The principal behind a session token, used in `scope`, and when its user signed in (the
/// session's start: OpenID Connect's `auth_time`). The session branch of [`resolve`].
pub fn resolve_session(app: &App, token: &str, scope: Scope) -> Result<(Principal, Timestamp)> {
    let session = accounts::live_session(&app.store, token, &app.sessions, app.now())?;
    match (session.scope, scope) {
        (None, _) => {}
        (Some(app_id), Scope::App(wanted)) if app_id == wanted => {}
        (Some(_), _) => {
            return Err(Error::unauthorized(
                "this session was made on an app's page and is good for that app alone; log \
                 in on the appliance",
            ));
        }
    }
    Ok((principal_of(app, session.user)?, session.created))
}

/// The principal behind a credential, used in `scope`. `addr` is the client's address
/// (password logins are limited per address).
pub async fn resolve(
    app: &App,
    credential: Credential,
    addr: IpAddr,
    scope: Scope,
) -> Result<Principal> {
    let now = app.now();
    match credential {
        Credential::Session(token) => resolve_session(app, &token, scope).map(|(p, _)| p),
        Credential::ApiKey(key) => {
            let principal = accounts::api_key_principal(&app.store, &key, now)?;
            principal_of(app, principal)
        }
        Credential::Password { login, password } => {
            if let Some(user) = app.logins.remembered(&app.store, &login, &password)? {
                return accounts::user_principal(&user);
            }
            let user = app
                .blocking(move |app| {
                    app.logins
                        .login_remembering(&app.store, addr, &login, &password, app.now())
                })
                .await?;
            accounts::user_principal(&user)
        }
    }
}

/// The principal of an id that credentials name: a user, or a servable (whose keys its
/// instances hold), checked against the account's current state.
fn principal_of(app: &App, id: Id) -> Result<Principal> {
    let gone = || Error::unauthorized("the account behind these credentials is gone");
    match accounts::get_user(&app.store, id)? {
        Some(user) => accounts::user_principal(&user),
        None => servables::servable_principal(&app.store, id)?.ok_or_else(gone),
    }
}

/// An API key credential (`dtaas_...`), else an invalid one.
fn api_key(token: String) -> Result<Credential> {
    if token.starts_with(KEY_PREFIX) {
        Ok(Credential::ApiKey(token))
    } else {
        Err(Error::unauthorized("invalid or revoked API key"))
    }
}

/// The credential of the kabuto face and /v1: a Bearer API key, else the session cookie.
pub fn standard_credential(headers: &HeaderMap) -> Result<Credential> {
    match authorization(headers) {
        Authorization::Bearer(token) => return api_key(token),
        Authorization::Absent => {}
        Authorization::Malformed => {
            return Err(Error::unauthorized("malformed Authorization header"));
        }
        Authorization::Basic { .. } | Authorization::Other => {
            return Err(Error::unauthorized(
                "unsupported Authorization scheme: send `Bearer <api key>`",
            ));
        }
    }
    match session_cookie(headers) {
        Some(Ok(token)) => Ok(Credential::Session(token)),
        Some(Err(())) => Err(Error::unauthorized("your session has ended; log in again")),
        None => Err(Error::unauthorized(
            "not logged in: POST /login first, or send Authorization: Bearer <api key>",
        )),
    }
}

/// Authentication as an extractor: `Auth(principal)` in a handler's arguments means the route
/// needs a logged-in caller, by session cookie or `Authorization: Bearer <api key>`.
pub struct Auth(pub Principal);

impl FromRequestParts<App> for Auth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Error> {
        let credential = standard_credential(&parts.headers)?;
        let addr = client_addr(parts);
        resolve(app, credential, addr, Scope::Appliance)
            .await
            .map(Auth)
    }
}

fn client_addr(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// The client's address, for rate limiting.
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(client_addr(parts)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_bytes(value).expect("value"),
            );
        }
        h
    }

    #[test]
    fn authorization_schemes_are_told_apart() {
        let basic = base64::engine::general_purpose::STANDARD.encode("alice:pa:ss");
        assert_eq!(
            authorization(&headers(&[("authorization", b"Bearer dtaas_x")])),
            Authorization::Bearer("dtaas_x".into())
        );
        assert_eq!(
            authorization(&headers(&[(
                "authorization",
                format!("basic {basic}").as_bytes()
            )])),
            Authorization::Basic {
                login: "alice".into(),
                secret: "pa:ss".into()
            }
        );
        assert_eq!(
            authorization(&headers(&[("authorization", b"Digest abc")])),
            Authorization::Other
        );
        assert_eq!(authorization(&HeaderMap::new()), Authorization::Absent);
    }

    #[test]
    fn unreadable_or_repeated_authorization_is_malformed() {
        for bad in [
            &[("authorization", &b"Bearer dtaas_\xe9"[..])][..],
            &[("authorization", b"Basic !!!")],
            &[("authorization", b"Bearer ")],
            &[("authorization", b"Bearer a b")],
            &[("authorization", b"Basic Zm9v")],
            &[
                ("authorization", b"Basic Zm9vOmJhcg=="),
                ("authorization", b"Bearer dtaas_x"),
            ],
        ] {
            assert_eq!(
                authorization(&headers(bad)),
                Authorization::Malformed,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_session_cookie_is_found_whatever_else_the_header_holds() {
        let h = headers(&[("cookie", b"p=\xe9; dtaas_session=tok; q=1")]);
        assert_eq!(session_cookie(&h), Some(Ok("tok".into())));
        let h = headers(&[("cookie", b"a=1"), ("cookie", b" dtaas_session = t2 ")]);
        assert_eq!(session_cookie(&h), Some(Ok("t2".into())));
        let h = headers(&[("cookie", b"dtaas_session=\xe9")]);
        assert_eq!(session_cookie(&h), Some(Err(())));
        let h = headers(&[("cookie", b"dtaas_sessionx=1; other=2")]);
        assert_eq!(session_cookie(&h), None);
    }

    #[test]
    fn the_standard_faces_take_bearer_keys_and_sessions_only() {
        let h = headers(&[
            ("authorization", b"Bearer dtaas_k"),
            ("cookie", b"dtaas_session=s"),
        ]);
        assert_eq!(
            standard_credential(&h).ok(),
            Some(Credential::ApiKey("dtaas_k".into()))
        );
        let h = headers(&[("cookie", b"dtaas_session=s")]);
        assert_eq!(
            standard_credential(&h).ok(),
            Some(Credential::Session("s".into()))
        );
        let basic = headers(&[("authorization", b"Basic Zm9vOmJhcg==")]);
        assert!(matches!(
            standard_credential(&basic),
            Err(Error::Unauthorized(_))
        ));
        let not_a_key = headers(&[("authorization", b"Bearer abc")]);
        assert!(matches!(
            standard_credential(&not_a_key),
            Err(Error::Unauthorized(_))
        ));
        assert!(matches!(
            standard_credential(&HeaderMap::new()),
            Err(Error::Unauthorized(_))
        ));
    }
}
