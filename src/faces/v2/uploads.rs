//! Uploads: start (also single-request `?digest=` and cross-repository `?mount=&from=`), patch
//! (streamed, chunked), finish (the digest verified before the blob is visible), status, cancel.
//!
//! Every upload counts against the quota of the repository's owner (`registry.quota_mb`, see
//! `domains::registry::quota`): a session is refused when no room is left, a body stops at the
//! first chunk beyond it (the partial upload is removed), and a mount costs the blob's size
//! unless the owner holds it already; all are the spec's DENIED with a message saying so.

use super::{Ctx, for_push, header, unix_now};
use crate::core::id::Id;
use crate::domains::authz::Capability;
use crate::domains::registry::blobs;
use crate::domains::registry::error::{Code, RResult, RegistryError};
use crate::domains::registry::quota::{self, Grant};
use crate::domains::registry::{meta, names};
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

fn blob_created(name: &str, digest: &str) -> Response {
    let mut r = StatusCode::CREATED.into_response();
    header(&mut r, "Location", &format!("/v2/{name}/blobs/{digest}"));
    header(&mut r, "Docker-Content-Digest", digest);
    header(&mut r, "Content-Length", "0");
    r
}

fn upload_accepted(name: &str, id: &str, size: u64, status: StatusCode) -> Response {
    let mut r = status.into_response();
    header(
        &mut r,
        "Location",
        &format!("/v2/{name}/blobs/uploads/{id}"),
    );
    header(&mut r, "Range", &blobs::range_header(size));
    header(&mut r, "Docker-Upload-UUID", id);
    header(&mut r, "Content-Length", "0");
    r
}

/// What an upload into `repo` may write against its owner's quota; `None` when there is no
/// quota.
fn grant<'a>(ctx: &Ctx<'a>, repo: &meta::Repo) -> RResult<Option<Grant<'a>>> {
    let app = ctx.app;
    let Some(limit) = quota::limit_bytes(app.config.registry.quota_mb) else {
        return Ok(None);
    };
    let grant = app.blobs.quota().enter(repo.owner, limit, || {
        let usage = meta::owner_usage(&app.store, repo.owner)?;
        Ok(usage
            .blob_bytes
            .saturating_add(app.blobs.uploads_bytes(&usage.uploads)))
    })?;
    Ok(Some(grant))
}

/// Refuses a new upload when the owner's quota has no room left.
fn room_for_an_upload(grant: Option<&Grant<'_>>) -> RResult<()> {
    match grant.map(Grant::quota) {
        Some(q) if q.room() == 0 => Err(q.denied("no room is left for another upload")),
        _ => Ok(()),
    }
}

/// A body refused for the quota leaves nothing: its upload file and session go.
async fn forget_refused(ctx: &Ctx<'_>, id: &str, error: RegistryError) -> RegistryError {
    if error.code == Code::Denied {
        ctx.app.blobs.remove_upload(id).await;
        if let Err(e) = meta::delete_upload(&ctx.app.store, id) {
            tracing::warn!(upload = id, "cannot delete a refused upload session: {e}");
        }
    }
    error
}

/// Links a blob the caller may read elsewhere into `repo` (a cross-repository mount): free if
/// the repository's owner holds the blob already, else its size counts against their quota.
fn mount(ctx: &Ctx<'_>, repo: &meta::Repo, digest: &str, size: u64) -> RResult<bool> {
    let app = ctx.app;
    if let Some(grant) = grant(ctx, repo)? {
        let held = meta::owner_usage(&app.store, repo.owner)?
            .blobs
            .contains(digest);
        if !held && !grant.take(size) {
            return Err(grant
                .quota()
                .denied(&format!("mounting {} more is beyond it", quota::mib(size))));
        }
    }
    Ok(meta::link_blob(
        &app.store,
        &repo.name,
        digest,
        unix_now(app),
    )?)
}

