//! The kabuto face's images, pipelines, jobs, logs and results (seed 003).

use super::auth::Auth;
use super::upload::Upload;
use super::views;
use crate::authz::{Capability, Principal};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::images::{self, BuildRequest};
use crate::jobs::{self, JobChange, JobState, NewJob, PipelineChange};
use crate::server::App;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

pub fn routes(upload_limit: usize) -> Router<App> {
    Router::new()
        .route("/image", get(list_images).post(create_image))
        .route("/image/build/{build_id}", get(get_build))
        .route(
            "/image/{id}",
            get(get_image).put(rebuild_image).delete(delete_image),
        )
        .route("/pipeline", get(list_pipelines).post(create_pipeline))
        .route(
            "/pipeline/{id}",
            get(get_pipeline)
                .put(update_pipeline)
                .delete(delete_pipeline),
        )
        .route("/pipeline/{id}/submit", post(submit))
        .route(
            "/pipeline/{id}/job",
            get(list_pipeline_jobs).post(create_job),
        )
        .route(
            "/pipeline/{id}/job/{job_id}",
            get(get_job).put(update_job).delete(delete_job),
        )
        .route("/pipeline/{id}/job/{job_id}/kill", post(kill_job))
        .route("/jobs", get(list_jobs))
        .route("/execution/{job_id}/logs", get(logs))
        .route("/execution/{job_id}/logs/{log_id}", get(logs_after))
        .layer(DefaultBodyLimit::max(upload_limit))
}

/// Parses an id from a path; an id that cannot exist is as unknown as a missing object.
pub fn parse_id(raw: &str, what: &str) -> Result<Id> {
    Id::parse(raw).ok_or_else(|| Error::not_found(format!("{what} not found")))
}

// ---- images ----

async fn create_image(
    State(app): State<App>,
    Auth(p): Auth,
    upload: Upload,
) -> Result<Json<Value>> {
    upload.only_files_in(&["attachments", "dockerfile"])?;
    let request = BuildRequest {
        name: upload.require("name")?.to_owned(),
        dockerfile: upload.text_or_file("dockerfile")?,
        repo_url: upload
            .text("repo_url")
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned),
        nocache: upload.flag("nocache", false)?,
        attachments: upload.files("attachments")?,
    };
    app.engine.client().await?;
    let build = app
        .blocking(move |app| {
            let build = images::create_image(&app.store, &app.data_dir, &p, request, app.now());
            drop(upload);
            build
        })
        .await?;
    images::start_build(&app, build.id);
    Ok(Json(
        json!({ "status": "PENDING", "build_id": build.id, "id": build.image }),
    ))
}

async fn rebuild_image(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    upload: Upload,
) -> Result<Json<Value>> {
    let id = parse_id(&id, "Image")?;
    upload.only_files_in(&["attachments", "dockerfile"])?;
    let name = upload.text("name").map(str::to_owned);
    let request = BuildRequest {
        name: String::new(),
        dockerfile: upload.text_or_file("dockerfile")?,
        repo_url: upload
            .text("repo_url")
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned),
        nocache: upload.flag("nocache", false)?,
        attachments: upload.files("attachments")?,
    };
    app.engine.client().await?;
    let build = app
        .blocking(move |app| {
            let build =
                images::rebuild_image(&app.store, &app.data_dir, &p, id, name, request, app.now());
            drop(upload);
            build
        })
        .await?;
    images::start_build(&app, build.id);
    Ok(Json(
        json!({ "status": "PENDING", "build_id": build.id, "id": build.image }),
    ))
}

async fn get_build(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let id = parse_id(&id, "Build")?;
    let build = images::build_for(&app.store, &p, id)?;
    Ok(Json(views::build(&build)))
}

async fn list_images(State(app): State<App>, Auth(p): Auth) -> Result<Json<Value>> {
    let list = images::list_images(&app.store, &p)?;
    Ok(Json(views::keyed(
        &list,
        |i| i.id.to_string(),
        views::image,
    )))
}

async fn get_image(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let id = parse_id(&id, "Image")?;
    let image = images::image_for(&app.store, &p, id, Capability::Read)?;
    Ok(Json(views::keyed(
        &[image],
        |i| i.id.to_string(),
        views::image,
    )))
}

async fn delete_image(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let id = parse_id(&id, "Image")?;
    let image = app
        .blocking(move |app| images::delete_image(&app.store, &app.data_dir, &p, id))
        .await?;
    if let Ok(docker) = app.engine.client().await {
        let options = bollard::query_parameters::RemoveImageOptionsBuilder::new()
            .force(true)
            .build();
        if let Err(e) = docker.remove_image(&image.tag(), Some(options), None).await {
            tracing::debug!(image = %image.id, "removing the engine's image: {e}");
        }
    }
    Ok(Json(json!({ "status": "success", "id": image.id })))
}

// ---- pipelines ----

async fn create_pipeline(
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

async fn list_pipelines(State(app): State<App>, Auth(p): Auth) -> Result<Json<Value>> {
    let list = jobs::list_pipelines(&app.store, &p)?;
    Ok(Json(views::keyed(
        &list,
        |p| p.id.to_string(),
        views::pipeline,
    )))
}

async fn get_pipeline(
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

async fn update_pipeline(
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
        jobs::delete_job_files(&app, job).await;
    }
    Ok(Json(views::keyed(
        &[pipeline],
        |p| p.id.to_string(),
        views::pipeline,
    )))
}

/// Stops a job if it is queued or running, and waits until its container is gone (the runner
/// records the end before it removes the container).
async fn stop_job(app: &App, caller: &Principal, job: Id) -> Result<JobState> {
    let by = caller.name.clone();
    let state = app
        .blocking(move |app| jobs::request_kill(&app.store, job, &by))
        .await?;
    if state != JobState::Running {
        return Ok(state);
    }
    app.runner.kill(job);
    for _ in 0..600 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if app.runner.is_supervising(job) {
            continue;
        }
        match jobs::get_job(&app.store, job)? {
            Some(j) if j.state == JobState::Running => continue,
            Some(j) => return Ok(j.state),
            None => return Ok(JobState::Cancelled),
        }
    }
    Err(Error::conflict(
        "the job did not stop within a minute; try again",
    ))
}

