//! Cross-site request forgery, refused on every face. A page of another site can make the
//! user's browser send a form or a `fetch` with the session cookie attached; browsers say where
//! a request comes from (`Sec-Fetch-Site`, `Origin`). An unsafe request (anything but GET,
//! HEAD, OPTIONS) that carries the session cookie and comes from another site (or another
//! subdomain: an app host is a different origin) is refused with 403 before any face sees it.
//! Requests without the cookie (API keys, Basic credentials) need no check: another site cannot
//! make a browser add them; requests without those headers (curl, scripts) are not from a page.
//! JSON bodies must also say they are JSON (`faces::body::JsonBody`), which a page of another
//! site cannot do without the browser asking the appliance first.

use super::auth;
use super::errors;
use crate::core::error::Error;
use crate::domains::registry::error::{Code, RegistryError};
use axum::extract::Request;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The layer (see the module).
pub async fn same_origin_only(request: Request, next: Next) -> Response {
    let unsafe_method = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if unsafe_method
        && auth::session_cookie(request.headers()).is_some()
        && from_elsewhere(request.headers())
    {
        return refuse(request.uri().path()).await;
    }
    next.run(request).await
}

/// What the browser says: `Sec-Fetch-Site` (modern browsers), else `Origin` compared with the
/// host the request was sent to.
fn from_elsewhere(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return !matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let Some(host) = headers.get(header::HOST) else {
        return true;
    };
    let origin = origin.as_bytes();
    let host = host.as_bytes();
    let same = |scheme: &[u8]| origin.strip_prefix(scheme) == Some(host);
    !(same(b"http://") || same(b"https://"))
}

async fn refuse(path: &str) -> Response {
    const WHY: &str = "refused: a request from another site carrying your session cookie \
                       (use the appliance's own pages, or an API key)";
    if path.starts_with("/v2") {
        return RegistryError::new(Code::Denied, WHY).into_response();
    }
    let error = Error::forbidden(WHY);
    if path.starts_with("/v1") {
        errors::v1_response(error).await
    } else {
        errors::kabuto(error.into_response()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        h
    }

    #[test]
    fn browsers_say_where_a_request_comes_from() {
        assert!(!from_elsewhere(&headers(&[(
            "sec-fetch-site",
            "same-origin"
        )])));
        assert!(!from_elsewhere(&headers(&[("sec-fetch-site", "none")])));
        assert!(from_elsewhere(&headers(&[(
            "sec-fetch-site",
            "cross-site"
        )])));
        assert!(from_elsewhere(&headers(&[("sec-fetch-site", "same-site")])));
        let host = ("host", "127.0.0.1:5000");
        assert!(!from_elsewhere(&headers(&[
            host,
            ("origin", "http://127.0.0.1:5000")
        ])));
        assert!(from_elsewhere(&headers(&[
            host,
            ("origin", "http://evil.example")
        ])));
        assert!(from_elsewhere(&headers(&[host, ("origin", "null")])));
        assert!(from_elsewhere(&headers(&[
            host,
            ("origin", "http://127.0.0.1:5000.evil.example")
        ])));
        assert!(!from_elsewhere(&headers(&[host])), "curl says nothing");
    }
}
