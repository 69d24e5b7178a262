//! TLS on the main listener: a generated certificate trusted through the server's own
//! certificate authority (curl, reqwest, the docker engine), HSTS and Secure cookies, the
//! redirect listener, the app proxy's host form, and a certificate swapped on SIGHUP while a
//! long download goes on.

use crate::harness::*;
use dtaas::core::config::TlsMode;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Waits until the server has written its authority, and returns its path.
async fn ca_of(dir: &Path) -> PathBuf {
    let ca = dir.join("tls").join("ca.crt");
    for _ in 0..200 {
        if ca.exists() {
            return ca;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no {}", ca.display());
}

/// curl with `args`: (exit code, stdout + stderr).
async fn curl(args: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "60"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("curl runs");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A new confirmed user over HTTPS, registered with curl trusting `ca`; returns its login and
/// a cookie jar holding its session.
async fn user_over_tls(https: &str, ca: &str, jar: &Path, prefix: &str) -> String {
    let login = unique(prefix);
    let jar = jar.to_string_lossy().to_string();
    let (code, out) = curl(&[
        "--cacert",
        ca,
        "-X",
        "POST",
        "--data-urlencode",
        &format!("login={login}"),
        "--data-urlencode",
        &format!("password={PASSWORD}"),
        "--data-urlencode",
        &format!("email={login}@example.org"),
        &format!("{https}/register"),
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    let token = serde_json::from_str::<serde_json::Value>(&out).expect("JSON")["token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let (code, out) = curl(&[
        "--cacert",
        ca,
        "--fail",
        &format!("{https}/register/confirm/{login}/{token}"),
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = curl(&[
        "--cacert",
        ca,
        "--fail",
        "-c",
        &jar,
        "--data-urlencode",
        &format!("login={login}"),
        "--data-urlencode",
        &format!("password={PASSWORD}"),
        &format!("{https}/login"),
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    login
}

#[tokio::test]
async fn a_generated_certificate_is_trusted_through_the_servers_authority() {
    let redirect_port = free_port();
    let server = TestServer::start_with(|c| {
        c.tls.mode = TlsMode::On;
        c.tls.redirect_listen = format!("127.0.0.1:{redirect_port}");
        c.servables.apps_domain = "apps.test".into();
    })
    .await;
    let ca = ca_of(&server.data_dir()).await;
    let ca_arg = ca.to_string_lossy().to_string();
    let https = format!("https://{}", server.addr);

    // curl trusts it with the authority, and not without.
    let (code, out) = curl(&["--cacert", &ca_arg, &format!("{https}/healthz")]).await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = curl(&[&format!("{https}/healthz")]).await;
    assert_eq!(code, 60, "an unknown authority is refused by curl: {out}");
    // Plain HTTP on the TLS port gets no answer from the application.
    let (code, _) = curl(&[&format!("http://{}/healthz", server.addr)]).await;
    assert_ne!(code, 0);

    // HSTS on every answer, and a Secure session cookie.
    let (code, head) = curl(&["--cacert", &ca_arg, "-I", &format!("{https}/healthz")]).await;
    assert_eq!(code, 0, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("strict-transport-security: max-age=31536000"),
        "{head}"
    );
    let jars = tempfile::tempdir().unwrap();
    let jar = jars.path().join("cookies");
    user_over_tls(&https, &ca_arg, &jar, "tls").await;
    // curl keeps the cookie's attributes in its jar: the Secure flag is its fourth field.
    let cookies = std::fs::read_to_string(&jar).unwrap();
    let session = cookies
        .lines()
        .find(|l| l.contains("dtaas_session"))
        .unwrap_or_else(|| panic!("no session cookie in {cookies}"));
    let fields: Vec<&str> = session.split('\t').collect();
    assert_eq!(fields[3], "TRUE", "the session cookie is Secure: {session}");
    assert!(
        fields[0].starts_with("#HttpOnly_"),
        "and HttpOnly: {session}"
    );
    let jar_arg = jar.to_string_lossy().to_string();
    let (code, out) = curl(&[
        "--cacert",
        &ca_arg,
        "--fail",
        "-b",
        &jar_arg,
        &format!("{https}/"),
    ])
    .await;
    assert_eq!(code, 0, "the session works over TLS: {out}");

    // The redirect listener sends everything to HTTPS, path and query kept.
    let (code, head) = curl(&[
        "-i",
        &format!("http://127.0.0.1:{redirect_port}/v1/doc?x=1"),
    ])
    .await;
    assert_eq!(code, 0, "{head}");
    assert!(head.starts_with("HTTP/1.1 308"), "{head}");
    assert!(
        head.contains(&format!(
            "location: https://127.0.0.1:{}/v1/doc?x=1",
            server.addr.port()
        )),
        "{head}"
    );

    // The app proxy's host form is covered by the certificate (`*.<apps domain>`): the
    // handshake succeeds and the proxy answers for the unknown app.
    let port = server.addr.port();
    let host = "0190b1f3c4d27a8e9b1c2d3e4f506172.apps.test";
    let (code, out) = curl(&[
        "--cacert",
        &ca_arg,
        "--resolve",
        &format!("{host}:{port}:127.0.0.1"),
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("https://{host}:{port}/"),
    ])
    .await;
    assert_eq!((code, out.as_str()), (0, "404"));
}

/// A certificate authority and a certificate for 127.0.0.1 signed by it, as PEM files.
fn issue(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("test authority {name}"));
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, &ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let paths = (
        dir.join(format!("{name}-ca.pem")),
        dir.join(format!("{name}-cert.pem")),
        dir.join(format!("{name}-key.pem")),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

#[tokio::test]
async fn sighup_swaps_the_certificate_while_a_long_download_goes_on() {
    let data = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let (ca_a, cert_a, key_a) = issue(certs.path(), "a");
    let (ca_b, cert_b, key_b) = issue(certs.path(), "b");
    // The server reads these two paths; a reload reads them again.
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    std::fs::copy(&cert_a, &cert).unwrap();
    std::fs::copy(&key_a, &key).unwrap();
    let port = free_port();
    let mut child = dtaas_command()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data.path())
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env("DTAAS_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn dtaas serve");
    let https = format!("https://127.0.0.1:{port}");
    let a = ca_a.to_string_lossy().to_string();
    let b = ca_b.to_string_lossy().to_string();
    let mut up = false;
    for _ in 0..200 {
        if curl(&["--cacert", &a, &format!("{https}/healthz")]).await.0 == 0 {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the server did not answer over TLS");

    // A user with a 24 MiB blob in the registry: a download that takes seconds at 4 MiB/s.
    let login = user_over_tls(&https, &a, &certs.path().join("jar"), "reload").await;
    let blob: Vec<u8> = (0..24 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let digest = format!("sha256:{}", sha256_hex(&blob));
    let blob_file = certs.path().join("blob");
    std::fs::write(&blob_file, &blob).unwrap();
    let (code, out) = curl(&[
        "--cacert",
        &a,
        "--fail",
        "-u",
        &format!("{login}:{PASSWORD}"),
        "-H",
        "content-type: application/octet-stream",
        "--data-binary",
        &format!("@{}", blob_file.display()),
        &format!("{https}/v2/{login}/big/blobs/uploads/?digest={digest}"),
    ])
    .await;
    assert_eq!(code, 0, "monolithic upload: {out}");
    let out_file = certs.path().join("downloaded");
    let download = tokio::process::Command::new("curl")
        .args(["-sS", "--fail", "--limit-rate", "4M", "--cacert", &a])
        .args(["-u", &format!("{login}:{PASSWORD}")])
        .arg("-o")
        .arg(&out_file)
        .arg(format!("{https}/v2/{login}/big/blobs/{digest}"))
        .stdin(Stdio::null())
        .spawn()
        .expect("curl");

    // Mid-download: new files, SIGHUP.
    tokio::time::sleep(Duration::from_secs(1)).await;
    std::fs::copy(&cert_b, &cert).unwrap();
    std::fs::copy(&key_b, &key).unwrap();
    let pid = child.id().expect("pid").to_string();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let mut swapped = false;
    for _ in 0..100 {
        if curl(&["--cacert", &b, &format!("{https}/healthz")]).await.0 == 0 {
            swapped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(swapped, "new handshakes do not get the new certificate");
    let (code, out) = curl(&["--cacert", &a, &format!("{https}/healthz")]).await;
    assert_eq!(code, 60, "the old authority still verifies: {out}");

    // The download begun before the swap finishes, whole.
    let done = download.wait_with_output().await.expect("curl ends");
    assert!(done.status.success(), "the long download broke");
    let got = std::fs::read(&out_file).unwrap();
    assert_eq!(got.len(), blob.len());
    assert_eq!(sha256_hex(&got), sha256_hex(&blob));
    // A broken reload (a key of another certificate) leaves the one in use.
    std::fs::copy(&key_a, &key).unwrap();
    std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, out) = curl(&["--cacert", &b, &format!("{https}/healthz")]).await;
    assert_eq!(code, 0, "{out}");
    let _ = child.kill().await;
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The docker engine trusts the appliance's authority from
/// `/etc/docker/certs.d/HOST:PORT/ca.crt` (what README says to do); removed again after.
struct DockerCa(PathBuf);

impl Drop for DockerCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn docker_logs_in_pushes_and_pulls_over_tls() {
    let server = TestServer::start_with(|c| c.tls.mode = TlsMode::On).await;
    let ca = ca_of(&server.data_dir()).await;
    let addr = server.addr.to_string();
    let certs_d = PathBuf::from("/etc/docker/certs.d").join(&addr);
    std::fs::create_dir_all(&certs_d).unwrap_or_else(|e| {
        panic!(
            "cannot write {} ({e}): run the tests as root (tests/run.sh does in CI)",
            certs_d.display()
        )
    });
    let _installed = DockerCa(certs_d.clone());
    std::fs::copy(&ca, certs_d.join("ca.crt")).unwrap();

    let https = format!("https://{addr}");
    let ca_arg = ca.to_string_lossy().to_string();
    let jars = tempfile::tempdir().unwrap();
    let login = user_over_tls(&https, &ca_arg, &jars.path().join("jar"), "tlsdocker").await;
    // push_image_to logs in, tags the base image, pushes, and removes the local tag.
    push_image_to(&addr, &login, None, "over-tls", "v1").await;
    let config = tempfile::tempdir().unwrap();
    let (ok, out) = docker_cli(
        config.path(),
        &["login", "-u", &login, "--password-stdin", &addr],
        Some(PASSWORD),
    )
    .await;
    assert!(ok, "{out}");
    let image = format!("{addr}/over-tls:v1");
    let (ok, out) = docker_cli(config.path(), &["pull", &image], None).await;
    assert!(ok, "docker pull over TLS: {out}");
    let _ = docker_cli(config.path(), &["rmi", &image], None).await;
    // The registry saw it over TLS: the manifest is there for a TLS client.
    let (code, out) = curl(&[
        "--cacert",
        &ca_arg,
        "--fail",
        "-o",
        "/dev/null",
        "-u",
        &format!("{login}:{PASSWORD}"),
        "-H",
        "accept: application/vnd.docker.distribution.manifest.v2+json",
        &format!("{https}/v2/over-tls/manifests/v1"),
    ])
    .await;
    assert_eq!(code, 0, "{out}");
}
