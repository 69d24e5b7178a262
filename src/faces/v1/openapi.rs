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
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    Content, InfoBuilder, OpenApi, Ref, ResponseBuilder, SecurityRequirement, ServerBuilder,
};
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
    for item in api.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            optional_body_is_absent_not_null(operation);
            add_common_statuses(operation);
        }
    }
    api
}

/// A body a route may go without (an edit changing nothing, a rebuild as it was: `JsonBody`
/// reads an empty body as `{}`) is stated as optional; utoipa writes its schema as "the object
/// or `null`", but what may be left out is the body, not its value: the schema is the object's.
fn optional_body_is_absent_not_null(operation: &mut Operation) {
    use utoipa::openapi::schema::{Schema, SchemaType, Type};
    use utoipa::openapi::{RefOr, Required};
    let Some(RefOr::T(body)) = operation.request_body.as_mut() else {
        return;
    };
    if body.required == Some(Required::True) {
        return;
    }
    for content in body.content.values_mut() {
        let RefOr::T(content) = content else {
            continue;
        };
        let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema else {
            continue;
        };
        let is_null = |s: &RefOr<Schema>| matches!(s, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::new(Type::Null));
        let mut items = one_of.items.iter().filter(|s| !is_null(s));
        if let (Some(object), None) = (items.next(), items.next())
            && one_of.items.len() == 2
        {
            content.schema = Some(object.clone());
        }
    }
}

/// The statuses a /v1 route answers by the way its request is read, added to every operation
/// here so that no route's annotation can leave them out: 401, as every /v1 route
/// authenticates (`faces::auth::Auth`); 400 when it reads parameters or a body
/// (`faces::params`, `faces::listing::ListQuery`, `faces::body::JsonBody`); 413 when it reads a
/// body (the router's body limit); 500, the appliance's own failure. A status the route's
/// annotation states already keeps its description.
fn add_common_statuses(operation: &mut Operation) {
    let reads_input = operation.parameters.as_ref().is_some_and(|p| !p.is_empty())
        || operation.request_body.is_some();
    let mut statuses = vec![("401", "No credentials, or ones that are invalid or expired")];
    if reads_input {
        statuses.push((
            "400",
            "Malformed: a parameter, the path or the body breaks the rules stated here \
             (`error.message` says which)",
        ));
    }
    if operation.request_body.is_some() {
        statuses.push(("413", "The body is over the size limit"));
    }
    statuses.push(("500", "The appliance failed (see its log)"));
    for (status, description) in statuses {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| {
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                    )
                    .build()
                    .into()
            });
    }
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
