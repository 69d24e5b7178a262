//! Servables benchmark (issue 5), each measure side by side with its reference in the same run:
//!
//! 1. app proxy: an `app` servable (busybox `httpd` on port 8080, access control on) fetched
//!    directly at `http://<ipv4_address>:8080/` and through the appliance, in both forms
//!    (`/apps/<id>/` and `Host: <id>.localhost`) with `Authorization: Bearer <api key>`:
//!    latency of sequential requests (median, p99) and throughput of concurrent connections;
//! 2. start latency: `POST /v1/servables/{id}/run` of a daemon until it answers (container
//!    running) against create + start of the same container through the Engine API.
//!
//! busybox `httpd` answers every request with `Connection: close` and forks per connection, so
//! the direct path connects once per request; the benchmark's client keeps its connection to the
//! appliance alive (the proxy strips the app's `Connection: close`), and the proxy connects to
//! the app once per request.
//!
//! Run: `cargo bench --bench servables` (needs the Docker engine and busybox-static; the images
//! are built `FROM dtaas/busybox:latest` with the docker CLI and pushed into the appliance's
//! registry). Loopback and the servable network only; every loop is bounded; everything the run
//! creates in the engine is removed at the end (also after a panic).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, RemoveContainerOptionsBuilder,
};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderValue};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Rounds of the proxy measurements; the three targets alternate within a round.
const ROUNDS: usize = 3;
/// Sequential requests per target and round (after `WARM_UP`).
const SEQUENTIAL: usize = 2_000;
const WARM_UP: usize = 200;
/// Concurrent connections, and requests per target and round, of the throughput runs.
const CONNECTIONS: usize = 32;
const REQUESTS: usize = 10_000;
/// Starts of each kind (after one warm-up each).
const STARTS: usize = 10;

const PASSWORD: &str = "bench-password";
const PAGE: &str = "<!doctype html><title>bench</title><p>Hello from busybox httpd.</p>\n";
/// The daemon's image CMD: sleeps, and ends at once on SIGTERM (a PID 1 without a handler would
/// ignore it and wait for the stop timeout's SIGKILL).
const DAEMON_CMD: &str = r#"["sh","-c","trap 'exit 0' TERM; sleep 3600 & wait"]"#;

