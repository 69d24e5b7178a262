//! /v1 trusts: named groups of principals and objects; trustees manage them.

use super::openapi::ErrorBody;
use crate::core::clock::Timestamp;
use crate::core::error::Result;
use crate::core::id::Id;
use crate::domains::accounts;
use crate::domains::authz::{self, Capability, Kind, Role};
use crate::domains::trusts::{self, Trust, TrustView};
use crate::faces::auth::Auth;
use crate::faces::body::JsonBody;
use crate::faces::errors::parse_id;
use crate::faces::listing::{ListQuery, PageParams, page_response};
use crate::faces::params::Path;
use crate::faces::state::App;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list_trusts, create_trust))
        .routes(routes!(get_trust, delete_trust))
        .routes(routes!(add_member))
        .routes(routes!(remove_member))
        .routes(routes!(add_object))
        .routes(routes!(remove_object))
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

/// Trusts the caller may read, a page at a time (oldest first).
#[utoipa::path(get, path = "/trusts", tag = "trusts", params(PageParams),
    responses(
        (status = 200, body = [TrustSummary], headers(
            ("X-Next-Cursor" = String, description = "The cursor of the next page, when there is one"),
            ("Link" = String, description = "The next page's address, `rel=\"next\"`"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_trusts(State(app): State<App>, Auth(p): Auth, q: ListQuery) -> Result<Response> {
    let page = q.page()?;
    page_response(
        &app,
        &q,
        move |app| trusts::list_trusts(&app.store, &p, page),
        |_, trust| TrustSummary::from(trust),
    )
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTrust {
    #[schema(schema_with = crate::core::names::name_schema)]
    name: String,
}

/// Creates a trust; the caller becomes its first trustee.
#[utoipa::path(post, path = "/trusts", tag = "trusts", request_body = NewTrust,
    responses((status = 201, body = TrustOut)))]
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
    responses((status = 200, body = TrustOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
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
    app.instances.access_changed();
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
    let principal = accounts::principal_named(&app.store, &p, &body.principal)?;
    let role = body.role.unwrap_or(Role::Member);
    let view = trusts::add_member(&app.store, &p, id, principal, role)?;
    app.instances.access_changed();
    Ok(Json(trust_out(view)))
}

/// Removes a member or trustee (MANAGE on the trust); the last trustee stays.
#[utoipa::path(delete, path = "/trusts/{id}/members/{principal}", tag = "trusts",
    params(("id" = Id, Path), ("principal" = String, Path, description = "A user (id or login) or servable id")),
    responses(
        (status = 200, body = TrustOut), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The last trustee stays"),
    ))]
async fn remove_member(
    State(app): State<App>,
    Auth(p): Auth,
    Path((id, principal)): Path<(String, String)>,
) -> Result<Json<TrustOut>> {
    let id = parse_id(&id, "Trust")?;
    authz::authorize(&app.store, &p, id, Kind::Trust, Capability::Manage)?;
    let principal = accounts::principal_named(&app.store, &p, &principal)?;
    let view = trusts::remove_member(&app.store, &p, id, principal)?;
    app.instances.access_changed();
    Ok(Json(trust_out(view)))
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
    let view = trusts::add_object(&app.store, &p, id, body.object)?;
    app.instances.access_changed();
    Ok(Json(trust_out(view)))
}

/// Takes an object out of the trust (MANAGE on the trust).
#[utoipa::path(delete, path = "/trusts/{id}/objects/{object}", tag = "trusts",
    params(("id" = Id, Path), ("object" = Id, Path)),
    responses(
        (status = 200, body = TrustOut), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "A trust holds itself for good"),
    ))]
async fn remove_object(
    State(app): State<App>,
    Auth(p): Auth,
    Path((id, object)): Path<(String, String)>,
) -> Result<Json<TrustOut>> {
    let id = parse_id(&id, "Trust")?;
    let object = parse_id(&object, "Object")?;
    let view = trusts::remove_object(&app.store, &p, id, object)?;
    app.instances.access_changed();
    Ok(Json(trust_out(view)))
}
