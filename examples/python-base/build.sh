#!/usr/bin/env bash
# Builds the Python base image for dtaas servables, here, from Debian packages: no image is
# pulled. A Debian 12 root file system with python3, Flask and requests (mmdebstrap, from this
# machine's apt sources) imported into the Docker engine with `docker import`
# (dtaas/python-root:<key>), and the dtaas SDK (sdk/python/dtaas) added in its dist-packages by a
# `docker build` FROM it: dtaas/python:bookworm.
#
#   examples/python-base/build.sh            # builds the image unless it is up to date
#   examples/python-base/build.sh --force    # builds it again whatever is there
#
# Idempotent and cheap when nothing changed: the root (about a minute of mmdebstrap) is kept in
# ${XDG_CACHE_HOME:-~/.cache}/dtaas-tests/, named for the packages it holds, and the image is
# labelled with that name and the SDK's content hash; when the image in the engine carries the
# same label, nothing is done. Concurrent runs wait for each other (flock). Needs root (or
# mmdebstrap's unshare mode), mmdebstrap, flock and a running Docker engine.
#
# The image's stop signal is SIGINT: python3 as a container's PID 1 ignores SIGTERM (the kernel
# gives PID 1 no default action), so a stop would wait for SIGKILL; SIGINT raises
# KeyboardInterrupt, which ends Flask's server and most scripts at once.
#
# Environment: DTAAS_PYTHON_IMAGE (the image's name; default dtaas/python:bookworm).
set -euo pipefail

image=${DTAAS_PYTHON_IMAGE:-dtaas/python:bookworm}
packages=python3-minimal,python3-flask,python3-requests
# Translations, manual pages and documentation (but the copyright files) left out: a fifth less
# to push to the appliance's registry with every image built on this one.
dpkg_options=(
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
)
here=$(cd "$(dirname "$0")" && pwd)
sdk=$(cd "$here/../../sdk/python" && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/dtaas-tests
force=0
case ${1:-} in
  --force) force=1 ;;
  "") ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

die() { echo "python-base: $*" >&2; exit 1; }
for tool in mmdebstrap docker flock sha256sum; do
  command -v "$tool" >/dev/null || die "$tool is missing (Debian: apt-get install mmdebstrap docker.io util-linux coreutils)"
done
[[ -f $sdk/dtaas/__init__.py ]] || die "no SDK at $sdk/dtaas"

hash_of() { sha256sum | cut -c1-16; }
# The root's name: what mmdebstrap is asked for.
root_key=$(printf 'bookworm --variant=apt --include=%s %s' "$packages" "${dpkg_options[*]}" | hash_of)
# The SDK's content: every file of the package (path and bytes), caches left out.
sdk_key=$(cd "$sdk" && find dtaas -type f -name '*.py' -not -path '*/__pycache__/*' | LC_ALL=C sort \
  | while read -r f; do printf '%s\n' "$f"; sha256sum <"$f"; done | hash_of)
# The image's own settings (the Dockerfile below): bump when they change.
recipe=2
want="root-$root_key sdk-$sdk_key recipe-$recipe"

mkdir -p "$cache"
exec 9>"$cache/python-base.lock"
flock 9

have=$(docker image inspect -f '{{ index .Config.Labels "dtaas.python-base" }}' "$image" 2>/dev/null || true)
if [[ $force == 0 && $have == "$want" ]]; then
  echo "python-base: $image is up to date ($want)"
  exit 0
fi

root=$cache/python-base-root-$root_key.tar
if [[ ! -f $root || $force == 1 ]]; then
  echo "python-base: making the Debian 12 root with mmdebstrap ($packages); about a minute" >&2
  partial=$cache/python-base-root-$root_key.partial-$$.tar
  trap 'rm -f "$partial"' EXIT
  mmdebstrap --quiet --variant=apt --include="$packages" "${dpkg_options[@]}" bookworm "$partial" \
    || die "mmdebstrap failed"
  mv "$partial" "$root"
  trap - EXIT
  # Roots of other package lists are not used any more.
  find "$cache" -maxdepth 1 -name 'python-base-root-*.tar' ! -name "${root##*/}" -delete
fi

# The root as an image of its own, imported once: an SDK change rebuilds only the layer above.
root_image=dtaas/python-root:$root_key
if ! docker image inspect "$root_image" >/dev/null 2>&1 || [[ $force == 1 ]]; then
  docker import --change 'ENV LANG=C.UTF-8' "$root" "$root_image" >/dev/null \
    || die "docker import of $root failed"
  # Roots of other package lists, unless images still use them.
  for other in $(docker images --format '{{.Repository}}:{{.Tag}}' dtaas/python-root); do
    [[ $other == "$root_image" ]] || docker rmi "$other" >/dev/null 2>&1 || true
  done
fi

# The SDK on top, in Debian's dist-packages (only its modules: no caches).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$sdk" && find dtaas -type f -name '*.py' -not -path '*/__pycache__/*') | while read -r f; do
  install -D -m 0644 "$sdk/$f" "$work/$f"
done
cat >"$work/Dockerfile" <<DOCKERFILE
FROM $root_image
COPY dtaas /usr/lib/python3/dist-packages/dtaas
ENV LANG=C.UTF-8 PYTHONUNBUFFERED=1
STOPSIGNAL SIGINT
LABEL dtaas.python-base="$want"
CMD ["python3"]
DOCKERFILE

old=$(docker image inspect -f '{{ .Id }}' "$image" 2>/dev/null || true)
DOCKER_BUILDKIT=0 docker build --quiet --tag "$image" "$work" >"$work/build.log" 2>&1 \
  || { cat "$work/build.log" >&2; die "docker build of $image failed"; }
new=$(docker image inspect -f '{{ .Id }}' "$image")
# The image this one replaces, unless something still uses it.
if [[ -n $old && $old != "$new" ]]; then docker rmi "$old" >/dev/null 2>&1 || true; fi

docker run --rm --network none "$image" python3 -c 'import flask, requests, dtaas' \
  || die "$image was built, but python3 cannot import flask, requests and dtaas in it"
echo "python-base: built $image ($want)"
