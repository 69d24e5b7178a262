//! The backup format, and the file work of taking and restoring one; nothing of any domain.
//!
//! A backup is a directory:
//!
//! ```text
//! PATH/manifest.json      what it holds: format, versions, when, which installation, counts,
//!                         every file with its size, mode and SHA-256, every directory's mode
//! PATH/data/dtaas.redb    the database as of one read transaction
//! PATH/data/...           the files that transaction refers to, at their data-directory paths
//! ```
//!
//! Everything in it is the invoking user's alone (directories 0700, files 0600); the modes the
//! files had in the data directory are in the manifest and come back on restore. A backup is
//! written next to PATH and renamed into place, so PATH is a whole backup or nothing.
//!
//! Taking one has two sides: whoever holds the database (the server, or `dtaas admin` on a
//! stopped one) stages a snapshot in the data directory (`domains::backup`: the database copy,
//! hard links to the files, and an [`Inventory`] of them), and the command line copies the
//! staged snapshot out with [`write_backup`], as the user who asked, to wherever that user may
//! write. Restoring checks every checksum ([`verify`]) before it writes anything, unpacks into
//! a directory next to the data directory ([`unpack`]) and puts that in place with a rename
//! ([`install`]).

use super::clock::Timestamp;
use super::id::Id;
use super::secrets::hex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// `format` in every manifest.
pub const FORMAT: &str = "dtaas-backup";
/// The layout of a backup this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
pub const MANIFEST_FILE: &str = "manifest.json";
/// The directory of a backup (and of a staged snapshot) that mirrors the data directory.
pub const DATA: &str = "data";
/// The inventory of a staged snapshot, next to its `data/`.
pub const INVENTORY_FILE: &str = "inventory.json";
/// The database's file name inside `data/` (as in a data directory).
pub const DATABASE: &str = super::store::DB_FILE;

/// Counts of what a backup holds (users, jobs, results, blobs, ...), by name.
pub type Counts = BTreeMap<String, u64>;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "{} exists and is not empty: choose a new path for the backup (it is never written over)",
        .0.display()
    )]
    DestinationNotEmpty(PathBuf),
    #[error(
        "{} is inside the data directory {}: a backup there is lost with it; choose a place \
         outside",
        .dest.display(), .data_dir.display()
    )]
    InsideDataDir { dest: PathBuf, data_dir: PathBuf },
    #[error(
        "the data directory {} is not empty: restoring replaces what is in it; stop the server, \
         take a backup of it if it matters, and run the restore again with --force (the old \
         contents are kept next to it)",
        .0.display()
    )]
    DataDirNotEmpty(PathBuf),
    #[error("{} is not a backup: {reason}", .path.display())]
    NotABackup { path: PathBuf, reason: String },
    #[error(
        "the backup at {} is damaged, nothing was restored: {}",
        .path.display(), summarize(.problems)
    )]
    Damaged {
        path: PathBuf,
        problems: Vec<String>,
    },
    #[error(
        "the backup was written by dtaas {dtaas_version} with database schema {found}, newer \
         than this dtaas understands ({supported}); restore it with that version or later"
    )]
    NewerSchema {
        dtaas_version: String,
        found: u64,
        supported: u64,
    },
    #[error("{what} {}: {source}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

fn summarize(problems: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = problems
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if problems.len() > SHOWN {
        text.push_str(&format!(" (and {} more)", problems.len() - SHOWN));
    }
    text
}

/// An I/O error with what was being done and to which path.
pub fn io_error(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.to_owned();
    move |source| BackupError::Io { what, path, source }
}

/// A file mode's permission bits, written in octal (`"0644"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

impl Serialize for Mode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:04o}", self.0 & 0o777))
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Mode, D::Error> {
        let text = String::deserialize(d)?;
        u32::from_str_radix(&text, 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .map(Mode)
            .ok_or_else(|| serde::de::Error::custom(format!("not a file mode: {text:?}")))
    }
}

