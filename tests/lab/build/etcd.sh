#!/usr/bin/env bash
# etcd and etcdctl from Debian (etcd-server / etcd-client). Prints the directory holding them.
source "$(dirname "$0")/common.sh"
if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
  apt_update_once
  apt_install etcd-server etcd-client
fi
dirname "$(command -v etcd)"
