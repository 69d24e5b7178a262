//! Running a build: clone the repository if there is one (`clone`: only the accepted forms,
//! only the destinations the egress rules allow), check the Dockerfile (`engine::dockerfile`:
//! no `ADD` from the network, which the engine would fetch from the server's own network; no
//! base image whose `ONBUILD` triggers would; no pull from a refused registry address), tar the
//! context (symlinks stay links: a link in a repository must not pull server files into the
//! context), stream it to the engine's builder (`RUN` steps on `images.build_network`, `none` by
//! default, within `images.build_memory_mb` and `images.build_cpus`), and record SUCCESS,
//! FAILED (the Dockerfile or repository failed, or was refused) or FAILURE (the appliance
//! failed). Builds run on the server's task tracker, a few at a time.

mod clone;

use super::dockerfile;
use super::egress::Rules;
use super::registry_sync::RegistrySync;
use super::{Engine, Fault};
use crate::core::clock::Clock;
use crate::core::config::ImagesConfig;
use crate::core::error::{Error, Result};
use crate::core::fs::RemoveDirOnDrop;
use crate::core::id::Id;
use crate::core::metrics::Metrics;
use crate::core::store::Store;
use crate::core::tasks::Tasks;
use crate::domains::accounts;
use crate::domains::images::{
    Build, BuildState, Image, context_dir, finish_build, get_build, get_image, pending_builds,
};
use crate::domains::registry::{meta, names};
use bollard::query_parameters::BuildImageOptionsBuilder;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Kept from the end of a build's output.
const MAX_OUTPUT: usize = 1 << 20;

enum Outcome {
    Success(String),
    /// The user's Dockerfile or repository failed.
    Failed(String),
    /// The appliance failed.
    Failure(String),
}

/// Runs image builds: what it needs, and the build slots.
pub struct Builder {
    store: Store,
    engine: Arc<Engine>,
    clock: Arc<dyn Clock>,
    config: ImagesConfig,
    /// The largest build context, in bytes (`limits.max_upload_mb`).
    max_context: u64,
    data_dir: PathBuf,
    installation: Id,
    registry: Arc<RegistrySync>,
    slots: Semaphore,
    tasks: Tasks,
    metrics: Arc<Metrics>,
}

