//! The JSON shapes of seed 003, shared by the kabuto face and /v1.

use super::state::App;
use crate::core::error::Result;
use crate::core::id::Id;
use crate::domains::images::{Build, BuildState, Image};
use crate::domains::jobs::{Job, Pipeline};
use crate::domains::logs::{self, LogLine};
use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream;
use serde_json::{Map, Value, json};

pub fn image(i: &Image) -> Value {
    json!({
        "id": i.id,
        "name": i.name,
        "dockerfile": i.dockerfile,
        "creation_date": i.creation_date,
        "repo_url": i.repo_url,
        "attachments": i.attachments,
        "nocache": i.nocache,
        "built": i.built,
        "repository": i.repository,
        "build_id": i.last_build,
    })
}

pub fn build(b: &Build) -> Value {
    match b.state {
        BuildState::Pending => json!({ "state": "PENDING" }),
        BuildState::Success => json!({ "state": "SUCCESS", "id": b.image, "output": b.output }),
        BuildState::Failed => json!({ "state": "FAILED", "error": b.error, "output": b.output }),
        BuildState::Failure => json!({ "state": "FAILURE", "error": b.error, "output": b.output }),
    }
}

pub fn pipeline(p: &Pipeline) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "creation_date": p.creation_date,
        "jobs": p.jobs.iter().map(|j| json!({ "id": j })).collect::<Vec<_>>(),
    })
}

pub fn job(j: &Job) -> Value {
    json!({
        "id": j.id,
        "command": j.command,
        "state": j.state.as_str(),
        "creation_date": j.creation_date,
        "used_cpu": j.used_cpu,
        "used_memory": j.used_memory,
        "used_io": j.used_io,
        "response": j.response,
        "image": { "id": j.image },
        "pipeline": { "id": j.pipeline },
        "attachments": j.attachments,
        "started": j.started,
        "finished": j.finished,
        "error": j.error,
    })
}

/// What a log belongs to, which names the key of its id in each line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogOf {
    /// `{"id", "job", "logline"}` (seed 003's shape, on both faces).
    Job,
    /// `{"id", "instance", "logline"}`.
    Instance,
}

impl LogOf {
    fn key(self) -> &'static str {
        match self {
            LogOf::Job => "job",
            LogOf::Instance => "instance",
        }
    }
}

pub fn log_line(l: &LogLine, of: LogOf) -> Value {
    let mut line = Map::new();
    line.insert("id".into(), json!(l.id));
    line.insert(of.key().into(), json!(l.job));
    line.insert("logline".into(), json!(l.logline));
    Value::Object(line)
}

/// Log lines read and sent per chunk of [`log_lines`].
const LOG_PAGE: usize = 1000;

/// Where [`log_lines`] is in the log.
enum LogPages {
    /// The first page, read before the response started (so that its errors get a status).
    First(Vec<LogLine>),
    /// Lines after this id are next.
    After(u64),
    Done,
}

