//! Backups: a consistent snapshot of the database and of the files it refers to, taken while
//! the server runs, and the restore of one onto a stopped server. The format and the file work
//! are `core::backup`'s; what belongs in a backup is each domain's (`backup_wanted` in jobs,
//! images and the registry).
//!
//! A snapshot is staged in `<data>/tmp/backup-<pid>-<id>/` by whoever holds the database:
//!
//! 1. One read transaction `S`. Each domain lists the files `S` refers to: every blob, every
//!    job's attachments and every finished job's result, every image's build context (its
//!    Dockerfile written from the record), and, verbatim, directories the server names (its
//!    generated TLS certificate).
//! 2. Each file is hard-linked into the staging directory (copied where a link cannot be made):
//!    from then on, whatever removes or replaces it in the data directory leaves the staged
//!    one as it was. Linking is quick, so nothing is paused: garbage collection, pushes and
//!    jobs go on.
//! 3. Whether a file changed between `S` and its link is found out afterwards: a write
//!    transaction is begun and dropped (so that writes in progress, such as a resubmission
//!    that removes a result before it commits, have committed), and a second read transaction
//!    lists the files again. A file that could not be found, or whose record changed (a job
//!    run again, an image rebuilt with new attachments, a blob collected), makes the attempt
//!    start over with a new `S` (up to [`ATTEMPTS`] times). A required file that is absent in
//!    both transactions alike is damage of the data directory: reported as missing, not
//!    waited for.
//! 4. The database is copied from `S` into a fresh file (`core::store::copy_database`), and
//!    the inventory written.
//!
//! The command line copies the staged snapshot out and the staging directory is removed.
//! Restoring ([`restore`]) verifies the backup, unpacks it next to the data directory, makes
//! of it what a server can start from (jobs that were running are queued again, upload
//! sessions dropped), and renames it into place.

use super::{accounts, images, jobs, open_store, registry, servables};
use crate::core::backup::{
    self as format, BackupError, Content, Counts, DATA, DATABASE, FileEntry, INVENTORY_FILE,
    Inventory, Manifest, Missing, Mode, Wanted,
};
use crate::core::clock::Timestamp;
use crate::core::id::Id;
use crate::core::store::{self, Store, StoreError};
use redb::{ReadTransaction, ReadableTableMetadata};
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// How often a snapshot starts over when files change under it before it gives up.
pub const ATTEMPTS: u32 = 5;

/// The prefix of staging directories in `<data>/tmp`.
const STAGING_PREFIX: &str = "backup-";

impl From<StoreError> for BackupError {
    fn from(e: StoreError) -> Self {
        BackupError::Other(format!("database: {e}"))
    }
}

impl From<crate::core::error::Error> for BackupError {
    fn from(e: crate::core::error::Error) -> Self {
        BackupError::Other(e.to_string())
    }
}

/// A staged snapshot: `data/` (the database copy and the files) and `inventory.json`. The
/// directory is removed when this is dropped.
#[derive(Debug)]
pub struct Staged {
    dir: PathBuf,
    pub inventory: Inventory,
}

impl Staged {
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reads the inventory of a snapshot staged by another process (the server).
pub fn read_inventory(staged: &Path) -> Result<Inventory, BackupError> {
    let path = staged.join(INVENTORY_FILE);
    let bytes = std::fs::read(&path).map_err(format::io_error("cannot read", &path))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| BackupError::Other(format!("{}: {e}", path.display())))
}

/// Stages a snapshot of the store and of the files it refers to, plus every file under the
/// data directory's `verbatim` directories. Blocking.
pub fn snapshot(
    store: &Store,
    data_dir: &Path,
    verbatim: &[&str],
    now: Timestamp,
) -> Result<Staged, BackupError> {
    snapshot_with(store, data_dir, verbatim, now, &mut |_| {})
}

