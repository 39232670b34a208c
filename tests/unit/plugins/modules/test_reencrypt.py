"""reencrypt: failures found before any apiserver call, through the module base (msg and error)."""

from __future__ import annotations

from pathlib import Path

from ansible_collections.tke.kms.plugins.modules import reencrypt

from tests.unit.collection import run_module


def test_a_master_without_an_apiserver_manifest_fails_with_a_structured_error(tmp_path: Path) -> None:
    manifest = tmp_path / "kube-apiserver.yaml"
    result = run_module(reencrypt.main, dict(manifest_path=str(manifest)))
    assert result["failed"] is True
    assert result["msg"] == (f"{manifest} does not exist; is this a master with a kube-apiserver static pod?")
    assert result["error"]["kind"] == "ManifestError"


def test_options_that_cannot_work_are_refused_before_connecting(tmp_path: Path) -> None:
    result = run_module(
        reencrypt.main,
        dict(manifest_path=str(tmp_path / "none.yaml"), resources=["configmaps"], secrets=["a/b"]),
    )
    assert result["failed"] is True
    assert result["msg"].startswith("secrets (names of Secrets) can only be given with resources=[secrets]")
