//! Pipelines of jobs (kabuto's `/pipeline`, `/jobs`, `/execution`).
//!
//! A pipeline is an ordered list of jobs. Submitting it puts it in the run queue (a redb table,
//! first in, first out); the [`runner`] runs queued pipelines side by side up to a limit, and each
//! pipeline's jobs one after another. A job is a labelled container with the job's attachments
//! read-only under `/inbox` and a writable `/outbox` that is saved as a zip when it ends. Job
//! states: `ready` (not submitted), `in_queue`, `running`, `done`, `failed`, `cancelled`.
//! This module keeps the records and their transitions; running them is the engine layer's
//! (`engine::jobs`).
//!
//! On disk: `<data>/jobs/<job id>/inbox/` (attachments, only for a job that has some) and
//! `<data>/jobs/<job id>/result.zip`.

#[cfg(test)]
mod command_tests;
#[cfg(test)]
mod recent_tests;
pub mod results;

use super::logs;

use crate::core::clock::Timestamp;
use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::core::names;
use crate::core::page::{Page, PageRequest};
use crate::core::store::{Opening, Store, StoreError, decode};
use crate::domains::authz::{self, Acl, Capability, Facet, Kind, ObjectMeta, Principal};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const PIPELINES: TableDefinition<u128, &[u8]> = TableDefinition::new("pipelines");
const JOBS: TableDefinition<u128, &[u8]> = TableDefinition::new("jobs");
/// The run queue: submission sequence number -> pipeline id.
const QUEUE: TableDefinition<u64, u128> = TableDefinition::new("run_queue");

pub(crate) fn init_tables(txn: &WriteTransaction, opening: Opening) -> Result<(), StoreError> {
    txn.open_table(PIPELINES)?;
    txn.open_table(JOBS)?;
    txn.open_table(QUEUE)?;
    if opening.upgrades_past(1) {
        let mut jobs = Vec::new();
        for entry in txn.open_table(JOBS)?.iter()? {
            jobs.push(decode::<Job>(entry?.1.value())?);
        }
        for job in &jobs {
            authz::set_facets(txn, job.id, &job.facets())
                .map_err(|e| StoreError::Db(e.to_string()))?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pipeline {
    pub id: Id,
    pub owner: Id,
    pub name: String,
    pub creation_date: Timestamp,
    /// Its jobs, in the order they run.
    pub jobs: Vec<Id>,
    /// Its place in the run queue while submitted and not finished.
    #[serde(default)]
    pub queued: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Ready,
    InQueue,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Ready => "ready",
            JobState::InQueue => "in_queue",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Queued or running: the job's pipeline is busy.
    pub fn is_active(self) -> bool {
        matches!(self, JobState::InQueue | JobState::Running)
    }

    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Done | JobState::Failed | JobState::Cancelled
        )
    }

    pub const ALL: [JobState; 6] = [
        JobState::Ready,
        JobState::InQueue,
        JobState::Running,
        JobState::Done,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|j| j.as_str() == s)
    }

    /// Its number in the list index (stable: never reuse one).
    fn code(self) -> u8 {
        match self {
            JobState::Ready => 1,
            JobState::InQueue => 2,
            JobState::Running => 3,
            JobState::Done => 4,
            JobState::Failed => 5,
            JobState::Cancelled => 6,
        }
    }
}

/// What job lists filter on.
#[derive(Debug, Clone, Copy, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub pipeline: Option<Id>,
}

impl JobFilter {
    fn facets(self) -> Vec<Facet> {
        let mut out = Vec::new();
        if let Some(s) = self.state {
            out.push(Facet::State(s.code()));
        }
        if let Some(p) = self.pipeline {
            out.push(Facet::Parent(p));
        }
        out
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub id: Id,
    pub owner: Id,
    pub pipeline: Id,
    pub image: Id,
    pub command: String,
    pub state: JobState,
    pub creation_date: Timestamp,
    #[serde(default)]
    pub attachments: Vec<String>,
    /// CPU seconds.
    #[serde(default)]
    pub used_cpu: f64,
    /// Peak memory, bytes.
    #[serde(default)]
    pub used_memory: u64,
    /// Bytes read and written.
    #[serde(default)]
    pub used_io: u64,
    /// The command's exit code.
    #[serde(default)]
    pub response: Option<i64>,
    #[serde(default)]
    pub started: Option<Timestamp>,
    #[serde(default)]
    pub finished: Option<Timestamp>,
    /// Why the job failed or was cancelled, when the appliance knows.
    #[serde(default)]
    pub error: Option<String>,
    /// A kill was asked for while it ran.
    #[serde(default)]
    pub kill_requested: bool,
    /// How far its logs have been stored (see `logs`).
    #[serde(default)]
    pub log: logs::LogCursor,
}

impl Job {
    /// Back in the queue to run from the start: what a run recorded is forgotten (its logs,
    /// in the log store, are the caller's to delete in the same transaction).
    fn queue_again(&mut self) {
        self.state = JobState::InQueue;
        self.response = None;
        self.used_cpu = 0.0;
        self.used_memory = 0;
        self.used_io = 0;
        self.started = None;
        self.finished = None;
        self.error = None;
        self.kill_requested = false;
        self.log = logs::LogCursor::default();
    }

