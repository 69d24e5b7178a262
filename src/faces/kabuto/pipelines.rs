//! Pipelines on the kabuto face (seed 003): create, list, rename, remove and reorder jobs,
//! submit, delete.

use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::domains::authz::Capability;
use crate::domains::jobs::{self, PipelineChange};
use crate::faces::auth::Auth;
use crate::faces::errors::parse_id;
use crate::faces::listing::{ListQuery, keyed_list};
use crate::faces::state::App;
use crate::faces::upload::Upload;
use crate::faces::views;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Value, json};

pub(super) async fn create_pipeline(
    State(app): State<App>,
    Auth(p): Auth,
    upload: Upload,
) -> Result<Json<Value>> {
    upload.only_files_in(&[])?;
    let name = upload.require("name")?.to_owned();
    let pipeline = app
        .blocking(move |app| jobs::create_pipeline(&app.store, &p, &name, app.now()))
        .await?;
    Ok(Json(json!({ "id": pipeline.id })))
}

/// `GET /pipeline`: every pipeline the caller may read, or one page with `limit`/`cursor`.
pub(super) async fn list_pipelines(
    State(app): State<App>,
    Auth(p): Auth,
    q: ListQuery,
) -> Result<Response> {
    keyed_list(
        &app,
        &q,
        move |app, page| jobs::list_pipelines(&app.store, &p, page),
        |p| (p.id.to_string(), views::pipeline(p)),
    )
    .await
}

pub(super) async fn get_pipeline(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let id = parse_id(&id, "Pipeline")?;
    let pipeline = jobs::pipeline_for(&app.store, &p, id, Capability::Read)?;
    Ok(Json(views::keyed(
        &[pipeline],
        |p| p.id.to_string(),
        views::pipeline,
    )))
}

fn id_list(values: Vec<String>, what: &str) -> Result<Vec<Id>> {
    values
        .iter()
        .map(|v| {
            Id::parse(v).ok_or_else(|| Error::bad_request(format!("{what}: {v:?} is not a job id")))
        })
        .collect()
}

pub(super) async fn update_pipeline(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    upload: Upload,
) -> Result<Json<Value>> {
    let id = parse_id(&id, "Pipeline")?;
    upload.only_files_in(&[])?;
    let rearrange = upload.list("rearrange_jobs");
    let change = PipelineChange {
        name: upload.text("name").map(str::to_owned),
        remove_jobs: id_list(upload.list("remove_jobs"), "remove_jobs")?,
        rearrange_jobs: if rearrange.is_empty() {
            None
        } else {
            Some(id_list(rearrange, "rearrange_jobs")?)
        },
    };
    let (pipeline, removed) = app
        .blocking(move |app| jobs::update_pipeline(&app.store, &p, id, change))
        .await?;
    for job in removed {
        app.jobs.remove_job_files(job).await;
    }
    Ok(Json(views::keyed(
        &[pipeline],
        |p| p.id.to_string(),
        views::pipeline,
    )))
}

pub(super) async fn delete_pipeline(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let id = parse_id(&id, "Pipeline")?;
    let pipeline = jobs::pipeline_for(&app.store, &p, id, Capability::Delete)?;
    for job in jobs::pipeline_jobs(&app.store, &pipeline)? {
        if job.state.is_active() {
            app.jobs.stop_job(job.id, &p.name).await?;
        }
    }
    let removed = app
        .blocking(move |app| jobs::delete_pipeline(&app.store, &p, id))
        .await?;
    for job in removed {
        app.jobs.remove_job_files(job).await;
    }
    Ok(Json(json!({ "status": "success", "id": id })))
}

pub(super) async fn submit(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let id = parse_id(&id, "Pipeline")?;
    let states = app
        .blocking(move |app| jobs::submit(&app.store, &app.data_dir, &p, id))
        .await?;
    app.jobs.wake();
    Ok(Json(Value::Object(
        states
            .into_iter()
            .map(|(j, s)| (j.to_string(), Value::from(s.as_str())))
            .collect(),
    )))
}