/// [`snapshot`], with `before_linking` called in each attempt between the first read
/// transaction and the links (where tests change what the snapshot sees).
fn snapshot_with(
    store: &Store,
    data_dir: &Path,
    verbatim: &[&str],
    now: Timestamp,
    before_linking: &mut dyn FnMut(u32),
) -> Result<Staged, BackupError> {
    let tmp = data_dir.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(format::io_error("cannot create", &tmp))?;
    remove_leftovers(&tmp);
    let dir = tmp.join(format!(
        "{STAGING_PREFIX}{}-{}",
        std::process::id(),
        Id::new()
    ));
    let mut staged = Staged {
        dir: dir.clone(),
        inventory: Inventory {
            created_at: now,
            installation: store.installation_id()?.to_string(),
            schema_version: store.schema_version()?,
            counts: Counts::new(),
            files: Vec::new(),
            dirs: Vec::new(),
            missing: Vec::new(),
        },
    };
    let data = dir.join(DATA);
    for attempt in 1..=ATTEMPTS {
        if data.exists() {
            std::fs::remove_dir_all(&data).map_err(format::io_error("cannot remove", &data))?;
        }
        std::fs::create_dir_all(&data).map_err(format::io_error("cannot create", &data))?;
        let txn = store.read()?;
        let mut counts = Counts::new();
        let wanted = plan(&txn, data_dir, verbatim, &mut counts)?;
        before_linking(attempt);
        let linked = stage_files(data_dir, &data, &wanted)?;
        // Writes in progress commit before the second look.
        store.write()?.abort().map_err(StoreError::from)?;
        let later = fingerprints(&store.read()?, data_dir, verbatim)?;
        let changed: Vec<&Wanted> = wanted
            .iter()
            .zip(&linked.outcome)
            .filter(|(w, outcome)| {
                let now = later.get(&w.path);
                match outcome {
                    Outcome::Absent => now != Some(&w.fingerprint),
                    Outcome::Staged => now.is_some_and(|f| *f != w.fingerprint),
                }
            })
            .map(|(w, _)| w)
            .collect();
        if !changed.is_empty() {
            if attempt < ATTEMPTS {
                tracing::debug!(
                    attempt,
                    changed = changed.len(),
                    "files changed under the backup snapshot; taking it again"
                );
                drop(txn);
                std::thread::sleep(std::time::Duration::from_millis(50 * u64::from(attempt)));
                continue;
            }
            return Err(BackupError::Other(format!(
                "the data changed under the snapshot in each of {ATTEMPTS} attempts (last: {}); \
                 try again when the server is less busy",
                changed[0].path.display()
            )));
        }
        let copied = store::copy_database(&txn, &data.join(DATABASE))?;
        drop(txn);
        counts.insert("tables".into(), copied.len() as u64);
        for (kind, n) in &linked.kinds {
            counts.insert((*kind).to_owned(), *n);
        }
        let db = data.join(DATABASE);
        let size = std::fs::metadata(&db)
            .map_err(format::io_error("cannot read", &db))?
            .len();
        let mut files = vec![FileEntry {
            path: DATABASE.into(),
            size,
            mode: Mode(0o600),
            sha256: None,
        }];
        files.extend(linked.files);
        staged.inventory.counts = counts;
        staged.inventory.files = files;
        staged.inventory.dirs = linked
            .dirs
            .into_iter()
            .map(|(path, mode)| format::DirEntry { path, mode })
            .collect();
        staged.inventory.missing = linked.missing;
        break;
    }
    let json = serde_json::to_vec_pretty(&staged.inventory)
        .map_err(|e| BackupError::Other(format!("cannot write the inventory: {e}")))?;
    let path = dir.join(INVENTORY_FILE);
    std::fs::write(&path, json).map_err(format::io_error("cannot write", &path))?;
    Ok(staged)
}

/// Removes staging directories of other processes: whoever stages a snapshot holds the
/// database, so one of another process is what a stopped server or command left.
fn remove_leftovers(tmp: &Path) {
    let mine = format!("{STAGING_PREFIX}{}-", std::process::id());
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(STAGING_PREFIX) && !name.starts_with(&mine) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Everything a snapshot as of `txn` holds besides the database, with the counts of records.
fn plan(
    txn: &ReadTransaction,
    data_dir: &Path,
    verbatim: &[&str],
    counts: &mut Counts,
) -> Result<Vec<Wanted>, BackupError> {
    let len = |table| -> Result<u64, StoreError> { Ok(txn.open_table(table)?.len()?) };
    counts.insert("users".into(), len(accounts::USERS)?);
    counts.insert("servables".into(), len(servables::SERVABLES)?);
    counts.insert("instances".into(), len(servables::INSTANCES)?);
    let mut out = Vec::new();
    jobs::backup_wanted(txn, counts, &mut out)?;
    images::backup_wanted(txn, counts, &mut out)?;
    registry::meta::backup_wanted(txn, counts, &mut out)?;
    for dir in verbatim {
        walk_files(data_dir, Path::new(dir), &mut out);
    }
    Ok(out)
}

/// Every plain file under `data_dir/rel`, as wanted verbatim.
fn walk_files(data_dir: &Path, rel: &Path, out: &mut Vec<Wanted>) {
    let Ok(entries) = std::fs::read_dir(data_dir.join(rel)) else {
        return;
    };
    for entry in entries.flatten() {
        let path = rel.join(entry.file_name());
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk_files(data_dir, &path, out),
            Ok(t) if t.is_file() => out.push(Wanted {
                path,
                content: Content::File {
                    required: false,
                    sha256: None,
                },
                fingerprint: String::new(),
                kind: "server_files",
            }),
            _ => {}
        }
    }
}

