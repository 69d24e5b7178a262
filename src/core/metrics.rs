//! The running server's own counters, for `/metrics` (faces::metrics renders them in the
//! Prometheus text format, together with gauges read from the store at scrape time).
//!
//! Counters live in memory and start at zero with the process, as Prometheus expects of a
//! counter (its `rate()` handles the reset). Every layer records into the one [`Metrics`] the
//! server makes: the faces count requests and registry bytes, the engine times builds and
//! samples the containers' usage into the last hour's [`UsageHistory`] (the dashboard's charts).

use super::id::Id;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Upper bounds (seconds) of the build-duration histogram's buckets.
pub const BUILD_BUCKETS: [f64; 9] = [1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0];

/// The counters of one server.
#[derive(Default)]
pub struct Metrics {
    /// Requests answered, by (route pattern, method, status).
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// Builds finished, by outcome.
    builds: Mutex<BTreeMap<String, Histogram>>,
    /// Bytes the registry received (blob uploads, manifests).
    pub registry_bytes_in: AtomicU64,
    /// Bytes the registry sent (blob and manifest downloads).
    pub registry_bytes_out: AtomicU64,
    /// CPU and memory of the running containers over the last hour, and the disk in use.
    pub usage: UsageHistory,
}

/// A histogram: a count per bucket (cumulative when rendered), a sum and a count.
#[derive(Default, Clone)]
struct Histogram {
    buckets: [u64; BUILD_BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Metrics {
    /// One request answered. `route` is the matched route's pattern (never the path itself,
    /// which holds ids and secrets and would make one series per object).
    pub fn request(&self, route: &str, method: &str, status: u16) {
        if let Ok(mut map) = self.requests.lock() {
            *map.entry((route.to_owned(), method.to_owned(), status))
                .or_default() += 1;
        }
    }

    /// One build finished with `outcome` (its state's name) after `took`.
    pub fn build_finished(&self, outcome: &str, took: Duration) {
        let seconds = took.as_secs_f64();
        if let Ok(mut map) = self.builds.lock() {
            let h = map.entry(outcome.to_owned()).or_default();
            for (bucket, bound) in h.buckets.iter_mut().zip(BUILD_BUCKETS) {
                if seconds <= bound {
                    *bucket += 1;
                }
            }
            h.sum += seconds;
            h.count += 1;
        }
    }

    pub fn add_registry_in(&self, bytes: u64) {
        self.registry_bytes_in.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn add_registry_out(&self, bytes: u64) {
        self.registry_bytes_out.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The counters in the Prometheus text format (version 0.0.4).
    pub fn render(&self, out: &mut String) {
        family(
            out,
            "dtaas_http_requests_total",
            "counter",
            "HTTP requests answered, by route pattern, method and status.",
        );
        if let Ok(map) = self.requests.lock() {
            for ((route, method, status), n) in map.iter() {
                let _ = writeln!(
                    out,
                    "dtaas_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                    label(route),
                    label(method)
                );
            }
        }
        family(
            out,
            "dtaas_build_duration_seconds",
            "histogram",
            "Image builds finished since the start, by outcome, and how long they took.",
        );
        if let Ok(map) = self.builds.lock() {
            for (outcome, h) in map.iter() {
                let outcome = label(outcome);
                // Each bucket counts the builds at or under its bound (already cumulative).
                for (n, bound) in h.buckets.iter().zip(BUILD_BUCKETS) {
                    let _ = writeln!(
                        out,
                        "dtaas_build_duration_seconds_bucket{{outcome=\"{outcome}\",le=\"{bound}\"}} {n}"
                    );
                }
                let _ = writeln!(
                    out,
                    "dtaas_build_duration_seconds_bucket{{outcome=\"{outcome}\",le=\"+Inf\"}} {}\n\
                     dtaas_build_duration_seconds_sum{{outcome=\"{outcome}\"}} {}\n\
                     dtaas_build_duration_seconds_count{{outcome=\"{outcome}\"}} {}",
                    h.count, h.sum, h.count
                );
            }
        }
        family(
            out,
            "dtaas_registry_received_bytes_total",
            "counter",
            "Bytes the registry received: blob uploads and manifests.",
        );
        let _ = writeln!(
            out,
            "dtaas_registry_received_bytes_total {}",
            self.registry_bytes_in.load(Ordering::Relaxed)
        );
        family(
            out,
            "dtaas_registry_sent_bytes_total",
            "counter",
            "Bytes the registry sent: blobs and manifests.",
        );
        let _ = writeln!(
            out,
            "dtaas_registry_sent_bytes_total {}",
            self.registry_bytes_out.load(Ordering::Relaxed)
        );
    }
}

/// How far back the usage history reaches, in seconds.
pub const HISTORY_SECS: i64 = 3600;
/// How many points a container's series keeps at most (a sample every 30 s fills 120).
const MAX_POINTS: usize = 240;
/// How many containers the history follows at once; the longest silent goes first beyond.
const MAX_SERIES: usize = 64;

/// One sample of a container.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UsagePoint {
    /// Unix seconds.
    pub at: i64,
    /// Percent of one CPU (200 is two CPUs busy).
    pub cpu_percent: f64,
    /// Memory in use, bytes.
    pub memory: u64,
}

/// A container's samples: what it runs (`kind`, e.g. `job`, and the object's id) and its points,
/// oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageSeries {
    pub kind: &'static str,
    pub id: Id,
    pub points: Vec<UsagePoint>,
}

/// The bytes the parts of the data directory use, as last measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Unix seconds.
    pub at: i64,
    /// Registry blob files.
    pub registry: u64,
    /// Job directories: results, attachments, outboxes.
    pub jobs: u64,
    /// The database (every record, and the stored logs).
    pub database: u64,
}

/// What the engine last said about itself (whether it answered, and its version or the error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineStatus {
    /// Unix seconds.
    pub at: i64,
    pub up: bool,
    pub text: String,
}

