//! /v1 instances: a servable's runs (run, list, stop, restart, delete) and their logs.

use super::logs::{LogQuery, log_response};
use super::openapi::ErrorBody;
use super::servables::urls;
use crate::core::clock::Timestamp;
use crate::core::error::Result;
use crate::core::id::Id;
use crate::domains::authz::Capability;
use crate::domains::servables::{self, Instance, InstanceState, Output, ServableType};
use crate::faces::auth::Auth;
use crate::faces::errors::parse_id;
use crate::faces::listing::{ListQuery, PageParams, page_response};
use crate::faces::params::{Path, Query};
use crate::faces::state::App;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(run_servable))
        .routes(routes!(servable_instances))
        .routes(routes!(get_instance, delete_instance))
        .routes(routes!(stop_instance))
        .routes(routes!(restart_instance))
        .routes(routes!(instance_logs))
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
        (status = 409, body = ErrorBody, description = "An instance is already active, or the prototype was deleted"),
        (status = 400, body = ErrorBody, description = "The Docker engine refused the servable's container (its image or options)"),
        (status = 502, body = ErrorBody, description = "The Docker engine failed"),
        (status = 503, body = ErrorBody, description = "The Docker engine does not answer"),
    ))]
async fn run_servable(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<InstanceView>)> {
    let id = parse_id(&id, "Servable")?;
    let instance = app.instances.run(&p, id).await?;
    Ok((StatusCode::CREATED, Json(instance_view(&app, instance))))
}

/// A servable's instances (READ on each), a page at a time (oldest first).
#[utoipa::path(get, path = "/servables/{id}/instances", tag = "servables",
    params(("id" = Id, Path), PageParams),
    responses(
        (status = 200, body = [InstanceView], headers(
            ("X-Next-Cursor" = String, description = "The cursor of the next page, when there is one"),
            ("Link" = String, description = "The next page's address, `rel=\"next\"`"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn servable_instances(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    q: ListQuery,
) -> Result<Response> {
    let id = parse_id(&id, "Servable")?;
    let page = q.page()?;
    page_response(
        &app,
        &q,
        move |app| {
            servables::servable_for(&app.store, &p, id, Capability::Read)?;
            servables::list_instances(&app.store, &p, id, page)
        },
        instance_view,
    )
    .await
}

/// One instance (READ).
#[utoipa::path(get, path = "/instances/{id}", tag = "instances",
    params(("id" = Id, Path)),
    responses((status = 200, body = InstanceView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
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
    responses(
        (status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 502, body = ErrorBody, description = "The Docker engine failed"),
        (status = 503, body = ErrorBody, description = "The Docker engine does not answer"),
    ))]
async fn delete_instance(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let id = parse_id(&id, "Instance")?;
    app.instances.delete_instance(&p, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stops an instance (UPDATE): SIGTERM, then SIGKILL after the stop timeout.
#[utoipa::path(post, path = "/instances/{id}/stop", tag = "instances",
    params(("id" = Id, Path)),
    responses(
        (status = 200, body = InstanceView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 502, body = ErrorBody, description = "The Docker engine failed"),
        (status = 503, body = ErrorBody, description = "The Docker engine does not answer"),
    ))]
async fn stop_instance(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<InstanceView>> {
    let id = parse_id(&id, "Instance")?;
    let i = app.instances.stop(&p, id).await?;
    Ok(Json(instance_view(&app, i)))
}

/// Restarts the servable's latest instance (UPDATE), with a fresh API key.
#[utoipa::path(post, path = "/instances/{id}/restart", tag = "instances",
    params(("id" = Id, Path)),
    responses(
        (status = 200, body = InstanceView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 400, body = ErrorBody, description = "The Docker engine refused the servable's container (its image or options)"),
        (status = 502, body = ErrorBody, description = "The Docker engine failed"),
        (status = 503, body = ErrorBody, description = "The Docker engine does not answer"),
    ))]
async fn restart_instance(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<InstanceView>> {
    let id = parse_id(&id, "Instance")?;
    let i = app.instances.restart(&p, id).await?;
    Ok(Json(instance_view(&app, i)))
}

/// An instance's log lines (READ); `?follow=1` streams them as server-sent events (`log`
/// events, then an `end` event when the instance has ended).
#[utoipa::path(get, path = "/instances/{id}/logs", tag = "instances",
    params(("id" = Id, Path), LogQuery),
    responses(
        (status = 200, description = "The lines as a JSON array of `{\"id\", \"instance\", \"logline\"}`, or text/event-stream with follow"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
async fn instance_logs(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Response> {
    let id = parse_id(&id, "Instance")?;
    servables::instance_for(&app.store, &p, id, Capability::Read)?;
    let of = crate::faces::views::LogOf::Instance;
    log_response(app, id, of, q, |app, id| {
        let instance = servables::get_instance(&app.store, id)?;
        Ok(match instance {
            None => Some(serde_json::json!({ "state": "deleted" })),
            Some(i) if !i.state.is_active() && !app.instances.is_supervising(id) => {
                Some(serde_json::json!({ "state": i.state.as_str(), "exit_code": i.exit_code }))
            }
            Some(_) => None,
        })
    })
    .await
}
