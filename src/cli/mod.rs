//! cli: the command line. `dtaas serve` (the appliance), `dtaas admin ...` (administration on
//! the server's machine), `dtaas openapi`, and the client's commands (`dtaas login`, `list`,
//! `servable run`, ...: `client`), flattened into the same tree.

mod admin;
mod backup;
pub mod client;

use crate::core::clock::SystemClock;
use crate::core::config::{Config, LogFormat, Override, RegistrationMode};
use crate::faces::admin::AdminRequest;
use admin::Via;
use clap::{Args, CommandFactory, Parser, Subcommand};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "dtaas",
    version,
    about = "A single-node Data Trust appliance and its client",
    after_help = "Examples:
  dtaas serve                                   run the appliance
  dtaas login https://dtaas.example:5000        sign in (keeps an API key in a profile)
  dtaas list servables --type app
  eval \"$(dtaas export)\"                        DTAAS_URL and DTAAS_API_KEY for scripts
  dtaas <command> --help                        more on a command"
)]
pub struct Cli {
    /// Server configuration file (TOML) [default: /etc/dtaas/dtaas.toml when it exists]. Also
    /// DTAAS_CONFIG.
    #[arg(long, global = true, env = "DTAAS_CONFIG")]
    config: Option<PathBuf>,
    /// The server's data directory [default: from the configuration, else ./dtaas-data]
    /// (DTAAS_DATA_DIR).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    client: client::ClientFlags,
    #[command(subcommand)]
    command: Command,
}

/// The configuration file a command reads when none is named: the packaged one, if installed.
pub const SYSTEM_CONFIG: &str = "/etc/dtaas/dtaas.toml";

/// `--config` (or DTAAS_CONFIG) if given, else [`SYSTEM_CONFIG`] when it exists. `dtaas serve`
/// and `dtaas admin` read the same file, so that an admin command on an installed server finds
/// the service's data directory.
fn config_file(named: Option<&PathBuf>) -> Option<PathBuf> {
    match named {
        Some(path) => Some(path.clone()),
        None => {
            let system = PathBuf::from(SYSTEM_CONFIG);
            system.exists().then_some(system)
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance.
    #[command(
        after_help = "Examples:\n  dtaas serve\n  dtaas serve --listen 0.0.0.0:5000 --tls-mode on\n  dtaas serve --print-config"
    )]
    Serve(ServeArgs),
    /// Administer a server on this machine (through its admin socket, or its stopped database).
    #[command(
        after_help = "Examples:\n  sudo dtaas admin create-user alice --admin\n  sudo dtaas admin list-users\n  sudo dtaas admin backup /srv/backups/dtaas-monday"
    )]
    Admin(AdminArgs),
    /// Print the OpenAPI document of the /v1 API (as served at /v1/doc/openapi.json).
    #[command(after_help = "Examples:\n  dtaas openapi > openapi.json")]
    Openapi,
    #[command(flatten)]
    Client(client::ClientCommand),
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    server: ServerFlags,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

/// Flags that override the configuration file and environment.
#[derive(Args, Default)]
struct ServerFlags {
    /// Address to listen on [default: 127.0.0.1:5000] (DTAAS_LISTEN).
    #[arg(long)]
    listen: Option<String>,
    /// (The global --data-dir, carried here.)
    #[arg(skip)]
    data_dir: Option<PathBuf>,
    /// Log filter, e.g. info or dtaas=debug (DTAAS_LOG_LEVEL).
    #[arg(long)]
    log_level: Option<String>,
    /// Log format: text or json (DTAAS_LOG_FORMAT).
    #[arg(long)]
    log_format: Option<String>,
    /// Docker engine endpoint, unix:// or tcp:// (DTAAS_DOCKER_HOST, else DOCKER_HOST).
    #[arg(long)]
    docker_host: Option<String>,
    /// open or closed (DTAAS_REGISTRATION).
    #[arg(long)]
    registration: Option<String>,
    /// Allow plain HTTP on a non-loopback address (DTAAS_ALLOW_INSECURE_HTTP).
    #[arg(long)]
    allow_insecure_http: bool,
    /// TLS on the listener: auto (off loopback), on or off (DTAAS_TLS_MODE).
    #[arg(long)]
    tls_mode: Option<String>,
    /// Certificate chain, PEM (DTAAS_TLS_CERT); without it one is generated.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key, PEM (DTAAS_TLS_KEY).
    #[arg(long)]
    tls_key: Option<PathBuf>,
}

