//! /v1 for everything a client needs (issue 13, part 1): images and builds, pipelines and jobs,
//! registry repositories as shareable objects, and users found by login. Real server, real
//! engine.

use crate::harness::*;
use crate::kabuto_client::{file, unzip};
use futures_util::StreamExt;
use reqwest::header::HeaderMap;
use reqwest::multipart::Form;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn url(api: &V1, path: &str) -> String {
    format!("{}/v1{path}", api.base)
}

/// Sends a request; the status, the headers and the body (JSON, or the text as a string).
async fn send(r: reqwest::RequestBuilder) -> (u16, HeaderMap, Value) {
    let r = r.send().await.expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, body)
}

async fn post_form(api: &V1, path: &str, form: Form) -> (u16, HeaderMap, Value) {
    send(api.c.post(url(api, path)).multipart(form)).await
}

async fn patch(api: &V1, path: &str, body: Value) -> (u16, Value) {
    let (status, _, body) = send(api.c.patch(url(api, path)).json(&body)).await;
    (status, body)
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("a list: {list}"))
        .iter()
        .map(|v| v["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Polls a build until it has ended.
async fn wait_build(api: &V1, build: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (status, v) = api.get(&format!("/builds/{build}")).await;
        assert_eq!(status, 200, "{v}");
        if v["state"] != "PENDING" {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "build {build} still pending: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Builds an image from a Dockerfile (JSON, no attachments) and waits for SUCCESS.
async fn built_image(api: &V1, name: &str, dockerfile: &str) -> String {
    let (status, v) = api
        .post("/images", json!({"name": name, "dockerfile": dockerfile}))
        .await;
    assert_eq!(status, 202, "{v}");
    let done = wait_build(api, v["id"].as_str().expect("build id")).await;
    assert_eq!(done["state"], "SUCCESS", "{done}");
    v["image"].as_str().expect("image id").to_owned()
}

/// Polls a job until `done` accepts it.
async fn wait_job(api: &V1, job: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, v) = api.get(&format!("/jobs/{job}")).await;
        assert_eq!(status, 200, "{v}");
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "job {job}: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The server-sent events of `GET /v1/jobs/{id}/logs?follow=1`, read until the stream ends:
/// the log lines, and the data of the `end` event.
async fn follow_logs(api: &V1, job: &str) -> (Vec<String>, Value) {
    let r = api
        .c
        .get(url(api, &format!("/jobs/{job}/logs?follow=1")))
        .send()
        .await
        .expect("follow");
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let mut text = String::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(120), body.next())
        .await
        .expect("the stream moves")
    {
        text.push_str(&String::from_utf8_lossy(&chunk.expect("a chunk")));
    }
    let (mut lines, mut end) = (Vec::new(), Value::Null);
    for event in text.split("\n\n") {
        let field = |name: &str| {
            event
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .map(str::to_owned)
        };
        match field("event").as_deref() {
            Some("log") => lines.push(field("data").unwrap_or_default()),
            Some("end") => end = serde_json::from_str(&field("data").expect("data")).unwrap(),
            _ => {}
        }
    }
    (lines, end)
}

#[tokio::test]
async fn images_are_built_rebuilt_and_deleted_through_v1() {
    let server = TestServer::start().await;
    let (api, login) = v1_user(&server, "v1img").await;
    let (other, _) = v1_user(&server, "v1imgother").await;
    let name = unique("hello");

    // A Dockerfile with an attachment next to it, as a form.
    let form = Form::new()
        .text("name", name.clone())
        .text(
            "dockerfile",
            "FROM busybox\nCOPY greeting.txt /greeting.txt\nRUN cat /greeting.txt\n",
        )
        .text("nocache", "true")
        .part(
            "attachments",
            file("greeting.txt", b"hello from an attachment\n"),
        );
    let (status, headers, build) = post_form(&api, "/images", form).await;
    assert_eq!(status, 202, "{build}");
    let build_id = build["id"].as_str().unwrap().to_owned();
    let image = build["image"].as_str().unwrap().to_owned();
    assert_eq!(headers["location"], format!("/v1/builds/{build_id}"));
    assert_eq!(build["state"], "PENDING");
    assert!(build.get("output").is_none(), "{build}");

    let done = wait_build(&api, &build_id).await;
    assert_eq!(done["state"], "SUCCESS", "{done}");
    assert!(
        done["output"]
            .as_str()
            .unwrap()
            .contains("hello from an attachment"),
        "the build's output: {done}"
    );
    let (status, v) = api.get(&format!("/images/{image}")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["state"], "SUCCESS");
    assert_eq!(v["nocache"], true);
    assert_eq!(v["attachments"], json!(["greeting.txt"]));
    assert_eq!(v["last_build"], build_id.as_str());
    assert!(v["engine_id"].as_str().is_some(), "{v}");
    let repository = v["repository"].as_str().unwrap().to_owned();
    assert!(repository.ends_with(&format!("/{name}")), "{repository}");
    assert!(
        repository.starts_with(&login.to_lowercase()),
        "{repository}"
    );

    // Listed, found by name, its builds by image; invisible to others.
    let (_, list) = api.get("/images").await;
    assert_eq!(ids(&list), vec![image.clone()]);
    let (_, found) = api
        .get(&format!("/images?name={}", name.to_uppercase()))
        .await;
    assert_eq!(ids(&found), vec![image.clone()]);
    let (_, none) = api.get("/images?name=nothing-like-it").await;
    assert_eq!(none, json!([]));
    let (_, builds) = api.get(&format!("/builds?image={image}")).await;
    assert_eq!(ids(&builds), vec![build_id.clone()]);
    assert!(
        builds[0].get("output").is_none(),
        "lists leave the output out"
    );
    assert_eq!(other.get(&format!("/images/{image}")).await.0, 404);
    assert_eq!(other.get(&format!("/builds/{build_id}")).await.0, 404);
    assert_eq!(other.get("/images").await.1, json!([]));

    // Bad requests lose nothing and say why.
    for (body, why) in [
        (
            json!({"name": "x"}),
            "neither a Dockerfile nor a repository",
        ),
        (
            json!({"name": "x", "dockerfile": "  \n"}),
            "a blank Dockerfile",
        ),
        (json!({"dockerfile": "FROM busybox"}), "no name"),
        (
            json!({"name": " ", "dockerfile": "FROM busybox"}),
            "a blank name",
        ),
        (
            json!({"name": "x", "repo_url": "ext::sh -c touch"}),
            "a refused repository form",
        ),
        (
            json!({"name": "x", "dockerfile": "FROM busybox", "nocache": "yes"}),
            "nocache is a boolean",
        ),
        (
            json!({"name": "x", "dockerfile": "FROM busybox", "extra": 1}),
            "an unknown field",
        ),
    ] {
        let (status, v) = api.post("/images", body).await;
        assert_eq!(status, 400, "{why}: {v}");
        assert_eq!(v1_error(&v).0, "bad_request", "{why}: {v}");
    }
    let twice = Form::new()
        .text("name", "x")
        .text("dockerfile", "FROM busybox\n")
        .part("attachments", file("a.txt", b"1"))
        .part("attachments", file("a.txt", b"2"));
    assert_eq!(post_form(&api, "/images", twice).await.0, 400);
    let text_attachment = Form::new()
        .text("name", "x")
        .text("dockerfile", "FROM busybox\n")
        .text("attachments", "not a file");
    assert_eq!(post_form(&api, "/images", text_attachment).await.0, 400);
    let (_, list) = api.get("/images").await;
    assert_eq!(ids(&list), vec![image.clone()], "nothing was made");

    // A rebuild keeps the id; while it runs, another rebuild or a delete is a conflict.
    let (status, _, rebuild) = send(
        api.c
            .post(url(&api, &format!("/images/{image}/builds")))
            .json(&json!({"dockerfile": "FROM busybox\nRUN sleep 2 && echo about to fail && false\n"})),
    )
    .await;
    assert_eq!(status, 202, "{rebuild}");
    assert_eq!(rebuild["image"], image.as_str());
    let rebuild_id = rebuild["id"].as_str().unwrap().to_owned();
    let (status, v) = api
        .post(&format!("/images/{image}/builds"), json!({}))
        .await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(api.delete(&format!("/images/{image}")).await.0, 409);
    assert_eq!(
        other
            .post(&format!("/images/{image}/builds"), json!({}))
            .await
            .0,
        404
    );
    let failed = wait_build(&api, &rebuild_id).await;
    assert_eq!(failed["state"], "FAILED", "{failed}");
    assert!(
        failed["output"].as_str().unwrap().contains("about to fail"),
        "{failed}"
    );
    let (_, v) = api.get(&format!("/images/{image}")).await;
    assert_eq!(
        (&v["state"], &v["last_build"]),
        (&json!("FAILED"), &json!(rebuild_id))
    );
    let (_, failed_builds) = api
        .get(&format!("/builds?image={image}&state=FAILED"))
        .await;
    assert_eq!(ids(&failed_builds), vec![rebuild_id.clone()]);
    let (_, all) = api.get(&format!("/builds?image={image}&limit=1")).await;
    assert_eq!(
        ids(&all),
        vec![build_id.clone()],
        "oldest first, a page of one"
    );

    // Deleted: gone with its builds.
    assert_eq!(other.delete(&format!("/images/{image}")).await.0, 404);
    assert_eq!(api.delete(&format!("/images/{image}")).await.0, 204);
    assert_eq!(api.get(&format!("/images/{image}")).await.0, 404);
    assert_eq!(api.get(&format!("/builds/{build_id}")).await.0, 404);
    assert_eq!(api.get("/builds").await.1, json!([]));
}

#[tokio::test]
async fn pipelines_run_jobs_added_reordered_and_removed_through_v1() {
    let server = TestServer::start().await;
    let (api, _) = v1_user(&server, "v1pipe").await;
    let (other, _) = v1_user(&server, "v1pipeother").await;
    let image = built_image(&api, "runner", "FROM busybox\n").await;

    let (status, pipeline) = api.post("/pipelines", json!({"name": "ordered"})).await;
    assert_eq!(status, 201, "{pipeline}");
    let p = pipeline["id"].as_str().unwrap().to_owned();
    assert_eq!(pipeline["jobs"], json!([]));
    let (status, v) = api.post(&format!("/pipelines/{p}/submit"), json!({})).await;
    assert_eq!(status, 409, "nothing to run: {v}");

    // A job with an attachment (a form), two more as JSON.
    let form = Form::new()
        .text(
            "command",
            "sh -c 'cat /inbox/in.txt; echo second line; cp /inbox/in.txt /outbox/out.txt'",
        )
        .text("image", image.clone())
        .part("attachments", file("in.txt", b"from the inbox\n"));
    let (status, _, a) = post_form(&api, &format!("/pipelines/{p}/jobs"), form).await;
    assert_eq!(status, 201, "{a}");
    assert_eq!(a["state"], "ready");
    assert_eq!(a["attachments"], json!(["in.txt"]));
    assert_eq!(a["pipeline"]["id"], p.as_str());
    let a = a["id"].as_str().unwrap().to_owned();
    let mut added = Vec::new();
    for command in ["echo never runs", "sh -c 'echo first; sleep 3'"] {
        let (status, v) = api
            .post(
                &format!("/pipelines/{p}/jobs"),
                json!({"command": command, "image": image}),
            )
            .await;
        assert_eq!(status, 201, "{v}");
        added.push(v["id"].as_str().unwrap().to_owned());
    }
    let (b, c) = (added[0].clone(), added[1].clone());
    for (body, status_wanted) in [
        (json!({"command": "echo 'open", "image": image}), 400),
        (
            json!({"command": "  # a comment only", "image": image}),
            400,
        ),
        (json!({"command": "echo", "image": "nope"}), 400),
        (json!({"command": "echo", "image": p}), 404),
    ] {
        let (status, v) = api.post(&format!("/pipelines/{p}/jobs"), body).await;
        assert_eq!(status, status_wanted, "{v}");
    }
    assert_eq!(
        other
            .post(
                &format!("/pipelines/{p}/jobs"),
                json!({"command": "echo", "image": image})
            )
            .await
            .0,
        404
    );

    // Reorder (every job once), rename; remove one.
    let (status, v) = patch(&api, &format!("/pipelines/{p}"), json!({"jobs": [c, a, b]})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["jobs"], json!([c, a, b]));
    let (status, v) = patch(&api, &format!("/pipelines/{p}"), json!({"jobs": [c, a]})).await;
    assert_eq!(status, 409, "not every job: {v}");
    let (status, v) = patch(&api, &format!("/pipelines/{p}"), json!({"jobs": [c, a, a]})).await;
    assert_eq!(status, 400, "a job twice: {v}");
    let (status, v) = patch(&api, &format!("/pipelines/{p}"), json!([null, null])).await;
    assert_eq!(status, 400, "a body is an object: {v}");
    let (status, v) = patch(&api, &format!("/pipelines/{p}"), json!({"name": "renamed"})).await;
    assert_eq!((status, &v["name"]), (200, &json!("renamed")));
    assert_eq!(api.delete(&format!("/jobs/{b}")).await.0, 204);
    assert_eq!(api.get(&format!("/jobs/{b}")).await.0, 404);
    let (_, v) = api.get(&format!("/pipelines/{p}")).await;
    assert_eq!(v["jobs"], json!([c, a]));
    let (_, listed) = api.get(&format!("/jobs?pipeline={p}")).await;
    assert_eq!(ids(&listed).len(), 2);
    let (_, found) = api.get("/pipelines?name=RENAMED").await;
    assert_eq!(ids(&found), vec![p.clone()]);

    // Submitted: its jobs cannot be added, removed or reordered until it ends.
    let (status, v) = api.post(&format!("/pipelines/{p}/submit"), json!({})).await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(
        v["jobs"],
        json!([{"id": c, "state": "in_queue"}, {"id": a, "state": "in_queue"}])
    );
    let (status, v) = api
        .post(
            &format!("/pipelines/{p}/jobs"),
            json!({"command": "echo late", "image": image}),
        )
        .await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(
        patch(&api, &format!("/pipelines/{p}"), json!({"jobs": [a, c]}))
            .await
            .0,
        409
    );
    assert_eq!(api.delete(&format!("/jobs/{a}")).await.0, 409);
    assert_eq!(
        api.post(&format!("/pipelines/{p}/submit"), json!({}))
            .await
            .0,
        409
    );
    let (_, v) = api.get(&format!("/pipelines/{p}")).await;
    assert_eq!(v["queued"], true);

    // The logs of the second job, followed until it ends; then its result.
    let (lines, end) = follow_logs(&api, &a).await;
    assert_eq!(lines, vec!["from the inbox", "second line"], "{end}");
    assert_eq!(end, json!({"state": "done", "response": 0}));
    let (_, first) = api.get(&format!("/jobs/{c}")).await;
    assert_eq!(first["state"], "done", "the first ran first: {first}");
    let r = api
        .c
        .get(url(&api, &format!("/jobs/{a}/result")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let files = unzip(&r.bytes().await.unwrap());
    assert_eq!(files["out.txt"], b"from the inbox\n");
    assert_eq!(other.get(&format!("/jobs/{a}/result")).await.0, 404);
    // The run leaves the queue once its last job is recorded.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = api.get(&format!("/pipelines/{p}")).await;
        if v["queued"] == false {
            break;
        }
        assert!(Instant::now() < deadline, "still queued: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Kill a running job; the pipeline can be changed again once it ends, and deleted.
    let (_, v) = api
        .post(
            &format!("/pipelines/{p}/jobs"),
            json!({"command": "sh -c 'echo going; sleep 120'", "image": image}),
        )
        .await;
    let long = v["id"].as_str().unwrap().to_owned();
    let (_, v) = patch(
        &api,
        &format!("/pipelines/{p}"),
        json!({"jobs": [long, c, a]}),
    )
    .await;
    assert_eq!(v["jobs"], json!([long, c, a]));
    assert_eq!(
        api.post(&format!("/pipelines/{p}/submit"), json!({}))
            .await
            .0,
        202
    );
    wait_job(&api, &long, |j| j["state"] == "running").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while api.get(&format!("/jobs/{long}/logs")).await.1 == json!([]) {
        assert!(Instant::now() < deadline, "no line from the long job");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        other.post(&format!("/jobs/{long}/kill"), json!({})).await.0,
        404
    );
    let (status, v) = api.post(&format!("/jobs/{long}/kill"), json!({})).await;
    assert_eq!(status, 200, "{v}");
    let killed = wait_job(&api, &long, |j| j["state"] == "cancelled").await;
    assert!(
        killed["error"].as_str().unwrap().contains("killed"),
        "{killed}"
    );
    let rest = wait_job(&api, &c, |j| j["state"] == "cancelled").await;
    assert!(rest["error"].as_str().is_some(), "{rest}");
    let (_, lines) = api.get(&format!("/jobs/{long}/logs")).await;
    assert_eq!(lines[0]["logline"], "going", "{lines}");
    assert_eq!(api.delete(&format!("/pipelines/{p}")).await.0, 204);
    assert_eq!(api.get(&format!("/pipelines/{p}")).await.0, 404);
    assert_eq!(api.get(&format!("/jobs/{a}")).await.0, 404);
}

#[tokio::test]
async fn repositories_are_listed_shared_and_deleted_through_v1() {
    let server = TestServer::start().await;
    let (alice, alice_login) = v1_user(&server, "v1repoa").await;
    let (bob, bob_login) = v1_user(&server, "v1repob").await;
    let name = unique("shared");
    push_image(&server, &alice_login, None, &name, "1").await;
    push_image(&server, &alice_login, None, &name, "2").await;

    let (status, list) = alice.get("/repositories").await;
    assert_eq!(status, 200, "{list}");
    let repo = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} in {list}"))
        .clone();
    let id = repo["id"].as_str().unwrap().to_owned();
    assert_eq!(repo["tags"], 2, "{repo}");
    assert!(
        repo["size"].as_u64().unwrap() > 100_000,
        "busybox's layer: {repo}"
    );
    assert!(repo["blobs"].as_u64().unwrap() >= 2, "{repo}");
    let (_, found) = alice
        .get(&format!("/repositories?name={}", &name[2..]))
        .await;
    assert_eq!(ids(&found), vec![id.clone()]);

    // Tags, a page at a time in name order.
    let (status, headers, page) = send(
        alice
            .c
            .get(url(&alice, &format!("/repositories/{id}/tags?limit=1"))),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page[0]["name"], "1");
    assert!(page[0]["digest"].as_str().unwrap().starts_with("sha256:"));
    assert!(page[0]["size"].as_u64().unwrap() > 100_000, "{page}");
    assert_eq!(headers["x-next-cursor"], "1");
    let (_, rest) = alice
        .get(&format!("/repositories/{id}/tags?limit=1&cursor=1"))
        .await;
    assert_eq!(rest[0]["name"], "2");
    assert_eq!(rest.as_array().unwrap().len(), 1);
    assert_eq!(
        alice
            .get(&format!("/repositories/{id}/tags?cursor=-not-a-tag"))
            .await
            .0,
        400
    );

    // Bob sees nothing of it until it is shared with him.
    let (_, listed) = bob.get("/repositories").await;
    assert!(!ids(&listed).contains(&id), "{listed}");
    assert_eq!(bob.get(&format!("/repositories/{id}")).await.0, 404);
    assert_eq!(
        bob.get(&format!("/repositories?name={name}")).await.1,
        json!([])
    );
    let pull = |c: &reqwest::Client, login: &str| {
        c.get(server.url(&format!("/v2/{name}/manifests/1")))
            .basic_auth(login, Some(PASSWORD))
            .header(
                "accept",
                "application/vnd.docker.distribution.manifest.v2+json",
            )
            .send()
    };
    assert_eq!(pull(&client(), &bob_login).await.unwrap().status(), 404);

    let (status, v) = alice
        .post(
            &format!("/objects/{id}/access"),
            json!({"principal": bob_login, "capabilities": ["READ"]}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let (_, listed) = bob.get("/repositories").await;
    assert_eq!(ids(&listed), vec![id.clone()]);
    let (_, found) = bob.get(&format!("/repositories?name={name}")).await;
    assert_eq!(ids(&found), vec![id.clone()]);
    let (status, v) = bob.get(&format!("/repositories/{id}/tags")).await;
    assert_eq!((status, v.as_array().map(Vec::len)), (200, Some(2)));
    assert_eq!(pull(&client(), &bob_login).await.unwrap().status(), 200);
    // Reading is not deleting.
    assert_eq!(
        bob.delete(&format!("/repositories/{id}/tags/1")).await.0,
        403
    );
    assert_eq!(bob.delete(&format!("/repositories/{id}")).await.0, 403);

    // A tag, then the repository, deleted.
    assert_eq!(
        alice.delete(&format!("/repositories/{id}/tags/1")).await.0,
        204
    );
    assert_eq!(
        alice.delete(&format!("/repositories/{id}/tags/1")).await.0,
        404
    );
    let (_, tags) = alice.get(&format!("/repositories/{id}/tags")).await;
    assert_eq!(tags.as_array().unwrap().len(), 1, "{tags}");
    assert_eq!(alice.delete(&format!("/repositories/{id}")).await.0, 204);
    assert_eq!(alice.get(&format!("/repositories/{id}")).await.0, 404);
    assert_eq!(bob.get("/repositories").await.1, json!([]));
    assert_eq!(pull(&client(), &alice_login).await.unwrap().status(), 404);
    assert_eq!(bob.get(&format!("/objects/{id}")).await.0, 404);
    // The name can be pushed to again, as a new repository.
    push_image(&server, &alice_login, None, &name, "3").await;
    let (_, list) = alice.get(&format!("/repositories?name={name}")).await;
    let again = ids(&list);
    assert_eq!(again.len(), 1);
    assert_ne!(again[0], id);
}

#[tokio::test]
async fn users_are_found_by_login_among_those_the_caller_may_discover() {
    let server = TestServer::start().await;
    let prefix = unique("finder");
    let mut users = Vec::new();
    for suffix in ["a", "b", "c"] {
        let (c, login) = server.user(&format!("{prefix}{suffix}")).await;
        users.push((V1::new(&server, c), login));
    }
    let (me, _) = v1_user(&server, "searcher").await;

    let (status, headers, page) = send(me.c.get(url(
        &me,
        &format!("/users?login={}&limit=2", prefix.to_uppercase()),
    )))
    .await;
    assert_eq!(status, 200, "{page}");
    let logins = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|u| u["login"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(logins(&page), vec![users[0].1.clone(), users[1].1.clone()]);
    assert!(page[0]["id"].as_str().is_some());
    assert!(page[0].get("email").is_none(), "{page}");
    let cursor = headers["x-next-cursor"].to_str().unwrap().to_owned();
    let (status, headers, rest) = send(me.c.get(url(
        &me,
        &format!("/users?login={prefix}&limit=2&cursor={cursor}"),
    )))
    .await;
    assert_eq!(status, 200);
    assert_eq!(logins(&rest), vec![users[2].1.clone()]);
    assert!(headers.get("x-next-cursor").is_none());

    // A user who takes DISCOVER back from everyone is no longer found.
    let (hidden, hidden_login) = &users[1];
    let (_, whoami) = hidden.get("/me").await;
    let hidden_id = whoami["id"].as_str().unwrap();
    let (status, v) = hidden
        .delete(&format!("/objects/{hidden_id}/access/everyone"))
        .await;
    assert_eq!(status, 200, "{v}");
    let (_, all) = me.get(&format!("/users?login={prefix}")).await;
    assert_eq!(logins(&all), vec![users[0].1.clone(), users[2].1.clone()]);
    let (_, mine) = hidden.get(&format!("/users?login={hidden_login}")).await;
    assert_eq!(logins(&mine), vec![hidden_login.clone()], "it sees itself");

    for bad in ["login=", "login=a%20b", "cursor=c1.x y", "limit=0"] {
        let (status, v) = me.get(&format!("/users?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {v}");
    }
}

#[tokio::test]
async fn bodies_with_files_are_held_to_the_upload_limit() {
    let server = TestServer::start_with(|c| c.limits.max_upload_mb = 1).await;
    let (api, _) = v1_user(&server, "v1limit").await;
    let big = "x".repeat(1024 * 1024 + 1);
    let form = Form::new()
        .text("name", "big")
        .text("dockerfile", "FROM busybox\n")
        .part("attachments", file("big.bin", big.as_bytes()));
    let (status, _, v) = post_form(&api, "/images", form).await;
    assert_eq!(status, 413, "{v}");
    let (status, v) = api
        .post("/images", json!({"name": "big", "dockerfile": big}))
        .await;
    assert_eq!(status, 413, "{v}");
    assert_eq!(v1_error(&v).0, "too_large", "{v}");
    assert_eq!(api.get("/images").await.1, json!([]));
}
