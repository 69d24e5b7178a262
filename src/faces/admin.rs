//! The admin face: administration from the server's own machine (`dtaas admin ...`).
//!
//! A running server listens on a unix socket in its data directory (`admin.sock`, mode 0600) and
//! accepts only peers running as root or as the server's own user (checked by peer credentials,
//! not just file modes). Each connection carries one JSON request line and gets one JSON reply
//! line. When no server runs, the CLI (`cli::admin`) opens the database directly and runs the
//! same code ([`execute`]).
//!
//! A backup is the one request with a second step: the server stages a snapshot in its data
//! directory (`domains::backup::snapshot`) and answers with its path; the client copies it out
//! (as the user who asked, to wherever that user may write: the service itself may write
//! nowhere but its data directory) and then says `done` or hangs up, and the server removes the
//! staged snapshot.

use super::state::App;
use crate::core::clock::Clock;
use crate::core::config::RegistrationMode;
use crate::core::error::Result;
use crate::core::secrets::random_token;
use crate::core::store::Store;
use crate::domains::accounts::{self, NewUser};
use crate::domains::oidc;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};

pub const SOCKET_FILE: &str = "admin.sock";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum AdminRequest {
    CreateUser {
        login: String,
        #[serde(default)]
        email: Option<String>,
        /// Generated (and returned once) when absent.
        #[serde(default)]
        password: Option<String>,
        #[serde(default)]
        admin: bool,
    },
    DisableUser {
        login: String,
    },
    EnableUser {
        login: String,
    },
    ResetPassword {
        login: String,
        #[serde(default)]
        password: Option<String>,
    },
    SetRegistration {
        mode: RegistrationMode,
    },
    ListUsers,
    /// Replace the OpenID Connect signing key at once (see `domains::oidc::rotate_key`).
    RotateOidcKey,
    /// Stage a snapshot for a backup (see the module's documentation).
    Backup,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminReply {
    pub ok: bool,
    pub message: String,
    /// A backup's staged snapshot, until the client is done with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<PathBuf>,
}

impl AdminReply {
    fn ok(message: String) -> AdminReply {
        AdminReply {
            ok: true,
            message,
            snapshot: None,
        }
    }

    fn refused(message: String) -> AdminReply {
        AdminReply {
            ok: false,
            message,
            snapshot: None,
        }
    }
}

/// What a client sends when it has copied a staged snapshot.
pub const BACKUP_DONE: &str = "done";

/// Who the admin log names for the local command line (through the socket or directly).
pub const LOCAL_ADMIN: &str = "dtaas admin";

/// Runs one admin request against the store, and notes a change in the admin log. Blocking
/// (argon2, durable commits).
pub fn execute(
    store: &Store,
    clock: &dyn Clock,
    configured_registration: RegistrationMode,
    request: AdminRequest,
) -> Result<String> {
    let change = logged_change(&request);
    let message = run(store, clock, configured_registration, request)?;
    if let Some((action, target)) = change
        && let Err(e) =
            accounts::record_admin_action(store, LOCAL_ADMIN, action, &target, clock.now())
    {
        // The change is made: say so, and tell the operator what the log missed.
        tracing::error!("the admin log missed {action} {target}: {e}");
    }
    Ok(message)
}

/// What the admin log keeps of a request that changes something: its kind and its target
/// (never a password).
fn logged_change(request: &AdminRequest) -> Option<(&'static str, String)> {
    let target = match request {
        AdminRequest::CreateUser { login, .. }
        | AdminRequest::DisableUser { login }
        | AdminRequest::EnableUser { login }
        | AdminRequest::ResetPassword { login, .. } => login.clone(),
        AdminRequest::SetRegistration { mode } => mode.as_str().to_owned(),
        AdminRequest::RotateOidcKey => "the OpenID Connect signing key".to_owned(),
        AdminRequest::ListUsers | AdminRequest::Backup => return None,
    };
    Some((request_kind(request), target))
}

fn run(
    store: &Store,
    clock: &dyn Clock,
    configured_registration: RegistrationMode,
    request: AdminRequest,
) -> Result<String> {
    match request {
        AdminRequest::CreateUser {
            login,
            email,
            password,
            admin,
        } => {
            let (password, generated) = match password {
                Some(p) => (p, false),
                None => (generated_password(), true),
            };
            accounts::validate_new_account(&login, email.as_deref(), &password)?;
            let user = accounts::create_user(
                store,
                NewUser {
                    login,
                    email,
                    password_hash: accounts::hash_password(&password)?,
                    confirmed: true,
                    confirm_token: None,
                    admin,
                },
                clock.now(),
            )?;
            let role = if user.admin { "admin" } else { "user" };
            Ok(if generated {
                format!(
                    "created {role} {} ({}); password: {password}",
                    user.login, user.id
                )
            } else {
                format!("created {role} {} ({})", user.login, user.id)
            })
        }
        AdminRequest::DisableUser { login } => {
            let user = accounts::set_disabled(store, &login, true)?;
            Ok(format!("disabled {} and ended its sessions", user.login))
        }
        AdminRequest::EnableUser { login } => {
            let user = accounts::set_disabled(store, &login, false)?;
            Ok(format!("enabled {}", user.login))
        }
        AdminRequest::ResetPassword { login, password } => {
            let (password, generated) = match password {
                Some(p) => (p, false),
                None => (generated_password(), true),
            };
            accounts::validate_new_account(&login, None, &password)?;
            let user = accounts::set_password(store, &login, accounts::hash_password(&password)?)?;
            Ok(if generated {
                format!("new password for {}: {password}", user.login)
            } else {
                format!("password of {} changed; its sessions ended", user.login)
            })
        }
        AdminRequest::SetRegistration { mode } => {
            accounts::set_registration_mode(store, mode)?;
            Ok(format!("registration is now {}", mode.as_str()))
        }
        AdminRequest::ListUsers => {
            let mode = accounts::registration_mode(store, configured_registration)?;
            let mut lines = vec![format!("registration: {}", mode.as_str())];
            for u in accounts::list_users(store)? {
                let mut flags = Vec::new();
                if u.admin {
                    flags.push("admin");
                }
                if u.disabled {
                    flags.push("disabled");
                }
                if !u.confirmed {
                    flags.push("unconfirmed");
                }
                lines.push(format!(
                    "{}  {}  {}  {}",
                    u.id,
                    u.login,
                    u.email.as_deref().unwrap_or("-"),
                    flags.join(",")
                ));
            }
            Ok(lines.join("\n"))
        }
        AdminRequest::RotateOidcKey => {
            let kid = oidc::rotate_key(store, clock.now())?;
            Ok(format!(
                "new OpenID Connect signing key {kid}: it signs from now on; the previous key \
                 stays in the JWKS until the tokens it signed expire ({} s)",
                oidc::TOKEN_SECS
            ))
        }
        AdminRequest::Backup => Err(crate::core::error::Error::bad_request(
            "a backup is staged by the server's admin socket or by `dtaas admin backup` itself",
        )),
    }
}

/// A password made for an account an administrator creates or resets (shown to them once).
pub fn generated_password() -> String {
    random_token().chars().take(20).collect()
}

/// The server side of the socket.
pub struct AdminSocket {
    listener: UnixListener,
    path: PathBuf,
    app: App,
    /// Directories of the data directory a backup holds whole (the server's own files).
    backup_dirs: Arc<[String]>,
}

impl AdminSocket {
    pub fn bind(app: App) -> std::io::Result<AdminSocket> {
        use std::os::unix::fs::PermissionsExt;
        let path = app.store.dir().join(SOCKET_FILE);
        // We hold the database lock, so a socket file left here is a dead server's.
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        Ok(AdminSocket {
            listener,
            path,
            app,
            backup_dirs: Arc::from([]),
        })
    }

    /// Directories of the data directory that backups hold whole, besides what the domains
    /// refer to (the server's generated TLS certificate).
    pub fn keep_in_backups(mut self, dirs: &[&str]) -> AdminSocket {
        self.backup_dirs = dirs.iter().map(|d| (*d).to_owned()).collect();
        self
    }

    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let app = self.app.clone();
                        let backup_dirs = self.backup_dirs.clone();
                        tokio::spawn(async move {
                            if let Err(e) = handle_connection(app, stream, backup_dirs).await {
                                tracing::warn!("admin socket: {e}");
                            }
                        });
                    }
                    Err(e) => tracing::warn!("admin socket accept: {e}"),
                }
            }
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn handle_connection(
    app: App,
    stream: UnixStream,
    backup_dirs: Arc<[String]>,
) -> std::io::Result<()> {
    let cred = stream.peer_cred()?;
    let me = rustix::process::geteuid().as_raw();
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let reply = if cred.uid() != 0 && cred.uid() != me {
        tracing::warn!(
            uid = cred.uid(),
            "admin socket: refused a peer running as another user"
        );
        AdminReply::refused(format!(
            "refused: the admin socket accepts only root and uid {me} (you are uid {})",
            cred.uid()
        ))
    } else {
        let mut line = String::new();
        read.read_line(&mut line).await?;
        match serde_json::from_str::<AdminRequest>(&line) {
            Err(e) => AdminReply::refused(format!("malformed request: {e}")),
            Ok(AdminRequest::Backup) => {
                tracing::info!(uid = cred.uid(), "admin request: backup");
                return stage_backup(app, read, write, backup_dirs).await;
            }
            Ok(request) => {
                tracing::info!(
                    command = request_kind(&request),
                    uid = cred.uid(),
                    "admin request"
                );
                let result = app
                    .blocking(move |app| {
                        execute(
                            &app.store,
                            app.clock.as_ref(),
                            app.config.registration,
                            request,
                        )
                    })
                    .await;
                match result {
                    Ok(message) => AdminReply::ok(message),
                    Err(e) => AdminReply::refused(e.to_string()),
                }
            }
        }
    };
    send(&mut write, &reply).await?;
    write.shutdown().await
}

