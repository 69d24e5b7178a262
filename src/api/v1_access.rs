//! /v1 views of access: any object's access list (grant, revoke), trusts, and delegation
//! requests.

use super::auth::Auth;
use super::body::JsonBody;
use super::kabuto_jobs::parse_id;
use super::openapi::ErrorBody;
use crate::authz::{self, Acl, Capability, Caps, Kind, Principal, Role};
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::servables::delegation::{self, DelegationRequest, DelegationState};
use crate::server::App;
use crate::trusts::{self, Trust, TrustView};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(get_object))
        .routes(routes!(access_list, grant))
        .routes(routes!(revoke))
        .routes(routes!(list_trusts, create_trust))
        .routes(routes!(get_trust, delete_trust))
        .routes(routes!(add_member))
        .routes(routes!(remove_member))
        .routes(routes!(add_object))
        .routes(routes!(remove_object))
        .routes(routes!(list_requests))
        .routes(routes!(get_request))
        .routes(routes!(grant_request))
        .routes(routes!(refuse_request))
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
        .map_err(generic_not_found)?;
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

/// The check every access-list route makes: MANAGE on the object, whatever its kind.
fn managed(app: &App, caller: &Principal, id: Id) -> Result<authz::ObjectMeta> {
    let txn = app.store.read()?;
    let acl = Acl::read(&txn)?;
    let meta = acl
        .object(id)?
        .ok_or_else(|| Error::not_found("Object not found"))?;
    acl.check(caller, id, meta.kind, Capability::Manage)
        .map_err(generic_not_found)
}

/// An invisible object answers as a missing one does, kind included.
fn generic_not_found(e: Error) -> Error {
    match e {
        Error::NotFound(_) => Error::not_found("Object not found"),
        other => other,
    }
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
        Some(Kind::User) => crate::accounts::get_user(&app.store, id)
            .ok()
            .flatten()
            .map(|u| u.login),
        Some(Kind::Servable) => crate::servables::get_servable(&app.store, id)
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
    let meta = managed(&app, &p, id)?;
    Ok(Json(access_view(&app, &meta)?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// A user (id or login), servable or trust id, or `everyone`.
    principal: String,
    capabilities: Vec<Capability>,
}

/// A principal named by id, login or `everyone`; it must exist and be visible to the caller.
fn resolve_principal(app: &App, caller: &Principal, name: &str) -> Result<Id> {
    if name == "everyone" {
        return Ok(authz::ALL_USERS);
    }
    let unknown = || Error::not_found("no such user, servable or trust");
    let txn = app.store.read()?;
    let acl = Acl::read(&txn)?;
    let id = match Id::parse(name) {
        Some(id) => id,
        None => crate::accounts::find_user_by_login(&app.store, name)?
            .map(|u| u.id)
            .ok_or_else(unknown)?,
    };
    match acl.object(id)? {
        Some(meta)
            if matches!(meta.kind, Kind::User | Kind::Servable | Kind::Trust)
                && acl.visible(caller, &meta)? =>
        {
            Ok(id)
        }
        _ => Err(unknown()),
    }
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
    let meta = managed(&app, &p, id)?;
    if body.capabilities.is_empty() {
        return Err(Error::bad_request("capabilities: list at least one"));
    }
    let principal = resolve_principal(&app, &p, &body.principal)?;
    let txn = app.store.write()?;
    authz::grant(&txn, id, principal, Caps::of(&body.capabilities))?;
    txn.commit()?;
    Ok(Json(access_view(&app, &meta)?))
}

#[derive(Deserialize, IntoParams)]
pub struct RevokeQuery {
    /// Comma-separated capabilities to take away; all when absent.
    capabilities: Option<String>,
}

/// Revokes capabilities of a principal on the object (MANAGE).
#[utoipa::path(delete, path = "/objects/{id}/access/{principal}", tag = "access",
    params(("id" = Id, Path), ("principal" = String, Path, description = "Id, login or everyone"), RevokeQuery),
    responses((status = 200, body = AccessList), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke(
    State(app): State<App>,
    Auth(p): Auth,
    Path((id, principal)): Path<(String, String)>,
    Query(q): Query<RevokeQuery>,
) -> Result<Json<AccessList>> {
    let id = parse_id(&id, "Object")?;
    let meta = managed(&app, &p, id)?;
    let principal = resolve_principal(&app, &p, &principal)?;
    let caps =
        match q.capabilities.as_deref() {
            None | Some("") => Caps::ALL,
            Some(list) => {
                let mut caps = Vec::new();
                for name in list.split(',') {
                    caps.push(Capability::parse(name.trim()).ok_or_else(|| {
                        Error::bad_request(format!("{name:?} is not a capability"))
                    })?);
                }
                Caps::of(&caps)
            }
        };
    let txn = app.store.write()?;
    authz::revoke(&txn, id, principal, caps)?;
    txn.commit()?;
    Ok(Json(access_view(&app, &meta)?))
}

#[derive(Serialize, ToSchema)]
pub struct TrustOut {
    id: Id,
    name: String,
    owner: Id,
    #[schema(value_type = String, format = DateTime)]
    created: Timestamp,
    trustees: Vec<Id>,
    members: Vec<Id>,
    objects: Vec<Id>,
}

fn trust_out(view: TrustView) -> TrustOut {
    let pick = |role: Role| {
        view.members
            .iter()
            .filter(|(_, r)| *r == role)
            .map(|(p, _)| *p)
            .collect()
    };
    TrustOut {
        trustees: pick(Role::Trustee),
        members: pick(Role::Member),
        objects: view.objects.clone(),
        id: view.trust.id,
        name: view.trust.name,
        owner: view.trust.owner,
        created: view.trust.created,
    }
}

#[derive(Serialize, ToSchema)]
pub struct TrustSummary {
    id: Id,
    name: String,
    owner: Id,
    #[schema(value_type = String, format = DateTime)]
    created: Timestamp,
}

impl From<Trust> for TrustSummary {
    fn from(t: Trust) -> Self {
        TrustSummary {
            id: t.id,
            name: t.name,
            owner: t.owner,
            created: t.created,
        }
    }
}

/// Trusts the caller may read.
#[utoipa::path(get, path = "/trusts", tag = "trusts",
    responses((status = 200, body = [TrustSummary]), (status = 401, body = ErrorBody)))]
async fn list_trusts(State(app): State<App>, Auth(p): Auth) -> Result<Json<Vec<TrustSummary>>> {
    let list = trusts::list_trusts(&app.store, &p)?;
    Ok(Json(list.into_iter().map(TrustSummary::from).collect()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTrust {
    name: String,
}

/// Creates a trust; the caller becomes its first trustee.
#[utoipa::path(post, path = "/trusts", tag = "trusts", request_body = NewTrust,
    responses((status = 201, body = TrustOut), (status = 400, body = ErrorBody)))]
async fn create_trust(
    State(app): State<App>,
    Auth(p): Auth,
    JsonBody(body): JsonBody<NewTrust>,
) -> Result<(StatusCode, Json<TrustOut>)> {
    let now = app.now();
    let trust = trusts::create_trust(&app.store, &p, &body.name, now)?;
    let view = trusts::get_trust(&app.store, &p, trust.id)?;
    Ok((StatusCode::CREATED, Json(trust_out(view))))
}

/// One trust with its trustees, members and objects (READ).
#[utoipa::path(get, path = "/trusts/{id}", tag = "trusts", params(("id" = Id, Path)),
    responses((status = 200, body = TrustOut), (status = 404, body = ErrorBody)))]
