//! Servable instances as containers (through the [`Supervisor`]).
//!
//! Every instance is one labelled container (`dtaas-inst-<instance id>`) on its servable's own
//! network ([`super::networks`]); the containers of servables that hold READ or REQUEST on it
//! join that network too, so they reach it at its `ipv4_address`, and nothing else does. The
//! appliance is reachable from every container at the gateway address of the installation's API
//! network (`dtaas-<installation id>`, which no container joins: the host routes to it); the
//! server provides that listener (a [`Gateway`]), and containers learn its URL from `DTAAS_URL`.
//!
//! Inside a container: `/run/dtaas/config.json` (the servable's config), the instance's API key
//! at `/run/secrets/dtaas/api-key`, and the `DTAAS_*` environment (see [`environment`]). Each
//! start makes a fresh key; the old one is revoked when an instance ends. An HTTP-type
//! servable is an OpenID Connect client: each start also makes a fresh client secret, at
//! `/run/secrets/dtaas/oidc-client-secret`, and `DTAAS_OIDC_ISSUER` names the provider.
//!
//! Supervision: the database is the truth. A supervisor task follows an instance's log, waits
//! for its exit and records it: a pipeline runs once (`exited` or `failed`); a daemon or HTTP
//! type that fails is started again after a backoff doubling up to `restart_backoff_max_secs`; a
//! stop asked for ends in `stopped`. After a server crash [`Runtime::recover`] finishes the
//! deletions the crash cut, re-attaches to running containers (recording `running` for a start
//! the crash cut after the engine's start), records how the others ended, and removes what no
//! record owns: containers, utility containers of the dead run, and the networks and volumes
//! of servables that are gone.
//!
//! Deletion: a servable's deletion is marked in the store before anything is removed, so that
//! it cannot run again and a crash leaves it to be finished; every step after is idempotent.
//! Starting a servable's containers and deleting it hold the servable's lock; measuring and
//! removing volumes hold one lock, so that a removal never meets a measurement's container.

use super::networks::{Networks, network_name as servable_network};
use super::registry_sync::RegistrySync;
use super::supervisor::Supervisor;
use super::{engine_error, is_not_found};
use crate::core::clock::Clock;
use crate::core::config::ServablesConfig;
use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::core::store::{Store, get_record};
use crate::core::tasks::blocking;
use crate::domains::accounts;
use crate::domains::authz::{self, Capability, Caps, Kind, ObjectMeta, Principal};
use crate::domains::oidc;
use crate::domains::servables::{
    self, HTTP_PORT, INSTANCES, Instance, InstanceState, SERVABLES, Servable, ServableType,
    delegation, get_instance, get_servable, instance_for, servable_for, update_instance,
    update_servable,
};
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::InspectContainerOptions;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;
use tokio::sync::{Mutex as AsyncMutex, Notify};
use tokio_util::sync::CancellationToken;

/// Where the config and the key appear in the container.
pub const CONFIG_DIR: &str = "/run/dtaas";
pub const SECRETS_DIR: &str = "/run/secrets/dtaas";

/// How long a stop or a restart waits for the supervisor to record the end.
const END_WAIT: Duration = Duration::from_secs(5);

/// The appliance as the servable network sees it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub network: String,
    pub gateway: IpAddr,
    /// `DTAAS_URL`.
    pub url: String,
}

/// Opens the appliance's API to the servable network: the server listens on the network's
/// gateway address (or already does) and answers with the URL containers use.
pub trait Gateway: Send + Sync {
    fn url<'a>(
        &'a self,
        gateway: IpAddr,
    ) -> Pin<Box<dyn Future<Output = Result<String>> + Send + 'a>>;
}

/// The servable runtime (one per server): what it needs, and the instances it supervises.
pub struct Runtime {
    supervisor: Arc<Supervisor>,
    store: Store,
    clock: Arc<dyn Clock>,
    config: ServablesConfig,
    data_dir: PathBuf,
    installation: Id,
    registry: Arc<RegistrySync>,
    gateway: OnceLock<Arc<dyn Gateway>>,
    /// The OpenID Connect issuer (`DTAAS_OIDC_ISSUER`), set while the server starts.
    issuer: OnceLock<String>,
    endpoint: AsyncMutex<Option<Endpoint>>,
    /// Instances with a supervisor, and the token that ends its backoff waits.
    supervised: Mutex<HashMap<Id, CancellationToken>>,
    /// Notified whenever a supervisor ends.
    ended: Notify,
    networks: Networks,
    /// Wakes the reconciliation of who is on which servable network.
    access: Notify,
    /// One per servable: starting its containers and deleting it never overlap, so that a
    /// deletion cannot miss a container (or volume) a start is making.
    servable_locks: Mutex<HashMap<Id, Arc<AsyncMutex<()>>>>,
    /// Held while a volume is measured or removed: a removal never meets a measurement's
    /// container, and no measurement starts (and so re-creates the volume) after a removal.
    volumes: AsyncMutex<()>,
}

/// How often a volume removal that found the volume in use tries again (after removing the
/// containers of this installation that use it).
const VOLUME_REMOVE_ATTEMPTS: u32 = 5;

/// How often who-reaches-whom is reconciled even when nothing said access changed.
const RECONCILE_EVERY: Duration = Duration::from_secs(15);

/// The name of an instance's container.
pub fn container_name(instance: Id) -> String {
    format!("{CONTAINER_PREFIX}{instance}")
}

const CONTAINER_PREFIX: &str = "dtaas-inst-";

