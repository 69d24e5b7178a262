//! The app proxy: HTTP-type servables (app, dataset, model, report) answer through the appliance.
//!
//! Two ways in, one forwarding path:
//!
//! | form | example | what the app sees |
//! | --- | --- | --- |
//! | host | `http://<servable id>.<apps_domain>:5000/x?y` | `/x?y`, no prefix |
//! | path | `http://127.0.0.1:5000/apps/<servable id>/x?y` | `/x?y`, `X-Forwarded-Prefix: /apps/<id>` |
//!
//! The host form gives every app its own browser origin, so an app's scripts cannot reach the
//! appliance's API with the user's cookie; the path form shares the appliance's origin and is
//! meant for quick access with curl or trusted apps. [`host_layer`] is a layer over every route
//! (and the fallback), so an app host's requests never reach a handler; [`routes`] serves the
//! path form.
//!
//! Access control (on unless the servable was created without it): the caller needs REQUEST on
//! the servable, by session cookie or `Authorization: Bearer dtaas_...`. The appliance's own
//! credentials never reach the app. Everything else streams through unbuffered, over a pooled
//! client, and HTTP upgrades (WebSockets) become a byte tunnel once the app answers 101.

use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::domains::accounts::KEY_PREFIX;
use crate::domains::authz::{self, Capability, Kind, Principal};
use crate::domains::servables;
use crate::faces::auth::{self, AppHost, Authorization, Credential, Scope};
use crate::faces::errors;
use crate::faces::state::App;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::http::uri::{Authority, PathAndQuery, Scheme};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;

/// Where the path form lives.
const APPS_PREFIX: &str = "/apps/";
/// On an app host, the appliance's own pages live under this prefix (the app owns every other
/// path of its host).
const APPLIANCE_PREFIX: &str = "/.dtaas";
/// The appliance routes reachable under [`APPLIANCE_PREFIX`] on an app host: only logging in and
/// out. An app host is the app's origin, so its scripts may call anything exposed there with the
/// session cookie the login sets for that host; exposing `/v1` would hand the user's powers to
/// every app they open.
const APPLIANCE_PATHS: [&str; 2] = ["/login", "/logout"];

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");

/// Hop-by-hop headers (RFC 9110 section 7.6.1 and the obsolete ones still seen in the wild):
/// they describe one connection, not the message, so they are never forwarded as they are.
/// `Upgrade` and `Connection` are put back on WebSocket handshakes.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    KEEP_ALIVE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    PROXY_CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The host form, as a `Router::layer` (`middleware::from_fn_with_state(app, host_layer)`) over
/// every route and the fallback: a request whose host is `<servable id>.<apps_domain>` (any
/// port) is proxied with its path unchanged and never reaches a handler, whatever route its path
/// matched; any other request runs `next`.
///
/// On an app host, `/.dtaas/login` and `/.dtaas/logout` reach the appliance's login routes
/// (the router serves them under that prefix too), so the session cookie the login sets belongs
/// to the app's host.
pub async fn host_layer(State(app): State<App>, request: Request, next: Next) -> Response {
    let Some(id) = app_host(&request, &app.config.servables.apps_domain) else {
        return next.run(request).await;
    };
    if let Some(rest) = request.uri().path().strip_prefix(APPLIANCE_PREFIX) {
        if !APPLIANCE_PATHS.contains(&rest) {
            return error_response(Error::not_found(
                "no such appliance route on an app host (only /.dtaas/login and /.dtaas/logout)",
            ))
            .await;
        }
        // The router serves these paths itself (see `faces::kabuto`), for this host: what is
        // signed in here is good for this app alone.
        let mut request = request;
        request.extensions_mut().insert(AppHost(id));
        return next.run(request).await;
    }
    let mut response = forward(&app, id, request, Mount::Host).await;
    response
        .extensions_mut()
        .insert(crate::faces::metrics::RoutePattern("{app host}"));
    response
}

/// The path form: `/apps/<id>` redirects to `/apps/<id>/`, and `/apps/<id>/...` is proxied with
/// the `/apps/<id>` prefix stripped. Merge these at the root of the router (not `nest`): the
/// handlers read the prefix from the request's URI, which `nest` would have cut.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/apps/{id}", any(add_slash))
        .route("/apps/{id}/", any(path_form))
        .route("/apps/{id}/{*rest}", any(path_form))
}

