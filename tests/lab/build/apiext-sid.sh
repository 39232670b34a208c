#!/usr/bin/env bash
# Route B: a standalone apiextensions-apiserver on k8s.io/apiserver >= 0.29 (the modern KMS v2 code
# path), built from Debian sid's Go -dev packages. The system's apt state is never touched: a private
# APT_CONFIG with an empty dpkg status resolves the closure, debs are only unpacked with dpkg-deb -x.
# Cached by version. Prints the path of the binary. Exit 3 (with one line on stderr) when sid itself
# cannot be downloaded, so callers can skip loudly instead of failing.
source "$(dirname "$0")/common.sh"

# Finished builds only: apiext-0.36.4/, never an interrupted apiext-0.36.4.tmp/.
cached() {
  find "$CACHE_ROOT" -maxdepth 2 -regextype posix-extended \
    -regex "$CACHE_ROOT/apiext-[0-9.]+/apiextensions-apiserver" -type f 2>/dev/null | sort -V | tail -1
}

build() {
  local bin; bin=$(cached)
  if [ -n "$bin" ] && [ -x "$bin" ]; then echo "$bin"; return 0; fi
  log "building apiextensions-apiserver from Debian sid (first time only, ~8 min on 2 cores)"
  local base="$CACHE_ROOT/build/apiext"
  local s=$base/apt root=$base/root debs=$base/debs
  rm -rf "$base" && mkdir -p "$s/lists/partial" "$s/cache/archives/partial" "$s/parts" "$s/dpkg/updates" "$debs" "$root"
  touch "$s/dpkg/status"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR sid main" > "$s/sources.list"
  cat > "$s/apt.conf" <<EOC
Dir::Etc::SourceList "$s/sources.list";
Dir::Etc::SourceParts "$s/parts";
Dir::State "$s";
Dir::State::Lists "$s/lists";
Dir::State::status "$s/dpkg/status";
Dir::Cache "$s/cache";
APT::Install-Recommends "false";
EOC
  if ! APT_CONFIG="$s/apt.conf" apt-get update -qq --error-on=any >"$base/apt.log" 2>&1; then
    echo "SKIP-REASON: Debian sid package lists could not be downloaded ($(grep -m1 'Failed to fetch' "$base/apt.log" || tail -1 "$base/apt.log"))" >&2; exit 3
  fi
  cd "$debs"
  APT_CONFIG="$s/apt.conf" apt-get install -s golang-k8s-apiextensions-apiserver-dev golang-go 2>>"$base/apt.log" \
    | awk '/^Inst/{print $2}' | grep -E -- '-dev$|^golang-1\.[0-9]+-(go|src)$' > pkgs.txt || true
  if [ ! -s pkgs.txt ] || ! APT_CONFIG="$s/apt.conf" apt-get download $(cat pkgs.txt) >>"$base/apt.log" 2>&1; then
    echo "SKIP-REASON: Debian sid Go packages could not be resolved or downloaded ($(tail -1 "$base/apt.log"))" >&2; exit 3
  fi
  for f in *.deb; do dpkg-deb -x "$f" "$root"; done
  local goroot; goroot=$(ls -d "$root"/usr/lib/go-1.* | sort -V | tail -1)
  local version; version=$(dpkg-deb -f "$debs"/golang-k8s-apiextensions-apiserver-dev_*.deb Version | cut -d- -f1 | sed 's/+.*//')
  local dest="$CACHE_ROOT/apiext-$version"
  mkdir -p "$dest.tmp"
  (
    export GOROOT=$goroot PATH=$goroot/bin:$PATH GOPATH=$root/usr/share/gocode GO111MODULE=off \
      GOTOOLCHAIN=local GOPROXY=off CGO_ENABLED=0 GOFLAGS= GOCACHE=$base/gocache
    # errexit does not apply left of `||`; a broken toolchain or tree is our bug, not sid's.
    cd "$GOPATH/src/k8s.io/apiextensions-apiserver" || exit 1
    go version >/dev/null || exit 1
    if ! go build -trimpath -ldflags='-s -w' -o "$dest.tmp/apiextensions-apiserver" . >"$base/build.log" 2>&1; then
      # Only upstream code is compiled here, so a compile error is sid's packages out of step.
      tail -40 "$base/build.log" >&2
      echo "SKIP-REASON: Debian sid's Go packages do not build together (version skew upstream: $(grep -m1 -E '\.go:[0-9]+' "$base/build.log" || tail -1 "$base/build.log"); log kept in $base/build.log)" >&2
      exit 3
    fi
  ) || exit $?
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
  cd / && rm -rf "$base"
  log "done: $dest"
  echo "$dest/apiextensions-apiserver"
}

with_lock apiext build
