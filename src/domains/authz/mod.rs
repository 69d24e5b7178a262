//! The object model of SPEC.md section 1 and the one authorization check every face uses.
//!
//! Every stored thing is an object: an id, a kind, an owner and a creation time, kept in the
//! `objects` table. Capabilities held by principals other than the owner live in `grants`, keyed
//! by (object, principal). [`authorize`] answers "may this principal do CAP on this object?":
//! admins may do everything, owners everything on what they own, others what was granted to them
//! (or to every user). An object the caller holds nothing on is reported as not found, so ids do
//! not leak; one it can see but lacks the capability on is forbidden.

mod index;

pub use index::{
    Facet, count, every_in, every_with, newest_readable_ids, own_ids, readable_ids, set_facets,
};

use crate::core::clock::Timestamp;
use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::core::page::{Page, PageRequest};
use crate::core::store::{Opening, Store, StoreError, decode, encode, get_record};
use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::fmt;

const OBJECTS: TableDefinition<u128, &[u8]> = TableDefinition::new("objects");
const GRANTS: TableDefinition<(u128, u128), u8> = TableDefinition::new("grants");
/// Trust membership: (principal, trust) -> [`Role`] bits.
const MEMBERSHIPS: TableDefinition<(u128, u128), u8> = TableDefinition::new("trust_memberships");
/// Objects placed in a trust: (object, trust) -> 0.
const TRUST_OBJECTS: TableDefinition<(u128, u128), u8> = TableDefinition::new("trust_objects");
/// The same three, keyed the other way round, so that what a principal holds, who is in a trust
/// and what is placed in it are ranges rather than scans: (principal, object), (trust,
/// principal), (trust, object).
const GRANTS_HELD: TableDefinition<(u128, u128), ()> = TableDefinition::new("grants_by_principal");
const TRUST_MEMBERS: TableDefinition<(u128, u128), ()> = TableDefinition::new("trust_members");
const TRUST_PLACED: TableDefinition<(u128, u128), ()> = TableDefinition::new("trust_placed");

/// The keys of a table in the range of pairs starting with `first`.
fn pairs_from<T>(table: &T, first: u128) -> Result<Vec<(u128, u128)>>
where
    T: ReadableTable<(u128, u128), ()>,
{
    let mut out = Vec::new();
    for entry in table.range((first, 0)..=(first, u128::MAX))? {
        out.push(entry?.0.value());
    }
    Ok(out)
}

/// Fills the reversed tables from the ones they mirror (a store of schema 1).
fn mirror_all(txn: &WriteTransaction) -> Result<()> {
    let mut pairs = Vec::new();
    for (from, to) in [
        (GRANTS, GRANTS_HELD),
        (MEMBERSHIPS, TRUST_MEMBERS),
        (TRUST_OBJECTS, TRUST_PLACED),
    ] {
        for entry in txn.open_table(from)?.iter()? {
            let (a, b) = entry?.0.value();
            pairs.push((to, (b, a)));
        }
    }
    for (table, key) in pairs {
        txn.open_table(table)?.insert(key, ())?;
    }
    Ok(())
}

/// The principal "every user": a grant to it applies to all user accounts.
pub const ALL_USERS: Id = Id(1);
/// The collection of prototypes: CREATE on it lets a principal register prototypes (every user
/// holds it by default; an admin may revoke it like any grant).
pub const PROTOTYPES: Id = Id(2);

pub(crate) fn init_tables(txn: &WriteTransaction, opening: Opening) -> Result<(), StoreError> {
    txn.open_table(OBJECTS)?;
    txn.open_table(GRANTS)?;
    txn.open_table(MEMBERSHIPS)?;
    txn.open_table(TRUST_OBJECTS)?;
    txn.open_table(GRANTS_HELD)?;
    txn.open_table(TRUST_MEMBERS)?;
    txn.open_table(TRUST_PLACED)?;
    index::init_tables(txn)?;
    let failed = |e: Error| StoreError::Db(e.to_string());
    if opening.upgrades_past(1) {
        mirror_all(txn).map_err(failed)?;
        index::rebuild(txn).map_err(failed)?;
    }
    if opening.upgrades_past(2) {
        index::recount(txn).map_err(failed)?;
    }
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
        txn.open_table(GRANTS_HELD)?
            .insert((ALL_USERS.0, PROTOTYPES.0), ())?;
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
    txn.open_table(OBJECTS)?
        .insert(meta.id.0, encode(meta)?.as_slice())?;
    index::created(txn, meta)
}

/// Forgets an object, every grant on it and its places in trusts.
pub fn delete_object(txn: &WriteTransaction, id: Id) -> Result<()> {
    let meta: Option<ObjectMeta> = get_record(&txn.open_table(OBJECTS)?, id)?;
    if let Some(meta) = &meta {
        index::deleted(txn, meta)?;
    }
    txn.open_table(OBJECTS)?.remove(id.0)?;
    let mut grants = txn.open_table(GRANTS)?;
    let mut held = txn.open_table(GRANTS_HELD)?;
    let keys: Vec<(u128, u128)> = grants
        .range((id.0, 0)..=(id.0, u128::MAX))?
        .map(|r| r.map(|(k, _)| k.value()))
        .collect::<Result<_, _>>()?;
    for (object, principal) in keys {
        grants.remove((object, principal))?;
        held.remove((principal, object))?;
    }
    let mut placements = txn.open_table(TRUST_OBJECTS)?;
    let mut placed = txn.open_table(TRUST_PLACED)?;
    let keys: Vec<(u128, u128)> = placements
        .range((id.0, 0)..=(id.0, u128::MAX))?
        .map(|r| r.map(|(k, _)| k.value()))
        .collect::<Result<_, _>>()?;
    for (object, trust) in keys {
        placements.remove((object, trust))?;
        placed.remove((trust, object))?;
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
    drop(grants);
    txn.open_table(GRANTS_HELD)?
        .insert((principal.0, object.0), ())?;
    index::granted(txn, object, principal, held, held | caps.0)
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
        txn.open_table(GRANTS_HELD)?
            .remove((principal.0, object.0))?;
    } else {
        grants.insert((object.0, principal.0), left)?;
    }
    drop(grants);
    index::granted(txn, object, principal, held, left)?;
    Ok(Caps(left))
}

