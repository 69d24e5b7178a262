//! Image builds from repositories, rebuilds and deletion (issue 3), and what builds may reach
//! (the egress rules: no ADD from the network, no network for RUN by default, repositories only
//! on allowed addresses and in the accepted forms, redirects checked by the egress proxy).

use crate::harness::*;
use reqwest::multipart::Form;
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn run(dir: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("HGUSER", "test <test@example.org>")
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.org")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.org")
        .output()
        .unwrap_or_else(|e| panic!("{program} is needed: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A repository holding a Dockerfile that copies a file of the repository into the image.
fn repository(kind: &str, with_dockerfile: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("message.txt"), format!("built from {kind}\n")).unwrap();
    if with_dockerfile {
        std::fs::write(
            p.join("Dockerfile"),
            "FROM busybox\nCOPY message.txt /message.txt\n",
        )
        .unwrap();
    }
    match kind {
        "git" => {
            run(p, "git", &["init", "-q"]);
            run(p, "git", &["add", "."]);
            run(p, "git", &["commit", "-q", "-m", "init"]);
        }
        _ => {
            run(p, "hg", &["init"]);
            run(p, "hg", &["add", "-q"]);
            run(p, "hg", &["commit", "-q", "-m", "init"]);
        }
    }
    dir
}

async fn build_from(k: &Kabuto, url: &str) -> serde_json::Value {
    let form = Form::new()
        .text("name", "from-repo")
        .text("repo_url", url.to_owned())
        .text("dockerfile", "FROM busybox\nRUN false\n");
    let (status, v) = k.send_form(reqwest::Method::POST, "/image", form).await;
    assert_eq!(status, 200, "{v}");
    k.wait_build(v["build_id"].as_str().unwrap()).await
}

#[tokio::test]
async fn repository_builds_from_git_and_mercurial() {
    let server = TestServer::start_with(|c| c.images.allow_local_repos = true).await;
    base_image().await;
    let k = server.kabuto("repo").await;
    for kind in ["git", "hg"] {
        let repo = repository(kind, true);
        // repo_url wins over dockerfile (whose RUN false would fail).
        let url = match kind {
            "git" => format!("file://{}", repo.path().display()),
            _ => repo.path().display().to_string(),
        };
        let v = build_from(&k, &url).await;
        assert_eq!(v["state"], "SUCCESS", "{kind}: {v}");
        let image = v["id"].as_str().unwrap().to_owned();
        let pipeline = k.pipeline(kind).await;
        let job = k.job(&pipeline, &image, "cat /message.txt", &[]).await;
        k.submit(&pipeline).await;
        assert_eq!(k.wait_job(&pipeline, &job).await["state"], "done");
        assert_eq!(k.logs(&job).await, vec![format!("built from {kind}")]);
    }

    let empty = repository("git", false);
    let v = build_from(&k, &empty.path().display().to_string()).await;
    assert_eq!(v["state"], "FAILED", "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("no Dockerfile"),
        "{v}"
    );

    let v = build_from(&k, "/no/such/repository").await;
    assert_eq!(v["state"], "FAILED", "{v}");
    assert!(v["error"].as_str().unwrap().contains("cannot clone"), "{v}");
}

#[tokio::test]
async fn local_repositories_are_refused_by_default() {
    let server = TestServer::start().await;
    let k = server.kabuto("norepo").await;
    let repo = repository("git", true);
    let v = build_from(&k, &repo.path().display().to_string()).await;
    assert_eq!(v["state"], "FAILED", "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("allow_local_repos"),
        "{v}"
    );
}

#[tokio::test]
async fn rebuild_keeps_the_id_and_delete_removes_the_image() {
    let server = TestServer::start().await;
    let k = server.kabuto("rebuild").await;
    let image = k
        .image(
            "FROM busybox\nCOPY v.txt /v.txt\n",
            &[("v.txt", b"version 1")],
        )
        .await;
    let form = Form::new()
        .text(
            "dockerfile",
            "FROM busybox\nCOPY v.txt /v.txt\nRUN echo rebuilt\n",
        )
        .part("attachments", file("v.txt", b"version 2"));
    let (status, v) = k
        .send_form(reqwest::Method::PUT, &format!("/image/{image}"), form)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["id"], image.as_str());
    let built = k.wait_build(v["build_id"].as_str().unwrap()).await;
    assert_eq!(built["state"], "SUCCESS", "{built}");
    assert_eq!(built["id"], image.as_str(), "same id after a rebuild");

    let pipeline = k.pipeline("p").await;
    let job = k.job(&pipeline, &image, "cat /v.txt", &[]).await;
    k.submit(&pipeline).await;
    k.wait_job(&pipeline, &job).await;
    assert_eq!(k.logs(&job).await, vec!["version 2"]);

    let docker = engine().client().await.unwrap();
    let tag = format!("dtaas/image-{image}:latest");
    assert!(docker.inspect_image(&tag).await.is_ok());
    let r =
        k.c.delete(k.url(&format!("/image/{image}")))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        k.get(&format!("/image/{image}")).await,
        (404, json!({"error": "Image not found"}))
    );
    assert!(
        docker.inspect_image(&tag).await.is_err(),
        "gone from the engine"
    );

    // A job whose image was deleted fails with the reason.
    k.wait_idle(&pipeline).await;
    assert_eq!(k.submit(&pipeline).await.0, 200);
    let v = k.wait_job(&pipeline, &job).await;
    assert_eq!(v["state"], "failed");
    assert!(k.logs(&job).await[0].contains("image was deleted"));
}

