//! Servables end to end (issue 5): the seed's hello example through the proxy, delegation,
//! resources and volumes on the real engine, and recovery after a SIGKILL of the server.

use crate::harness::*;
use serde_json::{Value, json};
use std::time::Duration;

const HELLO: &str = "The Daemon says, Hello, DTaaS!";

fn hello_manifest() -> Value {
    let text =
        std::fs::read_to_string(example("MANIFEST.json")).expect("examples/hello/MANIFEST.json");
    serde_json::from_str(&text).expect("the manifest is JSON")
}

/// `docker inspect` of a container, as JSON.
async fn inspect(container: &str) -> Value {
    let out = tokio::process::Command::new("docker")
        .args(["inspect", container])
        .output()
        .await
        .expect("docker inspect");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    list[0].clone()
}

async fn docker_exec(container: &str, cmd: &[&str]) -> String {
    let out = tokio::process::Command::new("docker")
        .arg("exec")
        .arg(container)
        .args(cmd)
        .output()
        .await
        .expect("docker exec");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fetches `url` until the app answers 200 (it may still be starting) or `secs` pass.
pub(crate) async fn fetch_app(
    c: &reqwest::Client,
    url: &str,
    auth: Option<&str>,
    secs: u64,
) -> (u16, String) {
    let mut last = (0, String::new());
    for _ in 0..secs * 4 {
        let mut r = c.get(url);
        if let Some(key) = auth {
            r = r.bearer_auth(key);
        }
        if let Ok(r) = r.send().await {
            last = (r.status().as_u16(), r.text().await.unwrap_or_default());
            if last.0 == 200 {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    last
}

#[tokio::test]
async fn the_hello_example_runs_end_to_end_through_the_proxy() {
    let server = TestServer::start().await;
    let (alice, login) = v1_user(&server, "hello").await;
    for part in ["hello-daemon", "hello-app", "hello-pipeline"] {
        push_image(&server, &login, Some(&example(part)), part, "1").await;
    }
    let (status, prototypes) = alice.post("/prototypes", hello_manifest()).await;
    assert_eq!(status, 201, "{prototypes}");
    assert_eq!(prototypes.as_array().map(Vec::len), Some(3));

    // The user runs the pipeline; it creates and runs the daemon and the app.
    let (status, pipeline) = alice
        .post(
            "/servables",
            json!({"prototype": "hello-pipeline:1", "name": "hello-pipeline", "config": {}, "resources": small()}),
        )
        .await;
    assert_eq!(status, 201, "{pipeline}");
    assert_eq!(pipeline["type"], "pipeline");
    let (status, run) = alice
        .post(
            &format!("/servables/{}/run", pipeline["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(status, 201, "{run}");
    let instance = run["id"].as_str().unwrap().to_owned();
    let done = wait_instance(&alice, &instance, 120, |i| {
        !matches!(i["state"].as_str(), Some("starting" | "running"))
    })
    .await;
    let (_, logs) = alice.get(&format!("/instances/{instance}/logs")).await;
    assert_eq!(done["state"], "exited", "{done}\nlogs: {logs}");
    assert_eq!(done["exit_code"], 0);

    // Its outputs list the daemon and the app it created.
    let outputs = done["outputs"].as_array().expect("outputs");
    let servable_named = |name: &str| {
        outputs
            .iter()
            .find(|o| o["kind"] == "servable" && o["name"] == name)
            .and_then(|o| o["id"].as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no servable {name} in outputs: {done}"))
    };
    let daemon = servable_named("hello-daemon");
    let app = servable_named("hello-app");

    // The servables belong to the user, who sees them and their instances.
    let (status, app_view) = alice.get(&format!("/servables/{app}")).await;
    assert_eq!(status, 200, "{app_view}");
    assert_eq!(app_view["type"], "app");
    assert_eq!(app_view["access_control"], true);
    let (status, daemon_view) = alice.get(&format!("/servables/{daemon}")).await;
    assert_eq!(status, 200, "{daemon_view}");
    assert_eq!(daemon_view["volume"]["location"], "/data");
    assert!(
        daemon_view["url"].is_null(),
        "daemons are not behind the proxy"
    );
    let daemon_instance = daemon_view["current_instance"].as_str().unwrap().to_owned();
    let (_, di) = alice.get(&format!("/instances/{daemon_instance}")).await;
    assert_eq!(di["state"], "running", "{di}");
    assert!(
        di["ipv4_address"].as_str().is_some_and(|ip| !ip.is_empty()),
        "{di}"
    );

    // The app's config capability on the daemon's instance was delegated (the pipeline held it).
    let (status, requests) = alice
        .get(&format!("/delegation-requests?servable={app}"))
        .await;
    assert_eq!(status, 200, "{requests}");
    let requests = requests.as_array().expect("requests");
    assert!(
        requests
            .iter()
            .any(|r| r["object"] == daemon_instance.as_str() && r["state"] == "granted"),
        "{requests:?}"
    );

    // The path form, with the user's session cookie.
    let path_url = app_view["path_url"].as_str().expect("path_url");
    let (status, body) = fetch_app(&alice.c, path_url, None, 30).await;
    assert_eq!((status, body.as_str()), (200, HELLO));

    // The host form, `<id>.localhost`, with an API key.
    let key = alice.new_key().await;
    let host = format!("{app}.localhost");
    let by_host = reqwest::Client::builder()
        .no_proxy()
        .resolve(&host, server.addr)
        .build()
        .unwrap();
    let url = app_view["url"].as_str().expect("url").to_owned();
    assert_eq!(url, format!("http://{host}:{}/", server.addr.port()));
    let (status, body) = fetch_app(&by_host, &url, Some(&key), 10).await;
    assert_eq!((status, body.as_str()), (200, HELLO));

    // Another user: not found in both forms.
    let (bob, _) = v1_user(&server, "bob").await;
    let r = bob.c.get(path_url).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let bob_key = bob.new_key().await;
    let r = by_host
        .get(&url)
        .bearer_auth(&bob_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Granted REQUEST, bob gets through.
    let (status, _) = alice
        .post(
            &format!("/objects/{app}/access"),
            json!({"principal": bob_key_owner(&bob).await, "capabilities": ["REQUEST"]}),
        )
        .await;
    assert_eq!(status, 200);
    let r = by_host
        .get(&url)
        .bearer_auth(&bob_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // No credentials: a browser is sent to log in, a script gets 401.
    let anonymous = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = anonymous
        .get(path_url)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/login?next="), "{location}");
    let r = anonymous.get(path_url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // The login page logs the browser in and returns it to the app.
    let page = anonymous.get(server.url(&location)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("name=\"password\""));
}

/// The id of the user behind a client (for grants).
async fn bob_key_owner(api: &V1) -> String {
    let (_, me) = api.get("/me").await;
    me["id"].as_str().expect("id").to_owned()
}

/// Registers a one-prototype manifest on an image built from `dockerfile` (on the base image).
async fn prototype(
    server: &TestServer,
    api: &V1,
    login: &str,
    name: &str,
    kind: &str,
    dockerfile: &str,
    extra: Value,
) {
    let dir = dockerfile_dir(dockerfile);
    push_image(server, login, Some(dir.path()), name, "1").await;
    let mut entry = json!({"name": name, "tag": "1", "type": kind});
    if let (Some(e), Some(x)) = (entry.as_object_mut(), extra.as_object()) {
        e.extend(x.clone());
    }
    let (status, body) = api.post("/prototypes", json!({ name: entry })).await;
    assert_eq!(status, 201, "{body}");
}

async fn create(api: &V1, prototype: &str, config: Value, resources: Value) -> String {
    let (status, body) = api
        .post(
            "/servables",
            json!({"prototype": format!("{prototype}:1"), "name": prototype, "config": config, "resources": resources}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn run(api: &V1, servable: &str) -> Value {
    let (status, body) = api
        .post(&format!("/servables/{servable}/run"), json!({}))
        .await;
    assert_eq!(status, 201, "{body}");
    body
}

/// The key the server mounted into a servable's container (read from the data directory).
fn mounted_key(server: &TestServer, servable: &str) -> String {
    std::fs::read_to_string(
        server
            .data_dir()
            .join("servables")
            .join(servable)
            .join("secrets/api-key"),
    )
    .expect("the mounted key")
}

#[tokio::test]
async fn delegation_is_granted_requested_resolved_and_refused() {
    let server = TestServer::start().await;
    let (alice, login) = v1_user(&server, "deleg").await;
    let (bob, _) = v1_user(&server, "owner").await;
    let alice_id = bob_key_owner(&alice).await;
    let (_, own) = alice.post("/trusts", json!({"name": "alice's"})).await;
    let (_, theirs) = bob.post("/trusts", json!({"name": "bob's"})).await;
    let (_, other) = bob.post("/trusts", json!({"name": "bob's other"})).await;
    let [own, theirs, other] =
        [&own, &theirs, &other].map(|t| t["id"].as_str().unwrap().to_owned());
    prototype(
        &server,
        &alice,
        &login,
        "reader",
        "daemon",
        "CMD [\"sleep\", \"3600\"]",
        json!({
            "arguments": {"volume_location": "/data", "volume_size": 1},
            "config-capabilities": {"mine": ["READ"], "theirs": ["READ"], "other": ["READ"]},
        }),
    )
    .await;
    let servable = create(
        &alice,
        "reader",
        json!({"mine": own, "theirs": theirs, "other": other}),
        small(),
    )
    .await;
    let instance = run(&alice, &servable).await;
    assert_eq!(instance["state"], "running", "{instance}");

    let (status, requests) = alice
        .get(&format!("/delegation-requests?servable={servable}"))
        .await;
    assert_eq!(status, 200);
    let find = |object: &str| {
        requests
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["object"] == object)
            .cloned()
            .unwrap_or_else(|| panic!("no request for {object}: {requests}"))
    };
    // Alice holds READ on her own trust: granted at once.
    let automatic = find(&own);
    assert_eq!(automatic["state"], "granted");
    assert_eq!(automatic["automatic"], true);
    // She holds nothing on bob's: requested from her.
    let pending = find(&theirs);
    assert_eq!(pending["state"], "pending");
    assert_eq!(pending["requested_from"], alice_id.as_str());
    let refused = find(&other);

    let key = mounted_key(&server, &servable);
    let inside = V1::with_key(&server, &key);
    let (status, _) = inside.get(&format!("/trusts/{own}")).await;
    assert_eq!(status, 200, "the servable reads what was delegated");
    let (status, _) = inside.get(&format!("/trusts/{theirs}")).await;
    assert_eq!(status, 404, "nothing pending is granted");

    // A servable never gets more than its runner holds: alice cannot grant what she lacks.
    let grant = format!(
        "/delegation-requests/{}/grant",
        pending["id"].as_str().unwrap()
    );
    let (status, body) = alice.post(&grant, json!({})).await;
    assert_eq!(status, 403, "{body}");
    // Once bob shares it with alice, she can.
    let (status, _) = bob
        .post(
            &format!("/objects/{theirs}/access"),
            json!({"principal": alice_id, "capabilities": ["READ"]}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = alice.post(&grant, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "granted");
    let (status, _) = inside.get(&format!("/trusts/{theirs}")).await;
    assert_eq!(status, 200, "granted after resolution");
    // The servable reads the outcome of its own request.
    let (status, seen) = inside
        .get(&format!(
            "/delegation-requests/{}",
            pending["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(seen["state"], "granted");

    // Refused: stays out of reach; resolving it the other way is a conflict.
    let refuse = format!(
        "/delegation-requests/{}/refuse",
        refused["id"].as_str().unwrap()
    );
    let (status, body) = alice.post(&refuse, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "refused");
    let (status, _) = alice
        .post(
            &format!(
                "/delegation-requests/{}/grant",
                refused["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(status, 409);
    let (status, _) = inside.get(&format!("/trusts/{other}")).await;
    assert_eq!(status, 404);
    // Bob (not the runner) cannot see alice's requests at all.
    let (status, _) = bob.get(&grant.replace("/grant", "")).await;
    assert_eq!(status, 404);

    // Stopping revokes the instance's key.
    let (status, stopped) = alice
        .post(
            &format!("/instances/{}/stop", instance["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(stopped["state"], "stopped");
    let (status, _) = inside.get("/me").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn resources_reach_the_container_and_a_daemon_volume_outlives_instances() {
    let server = TestServer::start().await;
    let (api, login) = v1_user(&server, "res").await;
    prototype(
        &server,
        &api,
        &login,
        "keeper",
        "daemon",
        "CMD [\"sh\", \"-c\", \"date >> /data/starts; exec sleep 3600\"]",
        json!({"arguments": {"volume_location": "/data", "volume_size": 1}}),
    )
    .await;
    let resources = json!({"cpu_cores": 0.5, "ram": 48, "disk": 100, "gpu_count": 1, "shm": 16});
    let servable = create(&api, "keeper", json!({}), resources).await;
    let first = run(&api, &servable).await;
    assert_eq!(first["state"], "running", "{first}");
    let container = format!("dtaas-inst-{}", first["id"].as_str().unwrap());
    let host = inspect(&container).await["HostConfig"].clone();
    assert_eq!(host["NanoCpus"], 500_000_000i64);
    assert_eq!(host["Memory"], 48 * 1024 * 1024);
    assert_eq!(host["ShmSize"], 16 * 1024 * 1024);
    // What the engine cannot enforce here is reported, not dropped.
    let (_, view) = api.get(&format!("/servables/{servable}")).await;
    let unenforced = view["unenforced"].as_array().expect("unenforced").clone();
    let says = |what: &str| {
        unenforced
            .iter()
            .any(|u| u.as_str().is_some_and(|u| u.starts_with(what)))
    };
    assert!(says("gpu_count"), "{unenforced:?}");
    assert!(says("volume_size"), "{unenforced:?}");
    let disk_limited = host["StorageOpt"]["size"].as_str() == Some("100M");
    assert!(
        disk_limited || says("disk"),
        "disk neither applied nor reported: {view}"
    );

    // The volume keeps its files across instances.
    docker_exec(&container, &["sh", "-c", "echo kept > /data/file"]).await;
    let (status, stopped) = api
        .post(
            &format!("/instances/{}/stop", first["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!((status, stopped["state"].as_str()), (200, Some("stopped")));
    let second = run(&api, &servable).await;
    assert_ne!(second["id"], first["id"]);
    let container = format!("dtaas-inst-{}", second["id"].as_str().unwrap());
    assert_eq!(
        docker_exec(&container, &["cat", "/data/file"]).await,
        "kept\n"
    );
    // The container's shell records its start a moment after the engine started it.
    let mut starts = String::new();
    for _ in 0..100 {
        starts = docker_exec(&container, &["cat", "/data/starts"]).await;
        if starts.lines().count() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(starts.lines().count(), 2, "{starts}");

    // An overrun of volume_size is measured and reported on the servable.
    docker_exec(
        &container,
        &[
            "dd",
            "if=/dev/zero",
            "of=/data/big",
            "bs=1024",
            "count=1536",
        ],
    )
    .await;
    let servable_id = dtaas::core::id::Id::parse(&servable).unwrap();
    let used = server
        .app
        .instances
        .measure_volume(servable_id)
        .await
        .expect("measured")
        .expect("a volume");
    assert!(used > 1024 * 1024, "{used}");
    let (_, view) = api.get(&format!("/servables/{servable}")).await;
    assert_eq!(view["volume"]["overrun"], true, "{view}");

    // Deleting the servable removes its containers and its volume.
    let volume = view["volume"]["name"].as_str().unwrap().to_owned();
    let (status, _) = api.delete(&format!("/servables/{servable}")).await;
    assert_eq!(status, 204);
    let out = tokio::process::Command::new("docker")
        .args(["volume", "inspect", &volume])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "the volume {volume} is still there");
    let out = tokio::process::Command::new("docker")
        .args(["inspect", &container])
        .output()
        .await
        .unwrap();
    assert!(
        !out.status.success(),
        "the container {container} is still there"
    );
}

#[tokio::test]
async fn a_failing_daemon_is_restarted_and_a_pipeline_is_not() {
    let server = TestServer::start_with(|c| c.servables.restart_backoff_max_secs = 1).await;
    let (api, login) = v1_user(&server, "restart").await;
    prototype(
        &server,
        &api,
        &login,
        "flaky",
        "daemon",
        "CMD [\"sh\", \"-c\", \"echo up; sleep 1; exit 3\"]",
        json!({"arguments": {"volume_location": "/data", "volume_size": 1}}),
    )
    .await;
    let servable = create(&api, "flaky", json!({}), small()).await;
    let instance = run(&api, &servable).await;
    let id = instance["id"].as_str().unwrap().to_owned();
    let restarted =
        wait_instance(&api, &id, 30, |i| i["restarts"].as_u64().unwrap_or(0) >= 2).await;
    assert_eq!(restarted["exit_code"].as_i64().or(Some(3)), Some(3));
    let (_, stopped) = api.post(&format!("/instances/{id}/stop"), json!({})).await;
    assert_eq!(stopped["state"], "stopped", "{stopped}");
    let (_, logs) = api.get(&format!("/instances/{id}/logs")).await;
    let ups = logs
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["logline"] == "up")
        .count();
    assert!(ups >= 2, "{logs}");
    // An instance's lines name it as the instance (a job's name the job).
    for line in logs.as_array().unwrap() {
        assert_eq!(line["instance"], id.as_str(), "{line}");
        assert!(line.get("job").is_none(), "{line}");
    }
    // Restarted by hand (its volume measured as its last run ended): supervised again, so its
    // failures are restarted again.
    let before = stopped["restarts"].as_u64().unwrap();
    let (status, again) = api
        .post(&format!("/instances/{id}/restart"), json!({}))
        .await;
    assert_eq!(status, 200, "{again}");
    wait_instance(&api, &id, 30, |i| {
        i["restarts"].as_u64().unwrap_or(0) >= before + 2
    })
    .await;
    let (_, stopped) = api.post(&format!("/instances/{id}/stop"), json!({})).await;
    assert_eq!(stopped["state"], "stopped", "{stopped}");

    prototype(
        &server,
        &api,
        &login,
        "once",
        "pipeline",
        "CMD [\"sh\", \"-c\", \"echo ran; exit 4\"]",
        json!({}),
    )
    .await;
    let servable = create(&api, "once", json!({}), small()).await;
    let instance = run(&api, &servable).await;
    let id = instance["id"].as_str().unwrap().to_owned();
    let ended = wait_instance(&api, &id, 30, |i| i["state"] == "failed").await;
    assert_eq!(ended["exit_code"], 4);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, again) = api.get(&format!("/instances/{id}")).await;
    assert_eq!(
        (again["state"].as_str(), again["restarts"].as_u64()),
        (Some("failed"), Some(0))
    );
}

/// Issue 11: a servable whose image has a truncated layer answered `503 engine_unavailable`
/// although the engine was up. The engine refusing the image is the image's fault: the
/// instance fails with the engine's message (or the run is a 4xx with it), never 503.
#[tokio::test]
async fn an_image_with_a_truncated_layer_fails_with_the_engines_message() {
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use sha2::{Digest, Sha256};
    use std::io::Write;
    let digest = |bytes: &[u8]| {
        format!(
            "sha256:{}",
            dtaas::core::secrets::hex(&Sha256::digest(bytes))
        )
    };

    let server = TestServer::start().await;
    let (api, login) = v1_user(&server, "trunc").await;
    let name = unique("truncated");
    // A layer: a tar of one file, gzipped, of which the registry gets the first half.
    let mut tar = tar::Builder::new(Vec::new());
    let content = vec![b'x'; 64 * 1024];
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "hello.txt", content.as_slice())
        .unwrap();
    let tar = tar.into_inner().unwrap();
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let layer = gz[..gz.len() / 2].to_vec();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": [digest(&tar)]},
    }))
    .unwrap();
    let c = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut blobs = Vec::new();
    for bytes in [&config, &layer] {
        let d = digest(bytes);
        let r = c
            .post(server.url(&format!("/v2/{name}/blobs/uploads/?digest={d}")))
            .basic_auth(&login, Some(PASSWORD))
            .body(bytes.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        blobs.push(d);
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": blobs[0], "size": config.len()},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "digest": blobs[1], "size": layer.len()}],
    });
    let r = c
        .put(server.url(&format!("/v2/{name}/manifests/1")))
        .basic_auth(&login, Some(PASSWORD))
        .header(
            "content-type",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .body(serde_json::to_vec(&manifest).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let (status, body) = api
        .post(
            "/prototypes",
            json!({ &name: {"name": &name, "tag": "1", "type": "pipeline"} }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let servable = create(&api, &name, json!({}), small()).await;

    let (status, body) = api
        .post(&format!("/servables/{servable}/run"), json!({}))
        .await;
    assert_ne!(status, 503, "{body}");
    let message = if status == 201 {
        assert_eq!(body["state"], "failed", "{body}");
        body["error"].as_str().unwrap_or_default().to_owned()
    } else {
        assert!((400..500).contains(&status), "{status}: {body}");
        let (code, message) = v1_error(&body);
        assert_ne!(code, "engine_unavailable");
        message.to_owned()
    };
    assert!(
        message.contains("unexpected EOF") || message.contains("tar"),
        "the engine's message: {message}"
    );
    assert!(!message.contains("unavailable"), "{message}");
}

#[tokio::test]
async fn running_servables_survive_a_sigkill_of_the_server() {
    base_image().await;
    let dir = tempfile::tempdir().unwrap();
    let server = ProcessServer::spawn(dir.path(), &[]).await;
    let (c, login) = new_user(&server.base, "crashsv").await;
    let api = V1::at(&server.base, c.clone());
    let addr = server.base.trim_start_matches("http://").to_owned();
    // A daemon that keeps running, an app (httpd), and a pipeline that ends while the server is down.
    for (name, kind, cmd) in [
        ("steady", "daemon", "CMD [\"sleep\", \"3600\"]"),
        (
            "web",
            "app",
            "CMD [\"sh\", \"-c\", \"mkdir -p /www && echo served > /www/index.html && exec httpd -f -p 8080 -h /www\"]",
        ),
        (
            "brief",
            "pipeline",
            "CMD [\"sh\", \"-c\", \"sleep 3; exit 7\"]",
        ),
    ] {
        let ctx = dockerfile_dir(cmd);
        push_image_to(&addr, &login, Some(ctx.path()), name, "1").await;
        let (status, body) = api
            .post(
                "/prototypes",
                json!({ name: {
                    "name": name, "tag": "1", "type": kind,
                    "arguments": if kind == "daemon" {
                        json!({"volume_location": "/data", "volume_size": 1})
                    } else {
                        json!({})
                    },
                } }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let mut instances = Vec::new();
    for name in ["steady", "web", "brief"] {
        let servable = create(&api, name, json!({}), small()).await;
        let instance = run(&api, &servable).await;
        assert_eq!(instance["state"], "running", "{instance}");
        instances.push((servable, instance["id"].as_str().unwrap().to_owned()));
    }
    let web = instances[1].0.clone();
    let (status, body) = fetch_app(&c, &format!("{}/apps/{web}/", server.base), None, 20).await;
    assert_eq!((status, body.trim()), (200, "served"));
    server.kill9().await;
    tokio::time::sleep(Duration::from_secs(4)).await;

    let server = ProcessServer::spawn(dir.path(), &[]).await;
    let c = {
        let c = client();
        let r = c
            .post(format!("{}/login", server.base))
            .form(&[("login", login.as_str()), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        c
    };
    let api = V1::at(&server.base, c.clone());
    // Re-attached: still running, same containers, no duplicates.
    for (_, id) in &instances[..2] {
        let (_, i) = api.get(&format!("/instances/{id}")).await;
        assert_eq!(i["state"], "running", "{i}");
    }
    let (status, body) = fetch_app(&c, &format!("{}/apps/{web}/", server.base), None, 20).await;
    assert_eq!((status, body.trim()), (200, "served"));
    // Ended meanwhile: its true state.
    let brief = wait_instance(&api, &instances[2].1, 20, |i| i["state"] != "running").await;
    assert_eq!(
        (brief["state"].as_str(), brief["exit_code"].as_i64()),
        (Some("failed"), Some(7))
    );
    let (_, me) = api.get("/me").await;
    let owner = me["id"].as_str().expect("id").to_owned();
    let out = tokio::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=dtaas.owner={owner}"),
            "--filter",
            "label=dtaas.kind=instance",
        ])
        .output()
        .await
        .unwrap();
    let containers = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(
        containers, 3,
        "one container per instance, nothing duplicated"
    );
    server.kill9().await;
    let installation = dtaas::domains::open_store(dir.path())
        .expect("open the data directory")
        .installation_id()
        .expect("installation id");
    drop(EngineCleanup(installation.to_string()));
}

/// Whether the engine has a `kind` (`volume`, `network`, `container`) of this name.
async fn engine_has(kind: &str, name: &str) -> bool {
    tokio::process::Command::new("docker")
        .args([kind, "inspect", name])
        .output()
        .await
        .expect("docker inspect")
        .status
        .success()
}

/// A deletion cut by a crash (marked, nothing removed yet) is finished by the next start; a
/// container a crash left holding a volume (a measurement's, say) does not make a deletion
/// leave the volume behind; volumes of servables that are gone are removed at start. Before,
/// a volume in use was only warned about and its servable forgotten: the volume stayed, and
/// nothing ever removed it. And a start cut after the engine started the container (the
/// instance still `starting`) is recorded `running` at the next start; before, it stayed
/// `starting` for as long as its container ran.
#[tokio::test]
async fn cut_deletions_and_starts_are_finished_and_leave_no_volume() {
    base_image().await;
    let dir = tempfile::tempdir().unwrap();
    let server = ProcessServer::spawn(dir.path(), &[]).await;
    let (c, login) = new_user(&server.base, "cutdel").await;
    let api = V1::at(&server.base, c.clone());
    let addr = server.base.trim_start_matches("http://").to_owned();
    let ctx = dockerfile_dir("CMD [\"sh\", \"-c\", \"trap 'exit 0' TERM; sleep 3600 & wait\"]");
    push_image_to(&addr, &login, Some(ctx.path()), "keep", "1").await;
    let (status, body) = api
        .post(
            "/prototypes",
            json!({"keep": {"name": "keep", "tag": "1", "type": "daemon",
                    "arguments": {"volume_location": "/data", "volume_size": 1}}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let mut made = Vec::new();
    for name in ["cut", "held", "begun"] {
        let (status, body) = api
            .post(
                "/servables",
                json!({"prototype": "keep:1", "name": name, "resources": small()}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let id = body["id"].as_str().unwrap().to_owned();
        let volume = body["volume"]["name"].as_str().unwrap().to_owned();
        let instance = run(&api, &id).await;
        assert_eq!(instance["state"], "running", "{instance}");
        let container = format!("dtaas-inst-{}", instance["id"].as_str().unwrap());
        made.push((id, volume, container));
    }
    server.kill9().await;

    // What a crash leaves: the deletion of `cut` begun (marked) and nothing removed yet; a
    // measurement's container holding the volume of `held`; the volume of a servable whose
    // deletion was recorded while its volume was in use.
    let store = dtaas::domains::open_store(dir.path()).unwrap();
    let installation = store.installation_id().unwrap().to_string();
    let cleanup = EngineCleanup(installation.clone());
    let cut = dtaas::core::id::Id::parse(&made[0].0).unwrap();
    assert!(
        dtaas::domains::servables::mark_deleting(&store, cut)
            .unwrap()
            .is_some()
    );
    let begun = dtaas::core::id::Id::parse(made[2].2.trim_start_matches("dtaas-inst-")).unwrap();
    dtaas::domains::servables::update_instance(&store, begun, |i| {
        i.state = dtaas::domains::servables::InstanceState::Starting;
        i.ipv4_address = None;
        i.started = None;
    })
    .unwrap()
    .expect("the instance");
    let begun_started = inspect(&made[2].2).await["State"]["StartedAt"].clone();
    drop(store);
    let stale = unique("dtaas-util-stale");
    let gone_volume = unique("dtaas-vol-gone");
    let labels = |kind: &str, servable: Option<&str>| {
        let mut l = vec![
            "--label".to_owned(),
            format!("dtaas.installation={installation}"),
            "--label".to_owned(),
            "dtaas.managed=true".to_owned(),
            "--label".to_owned(),
            format!("dtaas.kind={kind}"),
        ];
        if let Some(s) = servable {
            l.extend(["--label".to_owned(), format!("dtaas.servable={s}")]);
        }
        l
    };
    let docker = |args: Vec<String>| async move {
        let out = tokio::process::Command::new("docker")
            .args(&args)
            .output()
            .await
            .expect("docker");
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let mut create = vec!["create".to_owned(), "--name".to_owned(), stale.clone()];
    create.extend(labels("measure", None));
    create.extend([
        "-v".to_owned(),
        format!("{}:/volume:ro", made[1].1),
        dtaas::engine::BASE_IMAGE.to_owned(),
        "du".to_owned(),
        "-sk".to_owned(),
        "/volume".to_owned(),
    ]);
    docker(create).await;
    let mut volume = vec!["volume".to_owned(), "create".to_owned()];
    volume.extend(labels(
        "volume",
        Some(&dtaas::core::id::Id::new().to_string()),
    ));
    volume.push(gone_volume.clone());
    docker(volume).await;

    let server = ProcessServer::spawn(dir.path(), &[]).await;
    let c = client();
    let r = c
        .post(format!("{}/login", server.base))
        .form(&[("login", login.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let api = V1::at(&server.base, c);
    // Recovery finishes the deletion of `cut` and removes what no record owns.
    let mut finished = false;
    for _ in 0..150 {
        let (status, _) = api.get(&format!("/servables/{}", made[0].0)).await;
        if status == 404
            && !engine_has("container", &stale).await
            && !engine_has("volume", &gone_volume).await
        {
            finished = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        finished,
        "recovery did not finish the cut deletion and tidy up in 30 s"
    );
    let (cut_id, cut_volume, cut_container) = &made[0];
    assert!(
        !engine_has("container", cut_container).await,
        "{cut_container}"
    );
    assert!(!engine_has("volume", cut_volume).await, "{cut_volume}");
    assert!(!engine_has("network", &format!("dtaas-srv-{cut_id}")).await);

    // The start cut after the engine's start: running, in the same container, with its address.
    let view = wait_instance(&api, &begun.to_string(), 30, |i| i["state"] != "starting").await;
    assert_eq!(view["state"], "running", "{view}");
    assert!(
        view["ipv4_address"].as_str().is_some_and(|a| !a.is_empty()),
        "{view}"
    );
    assert_eq!(
        inspect(&made[2].2).await["State"]["StartedAt"],
        begun_started,
        "restarted"
    );

    // A container of this installation holding the volume (one a crash left that recovery
    // could not see, say) is removed with it: the deletion leaves nothing.
    let (held_id, held_volume, held_container) = &made[1];
    let late = unique("dtaas-util-late");
    let mut create = vec!["create".to_owned(), "--name".to_owned(), late.clone()];
    create.extend(labels("measure", None));
    create.extend([
        "-v".to_owned(),
        format!("{held_volume}:/volume:ro"),
        dtaas::engine::BASE_IMAGE.to_owned(),
        "true".to_owned(),
    ]);
    docker(create).await;
    let (status, body) = api.delete(&format!("/servables/{held_id}")).await;
    assert_eq!(status, 204, "{body}");
    assert!(
        !engine_has("volume", held_volume).await,
        "{held_volume} left behind"
    );
    assert!(!engine_has("container", held_container).await);
    assert!(!engine_has("container", &late).await);
    assert!(!engine_has("network", &format!("dtaas-srv-{held_id}")).await);
    // Deleting again: it is gone.
    let (status, _) = api.delete(&format!("/servables/{held_id}")).await;
    assert_eq!(status, 404);
    server.kill9().await;
    drop(cleanup);
}

/// The (field, status) of a servable creation that fails.
async fn refused(api: &V1, body: Value) -> (u16, Vec<String>) {
    let (status, answer) = api.post("/servables", body).await;
    // The code follows the status: a malformed request is `invalid`, one the prototype does
    // not allow a `conflict`.
    let code = if status == 409 { "conflict" } else { "invalid" };
    assert_eq!(answer["error"]["code"], code, "{answer}");
    let fields = answer["error"]["details"]
        .as_array()
        .unwrap_or_else(|| panic!("no details: {answer}"))
        .iter()
        .map(|d| d["field"].as_str().unwrap().to_owned())
        .collect();
    (status, fields)
}

/// Issue 11 (schemathesis): what a well-formed request asks that the prototype does not allow
/// is a conflict with the prototype (409), not a malformed request (400); whole numbers may be
/// written `64.0`, as JSON Schema's `integer` allows.
#[tokio::test]
async fn a_servable_request_is_checked_against_its_prototype() {
    let server = TestServer::start().await;
    let (api, login) = v1_user(&server, "servcheck").await;
    let name = unique("checked");
    push_image(&server, &login, None, &name, "1").await;
    let manifest = json!({ &name: {
        "name": &name, "tag": "1", "type": "pipeline",
        "config-capabilities": {"target": ["READ"]},
    }});
    let (status, body) = api.post("/prototypes", manifest).await;
    assert_eq!(status, 201, "{body}");
    let prototype = format!("{name}:1");
    let target = api.get("/me").await.1["id"].clone();

    let base = |extra: Value| {
        let mut body = json!({"prototype": &prototype, "name": "s", "config": {"target": &target}});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for (extra, field) in [
        (json!({"type": "app"}), "type"),
        (json!({"access_control": false}), "access_control"),
        (json!({"config": {}}), "config.target"),
    ] {
        assert_eq!(
            refused(&api, base(extra.clone())).await,
            (409, vec![field.to_owned()]),
            "{extra}"
        );
    }
    // Beside a fault of the request itself, a conflict is one problem of a 400.
    assert_eq!(
        refused(&api, base(json!({"type": "app", "name": "  "}))).await,
        (400, vec!["name".to_owned(), "type".to_owned()])
    );
    assert_eq!(
        refused(&api, base(json!({"resources": {"ram": 3}}))).await,
        (400, vec!["ram".to_owned()])
    );
    let resources = json!({"cpu_cores": 1, "ram": 64.0, "disk": 0.0, "gpu_count": 0.0, "shm": 8});
    let (status, body) = api
        .post("/servables", base(json!({ "resources": resources })))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["resources"]["ram"], 64, "{body}");
    let (status, body) = api
        .post("/servables", base(json!({"resources": {"gpu_count": 1.5}})))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(v1_error(&body).0, "bad_request", "{body}");
}
