#!/usr/bin/env bash
# The lab masters' root filesystem: Debian minbase (debootstrap) with python3 and python3-yaml
# (what the collection's modules need on a master), plus a venv at
# /opt/tke-kms-plugin/venv holding the plugin server's run-time dependencies, pinned as in
# requirements-dev.txt (our plugin itself is installed per lab run, see tests/lab/masters.py).
# Usage: rootfs.sh [SUITE]   SUITE: bookworm (default, Python 3.11), bullseye (3.9), trixie (3.13).
# The plugin needs Python 3.10+, so a bullseye rootfs gets no plugin venv (the collection's modules still
# run there: that is the point of having it).
# Two caches: the debootstrap tarball (slow part, ~2 min, keyed by ROOTFS_VERSION) and the final tree,
# keyed also by the dependency pins, so a pin bump rebuilds in seconds. Idempotent, flock-serialised,
# atomic rename on success. Prints the rootfs directory (read-only lower layer for the masters).
source "$(dirname "$0")/common.sh"
export PATH="$PATH:/usr/sbin:/sbin"  # debootstrap and chroot live there
REPO=$(cd "$(dirname "$0")/../../.." && pwd)
ROOTFS_VERSION=v2
SUITE=${1:-bookworm}
case "$SUITE" in
  bullseye) PY_VERSION=3.9 ;;
  bookworm) PY_VERSION=3.11 ;;
  trixie) PY_VERSION=3.13 ;;
  *) log "unknown suite '$SUITE' (bullseye, bookworm or trixie)"; exit 2 ;;
esac
# The plugin server's run-time dependencies (plugin_server/pyproject.toml), at the repo's pins.
RUNTIME_DEPS=(grpcio grpcio-health-checking protobuf prometheus-client
  tencentcloud-sdk-python-common tencentcloud-sdk-python-kms)

pins() {
  local dep line
  for dep in "${RUNTIME_DEPS[@]}"; do
    line=$(grep -iE "^${dep}==" "$REPO/requirements-dev.txt") || { log "no pin for $dep"; exit 1; }
    echo "$line"
  done
}

PINS=""
if [ "$PY_VERSION" != 3.9 ]; then PINS=$(pins); fi
PIN_HASH=$(printf '%s\n' "$PINS" | sha256sum | cut -c1-10)
TARBALL="$CACHE_ROOT/debootstrap-$SUITE-minbase-$ROOTFS_VERSION.tar"
DEST="$CACHE_ROOT/rootfs-$SUITE-$ROOTFS_VERSION-$PIN_HASH"
WORK="$DEST.tmp"

unmount_work() {
  local m
  for m in "$WORK/dev" "$WORK/proc"; do
    if mountpoint -q "$m"; then umount -l "$m"; fi
  done
}

debootstrap_tarball() {
  [ -f "$TARBALL" ] && return 0
  log "debootstrap $SUITE minbase (first time only, ~2-4 min)"
  command -v debootstrap >/dev/null || { apt_update_once; apt_install debootstrap; }
  local tree="$CACHE_ROOT/build/debootstrap-$SUITE"
  rm -rf "$tree"
  mkdir -p "$(dirname "$tree")"
  debootstrap --variant=minbase --include=python3,python3-venv,python3-yaml "$SUITE" "$tree" "$MIRROR" \
    >"$CACHE_ROOT/build/debootstrap-$SUITE.log" 2>&1 \
    || { tail -20 "$CACHE_ROOT/build/debootstrap-$SUITE.log" >&2; exit 1; }
  # Trim what the masters never use (apt caches and lists, docs, locales): ~260 MB -> ~130 MB.
  rm -rf "$tree"/var/cache/apt/archives/*.deb "$tree"/var/lib/apt/lists/* \
    "$tree"/usr/share/doc/* "$tree"/usr/share/locale/* "$tree"/usr/share/man/*
  tar -C "$tree" --numeric-owner -cf "$TARBALL.tmp" .
  mv "$TARBALL.tmp" "$TARBALL"
  rm -rf "$tree"
}

build() {
  [ -f "$DEST/.tke-kms-rootfs" ] && return 0
  debootstrap_tarball
  log "building $DEST (Python $PY_VERSION; plugin dependencies: $(echo "${PINS:-none}" | tr '\n' ' '))"
  trap unmount_work EXIT
  unmount_work
  rm -rf "$WORK"
  mkdir -p "$WORK"
  tar -C "$WORK" --numeric-owner -xf "$TARBALL"
  if [ -n "$PINS" ]; then install_plugin_deps; fi
  trap - EXIT
  printf '%s\n' "${PINS:-no plugin venv (Python $PY_VERSION)}" >"$WORK/.tke-kms-rootfs"
  rm -rf "$DEST" && mv "$WORK" "$DEST"
  log "done: $DEST"
}

install_plugin_deps() {
  # Wheels come from the host's pip configuration (index, mirrors); the chroot installs offline.
  local wheels="$WORK/tmp/wheelhouse"
  mkdir -p "$wheels"
  local pip=(python3 -m pip)
  [ -x "$REPO/.venv/bin/pip" ] && pip=("$REPO/.venv/bin/pip")
  # shellcheck disable=SC2086
  "${pip[@]}" download -q --only-binary=:all: --python-version "$PY_VERSION" -d "$wheels" $PINS
  mount -t proc proc "$WORK/proc"
  mount --bind /dev "$WORK/dev"
  # A clean environment: the host's PIP_* settings point at host paths.
  local in_root=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root /usr/sbin/chroot "$WORK")
  "${in_root[@]}" /usr/bin/python3 -m venv /opt/tke-kms-plugin/venv
  # shellcheck disable=SC2086
  "${in_root[@]}" /opt/tke-kms-plugin/venv/bin/pip install -q --no-index --find-links /tmp/wheelhouse \
    --disable-pip-version-check $PINS
  unmount_work
  rm -rf "$wheels"
}

with_lock "rootfs-$SUITE-$ROOTFS_VERSION" build
echo "$DEST"
