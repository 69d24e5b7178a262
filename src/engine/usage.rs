//! Measuring a job's CPU time, peak memory and block I/O.
//!
//! The engine's stats API costs a round trip of 100 ms or more on a busy 2-core machine, so a job
//! of a second would be sampled a few times and its last CPU time lost. When the server can read
//! the container's cgroup (it runs on the engine's machine), it reads the counters there every
//! 50 ms instead: the cgroup is found through `/proc/<pid>/cgroup` of the container's first
//! process, for cgroup v1 (`cpuacct.usage`, `memory.max_usage_in_bytes`,
//! `blkio.throttle.io_service_bytes`) and v2 (`cpu.stat`, `memory.peak` or `memory.current`,
//! `io.stat`). Otherwise it samples the engine's stats API.
//!
//! Besides, [`keep_history`] samples every running job and instance container of the
//! installation every 30 s (CPU and memory, from the engine's stats API) into the last hour's
//! history that the dashboard's overview draws, notes whether the engine answers, and measures
//! the data directory's disk use every five minutes.

use super::Engine;
use crate::core::id::Id;
use crate::core::metrics::{DiskUsage, EngineStatus, Metrics, UsageHistory, UsagePoint};
use crate::core::tasks::Tasks;
use bollard::Docker;
use bollard::query_parameters::{ListContainersOptionsBuilder, StatsOptionsBuilder};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub cpu_ns: u64,
    pub memory: u64,
    pub io: u64,
}

impl Usage {
    pub fn merge(&mut self, other: Usage) {
        self.cpu_ns = self.cpu_ns.max(other.cpu_ns);
        self.memory = self.memory.max(other.memory);
        self.io = self.io.max(other.io);
    }
}

/// Where a container's counters are read from.
pub enum Probe {
    V1 {
        cpuacct: PathBuf,
        memory: PathBuf,
        blkio: Option<PathBuf>,
    },
    V2(PathBuf),
    Api(Docker, String),
}

const ROOT: &str = "/sys/fs/cgroup";

impl Probe {
    /// The cgroup of a started container, or the stats API when it cannot be read from here.
    pub async fn locate(docker: &Docker, name: &str) -> Probe {
        let pid = docker
            .inspect_container(name, None)
            .await
            .ok()
            .and_then(|c| c.state)
            .and_then(|s| s.pid)
            .filter(|p| *p > 0);
        let located = match pid {
            Some(pid) => tokio::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .await
                .ok()
                .and_then(|text| from_proc_cgroup(&text)),
            None => None,
        };
        located.unwrap_or_else(|| Probe::Api(docker.clone(), name.to_owned()))
    }

    /// How often this probe is worth reading.
    pub fn period(&self) -> std::time::Duration {
        match self {
            Probe::Api(..) => std::time::Duration::from_millis(200),
            _ => std::time::Duration::from_millis(50),
        }
    }

    /// One sample; `None` once the counters are gone (the container ended).
    pub async fn sample(&self) -> Option<Usage> {
        match self {
            Probe::V1 {
                cpuacct,
                memory,
                blkio,
            } => {
                let cpu = read_u64(cpuacct.join("cpuacct.usage")).await?;
                let memory = read_u64(memory.join("memory.max_usage_in_bytes"))
                    .await
                    .unwrap_or(0);
                let io = match blkio {
                    Some(b) => tokio::fs::read_to_string(b.join("blkio.throttle.io_service_bytes"))
                        .await
                        .map(|t| blkio_v1_bytes(&t))
                        .unwrap_or(0),
                    None => 0,
                };
                Some(Usage {
                    cpu_ns: cpu,
                    memory,
                    io,
                })
            }
            Probe::V2(dir) => {
                let stat = tokio::fs::read_to_string(dir.join("cpu.stat")).await.ok()?;
                let cpu_us = stat
                    .lines()
                    .find_map(|l| l.strip_prefix("usage_usec "))
                    .and_then(|v| v.trim().parse::<u64>().ok())?;
                let memory = match read_u64(dir.join("memory.peak")).await {
                    Some(m) => m,
                    None => read_u64(dir.join("memory.current")).await.unwrap_or(0),
                };
                let io = tokio::fs::read_to_string(dir.join("io.stat"))
                    .await
                    .map(|t| io_v2_bytes(&t))
                    .unwrap_or(0);
                Some(Usage {
                    cpu_ns: cpu_us * 1000,
                    memory,
                    io,
                })
            }
            Probe::Api(docker, name) => {
                let options = StatsOptionsBuilder::new()
                    .stream(false)
                    .one_shot(true)
                    .build();
                let stats = docker.stats(name, Some(options)).next().await?.ok()?;
                let cpu = stats
                    .cpu_stats
                    .and_then(|c| c.cpu_usage)
                    .and_then(|u| u.total_usage)
                    .unwrap_or(0);
                let memory = stats
                    .memory_stats
                    .map(|m| m.max_usage.unwrap_or(0).max(m.usage.unwrap_or(0)))
                    .unwrap_or(0);
                let io = stats
                    .blkio_stats
                    .and_then(|b| b.io_service_bytes_recursive)
                    .unwrap_or_default()
                    .iter()
                    .filter(|e| {
                        e.op.as_deref().is_some_and(|op| {
                            op.eq_ignore_ascii_case("read") || op.eq_ignore_ascii_case("write")
                        })
                    })
                    .filter_map(|e| e.value)
                    .sum();
                Some(Usage {
                    cpu_ns: cpu,
                    memory,
                    io,
                })
            }
        }
    }
}