async fn send(write: &mut OwnedWriteHalf, reply: &AdminReply) -> std::io::Result<()> {
    let mut out = serde_json::to_vec(reply).unwrap_or_else(|_| b"{}".to_vec());
    out.push(b'\n');
    write.write_all(&out).await
}

/// Stages a snapshot, answers with its path, and removes it once the client says it is done
/// or hangs up.
async fn stage_backup(
    app: App,
    mut read: BufReader<OwnedReadHalf>,
    mut write: OwnedWriteHalf,
    backup_dirs: Arc<[String]>,
) -> std::io::Result<()> {
    let started = std::time::Instant::now();
    let staging = app.clone();
    let staged = tokio::task::spawn_blocking(move || {
        let dirs: Vec<&str> = backup_dirs.iter().map(String::as_str).collect();
        crate::domains::backup::snapshot(
            &staging.store,
            &staging.data_dir,
            &dirs,
            staging.clock.now(),
        )
    })
    .await
    .map_err(|e| crate::core::backup::BackupError::Other(format!("the snapshot failed: {e}")))
    .and_then(|staged| staged);
    let staged = match staged {
        Ok(staged) => staged,
        Err(e) => {
            tracing::error!("backup snapshot: {e}");
            send(&mut write, &AdminReply::refused(e.to_string())).await?;
            return write.shutdown().await;
        }
    };
    tracing::info!(
        files = staged.inventory.files.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "backup snapshot staged"
    );
    let reply = AdminReply {
        ok: true,
        message: format!("snapshot staged in {}", staged.dir().display()),
        snapshot: Some(staged.dir().to_owned()),
    };
    let sent = send(&mut write, &reply).await;
    if sent.is_ok() {
        // `done`, or the end of the connection: either way the snapshot has served.
        let mut line = String::new();
        let _ = read.read_line(&mut line).await;
    }
    let _ = tokio::task::spawn_blocking(move || drop(staged)).await;
    sent?;
    write.shutdown().await
}

