//! Regressions of the security review (issue 10), each attack as an account holder tried it,
//! now failing safely: credentials reaching an app behind the proxy, an app host's sign-in
//! replayed against /v1, one tenant's container reaching another's, setuid files and loose
//! modes on the host, capabilities in containers, and cross-site requests with the session
//! cookie. (Delegation, MANAGE, servable keys and registry namespaces are in `access.rs` and
//! `accounts.rs`; builds in `builds.rs`; the denial-of-service bounds in `jobs.rs`,
//! `registry.rs` and `limits.rs`.)

use crate::harness::*;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// An app that answers every request with the request's head as it arrived (a busybox `nc`
/// server), and sets two cookies: the appliance's session cookie (with a byte over 0x7f in
/// it) and one of its own.
const ECHO: &str = r#"#!/bin/sh
head=""
while IFS= read -r line; do
  line=$(printf '%s' "$line" | tr -d '\r')
  [ -z "$line" ] && break
  head="$head$line
"
done
len=$(printf '%s' "$head" | wc -c)
printf 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: dtaas_session=fixed; X=\351\r\nSet-Cookie: theme=dark\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s' "$len" "$head"
"#;

/// Pushes the echo app as `<name>:1` and registers it as an `app` prototype.
async fn echo_app(server: &TestServer, api: &V1, login: &str, name: &str) {
    let context = tempfile::tempdir().unwrap();
    std::fs::write(context.path().join("echo.sh"), ECHO).unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        format!(
            "FROM {}\nCOPY echo.sh /echo.sh\nRUN chmod 755 /echo.sh\n\
             CMD [\"nc\", \"-ll\", \"-p\", \"8080\", \"-e\", \"/echo.sh\"]\n",
            dtaas::engine::BASE_IMAGE
        ),
    )
    .unwrap();
    push_image(server, login, Some(context.path()), name, "1").await;
    let manifest = json!({ name: {"name": name, "tag": "1", "type": "app"} });
    let (st, v) = api.post("/prototypes", manifest).await;
    assert_eq!(st, 201, "{v}");
}

