//! The kabuto-compatible face (seed 003): the seed's routes, field names and JSON shapes,
//! errors as `{"error": "..."}`. One file per feature.

mod accounts;
mod images;
mod jobs;
mod logs;
mod pipelines;

use crate::faces::state::App;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

/// The kabuto face's routes; request bodies with files may be `upload_limit` bytes.
pub fn routes(upload_limit: usize) -> Router<App> {
    Router::new()
        .merge(accounts::routes())
        .route(
            "/image",
            get(images::list_images).post(images::create_image),
        )
        .route("/image/build/{build_id}", get(images::get_build))
        .route(
            "/image/{id}",
            get(images::get_image)
                .put(images::rebuild_image)
                .delete(images::delete_image),
        )
        .route(
            "/pipeline",
            get(pipelines::list_pipelines).post(pipelines::create_pipeline),
        )
        .route(
            "/pipeline/{id}",
            get(pipelines::get_pipeline)
                .put(pipelines::update_pipeline)
                .delete(pipelines::delete_pipeline),
        )
        .route("/pipeline/{id}/submit", post(pipelines::submit))
        .route(
            "/pipeline/{id}/job",
            get(jobs::list_pipeline_jobs).post(jobs::create_job),
        )
        .route(
            "/pipeline/{id}/job/{job_id}",
            get(jobs::get_job)
                .put(jobs::update_job)
                .delete(jobs::delete_job),
        )
        .route("/pipeline/{id}/job/{job_id}/kill", post(jobs::kill_job))
        .route("/jobs", get(jobs::list_jobs))
        .route("/execution/{job_id}/logs", get(logs::logs))
        .route("/execution/{job_id}/logs/{log_id}", get(logs::logs_after))
        .layer(DefaultBodyLimit::max(upload_limit))
}
