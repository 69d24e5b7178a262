//! `dtaas upload [DIR]`: a project (seed 000) onto the appliance. Reads `MANIFEST` or
//! `MANIFEST.json`; for each prototype, in dependency order, the image `NAME:TAG` of the local
//! engine is built when it is missing and the entry gives `dockerfile`/`context` (relative to
//! DIR), then pushed to `<login>/NAME:TAG` in the appliance's registry ([`super::push`]); then
//! the manifest is registered (`POST /v1/prototypes`).
//!
//! Nothing is registered when any image fails (every failure is reported). Running it again
//! skips what is there: an image the registry holds with the same config digest (under
//! `NAME` or `<login>/NAME`, where the server looks) is neither built nor pushed, and a
//! prototype registered already with the same settings is left as it is (the server answers
//! 409 for a `name:tag` taken; one registered with other settings is an error that says to
//! change the tag). Prototypes still to register refer to registered ones by id.

use super::Ctx;
use super::http::{ClientError, sanitize};
use super::layers::LayerCache;
use super::local::{self, Local};
use super::output::{at, table};
use super::progress::{Bars, short};
use super::push::{self, Pushed};
use super::registry::{Registry, RepoRef};
use super::{is_id, segment};
use clap::Args;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

pub const EXAMPLES: &str = "Examples:
  cd examples/hello && dtaas upload
  dtaas upload path/to/project
  dtaas upload --json";

/// The largest manifest read.
const MAX_MANIFEST: u64 = 4 << 20;

#[derive(Args, Debug)]
pub struct UploadArgs {
    /// The project's directory, holding MANIFEST or MANIFEST.json [default: .].
    pub dir: Option<PathBuf>,
}

/// A prototype of the manifest, as upload needs it.
#[derive(Debug, Clone)]
struct Entry {
    key: String,
    tag: String,
    /// What to build, when the image is missing: (context, Dockerfile).
    build: Option<(PathBuf, PathBuf)>,
    /// The entry as written (sent to the server).
    raw: Map<String, Value>,
}

impl Entry {
    fn reference(&self) -> String {
        format!("{}:{}", self.key, self.tag)
    }

