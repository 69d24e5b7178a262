//! engine: the local Docker engine (bollard) and what runs on it.
//!
//! | module | what it does |
//! | --- | --- |
//! | this one | the connection ([`Engine`]), labels, the one mapping of engine errors ([`engine_error`]) |
//! | [`supervisor`] | the one container supervisor: create, start, follow logs, sample usage, wait, stop, remove, recover |
//! | [`jobs`] | the run queue's dispatcher and pipeline runs (kabuto jobs) |
//! | [`instances`] | servable instances: the servable network, identity files, restarts |
//! | [`builds`] | image builds (clone, tar, the legacy builder) |
//! | [`dockerfile`] | a Dockerfile read as the legacy builder reads it: `ADD` from the network, the images used |
//! | [`egress`] | where builds may reach (loopback, private, ... refused) and the clones' egress proxy |
//! | [`registry_sync`] | images between the registry's blobs and the engine |
//! | [`networks`] | a network per servable, joined by the containers that may reach it |
//! | [`logs`] | following a container's output into the log store |
//! | [`usage`] | CPU, memory and I/O of a container |
//! | [`base_image`] | the busybox base image made from the machine's static busybox |
//!
//! The server starts whether or not the engine answers: the client is made and the API version
//! negotiated (Debian's Docker 20.10 speaks API 1.41, older than bollard's default) on first use,
//! and again after a failure. Calls that need the engine get [`Error::EngineUnavailable`] (503)
//! while it is down, and `/readyz` reports it.

pub mod base_image;
pub mod builds;
pub mod dockerfile;
pub mod egress;
pub mod instances;
pub mod jobs;
pub mod logs;
pub mod networks;
pub mod registry_sync;
pub mod supervisor;
pub mod usage;

pub use base_image::{BASE_IMAGE, busybox_rootfs_tar, find_static_busybox};

use crate::core::error::{Error, Result};
use crate::core::id::Id;
use bollard::Docker;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::Mutex;

/// How long a connection attempt or a ping may take before the engine counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// bollard's per-request timeout, in seconds: generous, builds and pulls stream for long.
const REQUEST_TIMEOUT_SECS: u64 = 3600;

/// What went wrong with a call to the engine (see [`engine_error`], which turns it into the
/// domain error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// No answer: no socket, the connection refused or cut, no answer in time.
    Unreachable,
    /// The engine refused the request (409: it conflicts with what the engine holds).
    Conflict,
    /// The engine could not carry out the request because of the request or the image: a 4xx
    /// answer, or a failure whose message blames the image, a layer, a reference or an option.
    Request,
    /// The engine answered, and failed on its side: its disk full, an internal error.
    Engine,
    /// The call could not be made (a request this side could not build).
    Client,
}

/// Failures the engine reports that are the machine's, whatever else the message says (a layer
/// that cannot be written on a full disk is not the layer's fault).
const MACHINE_FAULTS: &[&str] = &[
    "no space left on device",
    "disk quota exceeded",
    "read-only file system",
    "cannot allocate memory",
    "out of memory",
    "too many open files",
    "input/output error",
];

/// Failures the engine reports that are the request's or its image's: a broken or missing image
/// or layer, a reference or an option it cannot take.
const REQUEST_FAULTS: &[&str] = &[
    "unexpected eof",
    "error processing tar file",
    "archive/tar",
    "invalid tar header",
    "gzip: invalid",
    "flate: corrupt",
    "zlib: invalid",
    "invalid checksum",
    "layer does not exist",
    "failed to register layer",
    "no such image",
    "manifest unknown",
    "invalid reference format",
    "invalid image",
    "dockerfile parse error",
    "executable file not found",
    "is supported only",
    "not supported",
    "invalid argument",
    "invalid option",
    "invalid value",
];

