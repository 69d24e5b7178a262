//! `/metrics`: the server's counters (`core::metrics`) and gauges read from the store at scrape
//! time, in the Prometheus text format. For administrators (a session, or an admin's API key as
//! the scraper's bearer token): the numbers describe every user's work.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `dtaas_http_requests_total` | counter | `route` (the pattern), `method`, `status` |
//! | `dtaas_build_duration_seconds` | histogram | `outcome` |
//! | `dtaas_registry_received_bytes_total`, `dtaas_registry_sent_bytes_total` | counter | |
//! | `dtaas_jobs` | gauge | `state` |
//! | `dtaas_run_queue_pipelines` | gauge | |
//! | `dtaas_instances` | gauge | `state` |
//! | `dtaas_servables` | gauge | `type` |
//! | `dtaas_store_bytes` | gauge | |
//! | `process_resident_memory_bytes` | gauge | |

use super::auth::Auth;
use super::state::App;
use crate::core::error::{Error, Result};
use crate::core::metrics::family;
use crate::core::store::DB_FILE;
use crate::domains::{authz, jobs, servables};
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::fmt::Write;

/// The route a response answered, for handlers that route by themselves (the registry's one
/// wildcard route, the proxy's app hosts): preferred over axum's matched path.
#[derive(Clone, Copy)]
pub struct RoutePattern(pub &'static str);

pub fn routes() -> Router<App> {
    Router::new().route("/metrics", get(metrics))
}

/// Counts every request by its route's pattern, method and status (a layer over every face).
/// A path no route matched counts as `unmatched`: never the path itself, so that a scan of
/// random paths cannot make a series each.
pub async fn count_request(State(app): State<App>, request: Request, next: Next) -> Response {
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let method = request.method().clone();
    let response = next.run(request).await;
    let route = match (response.extensions().get::<RoutePattern>(), &matched) {
        (Some(RoutePattern(pattern)), _) => pattern,
        (None, Some(matched)) => matched.as_str(),
        (None, None) => "unmatched",
    };
    app.metrics
        .request(route, method.as_str(), response.status().as_u16());
    response
}

async fn metrics(State(app): State<App>, Auth(p): Auth) -> Result<Response> {
    authz::require_admin(&p, "/metrics")?;
    let body = app.blocking(render).await?;
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

/// Everything `/metrics` shows (on the blocking pool: it reads the store and the disk).
fn render(app: &App) -> Result<String> {
    let mut out = String::new();
    app.metrics.render(&mut out);

    family(&mut out, "dtaas_jobs", "gauge", "Jobs by state.");
    for (state, n) in jobs::count_by_state(&app.store)? {
        let _ = writeln!(out, "dtaas_jobs{{state=\"{}\"}} {n}", state.as_str());
    }
    family(
        &mut out,
        "dtaas_run_queue_pipelines",
        "gauge",
        "Submitted pipelines in the run queue (waiting or running).",
    );
    let _ = writeln!(
        out,
        "dtaas_run_queue_pipelines {}",
        jobs::queue_length(&app.store)?
    );
    let counts = servables::counts(&app.store)?;
    family(
        &mut out,
        "dtaas_instances",
        "gauge",
        "Servable instances by state.",
    );
    for (state, n) in counts.instances {
        let _ = writeln!(out, "dtaas_instances{{state=\"{}\"}} {n}", state.as_str());
    }
    family(&mut out, "dtaas_servables", "gauge", "Servables by type.");
    for (kind, n) in counts.servables {
        let _ = writeln!(out, "dtaas_servables{{type=\"{}\"}} {n}", kind.as_str());
    }
    family(
        &mut out,
        "dtaas_store_bytes",
        "gauge",
        "Size of the database file.",
    );
    let size = std::fs::metadata(app.data_dir.join(DB_FILE))
        .map_err(|e| Error::internal(format!("reading the database file's size: {e}")))?
        .len();
    let _ = writeln!(out, "dtaas_store_bytes {size}");
    if let Some(rss) = resident_bytes() {
        family(
            &mut out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory of the server process.",
        );
        let _ = writeln!(out, "process_resident_memory_bytes {rss}");
    }
    Ok(out)
}

/// The process's resident set, from `VmRSS` in `/proc/self/status` (in kB there).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
