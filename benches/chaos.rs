//! Chaos program (issue 11): SIGKILL the real `dtaas serve` at random moments under load, start
//! it again on the same data directory, and check that nothing was lost.
//!
//! Each round starts load on the server:
//!
//! - four pipelines of jobs that print numbered lines (`seq 1 N`, N from 5,000 to 30,000) and
//!   write a known file to `/outbox`: two plain pipelines of two jobs; one whose second job fails
//!   (exit 3), so that its third is cancelled; one whose job sleeps after its lines and is killed
//!   through the API after a random wait;
//! - pushes of two random blobs of 1-6 MiB into the registry (POST, PATCH in three chunks, PUT
//!   with the digest), a config blob, and a manifest naming them;
//! - the deletion of the previous round's daemon servable, and a new daemon servable (with a
//!   volume) created and run.
//!
//! After a random delay (0-3 s, from the seeded RNG) the server gets SIGKILL. It is started again
//! on the same data directory and port, and restart-to-ready (spawn until `/readyz` answers 200)
//! is measured. Then what was cut is finished (a pipeline whose submit got no answer is submitted
//! if it was not; an upload is resumed where the server says it is, or started again), and the
//! program checks:
//!
//! - every job ends in the state it must (`done`; `failed` with exit code 3; `cancelled` after a
//!   failure or when the kill was answered), and no submitted pipeline is forgotten;
//! - every `done` or `failed` job has all its lines exactly once, in order (a killed one a prefix
//!   of them), and every `done` job its result zip with the known file;
//! - every blob whose PUT answered 201 before the kill reads back whole with its digest; a blob
//!   whose upload was cut is not visible, or only whole; the manifest reads back byte for byte;
//! - the servable instance that was running runs again in the same container (same id, not
//!   restarted, no duplicate); one cut while starting ends `running` or `failed`, never stuck;
//!   a deleted servable stays deleted;
//! - no orphans: every container labelled with this installation belongs to a live job or an
//!   existing instance (and runs only if its instance is active); every servable network and
//!   volume to an existing servable, by label and, for every servable the run made, by name (a
//!   volume the engine makes again on a bind has no label); a check the server cannot answer
//!   counts too once the grace is over.
//!
//! At the end everything is checked again (a later crash must not damage what an earlier round
//! left), and a summary is printed. The program exits 1 when anything was lost.
//!
//! Run by hand (not in CI): `cargo bench --bench chaos -- --rounds 20 --seed 7` (`ROUNDS` and
//! `SEED` in the environment work too; the default is 20 rounds and a seed from the clock, which
//! is printed). Needs the Docker engine and busybox-static. The server is the `dtaas` binary cargo
//! built with the benchmark (`CARGO_BIN_EXE_dtaas`), run with an empty configuration file. When
//! others build in the same checkout meanwhile, give a long run its own `CARGO_TARGET_DIR` (or run
//! the built benchmark binary directly), so that the server is not rebuilt under it. Everything
//! the run makes in the engine (found by the installation label, and its servables' volumes by
//! name) and its temporary directory are removed at the end, also after a panic or Ctrl-C.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bollard::Docker;
use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    ListVolumesOptionsBuilder,
};
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const LOGIN: &str = "chaos";
const PASSWORD: &str = "chaos-password-1";
/// The repository the rounds push blobs and manifests into.
const BLOB_REPO: &str = "chaos/blobs";
/// The daemon prototype's name; its image is in the user's namespace (`chaos/daemon`).
const DAEMON: &str = "daemon";
const DAEMON_REPO: &str = "chaos/daemon";
/// The daemon: notes each start in its volume, sleeps, and ends at once on SIGTERM.
const DAEMON_CMD: [&str; 3] = [
    "sh",
    "-c",
    "trap 'exit 0' TERM; date >> /data/starts; sleep 3600 & wait",
];
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The longest wait between the start of a round's load and the SIGKILL.
const MAX_DELAY_MS: u64 = 3_000;
/// The latest start of the registry's part of the load (a push takes about a second).
const MAX_REGISTRY_AFTER_MS: u64 = 2_000;
/// The latest start of the servables' part (a deletion and a start take one to three seconds).
const MAX_SERVABLE_AFTER_MS: u64 = 1_000;
/// The longest pause between the PATCH requests of a blob.
const MAX_CHUNK_PAUSE_MS: u64 = 300;
/// The longest wait of the killed job's pipeline between its submit and the kill request.
const MAX_KILL_AFTER_MS: u64 = 2_000;
/// How long the jobs of a round may take to end after the restart.
const JOB_DEADLINE: Duration = Duration::from_secs(300);
/// How long a container without an owner may linger (a job's container goes just after its
/// end is recorded) before it counts as orphaned.
const ORPHAN_GRACE: Duration = Duration::from_secs(30);
/// How long an instance cut while starting may take to settle after the restart.
const INSTANCE_DEADLINE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Arguments

struct Args {
    rounds: usize,
    seed: u64,
}

fn usage(problem: &str) -> ! {
    eprintln!("{problem}\nusage: cargo bench --bench chaos -- [--rounds N] [--seed S]");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let number = |what: &str, v: Option<String>| -> u64 {
        v.and_then(|v| v.parse().ok())
            .unwrap_or_else(|| usage(&format!("{what} needs a number")))
    };
    let mut rounds = std::env::var("ROUNDS")
        .ok()
        .map(|v| number("ROUNDS", Some(v)) as usize)
        .unwrap_or(20);
    let mut seed = std::env::var("SEED")
        .ok()
        .map(|v| number("SEED", Some(v)))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(1)
        });
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rounds" => rounds = number("--rounds", args.next()) as usize,
            "--seed" => seed = number("--seed", args.next()),
            // `cargo bench` passes this to every benchmark binary.
            "--bench" => {}
            other => match other.split_once('=') {
                Some(("--rounds", v)) => rounds = number("--rounds", Some(v.into())) as usize,
                Some(("--seed", v)) => seed = number("--seed", Some(v.into())),
                _ => usage(&format!("unknown argument {other:?}")),
            },
        }
    }
    Args { rounds, seed }
}

// ---------------------------------------------------------------------------------------------
// The appliance: the server process on a temporary data directory, and the cleanup guard

/// The server under test. Dropping it kills the server and removes everything the installation
/// made in the engine (by its label), the run's extra image tags, and the temporary directory.
struct Appliance {
    dir: tempfile::TempDir,
    port: u16,
    installation: String,
    child: Option<Child>,
    /// Every servable the run made: (id, its volume's name). A volume the engine made again
    /// without labels (a bind of a volume that was removed) is found by its name only.
    servables: Vec<(String, String)>,
}

