//! Layers for `dtaas push`: the engine's export of an image read as it streams in, each layer
//! gzipped and hashed on the way to the registry, and what is remembered between runs.
//!
//! The export (`GET /images/{name}/get`) is a `docker save` archive: Docker 20.10 writes
//! `<id>/layer.tar` per layer and `<config hex>.json`, newer engines an OCI layout whose blobs
//! are named by their digest (`blobs/sha256/<diff id hex>` for a layer). A layer goes up while
//! it is read: [`read_export`] runs on a blocking thread, compresses (gzip, fast) into pieces
//! sent to the upload, and reports the digests once the layer ends.
//!
//! Which blobs the registry already has can only be asked (HEAD) by digest, and a layer's
//! compressed digest is known only once it is compressed. So the [`LayerCache`] remembers, per
//! layer (by diff id, the digest of the uncompressed tar), the blob made from it and in which
//! repository of which appliance it went up: a layer the target repository has (or can mount
//! from that one) is not compressed or sent again. When every blob is there, the image is not
//! even exported. In the legacy layout, whose file names do not give the diff id, a layer the
//! size of one known to be there is first copied to a temporary file while it is hashed, and
//! only compressed and sent when it is not that one.

use super::progress::{Bars, short};
use crate::core::fs::RemoveFileOnDrop;
use crate::core::id::Id;
use crate::core::secrets::hex;
use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// The most layers remembered (the least recently used go first).
const MAX_LAYERS: usize = 4096;
/// The most blobs remembered per appliance, and appliances.
const MAX_SOURCES: usize = 8192;
const MAX_REGISTRIES: usize = 64;
/// The most entries of an export read.
const MAX_ENTRIES: usize = 100_000;
/// The largest image config read.
const MAX_CONFIG: u64 = 16 << 20;
/// The size of the compressed pieces sent to the upload.
const PIECE: usize = 512 << 10;
/// What the reading thread says when the upload side went away (its error is the one to show).
pub const STOPPED: &str = "the upload stopped";

/// A blob made from a layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedLayer {
    /// The size of the uncompressed tar.
    pub tar_size: u64,
    /// The compressed blob's digest and size.
    pub digest: String,
    pub size: u64,
    /// When it was last used (Unix seconds).
    #[serde(default)]
    pub used: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    /// Diff id -> the blob made from the layer.
    #[serde(default)]
    layers: BTreeMap<String, CachedLayer>,
    /// Appliance URL -> blob digest -> the repository it went up to.
    #[serde(default)]
    sources: BTreeMap<String, BTreeMap<String, String>>,
}

/// What `push` remembers between runs: `$XDG_CACHE_HOME/dtaas/layers.json` (else
/// `~/.cache/dtaas/layers.json`). A missing or unreadable file is an empty cache; one that
/// cannot be written is no error (the next push compresses again).
#[derive(Debug, Default)]
pub struct LayerCache {
    path: Option<PathBuf>,
    data: CacheFile,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Where the cache lives, from `XDG_CACHE_HOME` or `HOME`.
pub fn cache_path(xdg_cache_home: Option<&str>, home: Option<&str>) -> Option<PathBuf> {
    match (xdg_cache_home, home) {
        (Some(x), _) if x.starts_with('/') => Some(Path::new(x).join("dtaas").join("layers.json")),
        (_, Some(h)) if !h.is_empty() => Some(
            Path::new(h)
                .join(".cache")
                .join("dtaas")
                .join("layers.json"),
        ),
        _ => None,
    }
}

impl LayerCache {
    /// The user's cache.
    pub fn load() -> LayerCache {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        LayerCache::at(cache_path(
            var("XDG_CACHE_HOME").as_deref(),
            var("HOME").as_deref(),
        ))
    }

    /// The cache in `path` (none: in memory only).
    pub fn at(path: Option<PathBuf>) -> LayerCache {
        let data = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        LayerCache { path, data }
    }

    pub fn layer(&self, diff_id: &str) -> Option<&CachedLayer> {
        self.data.layers.get(diff_id)
    }

    /// The repository of `registry` blob `digest` went up to, if remembered.
    pub fn source(&self, registry: &str, digest: &str) -> Option<&str> {
        self.data
            .sources
            .get(registry)
            .and_then(|s| s.get(digest))
            .map(String::as_str)
    }

