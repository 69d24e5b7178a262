//! The Debian package (issue 12, part 1) and the unit's hardening (part 4).
//!
//! The package is made by `packaging/build-deb.sh --binary` from the `dtaas` this suite was built
//! with (the release build differs only in optimisation; compiling it again would cost the suite
//! minutes), or taken from `DTAAS_TEST_DEB`, a package built beforehand:
//! `DTAAS_TEST_DEB=$(packaging/build-deb.sh) cargo test --test integration -- packaging::`.
//! It is checked with dpkg-deb and lintian, then installed with the real dpkg into a Debian 12
//! root made by mmdebstrap (cached under `~/.cache/dtaas-tests/`). There the packaged server
//! runs as `dtaas` from the packaged configuration, in namespaces of its own: a private mount
//! namespace (the root's /proc and the engine's socket bound in), a PID namespace (whatever runs
//! in it dies with it) and a network namespace (the packaged `listen = "0.0.0.0:5000"` binds
//! nothing of the host's). The host's /etc/dtaas is never touched.
//!
//! Needs root, cargo-deb, dpkg-dev, lintian, mmdebstrap, zstd and systemd-analyze: tests/run.sh
//! installs them.

use crate::harness::*;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}): is it installed?", describe(cmd)))
}

/// Runs `cmd`, which must succeed; its standard output.
fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{} failed ({}):\n{}{}",
        describe(cmd),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The package under test, and the directory it was written to (removed with it).
struct Package {
    deb: PathBuf,
    _dir: Option<TempDir>,
}

fn package() -> Package {
    if let Some(deb) = std::env::var_os("DTAAS_TEST_DEB") {
        let deb = PathBuf::from(deb);
        assert!(deb.is_file(), "DTAAS_TEST_DEB={} is no file", deb.display());
        return Package { deb, _dir: None };
    }
    let dir = tempfile::tempdir().expect("a directory for the package");
    let out = ok(Command::new(repo().join("packaging/build-deb.sh"))
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_dtaas"))
        .arg("--output")
        .arg(dir.path())
        .arg("--fast"));
    let deb = PathBuf::from(out.trim());
    assert!(
        deb.starts_with(dir.path()) && deb.is_file(),
        "build-deb.sh printed {out:?}"
    );
    Package {
        deb,
        _dir: Some(dir),
    }
}

/// A member of the package's control archive (`conffiles`, `postinst`, ...).
fn control_member(deb: &Path, name: &str) -> String {
    ok(Command::new("dpkg-deb").arg("--info").arg(deb).arg(name))
}

/// The value of `key=` in the unit.
fn unit_value(unit: &str, key: &str) -> String {
    let prefix = format!("{key}=");
    unit.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("the unit has no {key}="))
        .to_owned()
}

