//! Server configuration, layered: built-in defaults < TOML file (`--config`, `DTAAS_CONFIG`) <
//! `DTAAS_*` environment variables < command-line flags. Unknown keys are errors that name the key.
//!
//! Every layer is merged into one `toml::Table` and deserialized once with `deny_unknown_fields`,
//! so a key means the same thing wherever it is set. An environment variable names a key by its
//! path in upper case joined with `_`: `log.level` is `DTAAS_LOG_LEVEL`, `data_dir` is
//! `DTAAS_DATA_DIR`.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the one HTTP listener (all faces).
    pub listen: SocketAddr,
    /// Where the database and blobs live.
    pub data_dir: PathBuf,
    /// Serve plain HTTP on a non-loopback address. Off by default: credentials would cross the
    /// network in clear text.
    pub allow_insecure_http: bool,
    /// `open`: anyone may register; `closed`: only admins create users. An admin's
    /// `dtaas admin set-registration` is stored in the database and wins over this.
    pub registration: RegistrationMode,
    pub log: LogConfig,
    pub docker: DockerConfig,
    pub sessions: SessionConfig,
    pub login_limit: LoginLimitConfig,
    pub jobs: JobsConfig,
    pub images: ImagesConfig,
    pub limits: LimitsConfig,
    pub registry: RegistryConfig,
    pub servables: ServablesConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServablesConfig {
    /// The Docker network servables share (created when missing). Empty: one per installation,
    /// `dtaas-<installation id>`.
    pub network: String,
    /// HTTP-type servables answer at `<servable id>.<apps_domain>`. `localhost` works out of the
    /// box: browsers and curl resolve `*.localhost` to the loopback address.
    pub apps_domain: String,
    /// The appliance's URL as containers see it (`DTAAS_URL`). Empty: the server also listens on
    /// the servable network's gateway address, on the main listener's port when free.
    pub api_url: String,
    /// The longest wait between restarts of a failing daemon or app (doubling from 1 s).
    pub restart_backoff_max_secs: u64,
    /// How often daemon volumes are measured against their `volume_size`.
    pub volume_check_secs: u64,
    /// Seconds a stopping container gets between SIGTERM and SIGKILL.
    pub stop_timeout_secs: u32,
    /// Log lines kept per instance.
    pub max_log_lines: u64,
}