async fn read_u64(path: PathBuf) -> Option<u64> {
    tokio::fs::read_to_string(path)
        .await
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Finds a controller's directory for a cgroup v1 path: `/sys/fs/cgroup/<mount>/<path>`, where
/// the mount is named after the controller alone or a group of them (`cpu,cpuacct`).
fn v1_dir(controllers: &str, path: &str) -> Option<PathBuf> {
    let rel = path.trim_start_matches('/');
    let mut candidates = vec![controllers.to_owned()];
    candidates.extend(controllers.split(',').map(str::to_owned));
    candidates
        .into_iter()
        .map(|m| PathBuf::from(ROOT).join(m).join(rel))
        .find(|p| p.is_dir())
}

fn from_proc_cgroup(text: &str) -> Option<Probe> {
    let mut cpuacct = None;
    let mut memory = None;
    let mut blkio = None;
    let mut unified = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers.is_empty() {
            unified = Some(path.to_owned());
            continue;
        }
        let names: Vec<&str> = controllers.split(',').collect();
        if names.contains(&"cpuacct") {
            cpuacct = v1_dir(controllers, path);
        }
        if names.contains(&"memory") {
            memory = v1_dir(controllers, path);
        }
        if names.contains(&"blkio") {
            blkio = v1_dir(controllers, path);
        }
    }
    match (cpuacct, memory) {
        (Some(cpuacct), Some(memory)) => Some(Probe::V1 {
            cpuacct,
            memory,
            blkio,
        }),
        _ => {
            let dir = PathBuf::from(ROOT).join(unified?.trim_start_matches('/'));
            dir.join("cpu.stat").is_file().then_some(Probe::V2(dir))
        }
    }
}

/// `8:0 Read 4096` lines; the `Total` lines are sums and are skipped.
fn blkio_v1_bytes(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_dev, op, value) = (f.next()?, f.next()?, f.next()?);
            matches!(op, "Read" | "Write").then(|| value.parse::<u64>().ok())?
        })
        .sum()
}

/// `8:0 rbytes=4096 wbytes=0 ...` lines.
fn io_v2_bytes(text: &str) -> u64 {
    text.split_whitespace()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            matches!(k, "rbytes" | "wbytes").then(|| v.parse::<u64>().ok())?
        })
        .sum()
}

/// How often the history samples the running containers.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(30);
/// How many samples pass between two measurements of the disk (five minutes).
const DISK_EVERY: u64 = 10;
/// How many containers one round samples at most.
const MAX_SAMPLED: usize = 64;

