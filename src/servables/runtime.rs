//! Servable instances as containers.
//!
//! Every instance is one labelled container (`dtaas-inst-<instance id>`) on the servable network,
//! a Docker bridge network the servables of this installation share, so that they reach each
//! other at their `ipv4_address`. The appliance is reachable from that network at the network's
//! gateway address: the server listens there too (on the main listener's port when it is free),
//! and containers learn that URL from `DTAAS_URL`.
//!
//! Inside a container: `/run/dtaas/config.json` (the servable's config), the instance's API key
//! at `/run/secrets/dtaas/api-key`, and the `DTAAS_*` environment (see [`environment`]). Each
//! start makes a fresh key; the old one is revoked when an instance ends.
//!
//! Supervision: the database is the truth. A supervisor follows an instance's log, waits for its
//! exit and records it: a pipeline runs once (`exited` or `failed`); a daemon or HTTP type that
//! fails is started again after a backoff doubling up to `restart_backoff_max_secs`; a stop asked
//! for ends in `stopped`. After a server crash [`recover`] re-attaches to running containers,
//! records how the others ended, and removes containers no instance owns.

use super::{
    INSTANCES, Instance, InstanceState, Output, Prototype, SERVABLES, Servable, ServableType,
    delegation, get_instance, get_servable, instance_for, servable_for, update_instance,
    update_servable,
};
use crate::accounts;
use crate::authz::{self, Capability, Caps, Kind, ObjectMeta, Principal, PrincipalKind};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::logs::follow_logs;
use crate::server::App;
use crate::store::{get_record, put_record};
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, StopContainerOptionsBuilder,
};
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Mutex as AsyncMutex;
use tokio_util::sync::CancellationToken;

/// The port HTTP-type servables listen on.
pub const HTTP_PORT: u16 = 8080;
/// Where the config and the key appear in the container.
pub const CONFIG_DIR: &str = "/run/dtaas";
pub const SECRETS_DIR: &str = "/run/secrets/dtaas";

/// The appliance as the servable network sees it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub network: String,
    pub gateway: IpAddr,
    /// `DTAAS_URL`.
    pub url: String,
}

/// The servable runtime's shared state (one per server).
#[derive(Default)]
pub struct Runtime {
    endpoint: AsyncMutex<Option<Endpoint>>,
    /// Instances with a supervisor, and the token that ends its backoff waits.
    supervised: Mutex<HashMap<Id, CancellationToken>>,
}

