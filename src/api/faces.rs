//! Rendering of errors, once per face. An [`Error`](crate::Error) response carries an
//! [`ErrorInfo`] extension and no body; the face's layer turns it into that face's JSON.

use crate::error::{Error, ErrorInfo};
use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::json;

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

pub async fn not_found() -> Error {
    Error::not_found("no such route")
}
