//! The JSON API under `/v1`, one file per feature. Every route is documented: routes are
//! registered through `utoipa-axum`, so a route without documentation cannot exist; the
//! document is served at `/v1/doc/openapi.json` and browsable at `/v1/doc` ([`openapi`]).
//! Errors are `{"error": {"code", "message", "details"?}}`.

mod accounts;
mod forms;
mod images;
mod instances;
mod jobs;
mod logs;
mod objects;
pub mod openapi;
mod pipelines;
mod prototypes;
mod repositories;
mod requests;
mod servables;
mod trusts;
mod users;

use super::errors;
use super::state::App;
use axum::Router;
use axum::middleware;
use utoipa_axum::router::OpenApiRouter;

/// Every /v1 route, with its documentation (paths relative to /v1 until nested).
pub fn routes() -> OpenApiRouter<App> {
    let v1 = OpenApiRouter::new()
        .merge(accounts::routes())
        .merge(images::routes())
        .merge(jobs::routes())
        .merge(pipelines::routes())
        .merge(prototypes::routes())
        .merge(servables::routes())
        .merge(instances::routes())
        .merge(objects::routes())
        .merge(trusts::routes())
        .merge(requests::routes())
        .merge(repositories::routes())
        .merge(users::routes());
    OpenApiRouter::new().nest("/v1", v1)
}

/// /v1 with its documentation and its error dialect.
pub fn router() -> Router<App> {
    let (router, api) = routes().split_for_parts();
    with_v1_errors(
        router
            .merge(openapi::routes(openapi::finish(api)))
            .route("/v1/{*rest}", axum::routing::any(errors::not_found)),
    )
}

/// The /v1 error dialect over `router`, with a panic in a handler caught under it
/// (`errors::catch_panic`): the /v1 JSON 500.
pub(super) fn with_v1_errors<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .layer(middleware::from_fn(errors::catch_panic))
        .layer(middleware::map_response(errors::v1))
}
