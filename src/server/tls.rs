//! TLS on the main listener (rustls): the certificate from `tls.cert`/`tls.key`, or one this
//! server makes for itself, signed by a certificate authority it also makes, both kept in
//! `<data>/tls/`. Clients trust the authority once (`<data>/tls/ca.crt`: curl's `--cacert`,
//! the docker engine's `/etc/docker/certs.d/HOST:PORT/ca.crt`); the server certificate can then
//! be made again (new names, nearing its end) without anyone trusting anything new.
//!
//! The certificate in use is swapped on SIGHUP ([`TlsState::reload`]): handshakes after the
//! swap get the new one, connections already open keep theirs. Handshakes run in their own
//! tasks, so a slow client never holds up the accept loop.

use crate::core::config::Config;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Where a generated certificate and its authority live, under the data directory.
pub const TLS_DIR: &str = "tls";
/// The authority clients trust.
pub const CA_FILE: &str = "ca.crt";
const CA_KEY_FILE: &str = "ca.key";
const CERT_FILE: &str = "server.crt";
const KEY_FILE: &str = "server.key";
/// What the generated certificate was made for: its names and when it ends.
const CERT_INFO_FILE: &str = "server.json";

/// How long a generated authority and certificate are good for, and how close to its end a
/// certificate is made again at start or reload.
const CA_DAYS: i64 = 3650;
const CERT_DAYS: i64 = 397;
const RENEW_DAYS: i64 = 30;
/// How long a client may take over its handshake, and how many may be under way at once.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_HANDSHAKES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS: cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("TLS: cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Invalid(String),
}

/// The certificate in use, swapped on reload.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|k| k.clone())
    }
}

/// What a TLS listener needs: the rustls configuration (whose certificate can be swapped) and
/// how to load the certificate again.
pub struct TlsState {
    current: Arc<Current>,
    acceptor: TlsAcceptor,
    source: Source,
    provider: Arc<CryptoProvider>,
}

/// Where the certificate comes from.
#[derive(Debug, Clone)]
enum Source {
    Files { cert: PathBuf, key: PathBuf },
    Generated { dir: PathBuf, names: Vec<String> },
}

/// What was loaded: the SHA-256 fingerprints to print.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub cert_fingerprint: String,
    /// The generated authority's, when the certificate is generated.
    pub ca_fingerprint: Option<String>,
    pub ca_file: Option<PathBuf>,
}