/// `/apps/<id>` -> 308 `/apps/<id>/` (query kept): relative links in the app resolve against the
/// directory, and 308 keeps the method and body of a POST.
async fn add_slash(request: Request) -> Response {
    let uri = request.uri();
    let segment = uri.path().strip_prefix(APPS_PREFIX).unwrap_or_default();
    if Id::parse(segment).is_none() {
        return error_response(no_such_app()).await;
    }
    let location = match uri.query() {
        Some(query) => format!("{}/?{query}", uri.path()),
        None => format!("{}/", uri.path()),
    };
    match HeaderValue::try_from(location) {
        Ok(location) => (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response(),
        Err(_) => error_response(Error::bad_request("malformed request URI")).await,
    }
}

async fn path_form(State(app): State<App>, request: Request) -> Response {
    let path = request.uri().path();
    let segment = path
        .strip_prefix(APPS_PREFIX)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default();
    let Some(id) = Id::parse(segment) else {
        return error_response(no_such_app()).await;
    };
    let prefix_len = APPS_PREFIX.len() + segment.len();
    forward(&app, id, request, Mount::Path { prefix_len }).await
}

fn no_such_app() -> Error {
    Error::not_found("no such app: expected /apps/<servable id>/...")
}

/// How the request named the app.
#[derive(Clone, Copy)]
enum Mount {
    Host,
    /// `/apps/<id>` is the first `prefix_len` bytes of the path.
    Path {
        prefix_len: usize,
    },
}

/// The servable id of an app host: `<32 hex digits>.<apps_domain>`, port and a trailing dot
/// ignored, case-insensitive as host names are. Reads the URI's authority (absolute-form
/// requests) or else the Host header.
fn app_host(request: &Request, apps_domain: &str) -> Option<Id> {
    let host = match request.uri().host() {
        Some(host) => host,
        None => {
            let value = request.headers().get(header::HOST)?.to_str().ok()?;
            // A bracketed IPv6 literal is never an app host; otherwise cut the port.
            match value.rsplit_once(':') {
                Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
                _ => value,
            }
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    let apps_domain = apps_domain.strip_suffix('.').unwrap_or(apps_domain);
    let (label, domain) = host.split_once('.')?;
    if label.len() != 32 || !domain.eq_ignore_ascii_case(apps_domain) {
        return None;
    }
    Id::parse(label)
}

/// Checks access, forwards the request to the app's running instance and relays the answer.
/// A panic on the way is the proxy's 500 (it runs outside the faces' own layers on app hosts).
async fn forward(app: &App, id: Id, request: Request, mount: Mount) -> Response {
    let what = format!(
        "proxying {} {}",
        request.method(),
        errors::loggable_path(&request)
    );
    match errors::unwinding(what, try_forward(app, id, request, mount)).await {
        Ok(Ok(response) | Err(response)) => response,
        Err(e) => error_response(e).await,
    }
}

async fn try_forward(
    app: &App,
    id: Id,
    request: Request,
    mount: Mount,
) -> Result<Response, Response> {
    let target = match servables::proxy_target(&app.store, id) {
        Ok(target) => target,
        // Not found, or `Unavailable` (503) while no instance runs.
        Err(e) => return Err(error_response(e).await),
    };
    // Parts, not the request, are borrowed across awaits: the body is not `Sync`.
    let (mut parts, body) = request.into_parts();
    if target.access_control {
        check_access(app, id, &parts, mount).await?;
    }

    let upgrade = wants_upgrade(&parts.headers);
    // The client connection's upgrade (what `hyper::upgrade::on` takes), removed before the
    // request moves into the client.
    let client_upgrade = match upgrade {
        true => parts.extensions.remove::<OnUpgrade>(),
        false => None,
    };

    // Read from the client's URI before it is replaced by the backend's.
    let forwarded = Forwarded {
        client_ip: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip()),
        host: match parts.headers.get(header::HOST) {
            Some(host) => Some(host.clone()),
            None => parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
        },
        prefix: match mount {
            Mount::Host => None,
            Mount::Path { prefix_len } => parts
                .uri
                .path()
                .get(..prefix_len)
                .and_then(|p| HeaderValue::from_str(p).ok()),
        },
    };
    let Some(uri) = backend_uri(target.addr, &parts.uri, mount) else {
        return Err(error_response(Error::bad_request("malformed request URI")).await);
    };
    parts.uri = uri;
    parts.version = Version::HTTP_11;

    let headers = &mut parts.headers;
    strip_hop_by_hop(headers, upgrade);
    // The server already answered `100 Continue` (or will, when the body is first read); the body
    // streams to the app either way, and the app must not wait for a go-ahead we will not relay.
    headers.remove(header::EXPECT);
    strip_credentials(headers);
    forwarded.apply(headers);

    let request = Request::from_parts(parts, body);
    let mut response = match app.upstream.client.request(request).await {
        Ok(response) => response,
        Err(e) => return Err(error_response(bad_gateway(&e, target.addr.port())).await),
    };

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return Err(error_response(Error::BadGateway(
                "the app switched protocols without being asked to".into(),
            ))
            .await);
        };
        let backend_upgrade = hyper::upgrade::on(&mut response);
        app.tasks.spawn(tunnel(client_upgrade, backend_upgrade));
        strip_hop_by_hop(response.headers_mut(), true);
        return Ok(response.map(|_| Body::empty()));
    }

    strip_hop_by_hop(response.headers_mut(), false);
    strip_session_cookie_setters(response.headers_mut());
    Ok(response.map(Body::new))
}

