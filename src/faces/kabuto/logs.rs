//! Execution logs on the kabuto face (seed 003): every line of a job, or the lines after a log
//! id, as `[{"id", "job", "logline"}]`, streamed a page at a time (`views::log_lines`).

use crate::core::error::{Error, Result};
use crate::domains::authz::{Capability, Principal};
use crate::domains::jobs;
use crate::faces::auth::Auth;
use crate::faces::errors::parse_id;
use crate::faces::state::App;
use crate::faces::views::{self, LogOf};
use axum::extract::{Path, State};
use axum::response::Response;

async fn read_logs_json(app: &App, caller: &Principal, job: &str, after: u64) -> Result<Response> {
    let job = parse_id(job, "Job")?;
    jobs::job_for(&app.store, caller, None, job, Capability::Read)?;
    views::log_lines(app, job, LogOf::Job, after).await
}

pub(super) async fn logs(
    State(app): State<App>,
    Auth(p): Auth,
    Path(job): Path<String>,
) -> Result<Response> {
    read_logs_json(&app, &p, &job, 0).await
}

pub(super) async fn logs_after(
    State(app): State<App>,
    Auth(p): Auth,
    Path((job, log_id)): Path<(String, String)>,
) -> Result<Response> {
    let after = log_id
        .parse::<u64>()
        .map_err(|_| Error::bad_request(format!("log id {log_id:?} is not a number")))?;
    read_logs_json(&app, &p, &job, after).await
}
