#!/usr/bin/env bash
# Builds the Debian package of dtaas and prints its path (the only thing on standard output).
#
#   packaging/build-deb.sh                  # builds the release binary, then the package
#   sudo apt install ./target/debian/dtaas_*.deb
#
# cargo-deb builds the release binary (once: it is the package's /usr/bin/dtaas) and packages it
# with what Cargo.toml's [package.metadata.deb] lists: the unit (systemd/), the configuration
# (packaging/dtaas.toml), the man page, the docs and the maintainer scripts (packaging/debian/).
#
# Options:
#   --binary FILE   package FILE as /usr/bin/dtaas instead of building (the integration tests
#                   package the binary the suite already built, rather than compile it again)
#   --output DIR    where to write the package [default: target/debian]
#   --fast          lighter compression (a larger file, written faster)
#
# Needs cargo-deb (cargo install --locked cargo-deb; tests/run.sh installs it) and dpkg-dev
# (dpkg-shlibdeps, for the package's library dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { printf 'packaging/build-deb.sh: %s\n' "$*" >&2; exit 1; }

binary= output= fast=()
while (($#)); do
  case $1 in
    --binary) binary=${2:?--binary needs a file}; shift 2 ;;
    --output) output=${2:?--output needs a directory}; shift 2 ;;
    --fast) fast=(--fast); shift ;;
    *) die "unknown argument $1 (see the comment at the top of this script)" ;;
  esac
done

command -v cargo-deb >/dev/null || die "cargo-deb is missing: cargo install --locked cargo-deb"
command -v dpkg-shlibdeps >/dev/null || die "dpkg-shlibdeps is missing: apt-get install dpkg-dev"

args=(--locked "${fast[@]}")
[[ -n $output ]] && args+=(--output "$output")
if [[ -n $binary ]]; then
  [[ -x $binary ]] || die "--binary $binary is not an executable file"
  # cargo-deb takes target/release/dtaas from the target directory: give it one that holds
  # only this binary.
  stage=$(mktemp -d)
  trap 'rm -rf "$stage"' EXIT
  mkdir "$stage/release"
  cp "$binary" "$stage/release/dtaas"
  [[ -n $output ]] || args+=(--output target/debian)
  export CARGO_TARGET_DIR=$stage
  args+=(--no-build)
fi

# cargo-deb prints the path of the package it wrote as its last line; its progress goes to
# standard error.
out=$(cargo deb "${args[@]}") || die "cargo deb failed"
deb=$(printf '%s\n' "$out" | tail -n 1)
[[ -f $deb ]] || die "cargo deb did not name a package: $out"
realpath "$deb"
