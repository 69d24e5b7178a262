//! The registry's errors, in the distribution spec's vocabulary (its error codes, a message, a
//! detail). The `/v2` face renders them (`faces::v2::errors`) as
//! `{"errors": [{"code", "message", "detail"}]}` with the spec's status codes.

use crate::core::error::Error;
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
    /// distribution's code for an `n` that is not a non-negative integer (400).
    PaginationNumberInvalid,
    SizeInvalid,
    /// Docker's legacy code for an invalid tag, which distribution keeps (400).
    TagInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    RangeInvalid,
    Unknown,
}

impl Code {
    pub fn as_str(self) -> &'static str {
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
            Code::PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::TagInvalid => "TAG_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unsupported => "UNSUPPORTED",
            Code::TooManyRequests => "TOOMANYREQUESTS",
            Code::RangeInvalid => "RANGE_INVALID",
            Code::Unknown => "UNKNOWN",
        }
    }
}

#[derive(Debug)]
pub struct RegistryError {
    pub code: Code,
    pub message: String,
    pub detail: Option<serde_json::Value>,
    /// Extra headers (the auth challenge, the upload's range for a 416, Retry-After), by their
    /// lower-case names.
    pub headers: Vec<(&'static str, String)>,
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

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> RegistryError {
        self.headers.push((name, value.into()));
        self
    }

    pub fn unauthorized(message: impl Into<String>) -> RegistryError {
        RegistryError::new(Code::Unauthorized, message).header(
            "www-authenticate",
            "Basic realm=\"dtaas registry\", charset=\"UTF-8\"",
        )
    }

    pub fn name_unknown(name: &str) -> RegistryError {
        RegistryError::new(Code::NameUnknown, "repository name not known to registry")
            .detail(json!({ "name": name }))
    }
}

impl From<Error> for RegistryError {
    fn from(e: Error) -> Self {
        use Error as E;
        match e {
            E::Unauthorized(m) => RegistryError::unauthorized(m),
            E::Forbidden(m) => RegistryError::new(Code::Denied, m),
            E::NotFound(m) => RegistryError::new(Code::NameUnknown, m),
            E::RateLimited { retry_after } => {
                RegistryError::new(Code::TooManyRequests, "too many failed logins")
                    .header("retry-after", retry_after.to_string())
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

impl From<crate::core::store::StoreError> for RegistryError {
    fn from(e: crate::core::store::StoreError) -> Self {
        Error::from(e).into()
    }
}