/// A file of a staged snapshot or of a backup, by its path in the data directory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    /// Relative to the data directory, `/`-separated.
    pub path: String,
    pub size: u64,
    /// Its mode in the data directory.
    pub mode: Mode,
    /// In a backup: the file's SHA-256. In an inventory: the SHA-256 its content must have
    /// (content-addressed files), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// A directory of the data directory that holds files of the backup, with its mode.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DirEntry {
    pub path: String,
    pub mode: Mode,
}

/// A file the database refers to that could not be put in the backup, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Missing {
    pub path: String,
    pub reason: String,
}

/// What a staged snapshot holds (written by the side that holds the database).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Inventory {
    pub created_at: Timestamp,
    pub installation: String,
    pub schema_version: u64,
    pub counts: Counts,
    pub files: Vec<FileEntry>,
    pub dirs: Vec<DirEntry>,
    #[serde(default)]
    pub missing: Vec<Missing>,
}

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    /// The dtaas that wrote it.
    pub dtaas_version: String,
    /// The database's schema version (`core::store::SCHEMA_VERSION` of the server).
    pub schema_version: u64,
    pub created_at: Timestamp,
    /// The installation id: a restored server is the same installation.
    pub installation: String,
    pub counts: Counts,
    /// Every file, the database first; each with its SHA-256.
    pub files: Vec<FileEntry>,
    pub dirs: Vec<DirEntry>,
    #[serde(default)]
    pub missing: Vec<Missing>,
}

impl Manifest {
    /// The bytes of all files.
    pub fn total_bytes(&self) -> u64 {
        self.files
            .iter()
            .map(|f| f.size)
            .fold(0, u64::saturating_add)
    }
}

/// What the database refers to, for a snapshot: a file of the data directory, or content the
/// database itself holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// Relative to the data directory.
    pub path: PathBuf,
    pub content: Content,
    /// What the database says about the file, compared with a later transaction: a file whose
    /// fingerprint changed may have been removed or replaced after the snapshot.
    pub fingerprint: String,
    /// What it is counted as in the backup's counts when it is in it (`results`, `blobs`, ...).
    pub kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// The file in the data directory. `required`: its absence is damage, not a file that was
    /// never made (a result of a job that left none). `sha256`: the digest its content has
    /// (content-addressed blobs).
    File {
        required: bool,
        sha256: Option<String>,
    },
    /// Written from the database's own record, with this mode.
    Bytes { bytes: Vec<u8>, mode: u32 },
}

/// A path of a manifest as a relative path that stays inside the directory it is joined to.
pub fn safe_relative(path: &str) -> Result<PathBuf, String> {
    let p = Path::new(path);
    if path.is_empty() || path.contains('\0') {
        return Err(format!("bad path {path:?}"));
    }
    if !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(format!("path {path:?} leaves the data directory"));
    }
    // One spelling per file: no `.`, no doubled or trailing `/`.
    let canonical: PathBuf = p.components().collect();
    if canonical.as_os_str() != p.as_os_str() {
        return Err(format!("path {path:?} is not in its plain form"));
    }
    Ok(canonical)
}

/// A relative path as a manifest writes it.
pub fn manifest_path(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Refuses a backup destination that exists and is not an empty directory, or that is inside
/// `data_dir`.
pub fn check_destination(dest: &Path, data_dir: &Path) -> Result<(), BackupError> {
    let data = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    // The destination may not exist yet: its nearest existing ancestor decides where it is.
    let mut probe = dest.to_path_buf();
    let mut rest = Vec::new();
    let resolved = loop {
        match std::fs::canonicalize(&probe) {
            Ok(p) => break rest.iter().rev().fold(p, |acc: PathBuf, c| acc.join(c)),
            Err(_) => match (probe.parent(), probe.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_owned());
                    probe = parent.to_path_buf();
                }
                _ => break dest.to_path_buf(),
            },
        }
    };
    if resolved.starts_with(&data) {
        return Err(BackupError::InsideDataDir {
            dest: dest.to_owned(),
            data_dir: data,
        });
    }
    if !is_absent_or_empty_dir(dest)? {
        return Err(BackupError::DestinationNotEmpty(dest.to_owned()));
    }
    Ok(())
}

