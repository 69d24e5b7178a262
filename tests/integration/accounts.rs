//! Registering, confirming, logging in and out, sessions and API keys (issue 2, seed 003).

use crate::harness::*;
use serde_json::json;

/// The seed's curl flow, with the real curl and a cookie jar file.
#[tokio::test]
async fn seed_curl_flow_with_a_cookie_jar() {
    let server = TestServer::start().await;
    let jar = tempfile::tempdir().unwrap();
    let cookies = jar.path().join("cookies.txt");
    let cookies = cookies.to_str().unwrap();
    let login = unique("me");
    let curl = |args: Vec<String>| async move {
        let out = tokio::process::Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}"])
            .args(&args)
            .output()
            .await
            .expect("curl is installed");
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.parse::<u16>().unwrap(), body.to_owned())
    };
    let s = |x: &str| x.to_owned();

    let (code, body) = curl(vec![
        server.url("/register"),
        s("-X"),
        s("POST"),
        s("-d"),
        format!("login={login}&password=SecreT&email={login}@example.org"),
    ])
    .await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "success");
    let token = v["token"].as_str().unwrap().to_owned();

    let (code, body) = curl(vec![
        server.url(&format!("/register/confirm/{login}/{token}")),
    ])
    .await;
    assert_eq!(code, 200, "{body}");

    let (code, body) = curl(vec![
        server.url("/login"),
        s("-X"),
        s("POST"),
        s("-d"),
        format!("login={login}&password=SecreT"),
        s("-c"),
        s(cookies),
    ])
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        json!({"login": "success"})
    );
    let jar_text = std::fs::read_to_string(cookies).unwrap();
    assert!(jar_text.contains("dtaas_session"), "cookie jar: {jar_text}");
    assert!(
        jar_text.contains("#HttpOnly_"),
        "the session cookie is HttpOnly: {jar_text}"
    );

    let (code, body) = curl(vec![server.url("/"), s("-b"), s(cookies)]).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(&login));

    let (code, _) = curl(vec![
        server.url("/logout"),
        s("-X"),
        s("POST"),
        s("-b"),
        s(cookies),
        s("-c"),
        s(cookies),
    ])
    .await;
    assert_eq!(code, 200);
    let (code, body) = curl(vec![server.url("/"), s("-b"), s(cookies)]).await;
    assert_eq!(code, 401, "logged out: {body}");
}

