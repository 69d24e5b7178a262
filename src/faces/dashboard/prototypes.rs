//! The prototypes pages: registering a project manifest (a MANIFEST.json file or pasted text,
//! each problem shown next to its prototype and field), the list with dependencies, one
//! prototype's page, and deletion with the guard's explanation. The same domain calls as /v1
//! (`faces::v1::prototypes`), with the viewer as caller.

use super::format;
use super::html;
use super::page::{CsrfForm, CsrfUpload, Layout, Paging, Viewer};
use super::servables::{Link, TypeOption, pretty, prototype_link, type_filter, type_options};
use crate::core::error::{Error, Problem, Result};
use crate::core::id::Id;
use crate::domains::authz::{self, Capability, Kind, Principal};
use crate::domains::servables::{self, Prototype, ServableType, manifest};
use crate::faces::errors::status;
use crate::faces::listing::ListQuery;
use crate::faces::params::Path;
use crate::faces::state::App;
use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::Value;

/// How much of a value as written a problem shows.
const WRITTEN_CHARS: usize = 200;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/ui/prototypes", get(list).post(register))
        .route("/ui/prototypes/new", get(new_form))
        .route("/ui/prototypes/{prototype}", get(show))
        .route("/ui/prototypes/{prototype}/delete", post(delete))
}

/// One dependency: its key, and the prototype it names.
struct Dependency {
    key: String,
    target: Link,
}

fn dependencies(app: &App, viewer: &Principal, p: &Prototype) -> Vec<Dependency> {
    p.dependencies
        .iter()
        .map(|(key, id)| Dependency {
            key: key.clone(),
            target: prototype_link(app, viewer, *id),
        })
        .collect()
}

/// One row of the prototype list.
struct PrototypeRow {
    id: String,
    reference: String,
    kind: &'static str,
    image: String,
    dependencies: Vec<Dependency>,
    created: String,
}

#[derive(Template)]
#[template(path = "dashboard/prototypes/list.html")]
struct PrototypeList {
    layout: Layout,
    rows: Vec<PrototypeRow>,
    types: Vec<TypeOption>,
    next: Option<String>,
}

/// Prototypes the viewer may read, 50 a page, by type, with their dependencies.
async fn list(State(app): State<App>, viewer: Viewer, q: ListQuery) -> Result<Html<String>> {
    let kind = type_filter(&q)?;
    let paging = Paging::of(&q)?;
    let request = paging.request;
    let p = viewer.principal.clone();
    let (page, rows) = app
        .listing(move |app| {
            let page = servables::list_prototypes(&app.store, &p, kind, request)?;
            let rows = page
                .items
                .iter()
                .map(|proto| PrototypeRow {
                    id: proto.id.to_string(),
                    reference: proto.reference(),
                    kind: proto.kind.as_str(),
                    image: format!("{}:{}", proto.repository, proto.tag),
                    dependencies: dependencies(app, &p, proto),
                    created: format::time(&proto.created),
                })
                .collect();
            Ok((page, rows))
        })
        .await?;
    let next = paging.next(
        "/ui/prototypes",
        &[("type", kind.map_or("", ServableType::as_str))],
        &page,
    );
    html(&PrototypeList {
        layout: viewer.layout("Prototypes", "prototypes"),
        rows,
        types: type_options(kind),
        next,
    })
}

/// A problem of a refused manifest, next to its field and the value as written there.
struct FieldProblem {
    field: String,
    written: String,
    message: String,
}

/// A prototype's problems together.
struct ProblemGroup {
    item: String,
    problems: Vec<FieldProblem>,
}

#[derive(Template)]
#[template(path = "dashboard/prototypes/new.html")]
struct UploadPage {
    layout: Layout,
    /// The manifest as sent, to be fixed and sent again.
    manifest: String,
    /// Why it was refused as a whole (not JSON, empty, a name taken meanwhile).
    message: Option<String>,
    groups: Vec<ProblemGroup>,
    /// How many problems the groups hold.
    count: usize,
}

impl UploadPage {
    fn blank(viewer: &Viewer) -> UploadPage {
        UploadPage {
            layout: viewer.layout("Register prototypes", "prototypes"),
            manifest: String::new(),
            message: None,
            groups: Vec::new(),
            count: 0,
        }
    }
}

/// The form that registers a manifest.
async fn new_form(viewer: Viewer) -> Result<Html<String>> {
    html(&UploadPage::blank(&viewer))
}

/// The value at `path` in `v`: a key of `v` as a whole, or a key then the rest of the path
/// (keys may hold dots themselves, as `dependencies.my.key` may mean).
fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(found) = v.get(path) {
        return Some(found);
    }
    path.match_indices('.').find_map(|(at, _)| {
        let inner = v.get(&path[..at])?;
        lookup(inner, &path[at + 1..])
    })
}