async fn get_trust(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<TrustOut>> {
    let id = parse_id(&id, "Trust")?;
    Ok(Json(trust_out(trusts::get_trust(&app.store, &p, id)?)))
}

/// Deletes a trust (DELETE); what was granted through it goes.
#[utoipa::path(delete, path = "/trusts/{id}", tag = "trusts", params(("id" = Id, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_trust(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let id = parse_id(&id, "Trust")?;
    trusts::delete_trust(&app.store, &p, id)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    /// A user (id or login) or servable id.
    principal: String,
    /// `member` (default) or `trustee`.
    #[serde(default)]
    role: Option<Role>,
}

/// Adds a member or trustee (MANAGE on the trust).
#[utoipa::path(post, path = "/trusts/{id}/members", tag = "trusts", params(("id" = Id, Path)),
    request_body = NewMember,
    responses((status = 200, body = TrustOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn add_member(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<NewMember>,
) -> Result<Json<TrustOut>> {
    let id = parse_id(&id, "Trust")?;
    authz::authorize(&app.store, &p, id, Kind::Trust, Capability::Manage)?;
    let principal = resolve_principal(&app, &p, &body.principal)?;
    let role = body.role.unwrap_or(Role::Member);
    Ok(Json(trust_out(trusts::add_member(
        &app.store, &p, id, principal, role,
    )?)))
}

/// Removes a member or trustee (MANAGE on the trust); the last trustee stays.
#[utoipa::path(delete, path = "/trusts/{id}/members/{principal}", tag = "trusts",
    params(("id" = Id, Path), ("principal" = String, Path)),
    responses((status = 200, body = TrustOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn remove_member(
    State(app): State<App>,
    Auth(p): Auth,
    Path((id, principal)): Path<(String, String)>,
) -> Result<Json<TrustOut>> {
    let id = parse_id(&id, "Trust")?;
    authz::authorize(&app.store, &p, id, Kind::Trust, Capability::Manage)?;
    let principal = resolve_principal(&app, &p, &principal)?;
    Ok(Json(trust_out(trusts::remove_member(
        &app.store, &p, id, principal,
    )?)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTrustObject {
    object: Id,
}

/// Places an object in the trust (MANAGE on both): its trustees then hold MANAGE on it.
#[utoipa::path(post, path = "/trusts/{id}/objects", tag = "trusts", params(("id" = Id, Path)),
    request_body = NewTrustObject,
    responses((status = 200, body = TrustOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn add_object(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<NewTrustObject>,
) -> Result<Json<TrustOut>> {
    let id = parse_id(&id, "Trust")?;
    Ok(Json(trust_out(trusts::add_object(
        &app.store,
        &p,
        id,
        body.object,
    )?)))
}

/// Takes an object out of the trust (MANAGE on the trust).
#[utoipa::path(delete, path = "/trusts/{id}/objects/{object}", tag = "trusts",
    params(("id" = Id, Path), ("object" = Id, Path)),
    responses((status = 200, body = TrustOut), (status = 404, body = ErrorBody)))]
async fn remove_object(
    State(app): State<App>,
    Auth(p): Auth,
    Path((id, object)): Path<(String, String)>,
) -> Result<Json<TrustOut>> {
    let id = parse_id(&id, "Trust")?;
    let object = parse_id(&object, "Object")?;
    Ok(Json(trust_out(trusts::remove_object(
        &app.store, &p, id, object,
    )?)))
}

#[derive(Deserialize, IntoParams)]
pub struct RequestQuery {
    /// Only requests of this servable.
    servable: Option<String>,
    /// `pending`, `granted` or `refused`.
    state: Option<String>,
}

/// Delegation requests the caller may read: those addressed to it (it ran the servable) and,
/// for a servable, its own.
#[utoipa::path(get, path = "/delegation-requests", tag = "delegation", params(RequestQuery),
    responses((status = 200, body = [DelegationRequest]), (status = 400, body = ErrorBody)))]
async fn list_requests(
    State(app): State<App>,
    Auth(p): Auth,
    Query(q): Query<RequestQuery>,
) -> Result<Json<Vec<DelegationRequest>>> {
    let servable = match q.servable.as_deref() {
        None | Some("") => None,
        Some(s) => Some(Id::parse(s).ok_or_else(|| Error::bad_request("servable: not an id"))?),
    };
    let state = match q.state.as_deref() {
        None | Some("") => None,
        Some("pending") => Some(DelegationState::Pending),
        Some("granted") => Some(DelegationState::Granted),
        Some("refused") => Some(DelegationState::Refused),
        Some(other) => {
            return Err(Error::bad_request(format!(
                "state: {other:?} is not pending, granted or refused"
            )));
        }
    };
    Ok(Json(delegation::list_requests(
        &app.store, &p, servable, state,
    )?))
}

/// One delegation request (READ): a servable learns the outcome of its own here.
#[utoipa::path(get, path = "/delegation-requests/{id}", tag = "delegation", params(("id" = Id, Path)),
    responses((status = 200, body = DelegationRequest), (status = 404, body = ErrorBody)))]
async fn get_request(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<DelegationRequest>> {
    let id = parse_id(&id, "Delegation request")?;
    Ok(Json(delegation::get_request(&app.store, &p, id)?))
}

async fn resolve(
    app: App,
    p: Principal,
    id: String,
    grant: bool,
) -> Result<Json<DelegationRequest>> {
    let id = parse_id(&id, "Delegation request")?;
    let now = app.now();
    let request = app
        .blocking(move |app| delegation::resolve(&app.store, &p, id, grant, now))
        .await?;
    Ok(Json(request))
}

/// Grants a pending request from what the caller holds (UPDATE on the request).
#[utoipa::path(post, path = "/delegation-requests/{id}/grant", tag = "delegation", params(("id" = Id, Path)),
    responses((status = 200, body = DelegationRequest), (status = 403, body = ErrorBody, description = "The caller lacks UPDATE, or does not hold what is asked"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn grant_request(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<DelegationRequest>> {
    resolve(app, p, id, true).await
}

/// Refuses a pending request (UPDATE on the request).
#[utoipa::path(post, path = "/delegation-requests/{id}/refuse", tag = "delegation", params(("id" = Id, Path)),
    responses((status = 200, body = DelegationRequest), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn refuse_request(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<DelegationRequest>> {
    resolve(app, p, id, false).await
}
