"""Role tke.kms.apiserver with apiserver_automatic_reload on the lab's KMS v2 kube-apiserver (run as a local
"master": the manifest describes the running process, whose flags include the automatic reload).

A phase step writes the config and waits for the apiserver to load it: same PID, new writes under the new
first provider. A step whose config the apiserver cannot load (a new provider whose plugin is not there) puts
the previous config back and stops, saying why; the apiserver never stopped serving.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.lab import encryption
from tests.lab.apiserver import write_manifest
from tests.lab.playbooks import ansible_playbook
from tests.unit.collection import run_module  # also puts the collection on sys.path

pytestmark = pytest.mark.e2e
PROVIDER = "tke-kms-plugin"
RELOAD = "--encryption-provider-config-automatic-reload=true"
PLAY = """- hosts: localhost
  gather_facts: false
  roles:
    - role: tke.kms.apiserver
"""


@pytest.fixture
def master(control_plane_factory, noop_plugin_factory, tmp_path):
    plugin = noop_plugin_factory("role-reload")
    read_phase = encryption.config([encryption.identity(), encryption.kms_v2(PROVIDER, plugin.socket)])
    plane = control_plane_factory(read_phase, kms_v2=True, apiserver_args=(RELOAD,))
    server = plane.apiserver
    (tmp_path / "manifests").mkdir()
    manifest = write_manifest(tmp_path / "manifests" / "kube-apiserver.yaml", server.argv(), server.version)
    switched = run_module(
        importlib.import_module("ansible_collections.tke.kms.plugins.modules.apiserver_manifest").main,
        {
            "path": str(manifest),
            "automatic_reload": True,
            "encryption_config_path": str(server.config_path),
            "socket_dir": str(plugin.socket.parent),
            "backup_dir": str(tmp_path / "backups"),
        },
    )
    assert switched["changed"] is True and switched["automatic_reload"] is True
    (tmp_path / "play.yml").write_text(PLAY)
    settings = {
        "ansible_connection": "local",
        "ansible_python_interpreter": str(Path(".venv/bin/python").resolve()),
        "apiserver_manifest_path": str(manifest),
        "apiserver_kubeconfig": str(server.admin_conf),
        "apiserver_encryption_config_path": str(server.config_path),
        "apiserver_backup_dir": str(tmp_path / "backups"),
        "apiserver_socket": str(plugin.socket),
        "apiserver_automatic_reload": True,
        "apiserver_wait_delay": 1,
    }
    return plane, plugin, manifest, settings, tmp_path


def run_role(tmp_path: Path, settings: dict) -> tuple[int, str]:
    extra = tmp_path / "vars.yml"
    extra.write_text(yaml.safe_dump(settings))
    done = ansible_playbook("-i", "localhost,", str(tmp_path / "play.yml"), "-e", f"@{extra}", timeout=400)
    return done.returncode, done.stdout + done.stderr


def test_the_write_phase_is_loaded_without_a_restart(master) -> None:
    plane, _plugin, manifest, settings, tmp_path = master
    pid = plane.apiserver.process.pid
    manifest_before = manifest.read_text()

    code, output = run_role(tmp_path, dict(settings, apiserver_encryption_phase="write"))

    assert code == 0, output
    assert "without a restart" in output and "kms-providers ok" in output
    assert plane.apiserver.process.pid == pid and plane.apiserver.alive() is None
    assert manifest.read_text() == manifest_before  # nothing for kubelet to restart
    config = yaml.safe_load(plane.apiserver.config_path.read_text())
    assert list(config["resources"][0]["providers"][0]) == ["kms"]
    plane.apiserver.core().create_namespaced_secret(
        "default", client.V1Secret(metadata=client.V1ObjectMeta(name="written"), string_data={"k": "v"})
    )
    assert plane.etcd.get("/registry/secrets/default/written").startswith(
        f"k8s:enc:kms:v2:{PROVIDER}:".encode()
    )


def test_a_config_the_apiserver_cannot_load_is_put_back(master) -> None:
    plane, plugin, _manifest, settings, tmp_path = master
    pid = plane.apiserver.process.pid
    config_before = plane.apiserver.config_path.read_bytes()

    code, output = run_role(
        tmp_path,
        dict(
            settings,
            apiserver_encryption_phase="read",
            apiserver_provider_name="tke-kms-2027",
            apiserver_socket=str(plugin.socket.parent / "nobody-listens.sock"),
        ),
    )

    assert code != 0
    assert "automatic reload FAILED since the change" in output, output
    assert "Restored the previous encryption config" in output
    assert "back on the previous encryption config, without a restart" in output
    assert plane.apiserver.config_path.read_bytes() == config_before
    assert plane.apiserver.process.pid == pid and plane.apiserver.alive() is None
    assert plane.apiserver.wait_check("/readyz", timeout=10)
