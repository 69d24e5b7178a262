//! /v1 pipelines (kabuto's, seed 003): ordered jobs run one after another once submitted. Jobs
//! are added, reordered and removed while the pipeline is neither queued nor running (409
//! otherwise); its jobs' logs, results and kills are under `/v1/jobs`.

use super::forms::FilesOrJson;
use super::images::{NameQuery, name_filter};
use super::jobs::{JobView, job_view};
use super::openapi::ErrorBody;
use crate::core::clock::Timestamp;
use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::core::names;
use crate::domains::authz::Capability;
use crate::domains::jobs::{self, COMMAND_PATTERN, JobState, NewJob, Pipeline, PipelineEdit};
use crate::faces::auth::Auth;
use crate::faces::body::JsonBody;
use crate::faces::errors::parse_id;
use crate::faces::listing::{ListQuery, PageParams, page_response};
use crate::faces::params::Path;
use crate::faces::state::App;
use axum::Json;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<App> {
    // Adding a job takes files: the body is counted against `limits.max_upload_mb` as it is
    // read (`forms::FilesOrJson`), not held to the router's limit.
    let with_files = OpenApiRouter::new()
        .routes(routes!(add_job))
        .layer(DefaultBodyLimit::disable());
    OpenApiRouter::new()
        .merge(with_files)
        .routes(routes!(list_pipelines, create_pipeline))
        .routes(routes!(get_pipeline, edit_pipeline, delete_pipeline))
        .routes(routes!(submit))
}

#[derive(Serialize, ToSchema)]
pub struct PipelineView {
    id: Id,
    name: String,
    owner: Id,
    #[schema(value_type = String, format = DateTime)]
    created: Timestamp,
    /// Its jobs, in the order they run.
    jobs: Vec<Id>,
    /// Submitted, and not finished yet.
    queued: bool,
}

fn pipeline_view(p: Pipeline) -> PipelineView {
    PipelineView {
        id: p.id,
        name: p.name,
        owner: p.owner,
        created: p.creation_date,
        jobs: p.jobs,
        queued: p.queued.is_some(),
    }
}

