//! /v1 images and builds (kabuto's images, seed 003): an image is built in the background from
//! a Dockerfile and attachments, or from a repository; each build is its own object, polled for
//! its state and output. Rebuilding keeps the image's id.

use super::forms::{FilesOrJson, form_bool};
use super::openapi::ErrorBody;
use crate::core::clock::Timestamp;
use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::core::names;
use crate::domains::authz::Capability;
use crate::domains::images::{self, Build, BuildFilter, BuildRequest, BuildState, Image, repo};
use crate::faces::auth::Auth;
use crate::faces::errors::parse_id;
use crate::faces::listing::{ListQuery, PageParams, page_response};
use crate::faces::params::Path;
use crate::faces::state::App;
use crate::faces::upload::Upload;
use axum::Json;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{RefOr, schema::AdditionalProperties};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<App> {
    // The routes that take files lift the router's body limit: their bodies are counted
    // against `limits.max_upload_mb` as they are read (`forms::FilesOrJson`).
    let with_files = OpenApiRouter::new()
        .routes(routes!(list_images, create_image))
        .routes(routes!(rebuild_image))
        .layer(DefaultBodyLimit::disable());
    OpenApiRouter::new()
        .merge(with_files)
        .routes(routes!(get_image, delete_image))
        .routes(routes!(list_builds))
        .routes(routes!(get_build))
}

#[derive(Serialize, ToSchema)]
pub struct ImageView {
    id: Id,
    name: String,
    owner: Id,
    #[schema(value_type = String, format = DateTime)]
    created: Timestamp,
    /// The Dockerfile's text (empty when built from a repository).
    dockerfile: String,
    /// The repository it is built from, when it is.
    repo_url: Option<String>,
    /// The names of the files next to the Dockerfile.
    attachments: Vec<String>,
    nocache: bool,
    /// Its latest build, and that build's state.
    last_build: Id,
    state: BuildState,
    /// When the latest successful build ended.
    #[schema(value_type = Option<String>, format = DateTime)]
    built: Option<Timestamp>,
    /// Where the appliance's registry holds the latest successful build (`<login>/<name>`,
    /// tagged `latest` and with the image's id).
    repository: Option<String>,
    /// The Docker engine's id of the latest successful build.
    engine_id: Option<String>,
}

fn image_view(app: &App, i: Image) -> ImageView {
    let state = images::get_build(&app.store, i.last_build)
        .ok()
        .flatten()
        .map_or(BuildState::Pending, |b| b.state);
    ImageView {
        id: i.id,
        name: i.name,
        owner: i.owner,
        created: i.creation_date,
        dockerfile: i.dockerfile,
        repo_url: i.repo_url,
        attachments: i.attachments,
        nocache: i.nocache,
        last_build: i.last_build,
        state,
        built: i.built,
        repository: i.repository,
        engine_id: i.docker_id,
    }
}

#[derive(Serialize, ToSchema)]
pub struct BuildView {
    id: Id,
    image: Id,
    /// PENDING while it runs; SUCCESS; FAILED when the Dockerfile or the repository failed
    /// (`output` and `error` say why); FAILURE when the appliance did.
    state: BuildState,
    #[schema(value_type = String, format = DateTime)]
    created: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    finished: Option<Timestamp>,
    error: Option<String>,
    /// What the build printed (`GET /v1/builds/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<String>,
}

fn build_view(b: Build, with_output: bool) -> BuildView {
    BuildView {
        id: b.id,
        image: b.image,
        state: b.state,
        created: b.created,
        finished: b.finished,
        error: b.error,
        output: with_output.then_some(b.output),
    }
}

/// 202 with the build that started, and where to follow it.
fn accepted(build: Build) -> Response {
    let location = format!("/v1/builds/{}", build.id);
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(build_view(build, false)),
    )
        .into_response()
}

/// The longest name filter: a display name's length.
const MAX_FILTER: usize = names::MAX_NAME_CHARS;

