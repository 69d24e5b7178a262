//! Dashboard benchmark (issue 14): how long the pages at `/ui` take to render when the store is
//! large, next to the `/v1` answer that lists the same page (the reference), in one run.
//!
//! 1. The store is filled without the server through the library's domain functions, as the
//!    scale benchmark does: 1,000 users (user 0, "owner", an administrator), one image built
//!    as far as the server knows, and 10,000 jobs in 1,000 pipelines, all the owner's.
//! 2. The release binary serves that directory. The base image goes to the registry as
//!    `owner/bench:1` (the docker CLI, with a config directory of the run's own), one app
//!    prototype is registered for it, and 1,000 servables are made of it (never run).
//! 3. Each page is asked for by the owner over one keep-alive connection on loopback (the
//!    session cookie): 20 warm-up requests, then 200 rounds in which every page and every
//!    reference is asked for once, in turn, so that what else the machine does weighs on all
//!    alike. p50 and p95 per page, the page's size, its reference's p50 and the ratio.
//!
//! Targets (issue 14): every list page under 50 ms at the median, the overview under 20 ms.
//!
//! Run: `cargo bench --bench dashboard` (needs the Docker engine). Everything stays on
//! 127.0.0.1, every loop is bounded; the server is stopped and its directory removed at the end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/http.rs"]
mod support;

use dtaas::domains::accounts::{self, NewUser};
use dtaas::domains::images::{self, BuildRequest, BuildState};
use dtaas::domains::jobs::{self, NewJob};
use serde_json::json;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const USERS: usize = 1_000;
const JOBS: usize = 10_000;
const JOBS_PER_PIPELINE: usize = 10;
const SERVABLES: usize = 1_000;
const PASSWORD: &str = "dashboard-bench-password";
const WARMUP: usize = 20;
const ROUNDS: usize = 200;

/// The pages, each with the /v1 request that lists the same page (50 items) as its reference.
const PAGES: &[(&str, &str, &str)] = &[
    ("overview", "/ui", "/metrics"),
    ("jobs", "/ui/jobs", "/v1/jobs?limit=50"),
    ("pipelines", "/ui/pipelines", "/v1/pipelines?limit=50"),
    ("images", "/ui/images", "/v1/images?limit=50"),
    ("servables", "/ui/servables", "/v1/servables?limit=50"),
    ("prototypes", "/ui/prototypes", "/v1/prototypes?limit=50"),
    ("registry", "/ui/registry", "/v1/repositories?limit=50"),
    (
        "users (admin)",
        "/ui/admin/users",
        "/v1/users?login=user&limit=50",
    ),
    ("trusts", "/ui/trusts", "/v1/trusts?limit=50"),
    (
        "requests",
        "/ui/requests",
        "/v1/delegation-requests?limit=50",
    ),
];

/// Fills the store in `data` through the domain functions.
fn fill(data: &Path) {
    let store = dtaas::domains::open_store(data).expect("open the store");
    let now = chrono::Utc::now();
    let hash = accounts::hash_password(PASSWORD).expect("hash the password");
    let started = Instant::now();
    let mut owner = None;
    for i in 0..USERS {
        let user = accounts::create_user(
            &store,
            NewUser {
                login: if i == 0 {
                    "owner".to_owned()
                } else {
                    format!("user{i:04}")
                },
                email: None,
                password_hash: hash.clone(),
                confirmed: true,
                confirm_token: None,
                admin: i == 0,
            },
            now,
        )
        .expect("create a user");
        if i == 0 {
            owner = Some(accounts::user_principal(&user).expect("the owner"));
        }
    }
    let owner = owner.expect("the owner");
    eprintln!("  {USERS} users ({:.0} s)", started.elapsed().as_secs_f64());
    let build = images::create_image(
        &store,
        data,
        &owner,
        BuildRequest {
            name: "bench".into(),
            dockerfile: Some("FROM busybox\nCMD [\"true\"]\n".into()),
            repo_url: None,
            nocache: false,
            attachments: Vec::new(),
        },
        now,
    )
    .expect("create the image");
    let mut finished = build.clone();
    finished.state = BuildState::Success;
    finished.finished = Some(now);
    finished.output = "built by the dashboard benchmark's fixture\n".into();
    images::finish_build(
        &store,
        &finished,
        Some((
            format!("sha256:{:064x}", 1),
            format!("owner/image-{}", build.image),
        )),
    )
    .expect("finish the build");
    let started = Instant::now();
    let mut pipeline = None;
    for i in 0..JOBS {
        if i % JOBS_PER_PIPELINE == 0 {
            let name = format!("pipeline {:05}", i / JOBS_PER_PIPELINE);
            pipeline = Some(
                jobs::create_pipeline(&store, &owner, &name, now)
                    .expect("create a pipeline")
                    .id,
            );
        }
        jobs::create_job(
            &store,
            data,
            &owner,
            pipeline.expect("a pipeline"),
            NewJob {
                command: format!("echo job {i}"),
                image: build.image,
                attachments: Vec::new(),
            },
            now,
        )
        .expect("create a job");
    }
    eprintln!("  {JOBS} jobs ({:.0} s)", started.elapsed().as_secs_f64());
}