/// Pipelines the caller may read, a page at a time (oldest first).
#[utoipa::path(get, path = "/pipelines", tag = "pipelines", params(PageParams, NameQuery),
    responses(
        (status = 200, body = [PipelineView], headers(
            ("X-Next-Cursor" = String, description = "The cursor of the next page, when there is one"),
            ("Link" = String, description = "The next page's address, `rel=\"next\"`"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_pipelines(State(app): State<App>, Auth(p): Auth, q: ListQuery) -> Result<Response> {
    let name = name_filter(&q)?;
    let page = q.page()?;
    page_response(
        &app,
        &q,
        move |app| match &name {
            Some(name) => jobs::search_pipelines(&app.store, &p, name, page),
            None => jobs::list_pipelines(&app.store, &p, page),
        },
        |_, pipeline| pipeline_view(pipeline),
    )
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPipeline {
    #[schema(schema_with = names::name_schema)]
    name: String,
}

/// Creates an empty pipeline.
#[utoipa::path(post, path = "/pipelines", tag = "pipelines", request_body = NewPipeline,
    responses((status = 201, body = PipelineView)))]
async fn create_pipeline(
    State(app): State<App>,
    Auth(p): Auth,
    JsonBody(body): JsonBody<NewPipeline>,
) -> Result<(StatusCode, Json<PipelineView>)> {
    let pipeline = app
        .blocking(move |app| jobs::create_pipeline(&app.store, &p, &body.name, app.now()))
        .await?;
    Ok((StatusCode::CREATED, Json(pipeline_view(pipeline))))
}

/// One pipeline (READ).
#[utoipa::path(get, path = "/pipelines/{id}", tag = "pipelines", params(("id" = Id, Path)),
    responses((status = 200, body = PipelineView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_pipeline(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<PipelineView>> {
    let id = parse_id(&id, "Pipeline")?;
    let pipeline = jobs::pipeline_for(&app.store, &p, id, Capability::Read)?;
    Ok(Json(pipeline_view(pipeline)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineChange {
    /// A new name.
    #[schema(schema_with = nullable_name)]
    name: Option<String>,
    /// Every job of the pipeline, each once, in the order they are to run.
    #[schema(schema_with = job_order)]
    jobs: Option<Vec<Id>>,
}

fn nullable_name() -> utoipa::openapi::schema::Object {
    let mut name = names::name_schema();
    name.schema_type = SchemaType::from_iter([Type::String, Type::Null]);
    name
}

fn job_order() -> utoipa::openapi::schema::Array {
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(Ref::from_schema_name("Id"))
        .unique_items(true)
        .build()
}

/// Renames a pipeline, or reorders its jobs (UPDATE). The order must list the pipeline's jobs
/// as they are (409 otherwise), and cannot change while it is queued or running (409).
#[utoipa::path(patch, path = "/pipelines/{id}", tag = "pipelines", params(("id" = Id, Path)),
    request_body = Option<PipelineChange>,
    responses(
        (status = 200, body = PipelineView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The order is not of the pipeline's jobs, or it is queued or running"),
    ))]
async fn edit_pipeline(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PipelineChange>,
) -> Result<Json<PipelineView>> {
    let id = parse_id(&id, "Pipeline")?;
    let edit = PipelineEdit {
        name: body.name,
        order: body.jobs,
    };
    let pipeline = app
        .blocking(move |app| jobs::edit_pipeline(&app.store, &p, id, edit))
        .await?;
    Ok(Json(pipeline_view(pipeline)))
}

/// Deletes a pipeline and its jobs (DELETE); jobs still queued or running are killed first.
#[utoipa::path(delete, path = "/pipelines/{id}", tag = "pipelines", params(("id" = Id, Path)),
    responses(
        (status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 502, body = ErrorBody, description = "The Docker engine failed"),
        (status = 503, body = ErrorBody, description = "The Docker engine does not answer"),
    ))]
async fn delete_pipeline(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode> {
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
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct JobStateView {
    id: Id,
    state: JobState,
}

#[derive(Serialize, ToSchema)]
pub struct Submitted {
    pipeline: Id,
    /// Every job, now queued, in the order they run.
    jobs: Vec<JobStateView>,
}

/// Queues every job of the pipeline to run one after another (UPDATE); a finished pipeline
/// runs again from a clean slate (logs and results of the run before are gone).
#[utoipa::path(post, path = "/pipelines/{id}/submit", tag = "pipelines", params(("id" = Id, Path)),
    responses(
        (status = 202, body = Submitted, description = "Queued: follow the jobs at `/v1/jobs/{id}`"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Already queued or running, or no jobs"),
    ))]
async fn submit(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Submitted>)> {
    let id = parse_id(&id, "Pipeline")?;
    let states = app
        .blocking(move |app| jobs::queue_pipeline(&app.store, &app.data_dir, &p, id))
        .await?;
    app.jobs.wake();
    Ok((
        StatusCode::ACCEPTED,
        Json(Submitted {
            pipeline: id,
            jobs: states
                .into_iter()
                .map(|(id, state)| JobStateView { id, state })
                .collect(),
        }),
    ))
}

/// A job as JSON (without attachments).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobJson {
    command: String,
    image: Id,
}

/// Adds a job at the end of the pipeline (UPDATE on it, READ on the image): its `command` runs
/// in a container of the `image` (its id), with the `attachments` read-only under `/inbox`
/// and what it writes to `/outbox` kept as its result. Send files as `multipart/form-data`;
/// without files, JSON works too.
#[utoipa::path(post, path = "/pipelines/{id}/jobs", tag = "pipelines", params(("id" = Id, Path)),
    request_body(content(
        (NewJobForm = "multipart/form-data"),
        (NewJobBody = "application/json"),
    )),
    responses(
        (status = 201, body = JobView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "No such pipeline or image"),
        (status = 409, body = ErrorBody, description = "The pipeline is queued or running"),
    ))]
async fn add_job(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    body: FilesOrJson<JobJson>,
) -> Result<(StatusCode, Json<JobView>)> {
    let pipeline = parse_id(&id, "Pipeline")?;
    let (new, staged) = match body {
        FilesOrJson::Json(j) => (
            NewJob {
                command: j.command,
                image: j.image,
                attachments: Vec::new(),
            },
            None,
        ),
        FilesOrJson::Multipart(upload) => {
            upload.check_fields(&["command", "image"], &["attachments"])?;
            let image = upload.require("image")?;
            let image = Id::parse(image)
                .ok_or_else(|| Error::bad_request("image: not an id (32 lowercase hex digits)"))?;
            let new = NewJob {
                command: upload.require("command")?.to_owned(),
                image,
                attachments: upload.files("attachments")?,
            };
            (new, Some(upload))
        }
    };
    let job = app
        .blocking(move |app| {
            let job = jobs::add_job(&app.store, &app.data_dir, &p, pipeline, new, app.now());
            drop(staged);
            job
        })
        .await?;
    Ok((StatusCode::CREATED, Json(job_view(job))))
}

/// `POST /v1/pipelines/{id}/jobs` as JSON.
pub struct NewJobBody;
/// `POST /v1/pipelines/{id}/jobs` as a form with files.
pub struct NewJobForm;

fn job_schema(form: bool) -> RefOr<Schema> {
    let command = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(COMMAND_PATTERN))
        .description(Some(
            "Split like a shell splits it (`sh -c \"...\"` runs a script): quotes closed, and \
             a word at least outside `#` comments",
        ));
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("command", command)
        .property("image", {
            let mut id = Ref::from_schema_name("Id");
            id.description = "The image's id".to_owned();
            RefOr::Ref(id)
        })
        .required("command")
        .required("image")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    if form {
        let file = ObjectBuilder::new()
            .schema_type(Type::String)
            .content_media_type("application/octet-stream");
        object = object.property(
            "attachments",
            ArrayBuilder::new().items(file).description(Some(
                "Files under `/inbox`, by their file names (unique; no `/`, `..` or NUL)",
            )),
        );
    }
    object.into()
}

impl PartialSchema for NewJobBody {
    fn schema() -> RefOr<Schema> {
        job_schema(false)
    }
}
impl ToSchema for NewJobBody {
    fn name() -> std::borrow::Cow<'static, str> {
        "NewJob".into()
    }
}
impl PartialSchema for NewJobForm {
    fn schema() -> RefOr<Schema> {
        job_schema(true)
    }
}
impl ToSchema for NewJobForm {}
