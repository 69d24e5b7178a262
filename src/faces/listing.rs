//! Lists on every face: the `limit` and `cursor` query parameters, filters, and the answer.
//!
//! A page is the JSON array of its items; when more follow, the `X-Next-Cursor` header holds
//! the cursor of the next page and `Link: <...>; rel="next"` its address. The kabuto face keeps
//! its seed shapes: without `limit` or `cursor` it answers every item, streamed a page at a
//! time so that a response holds one page in memory however long the list.

use super::state::App;
use crate::core::error::{Error, Result};
use crate::core::page::{Page, PageRequest};
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

/// A page of a /v1 list: read with `fetch`, each item made into its view with `view`, and
/// serialized as a JSON array, all on the blocking pool. A list reads many rows, and a large
/// page's views and JSON cost milliseconds: none of it runs on an async worker, where it would
/// hold up every other request (`/healthz` among them).
pub async fn page_response<T, V, F, M>(
    app: &App,
    q: &ListQuery,
    fetch: F,
    view: M,
) -> Result<Response>
where
    F: FnOnce(&App) -> Result<Page<T>> + Send + 'static,
    M: Fn(&App, T) -> V + Send + 'static,
    V: Serialize,
    T: Send + 'static,
{
    let (body, next) = app
        .listing(move |app| {
            let page = fetch(app)?;
            let next = page.next_cursor();
            let items: Vec<V> = page.items.into_iter().map(|t| view(app, t)).collect();
            let body = serde_json::to_vec(&items)
                .map_err(|e| Error::internal(format!("serializing a page: {e}")))?;
            Ok((body, next))
        })
        .await?;
    Ok(q.with_next(next, json_bytes(body)))
}

/// A page of a /v1 list ordered by name rather than by id (users by login, a repository's
/// tags): `fetch` reads the items and the cursor of the next page (the last name, when more
/// follow), each item becomes its view with `view`, and the array is serialized, all on the
/// blocking pool; the headers are [`page_response`]'s.
pub async fn named_page_response<T, V, F, M>(
    app: &App,
    q: &ListQuery,
    fetch: F,
    view: M,
) -> Result<Response>
where
    F: FnOnce(&App) -> Result<(Vec<T>, Option<String>)> + Send + 'static,
    M: Fn(&App, T) -> V + Send + 'static,
    V: Serialize,
    T: Send + 'static,
{
    let (body, next) = app
        .listing(move |app| {
            let (items, next) = fetch(app)?;
            let items: Vec<V> = items.into_iter().map(|t| view(app, t)).collect();
            let body = serde_json::to_vec(&items)
                .map_err(|e| Error::internal(format!("serializing a page: {e}")))?;
            Ok((body, next))
        })
        .await?;
    Ok(q.with_next(next, json_bytes(body)))
}

/// A response of JSON already serialized.
fn json_bytes(body: Vec<u8>) -> Response {
    let mut response = Body::from(body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// kabuto's collection `{"<id>": {...}, ...}`: one page of it when the client sends `limit` or
/// `cursor` (with the headers of [`page_response`]), else every item, streamed. Pages are read
/// and serialized on the blocking pool.
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
    let (body, next) = app
        .listing(move |app| {
            let page = fetch(app, request)?;
            Ok((
                keyed_chunk(&page.items, entry, true, true),
                page.next_cursor(),
            ))
        })
        .await?;
    Ok(q.with_next(next, json_bytes(body)))
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
    // One chunk: the page's entries serialized, and the position after it (None at the end).
    let chunk = move |app: &App, request: PageRequest, first: bool| -> Result<Chunk> {
        let page = fetch(app, request)?;
        let last = page.next.is_none();
        let bytes = keyed_chunk(&page.items, entry, first, last);
        Ok((Bytes::from(bytes), page.next))
    };
    let chunk = Arc::new(chunk);
    let first = {
        let chunk = chunk.clone();
        app.listing(move |app| chunk(app, PageRequest::first(STREAM_PAGE), true))
            .await?
    };
    enum State {
        Ready(Chunk),
        Next(crate::core::id::Id),
        Done,
    }
    let app = app.clone();
    let chunks = stream::unfold(State::Ready(first), move |state| {
        let app = app.clone();
        let chunk = chunk.clone();
        async move {
            let (bytes, after) = match state {
                State::Done => return None,
                State::Ready(ready) => ready,
                // Read (and serialize) the next page once the client has taken the one before.
                State::Next(after) => {
                    let request = PageRequest {
                        after: Some(after),
                        limit: STREAM_PAGE,
                    };
                    match app.listing(move |app| chunk(app, request, false)).await {
                        Ok(ready) => ready,
                        Err(e) => {
                            // The status is sent: all that is left is to cut the body short.
                            tracing::warn!("streaming a list: {e}");
                            let e = std::io::Error::other(e.to_string());
                            return Some((Err(e), State::Done));
                        }
                    }
                }
            };
            let next = after.map_or(State::Done, State::Next);
            Some((Ok::<_, std::io::Error>(bytes), next))
        }
    });
    let mut response = Body::from_stream(chunks).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// A serialized chunk of a streamed list, and the position after its last item when more follow.
type Chunk = (Bytes, Option<crate::core::id::Id>);

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