impl Builder {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        engine: Arc<Engine>,
        clock: Arc<dyn Clock>,
        config: ImagesConfig,
        max_upload_mb: u64,
        data_dir: PathBuf,
        installation: Id,
        registry: Arc<RegistrySync>,
        tasks: Tasks,
        metrics: Arc<Metrics>,
    ) -> Builder {
        Builder {
            slots: Semaphore::new(config.max_parallel_builds as usize),
            max_context: max_upload_mb.saturating_mul(1024 * 1024),
            store,
            engine,
            clock,
            config,
            data_dir,
            installation,
            registry,
            tasks,
            metrics,
        }
    }

    /// Starts a build in the background (left PENDING at shutdown: resumed at the next start).
    pub fn start_build(self: &Arc<Self>, build: Id) {
        let builder = self.clone();
        self.tasks.spawn(async move { builder.run(build).await });
    }

    /// Removes a deleted image's build from the engine (what is left there is only a cache).
    pub async fn forget_engine_image(&self, image: &Image) {
        if let Ok(docker) = self.engine.client().await {
            let options = bollard::query_parameters::RemoveImageOptionsBuilder::new()
                .force(true)
                .build();
            if let Err(e) = docker.remove_image(&image.tag(), Some(options), None).await {
                tracing::debug!(image = %image.id, "removing the engine's image: {e}");
            }
        }
    }

    /// Restarts builds a previous run left pending (the server stopped mid-build).
    pub fn resume_pending_builds(self: &Arc<Self>) -> Result<()> {
        for build in pending_builds(&self.store)? {
            tracing::info!(build = %build.id, "resuming an interrupted build");
            self.start_build(build.id);
        }
        Ok(())
    }

    async fn run(&self, build_id: Id) {
        let Ok(_permit) = self.slots.acquire().await else {
            return;
        };
        let loaded = get_build(&self.store, build_id).and_then(|b| {
            let image = match &b {
                Some(b) => get_image(&self.store, b.image)?,
                None => None,
            };
            Ok((b, image))
        });
        let (mut build, image) = match loaded {
            Ok((Some(b), Some(i))) if b.state == BuildState::Pending => (b, i),
            Ok(_) => return,
            Err(e) => {
                tracing::error!(build = %build_id, "cannot load the build: {e}");
                return;
            }
        };
        let started = std::time::Instant::now();
        let mut output = String::new();
        let mut outcome = self.build_image(&image, &build, &mut output).await;
        let mut repository = None;
        if let Outcome::Success(_) = &outcome {
            match self.store_in_registry(&image).await {
                Ok(repo) => {
                    push_output(&mut output, &format!("stored in the registry as {repo}\n"));
                    repository = Some(repo);
                }
                Err(e) => {
                    outcome = Outcome::Failure(format!("storing the image in the registry: {e}"))
                }
            }
        }
        let built = match outcome {
            Outcome::Success(id) => {
                build.state = BuildState::Success;
                repository.map(|r| (id, r))
            }
            Outcome::Failed(error) => {
                build.state = BuildState::Failed;
                build.error = Some(error);
                None
            }
            Outcome::Failure(error) => {
                build.state = BuildState::Failure;
                build.error = Some(error);
                None
            }
        };
        build.output = output;
        build.finished = Some(self.clock.now());
        tracing::info!(build = %build.id, image = %image.id, state = ?build.state, "build finished");
        self.metrics
            .build_finished(build.state.as_str(), started.elapsed());
        if let Err(e) = finish_build(&self.store, &build, built) {
            tracing::error!(build = %build.id, "cannot record the build's end: {e}");
        }
    }

    /// Stores a built image in the registry as `<login>/<name>` (tags `latest` and the image id);
    /// returns the repository.
    async fn store_in_registry(&self, image: &Image) -> Result<String> {
        let owner = accounts::get_user(&self.store, image.owner)?
            .map(|u| u.login)
            .unwrap_or_else(|| image.owner.to_string());
        let mut repo = format!(
            "{}/{}",
            names::sanitize_component(&owner),
            names::sanitize_component(&image.name)
        );
        if meta::repo(&self.store, &repo)?.is_some_and(|r| r.owner != image.owner) {
            repo = format!("{repo}-{}", &image.id.to_string()[..12]);
        }
        let tags = vec!["latest".to_owned(), image.id.to_string()];
        self.registry
            .import_from_engine(&image.tag(), &repo, &tags, image.owner)
            .await?;
        Ok(repo)
    }

    async fn build_image(&self, image: &Image, build: &Build, output: &mut String) -> Outcome {
        let work = self
            .data_dir
            .join("tmp")
            .join(format!("build-{}", build.id));
        let _cleanup = RemoveDirOnDrop(work.clone());
        if let Err(e) = tokio::fs::create_dir_all(&work).await {
            return Outcome::Failure(format!("cannot create a work directory: {e}"));
        }

        let (context, exclude): (PathBuf, &[&str]) = match &image.repo_url {
            Some(url) => {
                let dest = work.join("repo");
                match clone::clone_repository(&self.config, url, &work, &dest, output).await {
                    Ok(()) => {}
                    Err(Error::Internal(e)) => return Outcome::Failure(e),
                    Err(e) => return failed(output, e.to_string()),
                }
                (dest, &[".git", ".hg"])
            }
            None => (context_dir(&self.data_dir, image), &[]),
        };
        let dockerfile_text = match read_dockerfile(&context, self.max_context).await {
            Ok(text) => text,
            Err(Error::Internal(e)) => return Outcome::Failure(e),
            Err(e) => return failed(output, e.to_string()),
        };
        if let Err(why) = dockerfile::check(&dockerfile_text) {
            return failed(output, why);
        }

        let tar_path = work.join("context.tar");
        let max = self.max_context;
        let tarred = {
            let (context, tar_path) = (context.clone(), tar_path.clone());
            let exclude: Vec<String> = exclude.iter().map(|s| s.to_string()).collect();
            tokio::task::spawn_blocking(move || tar_context(&context, &tar_path, &exclude)).await
        };
        match tarred {
            Ok(Ok(size)) if size > max => {
                return Outcome::Failed(format!(
                    "the build context is {} MiB, over the limit of {} MiB (limits.max_upload_mb)",
                    size >> 20,
                    max >> 20
                ));
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Outcome::Failure(format!("cannot pack the build context: {e}")),
            Err(e) => return Outcome::Failure(format!("cannot pack the build context: {e}")),
        }

        let docker = match self.engine.client().await {
            Ok(d) => d,
            Err(e) => return Outcome::Failure(e.to_string()),
        };
        if let Err(outcome) = self.check_images(&docker, &dockerfile_text, output).await {
            return outcome;
        }
        let file = match tokio::fs::File::open(&tar_path).await {
            Ok(f) => f,
            Err(e) => return Outcome::Failure(format!("cannot read the build context: {e}")),
        };
        let body = bollard::body_try_stream(tokio_util::io::ReaderStream::new(file));
        let tag = image.tag();
        // Few labels: the legacy builder adds a build step for each.
        let labels: HashMap<String, String> = super::labels(
            &self.installation,
            &[("dtaas.image", &image.id.to_string())],
        );
        let mut options = BuildImageOptionsBuilder::new()
            .dockerfile("Dockerfile")
            .t(&tag)
            .rm(true)
            .forcerm(true)
            .nocache(image.nocache)
            .labels(&labels)
            .networkmode(&self.config.build_network);
        if let Some(bytes) = memory_limit(self.config.build_memory_mb) {
            // No swap beyond the memory limit.
            options = options.memory(bytes).memswap(bytes);
        }
        if let Some(quota) = cpu_quota(self.config.build_cpus) {
            options = options.cpuperiod(CPU_PERIOD).cpuquota(quota);
        }
        let options = options.build();
        let mut stream = docker.build_image(options, None, Some(body));
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(text) = info.stream.as_deref().or(info.status.as_deref()) {
                        push_output(output, text);
                    }
                    if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                        push_output(output, &detail);
                        return Outcome::Failed(detail);
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    push_output(output, &error);
                    return Outcome::Failed(error);
                }
                // The build's fault (the engine's one rule, `engine::classify`).
                Err(e) if matches!(super::classify(&e), Fault::Request | Fault::Conflict) => {
                    let message = super::engine_message(&e);
                    push_output(output, &message);
                    return Outcome::Failed(message);
                }
                Err(e) => {
                    self.engine.reset().await;
                    return Outcome::Failure(format!(
                        "the Docker engine failed during the build: {e}"
                    ));
                }
            }
        }
        match docker.inspect_image(&tag).await {
            Ok(inspect) => match inspect.id {
                Some(id) => Outcome::Success(id),
                None => Outcome::Failure("the engine reported no id for the image".into()),
            },
            Err(e) => Outcome::Failure(format!("the built image cannot be found: {e}")),
        }
    }
}

