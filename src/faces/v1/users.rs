//! /v1 users: the accounts the caller may discover (every user may discover every other,
//! through the grant to every user, unless that user took it back), searched by login; what
//! `/v1/objects/{id}/access` and trusts take as principals.

use super::openapi::ErrorBody;
use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::core::page::PageRequest;
use crate::domains::accounts::{self, User};
use crate::faces::auth::Auth;
use crate::faces::listing::{ListQuery, named_page_response};
use crate::faces::state::App;
use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(list_users))
}

#[derive(Serialize, ToSchema)]
pub struct UserView {
    id: Id,
    login: String,
}

/// What a login, or a prefix of one, may hold.
fn login_text(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The search and paging of the user list, which is in login order.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct UserQuery {
    /// Only users whose login starts with this (ignoring case).
    #[param(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    login: Option<String>,
    /// How many users to answer (1 to 1000; 100 when absent).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Where to continue: the `X-Next-Cursor` of the page before (the last login it held).
    #[param(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    cursor: Option<String>,
}

/// Users the caller may discover (DISCOVER), in login order, a page at a time. A page reads the
/// login index from its position: O(limit + the users there the caller may not discover).
#[utoipa::path(get, path = "/users", tag = "accounts", params(UserQuery),
    responses(
        (status = 200, body = [UserView], headers(
            ("X-Next-Cursor" = String, description = "The cursor of the next page, when there is one"),
            ("Link" = String, description = "The next page's address, `rel=\"next\"`"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_users(State(app): State<App>, Auth(p): Auth, q: ListQuery) -> Result<Response> {
    let limit = PageRequest::parse(q.get("limit"), None)?.limit;
    let text = |param: &str| match q.get(param) {
        None => Ok(None),
        Some(v) if login_text(v) => Ok(Some(v.to_owned())),
        Some(_) => Err(Error::bad_request(format!(
            "{param}: 1 to 64 letters, digits, '.', '_' or '-'"
        ))),
    };
    let prefix = text("login")?.unwrap_or_default();
    let after = text("cursor")?;
    named_page_response(
        &app,
        &q,
        move |app| {
            let (users, more) =
                accounts::discoverable_users(&app.store, &p, &prefix, after.as_deref(), limit)?;
            let next = if more {
                users.last().map(|u| u.login.to_lowercase())
            } else {
                None
            };
            Ok((users, next))
        },
        |_, u: User| UserView {
            id: u.id,
            login: u.login,
        },
    )
    .await
}