impl Runtime {
    pub fn is_supervising(&self, instance: Id) -> bool {
        self.lock().contains_key(&instance)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Id, CancellationToken>> {
        self.supervised
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn engine_error(what: &str, e: bollard::errors::Error) -> Error {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } if status_code < 500 => Error::bad_request(format!("{what}: {message}")),
        other => Error::EngineUnavailable(format!("{what}: {other}")),
    }
}

fn network_name(app: &App) -> String {
    if app.config.servables.network.is_empty() {
        format!("dtaas-{}", app.installation)
    } else {
        app.config.servables.network.clone()
    }
}

/// The servable network and the appliance's URL on it, made on first use: the network is
/// created when missing and the server starts listening on its gateway.
pub async fn endpoint(app: &App) -> Result<Endpoint> {
    let mut slot = app.servables.endpoint.lock().await;
    if let Some(e) = slot.as_ref() {
        return Ok(e.clone());
    }
    let docker = app.engine.client().await?;
    let network = network_name(app);
    let inspect = match docker.inspect_network(&network, None).await {
        Ok(n) => n,
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {
            let request = NetworkCreateRequest {
                name: network.clone(),
                driver: Some("bridge".into()),
                labels: Some(crate::engine::labels(
                    &app.installation,
                    &[("dtaas.kind", "network")],
                )),
                ..Default::default()
            };
            docker
                .create_network(request)
                .await
                .map_err(|e| engine_error("creating the servable network", e))?;
            docker
                .inspect_network(&network, None)
                .await
                .map_err(|e| engine_error("inspecting the servable network", e))?
        }
        Err(e) => return Err(engine_error("inspecting the servable network", e)),
    };
    let gateway = inspect
        .ipam
        .and_then(|i| i.config)
        .into_iter()
        .flatten()
        .filter_map(|c| c.gateway)
        .filter_map(|g| g.parse::<IpAddr>().ok())
        .find(IpAddr::is_ipv4)
        .ok_or_else(|| Error::internal(format!("the network {network} has no IPv4 gateway")))?;
    let url = if app.config.servables.api_url.is_empty() {
        listen_on_gateway(app, gateway).await?
    } else {
        app.config
            .servables
            .api_url
            .trim_end_matches('/')
            .to_owned()
    };
    tracing::info!(%network, %gateway, %url, "servable network ready");
    let endpoint = Endpoint {
        network,
        gateway,
        url,
    };
    *slot = Some(endpoint.clone());
    Ok(endpoint)
}

/// Serves the API on the servable network's gateway address. The port is remembered, so that
/// containers that outlive a restart still find the appliance at their `DTAAS_URL`.
async fn listen_on_gateway(app: &App, gateway: IpAddr) -> Result<String> {
    let main = app.local_addr();
    if main.ip().is_unspecified() {
        // The main listener already answers on every address, the gateway's included.
        return Ok(format!("http://{gateway}:{}", main.port()));
    }
    let remembered = app
        .blocking(|app| crate::accounts::setting(&app.store, "servables.gateway_port"))
        .await?
        .and_then(|p| p.parse::<u16>().ok());
    let mut listener = None;
    for port in remembered.into_iter().chain([main.port(), 0]) {
        if let Ok(l) = tokio::net::TcpListener::bind(SocketAddr::new(gateway, port)).await {
            listener = Some(l);
            break;
        }
    }
    let listener = listener.ok_or_else(|| {
        Error::internal(format!("cannot listen on the servable gateway {gateway}"))
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::internal(format!("the gateway listener: {e}")))?;
    let port = addr.port().to_string();
    app.blocking(move |app| {
        crate::accounts::set_setting(&app.store, "servables.gateway_port", &port)
    })
    .await?;
    let router = crate::api::router(app.clone());
    let shutdown = app.shutdown.clone();
    app.tasks.spawn(async move {
        let served = axum::serve(
            crate::server::no_delay(listener),
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
        if let Err(e) = served {
            tracing::error!("the servable gateway listener failed: {e}");
        }
    });
    Ok(format!("http://{addr}"))
}

fn servable_dir(app: &App, servable: Id) -> PathBuf {
    app.data_dir.join("servables").join(servable.to_string())
}

/// The environment of an instance's container.
fn environment(endpoint: &Endpoint, servable: &Servable, instance: Id) -> Vec<String> {
    vec![
        format!("DTAAS_URL={}", endpoint.url),
        format!("DTAAS_API_URL={}/v1", endpoint.url),
        format!("DTAAS_API_KEY_FILE={SECRETS_DIR}/api-key"),
        format!("DTAAS_CONFIG_FILE={CONFIG_DIR}/config.json"),
        format!("DTAAS_SERVABLE_ID={}", servable.id),
        format!("DTAAS_SERVABLE_NAME={}", servable.name),
        format!("DTAAS_SERVABLE_TYPE={}", servable.kind.as_str()),
        format!("DTAAS_PROTOTYPE_ID={}", servable.prototype),
        format!("DTAAS_INSTANCE_ID={instance}"),
    ]
}

/// Writes the config and a fresh API key for the servable; returns the key's id.
async fn write_identity(app: &App, servable: &Servable, instance: Id) -> Result<Id> {
    let principal = super::servable_principal(&app.store, servable.id)?
        .ok_or_else(|| Error::not_found("Servable not found"))?;
    let now = app.now();
    let name = format!("instance {instance}");
    let key = app
        .blocking(move |app| accounts::create_api_key(&app.store, &principal, &name, None, now))
        .await?;
    let dir = servable_dir(app, servable.id);
    let config = serde_json::to_vec_pretty(&servable.config).map_err(Error::internal)?;
    let secret = key.secret.clone();
    let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let run = dir.join("run");
        let secrets = dir.join("secrets");
        std::fs::create_dir_all(&run)?;
        std::fs::create_dir_all(&secrets)?;
        // Written aside and renamed: the directories are bind-mounted, so a running container
        // sees the new file whole.
        for (target, bytes, mode) in [
            (run.join("config.json"), config, 0o444),
            (secrets.join("api-key"), secret.into_bytes(), 0o444),
        ] {
            let tmp = target.with_extension("tmp");
            std::fs::write(&tmp, &bytes)?;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
            std::fs::rename(&tmp, &target)?;
        }
        Ok(())
    })
    .await
    .map_err(Error::internal)?;
    written.map_err(|e| Error::internal(format!("writing the servable's files: {e}")))?;
    Ok(key.key.id)
}

fn revoke_key(app: &App, key: Option<Id>) {
    if let Some(key) = key
        && let Err(e) = accounts::delete_api_key(&app.store, key)
    {
        tracing::warn!(%key, "cannot revoke an instance key: {e}");
    }
}

/// `POST /v1/servables/{id}/run`: a new instance, returned once its container runs (or failed
/// to start). Needs UPDATE on the servable.
pub async fn run(app: &App, caller: &Principal, servable_id: Id) -> Result<Instance> {
    let servable = servable_for(&app.store, caller, servable_id, Capability::Update)?;
    let prototype = super::get_prototype(&app.store, servable.prototype)?
        .ok_or_else(|| Error::conflict("the servable's prototype was deleted"))?;
    let endpoint = endpoint(app).await?;
    let caller = caller.clone();
    let now = app.now();
    let instance = app
        .blocking(move |app| {
            let txn = app.store.write()?;
            let mut servable: Servable = get_record(&txn.open_table(SERVABLES)?, servable.id)?
                .ok_or_else(|| Error::not_found("Servable not found"))?;
            if let Some(current) = servable.current
                && let Some(i) = get_record::<Instance>(&txn.open_table(INSTANCES)?, current)?
                && i.state.is_active()
            {
                return Err(Error::conflict(format!(
                    "the servable already has a {} instance ({}); stop it first",
                    i.state.as_str(),
                    i.id
                )));
            }
            let instance = Instance {
                id: Id::new(),
                servable: servable.id,
                kind: servable.kind,
                state: InstanceState::Starting,
                exit_code: None,
                ipv4_address: None,
                runner: caller.id,
                api_key: None,
                created: now,
                started: None,
                finished: None,
                restarts: 0,
                error: None,
                outputs: Vec::new(),
                stopping: false,
                log: Default::default(),
            };
            put_record(&txn, INSTANCES, instance.id, &instance)?;
            authz::create_object(
                &txn,
                &ObjectMeta {
                    id: instance.id,
                    kind: Kind::Instance,
                    owner: Some(servable.owner),
                    created: now,
                },
            )?;
            if caller.id != servable.owner {
                authz::grant(&txn, instance.id, caller.id, Caps::ALL)?;
            }
            // The servable may read itself and its instance.
            let see = Caps::of(&[Capability::Discover, Capability::Read]);
            authz::grant(&txn, instance.id, servable.id, see)?;
            authz::grant(&txn, servable.id, servable.id, see)?;
            note_output(&txn, &caller, instance.id, "instance", &servable.name)?;
            delegation::delegate(&txn, &caller, &servable, instance.id, &prototype, now)?;
            servable.current = Some(instance.id);
            put_record(&txn, SERVABLES, servable.id, &servable)?;
            txn.commit()?;
            Ok(instance)
        })
        .await?;
    start(app, &endpoint, instance.id).await
}

/// Lists a new object among the outputs of a running pipeline (or other servable) that made it.
pub(crate) fn note_output(
    txn: &redb::WriteTransaction,
    creator: &Principal,
    id: Id,
    kind: &str,
    name: &str,
) -> Result<()> {
    if creator.kind != PrincipalKind::Servable {
        return Ok(());
    }
    let current =
        get_record::<Servable>(&txn.open_table(SERVABLES)?, creator.id)?.and_then(|s| s.current);
    let Some(instance_id) = current else {
        return Ok(());
    };
    // Read in its own statement: the table handle must be gone before `put_record` opens it.
    let instance = get_record::<Instance>(&txn.open_table(INSTANCES)?, instance_id)?;
    if let Some(mut instance) = instance
        && instance.state.is_active()
    {
        instance.outputs.push(Output {
            id,
            kind: kind.to_owned(),
            name: name.to_owned(),
        });
        put_record(txn, INSTANCES, instance_id, &instance)?;
    }
    Ok(())
}

/// Starts an instance's container (created when missing) with a fresh key; records `running`
/// with its address, or `failed` with why. Engine outages are errors (the instance is failed).
async fn start(app: &App, endpoint: &Endpoint, instance_id: Id) -> Result<Instance> {
    let result = start_inner(app, endpoint, instance_id).await;
    match result {
        Ok(instance) => Ok(instance),
        Err(e) => {
            let why = e.to_string();
            let failed = app
                .blocking(move |app| {
                    let now = app.now();
                    update_instance(&app.store, instance_id, |i| {
                        i.state = InstanceState::Failed;
                        i.error = Some(why);
                        i.finished = Some(now);
                    })
                })
                .await?;
            if let Some(i) = &failed {
                revoke_key(app, i.api_key);
            }
            match e {
                Error::EngineUnavailable(_) | Error::Store(_) | Error::Internal(_) => Err(e),
                _ => failed.ok_or_else(|| Error::not_found("Instance not found")),
            }
        }
    }
}

async fn start_inner(app: &App, endpoint: &Endpoint, instance_id: Id) -> Result<Instance> {
    let instance = get_instance(&app.store, instance_id)?
        .ok_or_else(|| Error::not_found("Instance not found"))?;
    let servable = get_servable(&app.store, instance.servable)?
        .ok_or_else(|| Error::not_found("Servable not found"))?;
    let prototype = super::get_prototype(&app.store, servable.prototype)?
        .ok_or_else(|| Error::conflict("the servable's prototype was deleted"))?;
    let docker = app.engine.client().await?;
    let old_key = instance.api_key;
    let key = write_identity(app, &servable, instance.id).await?;
    update_instance(&app.store, instance.id, |i| i.api_key = Some(key))?;
    revoke_key(app, old_key);

    let name = instance.container_name();
    let exists = docker
        .inspect_container(&name, None::<InspectContainerOptions>)
        .await
        .is_ok();
    if !exists {
        create_container(app, &docker, endpoint, &servable, &prototype, &instance).await?;
    }
    docker
        .start_container(&name, None)
        .await
        .map_err(|e| engine_error("starting the container", e))?;
    let ip = container_ip(&docker, &name, &endpoint.network).await;
    let now = app.now();
    let instance = update_instance(&app.store, instance.id, |i| {
        i.state = InstanceState::Running;
        i.ipv4_address = ip;
        i.started = Some(now);
        i.finished = None;
        i.exit_code = None;
        i.error = None;
        i.stopping = false;
    })?
    .ok_or_else(|| Error::not_found("Instance not found"))?;
    spawn_supervisor(app, instance.id);
    Ok(instance)
}

async fn container_ip(docker: &Docker, name: &str, network: &str) -> Option<String> {
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

/// Creates the container: image from the registry, resources as limits, the identity files,
/// the daemon's volume. Limits the engine refuses here are dropped and reported on the servable.
async fn create_container(
    app: &App,
    docker: &Docker,
    endpoint: &Endpoint,
    servable: &Servable,
    prototype: &Prototype,
    instance: &Instance,
) -> Result<()> {
    let image =
        crate::registry::engine_sync::load_into_engine(app, &prototype.repository, &prototype.tag)
            .await?;
    let dir = servable_dir(app, servable.id);
    let mut binds = vec![
        format!("{}:{CONFIG_DIR}:ro", dir.join("run").display()),
        format!("{}:{SECRETS_DIR}:ro", dir.join("secrets").display()),
    ];
    let mut unenforced = Vec::new();
    if let Some(volume) = &servable.volume {
        ensure_volume(app, docker, &volume.name, servable.id).await?;
        binds.push(format!("{}:{}", volume.name, volume.location));
        unenforced.push(format!(
            "volume_size: the engine's local volumes have no size limit; the volume is measured every {} s and an overrun reported",
            app.config.servables.volume_check_secs
        ));
    }
    let r = &servable.resources;
    if r.gpu_count > 0 {
        unenforced.push(format!(
            "gpu_count: {} GPU(s) asked for, but this engine has no GPU runtime; none attached",
            r.gpu_count
        ));
    }
    let mb = |n: u64| i64::try_from(n.saturating_mul(1024 * 1024)).unwrap_or(i64::MAX);
    let servable_id = servable.id.to_string();
    let instance_id = instance.id.to_string();
    let labels = crate::engine::labels(
        &app.installation,
        &[
            ("dtaas.kind", "instance"),
            ("dtaas.servable", &servable_id),
            ("dtaas.instance", &instance_id),
            ("dtaas.owner", &servable.owner.to_string()),
        ],
    );
    let mut host = HostConfig {
        binds: Some(binds),
        network_mode: Some(endpoint.network.clone()),
        nano_cpus: (r.cpu_cores > 0.0).then_some((r.cpu_cores * 1e9) as i64),
        memory: (r.ram > 0).then(|| mb(r.ram)),
        shm_size: (r.shm > 0).then(|| mb(r.shm)),
        security_opt: Some(vec!["no-new-privileges".into()]),
        privileged: Some(false),
        ..Default::default()
    };
    if r.disk > 0 {
        host.storage_opt = Some([("size".to_owned(), format!("{}M", r.disk))].into());
    }
    let mut body = ContainerCreateBody {
        image: Some(image),
        env: Some(environment(endpoint, servable, instance.id)),
        labels: Some(labels),
        host_config: Some(host),
        exposed_ports: servable
            .kind
            .serves_http()
            .then(|| vec![format!("{HTTP_PORT}/tcp")]),
        ..Default::default()
    };
    let name = instance.container_name();
    let options = CreateContainerOptionsBuilder::new().name(&name).build();
    match docker
        .create_container(Some(options.clone()), body.clone())
        .await
    {
        Ok(_) => {}
        Err(bollard::errors::Error::DockerResponseServerError { message, .. })
            if r.disk > 0 && message.contains("storage-opt") =>
        {
            // overlay2 caps a container's writable layer only on xfs with project quotas.
            unenforced.push(format!(
                "disk: not enforceable on this engine's storage ({message})"
            ));
            if let Some(h) = body.host_config.as_mut() {
                h.storage_opt = None;
            }
            docker
                .create_container(Some(options), body)
                .await
                .map_err(|e| engine_error("creating the container", e))?;
        }
        Err(e) => return Err(engine_error("creating the container", e)),
    }
    if unenforced != servable.unenforced {
        let id = servable.id;
        app.blocking(move |app| {
            update_servable(&app.store, id, |s| s.unenforced = unenforced)?;
            Ok(())
        })
        .await?;
    }
    Ok(())
}

async fn ensure_volume(app: &App, docker: &Docker, name: &str, servable: Id) -> Result<()> {
    if docker.inspect_volume(name).await.is_ok() {
        return Ok(());
    }
    let request = VolumeCreateRequest {
        name: Some(name.to_owned()),
        driver: Some("local".into()),
        labels: Some(crate::engine::labels(
            &app.installation,
            &[
                ("dtaas.kind", "volume"),
                ("dtaas.servable", &servable.to_string()),
            ],
        )),
        ..Default::default()
    };
    docker
        .create_volume(request)
        .await
        .map_err(|e| engine_error("creating the daemon's volume", e))?;
    Ok(())
}

fn spawn_supervisor(app: &App, instance: Id) {
    let token = CancellationToken::new();
    {
        let mut supervised = app.servables.lock();
        if supervised.contains_key(&instance) {
            return;
        }
        supervised.insert(instance, token.clone());
    }
    let task_app = app.clone();
    app.tasks.spawn(async move {
        let shutdown = task_app.shutdown.clone();
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = supervise(&task_app, instance, &token) => {}
        }
        task_app.servables.lock().remove(&instance);
        task_app.runner.hub.notify(instance);
    });
}

/// Follows one instance until it ends for good (restarting daemons and HTTP types that fail).
async fn supervise(app: &App, id: Id, stop: &CancellationToken) {
    let mut backoff = Duration::from_secs(1);
    let max_backoff = Duration::from_secs(app.config.servables.restart_backoff_max_secs.max(1));
    loop {
        let docker = match app.engine.client().await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(instance = %id, "supervision waits for the engine: {e}");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        let Ok(Some(instance)) = get_instance(&app.store, id) else {
            return;
        };
        let name = instance.container_name();
        let logs = tokio::spawn(follow_logs::<Instance>(
            app.clone(),
            docker.clone(),
            name.clone(),
            id,
            instance.log.clone(),
            app.config.servables.max_log_lines,
        ));
        let started = tokio::time::Instant::now();
        let code = wait_exit(&docker, &name).await;
        let _ = logs.await;
        let Ok(Some(instance)) = get_instance(&app.store, id) else {
            return;
        };
        let restart = code.is_some_and(|c| c != 0)
            && !instance.stopping
            && instance.kind.restarts_on_failure();
        let state = match code {
            _ if instance.stopping => InstanceState::Stopped,
            Some(0) => InstanceState::Exited,
            _ => InstanceState::Failed,
        };
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        let error = match (code, restart) {
            (None, _) => Some("the container is gone".to_owned()),
            (Some(c), true) => Some(format!(
                "exited with code {c}; restarting in {} s",
                backoff.as_secs()
            )),
            (Some(c), false) if state == InstanceState::Failed => {
                Some(format!("exited with code {c}"))
            }
            _ => None,
        };
        let now = app.now();
        let ended = update_instance(&app.store, id, |i| {
            i.state = state;
            i.exit_code = code;
            i.error = error;
            i.finished = Some(now);
            i.ipv4_address = if state == InstanceState::Failed && restart {
                i.ipv4_address.take()
            } else {
                None
            };
        });
        app.runner.hub.notify(id);
        if !restart {
            if let Ok(Some(i)) = ended {
                revoke_key(app, i.api_key);
            }
            if instance.kind == ServableType::Daemon {
                let _ = measure_volume(app, instance.servable).await;
            }
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.cancelled() => {
                let _ = update_instance(&app.store, id, |i| {
                    i.state = InstanceState::Stopped;
                    i.error = None;
                });
                return;
            }
        }
        backoff = (backoff * 2).min(max_backoff);
        if let Err(e) = docker.start_container(&name, None).await {
            tracing::warn!(instance = %id, "cannot restart: {e}");
            let why = format!("cannot restart: {e}");
            let _ = update_instance(&app.store, id, |i| i.error = Some(why));
            return;
        }
        let network = network_name(app);
        let ip = container_ip(&docker, &name, &network).await;
        let now = app.now();
        let _ = update_instance(&app.store, id, |i| {
            i.state = InstanceState::Running;
            i.restarts += 1;
            i.ipv4_address = ip;
            i.started = Some(now);
            i.finished = None;
            i.error = None;
        });
        tracing::info!(instance = %id, "restarted after a failure");
    }
}

/// The container's exit code once it has stopped; `None` when it is gone.
async fn wait_exit(docker: &Docker, name: &str) -> Option<i64> {
    let mut wait = docker.wait_container(name, None);
    match wait.next().await {
        Some(Ok(r)) => return Some(r.status_code),
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
            return Some(code);
        }
        _ => {}
    }
    let inspect = docker
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
        .ok()?;
    let state = inspect.state?;
    if state.running == Some(true) {
        // The wait connection broke while it runs: wait again.
        return Box::pin(wait_exit(docker, name)).await;
    }
    state.exit_code
}

