//! The account pages: signing out (the session the kabuto face made at `/login`).

use super::page::CsrfForm;
use crate::core::error::Result;
use crate::domains::accounts;
use crate::faces::state::App;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;

pub fn routes() -> Router<App> {
    Router::new().route("/ui/logout", post(logout))
}

#[derive(Deserialize)]
struct Empty {}

/// Signs out: the session ends on the server, the cookie goes, and the sign-in page follows.
async fn logout(
    State(app): State<App>,
    headers: HeaderMap,
    CsrfForm(_viewer, Empty {}): CsrfForm<Empty>,
) -> Result<Response> {
    if let Some(Ok(token)) = crate::faces::auth::session_cookie(&headers) {
        app.blocking(move |app| accounts::delete_session(&app.store, &token))
            .await?;
    }
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/login")]).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("dtaas_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"),
    );
    Ok(response)
}
