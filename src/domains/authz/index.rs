//! The list index: for every principal, the objects of each kind it may READ, so that a list
//! reads only the entries of the page it returns, whatever the size of the store.
//!
//! An entry `(holder, kind, tag, value, object)` exists when `holder` may READ `object` by
//! ownership or by an explicit grant holding READ: the owner, every principal granted READ
//! (including [`ALL_USERS`](super::ALL_USERS) and trusts), and [`EVERY`] (what admins list).
//! Each object is indexed once for its kind (tag 0) and once per [`Facet`] (its state, its
//! type, its parent), so filtered lists page through the index as well. Entries are written in
//! the same transactions as the objects, grants and records they follow.
//!
//! A reader's list is the union of the ranges of the principals whose READ it inherits (itself,
//! every user, its trusts), intersected across the facets it filters on; both are merges over
//! sorted ids, so a page costs O(page × sources × log n).

use super::{GRANTS, Kind, MEMBERSHIPS, OBJECTS, ObjectMeta, Principal, PrincipalKind};
use crate::core::error::Result;
use crate::core::id::Id;
use crate::core::page::PageRequest;
use crate::core::store::decode;
use redb::{ReadOnlyTable, ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};

/// A key of the list index: (holder, kind, facet tag, facet value, object).
type ListKey = (u128, u8, u8, u128, u128);
/// The prefix of a run of entries: (holder, kind, facet tag, facet value).
type RunKey = (u128, u8, u8, u128);

const LIST: TableDefinition<ListKey, ()> = TableDefinition::new("list_index");
/// An object's current facets: (object, tag) -> value.
const FACETS: TableDefinition<(u128, u8), u128> = TableDefinition::new("object_facets");

/// How many objects of a kind have each state and type, and how many there are of the kind:
/// (kind, facet tag, facet value) -> count, kept with the [`EVERY`] entries it counts, so
/// that `/metrics` reads a few rows however large the store.
const COUNTS: TableDefinition<(u8, u8, u128), u64> = TableDefinition::new("list_counts");

/// The holder under which every object is indexed: what an admin lists.
const EVERY: u128 = 0;
/// The tag of an object's entry for its kind alone.
const KIND_TAG: u8 = 0;

/// A property of an object that its lists filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Facet {
    /// A lifecycle state, as the owning domain numbers it.
    State(u8),
    /// A type, as the owning domain numbers it.
    Type(u8),
    /// The object it belongs to: a job's pipeline, an instance's servable.
    Parent(Id),
}

impl Facet {
    pub(super) fn tag(self) -> u8 {
        match self {
            Facet::State(_) => 1,
            Facet::Type(_) => 2,
            Facet::Parent(_) => 3,
        }
    }

    pub(super) fn value(self) -> u128 {
        match self {
            Facet::State(v) | Facet::Type(v) => u128::from(v),
            Facet::Parent(id) => id.0,
        }
    }
}

/// Stable numbers for the kinds in index keys (never reuse one).
fn kind_code(kind: Kind) -> u8 {
    match kind {
        Kind::User => 1,
        Kind::ApiKey => 2,
        Kind::Image => 3,
        Kind::Build => 4,
        Kind::Pipeline => 5,
        Kind::Job => 6,
        Kind::Prototype => 7,
        Kind::Servable => 8,
        Kind::Instance => 9,
        Kind::Trust => 10,
        Kind::Repository => 11,
        Kind::DelegationRequest => 12,
        Kind::Collection => 13,
    }
}

pub(super) fn init_tables(txn: &WriteTransaction) -> Result<(), crate::core::store::StoreError> {
    txn.open_table(LIST)?;
    txn.open_table(FACETS)?;
    txn.open_table(COUNTS)?;
    Ok(())
}

/// Whether entries under this tag are counted: kinds, states and types (not parents, which
/// would make a row per pipeline and servable).
fn counted(tag: u8) -> bool {
    tag == KIND_TAG || tag == Facet::State(0).tag() || tag == Facet::Type(0).tag()
}