/// Whether `path` does not exist or is an empty directory (not a file, not a link).
pub fn is_absent_or_empty_dir(path: &Path) -> Result<bool, BackupError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(io_error("cannot read", path)(e)),
        Ok(m) if m.is_dir() => Ok(std::fs::read_dir(path)
            .map_err(io_error("cannot read", path))?
            .next()
            .is_none()),
        Ok(_) => Ok(false),
    }
}

/// A new directory next to `path` (same file system, so it can be renamed onto it), mode 0700.
fn sibling_dir(path: &Path, what: &str) -> Result<PathBuf, BackupError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| BackupError::Other(format!("{} names no directory", path.display())))?;
    std::fs::create_dir_all(&parent).map_err(io_error("cannot create", &parent))?;
    let dir = parent.join(format!(
        ".{name}.{what}-{}-{}",
        std::process::id(),
        Id::new()
    ));
    make_private_dir(&dir)?;
    Ok(dir)
}

fn make_private_dir(dir: &Path) -> Result<(), BackupError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_error("cannot create", dir))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), BackupError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io_error("cannot set the mode of", path))
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_error("cannot sync", dir))
}

/// Copies `from` to a new file `to` with `mode`, fsynced; returns its size and SHA-256.
fn copy_hashed(from: &Path, to: &Path, mode: u32) -> Result<(u64, String), BackupError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut input = std::fs::File::open(from).map_err(io_error("cannot read", from))?;
    let mut output = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(to)
        .map_err(io_error("cannot create", to))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = input
            .read(&mut buf)
            .map_err(io_error("cannot read", from))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        output
            .write_all(&buf[..n])
            .map_err(io_error("cannot write", to))?;
        size += n as u64;
    }
    output.sync_all().map_err(io_error("cannot write", to))?;
    // The mode given to open() is filtered by the umask; the one asked for is the one kept.
    set_mode(to, mode)?;
    Ok((size, hex(&hasher.finalize())))
}

/// The SHA-256 and size of a file.
fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut input = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex(&hasher.finalize())))
}

/// Removes a directory tree when dropped, unless disarmed.
struct Partial(Option<PathBuf>);

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Copies a staged snapshot (`staged/data/...` as its inventory lists) to a new backup at
/// `dest`, hashing every file as it goes: the backup is written next to `dest` and renamed
/// into place. A file whose content does not match the digest it must have is left out and
/// reported in the manifest's `missing`.
pub fn write_backup(
    staged: &Path,
    inventory: &Inventory,
    dest: &Path,
) -> Result<Manifest, BackupError> {
    if !is_absent_or_empty_dir(dest)? {
        return Err(BackupError::DestinationNotEmpty(dest.to_owned()));
    }
    let partial_dir = sibling_dir(dest, "partial")?;
    let partial = Partial(Some(partial_dir.clone()));
    let data = partial_dir.join(DATA);
    make_private_dir(&data)?;
    let mut files = Vec::with_capacity(inventory.files.len());
    let mut missing = inventory.missing.clone();
    for entry in &inventory.files {
        let rel = safe_relative(&entry.path).map_err(BackupError::Other)?;
        let to = data.join(&rel);
        if let Some(parent) = to.parent() {
            make_private_dir(parent)?;
        }
        let (size, sha256) = copy_hashed(&staged.join(DATA).join(&rel), &to, 0o600)?;
        if entry.sha256.as_ref().is_some_and(|want| *want != sha256) {
            std::fs::remove_file(&to).map_err(io_error("cannot remove", &to))?;
            missing.push(Missing {
                path: entry.path.clone(),
                reason: "damaged in the data directory: its content does not match its digest"
                    .into(),
            });
            continue;
        }
        files.push(FileEntry {
            path: entry.path.clone(),
            size,
            mode: entry.mode,
            sha256: Some(sha256),
        });
    }
    // The database first: what a reader of the manifest looks for.
    files.sort_by_key(|f| (f.path != DATABASE, f.path.clone()));
    let manifest = Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        dtaas_version: env!("CARGO_PKG_VERSION").into(),
        schema_version: inventory.schema_version,
        created_at: inventory.created_at,
        installation: inventory.installation.clone(),
        counts: inventory.counts.clone(),
        files,
        dirs: inventory.dirs.clone(),
        missing,
    };
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| BackupError::Other(format!("cannot write the manifest: {e}")))?;
    let manifest_path = partial_dir.join(MANIFEST_FILE);
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&manifest_path)
            .map_err(io_error("cannot create", &manifest_path))?;
        f.write_all(&json)
            .and_then(|()| f.sync_all())
            .map_err(io_error("cannot write", &manifest_path))?;
    }
    sync_tree(&partial_dir)?;
    std::fs::rename(&partial_dir, dest).map_err(io_error("cannot rename the backup to", dest))?;
    let mut partial = partial;
    partial.0 = None;
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(manifest)
}

