//! The registry face: `/v2`, the OCI distribution spec with Docker's extensions, on the main
//! listener. Routes -> handlers here -> `domains::registry` (redb records in `meta`, blob files
//! in `blobs`). Repositories are objects of the shared model: the first pusher owns a new one;
//! pull needs READ, push UPDATE (or the right to create it), delete DELETE; a repository the
//! caller cannot see is NAME_UNKNOWN. Errors are the spec's JSON ([`errors`]).
//!
//! The path is parsed here (repository names contain `/`); one file per kind of route.

mod blobs;
mod catalog;
pub mod errors;
mod manifests;
mod uploads;

use crate::domains::accounts::{self, KEY_PREFIX};
use crate::domains::authz::{Capability, Principal};
use crate::domains::registry::error::{Code, RResult, RegistryError};
use crate::domains::registry::{meta, names};
use crate::faces::auth::{self, Authorization, ClientAddr, Credential};
use crate::faces::metrics::RoutePattern;
use crate::faces::state::App;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::json;
use std::collections::HashMap;
use std::net::IpAddr;

pub fn routes() -> Router<App> {
    with_registry_errors(
        Router::new()
            .route("/v2", any(ping))
            .route("/v2/", any(ping))
            .route("/v2/{*rest}", any(dispatch))
            .layer(DefaultBodyLimit::disable()),
    )
}

/// The registry's header on every answer, and a panic in a handler as the spec's 500
/// (`UNKNOWN`, the cause logged) instead of a dropped connection.
pub(super) fn with_registry_errors<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
) -> Router<S> {
    router
        .layer(axum::middleware::from_fn(catch_panic))
        .layer(axum::middleware::map_response(api_version_header))
}

async fn catch_panic(request: Request, next: axum::middleware::Next) -> Response {
    crate::faces::errors::catching_panics(request, next)
        .await
        .unwrap_or_else(|e| RegistryError::from(e).into_response())
}

async fn api_version_header(mut response: Response) -> Response {
    response.headers_mut().insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static("registry/2.0"),
    );
    response
}

async fn ping(
    State(app): State<App>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
) -> Response {
    match authenticate(&app, &headers, addr).await {
        Ok(_) => Json(json!({})).into_response(),
        Err(e) => e.into_response(),
    }
}

/// What a `/v2/...` path names.
#[derive(Debug)]
enum Route {
    Catalog,
    Tags(String),
    Manifest(String, String),
    Blob(String, String),
    Uploads(String),
    Upload(String, String),
    Referrers(String, String),
}

impl Route {
    /// Its pattern, as `/metrics` counts requests by route.
    fn pattern(&self) -> &'static str {
        match self {
            Route::Catalog => "/v2/_catalog",
            Route::Tags(_) => "/v2/{name}/tags/list",
            Route::Manifest(..) => "/v2/{name}/manifests/{reference}",
            Route::Blob(..) => "/v2/{name}/blobs/{digest}",
            Route::Uploads(_) => "/v2/{name}/blobs/uploads/",
            Route::Upload(..) => "/v2/{name}/blobs/uploads/{id}",
            Route::Referrers(..) => "/v2/{name}/referrers/{digest}",
        }
    }
}

fn parse_route(rest: &str) -> Option<Route> {
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Route::Tags(name.to_owned()));
    }
    if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
        return Some(Route::Manifest(name.to_owned(), reference.to_owned()));
    }
    if let Some((name, digest)) = rest.rsplit_once("/referrers/") {
        return Some(Route::Referrers(name.to_owned(), digest.to_owned()));
    }
    if let Some(name) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return Some(Route::Uploads(name.to_owned()));
    }
    if let Some((name, id)) = rest.rsplit_once("/blobs/uploads/") {
        return Some(Route::Upload(name.to_owned(), id.to_owned()));
    }
    if let Some((name, digest)) = rest.rsplit_once("/blobs/") {
        return Some(Route::Blob(name.to_owned(), digest.to_owned()));
    }
    None
}

