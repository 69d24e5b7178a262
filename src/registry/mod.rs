//! The built-in Docker/OCI registry on `/v2`, on the main listener.
//!
//! Routes -> handlers here -> `meta` (redb records) and `blobs` (files). Repositories are objects
//! of the shared model: the first pusher owns a new one; pull needs READ, push UPDATE (or the
//! right to create it), delete DELETE; a repository the caller cannot see is NAME_UNKNOWN.
//! Errors are the distribution spec's JSON (`error`). `gc` collects unreferenced blobs and stale
//! uploads online; `engine_sync` moves images between the registry and the local engine.

mod auth;
pub mod blobs;
pub mod engine_sync;
pub mod error;
pub mod gc;
pub mod meta;
pub mod names;

use crate::api::auth::ClientAddr;
use crate::authz::{Capability, Principal};
use crate::server::App;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use error::{Code, RResult, RegistryError};
use meta::Manifest;
use serde_json::{Value, json};
use std::collections::HashMap;

pub use auth::CredentialCache;

/// The largest manifest accepted.
const MAX_MANIFEST: usize = 4 << 20;

/// The registry's state in `App`.
pub struct Registry {
    pub blobs: blobs::BlobStore,
    pub credentials: CredentialCache,
}

impl Registry {
    pub fn new(data_dir: &std::path::Path) -> std::io::Result<Registry> {
        Ok(Registry {
            blobs: blobs::BlobStore::new(data_dir)?,
            credentials: CredentialCache::default(),
        })
    }
}

pub(crate) fn init_tables(txn: &redb::WriteTransaction) -> Result<(), crate::store::StoreError> {
    meta::init_tables(txn)
}

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v2", any(ping))
        .route("/v2/", any(ping))
        .route("/v2/{*rest}", any(dispatch))
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::map_response(api_version_header))
}

async fn api_version_header(mut response: Response) -> Response {
    response.headers_mut().insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static("registry/2.0"),
    );
    response
}

async fn ping(
    State(app): State<App>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
) -> Response {
    match auth::authenticate(&app, &headers, addr).await {
        Ok(_) => Json(json!({})).into_response(),
        Err(e) => e.into_response(),
    }
}

/// What a `/v2/...` path names.
#[derive(Debug)]
enum Route {
    Catalog,
    Tags(String),
    Manifest(String, String),
    Blob(String, String),
    Uploads(String),
    Upload(String, String),
    Referrers(String, String),
}

fn parse_route(rest: &str) -> Option<Route> {
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Route::Tags(name.to_owned()));
    }
    if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
        return Some(Route::Manifest(name.to_owned(), reference.to_owned()));
    }
    if let Some((name, digest)) = rest.rsplit_once("/referrers/") {
        return Some(Route::Referrers(name.to_owned(), digest.to_owned()));
    }
    if let Some(name) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return Some(Route::Uploads(name.to_owned()));
    }
    if let Some((name, id)) = rest.rsplit_once("/blobs/uploads/") {
        return Some(Route::Upload(name.to_owned(), id.to_owned()));
    }
    if let Some((name, digest)) = rest.rsplit_once("/blobs/") {
        return Some(Route::Blob(name.to_owned(), digest.to_owned()));
    }
    None
}

