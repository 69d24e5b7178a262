//! The admin face: administration from the server's own machine (`dtaas admin ...`).
//!
//! A running server listens on a unix socket in its data directory (`admin.sock`, mode 0600) and
//! accepts only peers running as root or as the server's own user (checked by peer credentials,
//! not just file modes). Each connection carries one JSON request line and gets one JSON reply
//! line. When no server runs, the CLI (`cli::admin`) opens the database directly and runs the
//! same code ([`execute`]).

use super::state::App;
use crate::core::clock::Clock;
use crate::core::config::RegistrationMode;
use crate::core::error::Result;
use crate::core::secrets::random_token;
use crate::core::store::Store;
use crate::domains::accounts::{self, NewUser};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminReply {
    pub ok: bool,
    pub message: String,
}

/// Runs one admin request against the store. Blocking (argon2, durable commits).
pub fn execute(
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
    }
}

fn generated_password() -> String {
    random_token().chars().take(20).collect()
}

/// The server side of the socket.
pub struct AdminSocket {
    listener: UnixListener,
    path: PathBuf,
    app: App,
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
        })
    }

    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let app = self.app.clone();
                        tokio::spawn(async move {
                            if let Err(e) = handle_connection(app, stream).await {
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

async fn handle_connection(app: App, stream: UnixStream) -> std::io::Result<()> {
    let cred = stream.peer_cred()?;
    let me = rustix::process::geteuid().as_raw();
    let (read, mut write) = stream.into_split();
    let reply = if cred.uid() != 0 && cred.uid() != me {
        tracing::warn!(
            uid = cred.uid(),
            "admin socket: refused a peer running as another user"
        );
        AdminReply {
            ok: false,
            message: format!(
                "refused: the admin socket accepts only root and uid {me} (you are uid {})",
                cred.uid()
            ),
        }
    } else {
        let mut line = String::new();
        BufReader::new(read).read_line(&mut line).await?;
        match serde_json::from_str::<AdminRequest>(&line) {
            Err(e) => AdminReply {
                ok: false,
                message: format!("malformed request: {e}"),
            },
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
                    Ok(message) => AdminReply { ok: true, message },
                    Err(e) => AdminReply {
                        ok: false,
                        message: e.to_string(),
                    },
                }
            }
        }
    };
    let mut out = serde_json::to_vec(&reply).unwrap_or_else(|_| b"{}".to_vec());
    out.push(b'\n');
    write.write_all(&out).await?;
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
    }
}

/// The socket path of a data directory.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_FILE)
}
