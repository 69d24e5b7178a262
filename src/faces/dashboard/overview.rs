//! The overview at `/ui`: the engine, the viewer's running work and recent failures, the run
//! queue, disk use, and charts (CPU and memory of the last hour, jobs per hour, registry storage
//! by repository).
//!
//! Everything is read through the list index, newest first and bounded (a few records of each
//! kind, counts that stop at [`COUNT_LIMIT`]), so that the page costs the same with ten jobs in
//! the store or ten thousand; the usage charts come from the in-memory history the engine layer
//! samples (`engine::usage::keep_history`), filtered by what the viewer may read.

use super::page::{Layout, Viewer};
use super::{charts, format, html};
use crate::core::clock::Timestamp;
use crate::core::error::Result;
use crate::core::id::Id;
use crate::core::metrics::{DiskUsage, HISTORY_SECS, UsageSeries};
use crate::core::page::PageRequest;
use crate::domains::authz::{self, Capability, Kind, Principal};
use crate::domains::jobs::{self, Job, JobState};
use crate::domains::registry::{meta, quota};
use crate::domains::servables::{self, Instance, InstanceState};
use crate::faces::state::App;
use askama::Template;
use axum::extract::State;
use axum::response::Html;

/// Counts of running work stop here ("1000 or more").
const COUNT_LIMIT: usize = 1000;
/// How many running jobs and instances, and recent failures of each, the page lists.
const LISTED: usize = 8;
/// How many hours the jobs-per-hour chart covers.
const HOURS: i64 = 24;
/// How many of the newest jobs the jobs-per-hour chart counts at most (reading their ids costs
/// about a microsecond each: the chart stays a small part of the page).
const JOBS_CHARTED: usize = 1000;
/// How many repositories the storage chart weighs (the first page of them) and draws.
const REPOS_WEIGHED: usize = 50;
const REPOS_DRAWN: usize = 10;
/// How old the engine's status may be (the sampler asks every 30 s); older, the page asks.
const ENGINE_FRESH_SECS: i64 = 60;

#[derive(Template)]
#[template(path = "dashboard/overview.html")]
struct Overview {
    layout: Layout,
    engine_ok: bool,
    engine: String,
    running_jobs: String,
    running_instances: String,
    queue: u64,
    /// Admins: the data directory's parts, as last measured.
    disk: Option<DiskView>,
    /// The viewer's own repositories.
    registry_used: String,
    registry_quota: Option<String>,
    running: Vec<Row>,
    failures: Vec<Row>,
    cpu_chart: String,
    memory_chart: String,
    jobs_chart: String,
    /// How many jobs the chart counted when it stopped at [`JOBS_CHARTED`] (more were made).
    jobs_capped: Option<usize>,
    storage_chart: String,
}

/// A line of the running-work and failure tables.
struct Row {
    kind: &'static str,
    link: String,
    id: String,
    short: String,
    when: String,
    detail: String,
}

struct DiskView {
    registry: String,
    jobs: String,
    database: String,
    measured: String,
}

/// What the store says, read on the blocking pool.
struct Read {
    running_jobs: usize,
    running_instances: usize,
    queue: u64,
    jobs_running: Vec<Job>,
    instances_running: Vec<Instance>,
    jobs_failed: Vec<Job>,
    instances_failed: Vec<Instance>,
    job_times: Vec<u64>,
    repositories: Vec<(String, u64)>,
    own_registry: u64,
    usage: Vec<UsageSeries>,
}

pub async fn page(State(app): State<App>, viewer: Viewer) -> Result<Html<String>> {
    let p = viewer.principal.clone();
    let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    let now_secs = (now_ms / 1000) as i64;
    let reading = app.blocking(move |app| read(app, &p, now_ms));
    // The sampler's answer when fresh (asking the engine costs ~10 ms); else ask now.
    let engine = async {
        match app.metrics.usage.engine(now_secs, ENGINE_FRESH_SECS) {
            Some(status) => status,
            None => {
                let status = crate::engine::usage::engine_status(&app.engine).await;
                app.metrics.usage.set_engine(status.clone());
                status
            }
        }
    };
    let (read, engine) = tokio::join!(reading, engine);
    let read = read?;
    let disk = if viewer.principal.admin {
        Some(disk_view(app.metrics.usage.disk()))
    } else {
        None
    };
    let quota = quota::limit_bytes(app.config.registry.quota_mb).map(format::size);
    let (cpu_chart, memory_chart) = usage_charts(&read.usage, now_secs);
    html(&Overview {
        layout: viewer.layout("Overview", "overview"),
        engine_ok: engine.up,
        engine: engine.text,
        running_jobs: counted(read.running_jobs),
        running_instances: counted(read.running_instances),
        queue: read.queue,
        disk,
        registry_used: format::size(read.own_registry),
        registry_quota: quota,
        running: rows(read.jobs_running, read.instances_running),
        failures: rows(read.jobs_failed, read.instances_failed),
        cpu_chart,
        memory_chart,
        jobs_chart: jobs_chart(&read.job_times, now_ms),
        jobs_capped: (read.job_times.len() >= JOBS_CHARTED).then_some(JOBS_CHARTED),
        storage_chart: storage_chart(read.repositories),
    })
}

