//! `dtaas push IMAGE[:TAG] [--name NAME[:TAG]]`: an image of the local engine into the
//! appliance's registry, without the docker CLI.
//!
//! The engine's export streams in and each layer is gzipped, hashed and sent as it is read
//! ([`super::layers`]), in PATCHes of bounded size; the config goes up in one request; then a
//! Docker schema-2 manifest is stored under the tag. Blobs the repository has already (HEAD,
//! by the digests the layer cache remembers) or can mount from another repository of the
//! caller's are not sent again; an image the tag already holds (same config digest) is not
//! even exported.

use super::Ctx;
use super::layers::{self, CachedLayer, ChannelReader, Event, LayerCache, Made, Plan};
use super::local::{self, LocalImage, engine_message};
use super::progress::{Bars, short, size};
use super::registry::{
    DOCKER_CONFIG, DOCKER_LAYER, Descriptor, Registry, RepoRef, digest_of, split_reference,
};
use crate::domains::registry::manifest::DOCKER_MANIFEST;
use crate::domains::registry::names;
use bytes::Bytes;
use clap::Args;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use tokio::sync::mpsc;

pub const EXAMPLES: &str = "Examples:
  dtaas push tool:1                          # to <your login>/tool:1
  dtaas push tool:1 --name alice/tools/tool:2
  dtaas push 127.0.0.1:5000/alice/tool:1     # the name the image already has there
  dtaas push tool:1 --json";

#[derive(Args, Debug)]
pub struct PushArgs {
    /// The local image: IMAGE[:TAG] as the engine names it (`docker images`), or its id.
    pub image: String,
    /// The repository in the appliance's registry, NAME[:TAG] [default: <your login>/<the
    /// image's name>, with the image's tag].
    #[arg(long, value_name = "NAME[:TAG]")]
    pub name: Option<String>,
}

/// How a layer got into the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerStatus {
    /// Compressed and sent.
    Pushed,
    /// The repository had it.
    Present,
    /// Linked from another repository of the appliance.
    Mounted,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    pub diff_id: String,
    pub digest: String,
    pub size: u64,
    pub status: LayerStatus,
}

/// What a push did.
#[derive(Debug, Clone, Serialize)]
pub struct Pushed {
    /// The local image as named.
    pub image: String,
    pub name: String,
    pub tag: String,
    /// `host:port/name:tag`, as docker pulls it.
    pub reference: String,
    /// The manifest's digest.
    pub digest: String,
    /// The config's digest (the image id).
    pub config: String,
    pub layers: Vec<LayerReport>,
    /// The tag held this image already: nothing was sent.
    pub already: bool,
    /// Compressed bytes sent.
    pub sent: u64,
}

impl Pushed {
    /// The sentence people read.
    pub fn sentence(&self) -> String {
        if self.already {
            return format!(
                "{} already holds {} (digest {}): nothing to push.",
                self.reference,
                self.image,
                short(&self.digest)
            );
        }
        let sent = self
            .layers
            .iter()
            .filter(|l| l.status == LayerStatus::Pushed)
            .count();
        let there = self.layers.len() - sent;
        format!(
            "Pushed {} to {} ({} layer{}: {sent} sent, {} compressed, {there} already there; \
             digest {}).",
            self.image,
            self.reference,
            self.layers.len(),
            if self.layers.len() == 1 { "" } else { "s" },
            size(self.sent),
            self.digest
        )
    }
}

