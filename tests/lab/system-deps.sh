#!/usr/bin/env bash
# Debian packages the tests and the lab need. Idempotent; installs only what is missing.
source "$(dirname "$0")/build/common.sh"
need=()
for pkg in etcd-server etcd-client openssl rsync make golang-go debootstrap util-linux iproute2 curl; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing: ${need[*]}"
  apt_update_once
  apt_install "${need[@]}"
fi
