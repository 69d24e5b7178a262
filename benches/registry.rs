//! Registry benchmark (issue 4), side by side with Debian's `docker-registry` (the CNCF
//! distribution registry) in the same run, on the same disk, both on 127.0.0.1:
//! a 256 MiB random blob pushed with a streamed PATCH + PUT and pulled with GET, several rounds;
//! HEAD latency; idle and peak RSS. dtaas runs with authentication on (Basic, the account's
//! password); the reference runs as Debian configures it (no authentication).
//!
//! Run: `cargo bench --bench registry` (needs `apt-get install docker-registry`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BLOB_MIB: usize = 256;
const ROUNDS: usize = 5;
const HEADS: usize = 500;

struct Proc {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn start_reference() -> (Proc, String) {
    let dir =
        tempfile::tempdir_in(std::env::current_dir().expect("cwd")).expect("temporary directory");
    let p = port();
    let config = format!(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{p}\n",
        dir.path().join("data").display()
    );
    std::fs::write(dir.path().join("config.yml"), config).expect("config");
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(dir.path().join("config.yml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            eprintln!("Debian's docker-registry is needed: apt-get install docker-registry ({e})");
            std::process::exit(2)
        });
    (Proc { child, _dir: dir }, format!("http://127.0.0.1:{p}"))
}

fn start_dtaas() -> (Proc, String) {
    let dir =
        tempfile::tempdir_in(std::env::current_dir().expect("cwd")).expect("temporary directory");
    let p = port();
    let child = Command::new(env!("CARGO_BIN_EXE_dtaas"))
        .args(["serve", "--listen", &format!("127.0.0.1:{p}")])
        .arg("--data-dir")
        .arg(dir.path())
        .env("DTAAS_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn dtaas");
    (Proc { child, _dir: dir }, format!("http://127.0.0.1:{p}"))
}

struct Target {
    name: &'static str,
    base: String,
    c: reqwest::Client,
    auth: Option<(String, String)>,
    pid: u32,
}

impl Target {
    fn req(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let url = if url.starts_with("http") {
            url.to_owned()
        } else {
            format!("{}{url}", self.base)
        };
        let r = self.c.request(method, url);
        match &self.auth {
            Some((u, p)) => r.basic_auth(u, Some(p)),
            None => r,
        }
    }

    async fn wait_up(&self) {
        for _ in 0..400 {
            if self.req(reqwest::Method::GET, "/v2/").send().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{} did not come up", self.name);
    }

    /// POST, one streamed PATCH, PUT ?digest=.
    async fn push(&self, repo: &str, blob: &bytes::Bytes, digest: &str) -> Duration {
        use reqwest::Method;
        let t = Instant::now();
        let r = self
            .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
            .send()
            .await
            .expect("POST");
        assert_eq!(r.status(), 202, "{}: POST {}", self.name, r.status());
        let location = r.headers()["location"]
            .to_str()
            .expect("location")
            .to_owned();
        let chunks: Vec<bytes::Bytes> = (0..blob.len())
            .step_by(1 << 20)
            .map(|i| blob.slice(i..(i + (1 << 20)).min(blob.len())))
            .collect();
        let stream = futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
        let r = self
            .req(Method::PATCH, &location)
            .header("content-type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .expect("PATCH");
        assert_eq!(r.status(), 202, "{}: PATCH", self.name);
        let location = r.headers()["location"]
            .to_str()
            .expect("location")
            .to_owned();
        let sep = if location.contains('?') { '&' } else { '?' };
        let r = self
            .req(Method::PUT, &format!("{location}{sep}digest={digest}"))
            .send()
            .await
            .expect("PUT");
        assert_eq!(r.status(), 201, "{}: PUT {}", self.name, r.status());
        t.elapsed()
    }

    async fn pull(&self, repo: &str, digest: &str, size: usize) -> Duration {
        use futures_util::StreamExt;
        let t = Instant::now();
        let r = self
            .req(reqwest::Method::GET, &format!("/v2/{repo}/blobs/{digest}"))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), 200, "{}: GET", self.name);
        let mut stream = r.bytes_stream();
        let mut n = 0;
        while let Some(chunk) = stream.next().await {
            n += chunk.expect("chunk").len();
        }
        assert_eq!(n, size);
        t.elapsed()
    }