impl Appliance {
    /// A data directory with the account made on the stopped database (`dtaas admin`).
    fn create() -> Appliance {
        let dir = tempfile::tempdir().expect("temporary directory");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data directory");
        // An empty configuration: the defaults, whatever /etc/dtaas/dtaas.toml says.
        std::fs::write(dir.path().join("dtaas.toml"), "").expect("configuration");
        // The database first (`dtaas admin` refuses a directory without one); its installation
        // id labels everything the server makes in the engine.
        let installation = dtaas::domains::open_store(&data)
            .expect("the database")
            .installation_id()
            .expect("installation id")
            .to_string();
        let mut admin = Command::new(env!("CARGO_BIN_EXE_dtaas"))
            .arg("admin")
            .arg("--data-dir")
            .arg(&data)
            .args(["create-user", LOGIN, "--password-stdin"])
            .env("DTAAS_CONFIG", dir.path().join("dtaas.toml"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dtaas admin");
        {
            use std::io::Write;
            let mut stdin = admin.stdin.take().expect("stdin");
            writeln!(stdin, "{PASSWORD}").expect("password");
        }
        let out = admin.wait_with_output().expect("dtaas admin");
        assert!(
            out.status.success(),
            "dtaas admin create-user: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        Appliance {
            dir,
            port,
            installation,
            child: None,
            servables: Vec::new(),
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("server log");
        let child = Command::new(env!("CARGO_BIN_EXE_dtaas"))
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .env("DTAAS_CONFIG", self.dir.path().join("dtaas.toml"))
            .env("DTAAS_LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn dtaas serve");
        self.child = Some(child);
    }

    /// Starts the server and waits until `/readyz` answers 200; returns how long that took.
    /// A server that exits at once is started again (a few times); one that never gets ready
    /// ends the run.
    async fn start(&mut self) -> Duration {
        let http = client();
        let url = format!("{}/readyz", self.base());
        let t = Instant::now();
        let mut spawns = 0;
        self.spawn();
        loop {
            if let Ok(r) = http.get(&url).send().await
                && r.status() == 200
            {
                return t.elapsed();
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                spawns += 1;
                assert!(
                    spawns < 5,
                    "dtaas serve exits at start ({status}) after a SIGKILL; its log:\n{}",
                    self.log_tail(40)
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
                self.spawn();
            }
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "dtaas serve is not ready after 120 s; its log:\n{}",
                self.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// SIGKILL (`Child::kill` on Unix), and the process reaped.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        self.kill();
        let filter = format!("label=dtaas.installation={}", self.installation);
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
        // Volumes of the run's servables, labelled or not.
        let volumes: Vec<&str> = self.servables.iter().map(|(_, v)| v.as_str()).collect();
        if !volumes.is_empty() {
            let _ = Command::new("docker")
                .args(["volume", "rm", "-f"])
                .args(&volumes)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        // The daemon's image as the server loaded it from the registry (also labelled).
        let tag = dtaas::engine::registry_sync::engine_tag(DAEMON_REPO, "1");
        let _ = Command::new("docker")
            .args(["rmi", "-f", &tag])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
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

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(300))
        .build()
        .expect("http client")
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// Why a request got no usable answer.
#[derive(Debug)]
enum Fail {
    /// No answer: the server was killed (or is down).
    Cut(String),
    /// An answer, but not one expected.
    Refused(String),
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fail::Cut(e) => write!(f, "no answer: {e}"),
            Fail::Refused(e) => write!(f, "answered {e}"),
        }
    }
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Result<Value, Fail> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Fail::Refused(format!("{} with a body that is not JSON: {e}", self.status))
        })
    }

    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }
}

/// The server's faces as the chaos user sees them: kabuto and /v1 with an API key, /v2 with
/// Basic credentials.
struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// kabuto and /v1 (the same credential resolver takes the key on every face).
    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.key)
    }

    fn registry(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .basic_auth(LOGIN, Some(PASSWORD))
    }

    /// A fresh connection pool: connections to a killed server are not reused.
    fn reconnect(&mut self) {
        self.http = client();
    }

    async fn call(&self, r: reqwest::RequestBuilder, expect: &[u16]) -> Result<Answer, Fail> {
        let r = r.send().await.map_err(|e| Fail::Cut(e.to_string()))?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes().await.map_err(|e| Fail::Cut(e.to_string()))?;
        if expect.contains(&status) {
            Ok(Answer {
                status,
                headers,
                body,
            })
        } else {
            let text = String::from_utf8_lossy(&body[..body.len().min(400)]).into_owned();
            Err(Fail::Refused(format!("{status} {text}")))
        }
    }

    async fn json(&self, r: reqwest::RequestBuilder, expect: &[u16]) -> Result<Value, Fail> {
        self.call(r, expect).await?.json()
    }

    /// The jobs of a pipeline: job id -> the job's view.
    async fn pipeline_jobs(&self, pipeline: &str) -> Result<Value, Fail> {
        self.json(
            self.req(Method::GET, &format!("/pipeline/{pipeline}/job")),
            &[200],
        )
        .await
    }

    async fn job(&self, pipeline: &str, job: &str) -> Result<Option<Value>, Fail> {
        let a = self
            .call(
                self.req(Method::GET, &format!("/pipeline/{pipeline}/job/{job}")),
                &[200, 404],
            )
            .await?;
        Ok(match a.status {
            200 => Some(a.json()?[job].clone()),
            _ => None,
        })
    }

    async fn log_lines(&self, job: &str) -> Result<Vec<String>, Fail> {
        let v = self
            .json(
                self.req(Method::GET, &format!("/execution/{job}/logs")),
                &[200],
            )
            .await?;
        let lines = v
            .as_array()
            .ok_or_else(|| Fail::Refused(format!("logs that are not an array: {v}")))?;
        Ok(lines
            .iter()
            .map(|l| l["logline"].as_str().unwrap_or("<no logline>").to_owned())
            .collect())
    }

    /// The result zip of a job, unpacked: name -> content.
    async fn results(&self, pipeline: &str, job: &str) -> Result<HashMap<String, Vec<u8>>, Fail> {
        let a = self
            .call(
                self.req(
                    Method::GET,
                    &format!("/pipeline/{pipeline}/job/{job}?result"),
                ),
                &[200],
            )
            .await?;
        unzip(&a.body).map_err(Fail::Refused)
    }

    async fn submit(&self, pipeline: &str) -> Result<(), Fail> {
        self.call(
            self.req(Method::POST, &format!("/pipeline/{pipeline}/submit")),
            &[200],
        )
        .await
        .map(drop)
    }

    /// `Some(view)`, or `None` for 404.
    async fn v1_get(&self, path: &str) -> Result<Option<Value>, Fail> {
        let a = self
            .call(self.req(Method::GET, &format!("/v1{path}")), &[200, 404])
            .await?;
        Ok(match a.status {
            200 => Some(a.json()?),
            _ => None,
        })
    }
}

fn unzip(bytes: &[u8]) -> Result<HashMap<String, Vec<u8>>, String> {
    use std::io::Read;
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| format!("not a zip: {e}"))?;
    let mut out = HashMap::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).map_err(|e| format!("zip entry: {e}"))?;
        if f.is_dir() {
            continue;
        }
        let mut content = Vec::new();
        f.read_to_end(&mut content)
            .map_err(|e| format!("zip entry: {e}"))?;
        let name = f.name().map(|n| n.into_owned()).unwrap_or_default();
        out.insert(name, content);
    }
    Ok(out)
}

fn digest_of(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        dtaas::core::secrets::hex(&Sha256::digest(bytes))
    )
}

fn is_finished(state: &str) -> bool {
    matches!(state, "done" | "failed" | "cancelled")
}

// ---------------------------------------------------------------------------------------------
// What a round does, and how far it got before the kill

/// Whether a request was sent, and whether its answer came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Ack {
    #[default]
    NotSent,
    /// Sent; no answer (cut by the kill).
    Sent,
    Answered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Prints its lines, writes its file: `done`.
    Plain,
    /// Prints its lines and exits 3: `failed`.
    Fails,
    /// After a failing job of its pipeline: `cancelled`, never run.
    AfterFailure,
    /// Prints its lines, sleeps, writes its file; killed through the API meanwhile.
    Killed,
}

struct JobTrack {
    role: Role,
    lines: u64,
    /// What the job writes to `/outbox/result.txt`.
    token: String,
    id: Option<String>,
    /// The state the round's check found (the final pass expects it again).
    final_state: Option<String>,
}

impl JobTrack {
    fn command(&self) -> String {
        let (n, token) = (self.lines, &self.token);
        match self.role {
            Role::Plain | Role::AfterFailure => {
                format!("sh -c 'seq 1 {n}; echo {token} > /outbox/result.txt'")
            }
            Role::Fails => format!("sh -c 'seq 1 {n}; exit 3'"),
            Role::Killed => {
                format!("sh -c 'seq 1 {n}; sleep 3; echo {token} > /outbox/result.txt'")
            }
        }
    }
}

struct PipelineTrack {
    id: Option<String>,
    jobs: Vec<JobTrack>,
    /// Every job was created (else the pipeline is abandoned: never submitted, not checked).
    complete: bool,
    submit: Ack,
    /// For the pipeline with a killed job: how long after its submit the kill is asked for.
    kill_after: Option<Duration>,
    kill: Ack,
    /// The state the kill request answered, or "409" when it did not stop in time.
    kill_answer: Option<String>,
    /// Forgotten after the kill (its submit was answered, its jobs are `ready` again).
    lost: bool,
}

struct BlobTrack {
    repo: String,
    digest: String,
    size: usize,
    /// The content (dropped after the round's check; the final pass checks the digest).
    data: Bytes,
    /// Where the PATCH chunks end; the last is the size.
    cuts: Vec<usize>,
    /// A pause after each PATCH, so that a kill may find the upload half done.
    pause: Duration,
    /// The upload session, and how much of the blob it holds.
    location: Option<String>,
    sent: usize,
    put: Ack,
}

impl BlobTrack {
    fn new(repo: &str, data: Bytes, cuts: Vec<usize>) -> BlobTrack {
        BlobTrack {
            repo: repo.to_owned(),
            digest: digest_of(&data),
            size: data.len(),
            data,
            cuts,
            pause: Duration::ZERO,
            location: None,
            sent: 0,
            put: Ack::NotSent,
        }
    }
}

struct ManifestTrack {
    tag: String,
    bytes: Vec<u8>,
    digest: String,
    put: Ack,
}

struct RegistryTrack {
    /// The layers, then the config.
    blobs: Vec<BlobTrack>,
    manifest: ManifestTrack,
}

#[derive(Clone, PartialEq, Eq, Debug)]
struct Container {
    id: String,
    started_at: String,
}

struct ServableTrack {
    name: String,
    id: Option<String>,
    /// Its volume's name, as the server named it.
    volume: Option<String>,
    create: Ack,
    run: Ack,
    instance: Option<String>,
    /// The instance's container as the engine showed it when the run answered `running`.
    container: Option<Container>,
    /// The deletion, done in the next round's load.
    delete: Ack,
}

struct Round {
    n: usize,
    /// From the start of the load to the SIGKILL.
    delay: Duration,
    /// From the start of the load to the start of the registry's and the servables' parts (the
    /// jobs' part starts at once), so that the kill finds each at any point.
    registry_after: Duration,
    servable_after: Duration,
    pipelines: Vec<PipelineTrack>,
    registry: RegistryTrack,
    servable: ServableTrack,
}

