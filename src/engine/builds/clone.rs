//! Cloning a build's repository with git or Mercurial, so that the clone reaches only what the
//! egress rules allow and never echoes what a server answered.
//!
//! - `repo_url` must be one of the accepted forms (`domains::images::repo`); a local path only
//!   with `images.allow_local_repos`, and then only an absolute path.
//! - The host is resolved and every address checked (`engine::egress`) before anything runs.
//! - http(s): git and hg go through a per-clone egress proxy (`http_proxy`, `https_proxy`), which
//!   checks every destination again, redirects included, and connects to the address it
//!   checked. git:// and ssh: the address is pinned: the tools get the checked IP address in the
//!   URL (ssh keeps the host's name for its known-hosts check with `HostKeyAlias`).
//! - git: only the URL's protocol is allowed (`protocol.allow=never`, `GIT_ALLOW_PROTOCOL`), no
//!   system or global configuration, no templates, no prompts; hg: no configuration files
//!   (`HGRCPATH=`), `HGPLAIN`, every HTTP connection through the proxy (`http_proxy.always`),
//!   and no FTP (a redirect to ftp:// would be followed around the proxy).
//! - Both run with a cleared environment, in an empty working directory with an empty `HOME`,
//!   the URL after `--`.
//! - A failure keeps only the tool's own first diagnostic line (`fatal:`, `abort:`), cut before
//!   any quoted response and capped; everything else the tool printed is dropped.

use super::push_output;
use crate::core::config::ImagesConfig;
use crate::core::error::{Error, Result};
use crate::domains::images::repo::{RemoteRepo, RemoteScheme, RepoSource, parse_repo_url};
use crate::engine::egress::Rules;
use crate::engine::egress::proxy::EgressProxy;
use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// The longest diagnostic kept from a tool.
const MAX_DIAGNOSTIC: usize = 300;
/// What is read of a tool's error output (the rest is drained unread).
const MAX_STDERR: u64 = 64 * 1024;

/// A Mercurial extension loaded for every clone: Python's URL opener, which Mercurial's HTTP
/// client is, follows a redirect to ftp:// itself, around the egress proxy.
const HG_NO_FTP: &str = "\
# dtaas: no FTP for Mercurial's HTTP client (a redirect to ftp:// would bypass the egress proxy).
import urllib.error
import urllib.request


def _refuse(self, req):
    raise urllib.error.URLError('ftp is not allowed for builds')


urllib.request.FTPHandler.ftp_open = _refuse
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Git,
    Hg,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Git => "git",
            Tool::Hg => "hg",
        }
    }
}

