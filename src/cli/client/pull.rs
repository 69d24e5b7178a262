//! `dtaas pull NAME[:TAG] [--tag IMAGE[:TAG]]`: an image of the appliance's registry into the
//! local engine, without the docker CLI.
//!
//! A `docker save` archive is made from the blobs as they download (a header, the layer as the
//! registry has it, gzipped; the config; `manifest.json` naming the tag) and streamed into the
//! engine's load (`POST /images/load`), each blob checked against its digest on the way. An
//! engine that has the image already (the same config digest) is only tagged.

use super::Ctx;
use super::local::{self, engine_message};
use super::progress::{Bars, short, size};
use super::registry::{Registry, RemoteImage, parse_repo_ref};
use bytes::Bytes;
use clap::Args;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio::sync::mpsc;

pub const EXAMPLES: &str = "Examples:
  dtaas pull alice/tool:1                  # as 127.0.0.1:5000/alice/tool:1
  dtaas pull tool:1                        # tool, else <your login>/tool
  dtaas pull alice/tool:1 --tag tool:dev
  dtaas pull alice/tool@sha256:4f1c...";

/// How long a download may stall.
const IDLE: Duration = Duration::from_secs(300);
/// The largest config read.
const MAX_CONFIG: usize = 16 << 20;

#[derive(Args, Debug)]
pub struct PullArgs {
    /// The image in the appliance's registry: NAME[:TAG] or NAME@DIGEST. A NAME without '/'
    /// that is not there is also looked for in your namespace (<login>/NAME).
    pub name: String,
    /// The engine's name for it [default: HOST:PORT/NAME:TAG, as docker pull names it].
    #[arg(long, short = 't', value_name = "IMAGE[:TAG]")]
    pub tag: Option<String>,
}

/// What a pull did.
#[derive(Debug, Clone, Serialize)]
pub struct Pulled {
    /// The repository and tag (or digest) pulled.
    pub name: String,
    pub reference: String,
    /// The manifest's digest.
    pub digest: String,
    /// The image id (its config digest).
    pub config: String,
    /// The engine's name for it.
    pub image: String,
    /// Whether the engine had it already (only tagged).
    pub already: bool,
    /// Bytes downloaded.
    pub received: u64,
}

fn tar_header(path: &str, len: u64) -> Result<Bytes, String> {
    let mut header = tar::Header::new_ustar();
    header
        .set_path(path)
        .map_err(|e| format!("archive entry {path}: {e}"))?;
    header.set_size(len);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    Ok(Bytes::copy_from_slice(header.as_bytes()))
}

/// The zeros that end a tar entry of `len` bytes on a 512-byte block.
fn padding(len: u64) -> Bytes {
    let rest = (512 - len % 512) % 512;
    Bytes::from(vec![0u8; rest as usize])
}

/// The entry name of a blob in the archive.
fn layer_path(digest: &str) -> String {
    format!("{}/layer.tar", digest.trim_start_matches("sha256:"))
}

/// The archive's `manifest.json`.
fn save_manifest(config: &str, tag: &str, layers: &[String]) -> Vec<u8> {
    let config_name = format!("{}.json", config.trim_start_matches("sha256:"));
    let paths: Vec<String> = layers.iter().map(|d| layer_path(d)).collect();
    json!([{"Config": config_name, "RepoTags": [tag], "Layers": paths}])
        .to_string()
        .into_bytes()
}

/// Writes the archive into `tx`: each distinct layer downloaded and checked, the config, the
/// manifest, the end. Returns the bytes downloaded. An error is also sent, so that the load
/// stops.
async fn write_archive(
    reg: &Registry,
    name: &str,
    image: &RemoteImage,
    config: Vec<u8>,
    tag: &str,
    tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
    bars: &Bars,
) -> Result<u64, String> {
    let result = write_entries(reg, name, image, config, tag, tx, bars).await;
    if let Err(e) = &result {
        let _ = tx.send(Err(std::io::Error::other(e.clone()))).await;
    }
    result
}

