//! /v1 types and prototypes: the servable types, and prototypes registered from project
//! manifests (seeds 001, 002).

use super::openapi::ErrorBody;
use crate::core::clock::Timestamp;
use crate::core::error::Result;
use crate::core::id::Id;
use crate::domains::authz::Capability;
use crate::domains::servables::{self, Prototype, ServableType, manifest};
use crate::faces::auth::Auth;
use crate::faces::body::JsonBody;
use crate::faces::listing::{ListQuery, PageParams, read_page};
use crate::faces::state::App;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(types))
        .routes(routes!(list_prototypes, register))
        .routes(routes!(get_prototype, delete_prototype))
}

#[derive(Serialize, ToSchema)]
pub struct TypeView {
    /// The type's name, as manifests and servables use it.
    name: ServableType,
    /// Served over HTTP on port 8080 behind the app proxy.
    http: bool,
    /// Restarted with backoff when it fails.
    restarts_on_failure: bool,
    description: &'static str,
}

/// The servable types.
#[utoipa::path(get, path = "/types", tag = "servables",
    responses((status = 200, body = [TypeView]), (status = 401, body = ErrorBody)))]
async fn types(Auth(_caller): Auth) -> Json<Vec<TypeView>> {
    Json(
        ServableType::ALL
            .into_iter()
            .map(|t| TypeView {
                name: t,
                http: t.serves_http(),
                restarts_on_failure: t.restarts_on_failure(),
                description: t.description(),
            })
            .collect(),
    )
}

#[derive(Serialize, ToSchema)]
pub struct PrototypeView {
    id: Id,
    name: String,
    tag: String,
    #[serde(rename = "type")]
    kind: ServableType,
    /// The image in the appliance's registry (`repository:tag`).
    image: String,
    dependencies: BTreeMap<String, Id>,
    arguments: Value,
    capabilities: BTreeMap<Id, Vec<Capability>>,
    #[serde(rename = "config-capabilities")]
    config_capabilities: Value,
    dockerfile: Option<String>,
    context: Option<String>,
    owner: Id,
    #[schema(value_type = String, format = DateTime)]
    created: Timestamp,
}

impl From<Prototype> for PrototypeView {
    fn from(p: Prototype) -> Self {
        PrototypeView {
            image: format!("{}:{}", p.repository, p.tag),
            id: p.id,
            name: p.name,
            tag: p.tag,
            kind: p.kind,
            dependencies: p.dependencies,
            arguments: p.arguments,
            capabilities: p.capabilities,
            config_capabilities: p.config_capabilities,
            dockerfile: p.dockerfile,
            context: p.context,
            owner: p.owner,
            created: p.created,
        }
    }
}

/// The filter of the prototype list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PrototypeQuery {
    /// Only prototypes of this type (`GET /v1/types`).
    #[param(rename = "type", inline)]
    kind: Option<ServableType>,
}

/// Prototypes the caller may read, a page at a time (oldest first).
#[utoipa::path(get, path = "/prototypes", tag = "prototypes", params(PageParams, PrototypeQuery),
    responses(
        (status = 200, body = [PrototypeView], headers(
            ("X-Next-Cursor" = String, description = "The cursor of the next page, when there is one"),
            ("Link" = String, description = "The next page's address, `rel=\"next\"`"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_prototypes(State(app): State<App>, Auth(p): Auth, q: ListQuery) -> Result<Response> {
    let kind = q.choice("type", &ServableType::ALL, ServableType::as_str)?;
    let page = q.page()?;
    let list = read_page(&app, move |app| {
        servables::list_prototypes(&app.store, &p, kind, page)
    })
    .await?;
    Ok(q.respond(list.map(PrototypeView::from)))
}

/// Registers every prototype of a project manifest (the content of `MANIFEST` or
/// `MANIFEST.json`), or none: each problem is reported with the prototype and field it concerns.
#[utoipa::path(post, path = "/prototypes", tag = "prototypes",
    request_body(content = Object, description = "A manifest: prototype name -> metadata"),
    responses(
        (status = 201, body = [PrototypeView]),
        (status = 400, body = ErrorBody, description = "Problems, listed in error.details"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "No CREATE on prototypes"),
        (status = 409, body = ErrorBody, description = "A name:tag is already registered"),
    ))]
async fn register(
    State(app): State<App>,
    Auth(p): Auth,
    JsonBody(manifest): JsonBody<Value>,
) -> Result<(StatusCode, Json<Vec<PrototypeView>>)> {
    let now = app.now();
    let list = app
        .blocking(move |app| servables::register_manifest(&app.store, &p, &manifest, now))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(list.into_iter().map(PrototypeView::from).collect()),
    ))
}

/// One prototype, by id or `name:tag` (READ).
#[utoipa::path(get, path = "/prototypes/{prototype}", tag = "prototypes",
    params(("prototype" = String, Path, description = "Id or name:tag")),
    responses((status = 200, body = PrototypeView), (status = 404, body = ErrorBody)))]
async fn get_prototype(
    State(app): State<App>,
    Auth(p): Auth,
    Path(reference): Path<String>,
) -> Result<Json<PrototypeView>> {
    let prototype = manifest::prototype_for(&app.store, &p, &reference, Capability::Read)?;
    Ok(Json(prototype.into()))
}

/// Deletes a prototype (DELETE); 409 naming the prototypes and servables that still use it.
#[utoipa::path(delete, path = "/prototypes/{prototype}", tag = "prototypes",
    params(("prototype" = String, Path, description = "Id or name:tag")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_prototype(
    State(app): State<App>,
    Auth(p): Auth,
    Path(reference): Path<String>,
) -> Result<StatusCode> {
    app.blocking(move |app| manifest::delete_prototype(&app.store, &p, &reference))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
