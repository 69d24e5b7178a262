//! Project manifests (seeds 001 and 002) and the prototypes they register.
//!
//! A manifest maps prototype names to their metadata. [`register_manifest`] checks everything
//! first and reports every problem with the prototype and field it concerns; only a manifest
//! without problems is registered, in one transaction. A prototype is addressed by its id or by
//! `name:tag`; it cannot be deleted while another prototype depends on it or a servable uses it.

use super::{SERVABLES, Servable, ServableType};
use crate::core::clock::Timestamp;
use crate::core::error::{Error, Problem, Result};
use crate::core::id::Id;
use crate::core::store::{Store, StoreError, decode, get_record, put_record};
use crate::domains::authz::{self, Acl, Capability, Kind, Principal};
use crate::domains::registry::{meta as registry, names};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};

const PROTOTYPES: TableDefinition<u128, &[u8]> = TableDefinition::new("prototypes");
/// `name:tag` -> prototype id.
const PROTOTYPE_NAMES: TableDefinition<&str, u128> = TableDefinition::new("prototype_names");

pub(crate) fn init_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(PROTOTYPES)?;
    txn.open_table(PROTOTYPE_NAMES)?;
    Ok(())
}

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
    pub fn reference(&self) -> String {
        format!("{}:{}", self.name, self.tag)
    }

    /// A daemon's volume: (mount point, size in MB).
    pub fn volume(&self) -> Option<(String, u64)> {
        if self.kind != ServableType::Daemon {
            return None;
        }
        let location = self.arguments.get("volume_location")?.as_str()?.to_owned();
        let size = self.arguments.get("volume_size")?.as_u64()?;
        Some((location, size))
    }
}

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

pub fn list_prototypes(store: &Store, caller: &Principal) -> Result<Vec<Prototype>> {
    authz::list_readable(store, PROTOTYPES, caller)
}

/// One manifest entry, read field by field so that every problem can be reported.
struct Entry<'a> {
    key: &'a str,
    fields: &'a Map<String, Value>,
}

const KNOWN_FIELDS: &[&str] = &[
    "name",
    "tag",
    "type",
    "dependencies",
    "arguments",
    "capabilities",
    "config-capabilities",
    "dockerfile",
    "context",
];

/// What a reference in `dependencies` or `capabilities` points at.
#[derive(Clone, Copy)]
enum Target<'a> {
    Existing(Id),
    InManifest(&'a str),
}