/// Forgets every grant held by a principal that is gone (a deleted servable or trust), and its
/// trust memberships.
pub fn forget_principal(txn: &WriteTransaction, principal: Id) -> Result<()> {
    let mut held = txn.open_table(GRANTS_HELD)?;
    let mut grants = txn.open_table(GRANTS)?;
    for (p, object) in pairs_from(&held, principal.0)? {
        grants.remove((object, p))?;
        held.remove((p, object))?;
    }
    let mut memberships = txn.open_table(MEMBERSHIPS)?;
    let mut members = txn.open_table(TRUST_MEMBERS)?;
    let keys: Vec<(u128, u128)> = memberships
        .range((principal.0, 0)..=(principal.0, u128::MAX))?
        .map(|r| r.map(|(k, _)| k.value()))
        .collect::<Result<_, _>>()?;
    for (p, trust) in keys {
        memberships.remove((p, trust))?;
        members.remove((trust, p))?;
    }
    drop((held, grants, memberships, members));
    index::forget_holder(txn, principal)
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
    txn.open_table(TRUST_MEMBERS)?
        .insert((trust.0, principal.0), ())?;
    Ok(())
}

/// Removes `principal` from `trust` entirely.
pub fn remove_membership(txn: &WriteTransaction, trust: Id, principal: Id) -> Result<bool> {
    txn.open_table(TRUST_MEMBERS)?
        .remove((trust.0, principal.0))?;
    Ok(txn
        .open_table(MEMBERSHIPS)?
        .remove((principal.0, trust.0))?
        .is_some())
}

