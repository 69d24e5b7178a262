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
    /// Input with several problems, each naming what it concerns (400; when none is about the
    /// input itself, the status of their [`Cause`]: see [`Cause::of`]).
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
    /// Whether the input itself is at fault, or how it stands with what exists.
    #[serde(skip)]
    pub cause: Cause,
}

impl Problem {
    pub fn new(item: &str, field: &str, message: impl Into<String>) -> Problem {
        Problem {
            item: item.to_owned(),
            field: field.to_owned(),
            message: message.into(),
            cause: Cause::Input,
        }
    }

    /// This problem, with another cause.
    pub fn because(self, cause: Cause) -> Problem {
        Problem { cause, ..self }
    }
}

/// What a problem is about. A request the API's rules allow can still name something that is
/// not there, or not the caller's, or that conflicts with what is: those are not faults of its
/// form, and a list of only those is answered as such (404, 403, 409) rather than as a 400.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Cause {
    /// The input breaks a rule (400).
    #[default]
    Input,
    /// Something it names does not exist, or the caller cannot see it (404).
    Missing,
    /// Something it names is not the caller's to use (403).
    Forbidden,
    /// It conflicts with something that exists, e.g. a name already taken (409).
    Conflict,
}

impl Cause {
    /// The cause of a list of problems: the input's when any problem is about the input, else
    /// the first of missing, forbidden, conflict that any problem has.
    pub fn of(problems: &[Problem]) -> Cause {
        [Cause::Input, Cause::Missing, Cause::Forbidden]
            .into_iter()
            .find(|c| problems.iter().any(|p| p.cause == *c))
            .unwrap_or(Cause::Conflict)
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

    /// A stable, machine-readable code (the `code` of /v1 errors). A problem list's follows its
    /// status (`invalid` for a 400), with the problems in `details` whatever the code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "bad_request",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::TooLarge(_) => "too_large",
            Error::RateLimited { .. } => "rate_limited",
            Error::Problems(problems) => match Cause::of(problems) {
                Cause::Input => "invalid",
                Cause::Missing => "not_found",
                Cause::Forbidden => "forbidden",
                Cause::Conflict => "conflict",
            },
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
