//! Lists on every face: the `limit` and `cursor` query parameters, filters, and the answer.
//!
//! A page is the JSON array of its items; when more follow, the `X-Next-Cursor` header holds
//! the cursor of the next page and `Link: <...>; rel="next"` its address. The kabuto face keeps
//! its seed shapes: without `limit` or `cursor` it answers every item, streamed a page at a
//! time so that a response holds one page in memory however long the list.

use super::state::App;
use crate::core::error::{Error, Result};
use crate::core::page::{Page, PageRequest};
use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream;
use serde::Serialize;
use std::sync::Arc;
use utoipa::IntoParams;

/// The header holding the next page's cursor.
pub const NEXT_CURSOR: HeaderName = HeaderName::from_static("x-next-cursor");

/// How many items a streamed kabuto list reads per chunk.
const STREAM_PAGE: usize = 500;

/// The query of a list request: paging and filters, each parameter given at most once.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pairs: Vec<(String, String)>,
    /// Path and query of the request as the client sent it (for the `Link` header).
    uri: axum::http::Uri,
}

/// The paging parameters as the OpenAPI document shows them (the handler reads them through
/// [`ListQuery`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageParams {
    /// How many items to answer (1 to 1000; 100 when absent).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Where to continue: the `X-Next-Cursor` of the page before, as it was given.
    #[param(pattern = r"^c1\.[0-9a-f]{32}$")]
    cursor: Option<String>,
}