/// One way to clone: a tool, its arguments before the source, the source, its environment.
struct Attempt {
    tool: Tool,
    options: Vec<OsString>,
    source: OsString,
    env: Vec<(&'static str, OsString)>,
}

/// Clones `url` into `dest`, using `work` (the build's work directory) for the empty working
/// directory, `HOME` and the Mercurial extension. A refused or failing repository is the
/// user's error (`BadRequest`); a missing tool is the appliance's (`Internal`).
pub(super) async fn clone_repository(
    config: &ImagesConfig,
    url: &str,
    work: &Path,
    dest: &Path,
    output: &mut String,
) -> Result<()> {
    let source = parse_repo_url(url).map_err(Error::bad_request)?;
    let rules = Rules::new(&config.allowed_networks);
    let io = |e: std::io::Error| Error::internal(format!("preparing the clone: {e}"));
    let guard = work.join("hg-no-ftp.py");
    tokio::fs::write(&guard, HG_NO_FTP).await.map_err(io)?;
    let mut secrets: Vec<String> = Vec::new();
    let mut proxy: Option<EgressProxy> = None;
    let (display, attempts) = match &source {
        RepoSource::Local(path) => {
            if !config.allow_local_repos {
                return Err(Error::bad_request(format!(
                    "cannot clone {url}: repositories on the appliance's own file system are \
                     not allowed here (an administrator can allow them with \
                     images.allow_local_repos = true)"
                )));
            }
            let mut attempts = vec![
                git_attempt(
                    &["file"],
                    format!("file://{}", path.display()).into(),
                    vec![],
                ),
                hg_attempt(&guard, path.clone().into_os_string(), vec![], vec![]),
            ];
            if path.join(".hg").exists() {
                attempts.reverse();
            }
            (path.display().to_string(), attempts)
        }
        RepoSource::Remote(remote) => {
            let display = remote.display();
            if let Some(p) = remote.password() {
                secrets.push(p.to_owned());
            }
            let addrs = rules
                .resolve(&remote.host, remote.port_or_default())
                .await
                .map_err(|e| Error::bad_request(format!("cannot clone {display}: {e}")))?;
            let ip = addrs
                .first()
                .map(|a| a.ip())
                .ok_or_else(|| Error::bad_request(format!("cannot clone {display}: no address")))?;
            let attempts = match remote.scheme {
                RemoteScheme::Https | RemoteScheme::Http => {
                    let started = EgressProxy::start(rules.clone()).await.map_err(|e| {
                        Error::internal(format!("cannot start the egress proxy: {e}"))
                    })?;
                    let proxy_url = started.url();
                    secrets.push(started.token().to_owned());
                    let protocols: &[&str] = if remote.scheme == RemoteScheme::Https {
                        &["https"]
                    } else {
                        // http may redirect to https.
                        &["http", "https"]
                    };
                    let git_env = proxy_env(&proxy_url, true);
                    let hg_env = proxy_env(&proxy_url, false);
                    proxy = Some(started);
                    vec![
                        git_attempt(protocols, url.into(), git_env),
                        hg_attempt(
                            &guard,
                            url.into(),
                            vec!["--config".into(), "http_proxy.always=true".into()],
                            hg_env,
                        ),
                    ]
                }
                RemoteScheme::Git => vec![git_attempt(&["git"], remote.pinned(ip).into(), vec![])],
                RemoteScheme::Ssh => {
                    let ssh = ssh_command(remote);
                    vec![
                        git_attempt(
                            &["ssh"],
                            remote.pinned(ip).into(),
                            vec![("GIT_SSH_COMMAND", ssh.clone().into())],
                        ),
                        hg_attempt(
                            &guard,
                            remote.pinned_hg_ssh(ip).into(),
                            vec!["--config".into(), format!("ui.ssh={ssh}").into()],
                            vec![],
                        ),
                    ]
                }
            };
            (display, attempts)
        }
    };

    let timeout = Duration::from_secs(config.clone_timeout_secs);
    let cwd = work.join("clone-cwd");
    let home = work.join("clone-home");
    let mut errors = Vec::new();
    let mut missing = Vec::new();
    for attempt in attempts {
        for dir in [&cwd, &home] {
            let _ = tokio::fs::remove_dir_all(dir).await;
            tokio::fs::create_dir_all(dir).await.map_err(io)?;
        }
        let _ = tokio::fs::remove_dir_all(dest).await;
        let kind = attempt.tool;
        let tool = kind.name();
        match run(attempt, dest, &cwd, &home, timeout).await {
            Ran::Done => {
                push_output(output, &format!("cloned {display} with {tool}\n"));
                return Ok(());
            }
            Ran::Missing => missing.push(tool),
            Ran::TimedOut => errors.push(format!(
                "{tool} took longer than {} s (images.clone_timeout_secs)",
                timeout.as_secs()
            )),
            Ran::Error(e) => errors.push(format!("{tool} could not run: {e}")),
            Ran::Failed { status, stderr } => {
                let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
                errors.push(format!(
                    "{tool} exited with {status}: {}",
                    first_diagnostic(kind, &stderr, &secrets)
                ));
            }
        }
    }
    let _ = tokio::fs::remove_dir_all(dest).await;
    if errors.is_empty() {
        return Err(Error::internal(format!(
            "cannot clone {display}: {} not installed on the appliance",
            missing.join(" and ")
        )));
    }
    let mut message = format!(
        "cannot clone {display} as a git or Mercurial repository: {}",
        errors.join("; ")
    );
    for refusal in proxy
        .as_ref()
        .map(EgressProxy::refusals)
        .unwrap_or_default()
    {
        message.push_str("; ");
        message.push_str(&refusal);
    }
    Err(Error::bad_request(message))
}

/// `ssh` as git and hg run it (through a shell: the host name is checked to hold only letters,
/// digits, `.`, `_` and `-`): never prompting, and checking the host key under the host's
/// name although it connects to the checked address.
fn ssh_command(remote: &RemoteRepo) -> String {
    format!(
        "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o HostKeyAlias={}",
        remote.host
    )
}

/// The proxy for every variable either tool reads (git: `http_proxy`, `HTTPS_PROXY`,
/// `https_proxy`, `ALL_PROXY`; hg: `http_proxy` for both), and no exceptions.
fn proxy_env(proxy_url: &str, git: bool) -> Vec<(&'static str, OsString)> {
    let names: &[&'static str] = if git {
        &[
            "http_proxy",
            "https_proxy",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "all_proxy",
        ]
    } else {
        &["http_proxy", "https_proxy"]
    };
    let mut env: Vec<(&'static str, OsString)> =
        names.iter().map(|n| (*n, proxy_url.into())).collect();
    env.push(("no_proxy", "".into()));
    env.push(("NO_PROXY", "".into()));
    env
}

fn git_attempt(
    protocols: &[&str],
    source: OsString,
    mut env: Vec<(&'static str, OsString)>,
) -> Attempt {
    let mut options: Vec<OsString> = vec!["-c".into(), "protocol.allow=never".into()];
    for p in protocols {
        options.push("-c".into());
        options.push(format!("protocol.{p}.allow=always").into());
    }
    for setting in [
        "http.followRedirects=true",
        "http.proxyAuthMethod=basic",
        "credential.helper=",
    ] {
        options.push("-c".into());
        options.push(setting.into());
    }
    options.extend(
        ["clone", "--depth", "1", "--quiet", "--template="]
            .iter()
            .map(OsString::from),
    );
    env.extend([
        ("GIT_ALLOW_PROTOCOL", protocols.join(":").into()),
        ("GIT_CONFIG_NOSYSTEM", "1".into()),
        ("GIT_CONFIG_GLOBAL", "/dev/null".into()),
        ("GIT_TERMINAL_PROMPT", "0".into()),
    ]);
    Attempt {
        tool: Tool::Git,
        options,
        source,
        env,
    }
}

fn hg_attempt(
    guard: &Path,
    source: OsString,
    config: Vec<OsString>,
    mut env: Vec<(&'static str, OsString)>,
) -> Attempt {
    let mut options: Vec<OsString> = vec!["--config".into(), {
        let mut s = OsString::from("extensions.dtaas_no_ftp=");
        s.push(guard.as_os_str());
        s
    }];
    options.extend(config);
    options.extend(
        ["clone", "--noninteractive", "--quiet"]
            .iter()
            .map(OsString::from),
    );
    env.extend([("HGRCPATH", "".into()), ("HGPLAIN", "1".into())]);
    Attempt {
        tool: Tool::Hg,
        options,
        source,
        env,
    }
}

enum Ran {
    Done,
    Missing,
    TimedOut,
    Error(String),
    Failed { status: String, stderr: String },
}

/// Runs one attempt: cleared environment, the empty `cwd`, `HOME` at `home`, the source after
/// `--`, at most `timeout`; only the head of its error output is kept.
async fn run(attempt: Attempt, dest: &Path, cwd: &Path, home: &Path, timeout: Duration) -> Ran {
    let mut cmd = tokio::process::Command::new(attempt.tool.name());
    cmd.args(&attempt.options)
        .arg("--")
        .arg(&attempt.source)
        .arg(dest)
        .current_dir(cwd)
        .env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
        )
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .env("LANG", "C")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own process group, so that a timeout ends what it started (remote helpers, ssh).
        .process_group(0)
        .kill_on_drop(true);
    if let Some(agent) = std::env::var_os("SSH_AUTH_SOCK") {
        cmd.env("SSH_AUTH_SOCK", agent);
    }
    for (k, v) in &attempt.env {
        cmd.env(k, v);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ran::Missing,
        Err(e) => return Ran::Error(e.to_string()),
    };
    let stderr = child.stderr.take();
    let group = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .filter(|id| *id > 1)
        .and_then(rustix::process::Pid::from_raw);
    let finished = tokio::time::timeout(timeout, async {
        let mut head = Vec::new();
        if let Some(mut pipe) = stderr {
            let _ = (&mut pipe).take(MAX_STDERR).read_to_end(&mut head).await;
            let _ = tokio::io::copy(&mut pipe, &mut tokio::io::sink()).await;
        }
        (child.wait().await, head)
    })
    .await;
    if finished.is_err()
        && let Some(group) = group
    {
        // The tool has not been waited for: its group is still its own.
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }
    match finished {
        Err(_) => Ran::TimedOut,
        Ok((Err(e), _)) => Ran::Error(e.to_string()),
        Ok((Ok(status), _)) if status.success() => Ran::Done,
        Ok((Ok(status), head)) => Ran::Failed {
            status: match status.code() {
                Some(code) => format!("status {code}"),
                None => "a signal".into(),
            },
            stderr: String::from_utf8_lossy(&head).into_owned(),
        },
    }
}

/// The tool's own first diagnostic line (git `fatal:`, else `error:`; hg `abort:`), cut before
/// any quoted response (hg's `---%<---`), without control characters, with `secrets` replaced,
/// at most [`MAX_DIAGNOSTIC`] characters. Nothing else of what the tool printed is kept: lines
/// from the server (`remote:`), quoted bodies, hints.
fn first_diagnostic(tool: Tool, stderr: &str, secrets: &[&str]) -> String {
    let prefixes: &[&str] = match tool {
        Tool::Git => &["fatal: ", "error: "],
        Tool::Hg => &["abort: "],
    };
    let line = prefixes.iter().find_map(|p| {
        stderr
            .lines()
            .map(str::trim_start)
            .find(|l| l.starts_with(p))
    });
    let Some(line) = line else {
        return "(no error message)".into();
    };
    let line = line.split("---%<---").next().unwrap_or_default();
    let mut line: String = line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        line = line.replace(secret, "***");
    }
    let line = line.trim_end();
    if line.chars().count() > MAX_DIAGNOSTIC {
        let cut: String = line.chars().take(MAX_DIAGNOSTIC).collect();
        format!("{cut}...")
    } else {
        line.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_diagnostic_line_is_kept() {
        let hg = "abort: 'http://h/r' does not appear to be an hg repository:\n\
                  ---%<--- (application/json)\n{\"openapi\": \"3.1.0\"}\n---%<---\n\
                  (did you mean ...)\n";
        assert_eq!(
            first_diagnostic(Tool::Hg, hg, &[]),
            "abort: 'http://h/r' does not appear to be an hg repository:"
        );
        let git = "warning: redirecting to http://x/\nremote: secret text\n\
                   fatal: unable to access 'http://h/r/': The requested URL returned error: 403\n";
        assert_eq!(
            first_diagnostic(Tool::Git, git, &[]),
            "fatal: unable to access 'http://h/r/': The requested URL returned error: 403"
        );
        assert_eq!(
            first_diagnostic(Tool::Git, "error: RPC failed\nfatal: the end\n", &[]),
            "fatal: the end"
        );
        assert_eq!(
            first_diagnostic(Tool::Git, "remote: x\n", &[]),
            "(no error message)"
        );
        assert_eq!(
            first_diagnostic(Tool::Hg, "abort: a ---%<--- body\n", &[]),
            "abort: a"
        );
        assert_eq!(
            first_diagnostic(Tool::Git, "fatal: \x1b[31mred\x07\n", &[]),
            "fatal:  [31mred"
        );
        let long = format!("abort: {}\n", "x".repeat(1000));
        let kept = first_diagnostic(Tool::Hg, &long, &[]);
        assert_eq!(kept.chars().count(), MAX_DIAGNOSTIC + 3);
        assert_eq!(
            first_diagnostic(
                Tool::Git,
                "fatal: unable to access 'https://u:pw123@h/': x\n",
                &["pw123"]
            ),
            "fatal: unable to access 'https://u:***@h/': x"
        );
    }

    #[test]
    fn git_is_restricted_to_the_urls_protocol() {
        let a = git_attempt(&["https"], "https://h/r".into(), vec![]);
        let options: Vec<String> = a
            .options
            .iter()
            .map(|o| o.to_string_lossy().into_owned())
            .collect();
        let joined = options.join(" ");
        assert!(joined.starts_with("-c protocol.allow=never -c protocol.https.allow=always"));
        assert!(
            joined.ends_with("clone --depth 1 --quiet --template="),
            "{joined}"
        );
        let env: Vec<(&str, String)> = a
            .env
            .iter()
            .map(|(k, v)| (*k, v.to_string_lossy().into_owned()))
            .collect();
        assert!(env.contains(&("GIT_ALLOW_PROTOCOL", "https".into())));
        assert!(env.contains(&("GIT_CONFIG_NOSYSTEM", "1".into())));
        assert!(env.contains(&("GIT_CONFIG_GLOBAL", "/dev/null".into())));
    }
}
