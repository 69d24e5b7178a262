//! The client: `dtaas login`, `list`, `grant`, `servable run`, ... against an appliance's `/v1`.
//!
//! | module | what it holds |
//! | --- | --- |
//! | `profile` | the profile file, the environment overrides, resolving what a command talks to |
//! | `http` | the HTTP client (TLS, the key, errors that say what to do, paging, events) |
//! | `output` | tables and sentences, or the API's JSON with `--json` |
//! | `login` | login, logout, whoami, export, profiles |
//! | `docker` | docker-configure |
//! | `resources` | types and the lists |
//! | `access` | access lists, grant, revoke, delegation requests |
//! | `servable` | servable create, run, stop, restart, logs, delete |
//! | `images` | the kabuto flow's images: build (followed), rebuild, show, delete |
//! | `pipelines` | the kabuto flow's pipelines and jobs: create, add, submit, logs, result |
//! | `logs` | an instance's or a job's log, stored or followed |
//! | `repositories` | search and share the registry's repositories |
//! | `multipart` | `multipart/form-data` bodies, files streamed from disk |
//! | `push`, `pull`, `upload` | images between the local Docker engine and the registry; projects |
//! | `registry` | the registry (`/v2`) as those use it |
//! | `layers` | an image's layers read from the engine's export, compressed, remembered |
//! | `local` | the local Docker engine (connect, inspect, build) |
//! | `progress` | progress bars and step notes on standard error |
//!
//! The clap tree of these commands is [`ClientCommand`], flattened into `dtaas`'s own; the
//! global flags are [`ClientFlags`]. A command gets a [`Ctx`]: the flags, the environment, the
//! profile file and what they resolve to.

mod access;
mod docker;
pub mod http;
mod images;
mod layers;
mod local;
mod login;
mod logs;
mod multipart;
pub mod output;
mod pipelines;
pub mod profile;
mod progress;
mod pull;
mod push;
mod registry;
mod repositories;
mod resources;
mod servable;
mod upload;

use clap::{Args, Subcommand};
use http::{Api, ClientError};
use output::Output;
use profile::{Env, Flags, ProfileFile, Target};
use std::path::PathBuf;