/// What a later transaction says of each wanted file.
fn fingerprints(
    txn: &ReadTransaction,
    data_dir: &Path,
    verbatim: &[&str],
) -> Result<HashMap<PathBuf, String>, BackupError> {
    let mut counts = Counts::new();
    Ok(plan(txn, data_dir, verbatim, &mut counts)?
        .into_iter()
        .map(|w| (w.path, w.fingerprint))
        .collect())
}

enum Outcome {
    Staged,
    Absent,
}

struct Linked {
    /// Per wanted file, in order.
    outcome: Vec<Outcome>,
    files: Vec<FileEntry>,
    /// The directories of the data directory above the files, with their modes.
    dirs: BTreeMap<String, Mode>,
    missing: Vec<Missing>,
    /// Staged files by what they count as.
    kinds: BTreeMap<&'static str, u64>,
}

/// Puts every wanted file into `staging`: a hard link (a copy where that fails), or the bytes.
fn stage_files(data_dir: &Path, staging: &Path, wanted: &[Wanted]) -> Result<Linked, BackupError> {
    let mut linked = Linked {
        outcome: Vec::with_capacity(wanted.len()),
        files: Vec::with_capacity(wanted.len()),
        dirs: BTreeMap::new(),
        missing: Vec::new(),
        kinds: BTreeMap::new(),
    };
    for w in wanted {
        let name = format::manifest_path(&w.path);
        let rel = format::safe_relative(&name).map_err(BackupError::Other)?;
        let to = staging.join(&rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(format::io_error("cannot create", parent))?;
        }
        let mode = match &w.content {
            Content::Bytes { bytes, mode } => {
                std::fs::write(&to, bytes).map_err(format::io_error("cannot write", &to))?;
                Some(*mode)
            }
            Content::File { required, .. } => {
                let from = data_dir.join(&rel);
                match link_or_copy(&from, &to)? {
                    Some(mode) => Some(mode),
                    None => {
                        if *required {
                            linked.missing.push(Missing {
                                path: name.clone(),
                                reason: "recorded in the database, but not in the data directory"
                                    .into(),
                            });
                        }
                        None
                    }
                }
            }
        };
        let Some(mode) = mode else {
            linked.outcome.push(Outcome::Absent);
            continue;
        };
        let size = std::fs::metadata(&to)
            .map_err(format::io_error("cannot read", &to))?
            .len();
        let sha256 = match &w.content {
            Content::File { sha256, .. } => sha256.clone(),
            Content::Bytes { .. } => None,
        };
        linked.files.push(FileEntry {
            path: name,
            size,
            mode: Mode(mode & 0o777),
            sha256,
        });
        *linked.kinds.entry(w.kind).or_default() += 1;
        linked.outcome.push(Outcome::Staged);
        let mut parent = rel.parent();
        while let Some(dir) = parent.filter(|p| !p.as_os_str().is_empty()) {
            let key = format::manifest_path(dir);
            if linked.dirs.contains_key(&key) {
                break;
            }
            let mode = std::fs::metadata(data_dir.join(dir))
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0o700);
            linked.dirs.insert(key, Mode(mode));
            parent = dir.parent();
        }
    }
    // The missing ones were listed in the order met; the outcome of a retry replaces them all.
    Ok(linked)
}