/// A name filter of a list (`name`): a non-empty text of at most a display name's length.
pub(super) fn name_filter(q: &ListQuery) -> Result<Option<String>> {
    match q.get("name") {
        None => Ok(None),
        Some(n) if n.is_empty() || n.chars().count() > MAX_FILTER => Err(Error::bad_request(
            format!("name: 1 to {MAX_FILTER} characters"),
        )),
        Some(n) => Ok(Some(n.to_owned())),
    }
}

/// The name filter of a list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct NameQuery {
    /// Only those whose name holds this text (ignoring case). A page examines at most 10,000
    /// of the objects the caller may read: it may hold fewer than `limit` items, even none,
    /// while `X-Next-Cursor` leads on.
    #[param(min_length = 1, max_length = 200)]
    name: Option<String>,
}

/// Images the caller may read, a page at a time (oldest first).
#[utoipa::path(get, path = "/images", tag = "images", params(PageParams, NameQuery),
    responses(
        (status = 200, body = [ImageView], headers(
            ("X-Next-Cursor" = String, description = "The cursor of the next page, when there is one"),
            ("Link" = String, description = "The next page's address, `rel=\"next\"`"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_images(State(app): State<App>, Auth(p): Auth, q: ListQuery) -> Result<Response> {
    let name = name_filter(&q)?;
    let page = q.page()?;
    page_response(
        &app,
        &q,
        move |app| match &name {
            Some(name) => images::search_images(&app.store, &p, name, page),
            None => images::list_images(&app.store, &p, page),
        },
        image_view,
    )
    .await
}

/// An image's fields as JSON (`POST /v1/images`, `POST /v1/images/{id}/builds`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageJson {
    name: Option<String>,
    dockerfile: Option<String>,
    repo_url: Option<String>,
    nocache: Option<bool>,
}

/// What a build request holds, from either body.
struct ImageInput {
    name: Option<String>,
    dockerfile: Option<String>,
    repo_url: Option<String>,
    nocache: Option<bool>,
    attachments: Vec<(String, PathBuf)>,
    /// The staged files, kept until the domain has moved them (dropped with this).
    _staged: Option<Upload>,
}

impl ImageInput {
    fn read(body: FilesOrJson<ImageJson>) -> Result<ImageInput> {
        let input = match body {
            FilesOrJson::Json(j) => ImageInput {
                name: j.name,
                dockerfile: j.dockerfile,
                repo_url: j.repo_url,
                nocache: j.nocache,
                attachments: Vec::new(),
                _staged: None,
            },
            FilesOrJson::Multipart(upload) => {
                upload.check_fields(
                    &["name", "dockerfile", "repo_url", "nocache"],
                    &["attachments", "dockerfile"],
                )?;
                ImageInput {
                    name: upload.text("name").map(str::to_owned),
                    dockerfile: upload.text_or_file("dockerfile")?,
                    repo_url: upload.text("repo_url").map(str::to_owned),
                    nocache: form_bool(&upload, "nocache")?,
                    attachments: upload.files("attachments")?,
                    _staged: Some(upload),
                }
            }
        };
        if let Some(url) = &input.repo_url
            && !repo::documented_form(url)
        {
            return Err(Error::bad_request(format!(
                "repo_url: not one of the forms this API takes ({}; see the document's pattern)",
                repo::ACCEPTED
            )));
        }
        if let Some(name) = &input.name {
            names::display_name(name)?;
        }
        Ok(input)
    }

    fn request(&mut self) -> BuildRequest {
        BuildRequest {
            name: self.name.clone().unwrap_or_default(),
            dockerfile: self.dockerfile.take(),
            repo_url: self.repo_url.take(),
            nocache: self.nocache.unwrap_or(false),
            attachments: std::mem::take(&mut self.attachments),
        }
    }
}

/// Builds a new image (in the background): from `dockerfile` and the `attachments` next to it,
/// or from the repository at `repo_url` (which wins when both are given). Send files as
/// `multipart/form-data`; without files, JSON works too. An attachment may not be named
/// `Dockerfile` unless the build is from a repository; attachments' names are unique. The
/// answer is the build: poll it at `Location`.
#[utoipa::path(post, path = "/images", tag = "images",
    request_body(content(
        (NewImageForm = "multipart/form-data"),
        (NewImage = "application/json"),
    )),
    responses(
        (status = 202, body = BuildView, description = "The build started",
            headers(("Location" = String, description = "`/v1/builds/{id}`: the build to poll"))),
        (status = 400, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "The Docker engine does not answer"),
    ))]
async fn create_image(
    State(app): State<App>,
    Auth(p): Auth,
    body: FilesOrJson<ImageJson>,
) -> Result<Response> {
    let mut input = ImageInput::read(body)?;
    if input.name.is_none() {
        return Err(Error::bad_request("missing field `name`"));
    }
    let request = input.request();
    app.engine.client().await?;
    let build = app
        .blocking(move |app| {
            let build = images::create_image(&app.store, &app.data_dir, &p, request, app.now());
            drop(input);
            build
        })
        .await?;
    app.builds.start_build(build.id);
    Ok(accepted(build))
}

/// One image (READ).
#[utoipa::path(get, path = "/images/{id}", tag = "images", params(("id" = Id, Path)),
    responses((status = 200, body = ImageView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_image(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<ImageView>> {
    let id = parse_id(&id, "Image")?;
    let image = images::image_for(&app.store, &p, id, Capability::Read)?;
    Ok(Json(image_view(&app, image)))
}

/// Builds an image again, under the same id (UPDATE), with what the request changes: a new
/// `name`, `dockerfile` (which drops the repository) or `repo_url`, `nocache` (false when
/// absent), new `attachments` (which replace the old ones). The answer is the new build.
#[utoipa::path(post, path = "/images/{id}/builds", tag = "images", params(("id" = Id, Path)),
    request_body(content(
        (Option<RebuildForm> = "multipart/form-data"),
        (Option<Rebuild> = "application/json"),
    )),
    responses(
        (status = 202, body = BuildView, description = "The build started",
            headers(("Location" = String, description = "`/v1/builds/{id}`: the build to poll"))),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The image is being built"),
        (status = 413, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "The Docker engine does not answer"),
    ))]
async fn rebuild_image(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    body: FilesOrJson<ImageJson>,
) -> Result<Response> {
    let id = parse_id(&id, "Image")?;
    let mut input = ImageInput::read(body)?;
    let name = input.name.take();
    let request = input.request();
    app.engine.client().await?;
    let build = app
        .blocking(move |app| {
            let build =
                images::rebuild_image(&app.store, &app.data_dir, &p, id, name, request, app.now());
            drop(input);
            build
        })
        .await?;
    app.builds.start_build(build.id);
    Ok(accepted(build))
}

/// Deletes an image (DELETE): its builds, its build context, and its image in the Docker
/// engine; what the registry holds of it stays (see `/v1/repositories`).
#[utoipa::path(delete, path = "/images/{id}", tag = "images", params(("id" = Id, Path)),
    responses(
        (status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The image is being built"),
    ))]
async fn delete_image(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let id = parse_id(&id, "Image")?;
    let image = app
        .blocking(move |app| images::delete_image(&app.store, &app.data_dir, &p, id))
        .await?;
    app.builds.forget_engine_image(&image).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The filters of the build list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct BuildQuery {
    /// Only builds of this image.
    image: Option<Id>,
    /// Only builds in this state.
    #[param(inline)]
    state: Option<BuildState>,
}

/// Builds the caller may read (without their output), a page at a time (oldest first).
#[utoipa::path(get, path = "/builds", tag = "images", params(PageParams, BuildQuery),
    responses(
        (status = 200, body = [BuildView], headers(
            ("X-Next-Cursor" = String, description = "The cursor of the next page, when there is one"),
            ("Link" = String, description = "The next page's address, `rel=\"next\"`"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_builds(State(app): State<App>, Auth(p): Auth, q: ListQuery) -> Result<Response> {
    let filter = BuildFilter {
        image: q.id("image")?,
        state: q.choice("state", &BuildState::ALL, BuildState::api_name)?,
    };
    let page = q.page()?;
    page_response(
        &app,
        &q,
        move |app| images::list_builds(&app.store, &p, filter, page),
        |_, b| build_view(b, false),
    )
    .await
}

/// One build with its output (READ).
#[utoipa::path(get, path = "/builds/{id}", tag = "images", params(("id" = Id, Path)),
    responses((status = 200, body = BuildView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_build(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<BuildView>> {
    let id = parse_id(&id, "Build")?;
    let build = images::build_for(&app.store, &p, id)?;
    Ok(Json(build_view(build, true)))
}

// ---- the request bodies as the document states them ----

/// `POST /v1/images` as JSON.
pub struct NewImage;
/// `POST /v1/images` as a form with files.
pub struct NewImageForm;
/// `POST /v1/images/{id}/builds` as JSON.
pub struct Rebuild;
/// `POST /v1/images/{id}/builds` as a form with files.
pub struct RebuildForm;

/// The fields of a build request: for a new image (`name` required, and a Dockerfile or a
/// repository) or a rebuild (everything optional); as a form (with files, no nulls) or JSON.
fn image_schema(new: bool, form: bool) -> RefOr<Schema> {
    let text = |nullable: bool| {
        let t = if nullable {
            SchemaType::from_iter([Type::String, Type::Null])
        } else {
            SchemaType::new(Type::String)
        };
        ObjectBuilder::new().schema_type(t)
    };
    // Optional fields may be null in JSON.
    let nullable = !form;
    let mut name = names::name_schema();
    if nullable && !new {
        name.schema_type = SchemaType::from_iter([Type::String, Type::Null]);
    }
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("name", name)
        .property(
            "dockerfile",
            text(nullable).description(Some(if new {
                "The Dockerfile's text (`FROM busybox` builds on the appliance's base image)"
            } else {
                "A new Dockerfile (the image is then no longer built from a repository); \
                 blank keeps the one it has"
            })),
        )
        .property(
            "repo_url",
            text(nullable)
                .max_length(Some(repo::MAX_URL))
                .pattern(Some(repo::DOCUMENTED_PATTERN))
                .description(Some(
                    "A repository holding a Dockerfile: `https://`, `http://`, `git://`, \
                     `ssh://[user@]` addresses, `user@host:path`, or an absolute path on the \
                     server (only where `images.allow_local_repos` allows it)",
                )),
        )
        .property(
            "nocache",
            ObjectBuilder::new()
                .schema_type(if nullable {
                    SchemaType::from_iter([Type::Boolean, Type::Null])
                } else {
                    SchemaType::new(Type::Boolean)
                })
                .description(Some("Build without the engine's cache (false when absent)")),
        )
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    if form {
        let file = ObjectBuilder::new()
            .schema_type(Type::String)
            .content_media_type("application/octet-stream");
        object = object.property(
            "attachments",
            ArrayBuilder::new().items(file).description(Some(
                "Files next to the Dockerfile in the build context, by their file names (unique; \
                 no `/`, `..` or NUL)",
            )),
        );
    }
    if new {
        object = object.required("name").description(Some(
            "A Dockerfile (not blank) or a repository (`repo_url`, which wins) is required",
        ));
    }
    let mut object = object.build();
    if new {
        // utoipa's object has no `anyOf` of its own: the keyword is written beside the
        // properties (where a form's parts must be stated, for clients to find its files).
        let either = serde_json::json!([
            {"required": ["repo_url"], "properties": {"repo_url": {"type": "string"}}},
            {"required": ["dockerfile"], "properties": {"dockerfile": {
                "type": "string", "pattern": names::NAME_PATTERN}}},
        ]);
        object.extensions = Some(utoipa::openapi::extensions::Extensions::from_iter([(
            "anyOf", either,
        )]));
    }
    Schema::Object(object).into()
}

macro_rules! body_schema {
    ($t:ty, $new:expr, $form:expr) => {
        impl utoipa::PartialSchema for $t {
            fn schema() -> RefOr<Schema> {
                image_schema($new, $form)
            }
        }
        impl ToSchema for $t {}
    };
}

body_schema!(NewImage, true, false);
body_schema!(NewImageForm, true, true);
body_schema!(Rebuild, false, false);
body_schema!(RebuildForm, false, true);
