//! The dashboard's overview, admin and registry pages (issue 14), in a real Chromium: an
//! administrator confirms, disables, enables, promotes and resets users, closes registration
//! and runs the registry's garbage collection, all of it in the admin log; the overview shows
//! the viewer's running and failed work and none of another user's; the registry pages list
//! what the viewer may pull, and deleting a tag there takes it out of `/v2`.

use crate::browser::{Browser, csrf_of, new_admin};
use crate::harness::*;
use std::time::{Duration, Instant};

/// Signs in with the password form; the status `/login` answers.
async fn login_status(server: &TestServer, login: &str, password: &str) -> u16 {
    let r = client()
        .post(server.url("/login"))
        .form(&[("login", login), ("password", password)])
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

/// A signed-in client of `login`.
async fn signed_in(server: &TestServer, login: &str) -> reqwest::Client {
    let c = client();
    let r = c
        .post(server.url("/login"))
        .form(&[("login", login), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "login of {login}");
    c
}

async fn page(c: &reqwest::Client, server: &TestServer, path: &str) -> (u16, String) {
    let r = c.get(server.url(path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn an_admin_manages_users_registration_and_gc_and_the_log_keeps_it() {
    let server = TestServer::start().await;
    let admin = new_admin(&server).await;
    let (user_client, victim) = server.user("victim").await;
    // A user who registered and never confirmed.
    let pending = unique("pending");
    let r = client()
        .post(server.url("/register"))
        .form(&[
            ("login", pending.as_str()),
            ("password", PASSWORD),
            ("email", &format!("{pending}@example.org")),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(login_status(&server, &pending, PASSWORD).await, 403);

    // Anyone else gets the 403 page on every admin page.
    for path in ["/ui/admin", "/ui/admin/users", "/ui/admin/log"] {
        let (status, html) = page(&user_client, &server, path).await;
        assert_eq!(status, 403, "{path}");
        assert!(html.contains("for administrators"), "{html}");
    }
    let (_, html) = page(&user_client, &server, "/ui").await;
    let r = user_client
        .post(server.url("/ui/admin/gc"))
        .form(&[("csrf", csrf_of(&html))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let b = Browser::start(&server).await;
    b.sign_in(&admin, PASSWORD, "/ui/admin").await;
    b.wait_text("Registry garbage collection", 10).await;
    b.screenshot("admin-index").await;

    // Create a user: confirmed at once, its password shown once; it signs in with it. The
    // same login again is refused.
    let made = unique("made");
    b.open("/ui/admin/users").await;
    b.click("details summary").await;
    b.type_into("#new-login", &made).await;
    b.press("Create the user").await;
    let text = b
        .wait_text(&format!("Created user {made}; password: "), 10)
        .await;
    let password: String = text
        .split(&format!("Created user {made}; password: "))
        .nth(1)
        .unwrap()
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    assert_eq!(password.len(), 20, "{text}");
    assert_eq!(login_status(&server, &made, &password).await, 200);
    b.click("details summary").await;
    b.type_into("#new-login", &made).await;
    b.press("Create the user").await;
    b.wait_text("already", 10).await;
    assert!(b.text().await.contains("409"));
    b.open("/ui/admin/users").await;
    assert!(
        !b.text().await.contains("password: "),
        "the password is shown once"
    );
    b.open("/ui/admin").await;

    // Confirm the pending user: it may sign in now.
    b.fill("login", &pending).await;
    b.press("Search users").await;
    b.wait_path("/ui/admin/users").await;
    b.wait_text("unconfirmed", 10).await;
    b.screenshot("admin-users").await;
    b.press("Confirm").await;
    b.wait_text(&format!("Confirmed {pending}"), 10).await;
    assert_eq!(login_status(&server, &pending, PASSWORD).await, 200);

    // Disable a user: its session ends and it cannot sign in, in the browser either.
    b.open(&format!("/ui/admin/users?login={victim}")).await;
    b.press("Disable").await;
    b.wait_text(&format!("Disabled {victim}"), 10).await;
    let text = b.text().await;
    assert!(text.contains("disabled"), "{text}");
    let r = user_client.get(server.url("/ui")).send().await.unwrap();
    assert_eq!(r.url().path(), "/login", "the session ended");
    assert_eq!(login_status(&server, &victim, PASSWORD).await, 403);
    b.press("Sign out").await;
    b.wait_path("/login").await;
    b.fill("login", &victim).await;
    b.fill("password", PASSWORD).await;
    b.submit_form("form").await;
    b.wait_text("this account is disabled", 10).await;
    b.sign_in(&admin, PASSWORD, "/ui/admin/users").await;
    b.open(&format!("/ui/admin/users?login={victim}")).await;
    b.press("Enable").await;
    b.wait_text(&format!("Enabled {victim}"), 10).await;
    assert_eq!(login_status(&server, &victim, PASSWORD).await, 200);

    // Make an admin, then take it back: the admin pages follow at once.
    b.press("Make admin").await;
    b.wait_text(&format!("{victim} is an administrator now"), 10)
        .await;
    let promoted = signed_in(&server, &victim).await;
    assert_eq!(page(&promoted, &server, "/ui/admin").await.0, 200);
    b.press("Remove admin").await;
    b.wait_text("is no administrator any more", 10).await;
    assert_eq!(page(&promoted, &server, "/ui/admin").await.0, 403);

    // Reset a password: the new one is shown once and works; the old one does not.
    b.press("Reset password").await;
    let text = b
        .wait_text(&format!("New password for {victim}: "), 10)
        .await;
    let new_password = text
        .split(&format!("New password for {victim}: "))
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    assert_eq!(new_password.len(), 20, "{text}");
    assert_eq!(login_status(&server, &victim, &new_password).await, 200);
    assert_eq!(login_status(&server, &victim, PASSWORD).await, 401);
    b.open(&format!("/ui/admin/users?login={victim}")).await;
    assert!(!b.text().await.contains(&new_password), "shown once");

    // Close registration: the page says so and /register refuses.
    b.open("/ui/admin").await;
    b.select("mode", "closed").await;
    b.press("Set registration mode").await;
    b.wait_text("Registration is closed now.", 10).await;
    let mode = b.find("#registration-mode").await.text().await.unwrap();
    assert_eq!(mode, "closed");
    let r = client()
        .post(server.url("/register"))
        .form(&[
            ("login", unique("late").as_str()),
            ("password", PASSWORD),
            ("email", "late@example.org"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("registration is closed"));

    // Run the garbage collection: its result shows as the last one.
    b.press("Run garbage collection now").await;
    b.wait_text("Garbage collected:", 30).await;
    let last = b.find("#last-gc").await.text().await.unwrap();
    assert!(
        last.starts_with("Last collection:") && last.contains("unreferenced blobs removed"),
        "{last}"
    );

    // The log holds every change, the dashboard's and the command line's, newest first.
    b.follow("All admin actions").await;
    b.wait_path("/ui/admin/log").await;
    let log = b.wait_text("registry-gc", 10).await;
    b.screenshot("admin-log").await;
    for (action, target) in [
        ("create-user", admin.as_str()),
        ("confirm-user", pending.as_str()),
        ("disable-user", victim.as_str()),
        ("enable-user", victim.as_str()),
        ("make-admin", victim.as_str()),
        ("remove-admin", victim.as_str()),
        ("reset-password", victim.as_str()),
        ("set-registration", "closed"),
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains(action) && l.contains(target)),
            "no {action} {target} in the log:\n{log}"
        );
    }
    assert!(
        log.contains("dtaas admin"),
        "the command line's entry: {log}"
    );
    assert!(!log.contains(&new_password), "no password in the log");
    let newest = log.find("registry-gc").unwrap();
    assert!(
        newest < log.find("set-registration").unwrap(),
        "newest first"
    );

    // An admin cannot lock themselves out here; a form without the token is refused.
    let boss = signed_in(&server, &admin).await;
    let (_, html) = page(&boss, &server, "/ui/admin").await;
    let token = csrf_of(&html);
    for action in ["disable", "remove-admin"] {
        let r = boss
            .post(server.url(&format!("/ui/admin/users/{admin}/{action}")))
            .form(&[("csrf", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 409, "{action}");
        assert!(r.text().await.unwrap().contains("your own"));
    }
    let r = boss
        .post(server.url(&format!("/ui/admin/users/{victim}/disable")))
        .form(&[("csrf", "0".repeat(64))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = boss
        .post(server.url(&format!("/ui/admin/users/{victim}/explode")))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(login_status(&server, &victim, &new_password).await, 200);
    b.close().await;
}

/// An id as the pages' tables show it.
fn short(id: &str) -> String {
    dtaas::faces::dashboard::format::short(&dtaas::core::id::Id::parse(id).unwrap())
}

/// Polls the overview of `c` until its HTML holds `needle` (at most `secs`).
async fn overview_with(
    c: &reqwest::Client,
    server: &TestServer,
    needle: &str,
    secs: u64,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (status, html) = page(c, server, "/ui").await;
        assert_eq!(status, 200);
        if html.contains(needle) {
            return html;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} never on the overview:\n{html}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn the_overview_shows_the_viewers_running_and_failed_work_and_not_anothers() {
    let server = TestServer::start().await;
    let mine = server.kabuto("ovmine").await;
    let theirs = server.kabuto("ovtheirs").await;
    let (my_image, their_image) = tokio::join!(mine.busybox(), theirs.busybox());

    let failing = mine.pipeline("failing").await;
    let my_failed = mine
        .job(&failing, &my_image, "sh -c 'echo boom; exit 3'", &[])
        .await;
    let long = mine.pipeline("long").await;
    let my_running = mine.job(&long, &my_image, "sleep 300", &[]).await;
    let other = theirs.pipeline("theirs").await;
    let their_failed = theirs
        .job(&other, &their_image, "sh -c 'exit 4'", &[])
        .await;
    for (k, p) in [(&mine, &failing), (&mine, &long), (&theirs, &other)] {
        let (status, v) = k.submit(p).await;
        assert_eq!(status, 200, "{v}");
    }
    assert_eq!(mine.wait_job(&failing, &my_failed).await["state"], "failed");
    assert_eq!(
        theirs.wait_job(&other, &their_failed).await["state"],
        "failed"
    );
    mine.wait_state(&long, &my_running, "running").await;

    let html = overview_with(&mine.c, &server, &format!("/ui/jobs/{my_failed}"), 10).await;
    assert!(html.contains("id=\"running-jobs\">1<"), "{html}");
    assert!(html.contains(&format!("/ui/jobs/{my_running}")), "{html}");
    assert!(html.contains("exited with code 3"), "{html}");
    assert!(
        !html.contains(&their_failed),
        "another user's failure shows"
    );
    assert!(!html.contains("id=\"disk\""), "the disk is for admins");
    let (_, their_html) = page(&theirs.c, &server, "/ui").await;
    assert!(their_html.contains(&format!("/ui/jobs/{their_failed}")));
    assert!(
        their_html.contains("id=\"running-jobs\">0<"),
        "{their_html}"
    );
    assert!(!their_html.contains(&my_failed) && !their_html.contains(&my_running));

    // The usage sampler draws the running job's CPU and memory for its owner alone (it samples
    // every 30 s: a container that starts just after a round is in the one after).
    let series = format!("<title>job {}</title></polyline>", short(&my_running));
    let html = overview_with(&mine.c, &server, &series, 80).await;
    assert_eq!(
        html.matches(&series).count(),
        2,
        "a CPU line and a memory line"
    );
    let (_, their_html) = page(&theirs.c, &server, "/ui").await;
    assert!(!their_html.contains(&series));
    // Jobs per hour: the viewer's two jobs in the current hour's bar.
    assert!(html.contains(": 2</title></rect>"), "{html}");

    // An admin sees everyone's, and the disk.
    let admin = new_admin(&server).await;
    let boss = signed_in(&server, &admin).await;
    let html = overview_with(&boss, &server, &their_failed, 10).await;
    assert!(html.contains(&my_failed) && html.contains("id=\"disk\""));

    let b = Browser::start(&server).await;
    b.sign_in(&mine.login, PASSWORD, "/ui").await;
    let text = b.wait_text("Recent failures", 10).await;
    assert!(text.contains(&short(&my_failed)), "{text}");
    assert!(text.contains("Up"), "the engine answers: {text}");
    b.screenshot("overview").await;
    // The whole page, charts included.
    b.c.set_window_size(1280, 1800).await.unwrap();
    b.screenshot("overview-charts").await;
    b.close().await;

    let narrow = Browser::start_sized(&server, 360, 800).await;
    narrow.sign_in(&admin, PASSWORD, "/ui").await;
    narrow.wait_text("Disk", 10).await;
    narrow.screenshot("overview-360").await;
    narrow.close().await;
}

#[tokio::test]
async fn registry_pages_list_what_the_viewer_may_pull_and_delete_tags() {
    let server = TestServer::start().await;
    let (owner_client, owner) = server.user("regown").await;
    let (other_client, _) = server.user("regoth").await;
    let name = unique("dashreg");
    push_image(&server, &owner, None, &name, "v1").await;
    push_image(&server, &owner, None, &name, "v2").await;
    let api = V1::new(&server, owner_client.clone());
    let (status, list) = api.get(&format!("/repositories?name={name}")).await;
    assert_eq!(status, 200, "{list}");
    let id = list[0]["id"].as_str().unwrap().to_owned();

    // The owner's list and overview chart hold it; another user's hold nothing of it.
    let (status, html) = page(&owner_client, &server, "/ui/registry").await;
    assert_eq!(status, 200);
    assert!(
        html.contains(&format!("href=\"/ui/registry/{id}\"")),
        "{html}"
    );
    let (_, html) = page(&owner_client, &server, "/ui").await;
    assert!(html.contains(&name), "the storage chart: {html}");
    for path in ["/ui/registry", "/ui"] {
        let (status, html) = page(&other_client, &server, path).await;
        assert_eq!(status, 200);
        assert!(!html.contains(&name), "{path} shows another's repository");
    }
    let (status, html) = page(&other_client, &server, &format!("/ui/registry?name={name}")).await;
    assert_eq!(status, 200);
    assert!(!html.contains(&id) && html.contains("No repository on this page"));
    let (status, html) = page(&other_client, &server, &format!("/ui/registry/{id}")).await;
    assert_eq!(status, 404);
    assert!(html.contains("404 Not Found"));
    assert_eq!(
        page(&owner_client, &server, "/ui/registry/nope").await.0,
        404
    );
    assert_eq!(
        page(
            &owner_client,
            &server,
            &format!("/ui/registry/{id}?cursor=%2F")
        )
        .await
        .0,
        400
    );

    // The pull command names the host the browser used.
    let (_, html) = page(&owner_client, &server, &format!("/ui/registry/{id}")).await;
    let pull = format!("docker pull {}/{name}:v1", server.addr);
    assert!(html.contains(&pull), "{html}");

    let b = Browser::start_sized(&server, 360, 800).await;
    b.sign_in(&owner, PASSWORD, "/ui/registry").await;
    b.fill("name", &name).await;
    b.press("Search repositories").await;
    b.wait_text(&name, 10).await;
    b.screenshot("registry-list-360").await;
    b.follow(&name).await;
    b.wait_path(&format!("/ui/registry/{id}")).await;
    b.wait_text("v2", 10).await;
    b.screenshot("registry-repository-360").await;
    b.press("Delete tag").await;
    b.wait_text(&format!("Deleted the tag {name}:v1."), 10)
        .await;
    assert!(b.find("#tag-v2").await.text().await.is_ok());
    assert!(b.c.find(fantoccini::Locator::Css("#tag-v1")).await.is_err());
    b.close().await;

    // Gone from /v2 and /v1; the other tag stays.
    let r = client()
        .get(server.url(&format!("/v2/{name}/tags/list")))
        .basic_auth(&owner, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tags = json_of(r).await;
    assert_eq!(tags["tags"], serde_json::json!(["v2"]), "{tags}");
    let (_, tags) = api.get(&format!("/repositories/{id}/tags")).await;
    assert_eq!(tags.as_array().map(Vec::len), Some(1), "{tags}");

    // Another user cannot delete it, with or without seeing it.
    let (_, html) = page(&other_client, &server, "/ui").await;
    let r = other_client
        .post(server.url(&format!("/ui/registry/{id}/tags/v2/delete")))
        .form(&[("csrf", csrf_of(&html))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let (_, tags) = api.get(&format!("/repositories/{id}/tags")).await;
    assert_eq!(tags[0]["name"], "v2");
}
