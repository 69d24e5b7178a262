//! The registry face's errors, in the distribution spec's form:
//! `{"errors": [{"code", "message", "detail"}]}`, with its status codes.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    RangeInvalid,
    Unknown,
}

impl Code {
    fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unsupported => "UNSUPPORTED",
            Code::TooManyRequests => "TOOMANYREQUESTS",
            Code::RangeInvalid => "RANGE_INVALID",
            Code::Unknown => "UNKNOWN",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Code::BlobUnknown
            | Code::BlobUploadUnknown
            | Code::ManifestUnknown
            | Code::NameUnknown => StatusCode::NOT_FOUND,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Denied => StatusCode::FORBIDDEN,
            Code::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            Code::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Code::RangeInvalid => StatusCode::RANGE_NOT_SATISFIABLE,
            Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

#[derive(Debug)]
pub struct RegistryError {
    pub code: Code,
    pub message: String,
    pub detail: Option<serde_json::Value>,
    /// Extra headers (the auth challenge, the upload's range for a 416, Retry-After).
    pub headers: Vec<(header::HeaderName, String)>,
}

pub type RResult<T> = Result<T, RegistryError>;

impl RegistryError {
    pub fn new(code: Code, message: impl Into<String>) -> RegistryError {
        RegistryError {
            code,
            message: message.into(),
            detail: None,
            headers: Vec::new(),
        }
    }

    pub fn detail(mut self, detail: serde_json::Value) -> RegistryError {
        self.detail = Some(detail);
        self
    }

    pub fn header(mut self, name: header::HeaderName, value: impl Into<String>) -> RegistryError {
        self.headers.push((name, value.into()));
        self
    }

    pub fn unauthorized(message: impl Into<String>) -> RegistryError {
        RegistryError::new(Code::Unauthorized, message).header(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"dtaas registry\", charset=\"UTF-8\"",
        )
    }

    pub fn name_unknown(name: &str) -> RegistryError {
        RegistryError::new(Code::NameUnknown, "repository name not known to registry")
            .detail(json!({ "name": name }))
    }
}

impl From<crate::Error> for RegistryError {
    fn from(e: crate::Error) -> Self {
        use crate::Error as E;
        match e {
            E::Unauthorized(m) => RegistryError::unauthorized(m),
            E::Forbidden(m) => RegistryError::new(Code::Denied, m),
            E::NotFound(m) => RegistryError::new(Code::NameUnknown, m),
            E::RateLimited { retry_after } => {
                RegistryError::new(Code::TooManyRequests, "too many failed logins")
                    .header(header::RETRY_AFTER, retry_after.to_string())
            }
            E::BadRequest(m) | E::Conflict(m) | E::TooLarge(m) => {
                RegistryError::new(Code::Unsupported, m)
            }
            other => {
                tracing::error!(error = %other, "registry request failed");
                RegistryError::new(Code::Unknown, "internal error (see the server log)")
            }
        }
    }
}

impl From<crate::store::StoreError> for RegistryError {
    fn from(e: crate::store::StoreError) -> Self {
        crate::Error::from(e).into()
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        let body = json!({
            "errors": [{
                "code": self.code.as_str(),
                "message": self.message,
                "detail": self.detail.unwrap_or(serde_json::Value::Null),
            }]
        });
        let mut response = (status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, v);
            }
        }
        response
    }
}
