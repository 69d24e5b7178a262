//! The appliance on the servable network: the server also listens on the network's gateway
//! address, so that code inside a servable reaches the API at `DTAAS_URL` (the main listener is
//! usually on loopback, which containers cannot reach). The port is remembered, so that
//! containers that outlive a restart still find the appliance there.

use crate::core::error::{Error, Result};
use crate::domains::accounts;
use crate::engine::instances::Gateway;
use crate::faces::App;
use crate::faces::state::WeakApp;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;

/// The setting that remembers the gateway listener's port.
const PORT_SETTING: &str = "servables.gateway_port";

/// The gateway listener, opened on first use. Holds the application weakly: the application
/// holds it.
pub struct ServerGateway {
    app: WeakApp,
}

impl ServerGateway {
    pub fn new(app: &App) -> ServerGateway {
        ServerGateway {
            app: app.downgrade(),
        }
    }
}

impl Gateway for ServerGateway {
    fn url<'a>(
        &'a self,
        gateway: IpAddr,
    ) -> Pin<Box<dyn Future<Output = Result<String>> + Send + 'a>> {
        Box::pin(async move {
            let app = self
                .app
                .upgrade()
                .ok_or_else(|| Error::Unavailable("the server is shutting down".into()))?;
            listen(&app, gateway).await
        })
    }
}

async fn listen(app: &App, gateway: IpAddr) -> Result<String> {
    let main = app.local_addr();
    if main.ip().is_unspecified() && !app.config.tls_enabled() {
        // The main listener already answers on every address, the gateway's included. (Over
        // TLS it does not do for containers, which do not trust its certificate: they get a
        // plain listener of their own on the gateway, a network local to this machine.)
        return Ok(format!("http://{gateway}:{}", main.port()));
    }
    let remembered = app
        .blocking(|app| accounts::setting(&app.store, PORT_SETTING))
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
    app.blocking(move |app| accounts::set_setting(&app.store, PORT_SETTING, &port))
        .await?;
    let router = crate::faces::router(app.clone());
    let tasks = app.tasks.clone();
    app.tasks.spawn_to_end(async move {
        let served = axum::serve(
            super::no_delay(listener),
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { tasks.cancelled().await })
        .await;
        if let Err(e) = served {
            tracing::error!("the servable gateway listener failed: {e}");
        }
    });
    Ok(format!("http://{addr}"))
}
