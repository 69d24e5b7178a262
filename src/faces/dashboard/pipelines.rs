//! The pipelines and jobs pages: pipelines the viewer may read, creating one, its jobs in the
//! order they run (add with attachments, move up and down, remove, submit, kill), the jobs
//! list, and a job's page with its usage, its live log and its result. The same domain calls
//! as `/v1/pipelines` and `/v1/jobs` (`faces::v1::pipelines`, `faces::v1::jobs`), so the one
//! authorization check decides what is shown and done.

use super::format;
use super::html;
use super::images::{FilesForm, filled, name_filter};
use super::page::{CsrfForm, Layout, PAGE_SIZE, Paging, Viewer};
use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::core::page::{Page, PageRequest};
use crate::domains::authz::{Capability, Principal};
use crate::domains::images;
use crate::domains::jobs::{self, Job, JobFilter, JobState, NewJob, Pipeline, PipelineEdit};
use crate::domains::logs;
use crate::faces::download::result_zip;
use crate::faces::errors::parse_id;
use crate::faces::listing::ListQuery;
use crate::faces::params::Path;
use crate::faces::state::App;
use askama::Template;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{Html, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use std::collections::HashMap;

pub fn routes() -> Router<App> {
    // Adding a job takes files: the router's body limit is lifted, the parts are counted
    // against `limits.max_upload_mb` as they stream to disk (`images::FilesForm`).
    let with_files = Router::new()
        .route("/ui/pipelines/{id}/jobs", post(add_job))
        .layer(DefaultBodyLimit::disable());
    Router::new()
        .merge(with_files)
        .route("/ui/pipelines", get(list).post(create))
        .route("/ui/pipelines/{id}", get(pipeline_page))
        .route("/ui/pipelines/{id}/move", post(move_job))
        .route("/ui/pipelines/{id}/submit", post(submit))
        .route("/ui/pipelines/{id}/delete", post(delete))
        .route("/ui/jobs", get(job_list))
        .route("/ui/jobs/{id}", get(job_page))
        .route("/ui/jobs/{id}/kill", post(kill))
        .route("/ui/jobs/{id}/remove", post(remove))
        .route("/ui/jobs/{id}/result", get(result))
}

/// How many images the job form's select offers, and pipelines the jobs filter offers.
const CHOICES: usize = 500;

/// How many stored log lines a job's page shows (the last ones).
const LOG_TAIL: usize = 1000;

/// The badge class of a job state.
fn state_class(state: JobState) -> &'static str {
    match state {
        JobState::Ready => "",
        JobState::InQueue | JobState::Running => "warn",
        JobState::Done => "ok",
        JobState::Failed | JobState::Cancelled => "bad",
    }
}

/// A choice of a select: value, label, chosen.
struct Choice {
    value: String,
    label: String,
    chosen: bool,
}

/// An object's name when the viewer may read it, else its short id.
fn image_name(app: &App, p: &Principal, id: Id, cache: &mut HashMap<Id, String>) -> String {
    cache
        .entry(id)
        .or_insert_with(|| {
            images::image_for(&app.store, p, id, Capability::Read)
                .map_or_else(|_| format::short(&id), |i| i.name)
        })
        .clone()
}

fn pipeline_name(app: &App, p: &Principal, id: Id, cache: &mut HashMap<Id, String>) -> String {
    cache
        .entry(id)
        .or_insert_with(|| {
            jobs::pipeline_for(&app.store, p, id, Capability::Read)
                .map_or_else(|_| format::short(&id), |pl| pl.name)
        })
        .clone()
}

// ---- the pipelines list ----

struct PipelineRow {
    id: String,
    name: String,
    jobs: usize,
    queued: bool,
    created: String,
}

#[derive(Template)]
#[template(path = "dashboard/pipelines/list.html")]
struct ListPage {
    layout: Layout,
    name: String,
    rows: Vec<PipelineRow>,
    next: Option<String>,
}

