#!/usr/bin/env bash
# The kube-1.20 lab: kube-apiserver, kube-controller-manager, kube-scheduler and kubeadm v1.20.2 built offline from
# Debian bookworm's `kubernetes` source package (it carries vendor/). Cached by version; a second
# run prints the cache directory and does nothing else. Prints the directory holding the binaries.
source "$(dirname "$0")/common.sh"
VERSION=1.20.2
DEST="$CACHE_ROOT/kube-$VERSION"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubeadm)

have_all() { for b in "${BINARIES[@]}"; do [ -x "$DEST/$b" ] || return 1; done; }

build() {
  have_all && return 0
  log "building Kubernetes $VERSION control plane into $DEST (first time only, ~10-15 min on 2 cores)"
  # bookworm's source package is the only one that still carries cmd/kube-apiserver and vendor/.
  if ! apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Version: 1\.20\.'; then
    cat > /etc/apt/sources.list.d/tke-kms-debsrc.sources <<EOS
Types: deb-src
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOS
    apt_update_once force
  else
    apt_update_once
  fi
  apt_install golang-go rsync make golang-github-modern-go-reflect2-dev
  local work="$CACHE_ROOT/build/kube-$VERSION"
  rm -rf "$work" && mkdir -p "$work" && cd "$work"
  apt-get source --download-only -qq kubernetes >/dev/null
  tar xzf kubernetes_*.orig.tar.gz
  cd "kubernetes-$VERSION"
  # The vendored reflect2 1.0.1 crashes under Go >= 1.18 as soon as json-iterator meets a map type (kubeadm
  # panics printing or reading any config); 1.0.2 is the fix, same API. Debian packages it. The build is in
  # GOPATH mode, so vendor/modules.txt is not consulted.
  rm -rf vendor/github.com/modern-go/reflect2
  cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 vendor/github.com/modern-go/reflect2
  # 1.20's build uses GOPATH mode + vendor/ and runs code generators first; fully offline.
  GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS= \
    make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubeadm" >"$work/make.log" 2>&1 \
    || { tail -40 "$work/make.log" >&2; exit 1; }
  mkdir -p "$DEST.tmp"
  for b in "${BINARIES[@]}"; do cp "_output/bin/$b" "$DEST.tmp/"; done
  "$DEST.tmp/kube-apiserver" --version >&2
  if [ -d "$DEST" ]; then
    # A cache from before a binary was added: labs may be running from it, so rename each file in
    # (atomic per binary) instead of swapping the directory under them.
    for b in "${BINARIES[@]}"; do mv -f "$DEST.tmp/$b" "$DEST/$b"; done
    rmdir "$DEST.tmp"
  else
    mv "$DEST.tmp" "$DEST"
  fi
  cd / && rm -rf "$work"
  log "done: $DEST"
}

with_lock "kube-$VERSION" build
echo "$DEST"
