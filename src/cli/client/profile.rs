//! Profiles: which appliance the client talks to and with what key.
//!
//! The file is `$XDG_CONFIG_HOME/dtaas/config.toml` (else `~/.config/dtaas/config.toml`), mode
//! 0600 in a 0700 directory, replaced atomically on every change. It holds, per profile, the
//! appliance's URL, the login, the API key made for this machine (never a password) and its id,
//! and how to check the server's certificate. `current` names the profile used when none is
//! asked for.
//!
//! What a command uses is resolved in one place, [`resolve`]: flags, then the environment
//! (`DTAAS_URL`, `DTAAS_API_KEY`, `DTAAS_PROFILE`, `DTAAS_CA_CERT`, `DTAAS_INSECURE`), then the
//! profile. A profile's key and certificate settings go only to the profile's own URL: with
//! `--url` or `DTAAS_URL` naming another server, the stored key stays home.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The profile used when none is named and none is current.
pub const DEFAULT_PROFILE: &str = "default";

/// The profile file.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileFile {
    /// The profile used when none is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// One appliance and the credentials for it.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// The appliance's URL, normalised ([`BaseUrl`]).
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// The API key `dtaas login` made (or was given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// The key's id, to revoke it on `dtaas logout` (unknown for a key given with --api-key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
    /// An authority to trust for this appliance (PEM), e.g. its generated `ca.crt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    /// Do not check the server's certificate.
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// An appliance's address: scheme, authority and an optional path prefix, without a trailing
/// slash (`https://dtaas.example:5000`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    pub https: bool,
    pub host: String,
    pub port: Option<u16>,
    /// "" or "/prefix".
    pub prefix: String,
}

impl BaseUrl {
    /// Reads what a user types: `https://host:5000`, `http://127.0.0.1:5000/`, or `host:5000`
    /// (https, except on a loopback host, where a server speaks plain HTTP by default).
    pub fn parse(text: &str) -> Result<BaseUrl, String> {
        let text = text.trim();
        let bad = |why: &str| {
            format!("{text:?} is not an appliance URL ({why}); write it as https://HOST[:PORT]")
        };
        let (scheme, rest) = match text.split_once("://") {
            Some((s, r)) => (Some(s.to_ascii_lowercase()), r),
            None => (None, text),
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if path.contains(['?', '#']) {
            return Err(bad("no query or fragment"));
        }
        if authority.contains('@') {
            return Err(bad("no credentials in the URL"));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("no host"))?;
        if host.is_empty()
            || host
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '%')
        {
            return Err(bad("no host"));
        }
        let host = host.to_ascii_lowercase();
        let https = match scheme.as_deref() {
            Some("https") => true,
            Some("http") => false,
            Some(_) => return Err(bad("the scheme is http or https")),
            None => !is_loopback(&host),
        };
        let prefix = path.trim_end_matches('/').to_owned();
        if prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("a path without spaces"));
        }
        let port = port.filter(|p| *p != if https { 443 } else { 80 });
        Ok(BaseUrl {
            https,
            host,
            port,
            prefix,
        })
    }

    /// The port, or the scheme's own.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(if self.https { 443 } else { 80 })
    }

    /// `host[:port]`, brackets around an IPv6 address.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(p) => format!("{host}:{p}"),
            None => host,
        }
    }

    /// The address of a path on the appliance (`path` starts with `/`).
    pub fn join(&self, path: &str) -> String {
        format!("{self}{path}")
    }
}

impl std::fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority(), self.prefix)
    }
}

fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            p => Some((host, Some(p.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host, Some(port.parse().ok()?))),
        Some(_) => None,
        None => Some((authority, None)),
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A profile name: letters, digits, `.`, `_` and `-`, at most 64.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a profile name: use letters, digits, '.', '_' and '-' (at most 64)"
        ))
    }
}

/// The client's environment variables (read once, passed in so that tests control them).
#[derive(Debug, Default, Clone)]
pub struct Env {
    pub url: Option<String>,
    pub api_key: Option<String>,
    pub profile: Option<String>,
    pub ca_cert: Option<PathBuf>,
    pub insecure: bool,
}