/// Where an image goes: `--name` (its tag, else the image's), else `<namespace>/<the image's
/// last name component>` (or the name it has under this registry's host already).
pub fn target_for(
    image: &str,
    name: Option<&str>,
    host: &str,
    namespace: Option<&str>,
) -> Result<RepoRef, String> {
    let (repo, image_tag, _) = split_reference(image);
    let is_id = image.starts_with("sha256:")
        || (image.len() >= 12 && image.bytes().all(|b| b.is_ascii_hexdigit()));
    let (name, tag) = match name {
        Some(given) => {
            let given = given.strip_prefix(&format!("{host}/")).unwrap_or(given);
            let (n, t, d) = split_reference(given);
            if d.is_some() {
                return Err("--name takes NAME[:TAG], not a digest".into());
            }
            (n.to_owned(), t.map(str::to_owned))
        }
        None if is_id => {
            return Err(format!(
                "{image} is an image id: say where it goes with --name NAME[:TAG]"
            ));
        }
        None => match repo.strip_prefix(&format!("{host}/")) {
            Some(own) => (own.to_owned(), None),
            None => {
                let Some(namespace) = namespace else {
                    return Err("this key has no login (a servable's?): give --name".into());
                };
                let last = repo.rsplit('/').next().unwrap_or(repo);
                (format!("{namespace}/{last}"), None)
            }
        },
    };
    let tag = tag
        .or_else(|| (!is_id).then(|| image_tag.map(str::to_owned)).flatten())
        .unwrap_or_else(|| "latest".to_owned());
    if !names::valid_name(&name) {
        return Err(format!(
            "{name:?} is not a repository name (lowercase letters, digits and . _ - in \
             components separated by /): give one with --name NAME[:TAG]"
        ));
    }
    if !names::valid_tag(&tag) {
        return Err(format!(
            "{tag:?} is not a tag (letters, digits, _ . -): give one with --name NAME:TAG"
        ));
    }
    Ok(RepoRef {
        name,
        reference: tag,
    })
}

/// A blob known to be in the repository (present, or just mounted).
#[derive(Debug, Clone)]
struct Known {
    layer: CachedLayer,
    status: LayerStatus,
}

/// Ends a task when dropped (the export feeder, when a push stops early).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Whether `name` has blob `digest`, or can link it from the repository the cache remembers.
async fn find_blob(
    reg: &Registry,
    cache: &LayerCache,
    name: &str,
    digest: &str,
) -> Result<Option<(u64, LayerStatus)>, String> {
    if let Some(size) = reg.blob_size(name, digest).await? {
        return Ok(Some((size, LayerStatus::Present)));
    }
    if let Some(from) = cache.source(&reg.url(), digest)
        && from != name
        && reg.mount(name, digest, from).await.unwrap_or(false)
        && let Some(size) = reg.blob_size(name, digest).await?
    {
        return Ok(Some((size, LayerStatus::Mounted)));
    }
    Ok(None)
}

