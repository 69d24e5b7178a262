//! `/metrics`: for administrators only; requests by route pattern, jobs and instances by state,
//! the run queue, build durations, registry bytes both ways and the store's size, each moved
//! by real work (a build, a job, a docker push and pull) on a real server.

use crate::harness::*;
use std::collections::HashMap;

/// The samples of a Prometheus text exposition: `name{labels}` -> value. Every line that is
/// not a comment must be a sample, and every family must have its HELP and TYPE.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split(' ');
            typed.insert(words.next().unwrap().to_owned());
            let kind = words.next().unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a value: {line:?}"));
        let name = series.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
            .unwrap_or(name);
        assert!(typed.contains(family), "{name} has no TYPE line");
        samples.insert(series.to_owned(), value);
    }
    samples
}

async fn scrape(c: &reqwest::Client, server: &TestServer) -> HashMap<String, f64> {
    let r = c.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    parse(&r.text().await.unwrap())
}

fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no {series} in {samples:#?}"))
}

#[tokio::test]
async fn metrics_count_real_work_and_are_for_administrators() {
    let server = TestServer::start().await;

    // Anonymous: 401; a user who is not an admin: 403.
    let r = client().get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let k = server.kabuto("metrics").await;
    let r = k.c.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(kabuto_error(&json_of(r).await).contains("administrators"));

    // An admin, by API key as a scraper would (Authorization: Bearer).
    let boss = unique("boss");
    let out = dtaas_cli(
        &[
            "admin",
            "--data-dir",
            server.data_dir().to_str().unwrap(),
            "create-user",
            &boss,
            "--admin",
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let admin = client();
    let r = admin
        .post(server.url("/login"))
        .form(&[("login", boss.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let key = V1::new(&server, admin.clone()).new_key().await;
    let scraper = reqwest::Client::builder()
        .no_proxy()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {key}").parse().unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap();
    let before = scrape(&scraper, &server).await;
    assert_eq!(value(&before, "dtaas_jobs{state=\"done\"}"), 0.0);
    assert_eq!(value(&before, "dtaas_run_queue_pipelines"), 0.0);
    assert!(value(&before, "dtaas_store_bytes") > 0.0);
    assert!(value(&before, "process_resident_memory_bytes") > 0.0);

    // A build, a job that runs to its end, a push and a pull.
    let image = k.busybox().await;
    let pipeline = k.pipeline("counted").await;
    let job = k.job(&pipeline, &image, "echo counted", &[]).await;
    let (status, body) = k.submit(&pipeline).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(k.wait_job(&pipeline, &job).await["state"], "done");
    let name = format!("{}/counted", k.login);
    push_image(&server, &k.login, None, &name, "1").await;
    let manifest = k
        .c
        .get(server.url(&format!("/v2/{name}/manifests/1")))
        .basic_auth(&k.login, Some(PASSWORD))
        .header(
            "accept",
            "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(manifest.status(), 200);
    let manifest: serde_json::Value = manifest.json().await.unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_owned();
    let size = manifest["layers"][0]["size"].as_f64().unwrap();
    let blob =
        k.c.get(server.url(&format!("/v2/{name}/blobs/{layer}")))
            .basic_auth(&k.login, Some(PASSWORD))
            .send()
            .await
            .unwrap();
    assert_eq!(blob.status(), 200);
    assert_eq!(blob.bytes().await.unwrap().len() as f64, size);
    for _ in 0..3 {
        k.get("/v1/jobs").await;
    }

    let after = scrape(&scraper, &server).await;
    assert_eq!(value(&after, "dtaas_jobs{state=\"done\"}"), 1.0);
    assert_eq!(value(&after, "dtaas_jobs{state=\"running\"}"), 0.0);
    assert_eq!(
        value(
            &after,
            "dtaas_build_duration_seconds_count{outcome=\"success\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "dtaas_build_duration_seconds_bucket{outcome=\"success\",le=\"+Inf\"}"
        ),
        1.0
    );
    // The push sent the layer (and a config blob and a manifest); the pull got the layer back.
    assert!(value(&after, "dtaas_registry_received_bytes_total") > size);
    assert!(value(&after, "dtaas_registry_sent_bytes_total") >= size);
    // Requests by the route's pattern, never by the path.
    assert!(
        value(
            &after,
            "dtaas_http_requests_total{route=\"/v1/jobs\",method=\"GET\",status=\"200\"}"
        ) >= 3.0
    );
    assert!(
        value(
            &after,
            "dtaas_http_requests_total{route=\"/v2/{name}/blobs/{digest}\",method=\"GET\",status=\"200\"}"
        ) >= 1.0
    );
    assert!(
        value(
            &after,
            "dtaas_http_requests_total{route=\"/metrics\",method=\"GET\",status=\"403\"}"
        ) >= 1.0
    );
    assert!(
        !after.keys().any(|k| k.contains(&layer) || k.contains(&job)),
        "no id in a label"
    );
    // A path no route knows is one series, whatever the path.
    for path in ["/nowhere/1", "/nowhere/2"] {
        client().get(server.url(path)).send().await.unwrap();
    }
    let last = scrape(&scraper, &server).await;
    assert!(
        value(
            &last,
            "dtaas_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"}"
        ) >= 2.0
    );
    assert!(!last.keys().any(|k| k.contains("nowhere")));
}