/// Classifies an engine failure; see [`engine_error`] for the rule.
pub fn classify(e: &bollard::errors::Error) -> Fault {
    use bollard::errors::Error as E;
    let by_message = |message: &str| {
        let message = message.to_lowercase();
        if MACHINE_FAULTS.iter().any(|m| message.contains(m)) {
            Fault::Engine
        } else if REQUEST_FAULTS.iter().any(|m| message.contains(m)) {
            Fault::Request
        } else {
            Fault::Engine
        }
    };
    match e {
        E::DockerResponseServerError {
            status_code: 409, ..
        } => Fault::Conflict,
        E::DockerResponseServerError { status_code, .. } if *status_code < 500 => Fault::Request,
        E::DockerResponseServerError { message, .. } => by_message(message),
        E::DockerStreamError { error } => by_message(error),
        E::DockerContainerWaitError { error, .. } => by_message(error),
        E::IOError { .. }
        | E::HyperResponseError { .. }
        | E::HyperLegacyError { .. }
        | E::RequestTimeoutError
        | E::SocketNotFoundError(_)
        | E::UnsupportedURISchemeError { .. }
        | E::APIVersionParseError {} => Fault::Unreachable,
        E::JsonDataError { .. }
        | E::JsonSerdeError { .. }
        | E::StrParseError { .. }
        | E::HttpHeaderNotFoundError(_)
        | E::HttpHeaderToStrError { .. }
        | E::Base64DecodeError { .. } => Fault::Engine,
        _ => Fault::Client,
    }
}

/// The message of an engine failure: the engine's own words when it answered.
fn engine_message(e: &bollard::errors::Error) -> String {
    use bollard::errors::Error as E;
    match e {
        E::DockerResponseServerError { message, .. } => message.clone(),
        E::DockerStreamError { error } | E::DockerContainerWaitError { error, .. } => error.clone(),
        other => other.to_string(),
    }
}

/// The one mapping of the engine's failures to the domain error, `what` saying what was being
/// done. The rule:
///
/// | the engine | error | status |
/// | --- | --- | --- |
/// | did not answer: no socket, connection refused or cut, a timeout | `EngineUnavailable` | 503 |
/// | answered 409 | `Conflict`, with its message | 409 |
/// | answered another 4xx (a 404 too: what is missing is something the request referred to, e.g. an image; callers expecting a 404 check [`is_not_found`] first) | `BadRequest`, with its message | 400 |
/// | failed (a 5xx, or an error in a streamed answer) saying the machine is at fault: disk full, out of memory, a read-only or failing file system ([`MACHINE_FAULTS`]) | `EngineFailed`, with its message | 502 |
/// | failed saying the request or its image is: a truncated or corrupt layer or archive, no such image, an invalid reference, an option it does not support ([`REQUEST_FAULTS`]) | `BadRequest`, with its message | 400 |
/// | failed otherwise, or answered what cannot be read | `EngineFailed`, with its message | 502 |
///
/// A call this side could not even build (a bug) is `Internal` (500).
pub fn engine_error(what: &str, e: bollard::errors::Error) -> Error {
    let message = engine_message(&e);
    match classify(&e) {
        Fault::Unreachable => Error::EngineUnavailable(format!("{what}: {e}")),
        Fault::Conflict => Error::conflict(format!("{what}: {message}")),
        Fault::Request => Error::bad_request(format!("{what}: {message}")),
        Fault::Engine => Error::EngineFailed(format!("{what}: {message}")),
        Fault::Client => Error::internal(format!("{what}: {e}")),
    }
}

/// Whether the engine answered 404 (no such container, image, network or volume).
pub fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// The labels on everything the server creates in the engine: `dtaas.managed`, the
/// installation, and what the caller adds (`dtaas.kind`, `dtaas.job`, ...).
pub fn labels(installation: &Id, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.insert("dtaas.managed".into(), "true".into());
    labels.insert("dtaas.installation".into(), installation.to_string());
    labels
}

/// Tags the base image also answers to, so that Dockerfiles written for Docker Hub (kabuto's
/// `FROM busybox`) build on a machine that cannot pull. Added only where nothing has the tag.
pub const BASE_ALIASES: &[&str] = &["busybox:latest"];

pub struct Engine {
    host: String,
    client: Mutex<Option<Docker>>,
}

/// What `/readyz` and `/v1/engine` report.
#[derive(Debug, Clone, Serialize)]
pub struct EngineInfo {
    pub version: String,
    pub api_version: String,
    pub os: String,
    pub arch: String,
}

