//! The images pages: the images the viewer may read, building one from a Dockerfile and
//! attachments or from a repository, an image's builds and the output of the one that runs,
//! rebuilding and deleting. The same domain calls as `/v1/images` (`faces::v1::images`), so the
//! one authorization check decides what is shown and done.

use super::format;
use super::html;
use super::page::{CsrfForm, CsrfUpload, Layout, Paging, Viewer};
use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::core::names;
use crate::domains::authz::Capability;
use crate::domains::images::{self, Build, BuildFilter, BuildRequest, BuildState, Image, repo};
use crate::faces::errors::parse_id;
use crate::faces::listing::ListQuery;
use crate::faces::params::Path;
use crate::faces::state::App;
use crate::faces::upload::Upload;
use askama::Template;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::header;
use axum::response::{Html, Response};
use axum::routing::{get, post};
use serde::Deserialize;

pub fn routes() -> Router<App> {
    // The forms with files lift the router's body limit: their parts are counted against
    // `limits.max_upload_mb` as they stream to disk ([`FilesForm`]).
    let with_files = Router::new()
        .route("/ui/images", get(list).post(create))
        .route("/ui/images/{id}/rebuild", post(rebuild))
        .layer(DefaultBodyLimit::disable());
    Router::new()
        .merge(with_files)
        .route("/ui/images/new", get(new_image))
        .route("/ui/images/{id}", get(image_page))
        .route("/ui/images/{id}/delete", post(delete))
        .route("/ui/builds/{id}", get(build_page))
}

/// A form with files, as multipart only: its parts stream to disk and are counted against
/// `limits.max_upload_mb` as they come. The routes taking it lift the router's body limit, so
/// a body of another type (which would be read whole into memory) is refused unread.
pub(super) struct FilesForm(pub Viewer, pub Upload);

impl FromRequest<App> for FilesForm {
    type Rejection = Error;

    async fn from_request(req: Request, app: &App) -> Result<Self> {
        let multipart = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("multipart/form-data"));
        if !multipart {
            return Err(Error::bad_request(
                "send this form as multipart/form-data (it takes files)",
            ));
        }
        let CsrfUpload(viewer, upload) = CsrfUpload::from_request(req, app).await?;
        Ok(FilesForm(viewer, upload))
    }
}

/// A text field of a form, `None` when blank (a form sends every field, filled or not).
pub(super) fn filled(upload: &Upload, key: &str) -> Option<String> {
    upload
        .text(key)
        .filter(|v| !v.trim().is_empty())
        .map(str::to_owned)
}

/// The badge class of a build state.
fn state_class(state: BuildState) -> &'static str {
    match state {
        BuildState::Pending => "warn",
        BuildState::Success => "ok",
        BuildState::Failed | BuildState::Failure => "bad",
    }
}

/// The name filter of a list page: blank is no filter (the filter form sends the empty field).
pub(super) fn name_filter(q: &ListQuery) -> Result<String> {
    let name = q.get("name").unwrap_or("").trim();
    if name.chars().count() > names::MAX_NAME_CHARS {
        return Err(Error::bad_request(format!(
            "name: at most {} characters",
            names::MAX_NAME_CHARS
        )));
    }
    Ok(name.to_owned())
}

// ---- the list ----

struct ImageRow {
    id: String,
    name: String,
    state: &'static str,
    state_class: &'static str,
    build_id: String,
    build_short: String,
    build_time: String,
    built: String,
    repository: String,
}

#[derive(Template)]
#[template(path = "dashboard/images/list.html")]
struct ListPage {
    layout: Layout,
    name: String,
    rows: Vec<ImageRow>,
    next: Option<String>,
}

/// The images the viewer may read, 50 a page, by name.
async fn list(State(app): State<App>, viewer: Viewer, q: ListQuery) -> Result<Html<String>> {
    let name = name_filter(&q)?;
    let paging = Paging::of(&q)?;
    let (p, request, needle) = (viewer.principal.clone(), paging.request, name.clone());
    let (page, rows) = app
        .listing(move |app| {
            let page = if needle.is_empty() {
                images::list_images(&app.store, &p, request)?
            } else {
                images::search_images(&app.store, &p, &needle, request)?
            };
            let mut rows = Vec::with_capacity(page.items.len());
            for image in &page.items {
                let build = images::get_build(&app.store, image.last_build)?;
                rows.push(image_row(image, build.as_ref()));
            }
            Ok((page, rows))
        })
        .await?;
    let next = paging.next("/ui/images", &[("name", &name)], &page);
    html(&ListPage {
        layout: viewer.layout("Images", "images"),
        name,
        rows,
        next,
    })
}