impl ServerFlags {
    fn overrides(&self) -> Vec<Override> {
        let s = |v: &str| toml::Value::String(v.to_owned());
        let mut out = Vec::new();
        if let Some(v) = &self.listen {
            out.push(("listen", s(v)));
        }
        if let Some(v) = &self.data_dir {
            out.push(("data_dir", s(&v.to_string_lossy())));
        }
        if let Some(v) = &self.log_level {
            out.push(("log.level", s(v)));
        }
        if let Some(v) = &self.log_format {
            out.push(("log.format", s(v)));
        }
        if let Some(v) = &self.docker_host {
            out.push(("docker.host", s(v)));
        }
        if let Some(v) = &self.registration {
            out.push(("registration", s(v)));
        }
        if self.allow_insecure_http {
            out.push(("allow_insecure_http", toml::Value::Boolean(true)));
        }
        if let Some(v) = &self.tls_mode {
            out.push(("tls.mode", s(v)));
        }
        if let Some(v) = &self.tls_cert {
            out.push(("tls.cert", s(&v.to_string_lossy())));
        }
        if let Some(v) = &self.tls_key {
            out.push(("tls.key", s(&v.to_string_lossy())));
        }
        out
    }
}

#[derive(Args)]
struct AdminArgs {
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a confirmed account (prints a generated password unless one is given).
    #[command(
        after_help = "Examples:\n  sudo dtaas admin create-user alice --admin --email alice@example.org\n  echo \"$PASSWORD\" | sudo dtaas admin create-user bob --password-stdin"
    )]
    CreateUser {
        login: String,
        #[arg(long)]
        email: Option<String>,
        /// Make the account an administrator.
        #[arg(long)]
        admin: bool,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable an account and end its sessions.
    #[command(after_help = "Examples:\n  sudo dtaas admin disable-user bob")]
    DisableUser { login: String },
    /// Enable a disabled account.
    #[command(after_help = "Examples:\n  sudo dtaas admin enable-user bob")]
    EnableUser { login: String },
    /// Set a new password (generated unless --password-stdin) and end the account's sessions.
    #[command(after_help = "Examples:\n  sudo dtaas admin reset-password bob")]
    ResetPassword {
        login: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Open or close self-registration.
    #[command(after_help = "Examples:\n  sudo dtaas admin set-registration open")]
    SetRegistration { mode: RegistrationMode },
    /// List accounts.
    #[command(after_help = "Examples:\n  sudo dtaas admin list-users")]
    ListUsers,
    /// Replace the OpenID Connect signing key at once (after a leak, say); keys also rotate
    /// on their own every 30 days, published ahead. The old key verifies its tokens until
    /// they expire.
    #[command(after_help = "Examples:\n  sudo dtaas admin rotate-oidc-key")]
    RotateOidcKey,
    /// Write a consistent copy of the database and of the files it refers to (registry blobs,
    /// job attachments and results, build contexts, the generated TLS certificate) to PATH, a
    /// new or empty directory. A running server keeps running.
    #[command(after_help = "Examples:\n  sudo dtaas admin backup /srv/backups/dtaas-$(date +%F)")]
    Backup { path: PathBuf },
    /// Put a backup in place as the data directory of a stopped server. Every checksum is
    /// verified first; jobs that were running when it was taken are queued to run again.
    #[command(
        after_help = "Examples:\n  sudo dtaas admin restore /srv/backups/dtaas-monday --verify-only\n  sudo systemctl stop dtaas && sudo dtaas admin restore /srv/backups/dtaas-monday --force"
    )]
    Restore {
        path: PathBuf,
        /// Replace a data directory that is not empty (its contents are kept next to it, as
        /// <data dir>.replaced-<time>).
        #[arg(long)]
        force: bool,
        /// Only check the backup (every file's size and SHA-256) and say what it holds.
        #[arg(long)]
        verify_only: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve(_)) {
        crate::server::tune_allocator();
    }
    if let Command::Client(client::ClientCommand::Completions { shell }) = cli.command {
        client::completions(shell, Cli::command());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dtaas: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("dtaas: {message}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(file: Option<&PathBuf>, flags: &ServerFlags) -> Result<Config, String> {
    Config::load(
        config_file(file).as_deref(),
        std::env::vars(),
        flags.overrides(),
    )
    .map_err(|e| e.to_string())
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Client(command) => client::run(cli.client, command).await,
        Command::Serve(mut args) => {
            args.server.data_dir = cli.data_dir.clone();
            let config = load_config(cli.config.as_ref(), &args.server)?;
            if args.print_config {
                print!("{}", config.to_toml());
                return Ok(());
            }
            init_logging(&config);
            crate::server::serve(config, Arc::new(SystemClock)).await
        }
        Command::Openapi => {
            let doc = crate::faces::v1::openapi::document()
                .to_pretty_json()
                .map_err(|e| format!("cannot render the OpenAPI document: {e}"))?;
            println!("{doc}");
            Ok(())
        }
        Command::Admin(args) => {
            let flags = ServerFlags {
                data_dir: cli.data_dir.clone(),
                ..ServerFlags::default()
            };
            let config = load_config(cli.config.as_ref(), &flags)?;
            match args.command {
                AdminCommand::Backup { path } => {
                    let (message, notes) = backup::backup(&config, &SystemClock, &path).await?;
                    println!("{message}");
                    for note in notes {
                        eprintln!("{note}");
                    }
                    return Ok(());
                }
                AdminCommand::Restore {
                    path,
                    force,
                    verify_only,
                } => {
                    let message =
                        backup::restore(&config, &SystemClock, &path, force, verify_only).await?;
                    println!("{message}");
                    return Ok(());
                }
                _ => {}
            }
            let request = admin_request(args.command)?;
            let (message, via) = admin::run(&config, &SystemClock, request)
                .await
                .map_err(|e| e.to_string())?;
            println!("{message}");
            if via == Via::Database {
                eprintln!(
                    "(no server running on {}: changed its database directly)",
                    config.data_dir.display()
                );
            }
            Ok(())
        }
    }
}