async fn dispatch(
    State(app): State<App>,
    ClientAddr(addr): ClientAddr,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let rest = parts.uri.path().trim_start_matches("/v2/").to_owned();
    let query: HashMap<String, String> = parts
        .uri
        .query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    let result = async {
        let principal = auth::authenticate(&app, &parts.headers, addr).await?;
        let Some(route) = parse_route(&rest) else {
            return Err(RegistryError::new(
                Code::NameInvalid,
                "not a registry route",
            ));
        };
        let method = parts.method.clone();
        let ctx = Ctx {
            app: &app,
            principal: &principal,
            query: &query,
            headers: &parts.headers,
        };
        match (route, method) {
            (Route::Catalog, Method::GET) => catalog(&ctx).await,
            (Route::Tags(name), Method::GET) => tags(&ctx, &name).await,
            (Route::Manifest(name, r), Method::GET) => get_manifest(&ctx, &name, &r, true).await,
            (Route::Manifest(name, r), Method::HEAD) => get_manifest(&ctx, &name, &r, false).await,
            (Route::Manifest(name, r), Method::PUT) => put_manifest(&ctx, &name, &r, body).await,
            (Route::Manifest(name, r), Method::DELETE) => delete_manifest(&ctx, &name, &r).await,
            (Route::Blob(name, d), Method::GET) => get_blob(&ctx, &name, &d, true).await,
            (Route::Blob(name, d), Method::HEAD) => get_blob(&ctx, &name, &d, false).await,
            (Route::Blob(name, d), Method::DELETE) => delete_blob(&ctx, &name, &d).await,
            (Route::Uploads(name), Method::POST) => start_upload(&ctx, &name, body).await,
            (Route::Upload(name, id), Method::PATCH) => patch_upload(&ctx, &name, &id, body).await,
            (Route::Upload(name, id), Method::PUT) => finish_upload(&ctx, &name, &id, body).await,
            (Route::Upload(name, id), Method::GET) => upload_status(&ctx, &name, &id).await,
            (Route::Upload(name, id), Method::DELETE) => cancel_upload(&ctx, &name, &id).await,
            (Route::Referrers(name, d), Method::GET) => referrers(&ctx, &name, &d).await,
            (_, m) => Err(RegistryError::new(
                Code::Unsupported,
                format!("{m} is not supported on this route"),
            )),
        }
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

struct Ctx<'a> {
    app: &'a App,
    principal: &'a Principal,
    query: &'a HashMap<String, String>,
    headers: &'a HeaderMap,
}

fn unix_now(app: &App) -> i64 {
    app.now().timestamp()
}

/// A repository the caller may use with `cap`.
fn for_pull(ctx: &Ctx<'_>, name: &str, cap: Capability) -> RResult<meta::Repo> {
    names::check_name(name)?;
    match meta::repo_caps(&ctx.app.store, ctx.principal, name)? {
        Some((repo, caps)) if caps.contains(cap) => Ok(repo),
        Some(_) => Err(RegistryError::new(
            Code::Denied,
            format!("requested access to the resource is denied: you lack {cap} on {name}"),
        )),
        None => Err(RegistryError::name_unknown(name)),
    }
}

/// A repository the caller may push to, created (owned by the caller) if it is new.
fn for_push(ctx: &Ctx<'_>, name: &str) -> RResult<meta::Repo> {
    names::check_name(name)?;
    let store = &ctx.app.store;
    match meta::repo_caps(store, ctx.principal, name)? {
        Some((repo, caps)) if caps.contains(Capability::Update) => Ok(repo),
        Some(_) => Err(RegistryError::new(
            Code::Denied,
            format!("requested access to the resource is denied: you lack UPDATE on {name}"),
        )),
        None if meta::repo(store, name)?.is_some() => Err(RegistryError::name_unknown(name)),
        None => {
            if !meta::may_create(store, ctx.principal, name)? {
                return Err(RegistryError::new(
                    Code::Denied,
                    format!("{name} is in another user's namespace"),
                ));
            }
            // A servable pushing creates a repository of its owner's account.
            Ok(meta::create_repo(
                store,
                ctx.principal.owner(),
                name,
                ctx.app.now(),
            )?)
        }
    }
}

fn header(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, v);
    }
}

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

async fn catalog(ctx: &Ctx<'_>) -> RResult<Response> {
    let all = meta::catalog(&ctx.app.store, ctx.principal)?;
    let (repos, link) = page(ctx, all, "/v2/_catalog")?;
    let mut r = Json(json!({ "repositories": repos })).into_response();
    if let Some(link) = link {
        header(&mut r, "Link", &link);
    }
    Ok(r)
}

async fn tags(ctx: &Ctx<'_>, name: &str) -> RResult<Response> {
    for_pull(ctx, name, Capability::Read)?;
    let all = meta::tags(&ctx.app.store, name)?;
    let (tags, link) = page(ctx, all, &format!("/v2/{name}/tags/list"))?;
    let mut r = Json(json!({ "name": name, "tags": tags })).into_response();
    if let Some(link) = link {
        header(&mut r, "Link", &link);
    }
    Ok(r)
}

fn manifest_unknown(reference: &str) -> RegistryError {
    RegistryError::new(Code::ManifestUnknown, "manifest unknown")
        .detail(json!({ "reference": reference }))
}

