//! The registry pages at `/ui/registry`: the repositories the viewer may read (searched by
//! name, 50 a page, with their sizes), and a repository's tags with their sizes, digests and
//! push times, the `docker pull` command for each, and deleting a tag (DELETE on the
//! repository, as `/v1`'s `DELETE /v1/repositories/{id}/tags/{tag}`).

use super::page::{CsrfForm, Layout, PAGE_SIZE, Paging, Viewer, encode};
use super::{format, html};
use crate::core::error::{Error, Result};
use crate::domains::authz::Capability;
use crate::domains::registry::meta::{self, Repo};
use crate::domains::registry::names::valid_tag;
use crate::faces::errors::parse_id;
use crate::faces::listing::ListQuery;
use crate::faces::params::Path;
use crate::faces::state::App;
use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{Html, Response};
use axum::routing::{get, post};
use serde::Deserialize;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/ui/registry", get(repositories))
        .route("/ui/registry/{id}", get(repository))
        .route("/ui/registry/{id}/tags/{tag}/delete", post(delete_tag))
}

/// The longest name search (as `/v1` takes it).
const MAX_FILTER: usize = 200;

#[derive(Template)]
#[template(path = "dashboard/registry/list.html")]
struct List {
    layout: Layout,
    search: String,
    repositories: Vec<RepoRow>,
    next: Option<String>,
}

struct RepoRow {
    id: String,
    name: String,
    size: String,
    tags: u64,
    created: String,
}

fn repo_row(app: &App, r: Repo) -> RepoRow {
    // A repository whose contents cannot be counted still shows, without sizes.
    let usage = meta::repository_usage(&app.store, &r.name).unwrap_or_else(|e| {
        tracing::warn!(repository = %r.name, "counting a repository: {e}");
        meta::RepoUsage::default()
    });
    RepoRow {
        id: r.id.to_string(),
        name: r.name,
        size: format::size(usage.bytes),
        tags: usage.tags,
        created: format::time(&r.created),
    }
}

/// The repositories the viewer may read (pull), oldest first, 50 a page; `name` searches them.
async fn repositories(
    State(app): State<App>,
    viewer: Viewer,
    q: ListQuery,
) -> Result<Html<String>> {
    let search = q.get("name").unwrap_or("").trim().to_owned();
    if search.chars().count() > MAX_FILTER {
        return Err(Error::bad_request(format!(
            "name: at most {MAX_FILTER} characters"
        )));
    }
    let paging = Paging::of(&q)?;
    let request = paging.request;
    let p = viewer.principal.clone();
    let name = (!search.is_empty()).then(|| search.clone());
    let (page, rows) = app
        .listing(move |app| {
            let page = meta::list_repositories(&app.store, &p, name.as_deref(), request)?;
            let rows: Vec<RepoRow> = page
                .items
                .iter()
                .cloned()
                .map(|r| repo_row(app, r))
                .collect();
            Ok((page, rows))
        })
        .await?;
    let next = paging.next("/ui/registry", &[("name", &search)], &page);
    html(&List {
        layout: viewer.layout("Registry", "registry"),
        search,
        repositories: rows,
        next,
    })
}

#[derive(Template)]
#[template(path = "dashboard/registry/repository.html")]
struct RepositoryPage {
    layout: Layout,
    id: String,
    name: String,
    size: String,
    created: String,
    tag_count: u64,
    tags: Vec<TagRow>,
    may_delete: bool,
    next: Option<String>,
}

struct TagRow {
    tag: String,
    /// The tag as a path segment.
    path: String,
    digest: String,
    short_digest: String,
    size: String,
    pushed: String,
    pull: String,
}

/// The host a client reaches the appliance by: the request's Host header when it is a plain
/// host (and port), else the listener's address.
fn pull_host(app: &App, headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 260
                && h.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                })
        })
        .map_or_else(|| app.local_addr().to_string(), str::to_owned)
}

/// A repository (READ) and its tags in name order, 50 a page (`cursor` is the last tag of the
/// page before).
async fn repository(
    State(app): State<App>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: ListQuery,
) -> Result<Html<String>> {
    let id = parse_id(&id, "Repository")?;
    let after = match q.get("cursor") {
        None | Some("") => None,
        Some(tag) if valid_tag(tag) => Some(tag.to_owned()),
        Some(_) => return Err(Error::bad_request("cursor: not a tag")),
    };
    let p = viewer.principal.clone();
    let (repo, usage, caps, (tags, more)) = app
        .listing(move |app| {
            let store = &app.store;
            let repo = meta::repository_for(store, &p, id, Capability::Read)?;
            let usage = meta::repository_usage(store, &repo.name)?;
            let caps = meta::repo_caps(store, &p, &repo.name)?.map(|(_, c)| c);
            let tags = meta::tags_page(store, &repo.name, after.as_deref(), PAGE_SIZE)?;
            Ok((repo, usage, caps, tags))
        })
        .await?;
    let host = pull_host(&app, &headers);
    let id = repo.id.to_string();
    let next = match (more, tags.last()) {
        (true, Some(last)) => Some(format!("/ui/registry/{id}?cursor={}", encode(&last.tag))),
        _ => None,
    };
    let rows = tags
        .into_iter()
        .map(|t| TagRow {
            path: encode(&t.tag),
            pull: format!("docker pull {host}/{}:{}", repo.name, t.tag),
            short_digest: t.digest.chars().take(19).collect(),
            digest: t.digest,
            size: format::size(t.size),
            pushed: chrono::DateTime::from_timestamp(t.pushed, 0)
                .map_or_else(|| "-".to_owned(), |at| format::time(&at)),
            tag: t.tag,
        })
        .collect();
    html(&RepositoryPage {
        layout: viewer.layout(repo.name.clone(), "registry"),
        id,
        name: repo.name,
        size: format::size(usage.bytes),
        created: format::time(&repo.created),
        tag_count: usage.tags,
        tags: rows,
        may_delete: caps.is_some_and(|c| c.contains(Capability::Delete)),
        next,
    })
}

#[derive(Deserialize)]
struct Empty {}

/// Removes a tag (DELETE on the repository); the manifest it named stays, by its digest.
async fn delete_tag(
    State(app): State<App>,
    Path((id, tag)): Path<(String, String)>,
    CsrfForm(viewer, Empty {}): CsrfForm<Empty>,
) -> Result<Response> {
    let id = parse_id(&id, "Repository")?;
    if !valid_tag(&tag) {
        return Err(Error::not_found("Tag not found"));
    }
    let p = viewer.principal.clone();
    let gone = tag.clone();
    let repo = app
        .blocking(move |app| meta::delete_tag(&app.store, &p, id, &gone))
        .await?;
    Ok(viewer.see_other(
        &format!("/ui/registry/{id}"),
        &format!("Deleted the tag {}:{tag}.", repo.name),
    ))
}