async fn dispatch(
    State(app): State<App>,
    ClientAddr(addr): ClientAddr,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let rest = parts.uri.path().trim_start_matches("/v2/").to_owned();
    let pattern = parse_route(&rest).map(|r| r.pattern());
    let query: HashMap<String, String> = parts
        .uri
        .query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    let result = async {
        let principal = authenticate(&app, &parts.headers, addr).await?;
        let Some(route) = parse_route(&rest) else {
            return Err(RegistryError::new(
                Code::NameInvalid,
                "not a registry route",
            ));
        };
        let method = parts.method.clone();
        let ctx = Ctx {
            app: &app,
            principal: &principal,
            query: &query,
            headers: &parts.headers,
        };
        match (route, method) {
            (Route::Catalog, Method::GET) => catalog::catalog(&ctx).await,
            (Route::Tags(name), Method::GET) => catalog::tags(&ctx, &name).await,
            (Route::Manifest(name, r), Method::GET) => {
                manifests::get_manifest(&ctx, &name, &r, true).await
            }
            (Route::Manifest(name, r), Method::HEAD) => {
                manifests::get_manifest(&ctx, &name, &r, false).await
            }
            (Route::Manifest(name, r), Method::PUT) => {
                manifests::put_manifest(&ctx, &name, &r, body).await
            }
            (Route::Manifest(name, r), Method::DELETE) => {
                manifests::delete_manifest(&ctx, &name, &r).await
            }
            (Route::Blob(name, d), Method::GET) => blobs::get_blob(&ctx, &name, &d, true).await,
            (Route::Blob(name, d), Method::HEAD) => blobs::get_blob(&ctx, &name, &d, false).await,
            (Route::Blob(name, d), Method::DELETE) => blobs::delete_blob(&ctx, &name, &d).await,
            (Route::Uploads(name), Method::POST) => uploads::start_upload(&ctx, &name, body).await,
            (Route::Upload(name, id), Method::PATCH) => {
                uploads::patch_upload(&ctx, &name, &id, body).await
            }
            (Route::Upload(name, id), Method::PUT) => {
                uploads::finish_upload(&ctx, &name, &id, body).await
            }
            (Route::Upload(name, id), Method::GET) => {
                uploads::upload_status(&ctx, &name, &id).await
            }
            (Route::Upload(name, id), Method::DELETE) => {
                uploads::cancel_upload(&ctx, &name, &id).await
            }
            (Route::Referrers(name, d), Method::GET) => catalog::referrers(&ctx, &name, &d).await,
            (_, m) => Err(RegistryError::new(
                Code::Unsupported,
                format!("{m} is not supported on this route"),
            )),
        }
    }
    .await;
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    if let Some(pattern) = pattern {
        response.extensions_mut().insert(RoutePattern(pattern));
    }
    response
}

pub(super) struct Ctx<'a> {
    app: &'a App,
    principal: &'a Principal,
    query: &'a HashMap<String, String>,
    headers: &'a HeaderMap,
}

pub(super) fn unix_now(app: &App) -> i64 {
    app.now().timestamp()
}

/// A repository the caller may use with `cap`.
pub(super) fn for_pull(ctx: &Ctx<'_>, name: &str, cap: Capability) -> RResult<meta::Repo> {
    names::check_name(name)?;
    match meta::repo_caps(&ctx.app.store, ctx.principal, name)? {
        Some((repo, caps)) if caps.contains(cap) => Ok(repo),
        Some(_) => Err(RegistryError::new(
            Code::Denied,
            format!("requested access to the resource is denied: you lack {cap} on {name}"),
        )),
        None => Err(RegistryError::name_unknown(name)),
    }
}

/// A repository the caller may push to, created (owned by the caller) if it is new.
pub(super) fn for_push(ctx: &Ctx<'_>, name: &str) -> RResult<meta::Repo> {
    names::check_name(name)?;
    let store = &ctx.app.store;
    match meta::repo_caps(store, ctx.principal, name)? {
        Some((repo, caps)) if caps.contains(Capability::Update) => Ok(repo),
        Some(_) => Err(RegistryError::new(
            Code::Denied,
            format!("requested access to the resource is denied: you lack UPDATE on {name}"),
        )),
        None if meta::repo(store, name)?.is_some() => Err(RegistryError::name_unknown(name)),
        None => {
            if !meta::may_create(store, ctx.principal, name)? {
                let yours = accounts::namespace_of(store, ctx.principal.owner())?
                    .map_or_else(String::new, |n| format!("; yours is {n}/"));
                return Err(RegistryError::new(
                    Code::Denied,
                    format!(
                        "{name} is in another namespace: a name with '/' starts with its \
                         owner's login{yours}"
                    ),
                ));
            }
            // A servable pushing creates a repository of its owner's account.
            Ok(meta::create_repo(
                store,
                ctx.principal.owner(),
                name,
                ctx.app.now(),
            )?)
        }
    }
}

pub(super) fn header(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, v);
    }
}

/// The caller, through the one credential resolver: `docker login` sends Basic credentials
/// (a password, or an API key as the password) with every request; a Bearer API key or a
/// browser's session cookie work too. Anonymous requests get the 401 challenge.
async fn authenticate(app: &App, headers: &HeaderMap, addr: IpAddr) -> RResult<Principal> {
    let credential = match auth::authorization(headers) {
        Authorization::Bearer(token) => Credential::ApiKey(token),
        Authorization::Basic { secret, .. } if secret.starts_with(KEY_PREFIX) => {
            Credential::ApiKey(secret)
        }
        Authorization::Basic { login, secret } => Credential::Password {
            login,
            password: secret,
        },
        Authorization::Other => {
            return Err(RegistryError::unauthorized(
                "unsupported authorization scheme",
            ));
        }
        Authorization::Malformed => {
            return Err(RegistryError::unauthorized(
                "malformed Authorization header",
            ));
        }
        Authorization::Absent => match auth::session_cookie(headers) {
            Some(Ok(token)) => Credential::Session(token),
            Some(Err(())) => {
                return Err(RegistryError::unauthorized("your session has ended"));
            }
            None => return Err(RegistryError::unauthorized("authentication required")),
        },
    };
    Ok(auth::resolve(app, credential, addr, auth::Scope::Appliance).await?)
}