impl Env {
    /// Reads the variables; empty ones count as unset.
    pub fn from_process() -> Env {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Env {
            url: var("DTAAS_URL"),
            api_key: var("DTAAS_API_KEY"),
            profile: var("DTAAS_PROFILE"),
            ca_cert: var("DTAAS_CA_CERT").map(PathBuf::from),
            insecure: var("DTAAS_INSECURE").is_some_and(|v| truthy(&v)),
        }
    }
}

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// What the global flags ask for.
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub url: Option<String>,
    pub profile: Option<String>,
    pub ca_cert: Option<PathBuf>,
    pub insecure: bool,
}

/// Where the API key in use comes from (for the hint when it is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    Environment,
    Profile,
}

/// What a command talks to, resolved from flags, environment and profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The profile in use (whether or not it exists yet).
    pub profile_name: String,
    /// Whether the profile name was asked for (flag or environment) rather than current.
    pub profile_named: bool,
    pub profile: Option<Profile>,
    pub url: Option<BaseUrl>,
    pub api_key: Option<(String, KeySource)>,
    pub ca_cert: Option<PathBuf>,
    pub insecure: bool,
}

/// Flags win over the environment, which wins over the profile. The profile's key, login and
/// certificate settings apply only when the URL in use is the profile's.
pub fn resolve(file: &ProfileFile, env: &Env, flags: &Flags) -> Result<Target, String> {
    let (profile_name, profile_named) = match (&flags.profile, &env.profile, &file.current) {
        (Some(name), _, _) | (None, Some(name), _) => (name.clone(), true),
        (None, None, Some(name)) => (name.clone(), false),
        (None, None, None) => (DEFAULT_PROFILE.to_owned(), false),
    };
    check_name(&profile_name)?;
    let profile = file.profiles.get(&profile_name).cloned();
    let profile_url = match &profile {
        Some(p) => Some(
            BaseUrl::parse(&p.url)
                .map_err(|e| format!("profile {profile_name} in the profile file: {e}"))?,
        ),
        None => None,
    };
    let url = match flags.url.as_deref().or(env.url.as_deref()) {
        Some(text) => Some(BaseUrl::parse(text)?),
        None => profile_url.clone(),
    };
    // The profile's own settings apply only to its own server.
    let home = profile
        .as_ref()
        .filter(|_| url.is_some() && url == profile_url);
    let api_key = match (&env.api_key, home.and_then(|p| p.api_key.clone())) {
        (Some(k), _) => Some((k.trim().to_owned(), KeySource::Environment)),
        (None, Some(k)) => Some((k, KeySource::Profile)),
        (None, None) => None,
    };
    let ca_cert = flags
        .ca_cert
        .clone()
        .or_else(|| env.ca_cert.clone())
        .or_else(|| home.and_then(|p| p.ca_cert.clone()));
    let insecure = flags.insecure || env.insecure || home.is_some_and(|p| p.insecure);
    Ok(Target {
        profile_name,
        profile_named,
        profile,
        url,
        api_key,
        ca_cert,
        insecure,
    })
}

/// Where the profile file lives: `$XDG_CONFIG_HOME/dtaas/config.toml` when that is an absolute
/// path, else `$HOME/.config/dtaas/config.toml`.
pub fn file_path(xdg_config_home: Option<&str>, home: Option<&str>) -> Result<PathBuf, String> {
    if let Some(xdg) = xdg_config_home.filter(|x| Path::new(x).is_absolute()) {
        return Ok(Path::new(xdg).join("dtaas").join("config.toml"));
    }
    match home.filter(|h| !h.is_empty()) {
        Some(home) => Ok(Path::new(home)
            .join(".config")
            .join("dtaas")
            .join("config.toml")),
        None => Err("neither XDG_CONFIG_HOME nor HOME is set: cannot find the profile file".into()),
    }
}

/// The profile file of this process's environment.
pub fn default_file_path() -> Result<PathBuf, String> {
    file_path(
        std::env::var("XDG_CONFIG_HOME").ok().as_deref(),
        std::env::var("HOME").ok().as_deref(),
    )
}

impl ProfileFile {
    pub fn parse(text: &str, path: &Path) -> Result<ProfileFile, String> {
        toml::from_str(text).map_err(|e| {
            format!(
                "the profile file {} cannot be read: {}; fix or remove it",
                path.display(),
                e.message()
            )
        })
    }

