//! Delegation: what a servable needs on other objects when it runs.
//!
//! A prototype's `capabilities` (object id -> capabilities) and its `config-capabilities`
//! (applied to the ids found at the same places in the servable's config) say what a servable
//! needs. When an instance starts and the runner's account owns both the servable and its
//! prototype, whatever of that the runner holds (not counting admin powers) is granted to the
//! servable at once; everything else becomes a pending delegation request addressed to the
//! runner, who grants or refuses it. A servable never gets more than its runner holds: a
//! grant is only ever made from what the granting principal holds at that moment.
//!
//! Requests are objects: the runner's account owns them (the runner, when a servable, holds every
//! capability on them), the requesting servable may read them to learn the outcome.

use super::{Prototype, Servable};
use crate::core::clock::Timestamp;
use crate::core::error::{Error, Problem, Result};
use crate::core::id::Id;
use crate::core::page::{Page, PageRequest};
use crate::core::store::{Opening, Store, StoreError, decode, get_record, put_record};
use crate::domains::authz::{
    self, Acl, Capability, Caps, Facet, Kind, ObjectMeta, Principal, PrincipalKind,
};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

pub(crate) const DELEGATIONS: TableDefinition<u128, &[u8]> =
    TableDefinition::new("delegation_requests");

pub(crate) fn init_tables(txn: &WriteTransaction, opening: Opening) -> Result<(), StoreError> {
    txn.open_table(DELEGATIONS)?;
    if opening.upgrades_past(1) {
        let mut all = Vec::new();
        for entry in txn.open_table(DELEGATIONS)?.iter()? {
            all.push(decode::<DelegationRequest>(entry?.1.value())?);
        }
        for r in &all {
            authz::set_facets(txn, r.id, &r.facets()).map_err(|e| StoreError::Db(e.to_string()))?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DelegationState {
    Pending,
    Granted,
    Refused,
}

impl DelegationState {
    pub const ALL: [DelegationState; 3] = [
        DelegationState::Pending,
        DelegationState::Granted,
        DelegationState::Refused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DelegationState::Pending => "pending",
            DelegationState::Granted => "granted",
            DelegationState::Refused => "refused",
        }
    }

    /// Its number in the list index (stable: never reuse one).
    fn code(self) -> u8 {
        match self {
            DelegationState::Pending => 1,
            DelegationState::Granted => 2,
            DelegationState::Refused => 3,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DelegationRequest {
    pub id: Id,
    /// The servable asking.
    pub servable: Id,
    /// The instance whose start asked.
    pub instance: Id,
    /// The object it needs capabilities on.
    pub object: Id,
    pub capabilities: Vec<Capability>,
    pub state: DelegationState,
    /// The principal that ran the servable, who resolves the request.
    pub requested_from: Id,
    /// Why it is needed: `capabilities` of the prototype or `config.<path>`.
    pub reason: String,
    #[schema(value_type = String, format = DateTime)]
    pub created: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved: Option<Timestamp>,
    /// Who resolved it (the runner itself for automatic grants).
    pub resolved_by: Option<Id>,
    /// Granted without asking: the runner held it when the servable started.
    #[serde(default)]
    pub automatic: bool,
}

/// At servable creation: every place `config-capabilities` marks must hold an object id (or a
/// list of ids) in the config.
pub fn check_config(config_caps: &Value, config: &Value, problems: &mut Vec<Problem>) {
    walk_config(config_caps, config, "config", &mut |path, caps, value| {
        let ids_ok = match value {
            Some(Value::String(s)) => Id::parse(s).is_some(),
            Some(Value::Array(items)) => items
                .iter()
                .all(|i| i.as_str().and_then(Id::parse).is_some()),
            _ => false,
        };
        if !ids_ok {
            problems.push(Problem::new(
                "servable",
                path,
                format!(
                    "must be an object id: the prototype's config-capabilities ask {} on it",
                    caps.iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    });
}

/// Calls `f(path, capabilities, config value)` for each leaf of `config-capabilities`.
fn walk_config(
    caps: &Value,
    config: &Value,
    path: &str,
    f: &mut impl FnMut(&str, Vec<Capability>, Option<&Value>),
) {
    match caps {
        Value::Object(map) => {
            for (k, sub) in map {
                let value = config.get(k).unwrap_or(&Value::Null);
                walk_config(sub, value, &format!("{path}.{k}"), f);
            }
        }
        Value::Array(list) => {
            let caps: Vec<Capability> = list
                .iter()
                .filter_map(|c| c.as_str().and_then(Capability::parse))
                .collect();
            let value = (!config.is_null()).then_some(config);
            f(path, caps, value);
        }
        _ => {}
    }
}

/// What a servable needs: (object, capabilities, reason).
fn needs(prototype: &Prototype, servable: &Servable) -> Vec<(Id, Caps, String)> {
    let mut out: Vec<(Id, Caps, String)> = prototype
        .capabilities
        .iter()
        .map(|(id, caps)| (*id, Caps::of(caps), "capabilities".to_owned()))
        .collect();
    walk_config(
        &prototype.config_capabilities,
        &servable.config,
        "config",
        &mut |path, caps, value| {
            let ids: Vec<Id> = match value {
                Some(Value::String(s)) => Id::parse(s).into_iter().collect(),
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|i| i.as_str().and_then(Id::parse))
                    .collect(),
                _ => Vec::new(),
            };
            for id in ids {
                out.push((id, Caps::of(&caps), path.to_owned()));
            }
        },
    );
    out
}

/// At instance start, in the instance's creating transaction: grants what `runner` holds of
/// what the servable needs, and records requests for the rest.
pub(crate) fn delegate(
    txn: &WriteTransaction,
    runner: &Principal,
    servable: &Servable,
    instance: Id,
    prototype: &Prototype,
    now: Timestamp,
) -> Result<Vec<DelegationRequest>> {
    let wanted = needs(prototype, servable);
    // Granted without asking only when the runner's account owns both the servable and its
    // prototype: code someone else wrote, or a servable someone else configured, gets nothing
    // of the runner's without the runner saying so. Admin powers never grant by themselves.
    let automatic = runner.owner() == servable.owner && prototype.owner == runner.owner();
    let as_itself = Principal {
        admin: false,
        ..runner.clone()
    };
    let mut split = Vec::new();
    {
        let acl = Acl::write(txn)?;
        for (object, need, reason) in wanted {
            let held = match acl.object(object)? {
                Some(meta) if automatic => acl.caps(&as_itself, &meta)?,
                _ => Caps::NONE,
            };
            let granted = Caps(need.0 & held.0);
            let missing = Caps(need.0 & !held.0);
            split.push((object, granted, missing, reason));
        }
    }
    let existing: Vec<DelegationRequest> = requests_of(txn, servable.id)?;
    let mut out = Vec::new();
    for (object, granted, missing, reason) in split {
        if !granted.is_empty() {
            authz::grant(txn, object, servable.id, granted)?;
            let already = existing.iter().any(|r| {
                r.object == object
                    && r.state == DelegationState::Granted
                    && Caps::of(&r.capabilities).0 & granted.0 == granted.0
            });
            if !already {
                let request = new_request(
                    txn, runner, servable, instance, object, granted, &reason, now, true,
                )?;
                out.push(request);
            }
        }
        if !missing.is_empty() {
            let pending = existing.iter().any(|r| {
                r.object == object
                    && r.state == DelegationState::Pending
                    && Caps::of(&r.capabilities).0 & missing.0 == missing.0
            });
            if !pending {
                out.push(new_request(
                    txn, runner, servable, instance, object, missing, &reason, now, false,
                )?);
            }
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn new_request(
    txn: &WriteTransaction,
    runner: &Principal,
    servable: &Servable,
    instance: Id,
    object: Id,
    caps: Caps,
    reason: &str,
    now: Timestamp,
    automatic: bool,
) -> Result<DelegationRequest> {
    let request = DelegationRequest {
        id: Id::new(),
        servable: servable.id,
        instance,
        object,
        capabilities: caps.list(),
        state: if automatic {
            DelegationState::Granted
        } else {
            DelegationState::Pending
        },
        requested_from: runner.id,
        reason: reason.to_owned(),
        created: now,
        resolved: automatic.then_some(now),
        resolved_by: automatic.then_some(runner.id),
        automatic,
    };
    put_request(txn, &request)?;
    authz::create_object(
        txn,
        &ObjectMeta {
            id: request.id,
            kind: Kind::DelegationRequest,
            owner: Some(runner.owner()),
            created: now,
        },
    )?;
    if runner.kind == PrincipalKind::Servable {
        authz::grant(txn, request.id, runner.id, Caps::ALL)?;
    }
    authz::grant(
        txn,
        request.id,
        servable.id,
        Caps::of(&[Capability::Discover, Capability::Read]),
    )?;
    Ok(request)
}

impl DelegationRequest {
    /// Its facets in the list index: the servable asking, and the state.
    fn facets(&self) -> [Facet; 2] {
        [
            Facet::Parent(self.servable),
            Facet::State(self.state.code()),
        ]
    }
}

/// A servable's requests, through the list index.
fn requests_of(txn: &WriteTransaction, servable: Id) -> Result<Vec<DelegationRequest>> {
    let ids = authz::every_in(txn, Kind::DelegationRequest, Facet::Parent(servable))?;
    let table = txn.open_table(DELEGATIONS)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.extend(get_record::<DelegationRequest>(&table, id)?);
    }
    Ok(out)
}

fn put_request(txn: &WriteTransaction, request: &DelegationRequest) -> Result<()> {
    put_record(txn, DELEGATIONS, request.id, request)?;
    authz::set_facets(txn, request.id, &request.facets())
}

/// A page of the requests the caller may read, optionally of one servable and in one state.
pub fn list_requests(
    store: &Store,
    caller: &Principal,
    servable: Option<Id>,
    state: Option<DelegationState>,
    page: PageRequest,
) -> Result<Page<DelegationRequest>> {
    let mut filter = Vec::new();
    if let Some(s) = servable {
        filter.push(Facet::Parent(s));
    }
    if let Some(s) = state {
        filter.push(Facet::State(s.code()));
    }
    authz::readable_page(
        store,
        DELEGATIONS,
        caller,
        Kind::DelegationRequest,
        &filter,
        page,
    )
}

pub fn get_request(store: &Store, caller: &Principal, id: Id) -> Result<DelegationRequest> {
    authz::authorize(store, caller, id, Kind::DelegationRequest, Capability::Read)?;
    let txn = store.read()?;
    get_record(&txn.open_table(DELEGATIONS)?, id)?
        .ok_or_else(|| Error::not_found("Delegation request not found"))
}

/// Grants (from what the caller holds) or refuses a pending request. Needs UPDATE on it.
/// Resolving again the same way answers the same; the other way is a conflict.
pub fn resolve(
    store: &Store,
    caller: &Principal,
    id: Id,
    grant: bool,
    now: Timestamp,
) -> Result<DelegationRequest> {
    let txn = store.write()?;
    let wanted = if grant {
        DelegationState::Granted
    } else {
        DelegationState::Refused
    };
    let mut request: DelegationRequest = {
        let acl = Acl::write(&txn)?;
        acl.check(caller, id, Kind::DelegationRequest, Capability::Update)?;
        let request: DelegationRequest = get_record(&txn.open_table(DELEGATIONS)?, id)?
            .ok_or_else(|| Error::not_found("Delegation request not found"))?;
        if request.state == wanted {
            return Ok(request);
        }
        if request.state != DelegationState::Pending {
            return Err(Error::conflict(format!(
                "this request was already {}",
                match request.state {
                    DelegationState::Granted => "granted",
                    _ => "refused",
                }
            )));
        }
        if grant {
            let held = match acl.object(request.object)? {
                Some(meta) => acl.caps(caller, &meta)?,
                None => Caps::NONE,
            };
            let need = Caps::of(&request.capabilities);
            let lacking = Caps(need.0 & !held.0);
            if !lacking.is_empty() {
                return Err(Error::forbidden(format!(
                    "you do not hold {} on {}: a servable never gets more than the principal granting it holds",
                    lacking
                        .list()
                        .iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    request.object
                )));
            }
        }
        request
    };
    if grant {
        authz::grant(
            &txn,
            request.object,
            request.servable,
            Caps::of(&request.capabilities),
        )?;
    }
    request.state = wanted;
    request.resolved = Some(now);
    request.resolved_by = Some(caller.id);
    put_request(&txn, &request)?;
    txn.commit()?;
    Ok(request)
}

/// When a servable is deleted: its requests, and every grant it held.
pub(crate) fn forget_servable(txn: &WriteTransaction, servable: Id) -> Result<()> {
    for request in requests_of(txn, servable)? {
        txn.open_table(DELEGATIONS)?.remove(request.id.0)?;
        authz::delete_object(txn, request.id)?;
    }
    authz::forget_principal(txn, servable)
}
