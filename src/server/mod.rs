//! server: wiring and life cycle. [`open`] opens the data directory and builds each layer's
//! services from the narrow handles they use; [`launch_with_listener`] serves every face on one
//! listener (and the admin socket, and the servable network's gateway listener when needed),
//! starts the background work, and shuts down gracefully; [`serve`] is `dtaas serve`.

mod gateway;

pub use crate::faces::App;

use crate::core::clock::Clock;
use crate::core::config::Config;
use crate::core::store::StoreError;
use crate::core::tasks::{Tasks, blocking};
use crate::domains::accounts::{PasswordLogins, SessionPolicy};
use crate::domains::logs::LogHub;
use crate::domains::open_store_with_cache;
use crate::domains::registry::blobs::BlobStore;
use crate::domains::registry::gc;
use crate::engine::Engine;
use crate::engine::builds::Builder;
use crate::engine::instances::Runtime;
use crate::engine::jobs::Runner;
use crate::engine::registry_sync::RegistrySync;
use crate::engine::supervisor::Supervisor;
use crate::faces::state::AppInner;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;

/// Why the application could not be built.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Setup(#[from] crate::core::error::Error),
}

/// Opens the data directory and builds the application. Fails at once if another server holds
/// the directory.
pub fn open(config: Config, clock: Arc<dyn Clock>) -> Result<App, OpenError> {
    crate::core::fs::restrict_umask();
    let store = open_store_with_cache(&config.data_dir, config.store.cache_mb)?;
    let data_dir =
        std::fs::canonicalize(&config.data_dir).map_err(|source| StoreError::DataDir {
            dir: config.data_dir.clone(),
            source,
        })?;
    for sub in ["tmp", "images", "jobs"] {
        std::fs::create_dir_all(data_dir.join(sub)).map_err(|source| StoreError::DataDir {
            dir: data_dir.join(sub),
            source,
        })?;
    }
    let installation = store.installation_id()?;
    let tasks = Tasks::new();
    let engine = Arc::new(Engine::new(&config.docker.host));
    let hub = Arc::new(LogHub::new(&config.logs));
    let blobs = Arc::new(
        BlobStore::new(&data_dir).map_err(|source| StoreError::DataDir {
            dir: data_dir.join("registry"),
            source,
        })?,
    );
    let registry = Arc::new(RegistrySync::new(
        store.clone(),
        engine.clone(),
        blobs.clone(),
        clock.clone(),
        &data_dir,
    ));
    let supervisor = Arc::new(Supervisor::new(
        engine.clone(),
        store.clone(),
        hub.clone(),
        installation,
        tasks.clone(),
        data_dir.clone(),
        &config.containers,
    ));
    let jobs = Arc::new(Runner::new(
        supervisor.clone(),
        store.clone(),
        clock.clone(),
        config.jobs.clone(),
        data_dir.clone(),
    ));
    let instances = Arc::new(Runtime::new(
        supervisor,
        store.clone(),
        clock.clone(),
        config.servables.clone(),
        data_dir.clone(),
        installation,
        registry.clone(),
    )?);
    let builds = Arc::new(Builder::new(
        store.clone(),
        engine.clone(),
        clock.clone(),
        config.images.clone(),
        config.limits.max_upload_mb,
        data_dir.clone(),
        installation,
        registry.clone(),
        tasks.clone(),
    ));
    Ok(App::new(AppInner {
        sessions: SessionPolicy::from_config(&config.sessions),
        logins: Arc::new(PasswordLogins::new(&config.login_limit)),
        registrations: crate::domains::accounts::RegistrationLimiter::new(
            &config.registration_limit,
        ),
        upstream: crate::faces::upstream::Upstream::new(),
        listen_addr: OnceLock::new(),
        store,
        clock,
        engine,
        hub,
        jobs,
        instances,
        builds,
        registry,
        blobs,
        data_dir,
        installation,
        tasks,
        config,
    }))
}

