//! Blob contents as content-addressed files: `<data>/registry/blobs/sha256/<ab>/<hex>`.
//!
//! An upload appends to `<data>/registry/uploads/<id>`; the body is streamed through a bounded
//! channel to one blocking thread that writes and hashes in the same pass, so a blob is never
//! held in memory. The hasher's state is kept between the requests of a chunked upload (and
//! recomputed from the file after a restart). Committing checks the digest, fsyncs the file,
//! renames it into place and fsyncs the directory: a crash at any point leaves either no blob or
//! a whole, verified one.
//!
//! An upload may be bounded by a quota [`Grant`]: each chunk's bytes are taken from it before
//! they are written, and the upload stops at the first that does not fit.

use super::error::{Code, RResult, RegistryError};
use super::quota::{Grant, Quota, QuotaLedger};
use crate::core::id::Id;
use crate::core::secrets::hex;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

const WRITE_BUFFER: usize = 1 << 20;

pub struct BlobStore {
    root: PathBuf,
    /// upload id -> (hasher, bytes hashed)
    hashers: Mutex<HashMap<String, (Sha256, u64)>>,
    /// Uploads with a request in flight (a second one at the same time is refused).
    busy: Mutex<HashSet<String>>,
    /// The quota budgets of owners with uploads in flight.
    quota: QuotaLedger,
}

/// What is read and dropped of a body after its upload was refused, so that the client, still
/// sending, reads the answer instead of a reset connection; a longer body is cut off.
const DRAIN_AFTER_REFUSAL: u64 = 64 << 20;

fn io_error(e: std::io::Error) -> RegistryError {
    tracing::error!("registry storage: {e}");
    RegistryError::new(Code::Unknown, "storage error (see the server log)")
}

/// Releases an upload's busy mark when dropped.
struct Busy<'a>(&'a BlobStore, String);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0
            .busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.1);
    }
}

/// A blob's file below `registry/blobs/sha256`: `<ab>/<hex>`.
fn blob_file(digest: &str) -> PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    Path::new(hex.get(..2).unwrap_or("00")).join(hex)
}

/// A blob's file relative to the data directory (where [`BlobStore::blob_path`] puts it).
pub fn blob_rel_path(digest: &str) -> PathBuf {
    Path::new("registry")
        .join("blobs")
        .join("sha256")
        .join(blob_file(digest))
}

impl BlobStore {
    pub fn new(data_dir: &Path) -> std::io::Result<BlobStore> {
        let root = data_dir.join("registry");
        std::fs::create_dir_all(root.join("blobs").join("sha256"))?;
        std::fs::create_dir_all(root.join("uploads"))?;
        Ok(BlobStore {
            root,
            hashers: Mutex::new(HashMap::new()),
            busy: Mutex::new(HashSet::new()),
            quota: QuotaLedger::default(),
        })
    }

    /// The quota budgets of uploads in flight.
    pub fn quota(&self) -> &QuotaLedger {
        &self.quota
    }

