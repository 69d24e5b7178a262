//! The domain error, rendered once per face. A handler's `Err(Error)` becomes a response with
//! the error's status and an [`ErrorInfo`] extension and no body; the face's `map_response`
//! layer turns that into the face's JSON: `{"error": "..."}` for the kabuto face,
//! `{"error": {"code", "message", "details"?}}` for /v1. The registry renders its own errors
//! (`faces::v2`).
//!
//! A panic in a handler (a bug) must not drop the connection: [`catch_panic`], a layer under
//! each face's rendering layer, turns it into [`Error::Internal`] (logged, with the request and
//! the panic's message), which the face then renders as its 500.

use crate::core::error::{Cause, Error, Problem};
use axum::Json;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use serde_json::json;
use std::any::Any;
use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;

/// The HTTP status of a domain error.
pub fn status(error: &Error) -> StatusCode {
    match error {
        Error::BadRequest(_) => StatusCode::BAD_REQUEST,
        Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::Problems(problems) => match Cause::of(problems) {
            Cause::Input => StatusCode::BAD_REQUEST,
            Cause::Missing => StatusCode::NOT_FOUND,
            Cause::Forbidden => StatusCode::FORBIDDEN,
            Cause::Conflict => StatusCode::CONFLICT,
        },
        Error::Unavailable(_) | Error::EngineUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::BadGateway(_) | Error::EngineFailed(_) => StatusCode::BAD_GATEWAY,
        Error::Store(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// What a face needs to render an error body; travels in the response's extensions.
#[derive(Debug, Clone)]
pub struct ErrorInfo {
    pub code: &'static str,
    pub message: String,
    /// Per-item problems, for faces that can show them.
    pub details: Option<Vec<Problem>>,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if self.is_internal() || matches!(self, Error::EngineFailed(_)) {
            tracing::error!(error = %self, "request failed");
        }
        let mut response = status(&self).into_response();
        if let Error::RateLimited { retry_after } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        let info = ErrorInfo {
            code: self.code(),
            message: self.public_message(),
            details: match self {
                Error::Problems(p) => Some(p),
                _ => None,
            },
        };
        response.extensions_mut().insert(info);
        response
    }
}

fn render(mut response: Response, body: impl FnOnce(ErrorInfo) -> serde_json::Value) -> Response {
    match response.extensions_mut().remove::<ErrorInfo>() {
        Some(info) => {
            let (mut parts, _) = response.into_parts();
            let rendered = Json(body(info)).into_response();
            let (rparts, rbody) = rendered.into_parts();
            parts.headers.extend(rparts.headers);
            Response::from_parts(parts, rbody)
        }
        None => response,
    }
}

/// kabuto's dialect: `{"error": "message"}`.
pub async fn kabuto(response: Response) -> Response {
    render(response, |info| json!({ "error": info.message }))
}

/// The /v1 dialect: `{"error": {"code": "...", "message": "..."}}`.
pub async fn v1(response: Response) -> Response {
    render(response, |info| match info.details {
        Some(details) => json!({
            "error": { "code": info.code, "message": info.message, "details": details }
        }),
        None => json!({ "error": { "code": info.code, "message": info.message } }),
    })
}

/// A response in the /v1 dialect, whichever router layer (if any) it passes on its way out.
pub async fn v1_response(error: Error) -> Response {
    v1(error.into_response()).await
}

/// Runs `future`; a panic in it becomes [`Error::Internal`] naming `what` and the panic's
/// message (logged when the error is rendered; clients see only "internal error").
pub async fn unwinding<T>(what: impl Display, future: impl Future<Output = T>) -> Result<T, Error> {
    AssertUnwindSafe(future)
        .catch_unwind()
        .await
        .map_err(|payload| {
            Error::internal(format!("{what} panicked: {}", panic_message(&*payload)))
        })
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a panic without a message)")
}

/// The path of a request as logs show it: paths that carry secrets (the confirmation token)
/// are shown as their route pattern.
pub fn loggable_path(request: &Request) -> String {
    match request.extensions().get::<MatchedPath>() {
        Some(p) if p.as_str().contains("{token}") => p.as_str().to_owned(),
        _ => request.uri().path().to_owned(),
    }
}

/// Runs the rest of the stack, a panic becoming [`Error::Internal`].
pub async fn catching_panics(request: Request, next: Next) -> Result<Response, Error> {
    let what = format!("{} {}", request.method(), loggable_path(&request));
    unwinding(what, next.run(request)).await
}

/// A layer (`middleware::from_fn(catch_panic)`) under a face's rendering layer: a panic becomes
/// the response of [`Error::Internal`], which that layer renders in the face's dialect.
pub async fn catch_panic(request: Request, next: Next) -> Response {
    catching_panics(request, next)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub async fn not_found() -> Error {
    Error::not_found("no such route")
}

/// Parses an id from a path; an id that cannot exist is as unknown as a missing object.
pub fn parse_id(raw: &str, what: &str) -> Result<crate::core::id::Id, Error> {
    crate::core::id::Id::parse(raw).ok_or_else(|| Error::not_found(format!("{what} not found")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_error_kind() {
        assert_eq!(status(&Error::bad_request("x")), StatusCode::BAD_REQUEST);
        assert_eq!(status(&Error::forbidden("x")), StatusCode::FORBIDDEN);
        assert_eq!(
            status(&Error::RateLimited { retry_after: 3 }),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            status(&Error::EngineUnavailable("x".into())),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(&Error::internal("x")),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let conflict = Problem::new("a", "tag", "taken").because(Cause::Conflict);
        let missing = Problem::new("a", "tag", "not pushed").because(Cause::Missing);
        let forbidden = Problem::new("a", "tag", "not yours").because(Cause::Forbidden);
        let invalid = Problem::new("b", "name", "bad");
        let status_of = |problems: &[&Problem]| {
            status(&Error::Problems(
                problems.iter().map(|p| (*p).clone()).collect(),
            ))
        };
        assert_eq!(status_of(&[&conflict]), StatusCode::CONFLICT);
        assert_eq!(status_of(&[&conflict, &invalid]), StatusCode::BAD_REQUEST);
        assert_eq!(status_of(&[&missing, &conflict]), StatusCode::NOT_FOUND);
        assert_eq!(status_of(&[&forbidden, &conflict]), StatusCode::FORBIDDEN);
        assert_eq!(
            status_of(&[&conflict, &forbidden, &missing]),
            StatusCode::NOT_FOUND
        );
        assert_eq!(status_of(&[&missing, &invalid]), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn internal_errors_do_not_reach_clients() {
        let response = Error::internal("disk on fire at /secret/path").into_response();
        let info = response.extensions().get::<ErrorInfo>().expect("info");
        assert_eq!(info.code, "internal");
        assert!(!info.message.contains("/secret/path"));
        let response = Error::RateLimited { retry_after: 7 }.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
    }
}
