//! Signing in and out, who you are, the environment for scripts, and the profiles.
//!
//! `dtaas login` signs in with the password (`POST /login`, the kabuto face's session), makes an
//! API key named for this machine with that session (`POST /v1/api-keys`), ends the session and
//! keeps only the key. `dtaas logout` revokes the key with itself (`DELETE /v1/api-keys/{id}`).

use super::http::{Api, ClientError, Payload, cookie_of, error_of, sanitize};
use super::output::{Column, at, say};
use super::profile::{BaseUrl, KeySource, Profile, Target, check_name};
use super::{Ctx, segment};
use clap::{Args, Subcommand};
use hyper::{Method, header};
use serde_json::{Value, json};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

pub const LOGIN_EXAMPLES: &str = "Examples:
  dtaas login https://dtaas.example:5000
  dtaas login https://dtaas.example:5000 --ca-cert ca.crt
  dtaas --profile lab login http://127.0.0.1:5000 -u alice
  echo \"$PASSWORD\" | dtaas login https://dtaas.example:5000 -u alice --password-stdin
  echo \"$KEY\" | dtaas login https://dtaas.example:5000 --api-key -";

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The appliance's URL [default: --url, DTAAS_URL, else the profile's]. Without a scheme,
    /// https (http on a loopback address).
    #[arg(id = "login_url", value_name = "URL")]
    pub url: Option<String>,
    /// Your login name (asked for when not given).
    #[arg(short = 'u', long, value_name = "LOGIN")]
    pub username: Option<String>,
    /// Read the password from standard input (its first line) instead of asking for it.
    #[arg(long, conflicts_with = "api_key")]
    pub password_stdin: bool,
    /// Keep this API key instead of signing in with a password (`-`: read it from standard
    /// input). Such a key is not revoked by `dtaas logout`, only forgotten.
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ProfilesCommand {
    /// List the profiles (the default).
    #[command(after_help = "Examples:\n  dtaas profiles list\n  dtaas profiles list --json")]
    List,
    /// Make NAME the profile used when none is named.
    #[command(after_help = "Examples:\n  dtaas profiles use lab")]
    Use { name: String },
    /// Revoke a profile's key (when the appliance answers) and remove the profile.
    #[command(after_help = "Examples:\n  dtaas profiles remove old")]
    Remove { name: String },
}

/// One line from standard input, without its end.
fn read_stdin_line(what: &str) -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("reading the {what} from standard input: {e}"))?;
    let line = line.trim_end_matches(['\n', '\r']).to_owned();
    if line.is_empty() {
        return Err(format!("no {what} on standard input"));
    }
    Ok(line)
}

fn ask_login() -> Result<String, String> {
    if !std::io::stdin().is_terminal() {
        return Err("no terminal to ask for your login: give it with --username".into());
    }
    eprint!("Login: ");
    let _ = std::io::stderr().flush();
    let login = read_stdin_line("login")?;
    Ok(login.trim().to_owned())
}

fn ask_password() -> Result<String, String> {
    rpassword::prompt_password("Password: ").map_err(|e| {
        format!("cannot ask for the password ({e}): use --password-stdin, or --api-key")
    })
}

/// The name of the key `dtaas login` makes: who on which machine.
fn key_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "this machine".into());
    let name = match std::env::var("USER") {
        Ok(user) if !user.is_empty() => format!("dtaas login: {user}@{host}"),
        _ => format!("dtaas login on {host}"),
    };
    name.chars().take(200).collect()
}

/// An absolute path (a profile outlives the directory it was made in).
fn absolute(path: PathBuf) -> Result<PathBuf, String> {
    std::path::absolute(&path).map_err(|e| format!("{}: {e}", path.display()))
}

