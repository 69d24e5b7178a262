//! /v1 servables: made from prototypes with a config and resources, listed, deleted.

use super::openapi::ErrorBody;
use crate::core::clock::Timestamp;
use crate::core::error::Result;
use crate::core::id::Id;
use crate::domains::authz::Capability;
use crate::domains::servables::{self, NewServable, Resources, Servable, ServableType, Volume};
use crate::faces::auth::Auth;
use crate::faces::body::JsonBody;
use crate::faces::errors::parse_id;
use crate::faces::listing::{ListQuery, PageParams, page_response};
use crate::faces::params::Path;
use crate::faces::state::App;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list_servables, create_servable))
        .routes(routes!(get_servable, delete_servable))
}

#[derive(Serialize, ToSchema)]
pub struct PrototypeRef {
    id: Id,
    name: String,
    tag: String,
}

#[derive(Serialize, ToSchema)]
pub struct ServableView {
    id: Id,
    #[serde(rename = "type")]
    kind: ServableType,
    name: String,
    prototype: PrototypeRef,
    config: Value,
    resources: Resources,
    access_control: bool,
    owner: Id,
    creator: Id,
    #[schema(value_type = String, format = DateTime)]
    created: Timestamp,
    /// HTTP types: where the proxy serves it (`<id>.<apps-domain>`).
    url: Option<String>,
    /// HTTP types: the same under `/apps/<id>/` of the appliance.
    path_url: Option<String>,
    volume: Option<Volume>,
    /// Limits the engine cannot enforce here, and why.
    unenforced: Vec<String>,
    /// The latest instance.
    current_instance: Option<Id>,
}

/// The proxy's URLs of an HTTP-type servable.
pub(super) fn urls(app: &App, kind: ServableType, id: Id) -> (Option<String>, Option<String>) {
    if !kind.serves_http() {
        return (None, None);
    }
    let (host, path) = proxy_urls(
        app.config.tls_enabled(),
        app.local_addr(),
        &app.config.servables.apps_domain,
        id,
    );
    (Some(host), Some(path))
}

/// The host form and the path form of an app's address behind a listener at `addr`: https
/// when the listener speaks TLS, the port left out when it is the scheme's own.
fn proxy_urls(tls: bool, addr: std::net::SocketAddr, domain: &str, id: Id) -> (String, String) {
    let (scheme, default_port) = if tls { ("https", 443) } else { ("http", 80) };
    let port = match addr.port() {
        p if p == default_port => String::new(),
        p => format!(":{p}"),
    };
    (
        format!("{scheme}://{id}.{domain}{port}/"),
        format!(
            "{}/apps/{id}/",
            crate::core::config::listener_origin(tls, addr)
        ),
    )
}

fn servable_view(app: &App, s: Servable) -> ServableView {
    let prototype = servables::get_prototype(&app.store, s.prototype)
        .ok()
        .flatten()
        .map(|p| PrototypeRef {
            id: p.id,
            name: p.name,
            tag: p.tag,
        })
        .unwrap_or(PrototypeRef {
            id: s.prototype,
            name: String::new(),
            tag: String::new(),
        });
    let (url, path_url) = urls(app, s.kind, s.id);
    ServableView {
        id: s.id,
        kind: s.kind,
        name: s.name,
        prototype,
        config: s.config,
        resources: s.resources,
        access_control: s.access_control,
        owner: s.owner,
        creator: s.creator,
        created: s.created,
        url,
        path_url,
        volume: s.volume,
        unenforced: s.unenforced,
        current_instance: s.current,
    }
}

/// The filters of the servable list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ServableQuery {
    /// Only servables of this type (`GET /v1/types`).
    #[param(rename = "type", inline)]
    kind: Option<ServableType>,
    /// Only servables made from this prototype.
    prototype: Option<Id>,
}

/// Servables the caller may read, a page at a time (oldest first).
#[utoipa::path(get, path = "/servables", tag = "servables", params(PageParams, ServableQuery),
    responses(
        (status = 200, body = [ServableView], headers(
            ("X-Next-Cursor" = String, description = "The cursor of the next page, when there is one"),
            ("Link" = String, description = "The next page's address, `rel=\"next\"`"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_servables(State(app): State<App>, Auth(p): Auth, q: ListQuery) -> Result<Response> {
    let kind = q.choice("type", &ServableType::ALL, ServableType::as_str)?;
    let prototype = q.id("prototype")?;
    let page = q.page()?;
    page_response(
        &app,
        &q,
        move |app| servables::list_servables(&app.store, &p, kind, prototype, page),
        servable_view,
    )
    .await
}

/// Creates a servable from a prototype (CREATE on the prototype).
#[utoipa::path(post, path = "/servables", tag = "servables", request_body = NewServable,
    responses(
        (status = 201, body = ServableView),
        (status = 400, body = ErrorBody, description = "Problems, listed in error.details"),
        (status = 403, body = ErrorBody, description = "No CREATE on the prototype"),
        (status = 404, body = ErrorBody, description = "No such prototype"),
        (status = 409, body = ErrorBody, description = "Problems, listed in error.details, each a conflict with the prototype"),
    ))]
async fn create_servable(
    State(app): State<App>,
    Auth(p): Auth,
    JsonBody(new): JsonBody<NewServable>,
) -> Result<(StatusCode, Json<ServableView>)> {
    let servable = app
        .blocking(move |app| servables::create_servable(&app.store, &p, new, app.now()))
        .await?;
    Ok((StatusCode::CREATED, Json(servable_view(&app, servable))))
}

/// One servable (READ).
#[utoipa::path(get, path = "/servables/{id}", tag = "servables",
    params(("id" = Id, Path)),
    responses((status = 200, body = ServableView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_servable(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<ServableView>> {
    let id = parse_id(&id, "Servable")?;
    let s = servables::servable_for(&app.store, &p, id, Capability::Read)?;
    Ok(Json(servable_view(&app, s)))
}

/// Deletes a servable (DELETE): its instances are stopped and removed, its volume too.
#[utoipa::path(delete, path = "/servables/{id}", tag = "servables",
    params(("id" = Id, Path)),
    responses(
        (status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 502, body = ErrorBody, description = "The Docker engine failed"),
        (status = 503, body = ErrorBody, description = "The Docker engine does not answer"),
    ))]
async fn delete_servable(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let id = parse_id(&id, "Servable")?;
    app.instances.delete_servable(&p, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::proxy_urls;
    use crate::core::id::Id;

    #[test]
    fn app_urls_follow_the_listeners_scheme_and_port() {
        let id = Id::new();
        let at = |a: &str| a.parse().unwrap();
        assert_eq!(
            proxy_urls(false, at("127.0.0.1:5000"), "apps.localhost", id),
            (
                format!("http://{id}.apps.localhost:5000/"),
                format!("http://127.0.0.1:5000/apps/{id}/")
            )
        );
        assert_eq!(
            proxy_urls(true, at("0.0.0.0:443"), "apps.example.org", id),
            (
                format!("https://{id}.apps.example.org/"),
                format!("https://localhost/apps/{id}/")
            )
        );
        assert_eq!(
            proxy_urls(true, at("10.0.0.2:80"), "apps.example.org", id).1,
            format!("https://10.0.0.2:80/apps/{id}/")
        );
        assert_eq!(
            proxy_urls(false, at("[::1]:80"), "apps.example.org", id).1,
            format!("http://[::1]/apps/{id}/")
        );
    }
}