/// Registers every prototype of a manifest, or nothing. Needs CREATE on the prototype
/// collection, READ on each image's repository, and DISCOVER on existing prototypes referred to.
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
    let Some(top) = manifest.as_object() else {
        return Err(Error::bad_request(
            "a manifest is a JSON object mapping prototype names to their metadata",
        ));
    };
    if top.is_empty() {
        return Err(Error::bad_request("the manifest declares no prototype"));
    }
    let mut problems = Vec::new();
    let mut entries = Vec::new();
    for (key, value) in top {
        match value.as_object() {
            Some(fields) => entries.push(Entry { key, fields }),
            None => problems.push(Problem::new(key, "", "must be a JSON object")),
        }
    }
    let names: Vec<&str> = entries.iter().map(|e| e.key).collect();
    let txn = store.read()?;
    let acl = Acl::read(&txn)?;
    let prototypes = txn.open_table(PROTOTYPES)?;
    let registered = txn.open_table(PROTOTYPE_NAMES)?;

    // Resolves a dependency or capability key; records a problem when it does not resolve.
    let resolve = |entry: &str, field: &str, reference: &str, problems: &mut Vec<Problem>| {
        if let Some(name) = names.iter().find(|n| **n == reference) {
            return Some(Target::InManifest(name));
        }
        let existing = match Id::parse(reference) {
            Some(id) => get_record::<Prototype>(&prototypes, id).ok().flatten(),
            None => registered.get(reference).ok().flatten().and_then(|v| {
                get_record::<Prototype>(&prototypes, Id(v.value()))
                    .ok()
                    .flatten()
            }),
        };
        let visible = existing.filter(|p| {
            acl.object(p.id)
                .ok()
                .flatten()
                .is_some_and(|meta| acl.visible(caller, &meta).unwrap_or(false))
        });
        match visible {
            Some(p) => Some(Target::Existing(p.id)),
            None => {
                problems.push(Problem::new(
                    entry,
                    field,
                    format!(
                        "{reference:?} is neither a prototype in this manifest nor an existing prototype id you can see"
                    ),
                ));
                None
            }
        }
    };

    struct Checked<'a> {
        key: &'a str,
        tag: String,
        kind: ServableType,
        repository: String,
        dependencies: Vec<(String, Target<'a>)>,
        arguments: Value,
        capabilities: Vec<(Target<'a>, Vec<Capability>)>,
        config_capabilities: Value,
        dockerfile: Option<String>,
        context: Option<String>,
    }
    let mut checked = Vec::new();
    for entry in &entries {
        let key = entry.key;
        let f = entry.fields;
        let start = problems.len();
        for field in f.keys() {
            if !KNOWN_FIELDS.contains(&field.as_str()) {
                problems.push(Problem::new(
                    key,
                    field,
                    format!("unknown field (known: {})", KNOWN_FIELDS.join(", ")),
                ));
            }
        }
        match f.get("name").and_then(Value::as_str) {
            Some(name) if name == key => {
                if !names::valid_name(name) {
                    problems.push(Problem::new(
                        key,
                        "name",
                        "must be a valid image name: lowercase letters, digits and . _ - separators",
                    ));
                }
            }
            Some(name) => problems.push(Problem::new(
                key,
                "name",
                format!("{name:?} must equal the manifest key {key:?}"),
            )),
            None => problems.push(Problem::new(
                key,
                "name",
                "missing (a string equal to the key)",
            )),
        }
        let tag = match f.get("tag") {
            Some(Value::String(t)) if names::valid_tag(t) => t.clone(),
            Some(Value::String(t)) => {
                problems.push(Problem::new(
                    key,
                    "tag",
                    format!("{t:?} is not a valid image tag"),
                ));
                String::new()
            }
            Some(_) => {
                problems.push(Problem::new(key, "tag", "must be a string"));
                String::new()
            }
            None => {
                problems.push(Problem::new(key, "tag", "missing"));
                String::new()
            }
        };
        let kind = match f.get("type").and_then(Value::as_str) {
            Some(t) => match ServableType::parse(t) {
                Some(k) => Some(k),
                None => {
                    problems.push(Problem::new(
                        key,
                        "type",
                        format!(
                            "{t:?} is not a type (GET /v1/types: {})",
                            ServableType::ALL.map(ServableType::as_str).join(", ")
                        ),
                    ));
                    None
                }
            },
            None => {
                problems.push(Problem::new(key, "type", "missing"));
                None
            }
        };
        let mut dependencies = Vec::new();
        match f.get("dependencies") {
            None => {}
            Some(Value::Object(deps)) => {
                for (dep_key, value) in deps {
                    let field = format!("dependencies.{dep_key}");
                    match value.as_str() {
                        Some(reference) => {
                            if let Some(t) = resolve(key, &field, reference, &mut problems) {
                                dependencies.push((dep_key.clone(), t));
                            }
                        }
                        None => problems.push(Problem::new(
                            key,
                            &field,
                            "must be a prototype id or the name of a prototype in this manifest",
                        )),
                    }
                }
            }
            Some(_) => problems.push(Problem::new(key, "dependencies", "must be a JSON object")),
        }
        let arguments = match f.get("arguments") {
            None => Value::Object(Map::new()),
            Some(Value::Object(a)) => Value::Object(a.clone()),
            Some(_) => {
                problems.push(Problem::new(key, "arguments", "must be a JSON object"));
                Value::Null
            }
        };
        if kind == Some(ServableType::Daemon) {
            check_daemon_arguments(key, &arguments, &mut problems);
        }
        let mut capabilities = Vec::new();
        match f.get("capabilities") {
            None => {}
            Some(Value::Object(caps)) => {
                for (target, list) in caps {
                    let field = format!("capabilities.{target}");
                    let parsed = parse_capability_list(list);
                    let resolved = resolve(key, &field, target, &mut problems);
                    match (resolved, parsed) {
                        (Some(t), Ok(list)) => capabilities.push((t, list)),
                        (_, Err(why)) => problems.push(Problem::new(key, &field, why)),
                        (None, Ok(_)) => {}
                    }
                }
            }
            Some(_) => problems.push(Problem::new(key, "capabilities", "must be a JSON object")),
        }
        let config_capabilities = match f.get("config-capabilities") {
            None => Value::Object(Map::new()),
            // A config is an object, so what mirrors it is one too.
            Some(v @ Value::Object(_)) => {
                check_config_capabilities(key, "config-capabilities", v, &mut problems);
                v.clone()
            }
            Some(_) => {
                problems.push(Problem::new(
                    key,
                    "config-capabilities",
                    "must be an object mirroring the config",
                ));
                Value::Null
            }
        };
        let optional_path = |field: &str, problems: &mut Vec<Problem>| match f.get(field) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                problems.push(Problem::new(key, field, "must be a path (a string)"));
                None
            }
        };
        let dockerfile = optional_path("dockerfile", &mut problems);
        let context = optional_path("context", &mut problems);
        // The image, once name and tag are sound.
        let mut repository = String::new();
        if problems.len() == start || (!tag.is_empty() && names::valid_name(key)) {
            let reference = format!("{key}:{tag}");
            if registered.get(reference.as_str())?.is_some() {
                problems.push(Problem {
                    conflict: true,
                    ..Problem::new(key, "tag", format!("{reference} is already registered"))
                });
            }
            match image_repository(store, caller, key, &tag) {
                Ok(repo) => repository = repo,
                Err(why) => problems.push(Problem::new(key, "tag", why)),
            }
        }
        if let Some(kind) = kind {
            checked.push(Checked {
                key,
                tag,
                kind,
                repository,
                dependencies,
                arguments,
                capabilities,
                config_capabilities,
                dockerfile,
                context,
            });
        }
    }
    check_cycles(&entries, &mut problems);
    drop((prototypes, registered, acl, txn));
    if !problems.is_empty() {
        return Err(Error::Problems(problems));
    }

    // Everything is valid: assign ids, resolve names, register in one transaction. Every entry
    // is in `checked` here (an entry without a type is a problem above).
    let ids: HashMap<&str, Id> = checked.iter().map(|c| (c.key, Id::new())).collect();
    let id_of = |t: Target<'_>| -> Result<Id> {
        match t {
            Target::Existing(id) => Ok(id),
            Target::InManifest(name) => ids
                .get(name)
                .copied()
                .ok_or_else(|| Error::internal(format!("manifest entry {name} lost its id"))),
        }
    };
    let mut out = Vec::new();
    let txn = store.write()?;
    for c in checked {
        let prototype = Prototype {
            id: id_of(Target::InManifest(c.key))?,
            name: c.key.to_owned(),
            tag: c.tag,
            kind: c.kind,
            repository: c.repository,
            dependencies: c
                .dependencies
                .into_iter()
                .map(|(k, t)| Ok((k, id_of(t)?)))
                .collect::<Result<_>>()?,
            arguments: c.arguments,
            capabilities: c
                .capabilities
                .into_iter()
                .map(|(t, caps)| Ok((id_of(t)?, caps)))
                .collect::<Result<_>>()?,
            config_capabilities: c.config_capabilities,
            dockerfile: c.dockerfile,
            context: c.context,
            owner: caller.owner(),
            created: now,
        };
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
        super::record_creation(&txn, caller, prototype.id, Kind::Prototype, &reference, now)?;
        out.push(prototype);
    }
    txn.commit()?;
    Ok(out)
}