/// Hard-links `from` to `to`, or copies it where a link cannot be made (another file system,
/// a file of another user). Returns the file's mode, or `None` if it does not exist (or is not
/// a plain file).
fn link_or_copy(from: &Path, to: &Path) -> Result<Option<u32>, BackupError> {
    match std::fs::symlink_metadata(from) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format::io_error("cannot read", from)(e)),
        Ok(m) if !m.is_file() => return Ok(None),
        Ok(_) => {}
    }
    let done = match std::fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(_) => std::fs::copy(from, to).map(|_| ()),
    };
    match done {
        Ok(()) => Ok(Some(
            std::fs::symlink_metadata(to)
                .map_err(format::io_error("cannot read", to))?
                .permissions()
                .mode(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format::io_error("cannot copy", from)(e)),
    }
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    pub manifest: Manifest,
    /// Jobs that were running when the backup was taken, queued to run again.
    pub requeued: u64,
    /// Jobs that were being killed when the backup was taken, now cancelled.
    pub cancelled: u64,
    /// Upload sessions in progress then, dropped.
    pub uploads_dropped: u64,
    /// Where the data directory's previous contents were kept (`--force`).
    pub replaced: Option<PathBuf>,
    /// The owner given to the restored files (a restore run as root).
    pub owner: Option<(u32, u32)>,
}

/// Checks a backup (manifest, every file's size and SHA-256) without writing anything.
pub fn verify(backup: &Path) -> Result<Manifest, BackupError> {
    let manifest = format::read_manifest(backup)?;
    check_schema(&manifest)?;
    format::verify(backup, &manifest)?;
    Ok(manifest)
}

fn check_schema(manifest: &Manifest) -> Result<(), BackupError> {
    if manifest.schema_version > store::SCHEMA_VERSION {
        return Err(BackupError::NewerSchema {
            dtaas_version: manifest.dtaas_version.clone(),
            found: manifest.schema_version,
            supported: store::SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Restores a backup into `data_dir`, which no server may be using: refused when its database
/// is locked, or when it is not empty unless `force` (then its contents are kept aside, see
/// `core::backup::install`). Every checksum is verified before anything is written. Blocking.
pub fn restore(
    backup: &Path,
    data_dir: &Path,
    force: bool,
    now: Timestamp,
) -> Result<Restored, BackupError> {
    let manifest = format::read_manifest(backup)?;
    check_schema(&manifest)?;
    match std::fs::symlink_metadata(data_dir) {
        Ok(m) if !m.is_dir() => {
            return Err(BackupError::Other(format!(
                "{} is not a directory",
                data_dir.display()
            )));
        }
        _ => {}
    }
    // Held until the restored directory is in place: no server starts on it meanwhile. A
    // database that cannot be opened at all (damaged: the reason to restore) holds no server.
    let lock = match store::lock_data_dir(data_dir) {
        Ok(lock) => lock,
        Err(StoreError::Locked { .. }) => {
            return Err(BackupError::Other(format!(
                "a dtaas server is running on {} (its database is locked): stop it first (e.g. \
                 systemctl stop dtaas); a restore replaces its data",
                data_dir.display()
            )));
        }
        Err(e) => {
            tracing::warn!("the database being replaced does not open ({e}); restoring anyway");
            None
        }
    };
    if !force && !format::is_absent_or_empty_dir(data_dir)? {
        return Err(BackupError::DataDirNotEmpty(data_dir.to_owned()));
    }
    format::verify(backup, &manifest)?;
    let staging = format::unpack(backup, &manifest, data_dir)?;
    let result = settle(&staging, data_dir).and_then(|(requeued, cancelled, uploads, owner)| {
        let replaced = format::install(&staging, data_dir, force, now)?;
        Ok(Restored {
            manifest,
            requeued,
            cancelled,
            uploads_dropped: uploads,
            replaced,
            owner,
        })
    });
    drop(lock);
    if result.is_err() {
        format::discard(&staging);
    }
    result
}

type Settled = (u64, u64, u64, Option<(u32, u32)>);

/// Makes an unpacked backup what a server can start from, and gives it the data directory's
/// owner when run as root.
fn settle(staging: &Path, data_dir: &Path) -> Result<Settled, BackupError> {
    let store = open_store(staging)?;
    let (requeued, cancelled) = jobs::requeue_interrupted(&store)?;
    let uploads = registry::meta::forget_uploads(&store)?;
    drop(store);
    let root = rustix::process::geteuid().is_root();
    let owner = format::owner_of(data_dir).filter(|owner| root && *owner != (0, 0));
    if let Some((uid, gid)) = owner {
        format::chown_tree(staging, uid, gid)?;
    }
    Ok((requeued, cancelled, uploads, owner))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domains::accounts::NewUser;
    use crate::domains::authz::{Principal, PrincipalKind};
    use crate::domains::images::BuildRequest;
    use crate::domains::jobs::{JobState, NewJob};

    fn owner(store: &Store, login: &str) -> Principal {
        let user = accounts::create_user(
            store,
            NewUser {
                login: login.into(),
                email: None,
                password_hash: "$argon2id$x".into(),
                confirmed: true,
                confirm_token: None,
                admin: false,
            },
            chrono::Utc::now(),
        )
        .unwrap();
        Principal {
            id: user.id,
            kind: PrincipalKind::User,
            name: login.into(),
            admin: false,
            user: user.id,
        }
    }

    /// A store with a user, an image with an attachment, a pipeline of a finished job (with a
    /// result), a running job and a queued one with an attachment, a blob and an upload.
    struct Fixture {
        dir: tempfile::TempDir,
        store: Store,
        done: Id,
        running: Id,
        queued: Id,
        image: Id,
        digest: String,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let store = open_store(&data).unwrap();
        let alice = owner(&store, "alice");
        let now = chrono::Utc::now();
        let stage = |name: &str, content: &str| {
            let p = dir.path().join(format!("staged-{name}"));
            std::fs::write(&p, content).unwrap();
            (name.to_owned(), p)
        };
        let build = images::create_image(
            &store,
            &data,
            &alice,
            BuildRequest {
                name: "img".into(),
                dockerfile: Some("FROM scratch\nCOPY a /\n".into()),
                repo_url: None,
                nocache: false,
                attachments: vec![stage("a", "context attachment")],
            },
            now,
        )
        .unwrap();
        let pipeline = jobs::create_pipeline(&store, &alice, "p", now).unwrap();
        let job = |command: &str, attachments| {
            let new = NewJob {
                command: command.into(),
                image: build.image,
                attachments,
            };
            jobs::create_job(&store, &data, &alice, pipeline.id, new, now)
                .unwrap()
                .id
        };
        let done = job("echo done", Vec::new());
        let running = job("sleep 100", Vec::new());
        let queued = job("cat /inbox/in", vec![stage("in", "inbox attachment")]);
        jobs::update_job(&store, done, |j| j.state = JobState::Done).unwrap();
        std::fs::create_dir_all(jobs::job_dir(&data, done)).unwrap();
        std::fs::write(jobs::result_path(&data, done), "result zip").unwrap();
        jobs::update_job(&store, running, |j| j.state = JobState::Running).unwrap();
        jobs::update_job(&store, queued, |j| j.state = JobState::InQueue).unwrap();
        let blobs = registry::blobs::BlobStore::new(&data).unwrap();
        let content = b"a layer";
        let digest = format!(
            "sha256:{}",
            crate::core::secrets::hex(&{
                use sha2::Digest;
                sha2::Sha256::digest(content)
            })
        );
        let path = blobs.blob_path(&digest);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        registry::meta::create_repo(&store, alice.id, "alice/app", now).unwrap();
        registry::meta::add_blob(&store, "alice/app", &digest, content.len() as u64, 0).unwrap();
        registry::meta::create_upload(
            &store,
            &registry::meta::Upload {
                id: "u1".into(),
                repo: "alice/app".into(),
                principal: alice.id,
                created: 0,
            },
        )
        .unwrap();
        Fixture {
            dir,
            store,
            done,
            running,
            queued,
            image: build.image,
            digest,
        }
    }

    impl Fixture {
        fn data(&self) -> PathBuf {
            self.dir.path().join("data")
        }
    }

    /// Every table of every domain is copied (an unknown table type would be an error), with
    /// every entry: a copy of the copy holds the same.
    #[test]
    fn the_database_copy_holds_every_table_whole() {
        let f = fixture();
        let staged = snapshot(&f.store, &f.data(), &[], chrono::Utc::now()).unwrap();
        let copy = staged.dir().join(DATA).join(DATABASE);
        let original = {
            let other = f.dir.path().join("again.redb");
            store::copy_database(&f.store.read().unwrap(), &other).unwrap()
        };
        let db = redb::Database::open(&copy).unwrap();
        let again = f.dir.path().join("copy-of-copy.redb");
        let copied =
            store::copy_database(&redb::ReadableDatabase::begin_read(&db).unwrap(), &again)
                .unwrap();
        assert_eq!(copied, original);
        assert!(copied.len() >= 30, "{copied:?}");
        assert_eq!(copied["users"], 1);
        assert_eq!(copied["jobs"], 3);
    }

    /// A snapshot written out and restored elsewhere gives the same records and files; a job
    /// that was running is queued again, upload sessions are dropped, modes come back.
    #[test]
    fn backup_and_restore_round_trip() {
        let f = fixture();
        let data = f.data();
        std::fs::create_dir_all(data.join("tls")).unwrap();
        std::fs::write(data.join("tls/ca.key"), "key").unwrap();
        let staged = snapshot(&f.store, &data, &["tls"], chrono::Utc::now()).unwrap();
        let inv = &staged.inventory;
        assert!(inv.missing.is_empty(), "{:?}", inv.missing);
        for (k, n) in [
            ("users", 1),
            ("jobs", 3),
            ("jobs_done", 1),
            ("jobs_running", 1),
            ("jobs_in_queue", 1),
            ("results", 1),
            ("attachments", 1),
            ("blobs", 1),
            ("images", 1),
            ("build_context_files", 2),
            ("server_files", 1),
        ] {
            assert_eq!(inv.counts.get(k), Some(&n), "{k}: {:?}", inv.counts);
        }
        let backup = f.dir.path().join("backup");
        let manifest = format::write_backup(staged.dir(), inv, &backup).unwrap();
        let staging = staged.dir().to_owned();
        drop(staged);
        assert!(!staging.exists(), "the staging directory goes");
        assert_eq!(
            manifest.installation,
            f.store.installation_id().unwrap().to_string()
        );

        // Changes after the backup are not in it.
        jobs::update_job(&f.store, f.done, |j| j.command = "echo later".into()).unwrap();

        let target = f.dir.path().join("restored");
        let restored = restore(&backup, &target, false, chrono::Utc::now()).unwrap();
        assert_eq!((restored.requeued, restored.cancelled), (1, 0));
        assert_eq!(restored.uploads_dropped, 1);
        assert_eq!(restored.replaced, None);

        let store = open_store(&target).unwrap();
        assert_eq!(
            store.installation_id().unwrap(),
            f.store.installation_id().unwrap()
        );
        assert_eq!(accounts::list_users(&store).unwrap().len(), 1);
        let state = |id| jobs::get_job(&store, id).unwrap().unwrap();
        assert_eq!(state(f.done).state, JobState::Done);
        assert_eq!(state(f.done).command, "echo done");
        assert_eq!(state(f.running).state, JobState::InQueue);
        assert_eq!(state(f.queued).state, JobState::InQueue);
        assert_eq!(
            std::fs::read(jobs::result_path(&target, f.done)).unwrap(),
            b"result zip"
        );
        let inbox = jobs::inbox_dir(&target, f.queued).join("in");
        assert_eq!(std::fs::read(&inbox).unwrap(), b"inbox attachment");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode(&inbox),
            mode(&jobs::inbox_dir(&data, f.queued).join("in"))
        );
        assert_eq!(mode(&inbox), 0o644, "containers read attachments");
        let image = images::get_image(&store, f.image).unwrap().unwrap();
        let context = images::context_dir(&target, &image);
        assert_eq!(
            std::fs::read_to_string(context.join("Dockerfile")).unwrap(),
            "FROM scratch\nCOPY a /\n"
        );
        assert_eq!(
            std::fs::read(context.join("a")).unwrap(),
            b"context attachment"
        );
        let blob = target.join(registry::blobs::blob_rel_path(&f.digest));
        assert_eq!(std::fs::read(blob).unwrap(), b"a layer");
        assert!(registry::meta::blob(&store, &f.digest).unwrap().is_some());
        assert!(registry::meta::all_uploads(&store).unwrap().is_empty());
        assert_eq!(std::fs::read(target.join("tls/ca.key")).unwrap(), b"key");
    }

    /// A recorded blob whose file is gone is damage: the snapshot reports it at once (no
    /// retries: the record did not change) and the rest is backed up.
    #[test]
    fn a_missing_file_is_reported_not_waited_for() {
        let f = fixture();
        let data = f.data();
        std::fs::remove_file(data.join(registry::blobs::blob_rel_path(&f.digest))).unwrap();
        let started = std::time::Instant::now();
        let staged = snapshot(&f.store, &data, &[], chrono::Utc::now()).unwrap();
        assert!(started.elapsed() < std::time::Duration::from_millis(500));
        assert_eq!(staged.inventory.missing.len(), 1);
        assert!(staged.inventory.missing[0].path.ends_with(&f.digest[7..]));
        assert_eq!(staged.inventory.counts.get("blobs"), None);
        assert_eq!(staged.inventory.counts["results"], 1);
    }

    /// Files removed after the snapshot's transaction and before their links (a resubmission
    /// removes a result, garbage collection a blob) make it start over, so that the backup
    /// never holds a finished job without its result or a blob record without its file.
    #[test]
    fn a_file_removed_under_the_snapshot_makes_it_start_over() {
        let f = fixture();
        let data = f.data();
        let mut seen = Vec::new();
        let staged = snapshot_with(&f.store, &data, &[], chrono::Utc::now(), &mut |attempt| {
            seen.push(attempt);
            if attempt == 1 {
                // What `submit` does: the result goes, the job is queued again.
                std::fs::remove_file(jobs::result_path(&data, f.done)).unwrap();
                jobs::update_job(&f.store, f.done, |j| j.state = JobState::InQueue).unwrap();
                // What garbage collection does: the record, then the file.
                let txn = f.store.write().unwrap();
                txn.open_table(redb::TableDefinition::<&str, &[u8]>::new("registry_blobs"))
                    .unwrap()
                    .remove(f.digest.as_str())
                    .unwrap();
                txn.commit().unwrap();
                std::fs::remove_file(data.join(registry::blobs::blob_rel_path(&f.digest))).unwrap();
            }
        })
        .unwrap();
        assert_eq!(seen, vec![1, 2]);
        let inv = &staged.inventory;
        assert!(inv.missing.is_empty(), "{:?}", inv.missing);
        assert_eq!(inv.counts.get("results"), None);
        assert_eq!(inv.counts.get("blobs"), None);
        assert_eq!(inv.counts["jobs_in_queue"], 2);
    }

    /// Restores refuse a data directory in use, a non-empty one without --force, and a damaged
    /// backup, before anything is written; --force keeps the old contents aside.
    #[test]
    fn restore_refusals() {
        let f = fixture();
        let staged = snapshot(&f.store, &f.data(), &[], chrono::Utc::now()).unwrap();
        let backup = f.dir.path().join("backup");
        format::write_backup(staged.dir(), &staged.inventory, &backup).unwrap();
        let now = chrono::Utc::now();

        // The fixture's store is open: its directory is in use.
        let e = restore(&backup, &f.data(), true, now)
            .unwrap_err()
            .to_string();
        assert!(e.contains("running") && e.contains("stop it first"), "{e}");

        let other = f.dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join("keep"), "mine").unwrap();
        let e = restore(&backup, &other, false, now).unwrap_err();
        assert!(matches!(e, BackupError::DataDirNotEmpty(_)), "{e}");
        assert!(e.to_string().contains("--force"), "{e}");

        // Damage: nothing written, the old contents untouched.
        let blob = backup
            .join(DATA)
            .join(registry::blobs::blob_rel_path(&f.digest));
        let good = std::fs::read(&blob).unwrap();
        std::fs::write(&blob, "tampered").unwrap();
        let e = restore(&backup, &other, true, now).unwrap_err();
        assert!(matches!(e, BackupError::Damaged { .. }), "{e}");
        assert_eq!(std::fs::read(other.join("keep")).unwrap(), b"mine");
        let siblings: Vec<_> = std::fs::read_dir(f.dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("restoring"))
            .collect();
        assert!(siblings.is_empty(), "{siblings:?}");

        std::fs::write(&blob, good).unwrap();
        let restored = restore(&backup, &other, true, now).unwrap();
        let aside = restored.replaced.unwrap();
        assert_eq!(std::fs::read(aside.join("keep")).unwrap(), b"mine");
        assert!(other.join(DATABASE).exists() && !other.join("keep").exists());
    }
}