/// Every read of the page, each bounded.
fn read(app: &App, p: &Principal, now_ms: u64) -> Result<Read> {
    let store = &app.store;
    let since = now_ms.saturating_sub((HOURS * 3600 * 1000) as u64);
    let mut repositories = Vec::new();
    let first = PageRequest {
        after: None,
        limit: REPOS_WEIGHED,
    };
    for repo in meta::list_repositories(store, p, None, first)?.items {
        let usage = meta::repository_usage(store, &repo.name)?;
        repositories.push((repo.name, usage.bytes));
    }
    let usage = app
        .metrics
        .usage
        .last_hour((now_ms / 1000) as i64)
        .into_iter()
        .filter(|s| readable(app, p, s))
        .collect();
    Ok(Read {
        running_jobs: jobs::count_readable_jobs(store, p, JobState::Running, COUNT_LIMIT)?,
        running_instances: servables::count_readable_instances(
            store,
            p,
            InstanceState::Running,
            COUNT_LIMIT,
        )?,
        queue: jobs::queue_length(store)?,
        jobs_running: jobs::recent_jobs(store, p, Some(JobState::Running), LISTED)?,
        instances_running: servables::recent_instances(
            store,
            p,
            Some(InstanceState::Running),
            LISTED,
        )?,
        jobs_failed: jobs::recent_jobs(store, p, Some(JobState::Failed), LISTED)?,
        instances_failed: servables::recent_instances(
            store,
            p,
            Some(InstanceState::Failed),
            LISTED,
        )?,
        job_times: jobs::job_creation_times(store, p, since, JOBS_CHARTED)?,
        repositories,
        own_registry: meta::owner_usage(store, p.owner())?.blob_bytes,
        usage,
    })
}

/// Whether the viewer may read what a sampled container runs (the one check).
fn readable(app: &App, p: &Principal, series: &UsageSeries) -> bool {
    let kind = match series.kind {
        "job" => Kind::Job,
        "instance" => Kind::Instance,
        _ => return false,
    };
    authz::authorize(&app.store, p, series.id, kind, Capability::Read).is_ok()
}

fn counted(n: usize) -> String {
    if n >= COUNT_LIMIT {
        format!("{COUNT_LIMIT} or more")
    } else {
        n.to_string()
    }
}

fn disk_view(disk: Option<DiskUsage>) -> DiskView {
    match disk {
        Some(d) => DiskView {
            registry: format::size(d.registry),
            jobs: format::size(d.jobs),
            database: format::size(d.database),
            measured: chrono::DateTime::from_timestamp(d.at, 0)
                .map_or_else(|| "-".to_owned(), |t| format::time(&t)),
        },
        None => DiskView {
            registry: "measuring".to_owned(),
            jobs: "measuring".to_owned(),
            database: "measuring".to_owned(),
            measured: "not yet".to_owned(),
        },
    }
}

fn row(kind: &'static str, path: &str, id: Id, when: &Timestamp, detail: String) -> Row {
    Row {
        kind,
        link: format!("/ui/{path}/{id}"),
        id: id.to_string(),
        short: format::short(&id),
        when: format::time(when),
        detail,
    }
}

