//! /v1 views of jobs: list, one, kill, results, and logs with a live stream
//! (`?follow=1`: server-sent events, one `log` event per line, an `end` event when the job ends).

use super::auth::Auth;
use super::kabuto_jobs::{kill, parse_id, result_zip};
use super::views;
use crate::authz::Capability;
use crate::error::Result;
use crate::id::Id;
use crate::jobs::{self, LogLine};
use crate::server::App;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::time::Duration;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/jobs", get(list))
        .route("/jobs/{id}", get(one))
        .route("/jobs/{id}/kill", post(kill_one))
        .route("/jobs/{id}/result", get(result))
        .route("/jobs/{id}/logs", get(logs))
}

async fn list(State(app): State<App>, Auth(p): Auth) -> Result<Json<Value>> {
    let list = jobs::list_jobs(&app.store, &p)?;
    Ok(Json(Value::Array(list.iter().map(views::job).collect())))
}

async fn one(State(app): State<App>, Auth(p): Auth, Path(id): Path<String>) -> Result<Json<Value>> {
    let id = parse_id(&id, "Job")?;
    let job = jobs::job_for(&app.store, &p, None, id, Capability::Read)?;
    Ok(Json(views::job(&job)))
}

async fn kill_one(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let id = parse_id(&id, "Job")?;
    let state = kill(&app, &p, id).await?;
    Ok(Json(json!({ "id": id, "state": state.as_str() })))
}

async fn result(State(app): State<App>, Auth(p): Auth, Path(id): Path<String>) -> Result<Response> {
    let id = parse_id(&id, "Job")?;
    let job = jobs::job_for(&app.store, &p, None, id, Capability::Read)?;
    result_zip(&app, &job).await
}

#[derive(Deserialize)]
struct LogQuery {
    /// Only lines after this log id.
    #[serde(default)]
    after: u64,
    /// Stream until the job ends.
    #[serde(default)]
    follow: Option<String>,
}

async fn logs(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Response> {
    let id = parse_id(&id, "Job")?;
    jobs::job_for(&app.store, &p, None, id, Capability::Read)?;
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
    Ok(Sse::new(follow_stream(app, id, q.after))
        .keep_alive(KeepAlive::default())
        .into_response())
}

struct Follow {
    app: App,
    job: Id,
    after: u64,
    done: bool,
}

fn line_event(line: &LogLine) -> Event {
    Event::default()
        .event("log")
        .id(line.id.to_string())
        .data(line.logline.clone())
}

/// Lines as they are stored; an `end` event with the job's state once it has ended and every
/// line was sent.
fn follow_stream(app: App, job: Id, after: u64) -> impl Stream<Item = Result<Event, Infallible>> {
    let start = Follow {
        app,
        job,
        after,
        done: false,
    };
    stream::unfold(start, |mut f| async move {
        if f.done {
            return None;
        }
        let notify = f.app.runner.hub.subscribe(f.job);
        loop {
            let (job, after) = (f.job, f.after);
            let read = f
                .app
                .blocking(move |app| {
                    let lines = jobs::read_logs(&app.store, job, after, 1000)?;
                    let state = jobs::get_job(&app.store, job)?;
                    Ok((lines, state))
                })
                .await;
            let (lines, state) = match read {
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
            let finished = match &state {
                None => true,
                Some(j) => j.state.is_finished() || j.state == jobs::JobState::Ready,
            };
            if finished {
                f.done = true;
                let data = match state {
                    Some(j) => json!({ "state": j.state.as_str(), "response": j.response }),
                    None => json!({ "state": "deleted" }),
                };
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
