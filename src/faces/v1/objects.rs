//! /v1 objects and their access lists: any object's kind and owner, and granting and revoking
//! capabilities on it (MANAGE).

use super::openapi::ErrorBody;
use crate::core::clock::Timestamp;
use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::domains::authz::{self, Acl, Capability, Caps, Kind};
use crate::domains::{accounts, servables, trusts};
use crate::faces::auth::Auth;
use crate::faces::body::JsonBody;
use crate::faces::errors::parse_id;
use crate::faces::params::{Path, Query};
use crate::faces::state::App;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(get_object))
        .routes(routes!(access_list, grant))
        .routes(routes!(revoke))
}

#[derive(Serialize, ToSchema)]
pub struct ObjectView {
    id: Id,
    kind: String,
    owner: Option<Id>,
    #[schema(value_type = String, format = DateTime)]
    created: Timestamp,
    /// What the caller holds on it.
    capabilities: Vec<Capability>,
}

/// Any object's type, owner and what the caller holds on it (DISCOVER).
#[utoipa::path(get, path = "/objects/{id}", tag = "access", params(("id" = Id, Path)),
    responses((status = 200, body = ObjectView), (status = 404, body = ErrorBody)))]
async fn get_object(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<ObjectView>> {
    let id = parse_id(&id, "Object")?;
    let txn = app.store.read()?;
    let acl = Acl::read(&txn)?;
    let meta = acl
        .object(id)?
        .ok_or_else(|| Error::not_found("Object not found"))?;
    acl.check(&p, id, meta.kind, Capability::Discover)
        .map_err(authz::as_any_object)?;
    let caps = acl.caps(&p, &meta)?;
    Ok(Json(ObjectView {
        id,
        kind: meta.kind.as_str().to_owned(),
        owner: meta.owner,
        created: meta.created,
        capabilities: caps.list(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct GrantView {
    /// A user, servable or trust id, or `everyone` (every user).
    principal: String,
    /// `user`, `servable`, `trust` or `everyone`.
    kind: String,
    name: String,
    capabilities: Vec<Capability>,
}

#[derive(Serialize, ToSchema)]
pub struct AccessList {
    object: Id,
    kind: String,
    /// Holds every capability.
    owner: Option<Id>,
    grants: Vec<GrantView>,
}

fn describe_principal(app: &App, id: Id) -> (String, String, String) {
    if id == authz::ALL_USERS {
        return ("everyone".into(), "everyone".into(), "every user".into());
    }
    let kind = app
        .store
        .read()
        .ok()
        .and_then(|txn| Acl::read(&txn).ok()?.object(id).ok().flatten())
        .map(|m| m.kind);
    let name = match kind {
        Some(Kind::User) => accounts::get_user(&app.store, id)
            .ok()
            .flatten()
            .map(|u| u.login),
        Some(Kind::Servable) => servables::get_servable(&app.store, id)
            .ok()
            .flatten()
            .map(|s| s.name),
        Some(Kind::Trust) => trusts::trust_name(&app.store, id).ok().flatten(),
        _ => None,
    };
    (
        id.to_string(),
        kind.map_or("unknown", Kind::as_str).to_owned(),
        name.unwrap_or_default(),
    )
}

fn access_view(app: &App, meta: &authz::ObjectMeta) -> Result<AccessList> {
    let txn = app.store.read()?;
    let grants = authz::grants_on(&txn, meta.id)?
        .into_iter()
        .map(|(principal, caps)| {
            let (principal, kind, name) = describe_principal(app, principal);
            GrantView {
                principal,
                kind,
                name,
                capabilities: caps.list(),
            }
        })
        .collect();
    Ok(AccessList {
        object: meta.id,
        kind: meta.kind.as_str().to_owned(),
        owner: meta.owner,
        grants,
    })
}

/// An object's access list: its owner and every grant (MANAGE).
#[utoipa::path(get, path = "/objects/{id}/access", tag = "access", params(("id" = Id, Path)),
    responses((status = 200, body = AccessList), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn access_list(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<AccessList>> {
    let id = parse_id(&id, "Object")?;
    let meta = authz::managed(&app.store, &p, id)?;
    Ok(Json(access_view(&app, &meta)?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// A user (id or login), servable or trust id, or `everyone`.
    principal: String,
    /// At least one.
    #[schema(min_items = 1)]
    capabilities: Vec<Capability>,
}

/// Grants capabilities on the object to a principal (MANAGE); what it held stays.
#[utoipa::path(post, path = "/objects/{id}/access", tag = "access", params(("id" = Id, Path)),
    request_body = GrantRequest,
    responses((status = 200, body = AccessList), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn grant(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<GrantRequest>,
) -> Result<Json<AccessList>> {
    let id = parse_id(&id, "Object")?;
    authz::managed(&app.store, &p, id)?;
    if body.capabilities.is_empty() {
        return Err(Error::bad_request("capabilities: list at least one"));
    }
    let principal = accounts::principal_named(&app.store, &p, &body.principal)?;
    let caps = Caps::of(&body.capabilities);
    let meta = app
        .blocking(move |app| authz::grant_by(&app.store, &p, id, principal, caps))
        .await?;
    app.instances.access_changed();
    Ok(Json(access_view(&app, &meta)?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevokeQuery {
    /// Comma-separated capabilities to take away (their names exactly, no spaces); when absent,
    /// all that the caller holds itself.
    #[param(
        nullable = false,
        pattern = r"^(DISCOVER|CREATE|READ|UPDATE|DELETE|MANAGE|REQUEST)(,(DISCOVER|CREATE|READ|UPDATE|DELETE|MANAGE|REQUEST))*$"
    )]
    capabilities: Option<String>,
}

/// Revokes capabilities of a principal on the object (MANAGE).
#[utoipa::path(delete, path = "/objects/{id}/access/{principal}", tag = "access",
    params(("id" = Id, Path), ("principal" = String, Path, description = "A user (id or login), servable or trust id, or `everyone`"), RevokeQuery),
    responses((status = 200, body = AccessList), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke(
    State(app): State<App>,
    Auth(p): Auth,
    Path((id, principal)): Path<(String, String)>,
    Query(q): Query<RevokeQuery>,
) -> Result<Json<AccessList>> {
    let id = parse_id(&id, "Object")?;
    authz::managed(&app.store, &p, id)?;
    let principal = accounts::principal_named(&app.store, &p, &principal)?;
    let caps = match q.capabilities.as_deref() {
        None => authz::revocable(&app.store, &p, id)?,
        Some(list) => {
            // Names exactly as the document's pattern has them: an empty value, a space or an
            // empty item is no capability.
            let mut caps = Vec::new();
            for name in list.split(',') {
                caps.push(Capability::parse(name).ok_or_else(|| {
                    Error::bad_request(format!("capabilities: {name:?} is not a capability"))
                })?);
            }
            Caps::of(&caps)
        }
    };
    let meta = app
        .blocking(move |app| authz::revoke_by(&app.store, &p, id, principal, caps))
        .await?;
    app.instances.access_changed();
    Ok(Json(access_view(&app, &meta)?))
}
