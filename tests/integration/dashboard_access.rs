//! The dashboard's account and access pages (issue 14) in a real Chromium: the sign-in page
//! (and kabuto's JSON for other clients), registering, the password, API keys with the secret
//! shown once, grants on an object, trusts, and delegation requests resolved in the page.

use crate::browser::{Browser, csrf_of};
use crate::harness::*;
use serde_json::{Value, json};

/// A client that does not follow redirects, with no cookies.
fn plain() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The id in a /v1 answer.
fn id_of(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_owned()
}

/// The signed-in user's id.
async fn my_id(api: &V1) -> String {
    let (status, me) = api.get("/me").await;
    assert_eq!(status, 200, "{me}");
    id_of(&me)
}

#[tokio::test]
async fn a_failed_form_sign_in_is_a_page_for_browsers_and_json_for_the_rest() {
    let server = TestServer::start().await;
    let (_, login) = server.user("signin").await;
    let c = plain();
    let wrong = [
        ("login", login.as_str()),
        ("password", "not the password"),
        ("next", "/ui/account"),
    ];

    // A browser's form: the sign-in page again, with the error, the login kept, 401.
    let r = c
        .post(server.url("/login"))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .form(&wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = r.text().await.unwrap();
    assert!(page.contains("invalid login or password"), "{page}");
    assert!(page.contains(&format!("value=\"{login}\"")), "{page}");
    assert!(
        page.contains("name=\"next\" value=\"/ui/account\""),
        "{page}"
    );
    assert!(page.contains("action=\"/login\""), "{page}");
    assert!(page.contains("/ui/static/dashboard.css"), "{page}");
    assert!(
        page.contains("href=\"/ui/register\""),
        "registration is open: {page}"
    );

    // curl's form and a JSON client: kabuto's JSON, as before.
    let r = c
        .post(server.url("/login"))
        .form(&wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        json_of(r).await,
        json!({"error": "invalid login or password"})
    );
    let r = c
        .post(server.url("/login"))
        .header("accept", "text/html")
        .json(&json!({"login": login, "password": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(kabuto_error(&json_of(r).await), "invalid login or password");

    // Once the attempts run out: 429 with the limiter's message and Retry-After.
    let mut last = None;
    for _ in 0..30 {
        let r = c
            .post(server.url("/login"))
            .header("accept", "text/html")
            .form(&wrong)
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            last = Some(r);
            break;
        }
        assert_eq!(r.status(), 401);
    }
    let r = last.expect("the failed-login limit is reached within 30 attempts");
    assert!(r.headers().contains_key("retry-after"));
    let page = r.text().await.unwrap();
    assert!(page.contains("too many failed attempts"), "{page}");

    // The empty page: the same fields; `next` is a path on this host or the dashboard.
    let page = c
        .get(server.url("/login?next=//evil.example"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("name=\"next\" value=\"/ui\""), "{page}");

    // With registration closed, no link to it, and its page says so.
    let closed = TestServer::start_with(|c| {
        c.registration = dtaas::core::config::RegistrationMode::Closed;
    })
    .await;
    let page = c
        .get(closed.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("/ui/register"), "{page}");
    let r = c.get(closed.url("/ui/register")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("Registration is closed"), "{page}");
    assert!(!page.contains("name=\"password\""), "{page}");
    let r = c
        .post(closed.url("/ui/register"))
        .form(&[
            ("login", "latecomer"),
            ("email", "late@example.org"),
            ("password", PASSWORD),
            ("again", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("registration is closed"));
}

#[tokio::test]
async fn register_confirm_sign_in_and_change_the_password_in_chromium() {
    let server = TestServer::start().await;
    let login = unique("newbie");
    let b = Browser::start(&server).await;

    // Register through the pages, confirm with the link the page shows.
    b.open("/login").await;
    b.screenshot("account-login").await;
    b.follow("Register").await;
    b.wait_path("/ui/register").await;
    b.screenshot("account-register").await;
    b.fill("login", &login).await;
    b.fill("email", &format!("{login}@example.org")).await;
    b.fill("password", PASSWORD).await;
    b.fill("again", "something else").await;
    b.press("Register").await;
    b.wait_text("the two passwords differ", 15).await;
    b.fill("password", PASSWORD).await;
    b.fill("again", PASSWORD).await;
    b.press("Register").await;
    b.wait_text("not yet confirmed", 15).await;
    b.screenshot("account-registered").await;
    // Not confirmed yet: signing in is refused (kabuto's rule).
    let r = plain()
        .post(server.url("/login"))
        .form(&[("login", login.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    b.follow("Confirm my account").await;
    b.wait_text("is confirmed", 15).await;
    b.screenshot("account-confirmed").await;
    // The same login again is taken.
    let r = plain()
        .post(server.url("/ui/register"))
        .form(&[
            ("login", login.as_str()),
            ("email", "other@example.org"),
            ("password", PASSWORD),
            ("again", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("already taken"));

    // A wrong password: the sign-in page says so, in HTML.
    b.follow("Sign in").await;
    b.wait_path("/login").await;
    b.fill("login", &login).await;
    b.fill("password", "not the password").await;
    b.submit_form("form").await;
    let text = b.wait_text("invalid login or password", 15).await;
    assert!(!text.contains("{\"error\""), "{text}");
    b.screenshot("account-login-failed").await;

    // Sign in through the form; the account page says who this is.
    b.sign_in(&login, PASSWORD, "/ui/account").await;
    let text = b.wait_text("Change password", 15).await;
    assert!(text.contains(&format!("{login}@example.org")), "{text}");
    b.screenshot("account").await;

    // A wrong current password is shown next to its field; nothing changes.
    let new_password = "NewSecreT-456";
    b.fill("current", "not the password").await;
    b.fill("new", new_password).await;
    b.fill("again", new_password).await;
    b.press("Change password").await;
    b.wait_text("this is not your current password", 15).await;
    b.screenshot("account-password-refused").await;

    // The real one: changed, and this browser stays signed in.
    b.fill("current", PASSWORD).await;
    b.fill("new", new_password).await;
    b.fill("again", new_password).await;
    b.press("Change password").await;
    b.wait_text("Password changed", 15).await;
    b.open("/ui/account").await;
    b.wait_text("Change password", 15).await;

    // Signed out, the old password no longer works; the new one does.
    b.press("Sign out").await;
    b.wait_path("/login").await;
    let r = plain()
        .post(server.url("/login"))
        .form(&[("login", login.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    b.sign_in(&login, new_password, "/ui/account").await;
    b.wait_text(&login, 15).await;
    b.close().await;
}

#[tokio::test]
async fn an_api_key_is_shown_once_works_and_is_revoked_in_chromium() {
    let server = TestServer::start().await;
    let (_, login) = server.user("keys").await;
    let b = Browser::start(&server).await;
    b.sign_in(&login, PASSWORD, "/ui/account").await;

    // A bad expiry (which the browser's own check would stop) is refused next to the form,
    // what was typed kept, and no key is made.
    let (session, _) = server.user("keys-form").await;
    let r = session.get(server.url("/ui/account")).send().await.unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
    let page = r.text().await.unwrap();
    let r = session
        .post(server.url("/ui/account/keys"))
        .form(&[
            ("csrf", csrf_of(&page).as_str()),
            ("name", "laptop"),
            ("expires_in_days", "0"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let page = r.text().await.unwrap();
    assert!(page.contains("expires_in_days must be from 1"), "{page}");
    assert!(page.contains("value=\"laptop\""), "{page}");
    assert!(page.contains("No API keys"), "{page}");

    b.fill("name", "laptop").await;
    b.fill("expires_in_days", "30").await;
    b.press("Create API key").await;
    b.wait_text("shown only this once", 15).await;
    let secret = b.find("#new-secret").await.text().await.unwrap();
    assert!(secret.starts_with("dtaas_"), "{secret}");
    b.screenshot("account-new-key").await;

    // A reload: the secret is gone; the key is listed.
    b.open("/ui/account").await;
    let text = b.wait_text("laptop", 15).await;
    assert!(!text.contains(&secret), "{text}");
    assert!(!text.contains("shown only this once"), "{text}");

    // It works as the user on /v1, as curl would send it.
    let curl = V1::with_key(&server, &secret);
    let (status, me) = curl.get("/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["login"], login.as_str());

    // Revoked in the page: 401 from then on.
    b.press("Revoke").await;
    b.wait_text("API key revoked", 15).await;
    let text = b.text().await;
    assert!(text.contains("No API keys"), "{text}");
    let (status, body) = curl.get("/me").await;
    assert_eq!(status, 401, "{body}");
    b.close().await;
}

#[tokio::test]
async fn granting_read_on_a_pipeline_lets_another_user_reach_it_until_revoked() {
    let server = TestServer::start().await;
    let (owner, owner_login) = v1_user(&server, "granter").await;
    let (other, other_login) = v1_user(&server, "grantee").await;
    let (status, v) = owner
        .post("/pipelines", json!({"name": "shared-pipe"}))
        .await;
    assert_eq!(status, 201, "{v}");
    let pipeline = id_of(&v);
    let (status, _) = other.get(&format!("/pipelines/{pipeline}")).await;
    assert_eq!(status, 404, "nothing granted yet");

    let b = Browser::start(&server).await;
    b.sign_in(&owner_login, PASSWORD, "/ui/access").await;
    b.wait_text("Grants on an object", 15).await;
    b.screenshot("access").await;
    b.type_into("#object", &pipeline).await;
    b.press("Show its grants").await;
    b.wait_text("Nobody but the owner", 15).await;
    assert_eq!(b.path().await, format!("/ui/access?object={pipeline}"));

    // Grant READ and REQUEST to the other user.
    b.type_into("#principal", &other_login).await;
    b.click("#grant-READ").await;
    b.click("#grant-REQUEST").await;
    b.press("Grant").await;
    let text = b.wait_text("Granted READ, REQUEST", 15).await;
    assert!(text.contains(&other_login), "{text}");
    b.screenshot("access-grants").await;
    let (status, v) = other.get(&format!("/pipelines/{pipeline}")).await;
    assert_eq!(status, 200, "the grantee reaches it: {v}");
    assert_eq!(v["name"], "shared-pipe");
    let (status, v) = owner.get(&format!("/objects/{pipeline}/access")).await;
    assert_eq!(status, 200, "{v}");
    let grant = v["grants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == other_login.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("no grant to {other_login}: {v}"));
    let caps = grant["capabilities"].as_array().unwrap();
    assert!(
        caps.contains(&json!("READ")) && caps.contains(&json!("REQUEST")),
        "{grant}"
    );

    // The grantee cannot manage it: its access page is refused.
    let r = other
        .c
        .get(server.url(&format!("/ui/access?object={pipeline}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("MANAGE"));

    // A form without the CSRF token is refused with a page that says why; nothing changes.
    let r = owner
        .c
        .post(server.url("/ui/access/grant"))
        .form(&[
            ("object", pipeline.as_str()),
            ("principal", "everyone"),
            ("capabilities", "READ"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("security token"));
    let (_, v) = owner.get(&format!("/objects/{pipeline}/access")).await;
    assert!(
        !v["grants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["principal"] == "everyone"),
        "{v}"
    );

    // Taking away REQUEST only, then everything.
    b.click("details summary").await;
    let principal = grant["principal"].as_str().unwrap();
    b.click(&format!("#revoke-{principal}-REQUEST")).await;
    b.press("Revoke the ticked ones").await;
    b.wait_text("Revoked REQUEST", 15).await;
    let (status, _) = other.get(&format!("/pipelines/{pipeline}")).await;
    assert_eq!(status, 200, "READ stays");
    b.press("Revoke all").await;
    b.wait_text("Nobody but the owner", 15).await;
    let (status, _) = other.get(&format!("/pipelines/{pipeline}")).await;
    assert_eq!(
        status, 404,
        "revoked: the pipeline is unknown to the grantee again"
    );

    // An object that is not there, or not the viewer's: the same 404 page.
    b.open("/ui/access?object=0123456789abcdef0123456789abcdef")
        .await;
    b.wait_text("404 Not Found", 15).await;
    let r = other
        .c
        .get(server.url(&format!("/ui/access?object={pipeline}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    b.close().await;
}

#[tokio::test]
async fn trusts_in_chromium_and_a_stranger_sees_none_of_them() {
    let server = TestServer::start().await;
    let (owner, owner_login) = v1_user(&server, "truster").await;
    let (member, member_login) = v1_user(&server, "member").await;
    let (stranger, _) = v1_user(&server, "stranger").await;
    let member_id = my_id(&member).await;
    let (status, v) = owner.post("/pipelines", json!({"name": "in-trust"})).await;
    assert_eq!(status, 201, "{v}");
    let pipeline = id_of(&v);
    let trust_name = unique("circle");

    let b = Browser::start(&server).await;
    b.sign_in(&owner_login, PASSWORD, "/ui/trusts").await;
    b.wait_text("No trusts you can read", 15).await;
    b.fill("name", &trust_name).await;
    b.press("Create trust").await;
    b.wait_text("you are its trustee", 15).await;
    let path = b.path().await;
    let trust = path
        .strip_prefix("/ui/trusts/")
        .unwrap_or_else(|| panic!("not a trust's page: {path}"))
        .to_owned();

    b.type_into("#member", &member_login).await;
    b.select("role", "member").await;
    b.press("Add to the trust").await;
    b.wait_text(&format!("Added {member_login} as member"), 15)
        .await;
    b.type_into("#object", &pipeline).await;
    b.press("Place in the trust").await;
    let text = b.wait_text("Object placed in the trust", 15).await;
    assert!(text.contains(&pipeline[24..]), "{text}");
    assert!(text.contains(&member_login), "{text}");
    b.screenshot("access-trust").await;
    let (status, v) = owner.get(&format!("/trusts/{trust}")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["members"], json!([member_id]), "{v}");
    assert_eq!(v["objects"], json!([pipeline]), "{v}");

    b.open("/ui/trusts").await;
    b.wait_text(&trust_name, 15).await;
    b.screenshot("access-trusts").await;

    // The member reads the trust; a stranger sees none of it.
    let r = member
        .c
        .get(server.url(&format!("/ui/trusts/{trust}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains(&trust_name), "{page}");
    assert!(
        !page.contains("Add to the trust"),
        "a member does not manage it: {page}"
    );
    let r = stranger
        .c
        .get(server.url("/ui/trusts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(!page.contains(&trust_name), "{page}");
    assert!(page.contains("No trusts you can read"), "{page}");
    let r = stranger
        .c
        .get(server.url(&format!("/ui/trusts/{trust}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("Trust not found"));
    let r = stranger
        .c
        .get(server.url(&format!("/ui/access?object={trust}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // At 360 px: the trust's page still reads.
    let narrow = Browser::start_sized(&server, 360, 800).await;
    narrow
        .sign_in(&owner_login, PASSWORD, &format!("/ui/trusts/{trust}"))
        .await;
    narrow.wait_text(&trust_name, 15).await;
    narrow.screenshot("access-trust-360").await;
    narrow.open("/ui/account").await;
    narrow.wait_text("API keys", 15).await;
    narrow.screenshot("account-360").await;
    narrow.close().await;

    // Taking the object out, then deleting the trust.
    b.open(&format!("/ui/trusts/{trust}")).await;
    b.wait_text(&trust_name, 15).await;
    b.press("Take out").await;
    b.wait_text("Object taken out of the trust", 15).await;
    let (_, v) = owner.get(&format!("/trusts/{trust}")).await;
    assert_eq!(v["objects"], json!([]), "{v}");
    b.press("Delete trust").await;
    b.wait_text("Trust deleted", 15).await;
    let (status, _) = owner.get(&format!("/trusts/{trust}")).await;
    assert_eq!(status, 404);
    b.close().await;
}

/// A pending delegation request, set up as `access.rs` does: the other user's prototype asks
/// READ on the object in its config, its servable points that at the runner's trust, and the
/// runner (given UPDATE on the servable) runs it.
#[tokio::test]
async fn a_delegation_request_is_granted_in_the_page() {
    let server = TestServer::start().await;
    let (runner, runner_login) = v1_user(&server, "runner").await;
    let (author, author_login) = v1_user(&server, "author").await;
    let (status, v) = runner.post("/trusts", json!({"name": "asked-for"})).await;
    assert_eq!(status, 201, "{v}");
    let target = id_of(&v);
    push_image(&server, &author_login, None, "dash-greedy", "v1").await;
    let manifest = json!({"dash-greedy": {
        "name": "dash-greedy", "tag": "v1", "type": "pipeline",
        "config-capabilities": {"target": ["READ"]},
    }});
    let (status, v) = author.post("/prototypes", manifest).await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = author
        .post(
            "/servables",
            json!({"prototype": "dash-greedy:v1", "name": "greedy",
                   "config": {"target": target}, "resources": small()}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let servable = id_of(&v);
    let (status, v) = author
        .post(
            &format!("/objects/{servable}/access"),
            json!({"principal": runner_login, "capabilities": ["UPDATE"]}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = runner
        .post(&format!("/servables/{servable}/run"), json!({}))
        .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = runner
        .get(&format!("/delegation-requests?servable={servable}"))
        .await;
    assert_eq!(status, 200, "{v}");
    let request = id_of(&v[0]);
    assert_eq!(v[0]["state"], "pending", "{v}");

    let b = Browser::start(&server).await;
    b.sign_in(&runner_login, PASSWORD, "/ui/requests").await;
    let text = b.wait_text("pending", 15).await;
    assert!(
        text.contains("config.target"),
        "the reason is shown: {text}"
    );
    assert!(text.contains("greedy"), "{text}");
    b.screenshot("access-requests").await;
    b.press("Grant").await;
    b.wait_text("Request granted", 15).await;
    let (status, v) = runner.get(&format!("/delegation-requests/{request}")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["state"], "granted", "{v}");
    let (_, v) = runner.get(&format!("/objects/{target}/access")).await;
    assert!(
        v["grants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["principal"] == servable.as_str()),
        "the servable holds what it asked for: {v}"
    );

    // The state filter.
    b.select("state", "pending").await;
    b.press("Filter").await;
    b.wait_text("No delegation requests in this state", 15)
        .await;
    b.open("/ui/requests?state=granted").await;
    let text = b.wait_text("granted", 15).await;
    assert!(!text.contains("Refuse"), "{text}");
    b.open("/ui/requests?state=nonsense").await;
    b.wait_text("400 Bad Request", 15).await;

    // The author (the servable's owner, not asked) has no request to answer.
    let r = author
        .c
        .get(server.url("/ui/requests"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(!page.contains(&request), "{page}");
    b.close().await;
}
