//! The object model of SPEC.md section 1 and the one authorization check every face uses.
//!
//! Every stored thing is an object: an id, a kind, an owner and a creation time, kept in the
//! `objects` table. Capabilities held by principals other than the owner live in `grants`, keyed
//! by (object, principal). [`authorize`] answers "may this principal do CAP on this object?":
//! admins may do everything, owners everything on what they own, others what was granted to them
//! (or to every user). An object the caller holds nothing on is reported as not found, so ids do
//! not leak; one it can see but lacks the capability on is forbidden.

use crate::core::clock::Timestamp;
use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::core::store::{Store, StoreError, decode, encode};
use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::fmt;

const OBJECTS: TableDefinition<u128, &[u8]> = TableDefinition::new("objects");
const GRANTS: TableDefinition<(u128, u128), u8> = TableDefinition::new("grants");
/// Trust membership: (principal, trust) -> [`Role`] bits.
const MEMBERSHIPS: TableDefinition<(u128, u128), u8> = TableDefinition::new("trust_memberships");
/// Objects placed in a trust: (object, trust) -> 0.
const TRUST_OBJECTS: TableDefinition<(u128, u128), u8> = TableDefinition::new("trust_objects");

/// The principal "every user": a grant to it applies to all user accounts.
pub const ALL_USERS: Id = Id(1);
/// The collection of prototypes: CREATE on it lets a principal register prototypes (every user
/// holds it by default; an admin may revoke it like any grant).
pub const PROTOTYPES: Id = Id(2);

pub(crate) fn init_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(OBJECTS)?;
    txn.open_table(GRANTS)?;
    txn.open_table(MEMBERSHIPS)?;
    txn.open_table(TRUST_OBJECTS)?;
    let exists = txn.open_table(OBJECTS)?.get(PROTOTYPES.0)?.is_some();
    if !exists {
        let meta = ObjectMeta {
            id: PROTOTYPES,
            kind: Kind::Collection,
            owner: None,
            created: chrono::Utc::now(),
        };
        txn.open_table(OBJECTS)?
            .insert(PROTOTYPES.0, encode(&meta)?.as_slice())?;
        txn.open_table(GRANTS)?.insert(
            (PROTOTYPES.0, ALL_USERS.0),
            Caps::of(&[Capability::Discover, Capability::Create]).0,
        )?;
    }
    Ok(())
}

/// The seven capabilities of the DTaaS model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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
    DelegationRequest,
    /// A system collection (e.g. [`PROTOTYPES`]).
    Collection,
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
            Kind::DelegationRequest => "Delegation request",
            Kind::Collection => "Collection",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::ApiKey => "api_key",
            Kind::Image => "image",
            Kind::Build => "build",
            Kind::Pipeline => "pipeline",
            Kind::Job => "job",
            Kind::Prototype => "prototype",
            Kind::Servable => "servable",
            Kind::Instance => "instance",
            Kind::Trust => "trust",
            Kind::Repository => "repository",
            Kind::DelegationRequest => "delegation_request",
            Kind::Collection => "collection",
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

/// Who is making a request: a user, or a servable acting through its API key.
#[derive(Debug, Clone)]
pub struct Principal {
    pub id: Id,
    pub kind: PrincipalKind,
    pub name: String,
    pub admin: bool,
    /// The account it acts for: itself for a user, the owner of a servable. Objects a servable
    /// creates belong to this account (and the servable holds every capability on them).
    pub user: Id,
}

impl Principal {
    /// The owner of what this principal creates.
    pub fn owner(&self) -> Id {
        self.user
    }
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

/// Removes capabilities of `principal` on `object`; the grant goes when nothing is left.
pub fn revoke(txn: &WriteTransaction, object: Id, principal: Id, caps: Caps) -> Result<Caps> {
    let mut grants = txn.open_table(GRANTS)?;
    let held = grants
        .get((object.0, principal.0))?
        .map(|v| v.value())
        .unwrap_or(0);
    let left = held & !caps.0;
    if left == 0 {
        grants.remove((object.0, principal.0))?;
    } else {
        grants.insert((object.0, principal.0), left)?;
    }
    Ok(Caps(left))
}

/// Forgets every grant held by a principal that is gone (a deleted servable or trust), and its
/// trust memberships.
pub fn forget_principal(txn: &WriteTransaction, principal: Id) -> Result<()> {
    let mut grants = txn.open_table(GRANTS)?;
    let keys: Vec<(u128, u128)> = grants
        .iter()?
        .filter_map(|e| e.ok())
        .map(|(k, _)| k.value())
        .filter(|k| k.1 == principal.0)
        .collect();
    for k in keys {
        grants.remove(k)?;
    }
    let mut memberships = txn.open_table(MEMBERSHIPS)?;
    let keys: Vec<(u128, u128)> = memberships
        .range((principal.0, 0)..=(principal.0, u128::MAX))?
        .filter_map(|e| e.ok())
        .map(|(k, _)| k.value())
        .collect();
    for k in keys {
        memberships.remove(k)?;
    }
    Ok(())
}

/// Every explicit grant on an object: (principal, capabilities), in principal order.
pub fn grants_on(txn: &ReadTransaction, object: Id) -> Result<Vec<(Id, Caps)>> {
    let grants = txn.open_table(GRANTS)?;
    let mut out = Vec::new();
    for entry in grants.range((object.0, 0)..=(object.0, u128::MAX))? {
        let (k, v) = entry?;
        out.push((Id(k.value().1), Caps(v.value())));
    }
    Ok(out)
}

/// A principal's role in a trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Member,
    Trustee,
}

