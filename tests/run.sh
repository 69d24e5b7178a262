#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test against the real Docker engine.
#
# Makes sure what the tests need is present: installs Debian's packages when run as root and they
# are missing, starts dockerd when it is not running, waits for it. Fails loudly when it cannot.
# CI runs exactly this (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }
die() { printf '\033[1;31mtests/run.sh: %s\033[0m\n' "$*" >&2; exit 1; }

# Debian packages the tests use: the engine, a static busybox for the base image (no image can be
# pulled), curl for the seed's curl flows, git and Mercurial for repository builds, Python
# requests for the seed's Python examples, and Python's venv for schemathesis (below).
PACKAGES=(docker.io busybox-static curl git mercurial python3-requests python3-venv skopeo)
# The Debian package's test (tests/integration/packaging.rs): dpkg-dev for cargo-deb's library
# dependencies (dpkg-shlibdeps), lintian, mmdebstrap and zstd for the cached Debian 12 root it
# installs the package into, and systemd for `systemd-analyze security` on the unit (nothing
# starts it: the tests do not need systemd running).
PACKAGES+=(dpkg-dev lintian mmdebstrap zstd systemd)
# The dashboard's browser tests: headless Chromium driven over WebDriver.
PACKAGES+=(chromium chromium-driver)
# The Python SDK's tests (tests/integration/python_sdk.rs): Debian's pytest runs sdk/python/tests,
# and mmdebstrap (above) makes the Python base image (examples/python-base/build.sh).
PACKAGES+=(python3-pytest)
# The OpenID Connect tests (tests/integration/oidc.rs): PyJWT verifies ID tokens against the
# JWKS (ES256 needs python3-cryptography); a relying party built on Authlib goes through the flow.
PACKAGES+=(python3-jwt python3-cryptography python3-authlib)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    die "missing packages: ${missing[*]}. Install them (sudo apt-get install ${missing[*]}) or run this as root."
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  apt-get install -y -qq "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
fi

# The engine: DOCKER_HOST if it names a unix socket, else the local one.
socket=/var/run/docker.sock
if [[ ${DOCKER_HOST:-} == unix://* ]]; then socket=${DOCKER_HOST#unix://}; fi
engine_up() { curl -fsS --max-time 2 --unix-socket "$socket" http://localhost/_ping >/dev/null 2>&1; }

if ! engine_up; then
  [[ $(id -u) -eq 0 ]] || die "the Docker engine at $socket does not answer; start it (sudo systemctl start docker) or run this as root"
  log=${TMPDIR:-/tmp}/dtaas-tests-dockerd.log
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
    say "starting docker with systemctl"
    systemctl start docker || true
  fi
  if ! engine_up; then
    say "starting dockerd (log: $log)"
    nohup dockerd >"$log" 2>&1 &
  fi
  for _ in $(seq 1 60); do engine_up && break; sleep 1; done
  engine_up || { tail -n 30 "$log" >&2 2>/dev/null || true; die "dockerd did not come up within 60 s"; }
fi
say "Docker engine answers at $socket"

# Schemathesis, from PyPI at a pinned version, for the fuzz test of /v1 (tests/integration/fuzz.rs),
# in a virtual environment of Debian's Python kept between runs. A failed install is removed (a
# venv cannot be moved into place: its scripts name its path), so that the next run starts over.
SCHEMATHESIS_VERSION=4.32.5
venv=${XDG_CACHE_HOME:-$HOME/.cache}/dtaas-tests/schemathesis-$SCHEMATHESIS_VERSION
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -qF "version $SCHEMATHESIS_VERSION"; then
  say "installing schemathesis $SCHEMATHESIS_VERSION (PyPI) into $venv"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  /usr/bin/python3 -m venv "$venv" \
    || { rm -rf "$venv"; die "cannot make a Python virtual environment (python3-venv) at $venv"; }
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" \
    || { rm -rf "$venv"; die "pip could not install schemathesis==$SCHEMATHESIS_VERSION from PyPI"; }
  "$venv/bin/schemathesis" --version | grep -qF "version $SCHEMATHESIS_VERSION" \
    || { rm -rf "$venv"; die "the schemathesis installed is not $SCHEMATHESIS_VERSION"; }
fi
export DTAAS_TEST_SCHEMATHESIS=$venv/bin/schemathesis
say "schemathesis $SCHEMATHESIS_VERSION at $DTAAS_TEST_SCHEMATHESIS"

# cargo-deb, for the Debian package (packaging/build-deb.sh, tests/integration/packaging.rs), from
# crates.io at a pinned version, into Cargo's bin directory (~/.cargo/bin), kept between runs.
CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version 2>/dev/null | grep -qxF "cargo-deb $CARGO_DEB_VERSION"; then
  say "installing cargo-deb $CARGO_DEB_VERSION (crates.io)"
  cargo install --quiet --locked --version "$CARGO_DEB_VERSION" cargo-deb \
    || die "cargo install cargo-deb@$CARGO_DEB_VERSION failed"
  cargo deb --version 2>/dev/null | grep -qxF "cargo-deb $CARGO_DEB_VERSION" \
    || die "cargo-deb $CARGO_DEB_VERSION is installed but \`cargo deb\` does not run it (is ~/.cargo/bin on PATH?)"
fi
say "cargo-deb $CARGO_DEB_VERSION"

say "cargo fmt --check"
cargo fmt --all -- --check || die "code is not formatted: run cargo fmt"
say "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings || die "clippy found problems"
say "unit tests (pure logic and the layering rule: no Docker, no server)"
cargo test --locked --lib
say "integration tests (the real server, the real engine)"
# Most tests wait on the engine, not the CPU: run more of them than there are cores.
export RUST_TEST_THREADS=${RUST_TEST_THREADS:-4}
cargo test --locked --test integration "$@"
