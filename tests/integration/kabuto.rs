//! Seed 003's whole flow, through HTTP with a cookie jar, and through Python `requests`;
//! ownership; bad input (issue 3).

use crate::harness::*;
use reqwest::multipart::Form;
use serde_json::json;

/// Register, confirm, login, build an image with two attachments, poll the build, create a
/// pipeline, add two jobs with attachments, submit, poll, read logs (and only the lines after a
/// given log id), download and unzip the results.
#[tokio::test]
async fn the_seed_flow_end_to_end() {
    let server = TestServer::start().await;
    base_image().await;
    let k = server.kabuto("seed").await;

    let dockerfile = "FROM busybox\nCOPY greeting.txt /etc/greeting.txt\nCOPY tool.sh /usr/bin/tool.sh\nRUN chmod +x /usr/bin/tool.sh\nCMD [\"echo\", \"hello world\"]\n";
    let build = k
        .start_build(
            "test",
            dockerfile,
            &[
                ("greeting.txt", b"hello from the image\n"),
                ("tool.sh", b"#!/bin/sh\necho tool says $1\n"),
            ],
        )
        .await;
    let built = k.wait_build(&build).await;
    assert_eq!(built["state"], "SUCCESS", "{built}");
    assert!(
        built["output"]
            .as_str()
            .unwrap()
            .contains("Successfully built")
    );
    let image = built["id"].as_str().unwrap().to_owned();
    // Polling again changes nothing and creates nothing.
    assert_eq!(k.wait_build(&build).await["id"], image.as_str());
    let (_, images) = k.get("/image").await;
    assert_eq!(images.as_object().unwrap().len(), 1, "{images}");
    assert_eq!(images[&image]["name"], "test");
    assert_eq!(images[&image]["dockerfile"], dockerfile);
    let (_, one) = k.get(&format!("/image/{image}")).await;
    assert_eq!(one[&image]["id"], image.as_str());
    assert!(one[&image]["creation_date"].is_string());

    let pipeline = k.pipeline("my first pipeline").await;
    let first = k
        .job(
            &pipeline,
            &image,
            "sh -c \"cat /etc/greeting.txt; cat /inbox/file1; tool.sh one; seq 1 5; cp /inbox/file2 /outbox/copied.txt; echo result-1 > /outbox/out1.txt\"",
            &[("file1", b"contents of file1\n"), ("file2", b"contents of file2")],
        )
        .await;
    let second = k
        .job(
            &pipeline,
            &image,
            "sh -c 'mkdir -p /outbox/deep/er && cat /inbox/data.csv > /outbox/deep/er/data.csv && echo done'",
            &[("data.csv", b"a,b\n1,2\n")],
        )
        .await;
    let (_, p) = k.get(&format!("/pipeline/{pipeline}")).await;
    assert_eq!(p[&pipeline]["name"], "my first pipeline");
    assert_eq!(p[&pipeline]["jobs"], json!([{"id": first}, {"id": second}]));
    let ready = k.job_info(&pipeline, &first).await;
    assert_eq!(ready["state"], "ready");
    assert_eq!(ready["image"]["id"], image.as_str());
    assert_eq!(ready["pipeline"]["id"], pipeline.as_str());

    let (status, submitted) = k.submit(&pipeline).await;
    assert_eq!(status, 200);
    assert_eq!(
        submitted,
        json!({ first.clone(): "in_queue", second.clone(): "in_queue" })
    );

    let j1 = k.wait_job(&pipeline, &first).await;
    let j2 = k.wait_job(&pipeline, &second).await;
    assert_eq!(j1["state"], "done", "{j1}");
    assert_eq!(j2["state"], "done", "{j2}");
    assert_eq!(j1["response"], 0);

    let lines = k.logs(&first).await;
    assert_eq!(
        lines,
        vec![
            "hello from the image",
            "contents of file1",
            "tool says one",
            "1",
            "2",
            "3",
            "4",
            "5"
        ]
    );
    let (_, all) = k.get(&format!("/execution/{first}/logs")).await;
    assert_eq!(all[0]["job"], first.as_str());
    let third_id = all[2]["id"].clone();
    let (_, later) = k.get(&format!("/execution/{first}/logs/{third_id}")).await;
    let later: Vec<&str> = later
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["logline"].as_str().unwrap())
        .collect();
    assert_eq!(
        later,
        vec!["1", "2", "3", "4", "5"],
        "only the lines after the given id"
    );
    assert_eq!(k.logs(&second).await, vec!["done"]);

    let r1 = k.results(&pipeline, &first).await;
    assert_eq!(text(&r1["copied.txt"]), "contents of file2");
    assert_eq!(text(&r1["out1.txt"]), "result-1");
    let r2 = k.results(&pipeline, &second).await;
    assert_eq!(text(&r2["deep/er/data.csv"]), "a,b\n1,2");

    // /jobs lists both.
    let (_, jobs) = k.get("/jobs").await;
    assert!(jobs.get(&first).is_some() && jobs.get(&second).is_some());

    // The containers are gone (removed just after the end is recorded: within seconds); the
    // logs and results stay.
    for job in [&first, &second] {
        assert_job_container_gone(job).await;
    }
}

