//! Denial of service by an account holder or a stranger (issue 9): registrations are limited
//! per client address (each costs an argon2 hash). The log, result and registry bounds are
//! tested with their features (`jobs.rs`, `registry.rs`).

use crate::harness::*;

async fn register(server: &TestServer, login: &str) -> reqwest::Response {
    client()
        .post(server.url("/register"))
        .form(&[
            ("login", login),
            ("password", PASSWORD),
            ("email", &format!("{login}@example.org")),
        ])
        .send()
        .await
        .expect("register")
}

fn limited(per_address: u32) -> impl FnOnce(&mut dtaas::core::config::Config) {
    move |c| {
        c.registration_limit.per_address = per_address;
        c.registration_limit.window_secs = 3600;
    }
}

/// 40 registrations took 1.6 s of argon2 from one address: now the fourth of a limit of three
/// is 429 with Retry-After, and costs no hash.
#[tokio::test]
async fn registrations_beyond_the_limit_per_address_are_refused() {
    let server = TestServer::start_with(limited(3)).await;
    for i in 0..3 {
        let login = unique(&format!("reg{i}"));
        let r = register(&server, &login).await;
        assert_eq!(r.status(), 200, "registration {i}");
    }
    let login = unique("reg-over");
    let r = register(&server, &login).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    let v = json_of(r).await;
    assert!(!kabuto_error(&v).is_empty(), "{v}");
    // The refused account was not created: the login is still free once the window ends.
    let exists = dtaas::domains::accounts::find_user_by_login(&server.app.store, &login).unwrap();
    assert!(exists.is_none());
    // The window ends.
    server.clock.advance(chrono::Duration::seconds(3601));
    assert_eq!(register(&server, &login).await.status(), 200);
}

/// Requests fired at once cannot get past the limit between its check and its count.
#[tokio::test]
async fn concurrent_registrations_never_pass_the_limit() {
    let server = TestServer::start_with(limited(3)).await;
    let logins: Vec<String> = (0..12).map(|i| unique(&format!("burst{i}"))).collect();
    let responses =
        futures_util::future::join_all(logins.iter().map(|l| register(&server, l))).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    let created = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((created, refused), (3, 9), "{statuses:?}");
    for r in responses.iter().filter(|r| r.status() == 429) {
        assert!(r.headers().contains_key("retry-after"));
    }
    let users = dtaas::domains::accounts::list_users(&server.app.store).unwrap();
    let made = users.iter().filter(|u| logins.contains(&u.login)).count();
    assert_eq!(made, 3);
}

/// Registrations refused for other reasons (a taken login) cost no hash and are not counted;
/// logins and other routes are not limited by it.
#[tokio::test]
async fn only_registrations_that_would_hash_count() {
    let server = TestServer::start_with(limited(2)).await;
    let (_, taken) = server.user("taken").await;
    for _ in 0..5 {
        assert_eq!(register(&server, &taken).await.status(), 409);
    }
    assert_eq!(register(&server, &unique("second")).await.status(), 200);
    assert_eq!(register(&server, &unique("third")).await.status(), 429);
    // Logging in is unaffected.
    let c = client();
    let r = c
        .post(server.url("/login"))
        .form(&[("login", taken.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
