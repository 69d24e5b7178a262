//! The rules on a parsed manifest's values that need nothing but the manifest: the second phase
//! of [`super::register_manifest`].
//!
//! A name equals its key and is an image name; a tag is an image tag; `config-capabilities`
//! mirrors an object config with lists of capabilities as leaves; a daemon has a volume, an
//! absolute path and a size; the manifest's own prototypes do not depend on each other in a
//! cycle.

use super::parse::{Entry, Typed, capability_list};
use crate::core::error::Problem;
use crate::core::whole;
use crate::domains::registry::names;
use crate::domains::servables::ServableType;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Every problem of the entries' values, entry by entry, then the first dependency cycle.
pub(super) fn check(entries: &[Entry]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for entry in entries {
        check_entry(entry, &mut problems);
    }
    problems.extend(cycle(entries));
    problems
}

fn check_entry(entry: &Entry, problems: &mut Vec<Problem>) {
    let key = entry.key.as_str();
    match &entry.name {
        Some(name) if name != key => problems.push(Problem::new(
            key,
            "name",
            format!("{name:?} must equal the manifest key {key:?}"),
        )),
        Some(name) if !names::valid_name(name) => problems.push(Problem::new(
            key,
            "name",
            "must be a valid image name: lowercase letters, digits and . _ - separators",
        )),
        // Sound, or missing (reported by the parse).
        _ => {}
    }
    if let Some(tag) = &entry.tag
        && !names::valid_tag(tag)
    {
        problems.push(Problem::new(
            key,
            "tag",
            format!("{tag:?} is not a valid image tag"),
        ));
    }
    if entry.kind == Some(ServableType::Daemon) {
        check_daemon_arguments(key, &entry.arguments, problems);
    }
    check_config_capabilities(
        key,
        "config-capabilities",
        &entry.config_capabilities,
        problems,
    );
}

/// A daemon has a persistent volume (seed 002: the arguments a daemon requires): an absolute
/// `volume_location` (not `/`, without `..`) and a positive `volume_size` in MB.
fn check_daemon_arguments(key: &str, arguments: &Map<String, Value>, problems: &mut Vec<Problem>) {
    let location = arguments.get("volume_location");
    let size = arguments.get("volume_size");
    match location.and_then(Value::as_str) {
        Some(l) if l.starts_with('/') && l != "/" && !l.split('/').any(|c| c == "..") => {}
        Some(l) => problems.push(Problem::new(
            key,
            "arguments.volume_location",
            format!("{l:?} must be an absolute path in the container (not / and without ..)"),
        )),
        None if location.is_some() => problems.push(Problem::new(
            key,
            "arguments.volume_location",
            "must be an absolute path in the container (a string)",
        )),
        None => problems.push(Problem::new(
            key,
            "arguments.volume_location",
            "missing: a daemon needs an absolute volume_location for its persistent volume",
        )),
    }
    match size {
        // A whole number as JSON Schema reads one: `5` or `5.0`.
        Some(v) if whole::number::<_, u64>(v).is_ok_and(|n| n > 0) => {}
        Some(v) => problems.push(Problem::new(
            key,
            "arguments.volume_size",
            format!("{v} must be a positive whole number of megabytes"),
        )),
        None => problems.push(Problem::new(
            key,
            "arguments.volume_size",
            "missing: a daemon needs a volume_size in MB for its persistent volume",
        )),
    }
}

/// `config-capabilities` mirrors the config: objects nest, lists of capabilities are leaves.
/// Each problem names the full path of its leaf, e.g. `config-capabilities.outer.inner`.
fn check_config_capabilities(
    key: &str,
    path: &str,
    map: &Map<String, Value>,
    problems: &mut Vec<Problem>,
) {
    for (name, value) in map {
        let path = format!("{path}.{name}");
        match value {
            Value::Object(inner) => check_config_capabilities(key, &path, inner, problems),
            Value::Array(_) => {
                if let Err(why) = capability_list(Typed::from_value(value.clone())) {
                    problems.push(Problem::new(key, &path, why));
                }
            }
            _ => problems.push(Problem::new(
                key,
                &path,
                "must be a list of capabilities, or an object mirroring the config",
            )),
        }
    }
}

