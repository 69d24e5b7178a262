//! The servables pages: servables (list, create from a prototype, run, delete), their instances
//! (stop, restart, delete) with the current instance's live log, the app's address, a
//! pipeline's outputs, the volume and the limits the engine cannot enforce. The same domain
//! calls as /v1 (`faces::v1::servables`, `faces::v1::instances`), with the viewer as caller.

use super::format;
use super::html;
use super::page::{CsrfForm, Layout, Paging, Viewer};
use crate::core::error::{Error, Problem, Result};
use crate::core::id::Id;
use crate::domains::authz::{self, Capability, Kind, Principal};
use crate::domains::logs;
use crate::domains::servables::{
    self, Instance, NewServable, Resources, Servable, ServableType, Volume,
};
use crate::faces::errors::parse_id;
use crate::faces::listing::ListQuery;
use crate::faces::params::Path;
use crate::faces::state::App;
use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::{Html, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::Value;

/// How many stored log lines a page shows (the latest ones); /v1 has them all.
const LOG_TAIL: u64 = 500;

/// How many readable prototypes the create form looks through for those the viewer may
/// CREATE from.
const PROTOTYPE_CHOICES: usize = 1000;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/ui/servables", get(list).post(create))
        .route("/ui/servables/new", get(new_form))
        .route("/ui/servables/{id}", get(show))
        .route("/ui/servables/{id}/run", post(run))
        .route("/ui/servables/{id}/delete", post(delete))
        .route("/ui/instances/{id}", get(instance_page))
        .route("/ui/instances/{id}/stop", post(stop))
        .route("/ui/instances/{id}/restart", post(restart))
        .route("/ui/instances/{id}/delete", post(delete_instance))
}

/// A link as a page shows it.
pub struct Link {
    pub href: String,
    pub text: String,
}

/// An entry of a type filter's select.
pub struct TypeOption {
    pub value: &'static str,
    pub selected: bool,
}

/// The options of a type filter, `chosen` selected.
pub fn type_options(chosen: Option<ServableType>) -> Vec<TypeOption> {
    ServableType::ALL
        .into_iter()
        .map(|t| TypeOption {
            value: t.as_str(),
            selected: chosen == Some(t),
        })
        .collect()
}

/// The `type` filter of a list page. The form's "All types" sends it empty, which means no
/// filter here (where /v1 refuses an empty value).
pub fn type_filter(q: &ListQuery) -> Result<Option<ServableType>> {
    match q.get("type") {
        None | Some("") => Ok(None),
        Some(v) => ServableType::parse(v).map(Some).ok_or_else(|| {
            let names: Vec<&str> = ServableType::ALL.map(ServableType::as_str).to_vec();
            Error::bad_request(format!("type: {v:?} is not one of {}", names.join(", ")))
        }),
    }
}

/// JSON as people read it: indented.
pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// The link to a prototype the viewer may read, by its `name:tag`; otherwise its bare id (as
/// /v1 shows it), so that nothing of a prototype the viewer cannot see is named.
pub fn prototype_link(app: &App, viewer: &Principal, id: Id) -> Link {
    match servables::manifest::prototype_for(&app.store, viewer, &id.to_string(), Capability::Read)
    {
        Ok(p) => Link {
            href: format!("/ui/prototypes/{}", p.id),
            text: p.reference(),
        },
        Err(_) => Link {
            href: String::new(),
            text: id.to_string(),
        },
    }
}

/// The path form of an app's address: relative, so that it works under whatever host and
/// port the browser reached the appliance by.
fn app_path(id: Id) -> String {
    format!("/apps/{id}/")
}

/// The host form of an app's address (`<id>.<apps_domain>`), as /v1 gives it: the scheme and
/// port of the appliance's listener.
fn app_host(app: &App, id: Id) -> String {
    let tls = app.config.tls_enabled();
    let default_port = if tls { 443 } else { 80 };
    let port = match app.local_addr().port() {
        p if p == default_port => String::new(),
        p => format!(":{p}"),
    };
    format!(
        "{}://{id}.{}{port}/",
        if tls { "https" } else { "http" },
        app.config.servables.apps_domain
    )
}

/// One row of the servable list.
struct ServableRow {
    id: String,
    name: String,
    kind: &'static str,
    prototype: Link,
    state: String,
    created: String,
}

