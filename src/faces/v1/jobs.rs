//! /v1 jobs: list, one, kill, remove, results, and logs with a live stream. Jobs are added to
//! a pipeline through `/v1/pipelines/{id}/jobs` (`pipelines`).

use super::logs::{LogQuery, log_response};
use super::openapi::ErrorBody;
use crate::core::clock::Timestamp;
use crate::core::error::Result;
use crate::core::id::Id;
use crate::domains::authz::Capability;
use crate::domains::jobs::{self, Job, JobFilter, JobState};
use crate::faces::auth::Auth;
use crate::faces::download::result_zip;
use crate::faces::errors::parse_id;
use crate::faces::listing::{ListQuery, PageParams, page_response};
use crate::faces::params::{Path, Query};
use crate::faces::state::App;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(one, remove))
        .routes(routes!(kill_one))
        .routes(routes!(result))
        .routes(routes!(logs))
}

/// An object named by its id (seed 003's `{"id": ...}`).
#[derive(Serialize, ToSchema)]
pub struct IdRef {
    id: Id,
}

/// A job, in seed 003's shape (the kabuto face's too).
#[derive(Serialize, ToSchema)]
pub struct JobView {
    id: Id,
    /// Split like a shell splits it.
    command: String,
    state: JobState,
    #[schema(value_type = String, format = DateTime)]
    creation_date: Timestamp,
    /// CPU seconds.
    used_cpu: f64,
    /// Peak memory, bytes.
    used_memory: u64,
    /// Bytes read and written.
    used_io: u64,
    /// The command's exit code.
    response: Option<i64>,
    image: IdRef,
    pipeline: IdRef,
    /// The file names under `/inbox`.
    attachments: Vec<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    started: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    finished: Option<Timestamp>,
    /// Why it failed or was cancelled, when the appliance knows.
    error: Option<String>,
}

pub(super) fn job_view(j: Job) -> JobView {
    JobView {
        id: j.id,
        command: j.command,
        state: j.state,
        creation_date: j.creation_date,
        used_cpu: j.used_cpu,
        used_memory: j.used_memory,
        used_io: j.used_io,
        response: j.response,
        image: IdRef { id: j.image },
        pipeline: IdRef { id: j.pipeline },
        attachments: j.attachments,
        started: j.started,
        finished: j.finished,
        error: j.error,
    }
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
        (status = 200, body = [JobView], headers(
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
        |_, j| job_view(j),
    )
    .await
}

/// One job (READ).
#[utoipa::path(get, path = "/jobs/{id}", tag = "jobs", params(("id" = Id, Path)),
    responses((status = 200, body = JobView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn one(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<JobView>> {
    let id = parse_id(&id, "Job")?;
    let job = jobs::job_for(&app.store, &p, None, id, Capability::Read)?;
    Ok(Json(job_view(job)))
}

/// Removes a job from its pipeline and deletes it, with its logs, attachments and results
/// (DELETE), while the pipeline is neither queued nor running.
#[utoipa::path(delete, path = "/jobs/{id}", tag = "jobs", params(("id" = Id, Path)),
    responses(
        (status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Its pipeline is queued or running"),
    ))]
async fn remove(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let id = parse_id(&id, "Job")?;
    app.blocking(move |app| jobs::remove_job(&app.store, &p, id))
        .await?;
    app.jobs.remove_job_files(id).await;
    Ok(StatusCode::NO_CONTENT)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// /v1's typed job is seed 003's shape, which the kabuto face answers: the same JSON.
    #[test]
    fn the_typed_job_is_the_seeds_shape() {
        let job = Job {
            id: Id::new(),
            owner: Id::new(),
            pipeline: Id::new(),
            image: Id::new(),
            command: "sh -c 'echo hi'".into(),
            state: JobState::Failed,
            creation_date: chrono::Utc::now(),
            attachments: vec!["in.txt".into()],
            used_cpu: 0.25,
            used_memory: 1024,
            used_io: 7,
            response: Some(3),
            started: Some(chrono::Utc::now()),
            finished: None,
            error: Some("exit 3".into()),
            kill_requested: false,
            log: Default::default(),
        };
        assert_eq!(
            serde_json::to_value(job_view(job.clone())).unwrap(),
            crate::faces::views::job(&job)
        );
    }
}
