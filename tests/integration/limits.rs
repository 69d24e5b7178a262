//! Denial of service by an account holder or a stranger (issue 9): registrations are limited
//! per client address (each costs an argon2 hash); failed logins are limited per login and per
//! address however many arrive at once (issue 11). The log, result and registry bounds are
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

/// The statuses of `n` requests sent at once, counted: (401s, 429s, others).
async fn at_once(
    n: usize,
    request: impl Fn(usize) -> reqwest::RequestBuilder,
) -> (usize, usize, Vec<u16>) {
    let responses = futures_util::future::join_all((0..n).map(|i| request(i).send())).await;
    let statuses: Vec<u16> = responses
        .into_iter()
        .map(|r| r.expect("an answer").status().as_u16())
        .collect();
    let count = |s: u16| statuses.iter().filter(|x| **x == s).count();
    (count(401), count(429), statuses)
}

/// Issue 11: 32 wrong passwords at once for one login had 10-20 of them checked against a
/// limit of 5 (the limit was read before any failure was counted). An attempt is now counted
/// before its password is hashed: exactly the limit answer 401, the rest 429, through kabuto's
/// login and the registry's Basic credentials alike.
#[tokio::test]
async fn concurrent_wrong_logins_never_pass_the_limit_per_login() {
    let server = TestServer::start_with(|c| c.login_limit.per_address = 1_000).await;
    let limit = server.config.login_limit.per_login as usize;
    assert_eq!(limit, 5, "the default");
    let c = client();

    let (_, login) = server.user("burst").await;
    let (unauthorized, limited, statuses) = at_once(32, |_| {
        c.post(server.url("/login"))
            .form(&[("login", login.as_str()), ("password", "wrong")])
    })
    .await;
    assert_eq!((unauthorized, limited), (limit, 32 - limit), "{statuses:?}");

    let (_, login) = server.user("burst-reg").await;
    let (unauthorized, limited, statuses) = at_once(32, |_| {
        c.get(server.url("/v2/"))
            .basic_auth(login.as_str(), Some("wrong"))
    })
    .await;
    assert_eq!((unauthorized, limited), (limit, 32 - limit), "{statuses:?}");
    // The right password waits too, until the window ends.
    let r = c
        .get(server.url("/v2/"))
        .basic_auth(login.as_str(), Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    server.clock.advance(chrono::Duration::seconds(
        server.config.login_limit.window_secs as i64 + 1,
    ));
    let r = c
        .get(server.url("/v2/"))
        .basic_auth(login.as_str(), Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// The same per client address (34 at once got past a limit of 20): the tests' clients all
/// come from 127.0.0.1, so a small limit and many logins show it.
#[tokio::test]
async fn concurrent_wrong_logins_never_pass_the_limit_per_address() {
    let server = TestServer::start_with(|c| {
        c.login_limit.per_address = 4;
        c.login_limit.per_login = 100;
    })
    .await;
    let c = client();
    let logins: Vec<String> = (0..32).map(|i| unique(&format!("nobody{i}"))).collect();
    let (unauthorized, limited, statuses) = at_once(32, |i| {
        c.post(server.url("/login"))
            .form(&[("login", logins[i].as_str()), ("password", "wrong")])
    })
    .await;
    assert_eq!((unauthorized, limited), (4, 28), "{statuses:?}");
    let (unauthorized, limited, statuses) = at_once(8, |i| {
        c.get(server.url("/v2/"))
            .basic_auth(logins[i].as_str(), Some("wrong"))
    })
    .await;
    assert_eq!((unauthorized, limited), (0, 8), "{statuses:?}");
}