async fn get_manifest(
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
async fn small_body(body: Body, max: usize) -> RResult<Vec<u8>> {
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

/// Reads what a manifest references and its media type, refusing what is not a manifest.
fn inspect_manifest(
    bytes: &[u8],
    content_type: Option<&str>,
    digest: &str,
    now: i64,
) -> RResult<Manifest> {
    let invalid =
        |why: &str| RegistryError::new(Code::ManifestInvalid, format!("manifest invalid: {why}"));
    let v: Value = serde_json::from_slice(bytes).map_err(|e| invalid(&e.to_string()))?;
    if !v.is_object() {
        return Err(invalid("not a JSON object"));
    }
    let media_type = v["mediaType"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| content_type.map(|c| c.split(';').next().unwrap_or(c).trim().to_owned()))
        .ok_or_else(|| invalid("no media type"))?;
    if let (Some(field), Some(header)) = (v["mediaType"].as_str(), content_type)
        && !header.starts_with(field)
        && !header.starts_with("application/json")
    {
        return Err(invalid(
            "the Content-Type differs from the manifest's mediaType",
        ));
    }
    let descriptor_digest = |d: &Value| -> RResult<String> {
        let digest = d["digest"]
            .as_str()
            .ok_or_else(|| invalid("a descriptor has no digest"))?;
        names::check_digest(digest)?;
        Ok(digest.to_owned())
    };
    let mut blobs = Vec::new();
    let mut manifests = Vec::new();
    match media_type.as_str() {
        "application/vnd.oci.image.manifest.v1+json"
        | "application/vnd.docker.distribution.manifest.v2+json" => {
            if v["schemaVersion"] != 2 {
                return Err(invalid("schemaVersion must be 2"));
            }
            blobs.push(descriptor_digest(&v["config"])?);
            for layer in v["layers"].as_array().ok_or_else(|| invalid("no layers"))? {
                blobs.push(descriptor_digest(layer)?);
            }
        }
        "application/vnd.oci.image.index.v1+json"
        | "application/vnd.docker.distribution.manifest.list.v2+json" => {
            if v["schemaVersion"] != 2 {
                return Err(invalid("schemaVersion must be 2"));
            }
            for m in v["manifests"]
                .as_array()
                .ok_or_else(|| invalid("no manifests"))?
            {
                manifests.push(descriptor_digest(m)?);
            }
        }
        other => {
            return Err(RegistryError::new(
                Code::ManifestInvalid,
                format!("manifest invalid: unsupported media type {other}"),
            ));
        }
    }
    let subject = match v.get("subject") {
        Some(s) if !s.is_null() => Some(descriptor_digest(s)?),
        _ => None,
    };
    let artifact_type = v["artifactType"]
        .as_str()
        .or_else(|| v["config"]["mediaType"].as_str())
        .map(str::to_owned);
    Ok(Manifest {
        digest: digest.to_owned(),
        media_type,
        size: bytes.len() as u64,
        blobs,
        manifests,
        subject,
        artifact_type,
        annotations: v.get("annotations").cloned(),
        created: now,
    })
}

async fn put_manifest(ctx: &Ctx<'_>, name: &str, reference: &str, body: Body) -> RResult<Response> {
    check_reference(reference)?;
    for_push(ctx, name)?;
    let bytes = small_body(body, MAX_MANIFEST).await?;
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
    let manifest = inspect_manifest(&bytes, content_type, &digest, unix_now(ctx.app))?;
    let tag = (!reference.contains(':')).then_some(reference);
    if let Err(missing) = meta::put_manifest(&ctx.app.store, name, &manifest, &bytes, tag)? {
        return Err(
            RegistryError::new(Code::ManifestBlobUnknown, "blob unknown to registry")
                .detail(json!({ "digest": missing })),
        );
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

async fn delete_manifest(ctx: &Ctx<'_>, name: &str, reference: &str) -> RResult<Response> {
    for_pull(ctx, name, Capability::Delete)?;
    check_reference(reference)?;
    if meta::delete_manifest(&ctx.app.store, name, reference)? {
        Ok(StatusCode::ACCEPTED.into_response())
    } else {
        Err(manifest_unknown(reference))
    }
}

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

async fn get_blob(ctx: &Ctx<'_>, name: &str, digest: &str, with_body: bool) -> RResult<Response> {
    for_pull(ctx, name, Capability::Read)?;
    names::check_digest(digest)?;
    let record =
        meta::repo_blob(&ctx.app.store, name, digest)?.ok_or_else(|| blob_unknown(digest))?;
    let path = ctx.app.registry.blobs.blob_path(digest);
    let range = match ctx.headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(v) => Some(parse_range(v, record.size).ok_or_else(|| {
            RegistryError::new(Code::RangeInvalid, "range not satisfiable")
                .header(header::CONTENT_RANGE, format!("bytes */{}", record.size))
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
        blobs::read_stream(&file, start, len).map_err(|e| {
            tracing::error!("blob {digest}: {e}");
            blob_unknown(digest)
        })?
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

async fn delete_blob(ctx: &Ctx<'_>, name: &str, digest: &str) -> RResult<Response> {
    for_pull(ctx, name, Capability::Delete)?;
    names::check_digest(digest)?;
    if meta::unlink_blob(&ctx.app.store, name, digest)? {
        Ok(StatusCode::ACCEPTED.into_response())
    } else {
        Err(blob_unknown(digest))
    }
}

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

async fn start_upload(ctx: &Ctx<'_>, name: &str, body: Body) -> RResult<Response> {
    let app = ctx.app;
    // Cross-repository mount: link a blob the caller may read elsewhere.
    if let (Some(digest), Some(from)) = (ctx.query.get("mount"), ctx.query.get("from")) {
        names::check_digest(digest)?;
        let readable = names::valid_name(from)
            && matches!(meta::repo_caps(&app.store, ctx.principal, from)?, Some((_, caps)) if caps.contains(Capability::Read));
        if readable && meta::repo_blob(&app.store, from, digest)?.is_some() {
            for_push(ctx, name)?;
            if meta::link_blob(&app.store, name, digest, unix_now(app))? {
                return Ok(blob_created(name, digest));
            }
        }
        // Otherwise: an ordinary upload session, as the spec says.
    }
    let repo = for_push(ctx, name)?;
    let id = crate::id::Id::new().to_string();
    app.registry.blobs.start_upload(&id).await?;
    if let Some(digest) = ctx.query.get("digest") {
        // Single-request upload.
        names::check_digest(digest)?;
        let result = async {
            app.registry.blobs.append(&id, body, None).await?;
            app.registry.blobs.commit(&id, digest).await
        }
        .await;
        let size = match result {
            Ok(size) => size,
            Err(e) => {
                app.registry.blobs.remove_upload(&id).await;
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

async fn patch_upload(ctx: &Ctx<'_>, name: &str, id: &str, body: Body) -> RResult<Response> {
    session(ctx, name, id)?;
    let start = content_range_start(ctx.headers)?;
    let size = ctx.app.registry.blobs.append(id, body, start).await?;
    Ok(upload_accepted(name, id, size, StatusCode::ACCEPTED))
}

async fn finish_upload(ctx: &Ctx<'_>, name: &str, id: &str, body: Body) -> RResult<Response> {
    let upload = session(ctx, name, id)?;
    let digest = ctx.query.get("digest").ok_or_else(|| {
        RegistryError::new(Code::DigestInvalid, "the digest parameter is missing")
    })?;
    names::check_digest(digest)?;
    let blobs = &ctx.app.registry.blobs;
    let start = content_range_start(ctx.headers)?;
    blobs.append(id, body, start).await?;
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

async fn upload_status(ctx: &Ctx<'_>, name: &str, id: &str) -> RResult<Response> {
    session(ctx, name, id)?;
    let size = ctx.app.registry.blobs.upload_size(id).await?;
    Ok(upload_accepted(name, id, size, StatusCode::NO_CONTENT))
}

async fn cancel_upload(ctx: &Ctx<'_>, name: &str, id: &str) -> RResult<Response> {
    session(ctx, name, id)?;
    ctx.app.registry.blobs.remove_upload(id).await;
    meta::delete_upload(&ctx.app.store, id)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn referrers(ctx: &Ctx<'_>, name: &str, digest: &str) -> RResult<Response> {
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