/// Fsyncs every directory of a tree (the files were synced as they were written).
fn sync_tree(root: &Path) -> Result<(), BackupError> {
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io_error("cannot read", &dir))? {
            let entry = entry.map_err(io_error("cannot read", &dir))?;
            if entry
                .file_type()
                .map_err(io_error("cannot read", &entry.path()))?
                .is_dir()
            {
                pending.push(entry.path());
            }
        }
        sync_dir(&dir)?;
    }
    Ok(())
}

/// Reads and checks a backup's manifest.
pub fn read_manifest(backup: &Path) -> Result<Manifest, BackupError> {
    let not_a_backup = |reason: String| BackupError::NotABackup {
        path: backup.to_owned(),
        reason,
    };
    let path = backup.join(MANIFEST_FILE);
    let bytes = std::fs::read(&path).map_err(|e| {
        not_a_backup(format!(
            "cannot read {}: {e}",
            path.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        ))
    })?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| not_a_backup(format!("{MANIFEST_FILE} is not JSON: {e}")))?;
    if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(not_a_backup(format!(
            "{MANIFEST_FILE} is not a manifest of a dtaas backup"
        )));
    }
    let version = value.get("format_version").and_then(|v| v.as_u64());
    if version != Some(u64::from(FORMAT_VERSION)) {
        return Err(not_a_backup(format!(
            "its format version is {}, and this dtaas reads version {FORMAT_VERSION}",
            version.map_or_else(|| "missing".into(), |v| v.to_string())
        )));
    }
    let manifest: Manifest =
        serde_json::from_value(value).map_err(|e| not_a_backup(format!("{MANIFEST_FILE}: {e}")))?;
    let mut seen = BTreeSet::new();
    for f in &manifest.files {
        safe_relative(&f.path).map_err(not_a_backup)?;
        if !seen.insert(f.path.as_str()) {
            return Err(not_a_backup(format!("{} is listed twice", f.path)));
        }
        if f.sha256.is_none() {
            return Err(not_a_backup(format!("{} has no checksum", f.path)));
        }
    }
    for d in &manifest.dirs {
        safe_relative(&d.path).map_err(not_a_backup)?;
    }
    if !seen.contains(DATABASE) {
        return Err(not_a_backup(format!("it holds no {DATABASE}")));
    }
    Ok(manifest)
}

