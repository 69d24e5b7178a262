//! The DTaaS model (seeds 000-002): prototypes registered from a manifest, servables made from
//! them, and instances (a servable's runs as containers).
//!
//! * [`manifest`]: validating a project manifest and registering its prototypes.
//! * this module: the records and their tables, creating and deleting servables.
//! * [`delegation`]: what a running servable needs on other objects, granted or requested.
//!
//! Running instances as containers is the engine layer's (`engine::instances`).
//!
//! Every prototype, servable, instance and delegation request is an object of the shared model
//! ([`super::authz`]). A servable is also a principal: each instance gets a fresh API key for it,
//! mounted into the container, and what it creates belongs to the servable's owner with every
//! capability for the servable itself.

pub mod delegation;
pub mod manifest;

pub use manifest::{
    Prototype, get_prototype, list_prototypes, register_manifest, resolve_prototype,
};

use crate::core::clock::Timestamp;
use crate::core::error::{Cause, Error, Problem, Result};
use crate::core::id::Id;
use crate::core::names;
use crate::core::page::{Page, PageRequest};
use crate::core::store::{Opening, Store, StoreError, decode, get_record, put_record};
use crate::core::whole;
use crate::domains::authz::{
    self, Capability, Caps, Facet, Kind, ObjectMeta, Principal, PrincipalKind,
};
use crate::domains::logs::{self, LogCursor, LogOwner};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::SocketAddr;
use utoipa::ToSchema;

pub(crate) const SERVABLES: TableDefinition<u128, &[u8]> = TableDefinition::new("servables");
pub(crate) const INSTANCES: TableDefinition<u128, &[u8]> = TableDefinition::new("instances");

pub(crate) fn init_tables(txn: &WriteTransaction, opening: Opening) -> Result<(), StoreError> {
    txn.open_table(SERVABLES)?;
    txn.open_table(INSTANCES)?;
    manifest::init_tables(txn, opening)?;
    delegation::init_tables(txn, opening)?;
    if opening.upgrades_past(1) {
        let index = |e: Error| StoreError::Db(e.to_string());
        let mut facets = Vec::new();
        for entry in txn.open_table(SERVABLES)?.iter()? {
            let s: Servable = decode(entry?.1.value())?;
            facets.push((s.id, s.facets()));
        }
        for entry in txn.open_table(INSTANCES)?.iter()? {
            let i: Instance = decode(entry?.1.value())?;
            facets.push((i.id, i.facets().to_vec()));
        }
        for (id, f) in facets {
            authz::set_facets(txn, id, &f).map_err(index)?;
        }
    }
    Ok(())
}

/// The port HTTP-type servables listen on.
pub const HTTP_PORT: u16 = 8080;

/// The kinds of servable (`GET /v1/types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ServableType {
    Pipeline,
    App,
    Daemon,
    Dataset,
    Model,
    Report,
}

impl ServableType {
    pub const ALL: [ServableType; 6] = [
        ServableType::Pipeline,
        ServableType::App,
        ServableType::Daemon,
        ServableType::Dataset,
        ServableType::Model,
        ServableType::Report,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ServableType::Pipeline => "pipeline",
            ServableType::App => "app",
            ServableType::Daemon => "daemon",
            ServableType::Dataset => "dataset",
            ServableType::Model => "model",
            ServableType::Report => "report",
        }
    }

    pub fn parse(s: &str) -> Option<ServableType> {
        ServableType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Its number in the list index (stable: never reuse one).
    pub(crate) fn code(self) -> u8 {
        match self {
            ServableType::Pipeline => 1,
            ServableType::App => 2,
            ServableType::Daemon => 3,
            ServableType::Dataset => 4,
            ServableType::Model => 5,
            ServableType::Report => 6,
        }
    }

    /// Serves HTTP on port 8080 behind the proxy.
    pub fn serves_http(self) -> bool {
        matches!(
            self,
            ServableType::App | ServableType::Dataset | ServableType::Model | ServableType::Report
        )
    }

    /// Restarted (with backoff) when it fails; a pipeline runs once.
    pub fn restarts_on_failure(self) -> bool {
        self != ServableType::Pipeline
    }

    pub fn description(self) -> &'static str {
        match self {
            ServableType::Pipeline => "does one task and exits; lists the objects it created",
            ServableType::App => "a user-facing web application on port 8080, behind the proxy",
            ServableType::Daemon => {
                "runs until stopped; reached by other servables directly, with a persistent volume"
            }
            ServableType::Dataset => "serves a data set over HTTP on port 8080, behind the proxy",
            ServableType::Model => "serves a model over HTTP on port 8080, behind the proxy",
            ServableType::Report => "serves a report over HTTP on port 8080, behind the proxy",
        }
    }
}

