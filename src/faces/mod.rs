//! faces: how the appliance is reached. Each face maps the domain error to its own bodies and
//! uses the one credential resolver ([`auth`]) and the one authorization check
//! (`domains::authz`).
//!
//! | face | where | module | error dialect |
//! | --- | --- | --- | --- |
//! | kabuto-compatible API | `/register`, `/login`, `/image`, `/pipeline`, `/jobs`, `/execution` | [`kabuto`] | `{"error": "..."}` |
//! | dashboard (people) | `/ui/...` | [`dashboard`] | HTML pages; 401 redirects to `/login` |
//! | JSON API | `/v1/...`, documented at `/v1/doc` | [`v1`] | `{"error": {"code", "message"}}` |
//! | registry | `/v2/...` | [`v2`] | `{"errors": [{"code", "message", "detail"}]}` |
//! | app proxy | `<servable id>.<apps-domain>`, `/apps/<id>/` | [`proxy`] | /v1's |
//! | OpenID Connect provider | `/.well-known/openid-configuration`, `/oidc/...` | [`oidc`] | OAuth's `{"error", "error_description"}`; HTML pages |
//! | health | `/healthz`, `/readyz` | [`health`] | kabuto's |
//! | metrics (admins) | `/metrics` | [`metrics`] | kabuto's |
//! | admin socket | `<data>/admin.sock` | [`admin`] | one JSON line |
//!
//! [`router`] builds every HTTP face and layer over one [`App`] state.

pub mod admin;
pub mod auth;
pub mod body;
pub mod csrf;
pub mod dashboard;
pub mod download;
pub mod errors;
pub mod health;
pub mod kabuto;
pub mod listing;
pub mod metrics;
pub mod oidc;
pub mod params;
pub mod proxy;
pub mod registration;
pub mod state;
pub mod upload;
pub mod upstream;
pub mod v1;
pub mod v2;
pub mod views;

pub use state::App;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use std::time::Instant;

/// Every HTTP face of the appliance, with its layers.
pub fn router(app: App) -> Router {
    let upload_limit = usize::try_from(app.config.limits.max_upload_mb.saturating_mul(1024 * 1024))
        .unwrap_or(usize::MAX);
    let faces = Router::new()
        .merge(kabuto::routes(upload_limit))
        .merge(v2::routes())
        .merge(health::routes())
        .merge(metrics::routes())
        .merge(v1::router())
        .merge(dashboard::routes())
        .merge(proxy::routes())
        .merge(oidc::routes())
        .fallback(errors::not_found);
    with_kabuto_errors(faces)
        .layer(middleware::from_fn_with_state(
            app.clone(),
            proxy::host_layer,
        ))
        .layer(middleware::from_fn(csrf::same_origin_only))
        .layer(middleware::from_fn_with_state(
            app.clone(),
            metrics::count_request,
        ))
        .layer(middleware::from_fn(log_request))
        .with_state(app)
}

/// kabuto's error dialect over every route and the fallback (/v1 and /v2 render theirs before
/// it), with a panic in a handler caught under it (`errors::catch_panic`): kabuto's 500.
fn with_kabuto_errors<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .layer(middleware::from_fn(errors::catch_panic))
        .layer(middleware::map_response(errors::kabuto))
}

/// One log line per request: method, path, status, latency. Paths that carry secrets (the
/// confirmation token) are logged as their route pattern.
async fn log_request(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    let path = errors::loggable_path(&request);
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let latency_us = start.elapsed().as_micros();
    tracing::info!(target: "dtaas::http", %method, %path, status, latency_us, "request");
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::get;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    async fn boom() -> &'static str {
        panic!("a bug in a handler")
    }

    async fn fine() -> &'static str {
        "fine"
    }

    /// The faces composed as [`router`] composes them, each with a route that panics.
    fn faces() -> Router {
        let v1 = v1::with_v1_errors(Router::new().route("/v1/boom", get(boom)));
        let v2 = v2::with_registry_errors(Router::new().route("/v2/boom", get(boom)));
        let all = Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(fine))
            .merge(v1)
            .merge(v2)
            .fallback(errors::not_found);
        with_kabuto_errors(all)
    }

    async fn call(path: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
        let request = Request::builder().uri(path).body(Body::empty()).unwrap();
        let response = faces().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (parts.status, parts.headers, bytes.to_vec())
    }

    async fn call_json(path: &str) -> (StatusCode, HeaderMap, Value) {
        let (status, headers, body) = call(path).await;
        let value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body:?}"));
        (status, headers, value)
    }

    #[tokio::test]
    async fn a_panic_in_a_handler_is_the_500_of_its_face() {
        let (status, headers, body) = call_json("/boom").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(
            body,
            json!({"error": "internal error (see the server log)"})
        );

        let (status, _, body) = call_json("/v1/boom").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body,
            json!({"error": {"code": "internal", "message": "internal error (see the server log)"}})
        );

        let (status, headers, body) = call_json("/v2/boom").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(headers["docker-distribution-api-version"], "registry/2.0");
        assert_eq!(body["errors"][0]["code"], "UNKNOWN");
        assert!(
            !body.to_string().contains("a bug in a handler"),
            "the panic's message stays in the log: {body}"
        );

        // The rest of the router is untouched.
        let (status, _, body) = call("/fine").await;
        assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"fine"[..]));
        let (status, _, body) = call_json("/nowhere").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, json!({"error": "no such route"}));
    }

    #[tokio::test]
    async fn unwinding_names_what_panicked_and_why() {
        let e = errors::unwinding::<()>("GET /x", async { panic!("bad {}", 42) })
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "internal error: GET /x panicked: bad 42");
        assert_eq!(errors::unwinding("y", async { 7 }).await.unwrap(), 7);
    }
}
