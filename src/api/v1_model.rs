//! /v1 views of the DTaaS model: types, prototypes (from manifests), servables and instances.

use super::auth::Auth;
use super::body::JsonBody;
use super::kabuto_jobs::parse_id;
use super::openapi::ErrorBody;
use super::v1_jobs::{LogQuery, log_response};
use crate::authz::Capability;
use crate::clock::Timestamp;
use crate::error::Result;
use crate::id::Id;
use crate::servables::{
    self, Instance, InstanceState, NewServable, Output, Prototype, Resources, Servable,
    ServableType, Volume, manifest, runtime,
};
use crate::server::App;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(types))
        .routes(routes!(list_prototypes, register))
        .routes(routes!(get_prototype, delete_prototype))
        .routes(routes!(list_servables, create_servable))
        .routes(routes!(get_servable, delete_servable))
        .routes(routes!(run_servable))
        .routes(routes!(servable_instances))
        .routes(routes!(get_instance, delete_instance))
        .routes(routes!(stop_instance))
        .routes(routes!(restart_instance))
        .routes(routes!(instance_logs))
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

/// Prototypes the caller may read.
#[utoipa::path(get, path = "/prototypes", tag = "prototypes",
    responses((status = 200, body = [PrototypeView]), (status = 401, body = ErrorBody)))]
async fn list_prototypes(
    State(app): State<App>,
    Auth(p): Auth,
) -> Result<Json<Vec<PrototypeView>>> {
    let list = servables::list_prototypes(&app.store, &p)?;
    Ok(Json(list.into_iter().map(PrototypeView::from).collect()))
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
fn urls(app: &App, kind: ServableType, id: Id) -> (Option<String>, Option<String>) {
    if !kind.serves_http() {
        return (None, None);
    }
    let addr = app.local_addr();
    let port = match addr.port() {
        80 => String::new(),
        p => format!(":{p}"),
    };
    let domain = &app.config.servables.apps_domain;
    let host = if addr.ip().is_unspecified() {
        "localhost".to_owned()
    } else {
        addr.ip().to_string()
    };
    (
        Some(format!("http://{id}.{domain}{port}/")),
        Some(format!("http://{host}{port}/apps/{id}/")),
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

#[derive(Deserialize, IntoParams)]
pub struct ServableQuery {
    /// Only servables of this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    kind: Option<String>,
}

/// Servables the caller may read.
#[utoipa::path(get, path = "/servables", tag = "servables", params(ServableQuery),
    responses((status = 200, body = [ServableView]), (status = 400, body = ErrorBody)))]
async fn list_servables(
    State(app): State<App>,
    Auth(p): Auth,
    Query(q): Query<ServableQuery>,
) -> Result<Json<Vec<ServableView>>> {
    let kind = match q.kind.as_deref() {
        None | Some("") => None,
        Some(t) => Some(ServableType::parse(t).ok_or_else(|| {
            crate::Error::bad_request(format!("{t:?} is not a type (GET /v1/types)"))
        })?),
    };
    let list = servables::list_servables(&app.store, &p, kind)?;
    Ok(Json(
        list.into_iter().map(|s| servable_view(&app, s)).collect(),
    ))
}

/// Creates a servable from a prototype (CREATE on the prototype).
#[utoipa::path(post, path = "/servables", tag = "servables", request_body = NewServable,
    responses(
        (status = 201, body = ServableView),
        (status = 400, body = ErrorBody, description = "Problems, listed in error.details"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
async fn create_servable(
    State(app): State<App>,
    Auth(p): Auth,
    JsonBody(new): JsonBody<NewServable>,
) -> Result<(StatusCode, Json<ServableView>)> {
    let servable = app
        .blocking(move |app| servables::create_servable(app, &p, new))
        .await?;
    Ok((StatusCode::CREATED, Json(servable_view(&app, servable))))
}

/// One servable (READ).
#[utoipa::path(get, path = "/servables/{id}", tag = "servables",
    params(("id" = Id, Path)),
    responses((status = 200, body = ServableView), (status = 404, body = ErrorBody)))]
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
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_servable(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let id = parse_id(&id, "Servable")?;
    servables::delete_servable(&app, &p, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct InstanceView {
    id: Id,
    servable: Id,
    #[serde(rename = "type")]
    kind: ServableType,
    state: InstanceState,
    exit_code: Option<i64>,
    /// On the servable network, reachable by other servables.
    ipv4_address: Option<String>,
    /// HTTP types: where the proxy serves it.
    url: Option<String>,
    restarts: u32,
    error: Option<String>,
    /// Objects it created (pipelines).
    outputs: Vec<Output>,
    /// The principal that ran it.
    runner: Id,
    #[schema(value_type = String, format = DateTime)]
    created: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    started: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    finished: Option<Timestamp>,
}

fn instance_view(app: &App, i: Instance) -> InstanceView {
    let (url, _) = urls(app, i.kind, i.servable);
    InstanceView {
        id: i.id,
        servable: i.servable,
        kind: i.kind,
        state: i.state,
        exit_code: i.exit_code,
        ipv4_address: i.ipv4_address,
        url,
        restarts: i.restarts,
        error: i.error,
        outputs: i.outputs,
        runner: i.runner,
        created: i.created,
        started: i.started,
        finished: i.finished,
    }
}

/// Runs the servable (UPDATE): a new instance, answered once its container runs. What the
/// servable needs on other objects is delegated from the caller or requested.
#[utoipa::path(post, path = "/servables/{id}/run", tag = "servables",
    params(("id" = Id, Path)),
    responses(
        (status = 201, body = InstanceView, description = "Running, or failed to start (see error)"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "An instance is already active"),
        (status = 503, body = ErrorBody, description = "The Docker engine is unavailable"),
    ))]
async fn run_servable(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<InstanceView>)> {
    let id = parse_id(&id, "Servable")?;
    let instance = runtime::run(&app, &p, id).await?;
    Ok((StatusCode::CREATED, Json(instance_view(&app, instance))))
}

/// A servable's instances (READ on each), oldest first.
#[utoipa::path(get, path = "/servables/{id}/instances", tag = "servables",
    params(("id" = Id, Path)),
    responses((status = 200, body = [InstanceView]), (status = 404, body = ErrorBody)))]
