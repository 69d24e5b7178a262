//! Foundation benchmark (issue 2): start-to-ready time, idle RSS, and authenticated `GET /`
//! throughput with a session cookie, side by side with unauthenticated `/healthz` on the same
//! server (the reference: what the session check costs).
//!
//! Run: `cargo bench --bench foundation` (needs `wrk`: `apt-get install wrk`, and a Docker engine,
//! since "ready" means the engine answers). Everything stays on 127.0.0.1 and every loop is
//! bounded. Results go to stdout; BENCHMARKS.md keeps the last recorded run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const START_ROUNDS: usize = 15;
const LOAD_SECONDS: u32 = 10;
const CONNECTIONS: u32 = 64;

struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Starts the release binary on a fresh data directory; returns it and the time until /readyz
/// answered 200.
fn start() -> (Server, Duration) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let port = free_port();
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_dtaas"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn dtaas");
    let base = format!("http://127.0.0.1:{port}");
    let server = Server {
        child,
        base,
        _dir: dir,
    };
    let deadline = started + Duration::from_secs(20);
    loop {
        if let Ok(r) = ureq_get(&format!("{}/readyz", server.base), None)
            && r.0 == 200
        {
            return (server, started.elapsed());
        }
        assert!(Instant::now() < deadline, "server not ready within 20 s");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A minimal blocking HTTP/1.1 GET over a raw socket (keeps the benchmark free of a client
/// runtime while timing start-up).
fn ureq_get(url: &str, cookie: Option<&str>) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut s = std::net::TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{cookie}Connection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((status, out))
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Registers, confirms and logs in a user; returns the session cookie.
fn session_cookie(base: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let c = reqwest::Client::builder()
            .cookie_store(true)
            .no_proxy()
            .build()
            .expect("client");
        let v: serde_json::Value = c
            .post(format!("{base}/register"))
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
        c.get(format!("{base}/register/confirm/bench/{token}"))
            .send()
            .await
            .expect("confirm");
        let r = c
            .post(format!("{base}/login"))
            .form(&[("login", "bench"), ("password", "bench-password")])
            .send()
            .await
            .expect("login");
        let set = r.headers()["set-cookie"]
            .to_str()
            .expect("cookie")
            .to_owned();
        set.split(';').next().expect("cookie pair").to_owned()
    })
}

/// Runs wrk against a URL; returns requests per second and the share of non-2xx answers.
fn wrk(url: &str, cookie: Option<&str>) -> (f64, u64) {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t2",
        &format!("-c{CONNECTIONS}"),
        &format!("-d{LOAD_SECONDS}s"),
        "--latency",
    ]);
    if let Some(c) = cookie {
        cmd.args(["-H", &format!("Cookie: {c}")]);
    }
    let out = cmd.arg(url).output().unwrap_or_else(|e| {
        eprintln!("wrk is needed for the throughput part: apt-get install wrk ({e})");
        std::process::exit(2)
    });
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let non2xx = text
        .lines()
        .find(|l| l.contains("Non-2xx"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (rps, non2xx)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // cargo bench passes --bench; nothing to parse.
    println!(
        "dtaas foundation benchmark (release build, 127.0.0.1, {} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    let mut starts = Vec::new();
    for _ in 0..START_ROUNDS {
        let (server, took) = start();
        starts.push(took);
        drop(server);
    }
    let max = *starts.iter().max().expect("rounds");
    let med = median(starts);
    println!(
        "start-to-ready (empty store, /readyz 200 incl. engine check): median {:.1} ms, max {:.1} ms over {START_ROUNDS} starts (target < 200 ms)",
        med.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );

    let (server, _) = start();
    let cookie = session_cookie(&server.base);
    std::thread::sleep(Duration::from_secs(1));
    let pid = server.child.id();
    let idle = rss_kib(pid);
    println!(
        "idle RSS after start and one login: {:.1} MiB (target < 30 MiB)",
        idle as f64 / 1024.0
    );

    let (status, _) = ureq_get(&format!("{}/", server.base), Some(&cookie)).expect("probe");
    assert_eq!(status, 200, "the session cookie authenticates");
    let (reference, ref_errors) = wrk(&format!("{}/healthz", server.base), None);
    let (authed, errors) = wrk(&format!("{}/", server.base), Some(&cookie));
    assert_eq!(errors, 0, "every authenticated request must succeed");
    assert_eq!(ref_errors, 0);
    println!("GET /healthz (no auth, reference): {reference:.0} req/s");
    println!(
        "GET / with a session cookie:       {authed:.0} req/s (target >= 20000), ratio to reference {:.2}",
        authed / reference.max(1.0)
    );
    println!(
        "peak RSS under load: {:.1} MiB; RSS after: {:.1} MiB",
        hwm_kib(pid) as f64 / 1024.0,
        rss_kib(pid) as f64 / 1024.0
    );
}