/// The pipelines the viewer may read, 50 a page, by name; and the form that creates one.
async fn list(State(app): State<App>, viewer: Viewer, q: ListQuery) -> Result<Html<String>> {
    let name = name_filter(&q)?;
    let paging = Paging::of(&q)?;
    let (p, request, needle) = (viewer.principal.clone(), paging.request, name.clone());
    let page = app
        .listing(move |app| {
            if needle.is_empty() {
                jobs::list_pipelines(&app.store, &p, request)
            } else {
                jobs::search_pipelines(&app.store, &p, &needle, request)
            }
        })
        .await?;
    let next = paging.next("/ui/pipelines", &[("name", &name)], &page);
    let rows = page
        .items
        .into_iter()
        .map(|p| PipelineRow {
            id: p.id.to_string(),
            name: p.name,
            jobs: p.jobs.len(),
            queued: p.queued.is_some(),
            created: format::time(&p.creation_date),
        })
        .collect();
    html(&ListPage {
        layout: viewer.layout("Pipelines", "pipelines"),
        name,
        rows,
        next,
    })
}

#[derive(Deserialize)]
struct NewPipeline {
    name: String,
}

/// Creates an empty pipeline and shows it, to add jobs.
async fn create(
    State(app): State<App>,
    CsrfForm(viewer, form): CsrfForm<NewPipeline>,
) -> Result<Response> {
    let p = viewer.principal.clone();
    let pipeline = app
        .blocking(move |app| jobs::create_pipeline(&app.store, &p, &form.name, app.now()))
        .await?;
    Ok(viewer.see_other(
        &format!("/ui/pipelines/{}", pipeline.id),
        &format!("Created the pipeline {}: add its jobs.", pipeline.name),
    ))
}

// ---- a pipeline ----

struct JobRow {
    id: String,
    short: String,
    position: usize,
    command: String,
    image: String,
    image_id: String,
    state: &'static str,
    state_class: &'static str,
    active: bool,
    exit: String,
    first: bool,
    last: bool,
}

#[derive(Template)]
#[template(path = "dashboard/pipelines/pipeline.html")]
struct PipelinePage {
    layout: Layout,
    id: String,
    name: String,
    created: String,
    busy: bool,
    count: usize,
    rows: Vec<JobRow>,
    next: Option<String>,
    can_update: bool,
    can_delete: bool,
    images: Vec<Choice>,
    more_images: bool,
}

/// The page of a pipeline's jobs after `after` (by position: the order is the pipeline's, not
/// the ids'), and the id to continue after when more follow.
fn job_window(pipeline: &Pipeline, after: Option<Id>) -> Result<(usize, Vec<Id>, Option<Id>)> {
    let start = match after {
        None => 0,
        Some(id) => {
            pipeline.jobs.iter().position(|j| *j == id).ok_or_else(|| {
                Error::bad_request("cursor: not a job of this pipeline (its jobs changed)")
            })? + 1
        }
    };
    let end = (start + PAGE_SIZE).min(pipeline.jobs.len());
    let window = pipeline.jobs[start..end].to_vec();
    let next = (end < pipeline.jobs.len())
        .then(|| window.last().copied())
        .flatten();
    Ok((start, window, next))
}

/// A pipeline: its jobs in order (50 a page) with their states and the forms that change
/// them, the form that adds a job, submitting and deleting.
async fn pipeline_page(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    q: ListQuery,
) -> Result<Html<String>> {
    let id = parse_id(&id, "Pipeline")?;
    let paging = Paging::of(&q)?;
    let (p, after) = (viewer.principal.clone(), paging.request.after);
    let page = app
        .listing(move |app| {
            let pipeline = jobs::pipeline_for(&app.store, &p, id, Capability::Read)?;
            let (start, window, next) = job_window(&pipeline, after)?;
            let busy = jobs::is_busy(&app.store, &pipeline)?;
            let shown = Pipeline {
                jobs: window,
                ..pipeline.clone()
            };
            let mut names = HashMap::new();
            let count = pipeline.jobs.len();
            let rows = jobs::pipeline_jobs(&app.store, &shown)?
                .into_iter()
                .enumerate()
                .map(|(i, j)| {
                    let position = start + i + 1;
                    JobRow {
                        id: j.id.to_string(),
                        short: format::short(&j.id),
                        position,
                        command: j.command,
                        image: image_name(app, &p, j.image, &mut names),
                        image_id: j.image.to_string(),
                        state: j.state.as_str(),
                        state_class: state_class(j.state),
                        active: j.state.is_active(),
                        exit: j.response.map_or_else(|| "-".to_owned(), |r| r.to_string()),
                        first: position == 1,
                        last: position == count,
                    }
                })
                .collect();
            let can_update = jobs::pipeline_for(&app.store, &p, id, Capability::Update).is_ok();
            let can_delete = jobs::pipeline_for(&app.store, &p, id, Capability::Delete).is_ok();
            let (images, more_images) = if can_update {
                image_choices(app, &p)?
            } else {
                (Vec::new(), false)
            };
            Ok(PipelinePage {
                layout: viewer.layout(format!("Pipeline {}", pipeline.name), "pipelines"),
                id: pipeline.id.to_string(),
                name: pipeline.name,
                created: format::time(&pipeline.creation_date),
                busy,
                count,
                rows,
                next: next.map(|n| super::page::next_link(&format!("/ui/pipelines/{id}"), &[], n)),
                can_update,
                can_delete,
                images,
                more_images,
            })
        })
        .await?;
    html(&page)
}

