//! `static/`, compiled into the binary and served at `/ui/static/<file>`: the stylesheet and
//! the one small script of the live parts (logs and build output as they come). Nothing is
//! loaded from elsewhere.

use crate::core::error::{Error, Result};
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The files: name, content type, content.
const FILES: &[(&str, &str, &str)] = &[
    (
        "dashboard.css",
        "text/css; charset=utf-8",
        include_str!("../../../static/dashboard.css"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../static/live.js"),
    ),
];

pub async fn serve(Path(file): Path<String>) -> Result<Response> {
    let (_, content_type, body) = FILES
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or_else(|| Error::not_found("no such file"))?;
    let mut response = (*body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The files change with the binary: an hour, then asked again.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    Ok(response)
}