/// The last hour of usage, bounded in memory: at most [`MAX_SERIES`] containers of at most
/// [`MAX_POINTS`] points each; points older than an hour go as new ones come, and so do
/// containers silent for an hour.
#[derive(Default)]
pub struct UsageHistory {
    series: Mutex<BTreeMap<(&'static str, Id), VecDeque<UsagePoint>>>,
    disk: Mutex<Option<DiskUsage>>,
    engine: Mutex<Option<EngineStatus>>,
    sampling: AtomicBool,
}

impl UsageHistory {
    /// Claims the sampling: true for the first caller only, so that one sampler fills it.
    pub fn begin_sampling(&self) -> bool {
        !self.sampling.swap(true, Ordering::SeqCst)
    }

    /// Adds a sample of the container running `kind` `id`.
    pub fn record(&self, kind: &'static str, id: Id, point: UsagePoint) {
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let cutoff = point.at - HISTORY_SECS;
        series.retain(|_, points| points.back().is_some_and(|p| p.at >= cutoff));
        let points = series.entry((kind, id)).or_default();
        points.push_back(point);
        while points
            .front()
            .is_some_and(|p| p.at < cutoff || points.len() > MAX_POINTS)
        {
            points.pop_front();
        }
        while series.len() > MAX_SERIES {
            let silent = series
                .iter()
                .min_by_key(|(_, points)| points.back().map_or(i64::MIN, |p| p.at))
                .map(|(key, _)| *key);
            match silent {
                Some(key) => series.remove(&key),
                None => break,
            };
        }
    }

    /// Every container's points of the hour before `now`, oldest first.
    pub fn last_hour(&self, now: i64) -> Vec<UsageSeries> {
        let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        series
            .iter()
            .map(|((kind, id), points)| UsageSeries {
                kind,
                id: *id,
                points: points
                    .iter()
                    .filter(|p| p.at >= now - HISTORY_SECS && p.at <= now)
                    .copied()
                    .collect(),
            })
            .filter(|s| !s.points.is_empty())
            .collect()
    }

    pub fn set_disk(&self, disk: DiskUsage) {
        *self.disk.lock().unwrap_or_else(PoisonError::into_inner) = Some(disk);
    }

