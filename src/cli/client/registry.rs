//! The appliance's registry (`/v2`, the OCI distribution spec) as `push`, `pull` and `upload`
//! use it: the profile's API key as the password of Basic authentication (as
//! `docker-configure` gives it to docker), manifests and blobs read and written, uploads in
//! one request (small blobs whose digest is known) or streamed in chunks of at most
//! [`CHUNK`] bytes (layers, compressed as they go up, their digest known only at the end).
//!
//! The registry's errors (`{"errors": [{"code", "message"}]}`) become the client's
//! [`ClientError::Api`], so that a refused key says to log in again like everywhere else.

use super::Ctx;
use super::docker::registry_name;
use super::http::{Api, Body, BoxError, ClientError, Payload, read_limited, sanitize};
use super::profile::KeySource;
use crate::core::secrets::hex;
use crate::domains::registry::manifest::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use crate::domains::registry::names;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderName};
use hyper::{Method, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tokio::sync::{Mutex, mpsc};

/// An image's config, as Docker's schema-2 manifests name it.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// A gzipped layer.
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// The most one PATCH of a streamed upload carries (each request's time stays bounded).
pub const CHUNK: u64 = 64 << 20;
/// The most PATCHes of one upload (64 TiB at [`CHUNK`]).
const MAX_PATCHES: usize = 1 << 20;
/// The largest manifest read.
const MAX_MANIFEST: usize = 4 << 20;
/// What a manifest GET accepts.
const MANIFEST_TYPES: &str = "application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

/// The registry of the appliance a command talks to, with the caller's key.
#[derive(Clone)]
pub struct Registry {
    /// The appliance, without the bearer key (the registry gets Basic credentials).
    api: Api,
    /// `Basic base64(login:key)`.
    auth: String,
    key_source: Option<KeySource>,
    /// The caller's namespace in the registry (the login's slug): `<namespace>/NAME`.
    pub namespace: Option<String>,
    /// The registry as docker names it: `host:port` (`host` alone on 443).
    pub host: String,
}

/// A manifest as the registry served it.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub digest: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// A blob a manifest points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

/// An image manifest (Docker schema 2 or OCI): its config and layers.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageManifest {
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// An image in the registry: the manifest served for the reference (an index's entry for this
/// machine's platform when the reference names an index) and what it holds.
#[derive(Debug, Clone)]
pub struct RemoteImage {
    pub fetched: Fetched,
    pub manifest: ImageManifest,
}

/// The engine's name of this machine's architecture.
pub fn engine_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

/// A repository and a tag or digest in the registry, as a user writes it: `NAME[:TAG]` or
/// `NAME@DIGEST`, optionally behind the registry's own `host:port/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRef {
    pub name: String,
    /// A tag, or a digest (`sha256:...`).
    pub reference: String,
}

impl RepoRef {
    pub fn is_digest(&self) -> bool {
        self.reference.contains(':')
    }

    /// `name:tag` or `name@digest`.
    pub fn text(&self) -> String {
        if self.is_digest() {
            format!("{}@{}", self.name, self.reference)
        } else {
            format!("{}:{}", self.name, self.reference)
        }
    }
}

/// Splits a reference into its repository, tag and digest: `a/b:1@sha256:...`.
pub fn split_reference(text: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match text.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (text, None),
    };
    match rest.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag), digest),
        _ => (rest, None, digest),
    }
}

/// Reads `NAME[:TAG]` / `NAME@DIGEST` for the registry at `host` (a leading `host/` is
/// dropped); the tag defaults to `latest`.
pub fn parse_repo_ref(text: &str, host: &str) -> Result<RepoRef, String> {
    let bare = text.strip_prefix(&format!("{host}/")).unwrap_or(text);
    let (name, tag, digest) = split_reference(bare);
    if !names::valid_name(name) {
        return Err(format!(
            "{text:?} is not a repository name: lowercase letters, digits and . _ - in \
             components separated by /, e.g. alice/tool:1"
        ));
    }
    let reference = match (tag, digest) {
        (_, Some(d)) if names::valid_digest(d) => d.to_owned(),
        (_, Some(d)) => return Err(format!("{d:?} is not a digest (sha256: and 64 hex digits)")),
        (Some(t), None) if names::valid_tag(t) => t.to_owned(),
        (Some(t), None) => {
            return Err(format!(
                "{t:?} is not a tag: letters, digits, _ . - (at most 128, not starting with . or -)"
            ));
        }
        (None, None) => "latest".to_owned(),
    };
    Ok(RepoRef {
        name: name.to_owned(),
        reference,
    })
}

