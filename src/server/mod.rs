//! server: wiring and life cycle. [`open`] opens the data directory and builds each layer's
//! services from the narrow handles they use; [`launch_with_listener`] serves every face on one
//! listener (and the admin socket, and the servable network's gateway listener when needed),
//! starts the background work, and shuts down gracefully; [`serve`] is `dtaas serve`.

mod gateway;
pub mod tls;

pub use crate::faces::App;

use crate::core::clock::Clock;
use crate::core::config::Config;
use crate::core::metrics::Metrics;
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
    let metrics = Arc::new(Metrics::default());
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
        metrics.clone(),
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
        metrics,
        list_slots: crate::faces::state::list_slots(),
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
    // TLS first: a certificate that cannot be loaded stops the start before anything runs.
    let tls = if app.config.tls_enabled() {
        Some(start_tls(&app, stop_rx.clone()).await?)
    } else {
        None
    };
    // Backups hold the server's generated TLS certificate and its authority too.
    let admin =
        crate::faces::admin::AdminSocket::bind(app.clone())?.keep_in_backups(&[tls::TLS_DIR]);
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
    app.instances.set_issuer(crate::domains::oidc::issuer(
        &app.config.public_url,
        app.config.tls_enabled(),
        app.local_addr(),
    ));
    app.jobs.start();
    app.instances.start_background();
    start_registry_gc(&app);
    // The overview's charts: CPU and memory of running containers over the last hour, disk use.
    crate::engine::usage::keep_history(
        &app.metrics,
        &app.engine,
        app.installation,
        &app.data_dir,
        &app.tasks,
    );

    let router = crate::faces::router(app.clone());
    let result = match tls {
        Some(tls) => {
            use axum::serve::ListenerExt;
            let hsts = app.config.tls.hsts_max_age_secs;
            let router = router.layer(axum::middleware::map_response(move |r| {
                strict_transport_security(r, hsts)
            }));
            axum::serve(
                tls.listener(listener)?.tap_io(|_| ()),
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(wait_for_stop(stop_rx))
            .await
        }
        None => {
            axum::serve(
                no_delay(listener),
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(wait_for_stop(stop_rx))
            .await
        }
    };
    let _ = admin_task.await;
    // Containers keep running; the next start re-attaches to them.
    app.tasks.shut_down().await;
    result
}

/// Loads the certificate (printing its fingerprints), reloads it on SIGHUP, and opens the
/// plain-HTTP listener that redirects to HTTPS when one is configured.
async fn start_tls(
    app: &App,
    stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<Arc<tls::TlsState>> {
    let (state, loaded) = tls::TlsState::new(&app.config, &app.data_dir, app.local_addr())
        .map_err(std::io::Error::other)?;
    report_certificate(&loaded, "TLS certificate loaded");
    let state = Arc::new(state);
    let reloading = state.clone();
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut stopping = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                got = hangups.recv() => if got.is_none() { return },
                _ = stopping.wait_for(|s| *s) => return,
            }
            match reloading.reload() {
                Ok(loaded) => report_certificate(&loaded, "TLS certificate reloaded (SIGHUP)"),
                Err(e) => tracing::error!("{e}; the certificate in use stays"),
            }
        }
    });
    if !app.config.tls.redirect_listen.is_empty() {
        let addr: SocketAddr = app
            .config
            .tls
            .redirect_listen
            .parse()
            .map_err(|_| std::io::Error::other("tls.redirect_listen is not an address:port"))?;
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot listen on {addr} (tls.redirect_listen): {e}"),
            )
        })?;
        let port = app.local_addr().port();
        let mut stopping = stop;
        tokio::spawn(async move {
            let router =
                axum::Router::new().fallback(move |request: axum::extract::Request| async move {
                    redirect_to_https(&request, port)
                });
            let served = axum::serve(no_delay(listener), router)
                .with_graceful_shutdown(async move {
                    let _ = stopping.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!("the HTTPS redirect listener failed: {e}");
            }
        });
        tracing::info!(listen = %addr, "redirecting plain HTTP to HTTPS");
    }
    Ok(state)
}

