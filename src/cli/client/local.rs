//! The local Docker engine as `push`, `pull` and `upload` use it, through its API (bollard; no
//! docker CLI): `DOCKER_HOST`, else the local socket, the API version negotiated (Docker 20.10
//! speaks 1.41). Images are inspected, built from a directory (its tar sent as the build
//! context), exported and loaded.

use super::http::sanitize;
use crate::core::fs::RemoveFileOnDrop;
use crate::core::id::Id;
use bollard::Docker;
use futures_util::StreamExt;
use indicatif::ProgressBar;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// The lines of a failed build's output shown with its error.
const TAIL_LINES: usize = 15;

/// The engine and where it is.
pub struct Local {
    pub docker: Docker,
    pub host: String,
}

/// Connects to the engine this machine's docker CLI would use.
pub async fn connect() -> Result<Local, String> {
    let host = crate::core::config::DockerConfig::default().host;
    let engine = crate::engine::Engine::new(&host);
    let docker = engine.client().await.map_err(|e| {
        format!(
            "cannot reach the Docker engine at {host} ({e}). Is Docker running, and may you use \
             its socket (the docker group)? DOCKER_HOST names another engine"
        )
    })?;
    Ok(Local { docker, host })
}

/// The engine's own words for a failure.
pub fn engine_message(e: &bollard::errors::Error) -> String {
    use bollard::errors::Error as E;
    let text = match e {
        E::DockerResponseServerError { message, .. } => message.clone(),
        E::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    };
    sanitize(text.trim(), 1000)
}

/// An image of the engine, as `push` needs it.
#[derive(Debug, Clone)]
pub struct LocalImage {
    /// Its id: the digest of its config.
    pub id: String,
    /// Its layers' diff ids, in order.
    pub diff_ids: Vec<String>,
    pub os: Option<String>,
}

/// The image `reference` names on the engine, if there is one.
pub async fn inspect(docker: &Docker, reference: &str) -> Result<Option<LocalImage>, String> {
    match docker.inspect_image(reference).await {
        Ok(image) => {
            let id = image
                .id
                .ok_or_else(|| format!("the engine gave no id for {reference}"))?;
            Ok(Some(LocalImage {
                id,
                diff_ids: image.root_fs.and_then(|r| r.layers).unwrap_or_default(),
                os: image.os,
            }))
        }
        Err(e) if crate::engine::is_not_found(&e) => Ok(None),
        Err(e) => Err(format!(
            "the Docker engine failed inspecting {reference}: {}",
            engine_message(&e)
        )),
    }
}

/// Tags image `id` as `reference` (`repo[:tag]`, `latest` by default).
pub async fn tag(docker: &Docker, id: &str, reference: &str) -> Result<(), String> {
    let (repo, tag, _) = super::registry::split_reference(reference);
    let options = bollard::query_parameters::TagImageOptionsBuilder::new()
        .repo(repo)
        .tag(tag.unwrap_or("latest"))
        .build();
    docker
        .tag_image(id, Some(options))
        .await
        .map_err(|e| format!("tagging {reference}: {}", engine_message(&e)))
}

/// Packs the build context: `context`'s files (links kept as links), plus the Dockerfile
/// under a name of its own when it lies outside. Returns the Dockerfile's name in the tar.
fn pack_context(context: &Path, dockerfile: &Path, out: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(out)?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    tar.follow_symlinks(false);
    let mut entries: Vec<_> = std::fs::read_dir(context)?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let (name, path) = (entry.file_name(), entry.path());
        if entry.file_type()?.is_dir() {
            tar.append_dir_all(&name, &path)?;
        } else {
            tar.append_path_with_name(&path, &name)?;
        }
    }
    let inside = dockerfile
        .strip_prefix(context)
        .ok()
        .and_then(|p| p.to_str())
        .map(str::to_owned);
    let name = match inside {
        Some(relative) if !relative.is_empty() => relative,
        _ => {
            let name = format!(".dtaas-Dockerfile-{}", Id::new());
            tar.append_path_with_name(dockerfile, &name)?;
            name
        }
    };
    tar.into_inner()?
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    Ok(name)
}

