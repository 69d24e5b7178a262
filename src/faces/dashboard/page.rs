//! What every dashboard page is made with: who is looking ([`Viewer`]), the CSRF token of their
//! session, forms that must carry it ([`CsrfForm`], [`CsrfUpload`]), the answer to a form
//! (POST, redirect, GET: [`see_other`], with a notice shown once), the [`Layout`] the pages
//! extend, and paging ([`Paging`], 50 a page).

use crate::core::clock::Timestamp;
use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::core::page::{Page, PageRequest, decode_cursor, encode_cursor};
use crate::domains::authz::Principal;
use crate::faces::auth::{self, Scope};
use crate::faces::listing::ListQuery;
use crate::faces::state::App;
use crate::faces::upload::Upload;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

/// How many items a list page shows.
pub const PAGE_SIZE: usize = 50;

/// The cookie that carries a notice to the page a form redirects to.
const NOTICE_COOKIE: &str = "dtaas_notice";

/// The largest form (without files) the dashboard reads.
const MAX_FORM: usize = 1 << 20;

/// The signed-in person looking at a page: the session cookie, resolved by the one credential
/// resolver. Without a live session the page answers 401, which the dashboard turns into the
/// sign-in page.
pub struct Viewer {
    pub principal: Principal,
    /// When the viewer signed in (the session's start).
    pub signed_in: Timestamp,
    /// The CSRF token of this session, for the page's forms.
    pub csrf: String,
    /// A notice a form left for this page (shown once).
    pub notice: Option<String>,
    /// Whether cookies must be Secure (the appliance speaks TLS).
    secure: bool,
}

/// The CSRF token bound to a session: a hash of its secret token under a label of its own, so
/// it reveals nothing of the session and another session's token is worth nothing.
pub fn csrf_token(session: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"dtaas dashboard csrf\0");
    h.update(session.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether two strings are equal, in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl FromRequestParts<App> for Viewer {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Viewer> {
        let token = match auth::session_cookie(&parts.headers) {
            Some(Ok(token)) => token,
            _ => return Err(Error::unauthorized("sign in to see this page")),
        };
        let (principal, signed_in) = auth::resolve_session(app, &token, Scope::Appliance)?;
        Ok(Viewer {
            principal,
            signed_in,
            csrf: csrf_token(&token),
            notice: notice_of(&parts.headers),
            secure: app.config.tls_enabled(),
        })
    }
}

impl Viewer {
    /// Checks a form's CSRF token against this session's.
    pub fn check_csrf(&self, given: Option<&str>) -> Result<()> {
        match given {
            Some(t) if same(t, &self.csrf) => Ok(()),
            _ => Err(Error::forbidden(
                "this form's security token is missing or belongs to another session: go back, \
                 reload the page and send it again",
            )),
        }
    }

    /// The layout of a page titled `title` in the navigation's `section`.
    pub fn layout(&self, title: impl Into<String>, section: &'static str) -> Layout {
        Layout {
            title: title.into(),
            login: self.principal.name.clone(),
            admin: self.principal.admin,
            csrf: self.csrf.clone(),
            notice: self.notice.clone(),
            section,
        }
    }

    /// The answer to a form: 303 to `to` (a path of the dashboard), with `notice` shown there
    /// once.
    pub fn see_other(&self, to: &str, notice: &str) -> Response {
        see_other(to, notice, self.secure)
    }
}

/// What the layout (`templates/dashboard/base.html`) shows around every page.
pub struct Layout {
    pub title: String,
    pub login: String,
    pub admin: bool,
    pub csrf: String,
    pub notice: Option<String>,
    /// Which navigation entry is this page's (`overview`, `images`, `pipelines`, ...).
    pub section: &'static str,
}

/// A urlencoded form that carries this session's CSRF token in `csrf`; the rest is read as
/// `T` (fields `T` does not name are ignored).
pub struct CsrfForm<T>(pub Viewer, pub T);

impl<T: DeserializeOwned> FromRequest<App> for CsrfForm<T> {
    type Rejection = Error;

    async fn from_request(req: Request, app: &App) -> Result<Self> {
        let (mut parts, body) = req.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, app).await?;
        if !crate::faces::body::is_urlencoded(&parts.headers) {
            return Err(Error::bad_request(
                "send the form as application/x-www-form-urlencoded",
            ));
        }
        let bytes: Bytes = axum::body::to_bytes(body, MAX_FORM)
            .await
            .map_err(|_| Error::TooLarge("the form is larger than 1 MiB".into()))?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| Error::bad_request("the form is not valid form encoding"))?;
        let tokens: Vec<&str> = pairs
            .iter()
            .filter(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str())
            .collect();
        viewer.check_csrf(match tokens.as_slice() {
            [one] => Some(one),
            _ => None,
        })?;
        let value = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| Error::bad_request(format!("the form: {e}")))?;
        Ok(CsrfForm(viewer, value))
    }
}

