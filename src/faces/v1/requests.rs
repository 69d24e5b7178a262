//! /v1 delegation requests: what running servables asked of the principals that ran them,
//! granted or refused.

use super::openapi::ErrorBody;
use crate::core::error::Result;
use crate::core::id::Id;
use crate::domains::authz::Principal;
use crate::domains::servables::delegation::{self, DelegationRequest, DelegationState};
use crate::faces::auth::Auth;
use crate::faces::errors::parse_id;
use crate::faces::listing::{ListQuery, PageParams, page_response};
use crate::faces::params::Path;
use crate::faces::state::App;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list_requests))
        .routes(routes!(get_request))
        .routes(routes!(grant_request))
        .routes(routes!(refuse_request))
}

/// The filters of the request list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct RequestQuery {
    /// Only requests of this servable.
    servable: Option<Id>,
    /// Only requests in this state.
    #[param(inline)]
    state: Option<DelegationState>,
}

/// Delegation requests the caller may read: those addressed to it (it ran the servable) and,
/// for a servable, its own; a page at a time, oldest first.
#[utoipa::path(get, path = "/delegation-requests", tag = "delegation", params(PageParams, RequestQuery),
    responses(
        (status = 200, body = [DelegationRequest], headers(
            ("X-Next-Cursor" = String, description = "The cursor of the next page, when there is one"),
            ("Link" = String, description = "The next page's address, `rel=\"next\"`"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_requests(State(app): State<App>, Auth(p): Auth, q: ListQuery) -> Result<Response> {
    let servable = q.id("servable")?;
    let state = q.choice("state", &DelegationState::ALL, DelegationState::as_str)?;
    let page = q.page()?;
    page_response(
        &app,
        &q,
        move |app| delegation::list_requests(&app.store, &p, servable, state, page),
        |_, request| request,
    )
    .await
}

/// One delegation request (READ): a servable learns the outcome of its own here.
#[utoipa::path(get, path = "/delegation-requests/{id}", tag = "delegation", params(("id" = Id, Path)),
    responses((status = 200, body = DelegationRequest), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
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
    app.instances.access_changed();
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
    responses((status = 200, body = DelegationRequest), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn refuse_request(
    State(app): State<App>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<DelegationRequest>> {
    resolve(app, p, id, false).await
}