/// What the manifest holds where a problem points: its value as JSON (cut short), or a note
/// that nothing is written there.
fn written(manifest: &Value, item: &str, field: &str) -> String {
    let Some(entry) = manifest.get(item) else {
        return String::new();
    };
    let found = if field.is_empty() {
        Some(entry)
    } else {
        lookup(entry, field)
    };
    match found {
        None => "(not given)".to_owned(),
        Some(v) => {
            let text = v.to_string();
            if text.chars().count() > WRITTEN_CHARS {
                let cut: String = text.chars().take(WRITTEN_CHARS).collect();
                format!("{cut}…")
            } else {
                text
            }
        }
    }
}

/// The problems grouped by prototype, in the order the domain gives them.
fn group(manifest: &Value, problems: &[Problem]) -> Vec<ProblemGroup> {
    let mut groups: Vec<ProblemGroup> = Vec::new();
    for p in problems {
        let problem = FieldProblem {
            field: p.field.clone(),
            written: written(manifest, &p.item, &p.field),
            message: p.message.clone(),
        };
        match groups.iter_mut().find(|g| g.item == p.item) {
            Some(g) => g.problems.push(problem),
            None => groups.push(ProblemGroup {
                item: p.item.clone(),
                problems: vec![problem],
            }),
        }
    }
    groups
}

/// The form again, with why the manifest was refused, at the status the domain's answer has.
fn refused(viewer: &Viewer, text: String, manifest: &Value, e: &Error) -> Result<Response> {
    let mut page = UploadPage::blank(viewer);
    page.manifest = text;
    match e {
        Error::Problems(problems) => {
            page.count = problems.len();
            page.groups = group(manifest, problems);
        }
        other => page.message = Some(other.public_message()),
    }
    Ok((status(e), html(&page)?).into_response())
}

/// Registers every prototype of a manifest (sent as a file or pasted), or none: a refused
/// manifest comes back with each problem next to its prototype and field.
async fn register(
    State(app): State<App>,
    CsrfUpload(viewer, upload): CsrfUpload,
) -> Result<Response> {
    upload.check_fields(&["csrf", "manifest"], &["manifest"])?;
    let text = upload.text_or_file("manifest")?.unwrap_or_default();
    if text.trim().is_empty() {
        let e = Error::bad_request("choose a MANIFEST.json file, or paste the manifest");
        return refused(&viewer, text, &Value::Null, &e);
    }
    let manifest: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            let e = Error::bad_request(format!("the manifest is not JSON: {e}"));
            return refused(&viewer, text, &Value::Null, &e);
        }
    };
    let (p, now, sent) = (viewer.principal.clone(), app.now(), manifest.clone());
    let registered = app
        .blocking(move |app| servables::register_manifest(&app.store, &p, &sent, now))
        .await;
    match registered {
        Ok(list) => {
            let names: Vec<String> = list.iter().map(Prototype::reference).collect();
            Ok(viewer.see_other(
                "/ui/prototypes",
                &format!(
                    "Registered {} prototype(s): {}.",
                    names.len(),
                    names.join(", ")
                ),
            ))
        }
        Err(e @ (Error::Problems(_) | Error::BadRequest(_) | Error::Conflict(_))) => {
            refused(&viewer, text, &manifest, &e)
        }
        Err(e) => Err(e),
    }
}

/// A capability entry: the prototype it is needed on, and what.
struct CapabilityRow {
    target: Link,
    capabilities: String,
}

/// A servable made from the prototype.
struct MadeRow {
    id: String,
    name: String,
    kind: &'static str,
}

#[derive(Template)]
#[template(path = "dashboard/prototypes/show.html")]
struct PrototypePage {
    layout: Layout,
    id: String,
    reference: String,
    kind: &'static str,
    kind_description: &'static str,
    image: String,
    dockerfile: String,
    context: String,
    owner: String,
    created: String,
    dependencies: Vec<Dependency>,
    capabilities: Vec<CapabilityRow>,
    config_capabilities: String,
    arguments: String,
    servables: Vec<MadeRow>,
    more_servables: bool,
    can_create: bool,
    can_delete: bool,
    /// Why the deletion just asked for was refused (the guard's explanation).
    refusal: Option<String>,
}

/// Whether the viewer holds `cap` on the prototype (the one check).
fn holds(app: &App, viewer: &Principal, id: Id, cap: Capability) -> bool {
    authz::authorize(&app.store, viewer, id, Kind::Prototype, cap).is_ok()
}