    /// Its facets in the list index.
    fn facets(&self) -> [Facet; 2] {
        [
            Facet::State(self.state.code()),
            Facet::Parent(self.pipeline),
        ]
    }
}

/// How many jobs are in each state (for `/metrics`): rows of the list index's counts,
/// whatever the size of the store.
pub fn count_by_state(store: &Store) -> Result<Vec<(JobState, u64)>> {
    let txn = store.read()?;
    JobState::ALL
        .into_iter()
        .map(|s| {
            Ok((
                s,
                authz::count(&txn, Kind::Job, Some(Facet::State(s.code())))?,
            ))
        })
        .collect()
}

/// How many submitted pipelines wait in the run queue.
pub fn queue_length(store: &Store) -> Result<u64> {
    use redb::ReadableTableMetadata;
    Ok(store.read()?.open_table(QUEUE)?.len()?)
}

pub fn jobs_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("jobs")
}

pub fn inbox_dir(data_dir: &Path, job: Id) -> PathBuf {
    job_dir(data_dir, job).join("inbox")
}

/// The empty directory mounted as `/inbox` for every job without attachments (so such a job
/// has no directory of its own until it runs).
pub fn empty_inbox_dir(data_dir: &Path) -> PathBuf {
    jobs_dir(data_dir).join("empty-inbox")
}

pub fn result_path(data_dir: &Path, job: Id) -> PathBuf {
    job_dir(data_dir, job).join("result.zip")
}

/// The host directory bind-mounted as the job's `/outbox` while it runs.
pub fn outbox_dir(data_dir: &Path, job: Id) -> PathBuf {
    job_dir(data_dir, job).join("outbox")
}

fn get<T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<u128, &'static [u8]>,
    id: Id,
) -> Result<Option<T>> {
    Ok(crate::core::store::get_record(table, id)?)
}

fn put<T: Serialize>(
    txn: &WriteTransaction,
    table: TableDefinition<u128, &[u8]>,
    id: Id,
    value: &T,
) -> Result<()> {
    Ok(crate::core::store::put_record(txn, table, id, value)?)
}

/// A job's log cursor lives in its record.
impl logs::LogOwner for Job {
    const LIMIT_KEY: &'static str = "jobs.max_log_lines";

    fn load_cursor(txn: &WriteTransaction, id: Id) -> Result<Option<logs::LogCursor>> {
        Ok(load_job(txn, id)?.map(|j| j.log))
    }

    fn save_cursor(txn: &WriteTransaction, id: Id, cursor: &logs::LogCursor) -> Result<()> {
        if let Some(mut job) = load_job(txn, id)? {
            job.log = cursor.clone();
            save_job(txn, &job)?;
        }
        Ok(())
    }
}

pub(crate) fn load_job(txn: &WriteTransaction, id: Id) -> Result<Option<Job>> {
    get(&txn.open_table(JOBS)?, id)
}

pub(crate) fn save_job(txn: &WriteTransaction, job: &Job) -> Result<()> {
    put(txn, JOBS, job.id, job)?;
    authz::set_facets(txn, job.id, &job.facets())
}

/// Changes a job in its own transaction; `None` if it is gone.
pub(crate) fn update_job(
    store: &Store,
    id: Id,
    change: impl FnOnce(&mut Job),
) -> Result<Option<Job>> {
    let txn = store.write()?;
    let Some(mut job) = load_job(&txn, id)? else {
        return Ok(None);
    };
    change(&mut job);
    save_job(&txn, &job)?;
    txn.commit()?;
    Ok(Some(job))
}

pub fn get_job(store: &Store, id: Id) -> Result<Option<Job>> {
    let txn = store.read()?;
    get(&txn.open_table(JOBS)?, id)
}

pub fn get_pipeline(store: &Store, id: Id) -> Result<Option<Pipeline>> {
    let txn = store.read()?;
    get(&txn.open_table(PIPELINES)?, id)
}

// ---- pipelines ----

pub fn create_pipeline(
    store: &Store,
    owner: &Principal,
    name: &str,
    now: Timestamp,
) -> Result<Pipeline> {
    let name = names::display_name(name)?;
    let pipeline = Pipeline {
        id: Id::new(),
        owner: owner.id,
        name: name.to_owned(),
        creation_date: now,
        jobs: Vec::new(),
        queued: None,
    };
    let txn = store.write()?;
    put(&txn, PIPELINES, pipeline.id, &pipeline)?;
    authz::create_object(
        &txn,
        &ObjectMeta {
            id: pipeline.id,
            kind: Kind::Pipeline,
            owner: Some(owner.id),
            created: now,
        },
    )?;
    txn.commit()?;
    Ok(pipeline)
}

