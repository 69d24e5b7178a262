//! The admin pages at `/ui/admin` (administrators only; anyone else gets the 403 page): users
//! (search, create, confirm, disable and enable, make and remove admin, reset password), the
//! registration mode, the settings the appliance keeps, registry garbage collection, and the
//! log of administrators' actions.
//!
//! Every change goes through the same account functions as the admin socket's commands
//! (`faces::admin`) and is noted in the admin log with the administrator's login. An
//! administrator cannot disable their own account or take away their own admin rights here:
//! that would lock them out of these pages.

use super::page::{CsrfForm, Layout, PAGE_SIZE, Paging, Viewer, encode, next_link};
use super::{format, html};
use crate::core::config::RegistrationMode;
use crate::core::error::{Error, Result};
use crate::domains::accounts::{self, AdminAction, User};
use crate::domains::authz;
use crate::domains::registry::gc;
use crate::faces::admin::generated_password;
use crate::faces::listing::ListQuery;
use crate::faces::params::Path;
use crate::faces::state::App;
use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::{Html, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use std::time::Duration;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/ui/admin", get(index))
        .route("/ui/admin/users", get(users).post(create_user))
        .route("/ui/admin/users/{login}/{action}", post(user_action))
        .route("/ui/admin/registration", post(registration))
        .route("/ui/admin/gc", post(collect_garbage))
        .route("/ui/admin/log", get(log))
}

/// How many admin log entries the main admin page shows.
const RECENT_ACTIONS: usize = 10;

/// The refusal every admin page gives anyone else.
fn admin_only(viewer: &Viewer) -> Result<()> {
    authz::require_admin(&viewer.principal, "the admin pages")
}

/// An entry of the admin log as the pages show it.
struct ActionRow {
    when: String,
    admin: String,
    action: String,
    target: String,
}

fn action_rows(actions: Vec<AdminAction>) -> Vec<ActionRow> {
    actions
        .into_iter()
        .map(|a| ActionRow {
            when: format::time(&a.at),
            admin: a.admin,
            action: a.action,
            target: a.target,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "dashboard/admin/index.html")]
struct Index {
    layout: Layout,
    registration: &'static str,
    /// Whether the mode in force is an administrator's choice (else the config file's).
    registration_set: bool,
    settings: Vec<(String, String)>,
    gc_every: String,
    gc_grace: String,
    last_gc: Option<GcView>,
    actions: Vec<ActionRow>,
}

struct GcView {
    when: String,
    summary: String,
}

/// What a collection removed, in a sentence.
fn gc_summary(r: &gc::GcReport) -> String {
    format!(
        "{} unreferenced blobs removed ({} freed), {} stale uploads and {} stray files removed",
        r.blobs_removed,
        format::size(r.bytes_freed),
        r.uploads_removed,
        r.stray_files_removed
    )
}

async fn index(State(app): State<App>, viewer: Viewer) -> Result<Html<String>> {
    admin_only(&viewer)?;
    let configured = app.config.registration;
    let (mode, set, settings, last, actions) = app
        .blocking(move |app| {
            let store = &app.store;
            Ok((
                accounts::registration_mode(store, configured)?,
                accounts::setting(store, "registration")?.is_some(),
                accounts::settings(store)?,
                gc::last_collection(store)?,
                accounts::admin_actions(store, None, RECENT_ACTIONS)?.0,
            ))
        })
        .await?;
    let registry = &app.config.registry;
    html(&Index {
        layout: viewer.layout("Admin", "admin"),
        registration: mode.as_str(),
        registration_set: set,
        settings,
        gc_every: format::duration(registry.gc_interval_secs as i64),
        gc_grace: format::duration(registry.gc_grace_secs as i64),
        last_gc: last.map(|l| GcView {
            when: format::time(&l.at),
            summary: gc_summary(&l.report),
        }),
        actions: action_rows(actions),
    })
}

#[derive(Template)]
#[template(path = "dashboard/admin/users.html")]
struct Users {
    layout: Layout,
    search: String,
    users: Vec<UserRow>,
    next: Option<String>,
}

struct UserRow {
    login: String,
    /// The login as a path segment.
    path: String,
    email: String,
    created: String,
    admin: bool,
    disabled: bool,
    confirmed: bool,
    /// The viewer's own account (no disabling or demoting it here).
    me: bool,
}

/// What a login, or a prefix or cursor of one, may hold (as `/v1/users` takes it).
fn login_text(param: &str, value: &str) -> Result<()> {
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::bad_request(format!(
            "{param}: 1 to 64 letters, digits, '.', '_' or '-'"
        )))
    }
}

