//! `/healthz` (the process is up) and `/readyz` (the store answers and so does the Docker engine).

use super::state::App;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(app): State<App>) -> (StatusCode, Json<Value>) {
    let store = match app.store.schema_version() {
        Ok(v) => json!({ "ok": true, "schema_version": v }),
        Err(e) => json!({ "ok": false, "error": e.to_string() }),
    };
    let engine = match app.engine.info().await {
        Ok(info) => json!({ "ok": true, "version": info.version, "api_version": info.api_version }),
        Err(e) => json!({ "ok": false, "error": e.to_string() }),
    };
    let ready = store["ok"] == json!(true) && engine["ok"] == json!(true);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ready { "ready" } else { "not ready" },
            "store": store,
            "engine": engine,
        })),
    )
}
