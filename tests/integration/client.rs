//! The client (issue 13, part 2): the real `dtaas` binary against real servers, each run with
//! a HOME and XDG_CONFIG_HOME of its own. Login with --password-stdin, the profile file, export
//! and the environment, two profiles on two servers, logout and revoked keys, --json, grants and
//! lists with paging, docker-configure with a real `docker push`, servables run and followed,
//! and TLS with the appliance's authority or --insecure.

use crate::harness::*;
use dtaas::core::config::TlsMode;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tempfile::TempDir;

/// What a run of the binary gave.
pub(crate) struct Ran {
    pub(crate) ok: bool,
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Ran {
    #[track_caller]
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON: {e}: {:?} (stderr {:?})",
                self.stdout, self.stderr
            )
        })
    }

    #[track_caller]
    pub(crate) fn assert_ok(&self) -> &Ran {
        assert!(
            self.ok,
            "failed ({:?}): {}{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub(crate) fn assert_failed_with(&self, needle: &str) -> &Ran {
        assert!(!self.ok, "succeeded: {}", self.stdout);
        assert_eq!(self.code, Some(1), "{}", self.stderr);
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}: {}",
            self.stderr
        );
        self
    }
}

/// A user's machine: its own home (profile file, layer cache, docker's config).
pub(crate) struct Machine {
    home: TempDir,
}

