//! Parsing a project manifest into typed entries: the first phase of [`super::register_manifest`].
//!
//! Each field of an entry is read on its own, so that a field of the wrong type is reported on
//! that field and the rest of the entry is still read. What a type says is checked here: which
//! fields an entry has, which are strings, objects or lists, and the names of types and
//! capabilities. The rules on the values are [`super::check`]'s; what references point at is
//! [`super::resolve`]'s.

use crate::core::error::{Error, Problem, Result};
use crate::domains::authz::Capability;
use crate::domains::servables::ServableType;
use serde::de::{Deserialize, DeserializeOwned, Deserializer};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The fields a manifest entry may have: those `RawEntry` reads (a unit test keeps the two in
/// step), listed in the message about an unknown field.
pub(super) const KNOWN_FIELDS: &[&str] = &[
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

/// One manifest entry, typed. A field that is missing or of the wrong type is `None` (or empty)
/// here, and its problem is among those [`parse`] reports.
#[derive(Debug)]
pub(super) struct Entry {
    /// The manifest key, which names the prototype.
    pub key: String,
    pub name: Option<String>,
    pub tag: Option<String>,
    pub kind: Option<ServableType>,
    /// Key (meaningful to the prototype's code) -> reference: a name in this manifest, or an
    /// existing prototype's id or `name:tag`.
    pub dependencies: BTreeMap<String, String>,
    /// Free-form, except for a daemon's volume (see [`super::check`]).
    pub arguments: Map<String, Value>,
    /// Reference (as in `dependencies`) -> capabilities a servable needs on it.
    pub capabilities: BTreeMap<String, Vec<Capability>>,
    /// Mirrors the config's shape; lists of capabilities as leaves (see [`super::check`]).
    pub config_capabilities: Map<String, Value>,
    pub dockerfile: Option<String>,
    pub context: Option<String>,
}

/// A parsed manifest: its entries in the manifest's order, and the problems found reading them.
#[derive(Debug, Default)]
pub(super) struct Parsed {
    pub entries: Vec<Entry>,
    pub problems: Vec<Problem>,
}

/// Reads a manifest: a JSON object mapping prototype names to their metadata, with at least
/// one prototype. A manifest of another shape is refused outright; an entry that is not an
/// object, or has fields of the wrong type or unknown fields, is a problem and the others are
/// still read.
pub(super) fn parse(manifest: &Value) -> Result<Parsed> {
    let Some(top) = manifest.as_object() else {
        return Err(Error::bad_request(
            "a manifest is a JSON object mapping prototype names to their metadata",
        ));
    };
    if top.is_empty() {
        return Err(Error::bad_request("the manifest declares no prototype"));
    }
    let mut parsed = Parsed::default();
    for (key, value) in top {
        match RawEntry::deserialize(value) {
            Ok(raw) => {
                let entry = raw.into_entry(key, &mut parsed.problems);
                parsed.entries.push(entry);
            }
            Err(_) => parsed
                .problems
                .push(Problem::new(key, "", "must be a JSON object")),
        }
    }
    Ok(parsed)
}

/// A list of capabilities, or why it is not one: a non-empty list of capability names.
pub(super) fn capability_list(list: CapabilityList) -> Result<Vec<Capability>, String> {
    let Typed::Valid(items) = list else {
        return Err("must be a list of capabilities".into());
    };
    if items.is_empty() {
        return Err("lists no capability".into());
    }
    items
        .into_iter()
        .map(|item| match item {
            Typed::Valid(capability) => Ok(capability),
            Typed::Invalid(written) => Err(format!(
                "{written} is not a capability (one of {})",
                Capability::ALL.map(Capability::as_str).join(", ")
            )),
        })
        .collect()
}

/// A value as written: of the expected type, or not (then kept as written, for the message).
/// Reading one never fails, so that a wrong type is reported on its own field.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Typed<T> {
    Valid(T),
    Invalid(Value),
}

impl<T: DeserializeOwned> Typed<T> {
    /// `value` read as a `T`, if it is one.
    pub(super) fn from_value(value: Value) -> Typed<T> {
        match T::deserialize(&value) {
            Ok(t) => Typed::Valid(t),
            Err(_) => Typed::Invalid(value),
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Typed<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Typed::from_value)
    }
}

/// A list of capabilities as written, each name recognized or kept as written.
pub(super) type CapabilityList = Typed<Vec<Typed<Capability>>>;

/// A field that is present, whatever its value (`null` included): absence is `None`.
fn written<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    deserializer: D,
) -> Result<Option<Typed<T>>, D::Error> {
    Typed::deserialize(deserializer).map(Some)
}

