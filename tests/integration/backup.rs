//! `dtaas admin backup` while jobs run and images are pushed, `dtaas admin restore` into a new
//! data directory, and a real server started there: the same users, jobs, results and blobs.
//! And what backup and restore refuse.

use crate::harness::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

async fn admin(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let mut full = vec!["admin", "--data-dir", dir.to_str().unwrap()];
    full.extend_from_slice(args);
    let out = dtaas_cli(&full, None).await;
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sha256(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        dtaas::core::secrets::hex(&Sha256::digest(bytes))
    )
}

const MANIFEST_TYPES: &str = "application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

/// Every repository, tag, manifest and blob `login` sees in the registry at `base`, each blob
/// fetched and checked against its digest: tag -> manifest digest.
async fn registry_contents(base: &str, login: &str) -> BTreeMap<String, String> {
    let c = client();
    let get = |path: String| {
        c.get(format!("{base}{path}"))
            .basic_auth(login, Some(PASSWORD))
            .header("accept", MANIFEST_TYPES)
            .send()
    };
    let catalog: Value = get("/v2/_catalog".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for repo in catalog["repositories"].as_array().unwrap() {
        let repo = repo.as_str().unwrap();
        let tags: Value = get(format!("/v2/{repo}/tags/list"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for tag in tags["tags"].as_array().into_iter().flatten() {
            let tag = tag.as_str().unwrap();
            let r = get(format!("/v2/{repo}/manifests/{tag}")).await.unwrap();
            assert_eq!(r.status(), 200, "{repo}:{tag}");
            let bytes = r.bytes().await.unwrap();
            let digest = sha256(&bytes);
            let manifest: Value = serde_json::from_slice(&bytes).unwrap();
            let mut pending = vec![manifest];
            while let Some(m) = pending.pop() {
                for child in m["manifests"].as_array().into_iter().flatten() {
                    let d = child["digest"].as_str().unwrap();
                    let r = get(format!("/v2/{repo}/manifests/{d}")).await.unwrap();
                    assert_eq!(r.status(), 200, "{repo}@{d}");
                    let bytes = r.bytes().await.unwrap();
                    assert_eq!(sha256(&bytes), d);
                    pending.push(serde_json::from_slice(&bytes).unwrap());
                }
                let blobs = m["layers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .chain(std::iter::once(&m["config"]))
                    .filter_map(|d| d["digest"].as_str());
                for d in blobs {
                    let r = get(format!("/v2/{repo}/blobs/{d}")).await.unwrap();
                    assert_eq!(r.status(), 200, "{repo} blob {d} of {tag}");
                    assert_eq!(sha256(&r.bytes().await.unwrap()), d, "{repo} blob {d}");
                }
            }
            out.insert(format!("{repo}:{tag}"), digest);
        }
    }
    out
}

async fn registry_catalog(base: &str, login: &str) -> Vec<String> {
    let r = client()
        .get(format!("{base}/v2/_catalog"))
        .basic_auth(login, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    v["repositories"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_owned))
        .collect()
}

async fn log_in(base: &str, login: &str) -> (u16, reqwest::Client) {
    let c = client();
    let r = c
        .post(format!("{base}/login"))
        .form(&[("login", login), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), c)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn a_backup_taken_while_jobs_run_and_images_are_pushed_restores_to_the_same_server() {
    base_image().await;
    let server = TestServer::start_with(|c| c.jobs.max_parallel = 2).await;
    let data = server.data_dir();
    let k = server.kabuto("bk").await;
    let login = k.login.clone();
    let image = k.busybox().await;

    // Ended before the backup: a job with an attachment and a result, and a failed one.
    let finished = k.pipeline("finished").await;
    let copy = k
        .job(
            &finished,
            &image,
            "sh -c 'cp /inbox/in.txt /outbox/copy.txt; echo made > /outbox/made.txt'",
            &[("in.txt", b"attached before the backup")],
        )
        .await;
    let failing = k.pipeline("failing").await;
    let fails = k.job(&failing, &image, "sh -c 'exit 3'", &[]).await;
    assert_eq!(k.submit(&finished).await.0, 200);
    assert_eq!(k.submit(&failing).await.0, 200);
    assert_eq!(k.wait_job(&finished, &copy).await["state"], "done");
    assert_eq!(k.wait_job(&failing, &fails).await["state"], "failed");
    let copy_result = k.results(&finished, &copy).await;
    assert_eq!(copy_result["copy.txt"], b"attached before the backup");

    // In the registry before the backup.
    push_image(&server, &login, None, &format!("{login}/base"), "1").await;

    // Running during the backup (and one queued behind it).
    let long = k.pipeline("long").await;
    let slow = k
        .job(
            &long,
            &image,
            // Long enough to be running still when the snapshot is taken on a loaded machine
            // (a build, a push and the client's start come first).
            "sh -c 'sleep 20; echo slow > /outbox/slow.txt'",
            &[],
        )
        .await;
    let after = k
        .job(&long, &image, "sh -c 'echo after > /outbox/after.txt'", &[])
        .await;
    assert_eq!(k.submit(&long).await.0, 200);
    k.wait_state(&long, &slow, "running").await;

    // Pushed during the backup; and jobs starting and ending during it.
    let addr = server.addr.to_string();
    let context = dockerfile_dir("RUN echo pushed-during-the-backup > /during");
    let pushing = {
        let (addr, login) = (addr.clone(), login.clone());
        let context = context.path().to_owned();
        tokio::spawn(async move {
            push_image_to(
                &addr,
                &login,
                Some(&context),
                &format!("{login}/during"),
                "2",
            )
            .await
        })
    };
    // The backup starts once that push has begun (its repository exists).
    for _ in 0..600 {
        let catalog = registry_catalog(&server.base, &login).await;
        if catalog.contains(&format!("{login}/during")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let busy = k.pipeline("busy").await;
    let quick = k
        .job(&busy, &image, "sh -c 'echo quick > /outbox/q.txt'", &[])
        .await;
    assert_eq!(k.submit(&busy).await.0, 200);

    let backups = tempfile::tempdir().unwrap();
    let path = backups.path().join("nightly");
    let started = std::time::Instant::now();
    let (ok, out, err) = admin(&data, &["backup", path.to_str().unwrap()]).await;
    let took = started.elapsed();
    assert!(ok, "{out}{err}");
    assert!(out.contains("snapshot by the running server"), "{out}");
    assert!(err.contains("running when the snapshot was taken"), "{err}");
    eprintln!("backup took {took:?}: {out}");
    pushing.await.unwrap();
    k.wait_job(&busy, &quick).await;

    // The backup: private, with a manifest of everything in it.
    assert_eq!(mode(&path), 0o700);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(path.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["format"], "dtaas-backup");
    assert_eq!(manifest["installation"], server.installation.as_str());
    assert_eq!(manifest["files"][0]["path"], "dtaas.redb");
    assert_eq!(manifest["counts"]["users"], 1);
    assert_eq!(manifest["counts"]["jobs_failed"], 1);
    assert!(manifest["counts"]["jobs_running"].as_u64().unwrap() >= 1);
    assert!(manifest["counts"]["blobs"].as_u64().unwrap() >= 2);
    assert_eq!(manifest["missing"], serde_json::json!([]));
    for f in manifest["files"].as_array().unwrap() {
        let file = path.join("data").join(f["path"].as_str().unwrap());
        assert_eq!(mode(&file), 0o600, "{file:?}");
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(bytes.len() as u64, f["size"].as_u64().unwrap());
        assert_eq!(
            format!("sha256:{}", f["sha256"].as_str().unwrap()),
            sha256(&bytes)
        );
    }
    // The staged snapshot is removed once the server reads the client's last line, which the
    // client does not wait for.
    let staged = || {
        std::fs::read_dir(data.join("tmp"))
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("backup-"))
    };
    for _ in 0..100 {
        if !staged() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!staged(), "the staged snapshot was removed");

    // What happens after the backup is not in it.
    let (late, _) = server.user("late").await;
    drop(late);
    let registry_before = registry_contents(&server.base, &login).await;
    assert_eq!(k.wait_job(&long, &after).await["state"], "done");

    // The restored server is the same installation: the original stops first.
    let stopped = server.stop().await;

    let target = backups.path().join("restored-data");
    let (ok, out, err) = admin(&target, &["restore", path.to_str().unwrap()]).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("queued to run again"), "{out}");
    let restored = ProcessServer::spawn(&target, &[]).await;
    let base = restored.base.clone();

    // Users: the same, and none made after the backup.
    let (status, c) = log_in(&base, &login).await;
    assert_eq!(
        status, 200,
        "the user of the backup logs in with its password"
    );
    let (ok, users, _) = admin(&target, &["list-users"]).await;
    assert!(ok && users.contains(&login), "{users}");
    assert!(!users.contains("late"), "{users}");
    let r = Kabuto {
        c,
        base: base.clone(),
        login: login.clone(),
    };

    // Jobs: the finished ones as they were, with their results; the interrupted ones ran again.
    let copied = r.job_info(&finished, &copy).await;
    assert_eq!(copied["state"], "done");
    assert_eq!(r.results(&finished, &copy).await, copy_result);
    let failed = r.job_info(&failing, &fails).await;
    assert_eq!(failed["state"], "failed");
    assert_eq!(failed["response"], 3);
    assert_eq!(r.wait_job(&long, &slow).await["state"], "done");
    assert_eq!(r.results(&long, &slow).await["slow.txt"], b"slow\n");
    assert_eq!(r.wait_job(&long, &after).await["state"], "done");
    assert_eq!(r.results(&long, &after).await["after.txt"], b"after\n");
    let q = r.wait_job(&busy, &quick).await;
    assert_eq!(q["state"], "done", "{q}");
    // The attachment came back: the job runs again from it.
    assert_eq!(r.submit(&finished).await.0, 200);
    assert_eq!(r.wait_job(&finished, &copy).await["state"], "done");
    assert_eq!(r.results(&finished, &copy).await, copy_result);

    // Blobs: every tag in the restored registry pulls whole; what was pushed before the backup
    // is there with the same digests; the push during it is there whole or not at all.
    let registry_after = registry_contents(&base, &login).await;
    let base_tag = format!("{login}/base:1");
    assert_eq!(
        registry_after.get(&base_tag),
        registry_before.get(&base_tag)
    );
    for (tag, digest) in &registry_after {
        assert_eq!(registry_before.get(tag), Some(digest), "{tag}");
    }
    eprintln!("restored registry: {registry_after:?}");
    drop(restored);
    drop(stopped);
}

#[tokio::test]
async fn backup_and_restore_refuse_what_they_must() {
    let server = TestServer::start().await;
    let data = server.data_dir();
    let (_, login) = server.user("refuse").await;
    let root = tempfile::tempdir().unwrap();

    // A destination that holds something, or inside the data directory.
    let full = root.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("keep"), "mine").unwrap();
    let (ok, _, err) = admin(&data, &["backup", full.to_str().unwrap()]).await;
    assert!(!ok && err.contains("not empty"), "{err}");
    assert_eq!(std::fs::read(full.join("keep")).unwrap(), b"mine");
    let inside = data.join("backups");
    let (ok, _, err) = admin(&data, &["backup", inside.to_str().unwrap()]).await;
    assert!(!ok && err.contains("inside the data directory"), "{err}");
    // A directory without a database.
    let nothing = root.path().join("nothing");
    std::fs::create_dir(&nothing).unwrap();
    let (ok, _, err) = admin(
        &nothing,
        &["backup", root.path().join("b0").to_str().unwrap()],
    )
    .await;
    assert!(!ok && err.contains("no database"), "{err}");

    // An empty directory is fine; the backup of a running server is taken through it.
    let path = root.path().join("b1");
    std::fs::create_dir(&path).unwrap();
    let (ok, out, err) = admin(&data, &["backup", path.to_str().unwrap()]).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("1 user"), "{out}");
    let (ok, out, err) = admin(&data, &["restore", "--verify-only", path.to_str().unwrap()]).await;
    assert!(ok && out.contains("every checksum verified"), "{out}{err}");

    // No restore onto a running server, forced or not.
    let (ok, _, err) = admin(&data, &["restore", "--force", path.to_str().unwrap()]).await;
    assert!(!ok && err.contains("stop it first"), "{err}");

    // A stopped server: the backup opens the database itself.
    let stopped = server.stop().await;
    let direct = root.path().join("b2");
    let (ok, out, err) = admin(stopped.path(), &["backup", direct.to_str().unwrap()]).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("stopped server's database"), "{out}");

    // Not a backup; a damaged one: refused before anything is written.
    let target = root.path().join("target");
    let (ok, _, err) = admin(&target, &["restore", full.to_str().unwrap()]).await;
    assert!(!ok && err.contains("is not a backup"), "{err}");
    let db = direct.join("data/dtaas.redb");
    let mut bytes = std::fs::read(&db).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&db, &bytes).unwrap();
    let (ok, _, err) = admin(&target, &["restore", direct.to_str().unwrap()]).await;
    assert!(
        !ok && err.contains("damaged") && err.contains("dtaas.redb"),
        "{err}"
    );
    assert!(!target.exists(), "nothing was written");
    let (ok, _, err) = admin(
        &target,
        &["restore", "--verify-only", direct.to_str().unwrap()],
    )
    .await;
    assert!(!ok && err.contains("damaged"), "{err}");

    // A data directory that is not empty needs --force, and keeps the old contents aside.
    let (ok, _, err) = admin(stopped.path(), &["restore", path.to_str().unwrap()]).await;
    assert!(!ok && err.contains("--force"), "{err}");
    let (ok, out, err) = admin(
        stopped.path(),
        &["restore", "--force", path.to_str().unwrap()],
    )
    .await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("previous contents"), "{out}");
    let (ok, users, err) = admin(stopped.path(), &["list-users"]).await;
    assert!(ok && users.contains(&login), "{users}{err}");
    let aside: Vec<_> = std::fs::read_dir(stopped.path().parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.to_string_lossy()
                .starts_with(&format!("{}.replaced-", stopped.path().display()))
        })
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(aside[0].join("dtaas.redb").exists());
    let _ = std::fs::remove_dir_all(&aside[0]);
}