async fn write_entries(
    reg: &Registry,
    name: &str,
    image: &RemoteImage,
    config: Vec<u8>,
    tag: &str,
    tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
    bars: &Bars,
) -> Result<u64, String> {
    let send = |piece: Bytes| async move {
        tx.send(Ok(piece))
            .await
            .map_err(|_| "the engine stopped reading the image".to_owned())
    };
    let mut received = 0u64;
    let mut written: Vec<&str> = Vec::new();
    for layer in &image.manifest.layers {
        if written.contains(&layer.digest.as_str()) {
            continue;
        }
        written.push(&layer.digest);
        let bar = bars.bytes(&short(&layer.digest), layer.size);
        send(tar_header(&layer_path(&layer.digest), layer.size)?).await?;
        let mut body = reg.blob(name, &layer.digest).await?;
        let mut hasher = Sha256::new();
        let mut got = 0u64;
        // Bounded by the blob's size: a frame past it is refused.
        loop {
            let frame = match tokio::time::timeout(IDLE, body.frame()).await {
                Ok(Some(frame)) => frame.map_err(|e| format!("the download broke off: {e}"))?,
                Ok(None) => break,
                Err(_) => {
                    return Err(format!(
                        "the download of {} stalled for {} s",
                        short(&layer.digest),
                        IDLE.as_secs()
                    ));
                }
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            got += data.len() as u64;
            if got > layer.size {
                return Err(format!(
                    "blob {} is larger than its manifest says",
                    layer.digest
                ));
            }
            hasher.update(&data);
            bar.inc(data.len() as u64);
            send(data).await?;
        }
        let digest = format!("sha256:{}", crate::core::secrets::hex(&hasher.finalize()));
        if got != layer.size || digest != layer.digest {
            bar.abandon_with_message("corrupt");
            return Err(format!(
                "blob {} of {name} does not match its digest",
                layer.digest
            ));
        }
        send(padding(layer.size)).await?;
        bar.finish_with_message("pulled");
        received += got;
    }
    let config_name = format!(
        "{}.json",
        image.manifest.config.digest.trim_start_matches("sha256:")
    );
    let config_len = config.len() as u64;
    send(tar_header(&config_name, config_len)?).await?;
    send(Bytes::from(config)).await?;
    send(padding(config_len)).await?;
    let layers: Vec<String> = image
        .manifest
        .layers
        .iter()
        .map(|l| l.digest.clone())
        .collect();
    let manifest = save_manifest(&image.manifest.config.digest, tag, &layers);
    let manifest_len = manifest.len() as u64;
    send(tar_header("manifest.json", manifest_len)?).await?;
    send(Bytes::from(manifest)).await?;
    send(padding(manifest_len)).await?;
    send(Bytes::from(vec![0u8; 1024])).await?;
    Ok(received)
}

/// Loads `image` of repository `name` into the engine as `tag`.
async fn load(
    reg: &Registry,
    docker: &bollard::Docker,
    name: &str,
    image: &RemoteImage,
    tag: &str,
    bars: &Bars,
) -> Result<u64, String> {
    let config = reg
        .small_blob(name, &image.manifest.config.digest, MAX_CONFIG)
        .await?;
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let options = bollard::query_parameters::ImportImageOptionsBuilder::new()
        .quiet(true)
        .build();
    let mut progress = docker.import_image_stream(options, body, None);
    // The sender goes with the writer: the archive ends when it is dropped.
    let writer = async move { write_archive(reg, name, image, config, tag, &tx, bars).await };
    let reader = async {
        let mut failure = None;
        while let Some(step) = progress.next().await {
            match step {
                Ok(info) => {
                    if let Some(why) = info.error_detail.and_then(|d| d.message) {
                        failure = Some(why);
                    }
                }
                Err(e) => {
                    failure = Some(engine_message(&e));
                    break;
                }
            }
        }
        failure
    };
    let (written, failure) = tokio::join!(writer, reader);
    let received = written?;
    if let Some(why) = failure {
        return Err(format!("the Docker engine could not load the image: {why}"));
    }
    Ok(received)
}

pub async fn pull(ctx: &Ctx, args: PullArgs) -> Result<(), String> {
    let reg = Registry::connect(ctx).await?;
    let wanted = parse_repo_ref(&args.name, &reg.host)?;
    let mut candidates = vec![wanted.name.clone()];
    if !wanted.name.contains('/')
        && let Some(namespace) = &reg.namespace
    {
        candidates.push(format!("{namespace}/{}", wanted.name));
    }
    let mut found = None;
    let mut first_error = None;
    for name in candidates {
        match reg.image(&name, &wanted.reference).await {
            Ok(Some(image)) => {
                found = Some((name, image));
                break;
            }
            Ok(None) => {}
            // Refused here, the namespace's may still be there.
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if found.is_none()
        && let Some(e) = first_error
    {
        return Err(e);
    }
    let (name, image) = found.ok_or_else(|| {
        format!(
            "{} is not in the registry of {} (or not visible to you): check the name and tag",
            wanted.text(),
            reg.url()
        )
    })?;
    let tag = match args.tag {
        Some(t) => t,
        None if wanted.is_digest() => {
            format!("{}/{name}:{}", reg.host, short(&wanted.reference))
        }
        None => format!("{}/{name}:{}", reg.host, wanted.reference),
    };
    let engine = local::connect().await?;
    let config = image.manifest.config.digest.clone();
    let mut pulled = Pulled {
        name: name.clone(),
        reference: wanted.reference.clone(),
        digest: image.fetched.digest.clone(),
        config: config.clone(),
        image: tag.clone(),
        already: false,
        received: 0,
    };
    if local::inspect(&engine.docker, &config).await?.is_some() {
        local::tag(&engine.docker, &config, &tag).await?;
        pulled.already = true;
    } else {
        let bars = Bars::new(ctx.out.json);
        bars.note(&format!(
            "Pulling {}/{} into the Docker engine as {tag}",
            reg.host,
            wanted.text().replacen(&wanted.name, &name, 1)
        ));
        pulled.received = load(&reg, &engine.docker, &name, &image, &tag, &bars)
            .await
            .map_err(|e| format!("pulling {name} failed: {e}"))?;
        match local::inspect(&engine.docker, &tag).await? {
            Some(loaded) if loaded.id == config => {}
            _ => {
                return Err(format!(
                    "the Docker engine loaded the archive, but {tag} is not image {}",
                    short(&config)
                ));
            }
        }
    }
    let sentence = if pulled.already {
        format!(
            "The Docker engine had {name} (image {}) already: tagged it {tag}.",
            short(&config)
        )
    } else {
        format!(
            "Pulled {name} into the Docker engine as {tag} ({} layers, {} downloaded).",
            image.manifest.layers.len(),
            size(pulled.received)
        )
    };
    ctx.out.done(&json!(pulled), &sentence);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_pieces_are_what_docker_load_reads() {
        let header = tar_header("abc/layer.tar", 1000).unwrap();
        assert_eq!(header.len(), 512);
        let mut archive = header.to_vec();
        archive.extend(vec![7u8; 1000]);
        archive.extend_from_slice(&padding(1000));
        archive.extend(vec![0u8; 1024]);
        assert_eq!(archive.len() % 512, 0);
        let mut a = tar::Archive::new(&archive[..]);
        let mut entries = a.entries().unwrap();
        let e = entries.next().unwrap().unwrap();
        assert_eq!(e.path().unwrap().to_str(), Some("abc/layer.tar"));
        assert_eq!(e.size(), 1000);
        assert!(entries.next().is_none());
        assert_eq!(padding(512).len(), 0);
        assert_eq!(padding(513).len(), 511);

        let m: serde_json::Value = serde_json::from_slice(&save_manifest(
            "sha256:cc",
            "h:1/a:1",
            &["sha256:l1".into()],
        ))
        .unwrap();
        assert_eq!(m[0]["Config"], "cc.json");
        assert_eq!(m[0]["RepoTags"][0], "h:1/a:1");
        assert_eq!(m[0]["Layers"][0], "l1/layer.tar");
    }
}