    /// The references this entry makes (dependency values and capability keys).
    fn references(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .raw
            .get("dependencies")
            .and_then(Value::as_object)
            .map(|d| {
                d.values()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if let Some(c) = self.raw.get("capabilities").and_then(Value::as_object) {
            out.extend(c.keys().cloned());
        }
        out
    }
}

/// The manifest file of `dir`: `MANIFEST` or `MANIFEST.json` (not both).
fn manifest_file(dir: &Path) -> Result<PathBuf, String> {
    let plain = dir.join("MANIFEST");
    let json = dir.join("MANIFEST.json");
    match (plain.is_file(), json.is_file()) {
        (true, true) => Err(format!(
            "{} holds both MANIFEST and MANIFEST.json: keep one",
            dir.display()
        )),
        (true, false) => Ok(plain),
        (false, true) => Ok(json),
        (false, false) => Err(format!(
            "{} holds no MANIFEST or MANIFEST.json: run dtaas upload in the project's \
             directory, or name it (dtaas upload DIR)",
            dir.display()
        )),
    }
}

/// Reads the manifest's entries, in dependency order (an entry after those of the manifest it
/// refers to; a cycle keeps the manifest's order, and the server reports it).
fn read_entries(dir: &Path, file: &Path) -> Result<Vec<Entry>, String> {
    let meta =
        std::fs::metadata(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    if meta.len() > MAX_MANIFEST {
        return Err(format!("{} is larger than 4 MiB", file.display()));
    }
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", file.display()))?;
    let top = value.as_object().ok_or_else(|| {
        format!(
            "{} must be a JSON object mapping prototype names to their metadata",
            file.display()
        )
    })?;
    if top.is_empty() {
        return Err(format!("{} declares no prototype", file.display()));
    }
    let mut problems = Vec::new();
    let mut entries = Vec::new();
    for (key, v) in top {
        let Some(raw) = v.as_object() else {
            problems.push(format!("{key}: must be a JSON object"));
            continue;
        };
        let string = |field: &str| raw.get(field).and_then(Value::as_str).map(str::to_owned);
        let Some(tag) = string("tag") else {
            problems.push(format!("{key}: tag: missing (a string)"));
            continue;
        };
        for field in ["dockerfile", "context"] {
            if raw
                .get(field)
                .is_some_and(|v| !v.is_string() && !v.is_null())
            {
                problems.push(format!("{key}: {field}: must be a path (a string)"));
            }
        }
        let build = match (string("context"), string("dockerfile")) {
            (Some(c), Some(d)) => Some((dir.join(c), dir.join(d))),
            (Some(c), None) => {
                let context = dir.join(c);
                let dockerfile = context.join("Dockerfile");
                Some((context, dockerfile))
            }
            (None, Some(d)) => {
                let dockerfile = dir.join(d);
                let context = dockerfile.parent().unwrap_or(dir).to_path_buf();
                Some((context, dockerfile))
            }
            (None, None) => None,
        };
        entries.push(Entry {
            key: key.clone(),
            tag,
            build,
            raw: raw.clone(),
        });
    }
    if !problems.is_empty() {
        return Err(format!(
            "{} has problems:\n  {}",
            file.display(),
            problems.join("\n  ")
        ));
    }
    Ok(dependency_order(entries))
}

fn dependency_order(entries: Vec<Entry>) -> Vec<Entry> {
    let keys: BTreeSet<String> = entries.iter().map(|e| e.key.clone()).collect();
    let mut placed: BTreeSet<String> = BTreeSet::new();
    let mut rest = entries;
    let mut out = Vec::with_capacity(rest.len());
    // Each round places at least one entry, or ends.
    while !rest.is_empty() {
        let ready = rest.iter().position(|e| {
            e.references()
                .iter()
                .all(|r| r == &e.key || !keys.contains(r) || placed.contains(r))
        });
        let i = ready.unwrap_or(0);
        let entry = rest.remove(i);
        placed.insert(entry.key.clone());
        out.push(entry);
    }
    out
}

/// What happened to one prototype's image.
#[derive(Debug, Clone, Serialize)]
struct ImageReport {
    /// The prototype, `name:tag`.
    prototype: String,
    /// The repository the image is in (or went to).
    repository: String,
    /// `host:port/repository:tag`.
    reference: String,
    /// Built from the entry's Dockerfile.
    built: bool,
    /// `pushed`, or `present` (the registry held it already).
    status: &'static str,
    /// The manifest's digest.
    digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    push: Option<Pushed>,
}

/// The registry's image of `name:tag` where the server looks for it (`name`, then
/// `<namespace>/name`), if any.
async fn in_registry(
    reg: &Registry,
    name: &str,
    tag: &str,
) -> Option<(String, super::registry::RemoteImage)> {
    let mut candidates = vec![name.to_owned()];
    if let Some(ns) = &reg.namespace {
        candidates.push(format!("{ns}/{name}"));
    }
    for repository in candidates {
        if let Ok(Some(image)) = reg.image(&repository, tag).await {
            return Some((repository, image));
        }
    }
    None
}

/// Makes sure the registry holds the image of `entry`: built if missing and buildable, pushed
/// unless there.
async fn provide_image(
    reg: &Registry,
    engine: &Result<Local, String>,
    entry: &Entry,
    cache: &mut LayerCache,
    bars: &Bars,
) -> Result<ImageReport, String> {
    let local_ref = entry.reference();
    let namespace = reg
        .namespace
        .as_deref()
        .ok_or("dtaas upload needs a user's key (this one is a servable's): run dtaas login")?;
    let mut local = match engine {
        Ok(e) => local::inspect(&e.docker, &local_ref).await?,
        Err(_) => None,
    };
    let there = in_registry(reg, &entry.key, &entry.tag).await;
    let present = |repository: &str, digest: &str| ImageReport {
        prototype: local_ref.clone(),
        repository: repository.to_owned(),
        reference: format!("{}/{repository}:{}", reg.host, entry.tag),
        built: false,
        status: "present",
        digest: digest.to_owned(),
        push: None,
    };
    match (&local, &there) {
        (None, Some((repository, image))) => {
            return Ok(present(repository, &image.fetched.digest));
        }
        (Some(l), Some((repository, image))) if image.manifest.config.digest == l.id => {
            return Ok(present(repository, &image.fetched.digest));
        }
        _ => {}
    }
    let engine = engine.as_ref().map_err(Clone::clone)?;
    let mut built = false;
    if local.is_none() {
        let Some((context, dockerfile)) = &entry.build else {
            return Err(format!(
                "neither the Docker engine nor the registry has {local_ref}: build it \
                 (docker build -t {local_ref} ...) or give \"dockerfile\"/\"context\" in the \
                 manifest"
            ));
        };
        bars.note(&format!(
            "Building {local_ref} from {}",
            dockerfile.display()
        ));
        let spinner = bars.spinner(&local_ref);
        let result = local::build(&engine.docker, context, dockerfile, &local_ref, &spinner).await;
        match &result {
            Ok(id) => spinner.finish_with_message(format!("built {}", short(id))),
            Err(_) => spinner.abandon_with_message("failed"),
        }
        result?;
        built = true;
        local = local::inspect(&engine.docker, &local_ref).await?;
    }
    let image = local.ok_or_else(|| format!("the engine lost {local_ref}"))?;
    if let Some((repository, _)) = &there
        && repository == &entry.key
    {
        bars.note(&format!(
            "Note: the registry's {repository}:{} (outside your namespace) differs from your \
             {local_ref}; the appliance uses that one for the prototype",
            entry.tag
        ));
    }
    let target = RepoRef {
        name: format!("{namespace}/{}", entry.key),
        reference: entry.tag.clone(),
    };
    let pushed = push::push_image(
        reg,
        &engine.docker,
        &local_ref,
        &image,
        &target,
        cache,
        bars,
    )
    .await?;
    Ok(ImageReport {
        prototype: local_ref,
        repository: pushed.name.clone(),
        reference: pushed.reference.clone(),
        built,
        status: if pushed.already { "present" } else { "pushed" },
        digest: pushed.digest.clone(),
        push: Some(pushed),
    })
}

/// The capabilities of a prototype as a comparable set per target.
fn caps_of(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The fields in which a registered prototype differs from its manifest entry; references are
/// compared by the ids `resolve` gives (`None`: not registered, so different).
fn differences(
    entry: &Entry,
    registered: &Value,
    resolve: &dyn Fn(&str) -> Option<String>,
) -> Vec<&'static str> {
    let mut out = Vec::new();
    let raw = |field: &str| entry.raw.get(field).cloned().unwrap_or(Value::Null);
    let object = |v: Value| if v.is_null() { json!({}) } else { v };
    if raw("type") != registered["type"] {
        out.push("type");
    }
    if object(raw("arguments")) != object(registered["arguments"].clone()) {
        out.push("arguments");
    }
    if object(raw("config-capabilities")) != object(registered["config-capabilities"].clone()) {
        out.push("config-capabilities");
    }
    for field in ["dockerfile", "context"] {
        if raw(field) != registered[field] {
            out.push(field);
        }
    }
    let wanted_deps: Option<BTreeMap<String, String>> = raw("dependencies")
        .as_object()
        .map(|d| {
            d.iter()
                .map(|(k, v)| Some((k.clone(), resolve(v.as_str()?)?)))
                .collect()
        })
        .unwrap_or(Some(BTreeMap::new()));
    let have_deps: BTreeMap<String, String> = registered["dependencies"]
        .as_object()
        .map(|d| {
            d.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    if wanted_deps.as_ref() != Some(&have_deps) {
        out.push("dependencies");
    }
    let wanted_caps: Option<BTreeMap<String, BTreeSet<String>>> = raw("capabilities")
        .as_object()
        .map(|c| {
            c.iter()
                .map(|(k, v)| Some((resolve(k)?, caps_of(v))))
                .collect()
        })
        .unwrap_or(Some(BTreeMap::new()));
    let have_caps: BTreeMap<String, BTreeSet<String>> = registered["capabilities"]
        .as_object()
        .map(|c| c.iter().map(|(k, v)| (k.clone(), caps_of(v))).collect())
        .unwrap_or_default();
    if wanted_caps.as_ref() != Some(&have_caps) {
        out.push("capabilities");
    }
    out
}

/// The entry to register, its references to registered prototypes of the manifest rewritten to
/// their ids.
fn rewritten(entry: &Entry, registered: &HashMap<String, String>) -> Value {
    let mut raw = entry.raw.clone();
    if let Some(deps) = raw.get_mut("dependencies").and_then(Value::as_object_mut) {
        for v in deps.values_mut() {
            if let Some(id) = v.as_str().and_then(|r| registered.get(r)) {
                *v = Value::String(id.clone());
            }
        }
    }
    if let Some(caps) = raw.get_mut("capabilities").and_then(Value::as_object_mut) {
        let old = std::mem::take(caps);
        for (k, v) in old {
            let key = registered.get(&k).cloned().unwrap_or(k);
            caps.insert(key, v);
        }
    }
    Value::Object(raw)
}

/// Registers what is not registered yet; returns (registered now, registered before).
async fn register(
    api: &super::http::Api,
    entries: &[Entry],
) -> Result<(Vec<Value>, Vec<String>), String> {
    let keys: BTreeSet<&str> = entries.iter().map(|e| e.key.as_str()).collect();
    let mut existing: HashMap<String, Value> = HashMap::new();
    for entry in entries {
        match api
            .get(&format!("/v1/prototypes/{}", segment(&entry.reference())))
            .await
        {
            Ok(view) => {
                existing.insert(entry.key.clone(), view);
            }
            Err(e) if e.status().is_some_and(|s| s == 404) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let ids: HashMap<String, String> = existing
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v["id"].as_str()?.to_owned())))
        .collect();
    // References to prototypes outside the manifest (`name:tag`), by id.
    let mut outside: HashMap<String, Option<String>> = HashMap::new();
    for entry in entries.iter().filter(|e| existing.contains_key(&e.key)) {
        for r in entry.references() {
            if keys.contains(r.as_str()) || is_id(&r) || outside.contains_key(&r) {
                continue;
            }
            let id = match api.get(&format!("/v1/prototypes/{}", segment(&r))).await {
                Ok(v) => v["id"].as_str().map(str::to_owned),
                Err(e) if e.status().is_some_and(|s| s == 404) => None,
                Err(e) => return Err(e.into()),
            };
            outside.insert(r, id);
        }
    }
    let resolve = |r: &str| -> Option<String> {
        if keys.contains(r) {
            ids.get(r).cloned()
        } else if is_id(r) {
            Some(r.to_owned())
        } else {
            outside.get(r).cloned().flatten()
        }
    };
    let mut conflicts = Vec::new();
    for entry in entries {
        if let Some(view) = existing.get(&entry.key) {
            let differ = differences(entry, view, &resolve);
            if !differ.is_empty() {
                conflicts.push(format!(
                    "{} is registered already with another {}",
                    entry.reference(),
                    differ.join(", ")
                ));
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(format!(
            "{}.\nA prototype is not changed in place: give it a new tag in the manifest (or \
             delete the old one), then run dtaas upload again",
            conflicts.join(";\n")
        ));
    }
    let before: Vec<String> = entries
        .iter()
        .filter(|e| existing.contains_key(&e.key))
        .map(Entry::reference)
        .collect();
    let mut body = Map::new();
    for entry in entries.iter().filter(|e| !existing.contains_key(&e.key)) {
        body.insert(entry.key.clone(), rewritten(entry, &ids));
    }
    if body.is_empty() {
        return Ok((Vec::new(), before));
    }
    match api.post("/v1/prototypes", Value::Object(body)).await {
        Ok(Value::Array(views)) => Ok((views, before)),
        Ok(_) => Ok((Vec::new(), before)),
        Err(e @ ClientError::Api { .. }) if e.status().is_some_and(|s| s == 409) => Err(format!(
            "{e}\n(someone registered it meanwhile: run dtaas upload again)"
        )),
        Err(e) => Err(format!("registering the manifest failed: {e}")),
    }
}

pub async fn upload(ctx: &Ctx, args: UploadArgs) -> Result<(), String> {
    let dir = args.dir.unwrap_or_else(|| PathBuf::from("."));
    let file = manifest_file(&dir)?;
    let entries = read_entries(&dir, &file)?;
    let api = ctx.api()?;
    let reg = Registry::connect(ctx).await?;
    let engine = local::connect().await;
    let bars = Bars::new(ctx.out.json);
    let mut cache = LayerCache::load();
    let mut images = Vec::new();
    let mut failures = Vec::new();
    for entry in &entries {
        match provide_image(&reg, &engine, entry, &mut cache, &bars).await {
            Ok(report) => {
                bars.note(&match report.status {
                    "present" => format!(
                        "{}: already in the registry as {}",
                        report.prototype, report.reference
                    ),
                    _ => format!(
                        "{}: {} to {}",
                        report.prototype,
                        if report.built {
                            "built and pushed"
                        } else {
                            "pushed"
                        },
                        report.reference
                    ),
                });
                images.push(report);
            }
            Err(e) => {
                bars.note(&format!("{}: failed", entry.reference()));
                failures.push(format!("{}: {e}", entry.reference()));
            }
        }
    }
    cache.save();
    if !failures.is_empty() {
        return Err(format!(
            "nothing was registered: {} of {} image{} failed.\n{}\nFix {}, then run dtaas \
             upload again (what went up already is skipped)",
            failures.len(),
            entries.len(),
            if entries.len() == 1 { "" } else { "s" },
            failures.join("\n"),
            if failures.len() == 1 { "it" } else { "them" }
        ));
    }
    let (registered, before) = register(&api, &entries).await?;
    if ctx.out.json {
        ctx.out.print_json(&json!({
            "manifest": file,
            "images": images,
            "registered": registered,
            "already_registered": before,
        }));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = images
        .iter()
        .map(|i| {
            let what = match (i.status, i.built) {
                ("present", _) => "already in the registry",
                (_, true) => "built, pushed",
                _ => "pushed",
            };
            vec![i.prototype.clone(), what.to_owned(), i.reference.clone()]
        })
        .collect();
    let mut text = table(&["PROTOTYPE", "IMAGE", "REFERENCE"], &rows);
    let names = |list: &[String]| list.join(", ");
    let now: Vec<String> = registered
        .iter()
        .map(|v| format!("{}:{}", at(v, "/name"), at(v, "/tag")))
        .collect();
    if !now.is_empty() {
        text.push_str(&format!(
            "Registered {} prototype{}: {}.",
            now.len(),
            if now.len() == 1 { "" } else { "s" },
            names(&now)
        ));
        if !before.is_empty() {
            text.push_str(&format!(" Registered before: {}.", names(&before)));
        }
    } else {
        text.push_str(&format!(
            "All {} prototype{} were registered already: nothing to do.",
            before.len(),
            if before.len() == 1 { "" } else { "s" }
        ));
    }
    if let Some(last) = entries.last() {
        text.push_str(&format!(
            "\nNext: dtaas servable create {}",
            sanitize(&last.reference(), 200)
        ));
    }
    super::output::say(&text);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries_of(manifest: Value) -> Vec<Entry> {
        let dir =
            std::env::temp_dir().join(format!("dtaas-upload-test-{}", crate::core::id::Id::new()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("MANIFEST.json");
        std::fs::write(&file, manifest.to_string()).unwrap();
        let out = read_entries(&dir, &file);
        let _ = std::fs::remove_dir_all(&dir);
        out.unwrap()
    }

    #[test]
    fn entries_come_in_dependency_order_with_their_build() {
        let entries = entries_of(json!({
            "p": {"name": "p", "tag": "1", "type": "pipeline", "dockerfile": "p/Dockerfile",
                  "capabilities": {"a": ["CREATE"]}},
            "a": {"name": "a", "tag": "1", "type": "app", "context": "a",
                  "dependencies": {"d": "d"}},
            "d": {"name": "d", "tag": "2", "type": "daemon"},
        }));
        let keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["d", "a", "p"]);
        assert!(entries[0].build.is_none());
        let (context, dockerfile) = entries[1].build.clone().unwrap();
        assert!(context.ends_with("a") && dockerfile.ends_with("a/Dockerfile"));
        let (context, dockerfile) = entries[2].build.clone().unwrap();
        assert!(context.ends_with("p") && dockerfile.ends_with("p/Dockerfile"));
        assert_eq!(entries[0].reference(), "d:2");
    }

    #[test]
    fn a_registered_prototype_is_compared_by_the_ids_it_refers_to() {
        let entry = entries_of(json!({"a": {"name": "a", "tag": "1", "type": "app",
            "dependencies": {"dep": "d"}, "capabilities": {"d": ["READ", "CREATE"]},
            "arguments": {}, "config-capabilities": {}}}))
        .remove(0);
        let registered = json!({"type": "app", "arguments": {}, "config-capabilities": {},
            "dockerfile": null, "context": null,
            "dependencies": {"dep": "id-d"}, "capabilities": {"id-d": ["CREATE", "READ"]}});
        let resolve = |r: &str| (r == "d").then(|| "id-d".to_owned());
        assert!(differences(&entry, &registered, &resolve).is_empty());
        let none = |_: &str| None;
        assert_eq!(
            differences(&entry, &registered, &none),
            ["dependencies", "capabilities"]
        );
        let mut other = registered.clone();
        other["type"] = json!("daemon");
        other["arguments"] = json!({"volume_size": 1});
        assert_eq!(differences(&entry, &other, &resolve), ["type", "arguments"]);

        let ids = HashMap::from([("d".to_owned(), "id-d".to_owned())]);
        let body = rewritten(&entry, &ids);
        assert_eq!(body["dependencies"]["dep"], "id-d");
        assert_eq!(body["capabilities"]["id-d"], json!(["READ", "CREATE"]));
    }

    #[test]
    fn the_manifest_file_is_one_of_two_names() {
        let dir =
            std::env::temp_dir().join(format!("dtaas-upload-test-{}", crate::core::id::Id::new()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(manifest_file(&dir).unwrap_err().contains("no MANIFEST"));
        std::fs::write(dir.join("MANIFEST"), "{}").unwrap();
        assert!(manifest_file(&dir).unwrap().ends_with("MANIFEST"));
        std::fs::write(dir.join("MANIFEST.json"), "{}").unwrap();
        assert!(manifest_file(&dir).unwrap_err().contains("keep one"));
        assert!(
            read_entries(&dir, &dir.join("MANIFEST"))
                .unwrap_err()
                .contains("no prototype")
        );
        std::fs::write(dir.join("MANIFEST"), r#"{"a": {"name": "a"}, "b": 3}"#).unwrap();
        let e = read_entries(&dir, &dir.join("MANIFEST")).unwrap_err();
        assert!(
            e.contains("a: tag: missing") && e.contains("b: must be a JSON object"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
