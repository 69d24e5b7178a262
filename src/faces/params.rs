//! Query strings and path segments, parsed with the appliance's errors. axum's own `Query` and
//! `Path` answer a malformed value (`?after=-1`, a path segment that is not UTF-8) with a
//! text/plain 400 of their own, which no face's error dialect covers; these answer
//! [`Error::BadRequest`], which each face renders in its dialect (the /v1 JSON error on /v1).

use crate::core::error::Error;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// The query string as `T` (serde, form encoding); a value that does not parse is a 400 naming
/// the parameter.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
            .map(Query)
            .map_err(|e| Error::bad_request(format!("invalid query string: {e}")))
    }
}

/// The route's path parameters as `T`; one that does not decode (not UTF-8 once
/// percent-decoded) is a 400. Ids are parsed by the handler (`errors::parse_id`), so that an id
/// that cannot exist is as unknown as a missing object.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(t)) => Ok(Path(t)),
            // A route whose pattern does not hold the parameters its handler takes: a bug.
            Err(e) if e.status().is_server_error() => Err(Error::internal(e.body_text())),
            Err(e) => Err(Error::bad_request(format!(
                "invalid path: {}",
                e.body_text()
            ))),
        }
    }
}