#[derive(Template)]
#[template(path = "dashboard/servables/list.html")]
struct ServableList {
    layout: Layout,
    rows: Vec<ServableRow>,
    types: Vec<TypeOption>,
    /// The prototype filter, when the list shows one prototype's servables.
    prototype: Option<Link>,
    prototype_id: String,
    next: Option<String>,
}

/// The state of a servable's latest instance, when the viewer may read it.
fn current_state(app: &App, viewer: &Principal, s: &Servable) -> String {
    s.current
        .and_then(|i| servables::instance_for(&app.store, viewer, i, Capability::Read).ok())
        .map_or_else(|| "not run".to_owned(), |i| i.state.as_str().to_owned())
}

/// Servables the viewer may read, 50 a page, by type and prototype.
async fn list(State(app): State<App>, viewer: Viewer, q: ListQuery) -> Result<Html<String>> {
    let kind = type_filter(&q)?;
    let prototype = match q.get("prototype") {
        None | Some("") => None,
        Some(_) => q.id("prototype")?,
    };
    let paging = Paging::of(&q)?;
    let p = viewer.principal.clone();
    let request = paging.request;
    let (page, rows, filter) = app
        .listing(move |app| {
            let page = servables::list_servables(&app.store, &p, kind, prototype, request)?;
            let rows = page
                .items
                .iter()
                .map(|s| ServableRow {
                    id: s.id.to_string(),
                    name: s.name.clone(),
                    kind: s.kind.as_str(),
                    prototype: prototype_link(app, &p, s.prototype),
                    state: current_state(app, &p, s),
                    created: format::time(&s.created),
                })
                .collect();
            let filter = prototype.map(|id| prototype_link(app, &p, id));
            Ok((page, rows, filter))
        })
        .await?;
    let prototype_id = prototype.map(|p| p.to_string()).unwrap_or_default();
    let next = paging.next(
        "/ui/servables",
        &[
            ("type", kind.map_or("", ServableType::as_str)),
            ("prototype", &prototype_id),
        ],
        &page,
    );
    html(&ServableList {
        layout: viewer.layout("Servables", "servables"),
        rows,
        types: type_options(kind),
        prototype: filter,
        prototype_id,
        next,
    })
}

/// A prototype the create form offers.
struct PrototypeOption {
    id: String,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "dashboard/servables/new.html")]
struct NewServablePage {
    layout: Layout,
    options: Vec<PrototypeOption>,
}

/// The prototypes the viewer may CREATE servables from (the one check decides), among the
/// first [`PROTOTYPE_CHOICES`] it may read, plus `chosen` when it is one of them.
fn creatable(app: &App, viewer: &Principal, chosen: Option<Id>) -> Result<Vec<PrototypeOption>> {
    let mut out: Vec<PrototypeOption> = Vec::new();
    let mut request = crate::core::page::PageRequest {
        after: None,
        limit: 500,
    };
    let mut seen = 0;
    let may_create = |id: Id| {
        authz::authorize(&app.store, viewer, id, Kind::Prototype, Capability::Create).is_ok()
    };
    let option = |p: &servables::Prototype| PrototypeOption {
        id: p.id.to_string(),
        label: format!("{} ({})", p.reference(), p.kind.as_str()),
        selected: chosen == Some(p.id),
    };
    loop {
        let page = servables::list_prototypes(&app.store, viewer, None, request)?;
        seen += page.items.len();
        out.extend(page.items.iter().filter(|p| may_create(p.id)).map(option));
        match page.next {
            Some(next) if seen < PROTOTYPE_CHOICES => request.after = Some(next),
            _ => break,
        }
    }
    if let Some(id) = chosen
        && !out.iter().any(|o| o.selected)
        && may_create(id)
        && let Some(p) = servables::get_prototype(&app.store, id)?
    {
        out.insert(0, option(&p));
    }
    Ok(out)
}

/// The form that creates a servable; `?prototype=ID` chooses the prototype.
async fn new_form(State(app): State<App>, viewer: Viewer, q: ListQuery) -> Result<Html<String>> {
    let chosen = match q.get("prototype") {
        None | Some("") => None,
        Some(_) => q.id("prototype")?,
    };
    let p = viewer.principal.clone();
    let options = app.listing(move |app| creatable(app, &p, chosen)).await?;
    html(&NewServablePage {
        layout: viewer.layout("New servable", "servables"),
        options,
    })
}