/// The members of a trust with their roles, in principal order.
pub fn members_of(txn: &ReadTransaction, trust: Id) -> Result<Vec<(Id, Role)>> {
    let memberships = txn.open_table(MEMBERSHIPS)?;
    let mut out = Vec::new();
    for (_, principal) in pairs_from(&txn.open_table(TRUST_MEMBERS)?, trust.0)? {
        let bits = memberships
            .get((principal, trust.0))?
            .map(|v| v.value())
            .unwrap_or(0);
        let role = if bits == Role::Trustee.bits() {
            Role::Trustee
        } else {
            Role::Member
        };
        out.push((Id(principal), role));
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
    let mut placed = txn.open_table(TRUST_PLACED)?;
    Ok(if inside {
        placed.insert((trust.0, object.0), ())?;
        table.insert((object.0, trust.0), 0)?.is_none()
    } else {
        placed.remove((trust.0, object.0))?;
        table.remove((object.0, trust.0))?.is_some()
    })
}

/// The objects placed in a trust, in id order.
pub fn trust_objects(txn: &ReadTransaction, trust: Id) -> Result<Vec<Id>> {
    Ok(pairs_from(&txn.open_table(TRUST_PLACED)?, trust.0)?
        .into_iter()
        .map(|(_, object)| Id(object))
        .collect())
}

/// Forgets a trust's memberships and placements (when the trust is deleted).
pub fn forget_trust(txn: &WriteTransaction, trust: Id) -> Result<()> {
    for (mirror, table) in [(TRUST_MEMBERS, MEMBERSHIPS), (TRUST_PLACED, TRUST_OBJECTS)] {
        let mut mirror = txn.open_table(mirror)?;
        let mut table = txn.open_table(table)?;
        for (t, other) in pairs_from(&mirror, trust.0)? {
            mirror.remove((t, other))?;
            table.remove((other, t))?;
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

/// `caller` (holding MANAGE and every capability of `caps` on `object`) grants `caps` on it to
/// `principal`; what the principal held stays. The check and the grant are one transaction.
pub fn grant_by(
    store: &Store,
    caller: &Principal,
    object: Id,
    principal: Id,
    caps: Caps,
) -> Result<ObjectMeta> {
    let txn = store.write()?;
    let meta = held_check(&Acl::write(&txn)?, caller, object, caps, "grant")?;
    grant(&txn, object, principal, caps)?;
    txn.commit()?;
    Ok(meta)
}

/// `caller` (holding MANAGE and every capability of `caps` on `object`) takes `caps` on it away
/// from `principal`.
pub fn revoke_by(
    store: &Store,
    caller: &Principal,
    object: Id,
    principal: Id,
    caps: Caps,
) -> Result<ObjectMeta> {
    let txn = store.write()?;
    let meta = held_check(&Acl::write(&txn)?, caller, object, caps, "take away")?;
    revoke(&txn, object, principal, caps)?;
    txn.commit()?;
    Ok(meta)
}

/// MANAGE on the object, and every capability in `caps` held by the caller itself: a principal
/// grants (and takes away) only what it holds. Owners and admins hold everything.
fn held_check<O, G>(
    acl: &Acl<O, G>,
    caller: &Principal,
    object: Id,
    caps: Caps,
    what: &str,
) -> Result<ObjectMeta>
where
    O: ReadableTable<u128, &'static [u8]>,
    G: ReadableTable<(u128, u128), u8>,
{
    let meta = manage_check(acl, caller, object)?;
    let lacking = Caps(caps.0 & !acl.caps(caller, &meta)?.0);
    if !lacking.is_empty() {
        let names: Vec<&str> = lacking.list().into_iter().map(Capability::as_str).collect();
        return Err(Error::Forbidden(format!(
            "you can {what} only capabilities you hold yourself; you lack {} on this object",
            names.join(", ")
        )));
    }
    Ok(meta)
}

/// What a caller holding MANAGE on `object` can take away from others when it names no
/// capability: everything it holds itself.
pub fn revocable(store: &Store, caller: &Principal, object: Id) -> Result<Caps> {
    let txn = store.read()?;
    let acl = Acl::read(&txn)?;
    let meta = manage_check(&acl, caller, object)?;
    acl.caps(caller, &meta)
}

/// A page of the records of `kind` (kept in `table`, keyed by object id) that `principal` may
/// READ and that have every facet of `filter`, in id order (oldest first, ids being
/// time-ordered). Reads the list index and the page's records, nothing else.
pub fn readable_page<T: serde::de::DeserializeOwned>(
    store: &Store,
    table: TableDefinition<u128, &[u8]>,
    principal: &Principal,
    kind: Kind,
    filter: &[Facet],
    page: PageRequest,
) -> Result<Page<T>> {
    let txn = store.read()?;
    let (ids, more) = readable_ids(&txn, principal, kind, filter, page)?;
    records_page(&txn, table, ids, more)
}

/// The newest records of `kind` (having `facet`, when given) that `principal` may READ, newest
/// first, at most `limit` (see [`newest_readable_ids`]): what an overview shows of recent work.
pub fn newest_readable<T: serde::de::DeserializeOwned>(
    store: &Store,
    table: TableDefinition<u128, &[u8]>,
    principal: &Principal,
    kind: Kind,
    facet: Option<Facet>,
    limit: usize,
) -> Result<Vec<T>> {
    let txn = store.read()?;
    let ids = newest_readable_ids(&txn, principal, kind, facet, Id(0), limit)?;
    let records = txn.open_table(table)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.extend(get_record::<T>(&records, id)?);
    }
    Ok(out)
}

/// How many readable objects a page filtered by what the list index does not hold (a name
/// search) examines at most: a search matching little costs a bounded amount per request, and
/// its page then answers what it found with a cursor that leads on.
pub const SCAN_BUDGET: usize = 10_000;

/// A page of the records of `kind` that `principal` may READ, having every facet of `filter`,
/// that `keep` accepts (a filter the list index cannot answer, such as a name search): the
/// readable records are read from the index in id order from the page's position, and at most
/// [`SCAN_BUDGET`] of them are examined. `next` is set when the page is full and records
/// follow it, or when the budget ran out first: a page may then hold fewer than `limit` items
/// (even none) while more may follow. Cost: O(examined × holders × log n), whatever the store
/// holds beyond what the caller may read.
pub fn readable_page_where<T: serde::de::DeserializeOwned>(
    store: &Store,
    table: TableDefinition<u128, &[u8]>,
    principal: &Principal,
    kind: Kind,
    filter: &[Facet],
    page: PageRequest,
    keep: impl Fn(&T) -> bool,
) -> Result<Page<T>> {
    let txn = store.read()?;
    let records = txn.open_table(table)?;
    let mut items = Vec::new();
    let mut after = page.after;
    let mut examined = 0usize;
    loop {
        let chunk = (SCAN_BUDGET - examined).min(crate::core::page::MAX_LIMIT);
        let request = PageRequest {
            after,
            limit: chunk,
        };
        let (ids, more) = readable_ids(&txn, principal, kind, filter, request)?;
        for (i, id) in ids.iter().enumerate() {
            examined += 1;
            after = Some(*id);
            if let Some(record) = get_record::<T>(&records, *id)?
                && keep(&record)
            {
                items.push(record);
                if items.len() == page.limit {
                    let follows = more || i + 1 < ids.len();
                    return Ok(Page {
                        items,
                        next: follows.then_some(*id),
                    });
                }
            }
        }
        if !more {
            return Ok(Page { items, next: None });
        }
        if examined >= SCAN_BUDGET {
            return Ok(Page { items, next: after });
        }
    }
}

/// A page of the records of `kind` that `holder` reads in its own name (see [`own_ids`]).
pub fn own_page<T: serde::de::DeserializeOwned>(
    store: &Store,
    table: TableDefinition<u128, &[u8]>,
    holder: Id,
    kind: Kind,
    page: PageRequest,
) -> Result<Page<T>> {
    let txn = store.read()?;
    let (ids, more) = own_ids(&txn, holder, kind, page)?;
    records_page(&txn, table, ids, more)
}

fn records_page<T: serde::de::DeserializeOwned>(
    txn: &ReadTransaction,
    table: TableDefinition<u128, &[u8]>,
    ids: Vec<Id>,
    more: bool,
) -> Result<Page<T>> {
    let records = txn.open_table(table)?;
    let mut items = Vec::with_capacity(ids.len());
    for id in &ids {
        if let Some(record) = get_record(&records, *id)? {
            items.push(record);
        }
    }
    Ok(Page {
        items,
        next: if more { ids.last().copied() } else { None },
    })
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

/// What only an administrator may do (`what` names it in the refusal): the appliance's own
/// state, such as its metrics, which no capability on an object grants.
pub fn require_admin(principal: &Principal, what: &str) -> Result<()> {
    if principal.admin && principal.kind == PrincipalKind::User {
        Ok(())
    } else {
        Err(Error::Forbidden(format!("{what} is for administrators")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::store::put_record;

    /// A table of records keyed by object id, as the domains keep them.
    const THINGS: TableDefinition<u128, &[u8]> = TableDefinition::new("test_things");

    struct World {
        _dir: tempfile::TempDir,
        store: Store,
    }

    fn world() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::domains::open_store(dir.path()).unwrap();
        World { _dir: dir, store }
    }

    fn user(name: &str) -> Principal {
        let id = Id::new();
        Principal {
            id,
            kind: PrincipalKind::User,
            name: name.to_owned(),
            admin: false,
            user: id,
        }
    }

    fn admin() -> Principal {
        Principal {
            admin: true,
            ..user("root")
        }
    }

    /// A servable acting for `owner`.
    fn servable(owner: &Principal) -> Principal {
        Principal {
            id: Id::new(),
            kind: PrincipalKind::Servable,
            name: "app".to_owned(),
            admin: false,
            user: owner.id,
        }
    }

    impl World {
        fn write(&self, f: impl FnOnce(&WriteTransaction)) {
            let txn = self.store.write().unwrap();
            f(&txn);
            txn.commit().unwrap();
        }

        fn object(&self, kind: Kind, owner: Option<&Principal>) -> Id {
            let id = Id::new();
            let meta = ObjectMeta {
                id,
                kind,
                owner: owner.map(|p| p.id),
                created: chrono::Utc::now(),
            };
            self.write(|txn| create_object(txn, &meta).unwrap());
            id
        }

        fn grant(&self, object: Id, principal: Id, caps: &[Capability]) {
            self.write(|txn| grant(txn, object, principal, Caps::of(caps)).unwrap());
        }

        fn caps(&self, principal: &Principal, object: Id) -> Caps {
            let txn = self.store.read().unwrap();
            let acl = Acl::read(&txn).unwrap();
            let meta = acl.object(object).unwrap().unwrap();
            acl.caps(principal, &meta).unwrap()
        }

        fn grants_on(&self, object: Id) -> Vec<(Id, Caps)> {
            grants_on(&self.store.read().unwrap(), object).unwrap()
        }

        fn check(&self, p: &Principal, id: Id, kind: Kind, cap: Capability) -> Result<ObjectMeta> {
            authorize(&self.store, p, id, kind, cap)
        }
    }

    fn caps(list: &[Capability]) -> Caps {
        Caps::of(list)
    }

    use Capability::{Create, Delete, Discover, Manage, Read, Request, Update};

    #[test]
    fn caps_are_bit_sets_of_the_seven_capabilities() {
        assert!(Caps::NONE.is_empty());
        assert_eq!(Caps::default(), Caps::NONE);
        assert_eq!(Caps::of(&Capability::ALL), Caps::ALL);
        assert_eq!(Caps::ALL.list(), Capability::ALL.to_vec());
        assert!(Caps::NONE.list().is_empty());
        let mut seen = Caps::NONE;
        for cap in Capability::ALL {
            let one = Caps::of(&[cap]);
            assert_eq!(one.list(), vec![cap]);
            assert!(one.contains(cap) && Caps::ALL.contains(cap));
            assert!(!Caps::NONE.contains(cap));
            assert!(seen.union(one) != seen, "{cap} shares a bit");
            seen = seen.union(one);
        }
        assert_eq!(seen, Caps::ALL);

        let rw = caps(&[Read, Update]);
        assert!(rw.contains(Read) && rw.contains(Update) && !rw.contains(Delete));
        assert_eq!(
            rw.union(caps(&[Update, Delete])),
            caps(&[Read, Update, Delete])
        );
        assert_eq!(rw.union(Caps::NONE), rw);
        assert_eq!(
            caps(&[Update, Read, Read]),
            rw,
            "order and repeats do not matter"
        );
        assert_eq!(rw.list(), vec![Read, Update], "listed in the model's order");
    }

    #[test]
    fn capabilities_parse_what_they_print() {
        for cap in Capability::ALL {
            assert_eq!(Capability::parse(cap.as_str()), Some(cap));
            assert_eq!(cap.to_string(), cap.as_str());
            assert_eq!(
                serde_json::to_string(&cap).unwrap(),
                format!("\"{}\"", cap.as_str())
            );
        }
        assert_eq!(Capability::parse("read"), None);
        assert_eq!(Capability::parse("ADMIN"), None);
        assert_eq!(Capability::parse(""), None);
    }

    #[test]
    fn the_owner_holds_every_capability() {
        let w = world();
        let alice = user("alice");
        let image = w.object(Kind::Image, Some(&alice));
        assert_eq!(w.caps(&alice, image), Caps::ALL);
        for cap in Capability::ALL {
            let meta = w.check(&alice, image, Kind::Image, cap).unwrap();
            assert_eq!(meta.id, image);
            assert_eq!(meta.kind, Kind::Image);
            assert_eq!(meta.owner, Some(alice.id));
        }
    }

    #[test]
    fn an_admin_holds_every_capability_on_anything() {
        let w = world();
        let alice = user("alice");
        let root = admin();
        let image = w.object(Kind::Image, Some(&alice));
        let system = w.object(Kind::Collection, None);
        assert_eq!(w.caps(&root, image), Caps::ALL);
        assert_eq!(w.caps(&root, system), Caps::ALL);
        for cap in Capability::ALL {
            w.check(&root, image, Kind::Image, cap).unwrap();
            w.check(&root, system, Kind::Collection, cap).unwrap();
        }
    }

    #[test]
    fn a_stranger_does_not_see_the_object() {
        let w = world();
        let alice = user("alice");
        let bob = user("bob");
        let image = w.object(Kind::Image, Some(&alice));
        assert_eq!(w.caps(&bob, image), Caps::NONE);
        for cap in Capability::ALL {
            match w.check(&bob, image, Kind::Image, cap) {
                Err(Error::NotFound(m)) => assert_eq!(m, "Image not found"),
                other => panic!("{cap}: {other:?}"),
            }
        }
        let txn = w.store.read().unwrap();
        let acl = Acl::read(&txn).unwrap();
        let meta = acl.object(image).unwrap().unwrap();
        assert!(!acl.visible(&bob, &meta).unwrap());
        assert!(acl.visible(&alice, &meta).unwrap());
    }

    #[test]
    fn a_missing_id_is_not_found_even_for_an_admin() {
        let w = world();
        match w.check(&admin(), Id::new(), Kind::Job, Read) {
            Err(Error::NotFound(m)) => assert_eq!(m, "Job not found"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn holding_another_capability_is_forbidden_not_hidden() {
        let w = world();
        let alice = user("alice");
        let bob = user("bob");
        let image = w.object(Kind::Image, Some(&alice));
        w.grant(image, bob.id, &[Read]);
        assert_eq!(w.caps(&bob, image), caps(&[Discover, Read]));
        w.check(&bob, image, Kind::Image, Read).unwrap();
        w.check(&bob, image, Kind::Image, Discover).unwrap();
        for cap in [Create, Update, Delete, Manage, Request] {
            match w.check(&bob, image, Kind::Image, cap) {
                Err(Error::Forbidden(m)) => {
                    assert_eq!(m, format!("you lack {cap} on this image"))
                }
                other => panic!("{cap}: {other:?}"),
            }
        }
    }

    #[test]
    fn every_capability_brings_discover_and_nothing_else() {
        let w = world();
        let alice = user("alice");
        let image = w.object(Kind::Image, Some(&alice));
        for cap in Capability::ALL {
            let holder = user("holder");
            w.grant(image, holder.id, &[cap]);
            assert_eq!(w.caps(&holder, image), caps(&[cap, Discover]), "{cap}");
            w.check(&holder, image, Kind::Image, Discover).unwrap();
        }
    }

    #[test]
    fn grants_add_up() {
        let w = world();
        let alice = user("alice");
        let bob = user("bob");
        let job = w.object(Kind::Job, Some(&alice));
        w.grant(job, bob.id, &[Read]);
        w.grant(job, bob.id, &[Update]);
        assert_eq!(w.grants_on(job), vec![(bob.id, caps(&[Read, Update]))]);
        assert_eq!(w.caps(&bob, job), caps(&[Discover, Read, Update]));
    }

    #[test]
    fn a_grant_to_all_users_reaches_users_but_not_servables() {
        let w = world();
        let alice = user("alice");
        let bob = user("bob");
        let image = w.object(Kind::Image, Some(&alice));
        w.grant(image, ALL_USERS, &[Read]);
        assert_eq!(w.caps(&bob, image), caps(&[Discover, Read]));
        w.check(&bob, image, Kind::Image, Read).unwrap();

        // A servable is no user, not even one of the owner's.
        for app in [servable(&bob), servable(&alice)] {
            assert_eq!(w.caps(&app, image), Caps::NONE);
            assert!(matches!(
                w.check(&app, image, Kind::Image, Read),
                Err(Error::NotFound(_))
            ));
        }
        // What is granted to the servable itself counts.
        let app = servable(&bob);
        w.grant(image, app.id, &[Request]);
        assert_eq!(w.caps(&app, image), caps(&[Discover, Request]));
    }

    #[test]
    fn every_user_may_register_prototypes_and_no_servable_may() {
        let w = world();
        let bob = user("bob");
        let meta = w.check(&bob, PROTOTYPES, Kind::Collection, Create).unwrap();
        assert_eq!(meta.owner, None);
        assert!(matches!(
            w.check(&bob, PROTOTYPES, Kind::Collection, Manage),
            Err(Error::Forbidden(_))
        ));
        assert!(matches!(
            w.check(&servable(&bob), PROTOTYPES, Kind::Collection, Create),
            Err(Error::NotFound(_))
        ));
        // An admin may revoke it, and opening the store again does not grant it anew.
        w.write(|txn| {
            revoke(txn, PROTOTYPES, ALL_USERS, Caps::ALL).unwrap();
        });
        let World { _dir: dir, store } = w;
        drop(store);
        let w = World {
            store: crate::domains::open_store(dir.path()).unwrap(),
            _dir: dir,
        };
        assert!(matches!(
            w.check(&bob, PROTOTYPES, Kind::Collection, Create),
            Err(Error::NotFound(_))
        ));
    }

    #[test]
    fn a_trusts_grants_pass_to_its_members() {
        let w = world();
        let alice = user("alice");
        let bob = user("bob");
        let carol = user("carol");
        let trust = w.object(Kind::Trust, Some(&alice));
        let data = w.object(Kind::Job, Some(&alice));
        w.grant(data, trust, &[Read]);
        assert_eq!(w.caps(&bob, data), Caps::NONE);

        w.write(|txn| set_membership(txn, trust, bob.id, Role::Member).unwrap());
        assert_eq!(w.caps(&bob, data), caps(&[Discover, Read]));
        w.check(&bob, data, Kind::Job, Read).unwrap();
        assert!(matches!(
            w.check(&bob, data, Kind::Job, Update),
            Err(Error::Forbidden(_))
        ));
        assert_eq!(w.caps(&carol, data), Caps::NONE, "not a member");

        // A servable member counts too: membership is by principal, whatever its kind.
        let app = servable(&carol);
        w.write(|txn| set_membership(txn, trust, app.id, Role::Member).unwrap());
        assert_eq!(w.caps(&app, data), caps(&[Discover, Read]));

        let txn = w.store.read().unwrap();
        let mut members = members_of(&txn, trust).unwrap();
        members.sort_by_key(|(id, _)| *id);
        assert_eq!(
            members,
            vec![(bob.id, Role::Member), (app.id, Role::Member)]
        );
        drop(txn);

        w.write(|txn| assert!(remove_membership(txn, trust, bob.id).unwrap()));
        w.write(|txn| assert!(!remove_membership(txn, trust, bob.id).unwrap()));
        assert_eq!(w.caps(&bob, data), Caps::NONE);
    }

    #[test]
    fn trustees_manage_what_is_placed_in_the_trust_and_nothing_else() {
        let w = world();
        let alice = user("alice");
        let trustee = user("trustee");
        let member = user("member");
        let trust = w.object(Kind::Trust, Some(&alice));
        let inside = w.object(Kind::Image, Some(&alice));
        let outside = w.object(Kind::Image, Some(&alice));
        w.write(|txn| {
            set_membership(txn, trust, trustee.id, Role::Trustee).unwrap();
            set_membership(txn, trust, member.id, Role::Member).unwrap();
            assert!(set_trust_object(txn, trust, inside, true).unwrap());
            assert!(
                !set_trust_object(txn, trust, inside, true).unwrap(),
                "already in"
            );
        });
        assert_eq!(
            trust_objects(&w.store.read().unwrap(), trust).unwrap(),
            vec![inside]
        );

        assert_eq!(w.caps(&trustee, inside), caps(&[Discover, Manage]));
        w.check(&trustee, inside, Kind::Image, Manage).unwrap();
        assert!(matches!(
            w.check(&trustee, inside, Kind::Image, Delete),
            Err(Error::Forbidden(_))
        ));
        assert_eq!(w.caps(&trustee, outside), Caps::NONE);
        assert!(matches!(
            w.check(&trustee, outside, Kind::Image, Manage),
            Err(Error::NotFound(_))
        ));
        assert_eq!(w.caps(&member, inside), Caps::NONE, "members do not manage");

        // Promoting a member keeps the trustee role; adding a trustee as member keeps it too.
        w.write(|txn| {
            set_membership(txn, trust, member.id, Role::Trustee).unwrap();
            set_membership(txn, trust, trustee.id, Role::Member).unwrap();
        });
        assert_eq!(w.caps(&member, inside), caps(&[Discover, Manage]));
        assert_eq!(w.caps(&trustee, inside), caps(&[Discover, Manage]));

        w.write(|txn| {
            assert!(set_trust_object(txn, trust, inside, false).unwrap());
            assert!(!set_trust_object(txn, trust, inside, false).unwrap());
        });
        assert_eq!(w.caps(&trustee, inside), Caps::NONE);
    }

    #[test]
    fn forgetting_a_trust_takes_away_what_it_gave() {
        let w = world();
        let alice = user("alice");
        let bob = user("bob");
        let trust = w.object(Kind::Trust, Some(&alice));
        let granted = w.object(Kind::Image, Some(&alice));
        let placed = w.object(Kind::Image, Some(&alice));
        w.grant(granted, trust, &[Read]);
        w.write(|txn| {
            set_membership(txn, trust, bob.id, Role::Trustee).unwrap();
            set_trust_object(txn, trust, placed, true).unwrap();
        });
        assert!(!w.caps(&bob, granted).is_empty());
        assert!(!w.caps(&bob, placed).is_empty());
        w.write(|txn| {
            forget_trust(txn, trust).unwrap();
            forget_principal(txn, trust).unwrap();
        });
        assert_eq!(w.caps(&bob, granted), Caps::NONE);
        assert_eq!(w.caps(&bob, placed), Caps::NONE);
        assert!(w.grants_on(granted).is_empty());
        let txn = w.store.read().unwrap();
        assert!(members_of(&txn, trust).unwrap().is_empty());
        assert!(trust_objects(&txn, trust).unwrap().is_empty());
    }

    #[test]
    fn an_object_of_another_kind_is_not_found() {
        let w = world();
        let alice = user("alice");
        let job = w.object(Kind::Job, Some(&alice));
        for who in [&alice, &admin()] {
            match w.check(who, job, Kind::Image, Read) {
                Err(Error::NotFound(m)) => assert_eq!(m, "Image not found"),
                other => panic!("{other:?}"),
            }
        }
        w.check(&alice, job, Kind::Job, Read).unwrap();
    }

    #[test]
    fn revoking_removes_capabilities_and_the_empty_grant() {
        let w = world();
        let alice = user("alice");
        let bob = user("bob");
        let carol = user("carol");
        let image = w.object(Kind::Image, Some(&alice));
        w.grant(image, bob.id, &[Read, Update]);
        w.grant(image, carol.id, &[Read]);

        w.write(|txn| {
            assert_eq!(
                revoke(txn, image, bob.id, caps(&[Update])).unwrap(),
                caps(&[Read])
            );
        });
        assert_eq!(w.caps(&bob, image), caps(&[Discover, Read]));
        assert!(matches!(
            w.check(&bob, image, Kind::Image, Update),
            Err(Error::Forbidden(_))
        ));

        w.write(|txn| {
            assert_eq!(
                revoke(txn, image, bob.id, caps(&[Read])).unwrap(),
                Caps::NONE
            );
        });
        assert_eq!(
            w.grants_on(image),
            vec![(carol.id, caps(&[Read]))],
            "row gone"
        );
        assert!(matches!(
            w.check(&bob, image, Kind::Image, Read),
            Err(Error::NotFound(_))
        ));

        // Revoking what was never held leaves nothing behind either.
        w.write(|txn| {
            assert_eq!(
                revoke(txn, image, bob.id, caps(&[Read])).unwrap(),
                Caps::NONE
            );
        });
        assert_eq!(w.grants_on(image).len(), 1);
    }

    #[test]
    fn deleting_an_object_removes_it_and_its_grants_only() {
        let w = world();
        let alice = user("alice");
        let bob = user("bob");
        let carol = user("carol");
        let doomed = w.object(Kind::Image, Some(&alice));
        let kept = w.object(Kind::Image, Some(&alice));
        w.grant(doomed, bob.id, &[Read]);
        w.grant(doomed, carol.id, &[Update]);
        w.grant(doomed, ALL_USERS, &[Discover]);
        w.grant(kept, bob.id, &[Read]);

        w.write(|txn| delete_object(txn, doomed).unwrap());
        assert!(w.grants_on(doomed).is_empty());
        assert_eq!(w.grants_on(kept), vec![(bob.id, caps(&[Read]))]);
        for who in [&alice, &bob, &admin()] {
            assert!(matches!(
                w.check(who, doomed, Kind::Image, Discover),
                Err(Error::NotFound(_))
            ));
        }
        w.check(&bob, kept, Kind::Image, Read).unwrap();
    }

    #[test]
    fn forgetting_a_principal_drops_its_grants_everywhere() {
        let w = world();
        let alice = user("alice");
        let bob = user("bob");
        let a = w.object(Kind::Image, Some(&alice));
        let b = w.object(Kind::Job, Some(&alice));
        w.grant(a, bob.id, &[Read]);
        w.grant(b, bob.id, &[Update]);
        w.grant(a, ALL_USERS, &[Discover]);
        w.write(|txn| forget_principal(txn, bob.id).unwrap());
        assert_eq!(w.grants_on(a), vec![(ALL_USERS, caps(&[Discover]))]);
        assert!(w.grants_on(b).is_empty());
    }

    #[test]
    fn the_check_in_a_write_transaction_sees_its_own_writes() {
        let w = world();
        let alice = user("alice");
        let bob = user("bob");
        let image = w.object(Kind::Image, Some(&alice));
        let txn = w.store.write().unwrap();
        grant(&txn, image, bob.id, caps(&[Update])).unwrap();
        {
            let acl = Acl::write(&txn).unwrap();
            acl.check(&bob, image, Kind::Image, Update).unwrap();
        }
        drop(txn); // aborted
        assert!(matches!(
            w.check(&bob, image, Kind::Image, Update),
            Err(Error::NotFound(_))
        ));
    }

    #[test]
    fn granting_and_revoking_takes_manage() {
        let w = world();
        let alice = user("alice");
        let bob = user("bob");
        let carol = user("carol");
        let image = w.object(Kind::Image, Some(&alice));

        match grant_by(&w.store, &bob, image, carol.id, caps(&[Read])) {
            Err(Error::NotFound(m)) => assert_eq!(m, "Object not found", "kind not named"),
            other => panic!("{other:?}"),
        }
        w.grant(image, bob.id, &[Read]);
        assert!(matches!(
            grant_by(&w.store, &bob, image, carol.id, caps(&[Read])),
            Err(Error::Forbidden(_))
        ));
        assert!(w.caps(&carol, image).is_empty());

        grant_by(&w.store, &alice, image, bob.id, caps(&[Manage])).unwrap();
        let meta = grant_by(&w.store, &bob, image, carol.id, caps(&[Read])).unwrap();
        assert_eq!(meta.id, image);
        assert_eq!(w.caps(&carol, image), caps(&[Discover, Read]));
        revoke_by(&w.store, &bob, image, carol.id, caps(&[Read])).unwrap();
        assert!(w.caps(&carol, image).is_empty());
        assert_eq!(managed(&w.store, &bob, image).unwrap().kind, Kind::Image);
        assert!(matches!(
            managed(&w.store, &carol, image),
            Err(Error::NotFound(_))
        ));
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Thing {
        name: String,
    }

    #[test]
    fn readable_page_returns_what_the_principal_may_read_in_id_order() {
        let w = world();
        let alice = user("alice");
        let bob = user("bob");
        let mine = w.object(Kind::Image, Some(&bob));
        let shared = w.object(Kind::Image, Some(&alice));
        let seen_only = w.object(Kind::Image, Some(&alice));
        let private = w.object(Kind::Image, Some(&alice));
        let public = w.object(Kind::Image, Some(&alice));
        let other_kind = w.object(Kind::Job, Some(&bob));
        w.grant(shared, bob.id, &[Read]);
        w.grant(seen_only, bob.id, &[Discover, Update]);
        w.grant(public, ALL_USERS, &[Read]);
        let all = [mine, shared, seen_only, private, public, other_kind];
        w.write(|txn| {
            txn.open_table(THINGS).unwrap();
            for id in all.iter().rev() {
                let thing = Thing {
                    name: id.to_string(),
                };
                put_record(txn, THINGS, *id, &thing).unwrap();
            }
        });
        let names = |p: &Principal, page: PageRequest| -> (Vec<String>, Option<Id>) {
            let page = readable_page::<Thing>(&w.store, THINGS, p, Kind::Image, &[], page).unwrap();
            (page.items.into_iter().map(|t| t.name).collect(), page.next)
        };
        let ids = |list: &[Id]| -> Vec<String> { list.iter().map(Id::to_string).collect() };
        let all_of = PageRequest::default();
        assert_eq!(names(&bob, all_of).0, ids(&[mine, shared, public]));
        assert_eq!(
            names(&alice, all_of).0,
            ids(&[shared, seen_only, private, public])
        );
        assert_eq!(names(&servable(&bob), all_of).0, Vec::<String>::new());
        assert_eq!(names(&admin(), all_of).0, ids(&all[..5]));
        // Pages of two: the cursor is the last id of a page that has more after it.
        let first = names(&alice, PageRequest::first(2));
        assert_eq!(first, (ids(&[shared, seen_only]), Some(seen_only)));
        let second = PageRequest {
            after: first.1,
            limit: 2,
        };
        assert_eq!(names(&alice, second), (ids(&[private, public]), None));
    }

    /// The newest first: what the principal may read, merged across its sources without
    /// repeats, cut at the limit and at the lower bound, filtered by a facet.
    #[test]
    fn the_newest_readable_come_newest_first_from_every_source() {
        let w = world();
        let alice = user("alice");
        let bob = user("bob");
        let mut made = Vec::new();
        for i in 0..6 {
            let owner = if i % 2 == 0 { &alice } else { &bob };
            made.push(w.object(Kind::Job, Some(owner)));
        }
        // Bob reads one of Alice's through a grant, one through every user, twice over.
        w.grant(made[0], bob.id, &[Read]);
        w.grant(made[2], ALL_USERS, &[Read]);
        w.grant(made[2], bob.id, &[Read]);
        w.write(|txn| {
            txn.open_table(THINGS).unwrap();
            for id in &made {
                put_record(
                    txn,
                    THINGS,
                    *id,
                    &Thing {
                        name: id.to_string(),
                    },
                )
                .unwrap();
                set_facets(txn, *id, &[Facet::State(u8::from(id == &made[3]))]).unwrap();
            }
        });
        let newest = |p: &Principal, facet, since, limit| {
            let txn = w.store.read().unwrap();
            newest_readable_ids(&txn, p, Kind::Job, facet, since, limit).unwrap()
        };
        let all = Id(0);
        assert_eq!(
            newest(&bob, None, all, 10),
            vec![made[5], made[3], made[2], made[1], made[0]]
        );
        assert_eq!(newest(&bob, None, all, 2), vec![made[5], made[3]]);
        assert_eq!(
            newest(&alice, None, all, 10),
            vec![made[4], made[2], made[0]]
        );
        assert_eq!(
            newest(&admin(), None, all, 3),
            vec![made[5], made[4], made[3]]
        );
        assert_eq!(
            newest(&bob, None, made[2], 10),
            vec![made[5], made[3], made[2]]
        );
        assert_eq!(newest(&bob, Some(Facet::State(1)), all, 10), vec![made[3]]);
        assert!(newest(&alice, Some(Facet::State(1)), all, 10).is_empty());
        assert!(newest(&bob, None, all, 0).is_empty());
        let records: Vec<Thing> =
            newest_readable(&w.store, THINGS, &bob, Kind::Job, None, 2).unwrap();
        let names: Vec<String> = records.into_iter().map(|t| t.name).collect();
        assert_eq!(names, vec![made[5].to_string(), made[3].to_string()]);
    }

    /// A filter the index cannot answer: pages hold what matches among what the principal may
    /// read, and a page that examined `SCAN_BUDGET` records answers with a cursor that leads on.
    #[test]
    fn readable_page_where_filters_what_may_be_read_within_a_budget() {
        let w = world();
        let alice = user("alice");
        let bob = user("bob");
        // Alice owns nine in ten: more than the budget.
        let n = SCAN_BUDGET + SCAN_BUDGET / 5;
        let last = n - 2;
        let mut made = Vec::new();
        w.write(|txn| {
            for i in 0..n {
                let id = Id::new();
                let owner = if i % 10 == 9 { &bob } else { &alice };
                let meta = ObjectMeta {
                    id,
                    kind: Kind::Image,
                    owner: Some(owner.id),
                    created: chrono::Utc::now(),
                };
                create_object(txn, &meta).unwrap();
                let name = if i == 3 || i == 4 || i == 9 || i == last {
                    format!("match {i}")
                } else {
                    format!("other {i}")
                };
                put_record(txn, THINGS, id, &Thing { name }).unwrap();
                made.push(id);
            }
        });
        let search = |p: &Principal, page: PageRequest| {
            let page =
                readable_page_where(&w.store, THINGS, p, Kind::Image, &[], page, |t: &Thing| {
                    t.name.starts_with("match")
                })
                .unwrap();
            let names: Vec<String> = page.items.into_iter().map(|t| t.name).collect();
            (names, page.next)
        };
        // Alice does not read bob's `match 9`; a full page says where to go on.
        let first = search(&alice, PageRequest::first(1));
        assert_eq!(first, (vec!["match 3".to_owned()], Some(made[3])));
        let after = |id| PageRequest {
            after: Some(id),
            limit: 10,
        };
        // The budget runs out before the last match: what was found, and the cursor of the last
        // record examined.
        let (names, next) = search(&alice, after(made[3]));
        assert_eq!(names, vec!["match 4".to_owned()]);
        let next = next.expect("the budget ran out");
        assert!(next > made[4] && next < made[last]);
        let (names, next) = search(&alice, after(next));
        assert_eq!((names, next), (vec![format!("match {last}")], None));
        assert_eq!(
            search(&bob, PageRequest::default()).0,
            vec!["match 9".to_owned()]
        );
    }

    /// The index against the check it stands for: after every step of a random history of
    /// objects, grants, revocations, trust memberships, facet changes and deletions, each
    /// principal's pages (with and without filters) hold exactly the objects the check lets it
    /// READ, in id order.
    #[test]
    fn the_list_index_agrees_with_the_check_through_a_random_history() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        let w = world();
        let mut rng = StdRng::seed_from_u64(11);
        let users: Vec<Principal> = (0..4).map(|i| user(&format!("u{i}"))).collect();
        let mut principals: Vec<Principal> = users.clone();
        principals.push(servable(&users[0]));
        principals.push(admin());
        let trusts: Vec<Id> = (0..2)
            .map(|_| w.object(Kind::Trust, Some(&users[0])))
            .collect();
        let parents: Vec<Id> = (0..3).map(|_| Id::new()).collect();
        let mut objects: Vec<(Id, Kind)> = Vec::new();
        // Owners are granted capabilities too, and have them taken away: they still read.
        let mut owners: std::collections::HashMap<Id, Id> = std::collections::HashMap::new();
        let grantees = |rng: &mut StdRng, principals: &[Principal]| -> Id {
            match rng.random_range(0..4) {
                0 => ALL_USERS,
                1 => trusts[rng.random_range(0..trusts.len())],
                _ => principals[rng.random_range(0..principals.len())].id,
            }
        };
        let cap_sets = [
            caps(&[Read]),
            caps(&[Discover]),
            caps(&[Read, Update]),
            caps(&[Update]),
            Caps::ALL,
        ];
        for step in 0..400 {
            match rng.random_range(0..10) {
                0..=2 => {
                    let kind = if rng.random_bool(0.5) {
                        Kind::Job
                    } else {
                        Kind::Image
                    };
                    let owner = &users[rng.random_range(0..users.len())];
                    let id = Id::new();
                    let facets = [
                        Facet::State(rng.random_range(1..4)),
                        Facet::Parent(parents[rng.random_range(0..parents.len())]),
                    ];
                    let meta = ObjectMeta {
                        id,
                        kind,
                        owner: Some(owner.id),
                        created: chrono::Utc::now(),
                    };
                    // Half are registered before their facets are first set, half after.
                    let early = rng.random_bool(0.5);
                    w.write(|txn| {
                        if early {
                            create_object(txn, &meta).unwrap();
                        }
                        set_facets(txn, id, &facets).unwrap();
                        if !early {
                            create_object(txn, &meta).unwrap();
                        }
                    });
                    objects.push((id, kind));
                    owners.insert(id, owner.id);
                }
                3..=4 if !objects.is_empty() => {
                    let (id, _) = objects[rng.random_range(0..objects.len())];
                    let to = if rng.random_bool(0.25) {
                        owners[&id]
                    } else {
                        grantees(&mut rng, &principals)
                    };
                    let c = cap_sets[rng.random_range(0..cap_sets.len())];
                    w.write(|txn| {
                        grant(txn, id, to, c).unwrap();
                    });
                }
                5 if !objects.is_empty() => {
                    let (id, _) = objects[rng.random_range(0..objects.len())];
                    let from = if rng.random_bool(0.25) {
                        owners[&id]
                    } else {
                        grantees(&mut rng, &principals)
                    };
                    let c = cap_sets[rng.random_range(0..cap_sets.len())];
                    w.write(|txn| {
                        revoke(txn, id, from, c).unwrap();
                    });
                }
                6 => {
                    let p = &principals[rng.random_range(0..principals.len())];
                    let t = trusts[rng.random_range(0..trusts.len())];
                    let placed = objects.get(step % objects.len().max(1)).map(|o| o.0);
                    w.write(|txn| {
                        if rng.random_bool(0.7) {
                            set_membership(txn, t, p.id, Role::Member).unwrap();
                        } else {
                            remove_membership(txn, t, p.id).unwrap();
                        }
                        if let Some(object) = placed {
                            set_trust_object(txn, t, object, rng.random_bool(0.6)).unwrap();
                        }
                    });
                }
                7 if !objects.is_empty() => {
                    let (id, _) = objects[rng.random_range(0..objects.len())];
                    let facet = if rng.random_bool(0.5) {
                        Facet::State(rng.random_range(1..4))
                    } else {
                        Facet::Parent(parents[rng.random_range(0..parents.len())])
                    };
                    w.write(|txn| set_facets(txn, id, &[facet]).unwrap());
                }
                8 if !objects.is_empty() => {
                    let i = rng.random_range(0..objects.len());
                    let (id, _) = objects.remove(i);
                    w.write(|txn| delete_object(txn, id).unwrap());
                }
                9 if step % 7 == 0 => {
                    // A servable principal that is gone takes its grants with it.
                    let gone = principals[4].id;
                    w.write(|txn| forget_principal(txn, gone).unwrap());
                }
                9 if step % 97 == 0 => {
                    // A trust deleted: its members and placements go.
                    let t = trusts[rng.random_range(0..trusts.len())];
                    w.write(|txn| forget_trust(txn, t).unwrap());
                }
                _ => {}
            }
            if step % 50 == 49 {
                assert_index_matches_check(&w, &principals, &objects, &parents);
            }
        }
        assert_index_matches_check(&w, &principals, &objects, &parents);

        // Rebuilt from the objects and grants (as a store of schema 1 is), the index answers
        // the same.
        w.write(|txn| {
            txn.delete_table(
                redb::TableDefinition::<(u128, u8, u8, u128, u128), ()>::new("list_index"),
            )
            .unwrap();
            index::init_tables(txn).unwrap();
            index::rebuild(txn).unwrap();
            for mirror in [GRANTS_HELD, TRUST_MEMBERS, TRUST_PLACED] {
                txn.delete_table(mirror).unwrap();
            }
            mirror_all(txn).unwrap();
        });
        assert_index_matches_check(&w, &principals, &objects, &parents);
    }

    fn facets_of(w: &World, id: Id) -> Vec<(u8, u128)> {
        let txn = w.store.read().unwrap();
        let table = txn
            .open_table(redb::TableDefinition::<(u128, u8), u128>::new(
                "object_facets",
            ))
            .unwrap();
        table
            .range((id.0, 0)..=(id.0, u8::MAX))
            .unwrap()
            .map(|e| {
                let (k, v) = e.unwrap();
                (k.value().1, v.value())
            })
            .collect()
    }

    /// Each reversed table holds exactly the keys of the one it mirrors, swapped.
    fn assert_mirrors_agree(w: &World) {
        let txn = w.store.read().unwrap();
        for (table, mirror) in [
            (GRANTS, GRANTS_HELD),
            (MEMBERSHIPS, TRUST_MEMBERS),
            (TRUST_OBJECTS, TRUST_PLACED),
        ] {
            let mut forward: Vec<(u128, u128)> = txn
                .open_table(table)
                .unwrap()
                .iter()
                .unwrap()
                .map(|e| {
                    let (a, b) = e.unwrap().0.value();
                    (b, a)
                })
                .collect();
            forward.sort();
            let backward: Vec<(u128, u128)> = txn
                .open_table(mirror)
                .unwrap()
                .iter()
                .unwrap()
                .map(|e| e.unwrap().0.value())
                .collect();
            assert_eq!(
                forward,
                backward,
                "{} and its mirror",
                redb::TableHandle::name(&table)
            );
        }
    }

    fn assert_index_matches_check(
        w: &World,
        principals: &[Principal],
        objects: &[(Id, Kind)],
        parents: &[Id],
    ) {
        assert_mirrors_agree(w);
        let mut filters: Vec<Vec<Facet>> = vec![vec![]];
        for s in 1..4 {
            filters.push(vec![Facet::State(s)]);
            for p in parents {
                filters.push(vec![Facet::State(s), Facet::Parent(*p)]);
            }
        }
        for p in parents {
            filters.push(vec![Facet::Parent(*p)]);
        }
        for principal in principals {
            for kind in [Kind::Job, Kind::Image] {
                for filter in &filters {
                    let mut expected: Vec<Id> = objects
                        .iter()
                        .filter(|(id, k)| {
                            *k == kind
                                && w.caps(principal, *id).contains(Read)
                                && filter
                                    .iter()
                                    .all(|f| facets_of(w, *id).contains(&(f.tag(), f.value())))
                        })
                        .map(|(id, _)| *id)
                        .collect();
                    expected.sort();
                    // Read in pages of 3, following the cursor.
                    let txn = w.store.read().unwrap();
                    let mut got = Vec::new();
                    let mut page = PageRequest::first(3);
                    loop {
                        let (ids, more) =
                            readable_ids(&txn, principal, kind, filter, page).unwrap();
                        assert!(ids.len() <= 3);
                        assert_eq!(more, !ids.is_empty() && more, "more without items");
                        got.extend(ids.iter().copied());
                        if !more {
                            break;
                        }
                        page.after = ids.last().copied();
                    }
                    assert_eq!(
                        got, expected,
                        "{} listing {kind:?} with {filter:?}",
                        principal.name
                    );
                }
            }
        }
    }
}