    pub fn remember_layer(&mut self, diff_id: &str, mut layer: CachedLayer) {
        layer.used = now();
        self.data.layers.insert(diff_id.to_owned(), layer);
        while self.data.layers.len() > MAX_LAYERS {
            let oldest = self
                .data
                .layers
                .iter()
                .min_by_key(|(_, l)| l.used)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.data.layers.remove(&k),
                None => break,
            };
        }
    }

    pub fn remember_source(&mut self, registry: &str, digest: &str, repository: &str) {
        if !self.data.sources.contains_key(registry) && self.data.sources.len() >= MAX_REGISTRIES {
            self.data.sources.clear();
        }
        let sources = self.data.sources.entry(registry.to_owned()).or_default();
        if sources.len() >= MAX_SOURCES && !sources.contains_key(digest) {
            sources.clear();
        }
        sources.insert(digest.to_owned(), repository.to_owned());
    }

    /// Writes the cache (mode 0600, replaced atomically), quietly giving up on failure.
    pub fn save(&self) {
        use std::os::unix::fs::DirBuilderExt;
        let Some(path) = &self.path else {
            return;
        };
        if let Some(dir) = path.parent() {
            let _ = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir);
        }
        if let Ok(bytes) = serde_json::to_vec(&self.data) {
            let _ = super::profile::write_atomically(path, &bytes, 0o600);
        }
    }
}

/// What [`read_export`] is to do with an image.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The image's config digest (its id).
    pub config: String,
    /// Its layers' diff ids, in order.
    pub diff_ids: Vec<String>,
    /// Layers the target repository holds already (diff id -> blob).
    pub present: HashMap<String, CachedLayer>,
    /// Whether the config must be read (the repository lacks it).
    pub need_config: bool,
    /// Where layers are copied while they are checked.
    pub spool_dir: PathBuf,
}

/// What the reading thread tells the upload side, in order.
pub enum Event {
    /// A layer starts going up: its compressed pieces come on `data` (an `Err` piece when the
    /// export broke), then [`Event::Done`].
    Layer {
        bar: ProgressBar,
        data: mpsc::Receiver<Result<Bytes, String>>,
    },
    /// The layer that went up last is complete.
    Done(Made),
    /// A layer the repository holds already was found (and not sent).
    Present { diff_id: String, bar: ProgressBar },
    /// The image's config, byte for byte.
    Config(Vec<u8>),
}

/// A layer compressed into a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    pub diff_id: String,
    pub layer: CachedLayer,
}

/// Reads an export as blocking reads on a channel that the async side feeds.
pub struct ChannelReader {
    rx: mpsc::Receiver<Result<Bytes, String>>,
    current: Bytes,
}

impl ChannelReader {
    pub fn new(rx: mpsc::Receiver<Result<Bytes, String>>) -> ChannelReader {
        ChannelReader {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(bytes)) => self.current = bytes,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// The compressed side: hashes and counts what gzip writes and sends it in pieces.
struct Sink {
    tx: mpsc::Sender<Result<Bytes, String>>,
    buf: Vec<u8>,
    hasher: Sha256,
    size: u64,
}

impl Sink {
    fn send_piece(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE));
        self.tx
            .blocking_send(Ok(Bytes::from(piece)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, STOPPED))
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hasher.update(buf);
        self.size += buf.len() as u64;
        self.buf.extend_from_slice(buf);
        if self.buf.len() >= PIECE {
            self.send_piece()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Compresses `input` (a layer of `tar_size` bytes) into pieces on `tx`, hashing both sides.
/// A read error is also sent on `tx`, so that the upload stops with it.
pub fn compress(
    mut input: impl Read,
    tar_size: u64,
    tx: &mpsc::Sender<Result<Bytes, String>>,
    bar: &ProgressBar,
) -> Result<Made, String> {
    let sink = Sink {
        tx: tx.clone(),
        buf: Vec::with_capacity(PIECE),
        hasher: Sha256::new(),
        size: 0,
    };
    let mut gz = GzEncoder::new(sink, Compression::fast());
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let write_error = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            STOPPED.to_owned()
        } else {
            format!("compressing a layer: {e}")
        }
    };
    // Bounded by the layer's size: every round reads at least a byte.
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let message = format!("reading the image from the engine: {e}");
                let _ = tx.blocking_send(Err(message.clone()));
                return Err(message);
            }
        };
        hasher.update(&buf[..n]);
        gz.write_all(&buf[..n]).map_err(write_error)?;
        total += n as u64;
        bar.inc(n as u64);
    }
    if total != tar_size {
        let message = format!("a layer ended after {total} of its {tar_size} bytes");
        let _ = tx.blocking_send(Err(message.clone()));
        return Err(message);
    }
    let mut sink = gz.finish().map_err(write_error)?;
    sink.send_piece().map_err(write_error)?;
    Ok(Made {
        diff_id: format!("sha256:{}", hex(&hasher.finalize())),
        layer: CachedLayer {
            tar_size,
            digest: format!("sha256:{}", hex(&sink.hasher.finalize())),
            size: sink.size,
            used: 0,
        },
    })
}

