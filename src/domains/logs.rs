//! Container logs (of jobs and of servable instances), persisted by the server line by line
//! (not left in Docker's log files, which go with the container).
//!
//! Lines live in `job_logs` under (owner id, sequence number); the sequence number is the log id
//! kabuto's clients poll with. The owner's [`LogCursor`] (kept in the owner's own record, see
//! [`LogOwner`]) records how far the engine's log has been stored (the timestamp of the last
//! line, and how many lines had that timestamp), in the same transaction as the lines, so that
//! after a crash the follower (`engine::logs`) resumes exactly where the database stops.
//! [`LogHub`] wakes live followers when lines arrive.

use crate::core::error::Result;
use crate::core::id::Id;
use crate::core::store::{Store, StoreError};
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

pub(crate) fn init_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
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
    /// The per-job line cap was reached.
    pub truncated: bool,
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

/// Lines read from the engine, waiting to be stored.
#[derive(Default)]
pub struct Batch {
    /// (engine timestamp, text)
    pub lines: Vec<(String, String)>,
}

/// Stores a batch of lines and advances the job's cursor, in one transaction (lazy durability:
/// a crash loses both together, and the follower reads those lines again from the engine).
/// Beyond `max_lines` a single marker line is stored and the rest only counted.
pub fn store_batch<O: LogOwner>(
    store: &Store,
    job: Id,
    batch: Batch,
    max_lines: u64,
    durable: bool,
) -> Result<()> {
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
        for (ts, text) in batch.lines {
            if cursor.ts.as_deref() == Some(ts.as_str()) {
                cursor.ts_count += 1;
            } else {
                cursor.ts = Some(ts);
                cursor.ts_count = 1;
            }
            cursor.read += 1;
            if cursor.seq < max_lines {
                cursor.seq += 1;
                table.insert((job.0, cursor.seq), text.as_str())?;
            } else if !cursor.truncated {
                cursor.truncated = true;
                cursor.seq += 1;
                let marker = format!(
                    "[dtaas] this log reached its limit of {max_lines} lines \
                     ({}); further lines were not kept",
                    O::LIMIT_KEY
                );
                table.insert((job.0, cursor.seq), marker.as_str())?;
            }
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

/// Wakes the live followers of a job's log.
#[derive(Default)]
pub struct LogHub {
    waiters: Mutex<HashMap<Id, Arc<Notify>>>,
}

impl LogHub {
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
