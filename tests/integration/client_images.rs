//! The client's images (issue 13): `dtaas push`, `dtaas pull` and `dtaas upload`, the real
//! binary against a real server and the real engine, each run with a HOME and XDG directories
//! of its own. The client talks to the engine through its API only: the upload runs with no
//! docker CLI on its PATH. The docker CLI is used here only to make and check images.

use crate::client::Machine;
use crate::harness::*;
use serde_json::Value;
use std::path::Path;
use tempfile::TempDir;

/// Engine images a test made, removed when it ends (also when it fails).
struct Images(Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            let _ = std::process::Command::new("docker")
                .arg("rmi")
                .arg("-f")
                .args(&self.0)
                .output();
        }
    }
}

/// The docker CLI as a test uses it, with its own config directory.
async fn docker(config: &Path, args: &[&str]) -> String {
    let (ok, out) = docker_cli(config, args, None).await;
    assert!(ok, "docker {args:?}: {out}");
    out
}

/// The engine's id of an image.
async fn image_id(reference: &str) -> Option<String> {
    let docker = engine().client().await.unwrap();
    docker
        .inspect_image(reference)
        .await
        .ok()
        .and_then(|i| i.id)
}

#[tokio::test]
async fn push_then_docker_pull_then_pull_under_a_new_tag_and_run() {
    let server = TestServer::start().await;
    let (_, login) = v1_user(&server, "push").await;
    let me = Machine::new();
    me.login(None, &server.base, &login, &[]).await.assert_ok();
    base_image().await;
    let registry = server.addr.to_string();
    let docker_config = tempfile::tempdir().unwrap();
    let dc = docker_config.path();

    // A local image of its own (a layer no other test has), built from the base image.
    let name = unique("pushed");
    let local = format!("{name}:1");
    let stamp = unique("stamp-");
    let context = dockerfile_dir(&format!(
        "RUN echo {stamp} > /stamp\nCMD [\"cat\", \"/stamp\"]"
    ));
    let remote = format!("{registry}/{login}/{name}:1");
    let pulled = format!("{name}-pulled:2");
    let mut images = Images(vec![local.clone(), remote.clone(), pulled.clone()]);
    docker(
        dc,
        &[
            "build",
            "-q",
            "-t",
            &local,
            &context.path().to_string_lossy(),
        ],
    )
    .await;
    let id = image_id(&local).await.expect("the built image");

    // Pushed to <login>/<name>:1, the layer sent and the base layer too (a new repository).
    let ran = me.run(&["push", &local, "--json"], None).await;
    let pushed = ran.assert_ok().json();
    assert_eq!(pushed["name"], format!("{login}/{name}"));
    assert_eq!(pushed["tag"], "1");
    assert_eq!(pushed["reference"], remote);
    assert_eq!(pushed["config"], id);
    assert_eq!(pushed["already"], false);
    let layers = pushed["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "{pushed}");
    assert!(layers.iter().all(|l| l["status"] == "pushed"), "{pushed}");

    // The registry serves it: a schema-2 manifest naming the image's config.
    let r = client()
        .get(server.url(&format!("/v2/{login}/{name}/manifests/1")))
        .basic_auth(&login, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["docker-content-digest"].to_str().unwrap(),
        pushed["digest"].as_str().unwrap()
    );
    let manifest: Value = r.json().await.unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(manifest["config"]["digest"], id);
    assert_eq!(manifest["layers"][1]["digest"], layers[1]["digest"]);

    // Again: the tag holds it, nothing is sent. Under another name: the blobs are mounted
    // from the first repository (the layer cache remembers them), not sent.
    let again = me
        .run(&["push", &local, "--json"], None)
        .await
        .assert_ok()
        .json();
    assert_eq!(again["already"], true, "{again}");
    let ran = me
        .run(
            &["push", &local, "--name", &format!("{login}/copy:7")],
            None,
        )
        .await;
    ran.assert_ok();
    assert!(
        ran.stdout.contains("0 sent") && ran.stdout.contains("2 already there"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains(&format!("dtaas pull {login}/copy:7")),
        "{}",
        ran.stdout
    );

    // `docker pull` through the registry works, once the engine has forgotten the image's own
    // layer: docker checks every blob against the config's diff ids.
    docker(dc, &["rmi", &local]).await;
    assert_eq!(
        image_id(&id).await,
        None,
        "the image is gone from the engine"
    );
    let (ok, out) = docker_cli(
        dc,
        &["login", "-u", &login, "--password-stdin", &registry],
        Some(PASSWORD),
    )
    .await;
    assert!(ok, "docker login: {out}");
    docker(dc, &["pull", &remote]).await;
    let out = docker(dc, &["run", "--rm", &remote]).await;
    assert!(out.contains(&stamp), "{out}");
    docker(dc, &["rmi", &remote]).await;
    assert_eq!(image_id(&id).await, None);

    // `dtaas pull` loads it into the engine under the tag asked for, and it runs.
    let ran = me
        .run_without_docker_cli(&["pull", &format!("{login}/{name}:1"), "--tag", &pulled])
        .await;
    ran.assert_ok();
    assert!(
        ran.stdout.contains(&format!("as {pulled}")),
        "{}",
        ran.stdout
    );
    assert_eq!(image_id(&pulled).await.as_deref(), Some(id.as_str()));
    let out = docker(dc, &["run", "--rm", &pulled]).await;
    assert!(out.contains(&stamp), "{out}");

    // A name without its namespace is found in the caller's; the default tag is docker's.
    let ran = me
        .run(&["pull", &format!("{name}:1"), "--json"], None)
        .await;
    let v = ran.assert_ok().json();
    assert_eq!(v["already"], true, "{v}");
    assert_eq!(v["image"], remote);
    assert_eq!(image_id(&remote).await.as_deref(), Some(id.as_str()));

    // What is not there says so.
    let ran = me.run(&["pull", &format!("{login}/nothing:1")], None).await;
    assert!(!ran.ok);
    assert!(
        ran.stderr.contains("is not in the registry"),
        "{}",
        ran.stderr
    );
    let ran = me.run(&["push", &format!("{name}-missing:1")], None).await;
    assert!(!ran.ok);
    assert!(ran.stderr.contains("has no image"), "{}", ran.stderr);
    images.0.push(id);
}

/// examples/hello in a directory of its own, its tags made unique to the run (the engine's
/// `hello-*:TAG` images are shared by everything on this machine).
fn hello_project(tag: &str) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello");
    copy_dir(&src, dir.path());
    let file = dir.path().join("MANIFEST.json");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("\"tag\": \"1\"", &format!("\"tag\": \"{tag}\""));
    std::fs::write(&file, text).unwrap();
    dir
}

#[tokio::test]
async fn upload_of_hello_builds_pushes_and_registers_then_skips_everything() {
    let server = TestServer::start().await;
    let (api, login) = v1_user(&server, "upl").await;
    let me = Machine::new();
    me.login(None, &server.base, &login, &[]).await.assert_ok();
    base_image().await;
    let tag = unique("t");
    let project = hello_project(&tag);
    let _images = Images(HELLO_PARTS.iter().map(|p| format!("{p}:{tag}")).collect());
    for p in HELLO_PARTS {
        assert_eq!(image_id(&format!("{p}:{tag}")).await, None);
    }
    let dir = project.path().to_string_lossy().to_string();

    // From nothing: each image built by the engine, pushed, then the manifest registered.
    let ran = me.run_without_docker_cli(&["upload", &dir, "--json"]).await;
    let v = ran.assert_ok().json();
    let images = v["images"].as_array().unwrap();
    assert_eq!(images.len(), 3, "{v}");
    // Dependency order: the daemon before the app before the pipeline.
    let order: Vec<&str> = images
        .iter()
        .map(|i| i["prototype"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        HELLO_PARTS
            .map(|p| format!("{p}:{tag}"))
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    for image in images {
        assert_eq!(image["built"], true, "{image}");
        assert_eq!(image["status"], "pushed", "{image}");
        assert!(
            image["reference"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{}/{login}/hello-", server.addr)),
            "{image}"
        );
    }
    assert_eq!(v["registered"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(v["already_registered"], serde_json::json!([]));
    for p in HELLO_PARTS {
        assert!(image_id(&format!("{p}:{tag}")).await.is_some(), "{p} built");
    }
    let (status, listed) = api.get("/prototypes").await;
    assert_eq!(status, 200, "{listed}");
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 3);
    for p in HELLO_PARTS {
        let found = listed
            .iter()
            .find(|x| x["name"] == p)
            .unwrap_or_else(|| panic!("{p} registered: {listed:?}"));
        assert_eq!(found["tag"], tag.as_str());
        assert_eq!(found["image"], format!("{login}/{p}:{tag}"));
    }
    let app = listed.iter().find(|x| x["name"] == "hello-app").unwrap();
    let daemon = listed.iter().find(|x| x["name"] == "hello-daemon").unwrap();
    assert_eq!(app["dependencies"]["hello-daemon"], daemon["id"]);

    // Again: every image is in the registry, every prototype registered: nothing to do.
    let ran = me.run_without_docker_cli(&["upload", &dir, "--json"]).await;
    let v = ran.assert_ok().json();
    for image in v["images"].as_array().unwrap() {
        assert_eq!(image["status"], "present", "{image}");
        assert_eq!(image["built"], false, "{image}");
        assert!(image.get("push").is_none(), "{image}");
    }
    assert_eq!(v["registered"], serde_json::json!([]));
    assert_eq!(v["already_registered"].as_array().unwrap().len(), 3);
    let ran = me.run_without_docker_cli(&["upload", &dir]).await;
    ran.assert_ok();
    assert!(
        ran.stdout
            .contains("were registered already: nothing to do"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("already in the registry"),
        "{}",
        ran.stdout
    );
    let (_, listed) = api.get("/prototypes").await;
    assert_eq!(listed.as_array().unwrap().len(), 3);

    // A prototype registered with other settings is not changed in place.
    let file = project.path().join("MANIFEST.json");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("\"volume_size\": 1", "\"volume_size\": 2");
    std::fs::write(&file, text).unwrap();
    let ran = me.run_without_docker_cli(&["upload", &dir]).await;
    assert!(!ran.ok);
    assert!(
        ran.stderr.contains(&format!(
            "hello-daemon:{tag} is registered already with another arguments"
        )) && ran.stderr.contains("new tag"),
        "{}",
        ran.stderr
    );
}

/// Seed 000's walkthrough as the README tells it, with the client only: login, export (the
/// later commands run on the exported variables alone, no profile), upload, run the pipeline,
/// follow its log, find the app and reach it through the proxy.
#[tokio::test]
async fn the_seed_000_walkthrough_with_the_client() {
    let server = TestServer::start().await;
    let (_, login) = v1_user(&server, "walk").await;
    let me = Machine::new();
    me.login(None, &server.base, &login, &[]).await.assert_ok();
    base_image().await;
    let tag = unique("w");
    let project = hello_project(&tag);
    // The pipeline's script names the prototypes it deploys: the same tag.
    let script = project.path().join("hello-pipeline/pipeline.sh");
    let text = std::fs::read_to_string(&script)
        .unwrap()
        .replace("hello-daemon:1", &format!("hello-daemon:{tag}"))
        .replace("hello-app:1", &format!("hello-app:{tag}"));
    std::fs::write(&script, text).unwrap();
    let _images = Images(HELLO_PARTS.iter().map(|p| format!("{p}:{tag}")).collect());

    // eval "$(dtaas export)": the variables, without the profile file.
    let exported = me.run(&["export"], None).await.assert_ok().stdout.clone();
    let vars: Vec<(String, String)> = exported
        .trim()
        .strip_prefix("export ")
        .unwrap()
        .split(' ')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.trim_matches('\'').to_owned())
        })
        .collect();
    let key = vars
        .iter()
        .find(|(k, _)| k == "DTAAS_API_KEY")
        .map(|(_, v)| v.clone())
        .unwrap();
    let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let shell = Machine::new();
    let run = |args: Vec<String>| {
        let env = env.clone();
        let shell = &shell;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            shell.run_env(&args, None, &env).await
        }
    };
    let dir = project.path().to_string_lossy().into_owned();
    let ran = run(vec!["upload".into(), dir]).await;
    assert!(
        ran.assert_ok().stdout.contains("Registered"),
        "{}",
        ran.stdout
    );

    let small = serde_json::json!({"cpu_cores": 0.5, "ram": 64}).to_string();
    run(vec![
        "servable".into(),
        "create".into(),
        format!("hello-pipeline:{tag}"),
        "--resources".into(),
        small,
    ])
    .await
    .assert_ok();
    let started = run(vec![
        "servable".into(),
        "run".into(),
        "hello-pipeline".into(),
    ])
    .await;
    assert!(
        started.assert_ok().stdout.starts_with("Started instance"),
        "{}",
        started.stdout
    );
    let logs = run(vec![
        "servable".into(),
        "logs".into(),
        "-f".into(),
        "hello-pipeline".into(),
    ])
    .await;
    assert!(
        logs.assert_ok().stdout.contains("app servable"),
        "{}",
        logs.stdout
    );
    assert!(
        logs.stderr.contains("(instance ended: exited)"),
        "{}",
        logs.stderr
    );

    // The app, found by its type, answers through the proxy with the exported key.
    let apps = run(vec![
        "list".into(),
        "servables".into(),
        "--type".into(),
        "app".into(),
        "--json".into(),
    ])
    .await
    .assert_ok()
    .json();
    assert_eq!(apps.as_array().unwrap().len(), 1, "{apps}");
    let url = apps[0]["url"].as_str().unwrap().to_owned();
    let host = format!("{}.localhost", apps[0]["id"].as_str().unwrap());
    let by_host = reqwest::Client::builder()
        .no_proxy()
        .resolve(&host, server.addr)
        .build()
        .unwrap();
    let (status, body) = crate::servables::fetch_app(&by_host, &url, Some(&key), 30).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "The Daemon says, Hello, DTaaS!")
    );
    for name in ["hello-app", "hello-daemon", "hello-pipeline"] {
        run(vec!["servable".into(), "delete".into(), name.into()])
            .await
            .assert_ok();
    }
}