/// The images a job may run in: those the viewer may read (the first [`CHOICES`]), by name;
/// and whether there are more.
fn image_choices(app: &App, p: &Principal) -> Result<(Vec<Choice>, bool)> {
    let page = images::list_images(&app.store, p, PageRequest::first(CHOICES))?;
    let mut choices: Vec<Choice> = page
        .items
        .into_iter()
        .map(|i| Choice {
            value: i.id.to_string(),
            label: match i.built {
                Some(_) => format!("{} ({})", i.name, format::short(&i.id)),
                None => format!("{} ({}, not built)", i.name, format::short(&i.id)),
            },
            chosen: false,
        })
        .collect();
    choices.sort_by_key(|c| c.label.to_lowercase());
    Ok((choices, page.next.is_some()))
}

/// Adds a job at the end of the pipeline: its command, its image, its attachments (under
/// `/inbox`).
async fn add_job(
    State(app): State<App>,
    Path(id): Path<String>,
    FilesForm(viewer, upload): FilesForm,
) -> Result<Response> {
    let pipeline = parse_id(&id, "Pipeline")?;
    upload.check_fields(&["csrf", "command", "image"], &["attachments"])?;
    let command = filled(&upload, "command")
        .ok_or_else(|| Error::bad_request("command: give the command the job runs"))?;
    let image = filled(&upload, "image")
        .ok_or_else(|| Error::bad_request("image: choose the image the job runs in"))?;
    let image = Id::parse(image.trim())
        .ok_or_else(|| Error::bad_request("image: not an image id (32 lowercase hex digits)"))?;
    let new = NewJob {
        command,
        image,
        attachments: upload.files("attachments")?,
    };
    let p = viewer.principal.clone();
    let job = app
        .blocking(move |app| {
            let job = jobs::add_job(&app.store, &app.data_dir, &p, pipeline, new, app.now());
            // The staged files go once the domain has moved them.
            drop(upload);
            job
        })
        .await?;
    Ok(viewer.see_other(
        &format!("/ui/pipelines/{pipeline}"),
        &format!("Added the job {}.", format::short(&job.id)),
    ))
}

#[derive(Deserialize)]
struct Move {
    job: String,
    direction: String,
}

/// Moves a job one place up or down in its pipeline (the whole order goes to the domain, which
/// refuses it if the jobs changed meanwhile or the pipeline is queued or running).
async fn move_job(
    State(app): State<App>,
    Path(id): Path<String>,
    CsrfForm(viewer, form): CsrfForm<Move>,
) -> Result<Response> {
    let pipeline = parse_id(&id, "Pipeline")?;
    let job = Id::parse(&form.job).ok_or_else(|| Error::bad_request("job: not a job id"))?;
    let up = match form.direction.as_str() {
        "up" => true,
        "down" => false,
        _ => return Err(Error::bad_request("direction: up or down")),
    };
    let p = viewer.principal.clone();
    let moved = app
        .blocking(move |app| {
            let current = jobs::pipeline_for(&app.store, &p, pipeline, Capability::Update)?;
            let mut order = current.jobs;
            let i = order
                .iter()
                .position(|j| *j == job)
                .ok_or_else(|| Error::not_found("Job not found in this pipeline"))?;
            let j = if up {
                i.checked_sub(1)
            } else {
                Some(i + 1).filter(|j| *j < order.len())
            };
            let Some(j) = j else {
                return Ok(false);
            };
            order.swap(i, j);
            let edit = PipelineEdit {
                name: None,
                order: Some(order),
            };
            jobs::edit_pipeline(&app.store, &p, pipeline, edit)?;
            Ok(true)
        })
        .await?;
    let notice = match (moved, up) {
        (true, true) => "Moved the job up.",
        (true, false) => "Moved the job down.",
        (false, true) => "The job is already first.",
        (false, false) => "The job is already last.",
    };
    Ok(viewer.see_other(&format!("/ui/pipelines/{pipeline}"), notice))
}

