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

pub mod accounts;
pub mod authz;
pub mod images;
pub mod jobs;
pub mod logs;
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
];

/// Opens the appliance's database in `data_dir` with every domain's tables.
pub fn open_store(data_dir: &Path) -> Result<Store, StoreError> {
    store::open(data_dir, TABLES)
}
