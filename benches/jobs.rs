//! Jobs benchmark (issue 3), side by side with the raw Docker Engine API in the same run:
//!
//! 1. overhead: submit-to-done of a trivial job (`true`) against create/start/wait/remove of the
//!    same container through the Engine API;
//! 2. throughput: 40 trivial jobs over 4 pipelines against 40 raw containers at concurrency 4;
//! 3. log ingestion: a job printing 1,000,000 lines, all stored, then all served in order.
//!
//! Run: `cargo bench --bench jobs` (needs the Docker engine and busybox-static). Loopback only;
//! every loop is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use futures_util::StreamExt;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const OVERHEAD_ROUNDS: usize = 30;
const JOBS: usize = 40;
const PIPELINES: usize = 4;
const LOG_LINES: u64 = 1_000_000;

struct Server {
    child: Child,
    base: String,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Ok(store) = dtaas::domains::open_store(self.dir.path())
            && let Ok(id) = store.installation_id()
        {
            let filter = format!("label=dtaas.installation={id}");
            if let Ok(out) = Command::new("docker")
                .args(["images", "-q", "--filter", &filter])
                .output()
            {
                let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect();
                if !ids.is_empty() {
                    let _ = Command::new("docker")
                        .args(["rmi", "-f"])
                        .args(&ids)
                        .output();
                }
            }
        }
    }
}

