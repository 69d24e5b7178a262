//! What a build's `repo_url` may name: a remote repository over `https://`, `http://`,
//! `ssh://`, `git://` or the scp-like `user@host:path` (ssh), or a repository on the server's
//! own disk (an absolute path, `file:///abs/path`, or Mercurial's `file:/abs/path`), which only
//! an administrator's `images.allow_local_repos` opens (the engine checks that, and where the
//! host's addresses lead). Everything else is refused: other schemes (git's `ext::`,
//! `fd::`, hg's `bundle:`, `ftp://`, ...), relative paths (they would resolve against the
//! server's working directory), option-like text.
//!
//! Pure: this only reads the text.

use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;

/// The longest `repo_url` taken.
pub const MAX_URL: usize = 2048;

/// The transports a remote repository may be reached over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteScheme {
    Https,
    Http,
    Ssh,
    Git,
}

impl RemoteScheme {
    pub fn name(self) -> &'static str {
        match self {
            RemoteScheme::Https => "https",
            RemoteScheme::Http => "http",
            RemoteScheme::Ssh => "ssh",
            RemoteScheme::Git => "git",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            RemoteScheme::Https => 443,
            RemoteScheme::Http => 80,
            RemoteScheme::Ssh => 22,
            RemoteScheme::Git => 9418,
        }
    }
}

/// A remote repository's address, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRepo {
    pub scheme: RemoteScheme,
    /// `user` or `user:password` as written (ssh and git:// take a user only).
    pub userinfo: Option<String>,
    /// A host name (lowercase) or an IP address (without brackets).
    pub host: String,
    pub port: Option<u16>,
    /// From the first `/` (URLs, with any query) or what follows the `:` (scp-like).
    pub path: String,
    /// Written as `user@host:path`.
    pub scp_like: bool,
}

/// What `repo_url` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoSource {
    Remote(RemoteRepo),
    /// An absolute path on the server's disk.
    Local(PathBuf),
}

impl RemoteRepo {
    /// The port connected to.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(self.scheme.default_port())
    }

    /// The host as a literal IP address, when it is one.
    pub fn host_ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    fn user(&self) -> Option<&str> {
        self.userinfo
            .as_deref()
            .map(|u| u.split_once(':').map_or(u, |(user, _)| user))
    }

    /// The password written in the URL, if any.
    pub fn password(&self) -> Option<&str> {
        self.userinfo
            .as_deref()
            .and_then(|u| u.split_once(':'))
            .map(|(_, p)| p)
            .filter(|p| !p.is_empty())
    }

    /// The address as written, with the host replaced by `host` (a name or an IP address).
    fn render(&self, host: &str, redact: bool) -> String {
        let host = bracket(host);
        let userinfo = match (&self.userinfo, redact, self.password()) {
            (Some(_), true, Some(_)) => format!("{}:***@", self.user().unwrap_or_default()),
            (Some(u), _, _) => format!("{u}@"),
            (None, _, _) => String::new(),
        };
        if self.scp_like {
            return format!("{userinfo}{host}:{}", self.path);
        }
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        format!(
            "{}://{userinfo}{host}{port}{}",
            self.scheme.name(),
            self.path
        )
    }

    /// The address for messages: a password in it is replaced by `***`.
    pub fn display(&self) -> String {
        self.render(&self.host, true)
    }

    /// The address with the host replaced by the address it was checked to resolve to (git:
    /// `git://`, `ssh://` and the scp-like form, which git takes with `[v6]` too).
    pub fn pinned(&self, ip: IpAddr) -> String {
        self.render(&ip.to_string(), false)
    }

    /// The ssh address for Mercurial, which knows no scp-like form: `ssh://user@ip[:port]/path`
    /// (`//path` for an absolute path; a relative one is from the login's home, as with scp).
    pub fn pinned_hg_ssh(&self, ip: IpAddr) -> String {
        if !self.scp_like {
            return self.pinned(ip);
        }
        let user = self.user().map(|u| format!("{u}@")).unwrap_or_default();
        format!("ssh://{user}{}/{}", bracket(&ip.to_string()), self.path)
    }
}