impl Default for ServablesConfig {
    fn default() -> Self {
        ServablesConfig {
            network: String::new(),
            apps_domain: "localhost".into(),
            api_url: String::new(),
            restart_backoff_max_secs: 60,
            volume_check_secs: 30,
            stop_timeout_secs: 10,
            max_log_lines: 100_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// How often unreferenced blobs and stale uploads are collected.
    pub gc_interval_secs: u64,
    /// Blobs younger than this are never collected (a push in progress uploads its blobs
    /// before its manifest).
    pub gc_grace_secs: u64,
    /// Upload sessions unfinished for this long are dropped.
    pub upload_ttl_secs: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            gc_interval_secs: 3600,
            gc_grace_secs: 3600,
            upload_ttl_secs: 24 * 3600,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Pipelines running side by side (each runs its jobs one after another).
    pub max_parallel: u32,
    /// CPU limit of a job's container, in cores.
    pub cpus: f64,
    /// Memory limit of a job's container, in MiB.
    pub memory_mb: u64,
    /// Process limit of a job's container.
    pub pids: i64,
    /// Log lines kept per job run; past this a marker line says the rest was dropped.
    pub max_log_lines: u64,
    /// Docker network of job containers: `bridge` (default) or `none`.
    pub network: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ImagesConfig {
    /// Image builds running at once.
    pub max_parallel_builds: u32,
    /// Allow `repo_url` to name a repository on the server's own file system (a path or
    /// `file://`). Off by default: it would let users build from any repository the server
    /// can read.
    pub allow_local_repos: bool,
    /// How long cloning a repository may take.
    pub clone_timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request body with attachments or a build context, in MiB (413 beyond).
    pub max_upload_mb: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            max_parallel: std::thread::available_parallelism()
                .map(|n| u32::try_from(n.get()).unwrap_or(1))
                .unwrap_or(1),
            cpus: 1.0,
            memory_mb: 1024,
            pids: 1024,
            max_log_lines: 1_000_000,
            network: "bridge".into(),
        }
    }
}

impl Default for ImagesConfig {
    fn default() -> Self {
        ImagesConfig {
            max_parallel_builds: 2,
            allow_local_repos: false,
            clone_timeout_secs: 600,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_upload_mb: 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationMode {
    Open,
    Closed,
}

impl std::str::FromStr for RegistrationMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "open" => Ok(RegistrationMode::Open),
            "closed" => Ok(RegistrationMode::Closed),
            other => Err(format!(
                "unknown registration mode {other:?} (expected open or closed)"
            )),
        }
    }
}

impl RegistrationMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationMode::Open => "open",
            RegistrationMode::Closed => "closed",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, `dtaas=debug,tower=warn`, ...
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DockerConfig {
    /// `unix:///path/to/docker.sock` or `tcp://host:port`. Defaults to `DOCKER_HOST`, else the
    /// local socket.
    pub host: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// A session unused for this long ends.
    pub idle_timeout_secs: u64,
    /// A session ends this long after login, used or not.
    pub lifetime_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LoginLimitConfig {
    /// Failed logins allowed per login name within `window_secs`.
    pub per_login: u32,
    /// Failed logins allowed per client address within `window_secs`.
    pub per_address: u32,
    pub window_secs: u64,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:5000";

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 5000)),
            data_dir: PathBuf::from("./dtaas-data"),
            allow_insecure_http: false,
            registration: RegistrationMode::Open,
            log: LogConfig::default(),
            docker: DockerConfig::default(),
            sessions: SessionConfig::default(),
            login_limit: LoginLimitConfig::default(),
            jobs: JobsConfig::default(),
            images: ImagesConfig::default(),
            limits: LimitsConfig::default(),
            registry: RegistryConfig::default(),
            servables: ServablesConfig::default(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

impl Default for DockerConfig {
    fn default() -> Self {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
        DockerConfig { host }
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            idle_timeout_secs: 24 * 3600,
            lifetime_secs: 14 * 24 * 3600,
        }
    }
}

impl Default for LoginLimitConfig {
    fn default() -> Self {
        LoginLimitConfig {
            per_login: 5,
            per_address: 20,
            window_secs: 300,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// Environment variables the command-line client reads; `dtaas serve` ignores them.
pub const CLIENT_ENV_VARS: &[&str] = &[
    "DTAAS_CONFIG",
    "DTAAS_PROFILE",
    "DTAAS_URL",
    "DTAAS_API_KEY",
    "DTAAS_LOGIN",
    "DTAAS_PASSWORD",
    "DTAAS_INSECURE",
    "DTAAS_CLIENT_CONFIG",
];

/// One override of a key by dotted path, as a command-line flag gives it.
pub type Override = (&'static str, toml::Value);

impl Config {
    /// Builds the configuration from all layers. `env` is passed in (not read here) so that tests
    /// and the admin CLI can control it.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: Vec<Override>,
    ) -> Result<Config, ConfigError> {
        let defaults = toml::Table::try_from(Config::default())
            .map_err(|e| ConfigError::Invalid(format!("default config: {e}")))?;
        let mut merged = defaults.clone();

        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            let table: toml::Table =
                text.parse()
                    .map_err(|e: toml::de::Error| ConfigError::File {
                        path: path.to_owned(),
                        message: e.to_string(),
                    })?;
            // Check the file alone first so that its errors name the file.
            Config::from_table(table.clone()).map_err(|message| ConfigError::File {
                path: path.to_owned(),
                message,
            })?;
            merge(&mut merged, table);
        }

        let keys = leaf_paths(&defaults);
        let mut env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("DTAAS_") && !CLIENT_ENV_VARS.contains(&k.as_str()))
            .collect();
        env.sort();
        for (var, raw) in env {
            let Some((path, default)) = keys
                .iter()
                .find(|(path, _)| env_name(path) == var)
                .map(|(p, d)| (p.clone(), d.clone()))
            else {
                return Err(ConfigError::Env {
                    var,
                    message: "unknown setting (see `dtaas serve --help` and README.md)".into(),
                });
            };
            let value = typed_value(&raw, &default).map_err(|message| ConfigError::Env {
                var: var.clone(),
                message,
            })?;
            set_path(&mut merged, &path, value);
        }

        for (path, value) in flags {
            set_path(&mut merged, path, value);
        }

        let config = Config::from_table(merged).map_err(ConfigError::Invalid)?;
        config.validate()?;
        Ok(config)
    }

    fn from_table(table: toml::Table) -> Result<Config, String> {
        Config::deserialize(table).map_err(|e| e.to_string().trim().to_owned())
    }

    /// Checks that go beyond types.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.listen.ip().is_loopback() && !self.allow_insecure_http {
            return Err(ConfigError::Invalid(format!(
                "refusing to serve plain HTTP on the non-loopback address {}: passwords and \
                 session cookies would cross the network in clear text. Listen on 127.0.0.1, or \
                 set allow_insecure_http = true (DTAAS_ALLOW_INSECURE_HTTP=true) if a TLS proxy \
                 fronts this server",
                self.listen
            )));
        }
        if self.sessions.idle_timeout_secs == 0 || self.sessions.lifetime_secs == 0 {
            return Err(ConfigError::Invalid(
                "sessions.idle_timeout_secs and sessions.lifetime_secs must be positive".into(),
            ));
        }
        if self.login_limit.window_secs == 0 || self.login_limit.per_login == 0 {
            return Err(ConfigError::Invalid(
                "login_limit.window_secs and login_limit.per_login must be positive".into(),
            ));
        }
        if self
            .log
            .level
            .parse::<tracing_subscriber::EnvFilter>()
            .is_err()
        {
            return Err(ConfigError::Invalid(format!(
                "log.level {:?} is not a valid filter (try info, debug, or dtaas=debug)",
                self.log.level
            )));
        }
        if !(self.docker.host.starts_with("unix://")
            || self.docker.host.starts_with("tcp://")
            || self.docker.host.starts_with("http://"))
        {
            return Err(ConfigError::Invalid(format!(
                "docker.host {:?} must start with unix://, tcp:// or http://",
                self.docker.host
            )));
        }
        Ok(())
    }

