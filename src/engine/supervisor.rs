//! The one container supervisor, for kabuto jobs and servable instances alike.
//!
//! A container's life as the appliance sees it: [`Supervisor::create`] (a leftover of a run the
//! server did not see to its end is replaced), [`Supervisor::start`], then side by side
//! [`Supervisor::follow_logs`] (its output into the log store, resumable from the owner's
//! cursor), [`Supervisor::sample_usage`] (CPU, memory, I/O) and [`Supervisor::wait`] (its exit;
//! a kill token kills it), and at the end [`Supervisor::stop`] (SIGTERM, SIGKILL after a
//! timeout) or [`Supervisor::remove`]. After a restart, [`Supervisor::remove_orphans`] removes
//! the labelled containers no record owns. Engine errors go through the one mapping,
//! [`super::engine_error`].

use super::logs::follow_logs;
use super::usage::{Probe, Usage};
use super::{Engine, engine_error, is_not_found};
use crate::core::config::ContainersConfig;
use crate::core::error::Result;
use crate::core::id::Id;
use crate::core::store::Store;
use crate::core::tasks::Tasks;
use crate::domains::logs::{LogCursor, LogHub, LogOwner};
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, KillContainerOptions,
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How a container's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// Its exit code; `None` when the container is gone.
    pub code: Option<i64>,
    /// The supervisor killed it (the kill token fired).
    pub killed: bool,
}

/// The handles the supervisor works with (not the application state).
pub struct Supervisor {
    /// The capabilities every container keeps (`containers.capabilities`); the rest dropped.
    capabilities: Vec<String>,
    engine: Arc<Engine>,
    store: Store,
    hub: Arc<LogHub>,
    installation: Id,
    tasks: Tasks,
    data_dir: PathBuf,
    /// This run of the server: labels its utility containers, so that the next run knows
    /// which ones a crash left.
    run: Id,
}

/// The `dtaas.kind` of utility containers (short chores: measuring a volume, removing files).
const UTILITY_KINDS: [&str; 2] = ["measure", "cleanup"];

/// The label naming the server run that made a utility container.
const RUN_LABEL: &str = "dtaas.run";