/// Whether `s` has the form of a cursor this server gives out (`core::page::encode_cursor`),
/// which the document states as the pattern of `cursor` (checked here so that the two agree:
/// the cursor's decoding is more lenient with the id it holds).
fn is_cursor(s: &str) -> bool {
    s.strip_prefix("c1.").is_some_and(|hex| {
        hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

impl<S: Send + Sync> FromRequestParts<S> for ListQuery {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self> {
        let query = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|_| Error::bad_request("the query string is not valid form encoding"))?;
        for (i, (name, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(n, _)| n == name) {
                return Err(Error::bad_request(format!("{name}: given more than once")));
            }
        }
        let uri = parts
            .extensions
            .get::<OriginalUri>()
            .map(|o| o.0.clone())
            .unwrap_or_else(|| parts.uri.clone());
        Ok(ListQuery { pairs, uri })
    }
}

impl ListQuery {
    /// A parameter's value as sent. An empty one is not an absent one: it is refused wherever
    /// a value is expected (a limit, a cursor, a filter), as the document's patterns and enums
    /// say, on every list alike.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the client asked for a page (the kabuto face answers everything otherwise).
    pub fn pages(&self) -> bool {
        self.get("limit").is_some() || self.get("cursor").is_some()
    }

    /// The page asked for.
    pub fn page(&self) -> Result<PageRequest> {
        let cursor = self.get("cursor");
        if cursor.is_some_and(|c| !is_cursor(c)) {
            return Err(Error::bad_request(
                "cursor: not a cursor this server gave out (pass the value of X-Next-Cursor as is)",
            ));
        }
        PageRequest::parse(self.get("limit"), cursor)
    }

    /// A filter naming one of `choices` (by their names from `name`).
    pub fn choice<T: Copy>(
        &self,
        param: &str,
        choices: &[T],
        name: impl Fn(T) -> &'static str,
    ) -> Result<Option<T>> {
        let Some(value) = self.get(param) else {
            return Ok(None);
        };
        match choices.iter().copied().find(|c| name(*c) == value) {
            Some(c) => Ok(Some(c)),
            None => {
                let names: Vec<&str> = choices.iter().map(|c| name(*c)).collect();
                Err(Error::bad_request(format!(
                    "{param}: {value:?} is not one of {}",
                    names.join(", ")
                )))
            }
        }
    }

    /// A filter naming an object by id.
    pub fn id(&self, param: &str) -> Result<Option<crate::core::id::Id>> {
        match self.get(param) {
            None => Ok(None),
            Some(v) => crate::core::id::Id::parse(v)
                .map(Some)
                .ok_or_else(|| Error::bad_request(format!("{param}: not an id"))),
        }
    }

    /// The answer to a page: its items as a JSON array, and where the next page is.
    pub fn respond<T: Serialize>(&self, page: Page<T>) -> Response {
        let next = page.next_cursor();
        self.with_next(next, Json(page.items).into_response())
    }

    /// `response` with the headers that lead to the next page, when there is one.
    fn with_next(&self, next: Option<String>, mut response: Response) -> Response {
        if let Some(cursor) = next {
            let link = format!("<{}>; rel=\"next\"", self.next_link(&cursor));
            let headers = response.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&cursor) {
                headers.insert(NEXT_CURSOR, v);
            }
            if let Ok(v) = HeaderValue::from_str(&link) {
                headers.insert(header::LINK, v);
            }
        }
        response
    }

    /// This request's path and query with `cursor` set to the next page's.
    fn next_link(&self, cursor: &str) -> String {
        let mut query = form_urlencoded_pairs(
            self.pairs
                .iter()
                .filter(|(n, _)| n != "cursor")
                .map(|(n, v)| (n.as_str(), v.as_str())),
        );
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(&form_urlencoded_pairs(std::iter::once(("cursor", cursor))));
        format!("{}?{query}", self.uri.path())
    }
}

fn form_urlencoded_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let pairs: Vec<(&str, &str)> = pairs.collect();
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// Reads one page on the blocking pool (a list reads many rows: never on an async worker).
pub async fn read_page<T, F>(app: &App, fetch: F) -> Result<Page<T>>
where
    F: FnOnce(&App) -> Result<Page<T>> + Send + 'static,
    T: Send + 'static,
{
    app.blocking(fetch).await
}

/// kabuto's collection `{"<id>": {...}, ...}`: one page of it when the client sends `limit` or
/// `cursor` (with the headers of [`ListQuery::respond`]), else every item, streamed.
pub async fn keyed_list<T, F>(
    app: &App,
    q: &ListQuery,
    fetch: F,
    entry: fn(&T) -> (String, serde_json::Value),
) -> Result<Response>
where
    T: Send + 'static,
    F: Fn(&App, PageRequest) -> Result<Page<T>> + Send + Sync + 'static,
{
    if !q.pages() {
        return stream_keyed(app, Arc::new(fetch), entry).await;
    }
    let request = q.page()?;
    let page = app.blocking(move |app| fetch(app, request)).await?;
    let next = page.next_cursor();
    let body: serde_json::Map<String, serde_json::Value> = page.items.iter().map(entry).collect();
    Ok(q.with_next(next, Json(body).into_response()))
}

/// What a streamed list reads: the page after a position.
pub type Fetch<T> = Arc<dyn Fn(&App, PageRequest) -> Result<Page<T>> + Send + Sync>;

/// Every item of a list as kabuto's collection object `{"<id>": {...}, ...}`, streamed a page
/// at a time: each page is read on the blocking pool when the client has taken the one before.
/// The first page is read before the response starts, so that its errors get a status.
pub async fn stream_keyed<T: Send + 'static>(
    app: &App,
    fetch: Fetch<T>,
    entry: fn(&T) -> (String, serde_json::Value),
) -> Result<Response> {
    let first = {
        let fetch = fetch.clone();
        app.blocking(move |app| fetch(app, PageRequest::first(STREAM_PAGE)))
            .await?
    };
    enum State<T> {
        Page(Page<T>, bool),
        Next(PageRequest),
        Done,
    }
    let app = app.clone();
    let chunks = stream::unfold(State::Page(first, true), move |state| {
        let app = app.clone();
        let fetch = fetch.clone();
        async move {
            let (page, first) = match state {
                State::Done => return None,
                State::Page(page, first) => (page, first),
                State::Next(request) => {
                    match app.blocking(move |app| fetch(app, request)).await {
                        Ok(page) => (page, false),
                        Err(e) => {
                            // The status is sent: all that is left is to cut the body short.
                            tracing::warn!("streaming a list: {e}");
                            let e = std::io::Error::other(e.to_string());
                            return Some((Err(e), State::Done));
                        }
                    }
                }
            };
            let next = match page.next {
                Some(after) => State::Next(PageRequest {
                    after: Some(after),
                    limit: STREAM_PAGE,
                }),
                None => State::Done,
            };
            let last = matches!(next, State::Done);
            let chunk = keyed_chunk(&page.items, entry, first, last);
            Some((Ok::<_, std::io::Error>(Bytes::from(chunk)), next))
        }
    });
    let mut response = Body::from_stream(chunks).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// One chunk of `{"k": v, ...}`: `{` before the first, `,` between entries, `}` after the last.
fn keyed_chunk<T>(
    items: &[T],
    entry: fn(&T) -> (String, serde_json::Value),
    first: bool,
    last: bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    if first {
        out.push(b'{');
    }
    for (i, item) in items.iter().enumerate() {
        if i > 0 || !first {
            out.push(b',');
        }
        let (key, value) = entry(item);
        // Serialising a string and a Value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, &key);
        out.push(b':');
        let _ = serde_json::to_writer(&mut out, &value);
    }
    if last {
        out.push(b'}');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn entry(n: &u32) -> (String, Value) {
        (format!("k{n}"), json!({ "n": n }))
    }

    #[test]
    fn cursors_given_out_have_the_documented_form() {
        let id = crate::core::id::Id::new();
        let cursor = crate::core::page::encode_cursor(id);
        assert!(is_cursor(&cursor), "{cursor}");
        assert_eq!(crate::core::page::decode_cursor(&cursor).unwrap(), id);
        for bad in [
            "",
            "c1.",
            "c1.zz",
            "c2.0190b1f3c4d27a8e9b1c2d3e4f506172",
            "c1.0190B1F3C4D27A8E9B1C2D3E4F506172",
        ] {
            assert!(!is_cursor(bad), "{bad}");
        }
    }

    #[test]
    fn chunks_join_into_the_object_serialised_whole() {
        let pages: [&[u32]; 3] = [&[1, 2], &[3], &[4, 5]];
        let mut bytes = Vec::new();
        for (i, p) in pages.iter().enumerate() {
            bytes.extend(keyed_chunk(p, entry, i == 0, i == pages.len() - 1));
        }
        let parsed: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            parsed,
            json!({"k1": {"n": 1}, "k2": {"n": 2}, "k3": {"n": 3}, "k4": {"n": 4}, "k5": {"n": 5}})
        );
        let empty = keyed_chunk::<u32>(&[], entry, true, true);
        assert_eq!(empty, b"{}");
    }
}
