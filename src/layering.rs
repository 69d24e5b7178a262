//! The house rule, checked: layers import only from the layers below them, and no two modules
//! of one layer import each other in a circle.
//!
//! | rank | layer | what it holds |
//! | --- | --- | --- |
//! | 0 | `core` | ids, clock, config, the domain error, the store |
//! | 1 | `domains` | each domain with its tables: authz, accounts, trusts, images, jobs, logs, servables, registry |
//! | 2 | `engine` | the Docker engine, the one container supervisor, and what runs on it |
//! | 3 | `faces` | kabuto, /v1, /v2, the app proxy, health, the admin socket |
//! | 4 | `server` | wiring, listeners, life cycle |
//! | 5 | `cli` | the command line |
//!
//! Read from the sources: every `crate::...` path (in `use` trees and in code) and every
//! `use super::...` is resolved to the module it names. Comments are skipped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom first.
const LAYERS: [&str; 6] = ["core", "domains", "engine", "faces", "server", "cli"];

/// Files at the root of `src/` that are no module of a layer.
const ROOTS: [&str; 3] = ["lib.rs", "main.rs", "layering.rs"];

/// A module path, e.g. `["domains", "jobs", "runner"]`.
type ModPath = Vec<String>;

/// The module path a source file defines.
fn module_of(src: &Path, file: &Path) -> ModPath {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    if last != "mod.rs" {
        parts.push(last.trim_end_matches(".rs").to_owned());
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments (line comments, doc comments, block comments) and string
/// literals, so that paths named in prose or text are not taken for imports.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'r' && (b[i..].starts_with(b"r\"") || b[i..].starts_with(b"r#")) {
            // A raw string: r"...", r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while j < b.len() && b[j] == b'#' {
                hashes += 1;
                j += 1;
            }
            if j < b.len() && b[j] == b'"' {
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                j += 1;
                while j < b.len() && !b[j..].starts_with(&close) {
                    j += 1;
                }
                i = j + close.len();
                out.push_str("\"\"");
            } else {
                out.push('r');
                i += 1;
            }
        } else if b[i] == b'\'' {
            // A char literal ('x', '\n', '"') or a lifetime ('a): skip only literals.
            let rest = &b[i..];
            let len = if rest.len() > 2 && rest[1] == b'\\' {
                rest.iter().skip(2).position(|&c| c == b'\'').map(|p| p + 3)
            } else if rest.len() > 2 && rest[2] == b'\'' {
                Some(3)
            } else {
                None
            };
            match len {
                Some(n) => {
                    out.push_str("' '");
                    i += n;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let ch = text[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Expands a `use` tree (`a::{b, c::d}`) into its paths.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap_or(&tree).to_owned()];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| expand(p).into_iter().map(move |s| format!("{prefix}{s}")))
        .collect()
}

/// The modules a file refers to, as absolute module paths (only the `crate::`/`super::` ones).
fn references(module: &ModPath, code: &str) -> BTreeSet<ModPath> {
    let mut paths: Vec<String> = Vec::new();
    // `use` statements, whole trees.
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before = rest[..at].chars().last();
        let tail = &rest[at + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            rest = tail;
            continue;
        }
        let end = tail.find(';').unwrap_or(tail.len());
        paths.extend(expand(&tail[..end]));
        rest = &tail[end..];
    }
    // Paths in code: `crate::a::b` and `super::a`.
    for anchor in ["crate::", "super::"] {
        let mut rest = code;
        while let Some(at) = rest.find(anchor) {
            let before = rest[..at].chars().last();
            let start = at;
            let tail = &rest[at..];
            let len = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                paths.push(rest[start..start + len].to_owned());
            }
            rest = &rest[at + len.max(anchor.len())..];
        }
    }
    let mut out = BTreeSet::new();
    for path in paths {
        let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let resolved: Option<ModPath> = match segments.first().copied() {
            Some("crate") => Some(segments[1..].iter().map(|s| s.to_string()).collect()),
            Some("super") => {
                // `super` is the parent module, whether the file is `x.rs` or `x/mod.rs`.
                let mut base = module.clone();
                let mut segs = &segments[..];
                while segs.first() == Some(&"super") {
                    base.pop();
                    segs = &segs[1..];
                }
                base.extend(segs.iter().map(|s| s.to_string()));
                Some(base)
            }
            _ => None,
        };
        if let Some(p) = resolved.filter(|p| !p.is_empty()) {
            out.insert(p);
        }
    }
    out
}

struct House {
    /// file module -> the modules it refers to
    edges: BTreeMap<ModPath, BTreeSet<ModPath>>,
}

fn read_house(src: &Path) -> House {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut edges = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap();
        if rel.components().count() == 1 && ROOTS.contains(&rel.to_string_lossy().as_ref()) {
            continue;
        }
        let module = module_of(src, &file);
        let text = std::fs::read_to_string(&file).unwrap();
        edges.insert(module.clone(), references(&module, &code_only(&text)));
    }
    House { edges }
}

