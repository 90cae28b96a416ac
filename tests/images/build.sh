#!/usr/bin/env bash
# Builds the images the tests boot, without any registry:
#   mlflow-k3s-test/systemd-host:bookworm  a Debian 12 host with systemd as PID 1 (Molecule)
#   mlflow-k3s-test/python-base:bookworm   a Debian 12 Python base for the MLflow image
#   mlflow-k3s-test/postgres:15            a STAND-IN for the official postgres:15 image
#                                          (Debian's postgresql-15, same variables)
# All start from a debootstrap root file system imported with `docker import`. The
# host's extra CA certificates are copied into a throw-away build context at run time
# so pip and apt work inside builds; they are never committed.
# Idempotent: each image is tagged with a hash of its inputs and rebuilt only when
# that hash changes. Also installs and starts a Docker engine when there is none.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
suite="${TEST_IMAGES_SUITE:-bookworm}"
prefix="mlflow-k3s-test"
packages="python3,python3-venv,ca-certificates"
log() { printf '[test-images] %s\n' "$*" >&2; }

ensure_docker() {
  if ! command -v dockerd >/dev/null 2>&1; then
    log "installing Debian's docker.io"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
  fi
  if ! docker info >/dev/null 2>&1; then
    log "starting dockerd"
    nohup dockerd >/var/log/dockerd-tests.log 2>&1 &
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && return 0; sleep 1; done
    log "dockerd did not come up; see /var/log/dockerd-tests.log"; exit 1
  fi
}

ensure_debootstrap() {
  command -v debootstrap >/dev/null 2>&1 && return 0
  log "installing debootstrap"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}

# The Debian mirror this machine's apt already uses (deb822 or one-line format).
debian_mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local uri
  uri="$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1 || true)"
  [ -n "$uri" ] || uri="$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -v security | head -n1 || true)"
  [ -n "$uri" ] || { log "no Debian mirror found in apt sources; set DEBIAN_MIRROR"; exit 1; }
  echo "$uri"
}

ca_bundle_dir() {
  local dir="$1"
  mkdir -p "$dir/ca"
  # Only the machine's extra CAs: Debian's own bundle is already in the image.
  find /usr/local/share/ca-certificates -name '*.crt' -exec cp {} "$dir/ca/" \; 2>/dev/null || true
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# Hash of what goes into an image: the given text, the given files and the extra CAs.
inputs_hash() {
  local text="$1"; shift
  { echo "$text"; cat "$@"; cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true; } \
    | sha256sum | cut -c1-12
}

build_rootfs_image() {
  local tag
  tag="$prefix/rootfs:$suite-$(inputs_hash "$suite $packages")"
  if image_exists "$tag"; then echo "$tag"; return; fi
  ensure_debootstrap
  local dir; dir="$(mktemp -d)"
  log "debootstrap $suite (packages: $packages)"
  debootstrap --variant=minbase --include="$packages" "$suite" "$dir" "$(debian_mirror)" >"$dir.log" 2>&1 \
    || { tail -n 20 "$dir.log" >&2; exit 1; }
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  tar -C "$dir" -c . | docker import - "$tag" >/dev/null
  rm -rf "$dir" "$dir.log"
  echo "$tag"
}

# build_from_dockerfile NAME DOCKERFILE ROOTFS [TAG [EXTRA_FILE...]]: extra files are
# copied into the build context and hashed with the Dockerfile.
build_from_dockerfile() {
  local name="$1" dockerfile="$2" rootfs="$3" version="${4:-$suite}"
  shift 3; [ $# -eq 0 ] || shift
  local tag="$prefix/$name:$version"
  local want; want="$(inputs_hash "$rootfs" "$dockerfile" "$@")"
  if [ "$(docker image inspect -f '{{ index .Config.Labels "inputs-hash" }}' "$tag" 2>/dev/null)" = "$want" ]; then
    log "$tag is up to date"; return
  fi
  local ctx; ctx="$(mktemp -d)"
  ca_bundle_dir "$ctx"
  cp "$dockerfile" "$ctx/Dockerfile"
  [ $# -eq 0 ] || cp "$@" "$ctx/"
  log "building $tag"
  docker build -q --build-arg "ROOTFS=$rootfs" --label "inputs-hash=$want" -t "$tag" "$ctx" >/dev/null
  rm -rf "$ctx"
}

main() {
  ensure_docker
  local rootfs; rootfs="$(build_rootfs_image)"
  build_from_dockerfile systemd-host "$here/systemd-host.Dockerfile" "$rootfs"
  build_from_dockerfile python-base "$here/python-base.Dockerfile" "$rootfs"
  build_from_dockerfile postgres "$here/postgres.Dockerfile" "$rootfs" 15 "$here/postgres-entrypoint.sh"
}

main "$@"
