//! Authentication as an extractor: `Auth(principal)` in a handler's arguments means the route
//! needs a logged-in caller, by session cookie or `Authorization: Bearer <api key>`.

use crate::accounts;
use crate::authz::Principal;
use crate::error::Error;
use crate::server::App;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum_extra::extract::cookie::CookieJar;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "dtaas_session";

pub struct Auth(pub Principal);

impl FromRequestParts<App> for Auth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Error> {
        let now = app.now();
        if let Some(value) = parts.headers.get(AUTHORIZATION) {
            let value = value
                .to_str()
                .map_err(|_| Error::unauthorized("malformed Authorization header"))?;
            let (scheme, credential) = value.split_once(' ').unwrap_or((value, ""));
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(Error::unauthorized(
                    "unsupported Authorization scheme: send `Bearer <api key>`",
                ));
            }
            return accounts::authenticate_api_key(&app.store, credential.trim(), now).map(Auth);
        }
        let jar = CookieJar::from_headers(&parts.headers);
        match jar.get(SESSION_COOKIE) {
            Some(cookie) => {
                accounts::authenticate_session(&app.store, cookie.value(), &app.sessions, now)
                    .map(Auth)
            }
            None => Err(Error::unauthorized(
                "not logged in: POST /login first, or send Authorization: Bearer <api key>",
            )),
        }
    }
}

/// The client's address, for rate limiting.
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        Ok(ClientAddr(ip))
    }
}