fn read_password_stdin() -> Result<String, String> {
    if std::io::stdin().is_terminal() {
        eprint!("password: ");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("reading the password from standard input: {e}"))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

fn admin_request(command: AdminCommand) -> Result<AdminRequest, String> {
    Ok(match command {
        AdminCommand::CreateUser {
            login,
            email,
            admin,
            password_stdin,
        } => AdminRequest::CreateUser {
            login,
            email,
            password: password_stdin.then(read_password_stdin).transpose()?,
            admin,
        },
        AdminCommand::DisableUser { login } => AdminRequest::DisableUser { login },
        AdminCommand::EnableUser { login } => AdminRequest::EnableUser { login },
        AdminCommand::ResetPassword {
            login,
            password_stdin,
        } => AdminRequest::ResetPassword {
            login,
            password: password_stdin.then(read_password_stdin).transpose()?,
        },
        AdminCommand::SetRegistration { mode } => AdminRequest::SetRegistration { mode },
        AdminCommand::ListUsers => AdminRequest::ListUsers,
        AdminCommand::RotateOidcKey => AdminRequest::RotateOidcKey,
        AdminCommand::Backup { .. } | AdminCommand::Restore { .. } => {
            return Err("backup and restore are not requests of their own".into());
        }
    })
}

fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(&config.log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match config.log.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    if let Err(e) = result {
        eprintln!("dtaas: logging already initialised: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        // Names used twice (a global flag and a command's own), bad defaults, ...
        Cli::command().debug_assert();
    }
}