/// Checks every file of a backup against its manifest: present, a plain file, its size and its
/// SHA-256.
pub fn verify(backup: &Path, manifest: &Manifest) -> Result<(), BackupError> {
    let mut problems = Vec::new();
    for f in &manifest.files {
        let Ok(rel) = safe_relative(&f.path) else {
            problems.push(format!("{}: bad path", f.path));
            continue;
        };
        let path = backup.join(DATA).join(rel);
        match std::fs::symlink_metadata(&path) {
            Err(e) => problems.push(format!("{}: {e}", f.path)),
            Ok(m) if !m.is_file() => problems.push(format!("{}: not a plain file", f.path)),
            Ok(m) if m.len() != f.size => problems.push(format!(
                "{}: {} bytes, the manifest says {}",
                f.path,
                m.len(),
                f.size
            )),
            Ok(_) => match hash_file(&path) {
                Err(e) => problems.push(format!("{}: {e}", f.path)),
                Ok((_, sha256)) if Some(&sha256) != f.sha256.as_ref() => {
                    problems.push(format!("{}: its SHA-256 does not match", f.path))
                }
                Ok(_) => {}
            },
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(BackupError::Damaged {
            path: backup.to_owned(),
            problems,
        })
    }
}

/// Unpacks a (verified) backup into a new directory next to `target`, with the modes of the
/// manifest; returns that directory. Each file is hashed again as it is copied.
pub fn unpack(backup: &Path, manifest: &Manifest, target: &Path) -> Result<PathBuf, BackupError> {
    let staging = sibling_dir(target, "restoring")?;
    let guard = Partial(Some(staging.clone()));
    let mut damaged = Vec::new();
    for f in &manifest.files {
        let rel = safe_relative(&f.path).map_err(BackupError::Other)?;
        let to = staging.join(&rel);
        if let Some(parent) = to.parent() {
            make_private_dir(parent)?;
        }
        let (size, sha256) = copy_hashed(&backup.join(DATA).join(&rel), &to, f.mode.0)?;
        if size != f.size || Some(&sha256) != f.sha256.as_ref() {
            damaged.push(format!("{}: changed while it was restored", f.path));
        }
    }
    if !damaged.is_empty() {
        return Err(BackupError::Damaged {
            path: backup.to_owned(),
            problems: damaged,
        });
    }
    // Directory modes last (deepest first), so that a read-only one does not stop the copy.
    let mut dirs: Vec<&DirEntry> = manifest.dirs.iter().collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(Path::new(&d.path).components().count()));
    for d in dirs {
        let path = staging.join(safe_relative(&d.path).map_err(BackupError::Other)?);
        make_private_dir(&path)?;
        set_mode(&path, d.mode.0)?;
    }
    let mut guard = guard;
    guard.0 = None;
    Ok(staging)
}

/// Gives every file and directory of a tree to `uid`:`gid` (a restore run as root, for a server
/// that runs as another user).
pub fn chown_tree(root: &Path, uid: u32, gid: u32) -> Result<(), BackupError> {
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
            .map_err(io_error("cannot change the owner of", &path))?;
        let meta = std::fs::symlink_metadata(&path).map_err(io_error("cannot read", &path))?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(io_error("cannot read", &path))? {
                pending.push(entry.map_err(io_error("cannot read", &path))?.path());
            }
        }
    }
    Ok(())
}

/// The owner (uid, gid) of a path, if it exists.
pub fn owner_of(path: &Path) -> Option<(u32, u32)> {
    std::fs::metadata(path).ok().map(|m| (m.uid(), m.gid()))
}

/// Puts an unpacked data directory in place of `target`: a rename when `target` does not exist
/// or is empty; with `force`, an atomic exchange with the old one, which is then kept next to
/// it as `<target>.replaced-<time>` (returned).
pub fn install(
    staging: &Path,
    target: &Path,
    force: bool,
    now: Timestamp,
) -> Result<Option<PathBuf>, BackupError> {
    let mount_hint = |e: std::io::Error| {
        if matches!(e.raw_os_error(), Some(libc::EXDEV) | Some(libc::EBUSY)) {
            BackupError::Other(format!(
                "cannot replace {}: it is a mount point (or on another file system than its \
                 parent directory); restore into a directory inside it and point data_dir there",
                target.display()
            ))
        } else {
            io_error("cannot put the restored data in place at", target)(e)
        }
    };
    if is_absent_or_empty_dir(target)? {
        std::fs::rename(staging, target).map_err(mount_hint)?;
        sync_parent(target)?;
        return Ok(None);
    }
    if !force {
        return Err(BackupError::DataDirNotEmpty(target.to_owned()));
    }
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        staging,
        rustix::fs::CWD,
        target,
        rustix::fs::RenameFlags::EXCHANGE,
    )
    .map_err(|e| mount_hint(e.into()))?;
    // `staging` now holds the old contents.
    let aside = PathBuf::from(format!(
        "{}.replaced-{}",
        target.display(),
        now.format("%Y%m%dT%H%M%SZ")
    ));
    std::fs::rename(staging, &aside).map_err(io_error("cannot rename the old data to", &aside))?;
    sync_parent(target)?;
    Ok(Some(aside))
}

