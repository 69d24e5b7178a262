//! /v1 types and prototypes: the servable types, and prototypes registered from project
//! manifests (seeds 001, 002).

use super::openapi::ErrorBody;
use crate::core::clock::Timestamp;
use crate::core::error::Result;
use crate::core::id::Id;
use crate::domains::authz::Capability;
use crate::domains::servables::{self, Prototype, ServableType, manifest};
use crate::faces::auth::Auth;
use crate::faces::body::JsonBody;
use crate::faces::listing::{ListQuery, PageParams, page_response};
use crate::faces::params::Path;
use crate::faces::state::App;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{IntoParams, PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(types))
        .routes(routes!(list_prototypes, register))
        .routes(routes!(get_prototype, delete_prototype))
}

#[derive(Serialize, ToSchema)]
pub struct TypeView {
    /// The type's name, as manifests and servables use it.
    name: ServableType,
    /// Served over HTTP on port 8080 behind the app proxy.
    http: bool,
    /// Restarted with backoff when it fails.
    restarts_on_failure: bool,
    description: &'static str,
}

/// The servable types.
#[utoipa::path(get, path = "/types", tag = "servables",
    responses((status = 200, body = [TypeView]), (status = 401, body = ErrorBody)))]
async fn types(Auth(_caller): Auth) -> Json<Vec<TypeView>> {
    Json(
        ServableType::ALL
            .into_iter()
            .map(|t| TypeView {
                name: t,
                http: t.serves_http(),
                restarts_on_failure: t.restarts_on_failure(),
                description: t.description(),
            })
            .collect(),
    )
}

#[derive(Serialize, ToSchema)]
pub struct PrototypeView {
    id: Id,
    name: String,
    tag: String,
    #[serde(rename = "type")]
    kind: ServableType,
    /// The image in the appliance's registry (`repository:tag`).
    image: String,
    dependencies: BTreeMap<String, Id>,
    arguments: Value,
    capabilities: BTreeMap<Id, Vec<Capability>>,
    #[serde(rename = "config-capabilities")]
    config_capabilities: Value,
    dockerfile: Option<String>,
    context: Option<String>,
    owner: Id,
    #[schema(value_type = String, format = DateTime)]
    created: Timestamp,
}

impl From<Prototype> for PrototypeView {
    fn from(p: Prototype) -> Self {
        PrototypeView {
            image: format!("{}:{}", p.repository, p.tag),
            id: p.id,
            name: p.name,
            tag: p.tag,
            kind: p.kind,
            dependencies: p.dependencies,
            arguments: p.arguments,
            capabilities: p.capabilities,
            config_capabilities: p.config_capabilities,
            dockerfile: p.dockerfile,
            context: p.context,
            owner: p.owner,
            created: p.created,
        }
    }
}

/// The filter of the prototype list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PrototypeQuery {
    /// Only prototypes of this type (`GET /v1/types`).
    #[param(rename = "type", inline)]
    kind: Option<ServableType>,
}

/// Prototypes the caller may read, a page at a time (oldest first).
#[utoipa::path(get, path = "/prototypes", tag = "prototypes", params(PageParams, PrototypeQuery),
    responses(
        (status = 200, body = [PrototypeView], headers(
            ("X-Next-Cursor" = String, description = "The cursor of the next page, when there is one"),
            ("Link" = String, description = "The next page's address, `rel=\"next\"`"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_prototypes(State(app): State<App>, Auth(p): Auth, q: ListQuery) -> Result<Response> {
    let kind = q.choice("type", &ServableType::ALL, ServableType::as_str)?;
    let page = q.page()?;
    page_response(
        &app,
        &q,
        move |app| servables::list_prototypes(&app.store, &p, kind, page),
        |_, prototype| PrototypeView::from(prototype),
    )
    .await
}

/// Registers every prototype of a project manifest (the content of `MANIFEST` or
/// `MANIFEST.json`), or none: each problem is reported with the prototype and field it concerns.
#[utoipa::path(post, path = "/prototypes", tag = "prototypes",
    request_body(content = Manifest),
    responses(
        (status = 201, body = [PrototypeView]),
        (status = 400, body = ErrorBody, description = "Problems, listed in error.details"),
        (status = 403, body = ErrorBody, description = "No CREATE on prototypes, or no READ on an image (in error.details)"),
        (status = 404, body = ErrorBody, description = "An image or a prototype referred to is not there (in error.details)"),
        (status = 409, body = ErrorBody, description = "A name:tag is already registered (in error.details)"),
    ))]
async fn register(
    State(app): State<App>,
    Auth(p): Auth,
    JsonBody(manifest): JsonBody<Value>,
) -> Result<(StatusCode, Json<Vec<PrototypeView>>)> {
    let now = app.now();
    let list = app
        .blocking(move |app| servables::register_manifest(&app.store, &p, &manifest, now))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(list.into_iter().map(PrototypeView::from).collect()),
    ))
}

/// A project manifest as the OpenAPI document describes it: what JSON Schema can state of the
/// rules `domains::servables::manifest` applies (the handler reads the body as any JSON value,
/// and the domain reports each problem with the prototype and field it concerns).
pub struct Manifest;

/// An image name (`registry::names::valid_name`), which a prototype's name is.
const IMAGE_NAME_PATTERN: &str =
    r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$";