/// What a servable's container may use. Sizes in megabytes. Zero means the appliance's default:
/// `servables.default_cpus` and `servables.default_memory_mb` for `cpu_cores` and `ram`, the
/// engine's 64 MB for `shm`, no separate limit for `disk`; every container also has the
/// `servables.pids` process limit. Whole numbers may also be written `42.0` (`core::whole`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Resources {
    #[schema(minimum = 0)]
    pub cpu_cores: f64,
    /// 0 (the default), or at least the 6 MB the engine needs.
    #[serde(deserialize_with = "whole::number")]
    #[schema(schema_with = ram_schema)]
    pub ram: u64,
    #[serde(deserialize_with = "whole::number")]
    #[schema(maximum = 18446744073709551615_u64)]
    pub disk: u64,
    #[serde(deserialize_with = "whole::number")]
    #[schema(maximum = 4294967295_u32)]
    pub gpu_count: u32,
    #[serde(deserialize_with = "whole::number")]
    #[schema(maximum = 18446744073709551615_u64)]
    pub shm: u64,
}

/// The least memory limit the engine takes, in MB.
const MIN_RAM_MB: u64 = 6;

/// `ram` in the OpenAPI document: 0, or from [`MIN_RAM_MB`] up (what [`Resources::validate`]
/// lets through).
fn ram_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type};
    let whole = || {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
    };
    OneOfBuilder::new()
        .item(whole().enum_values(Some([0])))
        .item(whole().minimum(Some(MIN_RAM_MB)).maximum(Some(u64::MAX)))
        .description(Some(
            "0 (the default), or at least the 6 MB the engine needs",
        ))
        .default(Some(serde_json::json!(0)))
        .build()
        .into()
}

impl Resources {
    fn validate(&self, problems: &mut Vec<Problem>) {
        if !self.cpu_cores.is_finite() || self.cpu_cores < 0.0 {
            problems.push(Problem::new(
                "resources",
                "cpu_cores",
                "must be a non-negative number",
            ));
        }
        if self.ram > 0 && self.ram < MIN_RAM_MB {
            problems.push(Problem::new(
                "resources",
                "ram",
                "the engine needs at least 6 MB (or 0 for no limit)",
            ));
        }
    }
}

/// A daemon's persistent volume.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Volume {
    /// The engine's volume name.
    pub name: String,
    /// Where it is mounted in the container.
    pub location: String,
    /// The size the manifest asks for, in MB.
    pub size_mb: u64,
    /// Bytes in use when last measured.
    pub used_bytes: Option<u64>,
    /// Whether the engine enforces the size (it cannot on this storage; then usage is measured).
    pub enforced: bool,
    /// The volume holds more than `size_mb`.
    pub overrun: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Servable {
    pub id: Id,
    #[serde(rename = "type")]
    pub kind: ServableType,
    pub name: String,
    pub prototype: Id,
    pub config: Value,
    pub resources: Resources,
    /// The proxy checks REQUEST on callers (HTTP types).
    pub access_control: bool,
    /// The account it belongs to (and acts for).
    pub owner: Id,
    /// The principal that created it (the owner, or a servable of the owner's).
    pub creator: Id,
    pub created: Timestamp,
    #[serde(default)]
    pub volume: Option<Volume>,
    /// Limits the engine cannot enforce here, and why (reported, not dropped).
    #[serde(default)]
    pub unenforced: Vec<String>,
    /// The latest instance.
    #[serde(default)]
    pub current: Option<Id>,
    /// Its deletion has begun (`DELETE` asked for it): nothing runs it any more, and what it
    /// had in the engine is being removed. A deletion cut by a crash is finished by the next
    /// start (`engine::instances`), or by the `DELETE` asked again.
    #[serde(default)]
    pub deleting: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum InstanceState {
    Created,
    Starting,
    Running,
    Exited,
    Failed,
    Stopped,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Created => "created",
            InstanceState::Starting => "starting",
            InstanceState::Running => "running",
            InstanceState::Exited => "exited",
            InstanceState::Failed => "failed",
            InstanceState::Stopped => "stopped",
        }
    }

    pub const ALL: [InstanceState; 6] = [
        InstanceState::Created,
        InstanceState::Starting,
        InstanceState::Running,
        InstanceState::Exited,
        InstanceState::Failed,
        InstanceState::Stopped,
    ];

    pub const ACTIVE: [InstanceState; 3] = [
        InstanceState::Created,
        InstanceState::Starting,
        InstanceState::Running,
    ];

    /// Its number in the list index (stable: never reuse one).
    fn code(self) -> u8 {
        match self {
            InstanceState::Created => 1,
            InstanceState::Starting => 2,
            InstanceState::Running => 3,
            InstanceState::Exited => 4,
            InstanceState::Failed => 5,
            InstanceState::Stopped => 6,
        }
    }

    /// Its container may be running (or about to).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            InstanceState::Created | InstanceState::Starting | InstanceState::Running
        )
    }
}

