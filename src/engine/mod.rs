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

/// The one mapping of the engine's answers to the domain error: a request the engine refuses
/// (4xx: a bad image reference, an option it does not take) is the caller's problem, with the
/// engine's message; anything else means the engine cannot serve (503).
pub fn engine_error(what: &str, e: bollard::errors::Error) -> Error {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } if status_code < 500 => Error::bad_request(format!("{what}: {message}")),
        other => Error::EngineUnavailable(format!("{what}: {other}")),
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
            step.map_err(|e| Error::internal(format!("importing {tag}: {e}")))?;
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
            Error::EngineUnavailable(format!("{what} a utility container: {e}"))
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
                .map_err(|e| Error::internal(format!("tagging {tag} as {alias}: {e}")))?;
        }
        Ok(())
    }
}
