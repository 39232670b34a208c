#!/usr/bin/env bash
# The apiext lab: a standalone apiextensions-apiserver on k8s.io/apiserver >= 0.29 (the modern KMS v2 code
# path), built from Debian sid's Go -dev packages (tests/lab/build/sid-go.sh). Cached by version.
# Prints the path of the binary. Exit 3 (with one line on stderr) when sid itself cannot be
# downloaded, so callers can skip loudly instead of failing.
source "$(dirname "$0")/common.sh"
source "$(dirname "$0")/sid-go.sh"

# Finished builds only: apiext-0.36.4/, never an interrupted apiext-0.36.4.tmp/.
cached() {
  find "$CACHE_ROOT" -maxdepth 2 -regextype posix-extended \
    -regex "$CACHE_ROOT/apiext-[0-9.]+/apiextensions-apiserver" -type f 2>/dev/null | sort -V | tail -1
}

build() {
  local bin; bin=$(cached)
  if [ -n "$bin" ] && [ -x "$bin" ]; then echo "$bin"; return 0; fi
  sid_go_env
  log "building apiextensions-apiserver from Debian sid (first time only, ~6 min on 2 cores)"
  local version; version=$(sid_version golang-k8s-apiextensions-apiserver-dev)
  local dest="$CACHE_ROOT/apiext-$version"
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
  (
    cd "$GOPATH/src/k8s.io/apiextensions-apiserver" || exit 1
    if ! go build -trimpath -ldflags='-s -w' -o "$dest.tmp/apiextensions-apiserver" . >"$SID_GO/apiext-build.log" 2>&1; then
      # Only upstream code is compiled here, so a compile error is sid's packages out of step.
      tail -40 "$SID_GO/apiext-build.log" >&2
      sid_unavailable "Debian sid's Go packages do not build together (version skew upstream: $(grep -m1 -E '\.go:[0-9]+' "$SID_GO/apiext-build.log" || tail -1 "$SID_GO/apiext-build.log"); log kept in $SID_GO/apiext-build.log)"
    fi
  ) || exit $?
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
  log "done: $dest"
  echo "$dest/apiextensions-apiserver"
}

with_lock sid-go build
