//! Running pipelines: the dispatcher, the pipeline runs, and each job's container from creation
//! to removal (through the [`Supervisor`]).
//!
//! The database is the truth: the run queue and every job's state live in redb
//! (`domains::jobs`), so the runner can be stopped at any point (graceful shutdown or SIGKILL)
//! and pick up where it was. At start it removes containers of this installation that no running
//! job owns; then the dispatcher runs the queue, and a job found `running` is re-attached to its
//! container (which kept running, or ended meanwhile and still holds its exit code, logs and
//! outbox).
//!
//! A job's end, in order: logs drained, outbox saved, usage measured, final state committed
//! durably, container removed. A crash between two steps repeats only the steps after the last
//! one that reached the database.

use super::supervisor::{Exit, Supervisor};
use super::usage::Usage;
use crate::core::clock::Clock;
use crate::core::config::JobsConfig;
use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::core::store::Store;
use crate::core::tasks::blocking;
use crate::domains::images;
use crate::domains::jobs::{
    self, Job, JobState, Next, cancel_rest, claim_next, empty_inbox_dir, inbox_dir, outbox_dir,
    queued_pipelines, result_path, running_jobs, split_command, update_job,
};
use crate::domains::logs::append_note;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// How often the usage sampled while a job runs is saved.
const STATS_SAVE_EVERY: Duration = Duration::from_secs(2);
/// How long a kill may take before the caller is told to try again.
const STOP_WAIT: Duration = Duration::from_secs(30);

/// The job runner: what it needs, and the state of the runs in progress.
pub struct Runner {
    supervisor: Arc<Supervisor>,
    store: Store,
    clock: Arc<dyn Clock>,
    config: JobsConfig,
    data_dir: PathBuf,
    slots: Arc<Semaphore>,
    wake: Notify,
    /// Pipelines with a run in progress.
    active: Mutex<HashSet<Id>>,
    /// Jobs being supervised, and the token that kills each.
    kills: Mutex<HashMap<Id, CancellationToken>>,
    /// Notified whenever a supervision ends.
    ended: Notify,
}

/// The name of a job's container.
pub fn container_name(job: Id) -> String {
    format!("dtaas-job-{job}")
}

impl Runner {
    pub fn new(
        supervisor: Arc<Supervisor>,
        store: Store,
        clock: Arc<dyn Clock>,
        config: JobsConfig,
        data_dir: PathBuf,
    ) -> Runner {
        Runner {
            slots: Arc::new(Semaphore::new(config.max_parallel as usize)),
            supervisor,
            store,
            clock,
            config,
            data_dir,
            wake: Notify::new(),
            active: Mutex::new(HashSet::new()),
            kills: Mutex::new(HashMap::new()),
            ended: Notify::new(),
        }
    }

    /// Starts recovery and the dispatcher; they run until the server shuts down.
    pub fn start(self: &Arc<Self>) {
        let runner = self.clone();
        self.supervisor.spawn(async move {
            runner.recover().await;
            runner.dispatch().await;
        });
    }