/// The docker CLI with the run's own config directory.
fn docker(config: &Path, args: &[&str], stdin: Option<&str>) {
    use std::io::Write;
    let mut child = Command::new("docker")
        .args(args)
        .env("DOCKER_CONFIG", config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
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
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Pushes the base image as `owner/bench:1`, registers a daemon prototype of it and makes the
/// servables, over the server's own faces.
fn populate(server: &Server, cookie: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        dtaas::engine::Engine::new(&dtaas::core::config::DockerConfig::default().host)
            .ensure_base_image(dtaas::engine::BASE_IMAGE)
            .await
            .expect("the base image (busybox-static and the Docker engine)");
    });
    let config = tempfile::tempdir().expect("a docker config directory");
    let remote = format!("{}/owner/bench:1", server.addr);
    docker(
        config.path(),
        &["login", &server.addr, "-u", "owner", "--password-stdin"],
        Some(PASSWORD),
    );
    docker(
        config.path(),
        &["tag", dtaas::engine::BASE_IMAGE, &remote],
        None,
    );
    docker(config.path(), &["push", &remote], None);
    docker(config.path(), &["rmi", &remote], None);

    let mut c = Conn::connect(&server.addr).expect("connect");
    let manifest = json!({"bench": {
        "name": "bench", "tag": "1", "type": "app", "dependencies": {}, "arguments": {},
        "capabilities": {}, "config-capabilities": {}
    }});
    let r = c
        .send(
            "POST",
            "/v1/prototypes",
            Some(cookie),
            Some(("application/json", manifest.to_string().as_bytes())),
        )
        .expect("POST /v1/prototypes");
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let started = Instant::now();
    for i in 0..SERVABLES {
        let body = json!({"prototype": "bench:1", "name": format!("servable {i:04}")});
        let r = c
            .send(
                "POST",
                "/v1/servables",
                Some(cookie),
                Some(("application/json", body.to_string().as_bytes())),
            )
            .expect("POST /v1/servables");
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    }
    eprintln!(
        "  {SERVABLES} servables ({:.0} s)",
        started.elapsed().as_secs_f64()
    );
}

struct Timing {
    samples: Vec<Duration>,
    bytes: usize,
}

impl Timing {
    fn new() -> Timing {
        Timing {
            samples: Vec::with_capacity(ROUNDS),
            bytes: 0,
        }
    }

    fn take(&mut self, c: &mut Conn, path: &str, cookie: &str) {
        let t = Instant::now();
        let r = c.get(path, Some(cookie)).expect("GET");
        self.samples.push(t.elapsed());
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body[..r.body.len().min(400)])
        );
        self.bytes = r.body.len();
    }

    fn p(&mut self, q: f64) -> Duration {
        self.samples.sort();
        quantile(&self.samples, q)
    }
}

fn main() {
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let data = scratch.path().join("data");
    std::fs::create_dir_all(&data).expect("the data directory");
    eprintln!("filling the store:");
    fill(&data);
    let (mut server, ready) = start(&data);
    eprintln!("server ready in {:.0} ms", ms(ready));
    let cookie = login(&server.addr, "owner", PASSWORD);
    populate(&server, &cookie);

    let mut c = Conn::connect(&server.addr).expect("connect");
    for _ in 0..WARMUP {
        for (_, page, reference) in PAGES {
            c.get(page, Some(&cookie)).expect("warm up");
            c.get(reference, Some(&cookie)).expect("warm up");
        }
    }
    let mut pages: Vec<(Timing, Timing)> = PAGES
        .iter()
        .map(|_| (Timing::new(), Timing::new()))
        .collect();
    for _ in 0..ROUNDS {
        for ((_, page, reference), (p, r)) in PAGES.iter().zip(pages.iter_mut()) {
            p.take(&mut c, page, &cookie);
            r.take(&mut c, reference, &cookie);
        }
    }
    server.stop();

    println!(
        "\ndashboard pages, {JOBS} jobs / {SERVABLES} servables / {USERS} users, {ROUNDS} rounds:"
    );
    println!(
        "{:<15} {:>9} {:>9} {:>9}   {:<34} {:>9} {:>7}  target",
        "page", "p50 ms", "p95 ms", "bytes", "reference", "p50 ms", "ratio"
    );
    for ((name, _, reference), (p, r)) in PAGES.iter().zip(pages.iter_mut()) {
        let (p50, p95, r50) = (p.p(0.5), p.p(0.95), r.p(0.5));
        let target = if *name == "overview" { 20.0 } else { 50.0 };
        println!(
            "{:<15} {:>9.2} {:>9.2} {:>9}   {:<34} {:>9.2} {:>7.2}  < {target} ms {}",
            name,
            ms(p50),
            ms(p95),
            p.bytes,
            reference,
            ms(r50),
            ms(p50) / ms(r50).max(1e-6),
            if ms(p50) < target { "ok" } else { "MISSED" }
        );
    }
}