// ---------------------------------------------------------------------------------------------
// Builds reach only what the egress rules allow (security review, items 1 and 2).

/// A request the test HTTP server received.
struct HttpRequest {
    method: String,
    /// Origin-form, with the query.
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A tiny HTTP/1 server for the tests (one request per connection), counting requests; stops
/// when dropped.
struct TestHttp {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestHttp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn http_server<F, Fut>(bind: &str, respond: F) -> TestHttp
where
    F: Fn(HttpRequest) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Vec<u8>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let respond = Arc::new(respond);
    let counter = hits.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (respond, counter) = (respond.clone(), counter.clone());
            tokio::spawn(async move {
                let Some(request) = read_request(&mut stream).await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                let response = respond(request).await;
                let _ = stream.write_all(&response).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    TestHttp { addr, hits, task }
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<HttpRequest> {
    let mut buf = Vec::new();
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_owned(), first.next()?.to_owned());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = buf[end..].to_vec();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(HttpRequest {
        method,
        path,
        headers,
        body,
    })
}

fn http_response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Serves the bare repositories under `root` over git's smart HTTP protocol (git http-backend
/// as a CGI program).
async fn git_http_backend(root: std::path::PathBuf, req: HttpRequest) -> Vec<u8> {
    let (path, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_PROJECT_ROOT", &root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("REQUEST_METHOD", &req.method)
        .env("CONTENT_LENGTH", req.body.len().to_string())
        .env("CONTENT_TYPE", req.header("content-type").unwrap_or(""))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    if let Some(v) = req.header("git-protocol") {
        cmd.env("HTTP_GIT_PROTOCOL", v);
    }
    if let Some(v) = req.header("content-encoding") {
        cmd.env("HTTP_CONTENT_ENCODING", v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&req.body).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap().stdout;
    let (end, skip) = match out.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => (i, 4),
        None => (out.windows(2).position(|w| w == b"\n\n").unwrap(), 2),
    };
    let head = String::from_utf8_lossy(&out[..end]).into_owned();
    let mut status = "200 OK".to_owned();
    let mut headers = Vec::new();
    for line in head.lines() {
        let (n, v) = line.split_once(':').unwrap();
        if n.eq_ignore_ascii_case("status") {
            status = v.trim().to_owned();
        } else {
            headers.push((n.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    http_response(&status, &headers, &out[end + skip..])
}

/// `POST /image` from a repository: the status, and the finished build when it was taken.
async fn submit_repo(k: &Kabuto, url: &str) -> (u16, serde_json::Value) {
    let form = Form::new()
        .text("name", unique("egress"))
        .text("repo_url", url.to_owned());
    let (status, v) = k.send_form(reqwest::Method::POST, "/image", form).await;
    if status != 200 {
        return (status, v);
    }
    (status, k.wait_build(v["build_id"].as_str().unwrap()).await)
}

/// A Dockerfile build through kabuto, waited for.
async fn build_dockerfile(k: &Kabuto, dockerfile: &str) -> serde_json::Value {
    base_image().await;
    let build = k.start_build(&unique("egress"), dockerfile, &[]).await;
    k.wait_build(&build).await
}

/// The build's error and output together, for "never contains" checks.
fn everything(v: &serde_json::Value) -> String {
    format!("{}\n{}", v["error"], v["output"])
}

/// A port free on `ip` just now.
fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_for_port(addr: &str) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("nothing listens on {addr}");
}

/// The address of the engine's default bridge on this host (what a bridge container reaches
/// the host at).
async fn bridge_gateway() -> String {
    let docker = engine().client().await.unwrap();
    let network = docker
        .inspect_network(
            "bridge",
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .unwrap();
    network
        .ipam
        .and_then(|i| i.config)
        .and_then(|c| c.into_iter().find_map(|c| c.gateway))
        .unwrap_or_else(|| "172.17.0.1".into())
}

/// Item 1: `ADD <url>` would have the engine fetch from the server's own network (here the
/// appliance's /readyz on loopback) and show it in the build. Refused before building.
#[tokio::test]
async fn add_from_a_url_is_refused_before_building() {
    let server = TestServer::start().await;
    let k = server.kabuto("addurl").await;
    let port = server.addr.port();
    let v = build_dockerfile(
        &k,
        &format!("FROM busybox\nADD http://127.0.0.1:{port}/readyz /x\nRUN cat /x\n"),
    )
    .await;
    assert_eq!(v["state"], "FAILED", "{v}");
    let error = v["error"].as_str().unwrap();
    assert!(error.contains("Dockerfile line 2"), "{error}");
    assert!(
        error.contains(&format!("ADD http://127.0.0.1:{port}/readyz")),
        "{error}"
    );
    assert!(error.contains("COPY"), "says what to do instead: {error}");
    assert!(!everything(&v).contains("schema_version"), "{v}");

    // The other spellings the legacy builder reads as the same instruction.
    for dockerfile in [
        format!("FROM busybox\nadd [\"http://127.0.0.1:{port}/readyz\", \"/x\"]\n"),
        format!("FROM busybox\nADD --chown=1:1 \\\n  http://127.0.0.1:{port}/readyz /x\n"),
        format!("# escape=`\nFROM busybox\nADD `\n  http://127.0.0.1:{port}/readyz /x\n"),
        format!("FROM busybox\nENV U=http://127.0.0.1:{port}/readyz\nADD $U /x\n"),
        format!("FROM busybox\nONBUILD ADD http://127.0.0.1:{port}/readyz /x\n"),
    ] {
        let v = build_dockerfile(&k, &dockerfile).await;
        assert_eq!(v["state"], "FAILED", "{dockerfile}: {v}");
        assert!(
            v["error"].as_str().unwrap().contains("Dockerfile line"),
            "{v}"
        );
        assert!(!everything(&v).contains("schema_version"), "{v}");
    }
}

/// Item 1: `RUN` steps have no network by default, so a build cannot fetch from a service of
/// the host; `images.build_network = "bridge"` gives them one, and `ADD <url>` stays refused.
#[tokio::test]
async fn run_steps_have_no_network_unless_the_setting_gives_one() {
    let marker = unique("reachable-marker-");
    let served = marker.clone();
    let web = http_server("0.0.0.0:0", move |_| {
        let body = served.clone();
        async move { http_response("200 OK", &[], body.as_bytes()) }
    })
    .await;
    let gateway = bridge_gateway().await;
    let url = format!("http://{gateway}:{}/", web.addr.port());
    let fetch = format!("FROM busybox\nRUN wget -q -O /tmp/x {url} && cat /tmp/x\n");

    let server = TestServer::start().await;
    let k = server.kabuto("nonet").await;
    let v = build_dockerfile(&k, &fetch).await;
    assert_eq!(v["state"], "FAILED", "no network by default: {v}");
    assert!(!everything(&v).contains(&marker), "{v}");
    assert_eq!(web.hits.load(Ordering::SeqCst), 0);

    let bridged = TestServer::start_with(|c| c.images.build_network = "bridge".into()).await;
    let k = bridged.kabuto("bridge").await;
    let v = build_dockerfile(&k, &fetch).await;
    assert_eq!(
        v["state"], "SUCCESS",
        "the setting gives RUN a network: {v}"
    );
    assert!(v["output"].as_str().unwrap().contains(&marker), "{v}");
    let hits = web.hits.load(Ordering::SeqCst);

    let v = build_dockerfile(&k, &format!("FROM busybox\nADD {url} /x\n")).await;
    assert_eq!(v["state"], "FAILED", "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("Dockerfile line 2"),
        "{v}"
    );
    assert!(!everything(&v).contains(&marker), "{v}");
    assert_eq!(web.hits.load(Ordering::SeqCst), hits, "ADD fetched nothing");
}

/// Item 1: a repository on a loopback address (here the appliance's own API) is refused before
/// any clone, naming the address and the setting, and nothing of the answer is shown.
#[tokio::test]
async fn repositories_on_forbidden_addresses_are_refused() {
    let server = TestServer::start().await;
    let k = server.kabuto("ssrfrepo").await;
    let port = server.addr.port();
    for url in [
        format!("http://127.0.0.1:{port}/v1/doc/openapi.json"),
        format!("http://localhost:{port}/v1/doc/openapi.json"),
        format!("https://[::1]:{port}/v1/doc/openapi.json"),
        format!("git://127.0.0.1:{port}/v1/doc/openapi.json"),
        format!("ssh://git@127.0.0.1:{port}/v1/doc/openapi.json"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/repo.git".to_owned(),
    ] {
        let (status, v) = submit_repo(&k, &url).await;
        assert_eq!(status, 200, "{url}: {v}");
        assert_eq!(v["state"], "FAILED", "{url}: {v}");
        let error = v["error"].as_str().unwrap();
        assert!(error.contains("images.allowed_networks"), "{url}: {error}");
        let host = url
            .split("://")
            .nth(1)
            .unwrap()
            .split(['/', '@'])
            .next()
            .unwrap();
        assert!(
            error.contains("127.0.0.1")
                || error.contains("::1")
                || error.contains("169.254.169.254")
                || error.contains("10.0.0.1"),
            "{host}: {error}"
        );
        let all = everything(&v);
        assert!(!all.contains("\"openapi\""), "{url}: {all}");
        assert!(!all.contains("\"paths\""), "{url}: {all}");
    }
    let (status, v) = submit_repo(&k, "ftp://example.org/repo").await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("ftp://"), "{v}");
}

/// A git repository, a Mercurial one, and a relative path to the git one from the server's
/// working directory (the test process's): their Dockerfile prints a planted secret.
fn secret_repository(kind: &str, secret: &str) -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(base).unwrap();
    let dir = tempfile::Builder::new()
        .prefix("localrepo")
        .tempdir_in(base)
        .unwrap();
    let p = dir.path();
    std::fs::write(p.join("secret.txt"), secret).unwrap();
    std::fs::write(
        p.join("Dockerfile"),
        "FROM busybox\nCOPY secret.txt /secret.txt\nRUN cat /secret.txt\n",
    )
    .unwrap();
    match kind {
        "git" => {
            run(p, "git", &["init", "-q"]);
            run(p, "git", &["add", "."]);
            run(p, "git", &["commit", "-q", "-m", "init"]);
        }
        _ => {
            run(p, "hg", &["init"]);
            run(p, "hg", &["add", "-q"]);
            run(p, "hg", &["commit", "-q", "-m", "init"]);
        }
    }
    dir
}

/// `path` relative to the working directory, without `.` or `..` at its start.
fn relative_to_cwd(path: &Path) -> String {
    let cwd = std::env::current_dir().unwrap();
    path.strip_prefix(&cwd)
        .expect("the target directory is under the working directory")
        .display()
        .to_string()
}

/// Item 2: relative paths (resolved against the server's working directory) and every local
/// form are refused while local repositories are off; relative paths even when they are on.
#[tokio::test]
async fn local_repository_forms_are_refused() {
    let secret = unique("planted-secret-");
    let git = secret_repository("git", &secret);
    let hg = secret_repository("hg", &secret);
    let relative = relative_to_cwd(git.path());
    let (abs_git, abs_hg) = (git.path().display(), hg.path().display());

    for allow in [false, true] {
        let server = TestServer::start_with(|c| c.images.allow_local_repos = allow).await;
        let k = server.kabuto("localforms").await;
        for url in [
            relative.clone(),
            format!("{relative}/.git"),
            format!("file:{}", relative_to_cwd(hg.path())),
        ] {
            let (status, v) = submit_repo(&k, &url).await;
            assert_eq!(status, 400, "{url} (allow {allow}): {v}");
            assert!(v["error"].as_str().unwrap().contains("relative"), "{v}");
        }
        for url in [
            format!("{abs_git}"),
            format!("file://{abs_git}"),
            format!("file:{abs_hg}"),
            format!("{abs_hg}"),
        ] {
            let (status, v) = submit_repo(&k, &url).await;
            assert_eq!(status, 200, "{url}: {v}");
            if allow {
                assert_eq!(v["state"], "SUCCESS", "{url}: {v}");
            } else {
                assert_eq!(v["state"], "FAILED", "{url}: {v}");
                assert!(
                    v["error"].as_str().unwrap().contains("allow_local_repos"),
                    "{url}: {v}"
                );
                assert!(!everything(&v).contains(&secret), "{url}: {v}");
            }
        }
    }
}

/// An HTTP server on 127.0.0.2 that redirects every request to the appliance's API on
/// 127.0.0.1.
async fn redirector(server: &TestServer) -> TestHttp {
    let target = format!(
        "http://127.0.0.1:{}/v1/doc/openapi.json",
        server.addr.port()
    );
    http_server("127.0.0.2:0", move |_| {
        let target = target.clone();
        async move { http_response("302 Found", &[("Location", &target)], b"") }
    })
    .await
}

/// Item 1 (redirects): with 127.0.0.2 allowed, a repository there that redirects to the
/// appliance on 127.0.0.1 fails for git and for Mercurial: the egress proxy lets the allowed
/// hop through and refuses the redirect's target, and nothing of the API's answer is shown.
#[tokio::test]
async fn redirects_to_forbidden_addresses_are_refused_by_the_proxy() {
    let server =
        TestServer::start_with(|c| c.images.allowed_networks = vec!["127.0.0.2/32".into()]).await;
    let k = server.kabuto("redirect").await;
    let web = redirector(&server).await;
    let url = format!("http://127.0.0.2:{}/repo.git", web.addr.port());
    let (status, v) = submit_repo(&k, &url).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["state"], "FAILED", "{v}");
    let error = v["error"].as_str().unwrap();
    assert!(error.contains("git exited"), "{error}");
    assert!(error.contains("hg exited"), "{error}");
    assert!(
        error.contains(&format!(
            "egress proxy refused 127.0.0.1:{}",
            server.addr.port()
        )),
        "{error}"
    );
    let all = everything(&v);
    assert!(!all.contains("\"openapi\""), "{all}");
    assert!(!all.contains("\"paths\""), "{all}");
    assert!(
        web.hits.load(Ordering::SeqCst) >= 2,
        "both tools reached the allowed server"
    );

    // The same server is refused when its network is not allowed.
    let strict = TestServer::start().await;
    let k = strict.kabuto("redirect").await;
    let hits = web.hits.load(Ordering::SeqCst);
    let (_, v) = submit_repo(&k, &url).await;
    assert_eq!(v["state"], "FAILED", "{v}");
    assert!(v["error"].as_str().unwrap().contains("127.0.0.2"), "{v}");
    assert_eq!(web.hits.load(Ordering::SeqCst), hits, "not contacted");
}

/// An allowed network works end to end: git over smart HTTP (through the egress proxy), git://
/// (pinned to the checked address) and Mercurial over HTTP (through the proxy), all on
/// 127.0.0.2.
#[tokio::test]
async fn allowed_networks_work_end_to_end() {
    let server =
        TestServer::start_with(|c| c.images.allowed_networks = vec!["127.0.0.2/32".into()]).await;
    let k = server.kabuto("allowed").await;

    let work = repository("git", true);
    let root = tempfile::tempdir().unwrap();
    run(
        root.path(),
        "git",
        &[
            "clone",
            "-q",
            "--bare",
            &work.path().display().to_string(),
            "repo.git",
        ],
    );
    let backend_root = root.path().to_path_buf();
    let web = http_server("127.0.0.2:0", move |req| {
        git_http_backend(backend_root.clone(), req)
    })
    .await;
    let (status, v) = submit_repo(
        &k,
        &format!("http://127.0.0.2:{}/repo.git", web.addr.port()),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["state"], "SUCCESS", "git over http: {v}");
    assert!(v["output"].as_str().unwrap().contains("with git"), "{v}");

    let port = free_port("127.0.0.2");
    // The daemon itself (not `git daemon`, whose child would outlive the test).
    let exec_path = Command::new("git")
        .arg("--exec-path")
        .output()
        .unwrap()
        .stdout;
    let exec_path = String::from_utf8(exec_path).unwrap();
    let _daemon = tokio::process::Command::new(Path::new(exec_path.trim()).join("git-daemon"))
        .args(["--reuseaddr", "--export-all", "--listen=127.0.0.2"])
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", root.path().display()))
        .arg(root.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for_port(&format!("127.0.0.2:{port}")).await;
    let (_, v) = submit_repo(&k, &format!("git://127.0.0.2:{port}/repo.git")).await;
    assert_eq!(v["state"], "SUCCESS", "git://: {v}");

    let hg = repository("hg", true);
    let port = free_port("127.0.0.2");
    let _serve = tokio::process::Command::new("hg")
        .args(["serve", "-a", "127.0.0.2", "-p", &port.to_string(), "-R"])
        .arg(hg.path())
        .env("HGRCPATH", "")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for_port(&format!("127.0.0.2:{port}")).await;
    let (_, v) = submit_repo(&k, &format!("http://127.0.0.2:{port}/")).await;
    assert_eq!(v["state"], "SUCCESS", "hg over http: {v}");
    assert!(v["output"].as_str().unwrap().contains("with hg"), "{v}");
}

/// `RUN` steps run within `images.build_memory_mb` and `images.build_cpus`.
#[tokio::test]
async fn builds_run_within_the_memory_and_cpu_limits() {
    let server = TestServer::start_with(|c| {
        c.images.build_memory_mb = 256;
        c.images.build_cpus = 0.5;
    })
    .await;
    let k = server.kabuto("limits").await;
    // A unique step: a cached one from another build would not run again.
    let v = build_dockerfile(
        &k,
        &format!(
            "FROM busybox\nRUN echo {} && \
             (cat /sys/fs/cgroup/memory.max 2>/dev/null || \
              cat /sys/fs/cgroup/memory/memory.limit_in_bytes) && \
             (cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)\n",
            unique("limits")
        ),
    )
    .await;
    assert_eq!(v["state"], "SUCCESS", "{v}");
    let output = v["output"].as_str().unwrap();
    assert!(output.contains("268435456"), "256 MiB: {output}");
    assert!(output.contains("50000"), "half a CPU: {output}");
}

/// Item 1 (other ways the engine fetches for a build): a base image whose `ONBUILD` trigger
/// would `ADD` from a URL, and an image the engine would pull from a registry on a refused
/// address, are refused before building.
#[tokio::test]
async fn base_image_triggers_and_pulls_from_forbidden_registries_are_refused() {
    let server = TestServer::start().await;
    let k = server.kabuto("onbuild").await;
    let port = server.addr.port();
    base_image().await;
    // An image made outside the appliance (docker build), labelled for the harness's cleanup.
    let tag = format!("dtaas-test/{}:1", unique("onbuild"));
    let context = dockerfile_dir(&format!(
        "ONBUILD ADD http://127.0.0.1:{port}/readyz /x\nONBUILD RUN cat /x"
    ));
    let config = tempfile::tempdir().unwrap();
    let label = format!("dtaas.installation={}", server.installation);
    let (ok, out) = docker_cli(
        config.path(),
        &[
            "build",
            "-q",
            "--label",
            &label,
            "-t",
            &tag,
            &context.path().display().to_string(),
        ],
        None,
    )
    .await;
    assert!(ok, "{out}");
    let v = build_dockerfile(&k, &format!("FROM {tag}\nRUN true\n")).await;
    let _ = docker_cli(config.path(), &["rmi", "-f", &tag], None).await;
    assert_eq!(v["state"], "FAILED", "{v}");
    let error = v["error"].as_str().unwrap();
    assert!(
        error.contains("Dockerfile line 1") && error.contains("ONBUILD"),
        "{error}"
    );
    assert!(!everything(&v).contains("schema_version"), "{v}");

    let v = build_dockerfile(
        &k,
        &format!("FROM 127.0.0.1:{port}/{}/app:1\n", unique("nobody")),
    )
    .await;
    assert_eq!(v["state"], "FAILED", "{v}");
    let error = v["error"].as_str().unwrap();
    assert!(
        error.contains("127.0.0.1") && error.contains("images.allowed_networks"),
        "{error}"
    );
}
