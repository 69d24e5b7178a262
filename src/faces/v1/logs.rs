//! Log lines of jobs and instances on /v1: stored lines as JSON (streamed a page at a time), or
//! a live stream
//! (`?follow=1`: server-sent events, one `log` event per line, an `end` event when the owner
//! has ended).

use crate::core::error::Result;
use crate::core::id::Id;
use crate::domains::logs::{self, LogLine};
use crate::faces::state::App;
use crate::faces::views::{self, LogOf};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::Value;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use utoipa::IntoParams;

/// The query of a log request (parsed by `faces::params::Query`: a malformed `after` is the /v1
/// 400, which the document states with the number's bounds).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Only lines after this log id (a whole number; 0 when absent: from the first line).
    #[serde(default)]
    #[param(minimum = 0, maximum = 18446744073709551615_u64)]
    after: u64,
    /// Any value but `0`, `false` or `no`: stream until the end, as server-sent events.
    #[serde(default)]
    #[param(nullable = false)]
    follow: Option<String>,
}

/// What a log follower asks when no line is new: `Some(end event data)` once the owner of the
/// log (a job, an instance) has ended.
pub type EndProbe = Arc<dyn Fn(&App, Id) -> Result<Option<Value>> + Send + Sync>;

/// The stored lines of a job or an instance, or their live stream.
pub async fn log_response(
    app: App,
    id: Id,
    of: LogOf,
    q: LogQuery,
    ended: impl Fn(&App, Id) -> Result<Option<Value>> + Send + Sync + 'static,
) -> Result<Response> {
    let follow = q
        .follow
        .as_deref()
        .is_some_and(|f| !matches!(f, "0" | "false" | "no"));
    if !follow {
        return views::log_lines(&app, id, of, q.after).await;
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
        let notify = f.app.hub.subscribe(f.job);
        loop {
            let (job, after, ended) = (f.job, f.after, f.ended.clone());
            let read = f
                .app
                .blocking(move |app| {
                    let lines = logs::read_logs(&app.store, job, after, 1000)?;
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