/// Jobs and instances in one table, newest first.
fn rows(jobs: Vec<Job>, instances: Vec<Instance>) -> Vec<Row> {
    let mut out: Vec<(Id, Row)> = Vec::with_capacity(jobs.len() + instances.len());
    for j in jobs {
        let when = j.finished.or(j.started).unwrap_or(j.creation_date);
        let detail = match (&j.error, j.response) {
            (Some(e), _) => e.clone(),
            (None, Some(code)) if j.state == JobState::Failed => format!("exit code {code}"),
            _ => j.command.clone(),
        };
        out.push((j.id, row("Job", "jobs", j.id, &when, detail)));
    }
    for i in instances {
        let when = i.finished.or(i.started).unwrap_or(i.created);
        let detail = match (&i.error, i.exit_code) {
            (Some(e), _) => e.clone(),
            (None, Some(code)) if i.state == InstanceState::Failed => format!("exit code {code}"),
            _ => format!("{} instance", i.kind.as_str()),
        };
        out.push((i.id, row("Instance", "instances", i.id, &when, detail)));
    }
    out.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
    out.truncate(LISTED);
    out.into_iter().map(|(_, r)| r).collect()
}

/// CPU (percent of one CPU) and memory (MiB) of each readable container over the last hour.
fn usage_charts(series: &[UsageSeries], now: i64) -> (String, String) {
    let start = now - HISTORY_SECS;
    let name = |s: &UsageSeries| format!("{} {}", s.kind, format::short(&s.id));
    let points = |s: &UsageSeries, value: &dyn Fn(&crate::core::metrics::UsagePoint) -> f64| {
        s.points
            .iter()
            .map(|p| ((p.at - start) as f64, value(p)))
            .collect::<Vec<_>>()
    };
    let cpu: Vec<(String, Vec<(f64, f64)>)> = series
        .iter()
        .map(|s| (name(s), points(s, &|p| p.cpu_percent)))
        .collect();
    let memory: Vec<(String, Vec<(f64, f64)>)> = series
        .iter()
        .map(|s| (name(s), points(s, &|p| p.memory as f64 / (1024.0 * 1024.0))))
        .collect();
    let span = HISTORY_SECS as f64;
    (
        charts::lines(
            "CPU of running jobs and instances",
            &cpu,
            span,
            "%",
            "last hour",
        ),
        charts::lines(
            "Memory of running jobs and instances",
            &memory,
            span,
            " MiB",
            "last hour",
        ),
    )
}

/// Jobs made in each of the last [`HOURS`] hours (UTC), oldest hour first.
fn jobs_chart(times: &[u64], now_ms: u64) -> String {
    let hour_ms = 3_600_000u64;
    let current = now_ms / hour_ms;
    let first = current.saturating_sub((HOURS - 1) as u64);
    let mut counts = vec![0u64; HOURS as usize];
    for t in times {
        let hour = t / hour_ms;
        if (first..=current).contains(&hour) {
            counts[(hour - first) as usize] += 1;
        }
    }
    if counts.iter().all(|c| *c == 0) {
        return charts::bars("Jobs per hour, last 24 hours", &[], "");
    }
    let points: Vec<(String, f64)> = counts
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let start = ((first + i as u64) * 3600) as i64;
            let label = chrono::DateTime::from_timestamp(start, 0)
                .map_or_else(String::new, |t| t.format("%H:00").to_string());
            (label, *n as f64)
        })
        .collect();
    charts::bars("Jobs per hour, last 24 hours (UTC)", &points, "")
}

/// The largest of the viewer's first repositories, in MiB.
fn storage_chart(mut repositories: Vec<(String, u64)>) -> String {
    repositories.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    repositories.truncate(REPOS_DRAWN);
    let points: Vec<(String, f64)> = repositories
        .into_iter()
        .map(|(name, bytes)| (name, bytes as f64 / (1024.0 * 1024.0)))
        .collect();
    charts::bars("Registry storage by repository", &points, " MiB")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_fall_into_the_hour_they_were_made() {
        let hour = 3_600_000u64;
        let now = 100 * hour + 5;
        let svg = jobs_chart(&[now, now - 1, 99 * hour, 50 * hour], now);
        assert_eq!(svg.matches("<rect").count(), 24, "{svg}");
        assert!(svg.contains(": 2<"), "two in the current hour: {svg}");
        assert!(jobs_chart(&[50 * hour], now).contains("nothing yet"));
    }

    #[test]
    fn the_storage_chart_draws_the_largest_repositories() {
        let repos: Vec<(String, u64)> = (0..15u64).map(|i| (format!("r{i}"), i << 20)).collect();
        let svg = storage_chart(repos);
        assert_eq!(svg.matches("<rect").count(), REPOS_DRAWN);
        assert!(svg.contains("r14") && !svg.contains(">r0<"), "{svg}");
        assert_eq!(counted(3), "3");
        assert_eq!(counted(COUNT_LIMIT), "1000 or more");
    }
}