/// Adds `delta` to the count of (kind, tag, value), when counted; a count that would go below
/// zero stays at zero (it cannot, but a count is no reason to fail a write).
fn bump(txn: &WriteTransaction, kind: u8, tag: u8, value: u128, delta: i64) -> Result<()> {
    if !counted(tag) {
        return Ok(());
    }
    let mut counts = txn.open_table(COUNTS)?;
    let key = (kind, tag, value);
    let current = counts.get(key)?.map_or(0, |v| v.value());
    let next = current.saturating_add_signed(delta);
    if next == 0 {
        counts.remove(key)?;
    } else {
        counts.insert(key, next)?;
    }
    Ok(())
}

/// Inserts an index entry; a new entry under [`EVERY`] is counted.
fn insert_entry(
    list: &mut redb::Table<ListKey, ()>,
    txn: &WriteTransaction,
    key: ListKey,
) -> Result<()> {
    let new = list.insert(key, ())?.is_none();
    if new && key.0 == EVERY {
        bump(txn, key.1, key.2, key.3, 1)?;
    }
    Ok(())
}

/// Removes an index entry; one under [`EVERY`] that existed is uncounted.
fn remove_entry(
    list: &mut redb::Table<ListKey, ()>,
    txn: &WriteTransaction,
    key: ListKey,
) -> Result<()> {
    let existed = list.remove(key)?.is_some();
    if existed && key.0 == EVERY {
        bump(txn, key.1, key.2, key.3, -1)?;
    }
    Ok(())
}

/// Counts every entry under [`EVERY`] again (a store written before the counts existed).
pub(super) fn recount(txn: &WriteTransaction) -> Result<()> {
    let mut totals: std::collections::BTreeMap<(u8, u8, u128), u64> = Default::default();
    {
        let list = txn.open_table(LIST)?;
        for entry in
            list.range((EVERY, 0, 0, 0, 0)..=(EVERY, u8::MAX, u8::MAX, u128::MAX, u128::MAX))?
        {
            let (_, kind, tag, value, _) = entry?.0.value();
            if counted(tag) {
                *totals.entry((kind, tag, value)).or_default() += 1;
            }
        }
    }
    let mut counts = txn.open_table(COUNTS)?;
    counts.retain(|_, _| false)?;
    for (key, n) in totals {
        counts.insert(key, n)?;
    }
    Ok(())
}

/// How many objects of `kind` there are, or with `facet` (a state or a type) when given.
pub fn count(txn: &ReadTransaction, kind: Kind, facet: Option<Facet>) -> Result<u64> {
    let key = match facet {
        None => (kind_code(kind), KIND_TAG, 0),
        Some(f) => (kind_code(kind), f.tag(), f.value()),
    };
    Ok(txn.open_table(COUNTS)?.get(key)?.map_or(0, |v| v.value()))
}

/// Rebuilds the kind entries of every object from the objects and grants (a store written
/// before the index existed). Facets are added by their domains afterwards.
pub(super) fn rebuild(txn: &WriteTransaction) -> Result<()> {
    let mut metas = Vec::new();
    for entry in txn.open_table(OBJECTS)?.iter()? {
        let (_, v) = entry?;
        metas.push(decode::<ObjectMeta>(v.value())?);
    }
    for meta in &metas {
        for holder in holders(txn, meta)? {
            add_holder(txn, holder, meta)?;
        }
    }
    Ok(())
}

/// The principals an object is indexed under.
fn holders(txn: &WriteTransaction, meta: &ObjectMeta) -> Result<Vec<u128>> {
    let mut out = vec![EVERY];
    if let Some(owner) = meta.owner {
        out.push(owner.0);
    }
    let grants = txn.open_table(GRANTS)?;
    for entry in grants.range((meta.id.0, 0)..=(meta.id.0, u128::MAX))? {
        let (k, caps) = entry?;
        let principal = k.value().1;
        if reads(caps.value()) && !out.contains(&principal) {
            out.push(principal);
        }
    }
    Ok(out)
}

fn reads(caps: u8) -> bool {
    super::Caps(caps).contains(super::Capability::Read)
}

fn facets_of(txn: &WriteTransaction, object: Id) -> Result<Vec<(u8, u128)>> {
    let table = txn.open_table(FACETS)?;
    let mut out = Vec::new();
    for entry in table.range((object.0, 0)..=(object.0, u8::MAX))? {
        let (k, v) = entry?;
        out.push((k.value().1, v.value()));
    }
    Ok(out)
}

