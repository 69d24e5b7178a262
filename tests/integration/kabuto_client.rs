//! A kabuto client for tests: the seed's calls, with a cookie jar.

#![allow(dead_code)]

use super::harness::json_of;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub struct Kabuto {
    pub c: reqwest::Client,
    pub base: String,
    pub login: String,
}

/// A file for a multipart upload.
pub fn file(name: &str, content: &[u8]) -> Part {
    Part::bytes(content.to_vec()).file_name(name.to_owned())
}

impl Kabuto {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.c.get(self.url(path)).send().await.expect("GET");
        (r.status().as_u16(), json_of(r).await)
    }

    pub async fn send_form(&self, method: reqwest::Method, path: &str, form: Form) -> (u16, Value) {
        let r = self
            .c
            .request(method, self.url(path))
            .multipart(form)
            .send()
            .await
            .expect("multipart request");
        (r.status().as_u16(), json_of(r).await)
    }

    /// `POST /image`; returns the build id.
    pub async fn start_build(
        &self,
        name: &str,
        dockerfile: &str,
        attachments: &[(&str, &[u8])],
    ) -> String {
        let mut form = Form::new()
            .text("name", name.to_owned())
            .text("dockerfile", dockerfile.to_owned());
        for (n, content) in attachments {
            form = form.part("attachments", file(n, content));
        }
        let (status, v) = self.send_form(reqwest::Method::POST, "/image", form).await;
        assert_eq!(status, 200, "POST /image: {v}");
        v["build_id"].as_str().expect("build_id").to_owned()
    }

    /// Polls a build until it is no longer PENDING.
    pub async fn wait_build(&self, build: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let (status, v) = self.get(&format!("/image/build/{build}")).await;
            assert_eq!(status, 200, "{v}");
            if v["state"] != "PENDING" {
                return v;
            }
            assert!(Instant::now() < deadline, "build {build} still pending");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Builds an image and returns its id; panics with the output if it fails.
    pub async fn image(&self, dockerfile: &str, attachments: &[(&str, &[u8])]) -> String {
        crate::harness::base_image().await;
        let build = self
            .start_build("test-image", dockerfile, attachments)
            .await;
        let v = self.wait_build(&build).await;
        assert_eq!(v["state"], "SUCCESS", "build failed: {v}");
        v["id"].as_str().expect("image id").to_owned()
    }

    /// An image made from the busybox base.
    pub async fn busybox(&self) -> String {
        self.image("FROM dtaas/busybox:latest\n", &[]).await
    }

    pub async fn pipeline(&self, name: &str) -> String {
        let r = self
            .c
            .post(self.url("/pipeline"))
            .form(&[("name", name)])
            .send()
            .await
            .expect("POST /pipeline");
        assert_eq!(r.status(), 200);
        json_of(r).await["id"].as_str().expect("id").to_owned()
    }

    pub async fn job(
        &self,
        pipeline: &str,
        image: &str,
        command: &str,
        attachments: &[(&str, &[u8])],
    ) -> String {
        let mut form = Form::new()
            .text("command", command.to_owned())
            .text("image_id", image.to_owned());
        for (n, content) in attachments {
            form = form.part("attachments", file(n, content));
        }
        let (status, v) = self
            .send_form(
                reqwest::Method::POST,
                &format!("/pipeline/{pipeline}/job"),
                form,
            )
            .await;
        assert_eq!(status, 200, "POST job: {v}");
        v["id"].as_str().expect("id").to_owned()
    }

    pub async fn submit(&self, pipeline: &str) -> (u16, Value) {
        let r = self
            .c
            .post(self.url(&format!("/pipeline/{pipeline}/submit")))
            .send()
            .await
            .expect("submit");
        (r.status().as_u16(), json_of(r).await)
    }

    /// Waits (30 s at most) until the pipeline has left the run queue: its last job's end is
    /// recorded a moment before the runner lets the pipeline go, and until then a submit or a
    /// change is refused as busy.
    pub async fn wait_idle(&self, pipeline: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self
                .c
                .get(self.url(&format!("/v1/pipelines/{pipeline}")))
                .send()
                .await
                .expect("GET /v1/pipelines");
            assert_eq!(r.status(), 200);
            let v = json_of(r).await;
            if v["queued"] == false {
                return;
            }
            assert!(Instant::now() < deadline, "still queued: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn job_info(&self, pipeline: &str, job: &str) -> Value {
        let (status, v) = self.get(&format!("/pipeline/{pipeline}/job/{job}")).await;
        assert_eq!(status, 200, "{v}");
        v[job].clone()
    }

    /// Polls a job until it reaches `done`, `failed` or `cancelled`.
    pub async fn wait_job(&self, pipeline: &str, job: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let v = self.job_info(pipeline, job).await;
            if matches!(v["state"].as_str(), Some("done" | "failed" | "cancelled")) {
                return v;
            }
            assert!(Instant::now() < deadline, "job {job} did not end: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls until the job's state is `state`.
    pub async fn wait_state(&self, pipeline: &str, job: &str, state: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let v = self.job_info(pipeline, job).await;
            if v["state"] == state {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "job {job} never became {state}: {v}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn logs(&self, job: &str) -> Vec<String> {
        let (status, v) = self.get(&format!("/execution/{job}/logs")).await;
        assert_eq!(status, 200, "{v}");
        v.as_array()
            .expect("array")
            .iter()
            .map(|l| l["logline"].as_str().expect("logline").to_owned())
            .collect()
    }

    /// The job's result zip, unpacked: name -> content.
    pub async fn results(&self, pipeline: &str, job: &str) -> BTreeMap<String, Vec<u8>> {
        let r = self
            .c
            .get(self.url(&format!("/pipeline/{pipeline}/job/{job}?result")))
            .send()
            .await
            .expect("result");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/zip");
        unzip(&r.bytes().await.expect("zip bytes"))
    }
}

pub fn unzip(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    use std::io::Read;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip");
    let mut out = BTreeMap::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).expect("entry");
        if f.is_dir() {
            continue;
        }
        let mut content = Vec::new();
        f.read_to_end(&mut content).expect("read entry");
        out.insert(f.name().expect("entry name").to_string(), content);
    }
    out
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_owned()
}