#[test]
fn the_package_holds_the_binary_unit_configuration_docs_and_scripts() {
    let package = package();
    let deb = &package.deb;

    // Control fields.
    let field = |name: &str| ok(Command::new("dpkg-deb").arg("--field").arg(deb).arg(name));
    assert_eq!(field("Package").trim(), "dtaas");
    assert_eq!(
        field("Version").trim(),
        format!("{}-1", env!("CARGO_PKG_VERSION")),
        "the package's version is the crate's"
    );
    let depends: Vec<String> = field("Depends")
        .trim()
        .split(", ")
        .map(str::to_owned)
        .collect();
    for wanted in ["docker.io | docker-ce", "ca-certificates", "adduser"] {
        assert!(
            depends.iter().any(|d| d == wanted),
            "Depends lacks {wanted:?}: {depends:?}"
        );
    }
    assert!(
        depends.iter().any(|d| d.starts_with("libc6 ")),
        "Depends names the C library the binary links: {depends:?}"
    );
    assert_eq!(field("Recommends").trim(), "busybox-static");
    assert!(field("Maintainer").contains('@'));

    // Files: exactly these, owned by root, with these modes. Nothing under /var: the data
    // directory is the maintainer scripts' business, and purge must be able to remove it.
    let listing = ok(Command::new("dpkg-deb").arg("--contents").arg(deb));
    let mut files = BTreeMap::new();
    for line in listing.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[1], "0/0", "not owned by root: {line}");
        if !cols[0].starts_with('d') {
            files.insert(cols[5].to_owned(), cols[0].to_owned());
        }
    }
    let expected: BTreeMap<String, String> = [
        ("./usr/bin/dtaas", "-rwxr-xr-x"),
        ("./etc/dtaas/dtaas.toml", "-rw-r--r--"),
        ("./usr/lib/systemd/system/dtaas.service", "-rw-r--r--"),
        ("./usr/share/man/man1/dtaas.1.gz", "-rw-r--r--"),
        ("./usr/share/doc/dtaas/README.md", "-rw-r--r--"),
        ("./usr/share/doc/dtaas/SECURITY.md", "-rw-r--r--"),
        ("./usr/share/doc/dtaas/ARCHITECTURE.md", "-rw-r--r--"),
        ("./usr/share/doc/dtaas/copyright", "-rw-r--r--"),
        ("./usr/share/doc/dtaas/changelog.Debian.gz", "-rw-r--r--"),
        ("./usr/share/lintian/overrides/dtaas", "-rw-r--r--"),
    ]
    .into_iter()
    .map(|(p, m)| (p.to_owned(), m.to_owned()))
    .collect();
    assert_eq!(files, expected, "the package's files:\n{listing}");

    // The files are the repository's.
    let unpacked = tempfile::tempdir().expect("a directory to unpack into");
    ok(Command::new("dpkg-deb")
        .arg("--extract")
        .arg(deb)
        .arg(unpacked.path()));
    let u = unpacked.path();
    for (inside, source) in [
        ("etc/dtaas/dtaas.toml", "packaging/dtaas.toml"),
        (
            "usr/lib/systemd/system/dtaas.service",
            "systemd/dtaas.service",
        ),
        ("usr/share/doc/dtaas/README.md", "README.md"),
        ("usr/share/doc/dtaas/SECURITY.md", "SECURITY.md"),
        ("usr/share/doc/dtaas/ARCHITECTURE.md", "ARCHITECTURE.md"),
        ("usr/share/doc/dtaas/copyright", "packaging/copyright"),
        (
            "usr/share/lintian/overrides/dtaas",
            "packaging/lintian-overrides",
        ),
    ] {
        assert!(
            read(u.join(inside)) == read(repo().join(source)),
            "/{inside} is not {source}"
        );
    }
    let gunzip = |path: &Path| {
        use std::io::Read;
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(path).expect("open"))
            .read_to_string(&mut text)
            .expect("gunzip");
        text
    };
    assert_eq!(
        gunzip(&u.join("usr/share/man/man1/dtaas.1.gz")),
        read(repo().join("packaging/dtaas.1"))
    );
    let changelog = gunzip(&u.join("usr/share/doc/dtaas/changelog.Debian.gz"));
    assert!(
        changelog.starts_with(&format!("dtaas ({}-1) ", env!("CARGO_PKG_VERSION"))),
        "packaging/debian/changelog needs an entry for this version: {changelog}"
    );

    // The configuration is a conffile: dpkg keeps an admin's changes.
    assert_eq!(control_member(deb, "conffiles"), "/etc/dtaas/dtaas.toml\n");

    // Maintainer scripts: ours, with cargo-deb's systemd snippets in place of #DEBHELPER#.
    let postinst = control_member(deb, "postinst");
    let prerm = control_member(deb, "prerm");
    let postrm = control_member(deb, "postrm");
    for (name, script) in [
        ("postinst", &postinst),
        ("prerm", &prerm),
        ("postrm", &postrm),
    ] {
        assert!(script.starts_with("#!/bin/sh\n"), "{name}");
        assert!(script.contains("\nset -e\n"), "{name} stops at a failure");
        assert!(
            !script.contains("#DEBHELPER#"),
            "{name}: snippets not put in"
        );
        ok(Command::new("sh").args(["-n", "-c", script]));
    }
    for needle in [
        "adduser --system --group --home /var/lib/dtaas",
        "adduser dtaas docker >/dev/null",
        "addgroup --system docker",
        "install -d -o dtaas -g dtaas -m 0700 /var/lib/dtaas",
        "deb-systemd-helper enable dtaas.service",
        "if [ -d /run/systemd/system ]; then",
        "deb-systemd-invoke $_dh_action dtaas.service",
    ] {
        assert!(postinst.contains(needle), "postinst lacks {needle:?}");
    }
    assert!(prerm.contains("deb-systemd-invoke stop dtaas.service"));
    assert!(
        postrm.contains("if [ \"$1\" = \"purge\" ]; then\n\trm -rf /var/lib/dtaas\nfi"),
        "postrm deletes the data on purge, and only then:\n{postrm}"
    );
    assert_eq!(postrm.matches("rm -rf").count(), 1, "{postrm}");

    // The unit the package ships agrees with the scripts and the configuration.
    let unit = read(u.join("usr/lib/systemd/system/dtaas.service"));
    assert_eq!(unit_value(&unit, "User"), "dtaas");
    assert_eq!(unit_value(&unit, "SupplementaryGroups"), "docker");
    assert_eq!(unit_value(&unit, "StateDirectory"), "dtaas");
    let mode = unit_value(&unit, "StateDirectoryMode");
    assert_eq!(mode, "0700", "the data directory is the server's alone");
    assert!(postinst.contains(&format!("-m {mode} /var/lib/dtaas")));
    assert_eq!(
        unit_value(&unit, "ExecStart"),
        "/usr/bin/dtaas serve --config /etc/dtaas/dtaas.toml"
    );
    assert!(
        !unit.contains("DTAAS_DATA_DIR"),
        "the data directory comes from the configuration `dtaas admin` reads too"
    );
    let config: toml::Table = read(u.join("etc/dtaas/dtaas.toml")).parse().expect("TOML");
    assert_eq!(config["data_dir"].as_str(), Some("/var/lib/dtaas"));
}

