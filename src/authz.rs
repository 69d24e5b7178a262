//! The object model of SPEC.md section 1 and the one authorization check every face uses.
//!
//! Every stored thing is an object: an id, a kind, an owner and a creation time, kept in the
//! `objects` table. Capabilities held by principals other than the owner live in `grants`, keyed
//! by (object, principal). [`authorize`] answers "may this principal do CAP on this object?":
//! admins may do everything, owners everything on what they own, others what was granted to them
//! (or to every user). An object the caller holds nothing on is reported as not found, so ids do
//! not leak; one it can see but lacks the capability on is forbidden.

use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::store::{StoreError, decode, encode};
use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::fmt;

const OBJECTS: TableDefinition<u128, &[u8]> = TableDefinition::new("objects");
const GRANTS: TableDefinition<(u128, u128), u8> = TableDefinition::new("grants");

/// The principal "every user": a grant to it applies to all user accounts.
pub const ALL_USERS: Id = Id(1);

pub(crate) fn init_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(OBJECTS)?;
    txn.open_table(GRANTS)?;
    Ok(())
}

/// The seven capabilities of the DTaaS model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Capability {
    /// See the object's type and id.
    Discover,
    /// Use the object to make new ones (e.g. servables from a prototype).
    Create,
    /// Read all of its information.
    Read,
    /// Change its state: start, stop, edit.
    Update,
    Delete,
    /// Grant and revoke capabilities on it.
    Manage,
    /// Send HTTP requests to it (servables behind the proxy).
    Request,
}

impl Capability {
    pub const ALL: [Capability; 7] = [
        Capability::Discover,
        Capability::Create,
        Capability::Read,
        Capability::Update,
        Capability::Delete,
        Capability::Manage,
        Capability::Request,
    ];

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Discover => "DISCOVER",
            Capability::Create => "CREATE",
            Capability::Read => "READ",
            Capability::Update => "UPDATE",
            Capability::Delete => "DELETE",
            Capability::Manage => "MANAGE",
            Capability::Request => "REQUEST",
        }
    }

    pub fn parse(s: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of capabilities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps(pub u8);

impl Caps {
    pub const NONE: Caps = Caps(0);
    pub const ALL: Caps = Caps(0x7f);

    pub fn of(caps: &[Capability]) -> Caps {
        Caps(caps.iter().fold(0, |acc, c| acc | c.bit()))
    }
    pub fn contains(self, cap: Capability) -> bool {
        self.0 & cap.bit() != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn union(self, other: Caps) -> Caps {
        Caps(self.0 | other.0)
    }
    pub fn list(self) -> Vec<Capability> {
        Capability::ALL
            .into_iter()
            .filter(|c| self.contains(*c))
            .collect()
    }
}

/// What kind of thing an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    User,
    ApiKey,
    Image,
    Build,
    Pipeline,
    Job,
    Prototype,
    Servable,
    Instance,
    Trust,
    Repository,
}

impl Kind {
    /// How errors name it ("Image not found", as kabuto says).
    pub fn label(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::ApiKey => "API key",
            Kind::Image => "Image",
            Kind::Build => "Build",
            Kind::Pipeline => "Pipeline",
            Kind::Job => "Job",
            Kind::Prototype => "Prototype",
            Kind::Servable => "Servable",
            Kind::Instance => "Instance",
            Kind::Trust => "Trust",
            Kind::Repository => "Repository",
        }
    }
}

/// The part of every object the authorization check needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub id: Id,
    pub kind: Kind,
    /// The principal that created it (absent for objects the appliance owns itself).
    pub owner: Option<Id>,
    pub created: Timestamp,
}

/// Who is making a request: a user, or (later) a servable acting through its API key.
#[derive(Debug, Clone)]
pub struct Principal {
    pub id: Id,
    pub kind: PrincipalKind,
    pub name: String,
    pub admin: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    User,
    Servable,
}

/// Records a new object; its owner implicitly holds every capability on it.
pub fn create_object(txn: &WriteTransaction, meta: &ObjectMeta) -> Result<()> {
    let mut objects = txn.open_table(OBJECTS)?;
    objects.insert(meta.id.0, encode(meta)?.as_slice())?;
    Ok(())
}

/// Forgets an object and every grant on it.
pub fn delete_object(txn: &WriteTransaction, id: Id) -> Result<()> {
    let mut objects = txn.open_table(OBJECTS)?;
    objects.remove(id.0)?;
    let mut grants = txn.open_table(GRANTS)?;
    let keys: Vec<(u128, u128)> = grants
        .range((id.0, 0)..=(id.0, u128::MAX))?
        .map(|r| r.map(|(k, _)| k.value()))
        .collect::<Result<_, _>>()?;
    for k in keys {
        grants.remove(k)?;
    }
    Ok(())
}