#[tokio::test]
async fn the_probe_needs_a_login_and_json_works_too() {
    let server = TestServer::start().await;
    let c = server.client();
    let r = c.get(server.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(kabuto_error(&json_of(r).await).contains("not logged in"));

    // JSON bodies work like forms.
    let login = unique("js");
    let r = c
        .post(server.url("/register"))
        .json(
            &json!({"login": login, "password": PASSWORD, "email": format!("{login}@example.org")}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let token = json_of(r).await["token"].as_str().unwrap().to_owned();
    c.get(server.url(&format!("/register/confirm/{login}/{token}")))
        .send()
        .await
        .unwrap();
    let r = c
        .post(server.url("/login"))
        .json(&json!({"login": login, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    assert!(
        !set_cookie.contains("Secure"),
        "no Secure flag over plain HTTP: {set_cookie}"
    );
    let r = c.get(server.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(json_of(r).await["login"], login.as_str());
}

#[tokio::test]
async fn unconfirmed_and_wrong_password_are_refused() {
    let server = TestServer::start().await;
    let c = server.client();
    let login = unique("u");
    let r = c
        .post(server.url("/register"))
        .form(&[
            ("login", login.as_str()),
            ("password", PASSWORD),
            ("email", "u@example.org"),
        ])
        .send()
        .await
        .unwrap();
    let token = json_of(r).await["token"].as_str().unwrap().to_owned();

    let login_with = |password: &'static str| {
        c.post(server.url("/login"))
            .form(&[("login", login.as_str()), ("password", password)])
            .send()
    };
    let r = login_with(PASSWORD).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(kabuto_error(&json_of(r).await).contains("not confirmed"));

    // A wrong token does not confirm, and says nothing about whether the login exists.
    let r = c
        .get(server.url(&format!("/register/confirm/{login}/wrongtoken")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = c
        .get(server.url(&format!("/register/confirm/nobody/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    c.get(server.url(&format!("/register/confirm/{login}/{token}")))
        .send()
        .await
        .unwrap();

    let r = login_with("wrong-password").await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(kabuto_error(&json_of(r).await), "invalid login or password");
    let r = c
        .post(server.url("/login"))
        .form(&[("login", "nobody-at-all"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "unknown login looks like a wrong password");
    let r = login_with(PASSWORD).await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn bad_input_is_400_never_500() {
    let server = TestServer::start().await;
    let c = server.client();
    let cases: Vec<(&str, &str, &str, &str)> = vec![
        (
            "/register",
            "application/x-www-form-urlencoded",
            "login=a&password=SecreT",
            "email",
        ),
        (
            "/register",
            "application/x-www-form-urlencoded",
            "login=a&email=a@b.c",
            "password",
        ),
        (
            "/login",
            "application/x-www-form-urlencoded",
            "login=a",
            "password",
        ),
        ("/login", "application/x-www-form-urlencoded", "", "login"),
        ("/login", "application/json", "{\"login\": ", "JSON"),
        ("/login", "application/json", "[1,2]", "JSON"),
        (
            "/register",
            "application/json",
            "{\"login\": 5, \"password\": \"x\", \"email\": \"y\"}",
            "JSON",
        ),
        (
            "/register",
            "multipart/form-data; boundary=zzz",
            "--zzz\r\nbroken",
            "multipart",
        ),
        (
            "/register",
            "application/x-www-form-urlencoded",
            "login=bad%20name&password=SecreT&email=a@b.c",
            "login",
        ),
        (
            "/register",
            "application/x-www-form-urlencoded",
            "login=ok&password=SecreT&email=nope",
            "email",
        ),
        (
            "/register",
            "application/x-www-form-urlencoded",
            "login=ok&password=123&email=a@b.c",
            "password",
        ),
    ];
    for (path, content_type, body, mentions) in cases {
        let r = c
            .post(server.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{path} {body:?}");
        let v = json_of(r).await;
        let msg = kabuto_error(&v);
        assert!(msg.contains(mentions), "{path} {body:?}: {msg}");
    }
    // /v1 bodies too, in the /v1 dialect.
    let (c, _) = server.user("bad").await;
    let r = c
        .post(server.url("/v1/api-keys"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(v1_error(&json_of(r).await).0, "bad_request");
    let r = c
        .post(server.url("/v1/api-keys"))
        .json(&json!({"name": "k", "surprise": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "unknown fields are named");
    assert!(v1_error(&json_of(r).await).1.contains("surprise"));
}

#[tokio::test]
async fn duplicates_are_409() {
    let server = TestServer::start().await;
    let c = server.client();
    let login = unique("dup");
    let register = |login: String, email: String| {
        c.post(server.url("/register"))
            .form(&[
                ("login", login),
                ("password", PASSWORD.into()),
                ("email", email),
            ])
            .send()
    };
    assert_eq!(
        register(login.clone(), format!("{login}@example.org"))
            .await
            .unwrap()
            .status(),
        200
    );
    let r = register(login.to_uppercase(), "other@example.org".into())
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "logins are unique regardless of case");
    assert!(kabuto_error(&json_of(r).await).contains("taken"));
    let r = register(unique("other"), format!("{}@EXAMPLE.org", login))
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "emails are unique regardless of case");
    assert!(kabuto_error(&json_of(r).await).contains("email"));
}

#[tokio::test]
async fn failed_logins_are_rate_limited() {
    let server = TestServer::start().await;
    let (_, login) = server.user("rl").await;
    let c = server.client();
    let attempt = |password: &'static str| {
        c.post(server.url("/login"))
            .form(&[("login", login.as_str()), ("password", password)])
            .send()
    };
    for _ in 0..server.config.login_limit.per_login {
        assert_eq!(attempt("wrong-one").await.unwrap().status(), 401);
    }
    let r = attempt(PASSWORD).await.unwrap();
    assert_eq!(r.status(), 429, "even the right password waits");
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= server.config.login_limit.window_secs);
    assert!(kabuto_error(&json_of(r).await).contains("retry"));

    // When the window has passed, the right password works again.
    server
        .clock
        .advance(chrono::Duration::seconds(retry as i64 + 1));
    assert_eq!(attempt(PASSWORD).await.unwrap().status(), 200);
}

#[tokio::test]
async fn sessions_survive_a_restart_and_expire() {
    let server = TestServer::start().await;
    let (c, login) = server.user("rs").await;
    let stopped = server.stop().await;
    let server = stopped.restart().await;
    let r = c.get(server.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the session lives in the database");
    assert_eq!(json_of(r).await["login"], login.as_str());

    // Idle timeout.
    let idle = server.config.sessions.idle_timeout_secs as i64;
    server.clock.advance(chrono::Duration::seconds(idle - 10));
    assert_eq!(
        c.get(server.url("/")).send().await.unwrap().status(),
        200,
        "still within idle"
    );
    server.clock.advance(chrono::Duration::seconds(idle - 10));
    assert_eq!(
        c.get(server.url("/")).send().await.unwrap().status(),
        200,
        "use keeps it alive"
    );
    server.clock.advance(chrono::Duration::seconds(idle + 1));
    let r = c.get(server.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 401, "idle too long");
    assert!(kabuto_error(&json_of(r).await).contains("log in again"));
}

#[tokio::test]
async fn sessions_end_at_their_absolute_lifetime() {
    let server = TestServer::start_with(|c| {
        c.sessions.idle_timeout_secs = 3600;
        c.sessions.lifetime_secs = 3 * 3600;
    })
    .await;
    let (c, _) = server.user("abs").await;
    for _ in 0..5 {
        server.clock.advance(chrono::Duration::minutes(35));
        assert_eq!(c.get(server.url("/")).send().await.unwrap().status(), 200);
    }
    server.clock.advance(chrono::Duration::minutes(20));
    assert_eq!(
        c.get(server.url("/")).send().await.unwrap().status(),
        401,
        "3 h are over"
    );
}

#[tokio::test]
async fn api_keys_are_shown_once_listed_and_revoked() {
    let server = TestServer::start().await;
    let (c, login) = server.user("key").await;
    let r = c
        .post(server.url("/v1/api-keys"))
        .json(&json!({"name": "ci"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created = json_of(r).await;
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("dtaas_"));
    assert_eq!(id.len(), 32);

    let anon = reqwest::Client::new();
    let r = anon
        .get(server.url("/v1/me"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(json_of(r).await["login"], login.as_str());
    // The kabuto face accepts the key too.
    let r = anon
        .get(server.url("/"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let list = json_of(c.get(server.url("/v1/api-keys")).send().await.unwrap()).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    assert!(
        list[0].get("key").is_none(),
        "the secret is shown once only"
    );
    assert!(!list.to_string().contains(&key));

    // Another user can neither see nor revoke it.
    let (other, _) = server.user("other").await;
    let r = other
        .delete(server.url(&format!("/v1/api-keys/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(v1_error(&json_of(r).await).0, "not_found");
    assert_eq!(
        json_of(other.get(server.url("/v1/api-keys")).send().await.unwrap()).await,
        json!([])
    );

    let r = c
        .delete(server.url(&format!("/v1/api-keys/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = anon
        .get(server.url("/v1/me"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "revoked");
    assert_eq!(v1_error(&json_of(r).await).0, "unauthorized");
    let r = anon
        .get(server.url("/v1/me"))
        .bearer_auth("dtaas_made-up")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = anon
        .get(server.url("/v1/me"))
        .header("authorization", "Digest abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn api_keys_expire() {
    let server = TestServer::start().await;
    let (c, _) = server.user("exp").await;
    let created = json_of(
        c.post(server.url("/v1/api-keys"))
            .json(&json!({"name": "short", "expires_in_days": 1}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let key = created["key"].as_str().unwrap();
    let anon = reqwest::Client::new();
    assert_eq!(
        anon.get(server.url("/v1/me"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    server.clock.advance(chrono::Duration::hours(25));
    let r = anon
        .get(server.url("/v1/me"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(v1_error(&json_of(r).await).1.contains("expired"));
}

#[tokio::test]
async fn passwords_are_stored_as_argon2id_phc_strings() {
    let server = TestServer::start().await;
    let (_, login) = server.user("phc").await;
    let stopped = server.stop().await;
    let store = dtaas::domains::open_store(stopped.path()).unwrap();
    let user = dtaas::domains::accounts::find_user_by_login(&store, &login)
        .unwrap()
        .unwrap();
    assert!(
        user.password_hash.starts_with("$argon2id$v=19$m="),
        "{}",
        user.password_hash
    );
    assert!(!user.password_hash.contains(PASSWORD));
    assert!(dtaas::domains::accounts::verify_password(
        PASSWORD,
        &user.password_hash
    ));
}

#[tokio::test]
async fn closed_registration_refuses_newcomers() {
    let server =
        TestServer::start_with(|c| c.registration = dtaas::core::config::RegistrationMode::Closed)
            .await;
    let r = server
        .client()
        .post(server.url("/register"))
        .form(&[
            ("login", "newbie"),
            ("password", PASSWORD),
            ("email", "n@example.org"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(kabuto_error(&json_of(r).await).contains("closed"));
}

#[tokio::test]
async fn unknown_routes_are_404_in_each_dialect() {
    let server = TestServer::start().await;
    let c = server.client();
    let r = c.get(server.url("/no/such/thing")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    kabuto_error(&json_of(r).await);
    let r = c.get(server.url("/v1/no-such-thing")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(v1_error(&json_of(r).await).0, "not_found");
}

/// What each face that takes a password answers: kabuto's `POST /login`, the app proxy's
/// sign-in page on an app host (`/.dtaas/login`), and the registry's Basic credentials.
async fn password_answers(server: &TestServer, login: &str) -> Vec<(&'static str, u16, String)> {
    let mut out = Vec::new();
    let r = server
        .client()
        .post(server.url("/login"))
        .form(&[("login", login), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = json_of(r).await;
    out.push((
        "kabuto /login",
        status,
        body["error"].as_str().unwrap_or("").to_owned(),
    ));

    let host = format!("{}.localhost", dtaas::core::id::Id::new());
    let app_host = reqwest::Client::builder()
        .no_proxy()
        .resolve(&host, server.addr)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = app_host
        .post(format!("http://{host}:{}/.dtaas/login", server.addr.port()))
        .form(&[("login", login), ("password", PASSWORD), ("next", "/")])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_default();
    out.push(("proxy sign-in", status, message));

    let r = server
        .client()
        .get(server.url("/v2/"))
        .basic_auth(login, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = json_of(r).await;
    let error = &body["errors"][0];
    let message = format!(
        "{}: {}",
        error["code"].as_str().unwrap_or(""),
        error["message"].as_str().unwrap_or("")
    );
    out.push(("registry Basic", status, message));
    out
}

/// The one password-login sequence: an account not confirmed yet, then a disabled one, gets
/// the same answer (403, saying why) from every face that takes a password; in between, the
/// same password works on all three.
#[tokio::test]
async fn unconfirmed_and_disabled_accounts_get_one_answer_on_every_face() {
    let server = TestServer::start().await;
    let c = server.client();
    let login = unique("one");
    let r = c
        .post(server.url("/register"))
        .form(&[
            ("login", login.as_str()),
            ("password", PASSWORD),
            ("email", &format!("{login}@example.org")),
        ])
        .send()
        .await
        .unwrap();
    let token = json_of(r).await["token"].as_str().unwrap().to_owned();

    for (face, status, message) in password_answers(&server, &login).await {
        assert_eq!(status, 403, "{face}: {message}");
        assert!(message.contains("not confirmed yet"), "{face}: {message}");
    }
    let r = c
        .get(server.url(&format!("/register/confirm/{login}/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let answers = password_answers(&server, &login).await;
    assert_eq!(answers[0].1, 200, "{answers:?}");
    assert_eq!(
        answers[1].1, 303,
        "the sign-in page sends the browser on: {answers:?}"
    );
    assert_eq!(answers[2].1, 200, "{answers:?}");

    let dir = server.data_dir();
    let out = dtaas_cli(
        &[
            "admin",
            "--data-dir",
            dir.to_str().unwrap(),
            "disable-user",
            &login,
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    for (face, status, message) in password_answers(&server, &login).await {
        assert_eq!(status, 403, "{face}: {message}");
        assert!(message.contains("disabled"), "{face}: {message}");
    }
}

/// A `<namespace>/...` repository name belongs to the login whose slug the namespace is,
/// whether or not that user exists yet; logins that differ only in case, `.`, `_` or `-` would
/// share a namespace, so the second one is refused at registration.
#[tokio::test]
async fn registry_namespaces_follow_logins() {
    let server = TestServer::start().await;
    let (_c, alice) = server.user("ns").await;
    let start_upload = |login: &str, repo: &str| {
        server
            .client()
            .post(server.url(&format!("/v2/{repo}/blobs/uploads/")))
            .basic_auth(login, Some(PASSWORD))
            .send()
    };
    let future_login = unique("later");
    let r = start_upload(&alice, &format!("{future_login}/taken-early"))
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        403,
        "a namespace of a login nobody has yet is reserved"
    );
    let body = json_of(r).await;
    assert_eq!(body["errors"][0]["code"], "DENIED", "{body}");
    let r = start_upload(&alice, &format!("{alice}/mine"))
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = start_upload(&alice, "no-namespace").await.unwrap();
    assert_eq!(
        r.status(),
        202,
        "names without '/' are first come, first served"
    );

    let c = server.client();
    register_confirm(&server.base, &c, &future_login).await;
    let r = start_upload(&future_login, &format!("{future_login}/taken-early"))
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "the namespace's own user");

    // `a.b` after `a_b`: one namespace, refused.
    let base = unique("twin");
    let c = server.client();
    register_confirm(&server.base, &c, &format!("{base}_x")).await;
    let r = c
        .post(server.url("/register"))
        .form(&[
            ("login", format!("{base}.X").as_str()),
            ("password", PASSWORD),
            ("email", &format!("{base}-dot@example.org")),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert!(kabuto_error(&json_of(r).await).contains("namespace"));
}

/// Issue 11: `expires_in_days: 95005449` panicked in the handler (the connection dropped) and
/// `3000000` stored the year 10240, which RFC 3339 cannot write (the key list then broke its
/// schema). `expires_in_days` is from 1 to 365000, as the OpenAPI document states, and a key
/// still cannot expire after 9999-12-31T23:59:59Z (the clock moved to the end of that year).
#[tokio::test]
async fn an_api_key_expires_within_the_documented_bounds_and_the_year_9999() {
    let server = TestServer::start().await;
    let (c, _) = server.user("expiry").await;
    let api = V1::new(&server, c);
    for days in [0, 365_001, 95_005_449_u64, 3_000_000, u64::from(u32::MAX)] {
        let (status, body) = api
            .post("/api-keys", json!({"name": "b", "expires_in_days": days}))
            .await;
        assert_eq!(status, 400, "{days}: {body}");
        let (code, message) = v1_error(&body);
        assert_eq!(code, "bad_request");
        assert!(message.contains("from 1 to 365000"), "{message}");
    }
    // Beyond u32, or a fraction: not the number the document describes.
    for days in [json!(4_294_967_296_u64), json!(1.5), json!(-1)] {
        let (status, body) = api
            .post("/api-keys", json!({"name": "b", "expires_in_days": days}))
            .await;
        assert_eq!(status, 400, "{days}: {body}");
        assert_eq!(v1_error(&body).0, "bad_request");
    }
    let (status, body) = api
        .post(
            "/api-keys",
            json!({"name": "b", "expires_in_days": 365_000}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, list) = api.get("/api-keys").await;
    assert_eq!(status, 200, "{list}");

    // Sessions do not live for millennia: a key without expiry does.
    let api = V1::with_key(&server, &api.new_key().await);
    let now = dtaas::core::clock::Clock::now(server.clock.as_ref());
    server
        .clock
        .advance(dtaas::core::clock::latest() - now - chrono::Duration::days(10));
    let (status, body) = api
        .post("/api-keys", json!({"name": "b", "expires_in_days": 10}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(
        body["expires"].as_str().unwrap().starts_with("9999-12-"),
        "{body}"
    );
    let (status, body) = api
        .post("/api-keys", json!({"name": "b", "expires_in_days": 11}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        v1_error(&body)
            .1
            .starts_with("expires_in_days must be at most 10"),
        "{body}"
    );
    let (status, list) = api.get("/api-keys").await;
    assert_eq!(status, 200, "{list}");
    assert!(list.to_string().contains("\"9999-12-"), "{list}");
}

/// Issue 11 (schemathesis): a JSON Schema `integer` may be written `5.0`, which serde refused
/// for an integer field; and a name was counted in bytes after trimming, where the document
/// counts characters as sent. Names are 1-200 characters, not all whitespace, kept trimmed.
#[tokio::test]
async fn api_keys_take_whole_numbers_however_written_and_names_by_the_documented_rule() {
    let server = TestServer::start().await;
    let (c, _) = server.user("keynames").await;
    let api = V1::new(&server, c);
    let (status, body) = api
        .post("/api-keys", json!({"name": "a", "expires_in_days": 30.0}))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = api
        .post("/api-keys", json!({"name": "é".repeat(200)}))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = api
        .post("/api-keys", json!({"name": "  spaced\u{3000}"}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], "spaced");
    for name in [
        String::new(),
        " \t\u{3000}\u{85}".to_owned(),
        "é".repeat(201),
        format!(" {}", "a".repeat(200)),
    ] {
        let (status, body) = api.post("/api-keys", json!({ "name": &name })).await;
        assert_eq!(status, 400, "{name:?}: {body}");
        let (code, message) = v1_error(&body);
        assert_eq!(code, "bad_request");
        assert_eq!(message, "name must be 1-200 characters, not all whitespace");
    }
}