impl Supervisor {
    pub fn new(
        engine: Arc<Engine>,
        store: Store,
        hub: Arc<LogHub>,
        installation: Id,
        tasks: Tasks,
        data_dir: PathBuf,
        containers: &ContainersConfig,
    ) -> Supervisor {
        Supervisor {
            capabilities: containers.capabilities.clone(),
            engine,
            store,
            hub,
            installation,
            tasks,
            data_dir,
            run: Id::new(),
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// A handle on the engine, for a service that keeps one.
    pub fn engine_handle(&self) -> Arc<Engine> {
        self.engine.clone()
    }

    /// The engine's client, or 503 while it is down.
    pub async fn docker(&self) -> Result<Docker> {
        self.engine.client().await
    }

    /// Waits until the engine answers (work stays queued while it is down).
    pub async fn wait_for_engine(&self, who: &str) -> Docker {
        let mut delay = Duration::from_millis(500);
        loop {
            match self.engine.client().await {
                Ok(d) => return d,
                Err(e) => {
                    tracing::warn!("{who} wait for the engine: {e}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// The labels of a container of this installation: `dtaas.kind` and `extra`.
    pub fn labels(&self, kind: &str, extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut all = vec![("dtaas.kind", kind)];
        all.extend_from_slice(extra);
        super::labels(&self.installation, &all)
    }

    /// The labels of a utility container of `kind` (one of [`UTILITY_KINDS`]), made by this
    /// run of the server.
    pub fn utility_labels(&self, kind: &str) -> HashMap<String, String> {
        let run = self.run.to_string();
        self.labels(kind, &[(RUN_LABEL, &run)])
    }

    /// What every job and servable container gets, whatever its image asks for: no privileges,
    /// `no-new-privileges` (setuid binaries gain nothing), every Linux capability dropped but
    /// `containers.capabilities`.
    pub fn harden(&self, host: &mut HostConfig) {
        host.privileged = Some(false);
        host.security_opt = Some(vec!["no-new-privileges".into()]);
        host.cap_drop = Some(vec!["ALL".into()]);
        host.cap_add = Some(self.capabilities.clone());
    }

    /// Creates a container. One of the same name, left by a run the server did not see to its
    /// end, is replaced. An engine refusing `body` is the caller's [`Error::BadRequest`].
    pub async fn create(
        &self,
        docker: &Docker,
        name: &str,
        body: ContainerCreateBody,
    ) -> Result<()> {
        let options = CreateContainerOptionsBuilder::new().name(name).build();
        match docker
            .create_container(Some(options.clone()), body.clone())
            .await
        {
            Ok(_) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => {
                self.remove(docker, name).await;
                docker
                    .create_container(Some(options), body)
                    .await
                    .map(|_| ())
                    .map_err(|e| engine_error("creating the container", e))
            }
            Err(e) => Err(engine_error("creating the container", e)),
        }
    }

    pub async fn start(&self, docker: &Docker, name: &str) -> Result<()> {
        docker
            .start_container(name, None)
            .await
            .map_err(|e| engine_error("starting the container", e))
    }

    /// Whether the container exists and its command has started at some point (a run to
    /// re-attach to after a restart, rather than one to create again).
    pub async fn has_started(&self, docker: &Docker, name: &str) -> Option<bool> {
        let inspect = docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
            .ok()?;
        Some(inspect.state.as_ref().is_some_and(|s| {
            s.started_at
                .as_deref()
                .is_some_and(|t| !t.starts_with("0001-01-01"))
        }))
    }

    /// Whether the container exists and runs now.
    pub async fn is_running(&self, docker: &Docker, name: &str) -> Option<bool> {
        let inspect = docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
            .ok()?;
        Some(inspect.state.and_then(|s| s.running).unwrap_or(false))
    }

    /// The container's address on `network`.
    pub async fn ipv4(&self, docker: &Docker, name: &str, network: &str) -> Option<String> {
        let inspect = docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
            .ok()?;
        inspect
            .network_settings?
            .networks?
            .get(network)?
            .ip_address
            .clone()
            .filter(|ip| !ip.is_empty())
    }

    /// Follows the container's output into the log store under `owner` (a job or an instance)
    /// until the container ends; followers are woken as lines arrive. At most `max_lines` lines
    /// are kept, and the log hub's bounds apply (`logs.max_line_bytes`,
    /// `logs.max_bytes_per_run`).
    pub fn follow_logs<O: LogOwner>(
        &self,
        docker: &Docker,
        name: &str,
        owner: Id,
        cursor: LogCursor,
        max_lines: u64,
    ) -> JoinHandle<()> {
        tokio::spawn(follow_logs::<O>(
            self.store.clone(),
            self.hub.clone(),
            docker.clone(),
            name.to_owned(),
            owner,
            cursor,
            self.hub.limits(max_lines),
        ))
    }

    /// Samples the container's usage, starting from `from`, until `stop` fires; `save` is
    /// called now and then with the running total (so that a restart keeps it). The task
    /// returns the total.
    pub fn sample_usage(
        &self,
        docker: &Docker,
        name: &str,
        from: Usage,
        stop: CancellationToken,
        save_every: Duration,
        save: impl Fn(Usage) + Send + 'static,
    ) -> JoinHandle<Usage> {
        let (docker, name) = (docker.clone(), name.to_owned());
        tokio::spawn(async move {
            let mut usage = from;
            let probe = Probe::locate(&docker, &name).await;
            let mut saved = tokio::time::Instant::now();
            loop {
                if let Some(sample) = probe.sample().await {
                    usage.merge(sample);
                }
                if saved.elapsed() >= save_every {
                    saved = tokio::time::Instant::now();
                    save(usage);
                }
                tokio::select! {
                    _ = stop.cancelled() => return usage,
                    _ = tokio::time::sleep(probe.period()) => {}
                }
            }
        })
    }

    /// Waits until the container stops. When `kill` fires first, the container is killed
    /// (SIGKILL) and the exit says so. A broken wait connection is asked again; a container that
    /// is gone is an exit without a code.
    pub async fn wait(
        &self,
        docker: &Docker,
        name: &str,
        kill: Option<&CancellationToken>,
    ) -> Result<Exit> {
        let never = CancellationToken::new();
        let kill = kill.unwrap_or(&never);
        let mut killed = false;
        loop {
            let mut wait = docker.wait_container(name, None);
            let ended = loop {
                tokio::select! {
                    item = wait.next() => break item,
                    _ = kill.cancelled(), if !killed => {
                        killed = true;
                        if let Err(e) = docker.kill_container(name, None::<KillContainerOptions>).await {
                            tracing::warn!(container = name, "kill: {e}");
                        }
                    }
                }
            };
            match ended {
                Some(Ok(r)) => {
                    return Ok(Exit {
                        code: Some(r.status_code),
                        killed,
                    });
                }
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                    return Ok(Exit {
                        code: Some(code),
                        killed,
                    });
                }
                // The wait connection broke: ask the engine how the container is.
                Some(Err(_)) | None => {
                    match docker
                        .inspect_container(name, None::<InspectContainerOptions>)
                        .await
                    {
                        Ok(inspect) => {
                            let state = inspect.state.unwrap_or_default();
                            if state.running == Some(true) {
                                continue;
                            }
                            return Ok(Exit {
                                code: state.exit_code,
                                killed,
                            });
                        }
                        Err(e) if is_not_found(&e) => return Ok(Exit { code: None, killed }),
                        Err(e) => return Err(engine_error("inspecting the container", e)),
                    }
                }
            }
        }
    }

    /// Stops the container: SIGTERM, then SIGKILL after `timeout_secs`. One already stopped or
    /// gone is fine.
    pub async fn stop(&self, docker: &Docker, name: &str, timeout_secs: u32) -> Result<()> {
        let options = StopContainerOptionsBuilder::new()
            .t(i32::try_from(timeout_secs).unwrap_or(i32::MAX))
            .build();
        match docker.stop_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304 | 404,
                ..
            }) => Ok(()),
            Err(e) => Err(engine_error("stopping the container", e)),
        }
    }

    /// Removes a container and its anonymous volumes; a missing one is fine.
    pub async fn remove(&self, docker: &Docker, name: &str) {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match docker.remove_container(name, Some(options)).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => tracing::warn!(container = name, "cannot remove: {e}"),
        }
    }

    /// Removes this installation's containers of `kind` (the `dtaas.kind` label) whose names
    /// `keep` refuses: what a crash left behind that no record owns any more.
    pub async fn remove_orphans(&self, kind: &str, keep: impl Fn(&str) -> bool) -> Result<()> {
        let docker = self.docker().await?;
        let containers = self
            .installation_containers(&docker, &[format!("dtaas.kind={kind}")], None)
            .await?;
        for c in containers {
            let name = c
                .names
                .unwrap_or_default()
                .first()
                .map(|n| n.trim_start_matches('/').to_owned())
                .unwrap_or_default();
            if keep(&name) {
                continue;
            }
            tracing::info!(container = %name, kind, "removing a container no record owns");
            self.remove(&docker, c.id.as_deref().unwrap_or(&name)).await;
        }
        Ok(())
    }

    /// Removes the utility containers of this installation that an earlier run of the server
    /// made (a crash stopped it before it removed them): they may hold a volume.
    pub async fn remove_stale_utilities(&self) -> Result<()> {
        let docker = self.docker().await?;
        let containers = self.installation_containers(&docker, &[], None).await?;
        let run = self.run.to_string();
        for c in containers {
            let labels = c.labels.unwrap_or_default();
            let utility = labels
                .get("dtaas.kind")
                .is_some_and(|k| UTILITY_KINDS.contains(&k.as_str()));
            if !utility || labels.get(RUN_LABEL) == Some(&run) {
                continue;
            }
            let Some(id) = c.id else { continue };
            tracing::info!(container = %id, "removing a utility container an earlier run left");
            self.remove(&docker, &id).await;
        }
        Ok(())
    }

    /// Removes this installation's containers that use the volume `name` (whatever their
    /// state): what keeps a volume that is to go in use.
    pub async fn remove_users_of_volume(&self, docker: &Docker, name: &str) -> Result<()> {
        let containers = self
            .installation_containers(docker, &[], Some(name))
            .await?;
        for c in containers {
            let Some(id) = c.id else { continue };
            tracing::info!(container = %id, volume = name, "removing a container that holds a volume to remove");
            self.remove(docker, &id).await;
        }
        Ok(())
    }

    /// Every container of this installation (in any state), with these labels too and, when
    /// given, using this volume.
    async fn installation_containers(
        &self,
        docker: &Docker,
        labels: &[String],
        volume: Option<&str>,
    ) -> Result<Vec<bollard::models::ContainerSummary>> {
        let mut label = vec![format!("dtaas.installation={}", self.installation)];
        label.extend(labels.iter().cloned());
        let mut filters: HashMap<String, Vec<String>> =
            HashMap::from([("label".to_owned(), label)]);
        if let Some(volume) = volume {
            filters.insert("volume".to_owned(), vec![volume.to_owned()]);
        }
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        docker
            .list_containers(Some(options))
            .await
            .map_err(|e| engine_error("listing containers", e))
    }

    /// Removes a directory tree of the data directory that containers wrote to. A container
    /// running as root may have left directories a non-root server cannot empty: those are moved
    /// aside and removed by a short container of the base image.
    pub async fn remove_tree(&self, path: &Path) {
        let target = path.to_path_buf();
        let removed = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&target)).await;
        let error = match removed {
            Ok(Ok(())) => return,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => return,
            Ok(Err(e)) => e,
            Err(e) => {
                tracing::warn!("removing {}: {e}", path.display());
                return;
            }
        };
        let trash = self
            .data_dir
            .join("tmp")
            .join(format!("trash-{}", Id::new()));
        if let Err(e) = tokio::fs::rename(path, &trash).await {
            tracing::warn!(
                "cannot remove {} ({error}) nor move it aside: {e}",
                path.display()
            );
            return;
        }
        tracing::info!(
            "{} holds files of another user ({error}): removing them with a container",
            path.display()
        );
        let engine = self.engine.clone();
        let labels = self.utility_labels("cleanup");
        self.tasks.spawn_to_end(async move {
            let binds = vec![format!("{}:/trash", trash.display())];
            match engine
                .run_utility(labels, &["rm", "-rf", "/trash"], binds)
                .await
            {
                // The mount point itself is ours.
                Ok(_) => {
                    let _ = tokio::fs::remove_dir(&trash).await;
                }
                Err(e) => tracing::warn!("cannot remove {}: {e}", trash.display()),
            }
        });
    }

    /// Runs `work` until it ends or the server shuts down.
    pub fn spawn(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(work);
    }

    pub fn tasks(&self) -> &Tasks {
        &self.tasks
    }

    pub fn hub(&self) -> &LogHub {
        &self.hub
    }
}