/// A multipart form (with files, streamed to disk by `faces::upload`) that carries this
/// session's CSRF token in `csrf`.
pub struct CsrfUpload(pub Viewer, pub Upload);

impl FromRequest<App> for CsrfUpload {
    type Rejection = Error;

    async fn from_request(req: Request, app: &App) -> Result<Self> {
        let (mut parts, body) = req.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, app).await?;
        let upload = Upload::from_request(Request::from_parts(parts, body), app).await?;
        viewer.check_csrf(upload.text("csrf"))?;
        Ok(CsrfUpload(viewer, upload))
    }
}

/// Percent-encodes a query value or a cookie value.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The notice a form left, from its cookie.
pub fn notice_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == NOTICE_COOKIE)
        .and_then(|(_, value)| {
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_str(&format!("n={value}")).ok()?;
            pairs.into_iter().next().map(|(_, v)| v)
        })
        .map(|n| n.chars().take(500).collect())
}

/// The `Set-Cookie` that removes the notice once shown.
pub fn clear_notice() -> HeaderValue {
    HeaderValue::from_static("dtaas_notice=; Path=/ui; Max-Age=0; HttpOnly; SameSite=Strict")
}

/// 303 to `to` with a one-time notice.
pub fn see_other(to: &str, notice: &str, secure: bool) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response();
    let cookie = format!(
        "{NOTICE_COOKIE}={}; Path=/ui; Max-Age=60; HttpOnly; SameSite=Strict{}",
        encode(&notice.chars().take(500).collect::<String>()),
        if secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// The paging of a list page: the page asked for (`?cursor=`), and the link to the next one
/// (the same path and filters).
pub struct Paging {
    pub request: PageRequest,
}

impl Paging {
    /// Reads `cursor` from the query (50 a page).
    pub fn of(q: &ListQuery) -> Result<Paging> {
        let after = match q.get("cursor") {
            None | Some("") => None,
            Some(c) => Some(decode_cursor(c)?),
        };
        Ok(Paging {
            request: PageRequest {
                after,
                limit: PAGE_SIZE,
            },
        })
    }

    /// The address of the page after `page` (`path` with `filters`), when there is one.
    pub fn next<T>(&self, path: &str, filters: &[(&str, &str)], page: &Page<T>) -> Option<String> {
        page.next.map(|id| next_link(path, filters, id))
    }
}

/// `path?filter=...&cursor=...` for the page after `id`.
pub fn next_link(path: &str, filters: &[(&str, &str)], id: Id) -> String {
    let mut query: Vec<String> = filters
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    query.push(format!("cursor={}", encode_cursor(id)));
    format!("{path}?{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_token_is_bound_to_the_session_and_compared_whole() {
        let a = csrf_token("session-a");
        assert_eq!(a.len(), 64);
        assert_ne!(a, csrf_token("session-b"));
        assert!(same(&a, &csrf_token("session-a")));
        assert!(!same(&a, &a[..63]));
    }

    #[test]
    fn a_notice_round_trips_through_its_cookie() {
        let response = see_other("/ui/images", "Built tool; 100% done & fine", false);
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let set = response.headers()[header::SET_COOKIE].to_str().unwrap();
        let value = set.split(';').next().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(value).unwrap());
        assert_eq!(
            notice_of(&headers).as_deref(),
            Some("Built tool; 100% done & fine")
        );
        assert!(set.contains("SameSite=Strict") && !set.contains("Secure"));
    }

    #[test]
    fn next_links_keep_the_filters() {
        let id = Id(7);
        let link = next_link("/ui/jobs", &[("state", "running"), ("name", "")], id);
        assert_eq!(
            link,
            format!("/ui/jobs?state=running&cursor={}", encode_cursor(id))
        );
    }
}