/// The create form as sent: text, read into a [`NewServable`] here.
#[derive(Deserialize)]
struct NewServableForm {
    prototype: String,
    name: String,
    #[serde(default)]
    config: String,
    #[serde(default)]
    cpu_cores: String,
    #[serde(default)]
    ram: String,
    #[serde(default)]
    disk: String,
    #[serde(default)]
    shm: String,
    #[serde(default)]
    gpu_count: String,
    access_control: Option<String>,
}

/// A whole number field of the resources; empty is 0 (the default).
fn whole<T: std::str::FromStr + Default>(
    field: &str,
    text: &str,
    problems: &mut Vec<Problem>,
) -> T {
    let text = text.trim();
    if text.is_empty() {
        return T::default();
    }
    text.parse().unwrap_or_else(|_| {
        problems.push(Problem::new(
            "resources",
            field,
            format!("{text:?} is not a whole number (0 or more)"),
        ));
        T::default()
    })
}

impl NewServableForm {
    /// The request the domain takes, or the problems of the form's text (the domain checks
    /// the rest). `http` says whether the prototype serves HTTP: only there does an unticked
    /// access control box mean "off".
    fn into_new(self, http: bool) -> Result<NewServable> {
        let mut problems = Vec::new();
        let config = match self.config.trim() {
            "" => Value::Object(Default::default()),
            text => serde_json::from_str(text).unwrap_or_else(|e| {
                problems.push(Problem::new(
                    "servable",
                    "config",
                    format!("is not JSON: {e}"),
                ));
                Value::Null
            }),
        };
        let cpu_cores = match self.cpu_cores.trim() {
            "" => 0.0,
            text => text.parse::<f64>().unwrap_or_else(|_| {
                problems.push(Problem::new(
                    "resources",
                    "cpu_cores",
                    format!("{text:?} is not a number"),
                ));
                0.0
            }),
        };
        let resources = Resources {
            cpu_cores,
            ram: whole("ram", &self.ram, &mut problems),
            disk: whole("disk", &self.disk, &mut problems),
            gpu_count: whole("gpu_count", &self.gpu_count, &mut problems),
            shm: whole("shm", &self.shm, &mut problems),
        };
        if !problems.is_empty() {
            return Err(Error::Problems(problems));
        }
        let ticked = self.access_control.is_some();
        Ok(NewServable {
            prototype: self.prototype,
            name: self.name,
            kind: None,
            config,
            resources,
            access_control: (ticked || http).then_some(ticked),
        })
    }
}

/// Creates a servable (CREATE on the prototype); its page follows.
async fn create(
    State(app): State<App>,
    CsrfForm(viewer, form): CsrfForm<NewServableForm>,
) -> Result<Response> {
    let p = viewer.principal.clone();
    let servable = app
        .blocking(move |app| {
            // Whether the box's absence means "off" (nothing is shown of the prototype here:
            // the creation below checks CREATE on it).
            let http = servables::resolve_prototype(&app.store, &form.prototype)
                .is_ok_and(|p| p.kind.serves_http());
            let new = form.into_new(http)?;
            servables::create_servable(&app.store, &p, new, app.now())
        })
        .await?;
    Ok(viewer.see_other(
        &format!("/ui/servables/{}", servable.id),
        &format!("Created the servable {}.", servable.name),
    ))
}

/// An output of a pipeline's run, linked when it is a page of this group.
struct OutputRow {
    kind: String,
    name: String,
    id: String,
    href: Option<String>,
}

/// An instance as its pages show it.
struct InstanceInfo {
    id: String,
    short: String,
    state: &'static str,
    active: bool,
    exit_code: String,
    ipv4_address: String,
    restarts: u32,
    error: Option<String>,
    outputs: Vec<OutputRow>,
    runner: String,
    created: String,
    started: String,
    finished: String,
}

impl InstanceInfo {
    fn of(i: &Instance, viewer: &Principal) -> InstanceInfo {
        InstanceInfo {
            id: i.id.to_string(),
            short: format::short(&i.id),
            state: i.state.as_str(),
            active: i.state.is_active(),
            exit_code: i
                .exit_code
                .map_or_else(|| "-".to_owned(), |c| c.to_string()),
            ipv4_address: i.ipv4_address.clone().unwrap_or_else(|| "-".to_owned()),
            restarts: i.restarts,
            error: i.error.clone(),
            outputs: i
                .outputs
                .iter()
                .map(|o| OutputRow {
                    kind: o.kind.clone(),
                    name: o.name.clone(),
                    id: o.id.to_string(),
                    href: match o.kind.as_str() {
                        "servable" => Some(format!("/ui/servables/{}", o.id)),
                        "instance" => Some(format!("/ui/instances/{}", o.id)),
                        "prototype" => Some(format!("/ui/prototypes/{}", o.id)),
                        _ => None,
                    },
                })
                .collect(),
            runner: if i.runner == viewer.id {
                "you".to_owned()
            } else {
                i.runner.to_string()
            },
            created: format::time(&i.created),
            started: format::maybe_time(i.started.as_ref()),
            finished: format::maybe_time(i.finished.as_ref()),
        }
    }
}

