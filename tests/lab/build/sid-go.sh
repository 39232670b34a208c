# Debian sid's Go toolchain and Kubernetes Go -dev packages, unpacked once into a GOPATH under the
# cache (both sid builds share it and one GOCACHE, so the second build compiles only its own code).
# The system's apt state is never touched: a private APT_CONFIG with an empty dpkg status resolves
# the closure, debs are only unpacked with dpkg-deb -x. Sourced after common.sh.
# shellcheck shell=bash
SID_GO="$CACHE_ROOT/build/sid-go"
# Everything both builds import; the apiserver packages come in as dependencies.
SID_PACKAGES=(golang-go golang-k8s-apiextensions-apiserver-dev golang-k8s-component-base-dev golang-k8s-api-dev golang-k8s-client-go-dev)
SID_MAX_AGE_DAYS=14

# Exit 3 (one SKIP-REASON line on stderr) when sid cannot be downloaded, so callers skip loudly.
sid_unavailable() { echo "SKIP-REASON: $*" >&2; exit 3; }

# Sets GOROOT, GOPATH, PATH and the Go build environment for the unpacked closure, unpacking it first.
sid_go_env() {
  if [ ! -f "$SID_GO/.complete" ] || [ -n "$(find "$SID_GO/.complete" -mtime +$SID_MAX_AGE_DAYS 2>/dev/null)" ]; then
    sid_go_unpack
  fi
  local goroot; goroot=$(ls -d "$SID_GO"/root/usr/lib/go-1.* | sort -V | tail -1)
  export GOROOT=$goroot PATH=$goroot/bin:$PATH GOPATH=$SID_GO/root/usr/share/gocode GO111MODULE=off \
    GOTOOLCHAIN=local GOPROXY=off CGO_ENABLED=0 GOFLAGS= GOCACHE=$SID_GO/gocache
  go version >/dev/null
}

# The version of a -dev package in the closure (Debian revision and +ds suffixes dropped).
sid_version() {
  dpkg-deb -f "$SID_GO"/debs/"$1"_*.deb Version | cut -d- -f1 | sed 's/+.*//'
}

sid_go_unpack() {
  log "unpacking Debian sid's Go and Kubernetes -dev packages (first time only, ~2 min)"
  local s=$SID_GO/apt root=$SID_GO/root debs=$SID_GO/debs
  rm -rf "$SID_GO" && mkdir -p "$s/lists/partial" "$s/cache/archives/partial" "$s/parts" "$s/dpkg/updates" "$debs" "$root"
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
  if ! APT_CONFIG="$s/apt.conf" apt-get update -qq --error-on=any >"$SID_GO/apt.log" 2>&1; then
    sid_unavailable "Debian sid package lists could not be downloaded ($(grep -m1 'Failed to fetch' "$SID_GO/apt.log" || tail -1 "$SID_GO/apt.log"))"
  fi
  (
    cd "$debs"
    APT_CONFIG="$s/apt.conf" apt-get install -s "${SID_PACKAGES[@]}" 2>>"$SID_GO/apt.log" \
      | awk '/^Inst/{print $2}' | grep -E -- '-dev$|^golang-1\.[0-9]+-(go|src)$' > pkgs.txt || true
    if [ ! -s pkgs.txt ] || ! APT_CONFIG="$s/apt.conf" apt-get download $(cat pkgs.txt) >>"$SID_GO/apt.log" 2>&1; then
      sid_unavailable "Debian sid Go packages could not be resolved or downloaded ($(tail -1 "$SID_GO/apt.log"))"
    fi
    for f in *.deb; do dpkg-deb -x "$f" "$root"; done
  ) || exit $?
  rm -rf "$s/cache/archives"
  touch "$SID_GO/.complete"
}
