//! Background work of a running server: tasks that end when it shuts down, and blocking work
//! kept off the async worker threads.

use super::error::{Error, Result};
use std::future::Future;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The server's background tasks; cheap to clone. Shutting down cancels them and waits until
/// each has ended.
#[derive(Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Tasks {
    pub fn new() -> Tasks {
        Tasks::default()
    }

    /// Runs `work` until it ends or the server shuts down, whichever comes first.
    pub fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        let shutdown = self.shutdown.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = work => {}
            }
        });
    }

    /// Runs `work` to its end; shutting down waits for it (it must end on its own, e.g. by
    /// watching [`Tasks::cancelled`]).
    pub fn spawn_to_end(&self, work: impl Future<Output = ()> + Send + 'static) {
        self.tracker.spawn(work);
    }

    /// Completes when the server shuts down.
    pub async fn cancelled(&self) {
        self.shutdown.cancelled().await
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Cancels every task and waits until all have ended.
    pub async fn shut_down(&self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// Runs blocking work (password hashing, durable commits, scans) on tokio's blocking pool.
pub async fn blocking<T, F>(work: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::internal(format!("background task failed: {e}")))?
}