fn request_kind(r: &AdminRequest) -> &'static str {
    match r {
        AdminRequest::CreateUser { .. } => "create-user",
        AdminRequest::DisableUser { .. } => "disable-user",
        AdminRequest::EnableUser { .. } => "enable-user",
        AdminRequest::ResetPassword { .. } => "reset-password",
        AdminRequest::SetRegistration { .. } => "set-registration",
        AdminRequest::ListUsers => "list-users",
        AdminRequest::RotateOidcKey => "rotate-oidc-key",
        AdminRequest::Backup => "backup",
    }
}

/// The socket path of a data directory.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::clock::SystemClock;

    /// Every command that changes something leaves an entry naming it and its target, and no
    /// password; reading commands leave none.
    #[test]
    fn commands_that_change_something_are_logged() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::domains::open_store(dir.path()).unwrap();
        let run = |request| execute(&store, &SystemClock, RegistrationMode::Open, request);
        let created = run(AdminRequest::CreateUser {
            login: "dora".into(),
            email: None,
            password: None,
            admin: false,
        })
        .unwrap();
        run(AdminRequest::DisableUser {
            login: "dora".into(),
        })
        .unwrap();
        run(AdminRequest::SetRegistration {
            mode: RegistrationMode::Closed,
        })
        .unwrap();
        run(AdminRequest::ListUsers).unwrap();
        assert!(
            run(AdminRequest::EnableUser {
                login: "nobody".into()
            })
            .is_err()
        );
        let (log, more) = accounts::admin_actions(&store, None, 10).unwrap();
        assert!(!more);
        let entries: Vec<(&str, &str, &str)> = log
            .iter()
            .map(|a| (a.admin.as_str(), a.action.as_str(), a.target.as_str()))
            .collect();
        assert_eq!(
            entries,
            [
                (LOCAL_ADMIN, "set-registration", "closed"),
                (LOCAL_ADMIN, "disable-user", "dora"),
                (LOCAL_ADMIN, "create-user", "dora"),
            ]
        );
        let password = created.rsplit(' ').next().unwrap();
        assert!(log.iter().all(|a| !a.target.contains(password)));
    }
}