#[test]
fn lintian_reports_no_errors_and_every_override_is_needed_and_explained() {
    let package = package();
    let out = run(Command::new("lintian")
        .args(["--fail-on", "error", "--show-overrides"])
        .arg(&package.deb));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("lintian:\n{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "lintian failed ({})", out.status);
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("E: ")).collect();
    assert!(errors.is_empty(), "lintian errors: {errors:#?}");

    let overrides = read(repo().join("packaging/lintian-overrides"));
    let mut previous = "";
    for line in overrides.lines() {
        if let Some(tag) = line.strip_prefix("dtaas: ") {
            let tag = tag.split_whitespace().next().expect("a tag");
            assert!(
                previous.starts_with('#'),
                "the override of {tag} needs its reason in a comment above it"
            );
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("O: dtaas: {tag}"))),
                "lintian no longer reports {tag}: remove its override"
            );
        }
        previous = line;
    }
}

/// `#key = value` (no space after `#`) is a setting left at its default; `# text` is prose.
fn uncomment_settings(text: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase()) => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn leaves(table: &toml::Table, prefix: &str, out: &mut BTreeMap<String, toml::Value>) {
    for (k, v) in table {
        let path = format!("{prefix}{k}");
        match v {
            toml::Value::Table(t) => leaves(t, &format!("{path}."), out),
            other => {
                out.insert(path, other.clone());
            }
        }
    }
}

