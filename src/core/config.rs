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
    /// Where people and apps reach the appliance (`https://dtaas.example.org`), when that is
    /// not the listener's own address (behind a proxy, or listening on every address): the
    /// OpenID Connect issuer. Empty: the listener's scheme, host and port.
    pub public_url: String,
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
    pub containers: ContainersConfig,
    pub logs: LogsConfig,
    pub registration_limit: RegistrationLimitConfig,
    pub store: StoreConfig,
    pub tls: TlsConfig,
}

/// When the main listener speaks TLS.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS on a non-loopback listener, plain HTTP on loopback.
    Auto,
    /// Always TLS.
    On,
    /// Never (a non-loopback listener then needs `allow_insecure_http`).
    Off,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub mode: TlsMode,
    /// The certificate chain (PEM), leaf first; empty: one is generated in the data directory,
    /// signed by a certificate authority generated there too (`<data>/tls/ca.crt`).
    pub cert: String,
    /// The certificate's private key (PEM); set together with `cert`.
    pub key: String,
    /// Names a generated certificate holds besides the host name, `localhost`, the listener's
    /// address and `*.<servables.apps_domain>`.
    pub hostnames: Vec<String>,
    /// An address for a plain-HTTP listener that only redirects to HTTPS; empty: none.
    pub redirect_listen: String,
    /// `Strict-Transport-Security` max-age on TLS answers; 0: no header.
    pub hsts_max_age_secs: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            mode: TlsMode::Auto,
            cert: String::new(),
            key: String::new(),
            hostnames: Vec::new(),
            redirect_listen: String::new(),
            hsts_max_age_secs: 365 * 24 * 3600,
        }
    }
}

impl Config {
    /// Whether the main listener speaks TLS.
    pub fn tls_enabled(&self) -> bool {
        match self.tls.mode {
            TlsMode::On => true,
            TlsMode::Off => false,
            TlsMode::Auto => !self.listen.ip().is_loopback() || !self.tls.cert.is_empty(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Memory the database may keep of its file for reads, in MiB (at least 1). More makes
    /// repeated reads of a large store cheaper; the process's memory grows by up to this much.
    pub cache_mb: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            cache_mb: crate::core::store::DEFAULT_CACHE_MB,
        }
    }
}

/// What every job and servable container gets, whatever its image asks for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ContainersConfig {
    /// The Linux capabilities job and servable containers keep; every other one is dropped
    /// (`cap_drop: ALL`). The default keeps what ordinary images need to run as root and to
    /// drop to another user: no raw sockets, no device nodes, no file capabilities.
    pub capabilities: Vec<String>,
}

impl Default for ContainersConfig {
    fn default() -> Self {
        ContainersConfig {
            capabilities: [
                "CHOWN",
                "DAC_OVERRIDE",
                "FOWNER",
                "SETUID",
                "SETGID",
                "KILL",
                "NET_BIND_SERVICE",
            ]
            .map(str::to_owned)
            .to_vec(),
        }
    }
}

/// Bounds on what container output the appliance keeps.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// A longer line is cut here (at a character boundary) and marked as cut.
    pub max_line_bytes: u64,
    /// Bytes of output kept per job run or instance; past this a marker line says the rest was
    /// dropped (alongside the line caps `jobs.max_log_lines`, `servables.max_log_lines`).
    pub max_bytes_per_run: u64,
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            max_line_bytes: 8 * 1024,
            max_bytes_per_run: 256 * 1024 * 1024,
        }
    }
}

/// Registrations allowed per client address (each costs an argon2 hash).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrationLimitConfig {
    /// Registrations allowed per client address within `window_secs`.
    pub per_address: u32,
    pub window_secs: u64,
}

