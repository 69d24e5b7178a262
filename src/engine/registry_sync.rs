//! Moving images between the registry and the local engine, without the network: so it works
//! whatever the main listener is (TLS or not, any address).
//!
//! * [`load_into_engine`]: a registry image becomes runnable: a `docker save`-style archive is
//!   made from its blobs and loaded (the engine takes gzip layers as they are). An engine that
//!   already holds the image (same config digest) is only tagged.
//! * [`import_from_engine`]: an image the engine built (`POST /image`) is exported, its layers
//!   gzipped and stored as blobs, and a Docker schema-2 manifest pushed to a repository.

use super::{Engine, engine_error};
use crate::core::clock::Clock;
use crate::core::error::{Error, Result};
use crate::core::fs::{RemoveDirOnDrop, RemoveFileOnDrop};
use crate::core::id::Id;
use crate::core::secrets::hex;
use crate::core::store::Store;
use crate::domains::registry::blobs::BlobStore;
use crate::domains::registry::manifest::{self as documents, DOCKER_MANIFEST};
use crate::domains::registry::{meta, names};
use futures_util::StreamExt;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Moves images between the registry's blobs and the engine.
pub struct RegistrySync {
    store: Store,
    engine: Arc<Engine>,
    blobs: Arc<BlobStore>,
    clock: Arc<dyn Clock>,
    /// Where work files go (`<data>/tmp`).
    tmp: PathBuf,
}

/// The engine's architecture name for this machine.
fn engine_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The engine tag a registry image is loaded under.
pub fn engine_tag(repo: &str, reference: &str) -> String {
    if reference.contains(':') {
        let hex = reference.trim_start_matches("sha256:");
        format!("dtaas/registry/{repo}:{}", &hex[..hex.len().min(16)])
    } else {
        format!("dtaas/registry/{repo}:{reference}")
    }
}

impl RegistrySync {
    pub fn new(
        store: Store,
        engine: Arc<Engine>,
        blobs: Arc<BlobStore>,
        clock: Arc<dyn Clock>,
        data_dir: &Path,
    ) -> RegistrySync {
        RegistrySync {
            store,
            engine,
            blobs,
            clock,
            tmp: data_dir.join("tmp"),
        }
    }

    /// Makes `repo:reference` runnable on the engine; returns the engine tag to run.
    pub async fn load_into_engine(&self, repo: &str, reference: &str) -> Result<String> {
        let store = &self.store;
        let not_found = || Error::not_found(format!("{repo}:{reference} is not in the registry"));
        let mut digest = meta::resolve(store, repo, reference)?.ok_or_else(not_found)?;
        let (mut manifest, mut bytes) =
            meta::manifest(store, repo, &digest)?.ok_or_else(not_found)?;
        // An index: the entry for this machine's platform.
        if !manifest.manifests.is_empty() {
            digest =
                documents::platform_entry(&bytes, "linux", engine_arch()).ok_or_else(|| {
                    Error::bad_request(format!(
                        "{repo}:{reference} has no image for linux/{}",
                        engine_arch()
                    ))
                })?;
            (manifest, bytes) = meta::manifest(store, repo, &digest)?.ok_or_else(not_found)?;
        }
        let config = documents::config_digest(&bytes)
            .ok_or_else(|| Error::internal("image manifest without config"))?;
        let layers: Vec<String> = manifest.blobs.iter().skip(1).cloned().collect();
        let tag = engine_tag(repo, reference);
        let (tag_repo, tag_name) = tag.rsplit_once(':').unwrap_or((&tag, "latest"));
        let docker = self.engine.client().await?;

        if docker.inspect_image(&config).await.is_ok() {
            let options = bollard::query_parameters::TagImageOptionsBuilder::new()
                .repo(tag_repo)
                .tag(tag_name)
                .build();
            docker
                .tag_image(&config, Some(options))
                .await
                .map_err(|e| engine_error(&format!("tagging {tag}"), e))?;
            return Ok(tag);
        }

        let archive = self.tmp.join(format!("load-{}.tar", Id::new()));
        let _cleanup = RemoveFileOnDrop(archive.clone());
        {
            let blob_path = |d: &str| self.blobs.blob_path(d);
            let config_path = blob_path(&config);
            let layer_paths: Vec<(String, std::path::PathBuf)> =
                layers.iter().map(|d| (d.clone(), blob_path(d))).collect();
            let (archive, tag, config) = (archive.clone(), tag.clone(), config.clone());
            tokio::task::spawn_blocking(move || {
                write_save_archive(&archive, &tag, &config, &config_path, &layer_paths)
            })
            .await
            .map_err(Error::internal)?
            .map_err(|e| Error::internal(format!("making the image archive: {e}")))?;
        }
        let file = tokio::fs::File::open(&archive)
            .await
            .map_err(|e| Error::internal(format!("reading the image archive: {e}")))?;
        let body = bollard::body_try_stream(tokio_util::io::ReaderStream::new(file));
        let options = bollard::query_parameters::ImportImageOptionsBuilder::new()
            .quiet(true)
            .build();
        let mut progress = docker.import_image(options, body, None);
        while let Some(step) = progress.next().await {
            step.map_err(|e| engine_error(&format!("loading {tag}"), e))?;
        }
        Ok(tag)
    }