/// Pushes `image` (the engine's `local`) to `target`. `cache` learns the blobs made; the
/// caller saves it.
pub async fn push_image(
    reg: &Registry,
    docker: &bollard::Docker,
    image: &str,
    local: &LocalImage,
    target: &RepoRef,
    cache: &mut LayerCache,
    bars: &Bars,
) -> Result<Pushed, String> {
    let (name, tag) = (target.name.as_str(), target.reference.as_str());
    let reference = format!("{}/{name}:{tag}", reg.host);
    let mut pushed = Pushed {
        image: image.to_owned(),
        name: name.to_owned(),
        tag: tag.to_owned(),
        reference: reference.clone(),
        digest: String::new(),
        config: local.id.clone(),
        layers: Vec::new(),
        already: false,
        sent: 0,
    };
    if let Ok(Some(there)) = reg.image(name, tag).await
        && there.manifest.config.digest == local.id
    {
        pushed.already = true;
        pushed.digest = there.fetched.digest;
        pushed.layers = local
            .diff_ids
            .iter()
            .zip(&there.manifest.layers)
            .map(|(diff_id, d)| LayerReport {
                diff_id: diff_id.clone(),
                digest: d.digest.clone(),
                size: d.size,
                status: LayerStatus::Present,
            })
            .collect();
        return Ok(pushed);
    }
    bars.note(&format!("Pushing {image} to {reference}"));

    // What the repository has, or can link, of the blobs the cache knows.
    let config_there = find_blob(reg, cache, name, &local.id).await?;
    let mut known: HashMap<String, Known> = HashMap::new();
    for diff_id in &local.diff_ids {
        if known.contains_key(diff_id) {
            continue;
        }
        let Some(cached) = cache.layer(diff_id).cloned() else {
            continue;
        };
        if let Some((_, status)) = find_blob(reg, cache, name, &cached.digest).await? {
            known.insert(
                diff_id.clone(),
                Known {
                    layer: cached,
                    status,
                },
            );
        }
    }
    let all_there = local.diff_ids.iter().all(|d| known.contains_key(d));
    // The layers that need no transfer get a line each (those the export meets again have
    // theirs from the reader).
    let mut shown: Vec<String> = Vec::new();
    let config_size = match (config_there, all_there) {
        (Some((size, _)), true) => size,
        (config_there, _) => {
            let plan = Plan {
                config: local.id.clone(),
                diff_ids: local.diff_ids.clone(),
                present: known
                    .iter()
                    .map(|(d, k)| (d.clone(), k.layer.clone()))
                    .collect(),
                need_config: config_there.is_none(),
                spool_dir: std::env::temp_dir(),
            };
            let (made, config, met) = export_and_send(reg, docker, name, local, plan, bars).await?;
            shown = met;
            for made in made {
                pushed.sent += made.layer.size;
                cache.remember_layer(&made.diff_id, made.layer.clone());
                known.insert(
                    made.diff_id,
                    Known {
                        layer: made.layer,
                        status: LayerStatus::Pushed,
                    },
                );
            }
            match (config_there, config) {
                (Some((size, _)), _) => size,
                (None, Some(bytes)) => {
                    let n = bytes.len() as u64;
                    reg.put_blob(name, &local.id, Bytes::from(bytes)).await?;
                    pushed.sent += n;
                    n
                }
                (None, None) => {
                    return Err(format!(
                        "the engine's export of {image} holds no config {}",
                        short(&local.id)
                    ));
                }
            }
        }
    };

    for (i, diff_id) in local.diff_ids.iter().enumerate() {
        let Some(k) = known.get(diff_id) else {
            continue;
        };
        if local.diff_ids[..i].contains(diff_id) {
            continue;
        }
        if k.status != LayerStatus::Pushed && !shown.contains(diff_id) {
            let message = match k.status {
                LayerStatus::Mounted => "mounted",
                _ => "already there",
            };
            bars.done(&short(diff_id), k.layer.tar_size, message);
        }
    }
    let mut layers = Vec::with_capacity(local.diff_ids.len());
    for diff_id in &local.diff_ids {
        let k = known
            .get(diff_id)
            .ok_or_else(|| format!("the engine's export of {image} lacks layer {diff_id}"))?;
        layers.push(Descriptor {
            media_type: DOCKER_LAYER.to_owned(),
            digest: k.layer.digest.clone(),
            size: k.layer.size,
        });
        pushed.layers.push(LayerReport {
            diff_id: diff_id.clone(),
            digest: k.layer.digest.clone(),
            size: k.layer.size,
            status: k.status,
        });
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": config_size, "digest": local.id},
        "layers": layers,
    });
    let bytes = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| format!("cannot write the manifest: {e}"))?;
    pushed.digest = reg.put_manifest(name, tag, DOCKER_MANIFEST, bytes).await?;
    let url = reg.url();
    cache.remember_source(&url, &local.id, name);
    for layer in &pushed.layers {
        cache.remember_source(&url, &layer.digest, name);
    }
    Ok(pushed)
}

