//! `dtaas push` against `docker push` (issue 13): the same 256 MiB single-layer image pushed to
//! the same appliance in the same run, by the client (Engine API export, gzip, /v2) and by the
//! docker CLI (through the engine, which compresses and uploads itself).
//!
//! Each round imports a fresh image (`docker import` of a tar made here: half random bytes,
//! half text-like words, so gzip has work on both kinds), then pushes it with both tools to
//! repositories of their own with fresh names, so that neither finds a blob to skip or mount;
//! the order alternates between rounds (the first reader warms the page cache for the
//! second). The times are the wall-clock time of `dtaas push IMAGE --name ...` and of
//! `docker push`, each a process of its own; the ratio is docker's median over dtaas's
//! (above 1: dtaas is faster). The server runs as in production, logging at `info` to
//! /dev/null.
//!
//! Run: `cargo bench --bench client_push`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LAYER_MIB: usize = 256;
const ROUNDS: usize = 5;
const PASSWORD: &str = "bench-password";

struct Server {
    child: Child,
    /// Engine images to remove at the end.
    images: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.images.is_empty() {
            let _ = Command::new("docker")
                .arg("rmi")
                .arg("-f")
                .args(&self.images)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

/// Runs a command to success; returns how long it took.
fn run(cmd: &mut Command, what: &str) -> Duration {
    let t = Instant::now();
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// A tar of `LAYER_MIB` MiB in 2 MiB files: even ones random bytes, odd ones words.
fn layer_tar(path: &Path, seed: u64) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    const WORDS: [&str; 16] = [
        "trust",
        "data",
        "appliance",
        "layer",
        "registry",
        "servable",
        "pipeline",
        "image",
        "engine",
        "docker",
        "push",
        "pull",
        "tag",
        "digest",
        "blob",
        "manifest",
    ];
    let file = std::fs::File::create(path).expect("layer tar");
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    let file_size = 2usize << 20;
    for i in 0..(LAYER_MIB << 20) / file_size {
        let mut data = vec![0u8; file_size];
        if i % 2 == 0 {
            rng.fill(&mut data[..]);
        } else {
            let mut n = 0;
            while n < file_size {
                let w = WORDS[rng.random_range(0..WORDS.len())].as_bytes();
                let take = w.len().min(file_size - n);
                data[n..n + take].copy_from_slice(&w[..take]);
                n += take;
                if n < file_size {
                    data[n] = if rng.random_range(0..12) == 0 {
                        b'\n'
                    } else {
                        b' '
                    };
                    n += 1;
                }
            }
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(file_size as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, format!("data/f{i:03}"), &data[..])
            .expect("append");
    }
    tar.into_inner().expect("tar").into_inner().expect("flush");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mib_s(d: Duration) -> f64 {
    LAYER_MIB as f64 / d.as_secs_f64()
}

#[tokio::main]
async fn main() {
    let work = tempfile::tempdir_in(std::env::current_dir().expect("cwd")).expect("work dir");
    let data = work.path().join("data");
    let home = work.path().join("home");
    let docker_config = work.path().join("docker");
    std::fs::create_dir_all(&home).expect("home");
    std::fs::create_dir_all(&docker_config).expect("docker config");
    let p = port();
    let base = format!("http://127.0.0.1:{p}");
    let registry = format!("127.0.0.1:{p}");
    let child = Command::new(env!("CARGO_BIN_EXE_dtaas"))
        .args(["serve", "--listen", &format!("127.0.0.1:{p}")])
        .arg("--data-dir")
        .arg(&data)
        .env("DTAAS_CONFIG", "/dev/null")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn dtaas serve");
    let mut server = Server {
        child,
        images: Vec::new(),
    };
    let c = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    for _ in 0..400 {
        if let Ok(r) = c.get(format!("{base}/healthz")).send().await
            && r.status() == 200
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let v: serde_json::Value = c
        .post(format!("{base}/register"))
        .form(&[
            ("login", "bench"),
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
    c.get(format!("{base}/register/confirm/bench/{token}"))
        .send()
        .await
        .expect("confirm");

    // The client's profile (an API key made by `dtaas login`), in a home of its own; docker's
    // login with the password, in a config directory of its own.
    let dtaas = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dtaas"));
        cmd.args(args)
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("DTAAS_CONFIG", "/dev/null")
            .env_remove("DTAAS_URL")
            .env_remove("DTAAS_API_KEY")
            .env_remove("DTAAS_PROFILE");
        cmd
    };
    {
        use std::io::Write;
        let mut login = dtaas(&["login", &base, "-u", "bench", "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("dtaas login");
        login
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .expect("password");
        assert!(login.wait().expect("login").success(), "dtaas login");
        let mut docker_login = Command::new("docker")
            .args(["login", "-u", "bench", "--password-stdin", &registry])
            .env("DOCKER_CONFIG", &docker_config)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker login");
        docker_login
            .stdin
            .take()
            .expect("stdin")
            .write_all(PASSWORD.as_bytes())
            .expect("password");
        assert!(
            docker_login.wait().expect("docker login").success(),
            "docker login"
        );
    }

    println!(
        "client push benchmark: a {LAYER_MIB} MiB single-layer image (half random, half words), \
         {ROUNDS} rounds, release build, 127.0.0.1, {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let run_id = std::process::id();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut compressed = 0u64;
    for round in 0..ROUNDS {
        let image = format!("dtaas-bench-push-{run_id}-{round}:1");
        let tar = work.path().join("layer.tar");
        layer_tar(&tar, run_id as u64 * 100 + round as u64);
        run(
            Command::new("docker")
                .arg("import")
                .arg(&tar)
                .arg(&image)
                .env("DOCKER_CONFIG", &docker_config),
            "docker import",
        );
        let _ = std::fs::remove_file(&tar);
        server.images.push(image.clone());
        let theirs_tag = format!("{registry}/bench/docker-{run_id}-{round}:1");
        run(
            Command::new("docker")
                .args(["tag", &image, &theirs_tag])
                .env("DOCKER_CONFIG", &docker_config),
            "docker tag",
        );
        server.images.push(theirs_tag.clone());
        let ours_name = format!("bench/dtaas-{run_id}-{round}:1");
        let mut push_ours = || {
            let t = Instant::now();
            let out = dtaas(&["push", &image, "--name", &ours_name, "--json"])
                .output()
                .expect("dtaas push");
            let took = t.elapsed();
            assert!(
                out.status.success(),
                "dtaas push: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("push JSON");
            assert_eq!(v["layers"][0]["status"], "pushed", "{v}");
            compressed = v["sent"].as_u64().unwrap_or(0);
            took
        };
        let push_theirs = || {
            run(
                Command::new("docker")
                    .args(["push", &theirs_tag])
                    .env("DOCKER_CONFIG", &docker_config),
                "docker push",
            )
        };
        let (a, b) = if round % 2 == 0 {
            let a = push_ours();
            (a, push_theirs())
        } else {
            let b = push_theirs();
            (push_ours(), b)
        };
        println!(
            "  round {round}: dtaas push {:.2} s ({:.0} MiB/s), docker push {:.2} s ({:.0} MiB/s)",
            a.as_secs_f64(),
            mib_s(a),
            b.as_secs_f64(),
            mib_s(b)
        );
        ours.push(a);
        theirs.push(b);
    }
    let (a, b) = (median(ours), median(theirs));
    println!(
        "median: dtaas push {:.2} s ({:.0} MiB/s), docker push {:.2} s ({:.0} MiB/s)",
        a.as_secs_f64(),
        mib_s(a),
        b.as_secs_f64(),
        mib_s(b)
    );
    println!(
        "compressed layer (dtaas, gzip fast): {:.1} MiB",
        compressed as f64 / (1 << 20) as f64
    );
    println!(
        "ratio docker push / dtaas push: {:.2}x (target >= 1.0x)",
        b.as_secs_f64() / a.as_secs_f64()
    );
}
