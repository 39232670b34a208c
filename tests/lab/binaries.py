"""The control-plane binaries: found in the cache, or built once by tests/lab/build/*.sh.

The build scripts are idempotent and hold a flock while building, so calling them is always safe:
with a warm cache they print the cached path and return at once; with a build running elsewhere
they wait for it.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

from tests.lab.runtime import LabError

BUILD_DIR = Path(__file__).resolve().parent / "build"
CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tke-kms"
KUBE_VERSION = "1.20.2"
KUBE_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
ROUTE_UNAVAILABLE = 3  # apiext-sid.sh, kube-v2.sh: Debian sid could not be downloaded; skip, do not fail
BUILD_TIMEOUT = 3600


class SidUnavailable(LabError):
    """A Debian sid build (the apiext lab, the KMS v2 kube-apiserver) cannot be obtained for reasons outside
    this project (sid mirror, upstream skew)."""


def run_build(script: str) -> Path:
    result = subprocess.run(
        ["bash", str(BUILD_DIR / script)], capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
    )
    if result.returncode == ROUTE_UNAVAILABLE:
        reason = next(
            (line for line in result.stderr.splitlines() if line.startswith("SKIP-REASON:")),
            result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "no reason given",
        )
        raise SidUnavailable(reason.removeprefix("SKIP-REASON:").strip())
    if result.returncode != 0:
        raise LabError(f"{script} failed with exit {result.returncode}:\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


@functools.cache
def kube_dir() -> Path:
    """Directory with kube-apiserver, kube-controller-manager and kube-scheduler v1.20.2."""
    cached = CACHE_ROOT / f"kube-{KUBE_VERSION}"
    if all(os.access(cached / name, os.X_OK) for name in KUBE_BINARIES):
        return cached
    return run_build("kube-1.20.sh")


@functools.cache
def kubeadm_binary() -> Path:
    """kubeadm v1.20.2, built with the control plane by kube-1.20.sh (a cache from before it had kubeadm
    is built once more)."""
    cached = CACHE_ROOT / f"kube-{KUBE_VERSION}" / "kubeadm"
    if os.access(cached, os.X_OK):
        return cached
    return run_build("kube-1.20.sh") / "kubeadm"


@functools.cache
def apiext_binary() -> Path:
    """The apiext lab's apiextensions-apiserver; raises SidUnavailable when sid cannot be had."""
    versions = {}
    for binary in CACHE_ROOT.glob("apiext-*/apiextensions-apiserver"):
        # Only finished builds: apiext-0.36.4/, never an in-progress apiext-0.36.4.tmp/.
        if (match := re.fullmatch(r"apiext-(\d+(?:\.\d+)*)", binary.parent.name)) and os.access(
            binary, os.X_OK
        ):
            versions[tuple(int(part) for part in match.group(1).split("."))] = binary
    if versions:
        return versions[max(versions)]
    return run_build("apiext-sid.sh")


@functools.cache
def kube_v2_binary() -> Path:
    """The lab's KMS v2 kube-apiserver (tests/lab/kube_apiserver on sid's k8s.io/apiserver); the
    script returns the cached build of this source at once. Raises SidUnavailable without sid."""
    return run_build("kube-v2.sh")


def kube_v2_version(binary: Path) -> str:
    """Its Kubernetes version, from the cache directory name: kube-v2-0.36.4-<hash> is 1.36.4."""
    match = re.fullmatch(r"kube-v2-0\.(\d+\.\d+)-[0-9a-f]+", binary.parent.name)
    if match is None:
        raise LabError(f"not a kube-v2 build directory: {binary.parent}")
    return f"1.{match.group(1)}"


@functools.cache
def etcd_dir() -> Path:
    """Directory with Debian's etcd and etcdctl."""
    return run_build("etcd.sh")


def kubectl() -> Path | None:
    """The machine's kubectl, if any (Debian's kubernetes-client is never installed: it conflicts)."""
    found = shutil.which("kubectl")
    return Path(found) if found else None
