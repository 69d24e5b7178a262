//! The Python SDK (issue 15), against a real server and the real engine: its pytest suite
//! (`sdk/python/tests`, run with Debian's `/usr/bin/python3 -m pytest`), and the seed's hello
//! example in Python (`examples/hello-python`) uploaded with the client and run with
//! `python3 run-pipeline.py`, its app answering through the proxy.
//!
//! Both need the Python base image `dtaas/python:bookworm`, made here from Debian packages by
//! `examples/python-base/build.sh` (once per run; its root file system is cached under
//! `~/.cache/dtaas-tests/`), and python3-pytest, python3-requests and mmdebstrap (tests/run.sh
//! installs them).

use crate::client::Machine;
use crate::harness::*;
use dtaas::engine::registry_sync::engine_tag;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Debian's Python: what the SDK is tested with (not another `python3` on PATH).
const PYTHON: &str = "/usr/bin/python3";

/// The image `examples/python-base/build.sh` makes.
const PYTHON_IMAGE: &str = "dtaas/python:bookworm";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Builds the Python base image, once per test process (the script does nothing when the image
/// is up to date, and waits for another run of itself).
pub(crate) async fn python_base_image() -> &'static str {
    static READY: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    READY
        .get_or_init(|| async {
            let out = tokio::process::Command::new("bash")
                .arg(repo().join("examples/python-base/build.sh"))
                .output()
                .await
                .expect("run examples/python-base/build.sh");
            assert!(
                out.status.success(),
                "examples/python-base/build.sh failed (are mmdebstrap and Docker there?):\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        })
        .await;
    PYTHON_IMAGE
}

/// Debian's python3 with nothing of the test run's environment: its own HOME (no profile file
/// of the machine), no `DTAAS_*` but those given, no proxies, the checkout's SDK on its path,
/// and no byte code written into the checkout.
fn python(home: &Path, env: &[(&str, &str)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(PYTHON);
    cmd.env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        )
        .env("HOME", home)
        .env("LANG", "C.UTF-8")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONPATH", repo().join("sdk/python"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs `cmd` for at most `secs`; its exit status and output.
async fn finish(mut cmd: tokio::process::Command, secs: u64) -> (bool, String, String) {
    let child = cmd.spawn().expect("spawn /usr/bin/python3");
    let out = tokio::time::timeout(Duration::from_secs(secs), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("python3 did not finish in {secs} s"))
        .expect("python3 output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Engine images a test made, removed when it ends (also when it fails): what it built, and
/// the engine's copies of the registry's images its servables ran (`dtaas/registry/...`, which
/// carry no installation label for the harness's cleanup to find).
struct LocalImages(Vec<String>);

impl Drop for LocalImages {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .arg("rmi")
            .arg("-f")
            .args(&self.0)
            .output();
    }
}

/// The test images of `sdk/python/tests/images`: the busybox one under the names of
/// `conftest.BUSYBOX`, the SDK probe on the Python base.
const BUSYBOX_NAMES: [&str; 8] = [
    "sdk-app",
    "sdk-asker",
    "sdk-daemon",
    "sdk-dataset",
    "sdk-model",
    "sdk-report",
    "sdk-pipeline",
    "sdk-spare",
];

/// Every servable and prototype of a user, to check that the tests left none behind.
async fn leftovers(api: &V1) -> (Vec<Value>, Vec<Value>) {
    let (status, servables) = api.get("/servables").await;
    assert_eq!(status, 200, "{servables}");
    let (status, prototypes) = api.get("/prototypes").await;
    assert_eq!(status, 200, "{prototypes}");
    (
        servables.as_array().cloned().unwrap_or_default(),
        prototypes.as_array().cloned().unwrap_or_default(),
    )
}

/// `sdk/python/tests` against a real server with two users: every SDK call, the mapping of
/// errors, the credentials of the environment, of the CLI's profile file, of `dtaas.login`,
/// and inside a servable (the probe image). The tests delete what they make.
#[tokio::test]
async fn the_python_sdk_passes_its_tests_against_a_real_server() {
    let server = TestServer::start().await;
    let (alice, login) = v1_user(&server, "pysdk").await;
    let (bob, other_login) = v1_user(&server, "pyother").await;
    python_base_image().await;
    let tag = unique("s");
    let _copies = LocalImages(
        BUSYBOX_NAMES
            .iter()
            .chain(&["sdk-probe"])
            .map(|name| engine_tag(name, &tag))
            .collect(),
    );
    let images = repo().join("sdk/python/tests/images");
    for name in BUSYBOX_NAMES {
        push_image(&server, &login, Some(&images.join("busybox")), name, &tag).await;
    }
    push_image(
        &server,
        &login,
        Some(&images.join("probe")),
        "sdk-probe",
        &tag,
    )
    .await;
    let key = alice.new_key().await;
    let other_key = bob.new_key().await;

    let home = tempfile::tempdir().unwrap();
    let mut cmd = python(
        home.path(),
        &[
            ("DTAAS_URL", &server.base),
            ("DTAAS_API_KEY", &key),
            ("DTAAS_TEST_LOGIN", &login),
            ("DTAAS_TEST_PASSWORD", PASSWORD),
            ("DTAAS_TEST_OTHER_LOGIN", &other_login),
            ("DTAAS_TEST_OTHER_KEY", &other_key),
            ("DTAAS_TEST_TAG", &tag),
            ("DTAAS_TEST_CLI", env!("CARGO_BIN_EXE_dtaas")),
        ],
    );
    cmd.current_dir(repo()).args([
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        "sdk/python",
        "sdk/python/tests",
    ]);
    let (ok, stdout, stderr) = finish(cmd, 900).await;
    assert!(ok, "pytest sdk/python/tests failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(" passed"), "{stdout}");
    assert!(
        !stdout.contains(" skipped"),
        "no test may be skipped: {stdout}"
    );

    // What the tests made, they deleted.
    for api in [&alice, &bob] {
        let (servables, prototypes) = leftovers(api).await;
        assert_eq!(servables, Vec::<Value>::new(), "servables left behind");
        assert_eq!(prototypes, Vec::<Value>::new(), "prototypes left behind");
    }
}

/// Replaces `from` by `to` in a file of the project, which must hold it.
fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{} lacks {from:?}", file.display());
    std::fs::write(file, text.replace(from, to)).unwrap();
}

/// examples/hello-python in a directory of its own, its tag `1` made unique to the run
/// everywhere it is named (the engine's `hello-*:TAG` images are shared by the machine).
fn hello_python_project(tag: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("examples/hello-python"), dir.path());
    let p = dir.path();
    edit(
        &p.join("MANIFEST.json"),
        "\"tag\": \"1\"",
        &format!("\"tag\": \"{tag}\""),
    );
    let pipeline = p.join("hello-pipeline/hello-pipeline.py");
    edit(
        &pipeline,
        "\"hello-daemon:1\"",
        &format!("\"hello-daemon:{tag}\""),
    );
    edit(
        &pipeline,
        "\"hello-app:1\"",
        &format!("\"hello-app:{tag}\""),
    );
    edit(
        &p.join("run-pipeline.py"),
        "\"hello-pipeline:1\"",
        &format!("\"hello-pipeline:{tag}\""),
    );
    dir
}

/// The id and URL of an output line of run-pipeline.py: `<what>: <id> <url>`.
fn app_line<'a>(stdout: &'a str, what: &str) -> (&'a str, &'a str) {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(what))
        .unwrap_or_else(|| panic!("no {what:?} line in run-pipeline.py's output:\n{stdout}"));
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (Some(id), Some(url)) => (id, url),
        _ => panic!("{what:?} line without id and url: {line:?}"),
    }
}

/// Seed 000's example as the seed tells it, in Python with the SDK: `dtaas upload` builds the
/// three images on the Python base and registers them, `python3 run-pipeline.py` on the host
/// (with the variables of `dtaas export`) runs the pipeline, which deploys the daemon and the
/// app with the SDK from inside; the app is found in the pipeline's outputs and through
/// `App.list()`, and its `url` answers with the daemon's text through the proxy.
#[tokio::test]
async fn the_python_hello_example_runs_with_the_sdk_through_the_proxy() {
    let server = TestServer::start().await;
    let (_, login) = v1_user(&server, "pyhello").await;
    let me = Machine::new();
    me.login(None, &server.base, &login, &[]).await.assert_ok();
    python_base_image().await;
    let tag = unique("py");
    let project = hello_python_project(&tag);
    let _images = LocalImages(
        HELLO_PARTS
            .iter()
            .flat_map(|p| {
                [
                    format!("{p}:{tag}"),
                    engine_tag(&format!("{login}/{p}"), &tag),
                ]
            })
            .collect(),
    );

    // eval "$(dtaas export)"
    let exported = me.run(&["export", "--json"], None).await.assert_ok().json();
    let vars: Vec<(String, String)> = exported
        .as_object()
        .expect("export --json is an object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let key = vars
        .iter()
        .find(|(k, _)| k == "DTAAS_API_KEY")
        .map(|(_, v)| v.clone())
        .expect("DTAAS_API_KEY exported");

    // dtaas upload: the images built by the engine from the Python base, pushed, registered.
    let dir = project.path().to_string_lossy().into_owned();
    let uploaded = me.run_env(&["upload", &dir, "--json"], None, &env).await;
    let uploaded = uploaded.assert_ok().json();
    assert_eq!(
        uploaded["registered"].as_array().map(Vec::len),
        Some(3),
        "{uploaded}"
    );

    // python3 run-pipeline.py, on the exported variables alone.
    let home = tempfile::tempdir().unwrap();
    let mut cmd = python(home.path(), &env);
    cmd.current_dir(project.path()).arg("run-pipeline.py");
    let (ok, stdout, stderr) = finish(cmd, 300).await;
    assert!(ok, "run-pipeline.py failed:\n{stdout}\n{stderr}");
    let (id, url) = app_line(&stdout, "app in the pipeline's outputs:");
    let listed = app_line(&stdout, "app from App.list():");
    assert_eq!((id, url), listed, "{stdout}");
    assert_eq!(
        url,
        format!("http://{id}.localhost:{}/", server.addr.port()),
        "{stdout}"
    );

    // The app's url through the proxy (Host `<id>.localhost`, resolved to the server), with
    // the exported key.
    let host = format!("{id}.localhost");
    let by_host = reqwest::Client::builder()
        .no_proxy()
        .resolve(&host, server.addr)
        .build()
        .unwrap();
    let (status, body) = crate::servables::fetch_app(&by_host, url, Some(&key), 60).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "The Daemon says, Hello, DTaaS!")
    );

    // The pipeline, the daemon and the app, deleted.
    let api = V1::with_key(&server, &key);
    let (servables, _) = leftovers(&api).await;
    assert_eq!(servables.len(), 3, "{servables:?}");
    for s in &servables {
        let (status, body) = api
            .delete(&format!("/servables/{}", s["id"].as_str().unwrap()))
            .await;
        assert_eq!(status, 204, "{body}");
    }
    assert_eq!(leftovers(&api).await.0, Vec::<Value>::new());
}