    /// Stores an engine image in the registry as `repo` with `tags`, in a repository owned by
    /// `owner` (created if needed). Returns the manifest's digest.
    pub async fn import_from_engine(
        &self,
        engine_ref: &str,
        repo: &str,
        tags: &[String],
        owner: Id,
    ) -> Result<String> {
        names::valid_name(repo).then_some(()).ok_or_else(|| {
            Error::bad_request(format!("{repo:?} is not a valid repository name"))
        })?;
        let docker = self.engine.client().await?;
        let work = self.tmp.join(format!("export-{}", Id::new()));
        let _cleanup = RemoveDirOnDrop(work.clone());
        tokio::fs::create_dir_all(&work)
            .await
            .map_err(|e| Error::internal(format!("creating {}: {e}", work.display())))?;
        let tar_path = work.join("image.tar");
        {
            use tokio::io::AsyncWriteExt;
            let mut file = tokio::fs::File::create(&tar_path)
                .await
                .map_err(|e| Error::internal(format!("exporting {engine_ref}: {e}")))?;
            let mut stream = docker.export_image(engine_ref);
            while let Some(chunk) = stream.next().await {
                let chunk =
                    chunk.map_err(|e| engine_error(&format!("exporting {engine_ref}"), e))?;
                file.write_all(&chunk)
                    .await
                    .map_err(|e| Error::internal(format!("exporting {engine_ref}: {e}")))?;
            }
            file.flush()
                .await
                .map_err(|e| Error::internal(format!("exporting {engine_ref}: {e}")))?;
        }
        let store_blobs = self.blobs.clone();
        let Exported {
            manifest: manifest_bytes,
            blobs,
        } = tokio::task::spawn_blocking(move || store_exported(&store_blobs, &work, &tar_path))
            .await
            .map_err(Error::internal)?
            .map_err(|e| Error::internal(format!("storing {engine_ref} in the registry: {e}")))?;

        let now = self.clock.now();
        meta::create_repo(&self.store, owner, repo, now)?;
        for (digest, size) in &blobs {
            meta::add_blob(&self.store, repo, digest, *size, now.timestamp())?;
        }
        let digest = names::digest_of(&manifest_bytes);
        let manifest = meta::Manifest {
            digest: digest.clone(),
            media_type: DOCKER_MANIFEST.to_owned(),
            size: manifest_bytes.len() as u64,
            blobs: blobs.iter().map(|(d, _)| d.clone()).collect(),
            manifests: Vec::new(),
            subject: None,
            artifact_type: Some(DOCKER_CONFIG.to_owned()),
            annotations: None,
            created: now.timestamp(),
        };
        let sizes = meta::Sizes {
            blobs: blobs.iter().map(|(_, size)| *size).collect(),
            manifests: Vec::new(),
        };
        let refused =
            |why: meta::Refused| Error::internal(format!("storing the manifest: {why:?}"));
        let mut first = true;
        for tag in tags {
            let stored = meta::put_manifest(
                &self.store,
                repo,
                &manifest,
                &sizes,
                &manifest_bytes,
                Some(tag),
            )?;
            stored.map_err(refused)?;
            first = false;
        }
        if first {
            meta::put_manifest(&self.store, repo, &manifest, &sizes, &manifest_bytes, None)?
                .map_err(refused)?;
        }
        Ok(digest)
    }
}