#[derive(Deserialize)]
struct Empty {}

/// Queues every job of the pipeline to run one after another.
async fn submit(
    State(app): State<App>,
    Path(id): Path<String>,
    CsrfForm(viewer, Empty {}): CsrfForm<Empty>,
) -> Result<Response> {
    let pipeline = parse_id(&id, "Pipeline")?;
    let p = viewer.principal.clone();
    let states = app
        .blocking(move |app| jobs::queue_pipeline(&app.store, &app.data_dir, &p, pipeline))
        .await?;
    app.jobs.wake();
    Ok(viewer.see_other(
        &format!("/ui/pipelines/{pipeline}"),
        &format!("Submitted: {} jobs queued.", states.len()),
    ))
}

/// Deletes a pipeline and its jobs; those still queued or running are killed first (as
/// `DELETE /v1/pipelines/{id}` does).
async fn delete(
    State(app): State<App>,
    Path(id): Path<String>,
    CsrfForm(viewer, Empty {}): CsrfForm<Empty>,
) -> Result<Response> {
    let id = parse_id(&id, "Pipeline")?;
    let p = viewer.principal.clone();
    let (pipeline, active) = app
        .blocking(move |app| {
            let pipeline = jobs::pipeline_for(&app.store, &p, id, Capability::Delete)?;
            let active: Vec<Id> = jobs::pipeline_jobs(&app.store, &pipeline)?
                .into_iter()
                .filter(|j| j.state.is_active())
                .map(|j| j.id)
                .collect();
            Ok((pipeline, active))
        })
        .await?;
    for job in active {
        app.jobs.stop_job(job, &viewer.principal.name).await?;
    }
    let p = viewer.principal.clone();
    let removed = app
        .blocking(move |app| jobs::delete_pipeline(&app.store, &p, id))
        .await?;
    for job in removed {
        app.jobs.remove_job_files(job).await;
    }
    Ok(viewer.see_other(
        "/ui/pipelines",
        &format!("Deleted the pipeline {}.", pipeline.name),
    ))
}

// ---- jobs ----

struct JobListRow {
    id: String,
    short: String,
    pipeline_id: String,
    pipeline: String,
    command: String,
    state: &'static str,
    state_class: &'static str,
    exit: String,
    created: String,
}

#[derive(Template)]
#[template(path = "dashboard/pipelines/jobs.html")]
struct JobsPage {
    layout: Layout,
    states: Vec<Choice>,
    pipelines: Vec<Choice>,
    rows: Vec<JobListRow>,
    next: Option<String>,
}

