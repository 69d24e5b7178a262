//! domains: what the appliance knows, each domain owning its tables behind a small typed API.
//! Nothing here speaks HTTP or talks to the Docker engine; time is passed in.
//!
//! | domain | owns |
//! | --- | --- |
//! | [`authz`] | the object model: objects, grants, trust membership, and the one check |
//! | [`accounts`] | users, passwords, sessions, API keys, settings, the login sequence |
//! | [`trusts`] | named groups of principals and objects |
//! | [`images`] | kabuto images and their builds' records and contexts |
//! | [`jobs`] | pipelines, jobs, the run queue, result zips |
//! | [`logs`] | container output stored line by line, and the hub that wakes followers |
//! | [`servables`] | prototypes (from manifests), servables, instances, delegation |
//! | [`registry`] | the registry's repositories, manifests, tags and blob files |
//! | [`oidc`] | the OpenID Connect provider's keys, codes, tokens, client secrets, consents |
//!
//! [`backup`] takes a consistent snapshot of every domain's records and files (what each holds
//! in a backup is its own `backup_wanted`) and restores one.

pub mod accounts;
pub mod authz;
pub mod backup;
pub mod images;
pub mod jobs;
pub mod logs;
pub mod oidc;
pub mod registry;
pub mod servables;
pub mod trusts;

use crate::core::store::{self, Store, StoreError, TableInit};
use std::path::Path;

/// Every domain's tables, created when the store opens.
pub const TABLES: &[TableInit] = &[
    authz::init_tables,
    accounts::init_tables,
    images::init_tables,
    jobs::init_tables,
    logs::init_tables,
    servables::init_tables,
    trusts::init_tables,
    registry::init_tables,
    oidc::init_tables,
];

/// Opens the appliance's database in `data_dir` with every domain's tables and the default
/// read cache.
pub fn open_store(data_dir: &Path) -> Result<Store, StoreError> {
    open_store_with_cache(data_dir, store::DEFAULT_CACHE_MB)
}

/// Opens the appliance's database with a read cache of `cache_mb` MiB (`store.cache_mb`).
pub fn open_store_with_cache(data_dir: &Path, cache_mb: u64) -> Result<Store, StoreError> {
    store::open(data_dir, TABLES, cache_mb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::id::Id;
    use crate::core::page::PageRequest;
    use crate::domains::authz::{Principal, PrincipalKind};
    use crate::domains::images::BuildRequest;
    use crate::domains::jobs::{JobFilter, JobState, NewJob};

    /// A store of schema 1 had no list index: opening it with this version builds the index
    /// from the objects, grants and records, so every list answers as before.
    #[test]
    fn a_store_of_schema_1_gets_its_list_index_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let owner_id = Id::new();
        let owner = Principal {
            id: owner_id,
            kind: PrincipalKind::User,
            name: "owner".into(),
            admin: false,
            user: owner_id,
        };
        let now = chrono::Utc::now();
        let store = open_store(dir.path()).unwrap();
        let build = images::create_image(
            &store,
            dir.path(),
            &owner,
            BuildRequest {
                name: "img".into(),
                dockerfile: Some("FROM scratch\n".into()),
                repo_url: None,
                nocache: false,
                attachments: Vec::new(),
            },
            now,
        )
        .unwrap();
        let pipeline = jobs::create_pipeline(&store, &owner, "p", now).unwrap();
        let mut made = Vec::new();
        for i in 0..5 {
            let new = NewJob {
                command: format!("echo {i}"),
                image: build.image,
                attachments: Vec::new(),
            };
            made.push(jobs::create_job(&store, dir.path(), &owner, pipeline.id, new, now).unwrap());
        }
        jobs::update_job(&store, made[1].id, |j| j.state = JobState::Running).unwrap();
        jobs::update_job(&store, made[3].id, |j| j.state = JobState::Running).unwrap();
        let lists = |store: &Store| {
            let running = JobFilter {
                state: Some(JobState::Running),
                pipeline: Some(pipeline.id),
            };
            let page = PageRequest::default();
            let ids = |p: crate::core::page::Page<jobs::Job>| -> Vec<Id> {
                p.items.iter().map(|j| j.id).collect()
            };
            (
                ids(jobs::list_jobs(store, &owner, JobFilter::default(), page).unwrap()),
                ids(jobs::list_jobs(store, &owner, running, page).unwrap()),
                jobs::running_jobs(store).unwrap().len(),
                images::pending_builds(store).unwrap().len(),
                jobs::count_by_state(store).unwrap(),
            )
        };
        let before = lists(&store);
        assert_eq!(before.0.len(), 5);
        assert_eq!(before.1, vec![made[1].id, made[3].id]);
        assert_eq!((before.2, before.3), (2, 1));
        let count = |state| before.4.iter().find(|(s, _)| *s == state).unwrap().1;
        assert_eq!((count(JobState::Ready), count(JobState::Running)), (3, 2));
        assert_eq!(count(JobState::Done), 0);

        // Back to schema 1: no index tables.
        {
            let txn = store.write().unwrap();
            let list = redb::TableDefinition::<(u128, u8, u8, u128, u128), ()>::new("list_index");
            let facets = redb::TableDefinition::<(u128, u8), u128>::new("object_facets");
            let counts = redb::TableDefinition::<(u8, u8, u128), u64>::new("list_counts");
            assert!(txn.delete_table(list).unwrap());
            assert!(txn.delete_table(facets).unwrap());
            assert!(txn.delete_table(counts).unwrap());
            txn.commit().unwrap();
        }
        store.set_schema_version(1).unwrap();
        assert!(jobs::running_jobs(&store).is_err(), "the index is gone");
        drop(store);
        let store = open_store(dir.path()).unwrap();
        assert_eq!(store.schema_version().unwrap(), store::SCHEMA_VERSION);
        assert_eq!(lists(&store), before);

        // The counts follow every change of state, and deletions.
        for job in &made {
            jobs::update_job(&store, job.id, |j| j.state = JobState::Done).unwrap();
        }
        let counts = jobs::count_by_state(&store).unwrap();
        assert!(counts.contains(&(JobState::Done, 5)), "{counts:?}");
        assert_eq!(counts.iter().map(|c| c.1).sum::<u64>(), 5);
        jobs::delete_pipeline(&store, &owner, pipeline.id).unwrap();
        let counts = jobs::count_by_state(&store).unwrap();
        assert!(counts.iter().all(|c| c.1 == 0), "{counts:?}");
    }
}
