#!/usr/bin/env bash
# The lab's KMS v2 kube-apiserver (tests/lab/kube_apiserver/*.go) on Debian sid's k8s.io/apiserver:
# openapi-gen writes the core/v1 OpenAPI definitions into the build tree, then one Go build. Cached
# as kube-v2-<apiserver version>-<source hash>/kube-apiserver (a changed source builds anew). Prints
# the path of the binary. Exit 3 (one SKIP-REASON line on stderr) when sid cannot be downloaded.
source "$(dirname "$0")/common.sh"
source "$(dirname "$0")/sid-go.sh"
SRC=$(cd "$(dirname "$0")/../kube_apiserver" && pwd)
PKG=tke-kms.lab/kube-apiserver

source_hash() { cat "$SRC"/*.go "${BASH_SOURCE[0]}" | sha256sum | cut -c1-12; }

cached() {
  find "$CACHE_ROOT" -maxdepth 2 -path "$CACHE_ROOT/kube-v2-*-$1/kube-apiserver" -type f 2>/dev/null | sort -V | tail -1
}

build() {
  local hash bin; hash=$(source_hash); bin=$(cached "$hash")
  if [ -n "$bin" ] && [ -x "$bin" ]; then echo "$bin"; return 0; fi
  sid_go_env
  local version; version=$(sid_version golang-k8s-apiserver-dev)
  local dest="$CACHE_ROOT/kube-v2-$version-$hash" tree="$GOPATH/src/$PKG"
  log "building the lab kube-apiserver on k8s.io/apiserver $version (~1 min after the apiextensions build, ~4 min alone)"
  rm -rf "$tree" "$dest.tmp" && mkdir -p "$tree/openapi" "$dest.tmp" && cp "$SRC"/*.go "$tree/"
  (
    cd "$GOPATH/src/k8s.io/kube-openapi/cmd/openapi-gen" && go build -o "$SID_GO/openapi-gen" . || exit 1
    cd "$tree" || exit 1
    : > "$SID_GO/header.txt"
    "$SID_GO/openapi-gen" --go-header-file "$SID_GO/header.txt" --output-dir "$tree/openapi" \
      --output-pkg "$PKG/openapi" --output-file zz_generated.openapi.go --report-filename /dev/null \
      k8s.io/api/core/v1 k8s.io/apimachinery/pkg/apis/meta/v1 k8s.io/apimachinery/pkg/runtime \
      k8s.io/apimachinery/pkg/util/intstr k8s.io/apimachinery/pkg/api/resource k8s.io/apimachinery/pkg/version || exit 1
    # kube-apiserver's version for /version and the image tag: k8s.io/apiserver 0.X.Y is Kubernetes 1.X.Y.
    go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=v1.${version#0.}" \
      -o "$dest.tmp/kube-apiserver" . || exit 1
  ) >"$SID_GO/kube-v2-build.log" 2>&1 || { tail -40 "$SID_GO/kube-v2-build.log" >&2; exit 1; }
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
  log "done: $dest"
  echo "$dest/kube-apiserver"
}

with_lock sid-go build