/// REQUEST on the servable, by session cookie or appliance API key. Without (valid) credentials,
/// a browser navigating to the app is sent to the login page and comes back after; anything else
/// gets a 401.
async fn check_access(app: &App, id: Id, request: &Parts, mount: Mount) -> Result<(), Response> {
    let principal = match credentials(app, request, id).await {
        Some(Ok(principal)) => principal,
        Some(Err(Error::Unauthorized(message))) => {
            return Err(login_required(request, mount, &message).await);
        }
        None => {
            let message = "log in to use this app: a session cookie (POST /login) or \
                           Authorization: Bearer <api key> holding REQUEST on it";
            return Err(login_required(request, mount, message).await);
        }
        Some(Err(other)) => return Err(error_response(other).await),
    };
    match authz::authorize(
        &app.store,
        &principal,
        id,
        Kind::Servable,
        Capability::Request,
    ) {
        Ok(_) => Ok(()),
        Err(e) => Err(error_response(e).await),
    }
}

/// The caller as the appliance knows it, through the one resolver:
/// `Authorization: Bearer dtaas_...` (an appliance API key) or else the session cookie. `None`
/// when neither is present. Unlike the kabuto face and /v1, other `Authorization` values are
/// not an error here: they belong to the app (its own tokens, Basic auth) and pass through.
async fn credentials(app: &App, request: &Parts, id: Id) -> Option<Result<Principal>> {
    let headers = &request.headers;
    let credential = match auth::authorization(headers) {
        Authorization::Bearer(token) if token.starts_with(KEY_PREFIX) => Credential::ApiKey(token),
        _ => match auth::session_cookie(headers)? {
            Ok(token) => Credential::Session(token),
            Err(()) => {
                return Some(Err(Error::unauthorized(
                    "your session has ended; log in again",
                )));
            }
        },
    };
    let addr = request
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    Some(auth::resolve(app, credential, addr, Scope::App(id)).await)
}

/// 303 to the login page for a browser's page load (it returns to the same URL once logged in),
/// otherwise 401 with `message`. On an app host the login page is the host's own
/// `/.dtaas/login`, so that the cookie it sets is sent to the app.
async fn login_required(request: &Parts, mount: Mount, message: &str) -> Response {
    if !is_page_load(request) {
        return error_response(Error::unauthorized(message)).await;
    }
    let back = request
        .uri
        .path_and_query()
        .map_or("/", PathAndQuery::as_str);
    let login = match mount {
        Mount::Host => "/.dtaas/login?",
        Mount::Path { .. } => "/login?",
    };
    let location = serde_urlencoded::to_string([("next", back)])
        .ok()
        .and_then(|query| HeaderValue::try_from(format!("{login}{query}")).ok());
    match location {
        Some(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        None => error_response(Error::unauthorized(message)).await,
    }
}

/// A browser navigating (not a script or a tool): GET or HEAD accepting HTML.
fn is_page_load(request: &Parts) -> bool {
    (request.method == Method::GET || request.method == Method::HEAD)
        && request
            .headers
            .get_all(header::ACCEPT)
            .iter()
            .any(|v| v.as_bytes().windows(9).any(|w| w == b"text/html"))
}

/// A WebSocket handshake (or any HTTP/1.1 upgrade): `Connection: upgrade` and an `Upgrade`.
fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade"))
}

