//! `dtaas docker-configure`: the docker CLI's credentials for the appliance's registry.
//!
//! The registry (`/v2` on the appliance's own listener) takes an API key as the password of
//! Basic authentication, whatever the user name. This writes an `auths` entry for `HOST:PORT`
//! with `login:key` into the docker client's `config.json` (`$DOCKER_CONFIG`, else
//! `~/.docker`), keeping everything else in it, mode 0600, replaced atomically.

use super::Ctx;
use super::http::sanitize;
use super::profile::{BaseUrl, write_atomically};
use base64::Engine as _;
use clap::Args;
use serde_json::{Map, Value, json};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

pub const EXAMPLES: &str = "Examples:
  dtaas docker-configure
  docker push dtaas.example:5000/alice/tool:1
  dtaas docker-configure 127.0.0.1 5000";

#[derive(Args, Debug)]
pub struct DockerArgs {
    /// The registry's host as docker names it [default: the appliance URL's host].
    pub host: Option<String>,
    /// Its port [default: the appliance URL's port].
    pub port: Option<u16>,
}

/// The name docker files the registry's credentials under: `host:port`, or `host` alone for
/// HTTPS's own port (as docker writes `docker push host/...`).
pub fn registry_name(
    base: &BaseUrl,
    host: Option<&str>,
    port: Option<u16>,
) -> Result<String, String> {
    let (host, given_port) = match host {
        Some(h) => {
            let parsed = BaseUrl::parse(&format!("https://{h}"))
                .map_err(|_| format!("{h:?} is not a registry host"))?;
            if !parsed.prefix.is_empty() {
                return Err(format!("{h:?} is not a registry host (no path)"));
            }
            (
                parsed.host,
                parsed.port.or((h.ends_with(":443")).then_some(443)),
            )
        }
        None => (base.host.clone(), Some(base.port_or_default())),
    };
    let port = port.or(given_port).unwrap_or(base.port_or_default());
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    Ok(if port == 443 {
        host
    } else {
        format!("{host}:{port}")
    })
}

/// Adds (or replaces) the credentials of `registry` in a docker `config.json`, keeping the rest.
/// When a credential store is configured for every registry, this one is sent to the file
/// instead (an empty `credHelpers` entry); the returned note says so.
pub fn merge_auth(
    config: &mut Value,
    registry: &str,
    login: &str,
    key: &str,
) -> Result<Option<String>, String> {
    if config.is_null() {
        *config = Value::Object(Map::new());
    }
    let root = config
        .as_object_mut()
        .ok_or("the docker configuration is not a JSON object")?;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{login}:{key}"));
    let auths = root
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if !auths.is_object() {
        return Err("its \"auths\" is not an object".into());
    }
    if let Some(a) = auths.as_object_mut() {
        a.insert(registry.to_owned(), json!({ "auth": auth }));
    }
    let mut note = None;
    let store = root
        .get("credsStore")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    if let Some(store) = store {
        let helpers = root
            .entry("credHelpers")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(h) = helpers.as_object_mut()
            && !h.contains_key(registry)
        {
            h.insert(registry.to_owned(), Value::String(String::new()));
            note = Some(format!(
                "docker keeps other credentials in the {store:?} store; for {registry} it now \
                 reads this file (an empty credHelpers entry)"
            ));
        }
    }
    Ok(note)
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn docker_config_path() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("config.json"));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".docker").join("config.json")),
        None => {
            Err("neither DOCKER_CONFIG nor HOME is set: cannot find docker's configuration".into())
        }
    }
}

fn read_config(path: &Path) -> Result<Value, String> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Value::Null),
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "{} is not JSON ({e}): fix it or move it aside, then run this again",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Value::Null),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

pub async fn configure(ctx: &Ctx, args: DockerArgs) -> Result<(), String> {
    let api = ctx.api()?;
    let me = api.get("/v1/me").await?;
    let Some(login) = me["login"].as_str() else {
        return Err("docker-configure needs a user's key (this one is a servable's)".into());
    };
    let key = api.key().ok_or("no API key")?.to_owned();
    let registry = registry_name(&api.base, args.host.as_deref(), args.port)?;
    let path = docker_config_path()?;
    let mut config = read_config(&path)?;
    let note = merge_auth(&mut config, &registry, login, &key)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(&config)
        .map_err(|e| format!("cannot write docker's configuration: {e}"))?;
    write_atomically(&path, format!("{text}\n").as_bytes(), 0o600)?;
    let login = sanitize(login, 200);
    let namespace = crate::core::names::slug(&login);
    let mut sentence = format!(
        "Docker can now push to and pull from {registry} as {login} (credentials in {}). \
         Try: docker push {registry}/{namespace}/IMAGE:TAG",
        path.display()
    );
    if let Some(n) = note {
        sentence.push_str(&format!("\nNote: {n}."));
    }
    if api.base.https
        && let Some(ca) = &ctx.target.ca_cert
    {
        sentence.push_str(&format!(
            "\nThe docker engine must trust the appliance's authority too:\n  sudo mkdir -p \
             /etc/docker/certs.d/{registry} && sudo cp {} /etc/docker/certs.d/{registry}/ca.crt",
            ca.display()
        ));
    }
    ctx.out.done(
        &json!({"registry": registry, "login": login, "config": path}),
        &sentence,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_is_named_as_docker_names_it() {
        let base = BaseUrl::parse("http://127.0.0.1:5000").unwrap();
        assert_eq!(registry_name(&base, None, None).unwrap(), "127.0.0.1:5000");
        assert_eq!(
            registry_name(&base, Some("localhost"), None).unwrap(),
            "localhost:5000"
        );
        assert_eq!(
            registry_name(&base, Some("reg.example"), Some(6000)).unwrap(),
            "reg.example:6000"
        );
        assert_eq!(
            registry_name(&base, Some("reg.example:7000"), None).unwrap(),
            "reg.example:7000"
        );
        let base = BaseUrl::parse("https://dtaas.example").unwrap();
        assert_eq!(registry_name(&base, None, None).unwrap(), "dtaas.example");
        let base = BaseUrl::parse("https://[::1]:5000").unwrap();
        assert_eq!(registry_name(&base, None, None).unwrap(), "[::1]:5000");
        assert!(registry_name(&base, Some("h/x"), None).is_err());
    }

    #[test]
    fn credentials_are_merged_with_what_is_there() {
        let mut config = json!({
            "auths": {"other.example": {"auth": "b3RoZXI6eA=="}},
            "psFormat": "table {{.ID}}",
        });
        assert_eq!(
            merge_auth(&mut config, "127.0.0.1:5000", "alice", "dtaas_k").unwrap(),
            None
        );
        assert_eq!(config["auths"]["other.example"]["auth"], "b3RoZXI6eA==");
        assert_eq!(config["psFormat"], "table {{.ID}}");
        let auth = config["auths"]["127.0.0.1:5000"]["auth"].as_str().unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth)
            .unwrap();
        assert_eq!(decoded, b"alice:dtaas_k");

        let mut empty = Value::Null;
        merge_auth(&mut empty, "h:1", "a", "k").unwrap();
        assert!(empty["auths"]["h:1"]["auth"].is_string());

        let mut with_store = json!({"credsStore": "desktop"});
        let note = merge_auth(&mut with_store, "h:1", "a", "k").unwrap();
        assert!(note.unwrap().contains("desktop"));
        assert_eq!(with_store["credHelpers"]["h:1"], "");

        assert!(merge_auth(&mut json!([1]), "h:1", "a", "k").is_err());
        assert!(merge_auth(&mut json!({"auths": 3}), "h:1", "a", "k").is_err());
    }
}