async fn delete_pipeline(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let id = parse_id(&id, "Pipeline")?;
    let pipeline = jobs::pipeline_for(&app.store, &p, id, Capability::Delete)?;
    for job in jobs::pipeline_jobs(&app.store, &pipeline)? {
        if job.state.is_active() {
            stop_job(&app, &p, job.id).await?;
        }
    }
    let removed = app
        .blocking(move |app| jobs::delete_pipeline(&app.store, &p, id))
        .await?;
    for job in removed {
        jobs::delete_job_files(&app, job).await;
    }
    Ok(Json(json!({ "status": "success", "id": id })))
}

async fn submit(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let id = parse_id(&id, "Pipeline")?;
    let states = app
        .blocking(move |app| jobs::submit(&app.store, &app.data_dir, &p, id))
        .await?;
    app.runner.wake();
    Ok(Json(Value::Object(
        states
            .into_iter()
            .map(|(j, s)| (j.to_string(), Value::from(s.as_str())))
            .collect(),
    )))
}

// ---- jobs ----

async fn create_job(
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

async fn list_pipeline_jobs(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let id = parse_id(&id, "Pipeline")?;
    let pipeline = jobs::pipeline_for(&app.store, &p, id, Capability::Read)?;
    let list = jobs::pipeline_jobs(&app.store, &pipeline)?;
    Ok(Json(views::keyed(&list, |j| j.id.to_string(), views::job)))
}

async fn get_job(
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

/// The job's outbox as a zip, streamed from disk.
pub async fn result_zip(app: &App, job: &jobs::Job) -> Result<Response> {
    if !matches!(job.state, JobState::Done | JobState::Failed) {
        return Err(Error::conflict(format!(
            "the job is {}: its results exist once it is done or failed",
            job.state.as_str()
        )));
    }
    let path = jobs::result_path(&app.data_dir, job.id);
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::not_found(
                "this job left no results (it never started its command)",
            ));
        }
        Err(e) => return Err(Error::internal(format!("opening the results: {e}"))),
    };
    let len = file.metadata().await.map(|m| m.len()).ok();
    let mut response = Body::from_stream(tokio_util::io::ReaderStream::new(file)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/zip"),
    );
    if let Ok(v) =
        header::HeaderValue::from_str(&format!("attachment; filename=\"{}.zip\"", job.id))
    {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(len) = len {
        headers.insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    }
    Ok(response)
}

async fn update_job(
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

async fn delete_job(
    State(app): State<App>,
    Auth(p): Auth,
    Path((id, job_id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let pipeline = parse_id(&id, "Pipeline")?;
    let job_id = parse_id(&job_id, "Job")?;
    let job = jobs::job_for(&app.store, &p, Some(pipeline), job_id, Capability::Delete)?;
    if job.state.is_active() {
        stop_job(&app, &p, job_id).await?;
    }
    app.blocking(move |app| jobs::delete_job(&app.store, &p, pipeline, job_id))
        .await?;
    jobs::delete_job_files(&app, job_id).await;
    Ok(Json(json!({ "status": "success", "id": job_id })))
}

async fn kill_job(
    State(app): State<App>,
    Auth(p): Auth,
    Path((id, job_id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let pipeline = parse_id(&id, "Pipeline")?;
    let job_id = parse_id(&job_id, "Job")?;
    jobs::job_for(&app.store, &p, Some(pipeline), job_id, Capability::Update)?;
    let state = stop_job(&app, &p, job_id).await?;
    Ok(Json(json!({ job_id.to_string(): state.as_str() })))
}

pub async fn kill(app: &App, caller: &Principal, job: Id) -> Result<JobState> {
    jobs::job_for(&app.store, caller, None, job, Capability::Update)?;
    stop_job(app, caller, job).await
}

async fn list_jobs(State(app): State<App>, Auth(p): Auth) -> Result<Json<Value>> {
    let list = jobs::list_jobs(&app.store, &p)?;
    Ok(Json(views::keyed(&list, |j| j.id.to_string(), views::job)))
}

// ---- logs ----

async fn read_logs_json(
    app: &App,
    caller: &Principal,
    job: &str,
    after: u64,
) -> Result<Json<Value>> {
    let job = parse_id(job, "Job")?;
    jobs::job_for(&app.store, caller, None, job, Capability::Read)?;
    let lines = app
        .blocking(move |app| jobs::read_logs(&app.store, job, after, usize::MAX))
        .await?;
    Ok(Json(Value::Array(
        lines.iter().map(views::log_line).collect(),
    )))
}

async fn logs(
    State(app): State<App>,
    Auth(p): Auth,
    Path(job): Path<String>,
) -> Result<Json<Value>> {
    read_logs_json(&app, &p, &job, 0).await
}

async fn logs_after(
    State(app): State<App>,
    Auth(p): Auth,
    Path((job, log_id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let after = log_id
        .parse::<u64>()
        .map_err(|_| Error::bad_request(format!("log id {log_id:?} is not a number")))?;
    read_logs_json(&app, &p, &job, after).await
}
