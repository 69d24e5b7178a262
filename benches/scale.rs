//! Scale benchmark (issue 11): what a list, start-up and memory cost when the store is large.
//!
//! For stores of 1,000, 10,000 and 100,000 jobs (each with 5,000 users and 10,000 READ grants):
//!
//! 1. The store is filled without the server, through the library's own domain functions
//!    (`accounts::create_user`, `images::create_image` + `finish_build`, `jobs::create_pipeline`
//!    and `create_job`, `authz::grant_by`), each call one durable commit as in production. User 0
//!    ("owner") owns every job (10 per pipeline); user 1 ("grantee") holds READ on exactly 10
//!    jobs spread over the id range; the other 9,990 grants give READ on random jobs to random
//!    other users. Filling takes a while (one fsync per call: about 2 minutes for 100,000 jobs
//!    on a 2-core machine), so the filled data directory is cached
//!    under `target/scale-fixtures/<version>-<size>/` and copied to a temporary directory for
//!    every server start; it is rebuilt when missing (delete the directory to rebuild).
//! 2. Start-to-ready: spawning the release binary on a fresh copy (written to disk first, a
//!    store at rest) until `/readyz` answers 200 (the store opened and the Docker engine
//!    answered), median of 5 starts; then once more after the server was killed with SIGKILL
//!    (the database was not closed cleanly).
//! 3. The first page of each list, for the owner and the grantee (both logged in through the
//!    kabuto `POST /login`): `GET /v1/jobs`, `/v1/jobs?state=ready`, `/v1/jobs?pipeline=<id>`,
//!    `/jobs?limit=100`, `/pipeline?limit=100`; p50 and p95 of 200 sequential requests over one
//!    keep-alive connection (after 20 warm-up requests). A server per size runs meanwhile, and
//!    the sizes take turns request by request (the start rounds alternate too), so that what
//!    else the machine does weighs on every size alike.
//! 4. `GET /healthz` latency (p50, p99; one request every 5 ms) while 4 clients list
//!    `GET /v1/jobs?limit=1000` as the owner for 5 s (and, for comparison, `limit=100`).
//! 5. The server's VmRSS after that burst and 1 s idle; then one full streamed `GET /jobs`
//!    (every job the owner has, no paging parameters) for information.
//!
//! It ends with the ratios p50(largest) / p50(smallest) per list and principal.
//!
//! Run: `cargo bench --bench scale` (needs the Docker engine, since "ready" means the engine
//! answers). `SCALE_SIZES=1000,10000` runs a subset. Everything stays on 127.0.0.1, every loop is
//! bounded, the servers are stopped and the temporary copies removed at the end. The client is a
//! minimal blocking HTTP/1.1 client on a raw socket, so that its own cost stays small next to
//! what is measured. Results go to stdout; BENCHMARKS.md keeps the last recorded run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/http.rs"]
mod support;

use support::*;

