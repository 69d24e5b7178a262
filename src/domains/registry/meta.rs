//! The registry's records in redb: repositories (objects of the shared model), blobs, which
//! repository holds which blob, manifests (their exact bytes), tags, referrers and upload
//! sessions. Blob contents live in files (see `blobs`).

use crate::core::clock::Timestamp;
use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::core::page::{Page, PageRequest};
use crate::core::store::{Opening, Store, StoreError, decode, encode};
use crate::domains::accounts;
use crate::domains::authz::{self, Acl, Capability, Kind, ObjectMeta, Principal};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

const REPOS: TableDefinition<&str, &[u8]> = TableDefinition::new("registry_repos");
const BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("registry_blobs");
/// (repository, digest) -> when it was linked (unix seconds).
const REPO_BLOBS: TableDefinition<(&str, &str), i64> = TableDefinition::new("registry_repo_blobs");
/// (repository, manifest digest) -> `Manifest`
const MANIFESTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("registry_manifests");
/// manifest digest -> its bytes, exactly as pushed
const MANIFEST_BYTES: TableDefinition<&str, &[u8]> =
    TableDefinition::new("registry_manifest_bytes");
/// (repository, tag) -> manifest digest
const TAGS: TableDefinition<(&str, &str), &str> = TableDefinition::new("registry_tags");
/// (repository, subject digest, referrer digest) -> ()
const REFERRERS: TableDefinition<(&str, &str, &str), ()> =
    TableDefinition::new("registry_referrers");
const UPLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("registry_uploads");
/// Repository id -> the same `Repo` as in `registry_repos` (a repository's record never changes
/// once made), so that lists read repositories by id from the list index.
const REPO_IDS: TableDefinition<u128, &[u8]> = TableDefinition::new("registry_repo_ids");

pub(crate) fn init_tables(txn: &WriteTransaction, _: Opening) -> Result<(), StoreError> {
    index_repo_ids(txn)?;
    txn.open_table(REPOS)?;
    txn.open_table(BLOBS)?;
    txn.open_table(REPO_BLOBS)?;
    txn.open_table(MANIFESTS)?;
    txn.open_table(MANIFEST_BYTES)?;
    txn.open_table(TAGS)?;
    txn.open_table(REFERRERS)?;
    txn.open_table(UPLOADS)?;
    Ok(())
}