fn bracket(host: &str) -> String {
    if host.parse::<Ipv6Addr>().is_ok() {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// The accepted forms, for messages.
pub const ACCEPTED: &str = "https://, http://, ssh://, git:// or user@host:path";

/// The forms of `repo_url` the JSON API documents (`/v1`), as one regular expression that
/// JSON Schema, Python and Rust read alike: printable ASCII only; `https://`, `http://` and
/// `git://` addresses without a user, `ssh://` ones with an optional user, each with a host
/// name (no IPv6 literal), an optional port from 1 to 65535 without leading zeros and an
/// optional path (no `#`); the scp-like `user@host:path` (no `:` in the path, which does not
/// start with `//`); and absolute
/// paths on the server (no `#`, `%`, `?` or `:`). Every string it matches, [`parse_repo_url`]
/// takes (a unit test checks it); kabuto's `POST /image` takes the other forms too.
pub const DOCUMENTED_PATTERN: &str = concat!(
    r"^(?:(?:(?:https?|git)://|ssh://(?:[A-Za-z0-9._][A-Za-z0-9._-]*@)?)",
    r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}",
    r"(?::(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?",
    r"(?:[/?][\x21\x22\x24-\x7e]*)?",
    r"|[A-Za-z0-9._][A-Za-z0-9._-]*@[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}:",
    r"(?:[A-Za-z0-9._~][\x21\x22\x24-\x39\x3b-\x7e]*",
    r"|/(?:[\x21\x22\x24-\x2e\x30-\x39\x3b-\x7e][\x21\x22\x24-\x39\x3b-\x7e]*)?)",
    r"|/[\x21\x22\x24\x26-\x39\x3b-\x3e\x40-\x7e]*)$"
);

/// Whether `url` has one of the [`DOCUMENTED_PATTERN`] forms (at most [`MAX_URL`] long).
pub fn documented_form(url: &str) -> bool {
    static PATTERN: std::sync::LazyLock<Option<regex::Regex>> =
        std::sync::LazyLock::new(|| regex::Regex::new(DOCUMENTED_PATTERN).ok());
    url.len() <= MAX_URL && PATTERN.as_ref().is_some_and(|p| p.is_match(url))
}

/// Reads `repo_url`: a remote repository, or a path on the server's disk, or why neither.
pub fn parse_repo_url(url: &str) -> Result<RepoSource, String> {
    if url.is_empty() {
        return Err("repo_url is empty".into());
    }
    if url.len() > MAX_URL {
        return Err(format!("repo_url is longer than {MAX_URL} characters"));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("repo_url may not contain spaces or control characters".into());
    }
    if url.starts_with('-') {
        return Err("repo_url may not start with '-'".into());
    }
    if let Some((scheme, rest)) = url.split_once("://") {
        let valid_scheme = scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        let scheme = scheme.to_ascii_lowercase();
        let remote = match scheme.as_str() {
            "https" => RemoteScheme::Https,
            "http" => RemoteScheme::Http,
            "ssh" => RemoteScheme::Ssh,
            "git" => RemoteScheme::Git,
            "file" => return file_url(rest),
            _ if valid_scheme => {
                return Err(format!(
                    "repo_url: the scheme {scheme}:// is not allowed; use {ACCEPTED}"
                ));
            }
            _ => return Err(format!("repo_url is not an address; use {ACCEPTED}")),
        };
        return url_form(remote, rest).map(RepoSource::Remote);
    }
    let transport = url.find("::").map(|i| &url[..i]);
    if transport.is_some_and(|t| {
        t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    }) {
        // git's `<transport>::<address>` (ext::, fd::, remote helpers).
        return Err(format!(
            "repo_url: transport prefixes (like ext::) are not allowed; use {ACCEPTED}"
        ));
    }
    if let Some(rest) = strip_prefix_ignore_case(url, "file:") {
        return absolute_path(rest);
    }
    if url.starts_with('/') {
        return absolute_path(url);
    }
    // git's rule: a ':' before any '/' makes it scp-like (`[user@]host:path`, `[user@][v6]:path`).
    let split = match url.find('[') {
        Some(open) if !url[..open].contains(['/', ':']) => url[open..]
            .find("]:")
            .map(|close| (&url[..open + close + 1], &url[open + close + 2..])),
        _ => url.split_once(':'),
    };
    match split {
        Some((authority, path)) if !authority.contains('/') => scp_form(authority, path),
        _ => Err(format!(
            "repo_url {url:?} is a relative path; paths on the server are not allowed here \
             (use {ACCEPTED})"
        )),
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    match text.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => text.get(prefix.len()..),
        _ => None,
    }
}

/// `file://[localhost]/abs/path`.
fn file_url(rest: &str) -> Result<RepoSource, String> {
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if !(authority.is_empty() || authority.eq_ignore_ascii_case("localhost")) {
        return Err("repo_url: a file:// address must name this server (file:///path)".into());
    }
    absolute_path(path)
}

fn absolute_path(path: &str) -> Result<RepoSource, String> {
    if !path.starts_with('/') {
        return Err(format!(
            "repo_url: {path:?} is a relative path; a repository on the server needs an \
             absolute path"
        ));
    }
    if path.contains(['%', '?', '#']) {
        return Err("repo_url: a local path may not contain '%', '?' or '#'".into());
    }
    Ok(RepoSource::Local(PathBuf::from(path)))
}

/// After `scheme://`: `[userinfo@]host[:port][/path]`.
fn url_form(scheme: RemoteScheme, rest: &str) -> Result<RemoteRepo, String> {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if path.starts_with('#') || path.contains('#') {
        return Err("repo_url may not contain a fragment ('#')".into());
    }
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if let Some(u) = userinfo {
        check_userinfo(scheme, u)?;
    }
    let (host, port) = split_host_port(hostport)?;
    let path = match path {
        "" => "/".to_owned(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_owned(),
    };
    Ok(RemoteRepo {
        scheme,
        userinfo: userinfo.map(str::to_owned),
        host,
        port,
        path,
        scp_like: false,
    })
}

/// `[user@]host:path`, ssh.
fn scp_form(authority: &str, path: &str) -> Result<RepoSource, String> {
    let (user, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if let Some(u) = user {
        check_userinfo(RemoteScheme::Ssh, u)?;
    }
    let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6
            .parse::<Ipv6Addr>()
            .map(|a| a.to_string())
            .map_err(|_| format!("repo_url: {host:?} is not an IPv6 address"))?,
        None => check_host_name(host)?,
    };
    if path.is_empty() || path.starts_with('-') {
        return Err("repo_url: the repository path after ':' is missing".into());
    }
    Ok(RepoSource::Remote(RemoteRepo {
        scheme: RemoteScheme::Ssh,
        userinfo: user.map(str::to_owned),
        host,
        port: None,
        path: path.to_owned(),
        scp_like: true,
    }))
}

fn check_userinfo(scheme: RemoteScheme, userinfo: &str) -> Result<(), String> {
    match scheme {
        RemoteScheme::Https | RemoteScheme::Http => {
            if userinfo.contains(['/', '@', '?', '#', '[', ']']) {
                return Err("repo_url: the user name and password are not valid".into());
            }
        }
        RemoteScheme::Ssh => {
            let valid = !userinfo.is_empty()
                && !userinfo.starts_with('-')
                && userinfo
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !valid {
                return Err(
                    "repo_url: an ssh user name may hold letters, digits, '.', '_' and '-' only \
                     (no password)"
                        .into(),
                );
            }
        }
        RemoteScheme::Git => {
            return Err("repo_url: git:// addresses take no user name".into());
        }
    }
    Ok(())
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_host_port(hostport: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or("repo_url: an IPv6 address is missing its ']'")?;
        let v6: Ipv6Addr = v6
            .parse()
            .map_err(|_| format!("repo_url: [{v6}] is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or("repo_url: unexpected text after the IPv6 address")?,
            ),
        };
        (v6.to_string(), port)
    } else {
        let (host, port) = match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        };
        (check_host_name(host)?, port)
    };
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("repo_url: {p:?} is not a port"))?,
        ),
    };
    Ok((host, port))
}