impl TlsState {
    /// The TLS setup of `config` for a server whose data directory is `data_dir` and whose
    /// main listener is at `listen`.
    pub fn new(
        config: &Config,
        data_dir: &Path,
        listen: SocketAddr,
    ) -> Result<(TlsState, Loaded), TlsError> {
        let source = if config.tls.cert.is_empty() {
            Source::Generated {
                dir: data_dir.join(TLS_DIR),
                names: certificate_names(config, listen),
            }
        } else {
            Source::Files {
                cert: PathBuf::from(&config.tls.cert),
                key: PathBuf::from(&config.tls.key),
            }
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (key, loaded) = load(&source, &provider)?;
        let current = Arc::new(Current(RwLock::new(Arc::new(key))));
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Invalid(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        let state = TlsState {
            current,
            acceptor: TlsAcceptor::from(Arc::new(server)),
            source,
            provider,
        };
        Ok((state, loaded))
    }

    /// Loads the certificate again (the files, or a generated one made again when its names
    /// changed or its end is near) and uses it for new handshakes. On failure the one in use
    /// stays.
    pub fn reload(&self) -> Result<Loaded, TlsError> {
        let (key, loaded) = load(&self.source, &self.provider)?;
        if let Ok(mut current) = self.current.0.write() {
            *current = Arc::new(key);
        }
        Ok(loaded)
    }

    /// Accepts TLS connections on `listener`: TCP connections are accepted in a task of their
    /// own and their handshakes run side by side; the listener hands out finished ones.
    pub fn listener(self: &Arc<Self>, listener: TcpListener) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let state = self.clone();
        tokio::spawn(async move {
            let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = tx.closed() => return,
                };
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!("accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, "too many TLS handshakes under way; closing");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let acceptor = state.acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let done =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                    drop(permit);
                    match done {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { rx, local })
    }
}

/// Finished TLS connections, for `axum::serve`.
pub struct TlsListener {
    rx: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// The names a generated certificate holds: `tls.hostnames`, the machine's host name,
/// `localhost`, the loopback addresses, the listener's address when it is a specific one, and
/// `*.<apps domain>` for the app proxy's host form.
pub fn certificate_names(config: &Config, listen: SocketAddr) -> Vec<String> {
    let mut names: Vec<String> = config.tls.hostnames.clone();
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        names.push(host.trim().to_owned());
    }
    names.extend([
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ]);
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    let apps = config.servables.apps_domain.trim_matches('.');
    if !apps.is_empty() {
        names.push(format!("*.{apps}"));
    }
    let mut out: Vec<String> = Vec::new();
    for n in names {
        let n = n.trim().to_ascii_lowercase();
        if !n.is_empty() && !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

fn load(source: &Source, provider: &CryptoProvider) -> Result<(CertifiedKey, Loaded), TlsError> {
    let (chain, key, ca) = match source {
        Source::Files { cert, key } => {
            let chain = read_chain(cert)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Read {
                path: key.clone(),
                message: format!("no private key in PEM form ({e})"),
            })?;
            (chain, key, None)
        }
        Source::Generated { dir, names } => {
            ensure_generated(dir, names, chrono::Utc::now())?;
            let key_path = dir.join(KEY_FILE);
            let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| TlsError::Read {
                path: key_path,
                message: e.to_string(),
            })?;
            (
                read_chain(&dir.join(CERT_FILE))?,
                key,
                Some(dir.join(CA_FILE)),
            )
        }
    };
    let cert_fingerprint = fingerprint(&chain[0]);
    let ca_fingerprint = match &ca {
        Some(path) => Some(fingerprint(&read_chain(path)?[0])),
        None => None,
    };
    let key = CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| TlsError::Invalid(format!("the key does not fit the certificate: {e}")))?;
    Ok((
        key,
        Loaded {
            cert_fingerprint,
            ca_fingerprint,
            ca_file: ca,
        },
    ))
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Read {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Read {
            path: path.to_owned(),
            message: "no certificate in PEM form".into(),
        });
    }
    Ok(chain)
}

/// `AB:CD:...`: the SHA-256 of a certificate, as browsers and openssl show it.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = Sha256::digest(cert.as_ref());
    digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct CertInfo {
    names: Vec<String>,
    /// Unix seconds.
    not_after: i64,
}

/// Makes the authority when there is none, and the server certificate when there is none, its
/// names differ from `names`, or it ends within [`RENEW_DAYS`]. Key files are 0600.
fn ensure_generated(
    dir: &Path,
    names: &[String],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), TlsError> {
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let invalid = |e: rcgen::Error| TlsError::Invalid(e.to_string());
    let ca_key_path = dir.join(CA_KEY_FILE);
    let ca_key = if ca_key_path.exists() {
        KeyPair::from_pem(&read_text(&ca_key_path)?).map_err(invalid)?
    } else {
        let key = KeyPair::generate().map_err(invalid)?;
        let cert = ca_params(now)?.self_signed(&key).map_err(invalid)?;
        write_file(&dir.join(CA_FILE), cert.pem().as_bytes(), 0o644)?;
        write_file(&ca_key_path, key.serialize_pem().as_bytes(), 0o600)?;
        // A new authority: whatever the old one signed is of no use.
        let _ = std::fs::remove_file(dir.join(CERT_INFO_FILE));
        key
    };
    let info: Option<CertInfo> = std::fs::read(dir.join(CERT_INFO_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let fresh = info
        .is_some_and(|i| i.names == names && i.not_after - now.timestamp() > RENEW_DAYS * 86400)
        && dir.join(CERT_FILE).exists()
        && dir.join(KEY_FILE).exists();
    if fresh {
        return Ok(());
    }
    let issuer = Issuer::new(ca_params(now)?, &ca_key);
    let key = KeyPair::generate().map_err(invalid)?;
    let mut params = CertificateParams::new(names.to_vec()).map_err(invalid)?;
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_default(),
    );
    params.is_ca = IsCa::NoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let not_after = now + chrono::Duration::days(CERT_DAYS);
    params.not_before = day(now - chrono::Duration::days(1))?;
    params.not_after = day(not_after)?;
    let cert = params.signed_by(&key, &issuer).map_err(invalid)?;
    let ca_pem = read_text(&dir.join(CA_FILE))?;
    // The chain served: the certificate, then the authority.
    write_file(
        &dir.join(CERT_FILE),
        format!("{}{}", cert.pem(), ca_pem).as_bytes(),
        0o644,
    )?;
    write_file(&dir.join(KEY_FILE), key.serialize_pem().as_bytes(), 0o600)?;
    let info = CertInfo {
        names: names.to_vec(),
        not_after: not_after.timestamp(),
    };
    let json = serde_json::to_vec(&info).map_err(|e| TlsError::Invalid(e.to_string()))?;
    write_file(&dir.join(CERT_INFO_FILE), &json, 0o644)?;
    tracing::info!(names = ?names, "made a new TLS certificate");
    Ok(())
}

/// The authority's parameters: the same every time (the issuer of a new certificate must name
/// the authority exactly as the authority names itself).
fn ca_params(now: chrono::DateTime<chrono::Utc>) -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "dtaas");
    dn.push(DnType::CommonName, "dtaas local certificate authority");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = day(now - chrono::Duration::days(1))?;
    params.not_after = day(now + chrono::Duration::days(CA_DAYS))?;
    Ok(params)
}