/// The stored lines of a job or an instance after `after`, as the JSON array
/// `[{"id", "job", "logline"}, ...]` (`"instance"` for an instance's), streamed a page at a
/// time: each page is read on the blocking pool when the client has taken the one before, so
/// that a response holds one page in memory, however long the log. The bytes are the same as
/// the array serialised whole.
pub async fn log_lines(app: &App, owner: Id, of: LogOf, after: u64) -> Result<Response> {
    let first = read_log_page(app, owner, after).await?;
    let app = app.clone();
    let chunks = stream::unfold(LogPages::First(first), move |pages| {
        let app = app.clone();
        async move {
            let (lines, first) = match pages {
                LogPages::Done => return None,
                LogPages::First(lines) => (lines, true),
                LogPages::After(after) => match read_log_page(&app, owner, after).await {
                    Ok(lines) => (lines, false),
                    Err(e) => {
                        tracing::warn!(%owner, "reading log lines: {e}");
                        let e = std::io::Error::other(e.to_string());
                        return Some((Err(e), LogPages::Done));
                    }
                },
            };
            let next = match lines.last() {
                Some(last) if lines.len() >= LOG_PAGE => LogPages::After(last.id),
                _ => LogPages::Done,
            };
            let chunk = log_page(&lines, of, first, matches!(next, LogPages::Done));
            Some((Ok::<_, std::io::Error>(Bytes::from(chunk)), next))
        }
    });
    let mut response = Body::from_stream(chunks).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

async fn read_log_page(app: &App, owner: Id, after: u64) -> Result<Vec<LogLine>> {
    app.blocking(move |app| logs::read_logs(&app.store, owner, after, LOG_PAGE))
        .await
}

/// One page of the array: `[` before the first, `,` between lines, `]` after the last.
fn log_page(lines: &[LogLine], of: LogOf, first: bool, last: bool) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::with_capacity(lines.iter().map(|l| l.logline.len() + 64).sum::<usize>() + 2);
    if first {
        out.push(b'[');
    }
    for (i, line) in lines.iter().enumerate() {
        if i > 0 || !first {
            out.push(b',');
        }
        // `Value`'s Display is its compact JSON; writing to a Vec cannot fail.
        let _ = write!(out, "{}", log_line(line, of));
    }
    if last {
        out.push(b']');
    }
    out
}

/// kabuto's collections: `{"<id>": {...}, ...}`.
pub fn keyed<T>(items: &[T], id: impl Fn(&T) -> String, view: impl Fn(&T) -> Value) -> Value {
    Value::Object(
        items
            .iter()
            .map(|i| (id(i), view(i)))
            .collect::<Map<_, _>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(job: Id, ids: std::ops::Range<u64>) -> Vec<LogLine> {
        ids.map(|id| LogLine {
            id,
            job,
            logline: format!("line \"{id}\" \u{e9}\n\t"),
        })
        .collect()
    }

    #[test]
    fn pages_of_the_log_make_the_same_bytes_as_the_whole_array() {
        let job = Id::new();
        let all = lines(job, 1..8);
        let whole = serde_json::to_vec(&Value::Array(
            all.iter().map(|l| log_line(l, LogOf::Job)).collect(),
        ))
        .unwrap();
        // Cut into pages every way: one page, pages of 1, 2, 3.
        for size in [7, 1, 2, 3] {
            let pages: Vec<&[LogLine]> = all.chunks(size).collect();
            let mut streamed = Vec::new();
            for (i, page) in pages.iter().enumerate() {
                streamed.extend(log_page(page, LogOf::Job, i == 0, i + 1 == pages.len()));
            }
            assert_eq!(
                String::from_utf8(streamed).unwrap(),
                String::from_utf8(whole.clone()).unwrap(),
                "pages of {size}"
            );
        }
        // A last page that is empty (the log ends exactly on a page boundary).
        let mut streamed = log_page(&all, LogOf::Job, true, false);
        streamed.extend(log_page(&[], LogOf::Job, false, true));
        assert_eq!(streamed, whole);
        // No lines at all.
        assert_eq!(log_page(&[], LogOf::Job, true, true), b"[]");
    }

    #[test]
    fn a_line_names_its_owner_by_what_it_is() {
        let owner = Id::new();
        let line = &lines(owner, 1..2)[0];
        assert_eq!(
            log_line(line, LogOf::Job),
            json!({"id": 1, "job": owner, "logline": line.logline})
        );
        assert_eq!(
            log_line(line, LogOf::Instance),
            json!({"id": 1, "instance": owner, "logline": line.logline})
        );
        let page = String::from_utf8(log_page(
            std::slice::from_ref(line),
            LogOf::Instance,
            true,
            true,
        ))
        .unwrap();
        assert!(
            page.starts_with(&format!(r#"[{{"id":1,"instance":"{owner}","logline":"#)),
            "{page}"
        );
    }
}
