//! `dtaas image ...`: the kabuto flow's images, built on the appliance (`/v1/images`) from a
//! Dockerfile and the files next to it, or from a repository; a build is followed until it
//! ends (`/v1/builds/{id}`), its output shown as it grows.

use super::http::{Api, Payload, sanitize};
use super::logs::printable;
use super::multipart::Multipart;
use super::output::{at, say, time};
use super::resources::find_image;
use super::{Ctx, segment};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const EXAMPLES: &str = "Examples:
  dtaas image build tool ./tool        # ./tool/Dockerfile, the other files in ./tool attached
  dtaas image build tool -f Dockerfile --attach script.sh --attach data.csv
  dtaas image build tool --repo https://git.example.org/alice/tool.git
  dtaas image rebuild tool --no-cache
  dtaas image show tool
  dtaas image delete tool";

/// How often a running build is asked about.
const POLL: Duration = Duration::from_millis(500);

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Build an image on the appliance from a Dockerfile and its attachments, or from a
    /// repository, and follow the build.
    #[command(after_help = "Examples:
  dtaas image build tool ./tool
  dtaas image build tool -f Dockerfile --attach script.sh
  dtaas image build tool --repo https://git.example.org/alice/tool.git --detach")]
    Build {
        /// The image's name.
        name: String,
        #[command(flatten)]
        source: Source,
    },
    /// Build an image again: as it is, or with a new Dockerfile, attachments or repository.
    #[command(after_help = "Examples:
  dtaas image rebuild tool
  dtaas image rebuild tool ./tool --no-cache")]
    Rebuild {
        /// The image: id or name.
        image: String,
        #[command(flatten)]
        source: Source,
    },
    /// Show an image, and why its last build failed when it did.
    #[command(after_help = "Examples:\n  dtaas image show tool\n  dtaas image show tool --json")]
    Show {
        /// The image: id or name.
        image: String,
    },
    /// Delete an image (jobs that use it must be gone first).
    #[command(after_help = "Examples:\n  dtaas image delete tool")]
    Delete {
        /// The image: id or name.
        image: String,
    },
}

/// What an image is built from.
#[derive(Args, Debug)]
pub struct Source {
    /// A directory: its Dockerfile, and every other file in it as an attachment (hidden
    /// entries are skipped; subdirectories are refused, as attachments sit next to the
    /// Dockerfile).
    pub dir: Option<PathBuf>,
    /// The Dockerfile [default: DIR/Dockerfile].
    #[arg(short = 'f', long, value_name = "FILE")]
    pub dockerfile: Option<PathBuf>,
    /// A file to put next to the Dockerfile (again for more).
    #[arg(long = "attach", value_name = "FILE")]
    pub attach: Vec<PathBuf>,
    /// Build from this repository instead (`https://`, `git://`, `ssh://`, `user@host:path`).
    #[arg(long, value_name = "URL", conflicts_with_all = ["dir", "dockerfile"])]
    pub repo: Option<String>,
    /// Build without the engine's cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Start the build and return; `dtaas image show NAME` tells how it went.
    #[arg(long)]
    pub detach: bool,
}

/// The files of `dir` to attach: regular files but the Dockerfile, in name order.
fn dir_files(dir: &Path, dockerfile: &Path) -> Result<Vec<PathBuf>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("{}: cannot read it: {e}", dir.display()))?;
    let skip = std::fs::canonicalize(dockerfile).ok();
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: cannot read it: {e}", dir.display()))?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let meta = std::fs::metadata(&path)
            .map_err(|e| format!("{}: cannot read it: {e}", path.display()))?;
        if meta.is_dir() {
            return Err(format!(
                "{} is a directory: attachments are files next to the Dockerfile (give them \
                 with -f and --attach, or build from a repository with --repo)",
                path.display()
            ));
        }
        if skip.is_some() && std::fs::canonicalize(&path).ok() == skip {
            continue;
        }
        files.push(path);
    }
    files.sort();
    Ok(files)
}

