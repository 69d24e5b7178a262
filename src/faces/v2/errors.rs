//! The registry's errors as the distribution spec renders them:
//! `{"errors": [{"code", "message", "detail"}]}`, with its status codes.

use crate::domains::registry::error::{Code, RegistryError};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The spec's status of an error code.
pub fn status(code: Code) -> StatusCode {
    match code {
        Code::BlobUnknown | Code::BlobUploadUnknown | Code::ManifestUnknown | Code::NameUnknown => {
            StatusCode::NOT_FOUND
        }
        Code::Unauthorized => StatusCode::UNAUTHORIZED,
        Code::Denied => StatusCode::FORBIDDEN,
        Code::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
        Code::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        Code::RangeInvalid => StatusCode::RANGE_NOT_SATISFIABLE,
        Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        Code::BlobUploadInvalid
        | Code::DigestInvalid
        | Code::ManifestBlobUnknown
        | Code::ManifestInvalid
        | Code::NameInvalid
        | Code::PaginationNumberInvalid
        | Code::SizeInvalid
        | Code::TagInvalid => StatusCode::BAD_REQUEST,
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let body = json!({
            "errors": [{
                "code": self.code.as_str(),
                "message": self.message,
                "detail": self.detail.unwrap_or(serde_json::Value::Null),
            }]
        });
        let mut response = (status(self.code), axum::Json(body)).into_response();
        for (name, value) in self.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}
