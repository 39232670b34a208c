"""Labs starting side by side (the reliability lanes) build the plugin wheel from one source tree."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.lab.masters import build_plugin_wheel


def test_two_labs_build_the_plugin_wheel_at_once(tmp_path):
    targets = [tmp_path / "lab1", tmp_path / "lab2"]

    with ThreadPoolExecutor(2) as pool:
        wheels = list(pool.map(build_plugin_wheel, targets))

    assert [w.parent for w in wheels] == targets
    assert all(w.name.startswith("tke_kms_plugin-") and w.stat().st_size > 0 for w in wheels)