fn image_row(image: &Image, build: Option<&Build>) -> ImageRow {
    let state = build.map_or(BuildState::Pending, |b| b.state);
    ImageRow {
        id: image.id.to_string(),
        name: image.name.clone(),
        state: state.api_name(),
        state_class: state_class(state),
        build_id: image.last_build.to_string(),
        build_short: format::short(&image.last_build),
        build_time: build.map_or_else(String::new, |b| format::time(&b.created)),
        built: format::maybe_time(image.built.as_ref()),
        repository: image.repository.clone().unwrap_or_else(|| "-".to_owned()),
    }
}

// ---- building ----

#[derive(Template)]
#[template(path = "dashboard/images/new.html")]
struct NewPage {
    layout: Layout,
}

/// The forms that build a new image.
async fn new_image(viewer: Viewer) -> Result<Html<String>> {
    html(&NewPage {
        layout: viewer.layout("Build an image", "images"),
    })
}

/// The fields the build forms send.
const BUILD_FIELDS: [&str; 5] = ["csrf", "name", "dockerfile", "repo_url", "nocache"];

/// What a build form asks for: the name (blank on a rebuild keeps it) and the request.
fn build_request(upload: &Upload) -> Result<(Option<String>, BuildRequest)> {
    upload.check_fields(&BUILD_FIELDS, &["attachments"])?;
    let name = filled(upload, "name");
    if let Some(name) = &name {
        names::display_name(name)?;
    }
    let repo_url = filled(upload, "repo_url").map(|u| u.trim().to_owned());
    if let Some(url) = &repo_url
        && !repo::documented_form(url)
    {
        return Err(Error::bad_request(format!(
            "repository: not one of the forms this appliance takes ({})",
            repo::ACCEPTED
        )));
    }
    // A browser sends a textarea's lines ending in CR LF; the Dockerfile keeps plain LF.
    let dockerfile = filled(upload, "dockerfile").map(|d| d.replace("\r\n", "\n"));
    let request = BuildRequest {
        name: name.clone().unwrap_or_default(),
        dockerfile,
        repo_url,
        nocache: upload.flag("nocache", false)?,
        attachments: upload.files("attachments")?,
    };
    Ok((name, request))
}

/// Builds a new image (in the background) and shows its page, where its output grows.
async fn create(State(app): State<App>, FilesForm(viewer, upload): FilesForm) -> Result<Response> {
    let (name, request) = build_request(&upload)?;
    let Some(name) = name else {
        return Err(Error::bad_request("name: give the image a name"));
    };
    app.engine.client().await?;
    let p = viewer.principal.clone();
    let build = app
        .blocking(move |app| {
            let build = images::create_image(&app.store, &app.data_dir, &p, request, app.now());
            // The staged files go once the domain has moved them.
            drop(upload);
            build
        })
        .await?;
    app.builds.start_build(build.id);
    Ok(viewer.see_other(
        &format!("/ui/images/{}", build.image),
        &format!("Building {name}."),
    ))
}

/// Builds an image again under its id, with what the form changes.
async fn rebuild(
    State(app): State<App>,
    Path(id): Path<String>,
    FilesForm(viewer, upload): FilesForm,
) -> Result<Response> {
    let id = parse_id(&id, "Image")?;
    let (name, request) = build_request(&upload)?;
    app.engine.client().await?;
    let p = viewer.principal.clone();
    let build = app
        .blocking(move |app| {
            let build =
                images::rebuild_image(&app.store, &app.data_dir, &p, id, name, request, app.now());
            drop(upload);
            build
        })
        .await?;
    app.builds.start_build(build.id);
    Ok(viewer.see_other(&format!("/ui/images/{id}"), "Rebuilding the image."))
}

#[derive(Deserialize)]
struct Empty {}

