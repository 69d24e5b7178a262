//! `dtaas admin` against a running server (its unix socket) and a stopped one (its database),
//! with the real binary.

use crate::harness::*;
use serde_json::json;

async fn admin(
    dir: &std::path::Path,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    let mut full = vec!["admin", "--data-dir", dir.to_str().unwrap()];
    full.extend_from_slice(args);
    let out = dtaas_cli(&full, stdin).await;
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn login(server: &TestServer, login: &str, password: &str) -> (u16, reqwest::Client) {
    let c = server.client();
    let r = c
        .post(server.url("/login"))
        .form(&[("login", login), ("password", password)])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), c)
}

#[tokio::test]
async fn bootstrap_an_admin_on_a_running_server() {
    let server = TestServer::start().await;
    let dir = server.data_dir();
    let boss = unique("boss");
    let (ok, out, err) = admin(
        &dir,
        &["create-user", &boss, "--admin", "--password-stdin"],
        Some("hunter2hunter2\n"),
    )
    .await;
    assert!(ok, "{out}{err}");
    assert!(out.contains(&format!("created admin {boss}")), "{out}");
    assert!(!err.contains("directly"), "went through the socket: {err}");

    let (status, c) = login(&server, &boss, "hunter2hunter2").await;
    assert_eq!(status, 200, "admin-created accounts are confirmed");
    let me = json_of(c.get(server.url("/v1/me")).send().await.unwrap()).await;
    assert_eq!(me["admin"], true);

    // A generated password is printed once and works.
    let helper = unique("helper");
    let (ok, out, _) = admin(&dir, &["create-user", &helper], None).await;
    assert!(ok);
    let password = out.trim().rsplit("password: ").next().unwrap().to_owned();
    assert_eq!(login(&server, &helper, &password).await.0, 200);

    // Duplicates are refused with the reason.
    let (ok, _, err) = admin(&dir, &["create-user", &boss], None).await;
    assert!(!ok);
    assert!(err.contains("taken"), "{err}");

    // Disable ends sessions and refuses logins; enable restores.
    let (ok, _, _) = admin(&dir, &["disable-user", &boss], None).await;
    assert!(ok);
    assert_eq!(c.get(server.url("/")).send().await.unwrap().status(), 401);
    assert_eq!(login(&server, &boss, "hunter2hunter2").await.0, 403);
    let (ok, _, _) = admin(&dir, &["enable-user", &boss], None).await;
    assert!(ok);
    assert_eq!(login(&server, &boss, "hunter2hunter2").await.0, 200);

    // Reset password: the sessions of the old password end, on every face, and so does a
    // registry credential remembered from before.
    let (status, before) = login(&server, &boss, "hunter2hunter2").await;
    assert_eq!(status, 200);
    assert_eq!(
        before.get(server.url("/")).send().await.unwrap().status(),
        200
    );
    let registry = |password: &'static str| {
        server
            .client()
            .get(server.url("/v2/"))
            .basic_auth(&boss, Some(password))
            .send()
    };
    assert_eq!(registry("hunter2hunter2").await.unwrap().status(), 200);
    let (ok, _, _) = admin(
        &dir,
        &["reset-password", &boss, "--password-stdin"],
        Some("another-pass\n"),
    )
    .await;
    assert!(ok);
    assert_eq!(
        before.get(server.url("/")).send().await.unwrap().status(),
        401,
        "the session made with the old password ended"
    );
    assert_eq!(
        before
            .get(server.url("/v1/me"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(registry("hunter2hunter2").await.unwrap().status(), 401);
    assert_eq!(login(&server, &boss, "hunter2hunter2").await.0, 401);
    assert_eq!(login(&server, &boss, "another-pass").await.0, 200);
    assert_eq!(registry("another-pass").await.unwrap().status(), 200);

    // Registration mode, live.
    let (ok, out, _) = admin(&dir, &["set-registration", "closed"], None).await;
    assert!(ok, "{out}");
    let r = server
        .client()
        .post(server.url("/register"))
        .form(&[
            ("login", "late"),
            ("password", PASSWORD),
            ("email", "late@example.org"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (ok, out, _) = admin(&dir, &["list-users"], None).await;
    assert!(ok);
    assert!(out.contains("registration: closed"), "{out}");
    assert!(out.contains(&boss) && out.contains("admin"), "{out}");

    // Unknown users are named.
    let (ok, _, err) = admin(&dir, &["disable-user", "ghost"], None).await;
    assert!(!ok);
    assert!(err.contains("ghost"), "{err}");
}

#[tokio::test]
async fn bootstrap_an_admin_on_a_stopped_server() {
    let server = TestServer::start().await;
    let stopped = server.stop().await;
    let dir = stopped.path().to_path_buf();
    assert!(
        !dir.join("admin.sock").exists(),
        "the socket goes with the server"
    );
    let boss = unique("boss");
    let (ok, out, err) = admin(
        &dir,
        &["create-user", &boss, "--admin", "--password-stdin"],
        Some("hunter2hunter2\n"),
    )
    .await;
    assert!(ok, "{out}{err}");
    assert!(
        err.contains("directly"),
        "no server: the database itself: {err}"
    );

    let server = stopped.restart().await;
    let (status, c) = login(&server, &boss, "hunter2hunter2").await;
    assert_eq!(status, 200);
    assert_eq!(
        json_of(c.get(server.url("/v1/me")).send().await.unwrap()).await["admin"],
        json!(true)
    );
}

#[tokio::test]
async fn a_second_server_on_the_same_data_directory_fails_at_once() {
    let server = TestServer::start().await;
    let err = dtaas::server::open(
        server.config.clone(),
        std::sync::Arc::new(dtaas::core::clock::SystemClock),
    )
    .err()
    .expect("the data directory is locked");
    assert!(
        err.to_string().contains("in use by another dtaas process"),
        "{err}"
    );

    // And the real binary says so and exits non-zero.
    let dir = server.data_dir();
    let out = dtaas_cli(
        &[
            "serve",
            "--data-dir",
            dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        None,
    )
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another dtaas process"), "{err}");
}

#[tokio::test]
async fn admin_commands_refuse_a_data_directory_without_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("not-the-data-dir");
    let (ok, out, err) = admin(&nowhere, &["list-users"], None).await;
    assert!(!ok, "{out}");
    assert!(err.contains("no database at"), "{err}");
    assert!(err.contains("--data-dir"), "{err}");
    assert!(!nowhere.exists(), "nothing is created");
    let (ok, _, err) = admin(&nowhere, &["create-user", "someone"], None).await;
    assert!(!ok);
    assert!(err.contains("no database at"), "{err}");
    assert!(!nowhere.exists());
}

#[tokio::test]
async fn global_flags_go_before_or_after_the_subcommand() {
    let server = TestServer::start().await;
    let stopped = server.stop().await;
    let dir = stopped.path().to_str().unwrap().to_owned();
    let someone = unique("flags");
    let before = dtaas_cli(
        &["--data-dir", &dir, "admin", "create-user", &someone],
        None,
    )
    .await;
    assert!(
        before.status.success(),
        "{}",
        String::from_utf8_lossy(&before.stderr)
    );
    let after = dtaas_cli(&["admin", "list-users", "--data-dir", &dir], None).await;
    assert!(after.status.success());
    assert!(String::from_utf8_lossy(&after.stdout).contains(&someone));
    // --config too: a file naming the data directory is enough.
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), format!("data_dir = {dir:?}\n")).unwrap();
    let path = config.path().to_str().unwrap();
    let via_file = dtaas_cli(&["admin", "list-users", "--config", path], None).await;
    assert!(
        String::from_utf8_lossy(&via_file.stdout).contains(&someone),
        "{}",
        String::from_utf8_lossy(&via_file.stderr)
    );
    let via_file = dtaas_cli(&["--config", path, "admin", "list-users"], None).await;
    assert!(String::from_utf8_lossy(&via_file.stdout).contains(&someone));
}

/// `dtaas admin rotate-oidc-key` replaces the signing key at once; the old one stays in the
/// JWKS (its tokens still verify) and the admin log keeps the action.
#[tokio::test]
async fn the_oidc_signing_key_is_rotated_from_the_command_line() {
    let server = TestServer::start().await;
    let jwks = || async {
        let v = json_of(
            server
                .client()
                .get(server.url("/oidc/jwks"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let mut kids: Vec<String> = v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect();
        kids.sort();
        kids
    };
    let before = jwks().await;
    assert_eq!(before.len(), 1, "the JWKS makes the first key");
    let (ok, out, err) = admin(&server.data_dir(), &["rotate-oidc-key"], None).await;
    assert!(ok, "{out}{err}");
    let kid = out
        .split_whitespace()
        .nth(5)
        .map(|k| k.trim_end_matches(':').to_owned())
        .unwrap_or_default();
    assert!(out.starts_with("new OpenID Connect signing key"), "{out}");
    let mut expected = vec![before[0].clone(), kid];
    expected.sort();
    assert_eq!(jwks().await, expected, "{out}");
    let (log, _) = dtaas::domains::accounts::admin_actions(&server.app.store, None, 10).unwrap();
    assert!(
        log.iter()
            .any(|a| a.action == "rotate-oidc-key" && a.admin == "dtaas admin"),
        "the admin log keeps it"
    );
}