    /// The disk usage last measured, if any was.
    pub fn disk(&self) -> Option<DiskUsage> {
        *self.disk.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set_engine(&self, status: EngineStatus) {
        *self.engine.lock().unwrap_or_else(PoisonError::into_inner) = Some(status);
    }

    /// What the engine said at most `max_age` seconds before `now`, if it was asked since.
    pub fn engine(&self, now: i64, max_age: i64) -> Option<EngineStatus> {
        self.engine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .filter(|s| now - s.at <= max_age)
    }
}

/// The `# HELP` and `# TYPE` lines of a metric family.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value escaped as the text format requires (backslash, double quote, newline).
pub fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_in_the_text_format() {
        let m = Metrics::default();
        m.request("/v1/jobs/{id}", "GET", 200);
        m.request("/v1/jobs/{id}", "GET", 200);
        m.request("/v1/jobs/{id}", "GET", 404);
        m.build_finished("success", Duration::from_secs(3));
        m.build_finished("success", Duration::from_millis(500));
        m.build_finished("failed", Duration::from_secs(4000));
        m.add_registry_in(10);
        m.add_registry_in(5);
        m.add_registry_out(7);
        let mut out = String::new();
        m.render(&mut out);
        for line in [
            "# TYPE dtaas_http_requests_total counter",
            "dtaas_http_requests_total{route=\"/v1/jobs/{id}\",method=\"GET\",status=\"200\"} 2",
            "dtaas_http_requests_total{route=\"/v1/jobs/{id}\",method=\"GET\",status=\"404\"} 1",
            "# TYPE dtaas_build_duration_seconds histogram",
            "dtaas_build_duration_seconds_bucket{outcome=\"success\",le=\"1\"} 1",
            "dtaas_build_duration_seconds_bucket{outcome=\"success\",le=\"5\"} 2",
            "dtaas_build_duration_seconds_bucket{outcome=\"success\",le=\"+Inf\"} 2",
            "dtaas_build_duration_seconds_sum{outcome=\"success\"} 3.5",
            "dtaas_build_duration_seconds_count{outcome=\"success\"} 2",
            "dtaas_build_duration_seconds_bucket{outcome=\"failed\",le=\"1800\"} 0",
            "dtaas_build_duration_seconds_bucket{outcome=\"failed\",le=\"+Inf\"} 1",
            "dtaas_registry_received_bytes_total 15",
            "dtaas_registry_sent_bytes_total 7",
        ] {
            assert!(out.lines().any(|l| l == line), "no {line:?} in\n{out}");
        }
    }

    #[test]
    fn the_usage_history_keeps_an_hour_of_a_bounded_number_of_containers() {
        let h = UsageHistory::default();
        assert!(h.begin_sampling());
        assert!(!h.begin_sampling(), "one sampler");
        let point = |at: i64| UsagePoint {
            at,
            cpu_percent: 50.0,
            memory: 1 << 20,
        };
        let (job, other) = (Id(1), Id(2));
        h.record("job", job, point(0));
        h.record("job", job, point(1800));
        h.record("instance", other, point(1900));
        let of = |series: Vec<UsageSeries>, id: Id| series.into_iter().find(|s| s.id == id);
        assert_eq!(h.last_hour(1900).len(), 2);
        assert_eq!(of(h.last_hour(1900), job).unwrap().points.len(), 2);
        // An hour on, the first point is out of the window and then dropped.
        assert_eq!(
            of(h.last_hour(3700), job).unwrap().points,
            vec![point(1800)]
        );
        h.record("job", job, point(3700));
        assert_eq!(
            of(h.last_hour(3700), job).unwrap().points,
            vec![point(1800), point(3700)]
        );
        // A container silent for an hour goes when others are sampled.
        h.record("job", job, point(5600));
        let series = h.last_hour(5600);
        assert_eq!(series.len(), 1, "{series:?}");
        assert_eq!(series[0].kind, "job");
        // Points and containers are bounded.
        for i in 0..(MAX_POINTS as i64 + 10) {
            h.record("job", job, point(5600 + i));
        }
        assert_eq!(of(h.last_hour(6000), job).unwrap().points.len(), MAX_POINTS);
        for n in 0..(MAX_SERIES as u128 + 5) {
            h.record("instance", Id(100 + n), point(6000));
        }
        assert_eq!(h.last_hour(6000).len(), MAX_SERIES);
        assert!(
            h.last_hour(6000).iter().all(|s| s.id != job),
            "the longest silent went first"
        );
        assert_eq!(h.disk(), None);
        let disk = DiskUsage {
            at: 1,
            registry: 2,
            jobs: 3,
            database: 4,
        };
        h.set_disk(disk);
        assert_eq!(h.disk(), Some(disk));
        assert_eq!(h.engine(100, 60), None);
        let up = EngineStatus {
            at: 100,
            up: true,
            text: "Docker 27".into(),
        };
        h.set_engine(up.clone());
        assert_eq!(h.engine(160, 60), Some(up));
        assert_eq!(h.engine(161, 60), None, "too old");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(label("x\ny"), "x\\ny");
    }
}