/// An image tag (`registry::names::valid_tag`).
const IMAGE_TAG_PATTERN: &str = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$";
/// A daemon's `volume_location`: absolute, not `/`, no `..` component
/// (`manifest::check::check_daemon_arguments`). Without look-ahead, which not every regex
/// engine has: a component other than `..` is one starting with anything but a dot, `.` alone
/// or followed by anything but a dot, or `..` followed by something.
const VOLUME_LOCATION_PATTERN: &str = r"^/(?:(?:[^/.][^/]*|\.(?:[^/.][^/]*)?|\.\.[^/]+)(?:/(?:[^/.][^/]*|\.(?:[^/.][^/]*)?|\.\.[^/]+)?)*|(?:/(?:[^/.][^/]*|\.(?:[^/.][^/]*)?|\.\.[^/]+)?)+)$";

impl utoipa::PartialSchema for Manifest {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "A project manifest: each key names a prototype (an image name) and maps to its \
                 metadata. Also checked, which no schema states: each entry's `name` equals its \
                 key; the image `name:tag` is in the registry and readable by the caller (404, \
                 403); every reference in `dependencies` and `capabilities` is a prototype of \
                 this manifest or an existing one the caller can see, by id or `name:tag` \
                 (404); the manifest's own prototypes do not depend on each other in a cycle; \
                 no `name:tag` is registered already (409).",
            ))
            .min_properties(Some(1))
            .property_names(Some(image_name()))
            .additional_properties(Some(RefOr::Ref(Ref::from_schema_name("ManifestEntry"))))
            .into()
    }
}

impl ToSchema for Manifest {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        let entry = OneOfBuilder::new()
            .description(Some(
                "A prototype's metadata; a daemon's `arguments` give its persistent volume",
            ))
            .item(manifest_entry(false))
            .item(manifest_entry(true));
        schemas.push(("ManifestEntry".into(), entry.into()));
        // Objects mirror the config; lists of capabilities are the leaves.
        let config_capabilities = ObjectBuilder::new()
            .schema_type(Type::Object)
            .additional_properties(Some(RefOr::T(
                OneOfBuilder::new()
                    .item(capability_list())
                    .item(Ref::from_schema_name("ConfigCapabilities"))
                    .into(),
            )));
        schemas.push(("ConfigCapabilities".into(), config_capabilities.into()));
        schemas.push(("Capability".into(), Capability::schema()));
        <Capability as ToSchema>::schemas(schemas);
    }
}

fn image_name() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(IMAGE_NAME_PATTERN))
        .max_length(Some(255))
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// A non-empty list of capabilities.
fn capability_list() -> Schema {
    ArrayBuilder::new()
        .items(Ref::from_schema_name("Capability"))
        .min_items(Some(1))
        .into()
}

/// A manifest entry of the daemon type (with its volume's arguments), or of the other types.
fn manifest_entry(daemon: bool) -> Schema {
    let types: Vec<&str> = ServableType::ALL
        .into_iter()
        .filter(|t| (*t == ServableType::Daemon) == daemon)
        .map(ServableType::as_str)
        .collect();
    let any_object = || ObjectBuilder::new().schema_type(Type::Object);
    let mut arguments = any_object().description(Some("Free-form, for the prototype's code"));
    if daemon {
        arguments = arguments
            .description(Some(
                "Free-form, with the daemon's persistent volume: where it is mounted and its \
                 size in MB",
            ))
            .property(
                "volume_location",
                string().pattern(Some(VOLUME_LOCATION_PATTERN)),
            )
            .property(
                "volume_size",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .maximum(Some(u64::MAX)),
            )
            .required("volume_location")
            .required("volume_size");
    }
    let mut entry = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "name",
            image_name().description(Some("Equal to the entry's key")),
        )
        .property("tag", string().pattern(Some(IMAGE_TAG_PATTERN)))
        .property("type", string().enum_values(Some(types)))
        .property(
            "dependencies",
            any_object()
                .description(Some(
                    "Key (meaningful to the prototype's code) -> a prototype of this manifest, \
                     or an existing prototype's id or `name:tag`",
                ))
                .additional_properties(Some(RefOr::T(string().into()))),
        )
        .property("arguments", arguments)
        .property(
            "capabilities",
            any_object()
                .description(Some(
                    "A prototype (as in `dependencies`) -> the capabilities a servable needs on it",
                ))
                .additional_properties(Some(RefOr::T(capability_list()))),
        )
        .property(
            "config-capabilities",
            Ref::from_schema_name("ConfigCapabilities"),
        )
        .property("dockerfile", string())
        .property("context", string())
        .required("name")
        .required("tag")
        .required("type")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    if daemon {
        entry = entry.required("arguments");
    }
    entry.into()
}

/// One prototype, by id or `name:tag` (READ).
#[utoipa::path(get, path = "/prototypes/{prototype}", tag = "prototypes",
    params(("prototype" = String, Path, description = "Id or name:tag")),
    responses((status = 200, body = PrototypeView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_prototype(
    State(app): State<App>,
    Auth(p): Auth,
    Path(reference): Path<String>,
) -> Result<Json<PrototypeView>> {
    let prototype = manifest::prototype_for(&app.store, &p, &reference, Capability::Read)?;
    Ok(Json(prototype.into()))
}

/// Deletes a prototype (DELETE); 409 naming the prototypes and servables that still use it.
#[utoipa::path(delete, path = "/prototypes/{prototype}", tag = "prototypes",
    params(("prototype" = String, Path, description = "Id or name:tag")),
    responses(
        (status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Prototypes or servables still use it"),
    ))]
async fn delete_prototype(
    State(app): State<App>,
    Auth(p): Auth,
    Path(reference): Path<String>,
) -> Result<StatusCode> {
    app.blocking(move |app| manifest::delete_prototype(&app.store, &p, &reference))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