/// The instance a container name of [`container_name`] belongs to.
fn instance_of_container(name: &str) -> Option<Id> {
    name.trim_start_matches('/')
        .strip_prefix(CONTAINER_PREFIX)
        .and_then(Id::parse)
}

impl Runtime {
    pub fn new(
        supervisor: Arc<Supervisor>,
        store: Store,
        clock: Arc<dyn Clock>,
        config: ServablesConfig,
        data_dir: PathBuf,
        installation: Id,
        registry: Arc<RegistrySync>,
    ) -> Result<Runtime> {
        let networks = Networks::new(
            supervisor.engine_handle(),
            installation,
            &config.subnet_pool,
            config.subnet_prefix,
        )?;
        Ok(Runtime {
            supervisor,
            store,
            clock,
            config,
            data_dir,
            installation,
            registry,
            gateway: OnceLock::new(),
            issuer: OnceLock::new(),
            endpoint: AsyncMutex::new(None),
            supervised: Mutex::new(HashMap::new()),
            ended: Notify::new(),
            networks,
            access: Notify::new(),
            servable_locks: Mutex::new(HashMap::new()),
            volumes: AsyncMutex::new(()),
        })
    }

    /// Waits for the servable's lock (see `servable_locks`).
    async fn lock_servable(&self, servable: Id) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .servable_locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(servable)
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// Says that grants changed somewhere: who may reach which servable is reconciled soon.
    pub fn access_changed(&self) {
        self.access.notify_one();
    }

    /// The server's gateway listener; set once while the server starts, before any instance
    /// runs (without it, `servables.api_url` must be set).
    pub fn set_gateway(&self, gateway: Arc<dyn Gateway>) {
        let _ = self.gateway.set(gateway);
    }

    /// The OpenID Connect issuer HTTP-type servables are told of; set once while the server
    /// starts.
    pub fn set_issuer(&self, issuer: String) {
        let _ = self.issuer.set(issuer);
    }

