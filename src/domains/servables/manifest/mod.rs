//! Project manifests (seeds 001 and 002) and the prototypes they register.
//!
//! A manifest maps prototype names to their metadata. [`register_manifest`] goes through four
//! phases: `parse` reads each entry into its types, `check` applies the rules that need only
//! the manifest, `resolve` looks references and images up in the store, and `write` registers
//! the prototypes in one transaction. Every problem of the first three is reported
//! with the prototype and field it concerns, and only a manifest without problems is written.
//!
//! This module owns the prototype tables. A prototype is addressed by its id or by `name:tag`;
//! it cannot be deleted while another prototype depends on it or a servable uses it.

mod check;
mod parse;
mod resolve;

use super::{SERVABLES, Servable, ServableType};
use crate::core::clock::Timestamp;
use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::core::page::{Page, PageRequest};
use crate::core::store::{Opening, Store, StoreError, decode, get_record, put_record};
use crate::core::whole;
use crate::domains::authz::{self, Capability, Facet, Kind, Principal};
use parse::{Entry, Parsed};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use resolve::Resolved;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

const PROTOTYPES: TableDefinition<u128, &[u8]> = TableDefinition::new("prototypes");
/// `name:tag` -> prototype id.
const PROTOTYPE_NAMES: TableDefinition<&str, u128> = TableDefinition::new("prototype_names");

pub(crate) fn init_tables(txn: &WriteTransaction, opening: Opening) -> Result<(), StoreError> {
    txn.open_table(PROTOTYPES)?;
    if opening.upgrades_past(1) {
        let mut all = Vec::new();
        for entry in txn.open_table(PROTOTYPES)?.iter()? {
            all.push(decode::<Prototype>(entry?.1.value())?);
        }
        for p in &all {
            authz::set_facets(txn, p.id, &[Facet::Type(p.kind.code())])
                .map_err(|e| StoreError::Db(e.to_string()))?;
        }
    }
    txn.open_table(PROTOTYPE_NAMES)?;
    Ok(())
}

/// A registered prototype: an image in the registry and what a servable made from it needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prototype {
    pub id: Id,
    pub name: String,
    pub tag: String,
    #[serde(rename = "type")]
    pub kind: ServableType,
    /// The registry repository holding the image (`name`, or `<login>/name`).
    pub repository: String,
    /// Key (meaningful to the prototype's code) -> prototype id.
    pub dependencies: BTreeMap<String, Id>,
    pub arguments: Value,
    /// Object id -> capabilities a servable of this prototype needs on it.
    pub capabilities: BTreeMap<Id, Vec<Capability>>,
    /// Mirrors the config's shape; lists of capabilities where the config holds an object id.
    pub config_capabilities: Value,
    #[serde(default)]
    pub dockerfile: Option<String>,
    #[serde(default)]
    pub context: Option<String>,
    pub owner: Id,
    pub created: Timestamp,
}

impl Prototype {
    /// `name:tag`, which addresses the prototype as its id does.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.name, self.tag)
    }

    /// A daemon's volume: (mount point, size in MB).
    pub fn volume(&self) -> Option<(String, u64)> {
        if self.kind != ServableType::Daemon {
            return None;
        }
        let location = self.arguments.get("volume_location")?.as_str()?.to_owned();
        let size = whole::number(self.arguments.get("volume_size")?).ok()?;
        Some((location, size))
    }
}

/// A prototype by id (no access check).
pub fn get_prototype(store: &Store, id: Id) -> Result<Option<Prototype>> {
    let txn = store.read()?;
    Ok(get_record(&txn.open_table(PROTOTYPES)?, id)?)
}

/// A prototype by id or `name:tag` (no access check: callers check what they need).
pub fn resolve_prototype(store: &Store, reference: &str) -> Result<Prototype> {
    let not_found = || Error::not_found(format!("Prototype {reference} not found"));
    let id = match Id::parse(reference) {
        Some(id) => id,
        None => {
            let txn = store.read()?;
            let id = txn
                .open_table(PROTOTYPE_NAMES)?
                .get(reference)?
                .map(|v| v.value())
                .ok_or_else(not_found)?;
            Id(id)
        }
    };
    get_prototype(store, id)?.ok_or_else(not_found)
}

/// A prototype the caller holds `cap` on.
pub fn prototype_for(
    store: &Store,
    caller: &Principal,
    reference: &str,
    cap: Capability,
) -> Result<Prototype> {
    let prototype =
        resolve_prototype(store, reference).map_err(|_| Error::not_found("Prototype not found"))?;
    authz::authorize(store, caller, prototype.id, Kind::Prototype, cap)?;
    Ok(prototype)
}

/// A page of the prototypes the caller may read, optionally of one type.
pub fn list_prototypes(
    store: &Store,
    caller: &Principal,
    kind: Option<ServableType>,
    page: PageRequest,
) -> Result<Page<Prototype>> {
    let filter: Vec<Facet> = kind.map(|k| Facet::Type(k.code())).into_iter().collect();
    authz::readable_page(store, PROTOTYPES, caller, Kind::Prototype, &filter, page)
}

