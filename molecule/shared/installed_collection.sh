#!/usr/bin/env bash
# Run a command against the collection as people install it: build the tarball from this checkout
# (ansible-galaxy collection build, so galaxy.yml's build_ignore applies), install it with
# ansible-galaxy collection install into an empty collections path, mount that path read-only, and run
# the command with ANSIBLE_COLLECTIONS_PATH pointing only there and ANSIBLE_ROLES_PATH at an empty
# directory, so nothing of the collection can be resolved from the checkout. The mount is undone and the
# temporary directory removed on exit. Needs root (the read-only bind mount).
# Usage: molecule/shared/installed_collection.sh COMMAND [ARG...]
#   The command sees TKE_KMS_COLLECTIONS_PATH (the installed collections path) and TKE_KMS_ROLES_PATH.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/tke-kms-installed.XXXXXX)
collections="$work/collections"

cleanup() {
  if mountpoint -q "$collections"; then umount "$collections"; fi
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$collections" "$work/roles" "$work/dist"
export TKE_KMS_COLLECTIONS_PATH="$collections" TKE_KMS_ROLES_PATH="$work/roles"
# Set before installing too: with the checkout's ansible.cfg, galaxy would find tke.kms there and skip it.
export ANSIBLE_COLLECTIONS_PATH="$collections" ANSIBLE_ROLES_PATH="$work/roles"
ansible-galaxy collection build --output-path "$work/dist" "$repo" >/dev/null
ansible-galaxy collection install --offline --no-deps -p "$collections" "$work"/dist/tke-kms-*.tar.gz >/dev/null
[ -f "$collections/ansible_collections/tke/kms/MANIFEST.json" ] || { echo "tke.kms was not installed" >&2; exit 1; }
mount --bind "$collections" "$collections"
mount -o remount,ro,bind "$collections"
echo "installed $(basename "$work"/dist/tke-kms-*.tar.gz) read-only at $collections" >&2
"$@"