/// Draws everything random of a round up front, so that a seed gives the same rounds whatever
/// the timing.
fn plan(rng: &mut StdRng, n: usize, seed: u64) -> Round {
    let delay = Duration::from_millis(rng.random_range(0..=MAX_DELAY_MS));
    let registry_after = Duration::from_millis(rng.random_range(0..=MAX_REGISTRY_AFTER_MS));
    let servable_after = Duration::from_millis(rng.random_range(0..=MAX_SERVABLE_AFTER_MS));
    let kinds: [&[Role]; 4] = [
        &[Role::Plain, Role::Plain],
        &[Role::Plain, Role::Plain],
        &[Role::Plain, Role::Fails, Role::AfterFailure],
        &[Role::Killed],
    ];
    let mut pipelines = Vec::new();
    for (p, roles) in kinds.iter().enumerate() {
        let jobs = roles
            .iter()
            .enumerate()
            .map(|(j, role)| JobTrack {
                role: *role,
                lines: rng.random_range(5_000..=30_000),
                token: format!("chaos-s{seed}-r{n}-p{p}-j{j}"),
                id: None,
                final_state: None,
            })
            .collect();
        let kill_after = roles
            .contains(&Role::Killed)
            .then(|| Duration::from_millis(rng.random_range(0..=MAX_KILL_AFTER_MS)));
        pipelines.push(PipelineTrack {
            id: None,
            jobs,
            complete: false,
            submit: Ack::NotSent,
            kill_after,
            kill: Ack::NotSent,
            kill_answer: None,
            lost: false,
        });
    }

    let mut blobs = Vec::new();
    for _ in 0..2 {
        let size = rng.random_range((1 << 20)..=(6 << 20));
        let mut data = vec![0u8; size];
        rng.fill_bytes(&mut data);
        let mut cuts = vec![rng.random_range(1..size), rng.random_range(1..size), size];
        cuts.sort_unstable();
        cuts.dedup();
        let mut blob = BlobTrack::new(BLOB_REPO, Bytes::from(data), cuts);
        blob.pause = Duration::from_millis(rng.random_range(0..=MAX_CHUNK_PAUSE_MS));
        blobs.push(blob);
    }
    let config =
        serde_json::to_vec(&json!({"chaos": {"seed": seed, "round": n}})).expect("config JSON");
    let config_len = config.len();
    blobs.push(BlobTrack::new(
        BLOB_REPO,
        Bytes::from(config),
        vec![config_len],
    ));
    let layers: Vec<Value> = blobs[..2]
        .iter()
        .map(|b| {
            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                   "digest": b.digest, "size": b.size})
        })
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": blobs[2].digest, "size": blobs[2].size},
        "layers": layers,
    }))
    .expect("manifest JSON");

    Round {
        n,
        delay,
        registry_after,
        servable_after,
        pipelines,
        registry: RegistryTrack {
            blobs,
            manifest: ManifestTrack {
                tag: format!("r{n}"),
                digest: digest_of(&manifest),
                bytes: manifest,
                put: Ack::NotSent,
            },
        },
        servable: ServableTrack {
            name: format!("chaos-{n}"),
            id: None,
            volume: None,
            create: Ack::NotSent,
            run: Ack::NotSent,
            instance: None,
            container: None,
            delete: Ack::NotSent,
        },
    }
}

// ---------------------------------------------------------------------------------------------
// The report

#[derive(Debug, Clone, Copy)]
enum Loss {
    Job,
    Line,
    ExtraLine,
    Result,
    Blob,
    PartialBlob,
    Manifest,
    Servable,
    Orphan,
    Answer,
}

impl Loss {
    fn name(self) -> &'static str {
        match self {
            Loss::Job => "job lost",
            Loss::Line => "log lines lost",
            Loss::ExtraLine => "log lines duplicated or out of order",
            Loss::Result => "result lost",
            Loss::Blob => "blob lost",
            Loss::PartialBlob => "partial blob visible",
            Loss::Manifest => "manifest lost",
            Loss::Servable => "servable wrong",
            Loss::Orphan => "orphan",
            Loss::Answer => "unexpected answer",
        }
    }
}

#[derive(Default)]
struct Report {
    rounds: usize,
    jobs_checked: u64,
    jobs_by_state: HashMap<String, u64>,
    lines_checked: u64,
    results_checked: u64,
    blobs_checked: u64,
    manifests_checked: u64,
    instances_checked: u64,
    resubmitted: u64,
    kills_after_restart: u64,
    uploads_resumed: u64,
    uploads_restarted: u64,
    pipelines_abandoned: u64,
    losses: HashMap<&'static str, u64>,
    problems: Vec<String>,
    /// Orphans already counted (one lingering across rounds counts once).
    orphans_seen: HashSet<String>,
    restarts: Vec<Duration>,
    delays: Vec<Duration>,
}

impl Report {
    fn lose(&mut self, loss: Loss, n: u64, at: &str, what: impl std::fmt::Display) {
        *self.losses.entry(loss.name()).or_default() += n;
        let line = format!("{at}: {}: {what}", loss.name());
        println!("  PROBLEM {line}");
        self.problems.push(line);
    }

    fn lost(&self, loss: Loss) -> u64 {
        self.losses.get(loss.name()).copied().unwrap_or(0)
    }

