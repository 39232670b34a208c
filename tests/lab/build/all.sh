#!/usr/bin/env bash
# All lab binaries: etcd (apt) first, then the kube-1.20 lab beside the two sid builds (the apiext lab's
# apiextensions-apiserver, then the lab's KMS v2 kube-apiserver, which shares its Go build cache).
# Each is mostly one Go build; side by side they finish in about the time of the longer one.
# Cached builds return at once. sid unavailable (exit 3) is reported loudly and is not an error here:
# the KMS v2 tests then skip, and under CI=true fail with the reason. Beside them, the masters' root
# filesystems of the three Debian generations (debootstrap: mostly download and unpack, ~1-2 min each cold).
source "$(dirname "$0")/common.sh"
here=$(dirname "$0")
logs="$CACHE_ROOT/logs"
mkdir -p "$logs"

bash "$here/etcd.sh" >/dev/null

bash "$here/kube-1.20.sh" >"$logs/kube.out" 2>"$logs/kube.err" & kube=$!
sid_builds() {
  bash "$here/apiext-sid.sh" >"$logs/apiext.out" 2>"$logs/apiext.err" || return $?
  bash "$here/kube-v2.sh" >"$logs/kube-v2.out" 2>"$logs/kube-v2.err" || return $?
}
sid_builds & apiext=$!
rootfs_builds() {
  local suite
  for suite in bookworm bullseye trixie; do
    bash "$here/rootfs.sh" "$suite" >>"$logs/rootfs.out" 2>>"$logs/rootfs.err" || return $?
  done
}
: >"$logs/rootfs.out"
rootfs_builds & rootfs=$!
rc_kube=0; wait "$kube" || rc_kube=$?
rc_apiext=0; wait "$apiext" || rc_apiext=$?
rc_rootfs=0; wait "$rootfs" || rc_rootfs=$?

status=0
if [ "$rc_kube" -ne 0 ]; then
  log "kube-1.20 lab build FAILED (exit $rc_kube):"; tail -40 "$logs/kube.err" >&2; status=1
else
  log "kube-1.20 lab: $(tail -1 "$logs/kube.out")"
fi
case "$rc_apiext" in
  0) log "apiext lab: $(tail -1 "$logs/apiext.out")"; log "KMS v2 kube-apiserver: $(tail -1 "$logs/kube-v2.out")" ;;
  3) log "sid builds SKIPPED, KMS v2 tests will skip: $(cat "$logs/apiext.err" "$logs/kube-v2.err" 2>/dev/null | grep -m1 '^SKIP-REASON:')" ;;
  *) log "sid build FAILED (exit $rc_apiext):"; tail -40 "$logs/apiext.err" "$logs/kube-v2.err" 2>/dev/null >&2; status=1 ;;
esac
if [ "$rc_rootfs" -ne 0 ]; then
  log "masters' rootfs build FAILED (exit $rc_rootfs):"; tail -40 "$logs/rootfs.err" >&2; status=1
else
  log "masters' rootfs: $(tr '\n' ' ' <"$logs/rootfs.out")"
fi
exit "$status"