fn sync_parent(path: &Path) -> Result<(), BackupError> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => sync_dir(Path::new(".")),
    }
}

/// Removes a directory an unpack left (after a failure).
pub fn discard(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_paths_stay_inside() {
        assert!(safe_relative("registry/blobs/sha256/ab/abcd").is_ok());
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../b",
            "a/./b",
            "a//b",
            "a/",
            "a\0b",
        ] {
            assert!(safe_relative(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn modes_are_octal_and_only_permission_bits() {
        let m: Mode = serde_json::from_str("\"0644\"").unwrap();
        assert_eq!(m, Mode(0o644));
        assert_eq!(serde_json::to_string(&Mode(0o700)).unwrap(), "\"0700\"");
        assert!(
            serde_json::from_str::<Mode>("\"4755\"").is_err(),
            "no setuid"
        );
        assert!(serde_json::from_str::<Mode>("\"9\"").is_err());
    }

    #[test]
    fn a_destination_is_new_or_empty_and_outside_the_data_directory() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        std::fs::create_dir(&data).unwrap();
        assert!(check_destination(&root.path().join("new"), &data).is_ok());
        std::fs::create_dir(root.path().join("empty")).unwrap();
        assert!(check_destination(&root.path().join("empty"), &data).is_ok());
        std::fs::write(root.path().join("file"), "x").unwrap();
        assert!(matches!(
            check_destination(&root.path().join("file"), &data),
            Err(BackupError::DestinationNotEmpty(_))
        ));
        assert!(matches!(
            check_destination(&data.join("backups/today"), &data),
            Err(BackupError::InsideDataDir { .. })
        ));
        assert!(matches!(
            check_destination(&root.path().join("data/../data/x"), &data),
            Err(BackupError::InsideDataDir { .. })
        ));
    }

    fn inventory(files: Vec<FileEntry>) -> Inventory {
        Inventory {
            created_at: chrono::Utc::now(),
            installation: "i".into(),
            schema_version: 2,
            counts: Counts::new(),
            files,
            dirs: vec![DirEntry {
                path: "jobs".into(),
                mode: Mode(0o755),
            }],
            missing: Vec::new(),
        }
    }

    fn entry(path: &str, mode: u32, sha256: Option<String>) -> FileEntry {
        FileEntry {
            path: path.into(),
            size: 0,
            mode: Mode(mode),
            sha256,
        }
    }

    /// Staged files are copied private, hashed, and a file whose content does not match its
    /// digest is reported missing instead of copied; a damaged backup is found before anything
    /// is unpacked; the unpacked files get their modes back.
    #[test]
    fn write_verify_unpack() {
        let root = tempfile::tempdir().unwrap();
        let staged = root.path().join("staged");
        std::fs::create_dir_all(staged.join("data/jobs")).unwrap();
        std::fs::write(staged.join("data").join(DATABASE), "db").unwrap();
        std::fs::write(staged.join("data/jobs/r.zip"), "result").unwrap();
        std::fs::write(staged.join("data/jobs/blob"), "not what it claims").unwrap();
        let inv = inventory(vec![
            entry(DATABASE, 0o600, None),
            entry("jobs/r.zip", 0o644, None),
            entry("jobs/blob", 0o644, Some("00".repeat(32))),
        ]);
        let dest = root.path().join("backup");
        let manifest = write_backup(&staged, &inv, &dest).unwrap();
        assert_eq!(manifest.files.len(), 2);
        assert_eq!(manifest.files[0].path, DATABASE);
        assert_eq!(manifest.missing.len(), 1);
        assert_eq!(manifest.missing[0].path, "jobs/blob");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dest), 0o700);
        assert_eq!(mode(&dest.join(MANIFEST_FILE)), 0o600);
        assert_eq!(mode(&dest.join("data/jobs/r.zip")), 0o600);
        assert!(matches!(
            write_backup(&staged, &inv, &dest),
            Err(BackupError::DestinationNotEmpty(_))
        ));

        let read = read_manifest(&dest).unwrap();
        verify(&dest, &read).unwrap();
        let target = root.path().join("restored");
        let unpacked = unpack(&dest, &read, &target).unwrap();
        assert_eq!(
            install(&unpacked, &target, false, chrono::Utc::now()).unwrap(),
            None
        );
        assert_eq!(std::fs::read(target.join("jobs/r.zip")).unwrap(), b"result");
        assert_eq!(mode(&target.join("jobs/r.zip")), 0o644);
        assert_eq!(mode(&target.join("jobs")), 0o755);

        // Damage is found, and named.
        std::fs::write(dest.join("data/jobs/r.zip"), "resulT").unwrap();
        match verify(&dest, &read) {
            Err(BackupError::Damaged { problems, .. }) => {
                assert_eq!(problems.len(), 1);
                assert!(problems[0].contains("jobs/r.zip"), "{problems:?}");
            }
            other => panic!("{other:?}"),
        }
        std::fs::remove_file(dest.join("data/jobs/r.zip")).unwrap();
        assert!(verify(&dest, &read).is_err());
    }

    #[test]
    fn a_manifest_of_another_format_or_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            read_manifest(dir.path()),
            Err(BackupError::NotABackup { .. })
        ));
        let write = |v: serde_json::Value| {
            std::fs::write(dir.path().join(MANIFEST_FILE), v.to_string()).unwrap()
        };
        write(serde_json::json!({"format": "tar"}));
        assert!(read_manifest(dir.path()).is_err());
        write(serde_json::json!({"format": FORMAT, "format_version": 99}));
        let e = read_manifest(dir.path()).unwrap_err().to_string();
        assert!(e.contains("format version is 99"), "{e}");
        let mut m = serde_json::json!({
            "format": FORMAT, "format_version": FORMAT_VERSION, "dtaas_version": "0",
            "schema_version": 2, "created_at": "2025-01-01T00:00:00Z", "installation": "i",
            "counts": {}, "dirs": [],
            "files": [{"path": "../../etc/passwd", "size": 1, "mode": "0644", "sha256": "00"}],
        });
        write(m.clone());
        let e = read_manifest(dir.path()).unwrap_err().to_string();
        assert!(e.contains("leaves the data directory"), "{e}");
        m["files"] =
            serde_json::json!([{"path": DATABASE, "size": 1, "mode": "0600", "sha256": "00"}]);
        write(m);
        assert!(read_manifest(dir.path()).is_ok());
    }

    /// `--force` exchanges the directories and keeps the old one aside; without it a non-empty
    /// directory is refused.
    #[test]
    fn install_replaces_only_when_forced_and_keeps_the_old_data() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("data");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("old"), "old").unwrap();
        let staging = root.path().join("new");
        std::fs::create_dir(&staging).unwrap();
        std::fs::write(staging.join("new"), "new").unwrap();
        let now = chrono::Utc::now();
        assert!(matches!(
            install(&staging, &target, false, now),
            Err(BackupError::DataDirNotEmpty(_))
        ));
        let aside = install(&staging, &target, true, now).unwrap().unwrap();
        assert!(target.join("new").exists() && !target.join("old").exists());
        assert!(aside.join("old").exists());
        assert!(!staging.exists());
    }
}