impl Default for RegistrationLimitConfig {
    fn default() -> Self {
        RegistrationLimitConfig {
            per_address: 10,
            window_secs: 3600,
        }
    }
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
    /// Each servable gets a network of its own, carved from this pool; containers that may
    /// reach it (READ or REQUEST on it) join it.
    pub subnet_pool: String,
    /// The prefix length of each servable's network within `subnet_pool`.
    pub subnet_prefix: u8,
    /// CPU limit, in cores, of a servable that asks for 0 (no limit of its own).
    pub default_cpus: f64,
    /// Memory limit, in MiB, of a servable that asks for 0.
    pub default_memory_mb: u64,
    /// Process limit of every servable container.
    pub pids: i64,
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
            subnet_pool: "10.213.0.0/16".into(),
            subnet_prefix: 28,
            default_cpus: 1.0,
            default_memory_mb: 512,
            pids: 1024,
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
    /// Bytes of blobs a user's repositories may hold, in MiB (uploads beyond it are DENIED);
    /// 0: no quota.
    pub quota_mb: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            gc_interval_secs: 3600,
            gc_grace_secs: 3600,
            upload_ttl_secs: 24 * 3600,
            quota_mb: 10 * 1024,
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
    /// Docker network of job containers: `none` (default: a job reaches nothing, neither
    /// servables nor the appliance), or `bridge` to let jobs reach the outside.
    pub network: String,
    /// The largest result (the outbox's files, uncompressed), in MiB; a job whose outbox holds
    /// more fails with a message saying so.
    pub max_result_mb: u64,
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
    /// Docker network of a build's `RUN` steps: `none` (default: no network), or `bridge`.
    pub build_network: String,
    /// Networks (CIDRs) that builds may reach although they are loopback, link-local, private
    /// or the host's own addresses (refused by default, e.g. `["10.1.2.3/32"]` for a git server
    /// inside the organisation).
    pub allowed_networks: Vec<String>,
    /// Memory limit of a build, in MiB.
    pub build_memory_mb: u64,
    /// CPU limit of a build, in cores.
    pub build_cpus: f64,
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
            network: "none".into(),
            max_result_mb: 1024,
        }
    }
}