async fn servable_instances(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<Vec<InstanceView>>> {
    let id = parse_id(&id, "Servable")?;
    servables::servable_for(&app.store, &p, id, Capability::Read)?;
    let list = servables::list_instances(&app.store, &p, id)?;
    Ok(Json(
        list.into_iter().map(|i| instance_view(&app, i)).collect(),
    ))
}

/// One instance (READ).
#[utoipa::path(get, path = "/instances/{id}", tag = "instances",
    params(("id" = Id, Path)),
    responses((status = 200, body = InstanceView), (status = 404, body = ErrorBody)))]
async fn get_instance(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<InstanceView>> {
    let id = parse_id(&id, "Instance")?;
    let i = servables::instance_for(&app.store, &p, id, Capability::Read)?;
    Ok(Json(instance_view(&app, i)))
}

/// Deletes an instance (DELETE): stopped first, its container and logs removed.
#[utoipa::path(delete, path = "/instances/{id}", tag = "instances",
    params(("id" = Id, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_instance(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let id = parse_id(&id, "Instance")?;
    servables::delete_instance(&app, &p, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stops an instance (UPDATE): SIGTERM, then SIGKILL after the stop timeout.
#[utoipa::path(post, path = "/instances/{id}/stop", tag = "instances",
    params(("id" = Id, Path)),
    responses((status = 200, body = InstanceView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn stop_instance(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<InstanceView>> {
    let id = parse_id(&id, "Instance")?;
    let i = runtime::stop(&app, &p, id).await?;
    Ok(Json(instance_view(&app, i)))
}

/// Restarts the servable's latest instance (UPDATE), with a fresh API key.
#[utoipa::path(post, path = "/instances/{id}/restart", tag = "instances",
    params(("id" = Id, Path)),
    responses((status = 200, body = InstanceView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn restart_instance(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<InstanceView>> {
    let id = parse_id(&id, "Instance")?;
    let i = runtime::restart(&app, &p, id).await?;
    Ok(Json(instance_view(&app, i)))
}

/// An instance's log lines (READ); `?follow=1` streams them as server-sent events (`log`
/// events, then an `end` event when the instance has ended).
#[utoipa::path(get, path = "/instances/{id}/logs", tag = "instances",
    params(("id" = Id, Path), LogQuery),
    responses(
        (status = 200, description = "JSON lines, or text/event-stream with follow"),
        (status = 404, body = ErrorBody),
    ))]
async fn instance_logs(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Response> {
    let id = parse_id(&id, "Instance")?;
    servables::instance_for(&app.store, &p, id, Capability::Read)?;
    log_response(app, id, q, |app, id| {
        let instance = servables::get_instance(&app.store, id)?;
        Ok(match instance {
            None => Some(serde_json::json!({ "state": "deleted" })),
            Some(i) if !i.state.is_active() && !app.servables.is_supervising(id) => {
                Some(serde_json::json!({ "state": i.state.as_str(), "exit_code": i.exit_code }))
            }
            Some(_) => None,
        })
    })
    .await
}