#[tokio::test]
async fn the_packaged_configuration_lists_every_key_with_its_default() {
    let path = repo().join("packaging/dtaas.toml");
    let text = read(&path);

    // What the package sets, and nothing else.
    let set: toml::Table = text.parse().expect("packaging/dtaas.toml is TOML");
    let mut chosen = BTreeMap::new();
    leaves(&set, "", &mut chosen);
    let expected: BTreeMap<String, toml::Value> = [
        ("listen", "0.0.0.0:5000"),
        ("data_dir", "/var/lib/dtaas"),
        ("registration", "closed"),
        ("tls.mode", "on"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), toml::Value::String(v.to_owned())))
    .collect();
    assert_eq!(chosen, expected, "the package's own choices");

    // With every commented setting in force, the file says exactly what `--print-config` prints
    // for it: every key is there, each with the built-in default.
    let mut all: toml::Table = uncomment_settings(&text)
        .parse()
        .expect("every `#key = value` line is a TOML setting");
    let mut cmd = dtaas_command();
    cmd.env_remove("DOCKER_HOST")
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .arg("--print-config");
    let out = cmd.output().await.expect("dtaas runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut printed: toml::Table = String::from_utf8_lossy(&out.stdout)
        .parse()
        .expect("--print-config prints TOML");
    // The number of CPUs: the file can only give an example.
    for table in [&mut all, &mut printed] {
        let jobs = table["jobs"].as_table_mut().expect("[jobs]");
        assert!(jobs.contains_key("max_parallel"));
        jobs.insert("max_parallel".into(), toml::Value::Integer(0));
    }
    let (mut file_leaves, mut printed_leaves) = (BTreeMap::new(), BTreeMap::new());
    leaves(&all, "", &mut file_leaves);
    leaves(&printed, "", &mut printed_leaves);
    let missing: Vec<&String> = printed_leaves
        .keys()
        .filter(|k| !file_leaves.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "packaging/dtaas.toml lacks {missing:?}: add each as `#key = default` with a comment"
    );
    assert_eq!(file_leaves, printed_leaves);
}