/// Fills the id index of a database made before it existed.
fn index_repo_ids(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut ids = txn.open_table(REPO_IDS)?;
    if ids.first()?.is_some() {
        return Ok(());
    }
    for entry in txn.open_table(REPOS)?.iter()? {
        let (_, v) = entry?;
        let repo: Repo = decode(v.value())?;
        ids.insert(repo.id.0, v.value())?;
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Repo {
    pub id: Id,
    pub name: String,
    pub owner: Id,
    pub created: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlobRecord {
    pub size: u64,
    /// Unix seconds.
    pub created: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    /// Blobs it references (config, layers).
    #[serde(default)]
    pub blobs: Vec<String>,
    /// Manifests it references (an index's entries).
    #[serde(default)]
    pub manifests: Vec<String>,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub annotations: Option<serde_json::Value>,
    pub created: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Upload {
    pub id: String,
    pub repo: String,
    pub principal: Id,
    /// Unix seconds.
    pub created: i64,
}

/// Every key of a table whose first tuple element is `repo`.
fn repo_range(repo: &str) -> (String, String) {
    (repo.to_owned(), format!("{repo}\u{0}"))
}

pub fn repo(store: &Store, name: &str) -> Result<Option<Repo>> {
    let txn = store.read()?;
    match txn.open_table(REPOS)?.get(name)? {
        Some(v) => Ok(Some(decode(v.value())?)),
        None => Ok(None),
    }
}

/// What a principal may do on a repository; `None` when it does not exist or is invisible.
pub fn repo_caps(
    store: &Store,
    principal: &Principal,
    name: &str,
) -> Result<Option<(Repo, authz::Caps)>> {
    let Some(repo) = repo(store, name)? else {
        return Ok(None);
    };
    let txn = store.read()?;
    let acl = Acl::read(&txn)?;
    let Some(meta) = acl.object(repo.id)? else {
        return Ok(None);
    };
    let caps = acl.caps(principal, &meta)?;
    Ok((!caps.is_empty()).then_some((repo, caps)))
}

/// Creates a repository owned by `owner` (the first pusher).
pub fn create_repo(store: &Store, owner: Id, name: &str, now: Timestamp) -> Result<Repo> {
    let txn = store.write()?;
    let existing: Option<Repo> = match txn.open_table(REPOS)?.get(name)? {
        Some(v) => Some(decode(v.value())?),
        None => None,
    };
    if let Some(r) = existing {
        return Ok(r);
    }
    let repo = Repo {
        id: Id::new(),
        name: name.to_owned(),
        owner,
        created: now,
    };
    let record = encode(&repo)?;
    txn.open_table(REPOS)?.insert(name, record.as_slice())?;
    txn.open_table(REPO_IDS)?
        .insert(repo.id.0, record.as_slice())?;
    authz::create_object(
        &txn,
        &ObjectMeta {
            id: repo.id,
            kind: Kind::Repository,
            owner: Some(owner),
            created: now,
        },
    )?;
    txn.commit()?;
    Ok(repo)
}

/// Repositories the principal may read, sorted by name.
pub fn catalog(store: &Store, principal: &Principal) -> Result<Vec<String>> {
    let txn = store.read()?;
    let acl = Acl::read(&txn)?;
    let mut out = Vec::new();
    for entry in txn.open_table(REPOS)?.iter()? {
        let (k, v) = entry?;
        let repo: Repo = decode(v.value())?;
        if let Some(meta) = acl.object(repo.id)?
            && acl.caps(principal, &meta)?.contains(Capability::Read)
        {
            out.push(k.value().to_owned());
        }
    }
    Ok(out)
}

/// A page of the repositories the caller may read, oldest first, through the list index; with
/// `name`, only those whose name holds it (ignoring case), examining at most
/// `authz::SCAN_BUDGET` readable repositories per page.
pub fn list_repositories(
    store: &Store,
    caller: &Principal,
    name: Option<&str>,
    page: PageRequest,
) -> Result<Page<Repo>> {
    match name {
        None => authz::readable_page(store, REPO_IDS, caller, Kind::Repository, &[], page),
        Some(name) => {
            let needle = name.to_lowercase();
            authz::readable_page_where(
                store,
                REPO_IDS,
                caller,
                Kind::Repository,
                &[],
                page,
                |r: &Repo| r.name.contains(&needle),
            )
        }
    }
}

/// A repository by id that the caller may use with `cap`; 404 "Repository not found"
/// otherwise.
pub fn repository_for(store: &Store, caller: &Principal, id: Id, cap: Capability) -> Result<Repo> {
    let txn = store.read()?;
    Acl::read(&txn)?.check(caller, id, Kind::Repository, cap)?;
    match txn.open_table(REPO_IDS)?.get(id.0)? {
        Some(v) => Ok(decode(v.value())?),
        None => Err(Error::not_found("Repository not found")),
    }
}

/// What a repository holds, from the registry's records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepoUsage {
    /// Bytes of the distinct blobs (layers, configs) it holds; a blob shared with another
    /// repository counts in each.
    pub bytes: u64,
    pub blobs: u64,
    pub manifests: u64,
    pub tags: u64,
}

/// Counts what `repo` holds: O(its blobs, manifests and tags).
pub fn repository_usage(store: &Store, repo: &str) -> Result<RepoUsage> {
    let txn = store.read()?;
    let (lo, hi) = repo_range(repo);
    let range = (lo.as_str(), "")..(hi.as_str(), "");
    let mut usage = RepoUsage::default();
    let blobs = txn.open_table(BLOBS)?;
    for entry in txn.open_table(REPO_BLOBS)?.range(range.clone())? {
        let (k, _) = entry?;
        usage.blobs += 1;
        if let Some(v) = blobs.get(k.value().1)? {
            let record: BlobRecord = decode(v.value())?;
            usage.bytes = usage.bytes.saturating_add(record.size);
        }
    }
    for entry in txn.open_table(MANIFESTS)?.range(range.clone())? {
        entry?;
        usage.manifests += 1;
    }
    for entry in txn.open_table(TAGS)?.range(range)? {
        entry?;
        usage.tags += 1;
    }
    Ok(usage)
}

/// A tag of a repository with what it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagInfo {
    pub tag: String,
    pub digest: String,
    pub media_type: String,
    /// The manifest's bytes and every blob it references (an index: each of its manifests and
    /// their blobs).
    pub size: u64,
    /// When the manifest was pushed (unix seconds).
    pub pushed: i64,
}

/// The tags of `repo` after `after` (in name order), at most `limit`, and whether more follow.
pub fn tags_page(
    store: &Store,
    repo: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<(Vec<TagInfo>, bool)> {
    use std::ops::Bound;
    let txn = store.read()?;
    let (_, hi) = repo_range(repo);
    let start = match after {
        Some(tag) => Bound::Excluded((repo, tag)),
        None => Bound::Included((repo, "")),
    };
    let tags = txn.open_table(TAGS)?;
    let manifests = txn.open_table(MANIFESTS)?;
    let blobs = txn.open_table(BLOBS)?;
    let blob_size = |digest: &str| -> Result<u64> {
        Ok(match blobs.get(digest)? {
            Some(v) => decode::<BlobRecord>(v.value())?.size,
            None => 0,
        })
    };
    // A manifest's own bytes and its blobs'.
    let own_size = |m: &Manifest| -> Result<u64> {
        let mut size = m.size;
        for b in &m.blobs {
            size = size.saturating_add(blob_size(b)?);
        }
        Ok(size)
    };
    let mut out = Vec::new();
    for entry in tags.range::<(&str, &str)>((start, Bound::Excluded((hi.as_str(), ""))))? {
        let (k, v) = entry?;
        if out.len() == limit {
            return Ok((out, true));
        }
        let digest = v.value().to_owned();
        let Some(m) = manifests.get((repo, digest.as_str()))? else {
            continue;
        };
        let m: Manifest = decode(m.value())?;
        let mut size = own_size(&m)?;
        for child in &m.manifests {
            if let Some(c) = manifests.get((repo, child.as_str()))? {
                size = size.saturating_add(own_size(&decode::<Manifest>(c.value())?)?);
            }
        }
        out.push(TagInfo {
            tag: k.value().1.to_owned(),
            digest,
            media_type: m.media_type,
            size,
            pushed: m.created,
        });
    }
    Ok((out, false))
}

/// Deletes a tag of a repository (DELETE on it); the manifest stays, by digest.
pub fn delete_tag(store: &Store, caller: &Principal, id: Id, tag: &str) -> Result<Repo> {
    let repo = repository_for(store, caller, id, Capability::Delete)?;
    if !delete_manifest(store, &repo.name, tag)? {
        return Err(Error::not_found("Tag not found"));
    }
    Ok(repo)
}

/// Deletes a repository (DELETE on it): its tags, manifests, blob links, referrers and upload
/// sessions, and the object with its grants, in one write transaction. Blobs and manifest
/// bytes nothing else uses go at the next collection. Returns the repository and the ids of
/// the upload sessions dropped (their files are the caller's to remove).
pub fn delete_repository(store: &Store, caller: &Principal, id: Id) -> Result<(Repo, Vec<String>)> {
    let txn = store.write()?;
    Acl::write(&txn)?.check(caller, id, Kind::Repository, Capability::Delete)?;
    let repo: Repo = match txn.open_table(REPO_IDS)?.get(id.0)? {
        Some(v) => decode(v.value())?,
        None => return Err(Error::not_found("Repository not found")),
    };
    let name = repo.name.as_str();
    let (lo, hi) = repo_range(name);
    let pairs = (lo.as_str(), "")..(hi.as_str(), "");
    txn.open_table(TAGS)?
        .retain_in(pairs.clone(), |_, _| false)?;
    txn.open_table(MANIFESTS)?
        .retain_in(pairs.clone(), |_, _| false)?;
    txn.open_table(REPO_BLOBS)?.retain_in(pairs, |_, _| false)?;
    txn.open_table(REFERRERS)?
        .retain_in((lo.as_str(), "", "")..(hi.as_str(), "", ""), |_, _| false)?;
    let mut uploads = Vec::new();
    {
        let mut table = txn.open_table(UPLOADS)?;
        for entry in table.iter()? {
            let (k, v) = entry?;
            let upload: Upload = decode(v.value())?;
            if upload.repo == name {
                uploads.push(k.value().to_owned());
            }
        }
        for upload in &uploads {
            table.remove(upload.as_str())?;
        }
    }
    txn.open_table(REPOS)?.remove(name)?;
    txn.open_table(REPO_IDS)?.remove(id.0)?;
    authz::delete_object(&txn, id)?;
    txn.commit()?;
    Ok((repo, uploads))
}

pub fn blob(store: &Store, digest: &str) -> Result<Option<BlobRecord>> {
    let txn = store.read()?;
    match txn.open_table(BLOBS)?.get(digest)? {
        Some(v) => Ok(Some(decode(v.value())?)),
        None => Ok(None),
    }
}

/// A blob, if the repository holds it.
pub fn repo_blob(store: &Store, repo: &str, digest: &str) -> Result<Option<BlobRecord>> {
    let txn = store.read()?;
    if txn.open_table(REPO_BLOBS)?.get((repo, digest))?.is_none() {
        return Ok(None);
    }
    match txn.open_table(BLOBS)?.get(digest)? {
        Some(v) => Ok(Some(decode(v.value())?)),
        None => Ok(None),
    }
}

/// Records a blob whose file is in place and links it to a repository.
pub fn add_blob(store: &Store, repo: &str, digest: &str, size: u64, now: i64) -> Result<()> {
    let txn = store.write()?;
    {
        let mut blobs = txn.open_table(BLOBS)?;
        if blobs.get(digest)?.is_none() {
            blobs.insert(
                digest,
                encode(&BlobRecord { size, created: now })?.as_slice(),
            )?;
        }
    }
    txn.open_table(REPO_BLOBS)?.insert((repo, digest), now)?;
    txn.commit()?;
    Ok(())
}

/// Links an existing blob to another repository (cross-repository mount).
pub fn link_blob(store: &Store, repo: &str, digest: &str, now: i64) -> Result<bool> {
    let txn = store.write()?;
    if txn.open_table(BLOBS)?.get(digest)?.is_none() {
        return Ok(false);
    }
    txn.open_table(REPO_BLOBS)?.insert((repo, digest), now)?;
    txn.commit()?;
    Ok(true)
}

pub fn unlink_blob(store: &Store, repo: &str, digest: &str) -> Result<bool> {
    let txn = store.write()?;
    let removed = txn
        .open_table(REPO_BLOBS)?
        .remove((repo, digest))?
        .is_some();
    txn.commit()?;
    Ok(removed)
}

/// The sizes a manifest declares for what it references: `blobs[i]` for its `blobs[i]`,
/// `manifests[i]` for its `manifests[i]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sizes {
    pub blobs: Vec<u64>,
    pub manifests: Vec<u64>,
}

/// Why a manifest is not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The repository holds no blob or manifest of this digest.
    Unknown(String),
    /// The manifest declares a size for a blob or manifest the repository holds with another.
    Size {
        digest: String,
        declared: u64,
        actual: u64,
    },
}

/// Stores a manifest (and a tag), after checking that the repository holds everything it
/// references, with the sizes `sizes` declares; returns the first reference that fails
/// otherwise.
pub fn put_manifest(
    store: &Store,
    repo: &str,
    manifest: &Manifest,
    sizes: &Sizes,
    bytes: &[u8],
    tag: Option<&str>,
) -> Result<Result<(), Refused>> {
    let wrong_size = |digest: &str, declared: Option<&u64>, actual: u64| {
        declared
            .filter(|declared| **declared != actual)
            .map(|declared| Refused::Size {
                digest: digest.to_owned(),
                declared: *declared,
                actual,
            })
    };
    let txn = store.write()?;
    {
        let links = txn.open_table(REPO_BLOBS)?;
        let records = txn.open_table(BLOBS)?;
        for (i, b) in manifest.blobs.iter().enumerate() {
            if links.get((repo, b.as_str()))?.is_none() {
                return Ok(Err(Refused::Unknown(b.clone())));
            }
            if let Some(record) = records.get(b.as_str())? {
                let record: BlobRecord = decode(record.value())?;
                if let Some(refused) = wrong_size(b, sizes.blobs.get(i), record.size) {
                    return Ok(Err(refused));
                }
            }
        }
        let manifests = txn.open_table(MANIFESTS)?;
        for (i, m) in manifest.manifests.iter().enumerate() {
            let Some(held) = manifests.get((repo, m.as_str()))? else {
                return Ok(Err(Refused::Unknown(m.clone())));
            };
            let held: Manifest = decode(held.value())?;
            if let Some(refused) = wrong_size(m, sizes.manifests.get(i), held.size) {
                return Ok(Err(refused));
            }
        }
    }
    txn.open_table(MANIFESTS)?.insert(
        (repo, manifest.digest.as_str()),
        encode(manifest)?.as_slice(),
    )?;
    txn.open_table(MANIFEST_BYTES)?
        .insert(manifest.digest.as_str(), bytes)?;
    if let Some(tag) = tag {
        txn.open_table(TAGS)?
            .insert((repo, tag), manifest.digest.as_str())?;
    }
    if let Some(subject) = &manifest.subject {
        txn.open_table(REFERRERS)?
            .insert((repo, subject.as_str(), manifest.digest.as_str()), ())?;
    }
    txn.commit()?;
    Ok(Ok(()))
}

/// A tag or a digest to the manifest's digest.
pub fn resolve(store: &Store, repo: &str, reference: &str) -> Result<Option<String>> {
    let txn = store.read()?;
    if reference.contains(':') {
        return Ok(txn
            .open_table(MANIFESTS)?
            .get((repo, reference))?
            .map(|_| reference.to_owned()));
    }
    Ok(txn
        .open_table(TAGS)?
        .get((repo, reference))?
        .map(|v| v.value().to_owned()))
}

pub fn manifest(store: &Store, repo: &str, digest: &str) -> Result<Option<(Manifest, Vec<u8>)>> {
    let txn = store.read()?;
    let Some(m) = txn.open_table(MANIFESTS)?.get((repo, digest))? else {
        return Ok(None);
    };
    let m: Manifest = decode(m.value())?;
    let bytes = txn
        .open_table(MANIFEST_BYTES)?
        .get(digest)?
        .map(|v| v.value().to_vec())
        .ok_or_else(|| Error::internal(format!("manifest {digest} has no bytes")))?;
    Ok(Some((m, bytes)))
}

/// Deletes a manifest by digest (with its tags and referrer entries), or a tag alone.
pub fn delete_manifest(store: &Store, repo: &str, reference: &str) -> Result<bool> {
    let txn = store.write()?;
    if !reference.contains(':') {
        let removed = txn.open_table(TAGS)?.remove((repo, reference))?.is_some();
        txn.commit()?;
        return Ok(removed);
    }
    let manifest: Option<Manifest> = match txn.open_table(MANIFESTS)?.remove((repo, reference))? {
        Some(v) => Some(decode(v.value())?),
        None => None,
    };
    let Some(manifest) = manifest else {
        return Ok(false);
    };
    let (lo, hi) = repo_range(repo);
    {
        let mut tags = txn.open_table(TAGS)?;
        let doomed: Vec<String> = tags
            .range((lo.as_str(), "")..(hi.as_str(), ""))?
            .filter_map(|e| e.ok())
            .filter(|(_, v)| v.value() == reference)
            .map(|(k, _)| k.value().1.to_owned())
            .collect();
        for t in doomed {
            tags.remove((repo, t.as_str()))?;
        }
    }
    if let Some(subject) = &manifest.subject {
        txn.open_table(REFERRERS)?
            .remove((repo, subject.as_str(), reference))?;
    }
    txn.commit()?;
    Ok(true)
}

/// Tags of a repository, sorted.
pub fn tags(store: &Store, repo: &str) -> Result<Vec<String>> {
    let txn = store.read()?;
    let (lo, hi) = repo_range(repo);
    let mut out = Vec::new();
    for entry in txn
        .open_table(TAGS)?
        .range((lo.as_str(), "")..(hi.as_str(), ""))?
    {
        let (k, _) = entry?;
        out.push(k.value().1.to_owned());
    }
    Ok(out)
}

/// Manifests of a repository whose subject is `subject`.
pub fn referrers(store: &Store, repo: &str, subject: &str) -> Result<Vec<Manifest>> {
    let txn = store.read()?;
    let refs = txn.open_table(REFERRERS)?;
    let manifests = txn.open_table(MANIFESTS)?;
    let mut out = Vec::new();
    let next = format!("{subject}\u{0}");
    for entry in refs.range((repo, subject, "")..(repo, next.as_str(), ""))? {
        let (k, _) = entry?;
        let digest = k.value().2;
        if let Some(m) = manifests.get((repo, digest))? {
            out.push(decode(m.value())?);
        }
    }
    Ok(out)
}

pub fn create_upload(store: &Store, upload: &Upload) -> Result<()> {
    let txn = store.write()?;
    txn.open_table(UPLOADS)?
        .insert(upload.id.as_str(), encode(upload)?.as_slice())?;
    txn.commit()?;
    Ok(())
}

pub fn upload(store: &Store, id: &str) -> Result<Option<Upload>> {
    let txn = store.read()?;
    match txn.open_table(UPLOADS)?.get(id)? {
        Some(v) => Ok(Some(decode(v.value())?)),
        None => Ok(None),
    }
}

pub fn delete_upload(store: &Store, id: &str) -> Result<()> {
    let txn = store.write()?;
    txn.open_table(UPLOADS)?.remove(id)?;
    txn.commit()?;
    Ok(())
}

pub fn all_uploads(store: &Store) -> Result<Vec<Upload>> {
    let txn = store.read()?;
    let mut out = Vec::new();
    for entry in txn.open_table(UPLOADS)?.iter()? {
        let (_, v) = entry?;
        out.push(decode(v.value())?);
    }
    Ok(out)
}

/// Garbage collection, in one write transaction: every blob no manifest references and created
/// before `cutoff` loses its record and links; returns their digests (the caller deletes the
/// files). Blobs linked to a repository but unreferenced are unlinked once older than `cutoff`.
pub fn collect_blobs(store: &Store, cutoff: i64) -> Result<Vec<String>> {
    let txn = store.write()?;
    let mut referenced = std::collections::HashSet::new();
    for entry in txn.open_table(MANIFESTS)?.iter()? {
        let (_, v) = entry?;
        let m: Manifest = decode(v.value())?;
        referenced.extend(m.blobs);
    }
    let mut doomed = Vec::new();
    {
        let mut links = txn.open_table(REPO_BLOBS)?;
        let stale: Vec<(String, String)> = links
            .iter()?
            .filter_map(|e| e.ok())
            .filter(|(k, v)| !referenced.contains(k.value().1) && v.value() < cutoff)
            .map(|(k, _)| (k.value().0.to_owned(), k.value().1.to_owned()))
            .collect();
        for (r, d) in stale {
            links.remove((r.as_str(), d.as_str()))?;
        }
        let linked: std::collections::HashSet<String> = links
            .iter()?
            .filter_map(|e| e.ok())
            .map(|(k, _)| k.value().1.to_owned())
            .collect();
        let mut blobs = txn.open_table(BLOBS)?;
        let candidates: Vec<String> = blobs
            .iter()?
            .filter_map(|e| e.ok())
            .filter_map(|(k, v)| {
                let rec: BlobRecord = decode(v.value()).ok()?;
                let d = k.value().to_owned();
                (rec.created < cutoff && !referenced.contains(&d) && !linked.contains(&d))
                    .then_some(d)
            })
            .collect();
        for d in candidates {
            blobs.remove(d.as_str())?;
            doomed.push(d);
        }
    }
    // Manifest bytes no repository uses any more.
    {
        let used: std::collections::HashSet<String> = txn
            .open_table(MANIFESTS)?
            .iter()?
            .filter_map(|e| e.ok())
            .map(|(k, _)| k.value().1.to_owned())
            .collect();
        let mut bytes = txn.open_table(MANIFEST_BYTES)?;
        let orphans: Vec<String> = bytes
            .iter()?
            .filter_map(|e| e.ok())
            .map(|(k, _)| k.value().to_owned())
            .filter(|d| !used.contains(d))
            .collect();
        for d in orphans {
            bytes.remove(d.as_str())?;
        }
    }
    txn.commit()?;
    Ok(doomed)
}

/// Every blob digest with a record (for the file sweep).
pub fn known_blobs(store: &Store) -> Result<std::collections::HashSet<String>> {
    let txn = store.read()?;
    let mut out = std::collections::HashSet::new();
    for entry in txn.open_table(BLOBS)?.iter()? {
        let (k, _) = entry?;
        out.insert(k.value().to_owned());
    }
    Ok(out)
}

/// Whether a principal may create a repository of this name. A name with a `/` starts with a
/// namespace: the slug of a login, which is that user's alone (a servable's is its owner's),
/// whether or not a user of that login exists yet. Names without `/` are first come, first
/// served; admins may create anything.
pub fn may_create(store: &Store, principal: &Principal, name: &str) -> Result<bool> {
    if principal.admin {
        return Ok(true);
    }
    let Some((namespace, _)) = name.split_once('/') else {
        return Ok(true);
    };
    Ok(accounts::namespace_of(store, principal.owner())?.is_some_and(|mine| mine == namespace))
}

/// What counts against a user's registry quota (`registry.quota_mb`, see `quota`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OwnerUsage {
    /// The distinct blobs linked to the repositories the user owns.
    pub blobs: std::collections::HashSet<String>,
    /// Their total size (a blob linked to several of them counts once).
    pub blob_bytes: u64,
    /// The upload sessions into those repositories (their files' sizes count too).
    pub uploads: Vec<String>,
}