/// The server process, and everything the run made in the engine (removed on drop).
struct Server {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    /// Image tags the run made outside the installation's labels.
    tags: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Ok(store) = dtaas::domains::open_store(self.dir.path())
            && let Ok(id) = store.installation_id()
        {
            let filter = format!("label=dtaas.installation={id}");
            for (list, remove) in [
                (&["ps", "-aq", "--filter"][..], &["rm", "-f", "-v"][..]),
                (
                    &["network", "ls", "-q", "--filter"][..],
                    &["network", "rm"][..],
                ),
                (
                    &["volume", "ls", "-q", "--filter"][..],
                    &["volume", "rm", "-f"][..],
                ),
                (&["images", "-q", "--filter"][..], &["rmi", "-f"][..]),
            ] {
                let ids = docker_ids(&[list, &[filter.as_str()]].concat());
                if !ids.is_empty() {
                    let _ = Command::new("docker")
                        .args(remove)
                        .args(&ids)
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                }
            }
        }
        for tag in &self.tags {
            let _ = Command::new("docker")
                .args(["rmi", tag])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn docker_ids(args: &[&str]) -> Vec<String> {
    Command::new("docker")
        .args(args)
        .output()
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn start_server() -> Server {
    let dir = tempfile::tempdir().expect("temporary directory");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    // Logging as in production (info, one line per request), to /dev/null.
    let child = Command::new(env!("CARGO_BIN_EXE_dtaas"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("DTAAS_CONFIG")
        .env("DTAAS_SERVABLES_STOP_TIMEOUT_SECS", "2")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn dtaas");
    Server {
        child,
        port,
        dir,
        tags: Vec::new(),
    }
}

/// The docker CLI with the run's own config directory (its registry login stays there).
fn docker(config: &Path, args: &[&str], stdin: Option<&str>) {
    use std::io::Write;
    let mut child = Command::new("docker")
        .args(args)
        .env("DOCKER_CONFIG", config)
        .env("DOCKER_BUILDKIT", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the docker CLI");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).expect("write stdin");
    }
    drop(input);
    let out = child.wait_with_output().expect("docker runs");
    assert!(
        out.status.success(),
        "docker {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A /v1 client with the bench user's API key.
struct V1 {
    c: reqwest::Client,
    base: String,
    key: String,
}

impl V1 {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut r = self
            .c
            .request(method.clone(), format!("{}/v1{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            r = r.json(&body);
        }
        let r = r.send().await.expect("request");
        let status = r.status();
        let text = r.text().await.expect("body");
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn delete(&self, path: &str) {
        self.call(reqwest::Method::DELETE, path, None).await;
    }

    /// Runs a servable; returns the instance once the server answered, and how long that took.
    async fn run(&self, servable: &str) -> (Value, Duration) {
        let t = Instant::now();
        let instance = self
            .call(
                reqwest::Method::POST,
                &format!("/servables/{servable}/run"),
                None,
            )
            .await;
        let took = t.elapsed();
        assert_eq!(instance["state"], "running", "{instance}");
        (instance, took)
    }
}

/// Where and how a load generator asks for the page.
struct Target {
    name: &'static str,
    addr: SocketAddr,
    path: String,
    host: HeaderValue,
    auth: Option<HeaderValue>,
}

/// One client connection, made again whenever the server closed it.
struct Conn {
    sender: Option<SendRequest<Empty<Bytes>>>,
    connects: usize,
}

impl Conn {
    fn new() -> Conn {
        Conn {
            sender: None,
            connects: 0,
        }
    }

    /// GET the page; checks the status and the body. Returns the time from asking (connecting
    /// when needed) to the whole body.
    async fn get(&mut self, target: &Target) -> Duration {
        let t = Instant::now();
        let reusable = match self.sender.take() {
            Some(mut s) => s.ready().await.is_ok().then_some(s),
            None => None,
        };
        let mut sender = match reusable {
            Some(s) => s,
            None => {
                self.connects += 1;
                connect(target.addr).await
            }
        };
        let mut request = hyper::Request::get(target.path.as_str())
            .header(header::HOST, target.host.clone())
            .body(Empty::new())
            .expect("request");
        if let Some(auth) = &target.auth {
            request
                .headers_mut()
                .insert(header::AUTHORIZATION, auth.clone());
        }
        let response = sender.send_request(request).await.expect("response");
        let status = response.status();
        let close = response
            .headers()
            .get(header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let body = response.into_body().collect().await.expect("body");
        let took = t.elapsed();
        assert_eq!(status, 200, "{}", target.name);
        assert_eq!(body.to_bytes(), PAGE.as_bytes(), "{}", target.name);
        if !close {
            self.sender = Some(sender);
        }
        took
    }
}

async fn connect(addr: SocketAddr) -> SendRequest<Empty<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
}

/// Sequential requests on one client connection: the latencies (µs) and the connections made.
async fn sequential(target: &Target) -> (Vec<f64>, usize) {
    let mut conn = Conn::new();
    for _ in 0..WARM_UP {
        conn.get(target).await;
    }
    conn.connects = 0;
    let mut v = Vec::with_capacity(SEQUENTIAL);
    for _ in 0..SEQUENTIAL {
        v.push(conn.get(target).await.as_secs_f64() * 1e6);
    }
    (v, conn.connects)
}

/// `REQUESTS` requests over `CONNECTIONS` concurrent connections: requests per second.
async fn throughput(target: &Arc<Target>) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (target, next) = (target.clone(), next.clone());
            tokio::spawn(async move {
                let mut conn = Conn::new();
                while next.fetch_add(1, Ordering::Relaxed) < REQUESTS {
                    conn.get(&target).await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("worker");
    }
    REQUESTS as f64 / t.elapsed().as_secs_f64()
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[i - 1]
}

fn median(v: Vec<f64>) -> f64 {
    quantile(&sorted(v), 0.5)
}

/// Builds `FROM dtaas/busybox:latest` + `dockerfile` (with `files`) as `<registry>/<name>:1`
/// and pushes it; returns the local tag.
fn build_and_push(
    config: &Path,
    registry: &str,
    name: &str,
    dockerfile: &str,
    files: &[(&str, &str)],
) -> String {
    let context = tempfile::tempdir().expect("build context");
    std::fs::write(
        context.path().join("Dockerfile"),
        format!("FROM {}\n{dockerfile}", dtaas::engine::BASE_IMAGE),
    )
    .expect("Dockerfile");
    for (path, text) in files {
        let path = context.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("directory");
        std::fs::write(path, text).expect("file");
    }
    let tag = format!("{registry}/{name}:1");
    let dir = context.path().to_string_lossy().to_string();
    docker(config, &["build", "-q", "-t", &tag, &dir], None);
    docker(config, &["push", &tag], None);
    tag
}

/// The raw reference: create + start of the daemon's container through the Engine API, with the
/// same image, network, limits, environment size and read-only bind mounts as the appliance's.
async fn raw_start(
    docker: &Docker,
    image: &str,
    network: &str,
    binds: &[String],
    labels: &std::collections::HashMap<String, String>,
    name: &str,
) -> Duration {
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        env: Some((0..9).map(|i| format!("BENCH_{i}=value")).collect()),
        labels: Some(labels.clone()),
        host_config: Some(HostConfig {
            binds: Some(binds.to_vec()),
            network_mode: Some(network.to_owned()),
            nano_cpus: Some(1_000_000_000),
            memory: Some(64 * 1024 * 1024),
            security_opt: Some(vec!["no-new-privileges".into()]),
            privileged: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    };
    let t = Instant::now();
    docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name(name).build()),
            body,
        )
        .await
        .expect("create");
    docker.start_container(name, None).await.expect("start");
    t.elapsed()
}

async fn raw_remove(docker: &Docker, name: &str) {
    docker
        .remove_container(
            name,
            Some(
                RemoveContainerOptionsBuilder::new()
                    .force(true)
                    .v(true)
                    .build(),
            ),
        )
        .await
        .expect("remove");
}

#[tokio::main]
async fn main() {
    let engine = dtaas::engine::Engine::new(&dtaas::core::config::DockerConfig::default().host);
    engine
        .ensure_base_image(dtaas::engine::BASE_IMAGE)
        .await
        .expect("base image (busybox-static and a Docker engine)");
    let mut server = start_server();
    // Interrupted (Ctrl-C, or a timeout's SIGTERM): the benchmark stops and `server` is dropped,
    // which removes what the run made in the engine, as after a panic.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = bench(&engine, &mut server) => {}
        _ = tokio::signal::ctrl_c() => eprintln!("interrupted: cleaning up"),
        _ = term.recv() => eprintln!("terminated: cleaning up"),
    }
}

async fn bench(engine: &dtaas::engine::Engine, server: &mut Server) {
    let docker_api = engine.client().await.expect("engine");
    let base = format!("http://127.0.0.1:{}", server.port);
    let registry = format!("127.0.0.1:{}", server.port);
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .no_proxy()
        .build()
        .expect("client");
    for _ in 0..400 {
        if let Ok(r) = c.get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // A user, a session, an API key.
    let login = "bench";
    let v: Value = c
        .post(format!("{base}/register"))
        .form(&[
            ("login", login),
            ("password", PASSWORD),
            ("email", "b@example.org"),
        ])
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    let token = v["token"].as_str().expect("token");
    let r = c
        .get(format!("{base}/register/confirm/{login}/{token}"))
        .send()
        .await
        .expect("confirm");
    assert!(r.status().is_success(), "confirm {}", r.status());
    let r = c
        .post(format!("{base}/login"))
        .form(&[("login", login), ("password", PASSWORD)])
        .send()
        .await
        .expect("login");
    assert!(r.status().is_success(), "login {}", r.status());
    let v: Value = c
        .post(format!("{base}/v1/api-keys"))
        .json(&json!({"name": "bench"}))
        .send()
        .await
        .expect("api key")
        .json()
        .await
        .expect("json");
    let key = v["key"].as_str().expect("key").to_owned();
    let v1 = V1 {
        c: reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client"),
        base: base.clone(),
        key: key.clone(),
    };

    // Two images in the appliance's registry: the app and the daemon.
    let run_id = std::process::id();
    let (app_name, daemon_name) = (
        format!("svbench{run_id}-app"),
        format!("svbench{run_id}-daemon"),
    );
    let config = tempfile::tempdir().expect("docker config");
    docker(
        config.path(),
        &["login", "-u", login, "--password-stdin", &registry],
        Some(PASSWORD),
    );
    for name in [&app_name, &daemon_name] {
        server.tags.push(format!("{registry}/{name}:1"));
        server.tags.push(format!("dtaas/registry/{name}:1"));
    }
    build_and_push(
        config.path(),
        &registry,
        &app_name,
        "COPY www /www\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
        &[("www/index.html", PAGE)],
    );
    build_and_push(
        config.path(),
        &registry,
        &daemon_name,
        &format!("CMD {DAEMON_CMD}\n"),
        &[],
    );
    let manifest: Value = [(&app_name, "app"), (&daemon_name, "daemon")]
        .into_iter()
        .map(|(name, kind)| {
            (
                name.clone(),
                json!({
                    "name": name, "tag": "1", "type": kind,
                    "arguments": if kind == "daemon" {
                        json!({"volume_location": "/data", "volume_size": 1})
                    } else {
                        json!({})
                    },
                }),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    v1.post("/prototypes", manifest).await;
    let resources = json!({"cpu_cores": 1, "ram": 64, "disk": 0, "gpu_count": 0, "shm": 0});
    let app = v1
        .post(
            "/servables",
            json!({"prototype": format!("{app_name}:1"), "name": "bench-app",
                   "resources": resources, "access_control": true}),
        )
        .await;
    assert_eq!(app["access_control"], true);
    let app_id = app["id"].as_str().expect("id").to_owned();
    let daemon = v1
        .post(
            "/servables",
            json!({"prototype": format!("{daemon_name}:1"), "name": "bench-daemon",
                   "resources": resources}),
        )
        .await;
    let daemon_id = daemon["id"].as_str().expect("id").to_owned();

    println!(
        "dtaas servables benchmark (release build, Docker {}, {} cores)",
        engine.info().await.map(|i| i.version).unwrap_or_default(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    // 1. The app proxy.
    let (instance, _) = v1.run(&app_id).await;
    let ip = instance["ipv4_address"].as_str().expect("ipv4_address");
    let direct_addr: SocketAddr = format!("{ip}:8080").parse().expect("address");
    let proxy_addr: SocketAddr = registry.parse().expect("address");
    let bearer = HeaderValue::from_str(&format!("Bearer {key}")).expect("header");
    let targets = [
        Arc::new(Target {
            name: "direct",
            addr: direct_addr,
            path: "/".into(),
            host: HeaderValue::from_str(&direct_addr.to_string()).expect("host"),
            auth: None,
        }),
        Arc::new(Target {
            name: "proxy, /apps/<id>/",
            addr: proxy_addr,
            path: format!("/apps/{app_id}/"),
            host: HeaderValue::from_str(&registry).expect("host"),
            auth: Some(bearer.clone()),
        }),
        Arc::new(Target {
            name: "proxy, Host: <id>.localhost",
            addr: proxy_addr,
            path: "/".into(),
            host: HeaderValue::from_str(&format!("{app_id}.localhost:{}", server.port))
                .expect("host"),
            auth: Some(bearer),
        }),
    ];
    // httpd may take a moment to listen.
    for i in 0..200 {
        if tokio::net::TcpStream::connect(direct_addr).await.is_ok() {
            break;
        }
        assert!(i < 199, "the app does not listen on {direct_addr}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mut latencies: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    let mut connects = vec![0; targets.len()];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    for _ in 0..ROUNDS {
        for (i, target) in targets.iter().enumerate() {
            let (v, n) = sequential(target).await;
            latencies[i].extend(v);
            connects[i] += n;
        }
        for (i, target) in targets.iter().enumerate() {
            rates[i].push(throughput(target).await);
        }
    }
    println!(
        "proxy: {ROUNDS} rounds; latency over {} sequential requests per target, throughput the median round of {REQUESTS} requests over {CONNECTIONS} connections",
        ROUNDS * SEQUENTIAL
    );
    let mut direct = (0.0, 0.0, 0.0);
    for (i, target) in targets.iter().enumerate() {
        let s = sorted(latencies[i].clone());
        let (med, p90, p99) = (quantile(&s, 0.5), quantile(&s, 0.9), quantile(&s, 0.99));
        let slow = s.iter().filter(|&&us| us > 20_000.0).count();
        let rate = median(rates[i].clone());
        println!(
            "  {:<28} median {med:>6.0} us, p90 {p90:>6.0} us, p99 {p99:>6.0} us, {slow} over 20 ms; {rate:>6.0} req/s; {:.2} client connects per request",
            target.name,
            connects[i] as f64 / (ROUNDS * SEQUENTIAL) as f64,
        );
        if i == 0 {
            direct = (med, p99, rate);
        } else {
            println!(
                "  {:<28} added median {:.0} us (target < 1000), added p99 {:.0} us; throughput {:.2}x direct (target >= 0.8)",
                "",
                med - direct.0,
                p99 - direct.1,
                rate / direct.2
            );
        }
    }
    v1.delete(&format!("/servables/{app_id}")).await;

    // 2. Start latency.
    let (instance, _) = v1.run(&daemon_id).await; // warm-up, and the network and engine tag
    let instance_id = instance["id"].as_str().expect("id").to_owned();
    let inspect = docker_api
        .inspect_container(
            &format!("dtaas-inst-{instance_id}"),
            None::<InspectContainerOptions>,
        )
        .await
        .expect("inspect the instance's container");
    let config_of = inspect.config.expect("config");
    let image = config_of.image.expect("image");
    let mut labels = config_of.labels.expect("labels");
    labels.retain(|k, _| k == "dtaas.installation" || k == "dtaas.managed");
    labels.insert("dtaas.kind".into(), "bench".into());
    let network = inspect
        .host_config
        .and_then(|h| h.network_mode)
        .expect("network");
    v1.delete(&format!("/instances/{instance_id}")).await;
    let mounts = tempfile::tempdir().expect("bind mounts");
    let binds: Vec<String> = ["run", "secrets"]
        .iter()
        .map(|d| {
            let p = mounts.path().join(d);
            std::fs::create_dir_all(&p).expect("directory");
            format!("{}:/mnt/{d}:ro", p.display())
        })
        .collect();
    let warm = format!("dtaas-bench-{run_id}-warm");
    raw_start(&docker_api, &image, &network, &binds, &labels, &warm).await;
    raw_remove(&docker_api, &warm).await;
    let (mut raw, mut ours) = (Vec::new(), Vec::new());
    for i in 0..STARTS {
        let name = format!("dtaas-bench-{run_id}-{i}");
        raw.push(
            raw_start(&docker_api, &image, &network, &binds, &labels, &name)
                .await
                .as_secs_f64()
                * 1e3,
        );
        raw_remove(&docker_api, &name).await;
        let (instance, took) = v1.run(&daemon_id).await;
        ours.push(took.as_secs_f64() * 1e3);
        let id = instance["id"].as_str().expect("id");
        v1.delete(&format!("/instances/{id}")).await;
    }
    let (raw_med, ours_med) = (median(raw), median(ours));
    println!(
        "daemon start, median of {STARTS}: raw create+start {raw_med:.1} ms; dtaas POST /v1/servables/<id>/run {ours_med:.1} ms; ratio {:.2}, overhead {:.1} ms",
        ours_med / raw_med,
        ours_med - raw_med
    );
    v1.delete(&format!("/servables/{daemon_id}")).await;
}
