//! The built-in registry (issue 4): the real docker CLI and skopeo, spec behaviour by raw HTTP,
//! access control, crash safety of uploads, built images, garbage collection, engine loading.

use crate::harness::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;

fn digest(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        dtaas::core::secrets::hex(&Sha256::digest(bytes))
    )
}

/// The docker CLI with its own config directory (see `harness::docker_cli`).
async fn docker(config: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    docker_cli(config, args, stdin).await
}

async fn image_id(reference: &str) -> String {
    let out = tokio::process::Command::new("docker")
        .args(["image", "inspect", "-f", "{{.Id}}", reference])
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A registry client with Basic credentials.
struct Reg {
    c: reqwest::Client,
    base: String,
    user: String,
    password: String,
}

impl Reg {
    fn new(base: &str, user: &str, password: &str) -> Reg {
        Reg {
            c: reqwest::Client::builder().no_proxy().build().unwrap(),
            base: base.to_owned(),
            user: user.to_owned(),
            password: password.to_owned(),
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{}", self.base, path)
        };
        self.c
            .request(method, url)
            .basic_auth(&self.user, Some(&self.password))
    }

    /// Uploads a blob in one request.
    async fn blob(&self, repo: &str, bytes: &[u8]) -> String {
        let d = digest(bytes);
        let r = self
            .req(
                reqwest::Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
            )
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap()
        );
        d
    }

    async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &Value,
    ) -> reqwest::Response {
        self.req(
            reqwest::Method::PUT,
            &format!("/v2/{repo}/manifests/{reference}"),
        )
        .header("content-type", media_type)
        .body(serde_json::to_vec(body).unwrap())
        .send()
        .await
        .unwrap()
    }
}

async fn error_code(r: reqwest::Response) -> String {
    let v: Value = r.json().await.unwrap();
    v["errors"][0]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no spec error: {v}"))
        .to_owned()
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn image_manifest(config: &str, config_len: usize, layer: &str, layer_len: usize) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_len},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layer_len}],
    })
}