#[tokio::test]
async fn a_failing_build_registers_nothing_and_the_fixed_upload_skips_what_went_up() {
    let server = TestServer::start().await;
    let (api, login) = v1_user(&server, "fail").await;
    let me = Machine::new();
    me.login(None, &server.base, &login, &[]).await.assert_ok();
    base_image().await;
    let tag = unique("t");
    let project = tempfile::tempdir().unwrap();
    let p = project.path();
    for (dir, body) in [
        ("good", "CMD [\"true\"]"),
        ("broken", "RUN echo about to fail && false"),
    ] {
        std::fs::create_dir_all(p.join(dir)).unwrap();
        std::fs::write(
            p.join(dir).join("Dockerfile"),
            format!("FROM {}\n{body}\n", dtaas::engine::BASE_IMAGE),
        )
        .unwrap();
    }
    std::fs::write(
        p.join("MANIFEST"),
        serde_json::json!({
            "good": {"name": "good", "tag": tag, "type": "daemon", "context": "good",
                     "dependencies": {}, "arguments": {"volume_location": "/data", "volume_size": 1},
                     "capabilities": {}, "config-capabilities": {}},
            "broken": {"name": "broken", "tag": tag, "type": "pipeline",
                       "dockerfile": "broken/Dockerfile", "context": "broken",
                       "dependencies": {"good": "good"}, "arguments": {},
                       "capabilities": {"good": ["CREATE", "READ"]}, "config-capabilities": {}},
        })
        .to_string(),
    )
    .unwrap();
    let _images = Images(vec![format!("good:{tag}"), format!("broken:{tag}")]);
    let dir = p.to_string_lossy().to_string();

    let ran = me.run_without_docker_cli(&["upload", &dir]).await;
    assert!(!ran.ok, "{}", ran.stdout);
    assert_eq!(ran.code, Some(1));
    for needle in [
        "nothing was registered: 1 of 2 images failed",
        &format!("broken:{tag}: building broken:{tag} failed"),
        "about to fail",
        "run dtaas upload again",
    ] {
        assert!(ran.stderr.contains(needle), "{needle:?} in {}", ran.stderr);
    }
    let (status, listed) = api.get("/prototypes").await;
    assert_eq!(status, 200);
    assert_eq!(listed, serde_json::json!([]), "nothing registered");

    // Fixed: the good image went up the first time and is skipped; the other is built, pushed,
    // and both are registered.
    std::fs::write(
        p.join("broken").join("Dockerfile"),
        format!("FROM {}\nCMD [\"true\"]\n", dtaas::engine::BASE_IMAGE),
    )
    .unwrap();
    let v = me
        .run_without_docker_cli(&["upload", &dir, "--json"])
        .await
        .assert_ok()
        .json();
    let status_of = |p: &str| {
        v["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["prototype"] == format!("{p}:{tag}"))
            .map(|i| (i["status"].clone(), i["built"].clone()))
            .unwrap()
    };
    assert_eq!(status_of("good"), ("present".into(), false.into()), "{v}");
    assert_eq!(status_of("broken"), ("pushed".into(), true.into()), "{v}");
    assert_eq!(v["registered"].as_array().unwrap().len(), 2, "{v}");
    let (_, listed) = api.get("/prototypes").await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
}
