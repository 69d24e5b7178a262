//! SIGKILL the server while jobs are queued, running and finishing; restart; every job ends in
//! its true state, with its exit code, logs (each line once) and outbox; nothing is orphaned.

use crate::harness::*;

#[tokio::test]
async fn jobs_survive_a_sigkill_of_the_server() {
    base_image().await;
    let dir = tempfile::tempdir().unwrap();
    let env = [("DTAAS_JOBS_MAX_PARALLEL", "2")];
    let server = ProcessServer::spawn(dir.path(), &env).await;
    let (client, login) = new_user(&server.base, "crash").await;
    let mut k = Kabuto {
        c: client,
        base: server.base.clone(),
        login,
    };
    let image = k.busybox().await;

    // Finishes while the server is down.
    let p1 = k.pipeline("p1").await;
    let a1 = k
        .job(&p1, &image, "sh -c \"echo a1-start; sleep 2; echo a1-end; echo a1 > /outbox/a1; cut -d' ' -f1 /proc/uptime > /outbox/end\"", &[])
        .await;
    // Queued behind a1 in the same pipeline.
    let a2 = k
        .job(
            &p1,
            &image,
            "sh -c \"cut -d' ' -f1 /proc/uptime > /outbox/start; echo a2\"",
            &[],
        )
        .await;
    // Still running when the server comes back: re-attached.
    let p2 = k.pipeline("p2").await;
    let b1 = k
        .job(
            &p2,
            &image,
            "sh -c 'echo b1-start; sleep 8; echo b1-end; echo b1 > /outbox/b1'",
            &[],
        )
        .await;
    // Waiting for a free slot (the limit is 2).
    let p3 = k.pipeline("p3").await;
    let c1 = k.job(&p3, &image, "echo c1", &[]).await;
    let failing = k.job(&p3, &image, "sh -c 'sleep 1; exit 5'", &[]).await;

    for p in [&p1, &p2, &p3] {
        assert_eq!(k.submit(p).await.0, 200);
    }
    k.wait_state(&p1, &a1, "running").await;
    k.wait_state(&p2, &b1, "running").await;
    // Let the first lines reach the database.
    for (p, j, line) in [(&p1, &a1, "a1-start"), (&p2, &b1, "b1-start")] {
        for _ in 0..100 {
            if k.logs(j).await.iter().any(|l| l == line) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(k.job_info(p, j).await["state"], "running");
    }
    server.kill9().await;

    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let server = ProcessServer::spawn(dir.path(), &env).await;
    k.base = server.base.clone();

    let v = k.wait_job(&p1, &a1).await;
    assert_eq!(
        v["state"], "done",
        "a1 ended while the server was down: {v}"
    );
    assert_eq!(v["response"], 0);
    assert_eq!(k.logs(&a1).await, vec!["a1-start", "a1-end"]);
    let a1_results = k.results(&p1, &a1).await;
    assert_eq!(text(&a1_results["a1"]), "a1");

    let v = k.wait_job(&p1, &a2).await;
    assert_eq!(v["state"], "done", "{v}");
    assert_eq!(k.logs(&a2).await, vec!["a2"]);
    let a2_start: f64 = text(&k.results(&p1, &a2).await["start"]).parse().unwrap();
    let a1_end: f64 = text(&a1_results["end"]).parse().unwrap();
    assert!(a2_start >= a1_end, "a2 ran after a1");

    let v = k.wait_job(&p2, &b1).await;
    assert_eq!(v["state"], "done", "b1 was re-attached: {v}");
    assert_eq!(
        k.logs(&b1).await,
        vec!["b1-start", "b1-end"],
        "each line once"
    );
    assert_eq!(text(&k.results(&p2, &b1).await["b1"]), "b1");

    assert_eq!(k.wait_job(&p3, &c1).await["state"], "done");
    let v = k.wait_job(&p3, &failing).await;
    assert_eq!(v["state"], "failed");
    assert_eq!(v["response"], 5);

    // Nothing is left in the engine.
    for job in [&a1, &a2, &b1, &c1, &failing] {
        assert_job_container_gone(job).await;
    }
    server.kill9().await;
    let installation = dtaas::domains::open_store(dir.path())
        .unwrap()
        .installation_id()
        .unwrap();
    drop(EngineCleanup(installation.to_string()));
}
