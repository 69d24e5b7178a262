//! The client's HTTP: one connection pool per command over hyper, TLS by rustls with the ring
//! provider (the system's authorities, plus `--ca-cert`, or no check with `--insecure`), the
//! API key as a bearer token, `/v1` errors turned into sentences that say what to do next, and
//! lists followed page by page (`X-Next-Cursor`).
//!
//! A remote body is never echoed: of an error only the API's own `error.message` is shown
//! (control characters replaced), and an answer that is not the API's is named by its status.

use super::profile::{BaseUrl, KeySource, Target};
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A boxed error, as request bodies give them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A request body: whole (JSON, a form) or streamed (uploads).
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// How long an answer's head may take (a servable's run answers once its container runs).
const HEAD_TIMEOUT: Duration = Duration::from_secs(600);
/// The most of a JSON answer read into memory.
const MAX_JSON: usize = 256 << 20;
/// The page size `list` asks for.
pub const MAX_PAGE: usize = 1000;

/// Why a request failed, with what to do about it.
#[derive(Debug)]
pub enum ClientError {
    /// No URL from flags, environment or profile.
    NoUrl,
    /// No API key for the URL.
    NotLoggedIn { url: String },
    /// The server cannot be reached.
    Connect { url: String, message: String },
    /// The server's certificate is not trusted.
    Certificate { url: String, message: String },
    /// The API answered with an error.
    Api {
        status: StatusCode,
        code: Option<String>,
        message: Option<String>,
        /// Where the refused key came from (401).
        key: Option<KeySource>,
        url: String,
    },
    /// The answer is not what the API gives.
    Protocol { url: String, message: String },
    /// A local problem (a file, the TLS setup).
    Local(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::NoUrl => write!(
                f,
                "no appliance to talk to: run `dtaas login URL`, or give --url or DTAAS_URL"
            ),
            ClientError::NotLoggedIn { url } => write!(
                f,
                "not logged in to {url}: run `dtaas login {url}` (or set DTAAS_API_KEY)"
            ),
            ClientError::Connect { url, message } => write!(f, "cannot reach {url}: {message}"),
            ClientError::Certificate { url, message } => write!(
                f,
                "the certificate of {url} is not trusted ({message}). Give the appliance's \
                 authority with --ca-cert PATH (a generated one is <data dir>/tls/ca.crt on the \
                 server, e.g. /var/lib/dtaas/tls/ca.crt), or --insecure to skip the check"
            ),
            ClientError::Api {
                status,
                code,
                message,
                key,
                url,
            } => {
                let what = match message {
                    Some(m) => m.clone(),
                    None => format!(
                        "the server answered {} {}",
                        status.as_u16(),
                        status.canonical_reason().unwrap_or("")
                    )
                    .trim_end()
                    .to_owned(),
                };
                match status.as_u16() {
                    401 => match key {
                        Some(KeySource::Environment) => write!(
                            f,
                            "{what}: the key in DTAAS_API_KEY was refused. Set a valid key, or \
                             unset it and run `dtaas login {url}`"
                        ),
                        _ => write!(
                            f,
                            "{what}: your key was refused (revoked or expired). Run `dtaas \
                             login {url}` to sign in again"
                        ),
                    },
                    403 => write!(f, "{what} (forbidden: ask the object's owner for access)"),
                    404 => write!(f, "{what} (not found, or not visible to you)"),
                    429 => write!(f, "{what} (too many attempts: wait a minute and try again)"),
                    503 if code.as_deref() == Some("engine_unavailable") => write!(
                        f,
                        "{what} (the appliance's Docker engine does not answer: ask its admin)"
                    ),
                    s if s >= 500 => write!(
                        f,
                        "{what} (the appliance failed: try again later, or ask its admin to \
                         look at its log)"
                    ),
                    _ => write!(f, "{what}"),
                }
            }
            ClientError::Protocol { url, message } => write!(
                f,
                "{message}: is {url} a dtaas appliance? Check the URL (`dtaas profiles`, --url)"
            ),
            ClientError::Local(m) => write!(f, "{m}"),
        }
    }
}

impl From<ClientError> for String {
    fn from(e: ClientError) -> String {
        e.to_string()
    }
}

