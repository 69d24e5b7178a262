//! The OpenAPI document of /v1, made from the handlers' annotations (utoipa): every /v1 route is
//! registered through [`utoipa_axum`], so a route without documentation cannot exist. Served at
//! `/v1/doc/openapi.json`, browsable at `/v1/doc` (Swagger UI, assets built into the binary).
//! A copy is committed as `docs/openapi.json`; a test fails when the two drift apart
//! (`dtaas openapi > docs/openapi.json` refreshes it).

use crate::core::error::Problem;
use crate::faces::auth::SESSION_COOKIE;
use crate::faces::state::App;
use axum::Router;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi, SecurityRequirement, ServerBuilder};
use utoipa_swagger_ui::SwaggerUi;

pub const DOC_PATH: &str = "/v1/doc";
pub const DOC_JSON: &str = "/v1/doc/openapi.json";

/// The /v1 error body.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable: `bad_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `too_large`, `rate_limited`, `invalid`, `unavailable`, `bad_gateway`,
    /// `engine_unavailable` (the Docker engine does not answer, 503), `engine_failed` (it
    /// answered with a failure of its own, 502), `internal`.
    code: String,
    message: String,
    /// For `invalid`: each problem with the item and field it concerns.
    details: Option<Vec<Problem>>,
}

/// Completes the document the routes produced: title, version, auth schemes.
pub fn finish(mut api: OpenApi) -> OpenApi {
    api.info = InfoBuilder::new()
        .title("dtaas")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "The JSON API of the dtaas appliance. Authenticate with `Authorization: Bearer <api key>` \
             (keys from POST /v1/api-keys, or the key mounted in a servable) or the `dtaas_session` \
             cookie of POST /login. Ids are 32 lowercase hex digits; wherever a prototype is named, \
             `name:tag` works too. Errors: `{\"error\": {\"code\", \"message\"}}`.",
        ))
        .build();
    api.servers = Some(vec![ServerBuilder::new().url("/").build()]);
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    components.add_security_scheme(
        "session",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(SESSION_COOKIE))),
    );
    for schema in [
        ("ErrorBody", <ErrorBody as utoipa::PartialSchema>::schema()),
        (
            "ErrorDetail",
            <ErrorDetail as utoipa::PartialSchema>::schema(),
        ),
        ("Problem", <Problem as utoipa::PartialSchema>::schema()),
    ] {
        components.schemas.insert(schema.0.to_owned(), schema.1);
    }
    api.security = Some(vec![
        SecurityRequirement::new("bearer", Vec::<String>::new()),
        SecurityRequirement::new("session", Vec::<String>::new()),
    ]);
    api
}

/// The document as served (for `dtaas openapi` and the drift test).
pub fn document() -> OpenApi {
    let (_, api) = super::routes().split_for_parts();
    finish(api)
}

/// `/v1/doc` (Swagger UI) and `/v1/doc/openapi.json`.
pub fn routes(api: OpenApi) -> Router<App> {
    Router::new().merge(SwaggerUi::new(DOC_PATH).url(DOC_JSON, api))
}
