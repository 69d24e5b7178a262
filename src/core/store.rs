//! The embedded database: one redb file in the data directory, and nothing of any domain.
//!
//! Each domain declares its own tables (`TableDefinition`s next to the code that uses them),
//! registers them through a [`TableInit`] (see `domains::TABLES`), and reads and writes them
//! inside the transactions handed out here. Values are JSON, so that a record can gain optional
//! fields without a migration; keys are ids (`u128`) or short strings. [`open`] creates every
//! table it is given and records the schema version, so readers never meet a missing table.

use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
    TableHandle, WriteTransaction,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The version of the table layout this build writes. Bumped with a migration when a table's key
/// or value type changes, or a table is added that must be filled from the others.
///
/// 2: the list index (`authz`), filled from the objects, grants and records of version 1.
/// 3: counts of the list index by kind, state and type (`authz`), for `/metrics`.
pub const SCHEMA_VERSION: u64 = 3;

pub const DB_FILE: &str = "dtaas.redb";

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the data directory {dir} is in use by another dtaas process (its database is locked); \
         stop that server first, or use `dtaas admin ...`, which talks to a running server"
    )]
    Locked { dir: PathBuf },
    #[error(
        "the database in {dir} has schema version {found}, newer than this dtaas understands \
         ({SCHEMA_VERSION}); upgrade dtaas"
    )]
    NewerSchema { dir: PathBuf, found: u64 },
    #[error("cannot create the data directory {dir}: {source}")]
    DataDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("database error: {0}")]
    Db(String),
    #[error("corrupt record: {0}")]
    Codec(String),
}

macro_rules! redb_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(e.to_string()) }
        }
    )*};
}
redb_errors!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// A handle on the open database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    dir: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish()
    }
}

/// Creates a domain's tables (and any rows they must start with) in the opening transaction,
/// and migrates what an older version of the store left.
pub type TableInit = fn(&WriteTransaction, Opening) -> Result<(), StoreError>;

/// What the opening transaction found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opening {
    /// The schema version the store had; `None` for a new store.
    pub found: Option<u64>,
}

impl Opening {
    /// Whether an existing store is being brought past `version` now (its migrations run).
    pub fn upgrades_past(self, version: u64) -> bool {
        self.found
            .is_some_and(|v| v <= version && version < SCHEMA_VERSION)
    }
}

/// The read cache of a store opened without a setting (`store.cache_mb`'s default).
pub const DEFAULT_CACHE_MB: u64 = 16;