impl ClientError {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Text from the server, safe to print: control characters replaced, at most `max` characters.
pub fn sanitize(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

/// The message of an error body: `/v1`'s `{"error": {"code", "message"}}` or the kabuto face's
/// `{"error": "..."}`; nothing from any other body.
pub fn error_of(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return (None, None);
    };
    let text = |v: &Value| v.as_str().map(|s| sanitize(s, 500));
    match &v["error"] {
        Value::String(s) => (None, Some(sanitize(s, 500))),
        e @ Value::Object(_) => {
            let mut message = text(&e["message"]);
            if let (Some(m), Some(details)) = (&mut message, e["details"].as_array()) {
                for d in details.iter().take(20) {
                    let part = [&d["item"], &d["field"], &d["message"]]
                        .iter()
                        .filter_map(|x| text(x))
                        .collect::<Vec<_>>()
                        .join(": ");
                    if !part.is_empty() {
                        m.push_str("\n  ");
                        m.push_str(&part);
                    }
                }
            }
            (text(&e["code"]), message)
        }
        _ => (None, None),
    }
}

/// The appliance as one command talks to it.
#[derive(Clone)]
pub struct Api {
    pub base: BaseUrl,
    key: Option<(String, KeySource)>,
    client: Client<HttpsConnector<HttpConnector>, Body>,
}

/// The body of a request.
pub enum Payload {
    Empty,
    Json(Value),
    Form(Vec<(String, String)>),
    Stream { content_type: String, body: Body },
}

impl Api {
    /// A client for `target`'s URL and key. It needs a URL, not a key.
    pub fn new(target: &Target) -> Result<Api, ClientError> {
        let base = target.url.clone().ok_or(ClientError::NoUrl)?;
        let client = connector(&base, target.ca_cert.as_ref(), target.insecure)?;
        Ok(Api {
            base,
            key: target.api_key.clone(),
            client,
        })
    }

    /// The same appliance with this key.
    pub fn with_key(&self, key: Option<(String, KeySource)>) -> Api {
        Api {
            key,
            ..self.clone()
        }
    }

    /// The key in use, if any.
    pub fn key(&self) -> Option<&str> {
        self.key.as_ref().map(|(k, _)| k.as_str())
    }

    /// Fails unless a key is at hand (before a request that needs one).
    pub fn require_key(&self) -> Result<(), ClientError> {
        match self.key {
            Some(_) => Ok(()),
            None => Err(ClientError::NotLoggedIn {
                url: self.base.to_string(),
            }),
        }
    }

    /// Sends a request to `path` (with its query) and returns the answer whatever its status.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Payload,
        headers: &[(header::HeaderName, String)],
    ) -> Result<Response<Incoming>, ClientError> {
        let url = self.base.join(path);
        let mut request = Request::builder()
            .method(method)
            .uri(&url)
            .header(
                header::USER_AGENT,
                concat!("dtaas/", env!("CARGO_PKG_VERSION")),
            )
            .header(header::ACCEPT, "application/json");
        if let Some((key, _)) = &self.key {
            request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let body: Body = match body {
            Payload::Empty => whole(Bytes::new()),
            Payload::Json(v) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                whole(Bytes::from(v.to_string()))
            }
            Payload::Form(pairs) => {
                request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                let text = serde_urlencoded::to_string(pairs)
                    .map_err(|e| ClientError::Local(format!("cannot encode the form: {e}")))?;
                whole(Bytes::from(text))
            }
            Payload::Stream { content_type, body } => {
                request = request.header(header::CONTENT_TYPE, content_type);
                body
            }
        };
        let request = request
            .body(body)
            .map_err(|e| ClientError::Local(format!("cannot make a request for {url}: {e}")))?;
        match tokio::time::timeout(HEAD_TIMEOUT, self.client.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(self.transport_error(&e)),
            Err(_) => Err(ClientError::Connect {
                url: self.base.to_string(),
                message: format!("no answer in {} s", HEAD_TIMEOUT.as_secs()),
            }),
        }
    }