/// Packs `dir` into a tar file at `out`, skipping top-level `exclude` names; returns its size.
fn tar_context(dir: &Path, out: &Path, exclude: &[String]) -> std::io::Result<u64> {
    let file = std::fs::File::create(out)?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    tar.follow_symlinks(false);
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if exclude.iter().any(|x| name == x.as_str()) {
            continue;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            tar.append_dir_all(&name, &path)?;
        } else {
            tar.append_path_with_name(&path, &name)?;
        }
    }
    tar.into_inner()?
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    std::fs::metadata(out).map(|m| m.len())
}

impl Builder {
    /// Refuses a build whose images would make the engine reach the network on the user's
    /// behalf: a base image (`FROM`) with an `ONBUILD ADD` from the network, or an image that is
    /// not on the engine and would be pulled from a registry at a refused address.
    async fn check_images(
        &self,
        docker: &bollard::Docker,
        dockerfile_text: &str,
        output: &mut String,
    ) -> std::result::Result<(), Outcome> {
        let rules = Rules::new(&self.config.allowed_networks);
        for image in dockerfile::images(dockerfile_text) {
            let reference = &image.reference;
            match docker.inspect_image(reference).await {
                Ok(inspect) => {
                    let triggers = inspect.config.and_then(|c| c.on_build).unwrap_or_default();
                    for trigger in triggers.iter().filter(|_| image.base) {
                        if let Err(why) = dockerfile::check_instruction(trigger) {
                            return Err(failed(
                                output,
                                format!(
                                    "Dockerfile line {}: the image {reference} has an ONBUILD \
                                     trigger this build would run: {why}",
                                    image.line
                                ),
                            ));
                        }
                    }
                }
                Err(e) if super::is_not_found(&e) => {
                    let Some((host, port)) = dockerfile::registry_host(reference) else {
                        continue;
                    };
                    if let Err(e) = rules.resolve(&host, port.unwrap_or(443)).await {
                        return Err(failed(
                            output,
                            format!(
                                "Dockerfile line {}: the image {reference} is not on the \
                                 appliance, and the engine would pull it from the registry \
                                 {host}: {e}",
                                image.line
                            ),
                        ));
                    }
                }
                // A reference the engine cannot read: the build fails on it with its message.
                Err(e) if matches!(super::classify(&e), Fault::Request | Fault::Conflict) => {}
                Err(e) => {
                    self.engine.reset().await;
                    return Err(Outcome::Failure(format!(
                        "the Docker engine failed inspecting {reference}: {e}"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// A FAILED build, its reason also in the output.
fn failed(output: &mut String, why: String) -> Outcome {
    push_output(output, &format!("{why}\n"));
    Outcome::Failed(why)
}

/// Reads the context's Dockerfile: a regular file at its top (a link is refused: the check
/// must read what the engine reads), at most `max` bytes.
async fn read_dockerfile(context: &Path, max: u64) -> Result<String> {
    let path = context.join("Dockerfile");
    let meta = match tokio::fs::symlink_metadata(&path).await {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::bad_request(
                "there is no Dockerfile at the top of the build context (the repository)",
            ));
        }
        Err(e) => return Err(Error::internal(format!("cannot read the Dockerfile: {e}"))),
    };
    if meta.file_type().is_symlink() {
        return Err(Error::bad_request(
            "the Dockerfile is a symbolic link; it must be a regular file",
        ));
    }
    if !meta.is_file() {
        return Err(Error::bad_request(
            "there is no Dockerfile at the top of the build context (the repository)",
        ));
    }
    if meta.len() > max {
        return Err(Error::bad_request(
            "the Dockerfile is larger than the build context limit",
        ));
    }
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| Error::internal(format!("cannot read the Dockerfile: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The CFS period of a build's CPU limit, in microseconds.
const CPU_PERIOD: i32 = 100_000;

/// `images.build_memory_mb` in bytes for the engine (0: no limit). The engine API's field
/// (as the client types it) is 32 bits wide: larger limits are capped just under 2 GiB.
fn memory_limit(mb: u64) -> Option<i32> {
    (mb > 0).then(|| i32::try_from(mb.saturating_mul(1024 * 1024)).unwrap_or(i32::MAX))
}

/// `images.build_cpus` as a CFS quota per [`CPU_PERIOD`] (0 or less: no limit; at least 1 ms).
fn cpu_quota(cpus: f64) -> Option<i32> {
    if cpus.is_nan() || cpus <= 0.0 || !cpus.is_finite() {
        return None;
    }
    let quota = (cpus * f64::from(CPU_PERIOD)).round();
    Some(if quota >= f64::from(i32::MAX) {
        i32::MAX
    } else {
        (quota as i32).max(1000)
    })
}

fn push_output(output: &mut String, text: &str) {
    output.push_str(text);
    if output.len() > MAX_OUTPUT {
        let mut cut = output.len() - MAX_OUTPUT;
        while !output.is_char_boundary(cut) {
            cut += 1;
        }
        output.replace_range(..cut, "");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_limits_for_the_engine() {
        assert_eq!(memory_limit(0), None);
        assert_eq!(memory_limit(512), Some(512 * 1024 * 1024));
        assert_eq!(memory_limit(2048), Some(i32::MAX));
        assert_eq!(cpu_quota(1.0), Some(100_000));
        assert_eq!(cpu_quota(0.5), Some(50_000));
        assert_eq!(cpu_quota(0.0), None);
        assert_eq!(cpu_quota(-1.0), None);
        assert_eq!(cpu_quota(f64::NAN), None);
        assert_eq!(cpu_quota(0.001), Some(1000));
    }
}
