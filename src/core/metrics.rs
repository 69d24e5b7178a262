//! The running server's own counters, for `/metrics` (faces::metrics renders them in the
//! Prometheus text format, together with gauges read from the store at scrape time).
//!
//! Counters live in memory and start at zero with the process, as Prometheus expects of a
//! counter (its `rate()` handles the reset). Every layer records into the one [`Metrics`] the
//! server makes: the faces count requests and registry bytes, the engine times builds.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
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
    fn label_values_are_escaped() {
        assert_eq!(label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(label("x\ny"), "x\\ny");
    }
}