/// The blobs and uploads of the repositories `owner` owns, in one read transaction.
pub fn owner_usage(store: &Store, owner: Id) -> Result<OwnerUsage> {
    let txn = store.read()?;
    let mut repos = std::collections::HashSet::new();
    for entry in txn.open_table(REPOS)?.iter()? {
        let (k, v) = entry?;
        let repo: Repo = decode(v.value())?;
        if repo.owner == owner {
            repos.insert(k.value().to_owned());
        }
    }
    let mut usage = OwnerUsage::default();
    let links = txn.open_table(REPO_BLOBS)?;
    let blobs = txn.open_table(BLOBS)?;
    for repo in &repos {
        let (lo, hi) = repo_range(repo);
        for entry in links.range((lo.as_str(), "")..(hi.as_str(), ""))? {
            let (k, _) = entry?;
            let digest = k.value().1;
            if usage.blobs.contains(digest) {
                continue;
            }
            if let Some(v) = blobs.get(digest)? {
                let record: BlobRecord = decode(v.value())?;
                usage.blob_bytes = usage.blob_bytes.saturating_add(record.size);
            }
            usage.blobs.insert(digest.to_owned());
        }
    }
    for entry in txn.open_table(UPLOADS)?.iter()? {
        let (_, v) = entry?;
        let upload: Upload = decode(v.value())?;
        if repos.contains(&upload.repo) {
            usage.uploads.push(upload.id);
        }
    }
    Ok(usage)
}