/// The jobs the viewer may read, 50 a page, by state and pipeline.
async fn job_list(State(app): State<App>, viewer: Viewer, q: ListQuery) -> Result<Html<String>> {
    let state = match q.get("state").unwrap_or("") {
        "" => None,
        s => Some(JobState::parse(s).ok_or_else(|| {
            let names: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
            Error::bad_request(format!("state: one of {}", names.join(", ")))
        })?),
    };
    let pipeline = match q.get("pipeline").unwrap_or("") {
        "" => None,
        s => Some(Id::parse(s).ok_or_else(|| Error::bad_request("pipeline: not an id"))?),
    };
    let paging = Paging::of(&q)?;
    let (p, request) = (viewer.principal.clone(), paging.request);
    let filter = JobFilter { state, pipeline };
    let (page, rows, pipelines): (Page<()>, _, _) = app
        .listing(move |app| {
            let page = jobs::list_jobs(&app.store, &p, filter, request)?;
            let mut names = HashMap::new();
            let rows: Vec<JobListRow> = page
                .items
                .iter()
                .map(|j| JobListRow {
                    id: j.id.to_string(),
                    short: format::short(&j.id),
                    pipeline_id: j.pipeline.to_string(),
                    pipeline: pipeline_name(app, &p, j.pipeline, &mut names),
                    command: j.command.clone(),
                    state: j.state.as_str(),
                    state_class: state_class(j.state),
                    exit: j.response.map_or_else(|| "-".to_owned(), |r| r.to_string()),
                    created: format::time(&j.creation_date),
                })
                .collect();
            let mut pipelines: Vec<Choice> =
                jobs::list_pipelines(&app.store, &p, PageRequest::first(CHOICES))?
                    .items
                    .into_iter()
                    .map(|pl| Choice {
                        chosen: Some(pl.id) == pipeline,
                        value: pl.id.to_string(),
                        label: format!("{} ({})", pl.name, format::short(&pl.id)),
                    })
                    .collect();
            pipelines.sort_by_key(|c| c.label.to_lowercase());
            // The filter's pipeline stays offered even beyond the first choices.
            if let Some(id) = pipeline
                && !pipelines.iter().any(|c| c.chosen)
            {
                pipelines.push(Choice {
                    value: id.to_string(),
                    label: pipeline_name(app, &p, id, &mut names),
                    chosen: true,
                });
            }
            Ok((page.map(|_| ()), rows, pipelines))
        })
        .await?;
    let state_name = state.map_or("", JobState::as_str);
    let pipeline_id = pipeline.map(|p| p.to_string()).unwrap_or_default();
    let next = paging.next(
        "/ui/jobs",
        &[("state", state_name), ("pipeline", &pipeline_id)],
        &page,
    );
    let states = JobState::ALL
        .iter()
        .map(|s| Choice {
            value: s.as_str().to_owned(),
            label: s.as_str().replace('_', " "),
            chosen: Some(*s) == state,
        })
        .collect();
    html(&JobsPage {
        layout: viewer.layout("Jobs", "pipelines"),
        states,
        pipelines,
        rows,
        next,
    })
}

#[derive(Template)]
#[template(path = "dashboard/pipelines/job.html")]
struct JobPage {
    layout: Layout,
    id: String,
    short: String,
    pipeline_id: String,
    pipeline: String,
    image_id: String,
    image: String,
    command: String,
    state: &'static str,
    state_class: &'static str,
    active: bool,
    has_result: bool,
    exit: String,
    error: Option<String>,
    created: String,
    started: String,
    finished: String,
    took: String,
    cpu: String,
    memory: String,
    io: String,
    attachments: String,
    log: String,
    /// How many stored lines precede those shown (`LOG_TAIL` are shown at most).
    log_cut: u64,
    can_update: bool,
}

