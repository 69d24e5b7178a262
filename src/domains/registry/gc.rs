//! Online garbage collection: blobs no manifest references, upload sessions nobody finished, and
//! files no record knows (left by a crash between writing a file and recording it). Anything
//! younger than the grace period is left alone, so a push in progress (blobs uploaded, manifest
//! not yet) is safe; the record changes happen in one write transaction, serialized with
//! manifest pushes, and files go only after their records.

use super::blobs::BlobStore;
use super::meta;
use crate::core::clock::Timestamp;
use crate::core::error::Result;
use crate::core::store::{Opening, Store, StoreError, decode, encode};
use redb::TableDefinition;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The last collection's report, under the key [`LAST`] (what the admin page shows).
pub(crate) const GC_RUNS: TableDefinition<&str, &[u8]> = TableDefinition::new("registry_gc");

/// Opens the table of the last collection's report.
pub(crate) fn init_tables(txn: &redb::WriteTransaction, _: Opening) -> Result<(), StoreError> {
    txn.open_table(GC_RUNS)?;
    Ok(())
}
const LAST: &str = "last";

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    pub blobs_removed: usize,
    pub bytes_freed: u64,
    pub uploads_removed: usize,
    pub stray_files_removed: usize,
}

/// A finished collection: when it ran and what it removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastGc {
    pub at: Timestamp,
    pub report: GcReport,
}

/// The last collection, whoever ran it (the periodic one, an administrator); `None` before the
/// first.
pub fn last_collection(store: &Store) -> Result<Option<LastGc>> {
    let txn = store.read()?;
    match txn.open_table(GC_RUNS)?.get(LAST)? {
        Some(v) => Ok(Some(decode(v.value())?)),
        None => Ok(None),
    }
}

fn record(store: &Store, last: &LastGc) -> Result<()> {
    let txn = store.write()?;
    txn.open_table(GC_RUNS)?
        .insert(LAST, encode(last)?.as_slice())?;
    txn.commit()?;
    Ok(())
}

/// Runs a collection now and records its report as the last one. Blocking (scans tables and
/// directories): call from a blocking thread.
pub fn collect(
    store: &Store,
    blobs: &BlobStore,
    now: Timestamp,
    grace: Duration,
    upload_ttl: Duration,
) -> Result<GcReport> {
    let at = now;
    let now = now.timestamp();
    let cutoff = now - i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
    let upload_cutoff = now - i64::try_from(upload_ttl.as_secs()).unwrap_or(i64::MAX);
    let mut report = GcReport::default();
    for digest in meta::collect_blobs(store, cutoff)? {
        let path = blobs.blob_path(&digest);
        if let Ok(m) = std::fs::metadata(&path) {
            report.bytes_freed += m.len();
        }
        let _ = std::fs::remove_file(&path);
        report.blobs_removed += 1;
    }
    let mut live_uploads = std::collections::HashSet::new();
    for upload in meta::all_uploads(store)? {
        if upload.created < upload_cutoff {
            meta::delete_upload(store, &upload.id)?;
            let _ = std::fs::remove_file(blobs.upload_path(&upload.id));
            report.uploads_removed += 1;
        } else {
            live_uploads.insert(upload.id);
        }
    }
    // Files without a record, older than the grace period.
    let old = |p: &std::path::Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= grace)
    };
    if let Ok(entries) = std::fs::read_dir(blobs.uploads_dir()) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !live_uploads.contains(&name) && old(&e.path()) {
                let _ = std::fs::remove_file(e.path());
                report.stray_files_removed += 1;
            }
        }
    }
    let known = meta::known_blobs(store)?;
    if let Ok(prefixes) = std::fs::read_dir(blobs.blobs_dir()) {
        for prefix in prefixes.flatten() {
            let Ok(files) = std::fs::read_dir(prefix.path()) else {
                continue;
            };
            for f in files.flatten() {
                let digest = format!("sha256:{}", f.file_name().to_string_lossy());
                if !known.contains(&digest) && old(&f.path()) {
                    let _ = std::fs::remove_file(f.path());
                    report.stray_files_removed += 1;
                }
            }
        }
    }
    record(
        store,
        &LastGc {
            at,
            report: report.clone(),
        },
    )?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_collection_records_its_report_as_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::domains::open_store(dir.path()).unwrap();
        let blobs = BlobStore::new(dir.path()).unwrap();
        assert_eq!(last_collection(&store).unwrap(), None);
        let now = chrono::Utc::now();
        meta::create_repo(&store, crate::core::id::Id::new(), "a/b", now).unwrap();
        let digest = blobs.put_bytes(b"a layer nobody references").unwrap();
        meta::add_blob(&store, "a/b", &digest, 26, 0).unwrap();
        meta::unlink_blob(&store, "a/b", &digest).unwrap();
        let report = collect(&store, &blobs, now, Duration::ZERO, Duration::ZERO).unwrap();
        assert_eq!(report.blobs_removed, 1);
        assert_eq!(
            last_collection(&store).unwrap(),
            Some(LastGc { at: now, report })
        );
        let later = now + chrono::Duration::seconds(60);
        collect(&store, &blobs, later, Duration::ZERO, Duration::ZERO).unwrap();
        let last = last_collection(&store).unwrap().unwrap();
        assert_eq!((last.at, last.report), (later, GcReport::default()));
    }
}
