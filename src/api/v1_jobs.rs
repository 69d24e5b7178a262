//! /v1 views of jobs: list, one, kill, results, and logs with a live stream
//! (`?follow=1`: server-sent events, one `log` event per line, an `end` event when the job ends).

use super::auth::Auth;
use super::kabuto_jobs::{kill, parse_id, result_zip};
use super::openapi::ErrorBody;
use super::views;
use crate::authz::Capability;
use crate::error::Result;
use crate::id::Id;
use crate::jobs::{self, LogLine};
use crate::server::App;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(one))
        .routes(routes!(kill_one))
        .routes(routes!(result))
        .routes(routes!(logs))
}

/// Jobs the caller may read (kabuto's job fields).
#[utoipa::path(get, path = "/jobs", tag = "jobs",
    responses((status = 200, body = [Object]), (status = 401, body = ErrorBody)))]
async fn list(State(app): State<App>, Auth(p): Auth) -> Result<Json<Value>> {
    let list = jobs::list_jobs(&app.store, &p)?;
    Ok(Json(Value::Array(list.iter().map(views::job).collect())))
}

/// One job (READ).
#[utoipa::path(get, path = "/jobs/{id}", tag = "jobs", params(("id" = Id, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
async fn one(State(app): State<App>, Auth(p): Auth, Path(id): Path<String>) -> Result<Json<Value>> {
    let id = parse_id(&id, "Job")?;
    let job = jobs::job_for(&app.store, &p, None, id, Capability::Read)?;
    Ok(Json(views::job(&job)))
}

/// Kills a queued or running job (UPDATE).
#[utoipa::path(post, path = "/jobs/{id}/kill", tag = "jobs", params(("id" = Id, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn kill_one(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let id = parse_id(&id, "Job")?;
    let state = kill(&app, &p, id).await?;
    Ok(Json(json!({ "id": id, "state": state.as_str() })))
}

/// The job's outbox as a zip, once it has ended (READ).
#[utoipa::path(get, path = "/jobs/{id}/result", tag = "jobs", params(("id" = Id, Path)),
    responses((status = 200, content_type = "application/zip"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn result(State(app): State<App>, Auth(p): Auth, Path(id): Path<String>) -> Result<Response> {
    let id = parse_id(&id, "Job")?;
    let job = jobs::job_for(&app.store, &p, None, id, Capability::Read)?;
    result_zip(&app, &job).await
}

#[derive(Deserialize, IntoParams)]
pub struct LogQuery {
    /// Only lines after this log id.
    #[serde(default)]
    after: u64,
    /// `1`: stream until the end, as server-sent events.
    #[serde(default)]
    follow: Option<String>,
}

/// A job's log lines (READ); `?follow=1` streams them as server-sent events (`log` events,
/// then an `end` event when the job has ended).
#[utoipa::path(get, path = "/jobs/{id}/logs", tag = "jobs", params(("id" = Id, Path), LogQuery),
    responses(
        (status = 200, description = "JSON lines, or text/event-stream with follow"),
        (status = 404, body = ErrorBody),
    ))]
async fn logs(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Response> {
    let id = parse_id(&id, "Job")?;
    jobs::job_for(&app.store, &p, None, id, Capability::Read)?;
    log_response(app, id, q, |app, id| {
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

/// What a log follower asks when no line is new: `Some(end event data)` once the owner of the
/// log (a job, an instance) has ended.
pub type EndProbe = Arc<dyn Fn(&App, Id) -> Result<Option<Value>> + Send + Sync>;

/// The stored lines of a job or an instance, or their live stream.
pub async fn log_response(
    app: App,
    id: Id,
    q: LogQuery,
    ended: impl Fn(&App, Id) -> Result<Option<Value>> + Send + Sync + 'static,
) -> Result<Response> {
    let follow = q
        .follow
        .as_deref()
        .is_some_and(|f| !matches!(f, "0" | "false" | "no"));
    if !follow {
        let after = q.after;
        let lines = app
            .blocking(move |app| jobs::read_logs(&app.store, id, after, usize::MAX))
            .await?;
        return Ok(Json(Value::Array(lines.iter().map(views::log_line).collect())).into_response());
    }
    Ok(Sse::new(follow_stream(app, id, q.after, Arc::new(ended)))
        .keep_alive(KeepAlive::default())
        .into_response())
}

struct Follow {
    app: App,
    job: Id,
    after: u64,
    done: bool,
    ended: EndProbe,
}

fn line_event(line: &LogLine) -> Event {
    Event::default()
        .event("log")
        .id(line.id.to_string())
        .data(line.logline.clone())
}

/// Lines as they are stored; an `end` event with the owner's state once it has ended and every
/// line was sent.
fn follow_stream(
    app: App,
    job: Id,
    after: u64,
    ended: EndProbe,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let start = Follow {
        app,
        job,
        after,
        done: false,
        ended,
    };
    stream::unfold(start, |mut f| async move {
        if f.done {
            return None;
        }
        let notify = f.app.runner.hub.subscribe(f.job);
        loop {
            let (job, after, ended) = (f.job, f.after, f.ended.clone());
            let read = f
                .app
                .blocking(move |app| {
                    let lines = jobs::read_logs(&app.store, job, after, 1000)?;
                    let end = ended(app, job)?;
                    Ok((lines, end))
                })
                .await;
            let (lines, end) = match read {
                Ok(r) => r,
                Err(e) => {
                    f.done = true;
                    let event = Event::default().event("error").data(e.to_string());
                    return Some((vec![Ok(event)], f));
                }
            };
            if let Some(last) = lines.last() {
                f.after = last.id;
                let events = lines.iter().map(|l| Ok(line_event(l))).collect();
                return Some((events, f));
            }
            if let Some(data) = end {
                f.done = true;
                return Some((
                    vec![Ok(Event::default().event("end").data(data.to_string()))],
                    f,
                ));
            }
            tokio::select! {
                _ = notify.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    })
    .flat_map(stream::iter)
}