pub async fn login(ctx: &mut Ctx, args: LoginArgs) -> Result<(), String> {
    let name = ctx.target.profile_name.clone();
    let old = ctx.file.profiles.get(&name).cloned();
    let old_url = old.as_ref().and_then(|p| BaseUrl::parse(&p.url).ok());
    let url = match args
        .url
        .or_else(|| ctx.flags.url.clone())
        .or_else(|| ctx.env.url.clone())
    {
        Some(text) => BaseUrl::parse(&text)?,
        None => old_url
            .clone()
            .ok_or("which appliance? Give its URL: dtaas login https://HOST:PORT".to_owned())?,
    };
    let same = old_url.as_ref() == Some(&url);
    let home = old.as_ref().filter(|_| same);
    let ca_cert = match ctx
        .flags
        .ca_cert
        .clone()
        .or_else(|| ctx.env.ca_cert.clone())
    {
        Some(p) => Some(absolute(p)?),
        None => home.and_then(|p| p.ca_cert.clone()),
    };
    let insecure = ctx.flags.insecure || ctx.env.insecure || home.is_some_and(|p| p.insecure);
    let target = Target {
        url: Some(url.clone()),
        api_key: None,
        ca_cert: ca_cert.clone(),
        insecure,
        ..ctx.target.clone()
    };
    let api = Api::new(&target)?;

    let (key, key_id, me) = match args.api_key {
        Some(given) => {
            let key = if given == "-" {
                read_stdin_line("API key")?
            } else {
                given
            };
            let key = key.trim().to_owned();
            let api = api.with_key(Some((key.clone(), KeySource::Profile)));
            let me = api.get("/v1/me").await.map_err(|e| match e.status() {
                Some(s) if s == 401 => {
                    format!("{url} refused this API key (revoked, expired or mistyped)")
                }
                _ => e.to_string(),
            })?;
            (key, None, me)
        }
        None => {
            let username = match args.username {
                Some(u) => u,
                None => ask_login()?,
            };
            let password = if args.password_stdin {
                read_stdin_line("password")?
            } else {
                ask_password()?
            };
            let (key, id) = sign_in(&api, &username, &password).await?;
            let api = api.with_key(Some((key.clone(), KeySource::Profile)));
            let me = api.get("/v1/me").await?;
            (key, Some(id), me)
        }
    };
    let login = me["login"]
        .as_str()
        .or_else(|| me["name"].as_str())
        .map(|s| sanitize(s, 200));

    // The key this profile held before is revoked (on its own server), unless it is this one.
    if let Some(old) = &old
        && old.api_key.as_deref() != Some(key.as_str())
        && let (Some(old_key), Some(old_id)) = (&old.api_key, &old.api_key_id)
        && let Err(e) = revoke_stored(ctx, old, old_key, old_id).await
    {
        eprintln!("dtaas: the profile's previous key (id {old_id}) could not be revoked: {e}",);
    }

    ctx.file.profiles.insert(
        name.clone(),
        Profile {
            url: url.to_string(),
            login: login.clone(),
            api_key: Some(key),
            api_key_id: key_id,
            ca_cert,
            insecure,
        },
    );
    ctx.file.current = Some(name.clone());
    ctx.save()?;
    let who = login.unwrap_or_else(|| "?".into());
    ctx.out.done(
        &json!({"profile": name, "url": url.to_string(), "login": who, "file": ctx.path_text()}),
        &format!(
            "Logged in to {url} as {who} (profile {name}). Its API key is kept in {}.",
            ctx.path_text()
        ),
    );
    Ok(())
}