fn rank(top: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == top)
}

/// Every import that runs from a layer up to a higher one, and every module outside the layers.
fn upward_imports(house: &House) -> Vec<String> {
    let mut out = Vec::new();
    for (from, targets) in &house.edges {
        let Some(from_rank) = rank(&from[0]) else {
            out.push(format!("{} belongs to no layer", from.join("::")));
            continue;
        };
        for to in targets {
            match rank(&to[0]) {
                Some(to_rank) if to_rank > from_rank => out.push(format!(
                    "{} ({}) imports {} ({})",
                    from.join("::"),
                    LAYERS[from_rank],
                    to.join("::"),
                    LAYERS[to_rank]
                )),
                _ => {}
            }
        }
    }
    out
}

/// Circles among the rooms of the house: the top-level modules, and the modules one level
/// below (`domains::jobs`, `faces::v1`, ...).
fn circles(house: &House) -> Vec<String> {
    let mut out = Vec::new();
    for depth in [1, 2] {
        let cut =
            |p: &ModPath| -> Option<ModPath> { (p.len() >= depth).then(|| p[..depth].to_vec()) };
        let mut graph: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
        for (from, targets) in &house.edges {
            let Some(a) = cut(from) else { continue };
            for to in targets {
                let Some(b) = cut(to) else { continue };
                // Only rooms of the house (not `crate::Error`-style re-exports at the root).
                if a != b && house.edges.keys().any(|k| k.starts_with(&b)) {
                    graph.entry(a.clone()).or_default().insert(b);
                }
            }
        }
        // Tarjan would do; a DFS per node is plenty for a few dozen rooms.
        let nodes: Vec<ModPath> = graph.keys().cloned().collect();
        let mut reported: BTreeSet<BTreeSet<ModPath>> = BTreeSet::new();
        for start in &nodes {
            let mut stack = vec![(start.clone(), vec![start.clone()])];
            let mut seen = BTreeSet::new();
            while let Some((node, path)) = stack.pop() {
                for next in graph.get(&node).into_iter().flatten() {
                    if next == start {
                        let members: BTreeSet<ModPath> = path.iter().cloned().collect();
                        if reported.insert(members) {
                            let names: Vec<String> = path
                                .iter()
                                .chain(std::iter::once(start))
                                .map(|p| p.join("::"))
                                .collect();
                            out.push(format!("circle: {}", names.join(" -> ")));
                        }
                    } else if seen.insert(next.clone()) {
                        let mut p = path.clone();
                        p.push(next.clone());
                        stack.push((next.clone(), p));
                    }
                }
            }
        }
    }
    out
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_layer_imports_a_higher_one() {
    let house = read_house(&src_dir());
    let wrong = upward_imports(&house);
    assert!(
        wrong.is_empty(),
        "imports that run up the layers ({}):\n{}",
        LAYERS.join(" < "),
        wrong.join("\n")
    );
}

#[test]
fn no_modules_import_each_other_in_a_circle() {
    let house = read_house(&src_dir());
    let found = circles(&house);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_reader_resolves_paths_and_skips_prose() {
    let module: ModPath = vec!["domains".into(), "jobs".into()];
    let code = code_only(
        "//! [`crate::faces::v1`] in prose\nuse super::{logs, authz::Acl};\n\
         use crate::{core::id::Id, engine};\nfn f() { crate::core::clock::now(); let s = \"crate::cli\"; }",
    );
    let refs = references(&module, &code);
    let names: BTreeSet<String> = refs.iter().map(|p| p.join("::")).collect();
    assert!(names.contains("domains::logs"), "{names:?}");
    assert!(names.contains("domains::authz::Acl"), "{names:?}");
    assert!(names.contains("core::id::Id"), "{names:?}");
    assert!(names.contains("engine"), "{names:?}");
    assert!(names.contains("core::clock::now"), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("faces") || n.starts_with("cli"))
    );

    let file_module: ModPath = vec!["domains".into(), "jobs".into(), "runner".into()];
    let refs = references(&file_module, "use super::Job;");
    assert!(refs.contains(&vec!["domains".to_owned(), "jobs".into(), "Job".into()]));

    let mut edges = BTreeMap::new();
    edges.insert(
        vec!["domains".to_owned(), "a".into()],
        BTreeSet::from([vec!["faces".to_owned(), "x".into()]]),
    );
    edges.insert(
        vec!["faces".to_owned(), "x".into()],
        BTreeSet::from([vec!["domains".to_owned(), "a".into()]]),
    );
    let house = House { edges };
    assert_eq!(upward_imports(&house).len(), 1);
    assert!(!circles(&house).is_empty());
}
