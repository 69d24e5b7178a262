//! Following a container's output into the log store (`domains::logs`): `docker logs --follow
//! --timestamps`, lines batched per transaction with the owner's cursor, resumed after a restart
//! from the cursor (lines the engine sends again are skipped by their timestamps).
//!
//! The engine sends a long line as several messages of 16 KiB (all with the first one's
//! timestamp, only the last ending in a newline); [`Lines`] joins them again, keeping at most
//! `logs.max_line_bytes` of a line in memory: the rest of a longer line is dropped as it
//! arrives and the line is marked as cut (`domains::logs::cut_line`), however long it runs
//! without a newline.

use crate::core::error::Result;
use crate::core::id::Id;
use crate::core::store::Store;
use crate::core::tasks::blocking;
use crate::domains::logs::{
    Batch, Line, LogCursor, LogHub, LogLimits, LogOwner, cut_line, store_batch, stored_cursor,
};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// Lines (and bytes of them) stored per transaction at most, and how long a line may wait to
/// be stored.
const LOG_BATCH: usize = 8192;
const LOG_BATCH_BYTES: usize = 1 << 20;
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
/// instance), within `limits`. The engine may end a follow before the container does (Docker
/// 20.10 does under a slow reader): then it follows again from what is stored. Once the
/// container has stopped, what is left is read without following, from the stored cursor, so
/// no line is lost and none is stored twice.
pub(crate) async fn follow_logs<O: LogOwner>(
    store: Store,
    hub: Arc<LogHub>,
    docker: Docker,
    name: String,
    job: Id,
    cursor: LogCursor,
    limits: LogLimits,
) {
    let mut cursor = cursor;
    loop {
        read_pass::<O>(&store, &hub, &docker, &name, job, &cursor, limits, true).await;
        if !still_running(&docker, &name).await {
            break;
        }
        tracing::debug!(%job, "the engine ended a log follow early; following again");
        match reload::<O>(&store, job).await {
            Some(c) => cursor = c,
            None => return,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Some(cursor) = reload::<O>(&store, job).await {
        read_pass::<O>(&store, &hub, &docker, &name, job, &cursor, limits, false).await;
    }
    hub.notify(job);
}

/// Whether the container is running (a missing one is not).
async fn still_running(docker: &Docker, name: &str) -> bool {
    docker
        .inspect_container(name, None)
        .await
        .ok()
        .and_then(|c| c.state)
        .and_then(|s| s.running)
        .unwrap_or(false)
}

async fn reload<O: LogOwner>(store: &Store, job: Id) -> Option<LogCursor> {
    let store = store.clone();
    match blocking(move || stored_cursor::<O>(&store, job)).await {
        Ok(cursor) => cursor,
        Err(e) => {
            tracing::error!(%job, "cannot read the log cursor: {e}");
            None
        }
    }
}

/// One read of the engine's log from `cursor` on: following it (the container runs), or to
/// its end (the container has stopped; the last line may lack a newline). Lines of a follow
/// that ends mid-line are left to the next read, which the engine sends again.
#[allow(clippy::too_many_arguments)]
async fn read_pass<O: LogOwner>(
    store: &Store,
    hub: &LogHub,
    docker: &Docker,
    name: &str,
    job: Id,
    cursor: &LogCursor,
    limits: LogLimits,
    follow: bool,
) {
    let mut resume = Resume::new(cursor);
    let options = LogsOptionsBuilder::new()
        .follow(follow)
        .stdout(true)
        .stderr(true)
        .timestamps(true)
        .since(resume.since())
        .build();
    let mut stream = docker.logs(name, Some(options));
    // Each stream's lines apart: a line of stderr may come between the pieces of one of stdout.
    let mut stdout = Lines::new(limits.max_line_bytes);
    let mut stderr = Lines::new(limits.max_line_bytes);
    let mut batch = Batch::default();
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let flush_now = tokio::select! {
            item = stream.next() => match item {
                Some(Ok(output)) => {
                    let (lines, bytes) = match output {
                        LogOutput::StdErr { message } => (&mut stderr, message),
                        other => (&mut stdout, other.into_bytes()),
                    };
                    lines.push_frame(&bytes, &mut resume, &mut batch);
                    if deadline.is_none() && !batch.lines.is_empty() {
                        deadline = Some(tokio::time::Instant::now() + LOG_FLUSH);
                    }
                    batch.lines.len() >= LOG_BATCH || batch.bytes >= LOG_BATCH_BYTES
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
            let full = std::mem::take(&mut batch);
            deadline = None;
            store_lines::<O>(store, job, full, limits).await;
            hub.notify(job);
        }
    }
    if !follow {
        // The output's last lines, if they did not end with a newline.
        stdout.finish(&mut batch);
        stderr.finish(&mut batch);
    }
    if !batch.lines.is_empty() {
        store_lines::<O>(store, job, batch, limits).await;
        hub.notify(job);
    }
}

async fn store_lines<O: LogOwner>(store: &Store, job: Id, lines: Batch, limits: LogLimits) {
    let store = store.clone();
    let stored: Result<()> =
        blocking(move || store_batch::<O>(&store, job, lines, limits, false)).await;
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

/// The engine's messages (with timestamps on: `<RFC 3339> <text>`, a newline at the end of a
/// line) joined into lines of at most `max` bytes (and the cut marker).
struct Lines {
    max: usize,
    /// The timestamp of the last message, for text that carries none.
    last_ts: String,
    /// The line being read: its first bytes, and whether more were dropped.
    pending: Option<Pending>,
}

struct Pending {
    ts: String,
    /// Messages with `ts` it was made of.
    parts: u32,
    bytes: Vec<u8>,
    cut: bool,
}

/// Bytes of a line kept beyond the cut, so that the cut falls on a character boundary of the
/// decoded text (a UTF-8 character has at most 4 bytes).
const UTF8_SLACK: usize = 3;

impl Lines {
    fn new(max: usize) -> Lines {
        Lines {
            max,
            last_ts: String::new(),
            pending: None,
        }
    }

    /// Adds one frame of the engine's stream (normally one message; several lines are split);
    /// complete lines go to `batch`, messages stored before a restart are skipped.
    fn push_frame(&mut self, bytes: &[u8], resume: &mut Resume, batch: &mut Batch) {
        for segment in bytes.split_inclusive(|b| *b == b'\n') {
            let (text, complete) = match segment.strip_suffix(b"\n") {
                Some(text) => (text, true),
                None => (segment, false),
            };
            let (ts, text) = match split_timestamp(text) {
                Some((ts, rest)) => {
                    ts.clone_into(&mut self.last_ts);
                    (ts, rest)
                }
                // Text that carries no timestamp belongs with the message before it.
                None => (self.last_ts.as_str(), text),
            };
            if resume.skip(ts) {
                continue;
            }
            let ts = ts.to_owned();
            self.append(ts, text);
            if complete && let Some(line) = self.take_line(true) {
                batch.push(line);
            }
        }
    }

    /// Adds a message's text to the line being read, keeping at most `max` (and a little)
    /// bytes of it.
    fn append(&mut self, ts: String, text: &[u8]) {
        let keep = self.max.saturating_add(UTF8_SLACK);
        let pending = self.pending.get_or_insert_with(|| Pending {
            ts: String::new(),
            parts: 0,
            bytes: Vec::new(),
            cut: false,
        });
        if pending.ts == ts {
            pending.parts = pending.parts.saturating_add(1);
        } else {
            pending.ts = ts;
            pending.parts = 1;
        }
        let room = keep.saturating_sub(pending.bytes.len());
        if text.len() > room {
            pending.cut = true;
        }
        pending
            .bytes
            .extend_from_slice(&text[..text.len().min(room)]);
    }

    /// The line read so far, as kept.
    fn take_line(&mut self, complete: bool) -> Option<Line> {
        let Pending {
            ts,
            parts,
            mut bytes,
            cut,
        } = self.pending.take()?;
        if complete && !cut && bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        Some(Line {
            ts,
            text: cut_line(text, self.max, cut),
            parts,
        })
    }

    /// The last line, when the output ended without a newline.
    fn finish(&mut self, batch: &mut Batch) {
        if let Some(line) = self.take_line(false) {
            batch.push(line);
        }
    }
}

/// `<RFC 3339 timestamp> <text>` split in two.
fn split_timestamp(text: &[u8]) -> Option<(&str, &[u8])> {
    let space = text.iter().position(|b| *b == b' ')?;
    let ts = std::str::from_utf8(&text[..space]).ok()?;
    (ts.len() >= 20 && ts.as_bytes()[4] == b'-').then(|| (ts, &text[space + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domains::logs::cut_marker;

    const T1: &str = "2026-01-02T03:04:05.000000001Z";
    const T2: &str = "2026-01-02T03:04:05.000000002Z";
    const T3: &str = "2026-01-02T03:04:06.000000000Z";

    fn fresh() -> Resume {
        Resume::new(&LogCursor::default())
    }

    fn frame(ts: &str, text: &str) -> Vec<u8> {
        format!("{ts} {text}").into_bytes()
    }

    fn run(max: usize, frames: &[Vec<u8>], resume: &mut Resume) -> Vec<Line> {
        let mut lines = Lines::new(max);
        let mut batch = Batch::default();
        for f in frames {
            lines.push_frame(f, resume, &mut batch);
        }
        lines.finish(&mut batch);
        batch.lines
    }

    fn line(ts: &str, text: &str, parts: u32) -> Line {
        Line {
            ts: ts.into(),
            text: text.into(),
            parts,
        }
    }

    #[test]
    fn messages_become_lines_with_their_timestamps() {
        let lines = run(
            100,
            &[frame(T1, "one\n"), frame(T2, "two\r\n"), frame(T3, "")],
            &mut fresh(),
        );
        assert_eq!(
            lines,
            vec![line(T1, "one", 1), line(T2, "two", 1), line(T3, "", 1)]
        );
    }

    #[test]
    fn the_engines_pieces_of_a_long_line_are_joined() {
        // What the engine sends for a 20,000-byte line: 16 KiB without a newline, then the rest.
        let first = "x".repeat(16384);
        let rest = "y".repeat(3616);
        let lines = run(
            100_000,
            &[
                frame(T1, &first),
                frame(T1, &format!("{rest}\n")),
                frame(T2, "next\n"),
            ],
            &mut fresh(),
        );
        assert_eq!(
            lines,
            vec![line(T1, &format!("{first}{rest}"), 2), line(T2, "next", 1)]
        );
    }

    #[test]
    fn a_line_longer_than_the_bound_is_cut_as_it_arrives() {
        let mut lines = Lines::new(10);
        let mut batch = Batch::default();
        let mut resume = fresh();
        // A megabyte of one line without a newline: only the first bytes stay in memory.
        for _ in 0..64 {
            lines.push_frame(&frame(T1, &"z".repeat(16384)), &mut resume, &mut batch);
            let held = lines.pending.as_ref().map_or(0, |p| p.bytes.len());
            assert!(held <= 10 + UTF8_SLACK, "{held} bytes held");
        }
        assert!(batch.lines.is_empty(), "the line has not ended");
        lines.push_frame(&frame(T1, "end\n"), &mut resume, &mut batch);
        assert_eq!(
            batch.lines,
            vec![line(T1, &format!("zzzzzzzzzz{}", cut_marker(10)), 65)]
        );
    }

    #[test]
    fn a_cut_falls_on_a_character_boundary_even_across_messages() {
        // "é" (2 bytes) split between two messages by the engine.
        let e = "é".as_bytes();
        let mut first = frame(T1, "aaaaaaa");
        first.push(e[0]);
        let mut second = format!("{T1} ").into_bytes();
        second.push(e[1]);
        second.extend_from_slice("bbbb\n".as_bytes());
        let joined = run(100, &[first.clone(), second.clone()], &mut fresh());
        assert_eq!(joined, vec![line(T1, "aaaaaaaébbbb", 2)]);
        let cut = run(8, &[first, second], &mut fresh());
        assert_eq!(cut, vec![line(T1, &format!("aaaaaaa{}", cut_marker(8)), 2)]);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_refused() {
        let mut f = format!("{T1} a").into_bytes();
        f.push(0xff);
        f.push(b'\n');
        assert_eq!(run(100, &[f], &mut fresh()), vec![line(T1, "a\u{fffd}", 1)]);
    }

    #[test]
    fn lines_without_a_timestamp_take_the_one_before() {
        let f = format!("{T1} one\nno stamp\n{T2} two\n").into_bytes();
        assert_eq!(
            run(100, &[f], &mut fresh()),
            vec![
                line(T1, "one", 1),
                line(T1, "no stamp", 1),
                line(T2, "two", 1)
            ]
        );
    }

    #[test]
    fn a_resumed_follower_skips_every_message_of_the_lines_it_stored() {
        // Stored before: a line of two messages at T1 (the cursor counted both).
        let cursor = LogCursor {
            ts: Some(T1.into()),
            ts_count: 2,
            ..LogCursor::default()
        };
        let mut resume = Resume::new(&cursor);
        let lines = run(
            100,
            &[frame(T1, "long "), frame(T1, "line\n"), frame(T2, "new\n")],
            &mut resume,
        );
        assert_eq!(lines, vec![line(T2, "new", 1)]);
    }
}
