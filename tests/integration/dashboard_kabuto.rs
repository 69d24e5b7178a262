//! The dashboard's images, pipelines and jobs pages (issue 14) in a real Chromium, on the real
//! engine: building an image through the form and seeing its output (and a failure's), a
//! pipeline made, run and followed live without reloading, its result downloaded, jobs
//! reordered, killed and removed, another user's objects unseen, and the pages at 360 px.

use crate::browser::{Browser, csrf_of};
use crate::harness::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Polls a build through /v1 until it has ended.
async fn wait_build(api: &V1, build: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (status, v) = api.get(&format!("/builds/{build}")).await;
        assert_eq!(status, 200, "{v}");
        if v["state"] != "PENDING" {
            return v;
        }
        assert!(Instant::now() < deadline, "build {build} pending: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An image built through /v1 from the base image; its id.
async fn built_image(api: &V1, name: &str) -> String {
    base_image().await;
    let (status, v) = api
        .post(
            "/images",
            json!({"name": name, "dockerfile": "FROM busybox\n"}),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let done = wait_build(api, v["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "SUCCESS", "{done}");
    v["image"].as_str().unwrap().to_owned()
}

/// Polls a job through /v1 until `done` accepts it.
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

/// A pipeline made through /v1 with jobs running `commands` in `image`; its id and the jobs'.
async fn pipeline_with(
    api: &V1,
    name: &str,
    image: &str,
    commands: &[&str],
) -> (String, Vec<String>) {
    let (status, v) = api.post("/pipelines", json!({"name": name})).await;
    assert_eq!(status, 201, "{v}");
    let pipeline = v["id"].as_str().unwrap().to_owned();
    let mut jobs = Vec::new();
    for command in commands {
        let (status, v) = api
            .post(
                &format!("/pipelines/{pipeline}/jobs"),
                json!({"command": command, "image": image}),
            )
            .await;
        assert_eq!(status, 201, "{v}");
        jobs.push(v["id"].as_str().unwrap().to_owned());
    }
    (pipeline, jobs)
}

/// The ids of a pipeline's jobs, in order, as /v1 tells them.
async fn job_order(api: &V1, pipeline: &str) -> Vec<String> {
    let (status, v) = api.get(&format!("/pipelines/{pipeline}")).await;
    assert_eq!(status, 200, "{v}");
    v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j.as_str().unwrap().to_owned())
        .collect()
}

/// Waits until the browser is under `prefix` and not at `except`; returns the path.
async fn wait_under(b: &Browser, prefix: &str, except: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let path = b.path().await;
        let bare = path.split('?').next().unwrap_or("").to_owned();
        if bare.starts_with(prefix) && bare != except {
            return bare;
        }
        assert!(
            Instant::now() < deadline,
            "never under {prefix}: at {path}: {}",
            b.text().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A reqwest client carrying the browser's session cookie.
async fn as_the_browser(b: &Browser) -> reqwest::Client {
    let session =
        b.c.get_named_cookie("dtaas_session")
            .await
            .expect("the browser's session cookie");
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::COOKIE,
        format!("dtaas_session={}", session.value())
            .parse()
            .unwrap(),
    );
    reqwest::Client::builder()
        .no_proxy()
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A command of the Chrome DevTools protocol, through chromedriver's endpoint for them.
#[derive(Debug)]
struct Cdp(&'static str, Value);

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &reqwest::Url,
        session: Option<&str>,
    ) -> Result<reqwest::Url, <reqwest::Url as std::str::FromStr>::Err> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &reqwest::Url) -> (axum::http::Method, Option<String>) {
        let body = json!({"cmd": self.0, "params": self.1});
        (axum::http::Method::POST, Some(body.to_string()))
    }
}

/// Makes the browser's page `width` pixels wide: headless Chromium keeps its window at least
/// 500 px wide whatever `--window-size` says, so a phone's width is emulated.
async fn narrow(b: &Browser, width: u32, height: u32) {
    b.c.issue_cmd(Cdp(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": true}),
    ))
    .await
    .expect("the device metrics of a phone");
}

#[tokio::test]
async fn an_image_is_built_through_the_form_its_output_shows_and_it_is_rebuilt_and_deleted() {
    let server = TestServer::start().await;
    base_image().await;
    let (c, login) = server.user("dimg").await;
    let api = V1::new(&server, c);
    let name = unique("tool");
    let files = tempfile::tempdir().unwrap();
    let attachment = files.path().join("greeting.txt");
    std::fs::write(&attachment, "hello from the attachment\n").unwrap();

    let b = Browser::start(&server).await;
    b.sign_in(&login, PASSWORD, "/ui/images").await;
    b.wait_text("No images yet", 10).await;
    b.follow("Build an image").await;
    b.wait_path("/ui/images/new").await;
    b.screenshot("images-new").await;
    b.type_into("#df-name", &name).await;
    b.type_into(
        "#df-dockerfile",
        "FROM busybox\nCOPY greeting.txt /greeting.txt\nRUN cat /greeting.txt\n",
    )
    .await;
    b.find("#df-attachments")
        .await
        .send_keys(attachment.to_str().unwrap())
        .await
        .unwrap();
    b.press("Build").await;
    let page = wait_under(&b, "/ui/images/", "/ui/images/new").await;
    let id = page.trim_start_matches("/ui/images/").to_owned();
    // The page follows the build and reloads once it has ended.
    let text = b.wait_text("SUCCESS", 120).await;
    assert!(text.contains("hello from the attachment"), "{text}");
    assert!(text.contains("greeting.txt"), "{text}");
    b.screenshot("images-image").await;

    // What the form made, through /v1.
    let (status, image) = api.get(&format!("/images/{id}")).await;
    assert_eq!(status, 200, "{image}");
    assert_eq!(image["name"], name.as_str());
    assert_eq!(image["state"], "SUCCESS");
    assert_eq!(image["attachments"], json!(["greeting.txt"]));
    assert_eq!(
        image["dockerfile"],
        "FROM busybox\nCOPY greeting.txt /greeting.txt\nRUN cat /greeting.txt\n"
    );

    // The list, and the build's own page.
    b.open("/ui/images").await;
    let text = b.wait_text(&name, 10).await;
    assert!(text.contains("SUCCESS"), "{text}");
    b.screenshot("images-list").await;
    b.open(&format!("/ui/images?name={}", unique("nothing-like-it")))
        .await;
    let text = b.wait_text("No image matches", 10).await;
    assert!(!text.contains(&name), "{text}");
    let build = image["last_build"].as_str().unwrap().to_owned();
    b.open(&format!("/ui/builds/{build}")).await;
    let text = b.wait_text("hello from the attachment", 10).await;
    assert!(text.contains(&name) && text.contains("SUCCESS"), "{text}");
    b.screenshot("images-build").await;

    // Without JavaScript the page holds the output as it is.
    let r = api
        .c
        .get(server.url(&format!("/ui/images/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("hello from the attachment")
    );

    // Rebuild under the same id, with a new name.
    b.open(&format!("/ui/images/{id}")).await;
    let renamed = format!("{name}-v2");
    b.type_into("#rb-name", &renamed).await;
    b.press("Rebuild").await;
    b.wait_text(&format!("Image {renamed}"), 10).await;
    let (_, image) = api.get(&format!("/images/{id}")).await;
    assert_eq!(image["name"], renamed.as_str());
    let rebuilt = image["last_build"].as_str().unwrap().to_owned();
    assert_ne!(rebuilt, build);
    assert_eq!(wait_build(&api, &rebuilt).await["state"], "SUCCESS");
    let (_, builds) = api.get(&format!("/builds?image={id}")).await;
    assert_eq!(builds.as_array().unwrap().len(), 2, "{builds}");
    b.open(&format!("/ui/images/{id}")).await;
    let text = b.wait_text("SUCCESS", 10).await;
    assert!(
        text.contains(&rebuilt[24..]) && text.contains(&build[24..]),
        "{text}"
    );

    // Delete: gone from /v1 and from the list.
    b.press("Delete this image").await;
    b.wait_path("/ui/images").await;
    let text = b
        .wait_text(&format!("Deleted the image {renamed}."), 10)
        .await;
    assert!(text.contains("No images yet"), "{text}");
    assert_eq!(api.get(&format!("/images/{id}")).await.0, 404);
    b.close().await;
}

#[tokio::test]
async fn a_failing_dockerfile_shows_the_failure() {
    let server = TestServer::start().await;
    base_image().await;
    let (c, login) = server.user("dfail").await;
    let api = V1::new(&server, c);
    let name = unique("broken");
    let b = Browser::start(&server).await;
    b.sign_in(&login, PASSWORD, "/ui/images/new").await;
    b.type_into("#df-name", &name).await;
    b.type_into(
        "#df-dockerfile",
        "FROM busybox\nRUN echo about-to-fail && exit 3\n",
    )
    .await;
    b.press("Build").await;
    let page = wait_under(&b, "/ui/images/", "/ui/images/new").await;
    let text = b.wait_text("FAILED", 120).await;
    assert!(text.contains("The build failed"), "{text}");
    // The build's output (the first log on the page; the Dockerfile's comes after it).
    let output =
        b.c.execute(
            "return document.querySelector('pre.log').textContent;",
            vec![],
        )
        .await
        .unwrap();
    let output = output.as_str().unwrap();
    assert!(output.lines().any(|l| l == "about-to-fail"), "{output}");
    b.screenshot("images-failed").await;
    let id = page.trim_start_matches("/ui/images/");
    let (_, image) = api.get(&format!("/images/{id}")).await;
    assert_eq!(image["state"], "FAILED", "{image}");

    // Without JavaScript a running build's page holds its output so far and a link to
    // reload it.
    let (status, v) = api
        .post(
            "/images",
            json!({"name": unique("slow"), "dockerfile": "FROM busybox\nRUN sleep 5\n"}),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let (slow, slow_build) = (v["image"].as_str().unwrap(), v["id"].as_str().unwrap());
    let page = api
        .c
        .get(server.url(&format!("/ui/images/{slow}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!("data-live-poll=\"/v1/builds/{slow_build}\"")),
        "{page}"
    );
    assert!(
        page.contains(&format!("<a href=\"/ui/images/{slow}\">Reload</a>")),
        "{page}"
    );
    assert_eq!(wait_build(&api, slow_build).await["state"], "SUCCESS");

    // A form that cannot be built is refused with a page that says why.
    b.open("/ui/images/new").await;
    b.type_into("#repo-name", &name).await;
    b.type_into("#repo-url", "ftp://example.org/x").await;
    b.press("Build from the repository").await;
    let text = b.wait_text("400 Bad Request", 10).await;
    assert!(text.contains("not one of the forms"), "{text}");
    b.screenshot("images-refused").await;
    b.close().await;
}

#[tokio::test]
async fn a_pipeline_is_made_run_and_followed_live_and_its_result_downloaded() {
    let server = TestServer::start().await;
    let (api, login) = v1_user(&server, "dpipe").await;
    let image = built_image(&api, &unique("runner")).await;
    let name = unique("flow");
    let files = tempfile::tempdir().unwrap();
    let attachment = files.path().join("in.txt");
    std::fs::write(&attachment, "from the inbox\n").unwrap();

    let b = Browser::start(&server).await;
    b.sign_in(&login, PASSWORD, "/ui/pipelines").await;
    b.wait_text("No pipelines yet", 10).await;
    b.screenshot("pipelines-list-empty").await;
    b.type_into("#new-pipeline-name", &name).await;
    b.press("Create the pipeline").await;
    let page = wait_under(&b, "/ui/pipelines/", "").await;
    let pipeline = page.trim_start_matches("/ui/pipelines/").to_owned();
    b.wait_text(&format!("Created the pipeline {name}"), 10)
        .await;
    b.screenshot("pipelines-pipeline-new").await;

    // A job that prints a line, waits, prints another, and leaves a result.
    let command = "sh -c \"cat /inbox/in.txt; echo first-line; sleep 20; echo second-line; \
                   echo result-content > /outbox/out.txt\"";
    b.type_into("#job-command", command).await;
    b.select("image", &image).await;
    b.find("#job-attachments")
        .await
        .send_keys(attachment.to_str().unwrap())
        .await
        .unwrap();
    b.press("Add the job").await;
    b.wait_text("Added the job", 10).await;
    let jobs = job_order(&api, &pipeline).await;
    assert_eq!(jobs.len(), 1);
    let job = jobs[0].clone();
    let (_, v) = api.get(&format!("/jobs/{job}")).await;
    assert_eq!(v["command"], command, "{v}");
    assert_eq!(v["attachments"], json!(["in.txt"]));
    assert_eq!(v["image"]["id"], image.as_str());
    b.screenshot("pipelines-pipeline").await;

    b.press("Submit the pipeline").await;
    b.wait_text("Submitted: 1 jobs queued.", 10).await;
    b.click(&format!("td a[href=\"/ui/jobs/{job}\"]")).await;
    b.wait_path(&format!("/ui/jobs/{job}")).await;
    b.find("pre[data-live-log]").await;
    // A mark in the page: it is still there after the line arrives, so the page was not
    // loaded again.
    let loaded =
        b.c.execute(
            "window.dashboardMark = 'still-here'; \
             return [document.querySelector('pre.log').textContent, \
                     document.querySelector('form[action$=\"/kill\"]').hidden, \
                     document.querySelector('[data-live-after]').hidden];",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        !loaded[0].as_str().unwrap().contains("second-line"),
        "the line came before the page: {loaded}"
    );
    assert_eq!(
        (&loaded[1], &loaded[2]),
        (&json!(false), &json!(true)),
        "while it runs: the kill form shows, the note to reload does not"
    );
    // The log's own text (the command on the page names the lines too).
    let deadline = Instant::now() + Duration::from_secs(60);
    let log = loop {
        let log =
            b.c.execute(
                "return document.querySelector('pre.log').textContent;",
                vec![],
            )
            .await
            .unwrap();
        let log = log.as_str().unwrap().to_owned();
        if log.contains("second-line") {
            break log;
        }
        assert!(
            Instant::now() < deadline,
            "no second line in the log: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(log, "from the inbox\nfirst-line\nsecond-line\n");
    b.c.execute(
        "document.querySelector('pre.log').scrollIntoView();",
        vec![],
    )
    .await
    .unwrap();
    b.screenshot("pipelines-job-live").await;
    let mark =
        b.c.execute("return window.dashboardMark || null;", vec![])
            .await
            .unwrap();
    assert_eq!(mark, json!("still-here"), "the page was reloaded");
    // The end of the stream sets the state on the page.
    let deadline = Instant::now() + Duration::from_secs(60);
    while b.find("#job-state").await.text().await.unwrap() != "done" {
        assert!(Instant::now() < deadline, "{}", b.text().await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        b.c.execute(
            "return [window.dashboardMark || null, \
                     document.querySelector('form[action$=\"/kill\"]').hidden, \
                     document.querySelector('[data-live-after]').hidden];",
            vec![]
        )
        .await
        .unwrap(),
        json!(["still-here", true, false]),
        "once it ended: no kill form, a note to reload"
    );

    // Loaded again: the final state, the usage and the result's link.
    b.open(&format!("/ui/jobs/{job}")).await;
    let text = b.wait_text("Download the result (zip)", 10).await;
    assert!(text.contains("from the inbox"), "{text}");
    assert!(
        text.contains("Peak memory") && text.contains("CPU"),
        "{text}"
    );
    b.screenshot("pipelines-job").await;
    let href = b
        .find("a[href$=\"/result\"]")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(href, format!("/ui/jobs/{job}/result"));
    let r = as_the_browser(&b)
        .await
        .get(server.url(&href))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/zip");
    let zip = unzip(&r.bytes().await.unwrap());
    assert_eq!(text_of(&zip["out.txt"]), "result-content");

    // The jobs list, by pipeline and state.
    b.open(&format!("/ui/jobs?state=done&pipeline={pipeline}"))
        .await;
    let text = b.wait_text(&name, 10).await;
    assert!(text.contains("done"), "{text}");
    let link = format!("href=\"/ui/jobs/{job}\"");
    assert!(b.c.source().await.unwrap().contains(&link));
    b.screenshot("pipelines-jobs").await;
    b.open("/ui/jobs?state=failed&pipeline=").await;
    b.wait_text("No jobs.", 10).await;
    assert!(!b.c.source().await.unwrap().contains(&link));
    b.open("/ui/jobs?state=sleepy").await;
    b.wait_text("400 Bad Request", 10).await;

    // The pipelines list, and deleting the pipeline.
    b.open(&format!("/ui/pipelines?name={name}")).await;
    b.wait_text(&name, 10).await;
    b.screenshot("pipelines-list").await;
    b.open(&format!("/ui/pipelines/{pipeline}")).await;
    b.press("Delete this pipeline").await;
    b.wait_text(&format!("Deleted the pipeline {name}."), 10)
        .await;
    assert_eq!(api.get(&format!("/pipelines/{pipeline}")).await.0, 404);
    assert_eq!(api.get(&format!("/jobs/{job}")).await.0, 404);
    b.close().await;
}

fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_owned()
}

#[tokio::test]
async fn jobs_are_reordered_killed_and_removed_through_the_pipeline_page() {
    let server = TestServer::start().await;
    let (api, login) = v1_user(&server, "dorder").await;
    let image = built_image(&api, &unique("runner")).await;
    let (pipeline, jobs) = pipeline_with(
        &api,
        &unique("order"),
        &image,
        &["echo after", "sh -c 'echo going; sleep 300'"],
    )
    .await;
    let (quick, long) = (jobs[0].clone(), jobs[1].clone());

    let b = Browser::start(&server).await;
    b.sign_in(&login, PASSWORD, &format!("/ui/pipelines/{pipeline}"))
        .await;
    b.wait_text("echo after", 10).await;
    // The first job's "Move down": the long job runs first now.
    b.press("Move down").await;
    b.wait_text("Moved the job down.", 10).await;
    assert_eq!(
        job_order(&api, &pipeline).await,
        vec![long.clone(), quick.clone()]
    );
    b.screenshot("pipelines-reordered").await;
    // The second job's "Move up", and down again.
    b.press("Move up").await;
    b.wait_text("Moved the job up.", 10).await;
    assert_eq!(
        job_order(&api, &pipeline).await,
        vec![quick.clone(), long.clone()]
    );
    b.press("Move down").await;
    b.wait_text("Moved the job down.", 10).await;
    assert_eq!(
        job_order(&api, &pipeline).await,
        vec![long.clone(), quick.clone()]
    );

    // Run it, and kill the long job from the pipeline's page.
    b.press("Submit the pipeline").await;
    b.wait_text("Submitted: 2 jobs queued.", 10).await;
    wait_job(&api, &long, |j| j["state"] == "running").await;
    // Without JavaScript the job's page holds the lines stored so far.
    let deadline = Instant::now() + Duration::from_secs(60);
    while api.get(&format!("/jobs/{long}/logs")).await.1 == json!([]) {
        assert!(Instant::now() < deadline, "no line from the long job");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page = api
        .c
        .get(server.url(&format!("/ui/jobs/{long}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let pre = format!("data-live-log=\"/v1/jobs/{long}/logs\" data-live-state=\"job-state\">going");
    assert!(page.contains(&pre), "{page}");
    b.open(&format!("/ui/pipelines/{pipeline}")).await;
    let text = b.wait_text("running", 10).await;
    assert!(text.contains("queued or running"), "{text}");
    b.screenshot("pipelines-running").await;
    b.press("Kill").await;
    b.wait_text("is cancelled.", 30).await;
    let killed = wait_job(&api, &long, |j| j["state"] == "cancelled").await;
    assert!(
        killed["error"].as_str().unwrap().contains("killed"),
        "{killed}"
    );
    wait_job(&api, &quick, |j| j["state"] == "cancelled").await;

    // Idle again: the long job is removed.
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.get(&format!("/pipelines/{pipeline}")).await.1["queued"] != false {
        assert!(Instant::now() < deadline, "the pipeline stays queued");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.open(&format!("/ui/pipelines/{pipeline}")).await;
    b.wait_text("idle", 10).await;
    b.press("Remove").await;
    b.wait_text("Removed the job", 10).await;
    assert_eq!(job_order(&api, &pipeline).await, vec![quick.clone()]);
    assert_eq!(api.get(&format!("/jobs/{long}")).await.0, 404);

    // A job of the pipeline killed from its own page.
    let (other, jobs) = pipeline_with(
        &api,
        &unique("kill"),
        &image,
        &["sh -c 'echo on; sleep 300'"],
    )
    .await;
    assert_eq!(
        api.post(&format!("/pipelines/{other}/submit"), json!({}))
            .await
            .0,
        202
    );
    wait_job(&api, &jobs[0], |j| j["state"] == "running").await;
    b.open(&format!("/ui/jobs/{}", jobs[0])).await;
    b.wait_text("running", 10).await;
    b.press("Kill the job").await;
    b.wait_text("is cancelled.", 30).await;
    b.wait_path(&format!("/ui/jobs/{}", jobs[0])).await;
    assert_eq!(
        wait_job(&api, &jobs[0], |j| j["state"] == "cancelled").await["state"],
        "cancelled"
    );
    b.close().await;
}

#[tokio::test]
async fn another_user_sees_none_of_these_objects() {
    let server = TestServer::start().await;
    let (alice, _) = v1_user(&server, "downa").await;
    let image_name = unique("secretimage");
    let image = built_image(&alice, &image_name).await;
    let (_, v) = alice.get(&format!("/images/{image}")).await;
    let build = v["last_build"].as_str().unwrap().to_owned();
    let pipeline_name = unique("secretflow");
    let (pipeline, jobs) = pipeline_with(&alice, &pipeline_name, &image, &["echo hidden"]).await;
    let job = jobs[0].clone();
    assert_eq!(
        alice
            .post(&format!("/pipelines/{pipeline}/submit"), json!({}))
            .await
            .0,
        202
    );
    wait_job(&alice, &job, |j| j["state"] == "done").await;

    let (bob_client, bob) = server.user("downb").await;
    let b = Browser::start(&server).await;
    b.sign_in(&bob, PASSWORD, "/ui/images").await;
    let text = b.wait_text("No images yet", 10).await;
    assert!(!text.contains(&image_name), "{text}");
    b.open("/ui/pipelines").await;
    let text = b.wait_text("No pipelines yet", 10).await;
    assert!(!text.contains(&pipeline_name), "{text}");
    b.open("/ui/jobs").await;
    b.wait_text("No jobs.", 10).await;
    // Nor does the jobs filter offer Alice's pipeline.
    let source = b.c.source().await.unwrap();
    assert!(
        !source.contains(&job) && !source.contains(&pipeline),
        "{source}"
    );
    for path in [
        format!("/ui/images/{image}"),
        format!("/ui/builds/{build}"),
        format!("/ui/pipelines/{pipeline}"),
        format!("/ui/jobs/{job}"),
        format!("/ui/jobs/{job}/result"),
    ] {
        b.open(&path).await;
        let text = b.wait_text("404 Not Found", 10).await;
        assert!(
            !text.contains(&image_name) && !text.contains(&pipeline_name),
            "{path}: {text}"
        );
    }
    b.screenshot("images-not-found").await;

    // Bob's forms on Alice's objects: the same 404, and nothing changes.
    let page = bob_client
        .get(server.url("/ui/pipelines"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&page);
    for path in [
        format!("/ui/images/{image}/delete"),
        format!("/ui/pipelines/{pipeline}/submit"),
        format!("/ui/pipelines/{pipeline}/delete"),
        format!("/ui/jobs/{job}/kill"),
        format!("/ui/jobs/{job}/remove"),
    ] {
        let r = bob_client
            .post(server.url(&path))
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert!(r.text().await.unwrap().contains("404 Not Found"), "{path}");
    }
    let r = bob_client
        .post(server.url(&format!("/ui/pipelines/{pipeline}/move")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("job", job.as_str()),
            ("direction", "up"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(alice.get(&format!("/images/{image}")).await.0, 200);
    assert_eq!(alice.get(&format!("/jobs/{job}")).await.1["state"], "done");

    // A form without the session's token is refused, and makes nothing.
    let r = bob_client
        .post(server.url("/ui/pipelines"))
        .form(&[("name", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let bob_api = V1::new(&server, bob_client.clone());
    assert_eq!(bob_api.get("/pipelines").await.1, json!([]));
    // Bob's own pipeline, made with the token, is his alone.
    let r = bob_client
        .post(server.url("/ui/pipelines"))
        .form(&[("csrf", csrf.as_str()), ("name", "mine")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "followed to the new pipeline's page");
    assert_eq!(
        bob_api.get("/pipelines").await.1.as_array().unwrap().len(),
        1
    );
    let (_, alices) = alice.get("/pipelines").await;
    assert_eq!(alices.as_array().unwrap().len(), 1, "{alices}");
    b.close().await;
}

#[tokio::test]
async fn the_pages_fit_a_narrow_screen() {
    let server = TestServer::start().await;
    let (api, login) = v1_user(&server, "dnarrow").await;
    let image = built_image(&api, &unique("narrow-image")).await;
    let (pipeline, jobs) = pipeline_with(
        &api,
        &unique("narrow"),
        &image,
        &["sh -c 'echo a rather long line of output that has to wrap on a small screen'"],
    )
    .await;
    assert_eq!(
        api.post(&format!("/pipelines/{pipeline}/submit"), json!({}))
            .await
            .0,
        202
    );
    wait_job(&api, &jobs[0], |j| j["state"] == "done").await;

    let b = Browser::start_sized(&server, 360, 800).await;
    narrow(&b, 360, 800).await;
    b.sign_in(&login, PASSWORD, "/ui/images").await;
    let width =
        b.c.execute("return window.innerWidth;", vec![])
            .await
            .unwrap();
    assert_eq!(width, json!(360));
    for (path, shot) in [
        ("/ui/images".to_owned(), "images-list-360"),
        ("/ui/images/new".to_owned(), "images-new-360"),
        (format!("/ui/images/{image}"), "images-image-360"),
        ("/ui/pipelines".to_owned(), "pipelines-list-360"),
        (
            format!("/ui/pipelines/{pipeline}"),
            "pipelines-pipeline-360",
        ),
        ("/ui/jobs".to_owned(), "pipelines-jobs-360"),
        (format!("/ui/jobs/{}", jobs[0]), "pipelines-job-360"),
    ] {
        b.open(&path).await;
        b.wait_text("dtaas", 10).await;
        let wide = b
            .c
            .execute(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
                vec![],
            )
            .await
            .unwrap();
        assert!(
            wide.as_i64().unwrap() <= 0,
            "{path} is wider than the screen by {wide} px"
        );
        b.screenshot(shot).await;
    }
    b.close().await;
}
