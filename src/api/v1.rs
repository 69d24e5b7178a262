//! The JSON API under /v1: who am I, API keys, the engine here; jobs, the DTaaS model and
//! access in their own modules. Every route is documented (see [`super::openapi`]).

use super::auth::Auth;
use super::body::JsonBody;
use super::openapi::ErrorBody;
use crate::accounts::{self, ApiKey};
use crate::engine::EngineInfo;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::server::App;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Duration;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Every /v1 route, with its documentation (paths relative to /v1 until nested).
pub fn routes() -> OpenApiRouter<App> {
    let v1 = OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
        .routes(routes!(engine))
        .merge(super::v1_jobs::routes())
        .merge(super::v1_model::routes())
        .merge(super::v1_access::routes());
    OpenApiRouter::new().nest("/v1", v1)
}

/// Who the caller is: a user, or a servable (through its mounted key) with its ids and config.
#[utoipa::path(get, path = "/me", tag = "accounts",
    responses((status = 200, body = Object), (status = 401, body = ErrorBody)))]
async fn me(State(app): State<App>, Auth(principal): Auth) -> Result<Json<Value>> {
    if principal.kind == crate::authz::PrincipalKind::Servable {
        let servable = crate::servables::get_servable(&app.store, principal.id)?
            .ok_or_else(|| Error::not_found("Servable not found"))?;
        return Ok(Json(json!({
            "id": servable.id,
            "kind": "servable",
            "name": servable.name,
            "type": servable.kind,
            "owner": servable.owner,
            "prototype": servable.prototype,
            "instance": servable.current,
            "config": servable.config,
        })));
    }
    let user = accounts::get_user(&app.store, principal.id)?
        .ok_or_else(|| Error::not_found("User not found"))?;
    Ok(Json(json!({
        "id": user.id,
        "kind": "user",
        "login": user.login,
        "email": user.email,
        "admin": user.admin,
        "created": user.created,
    })))
}

#[derive(Serialize, ToSchema)]
struct KeyView {
    id: Id,
    name: String,
    #[schema(value_type = String, format = DateTime)]
    created: chrono::DateTime<chrono::Utc>,
    #[schema(value_type = Option<String>, format = DateTime)]
    expires: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<ApiKey> for KeyView {
    fn from(k: ApiKey) -> Self {
        KeyView {
            id: k.id,
            name: k.name,
            created: k.created,
            expires: k.expires,
        }
    }
}

/// The caller's API keys (never their secrets).
#[utoipa::path(get, path = "/api-keys", tag = "accounts",
    responses((status = 200, body = [KeyView]), (status = 401, body = ErrorBody)))]
async fn list_keys(State(app): State<App>, Auth(principal): Auth) -> Result<Json<Vec<KeyView>>> {
    let keys = accounts::list_api_keys(&app.store, principal.id)?;
    Ok(Json(keys.into_iter().map(KeyView::from).collect()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    /// Days until the key stops working; none for a key that lives until revoked.
    #[serde(default)]
    expires_in_days: Option<u32>,
}

/// A new API key for the caller; the secret (`key`) is shown once.
#[utoipa::path(post, path = "/api-keys", tag = "accounts", request_body = NewKey,
    responses((status = 201, body = Object), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn create_key(
    State(app): State<App>,
    Auth(principal): Auth,
    JsonBody(body): JsonBody<NewKey>,
) -> Result<(StatusCode, Json<Value>)> {
    let now = app.now();
    let expires = body
        .expires_in_days
        .map(|d| now + Duration::days(i64::from(d)));
    let created = app
        .blocking(move |app| {
            accounts::create_api_key(&app.store, &principal, &body.name, expires, now)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": created.key.id,
            "name": created.key.name,
            "key": created.secret,
            "created": created.key.created,
            "expires": created.key.expires,
        })),
    ))
}

/// Revokes one of the caller's keys (DELETE on it).
#[utoipa::path(delete, path = "/api-keys/{id}", tag = "accounts", params(("id" = Id, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn revoke_key(
    State(app): State<App>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let id = Id::parse(&id).ok_or_else(|| Error::not_found("API key not found"))?;
    app.blocking(move |app| accounts::revoke_api_key(&app.store, &principal, id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The Docker engine the appliance runs on.
#[utoipa::path(get, path = "/engine", tag = "accounts",
    responses((status = 200, body = Object), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn engine(State(app): State<App>, Auth(_caller): Auth) -> Result<Json<EngineInfo>> {
    Ok(Json(app.engine.info().await?))
}
