//! The access pages: the grants on an object the viewer MANAGEs (`/ui/access?object=ID`),
//! trusts with their members, trustees and objects (`/ui/trusts`), and the delegation requests
//! addressed to the viewer (`/ui/requests`). Every change goes through the domain functions the
//! `/v1` routes call, in the same order, so the same rules decide (`domains::authz`).

use super::format;
use super::html;
use super::page::{CsrfForm, Layout, Paging, Viewer};
use crate::core::error::{Error, Result};
use crate::core::id::Id;
use crate::domains::accounts;
use crate::domains::authz::{self, Acl, Capability, Caps, Kind, Principal, Role};
use crate::domains::servables::delegation::DelegationState;
use crate::domains::servables::{self, delegation};
use crate::domains::trusts;
use crate::faces::errors::parse_id;
use crate::faces::listing::ListQuery;
use crate::faces::state::App;
use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{Html, Response};
use axum::routing::{get, post};
use serde::Deserialize;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/ui/access", get(access_page))
        .route("/ui/access/grant", post(grant))
        .route("/ui/access/revoke", post(revoke))
        .route("/ui/trusts", get(trusts_page).post(create_trust))
        .route("/ui/trusts/{id}", get(trust_page))
        .route("/ui/trusts/{id}/delete", post(delete_trust))
        .route("/ui/trusts/{id}/members", post(add_member))
        .route("/ui/trusts/{id}/members/remove", post(remove_member))
        .route("/ui/trusts/{id}/objects", post(add_object))
        .route("/ui/trusts/{id}/objects/remove", post(remove_object))
        .route("/ui/requests", get(requests_page))
        .route("/ui/requests/{id}/grant", post(grant_request))
        .route("/ui/requests/{id}/refuse", post(refuse_request))
}

/// A query value, an empty one (a filter form's untouched field) being none.
fn filter<'a>(q: &'a ListQuery, name: &str) -> Option<&'a str> {
    q.get(name).map(str::trim).filter(|v| !v.is_empty())
}

/// A form's fields as sent, repeated names (the capability checkboxes) kept.
type Fields = Vec<(String, String)>;

/// A field the form must have (400 otherwise), trimmed.
fn field<'a>(fields: &'a Fields, name: &str, label: &str) -> Result<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Error::bad_request(format!("{label}: fill it in")))
}

/// The capabilities ticked in a form.
fn ticked(fields: &Fields) -> Result<Vec<Capability>> {
    fields
        .iter()
        .filter(|(n, _)| n == "capabilities")
        .map(|(_, v)| {
            Capability::parse(v).ok_or_else(|| {
                Error::bad_request(format!("capabilities: {v:?} is not a capability"))
            })
        })
        .collect()
}