/// A prototype's page (READ), by id or `name:tag`; `refusal` says why a deletion was refused.
async fn prototype_page(
    app: &App,
    viewer: &Viewer,
    reference: String,
    refusal: Option<String>,
) -> Result<Html<String>> {
    let p = viewer.principal.clone();
    let (proto, deps, capabilities, made, can_create, can_delete) = app
        .blocking(move |app| {
            let proto = manifest::prototype_for(&app.store, &p, &reference, Capability::Read)?;
            let deps = dependencies(app, &p, &proto);
            let capabilities = proto
                .capabilities
                .iter()
                .map(|(target, caps)| CapabilityRow {
                    target: prototype_link(app, &p, *target),
                    capabilities: caps
                        .iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
                .collect::<Vec<_>>();
            let first = crate::core::page::PageRequest {
                after: None,
                limit: super::page::PAGE_SIZE,
            };
            let made = servables::list_servables(&app.store, &p, None, Some(proto.id), first)?;
            let can_create = holds(app, &p, proto.id, Capability::Create);
            let can_delete = holds(app, &p, proto.id, Capability::Delete);
            Ok((proto, deps, capabilities, made, can_create, can_delete))
        })
        .await?;
    html(&PrototypePage {
        layout: viewer.layout(format!("Prototype {}", proto.reference()), "prototypes"),
        id: proto.id.to_string(),
        reference: proto.reference(),
        kind: proto.kind.as_str(),
        kind_description: proto.kind.description(),
        image: format!("{}:{}", proto.repository, proto.tag),
        dockerfile: proto.dockerfile.clone().unwrap_or_else(|| "-".to_owned()),
        context: proto.context.clone().unwrap_or_else(|| "-".to_owned()),
        owner: if proto.owner == viewer.principal.id {
            "you".to_owned()
        } else {
            proto.owner.to_string()
        },
        created: format::time(&proto.created),
        dependencies: deps,
        capabilities,
        config_capabilities: pretty(&proto.config_capabilities),
        arguments: pretty(&proto.arguments),
        more_servables: made.next.is_some(),
        servables: made
            .items
            .iter()
            .map(|s| MadeRow {
                id: s.id.to_string(),
                name: s.name.clone(),
                kind: s.kind.as_str(),
            })
            .collect(),
        can_create,
        can_delete,
        refusal,
    })
}

async fn show(
    State(app): State<App>,
    viewer: Viewer,
    Path(reference): Path<String>,
) -> Result<Html<String>> {
    prototype_page(&app, &viewer, reference, None).await
}

#[derive(Deserialize)]
struct Empty {}

/// Deletes a prototype (DELETE), unless other prototypes depend on it or servables use it:
/// then its page comes back with the guard's explanation (409).
async fn delete(
    State(app): State<App>,
    Path(reference): Path<String>,
    CsrfForm(viewer, Empty {}): CsrfForm<Empty>,
) -> Result<Response> {
    let (p, r) = (viewer.principal.clone(), reference.clone());
    let name = app
        .blocking(move |app| {
            let name = manifest::prototype_for(&app.store, &p, &r, Capability::Read)?.reference();
            manifest::delete_prototype(&app.store, &p, &r)?;
            Ok(name)
        })
        .await;
    match name {
        Ok(name) => {
            Ok(viewer.see_other("/ui/prototypes", &format!("Deleted the prototype {name}.")))
        }
        Err(e @ Error::Conflict(_)) => {
            let page = prototype_page(&app, &viewer, reference, Some(e.public_message())).await?;
            Ok((StatusCode::CONFLICT, page).into_response())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_problem_shows_what_its_field_holds() {
        let m = json!({
            "app": {"tag": "bad tag", "dependencies": {"my.db": "nope"},
                    "arguments": {"volume_location": "/"}},
            "odd": 7
        });
        assert_eq!(written(&m, "app", "tag"), "\"bad tag\"");
        assert_eq!(written(&m, "app", "dependencies.my.db"), "\"nope\"");
        assert_eq!(written(&m, "app", "arguments.volume_location"), "\"/\"");
        assert_eq!(written(&m, "app", "arguments.volume_size"), "(not given)");
        assert_eq!(written(&m, "odd", ""), "7");
        assert_eq!(written(&m, "gone", "tag"), "");
        let long = json!({"a": {"tag": "x".repeat(500)}});
        assert!(written(&long, "a", "tag").ends_with('…'));
    }

    #[test]
    fn problems_are_grouped_by_prototype_in_order() {
        let m = json!({"a": {}, "b": {}});
        let groups = group(
            &m,
            &[
                Problem::new("b", "tag", "missing"),
                Problem::new("a", "type", "missing"),
                Problem::new("b", "type", "missing"),
            ],
        );
        let shape: Vec<(&str, Vec<&str>)> = groups
            .iter()
            .map(|g| {
                (
                    g.item.as_str(),
                    g.problems.iter().map(|p| p.field.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(shape, [("b", vec!["tag", "type"]), ("a", vec!["type"])]);
    }
}