/// Deletes an image (its builds, its context, its image in the engine; the registry keeps
/// what it holds of it).
async fn delete(
    State(app): State<App>,
    Path(id): Path<String>,
    CsrfForm(viewer, Empty {}): CsrfForm<Empty>,
) -> Result<Response> {
    let id = parse_id(&id, "Image")?;
    let p = viewer.principal.clone();
    let image = app
        .blocking(move |app| images::delete_image(&app.store, &app.data_dir, &p, id))
        .await?;
    app.builds.forget_engine_image(&image).await;
    Ok(viewer.see_other("/ui/images", &format!("Deleted the image {}.", image.name)))
}

// ---- an image, a build ----

/// A build as its pages show it.
struct BuildInfo {
    id: String,
    short: String,
    state: &'static str,
    state_class: &'static str,
    pending: bool,
    created: String,
    finished: String,
    error: Option<String>,
    output: String,
}

fn build_info(b: Build) -> BuildInfo {
    BuildInfo {
        id: b.id.to_string(),
        short: format::short(&b.id),
        state: b.state.api_name(),
        state_class: state_class(b.state),
        pending: b.state == BuildState::Pending,
        created: format::time(&b.created),
        finished: format::maybe_time(b.finished.as_ref()),
        error: b.error,
        output: b.output,
    }
}

#[derive(Template)]
#[template(path = "dashboard/images/image.html")]
struct ImagePage {
    layout: Layout,
    id: String,
    name: String,
    created: String,
    built: String,
    repository: Option<String>,
    engine_id: Option<String>,
    repo_url: Option<String>,
    dockerfile: String,
    attachments: String,
    nocache: bool,
    latest: Option<BuildInfo>,
    builds: Vec<BuildInfo>,
    next: Option<String>,
    can_update: bool,
    can_delete: bool,
}

/// An image: what it is built from, its latest build (its output growing while it runs), its
/// builds (50 a page), and the forms that rebuild and delete it.
async fn image_page(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    q: ListQuery,
) -> Result<Html<String>> {
    let id = parse_id(&id, "Image")?;
    let paging = Paging::of(&q)?;
    let (p, request) = (viewer.principal.clone(), paging.request);
    let (image, latest, builds, can_update, can_delete) = app
        .listing(move |app| {
            let image = images::image_for(&app.store, &p, id, Capability::Read)?;
            let latest = images::get_build(&app.store, image.last_build)?;
            let filter = BuildFilter {
                image: Some(id),
                state: None,
            };
            let builds = images::list_builds(&app.store, &p, filter, request)?;
            let may = |cap| images::image_for(&app.store, &p, id, cap).is_ok();
            Ok((
                image,
                latest,
                builds,
                may(Capability::Update),
                may(Capability::Delete),
            ))
        })
        .await?;
    let next = paging.next(&format!("/ui/images/{id}"), &[], &builds);
    html(&ImagePage {
        layout: viewer.layout(format!("Image {}", image.name), "images"),
        id: image.id.to_string(),
        name: image.name,
        created: format::time(&image.creation_date),
        built: format::maybe_time(image.built.as_ref()),
        repository: image.repository,
        engine_id: image.docker_id,
        repo_url: image.repo_url,
        dockerfile: image.dockerfile,
        attachments: if image.attachments.is_empty() {
            "-".to_owned()
        } else {
            image.attachments.join(", ")
        },
        nocache: image.nocache,
        latest: latest.map(build_info),
        builds: builds.items.into_iter().map(build_info).collect(),
        next,
        can_update,
        can_delete,
    })
}

#[derive(Template)]
#[template(path = "dashboard/images/build.html")]
struct BuildPage {
    layout: Layout,
    image_id: String,
    image_name: String,
    build: BuildInfo,
}

/// One build and its output (growing while it runs).
async fn build_page(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Html<String>> {
    let id = parse_id(&id, "Build")?;
    let p = viewer.principal.clone();
    let (build, image_name) = app
        .blocking(move |app| {
            let build = images::build_for(&app.store, &p, id)?;
            // The build's image may be gone, or not readable by a viewer granted the build.
            let name = images::image_for(&app.store, &p, build.image, Capability::Read)
                .map(|i| i.name)
                .ok();
            Ok((build, name))
        })
        .await?;
    let image_id: Id = build.image;
    html(&BuildPage {
        layout: viewer.layout(format!("Build {}", format::short(&build.id)), "images"),
        image_id: image_id.to_string(),
        image_name: image_name.unwrap_or_else(|| format::short(&image_id)),
        build: build_info(build),
    })
}