/// A job: its state, exit code, error and usage, its log (the stored lines, then, with
/// JavaScript, the new ones as they come) and its result.
async fn job_page(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Html<String>> {
    let id = parse_id(&id, "Job")?;
    let p = viewer.principal.clone();
    let page = app
        .blocking(move |app| {
            let job = jobs::job_for(&app.store, &p, None, id, Capability::Read)?;
            let after = job.log.seq.saturating_sub(LOG_TAIL as u64);
            let lines = logs::read_logs(&app.store, id, after, LOG_TAIL)?;
            let log = lines
                .into_iter()
                .map(|l| l.logline)
                .collect::<Vec<_>>()
                .join("\n");
            let can_update = jobs::job_for(&app.store, &p, None, id, Capability::Update).is_ok();
            let mut names = HashMap::new();
            let pipeline = pipeline_name(app, &p, job.pipeline, &mut names);
            let image = image_name(app, &p, job.image, &mut names);
            Ok(job_view(
                viewer.layout(format!("Job {}", format::short(&job.id)), "pipelines"),
                job,
                pipeline,
                image,
                log,
                after,
                can_update,
            ))
        })
        .await?;
    html(&page)
}

fn job_view(
    layout: Layout,
    job: Job,
    pipeline: String,
    image: String,
    log: String,
    log_cut: u64,
    can_update: bool,
) -> JobPage {
    let took = match (job.started, job.finished) {
        (Some(s), Some(f)) => format::duration((f - s).num_seconds()),
        _ => "-".to_owned(),
    };
    JobPage {
        layout,
        id: job.id.to_string(),
        short: format::short(&job.id),
        pipeline_id: job.pipeline.to_string(),
        pipeline,
        image_id: job.image.to_string(),
        image,
        command: job.command,
        state: job.state.as_str(),
        state_class: state_class(job.state),
        active: job.state.is_active(),
        has_result: matches!(job.state, JobState::Done | JobState::Failed),
        exit: job
            .response
            .map_or_else(|| "-".to_owned(), |r| r.to_string()),
        error: job.error,
        created: format::time(&job.creation_date),
        started: format::maybe_time(job.started.as_ref()),
        finished: format::maybe_time(job.finished.as_ref()),
        took,
        cpu: format!("{:.2} s", job.used_cpu),
        memory: format::size(job.used_memory),
        io: format::size(job.used_io),
        attachments: if job.attachments.is_empty() {
            "-".to_owned()
        } else {
            job.attachments.join(", ")
        },
        log,
        log_cut,
        can_update,
    }
}

#[derive(Deserialize)]
struct Kill {
    /// Where the form was: `pipeline` goes back to the job's pipeline, else the job's page.
    #[serde(default)]
    back: String,
}

/// Kills a queued or running job.
async fn kill(
    State(app): State<App>,
    Path(id): Path<String>,
    CsrfForm(viewer, form): CsrfForm<Kill>,
) -> Result<Response> {
    let id = parse_id(&id, "Job")?;
    let job = jobs::job_for(&app.store, &viewer.principal, None, id, Capability::Update)?;
    let state = app.jobs.stop_job(id, &viewer.principal.name).await?;
    let to = if form.back == "pipeline" {
        format!("/ui/pipelines/{}", job.pipeline)
    } else {
        format!("/ui/jobs/{id}")
    };
    Ok(viewer.see_other(
        &to,
        &format!("The job {} is {}.", format::short(&id), state.as_str()),
    ))
}

/// Removes a job from its pipeline and deletes it, with its logs, attachments and results.
async fn remove(
    State(app): State<App>,
    Path(id): Path<String>,
    CsrfForm(viewer, Empty {}): CsrfForm<Empty>,
) -> Result<Response> {
    let id = parse_id(&id, "Job")?;
    let p = viewer.principal.clone();
    let job = app
        .blocking(move |app| jobs::remove_job(&app.store, &p, id))
        .await?;
    app.jobs.remove_job_files(id).await;
    Ok(viewer.see_other(
        &format!("/ui/pipelines/{}", job.pipeline),
        &format!("Removed the job {}.", format::short(&id)),
    ))
}

/// The job's outbox as a zip, once it is done or failed (the check of
/// `GET /v1/jobs/{id}/result`).
async fn result(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = parse_id(&id, "Job")?;
    let job = jobs::job_for(&app.store, &viewer.principal, None, id, Capability::Read)?;
    result_zip(&app, &job).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(jobs: usize) -> Pipeline {
        Pipeline {
            id: Id::new(),
            owner: Id::new(),
            name: "p".into(),
            creation_date: chrono::Utc::now(),
            jobs: (0..jobs).map(|_| Id::new()).collect(),
            queued: None,
        }
    }

    #[test]
    fn a_pipelines_jobs_page_by_position_not_by_id() {
        let mut p = pipeline(PAGE_SIZE + 3);
        // The order is the pipeline's: the last job runs first.
        p.jobs.rotate_right(1);
        let (start, first, next) = job_window(&p, None).unwrap();
        assert_eq!((start, first.len()), (0, PAGE_SIZE));
        assert_eq!(first[0], p.jobs[0]);
        assert_eq!(next, Some(p.jobs[PAGE_SIZE - 1]));
        let (start, rest, next) = job_window(&p, next).unwrap();
        assert_eq!((start, rest.as_slice()), (PAGE_SIZE, &p.jobs[PAGE_SIZE..]));
        assert_eq!(next, None);
        assert!(job_window(&p, Some(Id::new())).is_err());
        let (_, none, next) = job_window(&pipeline(0), None).unwrap();
        assert!(none.is_empty() && next.is_none());
    }
}
