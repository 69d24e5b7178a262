//! The JSON API under /v1 (the accounts part: who am I, API keys, the engine).

use super::auth::Auth;
use super::body::JsonBody;
use crate::accounts::{self, ApiKey};
use crate::engine::EngineInfo;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::server::App;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::Duration;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/me", get(me))
        .route("/api-keys", get(list_keys).post(create_key))
        .route("/api-keys/{id}", delete(revoke_key))
        .route("/engine", get(engine))
        .merge(super::v1_jobs::routes())
        .fallback(super::faces::not_found)
}

async fn me(State(app): State<App>, Auth(principal): Auth) -> Result<Json<Value>> {
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

#[derive(Serialize)]
struct KeyView {
    id: Id,
    name: String,
    created: chrono::DateTime<chrono::Utc>,
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

async fn list_keys(State(app): State<App>, Auth(principal): Auth) -> Result<Json<Vec<KeyView>>> {
    let keys = accounts::list_api_keys(&app.store, principal.id)?;
    Ok(Json(keys.into_iter().map(KeyView::from).collect()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    /// Days until the key stops working; none for a key that lives until revoked.
    #[serde(default)]
    expires_in_days: Option<u32>,
}

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

async fn engine(State(app): State<App>, Auth(_): Auth) -> Result<Json<EngineInfo>> {
    Ok(Json(app.engine.info().await?))
}