/// Indexes `object` under `holder`: its kind entry and one per facet.
fn add_holder(txn: &WriteTransaction, holder: u128, meta: &ObjectMeta) -> Result<()> {
    let facets = facets_of(txn, meta.id)?;
    let kind = kind_code(meta.kind);
    let mut list = txn.open_table(LIST)?;
    insert_entry(&mut list, txn, (holder, kind, KIND_TAG, 0, meta.id.0))?;
    for (tag, value) in facets {
        insert_entry(&mut list, txn, (holder, kind, tag, value, meta.id.0))?;
    }
    Ok(())
}

fn remove_holder(txn: &WriteTransaction, holder: u128, meta: &ObjectMeta) -> Result<()> {
    let facets = facets_of(txn, meta.id)?;
    let kind = kind_code(meta.kind);
    let mut list = txn.open_table(LIST)?;
    remove_entry(&mut list, txn, (holder, kind, KIND_TAG, 0, meta.id.0))?;
    for (tag, value) in facets {
        remove_entry(&mut list, txn, (holder, kind, tag, value, meta.id.0))?;
    }
    Ok(())
}

/// A new object: listed for admins and its owner.
pub(super) fn created(txn: &WriteTransaction, meta: &ObjectMeta) -> Result<()> {
    add_holder(txn, EVERY, meta)?;
    if let Some(owner) = meta.owner {
        add_holder(txn, owner.0, meta)?;
    }
    Ok(())
}

/// A grant changed from `before` to `after` capabilities: READ gained or lost moves the entries.
pub(super) fn granted(
    txn: &WriteTransaction,
    object: Id,
    principal: Id,
    before: u8,
    after: u8,
) -> Result<()> {
    if reads(before) == reads(after) {
        return Ok(());
    }
    let Some(meta) = object_meta(txn, object)? else {
        return Ok(());
    };
    if reads(after) {
        add_holder(txn, principal.0, &meta)
    } else if meta.owner == Some(principal) {
        // The owner reads what it owns with or without the grant.
        Ok(())
    } else {
        remove_holder(txn, principal.0, &meta)
    }
}

/// An object is going: every entry and its facets go with it (before its grants do).
pub(super) fn deleted(txn: &WriteTransaction, meta: &ObjectMeta) -> Result<()> {
    for holder in holders(txn, meta)? {
        remove_holder(txn, holder, meta)?;
    }
    let mut facets = txn.open_table(FACETS)?;
    let keys: Vec<(u128, u8)> = facets
        .range((meta.id.0, 0)..=(meta.id.0, u8::MAX))?
        .map(|e| e.map(|(k, _)| k.value()))
        .collect::<Result<_, _>>()?;
    for k in keys {
        facets.remove(k)?;
    }
    Ok(())
}

/// A principal that is gone holds no entries.
pub(super) fn forget_holder(txn: &WriteTransaction, principal: Id) -> Result<()> {
    let mut list = txn.open_table(LIST)?;
    let p = principal.0;
    list.retain_in(
        (p, 0, 0, 0, 0)..=(p, u8::MAX, u8::MAX, u128::MAX, u128::MAX),
        |_, _| false,
    )?;
    Ok(())
}

fn object_meta(txn: &WriteTransaction, id: Id) -> Result<Option<ObjectMeta>> {
    match txn.open_table(OBJECTS)?.get(id.0)? {
        Some(v) => Ok(Some(decode(v.value())?)),
        None => Ok(None),
    }
}