#[tokio::test]
async fn docker_login_push_rmi_pull_round_trip() {
    let server = TestServer::start().await;
    let base = base_image().await;
    let (_, login) = server.user("dock").await;
    let config = tempfile::tempdir().unwrap();
    let host = server.addr.to_string();
    let (ok, out) = docker(
        config.path(),
        &["login", &host, "-u", &login, "--password-stdin"],
        Some(PASSWORD),
    )
    .await;
    assert!(ok, "{out}");
    assert!(out.contains("Login Succeeded"));

    let first = format!("{host}/{login}/app:1");
    let second = format!("{host}/{login}/copy:2");
    for (tag, mounted) in [(&first, false), (&second, true)] {
        let (ok, out) = docker(config.path(), &["tag", base, tag], None).await;
        assert!(ok, "{out}");
        let (ok, out) = docker(config.path(), &["push", tag], None).await;
        assert!(ok, "{out}");
        assert_eq!(
            out.contains("Mounted from"),
            mounted,
            "cross-repository mount: {out}"
        );
    }
    let pushed = image_id(base).await;
    let (ok, out) = docker(config.path(), &["rmi", &first, &second], None).await;
    assert!(ok, "{out}");
    assert!(image_id(&first).await.is_empty());
    let (ok, out) = docker(config.path(), &["pull", &first], None).await;
    assert!(ok, "{out}");
    assert_eq!(
        image_id(&first).await,
        pushed,
        "the pulled image is the pushed one"
    );
    docker(config.path(), &["rmi", &first], None).await;

    // An API key works as the password too.
    let (c, _) = (server.client(), ());
    c.post(server.url("/login"))
        .form(&[("login", login.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let key = json_of(
        c.post(server.url("/v1/api-keys"))
            .json(&json!({"name": "docker"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let other_config = tempfile::tempdir().unwrap();
    let (ok, out) = docker(
        other_config.path(),
        &["login", &host, "-u", &login, "--password-stdin"],
        key["key"].as_str(),
    )
    .await;
    assert!(ok, "{out}");
    let (ok, out) = docker(other_config.path(), &["pull", &second], None).await;
    assert!(ok, "{out}");
    docker(other_config.path(), &["rmi", &second], None).await;
}

#[tokio::test]
async fn skopeo_copies_oci_images_in_and_out() {
    let server = TestServer::start().await;
    let base = base_image().await;
    let (_, login) = server.user("sko").await;
    let creds = format!("{login}:{PASSWORD}");
    let target = format!("docker://{}/{login}/oci:1", server.addr);
    let skopeo = |args: Vec<String>| async move {
        let out = tokio::process::Command::new("skopeo")
            .args(&args)
            .output()
            .await
            .expect("skopeo (Debian's skopeo)");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let s = |x: &str| x.to_owned();
    let (ok, out) = skopeo(vec![
        s("copy"),
        s("--format"),
        s("oci"),
        s("--dest-tls-verify=false"),
        s("--dest-creds"),
        creds.clone(),
        format!("docker-daemon:{base}"),
        target.clone(),
    ])
    .await;
    assert!(ok, "{out}");
    let (ok, out) = skopeo(vec![
        s("inspect"),
        s("--raw"),
        s("--tls-verify=false"),
        s("--creds"),
        creds.clone(),
        target.clone(),
    ])
    .await;
    assert!(ok, "{out}");
    let raw: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(raw["mediaType"], OCI_MANIFEST);
    assert_eq!(
        raw["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );

    let dir = tempfile::tempdir().unwrap();
    let layout = format!("oci:{}:1", dir.path().join("layout").display());
    let (ok, out) = skopeo(vec![
        s("copy"),
        s("--src-tls-verify=false"),
        s("--src-creds"),
        creds.clone(),
        target.clone(),
        layout,
    ])
    .await;
    assert!(ok, "{out}");
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("layout/index.json")).unwrap())
            .unwrap();
    assert_eq!(index["manifests"][0]["mediaType"], OCI_MANIFEST);
    let d = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();
    let stored = std::fs::read(dir.path().join("layout/blobs/sha256").join(&d)).unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&stored).unwrap(),
        raw,
        "the manifest came back byte for byte"
    );
}

#[tokio::test]
async fn spec_behaviour_over_raw_http() {
    let server = TestServer::start().await;
    let (_, login) = server.user("spec").await;
    let reg = Reg::new(&server.base, &login, PASSWORD);
    let repo = format!("{login}/raw");
    use reqwest::Method;

    // The ping.
    let r = reg.req(Method::GET, "/v2/").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );

    // Chunked upload, with an out-of-order chunk.
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let r = reg
        .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(r.headers().contains_key("docker-upload-uuid"));
    let (a, b) = data.split_at(100_000);
    let r = reg
        .req(Method::PATCH, &location)
        .header("content-range", "0-99999")
        .body(a.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(r.headers()["range"], "0-99999");
    let r = reg
        .req(Method::PATCH, &location)
        .header("content-range", "5-104")
        .body(vec![0u8; 100])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::RANGE_NOT_SATISFIABLE,
        "out of order"
    );
    assert_eq!(r.headers()["range"], "0-99999");
    let r = reg.req(Method::GET, &location).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()["range"], "0-99999");
    let r = reg
        .req(Method::PATCH, &location)
        .header("content-range", "100000-299999")
        .body(b.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let d = digest(&data);
    let r = reg
        .req(Method::PUT, &format!("{location}?digest={d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["docker-content-digest"], d.as_str());

    // Reads: whole, HEAD, ranges.
    let r = reg
        .req(Method::GET, &format!("/v2/{repo}/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), data.as_slice());
    let r = reg
        .req(Method::HEAD, &format!("/v2/{repo}/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-length"], "300000");
    assert_eq!(r.headers()["docker-content-digest"], d.as_str());
    let r = reg
        .req(Method::GET, &format!("/v2/{repo}/blobs/{d}"))
        .header("range", "bytes=1000-1009")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers()["content-range"], "bytes 1000-1009/300000");
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[1000..1010]);
    let r = reg
        .req(Method::GET, &format!("/v2/{repo}/blobs/{d}"))
        .header("range", "bytes=-5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[299_995..]);
    let r = reg
        .req(Method::GET, &format!("/v2/{repo}/blobs/{d}"))
        .header("range", "bytes=400000-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    // A streamed PATCH without Content-Range, and a wrong digest.
    let r = reg
        .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let stream =
        futures_util::stream::iter((0..4).map(|i| Ok::<_, std::io::Error>(vec![i as u8; 50_000])));
    let r = reg
        .req(Method::PATCH, &location)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(r.headers()["range"], "0-199999");
    let r = reg
        .req(
            Method::PUT,
            &format!("{location}?digest={}", digest(b"something else")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    let r = reg
        .req(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest=sha256:nothex"),
        )
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "DIGEST_INVALID");

    // Cancel an upload.
    let r = reg
        .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(
        reg.req(Method::DELETE, &location)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    let r = reg.req(Method::GET, &location).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");

    // Manifests: a missing blob, then a good one by tag, read back byte for byte.
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_d = reg.blob(&repo, config).await;
    let missing = digest(b"never uploaded");
    let r = reg
        .put_manifest(
            &repo,
            "v1",
            OCI_MANIFEST,
            &image_manifest(&config_d, config.len(), &missing, 3),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");
    let r = reg
        .put_manifest(&repo, "v1", OCI_MANIFEST, &json!({"schemaVersion": 2}))
        .await;
    assert_eq!(error_code(r).await, "MANIFEST_INVALID");
    let manifest = image_manifest(&config_d, config.len(), &d, data.len());
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let manifest_d = digest(&bytes);
    let r = reg.put_manifest(&repo, "v1", OCI_MANIFEST, &manifest).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["docker-content-digest"], manifest_d.as_str());
    for reference in ["v1", manifest_d.as_str()] {
        let r = reg
            .req(Method::GET, &format!("/v2/{repo}/manifests/{reference}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], OCI_MANIFEST);
        assert_eq!(r.headers()["docker-content-digest"], manifest_d.as_str());
        assert_eq!(
            r.bytes().await.unwrap().as_ref(),
            bytes.as_slice(),
            "stored byte-exact"
        );
    }
    let r = reg
        .put_manifest(&repo, &digest(b"other"), OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(
        error_code(r).await,
        "DIGEST_INVALID",
        "a digest reference must match"
    );

    // An index: a missing child is refused, a present one accepted.
    let index = |child: &str| json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"mediaType": OCI_MANIFEST, "digest": child, "size": bytes.len(), "platform": {"os": "linux", "architecture": "amd64"}}]});
    let r = reg
        .put_manifest(&repo, "multi", OCI_INDEX, &index(&missing))
        .await;
    assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");
    let r = reg
        .put_manifest(&repo, "multi", OCI_INDEX, &index(&manifest_d))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);

    // Referrers: an artifact whose subject is the image.
    let empty = reg.blob(&repo, b"{}").await;
    let artifact = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sbom",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": data.len()}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": manifest_d, "size": bytes.len()},
    });
    let artifact_d = digest(&serde_json::to_vec(&artifact).unwrap());
    let r = reg
        .put_manifest(&repo, &artifact_d, OCI_MANIFEST, &artifact)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["oci-subject"], manifest_d.as_str());
    let r = reg
        .req(Method::GET, &format!("/v2/{repo}/referrers/{manifest_d}"))
        .send()
        .await
        .unwrap();
    let list: Value = r.json().await.unwrap();
    assert_eq!(list["manifests"][0]["digest"], artifact_d.as_str());
    assert_eq!(
        list["manifests"][0]["artifactType"],
        "application/vnd.example.sbom"
    );
    let r = reg
        .req(
            Method::GET,
            &format!("/v2/{repo}/referrers/{manifest_d}?artifactType=application/other"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["oci-filters-applied"], "artifactType");
    assert_eq!(r.json::<Value>().await.unwrap()["manifests"], json!([]));

    // Tags with paging and Link; the catalog.
    for t in ["v2", "v3", "v4"] {
        assert_eq!(
            reg.put_manifest(&repo, t, OCI_MANIFEST, &manifest)
                .await
                .status(),
            StatusCode::CREATED
        );
    }
    let r = reg
        .req(Method::GET, &format!("/v2/{repo}/tags/list?n=2"))
        .send()
        .await
        .unwrap();
    let link = r.headers()["link"].to_str().unwrap().to_owned();
    assert_eq!(
        link,
        format!("</v2/{repo}/tags/list?n=2&last=v1>; rel=\"next\"")
    );
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"name": repo, "tags": ["multi", "v1"]})
    );
    let r = reg
        .req(Method::GET, &format!("/v2/{repo}/tags/list?n=2&last=v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["tags"],
        json!(["v2", "v3"])
    );
    let r = reg
        .req(Method::GET, &format!("/v2/{repo}/tags/list?n=2&last=v3"))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("link").is_none());
    assert_eq!(r.json::<Value>().await.unwrap()["tags"], json!(["v4"]));
    reg.blob(&format!("{login}/second"), b"x").await;
    let r = reg.req(Method::GET, "/v2/_catalog").send().await.unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["repositories"],
        json!([repo, format!("{login}/second")])
    );

    // Deletes: a tag, a manifest by digest (its tags go too), a blob.
    assert_eq!(
        reg.req(Method::DELETE, &format!("/v2/{repo}/manifests/v4"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::ACCEPTED
    );
    let r = reg
        .req(Method::GET, &format!("/v2/{repo}/manifests/v4"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");
    assert_eq!(
        reg.req(
            Method::DELETE,
            &format!("/v2/{repo}/manifests/{manifest_d}")
        )
        .send()
        .await
        .unwrap()
        .status(),
        StatusCode::ACCEPTED
    );
    for reference in ["v1", "v2", manifest_d.as_str()] {
        let r = reg
            .req(Method::GET, &format!("/v2/{repo}/manifests/{reference}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{reference}");
    }
    assert_eq!(
        reg.req(Method::DELETE, &format!("/v2/{repo}/blobs/{d}"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::ACCEPTED
    );
    let r = reg
        .req(Method::GET, &format!("/v2/{repo}/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "BLOB_UNKNOWN");

    // Names.
    let r = reg
        .req(Method::GET, "/v2/Not_Valid/tags/list")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "NAME_INVALID");
    let r = reg
        .req(Method::GET, &format!("/v2/{login}/nothing-here/tags/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "NAME_UNKNOWN");
}

/// Issue 11: the registry took descriptor sizes of -1 or 2^64, and `?n=-1` answered 405
/// UNSUPPORTED. A size is a non-negative int64 equal to what the registry holds (else
/// MANIFEST_INVALID or SIZE_INVALID); `n` is a non-negative integer (else 400
/// PAGINATION_NUMBER_INVALID) and `last` a name or a tag.
#[tokio::test]
async fn descriptor_sizes_and_paging_parameters_are_checked() {
    use reqwest::Method;
    let server = TestServer::start().await;
    let (_, login) = server.user("sizes").await;
    let reg = Reg::new(&server.base, &login, PASSWORD);
    let repo = format!("{login}/sizes");
    let config: &[u8] =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_d = reg.blob(&repo, config).await;
    let layer: &[u8] = b"a layer of eighteen";
    let layer_d = reg.blob(&repo, layer).await;
    let put_raw = |reference: &str, media_type: &str, body: String| {
        reg.req(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("content-type", media_type)
            .body(body)
            .send()
    };
    let with_layer_size = |size: &str| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}",
                "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_d}","size":{}}},
                "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_d}","size":{size}}}]}}"#,
            config.len()
        )
    };
    for size in [
        "-1",
        "18446744073709551616",
        "9223372036854775808",
        "18.5",
        "\"19\"",
        "null",
    ] {
        let r = put_raw("bad", OCI_MANIFEST, with_layer_size(size))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "size {size}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            v["errors"][0]["code"], "MANIFEST_INVALID",
            "size {size}: {v}"
        );
    }
    // A size the registry's blob does not have.
    let wrong = (layer.len() + 1).to_string();
    let r = put_raw("bad", OCI_MANIFEST, with_layer_size(&wrong))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errors"][0]["code"], "SIZE_INVALID", "{v}");
    assert_eq!(v["errors"][0]["detail"]["digest"], layer_d.as_str());
    assert_eq!(v["errors"][0]["detail"]["actual"], layer.len());
    // Nothing of these was stored.
    let r = reg
        .req(Method::GET, &format!("/v2/{repo}/manifests/bad"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // The right size.
    let good = with_layer_size(&layer.len().to_string());
    let r = put_raw("good", OCI_MANIFEST, good.clone()).await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    // An index's entries are checked against the manifests the repository holds.
    let child = digest(good.as_bytes());
    let index = |size: usize| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{child}","size":{size}}}]}}"#
        )
    };
    let r = put_raw("multi", OCI_INDEX, index(good.len() - 1))
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "SIZE_INVALID");
    let r = put_raw("multi", OCI_INDEX, index(good.len()))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    // Paging: n and last.
    for (path, code) in [
        (
            format!("/v2/{repo}/tags/list?n=-1"),
            "PAGINATION_NUMBER_INVALID",
        ),
        (
            format!("/v2/{repo}/tags/list?n=two"),
            "PAGINATION_NUMBER_INVALID",
        ),
        (
            format!("/v2/{repo}/tags/list?n=1.0"),
            "PAGINATION_NUMBER_INVALID",
        ),
        (format!("/v2/{repo}/tags/list?last=-x"), "TAG_INVALID"),
        ("/v2/_catalog?n=-1".to_owned(), "PAGINATION_NUMBER_INVALID"),
        (
            "/v2/_catalog?last=Not%20A%20Name".to_owned(),
            "NAME_INVALID",
        ),
    ] {
        let r = reg.req(Method::GET, &path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(error_code(r).await, code, "{path}");
    }
    let r = reg
        .req(Method::GET, &format!("/v2/{repo}/tags/list?n=1&last=good"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"name": repo, "tags": ["multi"]})
    );
    let r = reg
        .req(Method::GET, &format!("/v2/{repo}/tags/list?n=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["tags"], json!([]));
}

#[tokio::test]
async fn others_and_anonymous_are_kept_out() {
    let server = TestServer::start().await;
    let (_, alice) = server.user("alice").await;
    let (_, bob) = server.user("bob").await;
    let a = Reg::new(&server.base, &alice, PASSWORD);
    let b = Reg::new(&server.base, &bob, PASSWORD);
    let repo = format!("{alice}/private");
    use reqwest::Method;
    let layer = a.blob(&repo, b"layer").await;
    let config = a.blob(&repo, b"{}").await;
    assert_eq!(
        a.put_manifest(
            &repo,
            "1",
            OCI_MANIFEST,
            &image_manifest(&config, 2, &layer, 5)
        )
        .await
        .status(),
        StatusCode::CREATED
    );

    // Anonymous: 401 with the challenge.
    let anon = reqwest::Client::new();
    for path in [
        "/v2/".to_owned(),
        format!("/v2/{repo}/manifests/1"),
        format!("/v2/{repo}/blobs/{layer}"),
    ] {
        let r = anon
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic realm=")
        );
        assert_eq!(error_code(r).await, "UNAUTHORIZED");
    }
    let r =
        b.c.get(format!("{}/v2/", server.base))
            .basic_auth(&bob, Some("wrong"))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 401);

    // Bob can neither pull nor push nor delete, and the repository looks unknown.
    for (method, path) in [
        (Method::GET, format!("/v2/{repo}/manifests/1")),
        (Method::GET, format!("/v2/{repo}/blobs/{layer}")),
        (Method::GET, format!("/v2/{repo}/tags/list")),
        (Method::DELETE, format!("/v2/{repo}/manifests/1")),
        (Method::POST, format!("/v2/{repo}/blobs/uploads/")),
        (Method::PUT, format!("/v2/{repo}/manifests/2")),
    ] {
        let r = b
            .req(method.clone(), &path)
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{method} {path}");
        assert_eq!(error_code(r).await, "NAME_UNKNOWN");
    }
    let r = b.req(Method::GET, "/v2/_catalog").send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["repositories"], json!([]));
    // Nor can he take blobs by mounting them into his own repository.
    let r = b
        .req(
            Method::POST,
            &format!("/v2/{bob}/stolen/blobs/uploads/?mount={layer}&from={repo}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::ACCEPTED,
        "no mount: an ordinary upload instead"
    );
    let r = b
        .req(Method::GET, &format!("/v2/{bob}/stolen/blobs/{layer}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Nor create repositories in Alice's namespace.
    let r = b
        .req(Method::POST, &format!("/v2/{alice}/squat/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(r).await, "DENIED");

    // The docker CLI agrees.
    let config_dir = tempfile::tempdir().unwrap();
    let host = server.addr.to_string();
    docker(
        config_dir.path(),
        &["login", &host, "-u", &bob, "--password-stdin"],
        Some(PASSWORD),
    )
    .await;
    let (ok, out) = docker(
        config_dir.path(),
        &["pull", &format!("{host}/{repo}:1")],
        None,
    )
    .await;
    assert!(!ok, "{out}");
}

/// SIGKILL during a large streamed upload: afterwards no partial blob is visible, and the push
/// can be done again.
#[tokio::test]
async fn a_killed_upload_leaves_no_partial_blob() {
    let dir = tempfile::tempdir().unwrap();
    let server = ProcessServer::spawn(dir.path(), &[]).await;
    let (_, login) = new_user(&server.base, "kill").await;
    let reg = Reg::new(&server.base, &login, PASSWORD);
    let repo = format!("{login}/big");
    let chunk: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 253) as u8).collect();
    let total_chunks = 64;
    let whole: Vec<u8> = chunk.repeat(total_chunks);
    let d = digest(&whole);

    use reqwest::Method;
    let r = reg
        .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    // A slow stream: 8 MiB quickly, then a trickle, so the kill lands mid-upload.
    let slow = chunk.clone();
    let stream = futures_util::stream::unfold(0usize, move |i| {
        let c = slow.clone();
        async move {
            if i >= total_chunks {
                return None;
            }
            if i >= 8 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Some((Ok::<_, std::io::Error>(c), i + 1))
        }
    });
    let patch = tokio::spawn(
        reg.req(Method::PATCH, &location)
            .body(reqwest::Body::wrap_stream(stream))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    server.kill9().await;
    let _ = patch.await;

    let server = ProcessServer::spawn(dir.path(), &[]).await;
    let reg = Reg {
        base: server.base.clone(),
        ..reg
    };
    let r = reg
        .req(Method::HEAD, &format!("/v2/{repo}/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "no partial blob is visible");
    let blob_file = dir
        .path()
        .join("registry/blobs/sha256")
        .join(&d[7..9])
        .join(&d[7..]);
    assert!(!blob_file.exists());
    // Finishing the broken upload with the full digest fails cleanly.
    let r = reg
        .req(Method::PUT, &format!("{location}?digest={d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");

    // The push again, whole.
    let r = reg
        .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let r = reg
        .req(Method::PATCH, &location)
        .body(whole.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = reg
        .req(Method::PUT, &format!("{location}?digest={d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = reg
        .req(Method::GET, &format!("/v2/{repo}/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(digest(&r.bytes().await.unwrap()), d);
    server.kill9().await;
}

#[tokio::test]
async fn built_images_are_in_the_registry_and_load_back_into_the_engine() {
    let server = TestServer::start().await;
    let k = server.kabuto("built").await;
    let image = k
        .image("FROM busybox\nRUN echo built-by-dtaas > /marker\n", &[])
        .await;
    let (_, v) = k.get(&format!("/image/{image}")).await;
    let repo = v[&image]["repository"].as_str().unwrap().to_owned();
    assert_eq!(repo, format!("{}/test-image", k.login));
    let engine_id = image_id(&format!("dtaas/image-{image}:latest")).await;

    let config = tempfile::tempdir().unwrap();
    let host = server.addr.to_string();
    let (ok, out) = docker(
        config.path(),
        &["login", &host, "-u", &k.login, "--password-stdin"],
        Some(PASSWORD),
    )
    .await;
    assert!(ok, "{out}");
    let pulled = format!("{host}/{repo}:latest");
    let (ok, out) = docker(config.path(), &["pull", &pulled], None).await;
    assert!(ok, "{out}");
    assert_eq!(
        image_id(&pulled).await,
        engine_id,
        "the registry holds the built image"
    );
    let (ok, out) = docker(
        config.path(),
        &["pull", &format!("{host}/{repo}:{image}")],
        None,
    )
    .await;
    assert!(ok, "tagged with the image id too: {out}");
    docker(
        config.path(),
        &["rmi", &pulled, &format!("{host}/{repo}:{image}")],
        None,
    )
    .await;

    // Without the engine's copy, the registry loads it back (no network, no pull).
    let (ok, out) = docker(
        config.path(),
        &["rmi", &format!("dtaas/image-{image}:latest")],
        None,
    )
    .await;
    assert!(ok, "{out}");
    assert!(
        image_id(&engine_id).await.is_empty(),
        "the engine no longer has it"
    );
    let tag = server
        .app
        .registry
        .load_into_engine(&repo, "latest")
        .await
        .unwrap();
    assert_eq!(
        image_id(&tag).await,
        engine_id,
        "same image id after loading"
    );
    let out = tokio::process::Command::new("docker")
        .args([
            "run",
            "--rm",
            "--label",
            &format!("dtaas.installation={}", server.installation),
            &tag,
            "cat",
            "/marker",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "built-by-dtaas"
    );
    // Loading again only tags.
    assert_eq!(
        server
            .app
            .registry
            .load_into_engine(&repo, image.as_str())
            .await
            .unwrap(),
        format!("dtaas/registry/{repo}:{image}")
    );
    docker(
        config.path(),
        &["rmi", &tag, &format!("dtaas/registry/{repo}:{image}")],
        None,
    )
    .await;
}

#[tokio::test]
async fn garbage_collection_keeps_what_manifests_reference() {
    let server = TestServer::start().await;
    let (_, login) = server.user("gc").await;
    let reg = Reg::new(&server.base, &login, PASSWORD);
    let repo = format!("{login}/gc");
    let config = reg.blob(&repo, b"{}").await;
    let layer = reg.blob(&repo, b"kept layer").await;
    let orphan = reg.blob(&repo, b"nobody references me").await;
    assert_eq!(
        reg.put_manifest(
            &repo,
            "1",
            OCI_MANIFEST,
            &image_manifest(&config, 2, &layer, 10)
        )
        .await
        .status(),
        StatusCode::CREATED
    );
    use reqwest::Method;
    let r = reg
        .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let stale_upload = r.headers()["location"].to_str().unwrap().to_owned();

    let hour = Duration::from_secs(3600);
    // Within the grace period nothing goes.
    let report = server.collect_garbage(hour, 24 * hour).await;
    assert_eq!(report.blobs_removed, 0);
    server.clock.advance(chrono::Duration::hours(25));
    let report = server.collect_garbage(hour, 24 * hour).await;
    assert_eq!(report.blobs_removed, 1, "{report:?}");
    assert_eq!(report.uploads_removed, 1, "{report:?}");
    let head = |d: String| {
        reg.req(Method::HEAD, &format!("/v2/{repo}/blobs/{d}"))
            .send()
    };
    assert_eq!(head(orphan.clone()).await.unwrap().status(), 404);
    assert_eq!(head(layer.clone()).await.unwrap().status(), 200);
    assert_eq!(head(config.clone()).await.unwrap().status(), 200);
    assert_eq!(
        reg.req(Method::GET, &stale_upload)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let r = reg
        .req(Method::GET, &format!("/v2/{repo}/manifests/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Deleting the manifest frees its blobs at the next collection.
    let d = r.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_owned();
    reg.req(Method::DELETE, &format!("/v2/{repo}/manifests/{d}"))
        .send()
        .await
        .unwrap();
    server.clock.advance(chrono::Duration::hours(2));
    let report = server.collect_garbage(hour, 24 * hour).await;
    assert_eq!(report.blobs_removed, 2, "{report:?}");
    assert_eq!(head(layer).await.unwrap().status(), 404);
}

/// A chunked push by raw HTTP: POST, PATCH with the body, PUT with the digest; the first
/// response that is not a success, or the PUT's.
async fn chunked_push(reg: &Reg, repo: &str, bytes: &[u8]) -> (reqwest::Response, String) {
    use reqwest::Method;
    let r = reg
        .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    if r.status() != StatusCode::ACCEPTED {
        return (r, String::new());
    }
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let r = reg
        .req(Method::PATCH, &location)
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    if r.status() != StatusCode::ACCEPTED {
        return (r, location);
    }
    let r = reg
        .req(Method::PUT, &format!("{location}?digest={}", digest(bytes)))
        .send()
        .await
        .unwrap();
    (r, location)
}

/// The spec's error: (code, message).
async fn spec_error(r: reqwest::Response) -> (String, String) {
    let v: Value = r.json().await.unwrap();
    (
        v["errors"][0]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        v["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

fn bytes_of(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(31).wrapping_add(seed) % 251) as u8)
        .collect()
}

/// Issue 9: registry uploads had no quota. Over `registry.quota_mb` a push is DENIED with a
/// message saying so and leaves nothing; under it a push works; every repository of an owner
/// counts against the same quota.
#[tokio::test]
async fn pushes_beyond_the_owners_quota_are_denied_and_leave_nothing() {
    let server = TestServer::start_with(|c| c.registry.quota_mb = 1).await;
    let (alice_web, alice) = server.user("quota").await;
    let reg = Reg::new(&server.base, &alice, PASSWORD);
    let (one, two) = (format!("{alice}/one"), format!("{alice}/two"));
    use reqwest::Method;
    let uploads_dir = server.data_dir().join("registry/uploads");
    let no_uploads_left = || std::fs::read_dir(&uploads_dir).unwrap().count() == 0;
    let denied = |(code, message): &(String, String)| {
        code == "DENIED"
            && message.contains("of a 1 MiB quota (registry.quota_mb)")
            && message.starts_with("the repository's owner has used")
    };

    // The attack: 2 MiB, chunked.
    let big = bytes_of(2 << 20, 1);
    let (r, location) = chunked_push(&reg, &one, &big).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let e = spec_error(r).await;
    assert!(denied(&e), "{e:?}");
    let r = reg
        .req(Method::HEAD, &format!("/v2/{one}/blobs/{}", digest(&big)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "no blob");
    // The partial upload is gone, session and file.
    let r = reg.req(Method::GET, &location).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
    assert!(no_uploads_left());

    // In one request (`?digest=`), and as the PUT's body: the same.
    let r = reg
        .req(
            Method::POST,
            &format!("/v2/{one}/blobs/uploads/?digest={}", digest(&big)),
        )
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(denied(&spec_error(r).await));
    let r = reg
        .req(Method::POST, &format!("/v2/{one}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let r = reg
        .req(Method::PUT, &format!("{location}?digest={}", digest(&big)))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(denied(&spec_error(r).await));
    assert!(no_uploads_left());

    // Under the quota: 600 KiB work.
    let first = bytes_of(600 << 10, 2);
    let (r, _) = chunked_push(&reg, &one, &first).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // Another repository of hers counts against the same quota: 600 KiB more are too many.
    let second = bytes_of(600 << 10, 3);
    let (r, _) = chunked_push(&reg, &two, &second).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (code, message) = spec_error(r).await;
    assert_eq!(code, "DENIED");
    assert!(message.contains("used 0.6 MiB"), "{message}");
    // Mounting a blob she holds already costs nothing.
    let r = reg
        .req(
            Method::POST,
            &format!(
                "/v2/{two}/blobs/uploads/?mount={}&from={one}",
                digest(&first)
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // What is left (424 KiB) fits exactly; then not even a new upload session starts.
    let rest = bytes_of(424 << 10, 4);
    let (r, _) = chunked_push(&reg, &two, &rest).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = reg
        .req(Method::POST, &format!("/v2/{two}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (code, message) = spec_error(r).await;
    assert_eq!(code, "DENIED");
    assert!(message.contains("used 1 MiB of a 1 MiB quota"), "{message}");
    assert!(no_uploads_left());

    // Another user has a quota of their own.
    let (_, bob) = server.user("quota-b").await;
    let bob_reg = Reg::new(&server.base, &bob, PASSWORD);
    let (r, _) = chunked_push(&bob_reg, &format!("{bob}/one"), &second).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // A mount of a blob bob does not hold costs its size: alice lets him read hers, but the
    // 600 KiB do not fit beside his own.
    let repo_id = dtaas::domains::registry::meta::repo(&server.app.store, &one)
        .unwrap()
        .unwrap()
        .id;
    let r = alice_web
        .post(server.url(&format!("/v1/objects/{repo_id}/access")))
        .json(&json!({"principal": bob, "capabilities": ["READ"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let mount = |repo: String, blob: &[u8]| {
        bob_reg
            .req(
                Method::POST,
                &format!(
                    "/v2/{repo}/blobs/uploads/?mount={}&from={one}",
                    digest(blob)
                ),
            )
            .send()
    };
    let r = mount(format!("{bob}/one"), &first).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (code, message) = spec_error(r).await;
    assert_eq!(code, "DENIED");
    assert!(message.contains("mounting 0.6 MiB more"), "{message}");
    // A blob he holds already mounts for free (from his own repository).
    let r = bob_reg
        .req(
            Method::POST,
            &format!(
                "/v2/{bob}/two/blobs/uploads/?mount={}&from={bob}/one",
                digest(&second)
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}