/// An object a pipeline created while it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Output {
    pub id: Id,
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Instance {
    pub id: Id,
    pub servable: Id,
    #[serde(rename = "type")]
    pub kind: ServableType,
    pub state: InstanceState,
    pub exit_code: Option<i64>,
    pub ipv4_address: Option<String>,
    /// The principal that ran it (delegation requests go to it).
    pub runner: Id,
    /// The API key the container holds (revoked when the instance ends).
    #[serde(default)]
    pub api_key: Option<Id>,
    pub created: Timestamp,
    pub started: Option<Timestamp>,
    pub finished: Option<Timestamp>,
    /// Restarts after failures.
    #[serde(default)]
    pub restarts: u32,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub outputs: Vec<Output>,
    /// A stop was asked for: the exit that follows is `stopped`, not a failure.
    #[serde(default)]
    pub stopping: bool,
    #[serde(default)]
    pub log: LogCursor,
}

impl Instance {
    /// Its facets in the list index: its servable and its state.
    fn facets(&self) -> [Facet; 2] {
        [
            Facet::Parent(self.servable),
            Facet::State(self.state.code()),
        ]
    }
}

/// The state facet a servable gets when its deletion begins (it has none before: deletion
/// is its only state change, and the facet goes with the servable).
const DELETING: u8 = 1;

impl Servable {
    /// Its facets in the list index: its type and its prototype, and [`DELETING`] once its
    /// deletion has begun (so that recovery finds unfinished deletions without a scan).
    fn facets(&self) -> Vec<Facet> {
        let mut facets = vec![Facet::Type(self.kind.code()), Facet::Parent(self.prototype)];
        if self.deleting {
            facets.push(Facet::State(DELETING));
        }
        facets
    }
}

/// Writes an instance's record (and its facets in the list index).
pub fn put_instance(txn: &WriteTransaction, instance: &Instance) -> Result<()> {
    put_record(txn, INSTANCES, instance.id, instance)?;
    authz::set_facets(txn, instance.id, &instance.facets())
}

/// How many instances are in each state, and servables of each type.
pub struct Counts {
    pub instances: Vec<(InstanceState, u64)>,
    pub servables: Vec<(ServableType, u64)>,
}

/// [`Counts`] (for `/metrics`): a few rows of the list index's counts, whatever the size of the
/// store.
pub fn counts(store: &Store) -> Result<Counts> {
    let txn = store.read()?;
    let instances = InstanceState::ALL
        .into_iter()
        .map(|s| {
            Ok((
                s,
                authz::count(&txn, Kind::Instance, Some(Facet::State(s.code())))?,
            ))
        })
        .collect::<Result<_>>()?;
    let servables = ServableType::ALL
        .into_iter()
        .map(|t| {
            Ok((
                t,
                authz::count(&txn, Kind::Servable, Some(Facet::Type(t.code())))?,
            ))
        })
        .collect::<Result<_>>()?;
    Ok(Counts {
        instances,
        servables,
    })
}

/// Writes a servable's record (and its facets in the list index).
pub fn put_servable(txn: &WriteTransaction, servable: &Servable) -> Result<()> {
    put_record(txn, SERVABLES, servable.id, servable)?;
    authz::set_facets(txn, servable.id, &servable.facets())
}