    /// Reads the file; a missing one is empty. A file others may read is named on stderr.
    pub fn load(path: &Path) -> Result<ProfileFile, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ProfileFile::default());
            }
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            eprintln!(
                "dtaas: warning: {} holds API keys and others may read it: chmod 600 it",
                path.display()
            );
        }
        ProfileFile::parse(&text, path)
    }

    pub fn to_toml(&self) -> Result<String, String> {
        toml::to_string(self).map_err(|e| format!("cannot write the profiles: {e}"))
    }

    /// Writes the file atomically: a 0600 file beside it, synced, renamed over it, in a
    /// directory made 0700.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = self.to_toml()?;
        let dir = path
            .parent()
            .ok_or_else(|| format!("{} has no directory", path.display()))?;
        let err = |what: &str, e: std::io::Error| format!("cannot {what} {}: {e}", dir.display());
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| err("create", e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| err("restrict", e))?;
        write_atomically(path, text.as_bytes(), 0o600)
    }

    /// The profile `name`, made when missing.
    pub fn entry(&mut self, name: &str) -> &mut Profile {
        self.profiles.entry(name.to_owned()).or_default()
    }
}

/// Replaces `path` with `bytes` atomically: a file of `mode` beside it, synced, renamed.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let dir = path
        .parent()
        .ok_or_else(|| format!("{} has no directory", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The mode asked for, whatever the umask.
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(url: &str, key: &str) -> Profile {
        Profile {
            url: url.into(),
            login: Some("alice".into()),
            api_key: Some(key.into()),
            api_key_id: Some("0190b1f3c4d27a8e9b1c2d3e4f506172".into()),
            ca_cert: Some("/etc/dtaas-ca.crt".into()),
            insecure: false,
        }
    }

    fn two() -> ProfileFile {
        let mut f = ProfileFile {
            current: Some("work".into()),
            ..ProfileFile::default()
        };
        f.profiles.insert(
            "work".into(),
            profile("https://work.example:5000", "dtaas_w"),
        );
        f.profiles
            .insert("home".into(), profile("http://127.0.0.1:5000", "dtaas_h"));
        f
    }

    #[test]
    fn urls_are_normalised() {
        let u = BaseUrl::parse("https://Dtaas.Example:5000/").unwrap();
        assert_eq!(u.to_string(), "https://dtaas.example:5000");
        assert_eq!(u.authority(), "dtaas.example:5000");
        assert_eq!(
            BaseUrl::parse("dtaas.example").unwrap().to_string(),
            "https://dtaas.example"
        );
        assert_eq!(
            BaseUrl::parse("127.0.0.1:5000").unwrap().to_string(),
            "http://127.0.0.1:5000"
        );
        assert_eq!(
            BaseUrl::parse("localhost:5000").unwrap().to_string(),
            "http://localhost:5000"
        );
        let u = BaseUrl::parse("https://h:443/dtaas/").unwrap();
        assert_eq!(u.to_string(), "https://h/dtaas");
        assert_eq!(u.port_or_default(), 443);
        assert_eq!(u.join("/v1/me"), "https://h/dtaas/v1/me");
        let v6 = BaseUrl::parse("http://[::1]:5000").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", Some(5000)));
        assert_eq!(v6.to_string(), "http://[::1]:5000");
        for bad in [
            "ftp://h",
            "https://",
            "https://u:p@h",
            "https://h:port",
            "https://h/?x=1",
            "h h",
            "https://h:99999",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_win_over_the_environment_which_wins_over_the_profile() {
        let f = two();
        let t = resolve(&f, &Env::default(), &Flags::default()).unwrap();
        assert_eq!(t.profile_name, "work");
        assert!(!t.profile_named);
        assert_eq!(t.url.unwrap().to_string(), "https://work.example:5000");
        assert_eq!(t.api_key, Some(("dtaas_w".to_owned(), KeySource::Profile)));
        assert_eq!(t.ca_cert, Some("/etc/dtaas-ca.crt".into()));

        let env = Env {
            profile: Some("home".into()),
            ..Env::default()
        };
        let t = resolve(&f, &env, &Flags::default()).unwrap();
        assert_eq!((t.profile_name.as_str(), t.profile_named), ("home", true));
        assert_eq!(t.api_key.unwrap().0, "dtaas_h");
        let flags = Flags {
            profile: Some("work".into()),
            ..Flags::default()
        };
        assert_eq!(resolve(&f, &env, &flags).unwrap().profile_name, "work");

        // An environment key wins over the profile's.
        let env = Env {
            api_key: Some("dtaas_env\n".into()),
            ..Env::default()
        };
        let t = resolve(&f, &env, &Flags::default()).unwrap();
        assert_eq!(
            t.api_key,
            Some(("dtaas_env".to_owned(), KeySource::Environment))
        );
    }

    #[test]
    fn a_profiles_key_never_goes_to_another_server() {
        let f = two();
        for (env, flags) in [
            (
                Env {
                    url: Some("https://elsewhere.example".into()),
                    ..Env::default()
                },
                Flags::default(),
            ),
            (
                Env::default(),
                Flags {
                    url: Some("https://elsewhere.example".into()),
                    ..Flags::default()
                },
            ),
        ] {
            let t = resolve(&f, &env, &flags).unwrap();
            assert_eq!(t.url.unwrap().host, "elsewhere.example");
            assert_eq!(t.api_key, None);
            assert_eq!(t.ca_cert, None);
        }
        // The same server written differently is the profile's.
        let env = Env {
            url: Some("work.example:5000/".into()),
            ..Env::default()
        };
        assert!(
            resolve(&f, &env, &Flags::default())
                .unwrap()
                .api_key
                .is_some()
        );
        // A key and URL from the environment alone, without any profile.
        let env = Env {
            url: Some("http://127.0.0.1:7".into()),
            api_key: Some("dtaas_x".into()),
            ..Env::default()
        };
        let t = resolve(&ProfileFile::default(), &env, &Flags::default()).unwrap();
        assert_eq!(t.profile_name, DEFAULT_PROFILE);
        assert_eq!(t.profile, None);
        assert_eq!(t.api_key.unwrap().0, "dtaas_x");
    }

    #[test]
    fn nothing_resolves_to_no_url_and_bad_names_are_refused() {
        let t = resolve(&ProfileFile::default(), &Env::default(), &Flags::default()).unwrap();
        assert_eq!((t.url, t.api_key), (None, None));
        let flags = Flags {
            profile: Some("../x".into()),
            ..Flags::default()
        };
        assert!(resolve(&ProfileFile::default(), &Env::default(), &flags).is_err());
        assert!(check_name("lab-2.eu_west").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
    }

    #[test]
    fn the_file_is_where_xdg_says() {
        assert_eq!(
            file_path(Some("/x/conf"), Some("/home/a")).unwrap(),
            PathBuf::from("/x/conf/dtaas/config.toml")
        );
        // A relative XDG_CONFIG_HOME is ignored, as the specification says.
        assert_eq!(
            file_path(Some("rel"), Some("/home/a")).unwrap(),
            PathBuf::from("/home/a/.config/dtaas/config.toml")
        );
        assert!(file_path(None, None).is_err());
    }

    #[test]
    fn the_file_round_trips_and_is_written_0600_in_a_0700_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf").join("dtaas").join("config.toml");
        let f = two();
        f.save(&path).unwrap();
        assert_eq!(ProfileFile::load(&path).unwrap(), f);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        // Saved again: replaced, no temporary file left beside it.
        let mut g = f.clone();
        g.profiles.remove("home");
        g.save(&path).unwrap();
        assert_eq!(ProfileFile::load(&path).unwrap(), g);
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("config.toml")]);
        assert_eq!(
            ProfileFile::load(&dir.path().join("none.toml")).unwrap(),
            ProfileFile::default()
        );
        std::fs::write(&path, "profiles = 3").unwrap();
        assert!(
            ProfileFile::load(&path)
                .unwrap_err()
                .contains("fix or remove")
        );
    }

    #[test]
    fn an_empty_profile_is_written_without_empty_keys() {
        let mut f = ProfileFile::default();
        f.entry("p").url = "http://127.0.0.1:5000".into();
        let text = f.to_toml().unwrap();
        assert!(!text.contains("api_key"), "{text}");
        assert!(!text.contains("insecure"), "{text}");
    }
}