/// Opens (creating if needed) the database in `data_dir`, with the tables `tables` create and
/// a read cache of `cache_mb` MiB.
pub fn open(data_dir: &Path, tables: &[TableInit], cache_mb: u64) -> Result<Store, StoreError> {
    let dir_error = |source| StoreError::DataDir {
        dir: data_dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(data_dir).map_err(dir_error)?;
    // The database holds password hashes; what jobs and servables leave in the directory must
    // not be reachable by other local users: the directory is the server's alone.
    keep_private(data_dir, 0o700).map_err(dir_error)?;
    let path = data_dir.join(DB_FILE);
    let cache = usize::try_from(cache_mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
    let db = match Database::builder().set_cache_size(cache).create(&path) {
        Ok(db) => db,
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
            return Err(StoreError::Locked {
                dir: data_dir.to_owned(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    keep_private(&path, 0o600).map_err(dir_error)?;
    let store = Store {
        db: Arc::new(db),
        dir: data_dir.to_owned(),
    };
    let txn = store.write()?;
    let found = {
        let mut meta = txn.open_table(META)?;
        let found = meta.get("schema_version")?.map(|v| v.value());
        match found {
            None => {
                meta.insert("schema_version", SCHEMA_VERSION)?;
                // Identifies this installation's containers among others on the same engine.
                let id = super::id::Id::new().0;
                meta.insert("installation_hi", (id >> 64) as u64)?;
                meta.insert("installation_lo", id as u64)?;
            }
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::NewerSchema {
                    dir: data_dir.to_owned(),
                    found: v,
                });
            }
            Some(_) => {}
        }
        found
    };
    for init in tables {
        init(&txn, Opening { found })?;
    }
    if found.is_some_and(|v| v < SCHEMA_VERSION) {
        tracing::info!(from = found, to = SCHEMA_VERSION, "store migrated");
        txn.open_table(META)?
            .insert("schema_version", SCHEMA_VERSION)?;
    }
    txn.commit()?;
    Ok(store)
}

/// Takes group and other permissions off a path that has them (a directory or database made
/// before this rule, or by hand).
fn keep_private(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if current & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            "taking group and other permissions off ({current:o} -> {mode:o})"
        );
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

impl Store {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn read(&self) -> Result<ReadTransaction, StoreError> {
        Ok(self.db.begin_read()?)
    }

    /// A durable write transaction: committed means on disk.
    pub fn write(&self) -> Result<WriteTransaction, StoreError> {
        Ok(self.db.begin_write()?)
    }

    /// A write whose loss in a crash is harmless (e.g. a session's last-seen time): it becomes
    /// durable with the next durable commit.
    pub fn write_lazy(&self) -> Result<WriteTransaction, StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::None)?;
        Ok(txn)
    }

    /// A random id fixed when the database was created: labels on containers tell this
    /// installation's from those of another server sharing the engine.
    pub fn installation_id(&self) -> Result<super::id::Id, StoreError> {
        let txn = self.read()?;
        let meta = txn.open_table(META)?;
        let hi = meta.get("installation_hi")?.map(|v| v.value()).unwrap_or(0);
        let lo = meta.get("installation_lo")?.map(|v| v.value()).unwrap_or(0);
        Ok(super::id::Id((u128::from(hi) << 64) | u128::from(lo)))
    }

    /// Pretends the store was written by an older version (for migration tests).
    #[cfg(test)]
    pub fn set_schema_version(&self, version: u64) -> Result<(), StoreError> {
        let txn = self.write()?;
        txn.open_table(META)?.insert("schema_version", version)?;
        txn.commit()?;
        Ok(())
    }

    pub fn schema_version(&self) -> Result<u64, StoreError> {
        let txn = self.read()?;
        let meta = txn.open_table(META)?;
        Ok(meta.get("schema_version")?.map(|v| v.value()).unwrap_or(0))
    }
}

/// Holds a data directory's database locked without opening its tables (no migration, nothing
/// written): what a restore takes so that no server starts on the directory meanwhile. `None`
/// when the directory has no database.
pub fn lock_data_dir(data_dir: &Path) -> Result<Option<DataDirLock>, StoreError> {
    let path = data_dir.join(DB_FILE);
    if !path.exists() {
        return Ok(None);
    }
    match Database::open(&path) {
        Ok(db) => Ok(Some(DataDirLock { _db: db })),
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => Err(StoreError::Locked {
            dir: data_dir.to_owned(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// The lock of [`lock_data_dir`], released when dropped.
pub struct DataDirLock {
    _db: Database,
}

/// Copies every table a read transaction sees into a new database at `dest` (which must not
/// exist yet): the store as of that transaction, whatever commits meanwhile, in a file that is
/// closed cleanly, compact, and opens like any store. Readers and writers of the live store go
/// on undisturbed. Returns the entries copied per table.
///
/// The tables are found by name; each is opened with the key and value types of the layouts
/// the domains use ([`copy_as_known_types`]). A table of any other type is an error naming
/// it, never silently left out (a unit test copies a store with every domain's tables).
pub fn copy_database(
    txn: &ReadTransaction,
    dest: &Path,
) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
    if txn.list_multimap_tables()?.next().is_some() {
        return Err(StoreError::Db(
            "the store has multimap tables, which a copy does not know".into(),
        ));
    }
    let db = Database::builder().create(dest)?;
    let out = db.begin_write()?;
    let mut copied = std::collections::BTreeMap::new();
    for handle in txn.list_tables()? {
        let name = handle.name().to_owned();
        let n = copy_as_known_types(txn, &out, &name)?.ok_or_else(|| {
            StoreError::Db(format!(
                "table {name} has key and value types a copy does not know (add them to \
                 core::store::copy_as_known_types)"
            ))
        })?;
        copied.insert(name, n);
    }
    out.commit()?;
    db.close()?;
    Ok(copied)
}

/// Copies table `name` if its types are one of the pairs the domains use; `None` if not.
fn copy_as_known_types(
    src: &ReadTransaction,
    dst: &WriteTransaction,
    name: &str,
) -> Result<Option<u64>, StoreError> {
    macro_rules! first_that_fits {
        ($(($k:ty, $v:ty)),* $(,)?) => {{
            $(
                if let Some(n) = copy_table::<$k, $v>(src, dst, name)? {
                    return Ok(Some(n));
                }
            )*
            Ok(None)
        }};
    }
    first_that_fits!(
        (&str, u64),
        (&str, u128),
        (&str, &str),
        (&str, &[u8]),
        (u64, u128),
        (u128, &[u8]),
        (&[u8; 32], &[u8]),
        (&[u8; 32], u128),
        ((u8, u8, u128), u64),
        ((u128, u8), u128),
        ((u128, u64), &str),
        ((u128, u128), u8),
        ((u128, u128), ()),
        ((u128, u8, u8, u128, u128), ()),
        ((&str, &str), i64),
        ((&str, &str), &str),
        ((&str, &str), &[u8]),
        ((&str, &str, &str), ()),
        ((u8, i64, [u8; 32]), ()),
    )
}

/// Copies table `name` as `K -> V`; `None` if it is of other types.
fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    src: &ReadTransaction,
    dst: &WriteTransaction,
    name: &str,
) -> Result<Option<u64>, StoreError> {
    let definition = TableDefinition::<K, V>::new(name);
    let table = match src.open_table(definition) {
        Ok(table) => table,
        Err(redb::TableError::TableTypeMismatch { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut out = dst.open_table(definition)?;
    let mut n = 0u64;
    for entry in table.iter()? {
        let (k, v) = entry?;
        out.insert(k.value(), v.value())?;
        n += 1;
    }
    Ok(Some(n))
}

/// A record of a table keyed by object id.
pub fn get_record<T: DeserializeOwned>(
    table: &impl ReadableTable<u128, &'static [u8]>,
    id: super::id::Id,
) -> Result<Option<T>, StoreError> {
    match table.get(id.0)? {
        Some(v) => Ok(Some(decode(v.value())?)),
        None => Ok(None),
    }
}

/// Writes a record of a table keyed by object id.
pub fn put_record<T: Serialize>(
    txn: &WriteTransaction,
    table: redb::TableDefinition<u128, &[u8]>,
    id: super::id::Id,
    value: &T,
) -> Result<(), StoreError> {
    txn.open_table(table)?
        .insert(id.0, encode(value)?.as_slice())?;
    Ok(())
}

/// The records of a table keyed by object id that `keep` accepts, in id order.
pub fn records_where<T: DeserializeOwned>(
    store: &Store,
    table: redb::TableDefinition<u128, &[u8]>,
    keep: impl Fn(&T) -> bool,
) -> Result<Vec<T>, StoreError> {
    let txn = store.read()?;
    let mut out = Vec::new();
    for entry in txn.open_table(table)?.iter()? {
        let (_, v) = entry?;
        let record: T = decode(v.value())?;
        if keep(&record) {
            out.push(record);
        }
    }
    Ok(out)
}

/// Encodes a record.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Codec(e.to_string()))
}

/// Decodes a record.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Codec(e.to_string()))
}