/// What an export entry is.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Config,
    /// A layer, with its diff id when the name gives it.
    Layer(Option<String>),
    Other,
}

fn classify(path: &str, plan: &Plan) -> Kind {
    let config_hex = plan.config.trim_start_matches("sha256:");
    if let Some(hex) = path.strip_prefix("blobs/sha256/") {
        let digest = format!("sha256:{hex}");
        if digest == plan.config {
            return Kind::Config;
        }
        if plan.diff_ids.contains(&digest) {
            return Kind::Layer(Some(digest));
        }
        return Kind::Other;
    }
    if path.strip_suffix(".json") == Some(config_hex) {
        return Kind::Config;
    }
    if path.ends_with("/layer.tar") {
        return Kind::Layer(None);
    }
    Kind::Other
}

fn label_of(path: &str) -> String {
    let name = path
        .trim_start_matches("blobs/sha256/")
        .trim_end_matches("/layer.tar");
    short(name)
}

/// Reads an export, sending each layer the repository lacks to the upload side as it comes
/// (see the module's documentation) and the config when `plan.need_config`.
pub fn read_export(
    input: impl Read,
    plan: &Plan,
    events: &mpsc::Sender<Event>,
    bars: &Bars,
) -> Result<(), String> {
    let stopped = |_| STOPPED.to_owned();
    let broken = |e: std::io::Error| format!("reading the image from the engine: {e}");
    let present_sizes: Vec<u64> = plan.present.values().map(|l| l.tar_size).collect();
    let mut archive = tar::Archive::new(input);
    for (n, entry) in archive.entries().map_err(broken)?.enumerate() {
        if n >= MAX_ENTRIES {
            return Err("the engine's export has too many entries".into());
        }
        let mut entry = entry.map_err(broken)?;
        if !entry.header().entry_type().is_file() {
            // Directories, and a layer repeated in the image (a link to its first copy).
            continue;
        }
        let path = entry.path().map_err(broken)?.to_string_lossy().into_owned();
        let size = entry.size();
        match classify(&path, plan) {
            Kind::Config if plan.need_config => {
                if size > MAX_CONFIG {
                    return Err("the image's config is too large".into());
                }
                let mut config = Vec::with_capacity(size as usize);
                entry.read_to_end(&mut config).map_err(broken)?;
                events
                    .blocking_send(Event::Config(config))
                    .map_err(stopped)?;
            }
            Kind::Layer(Some(diff_id)) if plan.present.contains_key(&diff_id) => {}
            Kind::Layer(known) => {
                let bar = bars.bytes(&label_of(&path), size);
                if known.is_none() && present_sizes.contains(&size) {
                    spool_then_send(&mut entry, size, plan, events, bar)?;
                } else {
                    send_layer(&mut entry, size, known.as_deref(), events, bar)?;
                }
            }
            Kind::Config | Kind::Other => {}
        }
    }
    Ok(())
}

/// Sends one layer up: the upload side gets its pieces, then its digests.
fn send_layer(
    input: impl Read,
    size: u64,
    expected: Option<&str>,
    events: &mpsc::Sender<Event>,
    bar: ProgressBar,
) -> Result<(), String> {
    let (tx, rx) = mpsc::channel(8);
    bar.set_message("pushing");
    events
        .blocking_send(Event::Layer {
            bar: bar.clone(),
            data: rx,
        })
        .map_err(|_| STOPPED.to_owned())?;
    let made = compress(input, size, &tx, &bar)?;
    drop(tx);
    if let Some(expected) = expected
        && made.diff_id != expected
    {
        return Err(format!(
            "the engine exported layer {} with the content of {}",
            short(expected),
            short(&made.diff_id)
        ));
    }
    events
        .blocking_send(Event::Done(made))
        .map_err(|_| STOPPED.to_owned())
}