/// A request body's chunks, each counted into the registry's received bytes as it arrives.
fn received(
    ctx: &Ctx<'_>,
    body: Body,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, axum::Error>> + Send + use<> {
    use futures_util::TryStreamExt;
    let metrics = ctx.app.metrics.clone();
    body.into_data_stream()
        .inspect_ok(move |chunk| metrics.add_registry_in(chunk.len() as u64))
}

pub(super) async fn start_upload(ctx: &Ctx<'_>, name: &str, body: Body) -> RResult<Response> {
    let app = ctx.app;
    // Cross-repository mount: link a blob the caller may read elsewhere.
    if let (Some(digest), Some(from)) = (ctx.query.get("mount"), ctx.query.get("from")) {
        names::check_digest(digest)?;
        let readable = names::valid_name(from)
            && matches!(meta::repo_caps(&app.store, ctx.principal, from)?, Some((_, caps)) if caps.contains(Capability::Read));
        if readable && let Some(blob) = meta::repo_blob(&app.store, from, digest)? {
            let repo = for_push(ctx, name)?;
            if mount(ctx, &repo, digest, blob.size)? {
                return Ok(blob_created(name, digest));
            }
        }
        // Otherwise: an ordinary upload session, as the spec says.
    }
    let repo = for_push(ctx, name)?;
    let grant = grant(ctx, &repo)?;
    room_for_an_upload(grant.as_ref())?;
    let id = Id::new().to_string();
    app.blobs.start_upload(&id).await?;
    if let Some(digest) = ctx.query.get("digest") {
        // Single-request upload.
        names::check_digest(digest)?;
        let result = async {
            app.blobs
                .append(&id, received(ctx, body), None, grant.as_ref())
                .await?;
            app.blobs.commit(&id, digest).await
        }
        .await;
        let size = match result {
            Ok(size) => size,
            Err(e) => {
                app.blobs.remove_upload(&id).await;
                return Err(e);
            }
        };
        meta::add_blob(&app.store, &repo.name, digest, size, unix_now(app))?;
        return Ok(blob_created(name, digest));
    }
    meta::create_upload(
        &app.store,
        &meta::Upload {
            id: id.clone(),
            repo: repo.name.clone(),
            principal: ctx.principal.id,
            created: unix_now(app),
        },
    )?;
    Ok(upload_accepted(name, &id, 0, StatusCode::ACCEPTED))
}

/// The caller's upload session in this repository.
fn session(ctx: &Ctx<'_>, name: &str, id: &str) -> RResult<meta::Upload> {
    let unknown = || RegistryError::new(Code::BlobUploadUnknown, "blob upload unknown to registry");
    names::check_name(name)?;
    let upload = meta::upload(&ctx.app.store, id)?.ok_or_else(unknown)?;
    if upload.repo != name || upload.principal != ctx.principal.id {
        return Err(unknown());
    }
    Ok(upload)
}

fn content_range_start(headers: &HeaderMap) -> RResult<Option<u64>> {
    let Some(v) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let text = v.to_str().unwrap_or("");
    let text = text
        .trim()
        .trim_start_matches("bytes ")
        .trim_start_matches("bytes=");
    let (start, _) = text.split_once('-').unwrap_or((text, ""));
    start
        .trim()
        .parse()
        .map(Some)
        .map_err(|_| RegistryError::new(Code::RangeInvalid, "malformed Content-Range"))
}

pub(super) async fn patch_upload(
    ctx: &Ctx<'_>,
    name: &str,
    id: &str,
    body: Body,
) -> RResult<Response> {
    let upload = session(ctx, name, id)?;
    let start = content_range_start(ctx.headers)?;
    let grant = upload_grant(ctx, &upload)?;
    let size = match ctx
        .app
        .blobs
        .append(id, received(ctx, body), start, grant.as_ref())
        .await
    {
        Ok(size) => size,
        Err(e) => return Err(forget_refused(ctx, id, e).await),
    };
    Ok(upload_accepted(name, id, size, StatusCode::ACCEPTED))
}

pub(super) async fn finish_upload(
    ctx: &Ctx<'_>,
    name: &str,
    id: &str,
    body: Body,
) -> RResult<Response> {
    let upload = session(ctx, name, id)?;
    let digest = ctx.query.get("digest").ok_or_else(|| {
        RegistryError::new(Code::DigestInvalid, "the digest parameter is missing")
    })?;
    names::check_digest(digest)?;
    let blobs = &ctx.app.blobs;
    let start = content_range_start(ctx.headers)?;
    let grant = upload_grant(ctx, &upload)?;
    if let Err(e) = blobs
        .append(id, received(ctx, body), start, grant.as_ref())
        .await
    {
        return Err(forget_refused(ctx, id, e).await);
    }
    // The grant is held until the blob is linked, so that its bytes count all along.
    let committed = blobs.commit(id, digest).await;
    meta::delete_upload(&ctx.app.store, id)?;
    let size = committed?;
    meta::add_blob(
        &ctx.app.store,
        &upload.repo,
        digest,
        size,
        unix_now(ctx.app),
    )?;
    Ok(blob_created(name, digest))
}

/// The quota grant of a session's repository (gone meanwhile: no quota to keep).
fn upload_grant<'a>(ctx: &Ctx<'a>, upload: &meta::Upload) -> RResult<Option<Grant<'a>>> {
    match meta::repo(&ctx.app.store, &upload.repo)? {
        Some(repo) => grant(ctx, &repo),
        None => Ok(None),
    }
}

pub(super) async fn upload_status(ctx: &Ctx<'_>, name: &str, id: &str) -> RResult<Response> {
    session(ctx, name, id)?;
    let size = ctx.app.blobs.upload_size(id).await?;
    Ok(upload_accepted(name, id, size, StatusCode::NO_CONTENT))
}

pub(super) async fn cancel_upload(ctx: &Ctx<'_>, name: &str, id: &str) -> RResult<Response> {
    session(ctx, name, id)?;
    ctx.app.blobs.remove_upload(id).await;
    meta::delete_upload(&ctx.app.store, id)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