/// Sets an object's facets (each domain calls it whenever it writes the record); entries move
/// only for the facets that changed. Before the object is registered, the facets are only
/// remembered: registering it indexes them.
pub fn set_facets(txn: &WriteTransaction, object: Id, facets: &[Facet]) -> Result<()> {
    let mut changed = Vec::new();
    {
        let mut stored = txn.open_table(FACETS)?;
        for facet in facets {
            let key = (object.0, facet.tag());
            let old = stored.get(key)?.map(|v| v.value());
            if old != Some(facet.value()) {
                stored.insert(key, facet.value())?;
                changed.push((facet.tag(), old, facet.value()));
            }
        }
    }
    if changed.is_empty() {
        return Ok(());
    }
    let Some(meta) = object_meta(txn, object)? else {
        return Ok(());
    };
    let holders = holders(txn, &meta)?;
    let kind = kind_code(meta.kind);
    let mut list = txn.open_table(LIST)?;
    for (tag, old, new) in changed {
        for &holder in &holders {
            if let Some(old) = old {
                remove_entry(&mut list, txn, (holder, kind, tag, old, object.0))?;
            }
            insert_entry(&mut list, txn, (holder, kind, tag, new, object.0))?;
        }
    }
    Ok(())
}

/// One holder's entries for one kind and facet, read in id order from a position on.
struct Run {
    table: ReadOnlyTable<ListKey, ()>,
    prefix: RunKey,
    iter: redb::Range<'static, ListKey, ()>,
    head: Option<u128>,
}

/// How many entries a run steps over before it jumps with a fresh range instead.
const STEPS_BEFORE_JUMP: usize = 8;

impl Run {
    fn open(txn: &ReadTransaction, prefix: RunKey, from: u128) -> Result<Run> {
        let table = txn.open_table(LIST)?;
        let iter = range_from(&table, prefix, from)?;
        let mut run = Run {
            table,
            prefix,
            iter,
            head: None,
        };
        run.step()?;
        Ok(run)
    }

    fn step(&mut self) -> Result<()> {
        self.head = match self.iter.next() {
            Some(entry) => Some(entry?.0.value().4),
            None => None,
        };
        Ok(())
    }

    /// Moves to the first id at or after `min`.
    fn seek(&mut self, min: u128) -> Result<Option<u128>> {
        let mut steps = 0;
        while let Some(head) = self.head {
            if head >= min {
                break;
            }
            if steps == STEPS_BEFORE_JUMP {
                self.iter = range_from(&self.table, self.prefix, min)?;
                self.step()?;
                break;
            }
            self.step()?;
            steps += 1;
        }
        Ok(self.head)
    }
}

fn range_from(
    table: &ReadOnlyTable<ListKey, ()>,
    (holder, kind, tag, value): RunKey,
    from: u128,
) -> Result<redb::Range<'static, ListKey, ()>> {
    Ok(table.range((holder, kind, tag, value, from)..=(holder, kind, tag, value, u128::MAX))?)
}

/// The union of several holders' runs for one facet.
struct Union(Vec<Run>);

impl Union {
    fn seek(&mut self, min: u128) -> Result<Option<u128>> {
        let mut lowest = None;
        for run in &mut self.0 {
            if let Some(id) = run.seek(min)? {
                lowest = Some(lowest.map_or(id, |l: u128| l.min(id)));
            }
        }
        Ok(lowest)
    }
}

/// The principals whose READ `principal` inherits.
fn sources(txn: &ReadTransaction, principal: &Principal) -> Result<Vec<u128>> {
    if principal.admin {
        return Ok(vec![EVERY]);
    }
    let mut out = vec![principal.id.0];
    if principal.kind == PrincipalKind::User {
        out.push(super::ALL_USERS.0);
    }
    let memberships = txn.open_table(MEMBERSHIPS)?;
    for entry in memberships.range((principal.id.0, 0)..=(principal.id.0, u128::MAX))? {
        out.push(entry?.0.value().1);
    }
    Ok(out)
}

/// The ids of the objects of `kind` having every facet of `filter` that `principal` may READ,
/// in id order from just after `page.after`: at most `page.limit` of them, and whether more
/// follow.
pub fn readable_ids(
    txn: &ReadTransaction,
    principal: &Principal,
    kind: Kind,
    filter: &[Facet],
    page: PageRequest,
) -> Result<(Vec<Id>, bool)> {
    let holders = sources(txn, principal)?;
    held_ids(txn, &holders, kind, filter, page)
}