    fn print(&self, args: &Args, engine_version: &str) {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mut restarts = self.restarts.clone();
        restarts.sort();
        let q = |q: f64| -> Duration {
            if restarts.is_empty() {
                return Duration::ZERO;
            }
            let i = ((restarts.len() as f64 * q).ceil() as usize).clamp(1, restarts.len());
            restarts[i - 1]
        };
        let mut delays = self.delays.clone();
        delays.sort();
        let states = ["done", "failed", "cancelled"]
            .iter()
            .map(|s| format!("{} {s}", self.jobs_by_state.get(*s).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(", ");
        println!();
        println!(
            "chaos summary: {} rounds, seed {} (release build, Docker {engine_version}, {} cores)",
            self.rounds,
            args.seed,
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        );
        if let (Some(first), Some(last)) = (delays.first(), delays.last()) {
            println!(
                "  SIGKILL after {:.2}-{:.2} s of load (median {:.2} s)",
                first.as_secs_f64(),
                last.as_secs_f64(),
                delays[delays.len() / 2].as_secs_f64()
            );
        }
        println!(
            "  jobs checked: {} ({states}); pipelines submitted again after a cut submit: {}; kills asked for after the restart: {}; pipelines abandoned (cut while being made): {}",
            self.jobs_checked, self.resubmitted, self.kills_after_restart, self.pipelines_abandoned
        );
        println!(
            "  log lines checked: {}; results checked: {}",
            self.lines_checked, self.results_checked
        );
        println!(
            "  blobs checked: {} (cut uploads resumed {}, started again {}); manifests checked: {}",
            self.blobs_checked,
            self.uploads_resumed,
            self.uploads_restarted,
            self.manifests_checked
        );
        println!("  servable instances checked: {}", self.instances_checked);
        println!(
            "  lost: jobs {}, log lines {} (duplicated or out of order {}), results {}, blobs {}, manifests {}; partial blobs visible {}; servables wrong {}; orphans {}; unexpected answers {}",
            self.lost(Loss::Job),
            self.lost(Loss::Line),
            self.lost(Loss::ExtraLine),
            self.lost(Loss::Result),
            self.lost(Loss::Blob),
            self.lost(Loss::Manifest),
            self.lost(Loss::PartialBlob),
            self.lost(Loss::Servable),
            self.lost(Loss::Orphan),
            self.lost(Loss::Answer),
        );
        println!(
            "  restart-to-ready: median {:.1} ms, p95 {:.1} ms, max {:.1} ms ({} restarts)",
            ms(q(0.5)),
            ms(q(0.95)),
            ms(q(1.0)),
            restarts.len()
        );
        let lost_data = self.lost(Loss::Job)
            + self.lost(Loss::Line)
            + self.lost(Loss::ExtraLine)
            + self.lost(Loss::Result)
            + self.lost(Loss::Blob)
            + self.lost(Loss::Manifest);
        println!(
            "  Chaos: {} rounds: {lost_data} jobs, lines, results or blobs lost, {} orphaned containers, restart-to-ready p95 {:.1} ms",
            self.rounds,
            self.lost(Loss::Orphan),
            ms(q(0.95))
        );
        if self.problems.is_empty() {
            println!("  verdict: nothing lost");
        } else {
            println!("  verdict: {} problems:", self.problems.len());
            for p in &self.problems {
                println!("    {p}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Setup

/// Logs in, makes an API key, builds the jobs' image, pushes the daemon's image and registers its
/// prototype. Returns the API and the jobs' image id.
async fn setup(app: &Appliance) -> (Api, String) {
    let base = app.base();
    let session = reqwest::Client::builder()
        .cookie_store(true)
        .no_proxy()
        .build()
        .expect("client");
    let r = session
        .post(format!("{base}/login"))
        .form(&[("login", LOGIN), ("password", PASSWORD)])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 200, "login");
    let v: Value = session
        .post(format!("{base}/v1/api-keys"))
        .json(&json!({"name": "chaos"}))
        .send()
        .await
        .expect("api key")
        .json()
        .await
        .expect("json");
    let key = v["key"].as_str().expect("key").to_owned();
    let api = Api {
        http: client(),
        base,
        key,
    };
    let ok = |what: &str, r: Result<Value, Fail>| r.unwrap_or_else(|e| panic!("{what}: {e}"));

    let v = ok(
        "POST /image",
        api.json(
            api.req(Method::POST, "/image").form(&[
                ("name", "chaos"),
                (
                    "dockerfile",
                    &format!("FROM {}\n", dtaas::engine::BASE_IMAGE),
                ),
            ]),
            &[200],
        )
        .await,
    );
    let build = v["build_id"].as_str().expect("build_id").to_owned();
    let t = Instant::now();
    let image = loop {
        let v = ok(
            "build",
            api.json(
                api.req(Method::GET, &format!("/image/build/{build}")),
                &[200],
            )
            .await,
        );
        match v["state"].as_str() {
            Some("SUCCESS") => break v["id"].as_str().expect("image id").to_owned(),
            Some("PENDING") if t.elapsed() < Duration::from_secs(300) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => panic!("the jobs' image did not build: {v}"),
        }
    };

    push_daemon_image(&api, &app.installation).await;
    ok(
        "POST /v1/prototypes",
        api.json(
            api.req(Method::POST, "/v1/prototypes").json(&json!({
                DAEMON: {"name": DAEMON, "tag": "1", "type": "daemon",
                         "arguments": {"volume_location": "/data", "volume_size": 1}}
            })),
            &[201],
        )
        .await,
    );
    (api, image)
}

/// The daemon's image, pushed with raw /v2 requests: one gzipped layer (the busybox root file
/// system the server makes its base image from), a config with the daemon's command and the
/// installation label (so the cleanup finds the engine's copy), a Docker schema-2 manifest.
async fn push_daemon_image(api: &Api, installation: &str) {
    use std::io::Write;
    let busybox = dtaas::engine::find_static_busybox().expect("a static busybox (busybox-static)");
    let tar = dtaas::engine::busybox_rootfs_tar(&busybox).expect("the busybox root file system");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).expect("gzip");
    let layer = gz.finish().expect("gzip");
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = serde_json::to_vec(&json!({
        "architecture": arch,
        "os": "linux",
        "config": {
            "Cmd": DAEMON_CMD,
            "Env": ["PATH=/usr/bin:/bin"],
            "Labels": {"dtaas.installation": installation, "dtaas.chaos": "daemon"},
        },
        "rootfs": {"type": "layers", "diff_ids": [digest_of(&tar)]},
        "history": [{"created_by": "dtaas chaos program"}],
    }))
    .expect("config JSON");
    let (layer_len, config_len) = (layer.len(), config.len());
    let mut layer = BlobTrack::new(DAEMON_REPO, Bytes::from(layer), vec![layer_len]);
    let mut config = BlobTrack::new(DAEMON_REPO, Bytes::from(config), vec![config_len]);
    let never = CancellationToken::new();
    for blob in [&mut layer, &mut config] {
        push_blob(api, blob, &never)
            .await
            .unwrap_or_else(|e| panic!("pushing the daemon's blob: {e}"));
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": config.digest, "size": config.size},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "digest": layer.digest, "size": layer.size}],
    }))
    .expect("manifest JSON");
    api.call(
        api.registry(Method::PUT, &format!("/v2/{DAEMON_REPO}/manifests/1"))
            .header("content-type", DOCKER_MANIFEST)
            .body(manifest),
        &[201],
    )
    .await
    .unwrap_or_else(|e| panic!("pushing the daemon's manifest: {e}"));
}

// ---------------------------------------------------------------------------------------------
// The load (cut by the kill)

/// Creates, submits (and for one pipeline kills a job of) the round's pipelines, one after the
/// other, until the kill. Returns the answers that were not the expected ones.
async fn jobs_load(
    api: &Api,
    image: &str,
    pipelines: &mut [PipelineTrack],
    stop: &CancellationToken,
) -> Vec<String> {
    let mut refused = Vec::new();
    for (i, p) in pipelines.iter_mut().enumerate() {
        if let Err(e) = pipeline_load(api, image, p, i, stop).await {
            if let Fail::Refused(e) = e {
                refused.push(format!("pipeline {i}: {e}"));
            }
            break;
        }
    }
    refused
}

async fn pipeline_load(
    api: &Api,
    image: &str,
    p: &mut PipelineTrack,
    i: usize,
    stop: &CancellationToken,
) -> Result<(), Fail> {
    let stopped = || Fail::Cut("stopped".into());
    if stop.is_cancelled() {
        return Err(stopped());
    }
    let v = api
        .json(
            api.req(Method::POST, "/pipeline")
                .form(&[("name", format!("chaos-{i}"))]),
            &[200],
        )
        .await?;
    let id = v["id"].as_str().unwrap_or_default().to_owned();
    p.id = Some(id.clone());
    for job in &mut p.jobs {
        if stop.is_cancelled() {
            return Err(stopped());
        }
        let v = api
            .json(
                api.req(Method::POST, &format!("/pipeline/{id}/job"))
                    .form(&[("command", job.command()), ("image_id", image.to_owned())]),
                &[200],
            )
            .await?;
        job.id = Some(v["id"].as_str().unwrap_or_default().to_owned());
    }
    p.complete = true;
    if stop.is_cancelled() {
        return Err(stopped());
    }
    p.submit = Ack::Sent;
    api.submit(&id).await?;
    p.submit = Ack::Answered;
    if let Some(after) = p.kill_after {
        if !wait(after, stop).await {
            return Err(stopped());
        }
        kill_job(api, p).await?;
    }
    Ok(())
}

/// Asks for the killed job's kill; records the answer.
async fn kill_job(api: &Api, p: &mut PipelineTrack) -> Result<(), Fail> {
    let (pipeline, job) = (
        p.id.clone().unwrap_or_default(),
        p.jobs[0].id.clone().unwrap_or_default(),
    );
    p.kill = Ack::Sent;
    let a = api
        .call(
            api.req(
                Method::POST,
                &format!("/pipeline/{pipeline}/job/{job}/kill"),
            ),
            &[200, 409],
        )
        .await?;
    p.kill = Ack::Answered;
    p.kill_answer = Some(match a.status {
        200 => a.json()?[&job].as_str().unwrap_or("?").to_owned(),
        _ => "409".to_owned(),
    });
    Ok(())
}

/// Waits `d`; false when the kill came first.
async fn wait(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stop.cancelled() => false,
    }
}

/// After `after`, pushes the round's blobs and then its manifest, until the kill.
async fn registry_load(
    api: &Api,
    reg: &mut RegistryTrack,
    after: Duration,
    stop: &CancellationToken,
) -> Vec<String> {
    if !wait(after, stop).await {
        return Vec::new();
    }
    for blob in &mut reg.blobs {
        match push_blob(api, blob, stop).await {
            Ok(()) => {}
            Err(Fail::Refused(e)) => return vec![format!("blob {}: {e}", blob.digest)],
            Err(Fail::Cut(_)) => return Vec::new(),
        }
    }
    match push_manifest(api, &mut reg.manifest, stop).await {
        Err(Fail::Refused(e)) => vec![format!("manifest {}: {e}", reg.manifest.tag)],
        _ => Vec::new(),
    }
}

/// POST (unless an upload session is known), PATCH the chunks from where the session is, PUT
/// with the digest. Records each step, so that a cut push can be resumed.
async fn push_blob(api: &Api, b: &mut BlobTrack, stop: &CancellationToken) -> Result<(), Fail> {
    let stopped = || Fail::Cut("stopped".into());
    let location = |a: &Answer| -> Result<String, Fail> {
        let l = a.header("location");
        if l.is_empty() {
            Err(Fail::Refused(format!("{} without a Location", a.status)))
        } else {
            Ok(l)
        }
    };
    if b.location.is_none() {
        if stop.is_cancelled() {
            return Err(stopped());
        }
        let a = api
            .call(
                api.registry(Method::POST, &format!("/v2/{}/blobs/uploads/", b.repo)),
                &[202],
            )
            .await?;
        b.location = Some(location(&a)?);
        b.sent = 0;
    }
    for end in b.cuts.clone() {
        if end <= b.sent {
            continue;
        }
        if stop.is_cancelled() {
            return Err(stopped());
        }
        let start = b.sent;
        let a = api
            .call(
                api.registry(Method::PATCH, b.location.as_deref().unwrap_or_default())
                    .header("content-type", "application/octet-stream")
                    .header("content-range", format!("{start}-{}", end - 1))
                    .body(b.data.slice(start..end)),
                &[202],
            )
            .await?;
        b.location = Some(location(&a)?);
        b.sent = end;
        if !wait(b.pause, stop).await {
            return Err(stopped());
        }
    }
    if stop.is_cancelled() {
        return Err(stopped());
    }
    let at = b.location.clone().unwrap_or_default();
    let sep = if at.contains('?') { '&' } else { '?' };
    b.put = Ack::Sent;
    let a = api
        .call(
            api.registry(Method::PUT, &format!("{at}{sep}digest={}", b.digest)),
            &[201],
        )
        .await?;
    if a.header("docker-content-digest") != b.digest {
        return Err(Fail::Refused(format!(
            "201 with Docker-Content-Digest {:?}",
            a.header("docker-content-digest")
        )));
    }
    b.put = Ack::Answered;
    Ok(())
}

async fn push_manifest(
    api: &Api,
    m: &mut ManifestTrack,
    stop: &CancellationToken,
) -> Result<(), Fail> {
    if stop.is_cancelled() {
        return Err(Fail::Cut("stopped".into()));
    }
    m.put = Ack::Sent;
    let a = api
        .call(
            api.registry(Method::PUT, &format!("/v2/{BLOB_REPO}/manifests/{}", m.tag))
                .header("content-type", OCI_MANIFEST)
                .body(m.bytes.clone()),
            &[201],
        )
        .await?;
    if a.header("docker-content-digest") != m.digest {
        return Err(Fail::Refused(format!(
            "201 with Docker-Content-Digest {:?}",
            a.header("docker-content-digest")
        )));
    }
    m.put = Ack::Answered;
    Ok(())
}

/// After `after`, deletes the previous round's servable, then creates and runs this round's,
/// until the kill.
async fn servable_load(
    api: &Api,
    docker: &Docker,
    s: &mut ServableTrack,
    previous: Option<&mut ServableTrack>,
    after: Duration,
    stop: &CancellationToken,
) -> Vec<String> {
    let mut refused = Vec::new();
    if !wait(after, stop).await {
        return refused;
    }
    if let Some(prev) = previous {
        match delete_servable(api, prev, stop).await {
            Ok(()) => {}
            Err(Fail::Refused(e)) => {
                refused.push(format!("deleting {}: {e}", prev.name));
                return refused;
            }
            Err(Fail::Cut(_)) => return refused,
        }
    }
    if let Err(Fail::Refused(e)) = create_and_run(api, docker, s, stop).await {
        refused.push(format!("{}: {e}", s.name));
    }
    refused
}

async fn delete_servable(
    api: &Api,
    s: &mut ServableTrack,
    stop: &CancellationToken,
) -> Result<(), Fail> {
    let Some(id) = s.id.clone() else {
        return Ok(());
    };
    if stop.is_cancelled() {
        return Err(Fail::Cut("stopped".into()));
    }
    s.delete = Ack::Sent;
    api.call(
        api.req(Method::DELETE, &format!("/v1/servables/{id}")),
        &[204],
    )
    .await?;
    s.delete = Ack::Answered;
    Ok(())
}

async fn create_servable(
    api: &Api,
    s: &mut ServableTrack,
    stop: &CancellationToken,
) -> Result<(), Fail> {
    if stop.is_cancelled() {
        return Err(Fail::Cut("stopped".into()));
    }
    s.create = Ack::Sent;
    let v = api
        .json(
            api.req(Method::POST, "/v1/servables").json(&json!({
                "prototype": format!("{DAEMON}:1"),
                "name": s.name,
                "resources": {"cpu_cores": 0.5, "ram": 64, "disk": 0, "gpu_count": 0, "shm": 0},
            })),
            &[201],
        )
        .await?;
    s.id = v["id"].as_str().map(str::to_owned);
    s.volume = v["volume"]["name"].as_str().map(str::to_owned);
    s.create = Ack::Answered;
    Ok(())
}

async fn run_servable(
    api: &Api,
    docker: &Docker,
    s: &mut ServableTrack,
    stop: &CancellationToken,
) -> Result<(), Fail> {
    if stop.is_cancelled() {
        return Err(Fail::Cut("stopped".into()));
    }
    let id = s.id.clone().unwrap_or_default();
    s.run = Ack::Sent;
    let v = api
        .json(
            api.req(Method::POST, &format!("/v1/servables/{id}/run")),
            &[201],
        )
        .await?;
    s.run = Ack::Answered;
    s.instance = v["id"].as_str().map(str::to_owned);
    if v["state"] != "running" {
        return Err(Fail::Refused(format!(
            "run answered a {} instance: {v}",
            v["state"]
        )));
    }
    s.container = container_of(docker, s.instance.as_deref().unwrap_or_default()).await;
    Ok(())
}

async fn create_and_run(
    api: &Api,
    docker: &Docker,
    s: &mut ServableTrack,
    stop: &CancellationToken,
) -> Result<(), Fail> {
    create_servable(api, s, stop).await?;
    run_servable(api, docker, s, stop).await
}

/// An instance's container as the engine shows it (by the name the server gives it).
async fn container_of(docker: &Docker, instance: &str) -> Option<Container> {
    let c = docker
        .inspect_container(
            &format!("dtaas-inst-{instance}"),
            None::<InspectContainerOptions>,
        )
        .await
        .ok()?;
    Some(Container {
        id: c.id.unwrap_or_default(),
        started_at: c.state.and_then(|s| s.started_at).unwrap_or_default(),
    })
}

async fn container_running(docker: &Docker, instance: &str) -> Option<bool> {
    docker
        .inspect_container(
            &format!("dtaas-inst-{instance}"),
            None::<InspectContainerOptions>,
        )
        .await
        .ok()
        .map(|c| c.state.and_then(|s| s.running).unwrap_or(false))
}

/// This installation's containers with a label: (id, labels, running).
async fn containers_labelled(
    docker: &Docker,
    installation: &str,
    label: Option<String>,
) -> Vec<(String, HashMap<String, String>, bool)> {
    let mut labels = vec![format!("dtaas.installation={installation}")];
    labels.extend(label);
    let filters: HashMap<String, Vec<String>> = [("label".to_owned(), labels)].into();
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    docker
        .list_containers(Some(options))
        .await
        .expect("listing containers")
        .into_iter()
        .map(|c| {
            (
                c.id.unwrap_or_default(),
                c.labels.unwrap_or_default(),
                c.state.map(|s| s.to_string() == "running").unwrap_or(false),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// After the restart: finish what was cut, then check

/// Submits what the kill left unsubmitted, asks for kills that were not asked for, waits for
/// every job to end and checks it.
async fn settle_jobs(api: &Api, round: &mut Round, report: &mut Report) {
    let at = format!("round {}", round.n);
    for p in &mut round.pipelines {
        let Some(id) = p.id.clone().filter(|_| p.complete) else {
            report.pipelines_abandoned += 1;
            continue;
        };
        let jobs = match api.pipeline_jobs(&id).await {
            Ok(v) => v,
            Err(e) => {
                report.lose(
                    Loss::Job,
                    p.jobs.len() as u64,
                    &at,
                    format!("pipeline {id}: {e}"),
                );
                p.lost = true;
                continue;
            }
        };
        let all_ready = p
            .jobs
            .iter()
            .all(|j| jobs[j.id.as_deref().unwrap_or_default()]["state"] == "ready");
        match p.submit {
            Ack::Answered if all_ready => {
                report.lose(
                    Loss::Job,
                    p.jobs.len() as u64,
                    &at,
                    format!("pipeline {id} was submitted (200) but its jobs are all `ready` again"),
                );
                p.lost = true;
                continue;
            }
            Ack::Answered => {}
            Ack::Sent | Ack::NotSent if !all_ready => {} // the cut submit went through
            Ack::Sent | Ack::NotSent => {
                if let Err(e) = api.submit(&id).await {
                    report.lose(Loss::Answer, 1, &at, format!("submitting {id} again: {e}"));
                    p.lost = true;
                    continue;
                }
                report.resubmitted += u64::from(p.submit == Ack::Sent);
            }
        }
        p.submit = Ack::Answered;
        if p.kill_after.is_some() && p.kill == Ack::NotSent {
            // Killed after the restart instead (a re-attached job, or a queued one).
            report.kills_after_restart += 1;
            if let Err(e) = kill_job(api, p).await {
                report.lose(Loss::Answer, 1, &at, format!("kill after the restart: {e}"));
            }
        }
    }

    // Wait until every job of every submitted pipeline has ended.
    let deadline = Instant::now() + JOB_DEADLINE;
    let mut states: HashMap<String, String> = HashMap::new();
    loop {
        let mut pending = Vec::new();
        for p in round
            .pipelines
            .iter()
            .filter(|p| p.submit == Ack::Answered && !p.lost)
        {
            let pid = p.id.as_deref().unwrap_or_default();
            let jobs = match api.pipeline_jobs(pid).await {
                Ok(v) => v,
                Err(e) => {
                    pending.push(format!("pipeline {pid}: {e}"));
                    continue;
                }
            };
            for j in &p.jobs {
                let jid = j.id.as_deref().unwrap_or_default();
                let state = jobs[jid]["state"]
                    .as_str()
                    .unwrap_or("<missing>")
                    .to_owned();
                if !is_finished(&state) {
                    pending.push(format!("job {jid} of pipeline {pid} is {state}"));
                }
                states.insert(jid.to_owned(), state);
            }
        }
        if pending.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            for what in &pending {
                report.lose(
                    Loss::Job,
                    1,
                    &at,
                    format!(
                        "did not end {} s after the restart: {what}",
                        JOB_DEADLINE.as_secs()
                    ),
                );
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    for p in round
        .pipelines
        .iter_mut()
        .filter(|p| p.submit == Ack::Answered && !p.lost)
    {
        let kill_answer = p.kill_answer.clone();
        let pid = p.id.clone().unwrap_or_default();
        for j in &mut p.jobs {
            let state = states
                .get(j.id.as_deref().unwrap_or_default())
                .cloned()
                .unwrap_or_default();
            if !is_finished(&state) {
                continue; // reported above
            }
            let expected: Vec<String> = match (j.role, kill_answer.as_deref()) {
                (Role::Plain, _) => vec!["done".into()],
                (Role::Fails, _) => vec!["failed".into()],
                (Role::AfterFailure, _) => vec!["cancelled".into()],
                (Role::Killed, Some(answer)) if is_finished(answer) => vec![answer.into()],
                (Role::Killed, _) => vec!["done".into(), "cancelled".into()],
            };
            check_job(api, &pid, j, &expected, &at, report).await;
        }
    }
}

/// Checks one ended job: its state, exit code, every line, and its result.
async fn check_job(
    api: &Api,
    pipeline: &str,
    j: &mut JobTrack,
    expected: &[String],
    at: &str,
    report: &mut Report,
) {
    let jid = j.id.clone().unwrap_or_default();
    report.jobs_checked += 1;
    let view = match api.job(pipeline, &jid).await {
        Ok(Some(v)) => v,
        Ok(None) => {
            report.lose(Loss::Job, 1, at, format!("job {jid} is gone (404)"));
            return;
        }
        Err(e) => {
            report.lose(Loss::Answer, 1, at, format!("job {jid}: {e}"));
            return;
        }
    };
    let state = view["state"].as_str().unwrap_or("<none>").to_owned();
    if !expected.contains(&state) {
        report.lose(
            Loss::Job,
            1,
            at,
            format!(
                "job {jid} ({:?}, `{}`) ended {state}, not {}: {view}",
                j.role,
                j.command(),
                expected.join(" or ")
            ),
        );
        return;
    }
    *report.jobs_by_state.entry(state.clone()).or_default() += 1;
    j.final_state = Some(state.clone());
    if j.role == Role::Fails && view["response"] != 3 {
        report.lose(
            Loss::Job,
            1,
            at,
            format!(
                "job {jid} failed with response {}, not 3: {view}",
                view["response"]
            ),
        );
    }

    // Lines: all of them once, in order; a killed job a prefix; a job that never ran none.
    let lines = match api.log_lines(&jid).await {
        Ok(l) => l,
        Err(e) => {
            report.lose(Loss::Answer, 1, at, format!("logs of job {jid}: {e}"));
            return;
        }
    };
    let full = match (j.role, state.as_str()) {
        (Role::AfterFailure, _) => 0,
        (Role::Killed, "cancelled") => lines.len().min(j.lines as usize) as u64,
        _ => j.lines,
    };
    report.lines_checked += lines.len() as u64;
    check_lines(&jid, &lines, full, j.lines, at, report);

    if state == "done" {
        report.results_checked += 1;
        match api.results(pipeline, &jid).await {
            Ok(files) => {
                let want = format!("{}\n", j.token);
                match files.get("result.txt") {
                    Some(got) if got == want.as_bytes() => {}
                    other => report.lose(
                        Loss::Result,
                        1,
                        at,
                        format!(
                            "job {jid}: result.txt is {:?}, not {want:?} (files {:?})",
                            other.map(|b| String::from_utf8_lossy(b).into_owned()),
                            files.keys().collect::<Vec<_>>()
                        ),
                    ),
                }
            }
            Err(e) => report.lose(Loss::Result, 1, at, format!("job {jid}: result: {e}")),
        }
    }
}

/// `lines` must be exactly "1".."n" (`n` of the `printed` the command prints).
fn check_lines(job: &str, lines: &[String], n: u64, printed: u64, at: &str, report: &mut Report) {
    let expected = |i: usize| (i + 1).to_string();
    if lines.len() as u64 == n && lines.iter().enumerate().all(|(i, l)| *l == expected(i)) {
        return;
    }
    // What is missing, what is there twice or out of place.
    let mut seen = vec![0u32; printed as usize + 1];
    let mut foreign = Vec::new();
    for l in lines {
        match l.parse::<usize>() {
            Ok(v) if (1..=printed as usize).contains(&v) => seen[v] += 1,
            _ => foreign.push(l.clone()),
        }
    }
    let missing = (1..=n as usize).filter(|v| seen[*v] == 0).count() as u64;
    let twice: u64 = seen.iter().map(|c| u64::from(c.saturating_sub(1))).sum();
    let first_wrong = lines
        .iter()
        .enumerate()
        .find(|(i, l)| **l != expected(*i))
        .map(|(i, l)| format!("line {} is {l:?}", i + 1))
        .unwrap_or_else(|| format!("{} lines, not {n}", lines.len()));
    let what = format!(
        "job {jid}: {} lines stored, {n} expected: {missing} missing, {twice} duplicated, {} foreign ({:?}); first difference: {first_wrong}",
        lines.len(),
        foreign.len(),
        foreign.iter().take(3).collect::<Vec<_>>(),
        jid = job
    );
    if missing > 0 {
        report.lose(Loss::Line, missing, at, &what);
    }
    let extra = twice + foreign.len() as u64;
    if extra > 0 || missing == 0 {
        report.lose(Loss::ExtraLine, extra.max(1), at, &what);
    }
}

/// Finishes the cut pushes (after checking that nothing partial is visible), then reads back
/// every blob and the manifest.
async fn settle_registry(api: &Api, reg: &mut RegistryTrack, at: &str, report: &mut Report) {
    let never = CancellationToken::new();
    for b in &mut reg.blobs {
        if b.put == Ack::Answered {
            continue;
        }
        // Cut: the blob is not visible, or visible whole.
        match blob_state(api, b).await {
            Ok(BlobState::Missing) => {}
            Ok(BlobState::Whole) => {}
            Ok(BlobState::Wrong(why)) => report.lose(
                Loss::PartialBlob,
                1,
                at,
                format!(
                    "blob {} (upload cut at {} of {} bytes): {why}",
                    b.digest, b.sent, b.size
                ),
            ),
            Err(e) => report.lose(Loss::Answer, 1, at, format!("blob {}: {e}", b.digest)),
        }
        // Resume where the server says the upload is, or start again.
        let mut resumed = false;
        if let Some(location) = b.location.clone() {
            match api
                .call(api.registry(Method::GET, &location), &[204, 404])
                .await
            {
                Ok(a) if a.status == 204 => {
                    let end = a
                        .header("range")
                        .split_once('-')
                        .and_then(|(_, e)| e.parse::<usize>().ok())
                        .unwrap_or(0);
                    // "0-0" is either 0 or 1 byte: start again then.
                    if end > 0 && end < b.size {
                        b.sent = end + 1;
                        resumed = true;
                    } else if end >= b.size {
                        report.lose(
                            Loss::PartialBlob,
                            1,
                            at,
                            format!(
                                "upload of {} holds {} of {} bytes",
                                b.digest,
                                end + 1,
                                b.size
                            ),
                        );
                    }
                }
                Ok(_) => {}
                Err(e) => report.lose(Loss::Answer, 1, at, format!("upload status: {e}")),
            }
        }
        if resumed {
            report.uploads_resumed += 1;
        } else {
            if b.location.is_some() {
                report.uploads_restarted += 1;
            }
            b.location = None;
            b.sent = 0;
        }
        if let Err(e) = push_blob(api, b, &never).await {
            report.lose(
                Loss::Answer,
                1,
                at,
                format!(
                    "finishing the cut upload of {} (resumed: {resumed}): {e}",
                    b.digest
                ),
            );
        }
    }
    if reg.manifest.put != Ack::Answered
        && let Err(e) = push_manifest(api, &mut reg.manifest, &never).await
    {
        report.lose(
            Loss::Answer,
            1,
            at,
            format!("manifest {}: {e}", reg.manifest.tag),
        );
    }
    check_registry(api, reg, at, report).await;
}

enum BlobState {
    Missing,
    Whole,
    Wrong(String),
}

/// HEAD, then GET: whether the blob is visible, and if so whether whole with its digest.
async fn blob_state(api: &Api, b: &BlobTrack) -> Result<BlobState, Fail> {
    let path = format!("/v2/{}/blobs/{}", b.repo, b.digest);
    let head = api
        .call(api.registry(Method::HEAD, &path), &[200, 404])
        .await?;
    if head.status == 404 {
        return Ok(BlobState::Missing);
    }
    let a = api.call(api.registry(Method::GET, &path), &[200]).await?;
    let length = head.header("content-length");
    Ok(
        if a.body.len() != b.size || digest_of(&a.body) != b.digest || length != b.size.to_string()
        {
            BlobState::Wrong(format!(
                "HEAD says {length} bytes, GET gave {} bytes with digest {}",
                a.body.len(),
                digest_of(&a.body)
            ))
        } else {
            BlobState::Whole
        },
    )
}

/// Every blob reads back whole with its digest; the manifest byte for byte under its tag.
async fn check_registry(api: &Api, reg: &RegistryTrack, at: &str, report: &mut Report) {
    for b in &reg.blobs {
        report.blobs_checked += 1;
        match blob_state(api, b).await {
            Ok(BlobState::Whole) => {}
            Ok(BlobState::Missing) => report.lose(
                Loss::Blob,
                1,
                at,
                format!("blob {} ({} bytes) answers 404", b.digest, b.size),
            ),
            Ok(BlobState::Wrong(why)) => {
                report.lose(Loss::Blob, 1, at, format!("blob {}: {why}", b.digest))
            }
            Err(e) => report.lose(Loss::Blob, 1, at, format!("blob {}: {e}", b.digest)),
        }
    }
    report.manifests_checked += 1;
    let m = &reg.manifest;
    match api
        .call(
            api.registry(Method::GET, &format!("/v2/{BLOB_REPO}/manifests/{}", m.tag))
                .header("accept", OCI_MANIFEST),
            &[200],
        )
        .await
    {
        Ok(a) if a.body.as_ref() == m.bytes.as_slice() => {}
        Ok(a) => report.lose(
            Loss::Manifest,
            1,
            at,
            format!(
                "manifest {} reads back as {} bytes with digest {}",
                m.tag,
                a.body.len(),
                digest_of(&a.body)
            ),
        ),
        Err(e) => report.lose(Loss::Manifest, 1, at, format!("manifest {}: {e}", m.tag)),
    }
}

/// Finishes the cut deletion of the previous servable and the cut start of this round's, then
/// checks the instance: the one that ran runs on in its container; one cut while starting ends.
async fn settle_servables(
    api: &Api,
    docker: &Docker,
    s: &mut ServableTrack,
    previous: Option<&mut ServableTrack>,
    installation: &str,
    at: &str,
    report: &mut Report,
) {
    let never = CancellationToken::new();
    if let Some(prev) = previous
        && let Some(id) = prev.id.clone()
    {
        match api.v1_get(&format!("/servables/{id}")).await {
            Ok(None) => {}
            Ok(Some(_)) if prev.delete == Ack::Answered => report.lose(
                Loss::Servable,
                1,
                at,
                format!("servable {id} was deleted (204) and is back"),
            ),
            Ok(Some(_)) => {
                if let Err(e) = delete_servable(api, prev, &never).await {
                    report.lose(Loss::Answer, 1, at, format!("deleting servable {id}: {e}"));
                }
            }
            Err(e) => report.lose(Loss::Answer, 1, at, format!("servable {id}: {e}")),
        }
    }

    // A cut create: the servable exists or not.
    if s.create == Ack::Sent {
        match api
            .json(api.req(Method::GET, "/v1/servables"), &[200])
            .await
        {
            Ok(list) => {
                let found = list
                    .as_array()
                    .and_then(|l| l.iter().find(|v| v["name"] == s.name.as_str()));
                if let Some(v) = found
                    && let Some(id) = v["id"].as_str()
                {
                    s.id = Some(id.to_owned());
                    s.volume = v["volume"]["name"].as_str().map(str::to_owned);
                    s.create = Ack::Answered;
                }
            }
            Err(e) => report.lose(Loss::Answer, 1, at, format!("listing servables: {e}")),
        }
    }
    if s.create != Ack::Answered {
        if let Err(e) = create_and_run(api, docker, s, &never).await {
            report.lose(Loss::Answer, 1, at, format!("creating {}: {e}", s.name));
        }
        return;
    }
    let id = s.id.clone().unwrap_or_default();
    // A cut run: the servable has a current instance, or not.
    if s.run == Ack::Sent {
        match api.v1_get(&format!("/servables/{id}")).await {
            Ok(Some(v)) => s.instance = v["current_instance"].as_str().map(str::to_owned),
            Ok(None) => {
                report.lose(
                    Loss::Servable,
                    1,
                    at,
                    format!("servable {id} is gone (404)"),
                );
                return;
            }
            Err(e) => report.lose(Loss::Answer, 1, at, format!("servable {id}: {e}")),
        }
    }
    let Some(instance) = s.instance.clone().filter(|_| s.run != Ack::NotSent) else {
        if let Err(e) = run_servable(api, docker, s, &never).await {
            report.lose(Loss::Answer, 1, at, format!("running {}: {e}", s.name));
        }
        return;
    };

    report.instances_checked += 1;
    let deadline = Instant::now() + INSTANCE_DEADLINE;
    let view = loop {
        match api.v1_get(&format!("/instances/{instance}")).await {
            Ok(Some(v)) if v["state"] == "starting" || v["state"] == "created" => {
                if Instant::now() > deadline {
                    let container = container_of(docker, &instance).await;
                    let running = container_running(docker, &instance).await;
                    report.lose(
                        Loss::Servable,
                        1,
                        at,
                        format!(
                            "instance {instance} is still {} {} s after the restart (its container {container:?}, running: {running:?}): {v}",
                            v["state"],
                            INSTANCE_DEADLINE.as_secs()
                        ),
                    );
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(Some(v)) => break v,
            Ok(None) => {
                report.lose(
                    Loss::Servable,
                    1,
                    at,
                    format!("instance {instance} is gone (404)"),
                );
                return;
            }
            Err(e) => {
                report.lose(Loss::Answer, 1, at, format!("instance {instance}: {e}"));
                return;
            }
        }
    };
    let state = view["state"].as_str().unwrap_or("<none>");
    let containers = containers_labelled(
        docker,
        installation,
        Some(format!("dtaas.instance={instance}")),
    )
    .await;
    if containers.len() > 1 {
        report.lose(
            Loss::Servable,
            1,
            at,
            format!("instance {instance} has {} containers", containers.len()),
        );
    }
    let now = container_of(docker, &instance).await;
    let running = container_running(docker, &instance).await;
    match (s.run, state) {
        // It was running when the server was killed: it runs on, in the same container.
        (Ack::Answered, "running") => match (&s.container, &now) {
            (Some(before), Some(after)) if before == after && running == Some(true) => {}
            (before, after) => report.lose(
                Loss::Servable,
                1,
                at,
                format!(
                    "instance {instance} runs again, but its container changed: before {before:?}, now {after:?}, running {running:?}"
                ),
            ),
        },
        (Ack::Answered, other) => report.lose(
            Loss::Servable,
            1,
            at,
            format!("instance {instance} was running (201) and is {other} after the restart: {view}"),
        ),
        // Cut while starting: running in one container, or ended without a running container.
        (_, "running") if running == Some(true) => {
            s.container = now;
        }
        (_, "running") => report.lose(
            Loss::Servable,
            1,
            at,
            format!("instance {instance} is running, but its container is not ({now:?})"),
        ),
        (_, _) if running == Some(true) => report.lose(
            Loss::Servable,
            1,
            at,
            format!("instance {instance} is {state}, but its container runs"),
        ),
        (_, _) => {}
    }
    s.run = Ack::Answered;
}

/// Containers, networks and volumes of this installation that nothing owns, after letting the
/// server finish what it was doing (ORPHAN_GRACE). Each is reported once. `servables` are every
/// servable the run made: the network and volume of one that is gone must be gone too, found by
/// name (a volume the engine made again on a bind has no labels).
async fn check_orphans(
    api: &Api,
    docker: &Docker,
    installation: &str,
    servables: &[(String, String)],
    at: &str,
    report: &mut Report,
) {
    let deadline = Instant::now() + ORPHAN_GRACE;
    loop {
        let mut found = orphans(api, docker, installation, servables).await;
        found.retain(|(key, _)| !report.orphans_seen.contains(key));
        if found.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            for (key, what) in found {
                if report.orphans_seen.insert(key) {
                    report.lose(Loss::Orphan, 1, at, what);
                }
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn orphans(
    api: &Api,
    docker: &Docker,
    installation: &str,
    servables: &[(String, String)],
) -> Vec<(String, String)> {
    let mut found = Vec::new();
    // An answer the check cannot use is a problem too once the grace is over (it would
    // otherwise hide what it was asked about).
    let unknown = |what: String, e: Fail| (what.clone(), format!("{what}: cannot tell: {e}"));
    for (id, labels, running) in containers_labelled(docker, installation, None).await {
        let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
        let short = &id[..id.len().min(12)];
        match label("dtaas.kind").as_str() {
            "job" => {
                let job = label("dtaas.job");
                match api.job(&label("dtaas.pipeline"), &job).await {
                    Ok(Some(v)) if v["state"] == "running" => {}
                    Ok(Some(v)) => found.push((
                        id.clone(),
                        format!(
                            "container {short} of job {job}, which is {} (running: {running})",
                            v["state"]
                        ),
                    )),
                    Ok(None) => found.push((
                        id.clone(),
                        format!("container {short} of job {job}, which does not exist"),
                    )),
                    Err(e) => found.push(unknown(format!("container {short} of job {job}"), e)),
                }
            }
            "instance" => {
                let instance = label("dtaas.instance");
                match api.v1_get(&format!("/instances/{instance}")).await {
                    Ok(Some(v)) => {
                        let active = matches!(v["state"].as_str(), Some("created" | "starting" | "running"));
                        if running && !active {
                            found.push((
                                id.clone(),
                                format!("container {short} of instance {instance} runs, but the instance is {}", v["state"]),
                            ));
                        }
                    }
                    Ok(None) => found.push((
                        id.clone(),
                        format!("container {short} of instance {instance}, which does not exist (running: {running})"),
                    )),
                    Err(e) => found.push(unknown(format!("container {short} of instance {instance}"), e)),
                }
            }
            kind => found.push((
                id.clone(),
                format!(
                    "{kind:?} container {short} ({:?}, running: {running})",
                    labels
                ),
            )),
        }
    }

    let filters: HashMap<String, Vec<String>> = [(
        "label".to_owned(),
        vec![format!("dtaas.installation={installation}")],
    )]
    .into();
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
        .unwrap_or_default();
    let mut owned_by_servables: Vec<(String, String, HashMap<String, String>)> = networks
        .into_iter()
        .map(|n| {
            (
                "network".to_owned(),
                n.name.unwrap_or_default(),
                n.labels.unwrap_or_default(),
            )
        })
        .collect();
    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
        .ok()
        .and_then(|v| v.volumes)
        .unwrap_or_default();
    owned_by_servables.extend(
        volumes
            .into_iter()
            .map(|v| ("volume".to_owned(), v.name, v.labels)),
    );
    for (what, name, labels) in owned_by_servables {
        let Some(servable) = labels.get("dtaas.servable") else {
            continue; // the installation's API network
        };
        let exists = api.v1_get(&format!("/servables/{servable}")).await;
        if let Err(e) = exists {
            found.push(unknown(format!("{what} {name}"), e));
            continue;
        }
        if let Ok(None) = exists {
            let users = if what == "volume" {
                let filters: HashMap<String, Vec<String>> =
                    [("volume".to_owned(), vec![name.clone()])].into();
                let options = ListContainersOptionsBuilder::new()
                    .all(true)
                    .filters(&filters)
                    .build();
                let ids: Vec<String> = docker
                    .list_containers(Some(options))
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| format!("{:.12} {:?}", c.id.unwrap_or_default(), c.names))
                    .collect();
                format!(" (containers using it now: {ids:?})")
            } else {
                String::new()
            };
            found.push((
                format!("{what} {name}"),
                format!("{what} {name} of servable {servable}, which does not exist{users}"),
            ));
        }
    }

    // By name: the network and the volume of each servable of the run that is gone.
    for (servable, volume) in servables {
        match api.v1_get(&format!("/servables/{servable}")).await {
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(e) => {
                found.push(unknown(format!("servable {servable}"), e));
                continue;
            }
        }
        let network = format!("dtaas-srv-{servable}");
        if docker
            .inspect_network(
                &network,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
            .is_ok()
        {
            found.push((
                format!("network {network}"),
                format!("network {network} of servable {servable}, which does not exist"),
            ));
        }
        if let Ok(v) = docker.inspect_volume(volume).await {
            found.push((
                format!("volume {volume}"),
                format!(
                    "volume {volume} of servable {servable}, which does not exist (labels {:?})",
                    v.labels
                ),
            ));
        }
    }
    found
}

// ---------------------------------------------------------------------------------------------
// The rounds

/// One round: load, SIGKILL after the round's delay, restart, finish what was cut, check.
async fn play(
    app: &mut Appliance,
    api: &mut Api,
    docker: &Docker,
    image: &str,
    round: &mut Round,
    mut previous: Option<&mut ServableTrack>,
    report: &mut Report,
) {
    let at = format!("round {}", round.n);
    let stop = CancellationToken::new();
    let delay = round.delay;
    let (jobs_refused, registry_refused, servables_refused, ()) = tokio::join!(
        jobs_load(api, image, &mut round.pipelines, &stop),
        registry_load(api, &mut round.registry, round.registry_after, &stop),
        servable_load(
            api,
            docker,
            &mut round.servable,
            previous.as_deref_mut(),
            round.servable_after,
            &stop
        ),
        async {
            tokio::time::sleep(delay).await;
            app.kill();
            stop.cancel();
        },
    );
    for refused in [jobs_refused, registry_refused, servables_refused]
        .into_iter()
        .flatten()
    {
        report.lose(Loss::Answer, 1, &at, format!("during the load: {refused}"));
    }
    let cut = describe_cut(round, previous.as_deref());

    let ready = app.start().await;
    api.reconnect();
    report.restarts.push(ready);
    report.delays.push(delay);

    let t = Instant::now();
    settle_registry(api, &mut round.registry, &at, report).await;
    let registry_took = t.elapsed();
    let t = Instant::now();
    settle_servables(
        api,
        docker,
        &mut round.servable,
        previous,
        &app.installation,
        &at,
        report,
    )
    .await;
    let servables_took = t.elapsed();
    if let Some(id) = &round.servable.id
        && !app.servables.iter().any(|(s, _)| s == id)
    {
        let volume = round
            .servable
            .volume
            .clone()
            .unwrap_or_else(|| format!("dtaas-vol-{id}"));
        app.servables.push((id.clone(), volume));
    }
    let t = Instant::now();
    settle_jobs(api, round, report).await;
    let jobs_took = t.elapsed();
    let t = Instant::now();
    check_orphans(api, docker, &app.installation, &app.servables, &at, report).await;
    let orphans_took = t.elapsed();
    report.rounds += 1;
    // The final pass checks blobs by digest; their bytes are not needed any more.
    for b in &mut round.registry.blobs {
        b.data = Bytes::new();
    }
    let lines: u64 = round
        .pipelines
        .iter()
        .flat_map(|p| &p.jobs)
        .filter(|j| j.final_state.is_some())
        .map(|j| j.lines)
        .sum();
    println!(
        "round {}: SIGKILL after {:.3} s ({cut}); ready again in {:.1} ms; then registry {:.1} s, servables {:.1} s, jobs {:.1} s (~{lines} lines), orphans {:.1} s; problems so far: {}",
        round.n,
        delay.as_secs_f64(),
        ready.as_secs_f64() * 1e3,
        registry_took.as_secs_f64(),
        servables_took.as_secs_f64(),
        jobs_took.as_secs_f64(),
        orphans_took.as_secs_f64(),
        report.problems.len()
    );
}

/// What the load had got to when the server was killed.
fn describe_cut(round: &Round, previous: Option<&ServableTrack>) -> String {
    let submitted = round
        .pipelines
        .iter()
        .filter(|p| p.submit == Ack::Answered)
        .count();
    let kill = round
        .pipelines
        .iter()
        .find(|p| p.kill_after.is_some())
        .map(|p| match (p.kill, p.kill_answer.as_deref()) {
            (Ack::Answered, Some(a)) => format!("kill answered {a}"),
            (Ack::Sent, _) => "kill cut".into(),
            _ => "kill not asked".into(),
        })
        .unwrap_or_default();
    let blobs = round
        .registry
        .blobs
        .iter()
        .filter(|b| b.put == Ack::Answered)
        .count();
    let ack = |a: Ack| match a {
        Ack::NotSent => "not sent",
        Ack::Sent => "cut",
        Ack::Answered => "answered",
    };
    format!(
        "{submitted}/{} pipelines submitted, {kill}; {blobs}/{} blobs and manifest {}; delete {}, create {}, run {}",
        round.pipelines.len(),
        round.registry.blobs.len(),
        ack(round.registry.manifest.put),
        previous.map(|p| ack(p.delete)).unwrap_or("-"),
        ack(round.servable.create),
        ack(round.servable.run),
    )
}

/// After the last round: everything every round left is checked again.
async fn final_check(
    api: &Api,
    docker: &Docker,
    app: &Appliance,
    rounds: &mut [Round],
    report: &mut Report,
) {
    let at = "final check";
    let mut quiet = Report::default();
    for round in rounds.iter_mut() {
        for p in round.pipelines.iter_mut().filter(|p| !p.lost) {
            let pid = p.id.clone().unwrap_or_default();
            for j in p.jobs.iter_mut() {
                let Some(state) = j.final_state.clone() else {
                    continue;
                };
                check_job(api, &pid, j, &[state], at, &mut quiet).await;
            }
        }
        check_registry(api, &round.registry, at, &mut quiet).await;
    }
    let last = rounds.len().saturating_sub(1);
    for (i, round) in rounds.iter().enumerate() {
        let s = &round.servable;
        let Some(id) = &s.id else { continue };
        match api.v1_get(&format!("/servables/{id}")).await {
            Ok(None) if i < last => {}
            Ok(Some(_)) if i == last => {
                if let (Some(instance), Some(before)) = (&s.instance, &s.container) {
                    let now = container_of(docker, instance).await;
                    if now.as_ref() != Some(before) {
                        quiet.lose(
                            Loss::Servable,
                            1,
                            at,
                            format!("the last instance {instance}'s container changed: {before:?} -> {now:?}"),
                        );
                    }
                }
            }
            Ok(v) => quiet.lose(
                Loss::Servable,
                1,
                at,
                format!("servable {id} (round {}): exists {}", round.n, v.is_some()),
            ),
            Err(e) => quiet.lose(Loss::Answer, 1, at, format!("servable {id}: {e}")),
        }
    }
    quiet.orphans_seen = std::mem::take(&mut report.orphans_seen);
    check_orphans(
        api,
        docker,
        &app.installation,
        &app.servables,
        at,
        &mut quiet,
    )
    .await;
    report.orphans_seen = std::mem::take(&mut quiet.orphans_seen);
    // Only the problems of the final pass count; what it re-checked was counted in its round.
    for (loss, n) in quiet.losses {
        *report.losses.entry(loss).or_default() += n;
    }
    report.problems.extend(quiet.problems);
    println!(
        "final check: {} jobs, {} log lines, {} results, {} blobs and {} manifests read again",
        quiet.jobs_checked,
        quiet.lines_checked,
        quiet.results_checked,
        quiet.blobs_checked,
        quiet.manifests_checked
    );
}

async fn run(args: Args) -> ExitCode {
    let engine = dtaas::engine::Engine::new(&dtaas::core::config::DockerConfig::default().host);
    engine
        .ensure_base_image(dtaas::engine::BASE_IMAGE)
        .await
        .expect("the busybox base image (busybox-static and a Docker engine)");
    let docker = engine.client().await.expect("engine");
    let engine_version = engine.info().await.map(|i| i.version).unwrap_or_default();
    let mut app = Appliance::create();
    println!(
        "dtaas chaos: {} rounds, seed {} (`--seed {}` repeats them); data directory {}",
        args.rounds,
        args.seed,
        args.seed,
        app.dir.path().display()
    );
    let first = app.start().await;
    let (mut api, image) = setup(&app).await;
    println!(
        "set up in a server ready {:.1} ms after its start: a user, the jobs' image {image}, the daemon prototype {DAEMON}:1",
        first.as_secs_f64() * 1e3
    );

    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut report = Report::default();
    let mut rounds: Vec<Round> = Vec::new();
    for n in 1..=args.rounds {
        let mut round = plan(&mut rng, n, args.seed);
        let previous = rounds.last_mut().map(|r| &mut r.servable);
        play(
            &mut app,
            &mut api,
            &docker,
            &image,
            &mut round,
            previous,
            &mut report,
        )
        .await;
        rounds.push(round);
    }
    final_check(&api, &docker, &app, &mut rounds, &mut report).await;
    report.print(&args, &engine_version);
    if !report.problems.is_empty() {
        println!(
            "\nthe server's log (warn and above), last 40 lines:\n{}",
            app.log_tail(40)
        );
    }
    drop(app); // kills the server, removes what it made in the engine and the directory
    if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = parse_args();
    // Interrupted (Ctrl-C, or a timeout's SIGTERM): the run stops, and dropping it removes what
    // it made in the engine, as after a panic.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        code = run(args) => code,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted: cleaning up");
            ExitCode::from(130)
        }
        _ = term.recv() => {
            eprintln!("terminated: cleaning up");
            ExitCode::from(143)
        }
    }
}