impl LogOwner for Instance {
    const LIMIT_KEY: &'static str = "servables.max_log_lines";

    fn load_cursor(txn: &WriteTransaction, id: Id) -> Result<Option<LogCursor>> {
        Ok(get_record::<Instance>(&txn.open_table(INSTANCES)?, id)?.map(|i| i.log))
    }

    fn save_cursor(txn: &WriteTransaction, id: Id, cursor: &LogCursor) -> Result<()> {
        // Read in its own statement: the table handle must be gone before `put_record` opens it.
        let instance = get_record::<Instance>(&txn.open_table(INSTANCES)?, id)?;
        if let Some(mut i) = instance {
            i.log = cursor.clone();
            put_instance(txn, &i)?;
        }
        Ok(())
    }
}

pub fn get_servable(store: &Store, id: Id) -> Result<Option<Servable>> {
    let txn = store.read()?;
    Ok(get_record(&txn.open_table(SERVABLES)?, id)?)
}

pub fn get_instance(store: &Store, id: Id) -> Result<Option<Instance>> {
    let txn = store.read()?;
    Ok(get_record(&txn.open_table(INSTANCES)?, id)?)
}

/// A servable the caller holds `cap` on.
pub fn servable_for(
    store: &Store,
    caller: &Principal,
    id: Id,
    cap: Capability,
) -> Result<Servable> {
    authz::authorize(store, caller, id, Kind::Servable, cap)?;
    get_servable(store, id)?.ok_or_else(|| Error::not_found("Servable not found"))
}

/// An instance the caller holds `cap` on.
pub fn instance_for(
    store: &Store,
    caller: &Principal,
    id: Id,
    cap: Capability,
) -> Result<Instance> {
    authz::authorize(store, caller, id, Kind::Instance, cap)?;
    get_instance(store, id)?.ok_or_else(|| Error::not_found("Instance not found"))
}

/// A page of the servables the caller may read, optionally of one type and one prototype.
pub fn list_servables(
    store: &Store,
    caller: &Principal,
    kind: Option<ServableType>,
    prototype: Option<Id>,
    page: PageRequest,
) -> Result<Page<Servable>> {
    let mut filter: Vec<Facet> = kind.map(|k| Facet::Type(k.code())).into_iter().collect();
    filter.extend(prototype.map(Facet::Parent));
    authz::readable_page(store, SERVABLES, caller, Kind::Servable, &filter, page)
}

/// A page of a servable's instances the caller may read, oldest first.
pub fn list_instances(
    store: &Store,
    caller: &Principal,
    servable: Id,
    page: PageRequest,
) -> Result<Page<Instance>> {
    let filter = [Facet::Parent(servable)];
    authz::readable_page(store, INSTANCES, caller, Kind::Instance, &filter, page)
}

/// The newest instances the caller may read (in `state`, when given), newest first, at most
/// `limit`: O(limit) through the list index.
pub fn recent_instances(
    store: &Store,
    caller: &Principal,
    state: Option<InstanceState>,
    limit: usize,
) -> Result<Vec<Instance>> {
    let facet = state.map(|s| Facet::State(s.code()));
    authz::newest_readable(store, INSTANCES, caller, Kind::Instance, facet, limit)
}

/// How many instances in `state` the caller may read, counting no further than `at_most`.
pub fn count_readable_instances(
    store: &Store,
    caller: &Principal,
    state: InstanceState,
    at_most: usize,
) -> Result<usize> {
    let txn = store.read()?;
    let facet = Some(Facet::State(state.code()));
    Ok(authz::newest_readable_ids(&txn, caller, Kind::Instance, facet, Id(0), at_most)?.len())
}

/// The instances with every facet of `filter`, whoever runs them, oldest first.
fn instances_with(store: &Store, filter: &[Facet]) -> Result<Vec<Instance>> {
    let txn = store.read()?;
    let ids = authz::every_with(&txn, Kind::Instance, filter)?;
    let table = txn.open_table(INSTANCES)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.extend(get_record::<Instance>(&table, id)?);
    }
    Ok(out)
}

