from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.tke.kms.plugins.module_utils._https import HttpsError, read_kubeconfig


def test_a_malformed_kubeconfig_is_reported_by_position_only(tmp_path: Path) -> None:
    path = tmp_path / "admin.conf"
    path.write_text(
        "apiVersion: v1\nkind: Config\nusers:\n- name: admin\n  user:\n    token: tok-secret: [\n"
    )
    with pytest.raises(HttpsError) as raised:
        read_kubeconfig(str(path))
    assert str(raised.value) == f"the kubeconfig {path} is not valid YAML (line 6, column 22)"
    assert "tok-secret" not in str(raised.value)
