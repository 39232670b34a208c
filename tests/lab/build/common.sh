# Shared by the lab build scripts: cache location, locking and apt helpers.
# shellcheck shell=bash
set -euo pipefail
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/tke-kms"
mkdir -p "$CACHE_ROOT"
# TKE_KMS_DEBIAN_MIRROR overrides the machine's mirror (tests point it at a dead one to check the skip path).
MIRROR=${TKE_KMS_DEBIAN_MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

log() { printf '[lab-build %s] %s\n' "$(date +%T)" "$*" >&2; }

apt_install() {
  # --no-upgrade: never touch packages the machine already has.
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-upgrade "$@" >/dev/null
}

apt_update_once() {
  local stamp=/var/lib/apt/periodic/tke-kms-update-stamp
  if [ ! -f "$stamp" ] || [ -n "$(find "$stamp" -mmin +360 2>/dev/null)" ] || [ "${1:-}" = force ]; then
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    mkdir -p "$(dirname "$stamp")" && touch "$stamp"
  fi
}

# Serialise concurrent builders of the same artefact (make demo and make test may race).
with_lock() {
  local name=$1; shift
  exec {lockfd}>"$CACHE_ROOT/.$name.lock"
  flock "$lockfd"
  "$@"
}