/// The comma-separated tokens of every `Connection` header.
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Removes the hop-by-hop headers, including those `Connection` names. With `upgrade`, keeps
/// `Upgrade` and sends `Connection: upgrade`: on a handshake (and its 101) they are meant for the
/// other end.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // Connection usually names only headers removed below anyway; allocate only for others.
    let listed: Vec<HeaderName> = connection_tokens(headers)
        .filter(|t| {
            !["keep-alive", "close", "upgrade"]
                .iter()
                .any(|known| t.eq_ignore_ascii_case(known))
        })
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        if !(upgrade && name == header::UPGRADE) {
            headers.remove(name);
        }
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Removes the appliance's own credentials, every occurrence, reading the headers as bytes and
/// failing closed: an `Authorization` value that is an appliance API key (Bearer, or Basic with
/// a key as the password), or that cannot be read, is dropped; the app's own schemes pass. The
/// session cookie is taken out of every `Cookie` header (the app's cookies stay, whatever bytes
/// they hold). An app must not be able to act as its visitors.
fn strip_credentials(headers: &mut HeaderMap) {
    let authorizations: Vec<HeaderValue> = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .cloned()
        .collect();
    headers.remove(header::AUTHORIZATION);
    for value in authorizations {
        let keep = match auth::parse_authorization(value.as_bytes()) {
            Authorization::Bearer(token) => !token.starts_with(KEY_PREFIX),
            Authorization::Basic { secret, .. } => !secret.starts_with(KEY_PREFIX),
            Authorization::Other => true,
            Authorization::Absent | Authorization::Malformed => false,
        };
        if keep {
            headers.append(header::AUTHORIZATION, value);
        }
    }
    let cookies: Vec<HeaderValue> = headers.get_all(header::COOKIE).iter().cloned().collect();
    headers.remove(header::COOKIE);
    for value in cookies {
        if let Some(kept) = without_session_cookie(value.as_bytes()) {
            headers.append(header::COOKIE, kept);
        }
    }
}

/// A `Cookie` header's pairs without the session cookie; `None` when nothing is left.
fn without_session_cookie(value: &[u8]) -> Option<HeaderValue> {
    let kept: Vec<&[u8]> = value
        .split(|b| *b == b';')
        .map(<[u8]>::trim_ascii)
        .filter(|pair| !pair.is_empty() && !auth::is_session_cookie(cookie_name(pair)))
        .collect();
    if kept.is_empty() {
        return None;
    }
    HeaderValue::from_bytes(&kept.join(&b"; "[..])).ok()
}

/// The name of a `name=value` cookie pair (the whole pair when it has no `=`).
fn cookie_name(pair: &[u8]) -> &[u8] {
    match pair.iter().position(|b| *b == b'=') {
        Some(at) => pair[..at].trim_ascii(),
        None => pair,
    }
}

/// Drops an app's `Set-Cookie` for the session cookie (read as bytes, any spelling), and any
/// `Set-Cookie` whose name cannot be told: on the path form the app shares the appliance's
/// origin and could otherwise replace its visitors' sessions (session fixation).
fn strip_session_cookie_setters(headers: &mut HeaderMap) {
    let setters: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    headers.remove(header::SET_COOKIE);
    for value in setters {
        let bytes = value.as_bytes();
        let first = bytes.split(|b| *b == b';').next().unwrap_or_default();
        let named = first.contains(&b'=');
        if named && !auth::is_session_cookie(cookie_name(first)) {
            headers.append(header::SET_COOKIE, value);
        }
    }
}

/// What the app is told about the original request.
struct Forwarded {
    client_ip: Option<std::net::IpAddr>,
    /// The Host the client asked for.
    host: Option<HeaderValue>,
    /// `/apps/<id>` on the path form.
    prefix: Option<HeaderValue>,
}

impl Forwarded {
    /// `X-Forwarded-For` gets the client appended (earlier proxies' entries are kept, as is
    /// conventional); the others describe this hop only and replace whatever the client sent.
    fn apply(self, headers: &mut HeaderMap) {
        if let Some(ip) = self.client_ip {
            let value = match headers.get(X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
                Some(earlier) => format!("{earlier}, {ip}"),
                None => ip.to_string(),
            };
            if let Ok(value) = HeaderValue::try_from(value) {
                headers.insert(X_FORWARDED_FOR, value);
            }
        }
        match self.host {
            Some(host) => headers.insert(X_FORWARDED_HOST, host),
            None => headers.remove(X_FORWARDED_HOST),
        };
        // The listener speaks plain HTTP only (TLS is not implemented yet).
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        match self.prefix {
            Some(prefix) => headers.insert(X_FORWARDED_PREFIX, prefix),
            None => headers.remove(X_FORWARDED_PREFIX),
        };
    }
}