/// The newest objects of `kind` (having `facet`, when given) that `principal` may READ, newest
/// first: at most `limit` of them, none older than `since` (ids being time-ordered). Reads each
/// source's run backwards from its end, at most `limit` entries of each: O(limit × sources),
/// whatever the size of the store.
pub fn newest_readable_ids(
    txn: &ReadTransaction,
    principal: &Principal,
    kind: Kind,
    facet: Option<Facet>,
    since: Id,
    limit: usize,
) -> Result<Vec<Id>> {
    let (tag, value) = facet.map_or((KIND_TAG, 0), |f| (f.tag(), f.value()));
    let kind = kind_code(kind);
    let list = txn.open_table(LIST)?;
    let mut out = Vec::new();
    for holder in sources(txn, principal)? {
        let run = list
            .range((holder, kind, tag, value, since.0)..=(holder, kind, tag, value, u128::MAX))?;
        for entry in run.rev().take(limit) {
            out.push(entry?.0.value().4);
        }
    }
    out.sort_unstable_by(|a, b| b.cmp(a));
    out.dedup();
    out.truncate(limit);
    Ok(out.into_iter().map(Id).collect())
}

/// The objects of `kind` that `holder` may READ in its own name (owned, or granted READ to it
/// directly; not through every user, its trusts or admin rights): e.g. a principal's API keys.
pub fn own_ids(
    txn: &ReadTransaction,
    holder: Id,
    kind: Kind,
    page: PageRequest,
) -> Result<(Vec<Id>, bool)> {
    held_ids(txn, &[holder.0], kind, &[], page)
}

/// The objects of `kind` with every facet of `filter` that any of `holders` is indexed under,
/// a page of them in id order, and whether more follow.
fn held_ids(
    txn: &ReadTransaction,
    holders: &[u128],
    kind: Kind,
    filter: &[Facet],
    page: PageRequest,
) -> Result<(Vec<Id>, bool)> {
    let kind = kind_code(kind);
    let Some(mut from) = page.after.map_or(Some(0), |a| a.0.checked_add(1)) else {
        return Ok((Vec::new(), false));
    };
    let keys: Vec<(u8, u128)> = if filter.is_empty() {
        vec![(KIND_TAG, 0)]
    } else {
        filter.iter().map(|f| (f.tag(), f.value())).collect()
    };
    let mut streams = Vec::with_capacity(keys.len());
    for (tag, value) in keys {
        let runs = holders
            .iter()
            .map(|&h| Run::open(txn, (h, kind, tag, value), from))
            .collect::<Result<Vec<_>>>()?;
        streams.push(Union(runs));
    }
    let mut out = Vec::new();
    // Leapfrog: every stream seeks the highest head until they agree on one id.
    'ids: loop {
        let mut agreed = true;
        for stream in &mut streams {
            match stream.seek(from)? {
                None => break 'ids,
                Some(id) if id > from => {
                    from = id;
                    agreed = false;
                }
                Some(_) => {}
            }
        }
        if !agreed {
            continue;
        }
        if out.len() == page.limit {
            return Ok((out, true));
        }
        out.push(Id(from));
        match from.checked_add(1) {
            Some(next) => from = next,
            None => break,
        }
    }
    Ok((out, false))
}

/// Every object of `kind` with all of `filter`'s facets, whoever holds it (recovery at start:
/// the running jobs, the active instances).
pub fn every_with(txn: &ReadTransaction, kind: Kind, filter: &[Facet]) -> Result<Vec<Id>> {
    let mut out = Vec::new();
    let mut page = PageRequest::first(crate::core::page::MAX_LIMIT);
    loop {
        let (ids, more) = held_ids(txn, &[EVERY], kind, filter, page)?;
        page.after = ids.last().copied();
        out.extend(ids);
        if !more {
            return Ok(out);
        }
    }
}

/// Every object of `kind` with `facet`, inside a write transaction (what goes with a deleted
/// parent).
pub fn every_in(txn: &WriteTransaction, kind: Kind, facet: Facet) -> Result<Vec<Id>> {
    let list = txn.open_table(LIST)?;
    let (kind, tag, value) = (kind_code(kind), facet.tag(), facet.value());
    let mut out = Vec::new();
    for entry in list.range((EVERY, kind, tag, value, 0)..=(EVERY, kind, tag, value, u128::MAX))? {
        out.push(Id(entry?.0.value().4));
    }
    Ok(out)
}
