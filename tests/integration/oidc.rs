//! The OpenID Connect provider (issue 16) against a real server and a running app: the code
//! flow with PKCE driven by hand as a relying party would, the ID token's signature checked by
//! PyJWT (Debian's python3-jwt) against the JWKS, and every refusal the flow owes; a relying
//! party built on Authlib (Debian's python3-authlib, `oidc_rp.py`) through the whole flow.

use crate::harness::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::redirect::Policy;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A browser: cookies kept, redirects shown rather than followed.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap()
}

async fn sign_in(server: &TestServer, login: &str) -> reqwest::Client {
    let b = browser();
    let r = b
        .post(server.url("/login"))
        .form(&[("login", login), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "sign-in of {login}");
    b
}

/// The claims of `token` if PyJWT verifies it (ES256) with the key of the JWKS its header
/// names, for audience `aud` and issuer `iss`; the error otherwise.
fn pyjwt(jwks: &Value, token: &str, aud: &str, iss: &str) -> Result<Value, String> {
    const SCRIPT: &str = r#"
import json, sys, jwt
jwks, token, aud, iss = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
kid = jwt.get_unverified_header(token)["kid"]
key = next(k for k in jwks["keys"] if k["kid"] == kid)
claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=["ES256"], audience=aud, issuer=iss)
print(json.dumps(claims))
"#;
    let out = std::process::Command::new("/usr/bin/python3")
        .args(["-c", SCRIPT, &jwks.to_string(), token, aud, iss])
        .output()
        .expect("/usr/bin/python3 (with python3-jwt)");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// A PKCE verifier and its S256 challenge.
fn pkce() -> (String, String) {
    let verifier = format!("{}{}", unique("v"), "-abcdefghijklmnopqrstuvwxyz0123456789");
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn authorize_url(
    server: &TestServer,
    client: &str,
    redirect: &str,
    challenge: Option<&str>,
) -> String {
    let mut q = vec![
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", redirect),
        ("scope", "openid profile email"),
        ("state", "st ate/1"),
        ("nonce", "n-0S6_WzA2Mj"),
    ];
    if let Some(c) = challenge {
        q.push(("code_challenge", c));
        q.push(("code_challenge_method", "S256"));
    }
    format!(
        "{}?{}",
        server.url("/oidc/authorize"),
        serde_urlencoded::to_string(&q).unwrap()
    )
}

fn location(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_owned()
}

/// The query of a redirect to `redirect`.
fn query_of(loc: &str, redirect: &str) -> Vec<(String, String)> {
    let rest = loc
        .strip_prefix(redirect)
        .unwrap_or_else(|| panic!("{loc}"));
    serde_urlencoded::from_str(rest.trim_start_matches('?')).unwrap()
}

/// Where the sign-in page a response redirects to sends the browser back (decoded).
fn sent_to_sign_in(r: &reqwest::Response) -> String {
    assert_eq!(r.status(), 303);
    let to = location(r);
    let next = to
        .strip_prefix("/login?next=")
        .unwrap_or_else(|| panic!("not the sign-in page: {to}"));
    serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("n={next}"))
        .unwrap()
        .remove(0)
        .1
}

fn param(q: &[(String, String)], name: &str) -> Option<String> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// Goes through authorize (consent given before) and returns the code.
async fn code_for(
    b: &reqwest::Client,
    server: &TestServer,
    client: &str,
    redirect: &str,
    challenge: &str,
) -> String {
    let r = b
        .get(authorize_url(server, client, redirect, Some(challenge)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let q = query_of(&location(&r), redirect);
    assert_eq!(param(&q, "state").as_deref(), Some("st ate/1"));
    param(&q, "code").unwrap()
}

async fn token(server: &TestServer, auth: (&str, &str), form: &[(&str, &str)]) -> (u16, Value) {
    let r = client()
        .post(server.url("/oidc/token"))
        .basic_auth(auth.0, Some(auth.1))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), json_of(r).await)
}

/// An app (busybox httpd) with the proxy's access control off, running: its id, its
/// instance's and its client secret.
async fn running_app(server: &TestServer, api: &V1, login: &str) -> (String, String, String) {
    let name = "oidc-rp".to_owned();
    let dir = dockerfile_dir("CMD [\"httpd\", \"-f\", \"-p\", \"8080\"]");
    push_image(server, login, Some(dir.path()), &name, "1").await;
    let manifest = json!({ &name: {"name": &name, "tag": "1", "type": "app"} });
    let (status, body) = api.post("/prototypes", manifest).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = api
        .post(
            "/servables",
            json!({"prototype": format!("{name}:1"), "name": "signin", "access_control": false, "resources": small()}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let app_id = body["id"].as_str().unwrap().to_owned();
    let (status, run) = api
        .post(&format!("/servables/{app_id}/run"), json!({}))
        .await;
    assert_eq!(status, 201, "{run}");
    let instance = run["id"].as_str().unwrap().to_owned();
    wait_instance(api, &instance, 60, |i| i["state"] == "running").await;
    let secret = std::fs::read_to_string(
        server
            .data_dir()
            .join("servables")
            .join(&app_id)
            .join("secrets")
            .join("oidc-client-secret"),
    )
    .unwrap();
    (app_id, instance, secret)
}

/// The claims of a JWT (unverified: the tests that need its signature checked use PyJWT).
fn claims_of(token: &str) -> Value {
    let claims = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap()
}

#[tokio::test]
async fn an_app_signs_its_users_in_with_the_code_flow() {
    let server = TestServer::start().await;
    let (api, login) = v1_user(&server, "oidc").await;
    let (_, me) = api.get("/me").await;
    let user_id = me["id"].as_str().unwrap().to_owned();

    // An app with the proxy's access control off.
    let (app_id, instance, _) = running_app(&server, &api, &login).await;

    // The client secret is mounted next to the API key; the issuer is in the environment.
    let secrets = server
        .data_dir()
        .join("servables")
        .join(&app_id)
        .join("secrets");
    let secret = std::fs::read_to_string(secrets.join("oidc-client-secret")).unwrap();
    let key_mode = std::fs::metadata(secrets.join("api-key")).unwrap();
    let secret_mode = std::fs::metadata(secrets.join("oidc-client-secret")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        secret_mode.permissions().mode() & 0o777,
        key_mode.permissions().mode() & 0o777
    );
    let container =
        dtaas::engine::instances::container_name(dtaas::core::id::Id::parse(&instance).unwrap());
    let out = std::process::Command::new("docker")
        .args(["inspect", "--format", "{{json .Config.Env}}", &container])
        .output()
        .unwrap();
    let env: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    let issuer = server.url("").trim_end_matches('/').to_owned();
    assert!(
        env.contains(&format!("DTAAS_OIDC_ISSUER={issuer}")),
        "{env:?}"
    );
    assert!(
        env.contains(&format!("DTAAS_OIDC_CLIENT_ID={app_id}")),
        "{env:?}"
    );

    // Discovery names the appliance's own origin.
    let disco = json_of(
        client()
            .get(server.url("/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(disco["issuer"], issuer.as_str());
    assert_eq!(disco["code_challenge_methods_supported"], json!(["S256"]));
    let port = server.addr.port();
    let redirect = format!("http://{app_id}.localhost:{port}/callback");
    let creds = (app_id.as_str(), secret.as_str());

    // Not signed in: the sign-in page, which comes back.
    let (verifier, challenge) = pkce();
    let r = browser()
        .get(authorize_url(&server, &app_id, &redirect, Some(&challenge)))
        .send()
        .await
        .unwrap();
    let next = sent_to_sign_in(&r);
    assert!(next.starts_with("/oidc/authorize?"), "{next}");

    // Signed in: the consent page first, then the code.
    let b = sign_in(&server, &login).await;
    let r = b
        .get(authorize_url(&server, &app_id, &redirect, Some(&challenge)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains(&format!(
            "form-action 'self' http://{app_id}.localhost:{port}"
        )),
        "{csp}"
    );
    let page = r.text().await.unwrap();
    assert!(page.contains("Allow") && page.contains("signin"), "{page}");
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let form = [
        ("csrf", csrf.as_str()),
        ("decision", "allow"),
        ("response_type", "code"),
        ("client_id", &app_id),
        ("redirect_uri", &redirect),
        ("scope", "openid"),
        ("state", "st ate/1"),
        ("nonce", "n-0S6_WzA2Mj"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ];
    // Without this session's CSRF token: refused.
    let mut forged = form;
    forged[0].1 = "forged";
    let r = b
        .post(server.url("/oidc/authorize"))
        .form(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = b
        .post(server.url("/oidc/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let q = query_of(&location(&r), &redirect);
    assert_eq!(param(&q, "iss").as_deref(), Some(issuer.as_str()));
    let code = param(&q, "code").unwrap();

    // A wrong client secret: 401.
    let (status, body) = token(
        &server,
        (&app_id, "wrong"),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );

    // The exchange (client_secret_basic).
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    let (status, tokens) = token(&server, creds, &exchange).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    let id_token = tokens["id_token"].as_str().unwrap().to_owned();
    let jwks = json_of(client().get(server.url("/oidc/jwks")).send().await.unwrap()).await;
    let claims = pyjwt(&jwks, &id_token, &app_id, &issuer).unwrap();
    assert_eq!(claims["sub"], user_id.as_str());
    assert_eq!(claims["preferred_username"], login.as_str());
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(claims["email_verified"], true);
    assert!(
        claims["email"].is_string() && claims["name"].is_string(),
        "{claims}"
    );
    let caps = claims["dtaas_capabilities"].as_array().unwrap();
    assert!(
        caps.contains(&json!("REQUEST")) && caps.contains(&json!("MANAGE")),
        "{claims}"
    );
    // Another audience: PyJWT refuses it.
    assert!(pyjwt(&jwks, &id_token, "someone-else", &issuer).is_err());

    // The code again: refused.
    let (status, body) = token(&server, creds, &exchange).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );

    // The consent is remembered. A wrong redirect_uri at the token endpoint: refused (and the
    // code is spent).
    let (verifier2, challenge2) = pkce();
    let code = code_for(&b, &server, &app_id, &redirect, &challenge2).await;
    let other = format!("http://{app_id}.localhost:{port}/elsewhere");
    let (status, body) = token(
        &server,
        creds,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &other),
            ("code_verifier", &verifier2),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );

    // Without the PKCE verifier: refused. The path form of the app's address is good too, and
    // client_secret_post.
    let path_redirect = format!("{issuer}/apps/{app_id}/cb?x=1");
    let code = code_for(&b, &server, &app_id, &path_redirect, &challenge2).await;
    let r = client()
        .post(server.url("/oidc/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &path_redirect),
            ("client_id", &app_id),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(json_of(r).await["error"], "invalid_grant");
    let code = code_for(&b, &server, &app_id, &path_redirect, &challenge2).await;
    let r = client()
        .post(server.url("/oidc/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &path_redirect),
            ("code_verifier", &verifier2),
            ("client_id", &app_id),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A request without PKCE goes back to the app with an error; a redirect_uri that is not the
    // app's gets an error page and no redirect.
    let r = b
        .get(authorize_url(&server, &app_id, &redirect, None))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let q = query_of(&location(&r), &redirect);
    assert_eq!(param(&q, "error").as_deref(), Some("invalid_request"));
    assert_eq!(param(&q, "state").as_deref(), Some("st ate/1"));
    for bad in [
        "http://evil.example/callback".to_owned(),
        format!("http://{app_id}.localhost.evil.example:{port}/cb"),
        format!("{issuer}/apps/{app_id}/../other/cb"),
        format!("{issuer}/apps/{}/cb", "0".repeat(32)),
        format!("{redirect}#frag"),
    ] {
        let r = b
            .get(authorize_url(&server, &app_id, &bad, Some(&challenge)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert!(r.headers().get("location").is_none(), "{bad}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }

    // userinfo with the access token.
    let r = client()
        .get(server.url("/oidc/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let info = json_of(r).await;
    assert_eq!(
        (info["sub"].as_str(), info["preferred_username"].as_str()),
        (Some(user_id.as_str()), Some(login.as_str()))
    );
    let r = client()
        .get(server.url("/oidc/userinfo"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Refresh tokens rotate: the old one is refused, and its coming back revokes the family.
    let first = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (status, refreshed) = token(
        &server,
        creds,
        &[("grant_type", "refresh_token"), ("refresh_token", &first)],
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    let second = refreshed["refresh_token"].as_str().unwrap().to_owned();
    let (status, body) = token(
        &server,
        creds,
        &[("grant_type", "refresh_token"), ("refresh_token", &first)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, _) = token(
        &server,
        creds,
        &[("grant_type", "refresh_token"), ("refresh_token", &second)],
    )
    .await;
    assert_eq!(status, 400, "the family is revoked");

    // A user without REQUEST on the app: an error page.
    let (_, stranger) = server.user("stranger").await;
    let s = sign_in(&server, &stranger).await;
    let r = s
        .get(authorize_url(&server, &app_id, &redirect, Some(&challenge)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("location").is_none());
    assert!(r.text().await.unwrap().contains("REQUEST"));

    // Key rotation (an administrator): old tokens still verify against the JWKS, new ones are
    // signed by the new key.
    let boss = crate::browser::new_admin(&server).await;
    let admin = sign_in(&server, &boss).await;
    let r = b
        .post(server.url("/oidc/keys/rotate"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "not an administrator");
    let r = admin
        .post(server.url("/oidc/keys/rotate"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let new_kid = json_of(r).await["kid"].as_str().unwrap().to_owned();
    let jwks = json_of(client().get(server.url("/oidc/jwks")).send().await.unwrap()).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "{jwks}");
    pyjwt(&jwks, &id_token, &app_id, &issuer).unwrap();
    let code = code_for(&b, &server, &app_id, &redirect, &challenge2).await;
    let (status, fresh) = token(
        &server,
        creds,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect),
            ("code_verifier", &verifier2),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let fresh_id = fresh["id_token"].as_str().unwrap();
    assert_eq!(kid_of(fresh_id), new_kid);
    assert_ne!(kid_of(&id_token), new_kid);
    pyjwt(&jwks, fresh_id, &app_id, &issuer).unwrap();

    // Logout ends the session and goes back to the app.
    let r = b
        .get(server.url("/oidc/logout"))
        .query(&[
            ("id_token_hint", fresh_id),
            ("post_logout_redirect_uri", &redirect),
            ("state", "bye"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), format!("{redirect}?state=bye"));
    let r = b
        .get(authorize_url(&server, &app_id, &redirect, Some(&challenge)))
        .send()
        .await
        .unwrap();
    sent_to_sign_in(&r);
    let r = b.get(server.url("/v1/me")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // A hint this provider did not sign, or a way back that is not the app's: an error page.
    let r = browser()
        .get(server.url("/oidc/logout"))
        .query(&[("id_token_hint", "a.b.c")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = browser()
        .get(server.url("/oidc/logout"))
        .query(&[
            ("id_token_hint", fresh_id),
            ("post_logout_redirect_uri", "http://evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // The app deleted: its secret and the consents given to it go with it.
    let (app, user) = (
        dtaas::core::id::Id::parse(&app_id).unwrap(),
        dtaas::core::id::Id::parse(&user_id).unwrap(),
    );
    use dtaas::domains::oidc;
    assert!(oidc::has_consent(&server.app.store, user, app).unwrap());
    assert_eq!(api.delete(&format!("/servables/{app_id}")).await.0, 204);
    assert!(!oidc::has_consent(&server.app.store, user, app).unwrap());
    assert!(!oidc::client_secret_matches(&server.app.store, app, secret.trim()).unwrap());
}

/// `examples/oidc-app` on the Python base image: a user of the appliance opens it, signs in
/// through the provider, allows it, and is greeted by login.
/// An authorization request with `extra` parameters (a state of plain characters).
fn authorize_with(
    server: &TestServer,
    client: &str,
    redirect: &str,
    challenge: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut q = vec![
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", redirect),
        ("scope", "openid"),
        ("state", "s1"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    q.extend_from_slice(extra);
    format!(
        "{}?{}",
        server.url("/oidc/authorize"),
        serde_urlencoded::to_string(&q).unwrap()
    )
}

/// The hidden fields of a page's form, unescaped.
fn hidden_fields(page: &str) -> Vec<(String, String)> {
    let unescape = |v: &str| {
        v.replace("&quot;", "\"")
            .replace("&#x27;", "'")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    page.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .filter_map(|rest| {
            let (name, rest) = rest.split_once("\" value=\"")?;
            let (value, _) = rest.split_once('"')?;
            Some((name.to_owned(), unescape(value)))
        })
        .collect()
}

/// `prompt` (none, login, consent) and `max_age` do what OpenID Connect says, and the ID token
/// carries `auth_time`, the sign-in it stands on.
#[tokio::test]
async fn prompt_and_max_age_ask_for_what_they_should() {
    use dtaas::core::clock::Clock;
    let server = TestServer::start().await;
    let (api, login) = v1_user(&server, "prompt").await;
    let (app_id, _, secret) = running_app(&server, &api, &login).await;
    let creds = (app_id.as_str(), secret.trim());
    let redirect = format!("http://{app_id}.localhost:{}/callback", server.addr.port());
    let (verifier, challenge) = pkce();
    let url =
        |extra: &[(&str, &str)]| authorize_with(&server, &app_id, &redirect, &challenge, extra);
    let error_of = |r: &reqwest::Response| {
        let q = query_of(&location(r), &redirect);
        assert_eq!(param(&q, "state").as_deref(), Some("s1"));
        param(&q, "error")
    };

    // Not signed in, nothing may be shown: login_required for the app.
    let r = browser()
        .get(url(&[("prompt", "none")]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(error_of(&r).as_deref(), Some("login_required"));
    // Prompt values not understood, `none` with another, a max_age that is no number: refused.
    for bad in [
        [("prompt", "create")],
        [("prompt", "none login")],
        [("max_age", "-1")],
    ] {
        let r = browser().get(url(&bad)).send().await.unwrap();
        assert_eq!(error_of(&r).as_deref(), Some("invalid_request"), "{bad:?}");
    }

    // Signed in, never allowed the app: consent_required.
    let b = sign_in(&server, &login).await;
    let first_sign_in = server.clock.now().timestamp();
    let r = b.get(url(&[("prompt", "none")])).send().await.unwrap();
    assert_eq!(error_of(&r).as_deref(), Some("consent_required"));
    // Allowed once through the consent page.
    let page = b.get(url(&[])).send().await.unwrap().text().await.unwrap();
    let mut form = hidden_fields(&page);
    form.push(("decision".into(), "allow".into()));
    let r = b
        .post(server.url("/oidc/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(param(&query_of(&location(&r), &redirect), "code").is_some());

    // Now `prompt=none` answers at once; `prompt=consent` asks again all the same.
    server.clock.advance(chrono::Duration::seconds(120));
    let r = b.get(url(&[("prompt", "none")])).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let code = param(&query_of(&location(&r), &redirect), "code").unwrap();
    let exchange = |code: String| {
        let (redirect, verifier) = (redirect.clone(), verifier.clone());
        let server = &server;
        async move {
            let (status, tokens) = token(
                server,
                creds,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", &redirect),
                    ("code_verifier", &verifier),
                ],
            )
            .await;
            assert_eq!(status, 200, "{tokens}");
            let claims = claims_of(tokens["id_token"].as_str().unwrap());
            (claims, tokens["refresh_token"].as_str().unwrap().to_owned())
        }
    };
    let (claims, refresh) = exchange(code).await;
    assert_eq!(claims["auth_time"], first_sign_in, "{claims}");
    let r = b.get(url(&[("prompt", "consent")])).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Allow"));

    // max_age: the sign-in two minutes ago is good for 600 s, not for 60.
    let r = b.get(url(&[("max_age", "600")])).send().await.unwrap();
    assert!(param(&query_of(&location(&r), &redirect), "code").is_some());
    let r = b
        .get(url(&[("max_age", "60"), ("prompt", "none")]))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(&r).as_deref(), Some("login_required"));
    // The sign-in page, coming back to the request with the provider's ticket in it.
    for extra in [[("max_age", "60")], [("prompt", "login")]] {
        let r = b.get(url(&extra)).send().await.unwrap();
        let next = sent_to_sign_in(&r);
        assert!(next.starts_with("/oidc/authorize?"), "{next}");
        assert!(next.contains("dtaas_reauth="), "{next}");
        // Coming back without signing in: the sign-in page again, not a code. Nor does a
        // ticket the provider did not make, or another request's.
        server.clock.advance(chrono::Duration::seconds(1));
        let r = b.get(server.url(&next)).send().await.unwrap();
        sent_to_sign_in(&r);
        let mut forged = extra.to_vec();
        forged.push(("dtaas_reauth", "made-up"));
        sent_to_sign_in(&b.get(url(&forged)).send().await.unwrap());
        let (_, other_challenge) = pkce();
        let other = authorize_with(&server, &app_id, &redirect, &other_challenge, &extra);
        let other_next = sent_to_sign_in(&b.get(other).send().await.unwrap());
        let other_ticket = other_next.split("dtaas_reauth=").nth(1).unwrap().to_owned();
        let mut borrowed = extra.to_vec();
        borrowed.push(("dtaas_reauth", &other_ticket));
        let after_sign_in_elsewhere = url(&borrowed);

        // Signed in again: the code, with that sign-in as auth_time.
        server.clock.advance(chrono::Duration::seconds(1));
        let again = server.clock.now().timestamp();
        let r = b
            .post(server.url("/login"))
            .form(&[
                ("login", login.as_str()),
                ("password", PASSWORD),
                ("next", &next),
            ])
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success() || r.status().is_redirection());
        if extra[0].0 == "prompt" {
            // (A fresh sign-in satisfies any max_age; prompt=login wants one for this request.)
            sent_to_sign_in(&b.get(after_sign_in_elsewhere).send().await.unwrap());
        }
        let r = b.get(server.url(&next)).send().await.unwrap();
        assert_eq!(r.status(), 303, "{extra:?}");
        let code = param(&query_of(&location(&r), &redirect), "code")
            .unwrap_or_else(|| panic!("{extra:?}: {}", location(&r)));
        let (claims, _) = exchange(code).await;
        assert_eq!(claims["auth_time"], again, "{extra:?}: {claims}");
        server.clock.advance(chrono::Duration::seconds(120));
    }

    // A refreshed ID token keeps the sign-in its family began with.
    let (status, tokens) = token(
        &server,
        creds,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let claims = claims_of(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["auth_time"], first_sign_in);

    // Discovery says so.
    let disco = json_of(
        client()
            .get(server.url("/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        disco["claims_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("auth_time"))
    );
    assert_eq!(
        disco["prompt_values_supported"],
        json!(["none", "login", "consent", "select_account"])
    );
}

/// A relying party built on a real OpenID Connect library (Authlib, Debian's python3-authlib)
/// completes the flow: `tests/integration/oidc_rp.py`.
#[tokio::test]
async fn authlib_as_the_relying_party_signs_a_user_in() {
    let server = TestServer::start().await;
    let (api, login) = v1_user(&server, "authlib").await;
    let (_, me) = api.get("/me").await;
    let (app_id, _, secret) = running_app(&server, &api, &login).await;
    let issuer = server.url("").trim_end_matches('/').to_owned();
    let redirect = format!("{issuer}/apps/{app_id}/callback");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/oidc_rp.py");
    let out = tokio::process::Command::new("/usr/bin/python3")
        .arg(&script)
        .args([&issuer, &app_id, secret.trim(), &redirect, &login, PASSWORD])
        // The appliance answers on plain HTTP on loopback here.
        .env("AUTHLIB_INSECURE_TRANSPORT", "1")
        .output()
        .await
        .expect("/usr/bin/python3 (with python3-authlib)");
    assert!(
        out.status.success(),
        "the relying party failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    let claims = &seen["claims"];
    assert_eq!(claims["sub"], me["id"], "{seen}");
    assert_eq!(claims["aud"], app_id.as_str());
    assert_eq!(claims["iss"], issuer.as_str());
    assert_eq!(claims["preferred_username"], login.as_str());
    assert!(
        claims["dtaas_capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("REQUEST")),
        "{seen}"
    );
    assert_eq!(seen["userinfo"]["sub"], me["id"]);
    assert_eq!(seen["userinfo"]["preferred_username"], login.as_str());
    assert_eq!(seen["refresh_rotated"], true);
    assert_eq!(seen["refreshed_userinfo"], 200);
    assert_eq!(seen["old_refresh_token"], "invalid_grant");
    assert_eq!(seen["new_refresh_token_after_reuse"], "invalid_grant");
}

#[tokio::test]
async fn the_oidc_example_greets_its_user_by_login() {
    let server = TestServer::start().await;
    let (api, login) = v1_user(&server, "oidcex").await;
    crate::python_sdk::python_base_image().await;
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/oidc-app");
    push_image(&server, &login, Some(&example), "oidc-app", "1").await;
    let manifest = std::fs::read_to_string(example.join("MANIFEST.json")).unwrap();
    let manifest: Value = serde_json::from_str(&manifest).unwrap();
    let (status, body) = api.post("/prototypes", manifest).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = api
        .post(
            "/servables",
            json!({"prototype": "oidc-app:1", "name": "greeter", "access_control": false, "resources": small()}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let app_id = body["id"].as_str().unwrap().to_owned();
    let (status, run) = api
        .post(&format!("/servables/{app_id}/run"), json!({}))
        .await;
    assert_eq!(status, 201, "{run}");
    let instance = run["id"].as_str().unwrap().to_owned();
    wait_instance(&api, &instance, 60, |i| i["state"] == "running").await;

    let issuer = server.url("").trim_end_matches('/').to_owned();
    let b = sign_in(&server, &login).await;
    let app_url = server.url(&format!("/apps/{app_id}/"));
    let mut to = String::new();
    for _ in 0..120 {
        if let Ok(r) = b.get(&app_url).send().await
            && r.status() == 302
        {
            to = location(&r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let query = to
        .strip_prefix(&format!("{issuer}/oidc/authorize?"))
        .unwrap_or_else(|| panic!("the app sends the browser to the provider: {to:?}"))
        .to_owned();

    // The consent page, then back to the app with a code.
    let r = b.get(&to).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let mut form: Vec<(String, String)> = serde_urlencoded::from_str(&query).unwrap();
    form.push(("csrf".into(), csrf));
    form.push(("decision".into(), "allow".into()));
    let r = b
        .post(server.url("/oidc/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let back = location(&r);
    assert!(
        back.starts_with(&format!("{issuer}/apps/{app_id}/callback?code=")),
        "{back}"
    );
    let r = b.get(&back).send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!((status.as_u16(), text), (200, format!("Hello, {login}!")));
}