/// An exported image stored as blobs: its schema-2 manifest and (digest, size) of every blob.
struct Exported {
    manifest: Vec<u8>,
    blobs: Vec<(String, u64)>,
}

/// An entry of a `docker save` archive's `manifest.json`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SavedImage {
    config: String,
    layers: Vec<String>,
}

/// Unpacks a `docker save` archive and stores its config and gzipped layers as blobs.
fn store_exported(
    blob_store: &BlobStore,
    work: &Path,
    tar_path: &Path,
) -> std::io::Result<Exported> {
    let unpacked = work.join("unpacked");
    tar::Archive::new(std::fs::File::open(tar_path)?).unpack(&unpacked)?;
    let saved: Vec<SavedImage> =
        serde_json::from_slice(&std::fs::read(unpacked.join("manifest.json"))?)
            .map_err(std::io::Error::other)?;
    let entry = saved
        .into_iter()
        .next()
        .ok_or_else(|| std::io::Error::other("the engine exported no image"))?;
    let config_bytes = std::fs::read(unpacked.join(&entry.config))?;
    let config_digest = blob_store.put_bytes(&config_bytes)?;
    let mut blobs = vec![(config_digest.clone(), config_bytes.len() as u64)];
    let mut layers = Vec::new();
    for name in &entry.layers {
        let (digest, size) = gzip_blob(blob_store, &unpacked.join(name))?;
        layers.push(json!({ "mediaType": DOCKER_LAYER, "size": size, "digest": digest }));
        blobs.push((digest, size));
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": { "mediaType": DOCKER_CONFIG, "size": config_bytes.len(), "digest": config_digest },
        "layers": layers,
    });
    Ok(Exported {
        manifest: serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other)?,
        blobs,
    })
}

/// Gzips a layer into a blob file, hashing on the way; returns (digest, compressed size).
fn gzip_blob(blob_store: &BlobStore, layer: &Path) -> std::io::Result<(String, u64)> {
    struct Hashing<W: Write> {
        inner: W,
        hasher: Sha256,
        size: u64,
    }
    impl<W: Write> Write for Hashing<W> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = self.inner.write(buf)?;
            self.hasher.update(&buf[..n]);
            self.size += n as u64;
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.inner.flush()
        }
    }
    let tmp = blob_store
        .uploads_dir()
        .join(format!("internal-{}", Id::new()));
    let file = std::fs::File::create(&tmp)?;
    let hashing = Hashing {
        inner: std::io::BufWriter::new(file),
        hasher: Sha256::new(),
        size: 0,
    };
    let mut gz = flate2::write::GzEncoder::new(hashing, flate2::Compression::fast());
    std::io::copy(&mut std::fs::File::open(layer)?, &mut gz)?;
    let hashing = gz.finish()?;
    let digest = format!("sha256:{}", hex(&hashing.hasher.finalize()));
    let size = hashing.size;
    let file = hashing.inner.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    let target = blob_store.blob_path(&digest);
    if target.exists() {
        std::fs::remove_file(&tmp)?;
    } else {
        let dir = target.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        std::fs::rename(&tmp, &target)?;
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok((digest, size))
}

fn write_save_archive(
    out: &Path,
    tag: &str,
    config: &str,
    config_path: &Path,
    layers: &[(String, std::path::PathBuf)],
) -> std::io::Result<()> {
    let file = std::fs::File::create(out)?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    let hex = |d: &str| d.trim_start_matches("sha256:").to_owned();
    let config_name = format!("{}.json", hex(config));
    tar.append_path_with_name(config_path, &config_name)?;
    let mut layer_names = Vec::new();
    for (digest, path) in layers {
        let name = format!("{}/layer.tar", hex(digest));
        tar.append_path_with_name(path, &name)?;
        layer_names.push(name);
    }
    let manifest = json!([{ "Config": config_name, "RepoTags": [tag], "Layers": layer_names }]);
    let bytes = serde_json::to_vec(&manifest).map_err(std::io::Error::other)?;
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    tar.append_data(&mut header, "manifest.json", bytes.as_slice())?;
    tar.into_inner()?
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()
}