fn check_daemon_arguments(key: &str, arguments: &Value, problems: &mut Vec<Problem>) {
    let location = arguments.get("volume_location");
    let size = arguments.get("volume_size");
    if location.is_none() && size.is_none() {
        return;
    }
    match location.and_then(Value::as_str) {
        Some(l) if l.starts_with('/') && l != "/" && !l.split('/').any(|c| c == "..") => {}
        Some(l) => problems.push(Problem::new(
            key,
            "arguments.volume_location",
            format!("{l:?} must be an absolute path in the container (not / and without ..)"),
        )),
        None => problems.push(Problem::new(
            key,
            "arguments.volume_location",
            "missing: a daemon with a volume_size needs an absolute volume_location",
        )),
    }
    match size {
        Some(v) if v.as_u64().is_some_and(|n| n > 0) => {}
        Some(v) => problems.push(Problem::new(
            key,
            "arguments.volume_size",
            format!("{v} must be a positive whole number of megabytes"),
        )),
        None => problems.push(Problem::new(
            key,
            "arguments.volume_size",
            "missing: a daemon with a volume_location needs a volume_size in MB",
        )),
    }
}

fn parse_capability_list(list: &Value) -> Result<Vec<Capability>, String> {
    let Some(items) = list.as_array() else {
        return Err("must be a list of capabilities".into());
    };
    if items.is_empty() {
        return Err("lists no capability".into());
    }
    let mut out = Vec::new();
    for item in items {
        match item.as_str().and_then(Capability::parse) {
            Some(c) => out.push(c),
            None => {
                return Err(format!(
                    "{item} is not a capability (one of {})",
                    Capability::ALL.map(|c| c.as_str()).join(", ")
                ));
            }
        }
    }
    Ok(out)
}

