//! Following a container's output into the log store (`domains::logs`): `docker logs --follow
//! --timestamps`, lines batched per transaction with the owner's cursor, resumed after a restart
//! from the cursor (lines the engine sends again are skipped by their timestamps).

use crate::core::error::Result;
use crate::core::id::Id;
use crate::core::store::Store;
use crate::core::tasks::blocking;
use crate::domains::logs::{Batch, LogCursor, LogHub, LogOwner, store_batch};
use bollard::Docker;
use bollard::query_parameters::LogsOptionsBuilder;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// Lines stored per transaction at most, and how long a line may wait to be stored.
const LOG_BATCH: usize = 8192;
const LOG_FLUSH: Duration = Duration::from_millis(100);

/// Which lines the engine sends again after a restart and must be skipped.
struct Resume {
    ts: Option<DateTime<Utc>>,
    left_at_ts: u32,
}

impl Resume {
    fn new(cursor: &LogCursor) -> Resume {
        Resume {
            ts: cursor
                .ts
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc)),
            left_at_ts: cursor.ts_count,
        }
    }

    fn since(&self) -> i32 {
        self.ts
            .map(|t| i32::try_from(t.timestamp()).unwrap_or(0))
            .unwrap_or(0)
    }

    /// Whether a line with this timestamp was stored before.
    fn skip(&mut self, ts: &str) -> bool {
        let Some(last) = self.ts else { return false };
        let Ok(t) = DateTime::parse_from_rfc3339(ts) else {
            return false;
        };
        let t = t.with_timezone(&Utc);
        if t < last {
            true
        } else if t == last && self.left_at_ts > 0 {
            self.left_at_ts -= 1;
            true
        } else {
            self.ts = None;
            false
        }
    }
}

/// Follows a container's output until it ends, storing every line under `job` (a job or an
/// instance).
pub(crate) async fn follow_logs<O: LogOwner>(
    store: Store,
    hub: Arc<LogHub>,
    docker: Docker,
    name: String,
    job: Id,
    cursor: LogCursor,
    max_lines: u64,
) {
    let mut resume = Resume::new(&cursor);
    let options = LogsOptionsBuilder::new()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .timestamps(true)
        .since(resume.since())
        .build();
    let mut stream = docker.logs(&name, Some(options));
    let mut batch = Batch::default();
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let flush_now = tokio::select! {
            item = stream.next() => match item {
                Some(Ok(output)) => {
                    let bytes = output.into_bytes();
                    for (ts, text) in split_frame(&bytes) {
                        if !resume.skip(&ts) {
                            batch.lines.push((ts, text));
                        }
                    }
                    if deadline.is_none() && !batch.lines.is_empty() {
                        deadline = Some(tokio::time::Instant::now() + LOG_FLUSH);
                    }
                    batch.lines.len() >= LOG_BATCH
                }
                Some(Err(e)) => {
                    tracing::warn!(%job, "log stream: {e}");
                    break;
                }
                None => break,
            },
            _ = sleep_until(deadline) => true,
        };
        if flush_now && !batch.lines.is_empty() {
            let lines = std::mem::take(&mut batch);
            deadline = None;
            store_lines::<O>(&store, job, lines, max_lines).await;
            hub.notify(job);
        }
    }
    if !batch.lines.is_empty() {
        store_lines::<O>(&store, job, batch, max_lines).await;
    }
    hub.notify(job);
}

async fn store_lines<O: LogOwner>(store: &Store, job: Id, lines: Batch, max_lines: u64) {
    let store = store.clone();
    let stored: Result<()> =
        blocking(move || store_batch::<O>(&store, job, lines, max_lines, false)).await;
    if let Err(e) = stored {
        tracing::error!(%job, "cannot store log lines: {e}");
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// One frame of the engine's log stream, with timestamps on: `<RFC 3339> <text>\n`, possibly
/// several lines.
fn split_frame(bytes: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    for line in text.split_inclusive('\n') {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        let (ts, rest) = match line.split_once(' ') {
            Some((ts, rest)) if ts.len() >= 20 && ts.as_bytes()[4] == b'-' => (ts, rest),
            _ => match out.last() {
                Some((ts, _)) => {
                    let ts: &String = ts;
                    let ts = ts.clone();
                    out.push((ts, line.to_owned()));
                    continue;
                }
                None => ("", line),
            },
        };
        out.push((ts.to_owned(), rest.to_owned()));
    }
    out
}
