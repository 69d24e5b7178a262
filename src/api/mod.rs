//! HTTP: one [`router`] building every face and layer.
//!
//! | face | module | error dialect |
//! | --- | --- | --- |
//! | kabuto-compatible API (`/register`, `/login`, `/`, ...) | [`kabuto`] | `{"error": "..."}` |
//! | JSON API (`/v1/...`) | [`v1`] | `{"error": {"code", "message"}}` |
//! | health (`/healthz`, `/readyz`) | [`health`] | kabuto's |
//!
//! Handlers return `Result<_, Error>`; a face's `map_response` layer renders the error body
//! (see [`faces`]). Authentication is an extractor ([`auth::Auth`]).

pub mod auth;
pub mod body;
pub mod faces;
pub mod health;
pub mod kabuto;
pub mod kabuto_jobs;
pub mod openapi;
pub mod upload;
pub mod v1;
pub mod v1_access;
pub mod v1_jobs;
pub mod v1_model;
pub mod views;

use crate::server::App;
use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use std::time::Instant;

pub fn router(app: App) -> Router {
    let upload_limit = usize::try_from(app.config.limits.max_upload_mb.saturating_mul(1024 * 1024))
        .unwrap_or(usize::MAX);
    Router::new()
        .merge(kabuto::routes())
        .merge(kabuto_jobs::routes(upload_limit))
        .merge(crate::registry::routes())
        .merge(health::routes())
        .merge(v1_router())
        .merge(crate::proxy::routes())
        .fallback(faces::not_found)
        .layer(middleware::map_response(faces::kabuto))
        .layer(middleware::from_fn_with_state(
            app.clone(),
            crate::proxy::host_layer,
        ))
        .layer(middleware::from_fn(log_request))
        .with_state(app)
}

/// /v1 with its documentation and its error dialect.
fn v1_router() -> Router<App> {
    let (router, api) = v1::routes().split_for_parts();
    router
        .merge(openapi::routes(openapi::finish(api)))
        .route("/v1/{*rest}", axum::routing::any(faces::not_found))
        .layer(middleware::map_response(faces::v1))
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
