//! /v1 jobs: list, one, kill, results, and logs with a live stream.

use super::logs::{LogQuery, log_response};
use super::openapi::ErrorBody;
use crate::core::error::Result;
use crate::core::id::Id;
use crate::domains::authz::Capability;
use crate::domains::jobs::{self, JobFilter, JobState};
use crate::faces::auth::Auth;
use crate::faces::download::result_zip;
use crate::faces::errors::parse_id;
use crate::faces::listing::{ListQuery, PageParams, page_response};
use crate::faces::params::{Path, Query};
use crate::faces::state::App;
use crate::faces::views;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(one))
        .routes(routes!(kill_one))
        .routes(routes!(result))
        .routes(routes!(logs))
}

/// The filters of the job list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct JobQuery {
    /// Only jobs in this state.
    #[param(inline)]
    state: Option<JobState>,
    /// Only jobs of this pipeline.
    pipeline: Option<Id>,
}

/// Jobs the caller may read (kabuto's job fields), a page at a time (oldest first).
#[utoipa::path(get, path = "/jobs", tag = "jobs", params(PageParams, JobQuery),
    responses(
        (status = 200, body = [Object], headers(
            ("X-Next-Cursor" = String, description = "The cursor of the next page, when there is one"),
            ("Link" = String, description = "The next page's address, `rel=\"next\"`"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list(State(app): State<App>, Auth(p): Auth, q: ListQuery) -> Result<Response> {
    let filter = JobFilter {
        state: q.choice("state", &JobState::ALL, JobState::as_str)?,
        pipeline: q.id("pipeline")?,
    };
    let page = q.page()?;
    page_response(
        &app,
        &q,
        move |app| jobs::list_jobs(&app.store, &p, filter, page),
        |_, j| views::job(&j),
    )
    .await
}

/// One job (READ).
#[utoipa::path(get, path = "/jobs/{id}", tag = "jobs", params(("id" = Id, Path)),
    responses((status = 200, body = Object), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn one(State(app): State<App>, Auth(p): Auth, Path(id): Path<String>) -> Result<Json<Value>> {
    let id = parse_id(&id, "Job")?;
    let job = jobs::job_for(&app.store, &p, None, id, Capability::Read)?;
    Ok(Json(views::job(&job)))
}

/// Kills a queued or running job (UPDATE).
#[utoipa::path(post, path = "/jobs/{id}/kill", tag = "jobs", params(("id" = Id, Path)),
    responses(
        (status = 200, body = Object), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 502, body = ErrorBody, description = "The Docker engine failed"),
        (status = 503, body = ErrorBody, description = "The Docker engine does not answer"),
    ))]
async fn kill_one(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let id = parse_id(&id, "Job")?;
    jobs::job_for(&app.store, &p, None, id, Capability::Update)?;
    let state = app.jobs.stop_job(id, &p.name).await?;
    Ok(Json(json!({ "id": id, "state": state.as_str() })))
}

/// The job's outbox as a zip, once it has ended (READ).
#[utoipa::path(get, path = "/jobs/{id}/result", tag = "jobs", params(("id" = Id, Path)),
    responses(
        (status = 200, content_type = "application/zip"), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
    ))]
async fn result(State(app): State<App>, Auth(p): Auth, Path(id): Path<String>) -> Result<Response> {
    let id = parse_id(&id, "Job")?;
    let job = jobs::job_for(&app.store, &p, None, id, Capability::Read)?;
    result_zip(&app, &job).await
}

/// A job's log lines (READ); `?follow=1` streams them as server-sent events (`log` events,
/// then an `end` event when the job has ended).
#[utoipa::path(get, path = "/jobs/{id}/logs", tag = "jobs", params(("id" = Id, Path), LogQuery),
    responses(
        (status = 200, description = "The lines as a JSON array of `{\"id\", \"job\", \"logline\"}`, or text/event-stream with follow"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
async fn logs(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Response> {
    let id = parse_id(&id, "Job")?;
    jobs::job_for(&app.store, &p, None, id, Capability::Read)?;
    log_response(app, id, crate::faces::views::LogOf::Job, q, |app, id| {
        Ok(match jobs::get_job(&app.store, id)? {
            None => Some(json!({ "state": "deleted" })),
            Some(j) if j.state.is_finished() || j.state == jobs::JobState::Ready => {
                Some(json!({ "state": j.state.as_str(), "response": j.response }))
            }
            Some(_) => None,
        })
    })
    .await
}
