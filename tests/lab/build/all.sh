#!/usr/bin/env bash
# All lab binaries: etcd (apt) first, then route A and route B builds side by side (each is
# mostly one Go build; together they finish in about the time of the longer one instead of the sum).
# Cached builds return at once. Route B unavailable (exit 3) is reported loudly and is not an error.
source "$(dirname "$0")/common.sh"
here=$(dirname "$0")
logs="$CACHE_ROOT/logs"
mkdir -p "$logs"

bash "$here/etcd.sh" >/dev/null

bash "$here/kube-1.20.sh" >"$logs/kube.out" 2>"$logs/kube.err" & kube=$!
bash "$here/apiext-sid.sh" >"$logs/apiext.out" 2>"$logs/apiext.err" & apiext=$!
rc_kube=0; wait "$kube" || rc_kube=$?
rc_apiext=0; wait "$apiext" || rc_apiext=$?

status=0
if [ "$rc_kube" -ne 0 ]; then
  log "route A build FAILED (exit $rc_kube):"; tail -40 "$logs/kube.err" >&2; status=1
else
  log "route A: $(tail -1 "$logs/kube.out")"
fi
case "$rc_apiext" in
  0) log "route B: $(tail -1 "$logs/apiext.out")" ;;
  3) log "route B SKIPPED, KMS v2 tests will skip: $(grep -m1 '^SKIP-REASON:' "$logs/apiext.err" || tail -1 "$logs/apiext.err")" ;;
  *) log "route B build FAILED (exit $rc_apiext):"; tail -40 "$logs/apiext.err" >&2; status=1 ;;
esac
exit "$status"