/// An entry as serde reads it: each known field as written, and the others by name.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct RawEntry {
    #[serde(deserialize_with = "written")]
    name: Option<Typed<String>>,
    #[serde(deserialize_with = "written")]
    tag: Option<Typed<String>>,
    #[serde(rename = "type", deserialize_with = "written")]
    kind: Option<Typed<ServableType>>,
    #[serde(deserialize_with = "written")]
    dependencies: Option<Typed<BTreeMap<String, Typed<String>>>>,
    #[serde(deserialize_with = "written")]
    arguments: Option<Typed<Map<String, Value>>>,
    #[serde(deserialize_with = "written")]
    capabilities: Option<Typed<BTreeMap<String, CapabilityList>>>,
    #[serde(rename = "config-capabilities", deserialize_with = "written")]
    config_capabilities: Option<Typed<Map<String, Value>>>,
    #[serde(deserialize_with = "written")]
    dockerfile: Option<Typed<String>>,
    #[serde(deserialize_with = "written")]
    context: Option<Typed<String>>,
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

impl RawEntry {
    /// The typed entry under `key`; each field that is not of its type is reported.
    fn into_entry(self, key: &str, problems: &mut Vec<Problem>) -> Entry {
        let mut report = Report { key, problems };
        for field in self.unknown.keys() {
            report.push(
                field,
                format!("unknown field (known: {})", KNOWN_FIELDS.join(", ")),
            );
        }
        let name = report.required(
            "name",
            self.name,
            "missing (a string equal to the key)",
            |_| "must be a string equal to the key".into(),
        );
        let tag = report.required("tag", self.tag, "missing", |_| "must be a string".into());
        let kind = report.required("type", self.kind, "missing", |written| {
            format!(
                "{written} is not a type (GET /v1/types: {})",
                ServableType::ALL.map(ServableType::as_str).join(", ")
            )
        });
        let dependencies = report
            .optional("dependencies", self.dependencies, "must be a JSON object")
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(dependency, reference)| {
                let reference = report.optional(
                    &format!("dependencies.{dependency}"),
                    Some(reference),
                    "must be a prototype id or the name of a prototype in this manifest",
                )?;
                Some((dependency, reference))
            })
            .collect();
        let arguments = report
            .optional("arguments", self.arguments, "must be a JSON object")
            .unwrap_or_default();
        let capabilities = report
            .optional("capabilities", self.capabilities, "must be a JSON object")
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(target, list)| match capability_list(list) {
                Ok(list) => Some((target, list)),
                Err(why) => {
                    report.push(&format!("capabilities.{target}"), why);
                    None
                }
            })
            .collect();
        // A config is an object, so what mirrors it is one too.
        let config_capabilities = report
            .optional(
                "config-capabilities",
                self.config_capabilities,
                "must be an object mirroring the config",
            )
            .unwrap_or_default();
        let dockerfile =
            report.optional("dockerfile", self.dockerfile, "must be a path (a string)");
        let context = report.optional("context", self.context, "must be a path (a string)");
        Entry {
            key: key.to_owned(),
            name,
            tag,
            kind,
            dependencies,
            arguments,
            capabilities,
            config_capabilities,
            dockerfile,
            context,
        }
    }
}

/// Where the problems of one entry go.
struct Report<'a> {
    key: &'a str,
    problems: &'a mut Vec<Problem>,
}