/// Builds `dockerfile` with `context` as `tag`; returns the image's id. The spinner shows the
/// build's steps; a failure carries the end of its output.
pub async fn build(
    docker: &Docker,
    context: &Path,
    dockerfile: &Path,
    tag: &str,
    bar: &ProgressBar,
) -> Result<String, String> {
    let canonical = |p: &Path| {
        p.canonicalize()
            .map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let context = canonical(context)?;
    let dockerfile = canonical(dockerfile)?;
    if !context.is_dir() {
        return Err(format!(
            "the context {} is not a directory",
            context.display()
        ));
    }
    if !dockerfile.is_file() {
        return Err(format!(
            "the Dockerfile {} is not a file",
            dockerfile.display()
        ));
    }
    let archive: PathBuf = std::env::temp_dir().join(format!("dtaas-context-{}.tar", Id::new()));
    let _cleanup = RemoveFileOnDrop(archive.clone());
    let name = {
        let (c, d, a) = (context.clone(), dockerfile.clone(), archive.clone());
        tokio::task::spawn_blocking(move || pack_context(&c, &d, &a))
            .await
            .map_err(|e| format!("packing the build context: {e}"))?
            .map_err(|e| format!("packing the build context {}: {e}", context.display()))?
    };
    let file = tokio::fs::File::open(&archive)
        .await
        .map_err(|e| format!("reading the build context: {e}"))?;
    let body = bollard::body_try_stream(tokio_util::io::ReaderStream::new(file));
    let options = bollard::query_parameters::BuildImageOptionsBuilder::new()
        .dockerfile(&name)
        .t(tag)
        .rm(true)
        .forcerm(true)
        .build();
    let mut tail: VecDeque<String> = VecDeque::new();
    let mut keep = |text: &str, bar: &ProgressBar| {
        for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
            let line = sanitize(line, 300);
            bar.set_message(sanitize(&line, 100));
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    };
    let failed = |why: String, tail: &VecDeque<String>| {
        let output: Vec<&str> = tail.iter().map(String::as_str).collect();
        format!(
            "building {tag} failed: {why}\n  {}\n  (the Dockerfile: {})",
            output.join("\n  "),
            dockerfile.display()
        )
    };
    let mut stream = docker.build_image(options, None, Some(body));
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(text) = info.stream.as_deref().or(info.status.as_deref()) {
                    keep(text, bar);
                }
                if let Some(why) = info.error_detail.and_then(|d| d.message) {
                    return Err(failed(sanitize(&why, 1000), &tail));
                }
            }
            Err(e) => return Err(failed(engine_message(&e), &tail)),
        }
    }
    match inspect(docker, tag).await? {
        Some(image) => Ok(image.id),
        None => Err(failed("the engine did not make the image".into(), &tail)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_is_packed_with_a_dockerfile_from_elsewhere() {
        let dir = std::env::temp_dir().join(format!("dtaas-pack-test-{}", Id::new()));
        let context = dir.join("ctx");
        std::fs::create_dir_all(context.join("sub")).unwrap();
        std::fs::write(context.join("Dockerfile"), "FROM x\n").unwrap();
        std::fs::write(context.join("sub").join("a.txt"), "a").unwrap();
        std::fs::write(dir.join("Other.Dockerfile"), "FROM y\n").unwrap();
        let out = dir.join("c.tar");

        let name = pack_context(&context, &context.join("Dockerfile"), &out).unwrap();
        assert_eq!(name, "Dockerfile");
        let names = |out: &Path| -> Vec<String> {
            let mut a = tar::Archive::new(std::fs::File::open(out).unwrap());
            a.entries()
                .unwrap()
                .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        let listed = names(&out);
        assert!(listed.contains(&"sub/a.txt".to_owned()), "{listed:?}");

        let name = pack_context(&context, &dir.join("Other.Dockerfile"), &out).unwrap();
        assert!(name.starts_with(".dtaas-Dockerfile-"));
        assert!(names(&out).contains(&name));
        let _ = std::fs::remove_dir_all(dir);
    }
}