fn cap_names(caps: &[Capability]) -> String {
    caps.iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A principal or object as a page names it.
struct Named {
    id: String,
    short: String,
    kind: String,
    name: String,
    /// What the form that names it again sends (`everyone`, or the id).
    value: String,
}

/// Names a principal holding a grant, as `/v1`'s access list does: every user for `everyone`,
/// a user's login, a servable's or a trust's name.
fn describe(app: &App, acl_kind: Option<Kind>, id: Id) -> Named {
    if id == authz::ALL_USERS {
        return Named {
            id: "everyone".into(),
            short: "everyone".into(),
            kind: "everyone".into(),
            name: "every user".into(),
            value: "everyone".into(),
        };
    }
    let name = match acl_kind {
        Some(Kind::User) => accounts::get_user(&app.store, id)
            .ok()
            .flatten()
            .map(|u| u.login),
        Some(Kind::Servable) => servables::get_servable(&app.store, id)
            .ok()
            .flatten()
            .map(|s| s.name),
        Some(Kind::Trust) => trusts::trust_name(&app.store, id).ok().flatten(),
        _ => None,
    };
    Named {
        id: id.to_string(),
        short: format::short(&id),
        kind: acl_kind.map_or("unknown", Kind::as_str).to_owned(),
        name: name.unwrap_or_default(),
        value: id.to_string(),
    }
}

/// Names an object for `viewer`: its kind and name when the viewer may see it, the bare id
/// otherwise (a trust or a request may name objects the viewer holds nothing on).
fn describe_for(app: &App, viewer: &Principal, id: Id) -> Result<Named> {
    let kind = {
        let txn = app.store.read()?;
        let acl = Acl::read(&txn)?;
        match acl.object(id)? {
            Some(meta) if acl.visible(viewer, &meta)? => Some(meta.kind),
            _ => None,
        }
    };
    Ok(match kind {
        Some(kind) => describe(app, Some(kind), id),
        None => Named {
            id: id.to_string(),
            short: format::short(&id),
            kind: "object".into(),
            name: String::new(),
            value: id.to_string(),
        },
    })
}

/// What the viewer holds on an object it can see.
fn held(app: &App, viewer: &Principal, id: Id) -> Result<Caps> {
    let txn = app.store.read()?;
    let acl = Acl::read(&txn)?;
    match acl.object(id)? {
        Some(meta) => acl.caps(viewer, &meta),
        None => Ok(Caps::NONE),
    }
}

// ---- grants on an object ----

struct GrantRow {
    who: Named,
    capabilities: Vec<&'static str>,
}

struct ObjectInfo {
    id: String,
    kind: String,
    owner: String,
    created: String,
    /// The object's own page, where the dashboard has one.
    page: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/access/access.html")]
struct AccessPage {
    layout: Layout,
    /// What was typed in the object field.
    typed: String,
    object: Option<ObjectInfo>,
    grants: Vec<GrantRow>,
    capabilities: Vec<&'static str>,
}

/// `/ui/access`: the form to name an object, and with `?object=ID` its grants (MANAGE).
async fn access_page(State(app): State<App>, viewer: Viewer, q: ListQuery) -> Result<Html<String>> {
    let typed = filter(&q, "object").unwrap_or("").to_owned();
    let capabilities = Capability::ALL.iter().map(|c| c.as_str()).collect();
    if typed.is_empty() {
        return html(&AccessPage {
            layout: viewer.layout("Access", "access"),
            typed,
            object: None,
            grants: Vec::new(),
            capabilities,
        });
    }
    let id = parse_id(&typed, "Object")?;
    let p = viewer.principal.clone();
    let (object, grants) = app
        .blocking(move |app| {
            let meta = authz::managed(&app.store, &p, id)?;
            let granted = {
                let txn = app.store.read()?;
                let acl = Acl::read(&txn)?;
                let mut out = Vec::new();
                for (principal, caps) in authz::grants_on(&txn, id)? {
                    let kind = acl.object(principal)?.map(|m| m.kind);
                    out.push((principal, kind, caps));
                }
                out
            };
            let grants = granted
                .into_iter()
                .map(|(principal, kind, caps)| GrantRow {
                    who: describe(app, kind, principal),
                    capabilities: caps.list().into_iter().map(Capability::as_str).collect(),
                })
                .collect();
            let owner = match meta.owner {
                Some(owner) => accounts::get_user(&app.store, owner)?
                    .map_or_else(|| owner.to_string(), |u| u.login),
                None => "the appliance".to_owned(),
            };
            let object = ObjectInfo {
                id: meta.id.to_string(),
                kind: meta.kind.label().to_owned(),
                owner,
                created: format::time(&meta.created),
                page: (meta.kind == Kind::Trust).then(|| format!("/ui/trusts/{}", meta.id)),
            };
            Ok((object, grants))
        })
        .await?;
    html(&AccessPage {
        layout: viewer.layout(format!("Access to {}", object.kind), "access"),
        typed,
        object: Some(object),
        grants,
        capabilities,
    })
}

fn access_path(id: Id) -> String {
    format!("/ui/access?object={id}")
}

/// Grants capabilities on an object, as `POST /v1/objects/{id}/access`.
async fn grant(
    State(app): State<App>,
    CsrfForm(viewer, fields): CsrfForm<Fields>,
) -> Result<Response> {
    let id = parse_id(field(&fields, "object", "object")?, "Object")?;
    let p = viewer.principal.clone();
    authz::managed(&app.store, &p, id)?;
    let caps = ticked(&fields)?;
    if caps.is_empty() {
        return Err(Error::bad_request(
            "capabilities: tick at least one to grant",
        ));
    }
    let named = field(&fields, "principal", "principal")?;
    let principal = accounts::principal_named(&app.store, &p, named)?;
    let set = Caps::of(&caps);
    app.blocking(move |app| authz::grant_by(&app.store, &p, id, principal, set))
        .await?;
    app.instances.access_changed();
    Ok(viewer.see_other(
        &access_path(id),
        &format!("Granted {} to {named}.", cap_names(&caps)),
    ))
}

/// Revokes capabilities (the ticked ones, or all that the viewer holds itself when none is
/// ticked), as `DELETE /v1/objects/{id}/access/{principal}`.
async fn revoke(
    State(app): State<App>,
    CsrfForm(viewer, fields): CsrfForm<Fields>,
) -> Result<Response> {
    let id = parse_id(field(&fields, "object", "object")?, "Object")?;
    let p = viewer.principal.clone();
    authz::managed(&app.store, &p, id)?;
    let named = field(&fields, "principal", "principal")?;
    let principal = accounts::principal_named(&app.store, &p, named)?;
    let caps = ticked(&fields)?;
    let set = if caps.is_empty() {
        authz::revocable(&app.store, &p, id)?
    } else {
        Caps::of(&caps)
    };
    app.blocking(move |app| authz::revoke_by(&app.store, &p, id, principal, set))
        .await?;
    app.instances.access_changed();
    let what = if caps.is_empty() {
        "everything you could take away".to_owned()
    } else {
        cap_names(&caps)
    };
    Ok(viewer.see_other(&access_path(id), &format!("Revoked {what}.")))
}

// ---- trusts ----

struct TrustRow {
    id: String,
    short: String,
    name: String,
    owner: String,
    created: String,
}

#[derive(Template)]
#[template(path = "dashboard/access/trusts.html")]
struct TrustsPage {
    layout: Layout,
    trusts: Vec<TrustRow>,
    next: Option<String>,
}

fn login_of(app: &App, id: Id) -> String {
    accounts::get_user(&app.store, id)
        .ok()
        .flatten()
        .map_or_else(|| format::short(&id), |u| u.login)
}

/// The trusts the viewer may read, 50 a page, and the form to make one.
async fn trusts_page(State(app): State<App>, viewer: Viewer, q: ListQuery) -> Result<Html<String>> {
    let paging = Paging::of(&q)?;
    let p = viewer.principal.clone();
    let request = paging.request;
    let (page, rows) = app
        .listing(move |app| {
            let page = trusts::list_trusts(&app.store, &p, request)?;
            let rows = page
                .items
                .iter()
                .map(|t| TrustRow {
                    id: t.id.to_string(),
                    short: format::short(&t.id),
                    name: t.name.clone(),
                    owner: login_of(app, t.owner),
                    created: format::time(&t.created),
                })
                .collect::<Vec<_>>();
            Ok((page, rows))
        })
        .await?;
    html(&TrustsPage {
        layout: viewer.layout("Trusts", "access"),
        next: paging.next("/ui/trusts", &[], &page),
        trusts: rows,
    })
}

#[derive(Deserialize)]
struct NewTrust {
    name: String,
}

/// Makes a trust; the viewer is its first trustee.
async fn create_trust(
    State(app): State<App>,
    CsrfForm(viewer, form): CsrfForm<NewTrust>,
) -> Result<Response> {
    let p = viewer.principal.clone();
    let now = app.now();
    let trust = app
        .blocking(move |app| trusts::create_trust(&app.store, &p, &form.name, now))
        .await?;
    Ok(viewer.see_other(
        &format!("/ui/trusts/{}", trust.id),
        &format!("Trust \"{}\" created; you are its trustee.", trust.name),
    ))
}

#[derive(Template)]
#[template(path = "dashboard/access/trust.html")]
struct TrustPage {
    layout: Layout,
    id: String,
    name: String,
    owner: String,
    created: String,
    trustees: Vec<Named>,
    members: Vec<Named>,
    objects: Vec<Named>,
    manage: bool,
    delete: bool,
}

/// One trust (READ): its trustees, members and objects; the forms that change them for a
/// viewer holding MANAGE on it.
async fn trust_page(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Html<String>> {
    let id = parse_id(&id, "Trust")?;
    let p = viewer.principal.clone();
    let page = app
        .blocking(move |app| {
            let view = trusts::get_trust(&app.store, &p, id)?;
            let caps = held(app, &p, id)?;
            let mut trustees = Vec::new();
            let mut members = Vec::new();
            for (principal, role) in &view.members {
                let named = describe_for(app, &p, *principal)?;
                match role {
                    Role::Trustee => trustees.push(named),
                    Role::Member => members.push(named),
                }
            }
            let objects = view
                .objects
                .iter()
                .map(|o| describe_for(app, &p, *o))
                .collect::<Result<Vec<_>>>()?;
            Ok(TrustPage {
                layout: viewer.layout(format!("Trust {}", view.trust.name), "access"),
                id: view.trust.id.to_string(),
                name: view.trust.name,
                owner: login_of(app, view.trust.owner),
                created: format::time(&view.trust.created),
                trustees,
                members,
                objects,
                manage: caps.contains(Capability::Manage),
                delete: caps.contains(Capability::Delete),
            })
        })
        .await?;
    html(&page)
}

fn trust_path(id: Id) -> String {
    format!("/ui/trusts/{id}")
}

#[derive(Deserialize)]
struct Empty {}

/// Deletes a trust (DELETE): what was granted through it goes.
async fn delete_trust(
    State(app): State<App>,
    Path(id): Path<String>,
    CsrfForm(viewer, Empty {}): CsrfForm<Empty>,
) -> Result<Response> {
    let id = parse_id(&id, "Trust")?;
    let p = viewer.principal.clone();
    app.blocking(move |app| trusts::delete_trust(&app.store, &p, id))
        .await?;
    app.instances.access_changed();
    Ok(viewer.see_other("/ui/trusts", "Trust deleted."))
}

#[derive(Deserialize)]
struct MemberForm {
    principal: String,
    #[serde(default)]
    role: Option<String>,
}

/// Adds a member or trustee (MANAGE on the trust), as `POST /v1/trusts/{id}/members`.
async fn add_member(
    State(app): State<App>,
    Path(id): Path<String>,
    CsrfForm(viewer, form): CsrfForm<MemberForm>,
) -> Result<Response> {
    let id = parse_id(&id, "Trust")?;
    let p = viewer.principal.clone();
    authz::authorize(&app.store, &p, id, Kind::Trust, Capability::Manage)?;
    let role = match form.role.as_deref() {
        None | Some("" | "member") => Role::Member,
        Some("trustee") => Role::Trustee,
        Some(other) => {
            return Err(Error::bad_request(format!(
                "role: {other:?} is not one of member, trustee"
            )));
        }
    };
    let named = form.principal.trim().to_owned();
    let principal = accounts::principal_named(&app.store, &p, &named)?;
    app.blocking(move |app| trusts::add_member(&app.store, &p, id, principal, role))
        .await?;
    app.instances.access_changed();
    let as_what = if role == Role::Trustee {
        "trustee"
    } else {
        "member"
    };
    Ok(viewer.see_other(&trust_path(id), &format!("Added {named} as {as_what}.")))
}

#[derive(Deserialize)]
struct PrincipalForm {
    principal: String,
}

/// Removes a member or trustee (MANAGE on the trust); the last trustee stays.
async fn remove_member(
    State(app): State<App>,
    Path(id): Path<String>,
    CsrfForm(viewer, form): CsrfForm<PrincipalForm>,
) -> Result<Response> {
    let id = parse_id(&id, "Trust")?;
    let p = viewer.principal.clone();
    authz::authorize(&app.store, &p, id, Kind::Trust, Capability::Manage)?;
    let principal = accounts::principal_named(&app.store, &p, form.principal.trim())?;
    app.blocking(move |app| trusts::remove_member(&app.store, &p, id, principal))
        .await?;
    app.instances.access_changed();
    Ok(viewer.see_other(&trust_path(id), "Removed from the trust."))
}

#[derive(Deserialize)]
struct ObjectForm {
    object: String,
}

/// Places an object in the trust (MANAGE on both).
async fn add_object(
    State(app): State<App>,
    Path(id): Path<String>,
    CsrfForm(viewer, form): CsrfForm<ObjectForm>,
) -> Result<Response> {
    let id = parse_id(&id, "Trust")?;
    let object = parse_id(form.object.trim(), "Object")?;
    let p = viewer.principal.clone();
    app.blocking(move |app| trusts::add_object(&app.store, &p, id, object))
        .await?;
    app.instances.access_changed();
    Ok(viewer.see_other(
        &trust_path(id),
        "Object placed in the trust: its trustees manage it.",
    ))
}

/// Takes an object out of the trust (MANAGE on the trust).
async fn remove_object(
    State(app): State<App>,
    Path(id): Path<String>,
    CsrfForm(viewer, form): CsrfForm<ObjectForm>,
) -> Result<Response> {
    let id = parse_id(&id, "Trust")?;
    let object = parse_id(form.object.trim(), "Object")?;
    let p = viewer.principal.clone();
    app.blocking(move |app| trusts::remove_object(&app.store, &p, id, object))
        .await?;
    app.instances.access_changed();
    Ok(viewer.see_other(&trust_path(id), "Object taken out of the trust."))
}

// ---- delegation requests ----

struct RequestRow {
    id: String,
    short: String,
    servable: Named,
    object: Named,
    capabilities: String,
    reason: String,
    state: &'static str,
    automatic: bool,
    created: String,
    resolved: String,
    pending: bool,
}

#[derive(Template)]
#[template(path = "dashboard/access/requests.html")]
struct RequestsPage {
    layout: Layout,
    requests: Vec<RequestRow>,
    next: Option<String>,
    state: String,
    servable: String,
    /// The state filter's choices: name, and whether it is the one chosen.
    states: Vec<(&'static str, bool)>,
}

/// The delegation requests the viewer may read (those addressed to it), 50 a page, filtered
/// by state and servable; on each page the pending ones come first.
async fn requests_page(
    State(app): State<App>,
    viewer: Viewer,
    q: ListQuery,
) -> Result<Html<String>> {
    let paging = Paging::of(&q)?;
    let state_name = filter(&q, "state").unwrap_or("").to_owned();
    let state = match state_name.as_str() {
        "" => None,
        name => Some(
            DelegationState::ALL
                .into_iter()
                .find(|s| s.as_str() == name)
                .ok_or_else(|| {
                    Error::bad_request(format!(
                        "state: {name:?} is not one of pending, granted, refused"
                    ))
                })?,
        ),
    };
    let servable_text = filter(&q, "servable").unwrap_or("").to_owned();
    let servable = match servable_text.as_str() {
        "" => None,
        text => {
            Some(Id::parse(text).ok_or_else(|| Error::bad_request("servable: not a servable id"))?)
        }
    };
    let p = viewer.principal.clone();
    let request = paging.request;
    let (page, mut rows) = app
        .listing(move |app| {
            let page = delegation::list_requests(&app.store, &p, servable, state, request)?;
            let rows = page
                .items
                .iter()
                .map(|r| {
                    Ok(RequestRow {
                        id: r.id.to_string(),
                        short: format::short(&r.id),
                        servable: describe_for(app, &p, r.servable)?,
                        object: describe_for(app, &p, r.object)?,
                        capabilities: cap_names(&r.capabilities),
                        reason: r.reason.clone(),
                        state: r.state.as_str(),
                        automatic: r.automatic,
                        created: format::time(&r.created),
                        resolved: format::maybe_time(r.resolved.as_ref()),
                        pending: r.state == DelegationState::Pending,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((page, rows))
        })
        .await?;
    // Stable: the pending ones first, each part oldest first.
    rows.sort_by_key(|r| !r.pending);
    html(&RequestsPage {
        layout: viewer.layout("Delegation requests", "access"),
        next: paging.next(
            "/ui/requests",
            &[("state", &state_name), ("servable", &servable_text)],
            &page,
        ),
        states: DelegationState::ALL
            .iter()
            .map(|s| (s.as_str(), s.as_str() == state_name))
            .collect(),
        requests: rows,
        state: state_name,
        servable: servable_text,
    })
}

/// Grants or refuses a pending request (UPDATE on it), as `/v1/delegation-requests/{id}/...`.
async fn resolve(app: App, viewer: Viewer, id: String, grant: bool) -> Result<Response> {
    let id = parse_id(&id, "Delegation request")?;
    let now = app.now();
    let p = viewer.principal.clone();
    let request = app
        .blocking(move |app| delegation::resolve(&app.store, &p, id, grant, now))
        .await?;
    app.instances.access_changed();
    let notice = if grant {
        format!(
            "Request granted: the servable now holds {} on {}.",
            cap_names(&request.capabilities),
            request.object
        )
    } else {
        "Request refused: the servable gets nothing of yours.".to_owned()
    };
    Ok(viewer.see_other("/ui/requests", &notice))
}

async fn grant_request(
    State(app): State<App>,
    Path(id): Path<String>,
    CsrfForm(viewer, Empty {}): CsrfForm<Empty>,
) -> Result<Response> {
    resolve(app, viewer, id, true).await
}

async fn refuse_request(
    State(app): State<App>,
    Path(id): Path<String>,
    CsrfForm(viewer, Empty {}): CsrfForm<Empty>,
) -> Result<Response> {
    resolve(app, viewer, id, false).await
}