/// An instance's log as a page shows it: the latest stored lines, and, while the instance
/// is active, where live.js follows the rest.
struct LogView {
    lines: String,
    /// Lines before the ones shown (in /v1's log).
    earlier: u64,
    live: Option<String>,
}

fn log_view(app: &App, i: &Instance) -> Result<LogView> {
    let after = i.log.seq.saturating_sub(LOG_TAIL);
    let lines = logs::read_logs(&app.store, i.id, after, LOG_TAIL as usize)?;
    let text: Vec<&str> = lines.iter().map(|l| l.logline.as_str()).collect();
    let url = format!("/v1/instances/{}/logs", i.id);
    Ok(LogView {
        lines: text.join("\n"),
        earlier: after,
        live: i.state.is_active().then(|| {
            if after == 0 {
                url
            } else {
                format!("{url}?after={after}")
            }
        }),
    })
}

/// A daemon's volume as the page shows it.
struct VolumeInfo {
    location: String,
    size: String,
    used: String,
    enforced: bool,
    overrun: bool,
}

impl VolumeInfo {
    fn of(v: &Volume) -> VolumeInfo {
        VolumeInfo {
            location: v.location.clone(),
            size: format!("{} MB", v.size_mb),
            used: v
                .used_bytes
                .map_or_else(|| "not measured yet".to_owned(), format::size),
            enforced: v.enforced,
            overrun: v.overrun,
        }
    }
}

/// One row of a servable's instances.
struct InstanceRow {
    id: String,
    short: String,
    state: &'static str,
    exit_code: String,
    started: String,
    finished: String,
    restarts: u32,
}

/// The resources as people read them: what 0 means for each.
fn resource_rows(r: &Resources) -> Vec<(&'static str, String)> {
    let mb = |v: u64, zero: &str| {
        if v == 0 {
            zero.to_owned()
        } else {
            format!("{v} MB")
        }
    };
    vec![
        (
            "CPU cores",
            if r.cpu_cores == 0.0 {
                "the appliance's default".to_owned()
            } else {
                r.cpu_cores.to_string()
            },
        ),
        ("Memory", mb(r.ram, "the appliance's default")),
        ("Disk", mb(r.disk, "no separate limit")),
        ("Shared memory", mb(r.shm, "the engine's 64 MB")),
        ("GPUs", r.gpu_count.to_string()),
    ]
}