    /// The bytes the files of these uploads hold (those gone count 0).
    pub fn uploads_bytes(&self, ids: &[String]) -> u64 {
        ids.iter()
            .filter_map(|id| std::fs::metadata(self.upload_path(id)).ok())
            .map(|m| m.len())
            .fold(0, u64::saturating_add)
    }

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.blobs_dir().join(blob_file(digest))
    }

    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    pub fn uploads_dir(&self) -> PathBuf {
        self.root.join("uploads")
    }

    pub fn upload_path(&self, id: &str) -> PathBuf {
        self.uploads_dir().join(id)
    }

    pub async fn start_upload(&self, id: &str) -> RResult<()> {
        tokio::fs::File::create(self.upload_path(id))
            .await
            .map_err(io_error)?;
        Ok(())
    }

    /// Bytes received so far.
    pub async fn upload_size(&self, id: &str) -> RResult<u64> {
        match tokio::fs::metadata(self.upload_path(id)).await {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(RegistryError::new(
                Code::BlobUploadUnknown,
                "blob upload unknown to registry",
            )),
            Err(e) => Err(io_error(e)),
        }
    }

    fn mark_busy(&self, id: &str) -> RResult<Busy<'_>> {
        let mut busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        if !busy.insert(id.to_owned()) {
            return Err(RegistryError::new(
                Code::BlobUploadInvalid,
                "another request is writing to this upload",
            ));
        }
        Ok(Busy(self, id.to_owned()))
    }

    /// Appends a request body to an upload. `start` is the client's Content-Range start: it must
    /// be where the upload ends (416 otherwise). Returns the upload's new size. With a `grant`,
    /// each chunk is taken from it before it is written: at the first that does not fit the
    /// writing stops (what was written stays, for the caller to remove) and the answer is the
    /// quota's DENIED.
    pub async fn append<E: std::fmt::Display>(
        &self,
        id: &str,
        body: impl Stream<Item = Result<Bytes, E>> + Send,
        start: Option<u64>,
        grant: Option<&Grant<'_>>,
    ) -> RResult<u64> {
        let _busy = self.mark_busy(id)?;
        let current = self.upload_size(id).await?;
        if let Some(start) = start
            && start != current
        {
            return Err(RegistryError::new(
                Code::RangeInvalid,
                format!("chunk starts at {start}, the upload holds {current} bytes"),
            )
            .header("range", range_header(current)));
        }
        let state = {
            let mut hashers = self.hashers.lock().unwrap_or_else(PoisonError::into_inner);
            hashers.remove(id).filter(|(_, n)| *n == current)
        };
        let path = self.upload_path(id);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        let writer = tokio::task::spawn_blocking(move || -> std::io::Result<(Sha256, u64)> {
            let (mut hasher, mut size) = match state {
                Some(s) => s,
                None => (hash_file(&path)?, current),
            };
            let file = std::fs::OpenOptions::new().append(true).open(&path)?;
            let mut out = std::io::BufWriter::with_capacity(WRITE_BUFFER, file);
            while let Some(chunk) = rx.blocking_recv() {
                hasher.update(&chunk);
                out.write_all(&chunk)?;
                size += chunk.len() as u64;
            }
            out.flush()?;
            Ok((hasher, size))
        });
        let mut stream = std::pin::pin!(body);
        let mut broken = None;
        let mut refused = None;
        let mut taken = 0u64;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => {
                    if let Some(grant) = grant {
                        let len = bytes.len() as u64;
                        if !grant.take(len) {
                            // The usage as it was before this request.
                            let quota = grant.quota();
                            refused = Some(Quota {
                                used: quota.used.saturating_sub(taken),
                                ..quota
                            });
                            break;
                        }
                        taken += len;
                    }
                    if tx.send(bytes).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    broken = Some(e);
                    break;
                }
            }
        }
        drop(tx);
        if refused.is_some() {
            let mut drained = 0u64;
            while drained < DRAIN_AFTER_REFUSAL
                && let Some(Ok(bytes)) = stream.next().await
            {
                drained += bytes.len() as u64;
            }
        }
        let (hasher, size) = writer
            .await
            .map_err(|e| io_error(std::io::Error::other(e)))?
            .map_err(io_error)?;
        self.hashers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_owned(), (hasher, size));
        if let Some(quota) = refused {
            return Err(quota.denied("this upload would go beyond it"));
        }
        if let Some(e) = broken {
            return Err(RegistryError::new(
                Code::BlobUploadInvalid,
                format!("the request body broke off: {e}"),
            ));
        }
        Ok(size)
    }

    /// Verifies an upload against `digest` and makes it the blob. Returns its size.
    pub async fn commit(&self, id: &str, digest: &str) -> RResult<u64> {
        let _busy = self.mark_busy(id)?;
        let size = self.upload_size(id).await?;
        let state = {
            let mut hashers = self.hashers.lock().unwrap_or_else(PoisonError::into_inner);
            hashers.remove(id).filter(|(_, n)| *n == size)
        };
        let upload = self.upload_path(id);
        let target = self.blob_path(digest);
        let digest = digest.to_owned();
        let result = tokio::task::spawn_blocking(move || -> std::io::Result<Option<String>> {
            let hasher = match state {
                Some((h, _)) => h,
                None => hash_file(&upload)?,
            };
            let actual = format!("sha256:{}", hex(&hasher.finalize()));
            if actual != digest {
                std::fs::remove_file(&upload)?;
                return Ok(Some(actual));
            }
            if target.exists() {
                std::fs::remove_file(&upload)?;
                return Ok(None);
            }
            std::fs::File::open(&upload)?.sync_all()?;
            let dir = target.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)?;
            std::fs::rename(&upload, &target)?;
            std::fs::File::open(dir)?.sync_all()?;
            Ok(None)
        })
        .await
        .map_err(|e| io_error(std::io::Error::other(e)))?
        .map_err(io_error)?;
        match result {
            None => Ok(size),
            Some(actual) => Err(RegistryError::new(
                Code::DigestInvalid,
                "provided digest did not match uploaded content",
            )
            .detail(serde_json::json!({ "expected": actual }))),
        }
    }

    pub async fn remove_upload(&self, id: &str) {
        self.hashers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        let _ = tokio::fs::remove_file(self.upload_path(id)).await;
    }

    /// Stores bytes the server made itself (images it exports from the engine).
    pub fn put_bytes(&self, bytes: &[u8]) -> std::io::Result<String> {
        let digest = super::names::digest_of(bytes);
        let target = self.blob_path(&digest);
        if target.exists() {
            return Ok(digest);
        }
        self.put_file_with(&digest, |f| f.write_all(bytes))?;
        Ok(digest)
    }

    /// Moves a verified file into place (the caller computed its digest).
    pub fn put_file_with(
        &self,
        digest: &str,
        write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let tmp = self.uploads_dir().join(format!("internal-{}", Id::new()));
        let mut file = std::fs::File::create(&tmp)?;
        write(&mut file)?;
        file.sync_all()?;
        let target = self.blob_path(digest);
        let dir = target.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        std::fs::rename(&tmp, &target)?;
        std::fs::File::open(dir)?.sync_all()
    }
}