/// `http://<addr><path and query>`, the path form's prefix cut. The Host header is left as the
/// client sent it, so that apps build their links (and check WebSocket origins) against the name
/// the browser used.
fn backend_uri(addr: SocketAddr, uri: &Uri, mount: Mount) -> Option<Uri> {
    let path_and_query = match mount {
        Mount::Host => uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
        Mount::Path { prefix_len } => {
            let rest = uri.path().get(prefix_len..)?;
            let rest = if rest.is_empty() { "/" } else { rest };
            let path_and_query = match uri.query() {
                Some(query) => format!("{rest}?{query}"),
                None => rest.to_owned(),
            };
            PathAndQuery::from_maybe_shared(Bytes::from(path_and_query)).ok()?
        }
    };
    let authority = Authority::from_maybe_shared(Bytes::from(addr.to_string())).ok()?;
    Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(authority)
        .path_and_query(path_and_query)
        .build()
        .ok()
}

/// Copies bytes both ways between the client's and the app's upgraded connections until either
/// side closes.
async fn tunnel(client: OnUpgrade, backend: OnUpgrade) {
    let (client, backend) = match tokio::try_join!(client, backend) {
        Ok(both) => both,
        Err(e) => {
            tracing::debug!(target: "dtaas::proxy", "upgrade failed: {e}");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut backend = TokioIo::new(backend);
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
        tracing::debug!(target: "dtaas::proxy", "upgraded connection ended: {e}");
    }
}

/// 502: the instance is running but does not answer HTTP on its port (yet, or any more).
/// (Logged as a server error when rendered, with this message.)
fn bad_gateway(error: &hyper_util::client::legacy::Error, port: u16) -> Error {
    // The client error's Display is only its kind; the cause is at the end of the source chain.
    let mut cause = None;
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        cause = Some(e);
        source = e.source();
    }
    let cause = cause.map_or_else(|| error.to_string(), |c| c.to_string());
    Error::BadGateway(if error.is_connect() {
        format!("the app does not accept connections ({cause}); it must listen on 0.0.0.0:{port}")
    } else {
        format!("the app did not answer: {cause}")
    })
}

/// An [`Error`] in the /v1 dialect (`{"error": {"code", "message"}}`), whichever router layer
/// (if any) this response passes through on its way out.
async fn error_response(error: Error) -> Response {
    errors::v1_response(error).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_bytes(value).expect("value"),
            );
        }
        h
    }

    fn values<'a>(h: &'a HeaderMap, name: &str) -> Vec<&'a [u8]> {
        h.get_all(name).iter().map(HeaderValue::as_bytes).collect()
    }

    #[test]
    fn the_session_cookie_goes_from_every_cookie_header_whatever_bytes_are_there() {
        let mut h = with(&[
            ("cookie", b"dtaas_session=s3cret; p=\xe9"),
            ("cookie", b"a=1;DTAAS_SESSION=other; b=2"),
            ("cookie", b"dtaas_session=only"),
        ]);
        strip_credentials(&mut h);
        assert_eq!(values(&h, "cookie"), [&b"p=\xe9"[..], b"a=1; b=2"]);
    }

    #[test]
    fn appliance_keys_go_from_every_authorization_header_and_unreadable_ones_too() {
        let basic_key = format!(
            "Basic {}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "u:dtaas_k")
        );
        let mut h = with(&[
            ("authorization", b"Basic dXNlcjpwYXNz"),
            ("authorization", b"Bearer dtaas_secret"),
            ("authorization", basic_key.as_bytes()),
            ("authorization", b"Bearer \xe9dtaas_x"),
            ("authorization", b"Bearer app-token"),
            ("authorization", b"Digest x"),
        ]);
        strip_credentials(&mut h);
        assert_eq!(
            values(&h, "authorization"),
            [&b"Basic dXNlcjpwYXNz"[..], b"Bearer app-token", b"Digest x"]
        );
    }

    #[test]
    fn an_app_cannot_set_the_session_cookie_in_any_spelling() {
        let mut h = with(&[
            ("set-cookie", b"dtaas_session=fixed; Path=/; X=\xe9"),
            ("set-cookie", b" Dtaas_Session =fixed"),
            ("set-cookie", b"no-equals-sign"),
            ("set-cookie", b"theme=dark; Path=/"),
        ]);
        strip_session_cookie_setters(&mut h);
        assert_eq!(values(&h, "set-cookie"), [&b"theme=dark; Path=/"[..]]);
    }
}