fn report_certificate(loaded: &tls::Loaded, what: &str) {
    match (&loaded.ca_fingerprint, &loaded.ca_file) {
        (Some(ca), Some(file)) => tracing::info!(
            certificate_sha256 = %loaded.cert_fingerprint,
            ca_sha256 = %ca,
            ca_file = %file.display(),
            "{what}: generated, signed by this server's certificate authority; clients trust \
             its ca.crt"
        ),
        _ => tracing::info!(certificate_sha256 = %loaded.cert_fingerprint, "{what}"),
    }
}

/// `Strict-Transport-Security` on every answer over TLS (none when `max_age` is 0).
async fn strict_transport_security(
    mut response: axum::response::Response,
    max_age: u64,
) -> axum::response::Response {
    if max_age > 0
        && let Ok(v) = axum::http::HeaderValue::from_str(&format!("max-age={max_age}"))
    {
        response
            .headers_mut()
            .insert(axum::http::header::STRICT_TRANSPORT_SECURITY, v);
    }
    response
}

/// A permanent redirect to the same host, path and query over HTTPS on `port`. The host comes
/// from the request's Host header when it is a plain host name or address.
fn redirect_to_https(request: &axum::extract::Request, port: u16) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    let host = request
        .headers()
        .get(header::HOST)
        .map(|h| h.as_bytes())
        .and_then(host_of);
    let Some(host) = host else {
        return (
            StatusCode::BAD_REQUEST,
            "a Host header is needed to redirect to HTTPS\n",
        )
            .into_response();
    };
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let port = if port == 443 {
        String::new()
    } else {
        format!(":{port}")
    };
    let location = format!("https://{host}{port}{path}");
    match axum::http::HeaderValue::from_str(&location) {
        Ok(v) => (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, v)]).into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// The host of a Host header without its port, if it is a host name or an address (nothing
/// else is echoed into a Location).
fn host_of(value: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?;
    let host = if let Some(rest) = text.strip_prefix('[') {
        // [v6]:port
        let (inner, _) = rest.split_once(']')?;
        inner.parse::<std::net::Ipv6Addr>().ok()?;
        return Some(format!("[{inner}]"));
    } else {
        text.rsplit_once(':').map_or(text, |(h, _)| h)
    };
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    ok.then(|| host.to_ascii_lowercase())
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
///
/// And keeps the number of heaps small: glibc gives threads up to eight heaps per core, and
/// each keeps what it freed, fragmented. Lists build their views on blocking threads, which
/// come and go: with the default, four clients listing pages of 1,000 jobs left 64-78 MiB
/// resident where 27 MiB stayed with the work on the two async workers.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        for (name, param, value) in [
            ("M_MMAP_THRESHOLD", libc::M_MMAP_THRESHOLD, 128 * 1024),
            ("M_ARENA_MAX", libc::M_ARENA_MAX, 2),
        ] {
            // SAFETY: mallopt only adjusts allocator parameters; it is called once at
            // start-up, before any other thread exists.
            let applied = unsafe { libc::mallopt(param, value) };
            if applied != 1 {
                tracing::debug!("mallopt({name}) was not applied");
            }
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
    let scheme = if app.config.tls_enabled() {
        "https"
    } else {
        "http"
    };
    tracing::info!(
        listen = %addr,
        data_dir = %app.config.data_dir.display(),
        docker = %app.config.docker.host,
        "dtaas {} serving on {scheme}://{addr}",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_host_names_and_addresses_are_redirected_to() {
        assert_eq!(host_of(b"example.org:80").as_deref(), Some("example.org"));
        assert_eq!(host_of(b"Example.ORG").as_deref(), Some("example.org"));
        assert_eq!(host_of(b"10.0.0.1:8080").as_deref(), Some("10.0.0.1"));
        assert_eq!(host_of(b"[::1]:80").as_deref(), Some("[::1]"));
        for bad in [
            &b""[..],
            b"evil.org/path",
            b"a b",
            b"x@evil.org",
            b"[not-v6]:80",
            b"\xff",
            b"host\r\nX: y",
        ] {
            assert_eq!(host_of(bad), None, "{bad:?}");
        }
    }
}