impl Machine {
    pub(crate) fn new() -> Machine {
        Machine {
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn config_home(&self) -> PathBuf {
        self.home.path().join(".config")
    }

    fn profile_file(&self) -> PathBuf {
        self.config_home().join("dtaas").join("config.toml")
    }

    fn docker_dir(&self) -> PathBuf {
        self.home.path().join(".docker")
    }

    pub(crate) async fn run(&self, args: &[&str], stdin: Option<&str>) -> Ran {
        self.run_env(args, stdin, &[]).await
    }

    /// Runs with no docker CLI to be found: the client must do without it.
    pub(crate) async fn run_without_docker_cli(&self, args: &[&str]) -> Ran {
        self.run_env(args, None, &[("PATH", "/nonexistent")]).await
    }

    pub(crate) async fn run_env(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        env: &[(&str, &str)],
    ) -> Ran {
        use tokio::io::AsyncWriteExt;
        let mut cmd = dtaas_command();
        cmd.args(args)
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.config_home())
            .env("XDG_CACHE_HOME", self.home.path().join(".cache"))
            .env_remove("DOCKER_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn dtaas");
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).await.unwrap();
        }
        drop(input);
        let out = child.wait_with_output().await.unwrap();
        Ran {
            ok: out.status.success(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `dtaas [--profile P] login URL -u LOGIN --password-stdin [extra]`.
    pub(crate) async fn login(
        &self,
        profile: Option<&str>,
        url: &str,
        login: &str,
        extra: &[&str],
    ) -> Ran {
        let mut args = Vec::new();
        if let Some(p) = profile {
            args.extend(["--profile", p]);
        }
        args.extend(["login", url, "-u", login, "--password-stdin"]);
        args.extend(extra);
        self.run(&args, Some(&format!("{PASSWORD}\n"))).await
    }

    fn profiles(&self) -> toml::Table {
        std::fs::read_to_string(self.profile_file())
            .unwrap()
            .parse()
            .unwrap()
    }

    fn key_of(&self, profile: &str) -> String {
        self.profiles()["profiles"][profile]["api_key"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// A registered, confirmed user on `server` (nobody logged in yet) with a /v1 client.
async fn user(server: &TestServer, prefix: &str) -> (V1, String) {
    v1_user(server, prefix).await
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn login_whoami_the_profile_file_export_and_the_environment() {
    let server = TestServer::start().await;
    let (api, login) = user(&server, "cli").await;
    let me = Machine::new();

    let ran = me.login(None, &server.base, &login, &[]).await;
    ran.assert_ok();
    assert!(
        ran.stdout.contains(&format!("as {login}")),
        "{}",
        ran.stdout
    );
    let who = me.run(&["whoami"], None).await;
    who.assert_ok();
    assert!(who.stdout.starts_with(&login), "{}", who.stdout);
    assert!(who.stdout.contains("profile default"), "{}", who.stdout);
    let who = me.run(&["whoami", "--json"], None).await;
    assert_eq!(who.assert_ok().json()["login"], login.as_str());

    // The profile file: 0600 in a 0700 directory, the key and never the password.
    let file = me.profile_file();
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(file.parent().unwrap()), 0o700);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(PASSWORD), "{text}");
    let profiles = me.profiles();
    assert_eq!(profiles["current"].as_str(), Some("default"));
    let key = me.key_of("default");
    assert!(key.starts_with("dtaas_"), "{text}");
    // The key works on /v1 and is the one key, named for this machine.
    let (status, body) = V1::with_key(&server, &key).get("/me").await;
    assert_eq!(
        (status, body["login"].as_str()),
        (200, Some(login.as_str()))
    );
    let (_, keys) = api.get("/api-keys").await;
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0]["name"].as_str().unwrap().starts_with("dtaas login"));
    let listed = me.run(&["list", "api-keys", "--json"], None).await;
    assert_eq!(listed.assert_ok().json().as_array().unwrap().len(), 1);

    // A second login replaces the key and revokes the first.
    me.login(None, &server.base, &login, &[]).await.assert_ok();
    let second = me.key_of("default");
    assert_ne!(second, key);
    assert_eq!(V1::with_key(&server, &key).get("/me").await.0, 401);
    let (_, keys) = api.get("/api-keys").await;
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys}");

    // export, evaluated by a real shell, gives what the environment needs.
    let ran = me.run(&["export"], None).await;
    ran.assert_ok();
    assert!(
        ran.stdout.starts_with("export DTAAS_URL="),
        "{}",
        ran.stdout
    );
    let script = format!(
        "eval \"$('{}' export)\" && printf '%s\\n%s\\n' \"$DTAAS_URL\" \"$DTAAS_API_KEY\"",
        env!("CARGO_BIN_EXE_dtaas")
    );
    let out = tokio::process::Command::new("sh")
        .args(["-c", &script])
        .env("HOME", me.home.path())
        .env("XDG_CONFIG_HOME", me.config_home())
        .env("DTAAS_CONFIG", "/dev/null")
        .env_remove("DTAAS_URL")
        .env_remove("DTAAS_API_KEY")
        .env_remove("DTAAS_PROFILE")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\n{second}\n", server.base)
    );
    let exported = me.run(&["export", "--json"], None).await.json();
    assert_eq!(exported["DTAAS_API_KEY"], second.as_str());

    // Another machine with no profile at all: the environment alone.
    let other = Machine::new();
    other
        .run(&["whoami"], None)
        .await
        .assert_failed_with("dtaas login");
    let env = [
        ("DTAAS_URL", server.base.as_str()),
        ("DTAAS_API_KEY", second.as_str()),
    ];
    let who = other.run_env(&["whoami"], None, &env).await;
    assert!(who.assert_ok().stdout.contains("key from DTAAS_API_KEY"));
    assert!(!other.profile_file().exists());
    // DTAAS_API_KEY wins over the profile's key.
    let who = me
        .run_env(&["whoami"], None, &[("DTAAS_API_KEY", "dtaas_nothing")])
        .await;
    who.assert_failed_with("DTAAS_API_KEY");

    // Wrong password: nothing stored changes.
    let ran = me
        .run(
            &["login", &server.base, "-u", &login, "--password-stdin"],
            Some("wrong\n"),
        )
        .await;
    ran.assert_failed_with("login and password");
    assert_eq!(me.key_of("default"), second);

    // A login with a key instead of a password.
    let third = Machine::new();
    let ran = third
        .run(
            &["login", &server.base, "--api-key", "-"],
            Some(&format!("{second}\n")),
        )
        .await;
    ran.assert_ok();
    assert_eq!(third.key_of("default"), second);
    let who = third.run(&["whoami", "--json"], None).await;
    assert_eq!(who.assert_ok().json()["login"], login.as_str());
}

