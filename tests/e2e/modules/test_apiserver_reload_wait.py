"""apiserver_reload_wait against the lab's real KMS v2 kube-apiserver (k8s.io/apiserver 0.36) started with
--encryption-provider-config-automatic-reload=true and a KMS v2 plugin over a unix socket.

The apiserver re-reads its config every 60 s, so each test here costs at most one reload: a new config is
loaded without a restart (same PID, new writes under the new first provider), and a config the apiserver
refuses makes the wait fail with the reason well before its deadline.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
import yaml
from ansible_collections.tke.kms.plugins.modules import apiserver_reload_wait
from kubernetes import client

from tests.lab import encryption
from tests.lab.apiserver import write_manifest
from tests.unit.collection import run_module

pytestmark = pytest.mark.e2e
PROVIDER = "tke-kms-plugin"
RELOAD = "--encryption-provider-config-automatic-reload=true"


def replace_config(path: Path, document: dict | str) -> bytes:
    """Rename a new config over the old one, as the rollout does; returns its bytes."""
    text = document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False)
    staged = path.with_name("." + path.name + ".new")
    staged.write_text(text)
    staged.chmod(0o600)
    os.replace(staged, path)
    return text.encode()


@pytest.fixture
def lab(control_plane_factory, noop_plugin_factory, tmp_path):
    plugin = noop_plugin_factory("reload")
    read_phase = encryption.config([encryption.identity(), encryption.kms_v2(PROVIDER, plugin.socket)])
    plane = control_plane_factory(read_phase, kms_v2=True, apiserver_args=(RELOAD,))
    server = plane.apiserver
    manifest = write_manifest(tmp_path / "kube-apiserver.yaml", server.argv(), server.version)
    access = {"manifest_path": str(manifest), "kubeconfig": str(server.admin_conf), "wait_sleep": 1}
    return plane, plugin, access


def wait(access: dict, **args: object) -> dict:
    return run_module(apiserver_reload_wait.main, dict(access, **args))


def test_a_new_config_is_loaded_without_a_restart(lab) -> None:
    plane, plugin, access = lab
    server = plane.apiserver
    pid = server.process.pid
    core = server.core()

    unchanged = wait(access, wait_timeout=30)
    assert unchanged["healthy"] is True and unchanged["waited"] < 5, unchanged
    before = unchanged["config_hash"]
    assert unchanged["loaded_hashes"] == [before]
    assert unchanged["kms_checks"] == {"kms-providers": True}

    data = replace_config(
        server.config_path,
        encryption.config([encryption.kms_v2(PROVIDER, plugin.socket), encryption.identity()]),
    )
    written = time.time()
    result = wait(access, wait_timeout=150)

    new_hash = "sha256:" + hashlib.sha256(data).hexdigest()
    assert result["healthy"] is True and result["loaded"] is True, result
    assert result["config_hash"] == new_hash != before
    assert result["loaded_hashes"] == [new_hash]
    assert result["failed_since_change"] is False
    assert "without a restart" in result["msg"] and "kms-providers ok" in result["msg"]
    assert result["waited"] <= time.time() - written + 1
    assert server.process.pid == pid and server.alive() is None
    # the write phase is in force: a new Secret is stored with the KMS v2 provider
    core.create_namespaced_secret(
        "default", client.V1Secret(metadata=client.V1ObjectMeta(name="after-reload"), string_data={"k": "v"})
    )
    stored = plane.etcd.get("/registry/secrets/default/after-reload")
    assert stored.startswith(f"k8s:enc:kms:v2:{PROVIDER}:".encode())


def test_a_config_the_apiserver_refuses_fails_the_wait_with_the_reason(lab) -> None:
    plane, _plugin, access = lab
    server = plane.apiserver
    pid = server.process.pid
    before = wait(access, wait_timeout=30)["config_hash"]
    # 10 bytes is no AES key size: kube-apiserver refuses the config; our own parser does not look at keys
    broken = encryption.config([encryption.aescbc("k1", os.urandom(10)), encryption.identity()])
    replace_config(server.config_path, broken)

    started = time.monotonic()
    result = wait(access, wait_timeout=150, failure_grace=5)
    took = time.monotonic() - started

    assert result["failed"] is True and result["loaded"] is False, result
    assert result["failed_since_change"] is True and result["reload_failures"] >= 1
    assert result["loaded_hashes"] == [before]
    assert f"still runs the encryption config {before}" in result["msg"]
    assert "automatic reload FAILED since the change" in result["msg"]
    assert "gave up 5s after the failed reload" in result["msg"]
    assert took < 150 - 30  # the failure, not the deadline, ended it
    assert server.process.pid == pid and server.alive() is None
    assert "aescbc" not in result["msg"] or "secret" not in result["msg"]  # never key material


def test_the_deadline_names_what_the_apiserver_reports(lab) -> None:
    plane, _plugin, access = lab
    data = replace_config(
        plane.apiserver.config_path, plane.apiserver.config_path.read_text() + "# touched\n"
    )

    result = wait(access, wait_timeout=2)  # far shorter than the 60 s reload period

    assert result["failed"] is True and result["loaded"] is False
    assert result["config_hash"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert "still runs the encryption config sha256:" in result["msg"] and "; waited " in result["msg"]