use dtaas::domains::accounts::{self, NewUser};
use dtaas::domains::authz::{self, Capability, Caps};
use dtaas::domains::images::{self, BuildRequest, BuildState};
use dtaas::domains::jobs::{self, NewJob};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bump when the shape of the fixture changes (the store's schema version is added to the name
/// as well, so a new schema rebuilds the fixtures).
const FIXTURE_VERSION: u32 = 1;
const SIZES: &[usize] = &[1_000, 10_000, 100_000];
const USERS: usize = 5_000;
const GRANTS: usize = 10_000;
const GRANTEE_JOBS: usize = 10;
const JOBS_PER_PIPELINE: usize = 10;
const PASSWORD: &str = "scale-bench-password";

const START_ROUNDS: usize = 5;
const WARMUP: usize = 20;
const REQUESTS: usize = 200;
/// The timed requests of a list come in this many rounds, the sizes taking turns: one request
/// a turn, so that a moment of noise from elsewhere on the machine lands on every size alike.
const ROUNDS: usize = REQUESTS;
const BURST_CLIENTS: usize = 4;
const BURST: Duration = Duration::from_secs(5);
const PROBE_EVERY: Duration = Duration::from_millis(5);

// ---------------------------------------------------------------------------------------------
// The fixture
// ---------------------------------------------------------------------------------------------

/// What the benchmark needs to know about a filled store (kept next to it as `fixture.json`).
struct Fixture {
    /// The cached data directory (never served from directly).
    data: PathBuf,
    /// A pipeline of the owner (10 jobs).
    owner_pipeline: String,
    /// The pipeline of one of the grantee's jobs (the grantee reads 1 job of it).
    grantee_pipeline: String,
    /// How long filling took when the fixture was built.
    build_secs: f64,
    /// Whether this run built it.
    built_now: bool,
}

fn fixtures_root() -> PathBuf {
    // CARGO_TARGET_DIR when set, else <package>/target.
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("scale-fixtures")
}

fn fixture(size: usize) -> Fixture {
    let name = format!(
        "v{FIXTURE_VERSION}-s{}-{size}",
        dtaas::core::store::SCHEMA_VERSION
    );
    let dir = fixtures_root().join(&name);
    let meta_path = dir.join("fixture.json");
    let mut built_now = false;
    if !meta_path.exists() {
        let partial = fixtures_root().join(format!("{name}.partial"));
        let _ = std::fs::remove_dir_all(&partial);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&partial).expect("fixture directory");
        eprintln!(
            "building the fixture of {size} jobs in {} (cached for later runs)",
            dir.display()
        );
        let started = Instant::now();
        let mut meta = fill(&partial.join("data"), size);
        meta["build_secs"] = json!(started.elapsed().as_secs_f64());
        std::fs::write(
            partial.join("fixture.json"),
            serde_json::to_vec_pretty(&meta).expect("json"),
        )
        .expect("write fixture.json");
        std::fs::rename(&partial, &dir).expect("move the fixture in place");
        built_now = true;
    }
    let meta: Value =
        serde_json::from_slice(&std::fs::read(&meta_path).expect("read fixture.json"))
            .expect("fixture.json");
    assert_eq!(meta["size"], json!(size), "{}", meta_path.display());
    Fixture {
        data: dir.join("data"),
        owner_pipeline: meta["owner_pipeline"].as_str().expect("pipeline").into(),
        grantee_pipeline: meta["grantee_pipeline"].as_str().expect("pipeline").into(),
        build_secs: meta["build_secs"].as_f64().unwrap_or(0.0),
        built_now,
    }
}

/// A small deterministic generator (xorshift64*), so that every fixture is filled alike.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    }
}