#[tokio::test]
async fn logout_revokes_the_key_and_a_revoked_key_gets_the_login_hint() {
    let server = TestServer::start().await;
    let (api, login) = user(&server, "out").await;
    let me = Machine::new();
    me.login(None, &server.base, &login, &[]).await.assert_ok();
    let key = me.key_of("default");

    let ran = me.run(&["logout"], None).await;
    assert!(ran.assert_ok().stdout.contains("revoked"), "{}", ran.stdout);
    assert_eq!(V1::with_key(&server, &key).get("/me").await.0, 401);
    assert!(
        me.profiles()["profiles"]["default"]
            .get("api_key")
            .is_none()
    );
    assert!(
        !std::fs::read_to_string(me.profile_file())
            .unwrap()
            .contains(&key)
    );
    me.run(&["whoami"], None)
        .await
        .assert_failed_with("dtaas login");
    me.run(&["logout"], None)
        .await
        .assert_failed_with("not logged in");

    // A key revoked elsewhere (here through the API) is answered with the login hint, and the
    // server's answer is shown as its message only.
    me.login(None, &server.base, &login, &[]).await.assert_ok();
    let (_, keys) = api.get("/api-keys").await;
    let id = keys[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(api.delete(&format!("/api-keys/{id}")).await.0, 204);
    for args in [&["whoami"][..], &["list", "servables"], &["types"]] {
        let ran = me.run(args, None).await;
        ran.assert_failed_with(&format!("dtaas login {}", server.base));
        assert!(ran.stdout.is_empty(), "{}", ran.stdout);
        assert!(!ran.stderr.contains('{'), "no body echoed: {}", ran.stderr);
    }
    // Logging out with a key the server no longer takes just forgets it.
    me.run(&["logout"], None).await.assert_ok();
}

#[tokio::test]
async fn two_profiles_against_two_servers() {
    let one = TestServer::start().await;
    let two = TestServer::start().await;
    let (_, alice) = user(&one, "pa").await;
    let (_, bob) = user(&two, "pb").await;
    let me = Machine::new();
    me.login(Some("one"), &one.base, &alice, &[])
        .await
        .assert_ok();
    me.login(Some("two"), &two.base, &bob, &[])
        .await
        .assert_ok();

    // The last login is current; `profiles use` switches; --profile and DTAAS_PROFILE choose.
    let whoami = |args: &'static [&'static str], env: Vec<(&'static str, &'static str)>| {
        let me = &me;
        async move {
            let ran = me.run_env(args, None, &env).await;
            ran.assert_ok().json()["login"].as_str().unwrap().to_owned()
        }
    };
    assert_eq!(whoami(&["whoami", "--json"], vec![]).await, bob);
    let ran = me.run(&["profiles", "use", "one"], None).await;
    assert!(ran.assert_ok().stdout.contains("Now using profile one"));
    assert_eq!(whoami(&["whoami", "--json"], vec![]).await, alice);
    assert_eq!(
        whoami(&["--profile", "two", "whoami", "--json"], vec![]).await,
        bob
    );
    assert_eq!(
        whoami(&["whoami", "--json"], vec![("DTAAS_PROFILE", "two")]).await,
        bob
    );

    let listed = me.run(&["profiles", "--json"], None).await.json();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["name"], "one");
    assert_eq!(listed[0]["current"], true);
    assert_eq!(listed[1]["url"], two.base.as_str());
    let table = me.run(&["profiles"], None).await;
    table.assert_ok();
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", table.stdout);
    assert!(lines[0].contains("NAME") && lines[0].contains("URL"));
    assert!(lines[1].starts_with('*') && lines[1].contains(&alice));
    assert!(!table.stdout.contains("dtaas_"), "keys are never shown");

    // The current profile's key never goes to another server named by --url.
    me.run(&["--url", &two.base, "whoami"], None)
        .await
        .assert_failed_with("not logged in");

    // Removing a profile revokes its key.
    let bobs = me.key_of("two");
    me.run(&["profiles", "remove", "two"], None)
        .await
        .assert_ok();
    assert_eq!(V1::with_key(&two, &bobs).get("/me").await.0, 401);
    me.run(&["--profile", "two", "whoami"], None)
        .await
        .assert_failed_with("dtaas login");
    me.run(&["profiles", "use", "two"], None)
        .await
        .assert_failed_with("no profile two");
}

