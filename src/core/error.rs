//! The one error type of the domain code, with no HTTP in it.
//!
//! Domains, the engine layer and handlers return `Result<_, Error>`. Each face renders it in
//! its own dialect (see `faces::errors`): the status, `{"error": "..."}` for the kabuto face,
//! `{"error": {"code", "message"}}` for /v1, the distribution spec's `{"errors": [...]}` for the
//! registry.

use super::store::StoreError;

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
    /// The Docker engine cannot be reached: no socket, the connection refused or cut, no
    /// answer in time (503).
    #[error("the Docker engine is unavailable: {0}")]
    EngineUnavailable(String),
    /// The Docker engine answered, but failed on its side (its disk full, an internal error):
    /// 502, with the engine's message (see `engine::engine_error`).
    #[error("the Docker engine failed: {0}")]
    EngineFailed(String),
    /// The embedded database failed (500).
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
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

    /// A problem list whose every entry conflicts with what exists (409 rather than 400).
    pub fn is_conflict(&self) -> bool {
        match self {
            Error::Conflict(_) => true,
            Error::Problems(p) => !p.is_empty() && p.iter().all(|p| p.conflict),
            _ => false,
        }
    }

    /// The appliance's own fault (a 500): logged in full, shown to clients only as a pointer to
    /// the log.
    pub fn is_internal(&self) -> bool {
        matches!(self, Error::Store(_) | Error::Internal(_))
    }

    /// What a client is told: the message, except for the appliance's own faults.
    pub fn public_message(&self) -> String {
        if self.is_internal() {
            "internal error (see the server log)".to_owned()
        } else {
            self.to_string()
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
            Error::EngineFailed(_) => "engine_failed",
            Error::Store(_) | Error::Internal(_) => "internal",
        }
    }
}

/// redb's errors, met inside domain transactions, are storage errors.
macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self { Error::Store(StoreError::from(e)) }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);