/// `POST /v1/instances/{id}/stop`: stops the container (SIGTERM, then SIGKILL after
/// `stop_timeout_secs`) and records `stopped`. Needs UPDATE on the instance.
pub async fn stop(app: &App, caller: &Principal, id: Id) -> Result<Instance> {
    let instance = instance_for(&app.store, caller, id, Capability::Update)?;
    stop_instance(app, &instance).await?;
    get_instance(&app.store, id)?.ok_or_else(|| Error::not_found("Instance not found"))
}

async fn stop_instance(app: &App, instance: &Instance) -> Result<()> {
    let id = instance.id;
    let waiting =
        matches!(instance.state, InstanceState::Failed) && app.servables.is_supervising(id);
    if !instance.state.is_active() && !waiting {
        return Ok(());
    }
    update_instance(&app.store, id, |i| i.stopping = true)?;
    if let Some(token) = app.servables.lock().get(&id) {
        token.cancel();
    }
    let docker = app.engine.client().await?;
    let options = StopContainerOptionsBuilder::new()
        .t(app.config.servables.stop_timeout_secs as i32)
        .build();
    match docker
        .stop_container(&instance.container_name(), Some(options))
        .await
    {
        Ok(()) => {}
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 304 | 404,
            ..
        }) => {}
        Err(e) => return Err(engine_error("stopping the container", e)),
    }
    // The supervisor records the end; wait for it (bounded), or record it here.
    for _ in 0..100 {
        if !app.servables.is_supervising(id) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let now = app.now();
    let ended = update_instance(&app.store, id, |i| {
        if i.state.is_active() || i.state == InstanceState::Failed {
            i.state = InstanceState::Stopped;
            i.ipv4_address = None;
            i.finished.get_or_insert(now);
        }
    })?;
    if let Some(i) = ended {
        revoke_key(app, i.api_key);
    }
    app.runner.hub.notify(id);
    Ok(())
}

