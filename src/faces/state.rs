//! What every face's handlers receive as axum `State`: the configuration, the store and the
//! services of the layers below. The server builds it (`server::open`); cheap to clone.

use crate::core::clock::{Clock, Timestamp};
use crate::core::config::Config;
use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::core::metrics::Metrics;
use crate::core::store::Store;
use crate::core::tasks::Tasks;
use crate::domains::accounts::{PasswordLogins, RegistrationLimiter, SessionPolicy};
use crate::domains::logs::LogHub;
use crate::domains::registry::blobs::BlobStore;
use crate::engine::Engine;
use crate::engine::builds::Builder;
use crate::engine::instances::Runtime;
use crate::engine::jobs::Runner;
use crate::engine::registry_sync::RegistrySync;
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, Weak};

#[derive(Clone)]
pub struct App(Arc<AppInner>);

pub struct AppInner {
    pub config: Config,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub engine: Arc<Engine>,
    /// Wakes the live followers of job and instance logs.
    pub hub: Arc<LogHub>,
    pub sessions: SessionPolicy,
    /// The one password-login sequence and its limiter.
    pub logins: Arc<PasswordLogins>,
    /// Registrations per client address (`registration_limit`).
    pub registrations: RegistrationLimiter,
    pub jobs: Arc<Runner>,
    pub instances: Arc<Runtime>,
    pub builds: Arc<Builder>,
    pub registry: Arc<RegistrySync>,
    pub blobs: Arc<BlobStore>,
    /// The app proxy's pooled client.
    pub upstream: super::upstream::Upstream,
    /// The data directory, absolute (bind mounts need it so).
    pub data_dir: PathBuf,
    /// Labels this installation's containers (several servers may share one engine).
    pub installation: Id,
    /// The main listener's address, once bound.
    pub listen_addr: OnceLock<SocketAddr>,
    /// Background work; waited for at shutdown.
    pub tasks: Tasks,
    /// The counters `/metrics` shows.
    pub metrics: Arc<Metrics>,
    /// How many lists may read and serialize at once ([`App::listing`]).
    pub list_slots: tokio::sync::Semaphore,
}

/// The lists that may run at once: one core fewer than the machine has (at least one), so
/// that however many clients list, a core is left for the async workers and every other
/// request. A list waiting for a slot waits without a thread.
pub fn list_slots() -> tokio::sync::Semaphore {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    tokio::sync::Semaphore::new(cores.saturating_sub(1).max(1))
}

impl Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl App {
    pub fn new(inner: AppInner) -> App {
        App(Arc::new(inner))
    }

    /// A handle that does not keep the application alive (for what the application itself
    /// holds, such as the gateway listener).
    pub fn downgrade(&self) -> WeakApp {
        WeakApp(Arc::downgrade(&self.0))
    }

    /// The main listener's address (the configured one until bound).
    pub fn local_addr(&self) -> SocketAddr {
        self.listen_addr
            .get()
            .copied()
            .unwrap_or(self.config.listen)
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Runs a list's work (reading a page, making its views, serializing it) on the blocking
    /// pool, in one of the [`list_slots`].
    pub async fn listing<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&App) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let _slot = self
            .list_slots
            .acquire()
            .await
            .map_err(|_| Error::internal("the list slots are closed"))?;
        self.blocking(f).await
    }

    /// Runs blocking work (password hashing, durable commits) off the async worker threads.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&App) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let app = self.clone();
        tokio::task::spawn_blocking(move || f(&app))
            .await
            .map_err(|e| Error::internal(format!("background task failed: {e}")))?
    }
}

/// See [`App::downgrade`].
#[derive(Clone)]
pub struct WeakApp(Weak<AppInner>);

impl WeakApp {
    pub fn upgrade(&self) -> Option<App> {
        self.0.upgrade().map(App)
    }
}