/// Creates and runs a servable; returns (servable id, its running instance).
async fn run(api: &V1, prototype: &str, name: &str, config: Value) -> (String, Value) {
    let (st, v) = api
        .post(
            "/servables",
            json!({"prototype": prototype, "name": name, "config": config, "resources": small()}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let (st, v) = api.post(&format!("/servables/{id}/run"), json!({})).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["state"], "running", "{v}");
    (id, v)
}

/// The app's answer (the request head it saw), once it answers.
async fn fetch(
    request: impl Fn() -> reqwest::RequestBuilder,
) -> (reqwest::header::HeaderMap, Vec<u8>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = request().send().await
            && r.status() == 200
        {
            let headers = r.headers().clone();
            return (headers, r.bytes().await.unwrap().to_vec());
        }
        assert!(Instant::now() < deadline, "the app did not answer");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The session cookie's value in a client's cookie jar, read from a logged-in response.
async fn session_token(server: &TestServer, login: &str) -> String {
    let r = client()
        .post(server.url("/login"))
        .form(&[("login", login), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.headers()
        .get_all("set-cookie")
        .iter()
        .find_map(|v| {
            let v = v.to_str().ok()?;
            v.strip_prefix("dtaas_session=")
                .map(|rest| rest.split(';').next().unwrap_or("").to_owned())
        })
        .expect("a session cookie")
}

/// The appliance's credentials never reach an app, however the headers are encoded: a
/// `Cookie` header with a byte over 0x7f kept the session in it before, and of two
/// `Authorization` headers only the first was looked at. An app's `Set-Cookie` for the
/// session cookie is dropped whatever bytes it holds.
#[tokio::test]
async fn the_proxy_strips_appliance_credentials_at_the_byte_level() {
    let server = TestServer::start().await;
    let (api, login) = v1_user(&server, "echo").await;
    echo_app(&server, &api, &login, "echo").await;
    let (app, _) = run(&api, "echo:1", "echo", json!({})).await;
    let token = session_token(&server, &login).await;
    let key = api.new_key().await;
    let url = server.url(&format!("/apps/{app}/"));
    let raw = client();

    let mut cookie = format!("dtaas_session={token}; p=").into_bytes();
    cookie.push(0xe9);
    let (headers, seen) = fetch(|| {
        raw.get(&url).header(
            "cookie",
            reqwest::header::HeaderValue::from_bytes(&cookie).unwrap(),
        )
    })
    .await;
    assert!(
        !contains(&seen, token.as_bytes()),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    assert!(contains(&seen, b"p=\xe9"), "the app's own cookie stays");
    let set: Vec<&[u8]> = headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    assert_eq!(
        set,
        [&b"theme=dark"[..]],
        "only the app's own cookie is set"
    );

    // Basic for the app, then the appliance key: the key is used and taken out.
    let (_, seen) = fetch(|| {
        raw.get(&url)
            .header("authorization", "Basic YXBwOnBhc3M=")
            .header("authorization", format!("Bearer {key}"))
            .header("cookie", format!("dtaas_session={token}"))
    })
    .await;
    assert!(
        !contains(&seen, key.as_bytes()),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    assert!(
        contains(&seen, b"Basic YXBwOnBhc3M="),
        "the app's own scheme passes"
    );
    assert!(!contains(&seen, token.as_bytes()));
}

/// Signing in on an app's own host gives a session for that app alone: replayed against
/// `/v1` (the attack: an app echoing the cookie and a script reusing it), it is refused.
#[tokio::test]
async fn an_app_host_sign_in_is_good_for_that_app_alone() {
    let server = TestServer::start().await;
    let (api, login) = v1_user(&server, "host").await;
    echo_app(&server, &api, &login, "echo-host").await;
    let (app, _) = run(&api, "echo-host:1", "echo", json!({})).await;
    let host = format!("{app}.localhost");
    let by_host = reqwest::Client::builder()
        .no_proxy()
        .resolve(&host, server.addr)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://{host}:{}", server.addr.port());
    let r = by_host
        .post(format!("{base}/.dtaas/login"))
        .form(&[
            ("login", login.as_str()),
            ("password", PASSWORD),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned();

    // Good for the app.
    let (_, seen) = fetch(|| by_host.get(format!("{base}/")).header("cookie", &cookie)).await;
    assert!(
        !contains(&seen, cookie.as_bytes()),
        "and stripped on its way there"
    );
    // Not for the appliance, on any face.
    let r = client()
        .get(server.url("/v1/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client()
        .get(server.url("/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Nor for another app.
    let (other, _) = run(&api, "echo-host:1", "echo2", json!({})).await;
    let r = client()
        .get(server.url(&format!("/apps/{other}/")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// A daemon that tries `http://<target>:8080/` every half second and logs `reached` or
/// `blocked`. (busybox's `wget -T` crashes; `timeout` bounds it instead.)
const PROBE: &str = r#"while true; do target=$(sed -n 's/.*"target": *"\([^"]*\)".*/\1/p' /run/dtaas/config.json); if timeout 2 wget -q -O /dev/null "http://$target:8080/" 2>/dev/null; then echo reached; else echo blocked; fi; sleep 0.5; done"#;

async fn probe_image(server: &TestServer, api: &V1, login: &str) {
    let dir = dockerfile_dir(&format!("CMD [\"sh\", \"-c\", {}]", json!(PROBE)));
    push_image(server, login, Some(dir.path()), "probe", "1").await;
    let manifest = json!({"probe": {
        "name": "probe", "tag": "1", "type": "daemon",
        "arguments": {"volume_location": "/data", "volume_size": 1},
    }});
    let (st, v) = api.post("/prototypes", manifest).await;
    assert_eq!(st, 201, "{v}");
}

/// The last `reached`/`blocked` line a probe logged after `after` (a log id).
async fn probe_says(api: &V1, instance: &str, after: u64) -> (String, u64) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (st, v) = api
            .get(&format!("/instances/{instance}/logs?after={after}"))
            .await;
        assert_eq!(st, 200, "{v}");
        if let Some(last) = v.as_array().and_then(|l| l.last()) {
            return (
                last["logline"].as_str().unwrap_or("").to_owned(),
                last["id"].as_u64().unwrap_or(after),
            );
        }
        assert!(Instant::now() < deadline, "the probe logs nothing");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Waits until the probe's answer becomes `want` (logged after the last look).
async fn probe_until(api: &V1, instance: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut after = 0;
    loop {
        let (said, last) = probe_says(api, instance, after).await;
        if said == want {
            return;
        }
        after = last;
        assert!(
            Instant::now() < deadline,
            "the probe kept saying {said}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One tenant's container reached another's access-controlled app directly, skipping the
/// proxy's REQUEST check (all servables shared one network). Now a container reaches only
/// servables its principal holds READ or REQUEST on: it joins on the grant and leaves on the
/// revocation. Jobs reach neither servables nor the appliance.
#[tokio::test]
async fn a_container_reaches_only_servables_it_may_read_or_request() {
    let server = TestServer::start().await;
    let (alice, alice_login) = v1_user(&server, "ali").await;
    let (bob, bob_login) = v1_user(&server, "bob").await;
    echo_app(&server, &alice, &alice_login, "private").await;
    let (app, app_instance) = run(&alice, "private:1", "private", json!({})).await;
    let ip = app_instance["ipv4_address"].as_str().unwrap().to_owned();

    probe_image(&server, &bob, &bob_login).await;
    let (probe, probe_instance) = run(&bob, "probe:1", "probe", json!({"target": ip})).await;
    let probe_instance = probe_instance["id"].as_str().unwrap().to_owned();
    probe_until(&bob, &probe_instance, "blocked").await;

    // Bob lets Alice see his servable, and Alice grants it REQUEST on her app: it joins the
    // app's network.
    let (st, v) = bob
        .post(
            &format!("/objects/{probe}/access"),
            json!({"principal": alice_login, "capabilities": ["DISCOVER"]}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = alice
        .post(
            &format!("/objects/{app}/access"),
            json!({"principal": probe, "capabilities": ["REQUEST"]}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    probe_until(&bob, &probe_instance, "reached").await;

    // Revoked: it leaves.
    let (st, v) = alice
        .delete(&format!("/objects/{app}/access/{probe}"))
        .await;
    assert_eq!(st, 200, "{v}");
    probe_until(&bob, &probe_instance, "blocked").await;

    // A job reaches neither the app nor the appliance: it has no network but loopback.
    let env = tokio::process::Command::new("docker")
        .args(["inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}"])
        .arg(format!("dtaas-inst-{probe_instance}"))
        .output()
        .await
        .unwrap();
    let env = String::from_utf8_lossy(&env.stdout).into_owned();
    let api = env
        .lines()
        .find_map(|l| l.strip_prefix("DTAAS_URL="))
        .expect("the servable's DTAAS_URL")
        .to_owned();
    let k = server.kabuto("job").await;
    let image = k.busybox().await;
    let pipeline = k.pipeline("probe").await;
    let command = format!(
        "sh -c 'ls /sys/class/net; timeout 3 wget -q -O- http://{ip}:8080/ && echo app-reached; \
         timeout 3 wget -q -O- {api}/healthz && echo appliance-reached; exit 0'"
    );
    let job = k.job(&pipeline, &image, &command, &[]).await;
    let (st, v) = k.submit(&pipeline).await;
    assert_eq!(st, 200, "{v}");
    k.wait_job(&pipeline, &job).await;
    let logs = k.logs(&job).await;
    // `ls` prints on stdout and wget on stderr: the engine may give the two streams' lines in
    // either order.
    assert!(logs.iter().any(|l| l == "lo"), "{logs:?}");
    assert!(!logs.iter().any(|l| l.contains("eth")), "{logs:?}");
    assert!(!logs.iter().any(|l| l.contains("reached")), "{logs:?}");
}

/// A job planted a setuid-root binary under 0755 directories and a local user ran it; the
/// data directory, the database and the servables' key files were readable by other users.
/// Now: the data directory is 0700, the database 0600, key files 0400, a result zip keeps no
/// setuid bit, and containers run without the capabilities ordinary images do not need.
#[tokio::test]
async fn files_stay_private_and_containers_hold_few_capabilities() {
    let server = TestServer::start().await;
    let dir = server.data_dir();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("dtaas.redb")), 0o600);

    let k = server.kabuto("suid").await;
    let image = k.busybox().await;
    let pipeline = k.pipeline("suid").await;
    let job = k
        .job(
            &pipeline,
            &image,
            "sh -c 'cp /bin/busybox /outbox/x && chmod 4755 /outbox/x && grep CapEff /proc/self/status'",
            &[],
        )
        .await;
    let (st, v) = k.submit(&pipeline).await;
    assert_eq!(st, 200, "{v}");
    let v = k.wait_job(&pipeline, &job).await;
    assert_eq!(v["state"], "done", "{v}");
    let zip =
        k.c.get(k.url(&format!("/pipeline/{pipeline}/job/{job}?result")))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let entry = archive.by_name("x").unwrap();
    let unix = entry.unix_mode().unwrap();
    assert_eq!(unix & 0o7000, 0, "no setuid bit in the result: {unix:o}");
    drop(entry);
    // CHOWN, DAC_OVERRIDE, FOWNER, SETGID, SETUID, KILL, NET_BIND_SERVICE (bits 0, 1, 3, 6, 7,
    // 5, 10): no NET_RAW, MKNOD, SYS_CHROOT, SETFCAP, ... as Docker's default would give.
    let logs = k.logs(&job).await.join("\n");
    assert!(logs.contains("CapEff:\t00000000000004eb"), "{logs}");

    let (api, login) = v1_user(&server, "keys").await;
    probe_image(&server, &api, &login).await;
    let (servable, _) = run(&api, "probe:1", "probe", json!({"target": "127.0.0.1"})).await;
    let key = dir
        .join("servables")
        .join(&servable)
        .join("secrets")
        .join("api-key");
    assert_eq!(mode(&key), 0o400);
}

/// `/v1` took JSON sent as `text/plain` (a page of another site can send that without asking),
/// and nothing refused a cross-site form carrying the session cookie. Now: JSON must say it is
/// JSON, and an unsafe request with the session cookie from another site is refused on every
/// face; API keys, and requests that say nothing of where they come from (scripts), pass.
#[tokio::test]
async fn cross_site_requests_with_the_session_cookie_are_refused() {
    let server = TestServer::start().await;
    let (api, login) = v1_user(&server, "csrf").await;
    let token = session_token(&server, &login).await;
    let cookie = format!("dtaas_session={token}");
    let own = format!("http://{}", server.addr);
    let post = |path: &str| client().post(server.url(path)).header("cookie", &cookie);

    let r = post("/v1/trusts")
        .header("content-type", "text/plain")
        .body(r#"{"name":"forged"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "JSON as text/plain");

    for (name, value) in [
        ("origin", "http://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let r = post("/v1/trusts")
            .header(name, value)
            .json(&json!({"name": "forged"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{name}: {value}");
        let r = post("/pipeline")
            .header(name, value)
            .form(&[("name", "forged")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "kabuto form, {name}: {value}");
        assert!(kabuto_error(&json_of(r).await).contains("another site"));
    }
    let (st, v) = api.get("/trusts").await;
    assert_eq!(st, 200);
    assert_eq!(v, json!([]), "nothing forged was made");

    // The appliance's own pages, scripts and API keys.
    let r = post("/pipeline")
        .header("origin", &own)
        .form(&[("name", "mine")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = post("/pipeline")
        .header("sec-fetch-site", "same-origin")
        .form(&[("name", "mine")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = post("/pipeline")
        .form(&[("name", "curl")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let key = api.new_key().await;
    let r = client()
        .post(server.url("/v1/trusts"))
        .bearer_auth(&key)
        .header("origin", "http://evil.example")
        .json(&json!({"name": "by key"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}
