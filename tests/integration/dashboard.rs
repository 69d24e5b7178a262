//! The dashboard's frame (issue 14): `/` for browsers and for curl, signing in and out through
//! the pages, error pages, CSRF on every form, the security headers, in a real Chromium.

use crate::browser::Browser;
use crate::harness::*;

#[tokio::test]
async fn a_browser_goes_to_the_dashboard_and_curl_keeps_kabutos_json() {
    let server = TestServer::start().await;
    let plain = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // curl: kabuto's probe, JSON.
    let r = plain.get(server.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        json_of(r).await["error"],
        "not logged in: POST /login first, or send Authorization: Bearer <api key>"
    );
    // A browser without a session: the sign-in page, coming back to /ui.
    let r = plain
        .get(server.url("/"))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login?next=/ui");
    let r = plain.get(server.url("/ui/pipelines")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login?next=/ui/pipelines");

    // With a session: / sends a browser to /ui; curl with the session still gets JSON.
    let (c, login) = server.user("front").await;
    let r = c
        .get(server.url("/"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert!(r.url().path() == "/ui", "{}", r.url());
    let page = r.text().await.unwrap();
    assert!(page.contains("<h1>Overview</h1>"), "{page}");
    let r = c.get(server.url("/")).send().await.unwrap();
    assert_eq!(json_of(r).await["login"], login.as_str());

    // Every page carries the headers that keep it in its frame and origin.
    let r = c.get(server.url("/ui")).send().await.unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"));
    assert_eq!(r.headers()["x-frame-options"], "DENY");

    // An unknown page: the HTML 404 page.
    let r = c.get(server.url("/ui/no-such-page")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(r.text().await.unwrap().contains("404 Not Found"));

    // A form without the session's CSRF token is refused, with a page that says why.
    let r = c
        .post(server.url("/ui/logout"))
        .form(&[("csrf", "0".repeat(64))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("security token"));
    // The session is still live.
    let r = c.get(server.url("/ui")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn sign_in_and_out_through_the_pages_in_chromium() {
    let server = TestServer::start().await;
    let (_, login) = server.user("browse").await;
    let b = Browser::start(&server).await;

    b.open("/").await;
    b.wait_path("/login").await;
    b.screenshot("login").await;
    b.sign_in(&login, PASSWORD, "/ui").await;
    let text = b.wait_text("Overview", 10).await;
    assert!(text.contains(&login), "{text}");
    b.screenshot("overview").await;

    b.press("Sign out").await;
    b.wait_path("/login").await;
    b.open("/ui").await;
    b.wait_path("/login").await;

    // A wrong password says so on the sign-in page.
    b.open("/login?next=/ui").await;
    b.fill("login", &login).await;
    b.fill("password", "not the password").await;
    b.submit_form("form").await;
    b.wait_text("invalid", 10).await;
    b.close().await;
}
