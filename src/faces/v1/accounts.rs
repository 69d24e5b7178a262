//! /v1 accounts: who the caller is, its API keys, and the engine the appliance runs on.

use super::openapi::ErrorBody;
use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::domains::accounts::{self, ApiKey};
use crate::domains::authz::PrincipalKind;
use crate::domains::servables;
use crate::engine::EngineInfo;
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
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
        .routes(routes!(engine))
}

/// Who the caller is: a user, or a servable (through its mounted key) with its ids and config.
#[utoipa::path(get, path = "/me", tag = "accounts",
    responses((status = 200, body = Object), (status = 401, body = ErrorBody)))]
async fn me(State(app): State<App>, Auth(principal): Auth) -> Result<Json<Value>> {
    if principal.kind == PrincipalKind::Servable {
        let servable = servables::get_servable(&app.store, principal.id)?
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

/// The caller's API keys (never their secrets), a page at a time (oldest first).
#[utoipa::path(get, path = "/api-keys", tag = "accounts", params(PageParams),
    responses(
        (status = 200, body = [KeyView], headers(
            ("X-Next-Cursor" = String, description = "The cursor of the next page, when there is one"),
            ("Link" = String, description = "The next page's address, `rel=\"next\"`"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_keys(
    State(app): State<App>,
    Auth(principal): Auth,
    q: ListQuery,
) -> Result<Response> {
    let page = q.page()?;
    page_response(
        &app,
        &q,
        move |app| accounts::list_api_keys(&app.store, principal.id, page),
        |_, key| KeyView::from(key),
    )
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewKey {
    #[schema(schema_with = crate::core::names::name_schema)]
    name: String,
    /// Days until the key stops working (at most 365000, about a thousand years); none for a
    /// key that lives until revoked. A key cannot expire after 9999-12-31T23:59:59Z (400).
    #[serde(default, deserialize_with = "crate::core::whole::optional")]
    #[schema(minimum = 1, maximum = 365000)]
    expires_in_days: Option<u32>,
}

/// A new API key for the caller; the secret (`key`) is shown once.
#[utoipa::path(post, path = "/api-keys", tag = "accounts", request_body = NewKey,
    responses(
        (status = 201, body = Object),
        (status = 403, body = ErrorBody, description = "A servable cannot create API keys"),
    ))]
async fn create_key(
    State(app): State<App>,
    Auth(principal): Auth,
    JsonBody(body): JsonBody<NewKey>,
) -> Result<(StatusCode, Json<Value>)> {
    let now = app.now();
    let expires = body
        .expires_in_days
        .map(|d| accounts::expiry_in_days(now, d))
        .transpose()?;
    let created = app
        .blocking(move |app| {
            accounts::request_api_key(&app.store, &principal, &body.name, expires, now)
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
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_key(
    State(app): State<App>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let id = parse_id(&id, "API key")?;
    app.blocking(move |app| accounts::revoke_api_key(&app.store, &principal, id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The Docker engine the appliance runs on.
#[utoipa::path(get, path = "/engine", tag = "accounts",
    responses(
        (status = 200, body = Object),
        (status = 502, body = ErrorBody, description = "The Docker engine failed"),
        (status = 503, body = ErrorBody, description = "The Docker engine does not answer"),
    ))]
async fn engine(State(app): State<App>, Auth(_caller): Auth) -> Result<Json<EngineInfo>> {
    Ok(Json(app.engine.info().await?))
}
