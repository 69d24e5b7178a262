//! Files a face sends back: a job's result zip, streamed from disk.

use super::state::App;
use crate::core::error::{Error, Result};
use crate::domains::jobs::{Job, JobState, result_path};
use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The job's outbox as a zip, streamed from disk (once the job is done or failed).
pub async fn result_zip(app: &App, job: &Job) -> Result<Response> {
    if !matches!(job.state, JobState::Done | JobState::Failed) {
        return Err(Error::conflict(format!(
            "the job is {}: its results exist once it is done or failed",
            job.state.as_str()
        )));
    }
    let path = result_path(&app.data_dir, job.id);
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::not_found(match &job.error {
                Some(why) => format!("this job left no results: {why}"),
                None => "this job left no results (it never started its command)".to_owned(),
            }));
        }
        Err(e) => return Err(Error::internal(format!("opening the results: {e}"))),
    };
    let len = file.metadata().await.map(|m| m.len()).ok();
    let mut response = Body::from_stream(tokio_util::io::ReaderStream::new(file)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/zip"),
    );
    if let Ok(v) =
        header::HeaderValue::from_str(&format!("attachment; filename=\"{}.zip\"", job.id))
    {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(len) = len {
        headers.insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    }
    Ok(response)
}