/// Streams the engine's export through [`layers::read_export`] on a blocking thread and sends
/// what it makes: returns the layers sent and the config (when asked for).
async fn export_and_send(
    reg: &Registry,
    docker: &bollard::Docker,
    name: &str,
    local: &LocalImage,
    plan: Plan,
    bars: &Bars,
) -> Result<Sent, String> {
    let (feed_tx, feed_rx) = mpsc::channel::<Result<Bytes, String>>(32);
    let feeder = {
        let docker = docker.clone();
        let id = local.id.clone();
        AbortOnDrop(tokio::spawn(async move {
            let mut stream = docker.export_image(&id);
            while let Some(chunk) = stream.next().await {
                let item = chunk
                    .map_err(|e| format!("the engine's export failed: {}", engine_message(&e)));
                let stop = item.is_err();
                if feed_tx.send(item).await.is_err() || stop {
                    break;
                }
            }
        }))
    };
    let (events_tx, mut events) = mpsc::channel::<Event>(4);
    let thread_bars = bars.clone();
    let thread = tokio::task::spawn_blocking(move || {
        layers::read_export(ChannelReader::new(feed_rx), &plan, &events_tx, &thread_bars)
    });
    let sent = send_events(reg, name, local, &mut events).await;
    drop(events);
    drop(feeder);
    let read = thread
        .await
        .map_err(|e| format!("reading the export: {e}"))
        .and_then(|r| r);
    match (sent, read) {
        (Ok(done), Ok(())) => Ok(done),
        (_, Err(e)) if e != layers::STOPPED => Err(e),
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(e),
    }
}

/// What the export gave: the layers sent, the config (when asked for), and the layers met
/// that the repository held already.
type Sent = (Vec<Made>, Option<Vec<u8>>, Vec<String>);

/// The upload side: each layer's pieces into an upload, finished once its digest is known.
async fn send_events(
    reg: &Registry,
    name: &str,
    local: &LocalImage,
    events: &mut mpsc::Receiver<Event>,
) -> Result<Sent, String> {
    let mut made = Vec::new();
    let mut config = None;
    let mut met = Vec::new();
    let mut open: Option<(String, indicatif::ProgressBar)> = None;
    // Bounded by the export: the thread sends a few events per entry.
    while let Some(event) = events.recv().await {
        match event {
            Event::Layer { bar, data } => {
                let location = match reg.upload(name, data).await {
                    Ok(l) => l,
                    Err(e) => {
                        bar.abandon_with_message("failed");
                        return Err(e.to_string());
                    }
                };
                open = Some((location, bar));
            }
            Event::Done(layer) => {
                let (location, bar) = open
                    .take()
                    .ok_or("the export reader finished a layer it did not start")?;
                reg.finish(&location, &layer.layer.digest).await?;
                bar.finish_with_message(format!("pushed {}", size(layer.layer.size)));
                made.push(layer);
            }
            Event::Present { diff_id, bar } => {
                if !local.diff_ids.contains(&diff_id) {
                    return Err(format!(
                        "the engine exported a layer {diff_id} not of the image"
                    ));
                }
                bar.finish_with_message("already there");
                met.push(diff_id);
            }
            Event::Config(bytes) => {
                check_config(&bytes, local)?;
                config = Some(bytes);
            }
        }
    }
    Ok((made, config, met))
}