/// Users in login order, 50 a page, those whose login starts with `login` when given.
async fn users(State(app): State<App>, viewer: Viewer, q: ListQuery) -> Result<Html<String>> {
    admin_only(&viewer)?;
    let search = q.get("login").unwrap_or("").trim().to_owned();
    if !search.is_empty() {
        login_text("login", &search)?;
    }
    let after = match q.get("cursor") {
        None | Some("") => None,
        Some(c) => {
            login_text("cursor", c)?;
            Some(c.to_owned())
        }
    };
    let p = viewer.principal.clone();
    let prefix = search.clone();
    let (found, more) = app
        .listing(move |app| {
            accounts::discoverable_users(&app.store, &p, &prefix, after.as_deref(), PAGE_SIZE)
        })
        .await?;
    let next = match (more, found.last()) {
        (true, Some(last)) => {
            let mut link = String::from("/ui/admin/users?");
            if !search.is_empty() {
                link.push_str(&format!("login={}&", encode(&search)));
            }
            link.push_str(&format!("cursor={}", encode(&last.login.to_lowercase())));
            Some(link)
        }
        _ => None,
    };
    let me = viewer.principal.id;
    html(&Users {
        layout: viewer.layout("Users", "admin"),
        search,
        users: found.into_iter().map(|u| user_row(u, me)).collect(),
        next,
    })
}

fn user_row(u: User, me: crate::core::id::Id) -> UserRow {
    UserRow {
        path: encode(&u.login),
        email: u.email.clone().unwrap_or_default(),
        created: format::time(&u.created),
        admin: u.admin,
        disabled: u.disabled,
        confirmed: u.confirmed,
        me: u.id == me,
        login: u.login,
    }
}

#[derive(Deserialize)]
struct Empty {}

/// A change of one account, named by the last path segment.
async fn user_action(
    State(app): State<App>,
    Path((login, action)): Path<(String, String)>,
    CsrfForm(viewer, Empty {}): CsrfForm<Empty>,
) -> Result<Response> {
    admin_only(&viewer)?;
    login_text("login", &login)?;
    let own = viewer.principal.name.eq_ignore_ascii_case(&login);
    if own && matches!(action.as_str(), "disable" | "remove-admin") {
        return Err(Error::conflict(
            "you cannot disable your own account or take away your own admin rights here: \
             another administrator can, or `dtaas admin` on the server",
        ));
    }
    let admin = viewer.principal.name.clone();
    let name = login.clone();
    let notice = app
        .blocking(move |app| {
            let store = &app.store;
            // Logged under the admin socket's names for the same changes.
            let (user, logged, notice) = match action.as_str() {
                "confirm" => {
                    let u = accounts::set_confirmed(store, &name)?;
                    let n = format!("Confirmed {}: it may sign in.", u.login);
                    (u, "confirm-user", n)
                }
                "disable" => {
                    let u = accounts::set_disabled(store, &name, true)?;
                    let n = format!("Disabled {}; its sessions ended.", u.login);
                    (u, "disable-user", n)
                }
                "enable" => {
                    let u = accounts::set_disabled(store, &name, false)?;
                    let n = format!("Enabled {}.", u.login);
                    (u, "enable-user", n)
                }
                "make-admin" => {
                    let u = accounts::set_admin(store, &name, true)?;
                    let n = format!("{} is an administrator now.", u.login);
                    (u, "make-admin", n)
                }
                "remove-admin" => {
                    let u = accounts::set_admin(store, &name, false)?;
                    let n = format!("{} is no administrator any more.", u.login);
                    (u, "remove-admin", n)
                }
                "reset-password" => {
                    let password = generated_password();
                    let u =
                        accounts::set_password(store, &name, accounts::hash_password(&password)?)?;
                    let n = format!(
                        "New password for {}: {password} (shown this once; its sessions ended)",
                        u.login
                    );
                    (u, "reset-password", n)
                }
                _ => return Err(Error::not_found("no such action on a user")),
            };
            accounts::record_admin_action(store, &admin, logged, &user.login, app.now())?;
            Ok(notice)
        })
        .await?;
    Ok(viewer.see_other(
        &format!("/ui/admin/users?login={}", encode(&login)),
        &notice,
    ))
}