/// `config-capabilities` mirrors the config: objects nest, lists of capabilities are leaves.
fn check_config_capabilities(key: &str, path: &str, value: &Value, problems: &mut Vec<Problem>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                check_config_capabilities(key, &format!("{path}.{k}"), v, problems);
            }
        }
        Value::Array(_) => {
            if let Err(why) = parse_capability_list(value) {
                problems.push(Problem::new(key, path, why));
            }
        }
        _ => problems.push(Problem::new(
            key,
            path,
            "must be a list of capabilities, or an object mirroring the config",
        )),
    }
}

/// The registry repository of `name:tag` the caller may read: `name`, else `<login>/name`.
fn image_repository(
    store: &Store,
    caller: &Principal,
    name: &str,
    tag: &str,
) -> Result<String, String> {
    let login = names::sanitize_component(&caller.name);
    let mut seen_unreadable = false;
    for repo in [name.to_owned(), format!("{login}/{name}")] {
        match registry::repo_caps(store, caller, &repo) {
            Ok(Some((_, caps))) if caps.contains(Capability::Read) => {
                if registry::resolve(store, &repo, tag)
                    .ok()
                    .flatten()
                    .is_some()
                {
                    return Ok(repo);
                }
            }
            Ok(Some(_)) => seen_unreadable = true,
            Ok(None) => {}
            Err(e) => return Err(format!("cannot read the registry: {e}")),
        }
    }
    if seen_unreadable {
        Err(format!(
            "you lack READ on the image {name}:{tag} in the registry"
        ))
    } else {
        Err(format!(
            "the image {name}:{tag} is not in the registry (push it first, e.g. docker push <host>/{name}:{tag})"
        ))
    }
}

/// Dependencies among the manifest's own prototypes must not form a cycle.
fn check_cycles(entries: &[Entry<'_>], problems: &mut Vec<Problem>) {
    let names: Vec<&str> = entries.iter().map(|e| e.key).collect();
    let edges: HashMap<&str, Vec<&str>> = entries
        .iter()
        .map(|e| {
            let deps = e
                .fields
                .get("dependencies")
                .and_then(Value::as_object)
                .map(|d| {
                    d.values()
                        .filter_map(Value::as_str)
                        .filter_map(|v| names.iter().find(|n| **n == v).copied())
                        .collect()
                })
                .unwrap_or_default();
            (e.key, deps)
        })
        .collect();
    // 0 unvisited, 1 on the current path, 2 done.
    let mut state: HashMap<&str, u8> = HashMap::new();
    let mut reported = false;
    fn visit<'a>(
        node: &'a str,
        edges: &HashMap<&'a str, Vec<&'a str>>,
        state: &mut HashMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<&'a str>> {
        state.insert(node, 1);
        path.push(node);
        for next in edges.get(node).into_iter().flatten() {
            match state.get(next).copied().unwrap_or(0) {
                1 => {
                    let start = path.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next);
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, edges, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(node, 2);
        None
    }
    for name in &names {
        if reported || state.get(name).copied().unwrap_or(0) != 0 {
            continue;
        }
        if let Some(cycle) = visit(name, &edges, &mut state, &mut Vec::new()) {
            reported = true;
            problems.push(Problem::new(
                cycle[0],
                "dependencies",
                format!("dependency cycle: {}", cycle.join(" -> ")),
            ));
        }
    }
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
    for entry in txn.open_table(SERVABLES)?.iter()? {
        let (_, v) = entry?;
        let servable: Servable = decode(v.value())?;
        if servable.prototype == prototype.id {
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