#[tokio::test]
async fn grants_revocations_and_lists_that_page() {
    let server = TestServer::start().await;
    let (alice_api, alice) = user(&server, "ga").await;
    let (bob_api, bob) = user(&server, "gb").await;
    let me = Machine::new();
    me.login(None, &server.base, &alice, &[]).await.assert_ok();

    let mut trusts = Vec::new();
    for i in 0..5 {
        let (status, t) = alice_api
            .post("/trusts", json!({"name": format!("trust {i}")}))
            .await;
        assert_eq!(status, 201, "{t}");
        trusts.push(t["id"].as_str().unwrap().to_owned());
    }
    // Every page is followed: 5 trusts, 2 at a time.
    let listed = me
        .run(&["list", "trusts", "--page-size", "2", "--json"], None)
        .await
        .json();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, trusts.iter().map(String::as_str).collect::<Vec<_>>());
    let limited = me
        .run(
            &[
                "list",
                "trusts",
                "--page-size",
                "2",
                "--limit",
                "3",
                "--json",
            ],
            None,
        )
        .await
        .json();
    assert_eq!(limited.as_array().unwrap().len(), 3);
    let table = me.run(&["list", "trusts", "--page-size", "2"], None).await;
    let lines: Vec<&str> = table.assert_ok().stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{}", table.stdout);
    assert!(lines[0].starts_with("ID") && lines[0].contains("NAME"));
    assert!(lines[5].contains(&trusts[4]) && lines[5].contains("trust 4"));
    // Column starts line up.
    let col = lines[0].find("NAME").unwrap();
    assert!(lines.iter().skip(1).all(|l| l[col..].starts_with("trust")));

    // Grant, then bob reads it; the access list shows him; revoke, and he no longer does.
    let trust = &trusts[0];
    assert_eq!(bob_api.get(&format!("/trusts/{trust}")).await.0, 404);
    let ran = me.run(&["grant", trust, &bob, "read"], None).await;
    assert!(
        ran.assert_ok()
            .stdout
            .contains(&format!("Granted READ on trust {trust} to {bob}")),
        "{}",
        ran.stdout
    );
    assert_eq!(bob_api.get(&format!("/trusts/{trust}")).await.0, 200);
    let access = me.run(&["access", trust], None).await;
    access.assert_ok();
    assert!(
        access
            .stdout
            .lines()
            .any(|l| l.contains(&bob) && l.contains("READ")),
        "{}",
        access.stdout
    );
    let json = me.run(&["access", trust, "--json"], None).await.json();
    assert_eq!(json["object"], trust.as_str());
    let ran = me
        .run(
            &["grant", trust, "everyone", "DISCOVER,READ", "--json"],
            None,
        )
        .await;
    let grants = ran.json()["grants"].as_array().unwrap().clone();
    assert!(
        grants.iter().any(|g| g["principal"] == "everyone"),
        "{grants:?}"
    );
    me.run(&["revoke", trust, "everyone"], None)
        .await
        .assert_ok();
    let ran = me.run(&["revoke", trust, &bob, "READ"], None).await;
    assert!(ran.assert_ok().stdout.contains("Revoked READ"));
    assert_eq!(bob_api.get(&format!("/trusts/{trust}")).await.0, 404);

    // Mistakes are explained.
    me.run(&["grant", trust, &bob, "WRITE"], None)
        .await
        .assert_failed_with("not a capability");
    me.run(
        &["grant", "0190b1f3c4d27a8e9b1c2d3e4f506172", &bob, "READ"],
        None,
    )
    .await
    .assert_failed_with("not found");
    // Bob cannot manage alice's trust.
    let bobs = Machine::new();
    bobs.login(None, &server.base, &bob, &[]).await.assert_ok();
    bobs.run(&["grant", trust, &bob, "MANAGE"], None)
        .await
        .assert_failed_with("not found");

    // Types, and requests (none pending).
    let types = me.run(&["types", "--json"], None).await.json();
    assert!(types.as_array().unwrap().iter().any(|t| t["name"] == "app"));
    let ran = me.run(&["requests"], None).await;
    assert!(
        ran.assert_ok()
            .stdout
            .contains("No pending delegation requests")
    );
    me.run(
        &["requests", "grant", "0190b1f3c4d27a8e9b1c2d3e4f506172"],
        None,
    )
    .await
    .assert_failed_with("not found");
}