/// The seed's Python examples, nearly verbatim, with `requests` and its cookie handling.
#[tokio::test]
async fn the_seed_python_examples_work() {
    let server = TestServer::start().await;
    base_image().await;
    let login = unique("py");
    let script = format!(
        r#"
import io, json, time, zipfile, requests
base_url = "{base}"
r = requests.post('%s/register' % base_url, data={{'login': '{login}', 'password': 'SecreT', 'email': '{login}@example.org'}})
token = r.json()['token']
r = requests.get('%s/register/confirm/{login}/%s' % (base_url, token))
assert r.status_code == 200, r.text
r = requests.post('%s/login' % base_url, data={{'login': '{login}', 'password': 'SecreT'}})
c = r.cookies
sample_dockerfile = '''FROM busybox
CMD ["echo", "hello world"]
'''
r = requests.post('%s/image' % base_url, data={{'dockerfile': sample_dockerfile, 'name': 'test'}}, cookies=c)
build_id = r.json()['build_id']
while True:
    r = requests.get('%s/image/build/%s' % (base_url, build_id), cookies=c)
    state = r.json()['state']
    if state != 'PENDING':
        break
    time.sleep(0.2)
assert state == 'SUCCESS', r.text
image_id = r.json()['id']
r = requests.post('%s/pipeline' % base_url, data={{'name': 'my first pipeline'}}, cookies=c)
pipeline_id = r.json()['id']
data = {{'command': 'sh -c "cat /inbox/file1 /inbox/file2 > /outbox/both"', 'image_id': image_id}}
files = [("attachments", ("file1", io.BytesIO(b"one\n"))), ("attachments", ("file2", io.BytesIO(b"two\n")))]
r = requests.post('%s/pipeline/%s/job' % (base_url, pipeline_id), data=data, files=files, cookies=c)
job_id = r.json()['id']
r = requests.post('%s/pipeline/%s/submit' % (base_url, pipeline_id), cookies=c)
for eid, state in r.json().items():
    assert state == 'in_queue'
while True:
    r = requests.get('%s/pipeline/%s/job/%s' % (base_url, pipeline_id, job_id), cookies=c)
    if r.json()[job_id]['state'] in ('done', 'failed'):
        break
    time.sleep(0.2)
assert r.json()[job_id]['state'] == 'done', r.text
r = requests.get('%s/pipeline/%s/job/%s?result' % (base_url, pipeline_id, job_id), cookies=c)
z = zipfile.ZipFile(io.BytesIO(r.content))
print(json.dumps({{'both': z.read('both').decode()}}))
"#,
        base = server.base
    );
    let out = tokio::process::Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(&script)
        .output()
        .await
        .expect("python3 with requests (Debian's python3-requests)");
    assert!(
        out.status.success(),
        "python failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["both"], "one\ntwo\n");
}

/// A second user sees none of the first user's objects: 404 on every route.
#[tokio::test]
async fn others_objects_are_invisible() {
    let server = TestServer::start().await;
    let owner = server.kabuto("own").await;
    let image = owner.busybox().await;
    let pipeline = owner.pipeline("mine").await;
    let job = owner.job(&pipeline, &image, "echo private", &[]).await;
    owner.submit(&pipeline).await;
    owner.wait_job(&pipeline, &job).await;
    let (_, img) = owner.get(&format!("/image/{image}")).await;
    let build = img[&image]["build_id"].as_str().unwrap().to_owned();

    let other = server.kabuto("other").await;
    let get_404 = [
        format!("/image/{image}"),
        format!("/image/build/{build}"),
        format!("/pipeline/{pipeline}"),
        format!("/pipeline/{pipeline}/job"),
        format!("/pipeline/{pipeline}/job/{job}"),
        format!("/pipeline/{pipeline}/job/{job}?result"),
        format!("/execution/{job}/logs"),
        format!("/execution/{job}/logs/0"),
        format!("/v1/jobs/{job}"),
        format!("/v1/jobs/{job}/logs"),
        format!("/v1/jobs/{job}/logs?follow=1"),
        format!("/v1/jobs/{job}/result"),
    ];
    for path in &get_404 {
        let r = other.c.get(other.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "GET {path}");
    }
    let (_, msg) = other.get(&format!("/image/{image}")).await;
    assert_eq!(msg, json!({"error": "Image not found"}));
    let (_, msg) = other.get(&format!("/pipeline/{pipeline}")).await;
    assert_eq!(msg, json!({"error": "Pipeline not found"}));

    use reqwest::Method;
    let form = || {
        Form::new()
            .text("name", "x")
            .text("command", "echo x")
            .text("image_id", image.clone())
    };
    for (method, path) in [
        (Method::PUT, format!("/image/{image}")),
        (Method::DELETE, format!("/image/{image}")),
        (Method::PUT, format!("/pipeline/{pipeline}")),
        (Method::DELETE, format!("/pipeline/{pipeline}")),
        (Method::POST, format!("/pipeline/{pipeline}/submit")),
        (Method::POST, format!("/pipeline/{pipeline}/job")),
        (Method::PUT, format!("/pipeline/{pipeline}/job/{job}")),
        (Method::DELETE, format!("/pipeline/{pipeline}/job/{job}")),
        (Method::POST, format!("/pipeline/{pipeline}/job/{job}/kill")),
        (Method::POST, format!("/v1/jobs/{job}/kill")),
    ] {
        let (status, v) = other.send_form(method.clone(), &path, form()).await;
        assert_eq!(status, 404, "{method} {path}: {v}");
    }
    // Using someone else's image in one's own pipeline is refused the same way.
    let mine = other.pipeline("theirs").await;
    let (status, v) = other
        .send_form(Method::POST, &format!("/pipeline/{mine}/job"), form())
        .await;
    assert_eq!((status, v), (404, json!({"error": "Image not found"})));

    for list in ["/image", "/pipeline", "/jobs"] {
        let (_, v) = other.get(list).await;
        let v = v.as_object().unwrap();
        assert!(
            !v.contains_key(&image) && !v.contains_key(&pipeline) && !v.contains_key(&job),
            "{list}"
        );
    }
    // And the owner's objects are untouched.
    assert_eq!(owner.job_info(&pipeline, &job).await["state"], "done");
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let server = TestServer::start_with(|c| c.limits.max_upload_mb = 1).await;
    let k = server.kabuto("bad").await;
    let image = k.busybox().await;
    let pipeline = k.pipeline("p").await;
    let unknown = "0123456789abcdef0123456789abcdef";

    assert_eq!(
        k.get(&format!("/image/{unknown}")).await,
        (404, json!({"error": "Image not found"}))
    );
    assert_eq!(k.get("/image/not-an-id").await.0, 404);
    assert_eq!(
        k.get(&format!("/pipeline/{unknown}")).await,
        (404, json!({"error": "Pipeline not found"}))
    );
    assert_eq!(k.get(&format!("/image/build/{unknown}")).await.0, 404);
    let (status, _) = k.submit(unknown).await;
    assert_eq!(status, 404);

    use reqwest::Method;
    let job_path = format!("/pipeline/{pipeline}/job");
    let post_job = |form: Form| k.send_form(Method::POST, &job_path, form);
    let (status, v) = post_job(
        Form::new()
            .text("command", "")
            .text("image_id", image.clone()),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(kabuto_error(&v).contains("empty"));
    let (status, v) = post_job(
        Form::new()
            .text("command", "sh -c 'unbalanced")
            .text("image_id", image.clone()),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = post_job(
        Form::new()
            .text("command", "echo")
            .text("image_id", unknown),
    )
    .await;
    assert_eq!((status, v), (404, json!({"error": "Image not found"})));
    let (status, v) = post_job(Form::new().text("image_id", image.clone())).await;
    assert_eq!(status, 400);
    assert!(kabuto_error(&v).contains("command"));
    let (status, v) = k
        .send_form(
            Method::POST,
            &format!("/pipeline/{unknown}/job"),
            Form::new()
                .text("command", "echo")
                .text("image_id", image.clone()),
        )
        .await;
    assert_eq!((status, v), (404, json!({"error": "Pipeline not found"})));

    for bad_name in ["../escape", "a/b", "nul\0byte", "..", "x..y"] {
        let form = Form::new()
            .text("command", "echo")
            .text("image_id", image.clone())
            .part("attachments", file(bad_name, b"x"));
        let (status, v) = post_job(form).await;
        assert_eq!(status, 400, "attachment {bad_name:?}: {v}");
        // A NUL cannot even pass the multipart parser; the others are named.
        if !bad_name.contains('\0') {
            assert!(kabuto_error(&v).contains("not allowed"), "{v}");
        }
    }
    let form = Form::new()
        .text("command", "echo")
        .text("image_id", image.clone())
        .part("attachments", file("a.txt", b"1"))
        .part("attachments", file("a.txt", b"2"));
    assert_eq!(post_job(form).await.0, 400, "two attachments with one name");

    let big = vec![b'x'; 1536 * 1024];
    let form = Form::new()
        .text("command", "echo")
        .text("image_id", image.clone())
        .part("attachments", file("big.bin", &big));
    let (status, v) = post_job(form).await;
    assert_eq!(status, 413, "{v}");
    assert!(kabuto_error(&v).contains("max_upload_mb"), "{v}");
    let form = Form::new()
        .text("name", "big")
        .text("dockerfile", "FROM busybox\n")
        .part("attachments", file("big.bin", &big));
    assert_eq!(k.send_form(Method::POST, "/image", form).await.0, 413);

    let (status, v) = k
        .send_form(Method::POST, "/image", Form::new().text("name", "nothing"))
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(kabuto_error(&v).contains("dockerfile"));
    let (status, _) = k
        .send_form(
            Method::POST,
            "/image",
            Form::new().text("dockerfile", "FROM busybox\n"),
        )
        .await;
    assert_eq!(status, 400, "a name is needed");
    let (status, _) = k
        .send_form(
            Method::POST,
            "/image",
            Form::new()
                .text("name", "n")
                .text("dockerfile", "FROM busybox\n")
                .text("nocache", "perhaps"),
        )
        .await;
    assert_eq!(status, 400);

    let (status, v) = k.submit(&k.pipeline("empty").await).await;
    assert_eq!(status, 400, "{v}");
    let r =
        k.c.post(k.url("/pipeline"))
            .header("content-type", "application/json")
            .body("{nope")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 400);
}

/// A Dockerfile that fails is FAILED with the build's output; the server carries on.
#[tokio::test]
async fn a_failing_dockerfile_is_failed_with_its_output() {
    let server = TestServer::start().await;
    base_image().await;
    let k = server.kabuto("fail").await;
    let build = k
        .start_build(
            "broken",
            "FROM busybox\nRUN echo about to fail && exit 3\n",
            &[],
        )
        .await;
    let v = k.wait_build(&build).await;
    assert_eq!(v["state"], "FAILED", "{v}");
    assert!(
        v["output"].as_str().unwrap().contains("about to fail"),
        "{v}"
    );
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("returned a non-zero code: 3"),
        "{v}"
    );

    let build = k.start_build("typo", "FORM busybox\n", &[]).await;
    let v = k.wait_build(&build).await;
    assert_eq!(v["state"], "FAILED", "{v}");

    let build = k
        .start_build("missing", "FROM no-such-image-here:1\n", &[])
        .await;
    let v = k.wait_build(&build).await;
    assert_eq!(v["state"], "FAILED", "{v}");

    // Still serving, and a good build works.
    k.busybox().await;
}

/// A command that does not exist in the image: the job fails with a clear message in its logs.
#[tokio::test]
async fn a_missing_command_fails_with_a_message_in_the_logs() {
    let server = TestServer::start().await;
    let k = server.kabuto("nocmd").await;
    let image = k.busybox().await;
    let pipeline = k.pipeline("p").await;
    let job = k
        .job(&pipeline, &image, "no-such-program --flag", &[])
        .await;
    k.submit(&pipeline).await;
    let v = k.wait_job(&pipeline, &job).await;
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["response"], 127);
    let logs = k.logs(&job).await;
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(
        logs[0].contains("could not start") && logs[0].contains("no-such-program"),
        "{logs:?}"
    );
}