/// The request body for a build: JSON for a repository (or a rebuild as it is), else a form
/// with the Dockerfile and the attachments as files.
fn build_body(name: Option<&str>, source: &Source, new: bool) -> Result<Payload, String> {
    if let Some(url) = &source.repo {
        if !source.attach.is_empty() {
            let mut form = Multipart::new();
            if let Some(n) = name {
                form.text("name", n);
            }
            form.text("repo_url", url);
            form.text("nocache", if source.no_cache { "true" } else { "false" });
            for file in &source.attach {
                form.file("attachments", file)?;
            }
            return Ok(form.into_payload());
        }
        let mut body = json!({"repo_url": url, "nocache": source.no_cache});
        if let Some(n) = name {
            body["name"] = json!(n);
        }
        return Ok(Payload::Json(body));
    }
    let dockerfile = match (&source.dockerfile, &source.dir) {
        (Some(f), _) => Some(f.clone()),
        (None, Some(dir)) => Some(dir.join("Dockerfile")),
        (None, None) => None,
    };
    let mut attachments = Vec::new();
    if let Some(dir) = &source.dir {
        let df = dockerfile.clone().unwrap_or_else(|| dir.join("Dockerfile"));
        attachments.extend(dir_files(dir, &df)?);
    }
    attachments.extend(source.attach.iter().cloned());
    let mut seen = std::collections::BTreeSet::new();
    for file in &attachments {
        let base = file.file_name().map(|n| n.to_string_lossy().into_owned());
        if let Some(b) = base
            && !seen.insert(b.clone())
        {
            return Err(format!(
                "two attachments are named {b:?}: attachments sit side by side, so their \
                 names must differ"
            ));
        }
    }
    if dockerfile.is_none() && attachments.is_empty() {
        if new {
            return Err(
                "what to build? Give a directory with a Dockerfile, -f DOCKERFILE, or --repo URL"
                    .into(),
            );
        }
        return Ok(Payload::Json(json!({"nocache": source.no_cache})));
    }
    let mut form = Multipart::new();
    if let Some(n) = name {
        form.text("name", n);
    }
    form.text("nocache", if source.no_cache { "true" } else { "false" });
    if let Some(df) = &dockerfile {
        let text = std::fs::read_to_string(df)
            .map_err(|e| format!("{}: cannot read the Dockerfile: {e}", df.display()))?;
        form.text("dockerfile", &text);
    }
    for file in &attachments {
        form.file("attachments", file)?;
    }
    Ok(form.into_payload())
}