/// A layer that may be one the repository holds: copied aside while hashed; sent only when it
/// is not.
fn spool_then_send(
    input: impl Read,
    size: u64,
    plan: &Plan,
    events: &mpsc::Sender<Event>,
    bar: ProgressBar,
) -> Result<(), String> {
    let path = plan.spool_dir.join(format!("dtaas-push-{}.tar", Id::new()));
    let _cleanup = RemoveFileOnDrop(path.clone());
    let spool_error = |e: std::io::Error| format!("copying a layer to {}: {e}", path.display());
    bar.set_message("checking");
    let diff_id = {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(spool_error)?;
        let mut out = std::io::BufWriter::new(file);
        let mut hashing = HashingReader {
            inner: input,
            hasher: Sha256::new(),
            bar: bar.clone(),
        };
        std::io::copy(&mut hashing, &mut out).map_err(spool_error)?;
        out.flush().map_err(spool_error)?;
        format!("sha256:{}", hex(&hashing.hasher.finalize()))
    };
    if plan.present.contains_key(&diff_id) {
        return events
            .blocking_send(Event::Present { diff_id, bar })
            .map_err(|_| STOPPED.to_owned());
    }
    bar.set_position(0);
    let file = std::fs::File::open(&path).map_err(spool_error)?;
    send_layer(
        std::io::BufReader::new(file),
        size,
        Some(&diff_id),
        events,
        bar,
    )
}

