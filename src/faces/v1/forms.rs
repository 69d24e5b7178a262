//! The bodies of the /v1 routes that take files (a build's attachments, a job's): either
//! `multipart/form-data`, its files streamed to a staging directory by `faces::upload` and
//! counted against `limits.max_upload_mb`, or JSON (strictly typed, without files). Every other
//! body is refused, as everywhere on /v1.

use crate::core::error::{Error, Result};
use crate::faces::body::JsonBody;
use crate::faces::state::App;
use crate::faces::upload::Upload;
use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

/// A body with files (multipart) or without (JSON, read as `T`). The routes taking it lift the
/// router's body limit (`axum::extract::DefaultBodyLimit::disable`): multipart is counted as it
/// streams to disk, and JSON is read up to the same `limits.max_upload_mb` (413 beyond).
pub enum FilesOrJson<T> {
    Multipart(Upload),
    Json(T),
}

impl<T: DeserializeOwned> FromRequest<App> for FilesOrJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, app: &App) -> Result<Self> {
        let multipart = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("multipart/form-data")
            });
        if multipart {
            return Upload::from_request(req, app)
                .await
                .map(FilesOrJson::Multipart);
        }
        let limit = usize::try_from(app.config.limits.max_upload_mb.saturating_mul(1024 * 1024))
            .unwrap_or(usize::MAX);
        let req = req.map(|body| Body::new(http_body_util::Limited::new(body, limit)));
        JsonBody::<T>::from_request(req, app)
            .await
            .map(|JsonBody(t)| FilesOrJson::Json(t))
    }
}

/// A yes/no form field as /v1 documents it (a boolean: `true` or `false`, in any case); absent
/// is `None`.
pub fn form_bool(upload: &Upload, key: &str) -> Result<Option<bool>> {
    match upload.text(key) {
        None => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(v) => Err(Error::bad_request(format!(
            "`{key}` must be true or false, not {v:?}"
        ))),
    }
}
