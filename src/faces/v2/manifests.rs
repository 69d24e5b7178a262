//! Manifests: get, head, put (read as typed documents, stored byte for byte) and delete, by tag
//! or digest.

use super::{Ctx, for_pull, for_push, header, unix_now};
use crate::domains::authz::Capability;
use crate::domains::registry::error::{Code, RResult, RegistryError};
use crate::domains::registry::manifest;
use crate::domains::registry::meta::{self, Refused};
use crate::domains::registry::names;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The largest manifest accepted.
const MAX_MANIFEST: usize = 4 << 20;

fn manifest_unknown(reference: &str) -> RegistryError {
    RegistryError::new(Code::ManifestUnknown, "manifest unknown")
        .detail(json!({ "reference": reference }))
}

pub(super) async fn get_manifest(
    ctx: &Ctx<'_>,
    name: &str,
    reference: &str,
    with_body: bool,
) -> RResult<Response> {
    for_pull(ctx, name, Capability::Read)?;
    check_reference(reference)?;
    let store = &ctx.app.store;
    let digest =
        meta::resolve(store, name, reference)?.ok_or_else(|| manifest_unknown(reference))?;
    let (m, bytes) =
        meta::manifest(store, name, &digest)?.ok_or_else(|| manifest_unknown(reference))?;
    let len = bytes.len();
    let mut r = if with_body {
        ctx.app.metrics.add_registry_out(len as u64);
        Response::new(Body::from(bytes))
    } else {
        Response::new(Body::empty())
    };
    header(&mut r, "Content-Type", &m.media_type);
    header(&mut r, "Docker-Content-Digest", &m.digest);
    header(&mut r, "Content-Length", &len.to_string());
    header(&mut r, "ETag", &format!("\"{}\"", m.digest));
    Ok(r)
}

fn check_reference(reference: &str) -> RResult<()> {
    if reference.contains(':') {
        names::check_digest(reference)
    } else if names::valid_tag(reference) {
        Ok(())
    } else {
        Err(RegistryError::new(Code::ManifestInvalid, "invalid tag")
            .detail(json!({ "tag": reference })))
    }
}

/// Reads a whole (small) request body, refusing more than `max` bytes.
pub(super) async fn small_body(body: Body, max: usize) -> RResult<Vec<u8>> {
    axum::body::to_bytes(body, max)
        .await
        .map(|b| b.to_vec())
        .map_err(|_| {
            RegistryError::new(
                Code::SizeInvalid,
                format!("the manifest is larger than {max} bytes"),
            )
        })
}

pub(super) async fn put_manifest(
    ctx: &Ctx<'_>,
    name: &str,
    reference: &str,
    body: Body,
) -> RResult<Response> {
    check_reference(reference)?;
    for_push(ctx, name)?;
    let bytes = small_body(body, MAX_MANIFEST).await?;
    ctx.app.metrics.add_registry_in(bytes.len() as u64);
    let digest = names::digest_of(&bytes);
    if reference.contains(':') && reference != digest {
        return Err(RegistryError::new(
            Code::DigestInvalid,
            "the manifest's digest differs from the reference",
        )
        .detail(json!({ "digest": digest })));
    }
    let content_type = ctx
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let (manifest, sizes) = manifest::parse(&bytes, content_type, &digest, unix_now(ctx.app))?;
    let tag = (!reference.contains(':')).then_some(reference);
    match meta::put_manifest(&ctx.app.store, name, &manifest, &sizes, &bytes, tag)? {
        Ok(()) => {}
        Err(Refused::Unknown(missing)) => {
            return Err(
                RegistryError::new(Code::ManifestBlobUnknown, "blob unknown to registry")
                    .detail(json!({ "digest": missing })),
            );
        }
        Err(Refused::Size {
            digest,
            declared,
            actual,
        }) => {
            return Err(RegistryError::new(
                Code::SizeInvalid,
                format!("the manifest declares {declared} bytes for {digest}, which has {actual}"),
            )
            .detail(json!({ "digest": digest, "size": declared, "actual": actual })));
        }
    }
    let mut r = StatusCode::CREATED.into_response();
    header(
        &mut r,
        "Location",
        &format!("/v2/{name}/manifests/{digest}"),
    );
    header(&mut r, "Docker-Content-Digest", &digest);
    if let Some(subject) = &manifest.subject {
        header(&mut r, "OCI-Subject", subject);
    }
    Ok(r)
}

pub(super) async fn delete_manifest(
    ctx: &Ctx<'_>,
    name: &str,
    reference: &str,
) -> RResult<Response> {
    for_pull(ctx, name, Capability::Delete)?;
    check_reference(reference)?;
    if meta::delete_manifest(&ctx.app.store, name, reference)? {
        Ok(StatusCode::ACCEPTED.into_response())
    } else {
        Err(manifest_unknown(reference))
    }
}