/// Builds a one-line image on the base image, tags it for `registry` under each name, and
/// pushes them with the docker CLI and the config `dtaas docker-configure` wrote.
async fn push_with_docker(docker: &Path, registry: &str, login: &str, names: &[&str]) {
    base_image().await;
    let context = dockerfile_dir(
        "CMD [\"sh\", \"-c\", \"echo hello from the cli; echo line two; \
         if [ \\\"$DTAAS_SERVABLE_TYPE\\\" = daemon ]; then trap 'exit 0' TERM; sleep 600 & wait; fi\"]",
    );
    let first = format!("{registry}/{login}/{}:1", names[0]);
    let dir = context.path().to_string_lossy().to_string();
    let (ok, out) = docker_cli(docker, &["build", "-q", "-t", &first, &dir], None).await;
    assert!(ok, "docker build: {out}");
    let targets: Vec<String> = names
        .iter()
        .map(|name| format!("{registry}/{login}/{name}:1"))
        .collect();
    for target in &targets[1..] {
        let (ok, out) = docker_cli(docker, &["tag", &first, target], None).await;
        assert!(ok, "docker tag: {out}");
    }
    for target in &targets {
        let (ok, out) = docker_cli(docker, &["push", target], None).await;
        assert!(ok, "docker push {target} with the configured key: {out}");
    }
    for target in &targets {
        let _ = docker_cli(docker, &["rmi", target], None).await;
    }
}

