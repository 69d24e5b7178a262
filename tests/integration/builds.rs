//! Image builds from repositories, rebuilds and deletion (issue 3).

use crate::harness::*;
use reqwest::multipart::Form;
use serde_json::json;
use std::path::Path;
use std::process::Command;

fn run(dir: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("HGUSER", "test <test@example.org>")
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.org")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.org")
        .output()
        .unwrap_or_else(|e| panic!("{program} is needed: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A repository holding a Dockerfile that copies a file of the repository into the image.
fn repository(kind: &str, with_dockerfile: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("message.txt"), format!("built from {kind}\n")).unwrap();
    if with_dockerfile {
        std::fs::write(
            p.join("Dockerfile"),
            "FROM busybox\nCOPY message.txt /message.txt\n",
        )
        .unwrap();
    }
    match kind {
        "git" => {
            run(p, "git", &["init", "-q"]);
            run(p, "git", &["add", "."]);
            run(p, "git", &["commit", "-q", "-m", "init"]);
        }
        _ => {
            run(p, "hg", &["init"]);
            run(p, "hg", &["add", "-q"]);
            run(p, "hg", &["commit", "-q", "-m", "init"]);
        }
    }
    dir
}

async fn build_from(k: &Kabuto, url: &str) -> serde_json::Value {
    let form = Form::new()
        .text("name", "from-repo")
        .text("repo_url", url.to_owned())
        .text("dockerfile", "FROM busybox\nRUN false\n");
    let (status, v) = k.send_form(reqwest::Method::POST, "/image", form).await;
    assert_eq!(status, 200, "{v}");
    k.wait_build(v["build_id"].as_str().unwrap()).await
}

#[tokio::test]
async fn repository_builds_from_git_and_mercurial() {
    let server = TestServer::start_with(|c| c.images.allow_local_repos = true).await;
    base_image().await;
    let k = server.kabuto("repo").await;
    for kind in ["git", "hg"] {
        let repo = repository(kind, true);
        // repo_url wins over dockerfile (whose RUN false would fail).
        let url = match kind {
            "git" => format!("file://{}", repo.path().display()),
            _ => repo.path().display().to_string(),
        };
        let v = build_from(&k, &url).await;
        assert_eq!(v["state"], "SUCCESS", "{kind}: {v}");
        let image = v["id"].as_str().unwrap().to_owned();
        let pipeline = k.pipeline(kind).await;
        let job = k.job(&pipeline, &image, "cat /message.txt", &[]).await;
        k.submit(&pipeline).await;
        assert_eq!(k.wait_job(&pipeline, &job).await["state"], "done");
        assert_eq!(k.logs(&job).await, vec![format!("built from {kind}")]);
    }

    let empty = repository("git", false);
    let v = build_from(&k, &empty.path().display().to_string()).await;
    assert_eq!(v["state"], "FAILED", "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("no Dockerfile"),
        "{v}"
    );

    let v = build_from(&k, "/no/such/repository").await;
    assert_eq!(v["state"], "FAILED", "{v}");
    assert!(v["error"].as_str().unwrap().contains("cannot clone"), "{v}");
}

#[tokio::test]
async fn local_repositories_are_refused_by_default() {
    let server = TestServer::start().await;
    let k = server.kabuto("norepo").await;
    let repo = repository("git", true);
    let v = build_from(&k, &repo.path().display().to_string()).await;
    assert_eq!(v["state"], "FAILED", "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("allow_local_repos"),
        "{v}"
    );
}

#[tokio::test]
async fn rebuild_keeps_the_id_and_delete_removes_the_image() {
    let server = TestServer::start().await;
    let k = server.kabuto("rebuild").await;
    let image = k
        .image(
            "FROM busybox\nCOPY v.txt /v.txt\n",
            &[("v.txt", b"version 1")],
        )
        .await;
    let form = Form::new()
        .text(
            "dockerfile",
            "FROM busybox\nCOPY v.txt /v.txt\nRUN echo rebuilt\n",
        )
        .part("attachments", file("v.txt", b"version 2"));
    let (status, v) = k
        .send_form(reqwest::Method::PUT, &format!("/image/{image}"), form)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["id"], image.as_str());
    let built = k.wait_build(v["build_id"].as_str().unwrap()).await;
    assert_eq!(built["state"], "SUCCESS", "{built}");
    assert_eq!(built["id"], image.as_str(), "same id after a rebuild");

    let pipeline = k.pipeline("p").await;
    let job = k.job(&pipeline, &image, "cat /v.txt", &[]).await;
    k.submit(&pipeline).await;
    k.wait_job(&pipeline, &job).await;
    assert_eq!(k.logs(&job).await, vec!["version 2"]);

    let docker = engine().client().await.unwrap();
    let tag = format!("dtaas/image-{image}:latest");
    assert!(docker.inspect_image(&tag).await.is_ok());
    let r =
        k.c.delete(k.url(&format!("/image/{image}")))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        k.get(&format!("/image/{image}")).await,
        (404, json!({"error": "Image not found"}))
    );
    assert!(
        docker.inspect_image(&tag).await.is_err(),
        "gone from the engine"
    );

    // A job whose image was deleted fails with the reason.
    k.submit(&pipeline).await;
    let v = k.wait_job(&pipeline, &job).await;
    assert_eq!(v["state"], "failed");
    assert!(k.logs(&job).await[0].contains("image was deleted"));
}
