//! Container logs (of jobs and of servable instances), persisted by the server line by line
//! (not left in Docker's log files, which go with the container).
//!
//! Lines live in `job_logs` under (owner id, sequence number); the sequence number is the log id
//! kabuto's clients poll with. The owner's [`LogCursor`] (kept in the owner's own record, see
//! [`LogOwner`]) records how far the engine's log has been stored (the timestamp of the last
//! line, and how many lines had that timestamp), in the same transaction as the lines, so that
//! after a crash the follower (`engine::logs`) resumes exactly where the database stops.
//! [`LogHub`] wakes live followers when lines arrive, and holds the bounds on what is kept
//! (`logs.max_line_bytes`, `logs.max_bytes_per_run`).
//!
//! What a container may make the appliance keep is bounded three ways: a line longer than
//! `logs.max_line_bytes` is cut ([`cut_line`], the follower does it as the line arrives), and
//! a run's lines stop being kept past the owner's line cap (`jobs.max_log_lines`,
//! `servables.max_log_lines`) or past `logs.max_bytes_per_run` bytes; either cap leaves one
//! marker line and the rest is only counted.

use crate::core::config::LogsConfig;
use crate::core::error::Result;
use crate::core::id::Id;
use crate::core::store::{Opening, Store, StoreError};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Notify;

/// A record whose container output is logged: where its cursor lives, and its line cap.
pub trait LogOwner: Send + 'static {
    /// Loads the owner's cursor; `None` when the owner is gone (its lines are then dropped).
    fn load_cursor(txn: &WriteTransaction, id: Id) -> Result<Option<LogCursor>>;
    /// Saves the cursor, in the same transaction as the lines.
    fn save_cursor(txn: &WriteTransaction, id: Id, cursor: &LogCursor) -> Result<()>;
    /// The configuration key that sets the cap, for the marker line.
    const LIMIT_KEY: &'static str;
}

const LOGS: TableDefinition<(u128, u64), &str> = TableDefinition::new("job_logs");