    /// The configuration as TOML, for `dtaas serve --print-config`.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

/// `log.level` -> `DTAAS_LOG_LEVEL`.
pub fn env_name(path: &str) -> String {
    format!("DTAAS_{}", path.replace('.', "_").to_ascii_uppercase())
}

fn leaf_paths(table: &toml::Table) -> Vec<(String, toml::Value)> {
    let mut out = Vec::new();
    for (k, v) in table {
        match v {
            toml::Value::Table(t) => {
                for (sub, leaf) in leaf_paths(t) {
                    out.push((format!("{k}.{sub}"), leaf));
                }
            }
            other => out.push((k.clone(), other.clone())),
        }
    }
    out
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

fn set_path(table: &mut toml::Table, path: &str, value: toml::Value) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut cur = table;
    for p in parts {
        let entry = cur
            .entry(p.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(t) = entry else { return };
        cur = t;
    }
    cur.insert(last.to_owned(), value);
}

/// Interprets an environment variable's text with the type of the key's default.
fn typed_value(raw: &str, default: &toml::Value) -> Result<toml::Value, String> {
    match default {
        toml::Value::Boolean(_) => match raw.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(toml::Value::Boolean(true)),
            "0" | "false" | "no" | "off" => Ok(toml::Value::Boolean(false)),
            _ => Err(format!("expected true or false, got {raw:?}")),
        },
        toml::Value::Integer(_) => raw
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| format!("expected a whole number, got {raw:?}")),
        toml::Value::Float(_) => raw
            .trim()
            .parse::<f64>()
            .map(toml::Value::Float)
            .map_err(|_| format!("expected a number, got {raw:?}")),
        _ => Ok(toml::Value::String(raw.to_owned())),
    }
}