fn start_server() -> Server {
    let dir = tempfile::tempdir().expect("temporary directory");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_dtaas"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path())
        .env("DTAAS_LOG_LEVEL", "warn")
        .env("DTAAS_JOBS_MAX_PARALLEL", PIPELINES.to_string())
        .env("DTAAS_JOBS_MAX_LOG_LINES", (LOG_LINES + 10).to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn dtaas");
    Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        dir,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Client {
    c: reqwest::Client,
    base: String,
}

impl Client {
    async fn json(&self, r: reqwest::RequestBuilder) -> Value {
        let r = r.send().await.expect("request");
        assert!(r.status().is_success(), "{}", r.status());
        r.json().await.expect("json")
    }

    async fn pipeline_with_jobs(&self, image: &str, commands: &[&str]) -> (String, Vec<String>) {
        let p = self
            .json(
                self.c
                    .post(format!("{}/pipeline", self.base))
                    .form(&[("name", "bench")]),
            )
            .await;
        let p = p["id"].as_str().expect("id").to_owned();
        let mut jobs = Vec::new();
        for cmd in commands {
            let j = self
                .json(
                    self.c
                        .post(format!("{}/pipeline/{p}/job", self.base))
                        .form(&[("command", *cmd), ("image_id", image)]),
                )
                .await;
            jobs.push(j["id"].as_str().expect("id").to_owned());
        }
        (p, jobs)
    }

    async fn state(&self, p: &str, j: &str) -> String {
        let v = self
            .json(self.c.get(format!("{}/pipeline/{p}/job/{j}", self.base)))
            .await;
        v[j]["state"].as_str().unwrap_or("").to_owned()
    }

    /// Submits and waits (polling every 2 ms) until the last job is done.
    async fn run(&self, p: &str, jobs: &[String]) -> Duration {
        let start = Instant::now();
        self.json(self.c.post(format!("{}/pipeline/{p}/submit", self.base)))
            .await;
        let last = jobs.last().expect("a job");
        loop {
            let s = self.state(p, last).await;
            if s == "done" {
                return start.elapsed();
            }
            assert!(s != "failed" && s != "cancelled", "job ended {s}");
            assert!(start.elapsed() < Duration::from_secs(600), "job too slow");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

async fn raw_container(docker: &Docker, image: &str, name: &str) {
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        cmd: Some(vec!["true".into()]),
        labels: Some([("dtaas.bench".to_owned(), "1".to_owned())].into()),
        host_config: Some(HostConfig {
            memory: Some(1024 * 1024 * 1024),
            nano_cpus: Some(1_000_000_000),
            pids_limit: Some(1024),
            network_mode: Some("bridge".into()),
            security_opt: Some(vec!["no-new-privileges".into()]),
            ..Default::default()
        }),
        ..Default::default()
    };
    docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name(name).build()),
            body,
        )
        .await
        .expect("create");
    docker.start_container(name, None).await.expect("start");
    let mut wait = docker.wait_container(name, None);
    while let Some(w) = wait.next().await {
        w.expect("wait");
    }
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
        .expect("base image");
    let docker = engine.client().await.expect("engine");
    let server = start_server();
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .no_proxy()
        .build()
        .expect("client");
    for _ in 0..200 {
        if c.get(format!("{}/healthz", server.base))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let client = Client {
        c,
        base: server.base.clone(),
    };
    let token = client
        .json(client.c.post(format!("{}/register", server.base)).form(&[
            ("login", "bench"),
            ("password", "bench-pass"),
            ("email", "b@example.org"),
        ]))
        .await["token"]
        .as_str()
        .expect("token")
        .to_owned();
    client
        .json(
            client
                .c
                .get(format!("{}/register/confirm/bench/{token}", server.base)),
        )
        .await;
    client
        .json(
            client
                .c
                .post(format!("{}/login", server.base))
                .form(&[("login", "bench"), ("password", "bench-pass")]),
        )
        .await;
    let build = client
        .json(client.c.post(format!("{}/image", server.base)).form(&[
            ("name", "bench"),
            ("dockerfile", "FROM dtaas/busybox:latest\n"),
        ]))
        .await;
    let build = build["build_id"].as_str().expect("build").to_owned();
    let image = loop {
        let v = client
            .json(client.c.get(format!("{}/image/build/{build}", server.base)))
            .await;
        match v["state"].as_str() {
            Some("SUCCESS") => break v["id"].as_str().expect("id").to_owned(),
            Some("PENDING") => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("build {other:?}: {v}"),
        }
    };
    let tag = format!("dtaas/image-{image}:latest");
    println!(
        "dtaas jobs benchmark (release build, Docker {}, {} cores)",
        engine.info().await.map(|i| i.version).unwrap_or_default(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    // 1. Overhead, alternating rounds.
    let (p, jobs) = client.pipeline_with_jobs(&image, &["true"]).await;
    client.run(&p, &jobs).await; // warm-up
    raw_container(&docker, &tag, "dtaas-bench-warm").await;
    let (mut raw, mut ours) = (Vec::new(), Vec::new());
    for i in 0..OVERHEAD_ROUNDS {
        let t = Instant::now();
        raw_container(&docker, &tag, &format!("dtaas-bench-{i}")).await;
        raw.push(t.elapsed().as_secs_f64() * 1e3);
        ours.push(client.run(&p, &jobs).await.as_secs_f64() * 1e3);
    }
    let (raw_med, ours_med) = (median(raw), median(ours));
    println!(
        "trivial job, median of {OVERHEAD_ROUNDS}: raw create/start/wait/remove {raw_med:.1} ms; dtaas submit-to-done {ours_med:.1} ms; overhead {:.1} ms (target < 25 ms)",
        ours_med - raw_med
    );

    // 2. Throughput.
    let t = Instant::now();
    let workers: Vec<_> = (0..PIPELINES)
        .map(|w| {
            let docker = docker.clone();
            let tag = tag.clone();
            tokio::spawn(async move {
                for i in 0..JOBS / PIPELINES {
                    raw_container(&docker, &tag, &format!("dtaas-bench-t{w}-{i}")).await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("worker");
    }
    let raw_secs = t.elapsed().as_secs_f64();
    let mut runs = Vec::new();
    for _ in 0..PIPELINES {
        runs.push(
            client
                .pipeline_with_jobs(&image, &["true"; JOBS / PIPELINES])
                .await,
        );
    }
    let t = Instant::now();
    let waits: Vec<_> = runs.iter().map(|(p, jobs)| client.run(p, jobs)).collect();
    futures_util::future::join_all(waits).await;
    let ours_secs = t.elapsed().as_secs_f64();
    println!(
        "{JOBS} trivial jobs, {PIPELINES} at a time: raw {:.2} jobs/s; dtaas {:.2} jobs/s; ratio {:.2} (target >= 0.9)",
        JOBS as f64 / raw_secs,
        JOBS as f64 / ours_secs,
        raw_secs / ours_secs
    );

    // 3. Log ingestion.
    let (p, jobs) = client
        .pipeline_with_jobs(&image, &[&format!("seq 1 {LOG_LINES}")])
        .await;
    let took = client.run(&p, &jobs).await;
    let t = Instant::now();
    let r = client
        .c
        .get(format!("{}/execution/{}/logs", server.base, jobs[0]))
        .send()
        .await
        .expect("logs");
    let lines: Vec<Value> = r.json().await.expect("json");
    let served = t.elapsed();
    assert_eq!(lines.len() as u64, LOG_LINES, "every line stored");
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(
            l["logline"].as_str(),
            Some((i + 1).to_string().as_str()),
            "in order"
        );
    }
    println!(
        "{LOG_LINES} log lines: stored in {:.2} s ({:.0} lines/s end to end, target >= 100000); served in {:.2} s ({:.0} lines/s)",
        took.as_secs_f64(),
        LOG_LINES as f64 / took.as_secs_f64(),
        served.as_secs_f64(),
        LOG_LINES as f64 / served.as_secs_f64()
    );
}