/// `POST /v1/instances/{id}/restart`: stops the instance if it runs and starts its container
/// again. Only a servable's latest instance can be restarted.
pub async fn restart(app: &App, caller: &Principal, id: Id) -> Result<Instance> {
    let instance = instance_for(&app.store, caller, id, Capability::Update)?;
    let servable = get_servable(&app.store, instance.servable)?
        .ok_or_else(|| Error::not_found("Servable not found"))?;
    if servable.current != Some(id) {
        return Err(Error::conflict(
            "only the servable's latest instance can be restarted; run the servable instead",
        ));
    }
    stop_instance(app, &instance).await?;
    for _ in 0..100 {
        if !app.servables.is_supervising(id) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let endpoint = endpoint(app).await?;
    update_instance(&app.store, id, |i| {
        i.state = InstanceState::Starting;
        i.stopping = false;
    })?;
    start(app, &endpoint, id).await
}

/// Stops an instance and removes its container (its record is the caller's to delete).
pub(super) async fn remove_instance(app: &App, instance: &Instance) -> Result<()> {
    stop_instance(app, instance).await?;
    let docker = app.engine.client().await?;
    crate::jobs::runner::remove_container(&docker, &instance.container_name()).await;
    revoke_key(app, instance.api_key);
    Ok(())
}

/// Removes a servable's files and its volume.
pub(super) async fn remove_servable_files(app: &App, servable: &Servable) {
    crate::jobs::runner::remove_tree(app, &servable_dir(app, servable.id)).await;
    if let Some(volume) = &servable.volume
        && let Ok(docker) = app.engine.client().await
    {
        match docker
            .remove_volume(
                &volume.name,
                None::<bollard::query_parameters::RemoveVolumeOptions>,
            )
            .await
        {
            Ok(()) => {}
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => tracing::warn!(volume = %volume.name, "cannot remove: {e}"),
        }
    }
}

/// Measures a daemon's volume and records its use and any overrun on the servable.
pub async fn measure_volume(app: &App, servable_id: Id) -> Result<Option<u64>> {
    let Some(servable) = get_servable(&app.store, servable_id)? else {
        return Ok(None);
    };
    let Some(volume) = servable.volume else {
        return Ok(None);
    };
    let labels = crate::engine::labels(&app.installation, &[("dtaas.kind", "measure")]);
    let binds = vec![format!("{}:/volume:ro", volume.name)];
    let (code, output) = app
        .engine
        .run_utility(labels, &["du", "-sk", "/volume"], binds)
        .await?;
    let kib = output
        .split_whitespace()
        .next()
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|_| code == 0)
        .ok_or_else(|| Error::internal(format!("measuring {}: {output}", volume.name)))?;
    let used = kib * 1024;
    let limit = volume.size_mb.saturating_mul(1024 * 1024);
    update_servable(&app.store, servable_id, |s| {
        if let Some(v) = s.volume.as_mut() {
            v.used_bytes = Some(used);
            v.overrun = used > limit;
        }
    })?;
    if used > limit {
        tracing::warn!(servable = %servable_id, used, limit, "a daemon's volume holds more than its volume_size");
    }
    Ok(Some(used))
}