impl Default for ImagesConfig {
    fn default() -> Self {
        ImagesConfig {
            max_parallel_builds: 2,
            allow_local_repos: false,
            clone_timeout_secs: 600,
            build_network: "none".into(),
            allowed_networks: Vec::new(),
            build_memory_mb: 2048,
            build_cpus: 1.0,
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
            public_url: String::new(),
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
            containers: ContainersConfig::default(),
            logs: LogsConfig::default(),
            registration_limit: RegistrationLimitConfig::default(),
            store: StoreConfig::default(),
            tls: TlsConfig::default(),
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
    "DTAAS_CA_CERT",
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
        if !self.listen.ip().is_loopback() && !self.tls_enabled() && !self.allow_insecure_http {
            return Err(ConfigError::Invalid(format!(
                "refusing to serve plain HTTP on the non-loopback address {}: passwords and \
                 session cookies would cross the network in clear text. Leave tls.mode at auto \
                 (or on), listen on 127.0.0.1, or set allow_insecure_http = true \
                 (DTAAS_ALLOW_INSECURE_HTTP=true) if a TLS proxy fronts this server",
                self.listen
            )));
        }
        if !self.public_url.is_empty() && !is_origin_url(&self.public_url) {
            return Err(ConfigError::Invalid(format!(
                "public_url {:?}: give the scheme, host and port people reach the appliance at, \
                 e.g. https://dtaas.example.org (http or https, no path, query or fragment)",
                self.public_url
            )));
        }
        if self.tls.cert.is_empty() != self.tls.key.is_empty() {
            return Err(ConfigError::Invalid(
                "tls.cert and tls.key go together: set both (PEM files) or neither (a certificate \
                 is then generated in the data directory)"
                    .into(),
            ));
        }
        if !self.tls.redirect_listen.is_empty() {
            if !self.tls_enabled() {
                return Err(ConfigError::Invalid(
                    "tls.redirect_listen redirects to HTTPS, but TLS is off on the main listener"
                        .into(),
                ));
            }
            if self.tls.redirect_listen.parse::<SocketAddr>().is_err() {
                return Err(ConfigError::Invalid(format!(
                    "tls.redirect_listen {:?} is not an address:port",
                    self.tls.redirect_listen
                )));
            }
        }
        if !(1..=65536).contains(&self.store.cache_mb) {
            return Err(ConfigError::Invalid(format!(
                "store.cache_mb must be from 1 to 65536 (MiB), not {}",
                self.store.cache_mb
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
        for cidr in &self.images.allowed_networks {
            if parse_cidr(cidr).is_none() {
                return Err(ConfigError::Invalid(format!(
                    "images.allowed_networks: {cidr:?} is not a network (e.g. 10.1.2.0/24)"
                )));
            }
        }
        match parse_cidr(&self.servables.subnet_pool) {
            Some((std::net::IpAddr::V4(_), pool))
                if pool <= self.servables.subnet_prefix && self.servables.subnet_prefix <= 29 => {}
            _ => {
                return Err(ConfigError::Invalid(format!(
                    "servables.subnet_pool {:?} must be an IPv4 network holding networks of \
                     servables.subnet_prefix /{} (at most /29)",
                    self.servables.subnet_pool, self.servables.subnet_prefix
                )));
            }
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

/// `10.0.0.0/8` -> (address, prefix length); a bare address is a /32 (or /128).
pub fn parse_cidr(text: &str) -> Option<(std::net::IpAddr, u8)> {
    let (addr, prefix) = match text.trim().split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text.trim(), None),
    };
    let addr: std::net::IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
        None => max,
    };
    Some((addr, prefix))
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
        // A list of strings: comma-separated (empty: no items).
        toml::Value::Array(_) => Ok(toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| toml::Value::String(item.to_owned()))
                .collect(),
        )),
        _ => Ok(toml::Value::String(raw.to_owned())),
    }
}

/// The origin of a listener at `addr` (`https` when it speaks TLS): scheme, host and port, the
/// port left out when it is the scheme's own, `localhost` for a listener on every address.
pub fn listener_origin(tls: bool, addr: std::net::SocketAddr) -> String {
    let (scheme, default_port) = if tls { ("https", 443) } else { ("http", 80) };
    let port = match addr.port() {
        p if p == default_port => String::new(),
        p => format!(":{p}"),
    };
    let host = match addr.ip() {
        ip if ip.is_unspecified() => "localhost".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("{scheme}://{host}{port}")
}

/// Whether `url` is an origin: `http://` or `https://`, a host (letters, digits, `.`, `-`, or
/// a bracketed IPv6 address), an optional port, at most a trailing `/`.
fn is_origin_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return false;
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && (!h.starts_with('[') || h.ends_with(']')) => {
            (h, Some(p))
        }
        _ => (rest, None),
    };
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_url_is_an_origin() {
        for good in [
            "https://dtaas.example.org",
            "https://dtaas.example.org/",
            "http://127.0.0.1:5000",
            "https://[::1]:8443",
        ] {
            assert!(is_origin_url(good), "{good}");
        }
        for bad in [
            "dtaas.example.org",
            "ftp://dtaas.example.org",
            "https://",
            "https://dtaas.example.org/path",
            "https://dtaas.example.org?x=1",
            "https://a b",
            "https://host:0",
            "https://host:99999",
            "https://[::1",
        ] {
            assert!(!is_origin_url(bad), "{bad}");
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A config file in its own temporary directory (kept alive by the returned guard).
    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dtaas.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn load_env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::load(None, env(pairs), vec![])
    }

    #[test]
    fn defaults_are_the_embedded_appliance() {
        let c = load_env(&[]).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.data_dir, PathBuf::from("./dtaas-data"));
        assert_eq!(c.registration, RegistrationMode::Open);
        assert!(!c.allow_insecure_http);
        assert_eq!(c.log.level, "info");
        assert_eq!(c.log.format, LogFormat::Text);
        assert_eq!(c, Config::default());
    }

    #[test]
    fn layers_apply_in_order() {
        let (_dir, path) = file(
            "listen = \"127.0.0.1:6000\"\ndata_dir = \"/from/file\"\n[log]\nlevel = \"debug\"\n",
        );
        let c = Config::load(
            Some(&path),
            env(&[
                ("DTAAS_DATA_DIR", "/from/env"),
                ("DTAAS_LOGIN_LIMIT_PER_LOGIN", "9"),
            ]),
            vec![("log.level", toml::Value::String("warn".into()))],
        )
        .unwrap();
        assert_eq!(c.listen.port(), 6000, "file beats default");
        assert_eq!(c.data_dir, PathBuf::from("/from/env"), "env beats file");
        assert_eq!(c.log.level, "warn", "flag beats file");
        assert_eq!(c.login_limit.per_login, 9, "env beats default");
        assert_eq!(
            c.login_limit.per_address,
            LoginLimitConfig::default().per_address,
            "a section set in part keeps its other defaults"
        );
    }

    #[test]
    fn flags_beat_the_environment() {
        let c = Config::load(
            None,
            env(&[("DTAAS_DATA_DIR", "/from/env"), ("DTAAS_JOBS_CPUS", "3")]),
            vec![
                ("data_dir", toml::Value::String("/from/flag".into())),
                ("registration", toml::Value::String("closed".into())),
            ],
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(c.registration, RegistrationMode::Closed);
        assert_eq!(c.jobs.cpus, 3.0, "what no flag sets keeps the env's value");
    }

    #[test]
    fn a_file_section_set_in_part_keeps_the_other_defaults() {
        let (_dir, path) = file("[log]\nformat = \"json\"\n[jobs]\nmemory_mb = 64\n");
        let c = Config::load(Some(&path), env(&[]), vec![]).unwrap();
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.log.level, "info");
        assert_eq!(c.jobs.memory_mb, 64);
        assert_eq!(c.jobs.network, "none");
        assert_eq!(c.jobs.pids, JobsConfig::default().pids);
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors_that_name_the_key_and_the_file() {
        let (_dir, path) = file("[log]\nlevle = \"debug\"\n");
        let err = Config::load(Some(&path), env(&[]), vec![]).unwrap_err();
        assert!(
            matches!(&err, ConfigError::File { path: p, .. } if *p == path),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("levle") && text.contains("dtaas.toml"),
            "{text}"
        );

        std::fs::write(&path, "colour = \"blue\"\n").unwrap();
        let err = Config::load(Some(&path), env(&[]), vec![])
            .unwrap_err()
            .to_string();
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn unknown_environment_variables_are_errors_that_name_the_variable() {
        for var in ["DTAAS_LISTEN_PORT", "DTAAS_LOG", "DTAAS_JOBS_MEMORY"] {
            let err = load_env(&[(var, "1")]).unwrap_err();
            assert!(
                matches!(&err, ConfigError::Env { var: v, .. } if v == var),
                "{var}: {err:?}"
            );
            assert!(err.to_string().contains(var), "{err}");
        }
    }

    #[test]
    fn other_variables_and_the_clients_are_ignored() {
        let c = load_env(&[
            ("PATH", "/bin"),
            ("DOCKER", "x"),
            ("DTAASX", "x"),
            ("DTAAS_PROFILE", "x"),
            ("DTAAS_URL", "http://h"),
            ("DTAAS_CONFIG", "/nowhere.toml"),
            ("DTAAS_API_KEY", "k"),
            ("DTAAS_CA_CERT", "/x/ca.crt"),
            ("DTAAS_INSECURE", "1"),
        ])
        .unwrap();
        assert_eq!(c, load_env(&[]).unwrap());
    }

    #[test]
    fn environment_names_are_the_key_path_in_upper_case() {
        assert_eq!(env_name("log.level"), "DTAAS_LOG_LEVEL");
        assert_eq!(env_name("data_dir"), "DTAAS_DATA_DIR");
        assert_eq!(
            env_name("servables.max_log_lines"),
            "DTAAS_SERVABLES_MAX_LOG_LINES"
        );
    }

    #[test]
    fn nested_keys_of_every_type_are_set_from_the_environment() {
        let c = load_env(&[
            ("DTAAS_LOG_LEVEL", "debug"),
            ("DTAAS_LOG_FORMAT", "json"),
            ("DTAAS_REGISTRATION", "closed"),
            ("DTAAS_JOBS_CPUS", "2.5"),
            ("DTAAS_JOBS_PIDS", " 77 "),
            ("DTAAS_SERVABLES_MAX_LOG_LINES", "5"),
            ("DTAAS_IMAGES_ALLOW_LOCAL_REPOS", "yes"),
            ("DTAAS_REGISTRY_GC_GRACE_SECS", "7"),
            ("DTAAS_DOCKER_HOST", "tcp://docker:2375"),
        ])
        .unwrap();
        assert_eq!(c.log.level, "debug");
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.registration, RegistrationMode::Closed);
        assert_eq!(c.jobs.cpus, 2.5);
        assert_eq!(c.jobs.pids, 77);
        assert_eq!(c.servables.max_log_lines, 5);
        assert!(c.images.allow_local_repos);
        assert_eq!(c.registry.gc_grace_secs, 7);
        assert_eq!(c.docker.host, "tcp://docker:2375");
    }

    #[test]
    fn booleans_from_the_environment_take_the_usual_spellings() {
        for (raw, want) in [
            ("1", true),
            ("true", true),
            ("TRUE", true),
            ("yes", true),
            ("on", true),
            ("0", false),
            ("false", false),
            ("No", false),
            ("off", false),
        ] {
            let c = load_env(&[("DTAAS_IMAGES_ALLOW_LOCAL_REPOS", raw)]).unwrap();
            assert_eq!(c.images.allow_local_repos, want, "{raw}");
        }
    }

    /// Every key can be set from the environment, under a name no other key shares.
    #[test]
    fn every_key_has_its_own_environment_variable() {
        let defaults = toml::Table::try_from(Config::default()).unwrap();
        let keys = leaf_paths(&defaults);
        assert!(keys.len() > 30, "{keys:?}");
        let mut names: Vec<String> = keys.iter().map(|(k, _)| env_name(k)).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), keys.len(), "two keys share a variable");

        let vars: Vec<(String, String)> = keys
            .iter()
            .map(|(k, v)| {
                let raw = match v {
                    toml::Value::String(s) => s.clone(),
                    // Lists are comma-separated in the environment.
                    toml::Value::Array(items) => items
                        .iter()
                        .filter_map(|i| i.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                    other => other.to_string(),
                };
                (env_name(k), raw)
            })
            .collect();
        assert_eq!(Config::load(None, vars, vec![]).unwrap(), Config::default());
    }

    #[test]
    fn lists_are_comma_separated_in_the_environment_and_networks_are_checked() {
        let c = Config::load(
            None,
            env(&[("DTAAS_IMAGES_ALLOWED_NETWORKS", "10.1.2.0/24, 192.0.2.7")]),
            vec![],
        )
        .unwrap();
        assert_eq!(c.images.allowed_networks, ["10.1.2.0/24", "192.0.2.7"]);
        let err = Config::load(
            None,
            env(&[("DTAAS_IMAGES_ALLOWED_NETWORKS", "10.1.2.0/33")]),
            vec![],
        )
        .unwrap_err();
        assert!(err.to_string().contains("10.1.2.0/33"), "{err}");
        let err = Config::load(
            None,
            env(&[("DTAAS_SERVABLES_SUBNET_PREFIX", "30")]),
            vec![],
        )
        .unwrap_err();
        assert!(err.to_string().contains("subnet_pool"), "{err}");
        assert_eq!(
            parse_cidr("10.0.0.0/8"),
            Some(("10.0.0.0".parse().unwrap(), 8))
        );
        assert_eq!(parse_cidr("::1"), Some(("::1".parse().unwrap(), 128)));
        assert_eq!(parse_cidr("nope/8"), None);
    }

    #[test]
    fn type_errors_name_the_key() {
        // Typed by the key's default: the variable is named.
        for (var, raw, expected) in [
            ("DTAAS_ALLOW_INSECURE_HTTP", "maybe", "true or false"),
            ("DTAAS_JOBS_MEMORY_MB", "lots", "whole number"),
            ("DTAAS_JOBS_CPUS", "fast", "a number"),
        ] {
            let err = load_env(&[(var, raw)]).unwrap_err();
            assert!(
                matches!(&err, ConfigError::Env { var: v, .. } if v == var),
                "{var}: {err:?}"
            );
            let text = err.to_string();
            assert!(text.contains(var) && text.contains(expected), "{text}");
        }
        // Strings the configuration's own types refuse: the key is named.
        for (var, raw, key) in [
            ("DTAAS_LISTEN", "garbage", "`listen`"),
            ("DTAAS_REGISTRATION", "sometimes", "`registration`"),
            ("DTAAS_LOG_FORMAT", "xml", "`log.format`"),
        ] {
            let err = load_env(&[(var, raw)]).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid(_)), "{err:?}");
            assert!(err.to_string().contains(key), "{err}");
        }
        // In the file: the key and the file.
        let (_dir, path) = file("[jobs]\nmemory_mb = \"lots\"\n");
        let err = Config::load(Some(&path), env(&[]), vec![]).unwrap_err();
        assert!(matches!(err, ConfigError::File { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("jobs.memory_mb") && text.contains("dtaas.toml"),
            "{text}"
        );
        // From a flag.
        let err = Config::load(
            None,
            env(&[]),
            vec![("jobs.memory_mb", toml::Value::String("x".into()))],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("jobs.memory_mb"), "{err}");
    }

    #[test]
    fn an_unreadable_or_malformed_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.toml");
        let err = Config::load(Some(&missing), env(&[]), vec![]).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Read { path, .. } if *path == missing),
            "{err:?}"
        );
        assert!(err.to_string().contains("missing.toml"), "{err}");

        let (_dir, path) = file("listen = \n");
        let err = Config::load(Some(&path), env(&[]), vec![]).unwrap_err();
        assert!(matches!(err, ConfigError::File { .. }), "{err:?}");
        assert!(err.to_string().contains("dtaas.toml"), "{err}");
    }

    #[test]
    fn non_loopback_listeners_get_tls_and_plain_http_there_is_refused_unless_allowed() {
        for addr in ["0.0.0.0:5000", "192.0.2.1:80", "[::]:5000"] {
            // tls.mode auto: TLS off loopback.
            let c = load_env(&[("DTAAS_LISTEN", addr)]).unwrap();
            assert!(c.tls_enabled(), "{addr}");
            let err = load_env(&[("DTAAS_LISTEN", addr), ("DTAAS_TLS_MODE", "off")]).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid(_)), "{err:?}");
            let text = err.to_string();
            assert!(text.contains("refusing") && text.contains(addr), "{text}");
            let c = load_env(&[
                ("DTAAS_LISTEN", addr),
                ("DTAAS_TLS_MODE", "off"),
                ("DTAAS_ALLOW_INSECURE_HTTP", "true"),
            ])
            .unwrap();
            assert!(c.allow_insecure_http && !c.tls_enabled());
            assert_eq!(c.listen.to_string(), addr);
        }
        for addr in ["127.0.0.1:80", "127.1.2.3:5000", "[::1]:5000"] {
            let c = load_env(&[("DTAAS_LISTEN", addr)]).unwrap();
            assert!(!c.allow_insecure_http && !c.tls_enabled(), "{addr}");
            let c = load_env(&[("DTAAS_LISTEN", addr), ("DTAAS_TLS_MODE", "on")]).unwrap();
            assert!(c.tls_enabled(), "{addr}");
        }
        // The same from the file.
        let (_dir, path) = file("listen = \"0.0.0.0:5000\"\n[tls]\nmode = \"off\"\n");
        assert!(Config::load(Some(&path), env(&[]), vec![]).is_err());
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:5000\"\nallow_insecure_http = true\n[tls]\nmode = \"off\"\n",
        )
        .unwrap();
        assert!(Config::load(Some(&path), env(&[]), vec![]).is_ok());
    }

    #[test]
    fn tls_settings_are_checked() {
        let err = load_env(&[("DTAAS_TLS_CERT", "/etc/x.pem")]).unwrap_err();
        assert!(err.to_string().contains("tls.cert and tls.key"), "{err}");
        let err = load_env(&[("DTAAS_TLS_REDIRECT_LISTEN", "127.0.0.1:8080")]).unwrap_err();
        assert!(err.to_string().contains("TLS is off"), "{err}");
        let err = load_env(&[
            ("DTAAS_TLS_MODE", "on"),
            ("DTAAS_TLS_REDIRECT_LISTEN", "nowhere"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("tls.redirect_listen"), "{err}");
        let err = load_env(&[("DTAAS_TLS_MODE", "sometimes")]).unwrap_err();
        assert!(err.to_string().contains("sometimes"), "{err}");
        // A certificate given on loopback turns TLS on (mode auto).
        let c = load_env(&[("DTAAS_TLS_CERT", "/c.pem"), ("DTAAS_TLS_KEY", "/k.pem")]).unwrap();
        assert!(c.tls_enabled());
    }

    #[test]
    fn values_beyond_types_are_checked() {
        for (var, raw, named) in [
            (
                "DTAAS_SESSIONS_IDLE_TIMEOUT_SECS",
                "0",
                "sessions.idle_timeout_secs",
            ),
            (
                "DTAAS_SESSIONS_LIFETIME_SECS",
                "0",
                "sessions.lifetime_secs",
            ),
            (
                "DTAAS_LOGIN_LIMIT_WINDOW_SECS",
                "0",
                "login_limit.window_secs",
            ),
            ("DTAAS_LOGIN_LIMIT_PER_LOGIN", "0", "login_limit.per_login"),
            ("DTAAS_LOG_LEVEL", "dtaas=loud", "log.level"),
            ("DTAAS_DOCKER_HOST", "/var/run/docker.sock", "docker.host"),
        ] {
            let err = load_env(&[(var, raw)]).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid(_)), "{err:?}");
            assert!(err.to_string().contains(named), "{err}");
        }
        for host in ["unix:///x.sock", "tcp://h:2375", "http://h:2375"] {
            assert_eq!(
                load_env(&[("DTAAS_DOCKER_HOST", host)])
                    .unwrap()
                    .docker
                    .host,
                host
            );
        }
    }

    #[test]
    fn the_printed_config_round_trips() {
        let c = Config::load(
            None,
            env(&[
                ("DTAAS_DATA_DIR", "/srv/dtaas"),
                ("DTAAS_JOBS_CPUS", "0.5"),
                ("DTAAS_LOG_FORMAT", "json"),
                ("DTAAS_SERVABLES_API_URL", "http://10.0.0.1:5000"),
                ("DTAAS_LISTEN", "0.0.0.0:8080"),
                ("DTAAS_ALLOW_INSECURE_HTTP", "true"),
            ]),
            vec![("registration", toml::Value::String("closed".into()))],
        )
        .unwrap();
        assert_ne!(c, Config::default());
        let text = c.to_toml();
        let parsed: Config = toml::from_str(&text).unwrap();
        assert_eq!(parsed, c, "{text}");

        // And as a config file: the effective configuration, exactly.
        let (_dir, path) = file(&text);
        assert_eq!(Config::load(Some(&path), env(&[]), vec![]).unwrap(), c);
    }

    #[test]
    fn registration_modes_parse_and_print() {
        for mode in [RegistrationMode::Open, RegistrationMode::Closed] {
            assert_eq!(mode.as_str().parse::<RegistrationMode>(), Ok(mode));
        }
        let err = "sometimes".parse::<RegistrationMode>().unwrap_err();
        assert!(err.contains("sometimes"), "{err}");
        assert!("Open".parse::<RegistrationMode>().is_err());
    }
}