/// Streams `len` bytes of a blob file from `start`, as slices of a read-only memory map: the
/// socket writes straight from the page cache, without a read into a buffer first (the GET path
/// was 2.5 times slower than Go's `sendfile` with reads).
pub fn read_stream(
    file: &std::fs::File,
    start: u64,
    len: u64,
) -> std::io::Result<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static> {
    if len == 0 {
        return Ok(futures_util::stream::iter(Vec::new()));
    }
    // SAFETY: blob files are immutable once committed: they are written to a temporary name,
    // fsynced and renamed into place, and afterwards only ever unlinked (never truncated or
    // rewritten), which keeps an existing mapping valid.
    let map = unsafe { memmap2::Mmap::map(file)? };
    let end = start.saturating_add(len);
    if end > map.len() as u64 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "blob file shorter than its record",
        ));
    }
    let _ = map.advise(memmap2::Advice::Sequential);
    let bytes = Bytes::from_owner(map);
    let chunks: Vec<std::io::Result<Bytes>> = (start..end)
        .step_by(READ_CHUNK)
        .map(|offset| {
            let stop = (offset + READ_CHUNK as u64).min(end);
            Ok(bytes.slice(offset as usize..stop as usize))
        })
        .collect();
    Ok(futures_util::stream::iter(chunks))
}

const READ_CHUNK: usize = 1 << 20;

/// The `Range` header of an upload holding `size` bytes: `0-<last byte>`.
pub fn range_header(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

fn hash_file(path: &Path) -> std::io::Result<Sha256> {
    let mut hasher = Sha256::new();
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; WRITE_BUFFER];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher);
        }
        hasher.update(&buf[..n]);
    }
}