/// Instances whose container may be running (for recovery), found through the list index.
pub fn active_instances(store: &Store) -> Result<Vec<Instance>> {
    let mut out = Vec::new();
    for state in InstanceState::ACTIVE {
        out.extend(instances_with(store, &[Facet::State(state.code())])?);
    }
    out.sort_by_key(|i| i.id);
    Ok(out)
}

/// Changes an instance in its own transaction; `None` if it is gone.
pub fn update_instance(
    store: &Store,
    id: Id,
    change: impl FnOnce(&mut Instance),
) -> Result<Option<Instance>> {
    let txn = store.write()?;
    let Some(mut instance) = get_record::<Instance>(&txn.open_table(INSTANCES)?, id)? else {
        return Ok(None);
    };
    change(&mut instance);
    put_instance(&txn, &instance)?;
    txn.commit()?;
    Ok(Some(instance))
}

pub fn update_servable(
    store: &Store,
    id: Id,
    change: impl FnOnce(&mut Servable),
) -> Result<Option<Servable>> {
    let txn = store.write()?;
    let Some(mut servable) = get_record::<Servable>(&txn.open_table(SERVABLES)?, id)? else {
        return Ok(None);
    };
    change(&mut servable);
    put_servable(&txn, &servable)?;
    txn.commit()?;
    Ok(Some(servable))
}

/// The principal of a servable (its API key authenticates as this), unless its owner's account
/// is disabled or gone.
pub fn servable_principal(store: &Store, id: Id) -> Result<Option<Principal>> {
    let Some(servable) = get_servable(store, id)? else {
        return Ok(None);
    };
    let Some(owner) = crate::domains::accounts::get_user(store, servable.owner)? else {
        return Ok(None);
    };
    if owner.disabled {
        return Err(Error::unauthorized(
            "the account behind this servable is disabled",
        ));
    }
    Ok(Some(Principal {
        id: servable.id,
        kind: PrincipalKind::Servable,
        name: servable.name,
        admin: false,
        user: servable.owner,
    }))
}

