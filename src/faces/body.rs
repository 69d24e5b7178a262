//! Request bodies the way kabuto's clients send them: a form (`curl -d`, `requests.post(data=)`),
//! multipart (`curl -F`), or JSON. Malformed bodies are 400 with the parser's reason, never 500.

use crate::core::error::Error;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

pub struct FormOrJson<T>(pub T);

/// Whether a request's body is `application/x-www-form-urlencoded`.
pub fn is_urlencoded(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// The whole body, within the router's body limit (413 beyond it).
async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, Error> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            Error::TooLarge("request body too large".into())
        } else {
            Error::bad_request(format!("cannot read the request body: {e}"))
        }
    })
}

impl<S, T> FromRequest<S> for FormOrJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("multipart/form-data") {
            let mut multipart = Multipart::from_request(req, state)
                .await
                .map_err(|e| Error::bad_request(format!("invalid multipart body: {e}")))?;
            let mut pairs = Vec::new();
            while let Some(field) = multipart
                .next_field()
                .await
                .map_err(|e| Error::bad_request(format!("invalid multipart body: {e}")))?
            {
                let name = field.name().unwrap_or_default().to_owned();
                let value = field.text().await.map_err(|e| {
                    Error::bad_request(format!("invalid multipart field {name:?}: {e}"))
                })?;
                pairs.push((name, value));
            }
            let encoded = serde_urlencoded::to_string(&pairs)
                .map_err(|e| Error::bad_request(format!("invalid multipart body: {e}")))?;
            return serde_urlencoded::from_str(&encoded)
                .map(FormOrJson)
                .map_err(|e| Error::bad_request(format!("invalid form: {e}")));
        }
        let bytes = read_body(req, state).await?;
        if content_type.starts_with("application/json") || content_type.contains("+json") {
            serde_json::from_slice(&bytes)
                .map(FormOrJson)
                .map_err(|e| Error::bad_request(format!("invalid JSON: {e}")))
        } else {
            serde_urlencoded::from_bytes(&bytes)
                .map(FormOrJson)
                .map_err(|e| Error::bad_request(format!("invalid form: {e}")))
        }
    }
}

/// Whether the request's `Content-Type` is JSON (`application/json`, or `+json`).
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|t| t == "application/json" || t.ends_with("+json"))
}

/// A JSON body, with JSON errors (for /v1, where forms are not accepted). The body must be
/// sent as JSON (`Content-Type: application/json`) and be an object, as every /v1 body is (a
/// struct would otherwise also take its fields as an array); an empty body is `{}`.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let json = is_json(req.headers());
        let bytes = read_body(req, state).await?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else if !json {
            // A form or `text/plain` body is what a page of another site can send without
            // asking (no CORS preflight): JSON bodies must say they are JSON.
            return Err(Error::bad_request(
                "send the body as JSON, with Content-Type: application/json",
            ));
        } else {
            &bytes
        };
        if bytes.trim_ascii_start().first() != Some(&b'{') {
            return Err(Error::bad_request(
                "invalid JSON: the body must be an object",
            ));
        }
        serde_json::from_slice(bytes)
            .map(JsonBody)
            .map_err(|e| Error::bad_request(format!("invalid JSON: {e}")))
    }
}
