//! Jobs on the kabuto face (seed 003): add to a pipeline, read (and `?result` for the outbox
//! zip), change, delete, kill, list.

use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::domains::authz::Capability;
use crate::domains::jobs::{self, JobChange, JobFilter, NewJob};
use crate::faces::auth::Auth;
use crate::faces::download::result_zip;
use crate::faces::errors::parse_id;
use crate::faces::listing::{ListQuery, keyed_list};
use crate::faces::state::App;
use crate::faces::upload::Upload;
use crate::faces::views;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;

pub(super) async fn create_job(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    upload: Upload,
) -> Result<Json<Value>> {
    let pipeline = parse_id(&id, "Pipeline")?;
    upload.only_files_in(&["attachments"])?;
    let image = upload.require("image_id")?;
    let image = Id::parse(image).ok_or_else(|| Error::not_found("Image not found"))?;
    let new = NewJob {
        command: upload.require("command")?.to_owned(),
        image,
        attachments: upload.files("attachments")?,
    };
    let job = app
        .blocking(move |app| {
            let job = jobs::create_job(&app.store, &app.data_dir, &p, pipeline, new, app.now());
            drop(upload);
            job
        })
        .await?;
    Ok(Json(json!({ "id": job.id })))
}

pub(super) async fn list_pipeline_jobs(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let id = parse_id(&id, "Pipeline")?;
    let pipeline = jobs::pipeline_for(&app.store, &p, id, Capability::Read)?;
    let list = jobs::pipeline_jobs(&app.store, &pipeline)?;
    Ok(Json(views::keyed(&list, |j| j.id.to_string(), views::job)))
}

pub(super) async fn get_job(
    State(app): State<App>,
    Auth(p): Auth,
    Path((id, job_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response> {
    let pipeline = parse_id(&id, "Pipeline")?;
    let job_id = parse_id(&job_id, "Job")?;
    let job = jobs::job_for(&app.store, &p, Some(pipeline), job_id, Capability::Read)?;
    if query.contains_key("result") {
        return result_zip(&app, &job).await;
    }
    Ok(Json(views::keyed(&[job], |j| j.id.to_string(), views::job)).into_response())
}

pub(super) async fn update_job(
    State(app): State<App>,
    Auth(p): Auth,
    Path((id, job_id)): Path<(String, String)>,
    upload: Upload,
) -> Result<Json<Value>> {
    let pipeline = parse_id(&id, "Pipeline")?;
    let job_id = parse_id(&job_id, "Job")?;
    upload.only_files_in(&["attachments"])?;
    let image = match upload.text("image_id") {
        Some(raw) => Some(Id::parse(raw).ok_or_else(|| Error::not_found("Image not found"))?),
        None => None,
    };
    let change = JobChange {
        command: upload.text("command").map(str::to_owned),
        image,
        attachments: upload.files("attachments")?,
    };
    let job = app
        .blocking(move |app| {
            let job =
                jobs::update_job_spec(&app.store, &app.data_dir, &p, pipeline, job_id, change);
            drop(upload);
            job
        })
        .await?;
    Ok(Json(views::keyed(&[job], |j| j.id.to_string(), views::job)))
}

pub(super) async fn delete_job(
    State(app): State<App>,
    Auth(p): Auth,
    Path((id, job_id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let pipeline = parse_id(&id, "Pipeline")?;
    let job_id = parse_id(&job_id, "Job")?;
    let job = jobs::job_for(&app.store, &p, Some(pipeline), job_id, Capability::Delete)?;
    if job.state.is_active() {
        app.jobs.stop_job(job_id, &p.name).await?;
    }
    app.blocking(move |app| jobs::delete_job(&app.store, &p, pipeline, job_id))
        .await?;
    app.jobs.remove_job_files(job_id).await;
    Ok(Json(json!({ "status": "success", "id": job_id })))
}

pub(super) async fn kill_job(
    State(app): State<App>,
    Auth(p): Auth,
    Path((id, job_id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let pipeline = parse_id(&id, "Pipeline")?;
    let job_id = parse_id(&job_id, "Job")?;
    jobs::job_for(&app.store, &p, Some(pipeline), job_id, Capability::Update)?;
    let state = app.jobs.stop_job(job_id, &p.name).await?;
    Ok(Json(json!({ job_id.to_string(): state.as_str() })))
}

/// `GET /jobs`: every job the caller may read, or one page with `limit`/`cursor`.
pub(super) async fn list_jobs(
    State(app): State<App>,
    Auth(p): Auth,
    q: ListQuery,
) -> Result<Response> {
    let filter = JobFilter::default();
    keyed_list(
        &app,
        &q,
        move |app, page| jobs::list_jobs(&app.store, &p, filter, page),
        |j| (j.id.to_string(), views::job(j)),
    )
    .await
}
