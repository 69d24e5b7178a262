//! The registry's storage and metadata: repositories (objects of the shared model), manifests
//! and tags in redb (`meta`), blob contents as files (`blobs`), names and digests as the
//! distribution spec defines them (`names`), image manifests read as typed documents
//! (`manifest`), the per-user quota (`quota`), and online garbage collection (`gc`). The `/v2` protocol is a face
//! (`faces::v2`); moving images to and from the engine is the engine layer's
//! (`engine::registry_sync`).

pub mod blobs;
pub mod error;
pub mod gc;
pub mod manifest;
pub mod meta;
pub mod names;
pub mod quota;

use crate::core::store::{Opening, StoreError};

/// Opens the registry's tables: the metadata's and the collector's.
pub(crate) fn init_tables(
    txn: &redb::WriteTransaction,
    opening: Opening,
) -> Result<(), StoreError> {
    meta::init_tables(txn, opening)?;
    gc::init_tables(txn, opening)
}
