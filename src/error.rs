//! The one error type of the server's domain code.
//!
//! Handlers return `Result<_, Error>`. Turning an `Error` into a response happens in two steps:
//! [`Error::into_response`] picks the status and attaches an [`ErrorInfo`] to an empty response,
//! then the face that served the request renders the body in its own dialect (see
//! `api::faces`): `{"error": "..."}` for the kabuto face, `{"error": {"code", "message"}}` for
//! /v1, the distribution spec's `{"errors": [...]}` for the registry.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed or invalid input (400).
    #[error("{0}")]
    BadRequest(String),
    /// No credentials, or invalid ones (401).
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed on an object the caller can see (403).
    #[error("{0}")]
    Forbidden(String),
    /// Unknown, or invisible to the caller (404).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// The request body is over a configured limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// Too many attempts; retry after the given number of seconds (429).
    #[error("too many failed attempts, retry in {retry_after} s")]
    RateLimited { retry_after: u64 },
    /// Input with several problems, each naming what it concerns (400; 409 when every problem
    /// is a conflict with what exists).
    #[error("{}", summarize(.0))]
    Problems(Vec<Problem>),
    /// The target exists but cannot serve now (503), e.g. an app with no running instance.
    #[error("{0}")]
    Unavailable(String),
    /// An upstream (an app behind the proxy) failed (502).
    #[error("{0}")]
    BadGateway(String),
    /// The Docker engine cannot be reached (503).
    #[error("the Docker engine is unavailable: {0}")]
    EngineUnavailable(String),
    /// The embedded database failed (500).
    #[error("storage error: {0}")]
    Store(#[from] crate::store::StoreError),
    /// Anything else that is the appliance's fault (500).
    #[error("internal error: {0}")]
    Internal(String),
}

/// One problem of an input: which item (e.g. a prototype), which field, and why.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Problem {
    pub item: String,
    pub field: String,
    pub message: String,
    /// The problem is a conflict with something that exists (e.g. a name already taken).
    #[serde(skip)]
    pub conflict: bool,
}

impl Problem {
    pub fn new(item: &str, field: &str, message: impl Into<String>) -> Problem {
        Problem {
            item: item.to_owned(),
            field: field.to_owned(),
            message: message.into(),
            conflict: false,
        }
    }
}

fn summarize(problems: &[Problem]) -> String {
    let mut out = format!("{} problem(s): ", problems.len());
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(&format!("{}.{}: {}", p.item, p.field, p.message));
    }
    out
}

impl Error {
    pub fn bad_request(msg: impl Into<String>) -> Error {
        Error::BadRequest(msg.into())
    }
    pub fn not_found(msg: impl Into<String>) -> Error {
        Error::NotFound(msg.into())
    }
    pub fn conflict(msg: impl Into<String>) -> Error {
        Error::Conflict(msg.into())
    }
    pub fn unauthorized(msg: impl Into<String>) -> Error {
        Error::Unauthorized(msg.into())
    }
    pub fn forbidden(msg: impl Into<String>) -> Error {
        Error::Forbidden(msg.into())
    }
    pub fn internal(msg: impl std::fmt::Display) -> Error {
        Error::Internal(msg.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Problems(p) if !p.is_empty() && p.iter().all(|p| p.conflict) => {
                StatusCode::CONFLICT
            }
            Error::Problems(_) => StatusCode::BAD_REQUEST,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Error::EngineUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Store(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable, machine-readable code (the `code` of /v1 errors).
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "bad_request",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::TooLarge(_) => "too_large",
            Error::RateLimited { .. } => "rate_limited",
            Error::Problems(_) => "invalid",
            Error::Unavailable(_) => "unavailable",
            Error::BadGateway(_) => "bad_gateway",
            Error::EngineUnavailable(_) => "engine_unavailable",
            Error::Store(_) | Error::Internal(_) => "internal",
        }
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
        let status = self.status();
        if matches!(self, Error::Store(_) | Error::Internal(_)) {
            tracing::error!(error = %self, "request failed");
        }
        let mut response = status.into_response();
        if let Error::RateLimited { retry_after } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        let code = self.code();
        let message = match &self {
            // Do not leak storage internals to clients; the log has the details.
            Error::Store(_) | Error::Internal(_) => {
                "internal error (see the server log)".to_owned()
            }
            other => other.to_string(),
        };
        let details = match self {
            Error::Problems(p) => Some(p),
            _ => None,
        };
        response.extensions_mut().insert(ErrorInfo {
            code,
            message,
            details,
        });
        response
    }
}
