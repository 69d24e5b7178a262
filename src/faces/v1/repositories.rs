//! /v1 repositories: the appliance's registry (`/v2`) seen as objects. A repository belongs to
//! its first pusher; its id works with `/v1/objects/{id}/access`, so granting READ shares it
//! (pull), UPDATE lets another push, DELETE delete. Lists and searches hold what the caller may
//! read; sizes come from the registry's records.

use super::images::{NameQuery, name_filter};
use super::openapi::ErrorBody;
use crate::core::clock::Timestamp;
use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::core::page::PageRequest;
use crate::domains::authz::Capability;
use crate::domains::registry::meta::{self, Repo, TagInfo};
use crate::domains::registry::names::valid_tag;
use crate::faces::auth::Auth;
use crate::faces::errors::parse_id;
use crate::faces::listing::{ListQuery, PageParams, named_page_response, page_response};
use crate::faces::params::Path;
use crate::faces::state::App;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list_repositories))
        .routes(routes!(get_repository, delete_repository))
        .routes(routes!(list_tags))
        .routes(routes!(delete_tag))
}

#[derive(Serialize, ToSchema)]
pub struct RepositoryView {
    id: Id,
    /// What `docker pull <appliance>/<name>:<tag>` names.
    name: String,
    owner: Id,
    #[schema(value_type = String, format = DateTime)]
    created: Timestamp,
    /// Bytes of the distinct blobs (layers, configs) it holds; a blob it shares with other
    /// repositories counts in each.
    size: u64,
    blobs: u64,
    manifests: u64,
    tags: u64,
}

fn repository_view(app: &App, r: Repo) -> Result<RepositoryView> {
    let usage = meta::repository_usage(&app.store, &r.name)?;
    Ok(RepositoryView {
        id: r.id,
        name: r.name,
        owner: r.owner,
        created: r.created,
        size: usage.bytes,
        blobs: usage.blobs,
        manifests: usage.manifests,
        tags: usage.tags,
    })
}

/// A repository's view in a list: a failure to count its contents leaves them at 0 (logged)
/// rather than failing the page.
fn listed(app: &App, r: Repo) -> RepositoryView {
    let fallback = RepositoryView {
        id: r.id,
        name: r.name.clone(),
        owner: r.owner,
        created: r.created,
        size: 0,
        blobs: 0,
        manifests: 0,
        tags: 0,
    };
    repository_view(app, r).unwrap_or_else(|e| {
        tracing::warn!(repository = %fallback.name, "counting a repository: {e}");
        fallback
    })
}

/// Repositories the caller may read (pull), a page at a time (oldest first); `name` searches
/// them. A page reads the list index and its repositories' records: O(limit) without `name`;
/// with it, at most 10,000 readable repositories are examined per page, whatever the registry
/// holds beyond what the caller may read.
#[utoipa::path(get, path = "/repositories", tag = "registry", params(PageParams, NameQuery),
    responses(
        (status = 200, body = [RepositoryView], headers(
            ("X-Next-Cursor" = String, description = "The cursor of the next page, when there is one"),
            ("Link" = String, description = "The next page's address, `rel=\"next\"`"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_repositories(
    State(app): State<App>,
    Auth(p): Auth,
    q: ListQuery,
) -> Result<Response> {
    let name = name_filter(&q)?;
    let page = q.page()?;
    page_response(
        &app,
        &q,
        move |app| meta::list_repositories(&app.store, &p, name.as_deref(), page),
        listed,
    )
    .await
}

/// One repository with its sizes (READ).
#[utoipa::path(get, path = "/repositories/{id}", tag = "registry", params(("id" = Id, Path)),
    responses((status = 200, body = RepositoryView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_repository(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<RepositoryView>> {
    let id = parse_id(&id, "Repository")?;
    let repo = meta::repository_for(&app.store, &p, id, Capability::Read)?;
    let view = app.blocking(move |app| repository_view(app, repo)).await?;
    Ok(Json(view))
}

/// Deletes a repository (DELETE): its tags and manifests, its uploads in progress, and every
/// grant on it. Blobs nothing else holds are collected later (`registry.gc_grace_secs`).
#[utoipa::path(delete, path = "/repositories/{id}", tag = "registry", params(("id" = Id, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_repository(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let id = parse_id(&id, "Repository")?;
    app.blocking(move |app| {
        let (_, uploads) = meta::delete_repository(&app.store, &p, id)?;
        for upload in uploads {
            let path = app.blobs.upload_path(&upload);
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!("removing {}: {e}", path.display());
            }
        }
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct TagView {
    /// The tag.
    name: String,
    /// The manifest it names.
    digest: String,
    media_type: String,
    /// The manifest and every blob it references (an index: each of its manifests and their
    /// blobs), in bytes.
    size: u64,
    #[schema(value_type = String, format = DateTime)]
    pushed: Timestamp,
}

fn tag_view(t: TagInfo) -> TagView {
    TagView {
        name: t.tag,
        digest: t.digest,
        media_type: t.media_type,
        size: t.size,
        pushed: chrono::DateTime::from_timestamp(t.pushed, 0).unwrap_or_default(),
    }
}

/// A tag's form (`registry::names::valid_tag`).
const TAG_PATTERN: &str = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$";

/// The paging of a repository's tags, which are in name order.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct TagPageParams {
    /// How many tags to answer (1 to 1000; 100 when absent).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Where to continue: the `X-Next-Cursor` of the page before (the last tag it held).
    #[param(pattern = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")]
    cursor: Option<String>,
}

/// A repository's tags with the digest, media type and size of what each names (READ), a page
/// at a time in name order.
#[utoipa::path(get, path = "/repositories/{id}/tags", tag = "registry",
    params(("id" = Id, Path), TagPageParams),
    responses(
        (status = 200, body = [TagView], headers(
            ("X-Next-Cursor" = String, description = "The cursor of the next page, when there is one"),
            ("Link" = String, description = "The next page's address, `rel=\"next\"`"))),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn list_tags(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    q: ListQuery,
) -> Result<Response> {
    let id = parse_id(&id, "Repository")?;
    let limit = PageRequest::parse(q.get("limit"), None)?.limit;
    let after = match q.get("cursor") {
        None => None,
        Some(tag) if valid_tag(tag) => Some(tag.to_owned()),
        Some(_) => {
            return Err(Error::bad_request(format!(
                "cursor: not a tag ({TAG_PATTERN}); pass the value of X-Next-Cursor as is"
            )));
        }
    };
    let repo = meta::repository_for(&app.store, &p, id, Capability::Read)?;
    named_page_response(
        &app,
        &q,
        move |app| {
            let (tags, more) = meta::tags_page(&app.store, &repo.name, after.as_deref(), limit)?;
            let next = if more {
                tags.last().map(|t| t.tag.clone())
            } else {
                None
            };
            Ok((tags, next))
        },
        |_, t| tag_view(t),
    )
    .await
}

/// Removes a tag (DELETE on the repository); the manifest it named stays, by its digest.
#[utoipa::path(delete, path = "/repositories/{id}/tags/{tag}", tag = "registry",
    params(("id" = Id, Path), ("tag" = String, Path, pattern = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_tag(
    State(app): State<App>,
    Auth(p): Auth,
    Path((id, tag)): Path<(String, String)>,
) -> Result<StatusCode> {
    let id = parse_id(&id, "Repository")?;
    if !valid_tag(&tag) {
        return Err(Error::not_found("Tag not found"));
    }
    app.blocking(move |app| meta::delete_tag(&app.store, &p, id, &tag))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