impl Report<'_> {
    fn push(&mut self, field: &str, message: impl Into<String>) {
        self.problems.push(Problem::new(self.key, field, message));
    }

    /// An optional field's value; a value of another type is reported with `wrong`.
    fn optional<T>(&mut self, field: &str, value: Option<Typed<T>>, wrong: &str) -> Option<T> {
        match value? {
            Typed::Valid(t) => Some(t),
            Typed::Invalid(_) => {
                self.push(field, wrong);
                None
            }
        }
    }

    /// A required field's value; its absence is reported with `missing`, a value of another
    /// type with what `wrong` says of it.
    fn required<T>(
        &mut self,
        field: &str,
        value: Option<Typed<T>>,
        missing: &str,
        wrong: impl FnOnce(&Value) -> String,
    ) -> Option<T> {
        match value {
            Some(Typed::Valid(t)) => Some(t),
            Some(Typed::Invalid(written)) => {
                self.push(field, wrong(&written));
                None
            }
            None => {
                self.push(field, missing);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A complete, valid app entry named `name`.
    fn app(name: &str) -> Value {
        json!({
            "name": name,
            "tag": "1",
            "type": "app",
            "dependencies": {},
            "arguments": {},
            "capabilities": {},
            "config-capabilities": {},
        })
    }

    /// `app("p")` with the fields of `changes` set (`null` included).
    fn app_with(changes: Value) -> Value {
        let mut entry = app("p");
        let fields = entry.as_object_mut().unwrap();
        for (k, v) in changes.as_object().unwrap() {
            fields.insert(k.clone(), v.clone());
        }
        entry
    }

    /// `app("p")` without `field`.
    fn app_without(field: &str) -> Value {
        let mut entry = app("p");
        entry.as_object_mut().unwrap().remove(field);
        entry
    }

    /// The (item, field, message) of each problem of parsing `manifest`.
    fn problems(manifest: Value) -> Vec<(String, String, String)> {
        parse(&manifest)
            .unwrap()
            .problems
            .into_iter()
            .map(|p| (p.item, p.field, p.message))
            .collect()
    }

    /// The (item, field) of each problem of parsing `{"p": entry}`.
    fn fields(entry: Value) -> Vec<(String, String)> {
        problems(json!({ "p": entry }))
            .into_iter()
            .map(|(item, field, _)| (item, field))
            .collect()
    }

    fn on(item: &str, field: &str) -> Vec<(String, String)> {
        vec![(item.to_owned(), field.to_owned())]
    }

    #[test]
    fn a_complete_entry_is_read_into_its_types() {
        let manifest = json!({"p": {
            "name": "p",
            "tag": "1",
            "type": "daemon",
            "dependencies": {"db": "q", "other": "0123456789abcdef0123456789abcdef"},
            "arguments": {"volume_location": "/data", "volume_size": 1, "x": [1]},
            "capabilities": {"q": ["READ", "CREATE"]},
            "config-capabilities": {"a": {"b": ["READ"]}},
            "dockerfile": "p/Dockerfile",
            "context": "p",
        }});
        let parsed = parse(&manifest).unwrap();
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        let entry = &parsed.entries[0];
        assert_eq!(entry.key, "p");
        assert_eq!(entry.name.as_deref(), Some("p"));
        assert_eq!(entry.tag.as_deref(), Some("1"));
        assert_eq!(entry.kind, Some(ServableType::Daemon));
        assert_eq!(entry.dependencies["db"], "q");
        assert_eq!(entry.dependencies.len(), 2);
        assert_eq!(
            Value::Object(entry.arguments.clone()),
            json!({"volume_location": "/data", "volume_size": 1, "x": [1]})
        );
        assert_eq!(
            entry.capabilities["q"],
            vec![Capability::Read, Capability::Create]
        );
        assert_eq!(
            Value::Object(entry.config_capabilities.clone()),
            json!({"a": {"b": ["READ"]}})
        );
        assert_eq!(entry.dockerfile.as_deref(), Some("p/Dockerfile"));
        assert_eq!(entry.context.as_deref(), Some("p"));
    }

    #[test]
    fn every_known_field_is_read_and_only_those() {
        let mut entry = Map::new();
        for field in KNOWN_FIELDS {
            entry.insert((*field).to_owned(), json!(true));
        }
        // Every known field has the wrong type: each is reported as such, none as unknown.
        let found = problems(json!({ "p": entry }));
        let reported: Vec<&str> = found.iter().map(|(_, f, _)| f.as_str()).collect();
        assert_eq!(reported.len(), KNOWN_FIELDS.len(), "{found:?}");
        for field in KNOWN_FIELDS {
            assert!(reported.contains(field), "{field}: {found:?}");
        }
        assert!(
            found.iter().all(|(_, _, m)| !m.starts_with("unknown")),
            "{found:?}"
        );
    }

    #[test]
    fn optional_fields_may_be_left_out() {
        let entry = json!({"name": "p", "tag": "1", "type": "pipeline"});
        let parsed = parse(&json!({ "p": entry })).unwrap();
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        let entry = &parsed.entries[0];
        assert!(entry.dependencies.is_empty() && entry.capabilities.is_empty());
        assert!(entry.arguments.is_empty() && entry.config_capabilities.is_empty());
        assert_eq!(
            (entry.dockerfile.clone(), entry.context.clone()),
            (None, None)
        );
    }

    #[test]
    fn name_is_required_and_a_string() {
        let found = problems(json!({"p": app_without("name")}));
        assert_eq!(
            found,
            vec![(
                "p".into(),
                "name".into(),
                "missing (a string equal to the key)".into()
            )]
        );
        let found = problems(json!({"p": app_with(json!({"name": 42}))}));
        assert_eq!(
            found,
            vec![(
                "p".into(),
                "name".into(),
                "must be a string equal to the key".into()
            )]
        );
        assert_eq!(fields(app_with(json!({"name": null}))), on("p", "name"));
    }

    #[test]
    fn type_is_required_and_must_be_known() {
        let found = problems(json!({"p": app_with(json!({"type": "spaceship"}))}));
        assert_eq!(found.len(), 1, "{found:?}");
        let (item, field, message) = &found[0];
        assert_eq!((item.as_str(), field.as_str()), ("p", "type"));
        assert!(message.contains("\"spaceship\""), "{message}");
        assert!(message.contains("pipeline, app, daemon"), "{message}");
        let found = problems(json!({"p": app_without("type")}));
        assert_eq!(found, vec![("p".into(), "type".into(), "missing".into())]);
        assert_eq!(fields(app_with(json!({"type": null}))), on("p", "type"));
        assert_eq!(fields(app_with(json!({"type": 3}))), on("p", "type"));
        // Types are lowercase, as GET /v1/types lists them.
        assert_eq!(fields(app_with(json!({"type": "App"}))), on("p", "type"));
    }

    #[test]
    fn tag_is_required_and_a_string() {
        let found = problems(json!({"p": app_without("tag")}));
        assert_eq!(found, vec![("p".into(), "tag".into(), "missing".into())]);
        assert_eq!(fields(app_with(json!({"tag": null}))), on("p", "tag"));
        let found = problems(json!({"p": app_with(json!({"tag": 1}))}));
        assert_eq!(
            found,
            vec![("p".into(), "tag".into(), "must be a string".into())]
        );
    }

    #[test]
    fn dependencies_are_an_object_of_references() {
        let entry = app_with(json!({"dependencies": {"ok": "q", "not-a-string": 5}}));
        assert_eq!(fields(entry.clone()), on("p", "dependencies.not-a-string"));
        // The well-formed dependency is still read, to be resolved.
        let parsed = parse(&json!({ "p": entry })).unwrap();
        assert_eq!(
            parsed.entries[0].dependencies,
            BTreeMap::from([("ok".to_owned(), "q".to_owned())])
        );
        for bad in [json!(["q"]), json!("q"), json!(null)] {
            let entry = app_with(json!({ "dependencies": bad.clone() }));
            assert_eq!(fields(entry), on("p", "dependencies"), "{bad}");
        }
    }

    #[test]
    fn capability_names_must_be_valid() {
        let found =
            problems(json!({"p": app_with(json!({"capabilities": {"q": ["READ", "FLY"]}}))}));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].0.as_str(), found[0].1.as_str()),
            ("p", "capabilities.q")
        );
        assert!(
            found[0].2.starts_with("\"FLY\" is not a capability"),
            "{found:?}"
        );
        // Names are uppercase; a name must be a string.
        for bad in [
            json!(["read"]),
            json!([5]),
            json!("READ"),
            json!({"READ": true}),
        ] {
            let entry = app_with(json!({"capabilities": {"q": bad.clone()}}));
            assert_eq!(fields(entry), on("p", "capabilities.q"), "{bad}");
        }
        assert_eq!(
            fields(app_with(json!({"capabilities": ["READ"]}))),
            on("p", "capabilities")
        );
    }

    #[test]
    fn a_capability_list_is_not_empty() {
        let found = problems(json!({"p": app_with(json!({"capabilities": {"q": []}}))}));
        assert_eq!(
            found,
            vec![(
                "p".into(),
                "capabilities.q".into(),
                "lists no capability".into()
            )]
        );
        // The list with a problem is left out; the others are read.
        let entry = app_with(json!({"capabilities": {"q": [], "r": ["READ"]}}));
        let parsed = parse(&json!({ "p": entry })).unwrap();
        assert_eq!(
            parsed.entries[0].capabilities,
            BTreeMap::from([("r".to_owned(), vec![Capability::Read])])
        );
    }

    #[test]
    fn config_capabilities_and_arguments_are_objects() {
        for bad in [json!(["READ"]), json!("READ"), json!(null)] {
            let entry = app_with(json!({ "config-capabilities": bad.clone() }));
            assert_eq!(fields(entry), on("p", "config-capabilities"), "{bad}");
        }
        let found = problems(json!({"p": app_with(json!({"config-capabilities": ["READ"]}))}));
        assert_eq!(found[0].2, "must be an object mirroring the config");
        for bad in [json!([]), json!("x"), json!(null)] {
            let entry = app_with(json!({ "arguments": bad.clone() }));
            assert_eq!(fields(entry), on("p", "arguments"), "{bad}");
        }
    }

    #[test]
    fn dockerfile_and_context_are_paths() {
        let entry = app_with(json!({"dockerfile": 1, "context": null}));
        let mut found = fields(entry);
        found.sort();
        assert_eq!(
            found,
            vec![
                ("p".to_owned(), "context".to_owned()),
                ("p".to_owned(), "dockerfile".to_owned())
            ]
        );
    }

    #[test]
    fn unknown_fields_are_refused_listing_the_known_ones() {
        let found = problems(json!({"p": app_with(json!({"colour": "blue", "size": 3}))}));
        let expected = format!("unknown field (known: {})", KNOWN_FIELDS.join(", "));
        assert_eq!(
            found,
            vec![
                ("p".into(), "colour".into(), expected.clone()),
                ("p".into(), "size".into(), expected),
            ]
        );
        assert!(found[0].2.contains("config-capabilities"), "{found:?}");
    }

    #[test]
    fn an_entry_that_is_not_an_object_is_a_problem_and_the_others_are_read() {
        for bad in [json!("p"), json!(["p"]), json!(null), json!(1)] {
            let parsed = parse(&json!({"bad": bad.clone(), "q": app("q")})).unwrap();
            let found: Vec<_> = parsed
                .problems
                .iter()
                .map(|p| (p.item.as_str(), p.field.as_str(), p.message.as_str()))
                .collect();
            assert_eq!(found, vec![("bad", "", "must be a JSON object")], "{bad}");
            assert_eq!(parsed.entries.len(), 1);
            assert_eq!(parsed.entries[0].key, "q");
        }
    }

    #[test]
    fn every_problem_of_every_entry_is_reported() {
        let manifest = json!({
            "a": {"tag": 1, "type": "boat", "colour": "blue", "dependencies": {"x": 1}},
            "b": app_with(json!({"capabilities": {"q": []}, "arguments": 5})),
            "c": 7,
        });
        let mut found: Vec<(String, String)> = problems(manifest)
            .into_iter()
            .map(|(item, field, _)| (item, field))
            .collect();
        found.sort();
        let expected: Vec<(String, String)> = [
            ("a", "colour"),
            ("a", "dependencies.x"),
            ("a", "name"),
            ("a", "tag"),
            ("a", "type"),
            ("b", "arguments"),
            ("b", "capabilities.q"),
            ("c", ""),
        ]
        .iter()
        .map(|(i, f)| (i.to_string(), f.to_string()))
        .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn a_manifest_is_a_non_empty_object() {
        for bad in [json!([]), json!("p"), json!(null), json!([{"p": {}}])] {
            let e = parse(&bad).unwrap_err();
            assert!(matches!(e, Error::BadRequest(_)), "{bad}: {e:?}");
            assert!(e.to_string().contains("JSON object"), "{e}");
        }
        let e = parse(&json!({})).unwrap_err();
        assert!(matches!(e, Error::BadRequest(_)), "{e:?}");
        assert_eq!(e.to_string(), "the manifest declares no prototype");
    }
}