/// Which of the running servables may reach which over the network: `(from, to)` for every pair
/// where `from`'s principal holds READ or REQUEST on `to` or on `to`'s running instance (a
/// config names either: the seed's app reads its daemon's instance). `running` holds
/// (servable, instance) pairs. One read of the store.
pub fn reachable(store: &Store, running: &[(Id, Id)]) -> Result<Vec<(Id, Id)>> {
    let txn = store.read()?;
    let acl = authz::Acl::read(&txn)?;
    let table = txn.open_table(SERVABLES)?;
    let mut principals = Vec::new();
    let mut targets = Vec::new();
    for (servable_id, instance_id) in running {
        let Some(servable) = get_record::<Servable>(&table, *servable_id)? else {
            continue;
        };
        let metas: Vec<ObjectMeta> = [*servable_id, *instance_id]
            .into_iter()
            .filter_map(|id| acl.object(id).transpose())
            .collect::<Result<_>>()?;
        principals.push(Principal {
            id: servable.id,
            kind: PrincipalKind::Servable,
            name: servable.name,
            admin: false,
            user: servable.owner,
        });
        targets.push((servable.id, metas));
    }
    let reach = Caps::of(&[Capability::Read, Capability::Request]);
    let mut out = Vec::new();
    for from in &principals {
        for (to, metas) in &targets {
            if from.id == *to {
                continue;
            }
            for meta in metas {
                if acl.caps(from, meta)?.0 & reach.0 != 0 {
                    out.push((from.id, *to));
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// Records a new object made by `creator`: owned by its account; a servable creator also holds
/// every capability on it, and a running pipeline lists it among its outputs.
pub(crate) fn record_creation(
    txn: &WriteTransaction,
    creator: &Principal,
    id: Id,
    kind: Kind,
    name: &str,
    now: Timestamp,
) -> Result<()> {
    authz::create_object(
        txn,
        &ObjectMeta {
            id,
            kind,
            owner: Some(creator.owner()),
            created: now,
        },
    )?;
    if creator.kind == PrincipalKind::Servable {
        authz::grant(txn, id, creator.id, Caps::ALL)?;
    }
    note_output(txn, creator, id, kind.as_str(), name)
}

/// Lists a new object among the outputs of a running pipeline (or other servable) that made it.
pub(crate) fn note_output(
    txn: &WriteTransaction,
    creator: &Principal,
    id: Id,
    kind: &str,
    name: &str,
) -> Result<()> {
    if creator.kind != PrincipalKind::Servable {
        return Ok(());
    }
    let current =
        get_record::<Servable>(&txn.open_table(SERVABLES)?, creator.id)?.and_then(|s| s.current);
    let Some(instance_id) = current else {
        return Ok(());
    };
    // Read in its own statement: the table handle must be gone before `put_record` opens it.
    let instance = get_record::<Instance>(&txn.open_table(INSTANCES)?, instance_id)?;
    if let Some(mut instance) = instance
        && instance.state.is_active()
    {
        instance.outputs.push(Output {
            id,
            kind: kind.to_owned(),
            name: name.to_owned(),
        });
        put_instance(txn, &instance)?;
    }
    Ok(())
}

/// What `POST /v1/servables` takes.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewServable {
    /// The prototype: its id or `name:tag`.
    pub prototype: String,
    #[schema(schema_with = names::name_schema)]
    pub name: String,
    /// Must equal the prototype's type when given.
    #[serde(default, rename = "type")]
    pub kind: Option<ServableType>,
    /// What the servable's code reads (`GET /v1/me`); where the prototype's
    /// `config-capabilities` name capabilities, the object ids they are needed on.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub config: Value,
    #[serde(default)]
    pub resources: Resources,
    /// For HTTP types: the proxy checks REQUEST on callers (default). Off: requests pass
    /// unchecked and the app authenticates users itself.
    #[serde(default)]
    pub access_control: Option<bool>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// Creates a servable from a prototype the caller holds CREATE on. What the request asks that
/// the prototype does not allow (another type, a config without the ids its
/// `config-capabilities` ask for, no access control for a type without a proxy) is a conflict
/// with the prototype: 409 when nothing else is wrong, as the request itself is well formed.
pub fn create_servable(
    store: &Store,
    caller: &Principal,
    new: NewServable,
    now: Timestamp,
) -> Result<Servable> {
    let prototype = manifest::prototype_for(store, caller, &new.prototype, Capability::Create)?;
    let mut problems = Vec::new();
    let mut conflicts = Vec::new();
    let name = match names::display_name(&new.name) {
        Ok(name) => name,
        Err(_) => {
            problems.push(Problem::new("servable", "name", names::name_rule()));
            ""
        }
    };
    if let Some(kind) = new.kind
        && kind != prototype.kind
    {
        conflicts.push(Problem::new(
            "servable",
            "type",
            format!(
                "the prototype {}:{} makes {} servables, not {}",
                prototype.name,
                prototype.tag,
                prototype.kind.as_str(),
                kind.as_str()
            ),
        ));
    }
    if !new.config.is_object() {
        problems.push(Problem::new("servable", "config", "must be a JSON object"));
    } else {
        delegation::check_config(&prototype.config_capabilities, &new.config, &mut conflicts);
    }
    new.resources.validate(&mut problems);
    if new.access_control == Some(false) && !prototype.kind.serves_http() {
        conflicts.push(Problem::new(
            "servable",
            "access_control",
            format!(
                "only HTTP types are served through the proxy; a {} has no access control to turn off",
                prototype.kind.as_str()
            ),
        ));
    }
    problems.extend(conflicts.into_iter().map(|p| p.because(Cause::Conflict)));
    if !problems.is_empty() {
        return Err(Error::Problems(problems));
    }
    let id = Id::new();
    let volume = prototype.volume().map(|(location, size_mb)| Volume {
        name: format!("dtaas-vol-{id}"),
        location,
        size_mb,
        used_bytes: None,
        enforced: false,
        overrun: false,
    });
    let servable = Servable {
        id,
        kind: prototype.kind,
        name: name.to_owned(),
        prototype: prototype.id,
        config: new.config,
        resources: new.resources,
        access_control: new.access_control.unwrap_or(true),
        owner: caller.owner(),
        creator: caller.id,
        created: now,
        volume,
        unenforced: Vec::new(),
        current: None,
        deleting: false,
    };
    let txn = store.write()?;
    put_servable(&txn, &servable)?;
    record_creation(&txn, caller, id, Kind::Servable, &servable.name, now)?;
    txn.commit()?;
    Ok(servable)
}

/// A servable's instances, oldest first (no access check: for the servable's own deletion).
pub fn instances_of(store: &Store, servable: Id) -> Result<Vec<Instance>> {
    instances_with(store, &[Facet::Parent(servable)])
}

/// Marks the servable's deletion as begun, durably, before anything of it is removed: from
/// then on it cannot run, and a crash leaves it to be finished. `None` if it is gone already.
pub fn mark_deleting(store: &Store, id: Id) -> Result<Option<Servable>> {
    let txn = store.write()?;
    let Some(mut servable) = get_record::<Servable>(&txn.open_table(SERVABLES)?, id)? else {
        return Ok(None);
    };
    if !servable.deleting {
        servable.deleting = true;
        put_servable(&txn, &servable)?;
        txn.commit()?;
    }
    Ok(Some(servable))
}

/// The servables whose deletion began and was not finished (a crash cut it), through the list
/// index.
pub fn deleting_servables(store: &Store) -> Result<Vec<Servable>> {
    let txn = store.read()?;
    let ids = authz::every_with(&txn, Kind::Servable, &[Facet::State(DELETING)])?;
    let table = txn.open_table(SERVABLES)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.extend(get_record::<Servable>(&table, id)?);
    }
    Ok(out)
}

/// Forgets a servable whose containers are gone: every instance it has (read in the same
/// transaction) and their logs, its delegation requests and every grant it held. Forgetting
/// one that is gone already does nothing.
pub fn forget_servable(store: &Store, id: Id) -> Result<()> {
    let txn = store.write()?;
    for instance in authz::every_in(&txn, Kind::Instance, Facet::Parent(id))? {
        txn.open_table(INSTANCES)?.remove(instance.0)?;
        logs::delete_logs(&txn, instance)?;
        authz::delete_object(&txn, instance)?;
    }
    delegation::forget_servable(&txn, id)?;
    txn.open_table(SERVABLES)?.remove(id.0)?;
    authz::delete_object(&txn, id)?;
    txn.commit()?;
    Ok(())
}

/// Forgets one instance whose container is gone (and the servable's pointer to it).
pub fn forget_instance(store: &Store, instance: &Instance) -> Result<()> {
    let id = instance.id;
    let txn = store.write()?;
    txn.open_table(INSTANCES)?.remove(id.0)?;
    logs::delete_logs(&txn, id)?;
    authz::delete_object(&txn, id)?;
    let servable = get_record::<Servable>(&txn.open_table(SERVABLES)?, instance.servable)?;
    if let Some(mut s) = servable
        && s.current == Some(id)
    {
        s.current = None;
        put_servable(&txn, &s)?;
    }
    txn.commit()?;
    Ok(())
}

/// Where the proxy sends requests for an HTTP-type servable.
#[derive(Debug, Clone)]
pub struct ProxyTarget {
    pub servable: Id,
    pub access_control: bool,
    pub addr: SocketAddr,
}

/// The running instance of an HTTP-type servable. Not found for unknown ids and for other
/// types (daemons are not exposed); unavailable while nothing runs.
pub fn proxy_target(store: &Store, id: Id) -> Result<ProxyTarget> {
    let not_found = || Error::not_found("Servable not found");
    let servable = get_servable(store, id)?.ok_or_else(not_found)?;
    if !servable.kind.serves_http() {
        return Err(not_found());
    }
    let instance = match servable.current {
        Some(i) => get_instance(store, i)?,
        None => None,
    };
    let addr = instance
        .filter(|i| i.state == InstanceState::Running)
        .and_then(|i| i.ipv4_address)
        .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
        // No name in the message: this answers callers not checked yet.
        .ok_or_else(|| {
            Error::Unavailable(format!("this {} is not running", servable.kind.as_str()))
        })?;
    Ok(ProxyTarget {
        servable: id,
        access_control: servable.access_control,
        addr: SocketAddr::new(addr, HTTP_PORT),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servable(store: &Store, owner: Id) -> Servable {
        let s = Servable {
            id: Id::new(),
            kind: ServableType::Daemon,
            name: "d".into(),
            prototype: Id::new(),
            config: empty_object(),
            resources: Resources::default(),
            access_control: true,
            owner,
            creator: owner,
            created: chrono::Utc::now(),
            volume: None,
            unenforced: Vec::new(),
            current: None,
            deleting: false,
        };
        let txn = store.write().unwrap();
        authz::create_object(
            &txn,
            &ObjectMeta {
                id: s.id,
                kind: Kind::Servable,
                owner: Some(owner),
                created: s.created,
            },
        )
        .unwrap();
        put_servable(&txn, &s).unwrap();
        txn.commit().unwrap();
        s
    }

    fn instance(store: &Store, servable: &Servable) -> Id {
        let i = Instance {
            id: Id::new(),
            servable: servable.id,
            kind: servable.kind,
            state: InstanceState::Running,
            exit_code: None,
            ipv4_address: None,
            runner: servable.owner,
            api_key: None,
            created: servable.created,
            started: None,
            finished: None,
            restarts: 0,
            error: None,
            outputs: Vec::new(),
            stopping: false,
            log: Default::default(),
        };
        let txn = store.write().unwrap();
        authz::create_object(
            &txn,
            &ObjectMeta {
                id: i.id,
                kind: Kind::Instance,
                owner: Some(servable.owner),
                created: i.created,
            },
        )
        .unwrap();
        put_instance(&txn, &i).unwrap();
        txn.commit().unwrap();
        i.id
    }

    #[test]
    fn recent_instances_are_the_callers_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::domains::open_store(dir.path()).unwrap();
        let (alice, bob) = (Id::new(), Id::new());
        let principal = |id: Id| Principal {
            id,
            kind: authz::PrincipalKind::User,
            name: "someone".into(),
            admin: false,
            user: id,
        };
        let (hers, his) = (servable(&store, alice), servable(&store, bob));
        let first = instance(&store, &hers);
        let second = instance(&store, &hers);
        let other = instance(&store, &his);
        update_instance(&store, first, |i| i.state = InstanceState::Failed).unwrap();
        let ids = |list: Vec<Instance>| -> Vec<Id> { list.iter().map(|i| i.id).collect() };
        let p = principal(alice);
        assert_eq!(
            ids(recent_instances(&store, &p, None, 10).unwrap()),
            vec![second, first]
        );
        let failed = recent_instances(&store, &p, Some(InstanceState::Failed), 10).unwrap();
        assert_eq!(ids(failed), vec![first]);
        assert_eq!(
            count_readable_instances(&store, &p, InstanceState::Running, 10).unwrap(),
            1
        );
        let q = principal(bob);
        assert_eq!(
            ids(recent_instances(&store, &q, None, 10).unwrap()),
            vec![other]
        );
        assert_eq!(
            count_readable_instances(&store, &q, InstanceState::Failed, 10).unwrap(),
            0
        );
    }

    /// A deletion is marked before anything is removed, found again after a crash through the
    /// index, and forgetting is complete (every instance, even one made after the deletion
    /// read them) and idempotent.
    #[test]
    fn a_begun_deletion_is_found_again_and_forgetting_is_complete_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::domains::open_store(dir.path()).unwrap();
        let owner = Id::new();
        let (kept, doomed) = (servable(&store, owner), servable(&store, owner));
        let first = instance(&store, &doomed);
        assert!(deleting_servables(&store).unwrap().is_empty());

        let marked = mark_deleting(&store, doomed.id).unwrap().unwrap();
        assert!(marked.deleting);
        // Marking again changes nothing; a servable that is gone is `None`.
        assert!(mark_deleting(&store, doomed.id).unwrap().unwrap().deleting);
        assert!(mark_deleting(&store, Id::new()).unwrap().is_none());
        let found: Vec<Id> = deleting_servables(&store)
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(found, vec![doomed.id]);
        assert!(!get_servable(&store, kept.id).unwrap().unwrap().deleting);

        let late = instance(&store, &doomed);
        forget_servable(&store, doomed.id).unwrap();
        forget_servable(&store, doomed.id).unwrap();
        assert!(get_servable(&store, doomed.id).unwrap().is_none());
        for i in [first, late] {
            assert!(
                get_instance(&store, i).unwrap().is_none(),
                "instance {i} left"
            );
        }
        assert!(instances_of(&store, doomed.id).unwrap().is_empty());
        assert!(deleting_servables(&store).unwrap().is_empty());
        assert!(get_servable(&store, kept.id).unwrap().is_some());
    }
}
