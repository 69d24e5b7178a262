//! The shared test harness: a real server per test, clients, and the local base image.

#![allow(dead_code)]

pub use crate::kabuto_client::*;
use dtaas::core::clock::{Clock, ManualClock};
use dtaas::core::config::Config;
use dtaas::server::{App, launch_with_listener};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server running in this process, on its own data directory.
pub struct TestServer {
    pub addr: SocketAddr,
    pub base: String,
    pub clock: Arc<ManualClock>,
    pub config: Config,
    pub installation: String,
    /// The server's state, for calling domain functions directly (GC, engine sync).
    pub app: App,
    dir: Arc<TempDir>,
    cleanup: Arc<EngineCleanup>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// Removes what a test installation left in the engine (its containers and images, all labelled
/// with its installation id) when the last handle on its data directory goes.
pub struct EngineCleanup(pub String);

impl Drop for EngineCleanup {
    fn drop(&mut self) {
        let filter = format!("label=dtaas.installation={}", self.0);
        for (list, remove) in [
            (
                vec!["ps", "-aq", "--filter", &filter],
                vec!["rm", "-f", "-v"],
            ),
            (
                vec!["network", "ls", "-q", "--filter", &filter],
                vec!["network", "rm"],
            ),
            (
                vec!["volume", "ls", "-q", "--filter", &filter],
                vec!["volume", "rm", "-f"],
            ),
            (vec!["images", "-q", "--filter", &filter], vec!["rmi", "-f"]),
        ] {
            let Ok(out) = std::process::Command::new("docker").args(&list).output() else {
                continue;
            };
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            if !ids.is_empty() {
                let _ = std::process::Command::new("docker")
                    .args(&remove)
                    .args(&ids)
                    .output();
            }
        }
    }
}

/// A name unique to this test run, for logins, image names and labels.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The configuration tests run with: loopback, a temporary data directory, quiet logs.
pub fn test_config(dir: &Path) -> Config {
    let mut c = Config {
        listen: "127.0.0.1:0".parse().expect("literal address"),
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    c.log.level = "warn".into();
    // Tests register many users from 127.0.0.1; `limits.rs` tests the limit with its own.
    c.registration_limit.per_address = 10_000;
    c
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after letting the test adjust its configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = Arc::new(tempfile::tempdir().expect("temporary directory"));
        let mut config = test_config(dir.path());
        adjust(&mut config);
        Self::launch(dir, config, ManualClock::new(), None).await
    }

    async fn launch(
        dir: Arc<TempDir>,
        config: Config,
        clock: Arc<ManualClock>,
        cleanup: Option<Arc<EngineCleanup>>,
    ) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let app = dtaas::server::open(config.clone(), clock.clone() as Arc<dyn Clock>)
            .expect("open the data directory");
        let installation = app.installation.to_string();
        let cleanup = cleanup.unwrap_or_else(|| Arc::new(EngineCleanup(installation.clone())));
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = app.clone();
        let task = tokio::spawn(launch_with_listener(app, listener, async move {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            base: format!("http://{addr}"),
            clock,
            config,
            installation,
            app: handle,
            dir,
            cleanup,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Runs the registry's garbage collection now, with the server's clock.
    pub async fn collect_garbage(
        &self,
        grace: std::time::Duration,
        upload_ttl: std::time::Duration,
    ) -> dtaas::domains::registry::gc::GcReport {
        let (store, blobs, now) = (
            self.app.store.clone(),
            self.app.blobs.clone(),
            self.app.now(),
        );
        tokio::task::spawn_blocking(move || {
            dtaas::domains::registry::gc::collect(&store, &blobs, now, grace, upload_ttl)
        })
        .await
        .expect("the collection ran")
        .expect("the collection succeeded")
    }

    /// Shuts down gracefully and waits until the data directory is free again.
    pub async fn stop(mut self) -> StoppedServer {
        self.shutdown().await;
        StoppedServer {
            dir: self.dir.clone(),
            config: self.config.clone(),
            clock: self.clock.clone(),
            cleanup: self.cleanup.clone(),
        }
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server ran cleanly");
        }
    }

    /// A fresh client with its own cookie jar (a browser, or curl with -c/-b).
    pub fn client(&self) -> reqwest::Client {
        client()
    }

    /// Registers, confirms and logs in a new user; returns the logged-in client and the login.
    pub async fn user(&self, prefix: &str) -> (reqwest::Client, String) {
        new_user(&self.base, prefix).await
    }

    pub async fn register_confirm(&self, client: &reqwest::Client, login: &str) {
        register_confirm(&self.base, client, login).await
    }

    /// A kabuto session against this server.
    pub async fn kabuto(&self, prefix: &str) -> Kabuto {
        let (client, login) = self.user(prefix).await;
        Kabuto {
            c: client,
            base: self.base.clone(),
            login,
        }
    }
}

/// Registers, confirms and logs in a new user on the server at `base`.
pub async fn new_user(base: &str, prefix: &str) -> (reqwest::Client, String) {
    let login = unique(prefix);
    let client = client();
    register_confirm(base, &client, &login).await;
    let r = client
        .post(format!("{base}/login"))
        .form(&[("login", login.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 200, "login of {login}");
    (client, login)
}

pub async fn register_confirm(base: &str, client: &reqwest::Client, login: &str) {
    {
        let r = client
            .post(format!("{base}/register"))
            .form(&[
                ("login", login),
                ("password", PASSWORD),
                ("email", &format!("{login}@example.org")),
            ])
            .send()
            .await
            .expect("register");
        assert_eq!(r.status(), 200, "register {login}");
        let token = json_of(r).await["token"]
            .as_str()
            .expect("token")
            .to_owned();
        let r = client
            .get(format!("{base}/register/confirm/{login}/{token}"))
            .send()
            .await
            .expect("confirm");
        assert_eq!(r.status(), 200, "confirm {login}");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// What is left of a stopped server: its data directory, to start again or inspect.
pub struct StoppedServer {
    pub dir: Arc<TempDir>,
    pub config: Config,
    pub clock: Arc<ManualClock>,
    cleanup: Arc<EngineCleanup>,
}

impl StoppedServer {
    pub async fn restart(self) -> TestServer {
        TestServer::launch(self.dir, self.config, self.clock, Some(self.cleanup)).await
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

pub const PASSWORD: &str = "SecreT-123";

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .no_proxy()
        .build()
        .expect("http client")
}

pub async fn json_of(r: reqwest::Response) -> Value {
    let status = r.status();
    let text = r.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({status}): {e}: {text:?}"))
}

/// The kabuto face's error body.
pub fn kabuto_error(v: &Value) -> &str {
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no kabuto error in {v}"))
}

/// The /v1 face's error body.
pub fn v1_error(v: &Value) -> (&str, &str) {
    (
        v["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no code in {v}")),
        v["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message in {v}")),
    )
}

pub fn empty() -> Value {
    json!({})
}

/// The real `dtaas` binary as a command, on none of the settings of the machine or of the
/// test run: no configuration file, and none of the `DTAAS_*` variables the tests' own
/// environment may hold (the binary refuses a `DTAAS_` name it does not know).
pub fn dtaas_command() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_dtaas"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("DTAAS_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("DTAAS_CONFIG", "/dev/null");
    cmd
}

/// Runs the real `dtaas` binary.
pub async fn dtaas_cli(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use tokio::io::AsyncWriteExt;
    let mut cmd = dtaas_command();
    cmd.args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn dtaas");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.expect("write stdin");
    }
    drop(input);
    child.wait_with_output().await.expect("dtaas output")
}

/// The engine the tests use (DOCKER_HOST or the local socket).
pub fn engine() -> dtaas::engine::Engine {
    dtaas::engine::Engine::new(&dtaas::core::config::DockerConfig::default().host)
}

/// Waits (30 s at most) for a job's container to be gone: the supervisor removes it just
/// after the job's end is recorded, so a test that has seen the end may still find it.
pub async fn assert_job_container_gone(job: &str) {
    let docker = engine().client().await.unwrap();
    let name = format!("dtaas-job-{job}");
    for _ in 0..300 {
        match docker.inspect_container(&name, None).await {
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return,
            Err(e) => panic!("inspecting {name}: {e}"),
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    panic!("{name} is still there after 30 s");
}

/// Imports the busybox base image once per run (no image can be pulled here).
pub async fn base_image() -> &'static str {
    static READY: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    READY
        .get_or_init(|| async {
            engine()
                .ensure_base_image(dtaas::engine::BASE_IMAGE)
                .await
                .expect("the busybox base image (is busybox-static installed and Docker running?)");
        })
        .await;
    dtaas::engine::BASE_IMAGE
}

/// The real `dtaas serve` in its own process (for SIGKILL), on a given data directory.
pub struct ProcessServer {
    child: tokio::process::Child,
    pub base: String,
}

impl ProcessServer {
    pub async fn spawn(dir: &Path, env: &[(&str, &str)]) -> ProcessServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut cmd = dtaas_command();
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(dir)
            .env("DTAAS_LOG_LEVEL", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn dtaas serve");
        let base = format!("http://127.0.0.1:{port}");
        let c = client();
        // 30 s: after a SIGKILL the database is recovered on open.
        for _ in 0..600 {
            if let Ok(r) = c.get(format!("{base}/healthz")).send().await
                && r.status() == 200
            {
                return ProcessServer { child, base };
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("dtaas serve did not come up on {base}");
    }

    /// SIGKILL: no shutdown code runs.
    pub async fn kill9(mut self) {
        self.child.kill().await.expect("SIGKILL the server");
    }
}

/// The docker CLI with its own config directory (credentials do not leak between tests).
pub async fn docker_cli(config: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("docker")
        .args(args)
        .env("DOCKER_CONFIG", config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the docker CLI");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).await.expect("write stdin");
    }
    drop(input);
    let out = child.wait_with_output().await.expect("docker runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Builds `context` (its Dockerfile) with the real docker CLI as `<server>/<name>:<tag>`, pushes
/// it into the server's registry as `login`, and removes the local tag again. An empty context
/// pushes the busybox base image itself.
pub async fn push_image(
    server: &TestServer,
    login: &str,
    context: Option<&Path>,
    name: &str,
    tag: &str,
) {
    push_image_to(&server.addr.to_string(), login, context, name, tag).await
}

/// [`push_image`] for a server at `addr` (`127.0.0.1:PORT`).
pub async fn push_image_to(addr: &str, login: &str, context: Option<&Path>, name: &str, tag: &str) {
    base_image().await;
    let config = tempfile::tempdir().expect("docker config dir");
    let (ok, out) = docker_cli(
        config.path(),
        &["login", "-u", login, "--password-stdin", addr],
        Some(PASSWORD),
    )
    .await;
    assert!(ok, "docker login: {out}");
    let target = format!("{addr}/{name}:{tag}");
    let (ok, out) = match context {
        Some(dir) => {
            let dir = dir.to_string_lossy().to_string();
            docker_cli(config.path(), &["build", "-q", "-t", &target, &dir], None).await
        }
        None => {
            docker_cli(
                config.path(),
                &["tag", dtaas::engine::BASE_IMAGE, &target],
                None,
            )
            .await
        }
    };
    assert!(ok, "docker build/tag {target}: {out}");
    let (ok, out) = docker_cli(config.path(), &["push", &target], None).await;
    assert!(ok, "docker push {target}: {out}");
    let _ = docker_cli(config.path(), &["rmi", &target], None).await;
}

/// A /v1 client: a logged-in user's cookie client or a bearer key.
#[derive(Clone)]
pub struct V1 {
    pub c: reqwest::Client,
    pub base: String,
    pub bearer: Option<String>,
}

impl V1 {
    pub fn new(server: &TestServer, c: reqwest::Client) -> V1 {
        V1 {
            c,
            base: server.base.clone(),
            bearer: None,
        }
    }

    pub fn at(base: &str, c: reqwest::Client) -> V1 {
        V1 {
            c,
            base: base.to_owned(),
            bearer: None,
        }
    }

    pub fn with_key(server: &TestServer, key: &str) -> V1 {
        V1 {
            c: client(),
            base: server.base.clone(),
            bearer: Some(key.to_owned()),
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.c.request(method, format!("{}/v1{path}", self.base));
        match &self.bearer {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }

    async fn done(r: reqwest::RequestBuilder) -> (u16, Value) {
        let r = r.send().await.expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        Self::done(self.req(reqwest::Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        Self::done(self.req(reqwest::Method::POST, path).json(&body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        Self::done(self.req(reqwest::Method::DELETE, path)).await
    }

    /// A new API key for this client's user.
    pub async fn new_key(&self) -> String {
        let (status, body) = self.post("/api-keys", json!({"name": "test"})).await;
        assert_eq!(status, 201, "{body}");
        body["key"].as_str().expect("key").to_owned()
    }
}

/// A user on `server` with a /v1 client.
pub async fn v1_user(server: &TestServer, prefix: &str) -> (V1, String) {
    let (c, login) = server.user(prefix).await;
    (V1::new(server, c), login)
}

/// The resources tests give servables: small, so that parallel tests fit on 2 cores.
pub fn small() -> Value {
    json!({"cpu_cores": 0.5, "ram": 64, "disk": 0, "gpu_count": 0, "shm": 0})
}

/// A directory with a Dockerfile on the base image, for `push_image`.
pub fn dockerfile_dir(dockerfile_body: &str) -> TempDir {
    let dir = tempfile::tempdir().expect("build context");
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {}\n{dockerfile_body}\n", dtaas::engine::BASE_IMAGE),
    )
    .expect("write the Dockerfile");
    dir
}

/// Polls an instance until `done` accepts it (at most `secs`); returns the last view.
pub async fn wait_instance(api: &V1, id: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..secs * 5 {
        let (status, body) = api.get(&format!("/instances/{id}")).await;
        assert_eq!(status, 200, "{body}");
        if done(&body) {
            return body;
        }
        last = body;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (_, logs) = api.get(&format!("/instances/{id}/logs")).await;
    panic!("instance {id} did not get there in {secs} s: {last}\nlogs: {logs}");
}

/// A part of the hello example (`examples/hello/<part>`).
pub fn example(part: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/hello")
        .join(part)
}

/// The hello example's prototypes, in dependency order.
pub const HELLO_PARTS: [&str; 3] = ["hello-daemon", "hello-app", "hello-pipeline"];

/// Copies a directory tree (a project, for a test to change).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
