//! The dashboard at `/ui`: askama pages for people, one more face over the same domains and
//! the same authorization check (`domains::authz`) as `/v1`.
//!
//! | module | pages |
//! | --- | --- |
//! | [`overview`] | `/ui`: engine, running work, queue, disk, recent failures, charts |
//! | [`account`] | `/ui/account`: password, API keys; `/ui/register` |
//! | [`admin`] | `/ui/admin`: users, registration, settings, registry GC, admin log |
//! | [`images`] | `/ui/images`: images and their builds |
//! | [`pipelines`] | `/ui/pipelines`, `/ui/jobs`: pipelines, jobs, live logs, results |
//! | [`prototypes`] | `/ui/prototypes`: manifests, dependencies, deletion |
//! | [`servables`] | `/ui/servables`, `/ui/instances`: servables, instances, live logs |
//! | [`access`] | `/ui/access`, `/ui/trusts`, `/ui/requests`: grants, trusts, delegation |
//! | [`registry`] | `/ui/registry`: repositories, tags |
//!
//! The pieces every page uses are in [`page`]: the signed-in [`page::Viewer`] (the session
//! cookie through the one credential resolver), the CSRF token every mutating form carries
//! ([`page::CsrfForm`], [`page::CsrfUpload`]), POST-redirect-GET with a one-time notice
//! ([`page::see_other`]), the layout, and paging (50 a page). A handler returns
//! `Result<Html<String>>` or a redirect; its `Err(Error)` becomes an HTML error page here
//! ([`render_errors`]), a 401 a redirect to the sign-in page. [`format`] and [`charts`] turn
//! values into text and inline SVG on the server; [`assets`] serves `static/` from the binary.

pub mod access;
pub mod account;
pub mod admin;
pub mod assets;
pub mod charts;
pub mod format;
pub mod images;
pub mod overview;
pub mod page;
pub mod pipelines;
pub mod prototypes;
pub mod registry;
pub mod servables;

use super::errors::{self, ErrorInfo};
use super::state::App;
use crate::core::error::Error;
use askama::Template;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;

/// The dashboard's routes, under `/ui`.
pub fn routes() -> Router<App> {
    let ui = Router::new()
        .route("/ui", get(overview::page))
        .route("/ui/", get(|| async { Redirect::permanent("/ui") }))
        .route("/ui/static/{file}", get(assets::serve))
        .merge(account::routes())
        .merge(admin::routes())
        .merge(images::routes())
        .merge(pipelines::routes())
        .merge(prototypes::routes())
        .merge(servables::routes())
        .merge(access::routes())
        .merge(registry::routes())
        .route("/ui/{*rest}", axum::routing::any(errors::not_found));
    ui.layer(middleware::from_fn(errors::catch_panic))
        .layer(middleware::from_fn(render_errors))
}

/// An error page.
#[derive(Template)]
#[template(path = "dashboard/error.html")]
struct ErrorPage {
    status: u16,
    reason: String,
    message: String,
    problems: Vec<String>,
}

/// The dashboard's rendering of the domain error: an HTML page with the status, or, for a
/// caller who is not signed in (401), a redirect to the sign-in page that comes back here.
/// Every page also gets the headers that keep it in its own frame and origin, and a notice
/// shown once is cleared.
pub async fn render_errors(request: Request, next: Next) -> Response {
    let back = request
        .uri()
        .path_and_query()
        .map_or_else(|| "/ui".to_owned(), |p| p.as_str().to_owned());
    let had_notice = page::notice_of(request.headers()).is_some();
    let mut response = next.run(request).await;
    if let Some(info) = response.extensions_mut().remove::<ErrorInfo>() {
        let status = response.status();
        response = if status == StatusCode::UNAUTHORIZED {
            let to = format!("/login?next={}", page::encode(&back));
            Redirect::to(&to).into_response()
        } else {
            error_page(status, info)
        };
    } else if had_notice && response.status().is_success() {
        response
            .headers_mut()
            .append(header::SET_COOKIE, page::clear_notice());
    }
    secure_headers(&mut response);
    response
}

fn error_page(status: StatusCode, info: ErrorInfo) -> Response {
    let page = ErrorPage {
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or("Error").to_owned(),
        message: info.message,
        problems: info
            .details
            .unwrap_or_default()
            .into_iter()
            .map(|p| format!("{} {}: {}", p.item, p.field, p.message))
            .collect(),
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!("rendering the error page: {e}");
            (status, "error").into_response()
        }
    }
}

/// What every dashboard answer carries: no framing by other sites, scripts and styles from
/// the appliance only, no MIME sniffing, no referrer to other sites.
fn secure_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// Renders a page template, or the error a template failure is (a bug: logged).
pub fn html(template: &impl Template) -> Result<Html<String>, Error> {
    template
        .render()
        .map(Html)
        .map_err(|e| Error::internal(format!("rendering a page: {e}")))
}
