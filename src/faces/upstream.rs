//! The pooled HTTP client the app proxy forwards with: one HTTP/1 client for every app, so a
//! keep-alive connection to a backend serves many requests (a new TCP connection per request
//! would cost more than the whole latency budget).

use axum::body::Body;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;

/// A backend that does not accept a connection within this is reported as unreachable (a
/// container that just died leaves an address nobody answers on, and SYNs would otherwise be
/// retried for minutes).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle keep-alive connections to apps are closed after this. Short enough that few backends
/// close them first (uvicorn and Node default to 5 s, and hyper notices a close while idle),
/// long enough that a benchmark or a busy page reuses them.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The client (see the module).
pub struct Upstream {
    pub client: Client<HttpConnector, Body>,
}

impl Upstream {
    pub fn new() -> Upstream {
        let mut connector = HttpConnector::new();
        // Small requests and responses must not wait for Nagle's algorithm.
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new())
            // Without a timer the idle timeout is only checked when a connection is checked out.
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        Upstream { client }
    }
}

impl Default for Upstream {
    fn default() -> Self {
        Upstream::new()
    }
}
