//! Measuring a job's CPU time, peak memory and block I/O.
//!
//! The engine's stats API costs a round trip of 100 ms or more on a busy 2-core machine, so a job
//! of a second would be sampled a few times and its last CPU time lost. When the server can read
//! the container's cgroup (it runs on the engine's machine), it reads the counters there every
//! 50 ms instead: the cgroup is found through `/proc/<pid>/cgroup` of the container's first
//! process, for cgroup v1 (`cpuacct.usage`, `memory.max_usage_in_bytes`,
//! `blkio.throttle.io_service_bytes`) and v2 (`cpu.stat`, `memory.peak` or `memory.current`,
//! `io.stat`). Otherwise it samples the engine's stats API.

use bollard::Docker;
use bollard::query_parameters::StatsOptionsBuilder;
use futures_util::StreamExt;
use std::path::PathBuf;

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