impl Engine {
    pub fn new(host: &str) -> Engine {
        Engine {
            host: host.to_owned(),
            client: Mutex::new(None),
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    fn connect_raw(&self) -> Result<Docker> {
        let version = bollard::API_DEFAULT_VERSION;
        let result = if self.host.starts_with("unix://") {
            Docker::connect_with_unix(&self.host, REQUEST_TIMEOUT_SECS, version)
        } else {
            Docker::connect_with_http(&self.host, REQUEST_TIMEOUT_SECS, version)
        };
        result.map_err(|e| Error::EngineUnavailable(format!("{} ({e})", self.host)))
    }

    /// A client speaking the engine's API version. Cheap once connected.
    pub async fn client(&self) -> Result<Docker> {
        let mut slot = self.client.lock().await;
        if let Some(docker) = slot.as_ref() {
            return Ok(docker.clone());
        }
        let docker = self.connect_raw()?;
        let docker = tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version())
            .await
            .map_err(|_| Error::EngineUnavailable(format!("{} did not answer in time", self.host)))?
            .map_err(|e| Error::EngineUnavailable(format!("{}: {e}", self.host)))?;
        *slot = Some(docker.clone());
        Ok(docker)
    }

    /// Forgets the client so that the next call reconnects and renegotiates (after the engine
    /// was restarted, possibly as another version).
    pub async fn reset(&self) {
        *self.client.lock().await = None;
    }

    /// Asks the engine who it is; the readiness probe.
    pub async fn info(&self) -> Result<EngineInfo> {
        let docker = self.client().await?;
        let version = match tokio::time::timeout(CONNECT_TIMEOUT, docker.version()).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                self.reset().await;
                return Err(Error::EngineUnavailable(format!("{}: {e}", self.host)));
            }
            Err(_) => {
                self.reset().await;
                return Err(Error::EngineUnavailable(format!(
                    "{} did not answer in time",
                    self.host
                )));
            }
        };
        Ok(EngineInfo {
            version: version.version.unwrap_or_default(),
            api_version: version.api_version.unwrap_or_default(),
            os: version.os.unwrap_or_default(),
            arch: version.arch.unwrap_or_default(),
        })
    }

    /// At start-up: make the base image and its aliases when the engine is there and a static
    /// busybox is installed; log, and carry on, otherwise.
    pub async fn provide_base_image(&self) {
        if find_static_busybox().is_none() {
            tracing::info!("no static busybox here: not providing the {BASE_IMAGE} base image");
            return;
        }
        match self.ensure_base_image(BASE_IMAGE).await {
            Ok(()) => tracing::debug!("base image {BASE_IMAGE} present"),
            Err(e) => tracing::warn!("cannot provide the base image {BASE_IMAGE}: {e}"),
        }
    }

    /// Makes sure `tag` names a runnable image with a busybox userland, importing one from the
    /// machine's static busybox (Debian's `busybox-static`) when it is missing. No image can be
    /// pulled here; this is the base the examples and tests build on.
    pub async fn ensure_base_image(&self, tag: &str) -> Result<()> {
        use bollard::query_parameters::CreateImageOptionsBuilder;
        use futures_util::StreamExt;

        let docker = self.client().await?;
        if docker.inspect_image(tag).await.is_ok() {
            return self.add_aliases(&docker, tag).await;
        }
        let busybox = find_static_busybox().ok_or_else(|| {
            Error::internal(
                "no statically linked busybox found (install Debian's busybox-static package)",
            )
        })?;
        let tar = tokio::task::spawn_blocking(move || busybox_rootfs_tar(&busybox))
            .await
            .map_err(Error::internal)??;
        let (repo, version) = tag.rsplit_once(':').unwrap_or((tag, "latest"));
        let options = CreateImageOptionsBuilder::new()
            .from_src("-")
            .repo(repo)
            .tag(version)
            .changes(vec![
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                "CMD [\"sh\"]".into(),
            ])
            .build();
        let mut progress =
            docker.create_image(Some(options), Some(bollard::body_full(tar.into())), None);
        while let Some(step) = progress.next().await {
            step.map_err(|e| engine_error(&format!("importing {tag}"), e))?;
        }
        self.add_aliases(&docker, tag).await
    }

    /// Runs a short command in a container of the base image (no network) with `binds`, waits
    /// for it, removes it, and returns its exit code and output. For chores the server cannot
    /// do itself: removing files a container's root left, measuring a volume.
    pub async fn run_utility(
        &self,
        labels: HashMap<String, String>,
        cmd: &[&str],
        binds: Vec<String>,
    ) -> Result<(i64, String)> {
        use bollard::models::{ContainerCreateBody, HostConfig};
        use bollard::query_parameters::{
            CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
        };
        use futures_util::StreamExt;

        let docker = self.client().await?;
        self.ensure_base_image(BASE_IMAGE).await?;
        let name = format!("dtaas-util-{}", Id::new());
        let body = ContainerCreateBody {
            image: Some(BASE_IMAGE.to_owned()),
            cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
            labels: Some(labels),
            host_config: Some(HostConfig {
                binds: Some(binds),
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let failed = |what: &str, e: bollard::errors::Error| {
            engine_error(&format!("{what} a utility container"), e)
        };
        docker
            .create_container(
                Some(CreateContainerOptionsBuilder::new().name(&name).build()),
                body,
            )
            .await
            .map_err(|e| failed("creating", e))?;
        let result = async {
            docker
                .start_container(&name, None)
                .await
                .map_err(|e| failed("starting", e))?;
            let mut code = -1;
            let mut wait = docker.wait_container(&name, None);
            while let Some(item) = wait.next().await {
                match item {
                    Ok(r) => code = r.status_code,
                    Err(bollard::errors::Error::DockerContainerWaitError { code: c, .. }) => {
                        code = c
                    }
                    Err(_) => {}
                }
            }
            let mut output = String::new();
            let options = LogsOptionsBuilder::new().stdout(true).stderr(true).build();
            let mut logs = docker.logs(&name, Some(options));
            while let Some(Ok(chunk)) = logs.next().await {
                output.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
            }
            Ok::<_, Error>((code, output))
        }
        .await;
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        let _ = docker.remove_container(&name, Some(options)).await;
        result
    }

    async fn add_aliases(&self, docker: &Docker, tag: &str) -> Result<()> {
        use bollard::query_parameters::TagImageOptionsBuilder;
        for alias in BASE_ALIASES {
            if docker.inspect_image(alias).await.is_ok() {
                continue;
            }
            let (repo, version) = alias.rsplit_once(':').unwrap_or((alias, "latest"));
            let options = TagImageOptionsBuilder::new()
                .repo(repo)
                .tag(version)
                .build();
            docker
                .tag_image(tag, Some(options))
                .await
                .map_err(|e| engine_error(&format!("tagging {tag} as {alias}"), e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::errors::Error as E;

    fn answered(status_code: u16, message: &str) -> E {
        E::DockerResponseServerError {
            status_code,
            message: message.to_owned(),
        }
    }

    #[test]
    fn a_refused_request_is_the_callers_with_the_engines_message() {
        let e = engine_error(
            "creating the container",
            answered(400, "invalid reference format"),
        );
        assert!(
            matches!(&e, Error::BadRequest(m) if m == "creating the container: invalid reference format"),
            "{e:?}"
        );
        let e = engine_error("creating", answered(404, "No such image: x:1"));
        assert!(
            matches!(&e, Error::BadRequest(m) if m.ends_with("No such image: x:1")),
            "{e:?}"
        );
        let e = engine_error(
            "removing the network",
            answered(409, "network has active endpoints"),
        );
        assert!(
            matches!(&e, Error::Conflict(m) if m.ends_with("network has active endpoints")),
            "{e:?}"
        );
    }

    #[test]
    fn a_failure_about_the_image_or_an_option_is_the_callers() {
        for (status, message) in [
            (
                500,
                "Error processing tar file(exit status 1): unexpected EOF",
            ),
            (
                500,
                "failed to register layer: archive/tar: invalid tar header",
            ),
            (
                500,
                "--storage-opt is supported only for overlay over xfs with 'pquota' mount option",
            ),
            (500, "layer does not exist"),
            (
                500,
                "OCI runtime create failed: exec: \"/x\": executable file not found in $PATH",
            ),
        ] {
            assert_eq!(
                classify(&answered(status, message)),
                Fault::Request,
                "{message}"
            );
            let e = engine_error("loading x", answered(status, message));
            assert!(
                matches!(&e, Error::BadRequest(m) if m == &format!("loading x: {message}")),
                "{e:?}"
            );
        }
        // The same in a streamed answer (`docker load` reports a broken layer this way).
        let e = engine_error(
            "loading dtaas/registry/x:1",
            E::DockerStreamError {
                error: "Error processing tar file(exit status 1): unexpected EOF".into(),
            },
        );
        assert_eq!(
            e.to_string(),
            "loading dtaas/registry/x:1: Error processing tar file(exit status 1): unexpected EOF"
        );
        assert_eq!(crate::core::error::Error::code(&e), "bad_request");
    }

    #[test]
    fn a_failure_of_the_engine_itself_is_5xx_but_not_unavailable() {
        for message in [
            "write /var/lib/docker/tmp/x: no space left on device",
            "failed to register layer: Error processing tar file(exit status 1): write /x: no space left on device",
            "Internal Server Error",
            "context deadline exceeded",
        ] {
            assert_eq!(
                classify(&answered(500, message)),
                Fault::Engine,
                "{message}"
            );
            let e = engine_error("loading x", answered(500, message));
            assert!(
                matches!(&e, Error::EngineFailed(m) if m.ends_with(message)),
                "{e:?}"
            );
            assert_eq!(e.code(), "engine_failed");
        }
        let e = engine_error(
            "exporting x",
            E::DockerStreamError {
                error: "open /var/lib/docker/x: input/output error".into(),
            },
        );
        assert!(matches!(e, Error::EngineFailed(_)), "{e:?}");
        let unreadable = E::JsonDataError {
            message: "{\"Id\": 5".into(),
            column: 8,
        };
        assert_eq!(classify(&unreadable), Fault::Engine);
    }

    #[test]
    fn no_answer_is_unavailable() {
        for e in [
            E::IOError {
                err: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
            },
            E::IOError {
                err: std::io::Error::from(std::io::ErrorKind::NotFound),
            },
            E::RequestTimeoutError,
            E::SocketNotFoundError("/var/run/docker.sock".into()),
        ] {
            let shown = e.to_string();
            let mapped = engine_error("pinging", e);
            assert!(
                matches!(&mapped, Error::EngineUnavailable(m) if m.contains(&shown)),
                "{mapped:?}"
            );
        }
        let e = engine_error(
            "x",
            E::UnsupportedURISchemeError {
                uri: "ftp://x".into(),
            },
        );
        assert!(matches!(e, Error::EngineUnavailable(_)));
    }

    /// A fake engine on a unix socket answering every connection with `answer` (or closing it
    /// at once when empty); returns bollard's error for a ping.
    async fn ping_through(answer: &'static str) -> E {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("engine.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                if answer.is_empty() {
                    drop(stream);
                    continue;
                }
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        });
        let host = format!("unix://{}", socket.display());
        let docker = Docker::connect_with_unix(&host, 5, bollard::API_DEFAULT_VERSION).unwrap();
        let e = docker.ping().await.unwrap_err();
        drop(dir);
        e
    }

    #[tokio::test]
    async fn bollards_own_errors_are_classified_the_same() {
        // No socket (bollard notices when connecting, or else when calling).
        let e = match Docker::connect_with_unix(
            "unix:///nonexistent/docker.sock",
            5,
            bollard::API_DEFAULT_VERSION,
        ) {
            Err(e) => e,
            Ok(docker) => docker.ping().await.unwrap_err(),
        };
        assert_eq!(classify(&e), Fault::Unreachable, "{e:?}");
        // A socket nothing listens on.
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("dead.sock");
        drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
        let host = format!("unix://{}", socket.display());
        let docker = Docker::connect_with_unix(&host, 5, bollard::API_DEFAULT_VERSION).unwrap();
        let e = docker.ping().await.unwrap_err();
        assert_eq!(classify(&e), Fault::Unreachable, "{e:?}");
        assert!(matches!(
            engine_error("pinging", e),
            Error::EngineUnavailable(_)
        ));
        // The engine hangs up without answering.
        let e = ping_through("").await;
        assert_eq!(classify(&e), Fault::Unreachable, "{e:?}");
        // The engine answers a failure.
        let body = r#"{"message":"mkdir /var/lib/docker/x: no space left on device"}"#;
        let answer: &'static str = Box::leak(
            format!(
                "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_boxed_str(),
        );
        let e = ping_through(answer).await;
        assert!(
            matches!(
                &e,
                E::DockerResponseServerError {
                    status_code: 500,
                    ..
                }
            ),
            "{e:?}"
        );
        let mapped = engine_error("pinging", e);
        assert_eq!(
            mapped.to_string(),
            "the Docker engine failed: pinging: mkdir /var/lib/docker/x: no space left on device"
        );
    }
}
