//! Running pipelines: the dispatcher, the pipeline runs, and the supervision of one job's
//! container from creation to removal.
//!
//! The database is the truth: the run queue and every job's state live in redb, so the runner
//! can be stopped at any point (graceful shutdown or SIGKILL) and pick up where it was. At start
//! it removes containers of this installation that no running job owns; then the dispatcher runs
//! the queue, and a job found `running` is re-attached to its container (which kept running, or
//! ended meanwhile and still holds its exit code, logs and outbox).
//!
//! A job's end, in order: logs drained, outbox saved, usage measured, final state committed
//! durably, container removed. A crash between two steps repeats only the steps after the last
//! one that reached the database.

use super::usage::{Probe, Usage};
use super::{
    Job, JobState, Next, cancel_rest, claim_next, inbox_dir, queued_pipelines, result_path,
    running_jobs, split_command, update_job,
};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::logs::{LogHub, append_note, follow_logs};
use crate::server::App;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptions, RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// How often the usage sampled while a job runs is saved.
const STATS_SAVE_EVERY: Duration = Duration::from_secs(2);

pub struct Runner {
    slots: Arc<Semaphore>,
    wake: Notify,
    active: Mutex<HashSet<Id>>,
    kills: Mutex<HashMap<Id, CancellationToken>>,
    pub hub: LogHub,
}

impl Runner {
    pub fn new(max_parallel: u32) -> Runner {
        Runner {
            slots: Arc::new(Semaphore::new(max_parallel as usize)),
            wake: Notify::new(),
            active: Mutex::new(HashSet::new()),
            kills: Mutex::new(HashMap::new()),
            hub: LogHub::default(),
        }
    }

    /// Tells the dispatcher that the queue changed.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Kills the container of a running job (its state was marked by `request_kill`).
    pub fn kill(&self, job: Id) {
        if let Some(token) = self
            .kills
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&job)
        {
            token.cancel();
        }
    }

    /// Whether the runner is still seeing a job through (its container may still exist).
    pub fn is_supervising(&self, job: Id) -> bool {
        self.kills
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&job)
    }

    fn register_kill(&self, job: Id) -> CancellationToken {
        let token = CancellationToken::new();
        self.kills
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(job, token.clone());
        token
    }

    fn unregister_kill(&self, job: Id) {
        self.kills
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&job);
    }
}

/// The name of a job's container.
pub fn container_name(job: Id) -> String {
    format!("dtaas-job-{job}")
}

/// Starts recovery and the dispatcher on the server's task tracker.
pub fn start(app: &App) {
    let task_app = app.clone();
    app.tasks.spawn(async move {
        let shutdown = task_app.shutdown.clone();
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = async {
                recover(&task_app).await;
                dispatch(&task_app).await;
            } => {}
        }
    });
}

async fn blocking<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&App) -> Result<T> + Send + 'static,
) -> Result<T> {
    app.blocking(f).await
}