/// Follows a build until it ends, printing its output to standard error as it grows; the
/// build as it ended.
async fn follow(api: &Api, build: &str) -> Result<Value, String> {
    let terminal = std::io::stderr().is_terminal();
    let mut shown = 0usize;
    loop {
        let b = api.get(&format!("/v1/builds/{}", segment(build))).await?;
        let output = b["output"].as_str().unwrap_or_default();
        if output.len() > shown && output.is_char_boundary(shown) {
            eprint!("{}", printable(&output[shown..], terminal));
            shown = output.len();
        }
        if b["state"].as_str() != Some("PENDING") {
            if shown > 0 && !output.ends_with('\n') {
                eprintln!();
            }
            return Ok(b);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Starts a build (`path`, `body`) and, unless detached, follows it to its end.
async fn start(
    ctx: &Ctx,
    api: &Api,
    path: &str,
    body: Payload,
    name: &str,
    detach: bool,
) -> Result<(), String> {
    api.require_key()?;
    let started = Instant::now();
    let build = api.call(hyper::Method::POST, path, body).await?;
    let build_id = at(&build, "/id");
    let image_id = at(&build, "/image");
    let name = sanitize(name, 200);
    if detach {
        ctx.out.done(
            &build,
            &format!(
                "Building image {name} ({image_id}): build {build_id}. How it goes: dtaas image \
                 show {image_id}"
            ),
        );
        return Ok(());
    }
    let ended = follow(api, &build_id).await?;
    if ended["state"].as_str() == Some("SUCCESS") {
        let image = api
            .get(&format!("/v1/images/{}", segment(&image_id)))
            .await?;
        if ctx.out.json {
            ctx.out.print_json(&json!({"build": ended, "image": image}));
        } else {
            say(&format!(
                "Built image {name} ({image_id}) in {:.1} s; the registry holds it as {}. \
                 Use it: dtaas job add PIPELINE --image {image_id} -- COMMAND",
                started.elapsed().as_secs_f64(),
                at(&image, "/repository"),
            ));
        }
        return Ok(());
    }
    if ctx.out.json {
        ctx.out.print_json(&json!({"build": ended}));
    }
    Err(format!(
        "the build of image {name} ({image_id}) failed: {}",
        sanitize(ended["error"].as_str().unwrap_or("no reason given"), 2000)
    ))
}

pub async fn run(ctx: &Ctx, command: ImageCommand) -> Result<(), String> {
    let api = ctx.api()?;
    match command {
        ImageCommand::Build { name, source } => {
            let body = build_body(Some(&name), &source, true)?;
            start(ctx, &api, "/v1/images", body, &name, source.detach).await
        }
        ImageCommand::Rebuild { image, source } => {
            let found = find_image(&api, &image).await?;
            let id = at(&found, "/id");
            let body = build_body(None, &source, false)?;
            let path = format!("/v1/images/{}/builds", segment(&id));
            start(ctx, &api, &path, body, &at(&found, "/name"), source.detach).await
        }
        ImageCommand::Show { image } => {
            let i = find_image(&api, &image).await?;
            if ctx.out.json {
                ctx.out.print_json(&i);
                return Ok(());
            }
            let rows: Vec<(&str, String)> = vec![
                ("id", at(&i, "/id")),
                ("name", at(&i, "/name")),
                ("state", at(&i, "/state")),
                ("built", time(&i, "/built")),
                ("registry", at(&i, "/repository")),
                ("repo_url", at(&i, "/repo_url")),
                ("attached", at(&i, "/attachments")),
                ("created", time(&i, "/created")),
                ("last build", at(&i, "/last_build")),
            ];
            super::output::fields(&rows);
            if matches!(i["state"].as_str(), Some("FAILED" | "FAILURE"))
                && let Some(build) = i["last_build"].as_str()
            {
                let b = api.get(&format!("/v1/builds/{}", segment(build))).await?;
                say(&format!(
                    "The last build failed: {}",
                    sanitize(b["error"].as_str().unwrap_or("no reason given"), 2000)
                ));
            }
            Ok(())
        }
        ImageCommand::Delete { image } => {
            let i = find_image(&api, &image).await?;
            let id = at(&i, "/id");
            api.delete(&format!("/v1/images/{}", segment(&id))).await?;
            ctx.out.done(
                &json!({"deleted": id}),
                &format!("Deleted image {} ({id}).", at(&i, "/name")),
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(dir: Option<&Path>) -> Source {
        Source {
            dir: dir.map(Path::to_owned),
            dockerfile: None,
            attach: Vec::new(),
            repo: None,
            no_cache: false,
            detach: false,
        }
    }

    #[test]
    fn a_directory_gives_its_dockerfile_and_files_and_refuses_subdirectories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM busybox\n").unwrap();
        std::fs::write(dir.path().join("b.sh"), "echo").unwrap();
        std::fs::write(dir.path().join("a.txt"), "a").unwrap();
        std::fs::write(dir.path().join(".hidden"), "h").unwrap();
        let files = dir_files(dir.path(), &dir.path().join("Dockerfile")).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.txt", "b.sh"]);
        assert!(matches!(
            build_body(Some("x"), &source(Some(dir.path())), true).unwrap(),
            Payload::Stream { content_type, .. } if content_type.starts_with("multipart/form-data")
        ));
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let e = build_body(Some("x"), &source(Some(dir.path())), true)
            .err()
            .unwrap();
        assert!(e.contains("is a directory"), "{e}");
    }

    #[test]
    fn nothing_to_build_is_an_error_for_a_new_image_and_as_it_is_for_a_rebuild() {
        let e = build_body(Some("x"), &source(None), true).err().unwrap();
        assert!(e.contains("what to build"), "{e}");
        assert!(matches!(
            build_body(None, &source(None), false).unwrap(),
            Payload::Json(_)
        ));
        let mut twice = source(None);
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(dir.path().join("x.sh"), "1").unwrap();
        std::fs::write(sub.join("x.sh"), "2").unwrap();
        twice.attach = vec![dir.path().join("x.sh"), sub.join("x.sh")];
        let e = build_body(Some("x"), &twice, true).err().unwrap();
        assert!(e.contains("two attachments"), "{e}");
    }
}