/// The exported config must be the image's: its digest the image id, its layers the image's.
/// (An engine whose image ids are not config digests, Docker's containerd image store, is
/// refused here rather than given a wrong manifest.)
fn check_config(bytes: &[u8], local: &LocalImage) -> Result<(), String> {
    let unlike = || {
        format!(
            "the engine exported a config that is not image {}'s (an engine whose image ids \
             are not config digests, such as Docker's containerd image store, is not supported)",
            short(&local.id)
        )
    };
    if digest_of(bytes) != local.id {
        return Err(unlike());
    }
    let config: serde_json::Value = serde_json::from_slice(bytes).map_err(|_| unlike())?;
    let diff_ids: Vec<&str> = config["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_str).collect())
        .unwrap_or_default();
    if diff_ids
        != local
            .diff_ids
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    {
        return Err(unlike());
    }
    Ok(())
}

pub async fn push(ctx: &Ctx, args: PushArgs) -> Result<(), String> {
    let reg = Registry::connect(ctx).await?;
    let engine = local::connect().await?;
    let image = local::inspect(&engine.docker, &args.image)
        .await?
        .ok_or_else(|| {
            format!(
                "the Docker engine ({}) has no image {:?}: build it first, or check the name \
                 (`docker images` lists them)",
                engine.host, args.image
            )
        })?;
    if let Some(os) = image.os.as_deref().filter(|os| *os != "linux") {
        return Err(format!(
            "{} is a {os} image: the appliance runs Linux images only",
            args.image
        ));
    }
    let target = target_for(
        &args.image,
        args.name.as_deref(),
        &reg.host,
        reg.namespace.as_deref(),
    )?;
    let bars = Bars::new(ctx.out.json);
    let mut cache = LayerCache::load();
    let result = push_image(
        &reg,
        &engine.docker,
        &args.image,
        &image,
        &target,
        &mut cache,
        &bars,
    )
    .await;
    cache.save();
    let pushed = result.map_err(|e| format!("pushing {} failed: {e}", args.image))?;
    let mut sentence = pushed.sentence();
    sentence.push_str(&format!(
        "\nPull it with: dtaas pull {}:{} (or docker pull {})",
        pushed.name, pushed.tag, pushed.reference
    ));
    ctx.out.done(&json!(pushed), &sentence);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_defaults_to_the_callers_namespace_and_the_images_tag() {
        let t = |image: &str, name: Option<&str>| {
            target_for(image, name, "127.0.0.1:5000", Some("alice")).map(|r| r.text())
        };
        assert_eq!(t("tool:1", None).unwrap(), "alice/tool:1");
        assert_eq!(t("tool", None).unwrap(), "alice/tool:latest");
        assert_eq!(
            t("docker.io/library/busybox:1.36", None).unwrap(),
            "alice/busybox:1.36"
        );
        assert_eq!(t("localhost:5000/x/tool:2", None).unwrap(), "alice/tool:2");
        assert_eq!(t("127.0.0.1:5000/bob/tool:3", None).unwrap(), "bob/tool:3");
        assert_eq!(t("tool:1", Some("team/tool")).unwrap(), "team/tool:1");
        assert_eq!(t("tool:1", Some("team/tool:9")).unwrap(), "team/tool:9");
        assert_eq!(
            t("tool:1", Some("127.0.0.1:5000/team/tool:9")).unwrap(),
            "team/tool:9"
        );
        let id = format!("sha256:{}", "a".repeat(64));
        assert!(t(&id, None).unwrap_err().contains("--name"));
        assert_eq!(t(&id, Some("alice/x")).unwrap(), "alice/x:latest");
        assert!(t("Tool:1", None).unwrap_err().contains("--name"));
        assert!(t("tool:1", Some("x@sha256:00")).is_err());
        assert!(
            target_for("tool:1", None, "h:1", None)
                .unwrap_err()
                .contains("--name")
        );
    }

    #[test]
    fn the_exported_config_must_be_the_images() {
        let config = br#"{"rootfs":{"type":"layers","diff_ids":["sha256:a"]}}"#;
        let mut local = LocalImage {
            id: digest_of(config),
            diff_ids: vec!["sha256:a".into()],
            os: None,
        };
        assert!(check_config(config, &local).is_ok());
        local.diff_ids.push("sha256:b".into());
        assert!(check_config(config, &local).is_err());
        local.id = digest_of(b"{}");
        assert!(
            check_config(config, &local)
                .unwrap_err()
                .contains("containerd")
        );
    }

    #[test]
    fn a_sentence_says_what_was_sent() {
        let mut p = Pushed {
            image: "tool:1".into(),
            name: "alice/tool".into(),
            tag: "1".into(),
            reference: "h:5/alice/tool:1".into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            config: "sha256:c".into(),
            layers: vec![
                LayerReport {
                    diff_id: "sha256:1".into(),
                    digest: "sha256:2".into(),
                    size: 10,
                    status: LayerStatus::Present,
                },
                LayerReport {
                    diff_id: "sha256:3".into(),
                    digest: "sha256:4".into(),
                    size: 2048,
                    status: LayerStatus::Pushed,
                },
            ],
            already: false,
            sent: 2048,
        };
        let s = p.sentence();
        assert!(
            s.contains("2 layers: 1 sent, 2.0 KiB compressed, 1 already there"),
            "{s}"
        );
        p.already = true;
        assert!(p.sentence().contains("nothing to push"));
        assert_eq!(
            serde_json::to_value(&p).unwrap()["layers"][0]["status"],
            "present"
        );
    }
}
