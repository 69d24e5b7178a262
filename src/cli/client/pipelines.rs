//! `dtaas pipeline ...` and `dtaas job ...`: the kabuto flow's pipelines of jobs over
//! `/v1/pipelines` and `/v1/jobs`: create a pipeline, add jobs (an image, a command, files for
//! `/inbox`), submit, follow a job's log, download its results (`/outbox`, zipped).

use super::http::{Api, Payload, sanitize};
use super::multipart::Multipart;
use super::output::{Column, at, say, time};
use super::resources::{find_image, find_pipeline};
use super::{Ctx, is_id, segment};
use clap::Subcommand;
use http_body_util::BodyExt;
use hyper::Method;
use hyper::body::Incoming;
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

pub const PIPELINE_EXAMPLES: &str = "Examples:
  dtaas pipeline create nightly
  dtaas pipeline show nightly
  dtaas pipeline delete nightly";

pub const JOB_EXAMPLES: &str = "Examples:
  dtaas job add nightly --image tool -- python3 /inbox/run.py --fast
  dtaas job add nightly --image tool --attach data.csv 'sh -c \"wc -l /inbox/data.csv > /outbox/n\"'
  dtaas job submit nightly --wait
  dtaas job logs -f 0190b1f3c4d27a8e9b1c2d3e4f506172
  dtaas job result 0190b1f3c4d27a8e9b1c2d3e4f506172 -o result.zip";

/// How often `job submit --wait` asks about the jobs.
const POLL: Duration = Duration::from_millis(500);

#[derive(Subcommand, Debug)]
pub enum PipelineCommand {
    /// Create an empty pipeline; `dtaas job add` puts jobs in it.
    #[command(after_help = "Examples:\n  dtaas pipeline create nightly")]
    Create {
        /// Its name.
        name: String,
    },
    /// Show a pipeline and its jobs, in the order they run.
    #[command(
        after_help = "Examples:\n  dtaas pipeline show nightly\n  dtaas pipeline show nightly --json"
    )]
    Show {
        /// The pipeline: id or name.
        pipeline: String,
    },
    /// Delete a pipeline and its jobs (not while it is queued).
    #[command(after_help = "Examples:\n  dtaas pipeline delete nightly")]
    Delete {
        /// The pipeline: id or name.
        pipeline: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum JobCommand {
    /// Add a job to a pipeline: an image, a command, and files it finds under /inbox.
    #[command(after_help = "Examples:
  dtaas job add nightly --image tool -- echo hello
  dtaas job add nightly --image tool --attach data.csv 'sh -c \"wc -l /inbox/data.csv > /outbox/n\"'

One word is the command as a shell would read it (quotes and all); several words are each
quoted, so they reach the program as they are.")]
    Add {
        /// The pipeline: id or name.
        pipeline: String,
        /// The image it runs: id or name (`dtaas list images`).
        #[arg(long, value_name = "IMAGE")]
        image: String,
        /// A file the job finds under /inbox (again for more).
        #[arg(long = "attach", value_name = "FILE")]
        attach: Vec<PathBuf>,
        /// The command.
        #[arg(required = true, num_args = 1.., trailing_var_arg = true,
              allow_hyphen_values = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Submit a pipeline: its jobs are queued and run one after the other.
    #[command(
        after_help = "Examples:\n  dtaas job submit nightly\n  dtaas job submit nightly --wait"
    )]
    Submit {
        /// The pipeline: id or name.
        pipeline: String,
        /// Wait until every job has ended; the exit status is 1 unless they all succeeded.
        #[arg(long)]
        wait: bool,
    },
    /// Show a job: its state, exit code and what it used.
    #[command(after_help = "Examples:\n  dtaas job show 0190b1f3c4d27a8e9b1c2d3e4f506172")]
    Show {
        /// The job's id.
        job: String,
    },
    /// Print a job's log.
    #[command(after_help = "Examples:
  dtaas job logs 0190b1f3c4d27a8e9b1c2d3e4f506172
  dtaas job logs -f 0190b1f3c4d27a8e9b1c2d3e4f506172")]
    Logs {
        /// The job's id.
        job: String,
        /// Keep printing new lines until the job ends.
        #[arg(short, long)]
        follow: bool,
    },
    /// Download what a job left in /outbox, as a zip.
    #[command(after_help = "Examples:
  dtaas job result 0190b1f3c4d27a8e9b1c2d3e4f506172
  dtaas job result 0190b1f3c4d27a8e9b1c2d3e4f506172 -o - | bsdtar -xf -")]
    Result {
        /// The job's id.
        job: String,
        /// Where to write it (`-`: standard output) [default: JOB.zip].
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Replace the file when it exists.
        #[arg(long)]
        force: bool,
    },
    /// Stop a queued or running job.
    #[command(after_help = "Examples:\n  dtaas job kill 0190b1f3c4d27a8e9b1c2d3e4f506172")]
    Kill {
        /// The job's id.
        job: String,
    },
}