struct HashingReader<R: Read> {
    inner: R,
    hasher: Sha256,
    bar: ProgressBar,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bar.inc(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn sha(bytes: &[u8]) -> String {
        format!("sha256:{}", hex(&Sha256::digest(bytes)))
    }

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// Runs `read_export` on a thread as `push` does, collecting what the upload side gets.
    async fn run(export: Vec<u8>, plan: Plan) -> (Result<(), String>, Vec<String>, Vec<Vec<u8>>) {
        let (tx, mut rx) = mpsc::channel(4);
        let thread = tokio::task::spawn_blocking(move || {
            read_export(Cursor::new(export), &plan, &tx, &Bars::quiet())
        });
        let (mut seen, mut blobs) = (Vec::new(), Vec::new());
        while let Some(event) = rx.recv().await {
            match event {
                Event::Layer { mut data, .. } => {
                    let mut blob = Vec::new();
                    while let Some(piece) = data.recv().await {
                        blob.extend_from_slice(&piece.unwrap());
                    }
                    blobs.push(blob);
                }
                Event::Done(made) => {
                    assert_eq!(made.layer.digest, sha(blobs.last().unwrap()));
                    assert_eq!(made.layer.size, blobs.last().unwrap().len() as u64);
                    seen.push(format!("done {}", made.diff_id));
                }
                Event::Present { diff_id, .. } => seen.push(format!("present {diff_id}")),
                Event::Config(c) => seen.push(format!("config {}", String::from_utf8(c).unwrap())),
            }
        }
        (thread.await.unwrap(), seen, blobs)
    }

    #[tokio::test]
    async fn a_legacy_export_sends_each_layer_compressed_and_the_config() {
        let (a, b) = (vec![7u8; 3000], b"second layer".to_vec());
        let config = br#"{"rootfs":{}}"#;
        let config_digest = sha(config);
        let config_name = format!("{}.json", config_digest.trim_start_matches("sha256:"));
        let export = tar_of(&[
            ("111/VERSION", b"1.0"),
            ("111/layer.tar", &a),
            (&config_name, config),
            ("222/layer.tar", &b),
            ("manifest.json", b"[]"),
        ]);
        let plan = Plan {
            config: config_digest,
            diff_ids: vec![sha(&a), sha(&b)],
            present: HashMap::new(),
            need_config: true,
            spool_dir: std::env::temp_dir(),
        };
        let (result, seen, blobs) = run(export, plan).await;
        result.unwrap();
        assert_eq!(
            seen,
            vec![
                format!("done {}", sha(&a)),
                r#"config {"rootfs":{}}"#.to_owned(),
                format!("done {}", sha(&b)),
            ]
        );
        assert_eq!(gunzip(&blobs[0]), a);
        assert_eq!(gunzip(&blobs[1]), b);
    }

    #[tokio::test]
    async fn layers_the_repository_holds_are_not_sent_again() {
        let (a, b, c) = (vec![1u8; 100], vec![2u8; 100], vec![3u8; 50]);
        let known = CachedLayer {
            tar_size: 100,
            digest: "sha256:x".into(),
            size: 10,
            used: 0,
        };
        let config = sha(b"{}");
        // Legacy layout: `b` has the size of `a`, which is there: both are checked, only `b`
        // goes up.
        let export = tar_of(&[
            ("1/layer.tar", &a),
            ("2/layer.tar", &b),
            ("3/layer.tar", &c),
        ]);
        let plan = Plan {
            config: config.clone(),
            diff_ids: vec![sha(&a), sha(&b), sha(&c)],
            present: HashMap::from([(sha(&a), known.clone())]),
            need_config: false,
            spool_dir: std::env::temp_dir(),
        };
        let (result, seen, blobs) = run(export, plan.clone()).await;
        result.unwrap();
        assert_eq!(
            seen,
            vec![
                format!("present {}", sha(&a)),
                format!("done {}", sha(&b)),
                format!("done {}", sha(&c)),
            ]
        );
        assert_eq!(gunzip(&blobs[0]), b);

        // OCI layout: the name is the diff id; a present layer is skipped unread.
        let export = tar_of(&[
            (&format!("blobs/sha256/{}", &sha(&a)[7..]), &a),
            (&format!("blobs/sha256/{}", &sha(&c)[7..]), &c),
            ("index.json", b"{}"),
        ]);
        let (result, seen, _) = run(export, plan).await;
        result.unwrap();
        assert_eq!(seen, vec![format!("done {}", sha(&c))]);
    }

    #[tokio::test]
    async fn a_layer_whose_content_is_not_its_name_is_refused() {
        let a = vec![1u8; 10];
        let claimed = sha(b"other");
        let export = tar_of(&[(&format!("blobs/sha256/{}", &claimed[7..]), &a)]);
        let plan = Plan {
            config: sha(b"{}"),
            diff_ids: vec![claimed],
            present: HashMap::new(),
            need_config: false,
            spool_dir: std::env::temp_dir(),
        };
        let (result, _, _) = run(export, plan).await;
        assert!(result.unwrap_err().contains("with the content of"));
    }

    #[test]
    fn the_cache_remembers_layers_and_sources_and_stays_bounded() {
        let dir = std::env::temp_dir().join(format!("dtaas-cache-test-{}", Id::new()));
        let path = dir.join("layers.json");
        let mut cache = LayerCache::at(Some(path.clone()));
        let layer = CachedLayer {
            tar_size: 1,
            digest: "sha256:b".into(),
            size: 2,
            used: 0,
        };
        cache.remember_layer("sha256:a", layer.clone());
        cache.remember_source("http://h:1", "sha256:b", "alice/x");
        cache.save();
        let again = LayerCache::at(Some(path));
        assert_eq!(again.layer("sha256:a").unwrap().digest, "sha256:b");
        assert_eq!(again.source("http://h:1", "sha256:b"), Some("alice/x"));
        assert_eq!(again.source("http://h:2", "sha256:b"), None);
        let _ = std::fs::remove_dir_all(dir);

        let mut cache = LayerCache::at(None);
        for i in 0..MAX_LAYERS + 5 {
            cache.remember_layer(&format!("sha256:{i}"), layer.clone());
        }
        assert_eq!(cache.data.layers.len(), MAX_LAYERS);
        assert_eq!(
            cache_path(Some("/x"), Some("/home/a")),
            Some(PathBuf::from("/x/dtaas/layers.json"))
        );
        assert_eq!(
            cache_path(None, Some("/home/a")),
            Some(PathBuf::from("/home/a/.cache/dtaas/layers.json"))
        );
        assert_eq!(cache_path(Some("relative"), None), None);
    }
}