/// The client's global flags (they go before or after the command).
#[derive(Args, Debug, Default, Clone)]
pub struct ClientFlags {
    /// The appliance's URL, e.g. https://dtaas.example:5000 [default: DTAAS_URL, else the
    /// profile's].
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    /// The profile to use [default: DTAAS_PROFILE, else the current one (`dtaas profiles`)].
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// Print the API's JSON instead of tables and sentences.
    #[arg(long, global = true)]
    pub json: bool,
    /// Do not check the server's TLS certificate (DTAAS_INSECURE=1). For tests only: anyone
    /// on the way can then read your key.
    #[arg(long, global = true)]
    pub insecure: bool,
    /// Trust this certificate authority (PEM) for the appliance, e.g. its generated
    /// <data dir>/tls/ca.crt (DTAAS_CA_CERT). `dtaas login` keeps it in the profile.
    #[arg(long, global = true, value_name = "PATH")]
    pub ca_cert: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Sign in to an appliance and keep an API key made for this machine (never the password)
    /// in a profile.
    #[command(after_help = login::LOGIN_EXAMPLES)]
    Login(login::LoginArgs),
    /// Revoke the profile's API key on the appliance and forget it.
    #[command(after_help = "Examples:\n  dtaas logout\n  dtaas --profile lab logout")]
    Logout,
    /// List the profiles (appliances you are logged in to), or choose or remove one.
    #[command(
        after_help = "Examples:\n  dtaas profiles\n  dtaas profiles use lab\n  dtaas profiles remove old"
    )]
    Profiles {
        #[command(subcommand)]
        command: Option<login::ProfilesCommand>,
    },
    /// Who the appliance takes you for.
    #[command(after_help = "Examples:\n  dtaas whoami\n  dtaas whoami --json")]
    Whoami,
    /// Print the URL and key as shell variables, for `eval "$(dtaas export)"`.
    #[command(
        after_help = "Examples:\n  eval \"$(dtaas export)\"\n  dtaas --profile lab export > lab.env"
    )]
    Export,
    /// Let the docker CLI push to and pull from the appliance's registry with your key.
    #[command(after_help = docker::EXAMPLES)]
    DockerConfigure(docker::DockerArgs),
    /// The servable types.
    #[command(after_help = "Examples:\n  dtaas types\n  dtaas types --json")]
    Types,
    /// List what you may read of a kind, every page of it.
    #[command(after_help = resources::LIST_EXAMPLES)]
    List(resources::ListArgs),
    /// Show an object's access list (MANAGE on it).
    #[command(after_help = "Examples:\n  dtaas access 0190b1f3c4d27a8e9b1c2d3e4f506172")]
    Access(access::AccessArgs),
    /// Grant capabilities on an object to a user, servable, trust or everyone.
    #[command(after_help = access::GRANT_EXAMPLES)]
    Grant(access::GrantArgs),
    /// Take capabilities on an object away from a principal.
    #[command(after_help = access::REVOKE_EXAMPLES)]
    Revoke(access::RevokeArgs),
    /// The delegation requests waiting for you (servables asking for capabilities); grant or
    /// refuse one.
    #[command(after_help = access::REQUESTS_EXAMPLES)]
    Requests(access::RequestsArgs),
    /// Servables: create one from a prototype, run, stop, restart, read its logs, delete it.
    #[command(after_help = servable::EXAMPLES)]
    Servable {
        #[command(subcommand)]
        command: servable::ServableCommand,
    },
    /// Images built on the appliance (the kabuto flow): build, rebuild, show, delete.
    #[command(after_help = images::EXAMPLES)]
    Image {
        #[command(subcommand)]
        command: images::ImageCommand,
    },
    /// Pipelines of jobs (the kabuto flow): create, show, delete.
    #[command(after_help = pipelines::PIPELINE_EXAMPLES)]
    Pipeline {
        #[command(subcommand)]
        command: pipelines::PipelineCommand,
    },
    /// Jobs: add to a pipeline, submit, show, follow the log, download the result, kill.
    #[command(after_help = pipelines::JOB_EXAMPLES)]
    Job {
        #[command(subcommand)]
        command: pipelines::JobCommand,
    },
    /// Build (when missing) and push a project's images, then register its manifest
    /// (MANIFEST or MANIFEST.json).
    #[command(after_help = upload::EXAMPLES)]
    Upload(upload::UploadArgs),
    /// Push an image of the local Docker engine to the appliance's registry (no docker CLI
    /// needed).
    #[command(after_help = push::EXAMPLES)]
    Push(push::PushArgs),
    /// Pull an image of the appliance's registry into the local Docker engine.
    #[command(after_help = pull::EXAMPLES)]
    Pull(pull::PullArgs),
    /// Search the registry's repositories you may pull, by name.
    #[command(after_help = repositories::SEARCH_EXAMPLES)]
    Search(repositories::SearchArgs),
    /// Share a repository of the registry with a user (READ lets them pull it).
    #[command(after_help = repositories::SHARE_EXAMPLES)]
    Share(repositories::ShareArgs),
    /// Print a completion script for your shell.
    #[command(
        after_help = "Examples:\n  dtaas completions bash > /etc/bash_completion.d/dtaas\n  dtaas completions zsh > \"${fpath[1]}/_dtaas\"\n  dtaas completions fish > ~/.config/fish/completions/dtaas.fish"
    )]
    Completions {
        /// bash, zsh or fish (also elvish, powershell).
        shell: clap_complete::Shell,
    },
}

/// What a command works with.
pub struct Ctx {
    pub out: Output,
    pub flags: Flags,
    pub env: Env,
    /// The profile file, when HOME or XDG_CONFIG_HOME says where it is.
    pub path: Result<PathBuf, String>,
    pub file: ProfileFile,
    pub target: Target,
}