#[derive(Deserialize)]
struct NewUserForm {
    login: String,
    #[serde(default)]
    email: String,
    /// A checkbox: present when ticked.
    #[serde(default)]
    admin: Option<String>,
}

/// Creates an account, confirmed, with a password made here and shown to the administrator
/// once (in the notice), as `dtaas admin create-user` does.
async fn create_user(
    State(app): State<App>,
    CsrfForm(viewer, form): CsrfForm<NewUserForm>,
) -> Result<Response> {
    admin_only(&viewer)?;
    let login = form.login.trim().to_owned();
    let email = Some(form.email.trim().to_owned()).filter(|e| !e.is_empty());
    let make_admin = form.admin.is_some();
    let password = generated_password();
    accounts::validate_new_account(&login, email.as_deref(), &password)?;
    let admin = viewer.principal.name.clone();
    let notice = app
        .blocking(move |app| {
            let user = accounts::create_user(
                &app.store,
                accounts::NewUser {
                    login,
                    email,
                    password_hash: accounts::hash_password(&password)?,
                    confirmed: true,
                    confirm_token: None,
                    admin: make_admin,
                },
                app.now(),
            )?;
            accounts::record_admin_action(
                &app.store,
                &admin,
                "create-user",
                &user.login,
                app.now(),
            )?;
            let role = if user.admin { "administrator" } else { "user" };
            Ok(format!(
                "Created {role} {}; password: {password} (shown this once: hand it over, they \
                 change it on their account page)",
                user.login
            ))
        })
        .await?;
    Ok(viewer.see_other("/ui/admin/users", &notice))
}

#[derive(Deserialize)]
struct RegistrationForm {
    mode: String,
}

async fn registration(
    State(app): State<App>,
    CsrfForm(viewer, form): CsrfForm<RegistrationForm>,
) -> Result<Response> {
    admin_only(&viewer)?;
    let mode: RegistrationMode = form.mode.parse().map_err(Error::bad_request)?;
    let admin = viewer.principal.name.clone();
    app.blocking(move |app| {
        accounts::set_registration_mode(&app.store, mode)?;
        accounts::record_admin_action(
            &app.store,
            &admin,
            "set-registration",
            mode.as_str(),
            app.now(),
        )?;
        Ok(())
    })
    .await?;
    Ok(viewer.see_other(
        "/ui/admin",
        &format!("Registration is {} now.", mode.as_str()),
    ))
}

/// Runs the registry's garbage collection now, as the periodic one does.
async fn collect_garbage(
    State(app): State<App>,
    CsrfForm(viewer, Empty {}): CsrfForm<Empty>,
) -> Result<Response> {
    admin_only(&viewer)?;
    let admin = viewer.principal.name.clone();
    let summary = app
        .blocking(move |app| {
            let registry = &app.config.registry;
            let report = gc::collect(
                &app.store,
                &app.blobs,
                app.now(),
                Duration::from_secs(registry.gc_grace_secs),
                Duration::from_secs(registry.upload_ttl_secs),
            )?;
            let summary = gc_summary(&report);
            accounts::record_admin_action(&app.store, &admin, "registry-gc", &summary, app.now())?;
            Ok(summary)
        })
        .await?;
    Ok(viewer.see_other("/ui/admin", &format!("Garbage collected: {summary}.")))
}

#[derive(Template)]
#[template(path = "dashboard/admin/log.html")]
struct Log {
    layout: Layout,
    actions: Vec<ActionRow>,
    next: Option<String>,
}

/// The admin log, newest first, 50 a page.
async fn log(State(app): State<App>, viewer: Viewer, q: ListQuery) -> Result<Html<String>> {
    admin_only(&viewer)?;
    let paging = Paging::of(&q)?;
    let before = paging.request.after;
    let (actions, more) = app
        .listing(move |app| accounts::admin_actions(&app.store, before, PAGE_SIZE))
        .await?;
    let next = match (more, actions.last()) {
        (true, Some(last)) => Some(next_link("/ui/admin/log", &[], last.id)),
        _ => None,
    };
    html(&Log {
        layout: viewer.layout("Admin log", "admin"),
        actions: action_rows(actions),
        next,
    })
}