/// The subcommands (as paths) and long options of `dtaas <path> --help`, recursively.
async fn commands_and_options(
    path: Vec<String>,
    commands: &mut Vec<Vec<String>>,
    options: &mut BTreeSet<String>,
) {
    let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
    args.push("--help");
    let out = dtaas_cli(&args, None).await;
    assert!(out.status.success(), "dtaas {args:?}");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut section = "";
    let mut found = Vec::new();
    for line in help.lines() {
        if !line.starts_with(' ') {
            section = line;
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        match section {
            "Commands:" if words[0] != "help" => found.push(words[0].to_owned()),
            "Options:" => {
                if let Some(flag) = words.iter().take(2).find(|w| w.starts_with("--")) {
                    options.insert(flag.trim_end_matches(',').to_owned());
                }
            }
            _ => {}
        }
    }
    for name in found {
        let mut sub = path.clone();
        sub.push(name);
        commands.push(sub.clone());
        Box::pin(commands_and_options(sub, commands, options)).await;
    }
}

#[tokio::test]
async fn the_man_page_covers_every_command_and_option() {
    let (mut commands, mut options) = (Vec::new(), BTreeSet::new());
    commands_and_options(Vec::new(), &mut commands, &mut options).await;
    assert!(commands.iter().any(|c| c == &["admin", "list-users"]));
    assert!(options.contains("--print-config"));
    let man = read(repo().join("packaging/dtaas.1")).replace("\\-", "-");
    for command in &commands {
        let name = command.last().expect("a name");
        assert!(
            man.contains(name.as_str()),
            "dtaas(1) does not describe `dtaas {}`: add it to packaging/dtaas.1",
            command.join(" ")
        );
    }
    for option in &options {
        assert!(
            man.contains(option.as_str()),
            "dtaas(1) does not describe {option}: add it to packaging/dtaas.1"
        );
    }
    assert!(man.starts_with(".TH DTAAS 1 "));
    assert!(
        man.contains(&format!("\"dtaas {}\"", env!("CARGO_PKG_VERSION"))),
        "the man page's .TH names this version"
    );
}

#[test]
fn the_units_hardening_is_what_the_readme_records() {
    let out = ok(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(repo().join("systemd/dtaas.service")));
    let score = out
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for dtaas.service: "))
        .map(|(_, rest)| {
            rest.split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| panic!("no overall score in:\n{out}"));
    let exceptions: BTreeSet<(String, String)> = out
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("✗ "))
        .map(|row| {
            let words: Vec<&str> = row.split_whitespace().collect();
            (words[0].to_owned(), words[words.len() - 1].to_owned())
        })
        .collect();
    assert!(!exceptions.is_empty(), "{out}");

    let readme = read(repo().join("README.md"));
    let section = readme
        .split("### The unit's hardening")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README.md has a section \"The unit's hardening\"");
    let prose = section.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        prose.contains(&format!("rates the unit **{score}**")),
        "systemd-analyze rates the unit {score}: record it in README.md\n{out}"
    );
    let recorded: BTreeSet<(String, String)> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .map(|row| {
            let cells: Vec<&str> = row.split(" | ").collect();
            (
                cells[0].replace(['`'], "").replace("\\|", "|"),
                cells[1].trim().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        recorded, exceptions,
        "README.md's table of exceptions is not what systemd-analyze reports:\n{out}"
    );
}

/// The packages of the Debian root besides apt's: the engine (the package depends on it; its
/// daemon does not run there), what the maintainer scripts use, curl and ip for the checks.
const ROOT_PACKAGES: &str = "docker.io,ca-certificates,adduser,curl,iproute2";

/// The root file system as a tarball, made once with mmdebstrap and kept.
fn debian_root_tarball() -> PathBuf {
    use sha2::Digest;
    let key = hex_prefix(&sha2::Sha256::digest(format!(
        "bookworm --variant=apt --include={ROOT_PACKAGES}"
    )));
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME")
        .join("dtaas-tests");
    let tarball = cache.join(format!("debian12-root-{key}.tar.zst"));
    if tarball.is_file() {
        return tarball;
    }
    std::fs::create_dir_all(&cache).expect("the cache directory");
    eprintln!(
        "making the Debian 12 root {} with mmdebstrap (once; a few minutes)",
        tarball.display()
    );
    // Written aside and renamed: a run that stops half-way leaves no tarball behind.
    let partial = cache.join(format!(
        "debian12-root-{key}.partial-{}.tar.zst",
        std::process::id()
    ));
    let out = run(Command::new("mmdebstrap")
        .args(["--variant=apt", "--quiet"])
        .arg(format!("--include={ROOT_PACKAGES}"))
        .arg("bookworm")
        .arg(&partial));
    if !out.status.success() {
        let _ = std::fs::remove_file(&partial);
        panic!(
            "mmdebstrap failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::rename(&partial, &tarball).expect("the root tarball into place");
    tarball
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// The Debian 12 root, unpacked into a temporary directory. Removed on drop, unless something
/// is still mounted inside it (then it is left, and said so: removing it would reach into the
/// mounts).
struct DebianRoot {
    dir: Option<TempDir>,
}

impl DebianRoot {
    fn new() -> DebianRoot {
        let tarball = debian_root_tarball();
        let dir = tempfile::Builder::new()
            .prefix("dtaas-debian-root-")
            .tempdir()
            .expect("a directory for the root");
        ok(Command::new("tar")
            .args(["--zstd", "--extract", "--file"])
            .arg(&tarball)
            .arg("--directory")
            .arg(dir.path()));
        DebianRoot { dir: Some(dir) }
    }

    fn path(&self) -> &Path {
        self.dir.as_ref().expect("the root").path()
    }

    /// `args` run in the root (chroot) as root, with a clean environment, as dpkg and an admin's
    /// sudo would have it.
    fn chroot(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("chroot");
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C.UTF-8")
            .arg(self.path())
            .args(args);
        cmd
    }

    fn file(&self, path: &str) -> PathBuf {
        self.path().join(path.trim_start_matches('/'))
    }
}

impl Drop for DebianRoot {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else { return };
        let prefix = dir.path().to_string_lossy().into_owned();
        let mounted = std::fs::read_to_string("/proc/self/mountinfo")
            .map(|m| m.lines().any(|l| l.contains(&prefix)))
            .unwrap_or(true);
        if mounted {
            eprintln!("left {prefix}: something is mounted inside it");
            let _ = dir.keep();
        }
    }
}

/// The engine's socket on this machine.
fn docker_socket() -> PathBuf {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if h.starts_with("unix://") => PathBuf::from(&h["unix://".len()..]),
        _ => PathBuf::from("/var/run/docker.sock"),
    }
}

/// Sets up the namespaces' view of the root, then becomes the packaged server as the `dtaas`
/// user with its groups (the unit's User= and SupplementaryGroups=), from the packaged
/// configuration (the unit's ExecStart=). The mounts are private to the mount namespace and go
/// with it.
const IN_NAMESPACES: &str = r#"
set -eu
root=$1 socket=$2
chroot "$root" ip link set lo up
mount -t proc proc "$root/proc"
touch "$root/run/docker.sock"
mount --bind "$socket" "$root/run/docker.sock"
exec chroot "$root" setpriv --reuid=dtaas --regid=dtaas --init-groups -- \
    /usr/bin/dtaas serve --config /etc/dtaas/dtaas.toml
"#;

/// The packaged server running in the root, in its own mount, PID and network namespaces.
struct RootServer {
    unshare: std::process::Child,
    /// The server's process (the first of the PID namespace), as this machine numbers it.
    pid: u32,
    log: PathBuf,
    root: PathBuf,
}

impl RootServer {
    fn start(root: &DebianRoot, log: PathBuf) -> RootServer {
        let file = std::fs::File::create(&log).expect("the server's log");
        let unshare = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--pid", "--net"])
            .args([
                "--fork",
                "--kill-child",
                "--",
                "sh",
                "-c",
                IN_NAMESPACES,
                "sh",
            ])
            .arg(root.path())
            .arg(docker_socket())
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .expect("unshare runs");
        let children = format!("/proc/{0}/task/{0}/children", unshare.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        let pid = loop {
            let text = std::fs::read_to_string(&children).unwrap_or_default();
            if let Some(pid) = text.split_whitespace().next() {
                break pid.parse().expect("a pid");
            }
            assert!(Instant::now() < deadline, "unshare started nothing");
            std::thread::sleep(Duration::from_millis(20));
        };
        RootServer {
            unshare,
            pid,
            log,
            root: root.path().to_owned(),
        }
    }

    /// `args` run as root in the root, in the server's mount and network namespaces.
    fn inside(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C.UTF-8")
            .arg(format!("--target={}", self.pid))
            .args(["--mount", "--net", "--", "chroot"])
            .arg(&self.root)
            .args(args);
        cmd
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// curl over HTTPS to the packaged listener, trusting the server's generated authority.
    fn curl(&self, args: &[&str]) -> Output {
        let mut all = vec![
            "curl",
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            "/var/lib/dtaas/tls/ca.crt",
        ];
        all.extend_from_slice(args);
        run(&mut self.inside(&all))
    }

    /// SIGTERM, as systemctl stop sends it; the server must end cleanly.
    fn stop(mut self) {
        ok(Command::new("kill").args(["-TERM", &self.pid.to_string()]));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.unshare.try_wait().expect("wait") {
                assert!(
                    status.success(),
                    "the server ended {status}:\n{}",
                    self.log()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop on SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RootServer {
    fn drop(&mut self) {
        // --kill-child: the PID namespace, and all in it, ends with unshare.
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn installs_runs_as_dtaas_from_the_packaged_configuration_and_purges_in_a_debian_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "installing a package into a root file system needs root (chroot, namespaces)"
    );
    let package = package();
    let root = DebianRoot::new();
    let socket = docker_socket();
    let docker_gid = std::fs::metadata(&socket)
        .unwrap_or_else(|e| panic!("the engine's socket {}: {e}", socket.display()))
        .gid();

    // The root's docker group is the engine's, as on a machine where the engine's package made
    // both. Then the real dpkg installs the package; the maintainer scripts run in the root.
    ok(&mut root.chroot(&[
        "groupmod",
        "--non-unique",
        "--gid",
        &docker_gid.to_string(),
        "docker",
    ]));
    std::fs::copy(&package.deb, root.file("/tmp/dtaas.deb")).expect("the package into the root");
    // Installed, then installed again (an upgrade's path through the scripts): dpkg's own lines
    // and nothing else, so the scripts neither fail nor complain.
    for _ in 0..2 {
        let install = run(&mut root.chroot(&["dpkg", "--install", "/tmp/dtaas.deb"]));
        let install_text = text(&install);
        assert!(install.status.success(), "dpkg --install:\n{install_text}");
        let dpkg_says = [
            "Selecting previously unselected package dtaas.",
            "(Reading database ...",
            "Preparing to unpack /tmp/dtaas.deb ...",
            "Unpacking dtaas (",
            "Setting up dtaas (",
        ];
        for line in install_text.lines() {
            assert!(
                dpkg_says.iter().any(|s| line.starts_with(s)),
                "the maintainer scripts said {line:?}:\n{install_text}"
            );
        }
    }

    // What postinst made: the user in the docker group, the data directory, the unit enabled
    // (systemd does not run here, so nothing was started: the scripts went on without it).
    let passwd = ok(&mut root.chroot(&["getent", "passwd", "dtaas"]));
    let fields: Vec<&str> = passwd.trim().split(':').collect();
    assert_eq!(fields[5], "/var/lib/dtaas", "{passwd}");
    assert_eq!(fields[6], "/usr/sbin/nologin", "{passwd}");
    let uid: u32 = fields[2].parse().expect("uid");
    let groups = ok(&mut root.chroot(&["id", "--groups", "--name", "dtaas"]));
    assert!(
        groups.split_whitespace().any(|g| g == "docker"),
        "dtaas is not in the docker group: {groups}"
    );
    assert_eq!(
        ok(&mut root.chroot(&["stat", "--format", "%a %U %G", "/var/lib/dtaas"])).trim(),
        "700 dtaas dtaas"
    );
    let wants = root.file("/etc/systemd/system/multi-user.target.wants/dtaas.service");
    assert!(
        std::fs::read_link(&wants).is_ok_and(|t| t.ends_with("systemd/system/dtaas.service")),
        "the unit is not enabled"
    );
    assert_eq!(
        ok(&mut root.chroot(&["dpkg-query", "--show", "--showformat=${Conffiles}", "dtaas"]))
            .split_whitespace()
            .next(),
        Some("/etc/dtaas/dtaas.toml")
    );
    assert_eq!(
        read(root.file("/etc/dtaas/dtaas.toml")),
        read(repo().join("packaging/dtaas.toml"))
    );

    // The packaged binary, as dtaas, from the packaged configuration: TLS on 0.0.0.0:5000 with
    // a certificate it generates, ready once its database and the engine answer.
    let logs = tempfile::tempdir().expect("a directory for the log");
    let server = RootServer::start(&root, logs.path().join("server.log"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = loop {
        let out = server.curl(&["https://127.0.0.1:5000/readyz"]);
        let body = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && body.contains("\"status\":\"ready\"") {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "not ready within 60 s: {}\nserver log:\n{}",
            text(&out),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(ready.contains("\"engine\":{"), "{ready}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid)).expect("status");
    let line = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(line("Uid:"), vec![uid.to_string(); 4], "runs as dtaas");
    assert!(
        line("Groups:").contains(&docker_gid.to_string()),
        "runs with the docker group: {status}"
    );
    assert_eq!(
        ok(&mut root.chroot(&[
            "stat",
            "--format",
            "%a %U",
            "/var/lib/dtaas/tls/ca.crt",
            "/var/lib/dtaas/tls/ca.key"
        ])),
        "600 dtaas\n600 dtaas\n"
    );
    // Without the authority, a client refuses the certificate (60: not verified).
    let untrusted = run(&mut server.inside(&[
        "curl",
        "-sS",
        "--max-time",
        "10",
        "https://127.0.0.1:5000/healthz",
    ]));
    assert_eq!(untrusted.status.code(), Some(60), "{}", text(&untrusted));

    // `dtaas admin` with no flags, as root (sudo): the packaged configuration leads it to the
    // running server's socket.
    let login = unique("pkgadmin");
    let created = run(&mut server.inside(&["dtaas", "admin", "create-user", &login, "--admin"]));
    let created_text = text(&created);
    assert!(created.status.success(), "create-user: {created_text}");
    assert!(
        !created_text.contains("no server running"),
        "went around the running server: {created_text}"
    );
    let password = created_text
        .split("password: ")
        .nth(1)
        .and_then(|p| p.split_whitespace().next())
        .unwrap_or_else(|| panic!("no password in {created_text:?}"))
        .to_owned();
    let listed = run(&mut server.inside(&["dtaas", "admin", "list-users"]));
    let listed_text = text(&listed);
    assert!(listed.status.success(), "list-users: {listed_text}");
    assert!(
        listed_text.contains("registration: closed"),
        "{listed_text}"
    );
    let row = listed_text
        .lines()
        .find(|l| l.contains(&login))
        .unwrap_or_else(|| panic!("{login} not listed: {listed_text}"));
    assert!(row.contains("admin"), "{row}");
    // The server's own user may administer it too.
    let as_dtaas = run(&mut server.inside(&[
        "setpriv",
        "--reuid=dtaas",
        "--regid=dtaas",
        "--init-groups",
        "dtaas",
        "admin",
        "list-users",
    ]));
    assert!(
        as_dtaas.status.success() && text(&as_dtaas).contains(&login),
        "list-users as dtaas: {}",
        text(&as_dtaas)
    );

    // The new admin signs in over TLS; nobody else may sign up (registration closed).
    let status_of = |out: Output| String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let signed_in = server.curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--data-urlencode",
        &format!("login={login}"),
        "--data-urlencode",
        &format!("password={password}"),
        "https://127.0.0.1:5000/login",
    ]);
    assert_eq!(status_of(signed_in), "200", "{}", server.log());
    let registered = server.curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-d",
        "login=someone&password=SecreT-123&email=someone@example.org",
        "https://127.0.0.1:5000/register",
    ]);
    assert_eq!(status_of(registered), "403");
    server.stop();

    // Remove keeps the data and the configuration; purge deletes both.
    ok(&mut root.chroot(&["dpkg", "--remove", "dtaas"]));
    assert!(!root.file("/usr/bin/dtaas").exists());
    assert!(root.file("/var/lib/dtaas/dtaas.redb").is_file());
    assert!(root.file("/etc/dtaas/dtaas.toml").is_file());
    ok(&mut root.chroot(&["dpkg", "--purge", "dtaas"]));
    assert!(!root.file("/var/lib/dtaas").exists(), "purge left the data");
    assert!(
        !root.file("/etc/dtaas").exists(),
        "purge left the configuration"
    );
    assert!(
        std::fs::symlink_metadata(&wants).is_err(),
        "purge left the unit enabled"
    );
    let query = run(&mut root.chroot(&["dpkg-query", "--show", "dtaas"]));
    assert!(!query.status.success(), "dtaas is still known to dpkg");
}