    /// What a transport failure means for the user.
    fn transport_error(&self, e: &(dyn std::error::Error + 'static)) -> ClientError {
        let url = self.base.to_string();
        let mut innermost = e.to_string();
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = current {
            if let Some(tls) = tls_error(err) {
                return match tls {
                    rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented => ClientError::Certificate {
                        url,
                        message: tls.to_string(),
                    },
                    rustls::Error::InvalidMessage(_) => ClientError::Connect {
                        url: url.clone(),
                        message: format!(
                            "{tls}; does the server speak plain HTTP? Try {}",
                            url.replacen("https://", "http://", 1)
                        ),
                    },
                    other => ClientError::Connect {
                        url,
                        message: format!("TLS: {other}"),
                    },
                };
            }
            innermost = err.to_string();
            current = err.source();
        }
        if !self.base.https
            && (innermost.contains("connection closed before message completed")
                || innermost.contains("invalid HTTP"))
        {
            innermost = format!(
                "{innermost}; does the server speak HTTPS? Try {}",
                url.replacen("http://", "https://", 1)
            );
        } else {
            innermost = format!(
                "{innermost}. Is the appliance running there? Check the URL (`dtaas profiles`, \
                 --url)"
            );
        }
        ClientError::Connect {
            url,
            message: innermost,
        }
    }

    /// Turns an answer that is not a success into its error.
    pub async fn check(
        &self,
        response: Response<Incoming>,
    ) -> Result<Response<Incoming>, ClientError> {
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = read_limited(response.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        let (code, message) = error_of(&body);
        Err(ClientError::Api {
            status,
            code,
            message,
            key: self.key.as_ref().map(|(_, s)| *s),
            url: self.base.to_string(),
        })
    }

    /// Sends, checks the status and reads a JSON answer (`Value::Null` for an empty one).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Payload,
    ) -> Result<Value, ClientError> {
        let response = self.send(method, path, body, &[]).await?;
        let response = self.check(response).await?;
        self.json(response).await
    }

    /// The body of an answer as JSON (`Value::Null` when empty).
    pub async fn json(&self, response: Response<Incoming>) -> Result<Value, ClientError> {
        let status = response.status();
        let body = read_limited(response.into_body(), MAX_JSON)
            .await
            .map_err(|message| ClientError::Connect {
                url: self.base.to_string(),
                message,
            })?;
        if body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).map_err(|_| ClientError::Protocol {
            url: self.base.to_string(),
            message: format!("the answer ({}) is not JSON", status.as_u16()),
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.require_key()?;
        self.call(Method::GET, path, Payload::Empty).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Value, ClientError> {
        self.require_key()?;
        self.call(Method::POST, path, Payload::Json(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.require_key()?;
        self.call(Method::DELETE, path, Payload::Empty).await
    }

    /// Every item of a list, page after page (`X-Next-Cursor`), at most `limit` of them.
    /// `query` holds the list's filters; `page_size` (at most [`MAX_PAGE`]) how many to ask
    /// for at a time.
    pub async fn list(
        &self,
        path: &str,
        query: &[(&str, String)],
        limit: Option<usize>,
        page_size: usize,
    ) -> Result<Vec<Value>, ClientError> {
        self.require_key()?;
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let want = match limit {
                Some(l) => (l - items.len()).min(page_size),
                None => page_size,
            };
            if want == 0 {
                break;
            }
            let mut pairs: Vec<(&str, String)> = query.to_vec();
            pairs.push(("limit", want.min(MAX_PAGE).to_string()));
            if let Some(c) = &cursor {
                pairs.push(("cursor", c.clone()));
            }
            let q = serde_urlencoded::to_string(&pairs)
                .map_err(|e| ClientError::Local(format!("cannot encode the query: {e}")))?;
            let response = self
                .send(Method::GET, &format!("{path}?{q}"), Payload::Empty, &[])
                .await?;
            let response = self.check(response).await?;
            let next = response
                .headers()
                .get("x-next-cursor")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let page = match self.json(response).await? {
                Value::Array(page) => page,
                _ => {
                    return Err(ClientError::Protocol {
                        url: self.base.to_string(),
                        message: format!("{path} did not answer with a list"),
                    });
                }
            };
            let got = page.len();
            items.extend(page);
            match next {
                // A server that gives the same cursor twice or an empty page with a cursor
                // would page forever.
                Some(n) if got > 0 && cursor.as_deref() != Some(n.as_str()) => cursor = Some(n),
                _ => break,
            }
        }
        if let Some(l) = limit {
            items.truncate(l);
        }
        Ok(items)
    }
}

fn whole(bytes: Bytes) -> Body {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Reads a body, failing past `max` bytes.
pub async fn read_limited(mut body: Incoming, max: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("the answer broke off: {e}"))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > max {
                return Err(format!("the answer is larger than {} MiB", max >> 20));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// The rustls error under a transport error (tokio-rustls wraps it in an `io::Error`, which
/// hyper-rustls wraps in another).
fn tls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(t) = e.downcast_ref::<rustls::Error>() {
        return Some(t);
    }
    let mut inner = e.downcast_ref::<std::io::Error>()?.get_ref()?;
    for _ in 0..8 {
        if let Some(t) = inner.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        inner = inner.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
    None
}

/// The connection pool: plain HTTP, or HTTPS checked against the system's authorities plus
/// `ca_cert` (or not at all with `insecure`).
fn connector(
    base: &BaseUrl,
    ca_cert: Option<&PathBuf>,
    insecure: bool,
) -> Result<Client<HttpsConnector<HttpConnector>, Body>, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Local(format!("TLS setup: {e}")))?;
    let config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoCheck(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        // The system's authorities are read only for HTTPS (they take a moment).
        if base.https {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
        if let Some(path) = ca_cert {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    ClientError::Local(format!(
                        "cannot read the authority {} (--ca-cert): {e}",
                        path.display()
                    ))
                })?;
            if certs.is_empty() {
                return Err(ClientError::Local(format!(
                    "{} (--ca-cert) holds no PEM certificate",
                    path.display()
                )));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    ClientError::Local(format!(
                        "{} (--ca-cert) is not a usable authority: {e}",
                        path.display()
                    ))
                })?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(15)));
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(https))
}

/// `--insecure`: any certificate is taken; the handshake's signatures are still checked.
#[derive(Debug)]
struct NoCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The value of cookie `name` among `Set-Cookie` headers.
pub fn cookie_of(headers: &HeaderMap<HeaderValue>, name: &str) -> Option<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|pair| pair.split_once('='))
        .find(|(n, _)| n.trim() == name)
        .map(|(_, value)| value.trim().to_owned())
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event: String,
    pub data: String,
    pub id: Option<String>,
}