/// A word as a POSIX shell would read it back: as it is when it is plain, else in single
/// quotes (a quote inside as `'\''`).
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'_' | b'-' | b'.' | b'/' | b':' | b'=' | b'@' | b'%' | b'+' | b','
                )
        });
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The command string a job gets: one word as written, several quoted and joined.
fn command_text(words: &[String]) -> String {
    match words {
        [one] => one.clone(),
        many => many
            .iter()
            .map(|w| shell_word(w))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

fn job_id(which: &str) -> Result<&str, String> {
    if is_id(which) {
        Ok(which)
    } else {
        Err(format!(
            "{which:?} is not a job id (32 hex digits): `dtaas pipeline show PIPELINE` lists \
             its jobs"
        ))
    }
}

const STEP_COLUMNS: &[Column] = &[
    ("ID", |v| at(v, "/id")),
    ("STATE", |v| at(v, "/state")),
    ("EXIT", |v| at(v, "/response")),
    ("IMAGE", |v| at(v, "/image/id")),
    ("COMMAND", |v| at(v, "/command")),
];

pub async fn pipeline(ctx: &Ctx, command: PipelineCommand) -> Result<(), String> {
    let api = ctx.api()?;
    match command {
        PipelineCommand::Create { name } => {
            let p = api.post("/v1/pipelines", json!({"name": name})).await?;
            ctx.out.done(
                &p,
                &format!(
                    "Created pipeline {} ({}). Add jobs: dtaas job add {} --image IMAGE -- COMMAND",
                    at(&p, "/name"),
                    at(&p, "/id"),
                    at(&p, "/id")
                ),
            );
        }
        PipelineCommand::Show { pipeline } => {
            let p = find_pipeline(&api, &pipeline).await?;
            let mut jobs = Vec::new();
            for id in p["jobs"].as_array().map(Vec::as_slice).unwrap_or_default() {
                let id = id.as_str().unwrap_or_default();
                jobs.push(api.get(&format!("/v1/jobs/{}", segment(id))).await?);
            }
            if ctx.out.json {
                let mut whole = p.clone();
                whole["jobs"] = Value::Array(jobs);
                ctx.out.print_json(&whole);
                return Ok(());
            }
            say(&format!(
                "Pipeline {} ({}), created {}{}",
                at(&p, "/name"),
                at(&p, "/id"),
                time(&p, "/created"),
                if p["queued"].as_bool() == Some(true) {
                    ", queued"
                } else {
                    ""
                }
            ));
            ctx.out.list(
                &jobs,
                STEP_COLUMNS,
                "No jobs: dtaas job add PIPELINE --image IMAGE -- COMMAND",
            );
        }
        PipelineCommand::Delete { pipeline } => {
            let p = find_pipeline(&api, &pipeline).await?;
            let id = at(&p, "/id");
            api.delete(&format!("/v1/pipelines/{}", segment(&id)))
                .await?;
            ctx.out.done(
                &json!({"deleted": id}),
                &format!("Deleted pipeline {} ({id}) and its jobs.", at(&p, "/name")),
            );
        }
    }
    Ok(())
}

pub async fn job(ctx: &Ctx, command: JobCommand) -> Result<(), String> {
    let api = ctx.api()?;
    match command {
        JobCommand::Add {
            pipeline,
            image,
            attach,
            command,
        } => {
            let p = find_pipeline(&api, &pipeline).await?;
            let i = find_image(&api, &image).await?;
            let text = command_text(&command);
            let body = if attach.is_empty() {
                Payload::Json(json!({"command": text, "image": at(&i, "/id")}))
            } else {
                let mut form = Multipart::new();
                form.text("command", &text);
                form.text("image", &at(&i, "/id"));
                for file in &attach {
                    form.file("attachments", file)?;
                }
                form.into_payload()
            };
            api.require_key()?;
            let path = format!("/v1/pipelines/{}/jobs", segment(&at(&p, "/id")));
            let job = api.call(Method::POST, &path, body).await?;
            ctx.out.done(
                &job,
                &format!(
                    "Added job {} to pipeline {}: {} in {}. Submit it: dtaas job submit {}",
                    at(&job, "/id"),
                    at(&p, "/name"),
                    sanitize(&text, 200),
                    at(&i, "/name"),
                    at(&p, "/id")
                ),
            );
        }
        JobCommand::Submit { pipeline, wait } => {
            let p = find_pipeline(&api, &pipeline).await?;
            let id = at(&p, "/id");
            let submitted = api
                .post(&format!("/v1/pipelines/{}/submit", segment(&id)), json!({}))
                .await?;
            let ids: Vec<String> = submitted["jobs"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|j| at(j, "/id"))
                .collect();
            if !wait {
                let first = ids.first().cloned().unwrap_or_default();
                ctx.out.done(
                    &submitted,
                    &format!(
                        "Submitted pipeline {}: {} job(s) queued ({}). Follow one: dtaas job \
                         logs -f {first}",
                        at(&p, "/name"),
                        ids.len(),
                        ids.join(", ")
                    ),
                );
                return Ok(());
            }
            submit_and_wait(ctx, &api, &ids).await?;
        }
        JobCommand::Show { job } => {
            let j = api
                .get(&format!("/v1/jobs/{}", segment(job_id(&job)?)))
                .await?;
            if ctx.out.json {
                ctx.out.print_json(&j);
                return Ok(());
            }
            let rows: Vec<(&str, String)> = vec![
                ("id", at(&j, "/id")),
                ("state", at(&j, "/state")),
                ("exit code", at(&j, "/response")),
                ("error", at(&j, "/error")),
                ("pipeline", at(&j, "/pipeline/id")),
                ("image", at(&j, "/image/id")),
                ("command", at(&j, "/command")),
                ("inbox", at(&j, "/attachments")),
                ("created", time(&j, "/creation_date")),
                ("started", time(&j, "/started")),
                ("finished", time(&j, "/finished")),
                ("cpu", format!("{} s", at(&j, "/used_cpu"))),
                (
                    "memory",
                    j["used_memory"]
                        .as_u64()
                        .map_or("-".into(), super::progress::size),
                ),
                (
                    "io",
                    j["used_io"]
                        .as_u64()
                        .map_or("-".into(), super::progress::size),
                ),
            ];
            super::output::fields(&rows);
        }
        JobCommand::Logs { job, follow } => {
            let path = format!("/v1/jobs/{}/logs", segment(job_id(&job)?));
            super::logs::print(ctx, &api, &path, follow, "job").await?;
        }
        JobCommand::Result { job, output, force } => {
            result(ctx, &api, job_id(&job)?, output, force).await?;
        }
        JobCommand::Kill { job } => {
            let id = job_id(&job)?;
            let killed = api
                .post(&format!("/v1/jobs/{}/kill", segment(id)), json!({}))
                .await?;
            ctx.out.done(
                &killed,
                &format!("Job {id} is {} now.", at(&killed, "/state")),
            );
        }
    }
    Ok(())
}

/// Whether a job's state is final.
fn ended(state: &str) -> bool {
    matches!(state, "done" | "failed" | "cancelled")
}

/// Waits for the submitted jobs to end, telling of each as it does; an error unless every
/// one is done with exit code 0.
async fn submit_and_wait(ctx: &Ctx, api: &Api, ids: &[String]) -> Result<(), String> {
    let mut finals: Vec<Option<Value>> = vec![None; ids.len()];
    while finals.iter().any(Option::is_none) {
        for (i, id) in ids.iter().enumerate() {
            if finals[i].is_some() {
                continue;
            }
            let j = api.get(&format!("/v1/jobs/{}", segment(id))).await?;
            if ended(j["state"].as_str().unwrap_or_default()) {
                if !ctx.out.json {
                    say(&format!(
                        "Job {id}: {} (exit code {}).",
                        at(&j, "/state"),
                        at(&j, "/response")
                    ));
                }
                finals[i] = Some(j);
            } else {
                // Jobs run in order: the later ones wait for this one.
                break;
            }
        }
        if finals.iter().any(Option::is_none) {
            tokio::time::sleep(POLL).await;
        }
    }
    let jobs: Vec<Value> = finals.into_iter().flatten().collect();
    if ctx.out.json {
        ctx.out.print_json(&Value::Array(jobs.clone()));
    }
    let bad: Vec<String> = jobs
        .iter()
        .filter(|j| j["state"].as_str() != Some("done") || j["response"].as_i64() != Some(0))
        .map(|j| format!("{} {}", at(j, "/id"), at(j, "/state")))
        .collect();
    if bad.is_empty() {
        if !ctx.out.json {
            say(&format!("All {} job(s) done.", jobs.len()));
        }
        return Ok(());
    }
    Err(format!(
        "{} of {} job(s) did not succeed ({}): `dtaas job logs JOB` says why",
        bad.len(),
        jobs.len(),
        bad.join(", ")
    ))
}

/// Downloads a job's results to `output` (a file, or `-`), without replacing a file unless
/// `force`: written aside first, then moved into place whole.
async fn result(
    ctx: &Ctx,
    api: &Api,
    id: &str,
    output: Option<PathBuf>,
    force: bool,
) -> Result<(), String> {
    api.require_key()?;
    let to_stdout = output.as_deref() == Some(std::path::Path::new("-"));
    let target = output.unwrap_or_else(|| PathBuf::from(format!("{id}.zip")));
    if !to_stdout && !force && target.exists() {
        return Err(format!(
            "{} exists: give another file with -o, or --force to replace it",
            target.display()
        ));
    }
    let response = api
        .send(
            Method::GET,
            &format!("/v1/jobs/{}/result", segment(id)),
            Payload::Empty,
            &[(hyper::header::ACCEPT, "application/zip".to_owned())],
        )
        .await?;
    let response = api.check(response).await?;
    let mut body = response.into_body();
    if to_stdout {
        let mut out = std::io::stdout().lock();
        let written = copy_body(&mut body, &mut out).await?;
        eprintln!("(job {id}'s results: {})", super::progress::size(written));
        return Ok(());
    }
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let random: u64 = rand::random();
    let part = Part(dir.join(format!(".dtaas-result-{id}-{random:016x}")));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&part.0)
        .map_err(|e| format!("{}: cannot write there: {e}", dir.display()))?;
    let written = copy_body(&mut body, &mut file).await?;
    file.sync_all()
        .map_err(|e| format!("cannot write the results: {e}"))?;
    drop(file);
    // A hard link fails when the target exists: nothing another program wrote meanwhile is
    // replaced without --force.
    let placed = if force {
        std::fs::rename(&part.0, &target)
    } else {
        std::fs::hard_link(&part.0, &target)
    };
    placed.map_err(|e| format!("{}: cannot write it: {e}", target.display()))?;
    ctx.out.done(
        &json!({"job": id, "file": target.display().to_string(), "bytes": written}),
        &format!(
            "Wrote job {id}'s results to {} ({}).",
            target.display(),
            super::progress::size(written)
        ),
    );
    Ok(())
}

/// Writes a response body to `out` as it arrives; how many bytes.
async fn copy_body(body: &mut Incoming, out: &mut impl Write) -> Result<u64, String> {
    let mut written = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("the download broke off: {e}"))?;
        if let Ok(data) = frame.into_data() {
            out.write_all(&data)
                .map_err(|e| format!("cannot write the results: {e}"))?;
            written += data.len() as u64;
        }
    }
    out.flush()
        .map_err(|e| format!("cannot write the results: {e}"))?;
    Ok(written)
}

/// A file being written aside, removed unless it was moved into place.
struct Part(PathBuf);

impl Drop for Part {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_words_are_quoted_one_is_taken_as_written() {
        let words = |w: &[&str]| w.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(command_text(&words(&["echo", "hello"])), "echo hello");
        assert_eq!(
            command_text(&words(&["sh", "-c", "echo it's > /outbox/x"])),
            r"sh -c 'echo it'\''s > /outbox/x'"
        );
        assert_eq!(command_text(&words(&["echo", ""])), "echo ''");
        assert_eq!(
            command_text(&words(&["sh -c \"echo hi\""])),
            "sh -c \"echo hi\""
        );
        assert!(job_id("0190b1f3c4d27a8e9b1c2d3e4f506172").is_ok());
        assert!(job_id("nightly").is_err());
        assert!(ended("cancelled") && !ended("in_queue"));
    }
}