impl Role {
    fn bits(self) -> u8 {
        match self {
            Role::Member => 1,
            Role::Trustee => 3,
        }
    }
}

/// Adds `principal` to `trust` in `role` (a trustee is also a member).
pub fn set_membership(txn: &WriteTransaction, trust: Id, principal: Id, role: Role) -> Result<()> {
    let mut table = txn.open_table(MEMBERSHIPS)?;
    let held = table
        .get((principal.0, trust.0))?
        .map(|v| v.value())
        .unwrap_or(0);
    table.insert((principal.0, trust.0), held | role.bits())?;
    Ok(())
}

/// Removes `principal` from `trust` entirely.
pub fn remove_membership(txn: &WriteTransaction, trust: Id, principal: Id) -> Result<bool> {
    Ok(txn
        .open_table(MEMBERSHIPS)?
        .remove((principal.0, trust.0))?
        .is_some())
}

/// The members of a trust with their roles (a scan: trusts are few and small).
pub fn members_of(txn: &ReadTransaction, trust: Id) -> Result<Vec<(Id, Role)>> {
    let mut out = Vec::new();
    for entry in txn.open_table(MEMBERSHIPS)?.iter()? {
        let (k, v) = entry?;
        let (principal, t) = k.value();
        if t == trust.0 {
            let role = if v.value() == Role::Trustee.bits() {
                Role::Trustee
            } else {
                Role::Member
            };
            out.push((Id(principal), role));
        }
    }
    Ok(out)
}

/// Places an object in a trust, or takes it out.
pub fn set_trust_object(
    txn: &WriteTransaction,
    trust: Id,
    object: Id,
    inside: bool,
) -> Result<bool> {
    let mut table = txn.open_table(TRUST_OBJECTS)?;
    Ok(if inside {
        table.insert((object.0, trust.0), 0)?.is_none()
    } else {
        table.remove((object.0, trust.0))?.is_some()
    })
}

/// The objects in a trust (a scan).
pub fn trust_objects(txn: &ReadTransaction, trust: Id) -> Result<Vec<Id>> {
    let mut out = Vec::new();
    for entry in txn.open_table(TRUST_OBJECTS)?.iter()? {
        let (k, _) = entry?;
        let (object, t) = k.value();
        if t == trust.0 {
            out.push(Id(object));
        }
    }
    Ok(out)
}

/// Forgets a trust's memberships and placements (when the trust is deleted).
pub fn forget_trust(txn: &WriteTransaction, trust: Id) -> Result<()> {
    for table in [MEMBERSHIPS, TRUST_OBJECTS] {
        let mut t = txn.open_table(table)?;
        let keys: Vec<(u128, u128)> = t
            .iter()?
            .filter_map(|e| e.ok())
            .map(|(k, _)| k.value())
            .filter(|k| k.1 == trust.0)
            .collect();
        for k in keys {
            t.remove(k)?;
        }
    }
    Ok(())
}

/// The view of the object tables the check reads, from a read or a write transaction.
pub struct Acl<O, G> {
    objects: O,
    grants: G,
    memberships: G,
    trust_objects: G,
}

impl Acl<redb::ReadOnlyTable<u128, &'static [u8]>, redb::ReadOnlyTable<(u128, u128), u8>> {
    pub fn read(txn: &ReadTransaction) -> Result<Self> {
        Ok(Acl {
            objects: txn.open_table(OBJECTS)?,
            grants: txn.open_table(GRANTS)?,
            memberships: txn.open_table(MEMBERSHIPS)?,
            trust_objects: txn.open_table(TRUST_OBJECTS)?,
        })
    }
}

