//! The JSON shapes of seed 003, shared by the kabuto face and /v1.

use crate::domains::images::{Build, BuildState, Image};
use crate::domains::jobs::{Job, Pipeline};
use crate::domains::logs::LogLine;
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

pub fn log_line(l: &LogLine) -> Value {
    json!({ "id": l.id, "job": l.job, "logline": l.logline })
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