    async fn head_median_us(&self, repo: &str, digest: &str) -> f64 {
        let mut v = Vec::new();
        for _ in 0..HEADS {
            let t = Instant::now();
            let r = self
                .req(reqwest::Method::HEAD, &format!("/v2/{repo}/blobs/{digest}"))
                .send()
                .await
                .expect("HEAD");
            assert_eq!(r.status(), 200);
            v.push(t.elapsed().as_secs_f64() * 1e6);
        }
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    use sha2::{Digest, Sha256};
    let (reference, ref_base) = start_reference();
    let (dtaas, dtaas_base) = start_dtaas();
    let client = || {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client")
    };

    let setup = reqwest::Client::builder()
        .cookie_store(true)
        .no_proxy()
        .build()
        .expect("client");
    let mut dtaas_target = Target {
        name: "dtaas",
        base: dtaas_base.clone(),
        c: client(),
        auth: None,
        pid: dtaas.child.id(),
    };
    for _ in 0..400 {
        if setup
            .get(format!("{dtaas_base}/healthz"))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let v: serde_json::Value = setup
        .post(format!("{dtaas_base}/register"))
        .form(&[
            ("login", "bench"),
            ("password", "bench-password"),
            ("email", "b@example.org"),
        ])
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    let token = v["token"].as_str().expect("token");
    setup
        .get(format!("{dtaas_base}/register/confirm/bench/{token}"))
        .send()
        .await
        .expect("confirm");
    dtaas_target.auth = Some(("bench".into(), "bench-password".into()));
    let ref_target = Target {
        name: "docker-registry",
        base: ref_base,
        c: client(),
        auth: None,
        pid: reference.child.id(),
    };
    ref_target.wait_up().await;
    dtaas_target.wait_up().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = (
        status_kib(ref_target.pid, "VmRSS:"),
        status_kib(dtaas_target.pid, "VmRSS:"),
    );

    // Peak anonymous and file-backed RSS, sampled every 10 ms in the background (VmHWM alone
    // would count the page cache of mapped blob files as if it were allocated memory).
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        let pids = [ref_target.pid, dtaas_target.pid];
        std::thread::spawn(move || {
            let mut peaks = [[0u64; 2]; 2];
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                for (i, pid) in pids.iter().enumerate() {
                    peaks[i][0] = peaks[i][0].max(status_kib(*pid, "RssAnon:"));
                    peaks[i][1] = peaks[i][1].max(status_kib(*pid, "RssFile:"));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            peaks
        })
    };
    let mut random = vec![0u8; BLOB_MIB << 20];
    let mut state = 0x9e3779b97f4a7c15u64;
    for chunk in random.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    let mb = (BLOB_MIB << 20) as f64 / (1024.0 * 1024.0);
    println!(
        "registry benchmark: {BLOB_MIB} MiB random blobs, {ROUNDS} rounds, release build, 127.0.0.1, {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    let (mut push, mut pull): (Vec<Vec<Duration>>, Vec<Vec<Duration>>) =
        (vec![vec![], vec![]], vec![vec![], vec![]]);
    let targets = [&ref_target, &dtaas_target];
    for round in 0..ROUNDS {
        // A different blob each round (no deduplication), the same for both registries.
        random[..8].copy_from_slice(&(round as u64).to_le_bytes());
        let blob = bytes::Bytes::from(random.clone());
        let digest = format!(
            "sha256:{}",
            dtaas::core::secrets::hex(&Sha256::digest(&blob))
        );
        for (i, t) in targets.iter().enumerate() {
            let repo = "bench/blobs";
            push[i].push(t.push(repo, &blob, &digest).await);
            pull[i].push(t.pull(repo, &digest, blob.len()).await);
        }
    }
    let last = format!(
        "sha256:{}",
        dtaas::core::secrets::hex(&Sha256::digest(&random))
    );
    let heads = [
        ref_target.head_median_us("bench/blobs", &last).await,
        dtaas_target.head_median_us("bench/blobs", &last).await,
    ];
    let peak = (
        status_kib(ref_target.pid, "VmHWM:"),
        status_kib(dtaas_target.pid, "VmHWM:"),
    );
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let peaks = sampler.join().expect("sampler");

    let rate = |d: Duration| mb / d.as_secs_f64();
    let (rp, dp) = (median(push[0].clone()), median(push[1].clone()));
    let (rg, dg) = (median(pull[0].clone()), median(pull[1].clone()));
    println!(
        "push (POST + streamed PATCH + PUT), median: docker-registry {:.0} MiB/s ({:.2} s); dtaas {:.0} MiB/s ({:.2} s); ratio {:.2} (target >= 1.0)",
        rate(rp),
        rp.as_secs_f64(),
        rate(dp),
        dp.as_secs_f64(),
        rate(dp) / rate(rp)
    );
    println!(
        "pull (GET), median: docker-registry {:.0} MiB/s ({:.2} s); dtaas {:.0} MiB/s ({:.2} s); ratio {:.2} (target >= 1.0)",
        rate(rg),
        rg.as_secs_f64(),
        rate(dg),
        dg.as_secs_f64(),
        rate(dg) / rate(rg)
    );
    println!(
        "HEAD blob, median of {HEADS}: docker-registry {:.0} us; dtaas {:.0} us (target < 1000 us)",
        heads[0], heads[1]
    );
    let m = |k: u64| k as f64 / 1024.0;
    println!(
        "RSS idle: docker-registry {:.1} MiB; dtaas {:.1} MiB",
        m(idle.0),
        m(idle.1)
    );
    println!(
        "RSS peak (VmHWM): docker-registry {:.1} MiB; dtaas {:.1} MiB",
        m(peak.0),
        m(peak.1)
    );
    println!(
        "  of which anonymous (allocated) at most: docker-registry {:.1} MiB; dtaas {:.1} MiB; file-backed (mapped page cache) at most: docker-registry {:.1} MiB; dtaas {:.1} MiB",
        m(peaks[0][0]),
        m(peaks[1][0]),
        m(peaks[0][1]),
        m(peaks[1][1])
    );
}