/// Starts recovery and the volume measurements on the server's task tracker.
pub fn start_background(app: &App) {
    let task_app = app.clone();
    app.tasks.spawn(async move {
        let shutdown = task_app.shutdown.clone();
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = async {
                recover(&task_app).await;
                measure_loop(&task_app).await;
            } => {}
        }
    });
}

async fn measure_loop(app: &App) {
    let every = Duration::from_secs(app.config.servables.volume_check_secs.max(1));
    loop {
        tokio::time::sleep(every).await;
        let daemons: Vec<Id> = match super::active_instances(&app.store) {
            Ok(list) => list
                .into_iter()
                .filter(|i| i.kind == ServableType::Daemon && i.state == InstanceState::Running)
                .map(|i| i.servable)
                .collect(),
            Err(_) => continue,
        };
        for servable in daemons {
            if let Err(e) = measure_volume(app, servable).await {
                tracing::debug!(%servable, "volume measurement: {e}");
            }
        }
    }
}

/// After a start: re-attach to running containers, let ended ones be recorded (and restarted
/// by policy), fail instances whose container is gone, remove containers no instance owns.
pub async fn recover(app: &App) {
    let docker = loop {
        match app.engine.client().await {
            Ok(d) => break d,
            Err(_) => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    };
    let active = match super::active_instances(&app.store) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("servable recovery cannot read the instances: {e}");
            return;
        }
    };
    if !active.is_empty()
        && let Err(e) = endpoint(app).await
    {
        tracing::warn!("servable recovery: {e}");
    }
    for instance in &active {
        let name = instance.container_name();
        let inspect = docker
            .inspect_container(&name, None::<InspectContainerOptions>)
            .await;
        match inspect {
            Ok(c)
                if c.state.as_ref().and_then(|s| s.status).is_some_and(|s| {
                    !matches!(s, bollard::models::ContainerStateStatusEnum::CREATED)
                }) =>
            {
                tracing::info!(instance = %instance.id, "re-attaching to a servable's container");
                spawn_supervisor(app, instance.id);
            }
            _ => {
                let now = app.now();
                let _ = update_instance(&app.store, instance.id, |i| {
                    i.state = InstanceState::Failed;
                    i.error = Some(
                        "the server stopped before the container started, or the container is gone"
                            .into(),
                    );
                    i.finished = Some(now);
                    i.ipv4_address = None;
                });
                revoke_key(app, instance.api_key);
            }
        }
    }
    // Containers of this installation's instances that no instance record owns.
    let known: HashSet<String> =
        match crate::store::records_where(&app.store, INSTANCES, |_: &Instance| true) {
            Ok(all) => all.iter().map(Instance::container_name).collect(),
            Err(_) => return,
        };
    if let Err(e) = app
        .engine
        .remove_orphans(&app.installation, "instance", |name| known.contains(name))
        .await
    {
        tracing::warn!("servable recovery cannot list containers: {e}");
    }
}