/// One entry of the registry's error body.
#[derive(Deserialize)]
struct RegistryErrors {
    errors: Vec<RegistryErrorItem>,
}

#[derive(Deserialize)]
struct RegistryErrorItem {
    code: Option<String>,
    message: Option<String>,
}

/// The code and message of a registry error body (or a `/v1` one).
pub fn registry_error_of(body: &[u8]) -> (Option<String>, Option<String>) {
    if let Ok(e) = serde_json::from_slice::<RegistryErrors>(body)
        && let Some(first) = e.errors.into_iter().next()
    {
        return (
            first.code.map(|c| sanitize(&c, 60)),
            first.message.map(|m| sanitize(&m, 500)),
        );
    }
    super::http::error_of(body)
}

fn whole(bytes: Bytes) -> Body {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Where a streamed upload reads its bytes: compressed pieces, an error, or the end.
struct Source {
    rx: mpsc::Receiver<Result<Bytes, String>>,
    ended: bool,
    failed: Option<String>,
}

/// A PATCH body: the next pieces of `source`, until `limit` bytes or the end.
fn chunk_body(source: Arc<Mutex<Source>>, limit: u64) -> Body {
    let stream = futures_util::stream::unfold((source, 0u64, false), move |state| async move {
        let (source, sent, stop) = state;
        if stop || sent >= limit {
            return None;
        }
        let mut s = source.lock().await;
        if s.ended || s.failed.is_some() {
            return None;
        }
        match s.rx.recv().await {
            Some(Ok(bytes)) => {
                drop(s);
                let n = bytes.len() as u64;
                Some((Ok(Frame::data(bytes)), (source, sent + n, false)))
            }
            Some(Err(e)) => {
                s.failed = Some(e.clone());
                drop(s);
                let error: BoxError = e.into();
                Some((Err(error), (source, sent, true)))
            }
            None => {
                s.ended = true;
                None
            }
        }
    });
    StreamBody::new(stream).boxed_unsync()
}

impl Registry {
    /// The registry of the appliance `ctx` names, with its key (and the caller's login, from
    /// `/v1/me`).
    pub async fn connect(ctx: &Ctx) -> Result<Registry, String> {
        let api = ctx.api()?;
        let me = api.get("/v1/me").await?;
        let login = me["login"].as_str().map(str::to_owned);
        let key = api.key().ok_or("no API key")?.to_owned();
        let user = login.clone().unwrap_or_else(|| "dtaas".to_owned());
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{key}"))
        );
        let host = registry_name(&api.base, None, None)?;
        Ok(Registry {
            api: api.with_key(None),
            auth,
            key_source: ctx.target.api_key.as_ref().map(|(_, s)| *s),
            namespace: login.as_deref().map(crate::core::names::slug),
            host,
        })
    }

    /// The appliance's URL, for sentences and the layer cache.
    pub fn url(&self) -> String {
        self.api.base.to_string()
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Payload,
        headers: &[(HeaderName, String)],
    ) -> Result<Response<Incoming>, ClientError> {
        let mut all = vec![(header::AUTHORIZATION, self.auth.clone())];
        all.extend(headers.iter().cloned());
        self.api.send(method, path, body, &all).await
    }

    /// The error an answer carries.
    async fn error(&self, response: Response<Incoming>) -> ClientError {
        let status = response.status();
        let body = read_limited(response.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        let (code, message) = registry_error_of(&body);
        ClientError::Api {
            status,
            code,
            message,
            key: self.key_source,
            url: self.url(),
        }
    }

    /// The path of an upload's `Location`: a path on this appliance (an absolute URL must
    /// name the appliance itself: the key goes nowhere else).
    fn location(&self, response: &Response<Incoming>) -> Result<String, ClientError> {
        let protocol = |message: &str| ClientError::Protocol {
            url: self.url(),
            message: message.to_owned(),
        };
        let value = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| protocol("an upload was answered without a Location"))?;
        let path = match value.split_once("://") {
            Some((_, rest)) => {
                let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                if !authority.eq_ignore_ascii_case(&self.api.base.authority()) {
                    return Err(protocol("an upload was sent to another server"));
                }
                path
            }
            None => value,
        };
        if !path.starts_with('/') {
            return Err(protocol("an upload's Location is not a path"));
        }
        let prefix = &self.api.base.prefix;
        Ok(match path.strip_prefix(prefix.as_str()) {
            Some(rest) if !prefix.is_empty() && rest.starts_with('/') => rest.to_owned(),
            _ => path.to_owned(),
        })
    }

    /// The manifest at `name:reference`, or `None` when the registry has none (or the
    /// repository is not visible).
    pub async fn manifest(
        &self,
        name: &str,
        reference: &str,
    ) -> Result<Option<Fetched>, ClientError> {
        let response = self
            .send(
                Method::GET,
                &format!("/v2/{name}/manifests/{reference}"),
                Payload::Empty,
                &[(header::ACCEPT, MANIFEST_TYPES.to_owned())],
            )
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(self.error(response).await);
        }
        let header_of = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let media_type = header_of("content-type");
        let given_digest = header_of("docker-content-digest");
        let bytes = read_limited(response.into_body(), MAX_MANIFEST)
            .await
            .map_err(|message| ClientError::Connect {
                url: self.url(),
                message,
            })?;
        let digest = digest_of(&bytes);
        if reference.contains(':') && reference != digest
            || given_digest.is_some_and(|d| d != digest)
        {
            return Err(ClientError::Protocol {
                url: self.url(),
                message: format!("the manifest of {name}:{reference} does not match its digest"),
            });
        }
        let declared = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v["mediaType"].as_str().map(str::to_owned));
        let media_type = declared
            .or(media_type.map(|m| m.split(';').next().unwrap_or("").trim().to_owned()))
            .unwrap_or_default();
        Ok(Some(Fetched {
            digest,
            media_type,
            bytes,
        }))
    }

    /// The image at `name:reference`: an index is resolved to this machine's platform.
    pub async fn image(&self, name: &str, reference: &str) -> Result<Option<RemoteImage>, String> {
        let Some(mut fetched) = self.manifest(name, reference).await? else {
            return Ok(None);
        };
        if fetched.media_type == OCI_INDEX || fetched.media_type == DOCKER_LIST {
            let arch = engine_arch();
            let entry =
                crate::domains::registry::manifest::platform_entry(&fetched.bytes, "linux", arch)
                    .ok_or_else(|| format!("{name}:{reference} has no image for linux/{arch}"))?;
            fetched = self
                .manifest(name, &entry)
                .await?
                .ok_or_else(|| format!("{name}:{reference}: its linux/{arch} image is missing"))?;
        }
        if fetched.media_type != DOCKER_MANIFEST && fetched.media_type != OCI_MANIFEST {
            return Err(format!(
                "{name}:{reference} is not an image (its manifest is {})",
                sanitize(&fetched.media_type, 100)
            ));
        }
        let manifest: ImageManifest = serde_json::from_slice(&fetched.bytes)
            .map_err(|e| format!("the manifest of {name}:{reference} cannot be read: {e}"))?;
        Ok(Some(RemoteImage { fetched, manifest }))
    }

    /// The size of blob `digest` in `name`, if the repository has it.
    pub async fn blob_size(&self, name: &str, digest: &str) -> Result<Option<u64>, ClientError> {
        let response = self
            .send(
                Method::HEAD,
                &format!("/v2/{name}/blobs/{digest}"),
                Payload::Empty,
                &[],
            )
            .await?;
        match response.status() {
            StatusCode::OK => Ok(Some(
                response
                    .headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.error(response).await),
        }
    }

    /// Links blob `digest` of repository `from` into `name` (a cross-repository mount);
    /// false when the registry would rather have it uploaded.
    pub async fn mount(&self, name: &str, digest: &str, from: &str) -> Result<bool, ClientError> {
        let query = serde_urlencoded::to_string([("mount", digest), ("from", from)])
            .map_err(|e| ClientError::Local(format!("cannot encode the query: {e}")))?;
        let response = self
            .send(
                Method::POST,
                &format!("/v2/{name}/blobs/uploads/?{query}"),
                Payload::Empty,
                &[],
            )
            .await?;
        match response.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                // An upload session instead: not wanted.
                if let Ok(location) = self.location(&response) {
                    self.cancel(&location).await;
                }
                Ok(false)
            }
            _ => Err(self.error(response).await),
        }
    }

    /// Uploads a small blob whose digest is known, in one request.
    pub async fn put_blob(
        &self,
        name: &str,
        digest: &str,
        bytes: Bytes,
    ) -> Result<(), ClientError> {
        let response = self
            .send(
                Method::POST,
                &format!("/v2/{name}/blobs/uploads/?digest={digest}"),
                Payload::Stream {
                    content_type: "application/octet-stream".into(),
                    body: whole(bytes),
                },
                &[],
            )
            .await?;
        if response.status() == StatusCode::CREATED {
            return Ok(());
        }
        Err(self.error(response).await)
    }

    /// Streams an upload into `name` from `rx`, in PATCHes of at most [`CHUNK`] bytes, until
    /// `rx` ends; returns where to finish it ([`Registry::finish`]). An `Err` piece stops the
    /// upload with that error.
    pub async fn upload(
        &self,
        name: &str,
        rx: mpsc::Receiver<Result<Bytes, String>>,
    ) -> Result<String, ClientError> {
        let response = self
            .send(
                Method::POST,
                &format!("/v2/{name}/blobs/uploads/"),
                Payload::Empty,
                &[],
            )
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(self.error(response).await);
        }
        let mut location = self.location(&response)?;
        let source = Arc::new(Mutex::new(Source {
            rx,
            ended: false,
            failed: None,
        }));
        for _ in 0..MAX_PATCHES {
            let result = self
                .send(
                    Method::PATCH,
                    &location,
                    Payload::Stream {
                        content_type: "application/octet-stream".into(),
                        body: chunk_body(source.clone(), CHUNK),
                    },
                    &[],
                )
                .await;
            // The body is done with the source once the registry answered (`try_lock`: a body
            // hyper still holds after an early answer counts as neither failed nor ended).
            let (failed, ended) = match source.try_lock() {
                Ok(s) => (s.failed.clone(), s.ended),
                Err(_) => (None, false),
            };
            if let Some(e) = failed {
                self.cancel(&location).await;
                return Err(ClientError::Local(e));
            }
            let response = match result {
                Ok(r) if r.status() == StatusCode::ACCEPTED => r,
                Ok(r) => {
                    let e = self.error(r).await;
                    self.cancel(&location).await;
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            location = self.location(&response)?;
            if ended {
                return Ok(location);
            }
        }
        self.cancel(&location).await;
        Err(ClientError::Local("the upload did not end".into()))
    }

    /// Finishes an upload: the registry checks `digest` and makes the blob visible.
    pub async fn finish(&self, location: &str, digest: &str) -> Result<(), ClientError> {
        let sep = if location.contains('?') { '&' } else { '?' };
        let response = self
            .send(
                Method::PUT,
                &format!("{location}{sep}digest={digest}"),
                Payload::Empty,
                &[],
            )
            .await?;
        if response.status() == StatusCode::CREATED {
            return Ok(());
        }
        Err(self.error(response).await)
    }

    /// Gives an upload up (best effort: the registry collects stale uploads anyway).
    pub async fn cancel(&self, location: &str) {
        let _ = self
            .send(Method::DELETE, location, Payload::Empty, &[])
            .await;
    }

    /// Stores a manifest under `tag`; returns its digest.
    pub async fn put_manifest(
        &self,
        name: &str,
        tag: &str,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> Result<String, ClientError> {
        let digest = digest_of(&bytes);
        let response = self
            .send(
                Method::PUT,
                &format!("/v2/{name}/manifests/{tag}"),
                Payload::Stream {
                    content_type: media_type.to_owned(),
                    body: whole(Bytes::from(bytes)),
                },
                &[],
            )
            .await?;
        if response.status() == StatusCode::CREATED {
            return Ok(digest);
        }
        Err(self.error(response).await)
    }

    /// Starts reading blob `digest` of `name`.
    pub async fn blob(&self, name: &str, digest: &str) -> Result<Incoming, ClientError> {
        let response = self
            .send(
                Method::GET,
                &format!("/v2/{name}/blobs/{digest}"),
                Payload::Empty,
                &[],
            )
            .await?;
        if response.status() != StatusCode::OK {
            return Err(self.error(response).await);
        }
        Ok(response.into_body())
    }

    /// Reads a small blob whole (a config), checking its digest.
    pub async fn small_blob(
        &self,
        name: &str,
        digest: &str,
        max: usize,
    ) -> Result<Vec<u8>, String> {
        let body = self.blob(name, digest).await?;
        let bytes = read_limited(body, max)
            .await
            .map_err(|e| format!("reading {}: {e}", super::progress::short(digest)))?;
        if digest_of(&bytes) != digest {
            return Err(format!("blob {digest} of {name} does not match its digest"));
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_read_as_users_write_them() {
        let r = parse_repo_ref("alice/tool:1", "127.0.0.1:5000").unwrap();
        assert_eq!((r.name.as_str(), r.reference.as_str()), ("alice/tool", "1"));
        assert_eq!(r.text(), "alice/tool:1");
        let r = parse_repo_ref("127.0.0.1:5000/alice/tool", "127.0.0.1:5000").unwrap();
        assert_eq!(
            (r.name.as_str(), r.reference.as_str()),
            ("alice/tool", "latest")
        );
        let d = format!("sha256:{}", "a".repeat(64));
        let r = parse_repo_ref(&format!("tool@{d}"), "h:1").unwrap();
        assert!(r.is_digest());
        assert_eq!(r.text(), format!("tool@{d}"));
        assert!(parse_repo_ref("Tool:1", "h:1").is_err());
        assert!(parse_repo_ref("tool:-x", "h:1").is_err());
        assert!(parse_repo_ref("tool@sha256:12", "h:1").is_err());
        assert!(parse_repo_ref("other.example:5000/tool:1", "h:1").is_err());

        assert_eq!(split_reference("a/b:1"), ("a/b", Some("1"), None));
        assert_eq!(split_reference("h:5000/a/b"), ("h:5000/a/b", None, None));
        assert_eq!(split_reference("h:5000/a:2"), ("h:5000/a", Some("2"), None));
        assert_eq!(
            split_reference("a@sha256:00"),
            ("a", None, Some("sha256:00"))
        );
    }

    #[test]
    fn registry_errors_are_read() {
        let (code, message) = registry_error_of(
            br#"{"errors":[{"code":"DENIED","message":"you lack UPDATE on x","detail":null}]}"#,
        );
        assert_eq!(code.as_deref(), Some("DENIED"));
        assert_eq!(message.as_deref(), Some("you lack UPDATE on x"));
        assert_eq!(registry_error_of(b"<html>"), (None, None));
        assert_eq!(
            digest_of(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[tokio::test]
    async fn a_chunk_body_stops_at_its_limit_and_the_next_goes_on() {
        let (tx, rx) = mpsc::channel(8);
        for piece in [&b"aaaa"[..], b"bbbb", b"cc"] {
            tx.send(Ok(Bytes::from_static(piece))).await.unwrap();
        }
        drop(tx);
        let source = Arc::new(Mutex::new(Source {
            rx,
            ended: false,
            failed: None,
        }));
        let first = chunk_body(source.clone(), 5).collect().await.unwrap();
        assert_eq!(&first.to_bytes()[..], b"aaaabbbb");
        assert!(!source.lock().await.ended);
        let second = chunk_body(source.clone(), 5).collect().await.unwrap();
        assert_eq!(&second.to_bytes()[..], b"cc");
        assert!(source.lock().await.ended);

        let (tx, rx) = mpsc::channel(8);
        tx.send(Err("the engine stopped".into())).await.unwrap();
        let source = Arc::new(Mutex::new(Source {
            rx,
            ended: false,
            failed: None,
        }));
        assert!(chunk_body(source.clone(), 5).collect().await.is_err());
        assert_eq!(
            source.lock().await.failed.as_deref(),
            Some("the engine stopped")
        );
    }
}