    pub fn is_supervising(&self, instance: Id) -> bool {
        self.lock().contains_key(&instance)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Id, CancellationToken>> {
        self.supervised
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits (bounded) until no supervisor follows the instance any more.
    async fn wait_unsupervised(&self, instance: Id) {
        let deadline = tokio::time::Instant::now() + END_WAIT;
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if !self.is_supervising(instance) {
                return;
            }
            tokio::select! {
                _ = ended => {}
                _ = tokio::time::sleep_until(deadline) => return,
            }
        }
    }

    /// The installation's API network: its gateway address is where containers reach the
    /// appliance. No container joins it.
    fn api_network(&self) -> String {
        if self.config.network.is_empty() {
            format!("dtaas-{}", self.installation)
        } else {
            self.config.network.clone()
        }
    }

    /// The servable network and the appliance's URL on it, made on first use: the network is
    /// created when missing and the server starts listening on its gateway.
    pub async fn endpoint(&self) -> Result<Endpoint> {
        let mut slot = self.endpoint.lock().await;
        if let Some(e) = slot.as_ref() {
            return Ok(e.clone());
        }
        let docker = self.supervisor.docker().await?;
        let network = self.api_network();
        let inspect = match docker.inspect_network(&network, None).await {
            Ok(n) => n,
            Err(e) if is_not_found(&e) => {
                let request = NetworkCreateRequest {
                    name: network.clone(),
                    driver: Some("bridge".into()),
                    labels: Some(super::labels(
                        &self.installation,
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
        let url = if self.config.api_url.is_empty() {
            let listener = self
                .gateway
                .get()
                .ok_or_else(|| Error::internal("no gateway listener: set servables.api_url"))?;
            listener.url(gateway).await?
        } else {
            self.config.api_url.trim_end_matches('/').to_owned()
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

    fn servable_dir(&self, servable: Id) -> PathBuf {
        self.data_dir.join("servables").join(servable.to_string())
    }

    /// Writes the config and a fresh API key for the servable; returns the key's id. The key is
    /// readable only by the user the container runs as (`user`, the image's `USER`).
    async fn write_identity(&self, servable: &Servable, instance: Id, user: &str) -> Result<Id> {
        let principal = servables::servable_principal(&self.store, servable.id)?
            .ok_or_else(|| Error::not_found("Servable not found"))?;
        let (store, now) = (self.store.clone(), self.clock.now());
        let name = format!("instance {instance}");
        let key = blocking(move || accounts::create_api_key(&store, &principal, &name, None, now))
            .await?;
        let dir = self.servable_dir(servable.id);
        let config = serde_json::to_vec_pretty(&servable.config).map_err(Error::internal)?;
        let secret = key.secret.clone();
        // HTTP-type servables are OpenID Connect clients: a fresh secret at every start.
        let client_secret = if servable.kind.serves_http() {
            let (store, id) = (self.store.clone(), servable.id);
            Some(blocking(move || oidc::new_client_secret(&store, id)).await?)
        } else {
            None
        };
        let (key_mode, key_owner) = secret_file_access(user);
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use crate::core::fs::set_mode;
            let run = dir.join("run");
            let secrets = dir.join("secrets");
            std::fs::create_dir_all(&run)?;
            std::fs::create_dir_all(&secrets)?;
            // Mounted into the container: it must get in, whatever user it runs as. The data
            // directory above stays the server's alone.
            set_mode(&dir, 0o755)?;
            set_mode(&run, 0o755)?;
            set_mode(&secrets, 0o755)?;
            // Written aside and renamed: the directories are bind-mounted, so a running
            // container sees the new file whole.
            let mut files = vec![
                (run.join("config.json"), config, 0o444, None),
                (
                    secrets.join("api-key"),
                    secret.into_bytes(),
                    key_mode,
                    key_owner,
                ),
            ];
            if let Some(client_secret) = client_secret {
                files.push((
                    secrets.join("oidc-client-secret"),
                    client_secret.into_bytes(),
                    key_mode,
                    key_owner,
                ));
            }
            for (target, bytes, mode, owner) in files {
                let tmp = target.with_extension("tmp");
                std::fs::write(&tmp, &bytes)?;
                if let Some(uid) = owner {
                    std::os::unix::fs::chown(&tmp, Some(uid), None)?;
                }
                set_mode(&tmp, mode)?;
                std::fs::rename(&tmp, &target)?;
            }
            Ok(())
        })
        .await
        .map_err(Error::internal)?;
        written.map_err(|e| Error::internal(format!("writing the servable's files: {e}")))?;
        Ok(key.key.id)
    }

    fn revoke_key(&self, key: Option<Id>) {
        if let Some(key) = key
            && let Err(e) = accounts::delete_api_key(&self.store, key)
        {
            tracing::warn!(%key, "cannot revoke an instance key: {e}");
        }
    }

    /// `POST /v1/servables/{id}/run`: a new instance, returned once its container runs (or
    /// failed to start). Needs UPDATE on the servable.
    pub async fn run(self: &Arc<Self>, caller: &Principal, servable_id: Id) -> Result<Instance> {
        let servable = servable_for(&self.store, caller, servable_id, Capability::Update)?;
        let prototype = servables::get_prototype(&self.store, servable.prototype)?
            .ok_or_else(|| Error::conflict("the servable's prototype was deleted"))?;
        let endpoint = self.endpoint().await?;
        let _starting = self.lock_servable(servable.id).await;
        let (store, caller, now) = (self.store.clone(), caller.clone(), self.clock.now());
        let instance = blocking(move || {
            let txn = store.write()?;
            let mut servable: Servable = get_record(&txn.open_table(SERVABLES)?, servable.id)?
                .ok_or_else(|| Error::not_found("Servable not found"))?;
            if servable.deleting {
                return Err(Error::conflict("the servable is being deleted"));
            }
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
            servables::put_instance(&txn, &instance)?;
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
            servables::note_output(&txn, &caller, instance.id, "instance", &servable.name)?;
            delegation::delegate(&txn, &caller, &servable, instance.id, &prototype, now)?;
            servable.current = Some(instance.id);
            servables::put_servable(&txn, &servable)?;
            txn.commit()?;
            Ok(instance)
        })
        .await?;
        self.start(&endpoint, instance.id).await
    }

    /// Starts an instance's container (created when missing) with a fresh key; records
    /// `running` with its address, or `failed` with why. Engine outages are errors (the
    /// instance is failed).
    async fn start(self: &Arc<Self>, endpoint: &Endpoint, instance_id: Id) -> Result<Instance> {
        match self.start_inner(endpoint, instance_id).await {
            Ok(instance) => Ok(instance),
            Err(e) => {
                let (store, now, why) = (self.store.clone(), self.clock.now(), e.to_string());
                let failed = blocking(move || {
                    update_instance(&store, instance_id, |i| {
                        i.state = InstanceState::Failed;
                        i.error = Some(why);
                        i.finished = Some(now);
                    })
                })
                .await?;
                if let Some(i) = &failed {
                    self.revoke_key(i.api_key);
                }
                match e {
                    Error::EngineUnavailable(_)
                    | Error::EngineFailed(_)
                    | Error::Store(_)
                    | Error::Internal(_) => Err(e),
                    _ => failed.ok_or_else(|| Error::not_found("Instance not found")),
                }
            }
        }
    }

    async fn start_inner(
        self: &Arc<Self>,
        endpoint: &Endpoint,
        instance_id: Id,
    ) -> Result<Instance> {
        let instance = get_instance(&self.store, instance_id)?
            .ok_or_else(|| Error::not_found("Instance not found"))?;
        let servable = get_servable(&self.store, instance.servable)?
            .ok_or_else(|| Error::not_found("Servable not found"))?;
        let prototype = servables::get_prototype(&self.store, servable.prototype)?
            .ok_or_else(|| Error::conflict("the servable's prototype was deleted"))?;
        let docker = self.supervisor.docker().await?;
        let network = self.networks.ensure(servable.id).await?;
        let name = container_name(instance.id);
        let exists = self.supervisor.has_started(&docker, &name).await.is_some();
        let image = if exists {
            None
        } else {
            Some(
                self.registry
                    .load_into_engine(&prototype.repository, &prototype.tag)
                    .await?,
            )
        };
        let user = self
            .container_user(&docker, &name, image.as_deref())
            .await?;
        let old_key = instance.api_key;
        let key = self.write_identity(&servable, instance.id, &user).await?;
        update_instance(&self.store, instance.id, |i| i.api_key = Some(key))?;
        self.revoke_key(old_key);

        if let Some(image) = image {
            self.create_container(&docker, endpoint, &network, &image, &servable, &instance)
                .await?;
        }
        self.supervisor.start(&docker, &name).await?;
        let ip = self.supervisor.ipv4(&docker, &name, &network).await;
        if let Err(e) = self.join_reach(&docker, servable.id, &name).await {
            tracing::warn!(instance = %instance.id, "joining the networks it may reach: {e}");
        }
        let now = self.clock.now();
        let instance = update_instance(&self.store, instance.id, |i| {
            i.state = InstanceState::Running;
            i.ipv4_address = ip;
            i.started = Some(now);
            i.finished = None;
            i.exit_code = None;
            i.error = None;
            i.stopping = false;
        })?
        .ok_or_else(|| Error::not_found("Instance not found"))?;
        self.spawn_supervisor(instance.id);
        Ok(instance)
    }

    /// The user the container runs as: its image's (or its existing container's) `USER`.
    async fn container_user(
        &self,
        docker: &Docker,
        container: &str,
        image: Option<&str>,
    ) -> Result<String> {
        let user = match image {
            Some(image) => docker
                .inspect_image(image)
                .await
                .map_err(|e| engine_error("inspecting the servable's image", e))?
                .config
                .and_then(|c| c.user),
            None => docker
                .inspect_container(container, None::<InspectContainerOptions>)
                .await
                .map_err(|e| engine_error("inspecting the container", e))?
                .config
                .and_then(|c| c.user),
        };
        Ok(user.unwrap_or_default())
    }

    /// Creates the container on its servable's network: resources as limits (the settings'
    /// defaults where the servable asks for none), the identity files, the daemon's volume,
    /// hardened like every container. Limits the engine refuses here are dropped and reported
    /// on the servable.
    async fn create_container(
        &self,
        docker: &Docker,
        endpoint: &Endpoint,
        network: &str,
        image: &str,
        servable: &Servable,
        instance: &Instance,
    ) -> Result<()> {
        let dir = self.servable_dir(servable.id);
        let mut binds = vec![
            format!("{}:{CONFIG_DIR}:ro", dir.join("run").display()),
            format!("{}:{SECRETS_DIR}:ro", dir.join("secrets").display()),
        ];
        let mut unenforced = Vec::new();
        if let Some(volume) = &servable.volume {
            self.ensure_volume(docker, &volume.name, servable.id)
                .await?;
            binds.push(format!("{}:{}", volume.name, volume.location));
            unenforced.push(format!(
                "volume_size: the engine's local volumes have no size limit; the volume is measured every {} s and an overrun reported",
                self.config.volume_check_secs
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
        let labels = self.supervisor.labels(
            "instance",
            &[
                ("dtaas.servable", &servable.id.to_string()),
                ("dtaas.instance", &instance.id.to_string()),
                ("dtaas.owner", &servable.owner.to_string()),
            ],
        );
        let cpus = if r.cpu_cores > 0.0 {
            r.cpu_cores
        } else {
            self.config.default_cpus
        };
        let ram = if r.ram > 0 {
            r.ram
        } else {
            self.config.default_memory_mb
        };
        let mut host = HostConfig {
            binds: Some(binds),
            network_mode: Some(network.to_owned()),
            nano_cpus: Some((cpus * 1e9) as i64),
            memory: Some(mb(ram)),
            pids_limit: Some(self.config.pids),
            shm_size: (r.shm > 0).then(|| mb(r.shm)),
            ..Default::default()
        };
        self.supervisor.harden(&mut host);
        if r.disk > 0 {
            host.storage_opt = Some([("size".to_owned(), format!("{}M", r.disk))].into());
        }
        let mut body = ContainerCreateBody {
            image: Some(image.to_owned()),
            env: Some(environment(
                endpoint,
                servable,
                instance.id,
                self.issuer.get().map(String::as_str),
            )),
            labels: Some(labels),
            host_config: Some(host),
            exposed_ports: servable
                .kind
                .serves_http()
                .then(|| vec![format!("{HTTP_PORT}/tcp")]),
            ..Default::default()
        };
        let name = container_name(instance.id);
        match self.supervisor.create(docker, &name, body.clone()).await {
            Ok(()) => {}
            Err(Error::BadRequest(message) | Error::EngineFailed(message))
                if r.disk > 0 && message.contains("storage-opt") =>
            {
                // overlay2 caps a container's writable layer only on xfs with project quotas.
                unenforced.push(format!(
                    "disk: not enforceable on this engine's storage ({message})"
                ));
                if let Some(h) = body.host_config.as_mut() {
                    h.storage_opt = None;
                }
                self.supervisor.create(docker, &name, body).await?;
            }
            Err(e) => return Err(e),
        }
        if unenforced != servable.unenforced {
            let (store, id) = (self.store.clone(), servable.id);
            blocking(move || {
                update_servable(&store, id, |s| s.unenforced = unenforced)?;
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    async fn ensure_volume(&self, docker: &Docker, name: &str, servable: Id) -> Result<()> {
        if docker.inspect_volume(name).await.is_ok() {
            return Ok(());
        }
        let request = VolumeCreateRequest {
            name: Some(name.to_owned()),
            driver: Some("local".into()),
            labels: Some(super::labels(
                &self.installation,
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

    fn spawn_supervisor(self: &Arc<Self>, instance: Id) {
        let token = CancellationToken::new();
        {
            let mut supervised = self.lock();
            if supervised.contains_key(&instance) {
                return;
            }
            supervised.insert(instance, token.clone());
        }
        let runtime = self.clone();
        self.supervisor.tasks().spawn_to_end(async move {
            let measure = tokio::select! {
                _ = runtime.supervisor.tasks().cancelled() => None,
                measure = runtime.supervise(instance, &token) => measure,
            };
            runtime.lock().remove(&instance);
            runtime.ended.notify_waiters();
            runtime.supervisor.hub().notify(instance);
            // After the supervision is over, so that a restart waiting for it is not held up
            // by the measurement (and does not find the instance still supervised).
            if let Some(servable) = measure {
                tokio::select! {
                    _ = runtime.supervisor.tasks().cancelled() => {}
                    measured = runtime.measure_volume(servable) => {
                        if let Err(e) = measured {
                            tracing::warn!(%servable, "measuring the daemon's volume: {e}");
                        }
                    }
                }
            }
        });
    }

    /// Follows one instance until it ends for good (restarting daemons and HTTP types that
    /// fail). Returns the servable whose volume to measure now, for a daemon that ended.
    async fn supervise(&self, id: Id, stop: &CancellationToken) -> Option<Id> {
        let mut backoff = Duration::from_secs(1);
        let max_backoff = Duration::from_secs(self.config.restart_backoff_max_secs.max(1));
        loop {
            let docker = self
                .supervisor
                .wait_for_engine("servable supervision")
                .await;
            let Ok(Some(instance)) = get_instance(&self.store, id) else {
                return None;
            };
            let name = container_name(id);
            let logs = self.supervisor.follow_logs::<Instance>(
                &docker,
                &name,
                id,
                instance.log.clone(),
                self.config.max_log_lines,
            );
            let started = tokio::time::Instant::now();
            let code = match self.supervisor.wait(&docker, &name, None).await {
                Ok(exit) => exit.code,
                Err(e) => {
                    tracing::warn!(instance = %id, "waiting for the container: {e}");
                    None
                }
            };
            let _ = logs.await;
            let Ok(Some(instance)) = get_instance(&self.store, id) else {
                return None;
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
            let now = self.clock.now();
            let ended = update_instance(&self.store, id, |i| {
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
            self.supervisor.hub().notify(id);
            if !restart {
                if let Ok(Some(i)) = ended {
                    self.revoke_key(i.api_key);
                }
                return (instance.kind == ServableType::Daemon).then_some(instance.servable);
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.cancelled() => {
                    let _ = update_instance(&self.store, id, |i| {
                        i.state = InstanceState::Stopped;
                        i.error = None;
                    });
                    return None;
                }
            }
            backoff = (backoff * 2).min(max_backoff);
            if let Err(e) = self.supervisor.start(&docker, &name).await {
                tracing::warn!(instance = %id, "cannot restart: {e}");
                let why = format!("cannot restart: {e}");
                let _ = update_instance(&self.store, id, |i| i.error = Some(why));
                return None;
            }
            let servable = instance.servable;
            let ip = self
                .supervisor
                .ipv4(&docker, &name, &servable_network(servable))
                .await;
            let now = self.clock.now();
            let _ = update_instance(&self.store, id, |i| {
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

    /// `POST /v1/instances/{id}/stop`: stops the container (SIGTERM, then SIGKILL after
    /// `stop_timeout_secs`) and records `stopped`. Needs UPDATE on the instance.
    pub async fn stop(&self, caller: &Principal, id: Id) -> Result<Instance> {
        let instance = instance_for(&self.store, caller, id, Capability::Update)?;
        self.stop_instance(&instance).await?;
        get_instance(&self.store, id)?.ok_or_else(|| Error::not_found("Instance not found"))
    }

    async fn stop_instance(&self, instance: &Instance) -> Result<()> {
        let id = instance.id;
        let waiting = matches!(instance.state, InstanceState::Failed) && self.is_supervising(id);
        if !instance.state.is_active() && !waiting {
            return Ok(());
        }
        update_instance(&self.store, id, |i| i.stopping = true)?;
        if let Some(token) = self.lock().get(&id) {
            token.cancel();
        }
        let docker = self.supervisor.docker().await?;
        self.supervisor
            .stop(&docker, &container_name(id), self.config.stop_timeout_secs)
            .await?;
        // The supervisor records the end; wait for it (bounded), or record it here.
        self.wait_unsupervised(id).await;
        let now = self.clock.now();
        let ended = update_instance(&self.store, id, |i| {
            if i.state.is_active() || i.state == InstanceState::Failed {
                i.state = InstanceState::Stopped;
                i.ipv4_address = None;
                i.finished.get_or_insert(now);
            }
        })?;
        if let Some(i) = ended {
            self.revoke_key(i.api_key);
        }
        self.supervisor.hub().notify(id);
        Ok(())
    }

    /// `POST /v1/instances/{id}/restart`: stops the instance if it runs and starts its
    /// container again. Only a servable's latest instance can be restarted.
    pub async fn restart(self: &Arc<Self>, caller: &Principal, id: Id) -> Result<Instance> {
        let instance = instance_for(&self.store, caller, id, Capability::Update)?;
        let servable = get_servable(&self.store, instance.servable)?
            .ok_or_else(|| Error::not_found("Servable not found"))?;
        if servable.current != Some(id) {
            return Err(Error::conflict(
                "only the servable's latest instance can be restarted; run the servable instead",
            ));
        }
        let _starting = self.lock_servable(servable.id).await;
        if get_servable(&self.store, servable.id)?.is_none_or(|s| s.deleting) {
            return Err(Error::conflict("the servable is being deleted"));
        }
        self.stop_instance(&instance).await?;
        self.wait_unsupervised(id).await;
        let endpoint = self.endpoint().await?;
        update_instance(&self.store, id, |i| {
            i.state = InstanceState::Starting;
            i.stopping = false;
        })?;
        self.start(&endpoint, id).await
    }

    /// Stops an instance and removes its container.
    async fn remove_instance(&self, instance: &Instance) -> Result<()> {
        self.stop_instance(instance).await?;
        let docker = self.supervisor.docker().await?;
        self.supervisor
            .remove(&docker, &container_name(instance.id))
            .await;
        self.revoke_key(instance.api_key);
        Ok(())
    }

    /// Deletes a servable (DELETE on it): its instances (containers stopped and removed), its
    /// files, volume and network, its delegation requests and grants. The deletion is marked
    /// first, durably: one cut by a crash is finished by the next start, or by this asked
    /// again (which then does what is left: every step is idempotent).
    pub async fn delete_servable(&self, caller: &Principal, id: Id) -> Result<()> {
        servable_for(&self.store, caller, id, Capability::Delete)?;
        self.finish_deletion(id).await
    }

    /// Marks the servable's deletion and removes everything it has, in the engine and in the
    /// store. One that is gone already is fine.
    async fn finish_deletion(&self, id: Id) -> Result<()> {
        let _deleting = self.lock_servable(id).await;
        let store = self.store.clone();
        let Some(servable) = blocking(move || servables::mark_deleting(&store, id)).await? else {
            return Ok(());
        };
        for instance in &servables::instances_of(&self.store, id)? {
            self.remove_instance(instance).await?;
        }
        self.supervisor
            .remove_tree(&self.servable_dir(servable.id))
            .await;
        let docker = self.supervisor.docker().await?;
        if let Some(volume) = &servable.volume {
            self.remove_volume(&docker, &volume.name).await?;
        }
        for instance in servables::active_instances(&self.store)? {
            // Others may be on this servable's network still (they may reach it).
            let _ = self
                .networks
                .disconnect(&docker, id, &container_name(instance.id))
                .await;
        }
        self.networks.remove(&docker, id).await?;
        let store = self.store.clone();
        blocking(move || {
            oidc::forget_client(&store, id)?;
            servables::forget_servable(&store, id)
        })
        .await?;
        self.servable_locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        self.access_changed();
        Ok(())
    }

    /// Deletes one instance (DELETE on it); a running one is stopped first.
    pub async fn delete_instance(&self, caller: &Principal, id: Id) -> Result<()> {
        let instance = instance_for(&self.store, caller, id, Capability::Delete)?;
        let _removing = self.lock_servable(instance.servable).await;
        self.remove_instance(&instance).await?;
        let store = self.store.clone();
        blocking(move || servables::forget_instance(&store, &instance)).await
    }

    /// Removes a daemon's volume; a missing one is fine. A volume still in use (a container a
    /// crash left, say) has this installation's containers that use it removed first; what
    /// cannot be removed is an error, so that the deletion is not recorded as done.
    async fn remove_volume(&self, docker: &Docker, name: &str) -> Result<()> {
        let _one_at_a_time = self.volumes.lock().await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match docker
                .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>)
                .await
            {
                Ok(()) => return Ok(()),
                Err(e) if is_not_found(&e) => return Ok(()),
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 409,
                    message,
                }) if attempt < VOLUME_REMOVE_ATTEMPTS => {
                    tracing::info!(
                        volume = name,
                        "the volume is in use ({message}): removing the containers that use it"
                    );
                    self.supervisor.remove_users_of_volume(docker, name).await?;
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                }
                Err(e) => return Err(engine_error("removing the daemon's volume", e)),
            }
        }
    }

    /// Measures a daemon's volume and records its use and any overrun on the servable. A
    /// servable being deleted is not measured (its volume is going).
    pub async fn measure_volume(&self, servable_id: Id) -> Result<Option<u64>> {
        let measurable = |s: Option<Servable>| s.filter(|s| !s.deleting && s.volume.is_some());
        if measurable(get_servable(&self.store, servable_id)?).is_none() {
            return Ok(None);
        }
        let _one_at_a_time = self.volumes.lock().await;
        // Asked again under the lock: a deletion marks the servable before it removes the
        // volume, and removes it under this lock.
        let Some(volume) =
            measurable(get_servable(&self.store, servable_id)?).and_then(|s| s.volume)
        else {
            return Ok(None);
        };
        let labels = self.supervisor.utility_labels("measure");
        let binds = vec![format!("{}:/volume:ro", volume.name)];
        let (code, output) = self
            .supervisor
            .engine()
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
        update_servable(&self.store, servable_id, |s| {
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

    /// Starts recovery, the volume measurements and the reconciliation of servable networks;
    /// they run until the server shuts down.
    pub fn start_background(self: &Arc<Self>) {
        let runtime = self.clone();
        self.supervisor.spawn(async move {
            runtime.recover().await;
            let measure = runtime.clone();
            runtime
                .supervisor
                .spawn(async move { measure.measure_loop().await });
            runtime.reconcile_loop().await;
        });
    }

    /// Puts a starting container on the networks of the servables it may reach, and the
    /// containers that may reach its servable on its network.
    async fn join_reach(&self, docker: &Docker, servable: Id, container: &str) -> Result<()> {
        let running = servables::active_instances(&self.store)?;
        let ids: Vec<(Id, Id)> = running.iter().map(|i| (i.servable, i.id)).collect();
        let store = self.store.clone();
        let pairs = blocking(move || servables::reachable(&store, &ids)).await?;
        for (from, to) in pairs {
            if from == servable {
                self.networks.connect(docker, to, container).await?;
            } else if to == servable {
                for i in running.iter().filter(|i| i.servable == from) {
                    self.networks
                        .connect(docker, servable, &container_name(i.id))
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Makes the servable networks match who may reach whom: on every running servable's
    /// network, its own container and those of the servables holding READ or REQUEST on it;
    /// anyone else leaves.
    pub async fn reconcile(&self) -> Result<()> {
        let docker = self.supervisor.docker().await?;
        let running: Vec<Instance> = servables::active_instances(&self.store)?
            .into_iter()
            .filter(|i| i.state == InstanceState::Running)
            .collect();
        let ids: Vec<(Id, Id)> = running.iter().map(|i| (i.servable, i.id)).collect();
        let store = self.store.clone();
        let pairs = blocking(move || servables::reachable(&store, &ids)).await?;
        let mut wanted: HashMap<Id, HashSet<String>> = HashMap::new();
        for i in &running {
            wanted
                .entry(i.servable)
                .or_default()
                .insert(container_name(i.id));
        }
        for (from, to) in pairs {
            let containers: Vec<String> = running
                .iter()
                .filter(|i| i.servable == from)
                .map(|i| container_name(i.id))
                .collect();
            wanted.entry(to).or_default().extend(containers);
        }
        for (servable, members) in &wanted {
            let present = self.networks.members(&docker, *servable).await?;
            for container in members.difference(&present) {
                self.networks.connect(&docker, *servable, container).await?;
            }
            for container in present.difference(members) {
                tracing::info!(%servable, container, "leaving a servable network: no longer granted");
                self.networks
                    .disconnect(&docker, *servable, container)
                    .await?;
            }
        }
        Ok(())
    }

    async fn reconcile_loop(&self) {
        loop {
            if let Err(e) = self.reconcile().await {
                tracing::warn!("reconciling servable networks: {e}");
            }
            tokio::select! {
                _ = self.access.notified() => {}
                _ = tokio::time::sleep(RECONCILE_EVERY) => {}
            }
        }
    }

    async fn measure_loop(&self) {
        let every = Duration::from_secs(self.config.volume_check_secs.max(1));
        loop {
            tokio::time::sleep(every).await;
            let daemons: Vec<Id> = match servables::active_instances(&self.store) {
                Ok(list) => list
                    .into_iter()
                    .filter(|i| i.kind == ServableType::Daemon && i.state == InstanceState::Running)
                    .map(|i| i.servable)
                    .collect(),
                Err(_) => continue,
            };
            for servable in daemons {
                if let Err(e) = self.measure_volume(servable).await {
                    tracing::debug!(%servable, "volume measurement: {e}");
                }
            }
        }
    }

    /// After a start: finish the deletions a crash cut, re-attach to running containers, let
    /// ended ones be recorded (and restarted by policy), fail instances whose container is
    /// gone, and remove what no record owns: containers, the networks and volumes of
    /// servables that are gone, and the utility containers of an earlier run.
    async fn recover(self: &Arc<Self>) {
        let docker = self.supervisor.wait_for_engine("servable recovery").await;
        let (active, deleting) = match servables::active_instances(&self.store)
            .and_then(|a| Ok((a, servables::deleting_servables(&self.store)?)))
        {
            Ok(read) => read,
            Err(e) => {
                tracing::error!("servable recovery cannot read the instances: {e}");
                return;
            }
        };
        let deleting: HashSet<Id> = deleting.iter().map(|s| s.id).collect();
        // The instances of a servable being deleted are stopped and removed with it.
        let active: Vec<Instance> = active
            .into_iter()
            .filter(|i| !deleting.contains(&i.servable))
            .collect();
        if !active.is_empty()
            && let Err(e) = self.endpoint().await
        {
            tracing::warn!("servable recovery: {e}");
        }
        for &servable in &deleting {
            tracing::info!(%servable, "finishing a deletion a crash cut");
            if let Err(e) = self.finish_deletion(servable).await {
                tracing::warn!(%servable, "servable recovery cannot finish a deletion: {e}");
            }
        }
        for instance in &active {
            let name = container_name(instance.id);
            if self.supervisor.has_started(&docker, &name).await == Some(true) {
                tracing::info!(instance = %instance.id, "re-attaching to a servable's container");
                if instance.state != InstanceState::Running
                    && self.supervisor.is_running(&docker, &name).await == Some(true)
                {
                    // The crash cut the start after the engine started the container and
                    // before `running` was recorded: record it now (one that ended meanwhile
                    // is recorded by its supervisor).
                    let network = servable_network(instance.servable);
                    let ip = self.supervisor.ipv4(&docker, &name, &network).await;
                    let now = self.clock.now();
                    let _ = update_instance(&self.store, instance.id, |i| {
                        if i.state.is_active() {
                            i.state = InstanceState::Running;
                            i.ipv4_address = ip;
                            i.started = Some(now);
                            i.finished = None;
                            i.exit_code = None;
                            i.error = None;
                        }
                    });
                    self.supervisor.hub().notify(instance.id);
                }
                self.spawn_supervisor(instance.id);
            } else {
                let now = self.clock.now();
                let _ = update_instance(&self.store, instance.id, |i| {
                    i.state = InstanceState::Failed;
                    i.error = Some(
                        "the server stopped before the container started, or the container is gone"
                            .into(),
                    );
                    i.finished = Some(now);
                    i.ipv4_address = None;
                });
                self.revoke_key(instance.api_key);
                // A container created but not started is of no use, and a start the engine
                // was still carrying out when the server died must not run it unrecorded.
                self.supervisor.remove(&docker, &name).await;
            }
        }
        // Containers of this installation's instances that no instance record owns, utility
        // containers an earlier run left, and networks and volumes of servables that are gone
        // (or whose deletion could not be finished above: they are not kept for them either).
        let store = self.store.clone();
        if let Err(e) = self
            .supervisor
            .remove_orphans("instance", |name| {
                // Kept when its instance exists, and when the store cannot tell.
                instance_of_container(name)
                    .is_some_and(|id| !matches!(servables::get_instance(&store, id), Ok(None)))
            })
            .await
        {
            tracing::warn!("servable recovery cannot list containers: {e}");
        }
        if let Err(e) = self.supervisor.remove_stale_utilities().await {
            tracing::warn!("servable recovery cannot list utility containers: {e}");
        }
        let live = |s: Id| match servables::get_servable(&store, s) {
            Ok(Some(s)) => !s.deleting,
            Ok(None) => false,
            // The store cannot tell: kept.
            Err(_) => true,
        };
        if let Err(e) = self.networks.remove_orphans(&docker, live).await {
            tracing::warn!("servable recovery cannot tidy networks: {e}");
        }
        match self.orphan_volumes(&docker, live).await {
            Ok(volumes) => {
                for volume in volumes {
                    tracing::info!(%volume, "removing the volume of a servable that is gone");
                    if let Err(e) = self.remove_volume(&docker, &volume).await {
                        tracing::warn!(%volume, "servable recovery cannot remove a volume: {e}");
                    }
                }
            }
            Err(e) => tracing::warn!("servable recovery cannot list volumes: {e}"),
        }
    }

    /// This installation's daemon volumes whose servable `live` refuses.
    async fn orphan_volumes(
        &self,
        docker: &Docker,
        live: impl Fn(Id) -> bool,
    ) -> Result<Vec<String>> {
        let filters: HashMap<String, Vec<String>> = [(
            "label".to_owned(),
            vec![
                format!("dtaas.installation={}", self.installation),
                "dtaas.kind=volume".to_owned(),
            ],
        )]
        .into();
        let options = bollard::query_parameters::ListVolumesOptionsBuilder::new()
            .filters(&filters)
            .build();
        let volumes = docker
            .list_volumes(Some(options))
            .await
            .map_err(|e| engine_error("listing volumes", e))?
            .volumes
            .unwrap_or_default();
        Ok(volumes
            .into_iter()
            .filter(|v| {
                v.labels
                    .get("dtaas.servable")
                    .and_then(|s| Id::parse(s))
                    .is_some_and(|s| !live(s))
            })
            .map(|v| v.name)
            .collect())
    }
}

/// The environment of an instance's container.
fn environment(
    endpoint: &Endpoint,
    servable: &Servable,
    instance: Id,
    issuer: Option<&str>,
) -> Vec<String> {
    let mut env = vec![
        format!("DTAAS_URL={}", endpoint.url),
        format!("DTAAS_API_URL={}/v1", endpoint.url),
        format!("DTAAS_API_KEY_FILE={SECRETS_DIR}/api-key"),
        format!("DTAAS_CONFIG_FILE={CONFIG_DIR}/config.json"),
        format!("DTAAS_SERVABLE_ID={}", servable.id),
        format!("DTAAS_SERVABLE_NAME={}", servable.name),
        format!("DTAAS_SERVABLE_TYPE={}", servable.kind.as_str()),
        format!("DTAAS_PROTOTYPE_ID={}", servable.prototype),
        format!("DTAAS_INSTANCE_ID={instance}"),
    ];
    // HTTP-type servables are OpenID Connect clients (`faces::oidc`).
    if let (true, Some(issuer)) = (servable.kind.serves_http(), issuer) {
        env.push(format!("DTAAS_OIDC_ISSUER={issuer}"));
        env.push(format!("DTAAS_OIDC_CLIENT_ID={}", servable.id));
        env.push(format!(
            "DTAAS_OIDC_CLIENT_SECRET_FILE={SECRETS_DIR}/oidc-client-secret"
        ));
    }
    env
}

/// The mode and owner of a container's key file. Only the container's user may read it: 0400,
/// owned by that user when the image names a numeric non-root `USER` and the server may hand
/// files over (it runs as root); root in the container reads the server's 0400 file anyway.
/// An image that runs as a named user the server cannot map gets 0444, still inside the data
/// directory no other local user can enter.
fn secret_file_access(user: &str) -> (u32, Option<u32>) {
    let name = user.split(':').next().unwrap_or("");
    if name.is_empty() || name == "root" || name == "0" {
        return (0o400, None);
    }
    let server_is_root = rustix::process::geteuid().is_root();
    match name.parse::<u32>() {
        Ok(uid) if server_is_root => (0o400, Some(uid)),
        _ => (0o444, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_for_the_container_user_alone_where_it_can_be_told() {
        assert_eq!(secret_file_access(""), (0o400, None));
        assert_eq!(secret_file_access("root"), (0o400, None));
        assert_eq!(secret_file_access("0:0"), (0o400, None));
        let numeric = secret_file_access("1000:1000");
        if rustix::process::geteuid().is_root() {
            assert_eq!(numeric, (0o400, Some(1000)));
        } else {
            assert_eq!(numeric, (0o444, None));
        }
        assert_eq!(secret_file_access("app").0, 0o444);
    }
}