/// Waits until the engine answers (jobs stay queued while it is down).
async fn engine(app: &App) -> Docker {
    let mut delay = Duration::from_millis(500);
    loop {
        match app.engine.client().await {
            Ok(d) => return d,
            Err(e) => {
                tracing::warn!("jobs wait for the engine: {e}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Removes containers of this installation that no running job owns (left by a crash after a
/// job's end was recorded, or by a job deleted meanwhile).
async fn recover(app: &App) {
    // Wait until the engine answers.
    engine(app).await;
    let running: HashSet<String> = match blocking(app, |app| running_jobs(&app.store)).await {
        Ok(jobs) => jobs.into_iter().map(|j| container_name(j.id)).collect(),
        Err(e) => {
            tracing::error!("recovery cannot read the jobs: {e}");
            return;
        }
    };
    if let Err(e) = app
        .engine
        .remove_orphans(&app.installation, "job", |name| running.contains(name))
        .await
    {
        tracing::warn!("recovery cannot list containers: {e}");
    }
}

async fn dispatch(app: &App) {
    loop {
        match blocking(app, |app| queued_pipelines(&app.store)).await {
            Ok(queued) => {
                for pipeline in queued {
                    let is_active = app
                        .runner
                        .active
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .contains(&pipeline);
                    if is_active {
                        continue;
                    }
                    let Ok(permit) = app.runner.slots.clone().try_acquire_owned() else {
                        break;
                    };
                    app.runner
                        .active
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(pipeline);
                    let task_app = app.clone();
                    app.tasks
                        .spawn(async move { run_pipeline(task_app, pipeline, permit).await });
                }
            }
            Err(e) => tracing::error!("cannot read the run queue: {e}"),
        }
        tokio::select! {
            _ = app.runner.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

async fn run_pipeline(app: App, pipeline: Id, permit: OwnedSemaphorePermit) {
    let shutdown = app.shutdown.clone();
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = run_jobs(&app, pipeline) => {}
    }
    drop(permit);
    app.runner
        .active
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&pipeline);
    app.runner.wake();
}

async fn run_jobs(app: &App, pipeline: Id) {
    loop {
        let docker = engine(app).await;
        let next = blocking(app, move |app| claim_next(&app.store, pipeline, app.now())).await;
        let (job, resume) = match next {
            Ok(Next::Finished) => return,
            Ok(Next::Start(job)) => (job, false),
            Ok(Next::Resume(job)) => (job, true),
            Err(e) => {
                tracing::error!(%pipeline, "cannot claim the next job: {e}");
                return;
            }
        };
        let job_id = job.id;
        let end = supervise(app, &docker, job, resume).await;
        app.runner.hub.forget(job_id);
        if end != JobState::Done {
            let reason = format!(
                "not run: job {job_id} before it in the pipeline {}",
                if end == JobState::Cancelled {
                    "was killed"
                } else {
                    "failed"
                }
            );
            if let Err(e) =
                blocking(app, move |app| cancel_rest(&app.store, pipeline, &reason)).await
            {
                tracing::error!(%pipeline, "cannot cancel the rest of the pipeline: {e}");
            }
        }
    }
}

/// What a job's container run came to.
struct Exit {
    code: i64,
    killed: bool,
}

/// Runs (or re-attaches to) one job's container until it is gone; returns the job's final state.
async fn supervise(app: &App, docker: &Docker, job: Job, resume: bool) -> JobState {
    let kill = app.runner.register_kill(job.id);
    let end = match supervise_inner(app, docker, &job, resume, &kill).await {
        Ok(state) => state,
        Err(e) => {
            tracing::error!(job = %job.id, "job failed in the appliance: {e}");
            let message = e.to_string();
            let note = message.clone();
            let id = job.id;
            let _ = blocking(app, move |app| append_note::<Job>(&app.store, id, &note)).await;
            let _ = finish(app, job.id, JobState::Failed, None, Some(message), None).await;
            remove_container(docker, &container_name(job.id)).await;
            JobState::Failed
        }
    };
    app.runner.unregister_kill(job.id);
    end
}

async fn supervise_inner(
    app: &App,
    docker: &Docker,
    job: &Job,
    resume: bool,
    kill: &CancellationToken,
) -> Result<JobState> {
    let name = container_name(job.id);
    let existing = docker.inspect_container(&name, None).await.ok();
    let started = existing
        .as_ref()
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| {
            s.started_at
                .as_deref()
                .is_some_and(|t| !t.starts_with("0001-01-01"))
        });
    let attach = resume && started;
    if !attach {
        if existing.is_some() {
            remove_container(docker, &name).await;
        }
        if let Some(state) = create_and_start(app, docker, job, &name, kill).await? {
            return Ok(state);
        }
    } else {
        tracing::info!(job = %job.id, "re-attaching to a job that ran through a restart");
    }

    // A kill asked for before the token existed.
    let id = job.id;
    if blocking(app, move |app| super::get_job(&app.store, id))
        .await?
        .is_some_and(|j| j.kill_requested)
    {
        kill.cancel();
    }

    let stop_stats = CancellationToken::new();
    let stats = tokio::spawn(poll_usage(
        app.clone(),
        docker.clone(),
        name.clone(),
        job.clone(),
        stop_stats.clone(),
    ));
    let logs = tokio::spawn(follow_logs::<Job>(
        app.clone(),
        docker.clone(),
        name.clone(),
        job.id,
        job.log.clone(),
        app.config.jobs.max_log_lines,
    ));
    let exit = wait_for_exit(docker, &name, kill).await?;
    stop_stats.cancel();
    let usage = stats.await.unwrap_or_default();
    if let Err(e) = logs.await {
        tracing::warn!(job = %job.id, "log follower ended badly: {e}");
    }
    let outbox_bytes = save_outbox(app, job.id).await?;
    let state = if exit.killed {
        JobState::Cancelled
    } else if exit.code == 0 {
        JobState::Done
    } else {
        JobState::Failed
    };
    let error = match state {
        JobState::Failed => Some(format!("the command exited with code {}", exit.code)),
        _ => None,
    };
    let usage = Usage {
        io: usage.io.max(outbox_bytes),
        ..usage
    };
    finish(app, job.id, state, Some(exit.code), error, Some(usage)).await?;
    remove_container(docker, &name).await;
    remove_tree(app, &super::outbox_dir(&app.data_dir, job.id)).await;
    Ok(state)
}

/// Creates and starts a job's container. `Some(state)` when the job ended before it ran.
async fn create_and_start(
    app: &App,
    docker: &Docker,
    job: &Job,
    name: &str,
    kill: &CancellationToken,
) -> Result<Option<JobState>> {
    let image_id = job.image;
    let image = blocking(app, move |app| {
        crate::images::get_image(&app.store, image_id)
    })
    .await?;
    let not_runnable = |why: String| async move {
        let id = job.id;
        let note = why.clone();
        blocking(app, move |app| append_note::<Job>(&app.store, id, &note)).await?;
        finish(app, id, JobState::Failed, None, Some(why), None).await?;
        Ok::<_, Error>(Some(JobState::Failed))
    };
    let Some(image) = image else {
        return not_runnable("the job's image was deleted".into()).await;
    };
    if image.docker_id.is_none() {
        return not_runnable("the job's image has no successful build".into()).await;
    }
    let argv = match split_command(&job.command) {
        Ok(argv) => argv,
        Err(e) => return not_runnable(e.to_string()).await,
    };
    let inbox = inbox_dir(&app.data_dir, job.id);
    tokio::fs::create_dir_all(&inbox)
        .await
        .map_err(|e| Error::internal(format!("creating the inbox: {e}")))?;
    let outbox = fresh_outbox(app, job.id).await?;

    let jobs = &app.config.jobs;
    let labels = crate::engine::labels(
        &app.installation,
        &[
            ("dtaas.kind", "job"),
            ("dtaas.job", &job.id.to_string()),
            ("dtaas.pipeline", &job.pipeline.to_string()),
            ("dtaas.owner", &job.owner.to_string()),
        ],
    );
    let body = ContainerCreateBody {
        image: Some(image.tag()),
        cmd: Some(argv),
        labels: Some(labels),
        host_config: Some(HostConfig {
            binds: Some(vec![
                format!("{}:/inbox:ro", inbox.display()),
                format!("{}:/outbox:rw", outbox.display()),
            ]),
            memory: Some(i64::try_from(jobs.memory_mb * 1024 * 1024).unwrap_or(i64::MAX)),
            nano_cpus: Some((jobs.cpus * 1e9) as i64),
            pids_limit: Some(jobs.pids),
            network_mode: Some(jobs.network.clone()),
            privileged: Some(false),
            security_opt: Some(vec!["no-new-privileges".into()]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::new().name(name).build();
    match docker
        .create_container(Some(options.clone()), body.clone())
        .await
    {
        Ok(_) => {}
        // Left by a run the server did not see to its end: replace it.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) => {
            remove_container(docker, name).await;
            docker
                .create_container(Some(options), body)
                .await
                .map_err(|e| engine_error("creating the job's container", e))?;
        }
        Err(e) => return Err(engine_error("creating the job's container", e)),
    }

    if kill.is_cancelled() {
        remove_container(docker, name).await;
        finish(app, job.id, JobState::Cancelled, None, None, None).await?;
        return Ok(Some(JobState::Cancelled));
    }
    if let Err(e) = docker.start_container(name, None).await {
        let message = match &e {
            bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
            other => other.to_string(),
        };
        remove_container(docker, name).await;
        let not_found = message.contains("not found") || message.contains("no such file");
        let code = if not_found { 127 } else { 126 };
        let note = format!("the command could not start: {message}");
        let id = job.id;
        let logged = note.clone();
        blocking(app, move |app| append_note::<Job>(&app.store, id, &logged)).await?;
        finish(app, job.id, JobState::Failed, Some(code), Some(note), None).await?;
        return Ok(Some(JobState::Failed));
    }
    Ok(None)
}

/// An empty outbox directory for a run, writable by whatever user the image runs as.
async fn fresh_outbox(app: &App, job: Id) -> Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = super::outbox_dir(&app.data_dir, job);
    if tokio::fs::symlink_metadata(&dir).await.is_ok() {
        remove_tree(app, &dir).await;
    }
    let io = |e: std::io::Error| Error::internal(format!("creating the outbox: {e}"));
    tokio::fs::create_dir_all(&dir).await.map_err(io)?;
    tokio::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
        .await
        .map_err(io)?;
    Ok(dir)
}

/// Removes a directory tree of the data directory. A container running as root may have left
/// directories a non-root server cannot empty: those are moved aside and removed by a short
/// container of the base image.
pub(crate) async fn remove_tree(app: &App, path: &std::path::Path) {
    let target = path.to_path_buf();
    let removed = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&target)).await;
    let error = match removed {
        Ok(Ok(())) => return,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => return,
        Ok(Err(e)) => e,
        Err(e) => {
            tracing::warn!("removing {}: {e}", path.display());
            return;
        }
    };
    let trash = app
        .data_dir
        .join("tmp")
        .join(format!("trash-{}", Id::new()));
    if let Err(e) = tokio::fs::rename(path, &trash).await {
        tracing::warn!(
            "cannot remove {} ({error}) nor move it aside: {e}",
            path.display()
        );
        return;
    }
    tracing::info!(
        "{} holds files of another user ({error}): removing them with a container",
        path.display()
    );
    let app = app.clone();
    app.tasks.clone().spawn(async move {
        if let Err(e) = remove_as_root(&app, &trash).await {
            tracing::warn!("cannot remove {}: {e}", trash.display());
        }
    });
}

async fn remove_as_root(app: &App, dir: &std::path::Path) -> Result<()> {
    let labels = crate::engine::labels(&app.installation, &[("dtaas.kind", "cleanup")]);
    let binds = vec![format!("{}:/trash", dir.display())];
    app.engine
        .run_utility(labels, &["rm", "-rf", "/trash"], binds)
        .await?;
    // The mount point itself is ours.
    let _ = tokio::fs::remove_dir(dir).await;
    Ok(())
}

fn engine_error(what: &str, e: bollard::errors::Error) -> Error {
    Error::EngineUnavailable(format!("{what}: {e}"))
}

/// Waits for the container to stop; kills it when asked.
async fn wait_for_exit(docker: &Docker, name: &str, kill: &CancellationToken) -> Result<Exit> {
    let mut killed = false;
    let mut wait = docker.wait_container(name, None);
    loop {
        tokio::select! {
            item = wait.next() => {
                return match item {
                    Some(Ok(r)) => Ok(Exit { code: r.status_code, killed }),
                    Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                        Ok(Exit { code, killed })
                    }
                    // The wait connection broke: ask the engine how the container ended.
                    Some(Err(_)) | None => {
                        let inspect = docker
                            .inspect_container(name, None)
                            .await
                            .map_err(|e| engine_error("inspecting the job's container", e))?;
                        let code = inspect.state.and_then(|s| s.exit_code).unwrap_or(-1);
                        Ok(Exit { code, killed })
                    }
                };
            }
            _ = kill.cancelled(), if !killed => {
                killed = true;
                if let Err(e) = docker.kill_container(name, None::<KillContainerOptions>).await {
                    tracing::warn!(container = name, "kill: {e}");
                }
            }
        }
    }
}

/// Removes a container and its anonymous volumes; a missing one is fine.
pub(crate) async fn remove_container(docker: &Docker, name: &str) {
    let options = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(name, Some(options)).await {
        Ok(()) => {}
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {}
        Err(e) => tracing::warn!(container = name, "cannot remove: {e}"),
    }
}

async fn finish(
    app: &App,
    job: Id,
    state: JobState,
    code: Option<i64>,
    error: Option<String>,
    usage: Option<Usage>,
) -> Result<()> {
    blocking(app, move |app| {
        let now = app.now();
        update_job(&app.store, job, |j| {
            j.state = state;
            if code.is_some() {
                j.response = code;
            }
            if error.is_some() || state == JobState::Done {
                j.error = error.or_else(|| j.error.take().filter(|_| state != JobState::Done));
            }
            if let Some(u) = usage {
                j.used_cpu = j.used_cpu.max(u.cpu_ns as f64 / 1e9);
                j.used_memory = j.used_memory.max(u.memory);
                j.used_io = j.used_io.max(u.io);
            }
            j.finished = Some(now);
        })?;
        Ok(())
    })
    .await?;
    app.runner.hub.notify(job);
    Ok(())
}

/// Samples the container's CPU time, peak memory and block I/O until told to stop, saving the
/// sample now and then so that a restart keeps it.
async fn poll_usage(
    app: App,
    docker: Docker,
    name: String,
    job: Job,
    stop: CancellationToken,
) -> Usage {
    let mut usage = Usage {
        cpu_ns: (job.used_cpu * 1e9) as u64,
        memory: job.used_memory,
        io: job.used_io,
    };
    let probe = Probe::locate(&docker, &name).await;
    let mut saved = tokio::time::Instant::now();
    loop {
        if let Some(sample) = probe.sample().await {
            usage.merge(sample);
        }
        if saved.elapsed() >= STATS_SAVE_EVERY {
            saved = tokio::time::Instant::now();
            let (id, u) = (job.id, usage);
            let _ = app
                .blocking(move |app| {
                    update_job(&app.store, id, |j| {
                        j.used_cpu = j.used_cpu.max(u.cpu_ns as f64 / 1e9);
                        j.used_memory = j.used_memory.max(u.memory);
                        j.used_io = j.used_io.max(u.io);
                    })?;
                    Ok(())
                })
                .await;
        }
        tokio::select! {
            _ = stop.cancelled() => return usage,
            _ = tokio::time::sleep(probe.period()) => {}
        }
    }
}

/// Packs the job's outbox into its result zip; returns the bytes in it. The container has
/// stopped, so nothing writes there any more. The directory is removed once the job's end is
/// recorded (a crash before that packs it again).
async fn save_outbox(app: &App, job: Id) -> Result<u64> {
    let dir = super::outbox_dir(&app.data_dir, job);
    let zip = result_path(&app.data_dir, job);
    tokio::task::spawn_blocking(move || super::results::dir_to_zip(&dir, &zip))
        .await
        .map_err(Error::internal)?
}
