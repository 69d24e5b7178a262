//! Resolving a parsed manifest against the store: the third phase of
//! [`super::register_manifest`].
//!
//! Each reference in `dependencies` and `capabilities` names a prototype of the manifest or an
//! existing prototype the caller can see (by id or `name:tag`); each image is in the registry
//! and readable by the caller; no `name:tag` is registered already. A store error ends the
//! registration; everything else is a problem, with its cause: what is not found is
//! [`Cause::Missing`], an image the caller may not read [`Cause::Forbidden`], a `name:tag`
//! taken [`Cause::Conflict`] (a manifest with only such problems is well formed: it is
//! answered 404, 403 or 409, not 400).

use super::parse::Entry;
use super::{PROTOTYPE_NAMES, PROTOTYPES};
use crate::core::error::{Cause, Error, Problem, Result};
use crate::core::id::Id;
use crate::core::store::Store;
use crate::domains::accounts;
use crate::domains::authz::{Acl, Capability, Principal};
use crate::domains::registry::{meta as registry, names};
use redb::{ReadOnlyTable, ReadTransaction};
use std::collections::HashMap;

/// What the manifest's names stand for: a fresh id for each of its prototypes, the id of each
/// existing prototype referred to, and the registry repository of each image.
#[derive(Debug)]
pub(super) struct Resolved {
    /// Reference (a manifest key, an id, `name:tag`) -> prototype id.
    ids: HashMap<String, Id>,
    /// Manifest key -> the registry repository holding its image.
    repositories: HashMap<String, String>,
}

impl Resolved {
    /// The prototype a reference that resolved stands for.
    pub(super) fn id(&self, reference: &str) -> Result<Id> {
        self.ids
            .get(reference)
            .copied()
            .ok_or_else(|| Error::internal(format!("manifest reference {reference} unresolved")))
    }

    /// The repository of the image of the manifest's prototype `key`, once found.
    pub(super) fn repository(&self, key: &str) -> Result<&str> {
        self.repositories
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| Error::internal(format!("manifest entry {key} has no image")))
    }
}

/// Resolves every reference and image of the entries, with a problem for each that does not
/// resolve and for each `name:tag` already registered (a conflict).
pub(super) fn resolve(
    store: &Store,
    caller: &Principal,
    entries: &[Entry],
) -> Result<(Resolved, Vec<Problem>)> {
    let txn = store.read()?;
    let existing = Existing::read(&txn, caller)?;
    let mut resolved = Resolved {
        ids: entries.iter().map(|e| (e.key.clone(), Id::new())).collect(),
        repositories: HashMap::new(),
    };
    let mut problems = Vec::new();
    for entry in entries {
        let key = entry.key.as_str();
        let references = entry
            .dependencies
            .iter()
            .map(|(dependency, reference)| (format!("dependencies.{dependency}"), reference))
            .chain(
                entry
                    .capabilities
                    .keys()
                    .map(|target| (format!("capabilities.{target}"), target)),
            );
        for (field, reference) in references {
            if resolved.ids.contains_key(reference) {
                continue;
            }
            match existing.prototype(reference)? {
                Some(id) => {
                    resolved.ids.insert(reference.clone(), id);
                }
                None => problems.push(
                    Problem::new(
                        key,
                        &field,
                        format!(
                            "{reference:?} is neither a prototype in this manifest nor an existing prototype id you can see"
                        ),
                    )
                    .because(Cause::Missing),
                ),
            }
        }
        // The image, once name and tag are sound (else their problems say enough).
        if let Some(tag) = &entry.tag
            && names::valid_tag(tag)
            && names::valid_name(key)
        {
            let reference = format!("{key}:{tag}");
            if existing.registered(&reference)? {
                problems.push(
                    Problem::new(key, "tag", format!("{reference} is already registered"))
                        .because(Cause::Conflict),
                );
            }
            match image(store, caller, key, tag)? {
                Image::Readable(repository) => {
                    resolved.repositories.insert(key.to_owned(), repository);
                }
                Image::Unreadable => problems.push(
                    Problem::new(
                        key,
                        "tag",
                        format!("you lack READ on the image {reference} in the registry"),
                    )
                    .because(Cause::Forbidden),
                ),
                Image::Missing => problems.push(
                    Problem::new(
                        key,
                        "tag",
                        format!(
                            "the image {reference} is not in the registry (push it first, e.g. docker push <host>/{reference})"
                        ),
                    )
                    .because(Cause::Missing),
                ),
            }
        }
    }
    Ok((resolved, problems))
}

/// The access check over a read transaction.
type ReadAcl = Acl<ReadOnlyTable<u128, &'static [u8]>, ReadOnlyTable<(u128, u128), u8>>;

/// The registered prototypes, as the caller sees them.
struct Existing<'c> {
    caller: &'c Principal,
    acl: ReadAcl,
    prototypes: ReadOnlyTable<u128, &'static [u8]>,
    names: ReadOnlyTable<&'static str, u128>,
}

impl<'c> Existing<'c> {
    fn read(txn: &ReadTransaction, caller: &'c Principal) -> Result<Existing<'c>> {
        Ok(Existing {
            caller,
            acl: Acl::read(txn)?,
            prototypes: txn.open_table(PROTOTYPES)?,
            names: txn.open_table(PROTOTYPE_NAMES)?,
        })
    }

    /// Whether `name:tag` is taken.
    fn registered(&self, reference: &str) -> Result<bool> {
        Ok(self.names.get(reference)?.is_some())
    }

    /// The id of the prototype `reference` (an id or `name:tag`) names, if the caller can see
    /// it.
    fn prototype(&self, reference: &str) -> Result<Option<Id>> {
        let id = match Id::parse(reference) {
            Some(id) => id,
            None => match self.names.get(reference)? {
                Some(id) => Id(id.value()),
                None => return Ok(None),
            },
        };
        if self.prototypes.get(id.0)?.is_none() {
            return Ok(None);
        }
        let Some(meta) = self.acl.object(id)? else {
            return Ok(None);
        };
        Ok(self.acl.visible(self.caller, &meta)?.then_some(id))
    }
}

/// Where the registry holds an image, as far as the caller is concerned.
enum Image {
    /// In this repository, which the caller may read.
    Readable(String),
    /// Only in repositories the caller sees but may not read.
    Unreadable,
    /// Nowhere the caller can see.
    Missing,
}

/// The registry repository of `name:tag` the caller may read: `name`, else
/// `<namespace>/name` in the namespace of the caller's account.
fn image(store: &Store, caller: &Principal, name: &str, tag: &str) -> Result<Image> {
    let mut candidates = vec![name.to_owned()];
    if let Some(namespace) = accounts::namespace_of(store, caller.owner())? {
        candidates.push(format!("{namespace}/{name}"));
    }
    let mut seen_unreadable = false;
    for repository in candidates {
        let Some((_, caps)) = registry::repo_caps(store, caller, &repository)? else {
            continue;
        };
        if !caps.contains(Capability::Read) {
            seen_unreadable = true;
        } else if registry::resolve(store, &repository, tag)?.is_some() {
            return Ok(Image::Readable(repository));
        }
    }
    Ok(if seen_unreadable {
        Image::Unreadable
    } else {
        Image::Missing
    })
}