impl Ctx {
    pub fn new(flags: &ClientFlags) -> Result<Ctx, String> {
        let env = Env::from_process();
        let path = profile::default_file_path();
        let file = match &path {
            Ok(p) => ProfileFile::load(p)?,
            Err(_) => ProfileFile::default(),
        };
        let flags = Flags {
            url: flags.url.clone(),
            profile: flags.profile.clone(),
            ca_cert: flags.ca_cert.clone(),
            insecure: flags.insecure,
        };
        let target = profile::resolve(&file, &env, &flags)?;
        Ok(Ctx {
            out: Output { json: false },
            flags,
            env,
            path,
            file,
            target,
        })
    }

    /// The appliance as the flags, environment and profile name it.
    pub fn api(&self) -> Result<Api, ClientError> {
        Api::new(&self.target)
    }

    /// Writes the profile file.
    pub fn save(&self) -> Result<(), String> {
        let path = self.path.as_ref().map_err(Clone::clone)?;
        self.file.save(path)
    }

    /// Where the profile file is, for sentences.
    pub fn path_text(&self) -> String {
        match &self.path {
            Ok(p) => p.display().to_string(),
            Err(_) => "the profile file".into(),
        }
    }
}

/// Runs a client command (but `completions`, which needs the whole tree: see `cli`).
pub async fn run(flags: ClientFlags, command: ClientCommand) -> Result<(), String> {
    let mut ctx = Ctx::new(&flags)?;
    ctx.out.json = flags.json;
    match command {
        ClientCommand::Login(args) => login::login(&mut ctx, args).await,
        ClientCommand::Logout => login::logout(&mut ctx).await,
        ClientCommand::Profiles { command } => login::profiles(&mut ctx, command).await,
        ClientCommand::Whoami => login::whoami(&ctx).await,
        ClientCommand::Export => login::export(&ctx),
        ClientCommand::DockerConfigure(args) => docker::configure(&ctx, args).await,
        ClientCommand::Types => resources::types(&ctx).await,
        ClientCommand::List(args) => resources::list(&ctx, args).await,
        ClientCommand::Access(args) => access::access(&ctx, args).await,
        ClientCommand::Grant(args) => access::grant(&ctx, args).await,
        ClientCommand::Revoke(args) => access::revoke(&ctx, args).await,
        ClientCommand::Requests(args) => access::requests(&ctx, args).await,
        ClientCommand::Servable { command } => servable::run(&ctx, command).await,
        ClientCommand::Image { command } => images::run(&ctx, command).await,
        ClientCommand::Pipeline { command } => pipelines::pipeline(&ctx, command).await,
        ClientCommand::Job { command } => pipelines::job(&ctx, command).await,
        ClientCommand::Search(args) => repositories::search(&ctx, args).await,
        ClientCommand::Share(args) => repositories::share(&ctx, args).await,
        ClientCommand::Upload(args) => upload::upload(&ctx, args).await,
        ClientCommand::Push(args) => push::push(&ctx, args).await,
        ClientCommand::Pull(args) => pull::pull(&ctx, args).await,
        ClientCommand::Completions { .. } => {
            Err("completions are printed by the command line itself".into())
        }
    }
}

/// Prints the completion script of `command` (the whole `dtaas` tree) for `shell`.
pub fn completions(shell: clap_complete::Shell, mut command: clap::Command) {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "dtaas", &mut script);
    output::say(String::from_utf8_lossy(&script).trim_end_matches('\n'));
}

/// Whether `text` is an object id (32 lowercase hex digits).
pub fn is_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A path segment from user input, percent-encoded.
pub fn segment(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_segments() {
        assert!(is_id("0190b1f3c4d27a8e9b1c2d3e4f506172"));
        assert!(!is_id("0190B1F3C4D27A8E9B1C2D3E4F506172"));
        assert!(!is_id("hello"));
        assert_eq!(segment("hello-pipeline:1"), "hello-pipeline:1");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }
}
