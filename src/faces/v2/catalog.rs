//! Listing: the catalog and a repository's tags (`n`/`last` paging with a `Link` to the next
//! page), and referrers of a manifest.

use super::{Ctx, for_pull, header};
use crate::domains::authz::Capability;
use crate::domains::registry::error::{Code, RResult, RegistryError};
use crate::domains::registry::{meta, names};
use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// What a listing lists, and so what its `last` must be.
#[derive(Debug, Clone, Copy)]
enum Listing {
    /// Repository names.
    Catalog,
    /// A repository's tags.
    Tags,
}

/// The `n` of a listing: a non-negative integer (one beyond any count is no limit), else the
/// spec's PAGINATION_NUMBER_INVALID.
fn page_size(n: &str) -> RResult<usize> {
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RegistryError::new(
            Code::PaginationNumberInvalid,
            "n must be a non-negative integer",
        ));
    }
    Ok(n.parse::<usize>().unwrap_or(usize::MAX))
}

/// The `last` of a listing: a repository name for the catalog (else NAME_INVALID), a tag for
/// tags (else TAG_INVALID).
fn check_last(listing: Listing, last: &str) -> RResult<()> {
    match listing {
        Listing::Catalog if !names::valid_name(last) => Err(RegistryError::new(
            Code::NameInvalid,
            "last must be a repository name",
        )),
        Listing::Tags if !names::valid_tag(last) => {
            Err(RegistryError::new(Code::TagInvalid, "last must be a tag"))
        }
        _ => Ok(()),
    }
}

/// `n` and `last` paging with a `Link` header to the next page.
fn page(
    ctx: &Ctx<'_>,
    listing: Listing,
    mut items: Vec<String>,
    path: &str,
) -> RResult<(Vec<String>, Option<String>)> {
    let n = ctx.query.get("n").map(|n| page_size(n)).transpose()?;
    let last = ctx.query.get("last");
    if let Some(last) = last {
        check_last(listing, last)?;
    }
    items.sort();
    if let Some(last) = last {
        items.retain(|i| i.as_str() > last.as_str());
    }
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
    let (repos, link) = page(ctx, Listing::Catalog, all, "/v2/_catalog")?;
    let mut r = Json(json!({ "repositories": repos })).into_response();
    if let Some(link) = link {
        header(&mut r, "Link", &link);
    }
    Ok(r)
}

pub(super) async fn tags(ctx: &Ctx<'_>, name: &str) -> RResult<Response> {
    for_pull(ctx, name, Capability::Read)?;
    let all = meta::tags(&ctx.app.store, name)?;
    let (tags, link) = page(ctx, Listing::Tags, all, &format!("/v2/{name}/tags/list"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_is_a_non_negative_integer() {
        assert_eq!(page_size("0").unwrap(), 0);
        assert_eq!(page_size("42").unwrap(), 42);
        assert_eq!(page_size("99999999999999999999999").unwrap(), usize::MAX);
        for bad in ["-1", "", "+5", "1.0", "1e3", " 1", "x", "0x10"] {
            let e = page_size(bad).unwrap_err();
            assert_eq!(e.code, Code::PaginationNumberInvalid, "{bad:?}");
        }
    }

    #[test]
    fn last_is_a_name_in_the_catalog_and_a_tag_in_tags() {
        assert!(check_last(Listing::Catalog, "alice/app").is_ok());
        assert!(check_last(Listing::Tags, "v1.0_rc-1").is_ok());
        for bad in ["", "UPPER", "a//b", "../x", &"a".repeat(300)] {
            let e = check_last(Listing::Catalog, bad).unwrap_err();
            assert_eq!(e.code, Code::NameInvalid, "{bad:?}");
        }
        for bad in ["", ".v", "-v", "a/b", "a:b", &"t".repeat(129)] {
            let e = check_last(Listing::Tags, bad).unwrap_err();
            assert_eq!(e.code, Code::TagInvalid, "{bad:?}");
        }
    }
}
