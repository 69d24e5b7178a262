//! Lists that page: `limit` and `cursor` on /v1 and the kabuto face, filters, and what a list
//! answers to owners and to grantees; and jobs that keep no directory of their own until they
//! need one.

use crate::harness::*;
use serde_json::{Value, json};

/// GET with the raw response: (status, X-Next-Cursor, Link, body).
async fn get_page(c: &reqwest::Client, url: &str) -> (u16, Option<String>, Option<String>, Value) {
    let r = c.get(url).send().await.expect("GET");
    let status = r.status().as_u16();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().expect("header").to_owned())
    };
    let (next, link) = (header("x-next-cursor"), header("link"));
    let body = r.json().await.unwrap_or(Value::Null);
    (status, next, link, body)
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a JSON array")
        .iter()
        .map(|t| t["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Follows the cursor of `path` (from the root, e.g. `/v1/trusts`) on the server at `base` to
/// the end; every page but the last is full.
async fn follow_all(c: &reqwest::Client, base: &str, path: &str, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut url = format!("{base}{path}?limit={limit}");
    loop {
        let (status, next, link, body) = get_page(c, &url).await;
        assert_eq!(status, 200, "{url}: {body}");
        let page = ids(&body);
        out.extend(page.iter().cloned());
        match next {
            Some(cursor) => {
                assert_eq!(page.len(), limit, "a page with a next one is full");
                // The Link header leads to the same page as the cursor.
                let link = link.expect("a Link header next to X-Next-Cursor");
                let target = link
                    .strip_prefix('<')
                    .and_then(|l| l.split_once(">; rel=\"next\""))
                    .map(|(u, _)| u.to_owned())
                    .unwrap_or_else(|| panic!("Link {link:?}"));
                assert!(target.starts_with(path), "{target} is not on {path}");
                assert!(target.contains(&format!("limit={limit}")), "{target}");
                let by_cursor = format!("{base}{path}?limit={limit}&cursor={cursor}");
                let (_, _, _, a) = get_page(c, &format!("{base}{target}")).await;
                let (_, _, _, b) = get_page(c, &by_cursor).await;
                assert_eq!(a, b, "Link and cursor disagree");
                url = by_cursor;
            }
            None => {
                assert!(link.is_none());
                assert!(page.len() <= limit);
                return out;
            }
        }
    }
}

#[tokio::test]
async fn v1_lists_page_by_cursor_for_owners_and_grantees() {
    let server = TestServer::start().await;
    let (alice, _) = v1_user(&server, "pager").await;
    let (bob, bob_login) = v1_user(&server, "grantee").await;
    let mut trusts = Vec::new();
    for i in 0..7 {
        let (s, v) = alice
            .post("/trusts", json!({"name": format!("trust {i}")}))
            .await;
        assert_eq!(s, 201, "{v}");
        trusts.push(v["id"].as_str().unwrap().to_owned());
    }
    let base = server.base.clone();

    // The owner: every page in id order (creation order), pages of 3, 3 and 1.
    let all = follow_all(&alice.c, &base, "/v1/trusts", 3).await;
    assert_eq!(all, trusts);
    let (s, v) = alice.get("/trusts").await;
    assert_eq!(s, 200);
    assert_eq!(ids(&v), trusts, "the default page holds all seven");

    // A grantee lists what it was granted READ on, and only that, a page at a time.
    for t in [&trusts[1], &trusts[4], &trusts[6]] {
        let (s, v) = alice
            .post(
                &format!("/objects/{t}/access"),
                json!({"principal": bob_login, "capabilities": ["READ"]}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }
    let (s, v) = alice
        .post(
            &format!("/objects/{}/access", trusts[2]),
            json!({"principal": bob_login, "capabilities": ["DISCOVER"]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let seen = follow_all(&bob.c, &base, "/v1/trusts", 1).await;
    assert_eq!(
        seen,
        vec![trusts[1].clone(), trusts[4].clone(), trusts[6].clone()]
    );

    // Taking READ away takes the trust out of the grantee's list.
    let (s, v) = alice
        .delete(&format!(
            "/objects/{}/access/{bob_login}?capabilities=READ",
            trusts[4]
        ))
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = bob.get("/trusts").await;
    assert_eq!(ids(&v), vec![trusts[1].clone(), trusts[6].clone()]);

    // A cursor past the end is an empty page, not an error.
    let (_, _, _, last) = get_page(&alice.c, &format!("{base}/v1/trusts?limit=7")).await;
    assert_eq!(ids(&last).len(), 7);
    let (s, next, _, v) = get_page(&alice.c, &format!("{base}/v1/trusts?limit=6")).await;
    assert_eq!((s, ids(&v).len()), (200, 6));
    let cursor = next.expect("a seventh follows");
    let (s, next, _, v) = get_page(
        &alice.c,
        &format!("{base}/v1/trusts?limit=1&cursor={cursor}"),
    )
    .await;
    assert_eq!((s, ids(&v), next), (200, vec![trusts[6].clone()], None));
}

#[tokio::test]
async fn bad_paging_and_filters_are_v1_errors() {
    let server = TestServer::start().await;
    let (api, _) = v1_user(&server, "badpage").await;
    for query in [
        "/trusts?limit=0",
        "/trusts?limit=1001",
        "/trusts?limit=-1",
        "/trusts?limit=2.0",
        "/trusts?limit=abc",
        "/trusts?limit=99999999999999999999999",
        "/trusts?cursor=nonsense",
        "/trusts?cursor=c1.zz",
        "/trusts?limit=1&limit=2",
        "/jobs?state=sleeping",
        "/jobs?pipeline=notanid",
        "/servables?type=toaster",
        "/prototypes?type=toaster",
        "/delegation-requests?state=maybe",
        "/delegation-requests?servable=123",
        // An empty value is not an absent one: the document's patterns and enums refuse it
        // (schemathesis found `?type=` answered 200 although "" is no type).
        "/trusts?limit=",
        "/trusts?cursor=",
        "/trusts?limit=&cursor=",
        "/servables?type=",
        "/jobs?state=",
        "/jobs?pipeline=",
        // The cursor is exactly what the server gives out (the document's pattern).
        "/trusts?cursor=c1.0190B1F3C4D27A8E9B1C2D3E4F506172",
        "/trusts?cursor=c1.0190b1f3-c4d2-7a8e-9b1c-2d3e4f506172",
    ] {
        let (s, v) = api.get(query).await;
        assert_eq!(s, 400, "{query}: {v}");
        let (code, message) = v1_error(&v);
        assert_eq!(code, "bad_request", "{query}: {v}");
        assert!(!message.is_empty());
    }
    // A cursor of the documented form that follows nothing is simply where a page starts.
    let (s, v) = api
        .get("/trusts?cursor=c1.0190b1f3c4d27a8e9b1c2d3e4f506172")
        .await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn job_lists_filter_by_state_and_pipeline_and_jobs_keep_no_empty_inbox() {
    let server = TestServer::start().await;
    let k = server.kabuto("jobfilter").await;
    let image = k.busybox().await;
    let first = k.pipeline("first").await;
    let second = k.pipeline("second").await;
    let a = k.job(&first, &image, "echo a", &[]).await;
    let b = k
        .job(&first, &image, "echo b", &[("in.txt", b"hello")])
        .await;
    let c = k.job(&second, &image, "cat /inbox/in.txt", &[]).await;

    // A job without attachments has no directory until it runs; one with them has its inbox.
    let jobs_dir = server.data_dir().join("jobs");
    assert!(!jobs_dir.join(&a).exists(), "an empty inbox was made");
    assert!(jobs_dir.join(&b).join("inbox").join("in.txt").exists());

    let api = V1::new(&server, k.c.clone());
    let (s, v) = api.get(&format!("/jobs?pipeline={first}")).await;
    assert_eq!((s, ids(&v)), (200, vec![a.clone(), b.clone()]), "{v}");
    let (_, v) = api
        .get(&format!("/jobs?pipeline={second}&state=ready"))
        .await;
    assert_eq!(ids(&v), vec![c.clone()]);
    let (_, v) = api
        .get(&format!("/jobs?pipeline={second}&state=done"))
        .await;
    assert_eq!(ids(&v), Vec::<String>::new());

    // Run the second pipeline: its job sees an empty /inbox, and the filters follow the state.
    let (s, v) = k.submit(&second).await;
    assert_eq!(s, 200, "{v}");
    let done = k.wait_job(&second, &c).await;
    assert_eq!(
        done["state"], "failed",
        "cat of a missing file fails: {done}"
    );
    let (_, v) = api.get("/jobs?state=failed").await;
    assert_eq!(ids(&v), vec![c.clone()]);
    let (_, v) = api.get("/jobs?state=ready").await;
    assert_eq!(ids(&v), vec![a.clone(), b.clone()]);
    // Another user sees none of them, filtered or not.
    let (other, _) = v1_user(&server, "jobfilter-other").await;
    let (_, v) = other.get(&format!("/jobs?pipeline={first}")).await;
    assert_eq!(ids(&v), Vec::<String>::new());
}

#[tokio::test]
async fn kabuto_lists_answer_everything_or_a_page() {
    let server = TestServer::start().await;
    let k = server.kabuto("kabutopages").await;
    // More than one streamed chunk (500 a chunk).
    let mut made = Vec::new();
    for chunk in 0..11 {
        let batch: Vec<_> = (0..50)
            .map(|i| {
                let k = &k;
                async move { k.pipeline(&format!("p{chunk}-{i}")).await }
            })
            .collect();
        made.extend(futures_util::future::join_all(batch).await);
    }
    made.sort();
    let (s, all) = k.get("/pipeline").await;
    assert_eq!(s, 200);
    let obj = all.as_object().expect("kabuto's keyed object");
    assert_eq!(obj.len(), 550);
    let mut keys: Vec<String> = obj.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, made);
    for (id, p) in obj {
        assert_eq!(p["id"], json!(id));
    }

    // With `limit`, one page of the same shape and the cursor of the next.
    let (s, next, link, page) = get_page(&k.c, &k.url("/pipeline?limit=2")).await;
    assert_eq!(s, 200);
    let page = page.as_object().expect("keyed object").clone();
    let mut first_two: Vec<String> = page.keys().cloned().collect();
    first_two.sort();
    assert_eq!(first_two, made[..2].to_vec());
    let cursor = next.expect("more follow");
    assert!(
        link.expect("Link")
            .starts_with("</pipeline?limit=2&cursor=")
    );
    let (_, _, _, page2) =
        get_page(&k.c, &k.url(&format!("/pipeline?limit=2&cursor={cursor}"))).await;
    let mut second_two: Vec<String> = page2.as_object().unwrap().keys().cloned().collect();
    second_two.sort();
    assert_eq!(second_two, made[2..4].to_vec());

    // Bad paging is a kabuto error.
    let (s, v) = k.get("/jobs?limit=0").await;
    assert_eq!(s, 400);
    assert!(kabuto_error(&v).contains("limit"), "{v}");
}

#[tokio::test]
async fn api_keys_page_and_list_only_the_callers_own() {
    let server = TestServer::start().await;
    let (api, _) = v1_user(&server, "keypager").await;
    let mut made = Vec::new();
    for i in 0..3 {
        let (s, v) = api
            .post("/api-keys", json!({"name": format!("k{i}")}))
            .await;
        assert_eq!(s, 201, "{v}");
        made.push(v["id"].as_str().unwrap().to_owned());
    }
    let all = follow_all(&api.c, &server.base, "/v1/api-keys", 2).await;
    assert_eq!(all, made);
    // Another user's keys are not in the list.
    let (other, _) = v1_user(&server, "keypager-other").await;
    other.new_key().await;
    let (_, v) = api.get("/api-keys").await;
    assert_eq!(ids(&v), made);
}