/// Fills a store of `size` jobs in `data` through the domain functions; returns fixture.json.
fn fill(data: &Path, size: usize) -> Value {
    let store = dtaas::domains::open_store(data).expect("open the store");
    let now = chrono::Utc::now();
    let progress = |what: &str, done: usize, of: usize, since: Instant| {
        if done % (of / 10).max(1) == 0 || done == of {
            eprintln!(
                "  {what}: {done}/{of} ({:.0} s)",
                since.elapsed().as_secs_f64()
            );
        }
    };

    // One argon2id hash for everyone: the accounts differ only by login.
    let hash = accounts::hash_password(PASSWORD).expect("hash the password");
    let started = Instant::now();
    let mut users = Vec::with_capacity(USERS);
    for i in 0..USERS {
        let login = match i {
            0 => "owner".to_owned(),
            1 => "grantee".to_owned(),
            _ => format!("user{i:05}"),
        };
        let user = accounts::create_user(
            &store,
            NewUser {
                login,
                email: None,
                password_hash: hash.clone(),
                confirmed: true,
                confirm_token: None,
                admin: false,
            },
            now,
        )
        .expect("create a user");
        users.push(user);
        progress("users", i + 1, USERS, started);
    }
    let owner = accounts::user_principal(&users[0]).expect("owner principal");

    // One image, built as far as the server knows (so that nothing is built at start).
    let build = images::create_image(
        &store,
        data,
        &owner,
        BuildRequest {
            name: "scale".into(),
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
    finished.output = "built by the scale benchmark's fixture\n".into();
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
    let mut job_ids = Vec::with_capacity(size);
    let mut pipeline_of = Vec::with_capacity(size);
    let mut pipeline = None;
    for i in 0..size {
        if i % JOBS_PER_PIPELINE == 0 {
            let name = format!("pipeline {:06}", i / JOBS_PER_PIPELINE);
            pipeline = Some(
                jobs::create_pipeline(&store, &owner, &name, now)
                    .expect("create a pipeline")
                    .id,
            );
        }
        let p = pipeline.expect("a pipeline");
        let job = jobs::create_job(
            &store,
            data,
            &owner,
            p,
            NewJob {
                command: format!("echo job {i}"),
                image: build.image,
                attachments: Vec::new(),
            },
            now,
        )
        .expect("create a job");
        job_ids.push(job.id);
        pipeline_of.push(p);
        progress("jobs", i + 1, size, started);
    }

    let started = Instant::now();
    let read = Caps::of(&[Capability::Read]);
    // The grantee's jobs: one in each tenth of the id range.
    let grantee_jobs: Vec<usize> = (0..GRANTEE_JOBS)
        .map(|k| k * size / GRANTEE_JOBS + size / (2 * GRANTEE_JOBS))
        .collect();
    for &j in &grantee_jobs {
        authz::grant_by(&store, &owner, job_ids[j], users[1].id, read).expect("grant");
    }
    let mut rng = Rng(0x5ca1_ab1e_0000_0000 ^ size as u64);
    for g in GRANTEE_JOBS..GRANTS {
        let job = job_ids[rng.below(size)];
        let user = users[2 + rng.below(USERS - 2)].id;
        authz::grant_by(&store, &owner, job, user, read).expect("grant");
        progress("grants", g + 1, GRANTS, started);
    }
    drop(store);

    json!({
        "size": size,
        "users": USERS,
        "grants": GRANTS,
        "owner_pipeline": pipeline_of[size / 2].to_string(),
        "grantee_pipeline": pipeline_of[grantee_jobs[GRANTEE_JOBS / 2]].to_string(),
        "grantee_jobs": grantee_jobs.iter().map(|&j| job_ids[j].to_string()).collect::<Vec<_>>(),
    })
}

// ---------------------------------------------------------------------------------------------
// Measures
// ---------------------------------------------------------------------------------------------

/// The number of items in a list answer: a JSON array (/v1) or an object keyed by id (kabuto).
fn items(v: &Value) -> usize {
    match v {
        Value::Array(a) => a.len(),
        Value::Object(o) => o.len(),
        _ => usize::MAX,
    }
}

struct ListResult {
    list: String,
    principal: &'static str,
    items: usize,
    bytes: usize,
    p50: Duration,
    p95: Duration,
}

/// Sequential GETs of one path over one keep-alive connection, timed in rounds.
struct ListTimer {
    conn: Conn,
    cookie: String,
    path: String,
    items: usize,
    bytes: usize,
    times: Vec<Duration>,
}

impl ListTimer {
    /// Connects, checks the first answer and warms up.
    fn new(addr: &str, cookie: &str, path: &str) -> ListTimer {
        let mut conn = Conn::connect(addr).expect("connect");
        let first = conn.get(path, Some(cookie)).expect("GET");
        assert_eq!(
            first.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&first.body)
        );
        for _ in 1..WARMUP {
            conn.get(path, Some(cookie)).expect("GET");
        }
        ListTimer {
            conn,
            cookie: cookie.to_owned(),
            path: path.to_owned(),
            items: items(&first.json()),
            bytes: first.body.len(),
            times: Vec::with_capacity(REQUESTS),
        }
    }

    fn round(&mut self, n: usize) {
        for _ in 0..n {
            let t = Instant::now();
            let r = self.conn.get(&self.path, Some(&self.cookie)).expect("GET");
            self.times.push(t.elapsed());
            assert_eq!(r.status, 200, "{}", self.path);
        }
    }
}

struct Burst {
    health_p50: Duration,
    health_p99: Duration,
    health_max: Duration,
    probes: usize,
    pages: u64,
    seconds: f64,
}

/// `BURST_CLIENTS` threads GET `path` (a list) as the owner while one more times `/healthz`
/// every `PROBE_EVERY`.
fn burst(addr: &str, cookie: &str, path: &str) -> Burst {
    let stop = Arc::new(AtomicBool::new(false));
    let pages = Arc::new(AtomicU64::new(0));
    let loaders: Vec<_> = (0..BURST_CLIENTS)
        .map(|_| {
            let (addr, cookie, path) = (addr.to_owned(), cookie.to_owned(), path.to_owned());
            let (stop, pages) = (stop.clone(), pages.clone());
            std::thread::spawn(move || {
                let mut c = Conn::connect(&addr).expect("connect");
                // Bounded: the probe sets `stop` after BURST; the cap is a safety net.
                for _ in 0..1_000_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let r = c.get(&path, Some(&cookie)).expect("list");
                    assert_eq!(r.status, 200);
                    pages.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Let every loader have its first request in flight.
    std::thread::sleep(Duration::from_millis(100));
    let mut probe = Conn::connect(addr).expect("connect");
    let mut times = Vec::new();
    let started = Instant::now();
    let mut next = started;
    while started.elapsed() < BURST {
        let t = Instant::now();
        let r = probe.get("/healthz", None).expect("healthz");
        times.push(t.elapsed());
        assert_eq!(r.status, 200);
        next += PROBE_EVERY;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let seconds = started.elapsed().as_secs_f64() + 0.1;
    stop.store(true, Ordering::Relaxed);
    for l in loaders {
        l.join().expect("loader");
    }
    times.sort();
    Burst {
        health_p50: quantile(&times, 0.5),
        health_p99: quantile(&times, 0.99),
        health_max: times.last().copied().unwrap_or_default(),
        probes: times.len(),
        pages: pages.load(Ordering::Relaxed),
        seconds,
    }
}

struct SizeResult {
    size: usize,
    build_secs: f64,
    built_now: bool,
    db_mib: f64,
    starts: Vec<Duration>,
    crash_start: Duration,
    lists: Vec<ListResult>,
    burst: Burst,
    /// The same with pages of 100 (information: the size of the page against the latency).
    burst_small: Burst,
    rss_idle_kib: u64,
    rss_after_burst_kib: u64,
    stream_items: usize,
    stream_bytes: usize,
    stream_time: Duration,
    hwm_kib: u64,
}

/// A server on a copy of one size's fixture, with both principals logged in.
struct Running {
    size: usize,
    fx: Fixture,
    data: PathBuf,
    server: Server,
    owner: String,
    grantee: String,
    rss_idle_kib: u64,
}

/// The lists timed, `PIPELINE` standing for the principal's pipeline.
const LISTS: &[&str] = &[
    "/v1/jobs",
    "/v1/jobs?state=ready",
    "/v1/jobs?pipeline=PIPELINE",
    "/jobs?limit=100",
    "/pipeline?limit=100",
];

/// Runs every measure. The sizes take turns (start rounds, and rounds of each list's requests),
/// so that whatever else the machine does at a moment weighs on every size alike.
fn run(sizes: &[usize], scratch: &Path) -> Vec<SizeResult> {
    let fixtures: Vec<Fixture> = sizes.iter().map(|&size| fixture(size)).collect();

    // Start-to-ready, each on a fresh copy of the cleanly closed store.
    let mut starts = vec![Vec::new(); sizes.len()];
    for round in 0..START_ROUNDS {
        for (i, fx) in fixtures.iter().enumerate() {
            let data = scratch.join(format!("{}-start-{round}", sizes[i]));
            copy_dir(&fx.data, &data);
            let (mut server, took) = start(&data);
            starts[i].push(took);
            server.stop();
            std::fs::remove_dir_all(&data).expect("remove a copy");
        }
    }

    // One server per size for the rest.
    let mut running: Vec<Running> = fixtures
        .into_iter()
        .zip(sizes)
        .map(|(fx, &size)| {
            let data = scratch.join(format!("{size}-serve"));
            copy_dir(&fx.data, &data);
            let (server, _) = start(&data);
            let owner = login(&server.addr, "owner", PASSWORD);
            let grantee = login(&server.addr, "grantee", PASSWORD);
            Running {
                size,
                fx,
                data,
                server,
                owner,
                grantee,
                rss_idle_kib: 0,
            }
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    for r in &mut running {
        r.rss_idle_kib = proc_status_kib(r.server.pid(), "VmRSS:");
    }

    // The first pages: per list and principal, a connection per size, the sizes taking turns.
    let mut lists: Vec<Vec<ListResult>> = (0..sizes.len()).map(|_| Vec::new()).collect();
    for list in LISTS {
        for principal in ["owner", "grantee"] {
            let mut timers: Vec<ListTimer> = running
                .iter()
                .map(|r| {
                    let (cookie, pipeline) = match principal {
                        "owner" => (&r.owner, &r.fx.owner_pipeline),
                        _ => (&r.grantee, &r.fx.grantee_pipeline),
                    };
                    ListTimer::new(&r.server.addr, cookie, &list.replace("PIPELINE", pipeline))
                })
                .collect();
            for _ in 0..ROUNDS {
                for t in &mut timers {
                    t.round(REQUESTS / ROUNDS);
                }
            }
            for (i, t) in timers.into_iter().enumerate() {
                let mut times = t.times;
                times.sort();
                lists[i].push(ListResult {
                    list: list.replace("=PIPELINE", "=<id>"),
                    principal,
                    items: t.items,
                    bytes: t.bytes,
                    p50: quantile(&times, 0.5),
                    p95: quantile(&times, 0.95),
                });
            }
        }
    }

    // Load, memory, everything at once, a start after a crash: one size at a time.
    let mut out = Vec::new();
    for (r, (lists, starts)) in running.into_iter().zip(lists.into_iter().zip(starts)) {
        let Running {
            size,
            fx,
            data,
            mut server,
            owner,
            rss_idle_kib,
            ..
        } = r;
        let addr = server.addr.clone();
        let burst_small = burst(&addr, &owner, "/v1/jobs?limit=100");
        let burst = burst(&addr, &owner, "/v1/jobs?limit=1000");
        std::thread::sleep(Duration::from_secs(1));
        let rss_after_burst_kib = proc_status_kib(server.pid(), "VmRSS:");

        // Everything at once, streamed (the kabuto face without paging parameters).
        let mut c = Conn::connect(&addr).expect("connect");
        let t = Instant::now();
        let all = c.get("/jobs", Some(&owner)).expect("GET /jobs");
        let stream_time = t.elapsed();
        assert_eq!(all.status, 200);
        drop(c);
        let hwm_kib = proc_status_kib(server.pid(), "VmHWM:");

        // A start after a crash: the store was not closed.
        server.crash();
        let (mut again, crash_start) = start(&data);
        again.stop();
        std::fs::remove_dir_all(&data).expect("remove the copy");

        out.push(SizeResult {
            size,
            build_secs: fx.build_secs,
            built_now: fx.built_now,
            db_mib: dir_size(&fx.data) as f64 / (1024.0 * 1024.0),
            starts,
            crash_start,
            lists,
            burst,
            burst_small,
            rss_idle_kib,
            rss_after_burst_kib,
            stream_items: items(&all.json()),
            stream_bytes: all.body.len(),
            stream_time,
            hwm_kib,
        });
    }
    out
}

fn print_size(r: &SizeResult) {
    let mut starts = r.starts.clone();
    starts.sort();
    println!();
    println!(
        "== {} jobs, {USERS} users, {GRANTS} grants (store {:.1} MiB; fixture filled in {:.0} s{}) ==",
        r.size,
        r.db_mib,
        r.build_secs,
        if r.built_now {
            ", this run"
        } else {
            ", cached"
        }
    );
    println!(
        "start-to-ready: median {:.1} ms, min {:.1}, max {:.1} over {START_ROUNDS} starts; after a SIGKILL: {:.1} ms",
        ms(quantile(&starts, 0.5)),
        ms(starts[0]),
        ms(starts[starts.len() - 1]),
        ms(r.crash_start)
    );
    println!(
        "{:<28} {:<8} {:>6} {:>9} {:>10} {:>10}",
        "first page", "as", "items", "bytes", "p50 (us)", "p95 (us)"
    );
    for l in &r.lists {
        println!(
            "{:<28} {:<8} {:>6} {:>9} {:>10.0} {:>10.0}",
            l.list,
            l.principal,
            l.items,
            l.bytes,
            l.p50.as_secs_f64() * 1e6,
            l.p95.as_secs_f64() * 1e6
        );
    }
    for (b, page, target) in [
        (&r.burst, 1000, " (target p99 < 5 ms)"),
        (&r.burst_small, 100, ""),
    ] {
        println!(
            "/healthz while {BURST_CLIENTS} clients list {page} jobs: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} probes; {:.0} pages/s listed){target}",
            ms(b.health_p50),
            ms(b.health_p99),
            ms(b.health_max),
            b.probes,
            b.pages as f64 / b.seconds
        );
    }
    println!(
        "VmRSS: {:.1} MiB after two logins, {:.1} MiB 1 s after the burst (target < 64 MiB at 100,000)",
        r.rss_idle_kib as f64 / 1024.0,
        r.rss_after_burst_kib as f64 / 1024.0
    );
    println!(
        "GET /jobs everything (streamed): {} jobs, {:.1} MiB in {:.0} ms; VmHWM after it {:.1} MiB",
        r.stream_items,
        r.stream_bytes as f64 / (1024.0 * 1024.0),
        ms(r.stream_time),
        r.hwm_kib as f64 / 1024.0
    );
}

fn main() {
    // cargo bench passes --bench; nothing to parse.
    let sizes: Vec<usize> = match std::env::var("SCALE_SIZES") {
        Ok(v) if !v.trim().is_empty() => v
            .split(',')
            .map(|s| {
                s.trim()
                    .replace('_', "")
                    .parse()
                    .expect("SCALE_SIZES: numbers")
            })
            .collect(),
        _ => SIZES.to_vec(),
    };
    assert!(
        sizes.iter().all(|&s| s >= 100),
        "at least 100 jobs per store"
    );
    println!(
        "dtaas scale benchmark (release build, 127.0.0.1, {} cores); sizes {sizes:?}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let scratch = tempfile::tempdir().expect("temporary directory");
    let results = run(&sizes, scratch.path());
    for r in &results {
        print_size(r);
    }

    let (Some(small), Some(large)) = (results.first(), results.last()) else {
        return;
    };
    if results.len() < 2 {
        return;
    }
    println!();
    println!(
        "== ratios p50({}) / p50({}) (target <= 1.5x) ==",
        large.size, small.size
    );
    for (a, b) in small.lists.iter().zip(&large.lists) {
        println!(
            "{:<28} {:<8} {:>8.0} us -> {:>8.0} us  {:.2}x",
            a.list,
            a.principal,
            a.p50.as_secs_f64() * 1e6,
            b.p50.as_secs_f64() * 1e6,
            b.p50.as_secs_f64() / a.p50.as_secs_f64().max(1e-9)
        );
    }
    let mut starts = large.starts.clone();
    starts.sort();
    println!(
        "start-to-ready at {}: median {:.1} ms (target < 500 ms)",
        large.size,
        ms(quantile(&starts, 0.5))
    );
    println!(
        "VmRSS at {} after the burst: {:.1} MiB (target < 64 MiB)",
        large.size,
        large.rss_after_burst_kib as f64 / 1024.0
    );
}