impl<'t> Acl<redb::Table<'t, u128, &'static [u8]>, redb::Table<'t, (u128, u128), u8>> {
    /// The check inside a write transaction. It opens the grant tables, so a caller that also
    /// writes grants must drop this view first (see [`grant`]).
    pub fn write(txn: &'t WriteTransaction) -> Result<Self> {
        Ok(Acl {
            objects: txn.open_table(OBJECTS)?,
            grants: txn.open_table(GRANTS)?,
            memberships: txn.open_table(MEMBERSHIPS)?,
            trust_objects: txn.open_table(TRUST_OBJECTS)?,
        })
    }
}

impl<O, G> Acl<O, G>
where
    O: ReadableTable<u128, &'static [u8]>,
    G: ReadableTable<(u128, u128), u8>,
{
    fn granted(&self, object: Id, principal: Id) -> Result<u8> {
        Ok(self
            .grants
            .get((object.0, principal.0))?
            .map(|v| v.value())
            .unwrap_or(0))
    }

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
        let mut caps = Caps(self.granted(meta.id, principal.id)?);
        if principal.kind == PrincipalKind::User {
            caps = caps.union(Caps(self.granted(meta.id, ALL_USERS)?));
        }
        // Trusts: what is granted to a trust applies to its members; trustees hold MANAGE on
        // everything placed in it.
        for entry in self
            .memberships
            .range((principal.id.0, 0)..=(principal.id.0, u128::MAX))?
        {
            let (k, role) = entry?;
            let trust = Id(k.value().1);
            caps = caps.union(Caps(self.granted(meta.id, trust)?));
            if role.value() == Role::Trustee.bits()
                && self.trust_objects.get((meta.id.0, trust.0))?.is_some()
            {
                caps = caps.union(Caps::of(&[Capability::Manage]));
            }
        }
        // Holding anything on an object means seeing it: DISCOVER comes with every capability.
        if !caps.is_empty() {
            caps = caps.union(Caps::of(&[Capability::Discover]));
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

/// An invisible object answers as a missing one does, its kind not named either (for routes
/// that take an id of any kind).
pub fn as_any_object(e: Error) -> Error {
    match e {
        Error::NotFound(_) => Error::not_found("Object not found"),
        other => other,
    }
}

/// An object of any kind the caller holds MANAGE on (the check of every access-list route).
pub fn managed(store: &Store, caller: &Principal, id: Id) -> Result<ObjectMeta> {
    let txn = store.read()?;
    manage_check(&Acl::read(&txn)?, caller, id)
}

fn manage_check<O, G>(acl: &Acl<O, G>, caller: &Principal, id: Id) -> Result<ObjectMeta>
where
    O: ReadableTable<u128, &'static [u8]>,
    G: ReadableTable<(u128, u128), u8>,
{
    let meta = acl
        .object(id)?
        .ok_or_else(|| Error::not_found("Object not found"))?;
    acl.check(caller, id, meta.kind, Capability::Manage)
        .map_err(as_any_object)
}

/// `caller` (holding MANAGE on `object`) grants `caps` on it to `principal`; what the
/// principal held stays. The check and the grant are one transaction.
pub fn grant_by(
    store: &Store,
    caller: &Principal,
    object: Id,
    principal: Id,
    caps: Caps,
) -> Result<ObjectMeta> {
    let txn = store.write()?;
    let meta = manage_check(&Acl::write(&txn)?, caller, object)?;
    grant(&txn, object, principal, caps)?;
    txn.commit()?;
    Ok(meta)
}

/// `caller` (holding MANAGE on `object`) takes `caps` on it away from `principal`.
pub fn revoke_by(
    store: &Store,
    caller: &Principal,
    object: Id,
    principal: Id,
    caps: Caps,
) -> Result<ObjectMeta> {
    let txn = store.write()?;
    let meta = manage_check(&Acl::write(&txn)?, caller, object)?;
    revoke(&txn, object, principal, caps)?;
    txn.commit()?;
    Ok(meta)
}

/// The records of a table keyed by object id that `principal` may READ, in id order (oldest
/// first, ids being time-ordered).
pub fn list_readable<T: serde::de::DeserializeOwned>(
    store: &Store,
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
    store: &Store,
    principal: &Principal,
    id: Id,
    kind: Kind,
    cap: Capability,
) -> Result<ObjectMeta> {
    let txn = store.read()?;
    Acl::read(&txn)?.check(principal, id, kind, cap)
}