/// Signs in with the password and makes a key with the session; the session is ended again.
async fn sign_in(api: &Api, login: &str, password: &str) -> Result<(String, String), String> {
    let form = vec![
        ("login".to_owned(), login.to_owned()),
        ("password".to_owned(), password.to_owned()),
    ];
    let response = api
        .send(Method::POST, "/login", Payload::Form(form), &[])
        .await?;
    let status = response.status();
    if !status.is_success() {
        let body = super::http::read_limited(response.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        let message = error_of(&body)
            .1
            .unwrap_or_else(|| format!("the server answered {}", status.as_u16()));
        return Err(match status.as_u16() {
            401 => format!("{message}: check your login and password"),
            403 => format!("{message}: the account is not confirmed, or disabled"),
            429 => format!("{message}: too many attempts, wait a minute and try again"),
            _ => format!("signing in to {} failed: {message}", api.base),
        });
    }
    let session = cookie_of(response.headers(), "dtaas_session").ok_or_else(|| {
        format!(
            "{} signed you in but gave no session: is it a dtaas appliance?",
            api.base
        )
    })?;
    let cookie = [(header::COOKIE, format!("dtaas_session={session}"))];
    let created = api
        .send(
            Method::POST,
            "/v1/api-keys",
            Payload::Json(json!({"name": key_name()})),
            &cookie,
        )
        .await;
    // The session is not needed any more, whatever happened.
    let _ = api
        .send(Method::POST, "/logout", Payload::Empty, &cookie)
        .await;
    let created = api.check(created?).await?;
    let created = api.json(created).await?;
    match (created["key"].as_str(), created["id"].as_str()) {
        (Some(key), Some(id)) => Ok((key.to_owned(), id.to_owned())),
        _ => Err(format!(
            "{} made no API key: is it a dtaas appliance?",
            api.base
        )),
    }
}

/// The API of a stored profile (its URL, its certificate settings plus the flags').
fn profile_api(ctx: &Ctx, profile: &Profile, key: &str) -> Result<Api, String> {
    let url = BaseUrl::parse(&profile.url)?;
    let target = Target {
        url: Some(url),
        api_key: Some((key.to_owned(), KeySource::Profile)),
        ca_cert: ctx
            .flags
            .ca_cert
            .clone()
            .or_else(|| profile.ca_cert.clone()),
        insecure: ctx.flags.insecure || profile.insecure,
        ..ctx.target.clone()
    };
    Ok(Api::new(&target)?)
}

/// Revokes a stored key with itself. A key the server no longer takes counts as revoked.
async fn revoke_stored(ctx: &Ctx, profile: &Profile, key: &str, id: &str) -> Result<(), String> {
    let api = profile_api(ctx, profile, key)?;
    match api.delete(&format!("/v1/api-keys/{}", segment(id))).await {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.status().map(|s| s.as_u16()), Some(401 | 404)) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

pub async fn logout(ctx: &mut Ctx) -> Result<(), String> {
    let name = ctx.target.profile_name.clone();
    let Some(profile) = ctx.file.profiles.get(&name).cloned() else {
        return Err(match ctx.target.api_key {
            Some((_, KeySource::Environment)) => {
                "the key in use comes from DTAAS_API_KEY, which logout cannot forget: unset it"
                    .into()
            }
            _ => format!("no profile {name}: nothing to log out of (`dtaas profiles`)"),
        });
    };
    let Some(key) = profile.api_key.clone() else {
        return Err(format!(
            "not logged in with profile {name} ({}): nothing to log out of",
            profile.url
        ));
    };
    let revoked = match &profile.api_key_id {
        Some(id) => {
            revoke_stored(ctx, &profile, &key, id).await.map_err(|e| {
                format!(
                    "{e}\nThe key stays stored: try again, or `dtaas profiles remove {name}` to \
                     forget it without revoking it"
                )
            })?;
            true
        }
        None => false,
    };
    if let Some(p) = ctx.file.profiles.get_mut(&name) {
        p.api_key = None;
        p.api_key_id = None;
    }
    ctx.save()?;
    let sentence = if revoked {
        format!(
            "Logged out of {} (profile {name}): the key was revoked and forgotten.",
            profile.url
        )
    } else {
        format!(
            "Logged out of {} (profile {name}): the key was forgotten. It was given with \
             --api-key, so it still works until revoked where it was made.",
            profile.url
        )
    };
    ctx.out.done(
        &json!({"profile": name, "url": profile.url, "revoked": revoked}),
        &sentence,
    );
    if matches!(ctx.target.api_key, Some((_, KeySource::Environment))) {
        eprintln!("dtaas: DTAAS_API_KEY is still set in your environment");
    }
    Ok(())
}

pub async fn whoami(ctx: &Ctx) -> Result<(), String> {
    let api = ctx.api()?;
    let me = api.get("/v1/me").await?;
    if ctx.out.json {
        ctx.out.print_json(&me);
        return Ok(());
    }
    let profile = match (&ctx.target.profile, &ctx.target.api_key) {
        (Some(_), Some((_, KeySource::Profile))) => {
            format!(" (profile {})", ctx.target.profile_name)
        }
        (_, Some((_, KeySource::Environment))) => " (key from DTAAS_API_KEY)".into(),
        _ => String::new(),
    };
    let line = match me["kind"].as_str() {
        Some("servable") => format!(
            "servable {} ({}, type {}) at {}{profile}",
            at(&me, "/name"),
            at(&me, "/id"),
            at(&me, "/type"),
            api.base
        ),
        _ => format!(
            "{}{} at {}{profile}",
            at(&me, "/login"),
            if me["admin"].as_bool() == Some(true) {
                " (admin)"
            } else {
                ""
            },
            api.base
        ),
    };
    say(&line);
    Ok(())
}

/// The lines of `dtaas export`: URL, key, and how to check the certificate.
pub fn export_lines(target: &Target) -> Result<Vec<(String, String)>, ClientError> {
    let url = target.url.as_ref().ok_or(ClientError::NoUrl)?;
    let (key, _) = target.api_key.as_ref().ok_or(ClientError::NotLoggedIn {
        url: url.to_string(),
    })?;
    let mut vars = vec![
        ("DTAAS_URL".to_owned(), url.to_string()),
        ("DTAAS_API_KEY".to_owned(), key.clone()),
    ];
    if let Some(ca) = &target.ca_cert {
        vars.push(("DTAAS_CA_CERT".into(), ca.display().to_string()));
    }
    if target.insecure {
        vars.push(("DTAAS_INSECURE".into(), "1".into()));
    }
    Ok(vars)
}

pub fn export(ctx: &Ctx) -> Result<(), String> {
    let vars = export_lines(&ctx.target)?;
    if ctx.out.json {
        let map: serde_json::Map<String, Value> = vars
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        ctx.out.print_json(&Value::Object(map));
        return Ok(());
    }
    let assignments: Vec<String> = vars
        .iter()
        .map(|(k, v)| format!("{k}={}", shell_words::quote(v)))
        .collect();
    say(&format!("export {}", assignments.join(" ")));
    Ok(())
}

pub async fn profiles(ctx: &mut Ctx, command: Option<ProfilesCommand>) -> Result<(), String> {
    match command.unwrap_or(ProfilesCommand::List) {
        ProfilesCommand::List => {
            let current = ctx.file.current.clone();
            let items: Vec<Value> = ctx
                .file
                .profiles
                .iter()
                .map(|(name, p)| {
                    json!({
                        "name": name,
                        "current": current.as_deref() == Some(name.as_str()),
                        "url": p.url,
                        "login": p.login,
                        "logged_in": p.api_key.is_some(),
                        "ca_cert": p.ca_cert,
                        "insecure": p.insecure,
                    })
                })
                .collect();
            const COLUMNS: &[Column] = &[
                ("", |p| {
                    if p["current"].as_bool() == Some(true) {
                        "*"
                    } else {
                        ""
                    }
                    .into()
                }),
                ("NAME", |p| at(p, "/name")),
                ("URL", |p| at(p, "/url")),
                ("LOGIN", |p| at(p, "/login")),
                ("KEY", |p| {
                    if p["logged_in"].as_bool() == Some(true) {
                        "stored".into()
                    } else {
                        "- (logged out)".into()
                    }
                }),
            ];
            ctx.out.list(
                &items,
                COLUMNS,
                "No profiles yet: run `dtaas login URL` to make one.",
            );
            Ok(())
        }
        ProfilesCommand::Use { name } => {
            check_name(&name)?;
            let Some(p) = ctx.file.profiles.get(&name) else {
                return Err(format!(
                    "no profile {name} (`dtaas profiles` lists them; `dtaas --profile {name} \
                     login URL` makes it)"
                ));
            };
            let url = p.url.clone();
            ctx.file.current = Some(name.clone());
            ctx.save()?;
            ctx.out.done(
                &json!({"current": name, "url": url}),
                &format!("Now using profile {name} ({url})."),
            );
            Ok(())
        }
        ProfilesCommand::Remove { name } => {
            check_name(&name)?;
            let Some(p) = ctx.file.profiles.get(&name).cloned() else {
                return Err(format!("no profile {name} (`dtaas profiles` lists them)"));
            };
            let mut note = String::new();
            if let (Some(key), Some(id)) = (&p.api_key, &p.api_key_id)
                && let Err(e) = revoke_stored(ctx, &p, key, id).await
            {
                note = format!(
                    " Its key (id {id}) could not be revoked ({e}): revoke it on the appliance."
                );
            }
            ctx.file.profiles.remove(&name);
            if ctx.file.current.as_deref() == Some(name.as_str()) {
                ctx.file.current = None;
            }
            ctx.save()?;
            ctx.out.done(
                &json!({"removed": name}),
                &format!("Removed profile {name} ({}).{note}", p.url),
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::client::profile::{DEFAULT_PROFILE, Env, Flags, ProfileFile, resolve};

    #[test]
    fn export_needs_a_url_and_a_key_and_names_the_authority() {
        let env = Env {
            url: Some("https://h:5000".into()),
            api_key: Some("dtaas_k".into()),
            ca_cert: Some("/x/ca.crt".into()),
            ..Env::default()
        };
        let t = resolve(&ProfileFile::default(), &env, &Flags::default()).unwrap();
        assert_eq!(t.profile_name, DEFAULT_PROFILE);
        let lines = export_lines(&t).unwrap();
        assert_eq!(
            lines,
            vec![
                ("DTAAS_URL".into(), "https://h:5000".into()),
                ("DTAAS_API_KEY".into(), "dtaas_k".into()),
                ("DTAAS_CA_CERT".into(), "/x/ca.crt".into()),
            ]
        );
        let t = resolve(&ProfileFile::default(), &Env::default(), &Flags::default()).unwrap();
        assert!(matches!(export_lines(&t), Err(ClientError::NoUrl)));
    }

    #[test]
    fn the_key_is_named_for_this_machine() {
        let name = key_name();
        assert!(name.starts_with("dtaas login"), "{name}");
        assert!(name.chars().count() <= 200);
    }
}