/// Reads server-sent events from a byte stream fed in pieces.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: String,
    data: Vec<String>,
    id: Option<String>,
}

impl SseParser {
    /// The events completed by `bytes`.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
            let raw: Vec<u8> = self.buf.drain(..=end).collect();
            let line = String::from_utf8_lossy(&raw[..raw.len() - 1]);
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if line.is_empty() {
                if !self.data.is_empty() {
                    events.push(Event {
                        event: if self.event.is_empty() {
                            "message".to_owned()
                        } else {
                            std::mem::take(&mut self.event)
                        },
                        data: self.data.join("\n"),
                        id: self.id.take(),
                    });
                }
                self.data.clear();
                self.event.clear();
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            match field {
                "event" => self.event = value.to_owned(),
                "data" => self.data.push(value.to_owned()),
                "id" => self.id = Some(value.to_owned()),
                _ => {}
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_are_read_and_other_bodies_are_not_echoed() {
        let (code, message) =
            error_of(br#"{"error":{"code":"unauthorized","message":"invalid API key"}}"#);
        assert_eq!(code.as_deref(), Some("unauthorized"));
        assert_eq!(message.as_deref(), Some("invalid API key"));
        assert_eq!(
            error_of(br#"{"error":"wrong login or password"}"#)
                .1
                .as_deref(),
            Some("wrong login or password")
        );
        assert_eq!(error_of(b"<html>secret page</html>"), (None, None));
        assert_eq!(error_of(br#"{"message":"x"}"#), (None, None));
        let (_, m) = error_of(
            br#"{"error":{"code":"invalid","message":"bad manifest","details":[{"item":"p","field":"image","message":"missing"}]}}"#,
        );
        assert_eq!(m.unwrap(), "bad manifest\n  p: image: missing");
        assert_eq!(sanitize("a\x1b[31mb", 100), "a?[31mb");
        assert_eq!(sanitize("abcdef", 3), "abc…");
    }

    #[test]
    fn a_401_says_to_log_in_and_never_shows_the_key() {
        let e = ClientError::Api {
            status: StatusCode::UNAUTHORIZED,
            code: Some("unauthorized".into()),
            message: Some("invalid credentials".into()),
            key: Some(KeySource::Profile),
            url: "https://h".into(),
        };
        let text = e.to_string();
        assert!(text.contains("dtaas login https://h"), "{text}");
        let e = ClientError::Api {
            status: StatusCode::UNAUTHORIZED,
            code: None,
            message: None,
            key: Some(KeySource::Environment),
            url: "https://h".into(),
        };
        let text = e.to_string();
        assert!(text.contains("DTAAS_API_KEY"), "{text}");
        assert!(text.contains("401 Unauthorized"), "{text}");
    }

    #[test]
    fn server_sent_events_are_parsed_across_pieces() {
        let mut p = SseParser::default();
        assert!(p.feed(b"event: log\nid: 1\ndata: hel").is_empty());
        let events = p.feed(b"lo\n\n: keep-alive\n\nevent: log\r\ndata: a\r\ndata: b\r\n\r\n");
        assert_eq!(
            events,
            vec![
                Event {
                    event: "log".into(),
                    data: "hello".into(),
                    id: Some("1".into())
                },
                Event {
                    event: "log".into(),
                    data: "a\nb".into(),
                    id: None
                },
            ]
        );
        let events = p.feed(b"event: end\ndata: {\"state\":\"exited\"}\n\n");
        assert_eq!(events[0].event, "end");
        assert_eq!(events[0].data, r#"{"state":"exited"}"#);
    }

    #[test]
    fn the_session_cookie_is_found_among_set_cookie_headers() {
        let mut h = HeaderMap::new();
        h.append(
            header::SET_COOKIE,
            HeaderValue::from_static("other=1; Path=/"),
        );
        h.append(
            header::SET_COOKIE,
            HeaderValue::from_static("dtaas_session=abc; HttpOnly; Path=/"),
        );
        assert_eq!(cookie_of(&h, "dtaas_session").as_deref(), Some("abc"));
        assert_eq!(cookie_of(&h, "none"), None);
    }
}