/// What a backup of the store as of `txn` holds of the registry: every recorded blob's file
/// (checked against its digest when copied), with the counts of repositories, manifests, tags,
/// blobs and their bytes. Upload sessions are not kept: a client starts a new upload.
pub(crate) fn backup_wanted(
    txn: &redb::ReadTransaction,
    counts: &mut crate::core::backup::Counts,
    out: &mut Vec<crate::core::backup::Wanted>,
) -> Result<()> {
    use crate::core::backup::{Content, Wanted};
    use redb::ReadableTableMetadata;
    counts.insert("repositories".into(), txn.open_table(REPOS)?.len()?);
    counts.insert("manifests".into(), txn.open_table(MANIFEST_BYTES)?.len()?);
    counts.insert("tags".into(), txn.open_table(TAGS)?.len()?);
    let mut bytes = 0u64;
    for entry in txn.open_table(BLOBS)?.iter()? {
        let (digest, record) = entry?;
        let digest = digest.value();
        let record: BlobRecord = decode(record.value())?;
        bytes = bytes.saturating_add(record.size);
        out.push(Wanted {
            path: super::blobs::blob_rel_path(digest),
            content: Content::File {
                required: true,
                sha256: digest.strip_prefix("sha256:").map(str::to_owned),
            },
            // Content-addressed: the same digest is the same file.
            fingerprint: digest.to_owned(),
            kind: "blobs",
        });
    }
    counts.insert("blob_bytes".into(), bytes);
    Ok(())
}

