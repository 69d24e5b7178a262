//! Schemathesis (from PyPI, installed by `tests/run.sh`) over the whole /v1 API, with every
//! check on: no 5xx, every status and body as the OpenAPI document states, requests the
//! document allows accepted and those it forbids refused, authentication enforced, what is
//! created readable and what is deleted gone.
//!
//! The fuzzed user owns a few objects made before the run (an image and its build, a finished
//! job with logs and a result, a registry repository with a tag, a prototype, a servable and
//! its instance, a trust), whose ids schemathesis draws
//! from a dictionary for ids and names, so that it reaches past "not found". Settings:
//! `tests/schemathesis.toml`; the manifest rules no schema can state: `tests/schemathesis_hooks.py`.
//!
//! `DTAAS_FUZZ_SEED` runs another seed (the one used is printed), `DTAAS_FUZZ_SECONDS` another
//! time bound.

use crate::harness::*;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// The seed when `DTAAS_FUZZ_SEED` does not give one: a fixed one, so that a failure can be
/// reproduced.
const DEFAULT_SEED: u64 = 20_261_201;

/// How long schemathesis fuzzes and runs stateful scenarios when `DTAAS_FUZZ_SECONDS` does not
/// say (its examples and coverage phases come first, within the same bound).
const DEFAULT_SECONDS: u64 = 150;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_failure_on_v1() {
    let Ok(schemathesis) = std::env::var("DTAAS_TEST_SCHEMATHESIS") else {
        panic!(
            "DTAAS_TEST_SCHEMATHESIS is not set: run the tests with tests/run.sh, which installs \
             schemathesis (pinned, from PyPI) in a cached virtual environment and sets it"
        );
    };
    let seed = env_number("DTAAS_FUZZ_SEED", DEFAULT_SEED);
    let seconds = env_number("DTAAS_FUZZ_SECONDS", DEFAULT_SECONDS);
    println!("schemathesis seed {seed} (DTAAS_FUZZ_SEED={seed} runs it again), {seconds} s");

    let server = TestServer::start().await;
    let k = server.kabuto("fuzz").await;
    let session = session_cookie(&server, &k.login).await;
    let seeds = seed_objects(&server, &k).await;

    // Schemathesis reads its settings and the seeds' dictionary from one directory, and keeps
    // its own files (Hypothesis' database, reports) in its working directory: a fresh one.
    let work = tempfile::tempdir().expect("a working directory");
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let config = work.path().join("schemathesis.toml");
    std::fs::copy(tests.join("schemathesis.toml"), &config).expect("copy schemathesis.toml");
    std::fs::write(work.path().join("seeds.dict"), dictionary(&seeds)).expect("seeds.dict");

    let run = tokio::process::Command::new(&schemathesis)
        .arg("--config-file")
        .arg(&config)
        .args(["--no-color", "run"])
        .arg(server.url("/v1/doc/openapi.json"))
        // One worker: Debian 12's Python (3.11.2) has a race between threads in its AST
        // constructor (CPython gh-106905, fixed in 3.11 by PR 113476 in December 2023) that
        // Hypothesis trips when two workers describe strategies at once ("AST constructor
        // recursion depth mismatch"): an error of the tool, not a finding.
        .args(["--checks", "all", "--workers", "1"])
        .args(["--max-time", &seconds.to_string()])
        .args(["--seed", &seed.to_string()])
        .env("DTAAS_FUZZ_SESSION", &session)
        .env("SCHEMATHESIS_HOOKS", tests.join("schemathesis_hooks.py"))
        .current_dir(work.path())
        .kill_on_drop(true)
        .output();
    // The phases before fuzzing, and the last requests, take their time beyond the bound.
    let out = tokio::time::timeout(Duration::from_secs(seconds + 300), run)
        .await
        .unwrap_or_else(|_| panic!("schemathesis did not finish within {seconds} s + 300 s"))
        .unwrap_or_else(|e| panic!("cannot run {schemathesis}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis failed (seed {seed}; DTAAS_FUZZ_SEED={seed} runs it again): {}\n{stdout}\n{stderr}",
        out.status
    );
    // A run that tested nothing would pass too.
    assert!(stdout.contains("Tested: 63"), "{stdout}\n{stderr}");
    println!("{stdout}");
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

/// The value of a fresh session cookie of `login` (schemathesis authenticates with it: see
/// `tests/schemathesis.toml`).
async fn session_cookie(server: &TestServer, login: &str) -> String {
    let r = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .post(server.url("/login"))
        .form(&[("login", login), ("password", PASSWORD)])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 200, "login of {login}");
    r.cookies()
        .find(|c| c.name() == "dtaas_session")
        .map(|c| c.value().to_owned())
        .expect("the session cookie")
}

/// What the fuzzed user owns before the run, by the names schemathesis may use for it.
struct Seeds {
    values: Vec<String>,
}

/// An image and its build, a finished job with logs and a result, a repository with the tag
/// `1`, a pipeline prototype (by id and `name:tag`), a servable of it with an instance that
/// ran, and a trust; the user's login and id too.
async fn seed_objects(server: &TestServer, k: &Kabuto) -> Seeds {
    let image = k.busybox().await;
    let pipeline = k.pipeline("fuzzed").await;
    let job = k
        .job(
            &pipeline,
            &image,
            "sh -c 'echo one; echo two; echo result > /outbox/out.txt'",
            &[],
        )
        .await;
    let (status, body) = k.submit(&pipeline).await;
    assert_eq!(status, 200, "{body}");
    let finished = k.wait_job(&pipeline, &job).await;
    assert_eq!(finished["state"], "done", "{finished}");

    let api = V1::new(server, k.c.clone());
    let name = unique("fuzzed");
    push_image(server, &k.login, None, &name, "1").await;
    let (status, body) = api
        .post(
            "/prototypes",
            json!({ &name: {"name": &name, "tag": "1", "type": "pipeline"} }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let prototype = body[0]["id"].as_str().expect("prototype id").to_owned();
    let (status, body) = api
        .post(
            "/servables",
            json!({"prototype": &prototype, "name": "fuzzed", "resources": small()}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let servable = body["id"].as_str().expect("servable id").to_owned();
    let (status, body) = api
        .post(&format!("/servables/{servable}/run"), json!({}))
        .await;
    assert_eq!(status, 201, "{body}");
    let instance = body["id"].as_str().expect("instance id").to_owned();
    let (status, body) = api.post("/trusts", json!({"name": "fuzzed"})).await;
    assert_eq!(status, 201, "{body}");
    let trust = body["id"].as_str().expect("trust id").to_owned();
    let (status, view) = api.get(&format!("/images/{image}")).await;
    assert_eq!(status, 200, "{view}");
    let build = view["last_build"].as_str().expect("build id").to_owned();
    let (status, found) = api.get(&format!("/repositories?name={name}")).await;
    assert_eq!(status, 200, "{found}");
    let repository = found[0]["id"].as_str().expect("repository id").to_owned();
    let (status, me) = api.get("/me").await;
    assert_eq!(status, 200, "{me}");
    let user = me["id"].as_str().expect("user id").to_owned();
    Seeds {
        values: vec![
            image,
            build,
            repository,
            "1".to_owned(),
            job,
            pipeline,
            prototype,
            format!("{name}:1"),
            servable,
            instance,
            trust,
            user,
            k.login.clone(),
            "everyone".to_owned(),
        ],
    }
}

/// The seeds as a dictionary file (libFuzzer's format: one quoted value a line).
fn dictionary(seeds: &Seeds) -> String {
    seeds
        .values
        .iter()
        .map(|v| format!("{}\n", serde_json::to_string(v).expect("a string")))
        .collect()
}