#[tokio::test]
async fn docker_configure_then_docker_push_and_servables_run_followed_and_deleted() {
    let server = TestServer::start().await;
    let (api, login) = user(&server, "dk").await;
    let me = Machine::new();
    me.login(None, &server.base, &login, &[]).await.assert_ok();

    // What docker's config already holds stays.
    std::fs::create_dir_all(me.docker_dir()).unwrap();
    let config = me.docker_dir().join("config.json");
    std::fs::write(
        &config,
        r#"{"auths": {"other.example:1": {"auth": "eDp5"}}, "detachKeys": "ctrl-e,e"}"#,
    )
    .unwrap();
    let ran = me.run(&["docker-configure"], None).await;
    let registry = server.addr.to_string();
    assert!(ran.assert_ok().stdout.contains(&registry), "{}", ran.stdout);
    assert_eq!(mode(&config), 0o600);
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(written["auths"]["other.example:1"]["auth"], "eDp5");
    assert_eq!(written["detachKeys"], "ctrl-e,e");
    assert!(written["auths"][&registry]["auth"].is_string(), "{written}");

    let daemon = unique("clid");
    let pipeline = unique("clip");
    push_with_docker(&me.docker_dir(), &registry, &login, &[&daemon, &pipeline]).await;

    // Two prototypes on the pushed images.
    let (status, body) = api
        .post(
            "/prototypes",
            json!({
                &daemon: {"name": &daemon, "tag": "1", "type": "daemon",
                          "arguments": {"volume_location": "/data", "volume_size": 1}},
                &pipeline: {"name": &pipeline, "tag": "1", "type": "pipeline"},
            }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let listed = me
        .run(&["list", "prototypes", "--type", "daemon", "--json"], None)
        .await
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["name"], daemon.as_str());

    // A pipeline: created, run, its log followed to the end.
    let resources = small().to_string();
    let ran = me
        .run(
            &[
                "servable",
                "create",
                &format!("{pipeline}:1"),
                "--resources",
                &resources,
            ],
            None,
        )
        .await;
    assert!(
        ran.assert_ok().stdout.contains("Created servable"),
        "{}",
        ran.stdout
    );
    me.run(&["servable", "run", &pipeline], None)
        .await
        .assert_ok();
    let followed = me.run(&["servable", "logs", "-f", &pipeline], None).await;
    followed.assert_ok();
    assert_eq!(followed.stdout, "hello from the cli\nline two\n");
    assert!(
        followed.stderr.contains("ended: exited"),
        "{}",
        followed.stderr
    );
    let instances = me
        .run(&["list", "instances", &pipeline, "--json"], None)
        .await
        .json();
    assert_eq!(instances.as_array().unwrap().len(), 1);
    assert_eq!(instances[0]["state"], "exited");

    // A daemon: run, logs, restart, stop, delete, by name.
    let ran = me
        .run(
            &[
                "servable",
                "create",
                &format!("{daemon}:1"),
                "--name",
                "my-daemon",
                "--resources",
                &resources,
                "--json",
            ],
            None,
        )
        .await;
    let servable = ran.json();
    assert_eq!(servable["type"], "daemon");
    let id = servable["id"].as_str().unwrap().to_owned();
    let ran = me
        .run(&["servable", "run", "my-daemon", "--json"], None)
        .await;
    let instance = ran.json();
    assert_eq!(instance["state"], "running", "{instance}");
    let instance_id = instance["id"].as_str().unwrap().to_owned();
    let mut logs = String::new();
    for _ in 0..50 {
        logs = me
            .run(&["servable", "logs", "my-daemon"], None)
            .await
            .stdout;
        if logs.contains("line two") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(logs, "hello from the cli\nline two\n");
    let listed = me
        .run(&["list", "servables", "--type", "daemon"], None)
        .await;
    assert!(listed.assert_ok().stdout.contains("my-daemon"));
    let ran = me.run(&["servable", "restart", &id, "--json"], None).await;
    let restarted = ran.json();
    assert_eq!(restarted["state"], "running", "{restarted}");
    let ran = me
        .run(&["servable", "stop", "my-daemon", "--json"], None)
        .await;
    assert_eq!(ran.json()["state"], "stopped");
    let shown = me.run(&["servable", "show", "my-daemon"], None).await;
    assert!(shown.assert_ok().stdout.contains(&id));
    // An instance id works where a servable does.
    me.run(&["servable", "logs", &instance_id], None)
        .await
        .assert_ok();
    let ran = me.run(&["servable", "delete", "my-daemon"], None).await;
    assert!(
        ran.assert_ok()
            .stdout
            .contains("Deleted servable my-daemon")
    );
    assert_eq!(api.get(&format!("/servables/{id}")).await.0, 404);
    me.run(&["servable", "run", "my-daemon"], None)
        .await
        .assert_failed_with("no servable named");

    // The images the appliance loaded into the engine for the instances carry no label of the
    // installation: removed here.
    for name in [&daemon, &pipeline] {
        let image = format!("dtaas/registry/{login}/{name}:1");
        let _ = docker_cli(&me.docker_dir(), &["rmi", "-f", &image], None).await;
    }
}

/// Registers and confirms a user over HTTPS with curl trusting `ca`.
async fn user_over_tls(https: &str, ca: &Path, prefix: &str) -> String {
    let login = unique(prefix);
    let ca = ca.to_string_lossy().to_string();
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--fail", "--cacert", &ca, "--data-urlencode"])
        .arg(format!("login={login}"))
        .arg("--data-urlencode")
        .arg(format!("password={PASSWORD}"))
        .arg("--data-urlencode")
        .arg(format!("email={login}@example.org"))
        .arg(format!("{https}/register"))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let token: Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = token["token"].as_str().unwrap();
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--fail", "--cacert", &ca])
        .arg(format!("{https}/register/confirm/{login}/{token}"))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    login
}

#[tokio::test]
async fn over_tls_with_the_appliances_authority_or_insecure() {
    let server = TestServer::start_with(|c| c.tls.mode = TlsMode::On).await;
    let ca = server.data_dir().join("tls").join("ca.crt");
    for _ in 0..200 {
        if ca.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let https = format!("https://{}", server.addr);
    let login = user_over_tls(&https, &ca, "tls").await;
    let ca_arg = ca.to_string_lossy().to_string();

    // Unknown authority: refused, with what to do.
    let me = Machine::new();
    me.login(None, &https, &login, &[])
        .await
        .assert_failed_with("--ca-cert");
    assert!(!me.profile_file().exists());
    // Plain HTTP to the TLS port says to try https.
    me.login(None, &format!("http://{}", server.addr), &login, &[])
        .await
        .assert_failed_with("https://");

    // With the authority: kept in the profile, so later commands need no flag.
    me.login(None, &https, &login, &["--ca-cert", &ca_arg])
        .await
        .assert_ok();
    let stored = me.profiles()["profiles"]["default"]["ca_cert"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(Path::new(&stored), ca.as_path());
    let who = me.run(&["whoami", "--json"], None).await;
    assert_eq!(who.assert_ok().json()["login"], login.as_str());
    let exported = me.run(&["export", "--json"], None).await.json();
    assert_eq!(exported["DTAAS_CA_CERT"], ca_arg.as_str());

    // The environment alone, with DTAAS_CA_CERT; and --insecure without any authority.
    let key = me.key_of("default");
    let other = Machine::new();
    let env = [
        ("DTAAS_URL", https.as_str()),
        ("DTAAS_API_KEY", key.as_str()),
    ];
    other
        .run_env(&["whoami"], None, &env)
        .await
        .assert_failed_with("--ca-cert");
    let with_ca = [
        ("DTAAS_URL", https.as_str()),
        ("DTAAS_API_KEY", key.as_str()),
        ("DTAAS_CA_CERT", ca_arg.as_str()),
    ];
    other.run_env(&["whoami"], None, &with_ca).await.assert_ok();
    other
        .run_env(&["--insecure", "whoami"], None, &env)
        .await
        .assert_ok();
    let insecure = Machine::new();
    insecure
        .login(None, &https, &login, &["--insecure"])
        .await
        .assert_ok();
    assert_eq!(
        insecure.profiles()["profiles"]["default"]["insecure"].as_bool(),
        Some(true)
    );
    insecure.run(&["types"], None).await.assert_ok();
    me.run(&["logout"], None).await.assert_ok();
    insecure.run(&["logout"], None).await.assert_ok();
}

#[tokio::test]
async fn the_clients_variables_do_not_trouble_the_server_and_completions_print() {
    let data = tempfile::tempdir().unwrap();
    let server = ProcessServer::spawn(
        data.path(),
        &[
            ("DTAAS_URL", "https://elsewhere.example"),
            ("DTAAS_API_KEY", "dtaas_x"),
            ("DTAAS_PROFILE", "lab"),
            ("DTAAS_CA_CERT", "/nowhere/ca.crt"),
            ("DTAAS_INSECURE", "1"),
        ],
    )
    .await;
    let r = client()
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.kill9().await;

    let me = Machine::new();
    for shell in ["bash", "zsh", "fish"] {
        let ran = me.run(&["completions", shell], None).await;
        ran.assert_ok();
        assert!(ran.stdout.contains("docker-configure"), "{shell}");
    }
    // Every client command explains itself with examples.
    for command in [
        "login",
        "list",
        "grant",
        "servable",
        "docker-configure",
        "export",
    ] {
        let ran = me.run(&[command, "--help"], None).await;
        assert!(ran.assert_ok().stdout.contains("Examples:"), "{command}");
    }
}
