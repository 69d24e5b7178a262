//! Images on the kabuto face (seed 003): build from a Dockerfile and attachments or a
//! repository, poll the build, list, rebuild, delete.

use crate::core::error::Result;
use crate::domains::authz::Capability;
use crate::domains::images::{self, BuildRequest};
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

pub(super) async fn create_image(
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
    app.builds.start_build(build.id);
    Ok(Json(
        json!({ "status": "PENDING", "build_id": build.id, "id": build.image }),
    ))
}

pub(super) async fn rebuild_image(
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
    app.builds.start_build(build.id);
    Ok(Json(
        json!({ "status": "PENDING", "build_id": build.id, "id": build.image }),
    ))
}

pub(super) async fn get_build(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let id = parse_id(&id, "Build")?;
    let build = images::build_for(&app.store, &p, id)?;
    Ok(Json(views::build(&build)))
}

/// `GET /image`: every image the caller may read, or one page with `limit`/`cursor`.
pub(super) async fn list_images(
    State(app): State<App>,
    Auth(p): Auth,
    q: ListQuery,
) -> Result<Response> {
    keyed_list(
        &app,
        &q,
        move |app, page| images::list_images(&app.store, &p, page),
        |i| (i.id.to_string(), views::image(i)),
    )
    .await
}

pub(super) async fn get_image(
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

pub(super) async fn delete_image(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let id = parse_id(&id, "Image")?;
    let image = app
        .blocking(move |app| images::delete_image(&app.store, &app.data_dir, &p, id))
        .await?;
    app.builds.forget_engine_image(&image).await;
    Ok(Json(json!({ "status": "success", "id": image.id })))
}
