//! The client's kabuto flow and sregistry's search and share (issue 13): `dtaas image`,
//! `dtaas pipeline`, `dtaas job`, `dtaas search` and `dtaas share`, the real binary against a
//! real server and the real engine, each user on a machine (HOME) of their own.

use crate::client::Machine;
use crate::harness::*;
use serde_json::Value;
use std::io::Read;

/// A project directory: a Dockerfile on the base image that copies a script, the script, and
/// a data file the build does not use (attached all the same).
fn project(stamp: &str) -> tempfile::TempDir {
    let dir = dockerfile_dir(&format!("COPY run.sh /run.sh\nRUN echo building {stamp}"));
    std::fs::write(
        dir.path().join("run.sh"),
        "echo job says hello\ncat /inbox/data.csv\necho result > /outbox/answer.txt\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("data.csv"), "a,b\n1,2\n").unwrap();
    dir
}

#[tokio::test]
async fn image_build_pipeline_jobs_submit_logs_and_results_as_commands() {
    let server = TestServer::start().await;
    let (_, login) = v1_user(&server, "flow").await;
    let me = Machine::new();
    me.login(None, &server.base, &login, &[]).await.assert_ok();
    base_image().await;
    let stamp = unique("stamp");
    let dir = project(&stamp);
    let dir_text = dir.path().to_string_lossy().into_owned();

    // The image, built from the directory: the build's output on stderr, the image and its
    // registry repository in the JSON.
    let ran = me
        .run(&["image", "build", "tool", &dir_text, "--json"], None)
        .await;
    let built = ran.assert_ok().json();
    assert!(
        ran.stderr.contains(&format!("building {stamp}")),
        "{}",
        ran.stderr
    );
    assert_eq!(built["build"]["state"], "SUCCESS", "{built}");
    assert_eq!(built["image"]["name"], "tool");
    assert_eq!(built["image"]["repository"], format!("{login}/tool"));
    let mut attached: Vec<&str> = built["image"]["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    attached.sort();
    assert_eq!(attached, ["data.csv", "run.sh"]);
    let image = built["image"]["id"].as_str().unwrap().to_owned();
    let listed = me
        .run(&["list", "images", "--name", "TOO", "--json"], None)
        .await
        .assert_ok()
        .json();
    assert_eq!(listed[0]["id"], image.as_str());

    // A Dockerfile that fails: exit 1, the reason, and the image shows it.
    let broken = dockerfile_dir("RUN exit 7");
    let ran = me
        .run(
            &["image", "build", "broken", &broken.path().to_string_lossy()],
            None,
        )
        .await;
    ran.assert_failed_with("the build of image broken");
    let shown = me.run(&["image", "show", "broken"], None).await;
    assert!(
        shown.assert_ok().stdout.contains("The last build failed"),
        "{}",
        shown.stdout
    );
    // Nothing to build is refused before anything is sent.
    me.run(&["image", "build", "nothing"], None)
        .await
        .assert_failed_with("what to build?");

    // A pipeline of two jobs: one with a file in its inbox and several words (quoted on the
    // way), one that fails.
    let pipeline = me
        .run(&["pipeline", "create", "nightly", "--json"], None)
        .await
        .assert_ok()
        .json();
    let pid = pipeline["id"].as_str().unwrap().to_owned();
    let data = dir.path().join("data.csv");
    let first = me
        .run(
            &[
                "job",
                "add",
                "nightly",
                "--image",
                "tool",
                "--attach",
                &data.to_string_lossy(),
                "--json",
                "--",
                "sh",
                "-c",
                "sh /run.sh && echo \"it's $((6 * 7))\"",
            ],
            None,
        )
        .await
        .assert_ok()
        .json();
    assert_eq!(first["attachments"][0], "data.csv");
    assert_eq!(
        first["command"],
        "sh -c 'sh /run.sh && echo \"it'\\''s $((6 * 7))\"'"
    );
    let second = me
        .run(
            &[
                "job",
                "add",
                &pid,
                "--image",
                &image,
                "--json",
                "sh -c 'echo failing; exit 3'",
            ],
            None,
        )
        .await
        .assert_ok()
        .json();
    let (j1, j2) = (
        first["id"].as_str().unwrap().to_owned(),
        second["id"].as_str().unwrap().to_owned(),
    );
    me.run(
        &[
            "job",
            "add",
            "nightly",
            "--image",
            "no-such-image",
            "--",
            "true",
        ],
        None,
    )
    .await
    .assert_failed_with("no image named \"no-such-image\"");

    // Submitted and waited for: the second job's failure is the exit status.
    let ran = me.run(&["job", "submit", "nightly", "--wait"], None).await;
    ran.assert_failed_with("1 of 2 job(s) did not succeed");
    assert!(
        ran.stdout
            .contains(&format!("Job {j1}: done (exit code 0).")),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout
            .contains(&format!("Job {j2}: failed (exit code 3).")),
        "{}",
        ran.stdout
    );
    let shown = me
        .run(&["pipeline", "show", "nightly", "--json"], None)
        .await
        .assert_ok()
        .json();
    assert_eq!(shown["jobs"][0]["state"], "done");
    assert_eq!(shown["jobs"][1]["response"], 3);

    // The log, stored and followed (it has ended: the lines, then the end).
    let logs = me.run(&["job", "logs", &j1], None).await;
    assert_eq!(
        logs.assert_ok().stdout,
        "job says hello\na,b\n1,2\nit's 42\n"
    );
    let followed = me.run(&["job", "logs", "-f", &j1], None).await;
    assert_eq!(
        followed.assert_ok().stdout,
        "job says hello\na,b\n1,2\nit's 42\n"
    );
    assert!(
        followed.stderr.contains("(job ended: done)"),
        "{}",
        followed.stderr
    );
    me.run(&["job", "logs", "nightly"], None)
        .await
        .assert_failed_with("is not a job id");

    // The results: the outbox as a zip, written once; not over an existing file.
    let out = tempfile::tempdir().unwrap();
    let zip_path = out.path().join("r.zip");
    let zip_text = zip_path.to_string_lossy().into_owned();
    let wrote = me
        .run(&["job", "result", &j1, "-o", &zip_text, "--json"], None)
        .await
        .assert_ok()
        .json();
    assert_eq!(wrote["file"], zip_text.as_str());
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
    let mut answer = String::new();
    archive
        .by_name("answer.txt")
        .unwrap()
        .read_to_string(&mut answer)
        .unwrap();
    assert_eq!(answer, "result\n");
    me.run(&["job", "result", &j1, "-o", &zip_text], None)
        .await
        .assert_failed_with("exists");
    me.run(&["job", "result", &j1, "-o", &zip_text, "--force"], None)
        .await
        .assert_ok();
    let leftovers: Vec<_> = std::fs::read_dir(out.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "only the zip: {leftovers:?}");

    // Lists of the kabuto kinds, filtered.
    let failed = me
        .run(
            &[
                "list",
                "jobs",
                "--pipeline",
                "nightly",
                "--state",
                "failed",
                "--json",
            ],
            None,
        )
        .await
        .assert_ok()
        .json();
    assert_eq!(failed.as_array().unwrap().len(), 1);
    assert_eq!(failed[0]["id"], j2.as_str());
    let pipelines = me.run(&["list", "pipelines"], None).await;
    assert!(pipelines.assert_ok().stdout.contains("nightly"));
    me.run(&["list", "images", "--state", "done"], None)
        .await
        .assert_failed_with("--state does not filter images");

    // Another user sees none of it.
    let (_, other) = v1_user(&server, "flow-other").await;
    let them = Machine::new();
    them.login(None, &server.base, &other, &[])
        .await
        .assert_ok();
    them.run(&["pipeline", "show", "nightly"], None)
        .await
        .assert_failed_with("no pipeline named \"nightly\"");
    them.run(&["job", "logs", &j1], None)
        .await
        .assert_failed_with("Job not found");
    let theirs = them
        .run(&["list", "images", "--json"], None)
        .await
        .assert_ok()
        .json();
    assert_eq!(theirs, Value::Array(Vec::new()));

    // Deleted: the pipeline with its jobs, then the image.
    me.run(&["pipeline", "delete", "nightly"], None)
        .await
        .assert_ok();
    me.run(&["image", "delete", "tool"], None).await.assert_ok();
    let left = me
        .run(&["list", "images", "--json"], None)
        .await
        .assert_ok()
        .json();
    assert_eq!(left.as_array().unwrap().len(), 1, "only broken: {left}");
}

#[tokio::test]
async fn search_lists_only_readable_repositories_and_share_lets_another_pull() {
    let server = TestServer::start().await;
    let (_, alice) = v1_user(&server, "owner").await;
    let (_, bob) = v1_user(&server, "friend").await;
    let (_, carol) = v1_user(&server, "stranger").await;
    let (a, b, c) = (Machine::new(), Machine::new(), Machine::new());
    a.login(None, &server.base, &alice, &[]).await.assert_ok();
    b.login(None, &server.base, &bob, &[]).await.assert_ok();
    c.login(None, &server.base, &carol, &[]).await.assert_ok();
    base_image().await;

    // Alice's image goes to the registry as <alice>/shared-tool with the image's id as tag.
    let name = unique("shared-tool");
    let dir = dockerfile_dir(&format!("RUN echo {name} > /name"));
    let built = a
        .run(
            &[
                "image",
                "build",
                &name,
                &dir.path().to_string_lossy(),
                "--json",
            ],
            None,
        )
        .await
        .assert_ok()
        .json();
    let repository = format!("{alice}/{name}");
    assert_eq!(built["image"]["repository"], repository.as_str());
    let tag = built["image"]["id"].as_str().unwrap().to_owned();

    // Her search finds it (by any part of its name, in any case); theirs do not.
    let found = a
        .run(&["search", &name.to_uppercase(), "--json"], None)
        .await
        .assert_ok()
        .json();
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found[0]["name"], repository.as_str());
    let table = a.run(&["search", &name], None).await;
    assert!(
        table
            .assert_ok()
            .stdout
            .contains(&format!("{repository}  ")),
        "{}",
        table.stdout
    );
    assert!(table.stdout.contains(&tag), "{}", table.stdout);
    for them in [&b, &c] {
        let none = them
            .run(&["search", "--json"], None)
            .await
            .assert_ok()
            .json();
        assert_eq!(none, Value::Array(Vec::new()));
        let said = them.run(&["search", &name], None).await;
        assert!(
            said.assert_ok()
                .stdout
                .starts_with("No repository you may pull")
        );
    }
    let pulled_tag = format!("{name}-by-bob:1");
    let _images = Images(vec![pulled_tag.clone()]);
    b.run(
        &["pull", &format!("{repository}:{tag}"), "--tag", &pulled_tag],
        None,
    )
    .await
    .assert_failed_with("or not visible to you");

    // Shared with bob: a tag that is not there is refused; the repository's tag is shared.
    a.run(&["share", &format!("{name}:nope"), "--with", &bob], None)
        .await
        .assert_failed_with("has no tag \"nope\"");
    let ran = a
        .run(&["share", &format!("{name}:{tag}"), "--with", &bob], None)
        .await;
    assert!(
        ran.assert_ok().stdout.contains(&format!(
            "with {bob}: READ. They pull it with: dtaas pull {repository}:{tag}"
        )),
        "{}",
        ran.stdout
    );
    let access = a
        .run(&["share", &name, "--with", &bob, "--json"], None)
        .await
        .assert_ok()
        .json();
    assert_eq!(access["kind"], "repository", "{access}");

    // Bob finds it and pulls it into the engine; carol still does not see it.
    let theirs = b.run(&["search", "--json"], None).await.assert_ok().json();
    assert_eq!(theirs[0]["name"], repository.as_str());
    let pulled = b
        .run(
            &[
                "pull",
                &format!("{repository}:{tag}"),
                "--tag",
                &pulled_tag,
                "--json",
            ],
            None,
        )
        .await
        .assert_ok()
        .json();
    assert_eq!(pulled["image"], pulled_tag.as_str());
    let docker = engine().client().await.unwrap();
    let inspected = docker.inspect_image(&pulled_tag).await.unwrap();
    assert_eq!(inspected.id.as_deref(), pulled["config"].as_str());
    let none = c.run(&["search", "--json"], None).await.assert_ok().json();
    assert_eq!(none, Value::Array(Vec::new()));

    // READ does not let bob share it further.
    b.run(&["share", &repository, "--with", &carol], None)
        .await
        .assert_failed_with("you lack MANAGE on this repository");
    let none = c.run(&["search", "--json"], None).await.assert_ok().json();
    assert_eq!(none, Value::Array(Vec::new()));
}

/// Engine images a test made, removed when it ends.
struct Images(Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .arg("rmi")
            .args(&self.0)
            .output();
    }
}
