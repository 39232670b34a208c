"""The build scripts' contract with the tests: cached paths, and a loud skip when sid is unavailable."""

from __future__ import annotations

import os

import pytest

from tests.lab import binaries


@pytest.mark.skipif(os.geteuid() != 0, reason="the build scripts run apt as root")
def test_sid_unreachable_is_route_unavailable_with_its_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # no cached binary there
    monkeypatch.setenv("TKE_KMS_DEBIAN_MIRROR", "http://127.0.0.1:9/debian")  # nothing listens on port 9

    with pytest.raises(
        binaries.SidUnavailable, match=r"sid package lists could not be downloaded.*127\.0\.0\.1:9"
    ):
        binaries.run_build("apiext-sid.sh")


def test_cached_kube_1_20_lab_is_found_without_building():
    if not all(
        (binaries.CACHE_ROOT / f"kube-{binaries.KUBE_VERSION}" / b).exists() for b in binaries.KUBE_BINARIES
    ):
        pytest.skip("the kube-1.20 lab not built yet (make lab-binaries)")
    assert binaries.run_build("kube-1.20.sh") == binaries.kube_dir()
