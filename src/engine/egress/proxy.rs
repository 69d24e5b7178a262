//! The egress proxy: every HTTP(S) connection git and Mercurial make for a clone goes through
//! it (`http_proxy`/`https_proxy`), so that each destination, redirects included, is checked
//! against the egress rules, and the connection is made to the very address that was checked
//! (a name cannot resolve to one address for the check and another for the connection).
//!
//! A small HTTP/1 proxy on 127.0.0.1 (an ephemeral port, one per clone, gone when dropped):
//! `CONNECT host:port` (https: a tunnel to the checked address) and absolute-form requests
//! `GET http://host[:port]/path` (forwarded with `Connection: close`, the response passed
//! back). It takes only its own random credential (`Proxy-Authorization: Basic`, user
//! `dtaas`, given in the proxy URL); request heads are bounded (16 KiB, 100 headers) and must
//! arrive within 30 s. A refused destination is answered `403` with no body, a destination that
//! cannot be reached `502`, and the refusal is kept for the build's error message. A redirect to
//! anything but http/https is refused too (it would be followed around the proxy).

use super::{EgressError, Rules};
use crate::core::secrets::{constant_time_eq, random_token};
use base64::Engine as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// The largest request head taken.
const MAX_HEAD: usize = 16 * 1024;
/// The largest response head passed back.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;
/// How long a client may take to send a request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting to a destination may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Connections served at once.
const MAX_CONNECTIONS: usize = 64;
/// Requests answered 407 on one connection before it is closed.
const MAX_AUTH_ATTEMPTS: usize = 3;
/// The proxy's user name (the password is the random token).
const USER: &str = "dtaas";
/// Refusals kept for the message.
const MAX_REFUSALS: usize = 20;

/// A running proxy; stops (with every connection through it) when dropped.
pub struct EgressProxy {
    addr: SocketAddr,
    token: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    rules: Rules,
    /// `dtaas:<token>`.
    credential: Vec<u8>,
    refusals: Mutex<Vec<String>>,
}

impl Shared {
    fn refused(&self, what: String) {
        let mut list = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        if list.len() < MAX_REFUSALS && !list.contains(&what) {
            list.push(what);
        }
    }
}

