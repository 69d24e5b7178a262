//! Blobs: get (with `Range`) and head, from a memory map of the verified file; delete (the
//! repository's link; the file goes with garbage collection).

use super::{Ctx, for_pull, header};
use crate::domains::authz::Capability;
use crate::domains::registry::blobs;
use crate::domains::registry::error::{Code, RResult, RegistryError};
use crate::domains::registry::{meta, names};
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

fn blob_unknown(digest: &str) -> RegistryError {
    RegistryError::new(Code::BlobUnknown, "blob unknown to registry")
        .detail(json!({ "digest": digest }))
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` against a blob of `size` bytes.
fn parse_range(value: &str, size: u64) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (size.saturating_sub(n), size.checked_sub(1)?)
        }
        (a, "") => (a.parse().ok()?, size.checked_sub(1)?),
        (a, b) => (
            a.parse().ok()?,
            b.parse::<u64>().ok()?.min(size.checked_sub(1)?),
        ),
    };
    (start <= end && end < size).then_some((start, end))
}

pub(super) async fn get_blob(
    ctx: &Ctx<'_>,
    name: &str,
    digest: &str,
    with_body: bool,
) -> RResult<Response> {
    for_pull(ctx, name, Capability::Read)?;
    names::check_digest(digest)?;
    let record =
        meta::repo_blob(&ctx.app.store, name, digest)?.ok_or_else(|| blob_unknown(digest))?;
    let path = ctx.app.blobs.blob_path(digest);
    let range = match ctx.headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(v) => Some(parse_range(v, record.size).ok_or_else(|| {
            RegistryError::new(Code::RangeInvalid, "range not satisfiable")
                .header("content-range", format!("bytes */{}", record.size))
        })?),
        None => None,
    };
    let (status, start, len) = match range {
        Some((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e - s + 1),
        None => (StatusCode::OK, 0, record.size),
    };
    let body = if with_body {
        let file = std::fs::File::open(&path).map_err(|e| {
            tracing::error!("blob {digest} is recorded but its file is unreadable: {e}");
            blob_unknown(digest)
        })?;
        let stream = blobs::read_stream(&file, start, len).map_err(|e| {
            tracing::error!("blob {digest}: {e}");
            blob_unknown(digest)
        })?;
        // Counted as the body is sent: a download cut short counts what went.
        let metrics = ctx.app.metrics.clone();
        Body::from_stream(futures_util::TryStreamExt::inspect_ok(
            stream,
            move |chunk| metrics.add_registry_out(chunk.len() as u64),
        ))
    } else {
        Body::empty()
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    header(&mut r, "Content-Type", "application/octet-stream");
    header(&mut r, "Content-Length", &len.to_string());
    header(&mut r, "Docker-Content-Digest", digest);
    header(&mut r, "Accept-Ranges", "bytes");
    header(&mut r, "ETag", &format!("\"{digest}\""));
    if status == StatusCode::PARTIAL_CONTENT {
        header(
            &mut r,
            "Content-Range",
            &format!("bytes {}-{}/{}", start, start + len - 1, record.size),
        );
    }
    Ok(r)
}

pub(super) async fn delete_blob(ctx: &Ctx<'_>, name: &str, digest: &str) -> RResult<Response> {
    for_pull(ctx, name, Capability::Delete)?;
    names::check_digest(digest)?;
    if meta::unlink_blob(&ctx.app.store, name, digest)? {
        Ok(StatusCode::ACCEPTED.into_response())
    } else {
        Err(blob_unknown(digest))
    }
}
