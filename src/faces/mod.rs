//! faces: how the appliance is reached. Each face maps the domain error to its own bodies and
//! uses the one credential resolver ([`auth`]) and the one authorization check
//! (`domains::authz`).
//!
//! | face | where | module | error dialect |
//! | --- | --- | --- | --- |
//! | kabuto-compatible API | `/register`, `/login`, `/image`, `/pipeline`, `/jobs`, `/execution` | [`kabuto`] | `{"error": "..."}` |
//! | JSON API | `/v1/...`, documented at `/v1/doc` | [`v1`] | `{"error": {"code", "message"}}` |
//! | registry | `/v2/...` | [`v2`] | `{"errors": [{"code", "message", "detail"}]}` |
//! | app proxy | `<servable id>.<apps-domain>`, `/apps/<id>/` | [`proxy`] | /v1's |
//! | health | `/healthz`, `/readyz` | [`health`] | kabuto's |
//! | admin socket | `<data>/admin.sock` | [`admin`] | one JSON line |
//!
//! [`router`] builds every HTTP face and layer over one [`App`] state.

pub mod admin;
pub mod auth;
pub mod body;
pub mod csrf;
pub mod download;
pub mod errors;
pub mod health;
pub mod kabuto;
pub mod proxy;
pub mod state;
pub mod upload;
pub mod upstream;
pub mod v1;
pub mod v2;
pub mod views;

pub use state::App;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use std::time::Instant;

/// Every HTTP face of the appliance, with its layers.
pub fn router(app: App) -> Router {
    let upload_limit = usize::try_from(app.config.limits.max_upload_mb.saturating_mul(1024 * 1024))
        .unwrap_or(usize::MAX);
    Router::new()
        .merge(kabuto::routes(upload_limit))
        .merge(v2::routes())
        .merge(health::routes())
        .merge(v1::router())
        .merge(proxy::routes())
        .fallback(errors::not_found)
        .layer(middleware::map_response(errors::kabuto))
        .layer(middleware::from_fn_with_state(
            app.clone(),
            proxy::host_layer,
        ))
        .layer(middleware::from_fn(csrf::same_origin_only))
        .layer(middleware::from_fn(log_request))
        .with_state(app)
}

/// One log line per request: method, path, status, latency. Paths that carry secrets (the
/// confirmation token) are logged as their route pattern.
async fn log_request(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    let path = match request.extensions().get::<MatchedPath>() {
        Some(p) if p.as_str().contains("{token}") => p.as_str().to_owned(),
        _ => request.uri().path().to_owned(),
    };
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let latency_us = start.elapsed().as_micros();
    tracing::info!(target: "dtaas::http", %method, %path, status, latency_us, "request");
    response
}