/// The first dependency cycle among the manifest's own prototypes, reported once on the
/// `dependencies` of the prototype it starts from (references to existing prototypes cannot
/// close a cycle: those exist without the manifest's).
fn cycle(entries: &[Entry]) -> Option<Problem> {
    let edges: HashMap<&str, Vec<&str>> = entries
        .iter()
        .map(|e| {
            let own = e
                .dependencies
                .values()
                .filter_map(|r| entries.iter().find(|d| d.key == *r))
                .map(|d| d.key.as_str())
                .collect();
            (e.key.as_str(), own)
        })
        .collect();
    let mut state = HashMap::new();
    let found = entries
        .iter()
        .find_map(|e| visit(&e.key, &edges, &mut state, &mut Vec::new()))?;
    Some(Problem::new(
        found[0],
        "dependencies",
        format!("dependency cycle: {}", found.join(" -> ")),
    ))
}

/// Where a depth-first search stands with a prototype.
#[derive(Clone, Copy, PartialEq)]
enum Visit {
    OnPath,
    Done,
}

/// Depth-first from `node`: the cycle found, first node repeated at the end (`a -> b -> a`).
fn visit<'a>(
    node: &'a str,
    edges: &HashMap<&'a str, Vec<&'a str>>,
    state: &mut HashMap<&'a str, Visit>,
    path: &mut Vec<&'a str>,
) -> Option<Vec<&'a str>> {
    if state.contains_key(node) {
        return None;
    }
    state.insert(node, Visit::OnPath);
    path.push(node);
    for &next in edges.get(node).into_iter().flatten() {
        match state.get(next) {
            Some(Visit::OnPath) => {
                let start = path.iter().position(|n| *n == next).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(next);
                return Some(cycle);
            }
            Some(Visit::Done) => {}
            None => {
                if let Some(cycle) = visit(next, edges, state, path) {
                    return Some(cycle);
                }
            }
        }
    }
    path.pop();
    state.insert(node, Visit::Done);
    None
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse;
    use super::*;
    use serde_json::json;

    /// A complete, valid entry of type `kind` named `name`.
    fn entry(name: &str, kind: &str) -> Value {
        json!({
            "name": name,
            "tag": "1",
            "type": kind,
            "dependencies": {},
            "arguments": {},
            "capabilities": {},
            "config-capabilities": {},
        })
    }

    /// `entry` with the fields of `changes` set.
    fn with(mut entry: Value, changes: Value) -> Value {
        let fields = entry.as_object_mut().unwrap();
        for (k, v) in changes.as_object().unwrap() {
            fields.insert(k.clone(), v.clone());
        }
        entry
    }

    /// The (item, field, message) of each problem `check` finds in `manifest`, which parses
    /// without problems.
    fn problems(manifest: Value) -> Vec<(String, String, String)> {
        let parsed = parse(&manifest).unwrap();
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        check(&parsed.entries)
            .into_iter()
            .map(|p| (p.item, p.field, p.message))
            .collect()
    }

    /// The (item, field) of each problem of `check` on `{key: entry}`.
    fn fields(key: &str, entry: Value) -> Vec<(String, String)> {
        problems(json!({ key: entry }))
            .into_iter()
            .map(|(item, field, _)| (item, field))
            .collect()
    }

    fn on(item: &str, field: &str) -> Vec<(String, String)> {
        vec![(item.to_owned(), field.to_owned())]
    }

    /// A daemon `d` with these arguments.
    fn daemon(arguments: Value) -> Value {
        with(entry("d", "daemon"), json!({ "arguments": arguments }))
    }

    #[test]
    fn valid_entries_have_no_problem() {
        let manifest = json!({
            "hello-daemon": with(entry("hello-daemon", "daemon"), json!({
                "arguments": {"volume_location": "/data", "volume_size": 1},
            })),
            "hello-app": with(entry("hello-app", "app"), json!({
                "dependencies": {"hello-daemon": "hello-daemon"},
                "config-capabilities": {"daemon-id": ["READ"], "nested": {"deeper": ["READ", "CREATE"]}},
            })),
            "team/tool": with(entry("team/tool", "pipeline"), json!({"tag": "v1.2_rc-3"})),
        });
        assert_eq!(problems(manifest), vec![]);
    }

    #[test]
    fn name_must_equal_the_key() {
        let found = problems(json!({"p": entry("q", "app")}));
        assert_eq!(
            found,
            vec![(
                "p".into(),
                "name".into(),
                "\"q\" must equal the manifest key \"p\"".into()
            )]
        );
    }

    #[test]
    fn name_must_be_an_image_name() {
        for bad in ["Not An Image", "UPPER", "a__-b", "-a", "a/", "a:1"] {
            assert_eq!(fields(bad, entry(bad, "app")), on(bad, "name"), "{bad}");
        }
        let found = problems(json!({"Bad": entry("Bad", "app")}));
        assert!(
            found[0].2.starts_with("must be a valid image name"),
            "{found:?}"
        );
    }

    #[test]
    fn tag_must_be_an_image_tag() {
        for bad in ["", ".1", "-1", "a b", "1:2", &"x".repeat(129)] {
            let found = problems(json!({"p": with(entry("p", "app"), json!({ "tag": bad }))}));
            assert_eq!(
                found,
                vec![(
                    "p".into(),
                    "tag".into(),
                    format!("{bad:?} is not a valid image tag")
                )]
            );
        }
    }

    #[test]
    fn config_capabilities_leaves_are_lists_of_capabilities() {
        for bad in [
            json!("READ"),
            json!([]),
            json!(["FLY"]),
            json!(5),
            json!(null),
            json!([1]),
        ] {
            let e = with(
                entry("p", "app"),
                json!({"config-capabilities": {"x": bad.clone()}}),
            );
            assert_eq!(fields("p", e), on("p", "config-capabilities.x"), "{bad}");
        }
        // Nested objects mirror a nested config; the field names the full path.
        let e = with(
            entry("p", "app"),
            json!({"config-capabilities": {"outer": {"inner": "READ", "fine": ["READ"]}}}),
        );
        assert_eq!(fields("p", e), on("p", "config-capabilities.outer.inner"));
        let e = with(
            entry("p", "app"),
            json!({"config-capabilities": {"x": [], "y": ["FLY"], "z": 1}}),
        );
        let messages: Vec<String> = problems(json!({ "p": e }))
            .into_iter()
            .map(|p| p.2)
            .collect();
        assert_eq!(messages[0], "lists no capability");
        assert!(
            messages[1].starts_with("\"FLY\" is not a capability (one of DISCOVER"),
            "{messages:?}"
        );
        assert_eq!(
            messages[2],
            "must be a list of capabilities, or an object mirroring the config"
        );
    }

    #[test]
    fn a_daemon_volume_location_is_absolute() {
        for location in [
            json!("data"),
            json!("./data"),
            json!("/"),
            json!("/data/../etc"),
            json!("/.."),
            json!(7),
        ] {
            let d = daemon(json!({"volume_location": location.clone(), "volume_size": 1}));
            assert_eq!(
                fields("d", d),
                on("d", "arguments.volume_location"),
                "{location}"
            );
        }
        for location in ["/data", "/var/lib/x", "/data/..x"] {
            let d = daemon(json!({"volume_location": location, "volume_size": 1}));
            assert_eq!(fields("d", d), vec![], "{location}");
        }
        // A size without a location.
        let found = problems(json!({"d": daemon(json!({"volume_size": 1}))}));
        assert_eq!(
            found,
            vec![(
                "d".into(),
                "arguments.volume_location".into(),
                "missing: a daemon needs an absolute volume_location for its persistent volume"
                    .into()
            )]
        );
        let found = problems(json!({"d": daemon(json!({"volume_location": 7, "volume_size": 1}))}));
        assert_eq!(
            found[0].2,
            "must be an absolute path in the container (a string)"
        );
    }

    #[test]
    fn a_daemon_volume_size_is_a_positive_integer() {
        for size in [json!(0), json!(-5), json!(1.5), json!("1"), json!(null)] {
            let d = daemon(json!({"volume_location": "/data", "volume_size": size.clone()}));
            assert_eq!(fields("d", d), on("d", "arguments.volume_size"), "{size}");
        }
        // A whole number is one however it is written (JSON Schema's `integer`).
        for size in [json!(5), json!(5.0)] {
            let d = daemon(json!({"volume_location": "/data", "volume_size": size.clone()}));
            assert_eq!(fields("d", d), vec![], "{size}");
        }
        // A location without a size.
        let found = problems(json!({"d": daemon(json!({"volume_location": "/data"}))}));
        assert_eq!(
            found,
            vec![(
                "d".into(),
                "arguments.volume_size".into(),
                "missing: a daemon needs a volume_size in MB for its persistent volume".into()
            )]
        );
    }

    #[test]
    fn a_daemon_without_volume_arguments_is_refused_naming_both() {
        for arguments in [json!({}), json!({"other": 1})] {
            assert_eq!(
                fields("d", daemon(arguments.clone())),
                vec![
                    ("d".to_owned(), "arguments.volume_location".to_owned()),
                    ("d".to_owned(), "arguments.volume_size".to_owned()),
                ],
                "{arguments}"
            );
        }
    }

    #[test]
    fn other_types_take_any_arguments() {
        let app = with(
            entry("p", "app"),
            json!({"arguments": {"volume_location": "data", "volume_size": 0}}),
        );
        assert_eq!(fields("p", app), vec![]);
    }

    #[test]
    fn a_dependency_cycle_is_reported_once_naming_it() {
        let manifest = json!({
            "a": with(entry("a", "app"), json!({"dependencies": {"b": "b"}})),
            "b": with(entry("b", "app"), json!({"dependencies": {"c": "c"}})),
            "c": with(entry("c", "app"), json!({"dependencies": {"a": "a", "d": "d"}})),
            "d": entry("d", "app"),
        });
        assert_eq!(
            problems(manifest),
            vec![(
                "a".into(),
                "dependencies".into(),
                "dependency cycle: a -> b -> c -> a".into()
            )]
        );
        // Two cycles: the first is reported.
        let manifest = json!({
            "a": with(entry("a", "app"), json!({"dependencies": {"b": "b"}})),
            "b": with(entry("b", "app"), json!({"dependencies": {"a": "a"}})),
            "c": with(entry("c", "app"), json!({"dependencies": {"d": "d"}})),
            "d": with(entry("d", "app"), json!({"dependencies": {"c": "c"}})),
        });
        assert_eq!(
            problems(manifest),
            vec![(
                "a".into(),
                "dependencies".into(),
                "dependency cycle: a -> b -> a".into()
            )]
        );
    }

    #[test]
    fn a_prototype_depending_on_itself_is_the_shortest_cycle() {
        let manifest = json!({"a": with(entry("a", "app"), json!({"dependencies": {"me": "a"}}))});
        assert_eq!(
            problems(manifest),
            vec![(
                "a".into(),
                "dependencies".into(),
                "dependency cycle: a -> a".into()
            )]
        );
    }

    #[test]
    fn shared_dependencies_and_outside_references_are_no_cycle() {
        let manifest = json!({
            "top": with(entry("top", "app"), json!({"dependencies": {"l": "left", "r": "right"}})),
            "left": with(entry("left", "app"), json!({"dependencies": {"b": "base"}})),
            "right": with(entry("right", "app"), json!({"dependencies": {"b": "base", "x": "elsewhere:1"}})),
            "base": entry("base", "app"),
        });
        assert_eq!(problems(manifest), vec![]);
    }

    #[test]
    fn every_problem_of_every_entry_is_reported() {
        let manifest = json!({
            "bad": with(entry("other", "app"), json!({
                "tag": "-",
                "config-capabilities": {"x": "READ"},
                "dependencies": {"me": "bad"},
            })),
            "d": daemon(json!({"volume_location": "data", "volume_size": 0})),
            "good": entry("good", "app"),
        });
        let found: Vec<(String, String)> = problems(manifest)
            .into_iter()
            .map(|(item, field, _)| (item, field))
            .collect();
        let expected: Vec<(String, String)> = [
            ("bad", "name"),
            ("bad", "tag"),
            ("bad", "config-capabilities.x"),
            ("d", "arguments.volume_location"),
            ("d", "arguments.volume_size"),
            ("bad", "dependencies"),
        ]
        .iter()
        .map(|(i, f)| (i.to_string(), f.to_string()))
        .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn the_problems_of_parse_and_check_are_reported_together() {
        let manifest = json!({
            "bad": {
                "name": "other",
                "tag": "-",
                "type": "spaceship",
                "colour": "blue",
                "dependencies": {"me": "bad"},
                "capabilities": {"q": ["FLY"]},
                "config-capabilities": {"x": "READ"},
            },
            // A tag of the wrong type does not hide the daemon's volume.
            "d": with(daemon(json!({"volume_location": "data", "volume_size": 0})), json!({"tag": 1})),
            "e": 5,
        });
        let parsed = parse(&manifest).unwrap();
        let mut found: Vec<(String, String)> = parsed
            .problems
            .into_iter()
            .chain(check(&parsed.entries))
            .map(|p| (p.item, p.field))
            .collect();
        found.sort();
        let mut expected: Vec<(String, String)> = [
            ("bad", "name"),
            ("bad", "tag"),
            ("bad", "type"),
            ("bad", "colour"),
            ("bad", "dependencies"),
            ("bad", "capabilities.q"),
            ("bad", "config-capabilities.x"),
            ("d", "tag"),
            ("d", "arguments.volume_location"),
            ("d", "arguments.volume_size"),
            ("e", ""),
        ]
        .iter()
        .map(|(i, f)| (i.to_string(), f.to_string()))
        .collect();
        expected.sort();
        assert_eq!(found, expected);
    }
}