    /// Tells the dispatcher that the queue changed.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Stops a job if it is queued or running, and waits until its container is gone (the
    /// runner records the end before it removes the container). `by` names who asked.
    pub async fn stop_job(&self, job: Id, by: &str) -> Result<JobState> {
        let store = self.store.clone();
        let by = by.to_owned();
        let state = blocking(move || jobs::request_kill(&store, job, &by)).await?;
        if state != JobState::Running {
            return Ok(state);
        }
        let ended = self.ended.notified();
        tokio::pin!(ended);
        self.kill(job);
        let deadline = tokio::time::Instant::now() + STOP_WAIT;
        loop {
            // Registered before the check, so an end between the two is not missed.
            ended.as_mut().enable();
            if !self.is_supervising(job) {
                match jobs::get_job(&self.store, job)? {
                    Some(j) if j.state == JobState::Running => {}
                    Some(j) => return Ok(j.state),
                    None => return Ok(JobState::Cancelled),
                }
            }
            tokio::select! {
                _ = &mut ended => ended.set(self.ended.notified()),
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(Error::conflict("the job did not stop in time; try again"));
                }
            }
        }
    }

    /// Kills the container of a running job (its state was marked by `request_kill`).
    fn kill(&self, job: Id) {
        if let Some(token) = self.lock_kills().get(&job) {
            token.cancel();
        }
    }

    /// Whether the runner is still seeing a job through (its container may still exist).
    fn is_supervising(&self, job: Id) -> bool {
        self.lock_kills().contains_key(&job)
    }

    fn lock_kills(&self) -> std::sync::MutexGuard<'_, HashMap<Id, CancellationToken>> {
        self.kills.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_active(&self) -> std::sync::MutexGuard<'_, HashSet<Id>> {
        self.active.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes the files of a deleted job (attachments, outbox, results).
    pub async fn remove_job_files(&self, job: Id) {
        self.supervisor
            .remove_tree(&jobs::job_dir(&self.data_dir, job))
            .await;
    }

    /// Removes containers of this installation that no running job owns (left by a crash
    /// after a job's end was recorded, or by a job deleted meanwhile).
    async fn recover(&self) {
        self.supervisor.wait_for_engine("jobs").await;
        let store = self.store.clone();
        let running: HashSet<String> = match blocking(move || running_jobs(&store)).await {
            Ok(jobs) => jobs.into_iter().map(|j| container_name(j.id)).collect(),
            Err(e) => {
                tracing::error!("recovery cannot read the jobs: {e}");
                return;
            }
        };
        if let Err(e) = self
            .supervisor
            .remove_orphans("job", |name| running.contains(name))
            .await
        {
            tracing::warn!("recovery cannot list containers: {e}");
        }
    }

    async fn dispatch(self: &Arc<Self>) {
        loop {
            let store = self.store.clone();
            match blocking(move || queued_pipelines(&store)).await {
                Ok(queued) => {
                    for pipeline in queued {
                        if self.lock_active().contains(&pipeline) {
                            continue;
                        }
                        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                            break;
                        };
                        self.lock_active().insert(pipeline);
                        let runner = self.clone();
                        self.supervisor
                            .spawn(async move { runner.run_pipeline(pipeline, permit).await });
                    }
                }
                Err(e) => tracing::error!("cannot read the run queue: {e}"),
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    }

    async fn run_pipeline(&self, pipeline: Id, permit: OwnedSemaphorePermit) {
        self.run_jobs(pipeline).await;
        drop(permit);
        self.lock_active().remove(&pipeline);
        self.wake();
    }

    async fn run_jobs(&self, pipeline: Id) {
        loop {
            let docker = self.supervisor.wait_for_engine("jobs").await;
            let (store, now) = (self.store.clone(), self.clock.now());
            let next = blocking(move || claim_next(&store, pipeline, now)).await;
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
            let end = self.supervise(&docker, job, resume).await;
            self.supervisor.hub().forget(job_id);
            if end != JobState::Done {
                let reason = format!(
                    "not run: job {job_id} before it in the pipeline {}",
                    if end == JobState::Cancelled {
                        "was killed"
                    } else {
                        "failed"
                    }
                );
                let store = self.store.clone();
                if let Err(e) = blocking(move || cancel_rest(&store, pipeline, &reason)).await {
                    tracing::error!(%pipeline, "cannot cancel the rest of the pipeline: {e}");
                }
            }
        }
    }

    /// Runs (or re-attaches to) one job's container until it is gone; returns the job's final
    /// state.
    async fn supervise(&self, docker: &Docker, job: Job, resume: bool) -> JobState {
        let kill = CancellationToken::new();
        self.lock_kills().insert(job.id, kill.clone());
        let end = match self.supervise_inner(docker, &job, resume, &kill).await {
            Ok(state) => state,
            Err(e) => {
                tracing::error!(job = %job.id, "job failed in the appliance: {e}");
                let message = e.to_string();
                self.note(job.id, &message).await;
                let _ = self
                    .finish(job.id, JobState::Failed, None, Some(message), None)
                    .await;
                self.supervisor
                    .remove(docker, &container_name(job.id))
                    .await;
                JobState::Failed
            }
        };
        self.lock_kills().remove(&job.id);
        self.ended.notify_waiters();
        end
    }

    async fn supervise_inner(
        &self,
        docker: &Docker,
        job: &Job,
        resume: bool,
        kill: &CancellationToken,
    ) -> Result<JobState> {
        let name = container_name(job.id);
        let started = self.supervisor.has_started(docker, &name).await;
        if resume && started == Some(true) {
            tracing::info!(job = %job.id, "re-attaching to a job that ran through a restart");
        } else {
            if started.is_some() {
                self.supervisor.remove(docker, &name).await;
            }
            if let Some(state) = self.create_and_start(docker, job, &name, kill).await? {
                return Ok(state);
            }
        }

        // A kill asked for before the token existed.
        if jobs::get_job(&self.store, job.id)?.is_some_and(|j| j.kill_requested) {
            kill.cancel();
        }

        let stop_stats = CancellationToken::new();
        let store = self.store.clone();
        let id = job.id;
        let stats = self.supervisor.sample_usage(
            docker,
            &name,
            Usage {
                cpu_ns: (job.used_cpu * 1e9) as u64,
                memory: job.used_memory,
                io: job.used_io,
            },
            stop_stats.clone(),
            STATS_SAVE_EVERY,
            move |u| {
                let store = store.clone();
                tokio::spawn(async move {
                    let _ = blocking(move || {
                        update_job(&store, id, |j| add_usage(j, u))?;
                        Ok(())
                    })
                    .await;
                });
            },
        );
        let logs = self.supervisor.follow_logs::<Job>(
            docker,
            &name,
            job.id,
            job.log.clone(),
            self.config.max_log_lines,
        );
        let exit = self.supervisor.wait(docker, &name, Some(kill)).await;
        stop_stats.cancel();
        let usage = stats.await.unwrap_or_default();
        if let Err(e) = logs.await {
            tracing::warn!(job = %job.id, "log follower ended badly: {e}");
        }
        let Exit { code, killed } = exit?;
        // An outbox over `jobs.max_result_mb` is the job's doing: it fails, saying so.
        let (outbox_bytes, result_error) = match self.save_outbox(job.id).await {
            Ok(bytes) => (bytes, None),
            Err(Error::TooLarge(message)) => {
                self.note(job.id, &message).await;
                (0, Some(message))
            }
            Err(e) => return Err(e),
        };
        let state = match code {
            _ if killed => JobState::Cancelled,
            _ if result_error.is_some() => JobState::Failed,
            Some(0) => JobState::Done,
            _ => JobState::Failed,
        };
        let exit_error = match (state, code) {
            (JobState::Failed, Some(0)) => None,
            (JobState::Failed, Some(c)) => Some(format!("the command exited with code {c}")),
            (JobState::Failed, None) => Some("the job's container is gone".to_owned()),
            _ => None,
        };
        let error = match (result_error, exit_error) {
            (Some(r), Some(e)) => Some(format!("{r}; {e}")),
            (r, e) => r.or(e),
        };
        let usage = Usage {
            io: usage.io.max(outbox_bytes),
            ..usage
        };
        self.finish(job.id, state, code.or(Some(-1)), error, Some(usage))
            .await?;
        self.supervisor.remove(docker, &name).await;
        self.supervisor
            .remove_tree(&outbox_dir(&self.data_dir, job.id))
            .await;
        Ok(state)
    }

    /// Creates and starts a job's container. `Some(state)` when the job ended before it ran.
    async fn create_and_start(
        &self,
        docker: &Docker,
        job: &Job,
        name: &str,
        kill: &CancellationToken,
    ) -> Result<Option<JobState>> {
        let not_runnable = |why: String| async move {
            self.note(job.id, &why).await;
            self.finish(job.id, JobState::Failed, None, Some(why), None)
                .await?;
            Ok::<_, Error>(Some(JobState::Failed))
        };
        let image = match images::get_image(&self.store, job.image)? {
            Some(image) => image,
            None => return not_runnable("the job's image was deleted".into()).await,
        };
        if image.docker_id.is_none() {
            return not_runnable("the job's image has no successful build".into()).await;
        }
        let argv = match split_command(&job.command) {
            Ok(argv) => argv,
            Err(e) => return not_runnable(e.to_string()).await,
        };
        let inbox = if job.attachments.is_empty() {
            empty_inbox_dir(&self.data_dir)
        } else {
            inbox_dir(&self.data_dir, job.id)
        };
        tokio::fs::create_dir_all(&inbox)
            .await
            .map_err(|e| Error::internal(format!("creating the inbox: {e}")))?;
        let outbox = self.fresh_outbox(job.id).await?;

        let config = &self.config;
        let labels = self.supervisor.labels(
            "job",
            &[
                ("dtaas.job", &job.id.to_string()),
                ("dtaas.pipeline", &job.pipeline.to_string()),
                ("dtaas.owner", &job.owner.to_string()),
            ],
        );
        let mut host = HostConfig {
            binds: Some(vec![
                format!("{}:/inbox:ro", inbox.display()),
                format!("{}:/outbox:rw", outbox.display()),
            ]),
            memory: Some(
                i64::try_from(config.memory_mb.saturating_mul(1024 * 1024)).unwrap_or(i64::MAX),
            ),
            nano_cpus: Some((config.cpus * 1e9) as i64),
            pids_limit: Some(config.pids),
            network_mode: Some(config.network.clone()),
            ..Default::default()
        };
        self.supervisor.harden(&mut host);
        let body = ContainerCreateBody {
            image: Some(image.tag()),
            cmd: Some(argv),
            labels: Some(labels),
            host_config: Some(host),
            ..Default::default()
        };
        self.supervisor.create(docker, name, body).await?;

        if kill.is_cancelled() {
            self.supervisor.remove(docker, name).await;
            self.finish(job.id, JobState::Cancelled, None, None, None)
                .await?;
            return Ok(Some(JobState::Cancelled));
        }
        if let Err(e) = self.supervisor.start(docker, name).await {
            let message = match &e {
                Error::BadRequest(m)
                | Error::Conflict(m)
                | Error::EngineFailed(m)
                | Error::EngineUnavailable(m) => m.clone(),
                other => other.to_string(),
            };
            self.supervisor.remove(docker, name).await;
            let not_found = message.contains("not found") || message.contains("no such file");
            let code = if not_found { 127 } else { 126 };
            let note = format!("the command could not start: {message}");
            self.note(job.id, &note).await;
            self.finish(job.id, JobState::Failed, Some(code), Some(note), None)
                .await?;
            return Ok(Some(JobState::Failed));
        }
        Ok(None)
    }

    /// An empty outbox directory for a run, writable by whatever user the image runs as.
    async fn fresh_outbox(&self, job: Id) -> Result<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let dir = outbox_dir(&self.data_dir, job);
        if tokio::fs::symlink_metadata(&dir).await.is_ok() {
            self.supervisor.remove_tree(&dir).await;
        }
        let io = |e: std::io::Error| Error::internal(format!("creating the outbox: {e}"));
        tokio::fs::create_dir_all(&dir).await.map_err(io)?;
        tokio::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
            .await
            .map_err(io)?;
        Ok(dir)
    }

    /// Appends a line of the appliance's own to the job's log.
    async fn note(&self, job: Id, text: &str) {
        let (store, text) = (self.store.clone(), text.to_owned());
        if let Err(e) = blocking(move || append_note::<Job>(&store, job, &text)).await {
            tracing::warn!(%job, "cannot add to the job's log: {e}");
        }
    }

    async fn finish(
        &self,
        job: Id,
        state: JobState,
        code: Option<i64>,
        error: Option<String>,
        usage: Option<Usage>,
    ) -> Result<()> {
        let (store, now) = (self.store.clone(), self.clock.now());
        blocking(move || {
            update_job(&store, job, |j| {
                j.state = state;
                if code.is_some() {
                    j.response = code;
                }
                if error.is_some() || state == JobState::Done {
                    j.error = error.or_else(|| j.error.take().filter(|_| state != JobState::Done));
                }
                if let Some(u) = usage {
                    add_usage(j, u);
                }
                j.finished = Some(now);
            })?;
            Ok(())
        })
        .await?;
        self.supervisor.hub().notify(job);
        Ok(())
    }

    /// Packs the job's outbox into its result zip; returns the bytes in it. The container has
    /// stopped, so nothing writes there any more. The directory is removed once the job's end
    /// is recorded (a crash before that packs it again). An outbox over `jobs.max_result_mb`
    /// is `Error::TooLarge`, refused before any file is read, and leaves no zip.
    async fn save_outbox(&self, job: Id) -> Result<u64> {
        let dir = outbox_dir(&self.data_dir, job);
        let zip = result_path(&self.data_dir, job);
        let max_mb = self.config.max_result_mb;
        blocking(move || jobs::results::dir_to_zip(&dir, &zip, max_mb)).await
    }
}

/// Keeps the larger of what a job recorded and a new sample.
fn add_usage(job: &mut Job, u: Usage) {
    job.used_cpu = job.used_cpu.max(u.cpu_ns as f64 / 1e9);
    job.used_memory = job.used_memory.max(u.memory);
    job.used_io = job.used_io.max(u.io);
}