/// After a restore: upload sessions in progress when the backup was taken have no file in it;
/// they are dropped (their clients start again). Returns how many.
pub(crate) fn forget_uploads(store: &Store) -> Result<u64> {
    let uploads = all_uploads(store)?;
    for upload in &uploads {
        delete_upload(store, &upload.id)?;
    }
    Ok(uploads.len() as u64)
}

#[cfg(test)]
mod quota_tests {
    use super::*;

    #[test]
    fn a_users_usage_counts_each_blob_of_their_repositories_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::domains::open_store(dir.path()).unwrap();
        let (alice, bob) = (Id::new(), Id::new());
        let now = chrono::Utc::now();
        create_repo(&store, alice, "a/one", now).unwrap();
        create_repo(&store, alice, "a/two", now).unwrap();
        create_repo(&store, bob, "b/one", now).unwrap();
        assert_eq!(owner_usage(&store, alice).unwrap(), OwnerUsage::default());

        add_blob(&store, "a/one", "sha256:aa", 100, 0).unwrap();
        add_blob(&store, "a/one", "sha256:bb", 20, 0).unwrap();
        // The same blob in her second repository counts once.
        assert!(link_blob(&store, "a/two", "sha256:aa", 0).unwrap());
        add_blob(&store, "b/one", "sha256:cc", 5000, 0).unwrap();
        assert!(link_blob(&store, "b/one", "sha256:aa", 0).unwrap());
        // A repository whose name starts like hers is not hers.
        create_repo(&store, bob, "a/one-more", now).unwrap();
        add_blob(&store, "a/one-more", "sha256:dd", 7000, 0).unwrap();
        create_upload(
            &store,
            &Upload {
                id: "u1".into(),
                repo: "a/two".into(),
                principal: bob,
                created: 0,
            },
        )
        .unwrap();
        create_upload(
            &store,
            &Upload {
                id: "u2".into(),
                repo: "b/one".into(),
                principal: alice,
                created: 0,
            },
        )
        .unwrap();

        let usage = owner_usage(&store, alice).unwrap();
        assert_eq!(usage.blob_bytes, 120);
        assert_eq!(
            usage.blobs,
            ["sha256:aa", "sha256:bb"]
                .map(str::to_owned)
                .into_iter()
                .collect()
        );
        assert_eq!(
            usage.uploads,
            vec!["u1".to_owned()],
            "uploads into her repositories"
        );
        let usage = owner_usage(&store, bob).unwrap();
        assert_eq!(usage.blob_bytes, 12_100);
        assert_eq!(usage.uploads, vec!["u2".to_owned()]);

        // Unlinked from one repository, still in the other: still counted; from both: not.
        unlink_blob(&store, "a/one", "sha256:aa").unwrap();
        assert_eq!(owner_usage(&store, alice).unwrap().blob_bytes, 120);
        unlink_blob(&store, "a/two", "sha256:aa").unwrap();
        assert_eq!(owner_usage(&store, alice).unwrap().blob_bytes, 20);
    }
}
