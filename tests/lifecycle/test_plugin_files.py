"""The tke.kms.kms_plugin role's files on a master, run with ansible-playbook on this machine (no lab needed):
the credentials file leaves no copies of a SecretKey behind, and `absent` refuses a plugin whose socket the
encryption config still names, however the path is spelled."""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.lab.playbooks import ansible_playbook, output

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the role writes files owned by root")

PLAYBOOK = """
- name: One part of the kms_plugin role, on this machine
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: What is there before
      ansible.builtin.include_role:
        name: tke.kms.kms_plugin
        tasks_from: before
      when: part == 'credentials'
    - name: The part under test
      ansible.builtin.include_role:
        name: tke.kms.kms_plugin
        tasks_from: "{{ part }}"
"""


def run_role_part(tmp_path: Path, part: str, **role_vars: str) -> subprocess.CompletedProcess[str]:
    playbook = tmp_path / "part.yml"
    playbook.write_text(PLAYBOOK)
    settings = tmp_path / "vars.json"
    settings.write_text(
        json.dumps(
            {
                "part": part,
                "ansible_python_interpreter": sys.executable,  # has PyYAML, as a master's python3 must
                "kms_plugin_name": f"tke-kms-test-{tmp_path.name}",
                "kms_plugin_mode": "static_pod",
                "kms_plugin_install_dir": str(tmp_path / "install"),
                "kms_plugin_wait": False,
                **role_vars,
            }
        )
    )
    settings.chmod(0o600)
    return ansible_playbook(str(playbook), "-i", "localhost,", "-e", f"@{settings}", timeout=300)


def test_credentials_rewrites_leave_no_copy_of_the_old_secret_key(tmp_path: Path) -> None:
    credentials = tmp_path / "etc" / "credentials"
    old_key, new_key = secrets.token_hex(16), secrets.token_hex(16)
    for key in (old_key, new_key):
        run = run_role_part(
            tmp_path,
            "credentials",
            kms_plugin_credentials_file=str(credentials),
            kms_plugin_secret_id="AKIDtest",
            kms_plugin_secret_key=key,
        )
        assert run.returncode == 0, output(run)
        assert old_key not in run.stdout + run.stderr and new_key not in run.stdout + run.stderr
        if key == old_key:  # what older versions of the role left (backup: true), for the next run to remove
            (credentials.parent / "credentials.4242.2026-01-01@00:00:00~").write_text(f"secret_key = {key}\n")

    assert sorted(path.name for path in credentials.parent.iterdir()) == ["credentials"]
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert new_key in credentials.read_text() and old_key not in credentials.read_text()


def test_absent_removes_the_credentials_the_role_created_and_old_backups(tmp_path: Path) -> None:
    credentials = tmp_path / "etc" / "credentials"
    credentials.parent.mkdir(mode=0o700)
    credentials.write_text("[default]\nsecret_key = current\n")
    leftover = credentials.parent / "credentials.4242.2026-01-01@00:00:00~"
    leftover.write_text("[default]\nsecret_key = old\n")
    manifest = write_apiserver(tmp_path, "/run/elsewhere/server.sock")

    run = run_role_part(
        tmp_path,
        "absent",
        kms_plugin_credentials_file=str(credentials),
        kms_plugin_socket=str(tmp_path / "plugin.sock"),
        kms_plugin_apiserver_manifest_path=str(manifest),
    )

    assert run.returncode == 0, output(run)
    assert not credentials.parent.exists()


@pytest.mark.parametrize(
    ("in_config", "plugin_socket"),
    [
        ("/run/tke-kms-test/server.sock", "/var/run/tke-kms-test/server.sock"),
        ("/var/run/tke-kms-test//server.sock", "/run/tke-kms-test/server.sock/"),
    ],
)
def test_absent_refuses_a_socket_the_config_names_in_another_spelling(
    tmp_path: Path, in_config: str, plugin_socket: str
) -> None:
    credentials = tmp_path / "etc" / "credentials"
    credentials.parent.mkdir(mode=0o700)
    credentials.write_text("[default]\nsecret_key = current\n")
    manifest = write_apiserver(tmp_path, in_config)
    before = {path: path.read_bytes() for path in (manifest, tmp_path / "encryption.yaml", credentials)}

    run = run_role_part(
        tmp_path,
        "absent",
        kms_plugin_credentials_file=str(credentials),
        kms_plugin_socket=plugin_socket,
        kms_plugin_apiserver_manifest_path=str(manifest),
    )

    assert run.returncode != 0, output(run)
    said = " ".join(run.stdout.split())
    assert f"still has a KMS provider on {plugin_socket} (tke-kms-test)" in said, output(run)
    assert {path: path.read_bytes() for path in before} == before


def write_apiserver(tmp_path: Path, socket: str) -> Path:
    """A kube-apiserver static pod manifest whose encryption config has a KMS provider on `socket`."""
    config = tmp_path / "encryption.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "apiserver.config.k8s.io/v1",
                "kind": "EncryptionConfiguration",
                "resources": [
                    {
                        "resources": ["secrets"],
                        "providers": [
                            {
                                "kms": {
                                    "name": "tke-kms-test",
                                    "endpoint": f"unix://{socket}",
                                    "cachesize": 1000,
                                }
                            },
                            {"identity": {}},
                        ],
                    }
                ],
            }
        )
    )
    manifest = tmp_path / "kube-apiserver.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "kube-apiserver", "namespace": "kube-system"},
                "spec": {
                    "containers": [
                        {
                            "name": "kube-apiserver",
                            "image": "registry.k8s.io/kube-apiserver:v1.20.2",
                            "command": ["kube-apiserver", f"--encryption-provider-config={config}"],
                        }
                    ]
                },
            }
        )
    )
    return manifest
