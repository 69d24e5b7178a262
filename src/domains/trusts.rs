//! Trusts: named groups of principals and objects (SPEC.md, DTaaS facts).
//!
//! A trust is an object and a principal. What is granted to the trust applies to each member;
//! trustees (its creator first) hold MANAGE on the trust and on every object placed in it, and
//! add members, trustees and objects. The trust is placed in itself, so that rule covers it too,
//! and members read it through a grant to the trust itself. The membership tables live in
//! [`super::authz`], whose one check reads them.

use crate::core::clock::Timestamp;
use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::core::names;
use crate::core::page::{Page, PageRequest};
use crate::core::store::{Opening, Store, StoreError, get_record, put_record};
use crate::domains::authz::{self, Acl, Capability, Caps, Kind, Principal, Role};
use redb::{TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

const TRUSTS: TableDefinition<u128, &[u8]> = TableDefinition::new("trusts");

pub(crate) fn init_tables(txn: &WriteTransaction, _: Opening) -> Result<(), StoreError> {
    txn.open_table(TRUSTS)?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trust {
    pub id: Id,
    pub name: String,
    pub owner: Id,
    pub created: Timestamp,
}

/// A trust with who and what is in it.
#[derive(Debug, Clone)]
pub struct TrustView {
    pub trust: Trust,
    pub members: Vec<(Id, Role)>,
    pub objects: Vec<Id>,
}

pub fn create_trust(
    store: &Store,
    caller: &Principal,
    name: &str,
    now: Timestamp,
) -> Result<Trust> {
    let name = names::display_name(name)?;
    let trust = Trust {
        id: Id::new(),
        name: name.to_owned(),
        owner: caller.owner(),
        created: now,
    };
    let txn = store.write()?;
    put_record(&txn, TRUSTS, trust.id, &trust)?;
    crate::domains::servables::record_creation(&txn, caller, trust.id, Kind::Trust, name, now)?;
    authz::set_membership(&txn, trust.id, caller.id, Role::Trustee)?;
    authz::set_trust_object(&txn, trust.id, trust.id, true)?;
    authz::grant(
        &txn,
        trust.id,
        trust.id,
        Caps::of(&[Capability::Discover, Capability::Read]),
    )?;
    txn.commit()?;
    Ok(trust)
}

pub fn get_trust(store: &Store, caller: &Principal, id: Id) -> Result<TrustView> {
    authz::authorize(store, caller, id, Kind::Trust, Capability::Read)?;
    view(store, id)
}

fn view(store: &Store, id: Id) -> Result<TrustView> {
    let txn = store.read()?;
    let trust: Trust = get_record(&txn.open_table(TRUSTS)?, id)?
        .ok_or_else(|| Error::not_found("Trust not found"))?;
    Ok(TrustView {
        members: authz::members_of(&txn, id)?,
        objects: authz::trust_objects(&txn, id)?
            .into_iter()
            .filter(|o| *o != id)
            .collect(),
        trust,
    })
}

pub fn trust_name(store: &Store, id: Id) -> Result<Option<String>> {
    let txn = store.read()?;
    Ok(get_record::<Trust>(&txn.open_table(TRUSTS)?, id)?.map(|t| t.name))
}

/// A page of the trusts the caller may read.
pub fn list_trusts(store: &Store, caller: &Principal, page: PageRequest) -> Result<Page<Trust>> {
    authz::readable_page(store, TRUSTS, caller, Kind::Trust, &[], page)
}

/// Adds a member or a trustee (MANAGE on the trust). The principal must exist and be visible.
pub fn add_member(
    store: &Store,
    caller: &Principal,
    trust: Id,
    principal: Id,
    role: Role,
) -> Result<TrustView> {
    {
        let txn = store.read()?;
        let acl = Acl::read(&txn)?;
        acl.check(caller, trust, Kind::Trust, Capability::Manage)?;
        let meta = acl
            .object(principal)?
            .filter(|m| matches!(m.kind, Kind::User | Kind::Servable))
            .ok_or_else(|| Error::not_found("no such user, servable or trust"))?;
        if !acl.visible(caller, &meta)? {
            return Err(Error::not_found("no such user, servable or trust"));
        }
    }
    let txn = store.write()?;
    authz::set_membership(&txn, trust, principal, role)?;
    txn.commit()?;
    view(store, trust)
}

/// Removes a member (MANAGE on the trust); the last trustee stays.
pub fn remove_member(
    store: &Store,
    caller: &Principal,
    trust: Id,
    principal: Id,
) -> Result<TrustView> {
    authz::authorize(store, caller, trust, Kind::Trust, Capability::Manage)?;
    let txn = store.write()?;
    {
        let read = store.read()?;
        let members = authz::members_of(&read, trust)?;
        let trustees: Vec<Id> = members
            .iter()
            .filter(|(_, r)| *r == Role::Trustee)
            .map(|(p, _)| *p)
            .collect();
        if trustees == [principal] {
            return Err(Error::conflict("a trust keeps at least one trustee"));
        }
        if !members.iter().any(|(p, _)| *p == principal) {
            return Err(Error::not_found("not a member of this trust"));
        }
    }
    authz::remove_membership(&txn, trust, principal)?;
    txn.commit()?;
    view(store, trust)
}

/// Places an object in the trust: MANAGE on the trust and on the object.
pub fn add_object(store: &Store, caller: &Principal, trust: Id, object: Id) -> Result<TrustView> {
    {
        let txn = store.read()?;
        let acl = Acl::read(&txn)?;
        acl.check(caller, trust, Kind::Trust, Capability::Manage)?;
        let meta = acl
            .object(object)?
            .ok_or_else(|| Error::not_found("Object not found"))?;
        acl.check(caller, object, meta.kind, Capability::Manage)
            .map_err(|e| match e {
                Error::NotFound(_) => Error::not_found("Object not found"),
                other => other,
            })?;
    }
    let txn = store.write()?;
    authz::set_trust_object(&txn, trust, object, true)?;
    txn.commit()?;
    view(store, trust)
}

pub fn remove_object(
    store: &Store,
    caller: &Principal,
    trust: Id,
    object: Id,
) -> Result<TrustView> {
    authz::authorize(store, caller, trust, Kind::Trust, Capability::Manage)?;
    if object == trust {
        return Err(Error::conflict("a trust cannot leave itself"));
    }
    let txn = store.write()?;
    if !authz::set_trust_object(&txn, trust, object, false)? {
        return Err(Error::not_found("that object is not in this trust"));
    }
    txn.commit()?;
    view(store, trust)
}

/// Deletes a trust (DELETE on it): its members lose what was granted through it.
pub fn delete_trust(store: &Store, caller: &Principal, id: Id) -> Result<()> {
    authz::authorize(store, caller, id, Kind::Trust, Capability::Delete)?;
    let txn = store.write()?;
    txn.open_table(TRUSTS)?.remove(id.0)?;
    authz::forget_trust(&txn, id)?;
    authz::forget_principal(&txn, id)?;
    authz::delete_object(&txn, id)?;
    txn.commit()?;
    Ok(())
}