pub fn pipeline_for(
    store: &Store,
    caller: &Principal,
    id: Id,
    cap: Capability,
) -> Result<Pipeline> {
    let txn = store.read()?;
    Acl::read(&txn)?.check(caller, id, Kind::Pipeline, cap)?;
    get(&txn.open_table(PIPELINES)?, id)?.ok_or_else(|| Error::not_found("Pipeline not found"))
}

/// A page of the pipelines the caller may read.
pub fn list_pipelines(
    store: &Store,
    caller: &Principal,
    page: PageRequest,
) -> Result<Page<Pipeline>> {
    authz::readable_page(store, PIPELINES, caller, Kind::Pipeline, &[], page)
}

/// A page of the pipelines the caller may read whose name holds `name` (compared ignoring
/// case); a search examines at most `authz::SCAN_BUDGET` readable pipelines per page.
pub fn search_pipelines(
    store: &Store,
    caller: &Principal,
    name: &str,
    page: PageRequest,
) -> Result<Page<Pipeline>> {
    let needle = name.to_lowercase();
    authz::readable_page_where(
        store,
        PIPELINES,
        caller,
        Kind::Pipeline,
        &[],
        page,
        |p: &Pipeline| p.name.to_lowercase().contains(&needle),
    )
}

/// Whether a pipeline is queued or running (its jobs can be added, removed or reordered once
/// it ends).
pub fn is_busy(store: &Store, pipeline: &Pipeline) -> Result<bool> {
    if pipeline.queued.is_some() {
        return Ok(true);
    }
    let txn = store.read()?;
    let jobs = txn.open_table(JOBS)?;
    for id in &pipeline.jobs {
        if get::<Job>(&jobs, *id)?.is_some_and(|j| j.state.is_active()) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn busy_conflict() -> Error {
    Error::conflict(
        "the pipeline is queued or running; its jobs can be added, removed or reordered once it \
         ends",
    )
}

/// What `PATCH /v1/pipelines/<id>` changes: the name, and the order of the jobs (every job of
/// the pipeline exactly once).
pub struct PipelineEdit {
    pub name: Option<String>,
    pub order: Option<Vec<Id>>,
}

/// Renames a pipeline and reorders its jobs (UPDATE). An order naming a job twice is malformed
/// (400); one that is not the pipeline's jobs as they are now, or a reorder while the pipeline
/// is queued or running, conflicts with its state (409).
pub fn edit_pipeline(
    store: &Store,
    caller: &Principal,
    id: Id,
    edit: PipelineEdit,
) -> Result<Pipeline> {
    let name = match &edit.name {
        Some(n) => Some(names::display_name(n)?.to_owned()),
        None => None,
    };
    if let Some(order) = &edit.order {
        let mut sorted = order.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != order.len() {
            return Err(Error::bad_request("jobs: a job is listed more than once"));
        }
    }
    let txn = store.write()?;
    Acl::write(&txn)?.check(caller, id, Kind::Pipeline, Capability::Update)?;
    let mut pipeline: Pipeline = get(&txn.open_table(PIPELINES)?, id)?
        .ok_or_else(|| Error::not_found("Pipeline not found"))?;
    if let Some(order) = edit.order
        && order != pipeline.jobs
    {
        if pipeline_busy(&txn, &pipeline)? {
            return Err(busy_conflict());
        }
        let mut given = order.clone();
        given.sort();
        let mut current = pipeline.jobs.clone();
        current.sort();
        if given != current {
            return Err(Error::conflict(format!(
                "jobs must list every job of the pipeline exactly once: it has {}, listed in \
                 its `jobs`",
                pipeline.jobs.len()
            )));
        }
        pipeline.jobs = order;
    }
    if let Some(name) = name {
        pipeline.name = name;
    }
    put(&txn, PIPELINES, pipeline.id, &pipeline)?;
    txn.commit()?;
    Ok(pipeline)
}

/// The jobs of a pipeline, in order.
pub fn pipeline_jobs(store: &Store, pipeline: &Pipeline) -> Result<Vec<Job>> {
    let txn = store.read()?;
    let jobs = txn.open_table(JOBS)?;
    let mut out = Vec::new();
    for id in &pipeline.jobs {
        if let Some(job) = get(&jobs, *id)? {
            out.push(job);
        }
    }
    Ok(out)
}

fn pipeline_busy(txn: &WriteTransaction, pipeline: &Pipeline) -> Result<bool> {
    if pipeline.queued.is_some() {
        return Ok(true);
    }
    let jobs = txn.open_table(JOBS)?;
    for id in &pipeline.jobs {
        if get::<Job>(&jobs, *id)?.is_some_and(|j| j.state.is_active()) {
            return Ok(true);
        }
    }
    Ok(false)
}

pub struct PipelineChange {
    pub name: Option<String>,
    pub remove_jobs: Vec<Id>,
    pub rearrange_jobs: Option<Vec<Id>>,
}

/// `PUT /pipeline/<id>`. Returns the pipeline and the jobs it removed (their files are the
/// caller's to delete).
pub fn update_pipeline(
    store: &Store,
    caller: &Principal,
    id: Id,
    change: PipelineChange,
) -> Result<(Pipeline, Vec<Id>)> {
    let txn = store.write()?;
    Acl::write(&txn)?.check(caller, id, Kind::Pipeline, Capability::Update)?;
    let mut pipeline: Pipeline = get(&txn.open_table(PIPELINES)?, id)?
        .ok_or_else(|| Error::not_found("Pipeline not found"))?;
    if let Some(name) = change.name {
        let name = names::display_name(&name)?;
        pipeline.name = name.to_owned();
    }
    let structural = !change.remove_jobs.is_empty() || change.rearrange_jobs.is_some();
    if structural && pipeline_busy(&txn, &pipeline)? {
        return Err(Error::conflict(
            "the pipeline is queued or running; its jobs can be removed or reordered once it ends",
        ));
    }
    for job in &change.remove_jobs {
        if !pipeline.jobs.contains(job) {
            return Err(Error::bad_request(format!(
                "job {job} is not in this pipeline"
            )));
        }
    }
    pipeline.jobs.retain(|j| !change.remove_jobs.contains(j));
    if let Some(order) = change.rearrange_jobs {
        let mut given = order.clone();
        given.sort();
        given.dedup();
        let mut current = pipeline.jobs.clone();
        current.sort();
        if given.len() != order.len() || given != current {
            return Err(Error::bad_request(
                "rearrange_jobs must list every job of the pipeline exactly once",
            ));
        }
        pipeline.jobs = order;
    }
    for job in &change.remove_jobs {
        txn.open_table(JOBS)?.remove(job.0)?;
        logs::delete_logs(&txn, *job)?;
        authz::delete_object(&txn, *job)?;
    }
    put(&txn, PIPELINES, pipeline.id, &pipeline)?;
    txn.commit()?;
    Ok((pipeline, change.remove_jobs))
}

/// Deletes a pipeline that is not running (the caller kills its jobs first) and its jobs.
pub fn delete_pipeline(store: &Store, caller: &Principal, id: Id) -> Result<Vec<Id>> {
    let txn = store.write()?;
    Acl::write(&txn)?.check(caller, id, Kind::Pipeline, Capability::Delete)?;
    let pipeline: Pipeline = get(&txn.open_table(PIPELINES)?, id)?
        .ok_or_else(|| Error::not_found("Pipeline not found"))?;
    for job in &pipeline.jobs {
        if load_job(&txn, *job)?.is_some_and(|j| j.state == JobState::Running) {
            return Err(Error::conflict("a job of this pipeline is still running"));
        }
    }
    if let Some(seq) = pipeline.queued {
        txn.open_table(QUEUE)?.remove(seq)?;
    }
    for job in &pipeline.jobs {
        txn.open_table(JOBS)?.remove(job.0)?;
        logs::delete_logs(&txn, *job)?;
        authz::delete_object(&txn, *job)?;
    }
    txn.open_table(PIPELINES)?.remove(id.0)?;
    authz::delete_object(&txn, id)?;
    txn.commit()?;
    Ok(pipeline.jobs)
}

// ---- jobs ----

/// The commands [`split_command`] takes, as one regular expression that JSON Schema, Python
/// and Rust read alike (a unit test checks that the two agree): quotes closed, and at least
/// one word outside comments. Words are separated by spaces, tabs and newlines; `'...'` and
/// `"..."` quote (a backslash escapes inside double quotes and outside quotes), a backslash
/// before a newline continues the line, and `#` at the start of a word comments to the end
/// of the line.
pub const COMMAND_PATTERN: &str = concat!(
    r#"^(?:(?:[ \t\n]|\\\n|#[^\n]*\n)*"#,
    r#"(?:[^ \t\n'"\\#]|\\[^\n]|'[^']*'|"(?:[^"\\]|\\[\s\S])*")"#,
    r#"(?:[^ \t\n'"\\]|\\[\s\S]|'[^']*'|"(?:[^"\\]|\\[\s\S])*")*"#,
    r#"(?:[ \t\n](?:[ \t\n]|\\\n|#[^\n]*\n)*"#,
    r#"(?:[^ \t\n'"\\#]|\\[^\n]|'[^']*'|"(?:[^"\\]|\\[\s\S])*")"#,
    r#"(?:[^ \t\n'"\\]|\\[\s\S]|'[^']*'|"(?:[^"\\]|\\[\s\S])*")*)*"#,
    r#"(?:[ \t\n](?:[ \t\n]|\\\n|#[^\n]*\n)*(?:#[^\n]*)?)?\\?"#,
    r#"|(?:[ \t\n]|\\\n|#[^\n]*\n)*\\)$"#
);

/// Splits a command the way a shell would (kabuto's clients send `sh -c "..."`).
pub fn split_command(command: &str) -> Result<Vec<String>> {
    let words = shell_words::split(command)
        .map_err(|e| Error::bad_request(format!("command cannot be split into words: {e}")))?;
    if words.is_empty() {
        return Err(Error::bad_request("command must not be empty"));
    }
    Ok(words)
}

pub struct NewJob {
    pub command: String,
    pub image: Id,
    /// Staged attachments: (file name, path).
    pub attachments: Vec<(String, PathBuf)>,
}

pub fn create_job(
    store: &Store,
    data_dir: &Path,
    caller: &Principal,
    pipeline: Id,
    new: NewJob,
    now: Timestamp,
) -> Result<Job> {
    insert_job(store, data_dir, caller, pipeline, new, now, false)
}

/// Adds a job at the end of a pipeline that is not queued or running (409 if it is: a job added
/// then would not run in that submission). UPDATE on the pipeline, READ on the image.
pub fn add_job(
    store: &Store,
    data_dir: &Path,
    caller: &Principal,
    pipeline: Id,
    new: NewJob,
    now: Timestamp,
) -> Result<Job> {
    insert_job(store, data_dir, caller, pipeline, new, now, true)
}

fn insert_job(
    store: &Store,
    data_dir: &Path,
    caller: &Principal,
    pipeline: Id,
    new: NewJob,
    now: Timestamp,
    only_when_idle: bool,
) -> Result<Job> {
    split_command(&new.command)?;
    let p = pipeline_for(store, caller, pipeline, Capability::Update)?;
    super::images::image_for(store, caller, new.image, Capability::Read)?;
    if only_when_idle && is_busy(store, &p)? {
        return Err(busy_conflict());
    }
    let job = Job {
        id: Id::new(),
        owner: caller.id,
        pipeline,
        image: new.image,
        command: new.command,
        state: JobState::Ready,
        creation_date: now,
        attachments: new.attachments.iter().map(|(n, _)| n.clone()).collect(),
        used_cpu: 0.0,
        used_memory: 0,
        used_io: 0,
        response: None,
        started: None,
        finished: None,
        error: None,
        kill_requested: false,
        log: logs::LogCursor::default(),
    };
    place_attachments(data_dir, job.id, &new.attachments, false)?;
    let recorded = record_job(store, &job, only_when_idle, now);
    if recorded.is_err() {
        // Nothing refers to the attachments just placed.
        let _ = std::fs::remove_dir_all(job_dir(data_dir, job.id));
    }
    recorded.map(|()| job)
}

/// Appends a new job to its pipeline, in one write transaction.
fn record_job(store: &Store, job: &Job, only_when_idle: bool, now: Timestamp) -> Result<()> {
    let pipeline = job.pipeline;
    let txn = store.write()?;
    let mut p: Pipeline = get(&txn.open_table(PIPELINES)?, pipeline)?
        .ok_or_else(|| Error::not_found("Pipeline not found"))?;
    if only_when_idle && pipeline_busy(&txn, &p)? {
        return Err(busy_conflict());
    }
    p.jobs.push(job.id);
    put(&txn, PIPELINES, p.id, &p)?;
    save_job(&txn, job)?;
    authz::create_object(
        &txn,
        &ObjectMeta {
            id: job.id,
            kind: Kind::Job,
            owner: Some(p.owner),
            created: now,
        },
    )?;
    txn.commit()?;
    Ok(())
}

fn place_attachments(
    data_dir: &Path,
    job: Id,
    files: &[(String, PathBuf)],
    add: bool,
) -> Result<()> {
    let io = |e: std::io::Error| Error::internal(format!("storing attachments: {e}"));
    let inbox = inbox_dir(data_dir, job);
    if !add && inbox.exists() {
        std::fs::remove_dir_all(&inbox).map_err(io)?;
    }
    if files.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(&inbox).map_err(io)?;
    for (name, staged) in files {
        crate::core::fs::move_file(staged, &inbox.join(name)).map_err(io)?;
    }
    // Read-only in the container, by whatever user the image runs as.
    crate::core::fs::open_for_containers(&inbox).map_err(io)
}

/// A job of a pipeline the caller may use with `cap` (checked on the pipeline).
pub fn job_for(
    store: &Store,
    caller: &Principal,
    pipeline: Option<Id>,
    id: Id,
    cap: Capability,
) -> Result<Job> {
    let txn = store.read()?;
    let acl = Acl::read(&txn)?;
    acl.check(caller, id, Kind::Job, cap)?;
    let job: Job =
        get(&txn.open_table(JOBS)?, id)?.ok_or_else(|| Error::not_found("Job not found"))?;
    if let Some(p) = pipeline {
        acl.check(caller, p, Kind::Pipeline, Capability::Discover)?;
        if job.pipeline != p {
            return Err(Error::not_found("Job not found"));
        }
    }
    Ok(job)
}

/// A page of the jobs the caller may read.
pub fn list_jobs(
    store: &Store,
    caller: &Principal,
    filter: JobFilter,
    page: PageRequest,
) -> Result<Page<Job>> {
    authz::readable_page(store, JOBS, caller, Kind::Job, &filter.facets(), page)
}

/// The newest jobs the caller may read (in `state`, when given), newest first, at most `limit`:
/// O(limit) through the list index, whatever the number of jobs.
pub fn recent_jobs(
    store: &Store,
    caller: &Principal,
    state: Option<JobState>,
    limit: usize,
) -> Result<Vec<Job>> {
    let facet = state.map(|s| Facet::State(s.code()));
    authz::newest_readable(store, JOBS, caller, Kind::Job, facet, limit)
}

/// How many jobs in `state` the caller may read, counting no further than `at_most` (an
/// overview says "at least" beyond): reads index entries only.
pub fn count_readable_jobs(
    store: &Store,
    caller: &Principal,
    state: JobState,
    at_most: usize,
) -> Result<usize> {
    let txn = store.read()?;
    let facet = Some(Facet::State(state.code()));
    Ok(authz::newest_readable_ids(&txn, caller, Kind::Job, facet, Id(0), at_most)?.len())
}

/// When the jobs the caller may read that were made since `since_ms` (unix milliseconds) were
/// made, newest first, at most `limit` of them: from their time-ordered ids, without reading a
/// record.
pub fn job_creation_times(
    store: &Store,
    caller: &Principal,
    since_ms: u64,
    limit: usize,
) -> Result<Vec<u64>> {
    let txn = store.read()?;
    let since = Id::first_at(since_ms);
    let ids = authz::newest_readable_ids(&txn, caller, Kind::Job, None, since, limit)?;
    Ok(ids.into_iter().map(Id::millis).collect())
}

pub struct JobChange {
    pub command: Option<String>,
    pub image: Option<Id>,
    pub attachments: Vec<(String, PathBuf)>,
}

/// `PUT /pipeline/<pid>/job/<jid>`: change the command or image, add attachments.
pub fn update_job_spec(
    store: &Store,
    data_dir: &Path,
    caller: &Principal,
    pipeline: Id,
    id: Id,
    change: JobChange,
) -> Result<Job> {
    let job = job_for(store, caller, Some(pipeline), id, Capability::Update)?;
    if job.state.is_active() {
        return Err(Error::conflict(format!(
            "the job is {}; change it once it has ended",
            job.state.as_str()
        )));
    }
    if let Some(c) = &change.command {
        split_command(c)?;
    }
    if let Some(image) = change.image {
        super::images::image_for(store, caller, image, Capability::Read)?;
    }
    for (name, _) in &change.attachments {
        if job.attachments.contains(name) {
            return Err(Error::bad_request(format!(
                "the job already has an attachment named {name:?}"
            )));
        }
    }
    place_attachments(data_dir, id, &change.attachments, true)?;
    let updated = update_job(store, id, |j| {
        if let Some(c) = change.command {
            j.command = c;
        }
        if let Some(i) = change.image {
            j.image = i;
        }
        j.attachments
            .extend(change.attachments.into_iter().map(|(n, _)| n));
    })?;
    updated.ok_or_else(|| Error::not_found("Job not found"))
}

/// Deletes a job that is not running (the caller kills it first).
pub fn delete_job(store: &Store, caller: &Principal, pipeline: Id, id: Id) -> Result<Job> {
    job_for(store, caller, Some(pipeline), id, Capability::Delete)?;
    let txn = store.write()?;
    let job = load_job(&txn, id)?.ok_or_else(|| Error::not_found("Job not found"))?;
    if job.state == JobState::Running {
        return Err(Error::conflict("the job is still running"));
    }
    let mut p: Pipeline = get(&txn.open_table(PIPELINES)?, pipeline)?
        .ok_or_else(|| Error::not_found("Pipeline not found"))?;
    p.jobs.retain(|j| *j != id);
    put(&txn, PIPELINES, p.id, &p)?;
    txn.open_table(JOBS)?.remove(id.0)?;
    logs::delete_logs(&txn, id)?;
    authz::delete_object(&txn, id)?;
    txn.commit()?;
    Ok(job)
}

/// Removes a job from its pipeline and deletes it (DELETE on the job), unless the pipeline is
/// queued or running (409). The job's files are the caller's to delete.
pub fn remove_job(store: &Store, caller: &Principal, id: Id) -> Result<Job> {
    let txn = store.write()?;
    Acl::write(&txn)?.check(caller, id, Kind::Job, Capability::Delete)?;
    let job = load_job(&txn, id)?.ok_or_else(|| Error::not_found("Job not found"))?;
    let mut p: Pipeline = get(&txn.open_table(PIPELINES)?, job.pipeline)?
        .ok_or_else(|| Error::not_found("Pipeline not found"))?;
    if pipeline_busy(&txn, &p)? {
        return Err(busy_conflict());
    }
    p.jobs.retain(|j| *j != id);
    put(&txn, PIPELINES, p.id, &p)?;
    txn.open_table(JOBS)?.remove(id.0)?;
    logs::delete_logs(&txn, id)?;
    authz::delete_object(&txn, id)?;
    txn.commit()?;
    Ok(job)
}

/// Where a job's files live (attachments, outbox, results).
pub fn job_dir(data_dir: &Path, job: Id) -> PathBuf {
    jobs_dir(data_dir).join(job.to_string())
}

/// `POST /pipeline/<pid>/submit`: queue every job of the pipeline (again, for a finished one).
/// A pipeline without jobs is refused as malformed (400, as kabuto's clients expect).
pub fn submit(
    store: &Store,
    data_dir: &Path,
    caller: &Principal,
    pipeline: Id,
) -> Result<Vec<(Id, JobState)>> {
    submit_or(store, data_dir, caller, pipeline, || {
        Error::bad_request("the pipeline has no jobs to run")
    })
}

/// As [`submit`], but a pipeline without jobs conflicts with its state (409), as /v1 answers
/// every refusal that depends on what the pipeline holds.
pub fn queue_pipeline(
    store: &Store,
    data_dir: &Path,
    caller: &Principal,
    pipeline: Id,
) -> Result<Vec<(Id, JobState)>> {
    submit_or(store, data_dir, caller, pipeline, || {
        Error::conflict("the pipeline has no jobs to run: add one first")
    })
}

fn submit_or(
    store: &Store,
    data_dir: &Path,
    caller: &Principal,
    pipeline: Id,
    no_jobs: impl FnOnce() -> Error,
) -> Result<Vec<(Id, JobState)>> {
    let txn = store.write()?;
    Acl::write(&txn)?.check(caller, pipeline, Kind::Pipeline, Capability::Update)?;
    let mut p: Pipeline = get(&txn.open_table(PIPELINES)?, pipeline)?
        .ok_or_else(|| Error::not_found("Pipeline not found"))?;
    if pipeline_busy(&txn, &p)? {
        return Err(Error::conflict("the pipeline is already queued or running"));
    }
    if p.jobs.is_empty() {
        return Err(no_jobs());
    }
    let mut states = Vec::new();
    for id in &p.jobs {
        let Some(mut job) = load_job(&txn, *id)? else {
            continue;
        };
        job.queue_again();
        logs::delete_logs(&txn, job.id)?;
        save_job(&txn, &job)?;
        states.push((job.id, job.state));
        let _ = std::fs::remove_file(result_path(data_dir, job.id));
    }
    let seq = {
        let queue = txn.open_table(QUEUE)?;
        let last = queue.last()?.map(|(k, _)| k.value());
        last.map_or(1, |l| l + 1)
    };
    txn.open_table(QUEUE)?.insert(seq, pipeline.0)?;
    p.queued = Some(seq);
    put(&txn, PIPELINES, p.id, &p)?;
    txn.commit()?;
    Ok(states)
}

/// The queued pipelines, first submitted first.
pub(crate) fn queued_pipelines(store: &Store) -> Result<Vec<Id>> {
    let txn = store.read()?;
    let mut out = Vec::new();
    for entry in txn.open_table(QUEUE)?.iter()? {
        let (_, v) = entry?;
        out.push(Id(v.value()));
    }
    Ok(out)
}

/// What a pipeline run does next.
pub(crate) enum Next {
    /// A queued job, now claimed as running.
    Start(Job),
    /// A job that was running when the server stopped: re-attach to it.
    Resume(Job),
    /// Nothing left: the pipeline left the queue.
    Finished,
}

pub(crate) fn claim_next(store: &Store, pipeline: Id, now: Timestamp) -> Result<Next> {
    let txn = store.write()?;
    let Some(mut p) = get::<Pipeline>(&txn.open_table(PIPELINES)?, pipeline)? else {
        txn.commit()?;
        return Ok(Next::Finished);
    };
    for id in p.jobs.clone() {
        let Some(mut job) = load_job(&txn, id)? else {
            continue;
        };
        match job.state {
            JobState::Running => return Ok(Next::Resume(job)),
            JobState::InQueue => {
                job.state = JobState::Running;
                job.started = Some(now);
                save_job(&txn, &job)?;
                txn.commit()?;
                return Ok(Next::Start(job));
            }
            _ => {}
        }
    }
    if let Some(seq) = p.queued.take() {
        txn.open_table(QUEUE)?.remove(seq)?;
        put(&txn, PIPELINES, p.id, &p)?;
    }
    txn.commit()?;
    Ok(Next::Finished)
}

/// After a job failed or was killed: the rest of its pipeline will not run.
pub(crate) fn cancel_rest(store: &Store, pipeline: Id, reason: &str) -> Result<()> {
    let txn = store.write()?;
    if let Some(p) = get::<Pipeline>(&txn.open_table(PIPELINES)?, pipeline)? {
        for id in &p.jobs {
            if let Some(mut job) = load_job(&txn, *id)?
                && job.state == JobState::InQueue
            {
                job.state = JobState::Cancelled;
                job.error = Some(reason.to_owned());
                save_job(&txn, &job)?;
            }
        }
    }
    txn.commit()?;
    Ok(())
}

/// Asks for a job to stop: a queued job is cancelled at once; a running one is marked, and the
/// runner kills its container. Returns the state after the request.
pub(crate) fn request_kill(store: &Store, id: Id, by: &str) -> Result<JobState> {
    let txn = store.write()?;
    let mut job = load_job(&txn, id)?.ok_or_else(|| Error::not_found("Job not found"))?;
    match job.state {
        JobState::InQueue => {
            job.state = JobState::Cancelled;
            job.error = Some(format!("cancelled by {by} before it ran"));
        }
        JobState::Running => {
            job.kill_requested = true;
            job.error = Some(format!("killed by {by}"));
        }
        _ => {}
    }
    save_job(&txn, &job)?;
    txn.commit()?;
    Ok(job.state)
}

/// Jobs in state running (for recovery after a restart), found through the list index.
pub(crate) fn running_jobs(store: &Store) -> Result<Vec<Job>> {
    let txn = store.read()?;
    let ids = authz::every_with(&txn, Kind::Job, &[Facet::State(JobState::Running.code())])?;
    let jobs = txn.open_table(JOBS)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.extend(get::<Job>(&jobs, id)?);
    }
    Ok(out)
}

// ---- backups ----

/// What a backup of the store as of `txn` holds of jobs: every job's attachments, and the
/// result of every finished job that left one; with the counts of pipelines and jobs by state.
pub(crate) fn backup_wanted(
    txn: &redb::ReadTransaction,
    counts: &mut crate::core::backup::Counts,
    out: &mut Vec<crate::core::backup::Wanted>,
) -> Result<()> {
    use crate::core::backup::{Content, Wanted};
    use redb::ReadableTableMetadata;
    counts.insert("pipelines".into(), txn.open_table(PIPELINES)?.len()?);
    let root = Path::new("");
    let mut jobs = 0u64;
    for entry in txn.open_table(JOBS)?.iter()? {
        let job: Job = decode(entry?.1.value())?;
        jobs += 1;
        *counts
            .entry(format!("jobs_{}", job.state.as_str()))
            .or_default() += 1;
        for name in &job.attachments {
            out.push(Wanted {
                path: inbox_dir(root, job.id).join(name),
                content: Content::File {
                    required: true,
                    sha256: None,
                },
                // Attachments only come and go with their job.
                fingerprint: "attachment".into(),
                kind: "attachments",
            });
        }
        if job.state.is_finished() {
            out.push(Wanted {
                path: result_path(root, job.id),
                // A job that was cancelled before it ran, or whose outbox was too large, has
                // none.
                content: Content::File {
                    required: false,
                    sha256: None,
                },
                // Another run removes the result and, when it ends, replaces it.
                fingerprint: format!(
                    "{} {:?} {:?} {:?}",
                    job.state.as_str(),
                    job.started,
                    job.finished,
                    job.response
                ),
                kind: "results",
            });
        }
    }
    counts.insert("jobs".into(), jobs);
    Ok(())
}

/// After a restore: the jobs that were running when the backup was taken cannot be re-attached
/// (their containers belong to the server the backup was taken from, or are gone), so each
/// goes back to the queue to run again from the start, in its place in its pipeline; one that
/// was being killed ends cancelled, and the rest of its pipeline with it. Returns how many were
/// queued again and how many cancelled.
pub(crate) fn requeue_interrupted(store: &Store) -> Result<(u64, u64)> {
    let running = running_jobs(store)?;
    let txn = store.write()?;
    let (mut requeued, mut killed) = (0u64, Vec::new());
    for id in running.iter().map(|j| j.id) {
        let Some(mut job) = load_job(&txn, id)? else {
            continue;
        };
        if job.state != JobState::Running {
            continue;
        }
        if job.kill_requested {
            job.state = JobState::Cancelled;
            job.kill_requested = false;
            killed.push((job.pipeline, job.id));
        } else {
            job.queue_again();
            logs::delete_logs(&txn, job.id)?;
            requeued += 1;
        }
        save_job(&txn, &job)?;
    }
    txn.commit()?;
    for (pipeline, job) in &killed {
        let reason = format!("not run: job {job} before it in the pipeline was killed");
        cancel_rest(store, *pipeline, &reason)?;
    }
    Ok((requeued, killed.len() as u64))
}
