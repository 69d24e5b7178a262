//! The server's shared state and its life cycle: open the store, serve every face on one listener
//! (plus the admin socket), shut down gracefully.

use crate::accounts::{LoginLimiter, SessionPolicy};
use crate::clock::Clock;
use crate::config::Config;
use crate::engine::Engine;
use crate::id::Id;
use crate::jobs::Runner;
use crate::store::{self, Store, StoreError};
use std::future::Future;
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Everything a request handler may need; passed as axum `State`, cheap to clone.
#[derive(Clone)]
pub struct App(Arc<AppInner>);

pub struct AppInner {
    pub config: Config,
    pub store: Store,
    pub engine: Engine,
    pub clock: Arc<dyn Clock>,
    pub limiter: LoginLimiter,
    pub sessions: SessionPolicy,
    /// The data directory, absolute (bind mounts need it so).
    pub data_dir: PathBuf,
    /// Labels this installation's containers (several servers may share one engine).
    pub installation: Id,
    pub runner: Runner,
    pub registry: crate::registry::Registry,
    pub servables: crate::servables::runtime::Runtime,
    pub proxy: crate::proxy::Proxy,
    /// The main listener's address, once bound.
    pub listen_addr: std::sync::OnceLock<SocketAddr>,
    pub build_slots: Semaphore,
    /// Background work (builds, pipeline runs); waited for at shutdown.
    pub tasks: TaskTracker,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
}

impl Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl App {
    /// Opens the data directory. Fails at once if another server holds it.
    pub fn open(config: Config, clock: Arc<dyn Clock>) -> Result<App, StoreError> {
        let store = store::open(&config.data_dir)?;
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
        Ok(App(Arc::new(AppInner {
            engine: Engine::new(&config.docker.host),
            limiter: LoginLimiter::new(&config.login_limit),
            sessions: SessionPolicy::from_config(&config.sessions),
            installation: store.installation_id()?,
            runner: Runner::new(config.jobs.max_parallel),
            registry: crate::registry::Registry::new(&data_dir).map_err(|source| {
                StoreError::DataDir {
                    dir: data_dir.join("registry"),
                    source,
                }
            })?,
            servables: Default::default(),
            proxy: crate::proxy::Proxy::new(),
            listen_addr: std::sync::OnceLock::new(),
            build_slots: Semaphore::new(config.images.max_parallel_builds as usize),
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            data_dir,
            store,
            clock,
            config,
        })))
    }

    /// The main listener's address (the configured one until bound).
    pub fn local_addr(&self) -> SocketAddr {
        self.listen_addr
            .get()
            .copied()
            .unwrap_or(self.config.listen)
    }

    pub fn now(&self) -> crate::clock::Timestamp {
        self.clock.now()
    }

    /// Runs blocking work (password hashing, durable commits) off the async worker threads.
    pub async fn blocking<T, F>(&self, f: F) -> crate::Result<T>
    where
        F: FnOnce(&App) -> crate::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let app = self.clone();
        tokio::task::spawn_blocking(move || f(&app))
            .await
            .map_err(|e| crate::Error::internal(format!("background task failed: {e}")))?
    }
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
    let admin = crate::admin::AdminSocket::bind(app.clone())?;
    let admin_task = tokio::spawn(admin.serve(wait_for_stop(stop_rx.clone())));

    // Background work: the base image, interrupted builds, the job runner.
    let base_app = app.clone();
    app.tasks.spawn(async move {
        let shutdown = base_app.shutdown.clone();
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = base_app.engine.provide_base_image() => {}
        }
    });
    if let Err(e) = crate::images::resume_pending_builds(&app) {
        tracing::error!("cannot resume interrupted builds: {e}");
    }
    crate::jobs::runner::start(&app);
    crate::registry::gc::start(&app);
    crate::servables::runtime::start_background(&app);

    let router = crate::api::router(app.clone());
    let listener = no_delay(listener);
    let result = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(wait_for_stop(stop_rx))
    .await;
    let _ = admin_task.await;
    // Containers keep running; the next start re-attaches to them.
    app.shutdown.cancel();
    app.tasks.close();
    app.tasks.wait().await;
    result
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
    let app = App::open(config, clock).map_err(|e| e.to_string())?;
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
    let engine_app = app.clone();
    tokio::spawn(async move {
        match engine_app.engine.info().await {
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
