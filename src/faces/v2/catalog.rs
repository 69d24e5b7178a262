//! Listing: the catalog and a repository's tags (`n`/`last` paging with a `Link` to the next
//! page), and referrers of a manifest.

use super::{Ctx, for_pull, header};
use crate::domains::authz::Capability;
use crate::domains::registry::error::{Code, RResult, RegistryError};
use crate::domains::registry::{meta, names};
use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// `n` and `last` paging with a `Link` header to the next page.
fn page(
    ctx: &Ctx<'_>,
    mut items: Vec<String>,
    path: &str,
) -> RResult<(Vec<String>, Option<String>)> {
    items.sort();
    if let Some(last) = ctx.query.get("last") {
        items.retain(|i| i.as_str() > last.as_str());
    }
    let n = match ctx.query.get("n") {
        Some(n) => Some(
            n.parse::<usize>()
                .map_err(|_| RegistryError::new(Code::Unsupported, "n must be a whole number"))?,
        ),
        None => None,
    };
    match n {
        Some(n) if items.len() > n => {
            items.truncate(n);
            let link = items
                .last()
                .map(|last| format!("<{path}?n={n}&last={last}>; rel=\"next\""));
            Ok((items, link))
        }
        _ => Ok((items, None)),
    }
}

pub(super) async fn catalog(ctx: &Ctx<'_>) -> RResult<Response> {
    let all = meta::catalog(&ctx.app.store, ctx.principal)?;
    let (repos, link) = page(ctx, all, "/v2/_catalog")?;
    let mut r = Json(json!({ "repositories": repos })).into_response();
    if let Some(link) = link {
        header(&mut r, "Link", &link);
    }
    Ok(r)
}

pub(super) async fn tags(ctx: &Ctx<'_>, name: &str) -> RResult<Response> {
    for_pull(ctx, name, Capability::Read)?;
    let all = meta::tags(&ctx.app.store, name)?;
    let (tags, link) = page(ctx, all, &format!("/v2/{name}/tags/list"))?;
    let mut r = Json(json!({ "name": name, "tags": tags })).into_response();
    if let Some(link) = link {
        header(&mut r, "Link", &link);
    }
    Ok(r)
}

pub(super) async fn referrers(ctx: &Ctx<'_>, name: &str, digest: &str) -> RResult<Response> {
    for_pull(ctx, name, Capability::Read)?;
    names::check_digest(digest)?;
    let filter = ctx.query.get("artifactType");
    let manifests: Vec<Value> = meta::referrers(&ctx.app.store, name, digest)?
        .into_iter()
        .filter(|m| filter.is_none_or(|f| m.artifact_type.as_deref() == Some(f.as_str())))
        .map(|m| {
            let mut d = json!({ "mediaType": m.media_type, "digest": m.digest, "size": m.size });
            if let Some(t) = m.artifact_type {
                d["artifactType"] = json!(t);
            }
            if let Some(a) = m.annotations {
                d["annotations"] = a;
            }
            d
        })
        .collect();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    let mut r = Json(index).into_response();
    header(
        &mut r,
        "Content-Type",
        "application/vnd.oci.image.index.v1+json",
    );
    if filter.is_some() {
        header(&mut r, "OCI-Filters-Applied", "artifactType");
    }
    Ok(r)
}