/// The start of `t`'s day (UTC), as rcgen takes dates.
fn day(t: chrono::DateTime<chrono::Utc>) -> Result<time::OffsetDateTime, TlsError> {
    use chrono::Datelike;
    let month = u8::try_from(t.month()).map_err(|e| TlsError::Invalid(e.to_string()))?;
    let date = u8::try_from(t.day()).map_err(|e| TlsError::Invalid(e.to_string()))?;
    Ok(rcgen::date_time_ymd(t.year(), month, date))
}

fn read_text(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|e| TlsError::Read {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Writes a file whole (a temporary file renamed over it), with `mode`.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|source| TlsError::Write {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_generated_certificate_is_made_once_and_again_only_when_it_must() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        let now = chrono::Utc::now();
        let wanted = names(&["host.example", "localhost", "127.0.0.1", "*.apps.example"]);
        ensure_generated(&tls, &wanted, now).unwrap();
        assert_eq!(mode(&tls.join(CA_KEY_FILE)), 0o600);
        assert_eq!(mode(&tls.join(KEY_FILE)), 0o600);
        let ca = std::fs::read(tls.join(CA_FILE)).unwrap();
        let cert = std::fs::read(tls.join(CERT_FILE)).unwrap();
        // The chain is the certificate, then the authority.
        let chain = read_chain(&tls.join(CERT_FILE)).unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[1], read_chain(&tls.join(CA_FILE)).unwrap()[0]);

        // Same names, far from its end: nothing changes.
        ensure_generated(&tls, &wanted, now + chrono::Duration::days(100)).unwrap();
        assert_eq!(std::fs::read(tls.join(CERT_FILE)).unwrap(), cert);

        // Other names: a new certificate from the same authority.
        let more = names(&["host.example", "other.example"]);
        ensure_generated(&tls, &more, now).unwrap();
        let renamed = std::fs::read(tls.join(CERT_FILE)).unwrap();
        assert_ne!(renamed, cert);
        assert_eq!(std::fs::read(tls.join(CA_FILE)).unwrap(), ca);

        // Near its end: made again, still by the same authority.
        ensure_generated(&tls, &more, now + chrono::Duration::days(CERT_DAYS - 10)).unwrap();
        assert_ne!(std::fs::read(tls.join(CERT_FILE)).unwrap(), renamed);
        assert_eq!(std::fs::read(tls.join(CA_FILE)).unwrap(), ca);
    }

    #[test]
    fn the_certificate_and_key_load_and_fingerprints_are_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let source = Source::Generated {
            dir: dir.path().join("tls"),
            names: names(&["localhost"]),
        };
        let provider = rustls::crypto::ring::default_provider();
        let (key, loaded) = load(&source, &provider).unwrap();
        assert_eq!(key.cert.len(), 2);
        assert_eq!(loaded.cert_fingerprint.len(), 32 * 3 - 1);
        assert!(loaded.ca_fingerprint.is_some());
        // A key that belongs to another certificate is refused.
        let other = tempfile::tempdir().unwrap();
        ensure_generated(other.path(), &names(&["localhost"]), chrono::Utc::now()).unwrap();
        let mixed = Source::Files {
            cert: dir.path().join("tls").join(CERT_FILE),
            key: other.path().join(KEY_FILE),
        };
        assert!(matches!(load(&mixed, &provider), Err(TlsError::Invalid(_))));
        let missing = Source::Files {
            cert: dir.path().join("nothing.pem"),
            key: dir.path().join("nothing.key"),
        };
        assert!(matches!(
            load(&missing, &provider),
            Err(TlsError::Read { .. })
        ));
    }

    #[test]
    fn names_hold_the_listener_loopback_and_the_apps_domain() {
        let mut config = Config::default();
        config.tls.hostnames = names(&["Data.Example", "data.example"]);
        config.servables.apps_domain = "apps.example".into();
        let listen: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        let got = certificate_names(&config, listen);
        assert_eq!(got[0], "data.example");
        assert_eq!(got.iter().filter(|n| *n == "data.example").count(), 1);
        for n in [
            "localhost",
            "127.0.0.1",
            "::1",
            "10.1.2.3",
            "*.apps.example",
        ] {
            assert!(got.iter().any(|g| g == n), "{n} missing from {got:?}");
        }
        let any: SocketAddr = "0.0.0.0:5000".parse().unwrap();
        assert!(
            !certificate_names(&config, any)
                .iter()
                .any(|n| n == "0.0.0.0")
        );
    }
}