/// Registers every prototype of a manifest, or nothing. Needs CREATE on the prototype
/// collection, READ on each image's repository, and DISCOVER on existing prototypes referred to.
///
/// The manifest is parsed, its values checked and its references resolved against the store;
/// every problem of the three phases is reported together, grouped by prototype. Only a
/// manifest without problems is written, in one transaction.
pub fn register_manifest(
    store: &Store,
    caller: &Principal,
    manifest: &Value,
    now: Timestamp,
) -> Result<Vec<Prototype>> {
    authz::authorize(
        store,
        caller,
        authz::PROTOTYPES,
        Kind::Collection,
        Capability::Create,
    )
    .map_err(|_| Error::forbidden("you lack CREATE on prototypes"))?;
    let Parsed {
        entries,
        mut problems,
    } = parse::parse(manifest)?;
    problems.extend(check::check(&entries));
    let (resolved, unresolved) = resolve::resolve(store, caller, &entries)?;
    problems.extend(unresolved);
    if !problems.is_empty() {
        // Each prototype's problems together (the sort is stable: within a prototype, the
        // phases' order is kept).
        problems.sort_by(|a, b| a.item.cmp(&b.item));
        return Err(Error::Problems(problems));
    }
    write(store, caller, entries, &resolved, now)
}

/// Registers the prototypes of a manifest without problems, in one transaction. A `name:tag`
/// taken since it was resolved is a conflict, and nothing is registered.
fn write(
    store: &Store,
    caller: &Principal,
    entries: Vec<Entry>,
    resolved: &Resolved,
    now: Timestamp,
) -> Result<Vec<Prototype>> {
    let txn = store.write()?;
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let prototype = prototype(entry, resolved, caller.owner(), now)?;
        let reference = prototype.reference();
        if txn
            .open_table(PROTOTYPE_NAMES)?
            .insert(reference.as_str(), prototype.id.0)?
            .is_some()
        {
            return Err(Error::conflict(format!(
                "{reference} is already registered"
            )));
        }
        put_record(&txn, PROTOTYPES, prototype.id, &prototype)?;
        authz::set_facets(&txn, prototype.id, &[Facet::Type(prototype.kind.code())])?;
        super::record_creation(&txn, caller, prototype.id, Kind::Prototype, &reference, now)?;
        out.push(prototype);
    }
    txn.commit()?;
    Ok(out)
}

/// The prototype an entry without problems describes, its references resolved.
fn prototype(entry: Entry, resolved: &Resolved, owner: Id, now: Timestamp) -> Result<Prototype> {
    let Entry {
        key,
        name: _,
        tag,
        kind,
        dependencies,
        arguments,
        capabilities,
        config_capabilities,
        dockerfile,
        context,
    } = entry;
    let incomplete = |what: &str| Error::internal(format!("manifest entry {key} has no {what}"));
    let tag = tag.ok_or_else(|| incomplete("tag"))?;
    let kind = kind.ok_or_else(|| incomplete("type"))?;
    Ok(Prototype {
        id: resolved.id(&key)?,
        tag,
        kind,
        repository: resolved.repository(&key)?.to_owned(),
        dependencies: dependencies
            .into_iter()
            .map(|(dependency, reference)| Ok((dependency, resolved.id(&reference)?)))
            .collect::<Result<_>>()?,
        arguments: Value::Object(arguments),
        capabilities: capabilities
            .into_iter()
            .map(|(target, caps)| Ok((resolved.id(&target)?, caps)))
            .collect::<Result<_>>()?,
        config_capabilities: Value::Object(config_capabilities),
        dockerfile,
        context,
        name: key,
        owner,
        created: now,
    })
}

/// Deletes a prototype (DELETE on it) unless others depend on it or servables use it.
pub fn delete_prototype(store: &Store, caller: &Principal, reference: &str) -> Result<()> {
    let prototype = prototype_for(store, caller, reference, Capability::Delete)?;
    let txn = store.write()?;
    let mut users = Vec::new();
    for entry in txn.open_table(PROTOTYPES)?.iter()? {
        let (_, v) = entry?;
        let other: Prototype = decode(v.value())?;
        if other.dependencies.values().any(|d| *d == prototype.id)
            || other.capabilities.contains_key(&prototype.id)
        {
            users.push(format!("prototype {} ({})", other.reference(), other.id));
        }
    }
    for id in authz::every_in(&txn, Kind::Servable, Facet::Parent(prototype.id))? {
        if let Some(servable) = get_record::<Servable>(&txn.open_table(SERVABLES)?, id)? {
            users.push(format!("servable {:?} ({})", servable.name, servable.id));
        }
    }
    if !users.is_empty() {
        return Err(Error::conflict(format!(
            "{} is still used by: {}",
            prototype.reference(),
            users.join(", ")
        )));
    }
    txn.open_table(PROTOTYPES)?.remove(prototype.id.0)?;
    txn.open_table(PROTOTYPE_NAMES)?
        .remove(prototype.reference().as_str())?;
    authz::delete_object(&txn, prototype.id)?;
    txn.commit()?;
    Ok(())
}