/// A host name: letters, digits, '-', '_' and '.' (IPv4 addresses included), at most 253.
fn check_host_name(host: &str) -> Result<String, String> {
    let valid = !host.is_empty()
        && host.len() <= 253
        && !host.starts_with(['-', '.'])
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(host.to_ascii_lowercase())
    } else if host.is_empty() {
        Err("repo_url names no host".into())
    } else {
        Err(format!("repo_url: {host:?} is not a host name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(url: &str) -> RemoteRepo {
        match parse_repo_url(url) {
            Ok(RepoSource::Remote(r)) => r,
            other => panic!("{url}: {other:?}"),
        }
    }

    fn local(url: &str) -> PathBuf {
        match parse_repo_url(url) {
            Ok(RepoSource::Local(p)) => p,
            other => panic!("{url}: {other:?}"),
        }
    }

    fn refused(url: &str) -> String {
        match parse_repo_url(url) {
            Err(e) => e,
            Ok(s) => panic!("{url} was accepted: {s:?}"),
        }
    }

    #[test]
    fn remote_urls_are_taken_apart() {
        let r = remote("https://Example.org/group/repo.git");
        assert_eq!(r.scheme, RemoteScheme::Https);
        assert_eq!(r.host, "example.org");
        assert_eq!(r.port_or_default(), 443);
        assert_eq!(r.path, "/group/repo.git");
        let r = remote("HTTP://user:s3cret@10.1.2.3:8080/r?x=1");
        assert_eq!(r.scheme, RemoteScheme::Http);
        assert_eq!(r.host, "10.1.2.3");
        assert_eq!(r.port, Some(8080));
        assert_eq!(r.password(), Some("s3cret"));
        assert_eq!(r.display(), "http://user:***@10.1.2.3:8080/r?x=1");
        let r = remote("git://[::1]:9419/r");
        assert_eq!((r.host.as_str(), r.port), ("::1", Some(9419)));
        assert_eq!(r.host_ip(), Some("::1".parse().unwrap()));
        let r = remote("ssh://git@host.example:2222/~/r");
        assert_eq!(r.scheme, RemoteScheme::Ssh);
        assert_eq!(
            r.pinned("192.0.2.1".parse().unwrap()),
            "ssh://git@192.0.2.1:2222/~/r"
        );
        assert_eq!(remote("https://h").path, "/");
    }

    #[test]
    fn scp_like_addresses_are_ssh() {
        let r = remote("git@github.com:owner/repo.git");
        assert!(r.scp_like);
        assert_eq!(r.scheme, RemoteScheme::Ssh);
        assert_eq!(r.host, "github.com");
        assert_eq!(r.path, "owner/repo.git");
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        assert_eq!(r.pinned(ip), "git@192.0.2.9:owner/repo.git");
        assert_eq!(r.pinned_hg_ssh(ip), "ssh://git@192.0.2.9/owner/repo.git");
        let abs = remote("host:/srv/repo");
        assert_eq!(abs.pinned_hg_ssh(ip), "ssh://192.0.2.9//srv/repo");
        let v6 = remote("git@[2001:db8::1]:r");
        assert_eq!(v6.host, "2001:db8::1");
        assert_eq!(
            v6.pinned("2001:db8::1".parse().unwrap()),
            "git@[2001:db8::1]:r"
        );
    }

    #[test]
    fn local_forms_are_absolute_paths() {
        assert_eq!(local("/srv/repo"), PathBuf::from("/srv/repo"));
        assert_eq!(local("file:///srv/repo"), PathBuf::from("/srv/repo"));
        assert_eq!(
            local("file://localhost/srv/repo"),
            PathBuf::from("/srv/repo")
        );
        assert_eq!(local("file:/srv/repo"), PathBuf::from("/srv/repo"));
        assert_eq!(local("FILE:/srv/repo"), PathBuf::from("/srv/repo"));
    }

    #[test]
    fn relative_paths_and_other_schemes_are_refused() {
        for url in ["localrepo", "localrepo/.git", "./repo", "../repo", "a/b:c"] {
            assert!(refused(url).contains("relative"), "{url}");
        }
        assert!(refused("file:relative/repo").contains("relative"));
        assert!(refused("file://otherhost/srv/repo").contains("this server"));
        for url in [
            "ftp://h/r",
            "static-http://h/r",
            "ext::sh",
            "fd::3",
            "ext::sh -c x",
        ] {
            let e = refused(url);
            assert!(
                e.contains("not allowed") || e.contains("spaces"),
                "{url}: {e}"
            );
        }
        // Mercurial's `bundle:/x` reads as scp-like ssh to a host named `bundle`: the tools
        // are only ever given the rewritten `ssh` address, never this text.
        let r = remote("bundle:/x");
        assert_eq!((r.scheme, r.host.as_str()), (RemoteScheme::Ssh, "bundle"));
        assert!(refused("ext::sh%20-c%20touch").contains("transport"));
        assert!(refused("-uhttps://x").contains("'-'"));
        assert!(refused("https://h/r\n").contains("control"));
        assert!(refused("https://-h/r").contains("host"));
        assert!(refused("https://h:0/r").contains("port"));
        assert!(refused("https://h:x/r").contains("port"));
        assert!(refused("https://h%2e/r").contains("host"));
        assert!(refused("https:///r").contains("no host"));
        assert!(refused("git://user@h/r").contains("no user"));
        assert!(refused("ssh://-oProxyCommand=x@h/r").contains("ssh user"));
        assert!(refused("-oProxyCommand=x:r").contains("'-'"));
        assert!(refused("https://h/r#frag").contains("fragment"));
        assert!(refused("").contains("empty"));
    }

    #[test]
    fn the_documented_pattern_compiles() {
        assert!(regex::Regex::new(DOCUMENTED_PATTERN).is_ok());
    }

    #[test]
    fn the_documented_forms_are_taken_and_stay_within_what_is_parsed() {
        for url in [
            "https://example.org/group/repo.git",
            "http://h:8080/r?x=1",
            "git://h/r",
            "ssh://git@h:22/r",
            "ssh://h/r",
            "git@github.com:group/repo.git",
            "u@h:~/r",
            "/srv/repos/r",
            "/",
            "https://h",
            "https://h:65535",
            "https://h?q",
        ] {
            assert!(documented_form(url), "{url}");
            assert!(parse_repo_url(url).is_ok(), "{url}");
        }
        for url in [
            "",
            "https://user:pw@h/r",
            "git://u@h/r",
            "https://[::1]/r",
            "https://h:0/r",
            "https://h:080/r",
            "https://h:65536/r",
            "HTTPS://h/r",
            "h:r",
            "u@h:a:b",
            "/a:b",
            "/a%20b",
            "file:///srv/r",
            "https://h/r#x",
            "https://h/r\n",
            "https://h/\u{e9}",
            "-u@h:r",
            "u@h:-r",
        ] {
            assert!(!documented_form(url), "{url}");
        }
        // Everything the pattern matches over an alphabet of the characters that matter, up
        // to a length, is parsed.
        let alphabet: Vec<char> = "h@:/?#%[]-._0a".chars().collect();
        let prefixes = ["https://", "ssh://", "git://", "u@", "/", ""];
        let mut tried = 0;
        for prefix in prefixes {
            let mut words = vec![String::new()];
            for _ in 0..4 {
                let mut next = Vec::new();
                for w in &words {
                    for c in &alphabet {
                        let mut x = w.clone();
                        x.push(*c);
                        next.push(x);
                    }
                }
                for w in &next {
                    let url = format!("{prefix}{w}");
                    tried += 1;
                    if documented_form(&url) {
                        assert!(
                            parse_repo_url(&url).is_ok(),
                            "{url:?} matches, but is refused"
                        );
                    }
                }
                words = next;
            }
        }
        assert!(tried > 200_000, "{tried}");
        assert!(documented_form(&format!(
            "https://h/{}",
            "a".repeat(MAX_URL - 10)
        )));
        assert!(!documented_form(&format!(
            "https://h/{}",
            "a".repeat(MAX_URL)
        )));
    }
}