/// Serves every face on `listener` and the admin socket in the data directory until `shutdown`
/// completes, then finishes in-flight requests and returns. Tests call this with a listener on
/// `127.0.0.1:0` and a temporary data directory.
pub async fn launch_with_listener(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let wait_for_stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    if let Ok(addr) = listener.local_addr() {
        let _ = app.listen_addr.set(addr);
    }
    let admin = crate::faces::admin::AdminSocket::bind(app.clone())?;
    let admin_task = tokio::spawn(admin.serve(wait_for_stop(stop_rx.clone())));

    // Background work: the base image, interrupted builds, the job runner, the servables,
    // registry garbage collection.
    let engine = app.engine.clone();
    app.tasks
        .spawn(async move { engine.provide_base_image().await });
    if let Err(e) = app.builds.resume_pending_builds() {
        tracing::error!("cannot resume interrupted builds: {e}");
    }
    app.instances
        .set_gateway(Arc::new(gateway::ServerGateway::new(&app)));
    app.jobs.start();
    app.instances.start_background();
    start_registry_gc(&app);

    let router = crate::faces::router(app.clone());
    let listener = no_delay(listener);
    let result = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(wait_for_stop(stop_rx))
    .await;
    let _ = admin_task.await;
    // Containers keep running; the next start re-attaches to them.
    app.tasks.shut_down().await;
    result
}

/// Collects unreferenced registry blobs and stale uploads every `registry.gc_interval_secs`.
fn start_registry_gc(app: &App) {
    let config = &app.config.registry;
    let every = Duration::from_secs(config.gc_interval_secs.max(1));
    let grace = Duration::from_secs(config.gc_grace_secs);
    let ttl = Duration::from_secs(config.upload_ttl_secs);
    let (store, blobs, clock) = (app.store.clone(), app.blobs.clone(), app.clock.clone());
    app.tasks.spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let (store, blobs, now) = (store.clone(), blobs.clone(), clock.now());
            match blocking(move || gc::collect(&store, &blobs, now, grace, ttl)).await {
                Ok(r) if r != gc::GcReport::default() => {
                    tracing::info!(?r, "registry garbage collected")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("registry garbage collection: {e}"),
            }
        }
    });
}

/// Accepted connections send small writes at once. Without it Nagle's algorithm holds a
/// response body written after its head until the client acknowledges the head, which delayed
/// ACKs put off by up to 40 ms: a quarter of proxied requests stalled that long.
pub fn no_delay(
    listener: TcpListener,
) -> axum::serve::TapIo<TcpListener, impl FnMut(&mut tokio::net::TcpStream) + Send + 'static> {
    use axum::serve::ListenerExt;
    listener.tap_io(|stream: &mut tokio::net::TcpStream| {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY: {e}");
        }
    })
}

/// Keeps large, short-lived allocations (argon2's 19 MiB per password check) from staying
/// resident after they are freed. glibc raises its mmap threshold dynamically after the first
/// such free, so later blocks come from per-thread heaps and stay there: three logins on three
/// blocking threads left 46 MiB resident instead of 8. A fixed threshold returns them at once.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only adjusts allocator parameters; it is called once at start-up,
        // before any other thread exists.
        let applied = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
        if applied != 1 {
            tracing::debug!("mallopt(M_MMAP_THRESHOLD) was not applied");
        }
    }
}

/// `dtaas serve`: bind, tell systemd we are ready, serve until SIGTERM or SIGINT.
pub async fn serve(config: Config, clock: Arc<dyn Clock>) -> Result<(), String> {
    let app = open(config, clock).map_err(|e| e.to_string())?;
    let addr = app.config.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    tracing::info!(
        listen = %addr,
        data_dir = %app.config.data_dir.display(),
        docker = %app.config.docker.host,
        "dtaas {} serving on http://{addr}",
        env!("CARGO_PKG_VERSION")
    );
    let engine = app.engine.clone();
    tokio::spawn(async move {
        match engine.info().await {
            Ok(info) => tracing::info!(
                version = %info.version,
                api = %info.api_version,
                "Docker engine connected"
            ),
            Err(e) => tracing::warn!("{e}; /readyz will report not ready until it answers"),
        }
    });
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    launch_with_listener(app, listener, shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))?;
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