/// Adds capabilities for `principal` on `object` (what it held before stays).
pub fn grant(txn: &WriteTransaction, object: Id, principal: Id, caps: Caps) -> Result<()> {
    let mut grants = txn.open_table(GRANTS)?;
    let held = grants
        .get((object.0, principal.0))?
        .map(|v| v.value())
        .unwrap_or(0);
    grants.insert((object.0, principal.0), held | caps.0)?;
    Ok(())
}

/// The view of the object tables the check reads, from a read or a write transaction.
pub struct Acl<O, G> {
    objects: O,
    grants: G,
}

impl Acl<redb::ReadOnlyTable<u128, &'static [u8]>, redb::ReadOnlyTable<(u128, u128), u8>> {
    pub fn read(txn: &ReadTransaction) -> Result<Self> {
        Ok(Acl {
            objects: txn.open_table(OBJECTS)?,
            grants: txn.open_table(GRANTS)?,
        })
    }
}

impl<'t> Acl<redb::Table<'t, u128, &'static [u8]>, redb::Table<'t, (u128, u128), u8>> {
    pub fn write(txn: &'t WriteTransaction) -> Result<Self> {
        Ok(Acl {
            objects: txn.open_table(OBJECTS)?,
            grants: txn.open_table(GRANTS)?,
        })
    }
}

impl<O, G> Acl<O, G>
where
    O: ReadableTable<u128, &'static [u8]>,
    G: ReadableTable<(u128, u128), u8>,
{
    pub fn object(&self, id: Id) -> Result<Option<ObjectMeta>> {
        match self.objects.get(id.0)? {
            Some(v) => Ok(Some(decode(v.value())?)),
            None => Ok(None),
        }
    }

    /// What `principal` holds on `meta`.
    pub fn caps(&self, principal: &Principal, meta: &ObjectMeta) -> Result<Caps> {
        if principal.admin || meta.owner == Some(principal.id) {
            return Ok(Caps::ALL);
        }
        let mut caps = Caps(
            self.grants
                .get((meta.id.0, principal.id.0))?
                .map(|v| v.value())
                .unwrap_or(0),
        );
        if principal.kind == PrincipalKind::User {
            let everyone = self
                .grants
                .get((meta.id.0, ALL_USERS.0))?
                .map(|v| v.value())
                .unwrap_or(0);
            caps = caps.union(Caps(everyone));
        }
        Ok(caps)
    }

    /// The one authorization check. `kind` is what the route expects the id to be: an object of
    /// another kind is as unknown as a missing one.
    pub fn check(
        &self,
        principal: &Principal,
        id: Id,
        kind: Kind,
        cap: Capability,
    ) -> Result<ObjectMeta> {
        let not_found = || Error::NotFound(format!("{} not found", kind.label()));
        let meta = self
            .object(id)?
            .filter(|m| m.kind == kind)
            .ok_or_else(not_found)?;
        let caps = self.caps(principal, &meta)?;
        if caps.contains(cap) {
            Ok(meta)
        } else if caps.is_empty() {
            Err(not_found())
        } else {
            Err(Error::Forbidden(format!(
                "you lack {cap} on this {}",
                kind.label().to_lowercase()
            )))
        }
    }

    /// Whether the principal may see the object at all (for filtering lists).
    pub fn visible(&self, principal: &Principal, meta: &ObjectMeta) -> Result<bool> {
        Ok(!self.caps(principal, meta)?.is_empty())
    }
}

/// The records of a table keyed by object id that `principal` may READ, in id order (oldest
/// first, ids being time-ordered).
pub fn list_readable<T: serde::de::DeserializeOwned>(
    store: &crate::store::Store,
    table: TableDefinition<u128, &[u8]>,
    principal: &Principal,
) -> Result<Vec<T>> {
    let txn = store.read()?;
    let acl = Acl::read(&txn)?;
    let mut out = Vec::new();
    for entry in txn.open_table(table)?.iter()? {
        let (k, v) = entry?;
        if let Some(meta) = acl.object(Id(k.value()))?
            && acl.caps(principal, &meta)?.contains(Capability::Read)
        {
            out.push(decode(v.value())?);
        }
    }
    Ok(out)
}

/// Shorthand for a check in its own read transaction.
pub fn authorize(
    store: &crate::store::Store,
    principal: &Principal,
    id: Id,
    kind: Kind,
    cap: Capability,
) -> Result<ObjectMeta> {
    let txn = store.read()?;
    Acl::read(&txn)?.check(principal, id, kind, cap)
}