impl EgressProxy {
    /// Starts a proxy checking destinations against `rules`, on 127.0.0.1 with a new token.
    pub async fn start(rules: Rules) -> std::io::Result<EgressProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let token = random_token();
        let shared = Arc::new(Shared {
            rules,
            credential: format!("{USER}:{token}").into_bytes(),
            refusals: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(EgressProxy {
            addr,
            token,
            shared,
            task,
        })
    }

    /// `http://dtaas:<token>@127.0.0.1:<port>`, for `http_proxy` and `https_proxy`.
    pub fn url(&self) -> String {
        format!("http://{USER}:{}@{}", self.token, self.addr)
    }

    /// The random credential (to keep it out of messages).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// What the proxy refused or could not reach so far, one sentence each.
    pub fn refusals(&self) -> Vec<String> {
        self.shared
            .refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for EgressProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Dropped (aborting every connection) when this task is aborted.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    if connections.len() >= MAX_CONNECTIONS {
                        continue;
                    }
                    let shared = shared.clone();
                    connections.spawn(async move { serve(stream, &shared).await });
                }
                Err(e) => {
                    tracing::debug!("egress proxy: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// A response of the proxy's own: no body.
fn answer(status: u16, reason: &str, close: bool) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\n");
    if status == 407 {
        out.push_str("Proxy-Authenticate: Basic realm=\"dtaas egress\"\r\n");
    }
    if close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

async fn serve(mut client: TcpStream, shared: &Shared) {
    let mut buf = Vec::new();
    for _ in 0..MAX_AUTH_ATTEMPTS {
        let end =
            match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut client, &mut buf, MAX_HEAD))
                .await
            {
                Ok(Ok(Some(end))) => end,
                Ok(Err(HeadError::TooLarge)) => {
                    let _ = client
                        .write_all(&answer(431, "Request Header Fields Too Large", true))
                        .await;
                    return;
                }
                _ => return,
            };
        let head: Vec<u8> = buf.drain(..end).collect();
        let request = match parse_request(&head) {
            Ok(r) => r,
            Err(status) => {
                let _ = client.write_all(&answer(status, "Bad Request", true)).await;
                return;
            }
        };
        if !authorized(&request, &shared.credential) {
            let keep = request.version == "HTTP/1.1" && !request.has_body();
            let _ = client
                .write_all(&answer(407, "Proxy Authentication Required", !keep))
                .await;
            if keep {
                continue;
            }
            return;
        }
        match &request.target {
            Target::Connect { host, port } => {
                let Some(mut upstream) = connect_checked(&mut client, shared, host, *port).await
                else {
                    return;
                };
                if client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .is_err()
                    || upstream.write_all(&buf).await.is_err()
                {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
            Target::Absolute {
                host,
                port,
                authority,
                path,
            } => {
                let Some(upstream) = connect_checked(&mut client, shared, host, *port).await else {
                    return;
                };
                let mut first = outgoing_head(&request, authority, path);
                first.extend_from_slice(&buf);
                forward(client, upstream, first, shared, &format!("{host}:{port}")).await;
            }
        }
        return;
    }
}

/// Resolves and checks the destination, then connects to a checked address; answers the
/// client itself (403, 502) when that fails.
async fn connect_checked(
    client: &mut TcpStream,
    shared: &Shared,
    host: &str,
    port: u16,
) -> Option<TcpStream> {
    let addrs = match shared.rules.resolve(host, port).await {
        Ok(addrs) => addrs,
        Err(e) => {
            let (status, reason, what) = match &e {
                EgressError::Refused(_) => (403, "Forbidden", "refused"),
                EgressError::Unresolved { .. } => (502, "Bad Gateway", "could not reach"),
            };
            shared.refused(format!(
                "the egress proxy {what} {}: {e}",
                join_host_port(host, port)
            ));
            let _ = client.write_all(&answer(status, reason, true)).await;
            return None;
        }
    };
    let mut last = String::new();
    for addr in addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Some(stream),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "timed out".into(),
        }
    }
    shared.refused(format!(
        "the egress proxy could not reach {}: {last}",
        join_host_port(host, port)
    ));
    let _ = client.write_all(&answer(502, "Bad Gateway", true)).await;
    None
}

fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Sends the request on, then passes the response back (its head rewritten to close).
async fn forward(
    client: TcpStream,
    upstream: TcpStream,
    first: Vec<u8>,
    shared: &Shared,
    destination: &str,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    if upstream_write.write_all(&first).await.is_err() {
        let _ = client_write
            .write_all(&answer(502, "Bad Gateway", true))
            .await;
        return;
    }
    let upload = async {
        let _ = tokio::io::copy(&mut client_read, &mut upstream_write).await;
        let _ = upstream_write.shutdown().await;
        std::future::pending::<()>().await
    };
    let download = async {
        let mut buf = Vec::new();
        loop {
            let end = match read_head(&mut upstream_read, &mut buf, MAX_RESPONSE_HEAD).await {
                Ok(Some(end)) => end,
                _ => {
                    let _ = client_write
                        .write_all(&answer(502, "Bad Gateway", true))
                        .await;
                    return;
                }
            };
            let head: Vec<u8> = buf.drain(..end).collect();
            match rewrite_response(&head) {
                Ok((rewritten, interim)) => {
                    if client_write.write_all(&rewritten).await.is_err() {
                        return;
                    }
                    if !interim {
                        break;
                    }
                }
                Err(why) => {
                    shared.refused(format!(
                        "the egress proxy refused an answer of {destination}: {why}"
                    ));
                    let _ = client_write
                        .write_all(&answer(403, "Forbidden", true))
                        .await;
                    return;
                }
            }
        }
        if client_write.write_all(&buf).await.is_ok() {
            let _ = tokio::io::copy(&mut upstream_read, &mut client_write).await;
        }
        let _ = client_write.shutdown().await;
    };
    tokio::select! {
        () = download => {}
        () = upload => {}
    }
}

#[derive(Debug)]
enum HeadError {
    TooLarge,
    Io,
}

/// Reads until `buf` holds a whole head (ended by an empty line); its length, or `None` at the
/// end of the stream.
async fn read_head<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> Result<Option<usize>, HeadError> {
    let mut searched = 0;
    loop {
        if let Some(i) = find(&buf[searched..], b"\r\n\r\n") {
            return Ok(Some(searched + i + 4));
        }
        searched = buf.len().saturating_sub(3);
        if buf.len() >= max {
            return Err(HeadError::TooLarge);
        }
        let mut chunk = [0u8; 4096];
        let want = chunk.len().min(max - buf.len());
        let n = reader
            .read(&mut chunk[..want])
            .await
            .map_err(|_| HeadError::Io)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// `CONNECT host:port`.
    Connect { host: String, port: u16 },
    /// `GET http://authority/path`.
    Absolute {
        host: String,
        port: u16,
        /// As written (`host[:port]`), for the `Host` header.
        authority: String,
        /// From the first `/`, with the query.
        path: String,
    },
}

/// A request head, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub method: String,
    pub target: Target,
    pub version: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn has_body(&self) -> bool {
        self.header("transfer-encoding").is_some()
            || self
                .header("content-length")
                .is_some_and(|v| v.trim() != "0")
    }
}

fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// Reads a request head (ending with the empty line): the status to answer when it is not
/// one the proxy takes.
pub(crate) fn parse_request(head: &[u8]) -> Result<Request, u16> {
    let text = std::str::from_utf8(head).map_err(|_| 400u16)?;
    let text = text.strip_suffix("\r\n\r\n").ok_or(400u16)?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().ok_or(400u16)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(400);
    };
    if method.is_empty() || !method.bytes().all(is_token_char) {
        return Err(400);
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(505);
    }
    let target = if method == "CONNECT" {
        let (host, port) = split_authority(target, None).ok_or(400u16)?;
        Target::Connect { host, port }
    } else {
        let rest = target
            .get(..7)
            .filter(|s| s.eq_ignore_ascii_case("http://"))
            .and_then(|_| target.get(7..))
            .ok_or(400u16)?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        let (host, port) = split_authority(authority, Some(80)).ok_or(400u16)?;
        let path = path.split('#').next().unwrap_or_default();
        let path = match path {
            "" => "/".to_owned(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_owned(),
        };
        Target::Absolute {
            host,
            port,
            authority: authority.to_owned(),
            path,
        }
    };
    let mut headers = Vec::new();
    for line in lines {
        if headers.len() >= MAX_HEADERS {
            return Err(431);
        }
        let (name, value) = line.split_once(':').ok_or(400u16)?;
        if name.is_empty() || !name.bytes().all(is_token_char) {
            return Err(400);
        }
        if value.contains(['\r', '\n', '\0']) {
            return Err(400);
        }
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    Ok(Request {
        method: method.to_owned(),
        target,
        version: version.to_owned(),
        headers,
    })
}

/// `host:port` (`[v6]:port`); the port may be left out only with a default.
fn split_authority(authority: &str, default_port: Option<u16>) -> Option<(String, u16)> {
    if authority.contains(['@', '%']) || authority.is_empty() {
        return None;
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        let v6: std::net::Ipv6Addr = v6.parse().ok()?;
        let port = match after {
            "" => None,
            a => Some(a.strip_prefix(':')?),
        };
        (v6.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    let valid_host = host.parse::<std::net::IpAddr>().is_ok()
        || (!host.is_empty()
            && host.len() <= 253
            && !host.starts_with(['-', '.'])
            && host
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')));
    if !valid_host {
        return None;
    }
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0)?,
        None => default_port?,
    };
    Some((host.to_ascii_lowercase(), port))
}

/// Whether the request carries the proxy's credential.
fn authorized(request: &Request, credential: &[u8]) -> bool {
    let Some(value) = request.header("proxy-authorization") else {
        return false;
    };
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    match base64::engine::general_purpose::STANDARD.decode(encoded.trim()) {
        Ok(decoded) => constant_time_eq(&decoded, credential),
        Err(_) => false,
    }
}

/// Headers that belong to one hop and are not passed on.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// The hop-by-hop headers of a head: the fixed ones and those `Connection` names.
fn hop_by_hop(headers: &[(String, String)]) -> Vec<String> {
    let mut names: Vec<String> = HOP_BY_HOP.iter().map(|s| s.to_string()).collect();
    for (n, v) in headers {
        if n.eq_ignore_ascii_case("connection") {
            names.extend(v.split(',').map(|s| s.trim().to_ascii_lowercase()));
        }
    }
    names
}

/// The request as sent to the destination: origin-form, `Host` from the target, no
/// hop-by-hop headers (the credential among them), `Connection: close`.
pub(crate) fn outgoing_head(request: &Request, authority: &str, path: &str) -> Vec<u8> {
    let drop = hop_by_hop(&request.headers);
    let mut out = format!(
        "{} {path} {}\r\nHost: {authority}\r\n",
        request.method, request.version
    );
    for (n, v) in &request.headers {
        let lower = n.to_ascii_lowercase();
        if lower == "host" || drop.contains(&lower) {
            continue;
        }
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

/// The response head as passed back: hop-by-hop headers dropped, `Connection: close`; whether
/// it is an interim (1xx) response. A redirect to anything but http(s) is refused: the client
/// would follow it around the proxy.
pub(crate) fn rewrite_response(head: &[u8]) -> Result<(Vec<u8>, bool), String> {
    let text = std::str::from_utf8(head).map_err(|_| "an unreadable response".to_owned())?;
    let text = text
        .strip_suffix("\r\n\r\n")
        .ok_or_else(|| "an unreadable response".to_owned())?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| "an unreadable response".to_owned())?;
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if headers.len() >= MAX_HEADERS {
            return Err("a response with too many headers".into());
        }
        let (n, v) = line
            .split_once(':')
            .ok_or_else(|| "an unreadable response".to_owned())?;
        headers.push((n.trim().to_owned(), v.trim().to_owned()));
    }
    if (300..400).contains(&status) {
        for (n, v) in &headers {
            if n.eq_ignore_ascii_case("location") && !http_location(v) {
                return Err("a redirect to an address that is not http or https".into());
            }
        }
    }
    let interim = (100..200).contains(&status) && status != 101;
    if interim {
        return Ok((head.to_vec(), true));
    }
    let drop = hop_by_hop(&headers);
    let mut out = format!("{status_line}\r\n");
    for (n, v) in &headers {
        if drop.contains(&n.to_ascii_lowercase()) {
            continue;
        }
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    Ok((out.into_bytes(), false))
}

/// A `Location` that stays on http or https (relative ones do).
fn http_location(location: &str) -> bool {
    let scheme_end = location.find(':');
    let first_special = location.find(['/', '?', '#']);
    match (scheme_end, first_special) {
        (Some(colon), special) if special.is_none_or(|s| colon < s) => {
            let scheme = location[..colon].to_ascii_lowercase();
            scheme == "http" || scheme == "https"
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Vec<u8> {
        text.as_bytes().to_vec()
    }

    #[test]
    fn connect_and_absolute_form_requests_are_read() {
        let r = parse_request(&head(
            "CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n",
        ))
        .unwrap();
        assert_eq!(
            r.target,
            Target::Connect {
                host: "example.org".into(),
                port: 443
            }
        );
        let r = parse_request(&head("CONNECT [::1]:8443 HTTP/1.0\r\n\r\n")).unwrap();
        assert_eq!(
            r.target,
            Target::Connect {
                host: "::1".into(),
                port: 8443
            }
        );
        let r = parse_request(&head(
            "GET http://Repo.example:8080/a/info/refs?service=git-upload-pack HTTP/1.1\r\n\
             Proxy-Authorization: Basic eA==\r\nUser-Agent: git\r\n\r\n",
        ))
        .unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(
            r.target,
            Target::Absolute {
                host: "repo.example".into(),
                port: 8080,
                authority: "Repo.example:8080".into(),
                path: "/a/info/refs?service=git-upload-pack".into()
            }
        );
        assert_eq!(r.headers.len(), 2);
        let r = parse_request(&head("GET http://h?x HTTP/1.1\r\n\r\n")).unwrap();
        assert!(matches!(r.target, Target::Absolute { port: 80, ref path, .. } if path == "/?x"));
    }

    #[test]
    fn other_requests_are_refused() {
        for (text, status) in [
            ("GET /relative HTTP/1.1\r\n\r\n", 400),
            ("GET https://h/ HTTP/1.1\r\n\r\n", 400),
            ("GET ftp://h/ HTTP/1.1\r\n\r\n", 400),
            ("GET http://user:pw@h/ HTTP/1.1\r\n\r\n", 400),
            ("GET http://h:0/ HTTP/1.1\r\n\r\n", 400),
            ("GET http://h%2f/ HTTP/1.1\r\n\r\n", 400),
            ("CONNECT h HTTP/1.1\r\n\r\n", 400),
            ("CONNECT h:x HTTP/1.1\r\n\r\n", 400),
            ("CONNECT [::1] HTTP/1.1\r\n\r\n", 400),
            ("GET http://h/ HTTP/2.0\r\n\r\n", 505),
            ("GET  http://h/ HTTP/1.1\r\n\r\n", 400),
            ("GET http://h/ HTTP/1.1\r\n folded\r\n\r\n", 400),
            ("GET http://h/ HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
            ("GET http://h/ HTTP/1.1\r\n", 400),
        ] {
            assert_eq!(parse_request(&head(text)), Err(status), "{text:?}");
        }
        let many = format!(
            "GET http://h/ HTTP/1.1\r\n{}\r\n",
            "X-A: b\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(parse_request(many.as_bytes()), Err(431));
    }

    #[test]
    fn the_credential_is_required() {
        let credential = b"dtaas:secret";
        let with = |value: &str| {
            parse_request(&head(&format!(
                "CONNECT h:443 HTTP/1.1\r\nProxy-Authorization: {value}\r\n\r\n"
            )))
            .unwrap()
        };
        let good = base64::engine::general_purpose::STANDARD.encode("dtaas:secret");
        assert!(authorized(&with(&format!("Basic {good}")), credential));
        assert!(authorized(&with(&format!("basic {good}")), credential));
        let bad = base64::engine::general_purpose::STANDARD.encode("dtaas:other");
        assert!(!authorized(&with(&format!("Basic {bad}")), credential));
        assert!(!authorized(&with(&format!("Bearer {good}")), credential));
        assert!(!authorized(&with("Basic !!!"), credential));
        let none = parse_request(&head("CONNECT h:443 HTTP/1.1\r\n\r\n")).unwrap();
        assert!(!authorized(&none, credential));
    }

    #[test]
    fn forwarded_requests_lose_hop_by_hop_headers_and_close() {
        let r = parse_request(&head(
            "POST http://h:81/x HTTP/1.1\r\nHost: elsewhere\r\nProxy-Authorization: Basic eA==\r\n\
             Connection: keep-alive, X-Secret\r\nX-Secret: 1\r\nProxy-Connection: keep-alive\r\n\
             Content-Length: 3\r\n\r\n",
        ))
        .unwrap();
        let out = String::from_utf8(outgoing_head(&r, "h:81", "/x")).unwrap();
        assert_eq!(
            out,
            "POST /x HTTP/1.1\r\nHost: h:81\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn responses_close_and_foreign_redirects_are_refused() {
        let (out, interim) = rewrite_response(&head(
            "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1/x\r\nConnection: keep-alive\r\n\
             Keep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n",
        ))
        .unwrap();
        assert!(!interim);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1/x\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        );
        assert!(rewrite_response(&head("HTTP/1.1 301 M\r\nLocation: /a:b\r\n\r\n")).is_ok());
        assert!(rewrite_response(&head("HTTP/1.1 301 M\r\nLocation: HTTPS://h/\r\n\r\n")).is_ok());
        assert!(rewrite_response(&head("HTTP/1.1 302 F\r\nLocation: ftp://h/x\r\n\r\n")).is_err());
        assert!(rewrite_response(&head("HTTP/1.1 302 F\r\nLocation: file:/etc\r\n\r\n")).is_err());
        assert!(
            rewrite_response(&head("HTTP/1.1 100 Continue\r\n\r\n"))
                .unwrap()
                .1
        );
        assert!(rewrite_response(&head("garbage\r\n\r\n")).is_err());
    }

    #[tokio::test]
    async fn heads_are_bounded() {
        let mut reader: &[u8] = b"GET http://h/ HTTP/1.1\r\n\r\nbody";
        let mut buf = Vec::new();
        let end = read_head(&mut reader, &mut buf, MAX_HEAD).await.unwrap();
        assert_eq!(end, Some(26));
        assert_eq!(&buf[26..], b"body");
        let long = vec![b'a'; MAX_HEAD + 10];
        let mut reader: &[u8] = &long;
        let mut buf = Vec::new();
        assert!(matches!(
            read_head(&mut reader, &mut buf, MAX_HEAD).await,
            Err(HeadError::TooLarge)
        ));
        let mut reader: &[u8] = b"GET http://h/";
        let mut buf = Vec::new();
        assert_eq!(
            read_head(&mut reader, &mut buf, MAX_HEAD).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn refused_destinations_get_403_and_allowed_ones_are_reached() {
        use tokio::io::AsyncWriteExt as _;
        // A destination on 127.0.0.3, allowed; 127.0.0.1 refused.
        let upstream = TcpListener::bind("127.0.0.3:0").await.unwrap();
        let upstream_addr = upstream.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = upstream.accept().await {
                let mut buf = Vec::new();
                let _ = read_head(&mut s, &mut buf, MAX_HEAD).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello")
                    .await;
            }
        });
        let proxy = EgressProxy::start(Rules::new(&["127.0.0.3/32".into()]))
            .await
            .unwrap();
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("dtaas:{}", proxy.token));
        let proxy_addr = proxy.addr;
        let ask = |request: String| async move {
            let mut s = TcpStream::connect(proxy_addr).await.unwrap();
            s.write_all(request.as_bytes()).await.unwrap();
            let mut out = Vec::new();
            s.read_to_end(&mut out).await.unwrap();
            String::from_utf8_lossy(&out).into_owned()
        };
        let got = ask(format!(
            "GET http://{upstream_addr}/x HTTP/1.1\r\nProxy-Authorization: Basic {auth}\r\n\r\n"
        ))
        .await;
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        assert!(
            got.contains("Connection: close") && got.ends_with("hello"),
            "{got}"
        );
        let got = ask(format!(
            "GET http://127.0.0.1:{}/x HTTP/1.1\r\nProxy-Authorization: Basic {auth}\r\n\r\n",
            upstream_addr.port()
        ))
        .await;
        assert!(got.starts_with("HTTP/1.1 403 "), "{got}");
        assert!(got.ends_with("\r\n\r\n"), "no body: {got}");
        let got = ask(format!(
            "CONNECT localhost:{} HTTP/1.1\r\nProxy-Authorization: Basic {auth}\r\n\r\n",
            upstream_addr.port()
        ))
        .await;
        assert!(got.starts_with("HTTP/1.1 403 "), "{got}");
        let got = ask(format!("GET http://{upstream_addr}/x HTTP/1.0\r\n\r\n")).await;
        assert!(got.starts_with("HTTP/1.1 407 "), "{got}");
        let refusals = proxy.refusals();
        assert!(
            refusals
                .iter()
                .any(|r| r.starts_with("the egress proxy refused 127.0.0.1:")),
            "{refusals:?}"
        );
        assert!(
            refusals.iter().any(|r| r.contains("localhost resolves to")),
            "{refusals:?}"
        );
    }
}