#[derive(Template)]
#[template(path = "dashboard/servables/show.html")]
struct ServablePage {
    layout: Layout,
    id: String,
    name: String,
    kind: &'static str,
    kind_description: &'static str,
    prototype: Link,
    config: String,
    resources: Vec<(&'static str, String)>,
    http: bool,
    access_control: bool,
    owner: String,
    created: String,
    app_path: Option<String>,
    app_host: Option<String>,
    volume: Option<VolumeInfo>,
    unenforced: Vec<String>,
    current: Option<InstanceInfo>,
    log: Option<LogView>,
    instances: Vec<InstanceRow>,
    instances_next: Option<String>,
}

/// A servable's page (READ): what it is, its app, volume, limits, current instance with its
/// live log, and its instances (50 a page).
async fn show(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    q: ListQuery,
) -> Result<Html<String>> {
    let id = parse_id(&id, "Servable")?;
    let paging = Paging::of(&q)?;
    let request = paging.request;
    let p = viewer.principal.clone();
    let (s, prototype, current, log, instances) = app
        .listing(move |app| {
            let s = servables::servable_for(&app.store, &p, id, Capability::Read)?;
            let prototype = prototype_link(app, &p, s.prototype);
            let current = s
                .current
                .and_then(|i| servables::instance_for(&app.store, &p, i, Capability::Read).ok());
            let log = current.as_ref().map(|i| log_view(app, i)).transpose()?;
            let instances = servables::list_instances(&app.store, &p, id, request)?;
            Ok((s, prototype, current, log, instances))
        })
        .await?;
    let instances_next = paging.next(&format!("/ui/servables/{id}"), &[], &instances);
    let http = s.kind.serves_http();
    html(&ServablePage {
        layout: viewer.layout(format!("Servable {}", s.name), "servables"),
        id: s.id.to_string(),
        kind: s.kind.as_str(),
        kind_description: s.kind.description(),
        prototype,
        config: pretty(&s.config),
        resources: resource_rows(&s.resources),
        http,
        access_control: s.access_control,
        owner: if s.owner == viewer.principal.id {
            "you".to_owned()
        } else {
            s.owner.to_string()
        },
        created: format::time(&s.created),
        app_path: http.then(|| app_path(s.id)),
        app_host: http.then(|| app_host(&app, s.id)),
        volume: s.volume.as_ref().map(VolumeInfo::of),
        unenforced: s.unenforced.clone(),
        current: current
            .as_ref()
            .map(|i| InstanceInfo::of(i, &viewer.principal)),
        log,
        instances: instances
            .items
            .iter()
            .rev()
            .map(|i| InstanceRow {
                id: i.id.to_string(),
                short: format::short(&i.id),
                state: i.state.as_str(),
                exit_code: i
                    .exit_code
                    .map_or_else(|| "-".to_owned(), |c| c.to_string()),
                started: format::maybe_time(i.started.as_ref()),
                finished: format::maybe_time(i.finished.as_ref()),
                restarts: i.restarts,
            })
            .collect(),
        instances_next,
        name: s.name,
    })
}

/// What a form with no fields of its own sends (its CSRF token is checked by [`CsrfForm`]).
#[derive(Deserialize)]
struct Empty {}

/// Runs the servable (UPDATE): a new instance, once its container runs or failed to start.
async fn run(
    State(app): State<App>,
    Path(id): Path<String>,
    CsrfForm(viewer, Empty {}): CsrfForm<Empty>,
) -> Result<Response> {
    let id = parse_id(&id, "Servable")?;
    let instance = app.instances.run(&viewer.principal, id).await?;
    let notice = match &instance.error {
        Some(e) => format!(
            "Instance {} failed to start: {e}",
            format::short(&instance.id)
        ),
        None => format!(
            "Instance {} is {}.",
            format::short(&instance.id),
            instance.state.as_str()
        ),
    };
    Ok(viewer.see_other(&format!("/ui/servables/{id}"), &notice))
}

/// Deletes the servable (DELETE): its instances stopped and removed, its volume too.
async fn delete(
    State(app): State<App>,
    Path(id): Path<String>,
    CsrfForm(viewer, Empty {}): CsrfForm<Empty>,
) -> Result<Response> {
    let id = parse_id(&id, "Servable")?;
    let p = viewer.principal.clone();
    let name = app
        .blocking(move |app| servables::servable_for(&app.store, &p, id, Capability::Read))
        .await?
        .name;
    app.instances.delete_servable(&viewer.principal, id).await?;
    Ok(viewer.see_other(
        "/ui/servables",
        &format!("Deleted the servable {name}, its instances and its volume."),
    ))
}

#[derive(Template)]
#[template(path = "dashboard/servables/instance.html")]
struct InstancePage {
    layout: Layout,
    i: InstanceInfo,
    servable: Link,
    app_path: Option<String>,
    log: LogView,
}

/// An instance's page (READ): its state, outputs and live log.
async fn instance_page(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Html<String>> {
    let id = parse_id(&id, "Instance")?;
    let p = viewer.principal.clone();
    let (i, servable, log) = app
        .blocking(move |app| {
            let i = servables::instance_for(&app.store, &p, id, Capability::Read)?;
            let servable = servables::servable_for(&app.store, &p, i.servable, Capability::Read)
                .map_or_else(
                    |_| Link {
                        href: String::new(),
                        text: i.servable.to_string(),
                    },
                    |s| Link {
                        href: format!("/ui/servables/{}", s.id),
                        text: s.name,
                    },
                );
            let log = log_view(app, &i)?;
            Ok((i, servable, log))
        })
        .await?;
    html(&InstancePage {
        layout: viewer.layout(format!("Instance {}", format::short(&i.id)), "servables"),
        app_path: i.kind.serves_http().then(|| app_path(i.servable)),
        i: InstanceInfo::of(&i, &viewer.principal),
        servable,
        log,
    })
}

/// Where an instance's form goes back to: the instance's page, or its servable's.
#[derive(Deserialize)]
struct Back {
    #[serde(default)]
    back: String,
}

impl Back {
    fn to(&self, i: &Instance) -> String {
        if self.back == "instance" {
            format!("/ui/instances/{}", i.id)
        } else {
            format!("/ui/servables/{}", i.servable)
        }
    }
}

/// Stops an instance (UPDATE): SIGTERM, then SIGKILL after the stop timeout.
async fn stop(
    State(app): State<App>,
    Path(id): Path<String>,
    CsrfForm(viewer, back): CsrfForm<Back>,
) -> Result<Response> {
    let id = parse_id(&id, "Instance")?;
    let i = app.instances.stop(&viewer.principal, id).await?;
    Ok(viewer.see_other(
        &back.to(&i),
        &format!("Instance {} is {}.", format::short(&i.id), i.state.as_str()),
    ))
}

/// Restarts the servable's latest instance (UPDATE), with a fresh API key.
async fn restart(
    State(app): State<App>,
    Path(id): Path<String>,
    CsrfForm(viewer, back): CsrfForm<Back>,
) -> Result<Response> {
    let id = parse_id(&id, "Instance")?;
    let i = app.instances.restart(&viewer.principal, id).await?;
    let notice = match &i.error {
        Some(e) => format!("Instance {} failed to restart: {e}", format::short(&i.id)),
        None => format!(
            "Restarted: instance {} is {}.",
            format::short(&i.id),
            i.state.as_str()
        ),
    };
    Ok(viewer.see_other(&back.to(&i), &notice))
}

/// Deletes an instance (DELETE): stopped first, its container and logs removed; its
/// servable's page follows.
async fn delete_instance(
    State(app): State<App>,
    Path(id): Path<String>,
    CsrfForm(viewer, Empty {}): CsrfForm<Empty>,
) -> Result<Response> {
    let id = parse_id(&id, "Instance")?;
    let p = viewer.principal.clone();
    let i = app
        .blocking(move |app| servables::instance_for(&app.store, &p, id, Capability::Read))
        .await?;
    app.instances.delete_instance(&viewer.principal, id).await?;
    Ok(viewer.see_other(
        &format!("/ui/servables/{}", i.servable),
        &format!(
            "Deleted instance {}, its container and its log.",
            format::short(&i.id)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(config: &str, cpu: &str, ram: &str, ticked: bool) -> NewServableForm {
        NewServableForm {
            prototype: "p:1".into(),
            name: "n".into(),
            config: config.into(),
            cpu_cores: cpu.into(),
            ram: ram.into(),
            disk: String::new(),
            shm: " ".into(),
            gpu_count: "0".into(),
            access_control: ticked.then(|| "on".into()),
        }
    }

    #[test]
    fn the_create_form_reads_into_the_domains_request() {
        let new = form("", "0.5", "64", true).into_new(true).unwrap();
        assert_eq!(new.config, serde_json::json!({}));
        assert_eq!(new.resources.cpu_cores, 0.5);
        assert_eq!((new.resources.ram, new.resources.shm), (64, 0));
        assert_eq!(new.access_control, Some(true));
        // Unticked: off for an HTTP type, the domain's default elsewhere.
        let new = form("{\"a\": 1}", "", "", false).into_new(true).unwrap();
        assert_eq!(new.access_control, Some(false));
        assert_eq!(new.config["a"], 1);
        let new = form("{}", "", "", false).into_new(false).unwrap();
        assert_eq!(new.access_control, None);
    }

    #[test]
    fn the_create_forms_text_problems_name_their_fields() {
        let Err(Error::Problems(problems)) = form("{nope", "lots", "-3", true).into_new(true)
        else {
            panic!("problems expected");
        };
        let fields: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.item.as_str(), p.field.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("servable", "config"),
                ("resources", "cpu_cores"),
                ("resources", "ram")
            ]
        );
    }

    #[test]
    fn resources_say_what_zero_means() {
        let rows = resource_rows(&Resources {
            ram: 64,
            ..Resources::default()
        });
        assert_eq!(rows[0].1, "the appliance's default");
        assert_eq!(rows[1].1, "64 MB");
        assert_eq!(rows[2].1, "no separate limit");
    }
}