pub(crate) fn init_tables(txn: &WriteTransaction, _: Opening) -> Result<(), StoreError> {
    txn.open_table(LOGS)?;
    Ok(())
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LogCursor {
    /// Lines stored (the id of the last one).
    pub seq: u64,
    /// The engine's timestamp of the last line read (RFC 3339 with nanoseconds).
    pub ts: Option<String>,
    /// How many lines read so far carried exactly that timestamp.
    pub ts_count: u32,
    /// Lines read from the engine, stored or not.
    pub read: u64,
    /// A cap (the line cap or the byte cap) was reached and its marker stored; nothing more
    /// is kept.
    pub truncated: bool,
    /// Bytes of the lines read from the engine (as kept: after cutting), stored or not.
    #[serde(default)]
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub id: u64,
    pub job: Id,
    pub logline: String,
}

/// Lines of a job after `after` (0 for all), at most `limit`.
pub fn read_logs(store: &Store, job: Id, after: u64, limit: usize) -> Result<Vec<LogLine>> {
    let txn = store.read()?;
    let table = txn.open_table(LOGS)?;
    let mut out = Vec::new();
    for entry in table.range((job.0, after.saturating_add(1))..=(job.0, u64::MAX))? {
        let (k, v) = entry?;
        out.push(LogLine {
            id: k.value().1,
            job,
            logline: v.value().to_owned(),
        });
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

pub fn delete_logs(txn: &WriteTransaction, job: Id) -> Result<()> {
    let mut table = txn.open_table(LOGS)?;
    // Remove in chunks: a job may have a million lines.
    loop {
        let keys: Vec<(u128, u64)> = table
            .range((job.0, 0)..=(job.0, u64::MAX))?
            .take(10_000)
            .map(|e| e.map(|(k, _)| k.value()))
            .collect::<Result<_, _>>()?;
        if keys.is_empty() {
            return Ok(());
        }
        for k in keys {
            table.remove(k)?;
        }
    }
}

/// One line read from the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// The engine's timestamp (of the last message the line was made of).
    pub ts: String,
    pub text: String,
    /// How many of the engine's messages with that timestamp the line was made of (the engine
    /// splits a long line into messages of 16 KiB, all with the same timestamp): what the
    /// cursor counts, so that a resumed follower skips exactly those.
    pub parts: u32,
}

impl Line {
    pub fn new(ts: impl Into<String>, text: impl Into<String>) -> Line {
        Line {
            ts: ts.into(),
            text: text.into(),
            parts: 1,
        }
    }
}

/// Lines read from the engine, waiting to be stored.
#[derive(Default)]
pub struct Batch {
    pub lines: Vec<Line>,
    /// Bytes of their texts.
    pub bytes: usize,
}

impl Batch {
    pub fn push(&mut self, line: Line) {
        self.bytes += line.text.len();
        self.lines.push(line);
    }
}

/// The bounds on what a run's log keeps: its owner's line cap and `logs.*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// Lines kept (`jobs.max_log_lines`, `servables.max_log_lines`).
    pub max_lines: u64,
    /// A longer line is cut (`logs.max_line_bytes`).
    pub max_line_bytes: usize,
    /// Bytes kept (`logs.max_bytes_per_run`).
    pub max_bytes: u64,
}

impl LogLimits {
    pub fn new(max_lines: u64, config: &LogsConfig) -> LogLimits {
        LogLimits {
            max_lines,
            max_line_bytes: usize::try_from(config.max_line_bytes).unwrap_or(usize::MAX),
            max_bytes: config.max_bytes_per_run,
        }
    }
}

/// What ends a line that was cut at `max_bytes` (`logs.max_line_bytes`).
pub fn cut_marker(max_bytes: usize) -> String {
    format!(" [dtaas: line cut at {max_bytes} bytes (logs.max_line_bytes)]")
}

/// A line as it is kept: at most `max_bytes` bytes of it, cut at a character boundary, and
/// marked when anything was cut (`cut`: bytes were dropped before it got here).
pub fn cut_line(mut text: String, max_bytes: usize, cut: bool) -> String {
    if !cut && text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(&cut_marker(max_bytes));
    text
}

/// The owner's cursor as stored now; `None` when the owner is gone.
pub fn stored_cursor<O: LogOwner>(store: &Store, id: Id) -> Result<Option<LogCursor>> {
    // The owners keep their cursors in their own records, read through a write transaction
    // (`LogOwner`); this one only reads and is dropped (aborted), not committed.
    let txn = store.write()?;
    O::load_cursor(&txn, id)
}

/// Stores a batch of lines and advances the job's cursor, in one transaction (lazy durability:
/// a crash loses both together, and the follower reads those lines again from the engine).
/// Beyond `max_lines` lines, or once the lines read add up to more than `max_bytes`, a single
/// marker line is stored and the rest only counted.
pub fn store_batch<O: LogOwner>(
    store: &Store,
    job: Id,
    batch: Batch,
    limits: LogLimits,
    durable: bool,
) -> Result<()> {
    let LogLimits {
        max_lines,
        max_bytes,
        ..
    } = limits;
    let txn = if durable {
        store.write()?
    } else {
        store.write_lazy()?
    };
    let Some(mut cursor) = O::load_cursor(&txn, job)? else {
        return Ok(());
    };
    {
        let mut table = txn.open_table(LOGS)?;
        let cursor = &mut cursor;
        for Line { ts, text, parts } in batch.lines {
            if cursor.ts.as_deref() == Some(ts.as_str()) {
                cursor.ts_count = cursor.ts_count.saturating_add(parts);
            } else {
                cursor.ts = Some(ts);
                cursor.ts_count = parts;
            }
            cursor.read += 1;
            cursor.bytes = cursor.bytes.saturating_add(text.len() as u64);
            if cursor.truncated {
                continue;
            }
            let marker = if cursor.bytes > max_bytes {
                format!(
                    "[dtaas] this log reached its limit of {max_bytes} bytes \
                     (logs.max_bytes_per_run); further lines were not kept"
                )
            } else if cursor.seq >= max_lines {
                format!(
                    "[dtaas] this log reached its limit of {max_lines} lines \
                     ({}); further lines were not kept",
                    O::LIMIT_KEY
                )
            } else {
                cursor.seq += 1;
                table.insert((job.0, cursor.seq), text.as_str())?;
                continue;
            };
            cursor.truncated = true;
            cursor.seq += 1;
            table.insert((job.0, cursor.seq), marker.as_str())?;
        }
    }
    O::save_cursor(&txn, job, &cursor)?;
    txn.commit()?;
    Ok(())
}

/// Appends one line written by the appliance itself (e.g. why a command could not start).
pub fn append_note<O: LogOwner>(store: &Store, job: Id, text: &str) -> Result<()> {
    let txn = store.write()?;
    let Some(mut cursor) = O::load_cursor(&txn, job)? else {
        return Ok(());
    };
    cursor.seq += 1;
    txn.open_table(LOGS)?
        .insert((job.0, cursor.seq), format!("[dtaas] {text}").as_str())?;
    O::save_cursor(&txn, job, &cursor)?;
    txn.commit()?;
    Ok(())
}

/// Wakes the live followers of a job's log; holds the bounds of `logs.*` every follower
/// applies.
#[derive(Default)]
pub struct LogHub {
    waiters: Mutex<HashMap<Id, Arc<Notify>>>,
    config: LogsConfig,
}

impl LogHub {
    pub fn new(config: &LogsConfig) -> LogHub {
        LogHub {
            waiters: Mutex::default(),
            config: config.clone(),
        }
    }

    /// The bounds of a log whose owner keeps at most `max_lines` lines.
    pub fn limits(&self, max_lines: u64) -> LogLimits {
        LogLimits::new(max_lines, &self.config)
    }

    pub fn subscribe(&self, job: Id) -> Arc<Notify> {
        self.waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(job)
            .or_default()
            .clone()
    }

    pub fn notify(&self, job: Id) {
        let waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = waiters.get(&job) {
            n.notify_waiters();
        }
    }

    /// Forgets a job's waiters once it has ended and they have been told.
    pub fn forget(&self, job: Id) {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = waiters.remove(&job) {
            n.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::store::{decode, put_record};
    use std::time::Duration;

    /// Owners of logs for the tests: a cursor per id, in a table of their own.
    const OWNERS: TableDefinition<u128, &[u8]> = TableDefinition::new("test_log_owners");

    struct Owner;

    impl LogOwner for Owner {
        const LIMIT_KEY: &'static str = "test.max_log_lines";

        fn load_cursor(txn: &WriteTransaction, id: Id) -> Result<Option<LogCursor>> {
            let table = txn.open_table(OWNERS)?;
            let cursor = table.get(id.0)?.map(|v| decode(v.value())).transpose()?;
            Ok(cursor)
        }

        fn save_cursor(txn: &WriteTransaction, id: Id, cursor: &LogCursor) -> Result<()> {
            Ok(put_record(txn, OWNERS, id, cursor)?)
        }
    }

    struct World {
        _dir: tempfile::TempDir,
        store: Store,
    }

    fn world() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::domains::open_store(dir.path()).unwrap();
        World { _dir: dir, store }
    }

    impl World {
        /// A new owner with an empty cursor.
        fn owner(&self) -> Id {
            let id = Id::new();
            let txn = self.store.write().unwrap();
            Owner::save_cursor(&txn, id, &LogCursor::default()).unwrap();
            txn.commit().unwrap();
            id
        }

        fn cursor(&self, id: Id) -> Option<LogCursor> {
            let txn = self.store.write().unwrap();
            Owner::load_cursor(&txn, id).unwrap()
        }

        fn store(&self, id: Id, lines: &[(&str, &str)], max_lines: u64) {
            self.store_with(id, lines, lines_only(max_lines));
        }

        fn store_with(&self, id: Id, lines: &[(&str, &str)], limits: LogLimits) {
            let mut batch = Batch::default();
            for (ts, text) in lines {
                batch.push(Line::new(*ts, *text));
            }
            store_batch::<Owner>(&self.store, id, batch, limits, false).unwrap();
        }

        fn texts(&self, id: Id, after: u64, limit: usize) -> Vec<(u64, String)> {
            read_logs(&self.store, id, after, limit)
                .unwrap()
                .into_iter()
                .map(|l| {
                    assert_eq!(l.job, id);
                    (l.id, l.logline)
                })
                .collect()
        }
    }

    /// Only a line cap.
    fn lines_only(max_lines: u64) -> LogLimits {
        LogLimits {
            max_lines,
            max_line_bytes: usize::MAX,
            max_bytes: u64::MAX,
        }
    }

    fn numbered(lines: &[&str], first: u64) -> Vec<(u64, String)> {
        (first..).zip(lines.iter().map(|s| s.to_string())).collect()
    }

    #[test]
    fn lines_are_read_back_in_order_with_ids_from_one() {
        let w = world();
        let job = w.owner();
        assert!(w.texts(job, 0, usize::MAX).is_empty());
        w.store(job, &[("t1", "a"), ("t2", "b"), ("t3", "c")], 100);
        w.store(job, &[("t4", "d"), ("t5", "e")], 100);
        assert_eq!(
            w.texts(job, 0, usize::MAX),
            numbered(&["a", "b", "c", "d", "e"], 1)
        );
        assert_eq!(w.texts(job, 3, usize::MAX), numbered(&["d", "e"], 4));
        assert_eq!(w.texts(job, 5, usize::MAX), vec![]);
        assert_eq!(w.texts(job, u64::MAX, usize::MAX), vec![]);
        assert_eq!(w.texts(job, 0, 2), numbered(&["a", "b"], 1));
        assert_eq!(w.texts(job, 2, 2), numbered(&["c", "d"], 3));
        assert_eq!(w.texts(job, 4, 2), numbered(&["e"], 5));

        let cursor = w.cursor(job).unwrap();
        assert_eq!(cursor.seq, 5);
        assert_eq!(cursor.read, 5);
        assert!(!cursor.truncated);
    }

    #[test]
    fn the_cursor_counts_lines_sharing_the_last_timestamp() {
        let w = world();
        let job = w.owner();
        w.store(job, &[("t1", "a"), ("t2", "b"), ("t2", "c")], 100);
        let cursor = w.cursor(job).unwrap();
        assert_eq!(cursor.ts.as_deref(), Some("t2"));
        assert_eq!(cursor.ts_count, 2);
        // The count carries over batches, and restarts with a new timestamp.
        w.store(job, &[("t2", "d")], 100);
        assert_eq!(w.cursor(job).unwrap().ts_count, 3);
        w.store(job, &[("t3", "e")], 100);
        let cursor = w.cursor(job).unwrap();
        assert_eq!((cursor.ts.as_deref(), cursor.ts_count), (Some("t3"), 1));
    }

    #[test]
    fn beyond_the_cap_one_marker_is_stored_and_the_rest_only_counted() {
        let w = world();
        let job = w.owner();
        w.store(
            job,
            &[
                ("t1", "a"),
                ("t2", "b"),
                ("t3", "c"),
                ("t4", "d"),
                ("t5", "e"),
            ],
            3,
        );
        let lines = w.texts(job, 0, usize::MAX);
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert_eq!(lines[..3], numbered(&["a", "b", "c"], 1));
        let (id, marker) = &lines[3];
        assert_eq!(*id, 4);
        assert!(marker.starts_with("[dtaas] "), "{marker}");
        assert!(marker.contains("3 lines"), "{marker}");
        assert!(marker.contains(Owner::LIMIT_KEY), "{marker}");

        let cursor = w.cursor(job).unwrap();
        assert!(cursor.truncated);
        assert_eq!(cursor.seq, 4);
        assert_eq!(cursor.read, 5);
        assert_eq!(
            cursor.ts.as_deref(),
            Some("t5"),
            "skipped lines still move the cursor"
        );

        // Later batches store nothing, not even another marker.
        w.store(job, &[("t6", "f"), ("t7", "g")], 3);
        assert_eq!(w.texts(job, 0, usize::MAX), lines);
        let cursor = w.cursor(job).unwrap();
        assert_eq!((cursor.seq, cursor.read), (4, 7));
    }

    #[test]
    fn the_cap_is_reached_across_batches() {
        let w = world();
        let job = w.owner();
        w.store(job, &[("t1", "a"), ("t2", "b")], 2);
        assert!(!w.cursor(job).unwrap().truncated, "exactly at the cap");
        w.store(job, &[("t3", "c")], 2);
        let lines = w.texts(job, 0, usize::MAX);
        assert_eq!(lines.len(), 3);
        assert!(lines[2].1.contains(Owner::LIMIT_KEY));
        assert!(w.cursor(job).unwrap().truncated);
    }

    #[test]
    fn lines_of_an_owner_that_is_gone_are_dropped() {
        let w = world();
        let gone = Id::new();
        store_batch::<Owner>(
            &w.store,
            gone,
            Batch {
                lines: vec![Line::new("t1", "a")],
                bytes: 1,
            },
            lines_only(100),
            true,
        )
        .unwrap();
        append_note::<Owner>(&w.store, gone, "note").unwrap();
        assert!(w.texts(gone, 0, usize::MAX).is_empty());
        assert!(w.cursor(gone).is_none());
    }

    #[test]
    fn notes_are_prefixed_and_take_the_next_id() {
        let w = world();
        let job = w.owner();
        append_note::<Owner>(&w.store, job, "cannot start: no such image").unwrap();
        w.store(job, &[("t1", "a")], 100);
        append_note::<Owner>(&w.store, job, "exited with 1").unwrap();
        assert_eq!(
            w.texts(job, 0, usize::MAX),
            numbered(
                &[
                    "[dtaas] cannot start: no such image",
                    "a",
                    "[dtaas] exited with 1"
                ],
                1
            )
        );
        let cursor = w.cursor(job).unwrap();
        assert_eq!(cursor.seq, 3);
        assert_eq!(cursor.read, 1, "notes are not lines read from the engine");
    }

    #[test]
    fn deleting_logs_removes_one_owners_lines_only() {
        let w = world();
        let doomed = w.owner();
        let kept = w.owner();
        // More lines than one removal chunk.
        let mut many = Batch::default();
        for i in 0..10_050 {
            many.push(Line::new(format!("t{i}"), format!("line {i}")));
        }
        store_batch::<Owner>(&w.store, doomed, many, lines_only(u64::MAX), false).unwrap();
        w.store(kept, &[("t1", "a"), ("t2", "b")], 100);
        assert_eq!(w.texts(doomed, 0, usize::MAX).len(), 10_050);

        let txn = w.store.write().unwrap();
        delete_logs(&txn, doomed).unwrap();
        txn.commit().unwrap();
        assert!(w.texts(doomed, 0, usize::MAX).is_empty());
        assert_eq!(w.texts(kept, 0, usize::MAX), numbered(&["a", "b"], 1));

        // Deleting what is not there is no error.
        let txn = w.store.write().unwrap();
        delete_logs(&txn, doomed).unwrap();
        delete_logs(&txn, Id::new()).unwrap();
        txn.commit().unwrap();
    }

    #[test]
    fn a_long_line_is_cut_at_a_character_boundary_and_marked() {
        assert_eq!(cut_line("short".into(), 8, false), "short");
        assert_eq!(cut_line("exactly8".into(), 8, false), "exactly8");
        assert_eq!(
            cut_line("123456789".into(), 8, false),
            format!("12345678{}", cut_marker(8))
        );
        // Bytes dropped before: marked even when what is left fits.
        assert_eq!(
            cut_line("1234".into(), 8, true),
            format!("1234{}", cut_marker(8))
        );
        // "é" is two bytes: a cut inside it keeps the character out.
        assert_eq!(
            cut_line("aaaaaaaé".into(), 8, false),
            format!("aaaaaaa{}", cut_marker(8))
        );
        assert_eq!(
            cut_line("€€€".into(), 7, false),
            format!("€€{}", cut_marker(7))
        );
        let marker = cut_marker(8192);
        assert!(marker.contains("8192 bytes"), "{marker}");
        assert!(marker.contains("logs.max_line_bytes"), "{marker}");
    }

    #[test]
    fn beyond_the_byte_cap_one_marker_is_stored_and_the_rest_only_counted() {
        let w = world();
        let job = w.owner();
        let limits = LogLimits {
            max_lines: 100,
            max_line_bytes: usize::MAX,
            max_bytes: 10,
        };
        // 4 + 4 bytes fit, the third line would make 12.
        w.store_with(
            job,
            &[("t1", "aaaa"), ("t2", "bbbb"), ("t3", "cccc")],
            limits,
        );
        let lines = w.texts(job, 0, usize::MAX);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[..2], numbered(&["aaaa", "bbbb"], 1));
        let marker = &lines[2].1;
        assert!(marker.starts_with("[dtaas] "), "{marker}");
        assert!(marker.contains("10 bytes"), "{marker}");
        assert!(marker.contains("logs.max_bytes_per_run"), "{marker}");
        let cursor = w.cursor(job).unwrap();
        assert!(cursor.truncated);
        assert_eq!((cursor.seq, cursor.read, cursor.bytes), (3, 3, 12));

        // A short line later is not kept either, and no second marker (nor the line cap's).
        w.store_with(
            job,
            &[("t4", "d"), ("t5", "e")],
            LogLimits {
                max_lines: 3,
                ..limits
            },
        );
        assert_eq!(w.texts(job, 0, usize::MAX), lines);
        let cursor = w.cursor(job).unwrap();
        assert_eq!((cursor.seq, cursor.read, cursor.bytes), (3, 5, 14));
        assert_eq!(cursor.ts.as_deref(), Some("t5"));
    }

    #[test]
    fn the_byte_cap_is_reached_across_batches_and_exactly_at_it_all_is_kept() {
        let w = world();
        let job = w.owner();
        let limits = LogLimits {
            max_lines: 100,
            max_line_bytes: usize::MAX,
            max_bytes: 6,
        };
        w.store_with(job, &[("t1", "abc")], limits);
        w.store_with(job, &[("t2", "def")], limits);
        assert!(!w.cursor(job).unwrap().truncated, "exactly at the cap");
        w.store_with(job, &[("t3", "")], limits);
        assert!(
            !w.cursor(job).unwrap().truncated,
            "an empty line costs nothing"
        );
        w.store_with(job, &[("t4", "g")], limits);
        let lines = w.texts(job, 0, usize::MAX);
        assert_eq!(lines[..3], numbered(&["abc", "def", ""], 1));
        assert!(lines[3].1.contains("logs.max_bytes_per_run"));
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn a_line_made_of_several_engine_messages_counts_them_all_at_its_timestamp() {
        let w = world();
        let job = w.owner();
        let mut batch = Batch::default();
        batch.push(Line::new("t1", "a"));
        batch.push(Line {
            ts: "t1".into(),
            text: "long".into(),
            parts: 3,
        });
        store_batch::<Owner>(&w.store, job, batch, lines_only(100), false).unwrap();
        let cursor = w.cursor(job).unwrap();
        assert_eq!((cursor.ts.as_deref(), cursor.ts_count), (Some("t1"), 4));
        assert_eq!(cursor.read, 2, "lines, not messages");
    }

    #[test]
    fn a_cursor_saved_before_the_byte_count_existed_reads_as_zero_bytes() {
        let old = r#"{"seq":3,"ts":"t","ts_count":1,"read":3,"truncated":false}"#;
        let cursor: LogCursor = serde_json::from_str(old).unwrap();
        assert_eq!(cursor.bytes, 0);
        assert_eq!(cursor.seq, 3);
    }

    #[test]
    fn the_hub_holds_the_configured_bounds() {
        let hub = LogHub::new(&LogsConfig {
            max_line_bytes: 100,
            max_bytes_per_run: 1000,
        });
        assert_eq!(
            hub.limits(7),
            LogLimits {
                max_lines: 7,
                max_line_bytes: 100,
                max_bytes: 1000
            }
        );
        let defaults = LogsConfig::default();
        assert_eq!(
            LogHub::default().limits(1).max_bytes,
            defaults.max_bytes_per_run
        );
    }

    #[tokio::test]
    async fn the_hub_wakes_the_followers_of_one_log() {
        let hub = LogHub::default();
        let (a, b) = (Id::new(), Id::new());
        let notify_a = hub.subscribe(a);
        assert!(
            Arc::ptr_eq(&notify_a, &hub.subscribe(a)),
            "one waker per log"
        );
        let notify_b = hub.subscribe(b);

        let woken_a = notify_a.notified();
        let woken_b = notify_b.notified();
        tokio::pin!(woken_a, woken_b);
        woken_a.as_mut().enable();
        woken_b.as_mut().enable();

        hub.notify(a);
        tokio::time::timeout(Duration::from_secs(5), woken_a)
            .await
            .expect("the follower of a is woken");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), woken_b.as_mut())
                .await
                .is_err(),
            "the follower of b sleeps on"
        );

        // Forgetting a log wakes its followers, and a later subscriber gets a new waker.
        hub.forget(b);
        tokio::time::timeout(Duration::from_secs(5), woken_b)
            .await
            .expect("forget wakes the follower of b");
        assert!(!Arc::ptr_eq(&notify_b, &hub.subscribe(b)));
        hub.notify(Id::new()); // nobody listens: nothing happens
    }

    #[tokio::test]
    async fn a_follower_in_another_task_is_woken() {
        let hub = Arc::new(LogHub::default());
        let job = Id::new();
        let notify = hub.subscribe(job);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let follower = tokio::spawn(async move {
            let woken = notify.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            ready_tx.send(()).unwrap();
            woken.await;
        });
        ready_rx.await.unwrap();
        hub.notify(job);
        tokio::time::timeout(Duration::from_secs(5), follower)
            .await
            .expect("woken")
            .unwrap();
    }
}