/// Starts filling `metrics.usage` (see the module's documentation) until the server shuts
/// down; does nothing when it is already being filled, so that the server's start and the first
/// page that needs it may both call it.
pub fn keep_history(
    metrics: &Arc<Metrics>,
    engine: &Arc<Engine>,
    installation: Id,
    data_dir: &Path,
    tasks: &Tasks,
) {
    if !metrics.usage.begin_sampling() {
        return;
    }
    let (metrics, engine, data_dir) = (metrics.clone(), engine.clone(), data_dir.to_owned());
    tasks.spawn(async move {
        let mut round = 0u64;
        loop {
            if round % DISK_EVERY == 0 {
                let dir = data_dir.clone();
                match tokio::task::spawn_blocking(move || measure_disk(&dir)).await {
                    Ok(disk) => metrics.usage.set_disk(disk),
                    Err(e) => tracing::warn!("measuring the data directory: {e}"),
                }
            }
            round += 1;
            metrics.usage.set_engine(engine_status(&engine).await);
            if let Ok(docker) = engine.client().await
                && let Err(e) = sample_round(&docker, installation, &metrics.usage).await
            {
                tracing::debug!("sampling the containers' usage: {e}");
            }
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
    });
}

/// How long a page waits for the engine to say who it is.
const ENGINE_WAIT: Duration = Duration::from_millis(800);

/// Asks the engine who it is (at most [`ENGINE_WAIT`]): its version, or why it did not answer.
pub async fn engine_status(engine: &Engine) -> EngineStatus {
    let (up, text) = match tokio::time::timeout(ENGINE_WAIT, engine.info()).await {
        Ok(Ok(info)) => (
            true,
            format!(
                "Docker {} (API {}, {}/{})",
                info.version, info.api_version, info.os, info.arch
            ),
        ),
        Ok(Err(e)) => (false, e.to_string()),
        Err(_) => (false, "the Docker engine did not answer in time".to_owned()),
    };
    EngineStatus {
        at: chrono::Utc::now().timestamp(),
        up,
        text,
    }
}

/// What a container of the installation runs, from its labels: (`job` or `instance`, its id).
fn runs(labels: &HashMap<String, String>) -> Option<(&'static str, Id)> {
    let kind = match labels.get("dtaas.kind").map(String::as_str) {
        Some("job") => "job",
        Some("instance") => "instance",
        _ => return None,
    };
    labels
        .get(&format!("dtaas.{kind}"))
        .and_then(|id| Id::parse(id))
        .map(|id| (kind, id))
}

/// One sample of every running job and instance container, side by side.
async fn sample_round(
    docker: &Docker,
    installation: Id,
    history: &UsageHistory,
) -> Result<(), bollard::errors::Error> {
    let filters: HashMap<String, Vec<String>> = HashMap::from([
        (
            "label".to_owned(),
            vec![format!("dtaas.installation={installation}")],
        ),
        ("status".to_owned(), vec!["running".to_owned()]),
    ]);
    let options = ListContainersOptionsBuilder::new()
        .filters(&filters)
        .build();
    let containers = docker.list_containers(Some(options)).await?;
    let targets: Vec<(String, &'static str, Id)> = containers
        .into_iter()
        .filter_map(|c| {
            let (kind, id) = runs(c.labels.as_ref()?)?;
            Some((c.id?, kind, id))
        })
        .take(MAX_SAMPLED)
        .collect();
    let samples = futures_util::future::join_all(
        targets
            .iter()
            .map(|(container, _, _)| current_usage(docker, container)),
    )
    .await;
    let at = chrono::Utc::now().timestamp();
    for ((_, kind, id), sample) in targets.iter().zip(samples) {
        if let Some((cpu_percent, memory)) = sample {
            history.record(
                kind,
                *id,
                UsagePoint {
                    at,
                    cpu_percent,
                    memory,
                },
            );
        }
    }
    Ok(())
}

/// A container's CPU (percent of one CPU, over the second the engine measures) and memory in
/// use (without the page cache it may drop), from the stats API.
async fn current_usage(docker: &Docker, container: &str) -> Option<(f64, u64)> {
    let options = StatsOptionsBuilder::new().stream(false).build();
    let stats = docker.stats(container, Some(options)).next().await?.ok()?;
    let cpu = |s: &Option<bollard::models::ContainerCpuStats>| {
        s.as_ref().map(|c| {
            (
                c.cpu_usage
                    .as_ref()
                    .and_then(|u| u.total_usage)
                    .unwrap_or(0),
                c.system_cpu_usage.unwrap_or(0),
                c.online_cpus.unwrap_or(1),
            )
        })
    };
    let (total, system, cpus) = cpu(&stats.cpu_stats)?;
    let (pre_total, pre_system, _) = cpu(&stats.precpu_stats).unwrap_or((0, 0, 1));
    let cpu_percent = cpu_percent(total, pre_total, system, pre_system, cpus);
    let memory = stats.memory_stats.map_or(0, |m| {
        let cache = m.stats.as_ref().and_then(|s| {
            s.get("inactive_file")
                .or_else(|| s.get("total_inactive_file"))
                .copied()
        });
        m.usage.unwrap_or(0).saturating_sub(cache.unwrap_or(0))
    });
    Some((cpu_percent, memory))
}

/// The engine's CPU percentage: the container's share of the machine's CPU time between two
/// readings, times the CPUs online (100 is one CPU busy).
fn cpu_percent(total: u64, pre_total: u64, system: u64, pre_system: u64, cpus: u32) -> f64 {
    let used = total.saturating_sub(pre_total) as f64;
    let elapsed = system.saturating_sub(pre_system) as f64;
    if pre_total == 0 || elapsed <= 0.0 {
        return 0.0;
    }
    used / elapsed * f64::from(cpus.max(1)) * 100.0
}

/// The bytes on disk of the registry's blobs, the jobs' directories and the database.
fn measure_disk(data_dir: &Path) -> DiskUsage {
    DiskUsage {
        at: chrono::Utc::now().timestamp(),
        registry: tree_bytes(&data_dir.join("registry")),
        jobs: tree_bytes(&crate::domains::jobs::jobs_dir(data_dir)),
        database: tree_bytes(&data_dir.join(crate::core::store::DB_FILE)),
    }
}

/// The blocks a file or directory tree holds, in bytes (links are not followed; what cannot be
/// read counts nothing).
fn tree_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0u64;
    let mut todo = vec![path.to_owned()];
    while let Some(next) = todo.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&next) else {
            continue;
        };
        total = total.saturating_add(meta.blocks().saturating_mul(512));
        if meta.is_dir()
            && let Ok(entries) = std::fs::read_dir(&next)
        {
            todo.extend(entries.flatten().map(|e| e.path()));
        }
    }
    total
}

#[cfg(test)]
mod history_tests {
    use super::*;

    #[test]
    fn containers_are_known_by_their_labels() {
        let id = Id::new();
        let labels = |pairs: &[(&str, String)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect()
        };
        let job = labels(&[("dtaas.kind", "job".into()), ("dtaas.job", id.to_string())]);
        assert_eq!(runs(&job), Some(("job", id)));
        let instance = labels(&[
            ("dtaas.kind", "instance".into()),
            ("dtaas.instance", id.to_string()),
        ]);
        assert_eq!(runs(&instance), Some(("instance", id)));
        let utility = labels(&[("dtaas.kind", "measure".into())]);
        assert_eq!(runs(&utility), None);
        let unnamed = labels(&[("dtaas.kind", "job".into()), ("dtaas.job", "x".into())]);
        assert_eq!(runs(&unnamed), None);
    }

    #[test]
    fn cpu_is_the_share_of_the_machine_times_its_cpus() {
        // Half of the machine's time on a 2-CPU machine: one CPU busy.
        assert_eq!(cpu_percent(1_500, 1_000, 2_000, 1_000, 2), 100.0);
        assert_eq!(cpu_percent(1_000, 1_000, 2_000, 1_000, 2), 0.0);
        assert_eq!(
            cpu_percent(1_500, 0, 2_000, 0, 2),
            0.0,
            "no earlier reading"
        );
        assert_eq!(cpu_percent(1_500, 1_000, 1_000, 1_000, 2), 0.0);
    }

    #[test]
    fn the_disk_is_measured_by_the_blocks_each_part_holds() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("registry/blobs/ab");
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::write(blobs.join("blob"), vec![7u8; 100_000]).unwrap();
        std::fs::create_dir_all(dir.path().join("jobs")).unwrap();
        let disk = measure_disk(dir.path());
        assert!(disk.registry >= 100_000, "{disk:?}");
        assert!(disk.jobs < 100_000, "{disk:?}");
        assert_eq!(disk.database, 0, "no database file here");
    }
}
