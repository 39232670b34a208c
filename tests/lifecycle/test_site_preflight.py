"""site.yml's preflight check of the inventory against the KMS providers the masters use, run by Ansible on
what tke.kms.apiserver_manifest_info returns (no lab; tests/lifecycle/test_refusals.py runs it on masters)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.lab.masters import REPO
from tests.lab.playbooks import ansible_playbook, output

CHECK = "Refuse an inventory whose KMS provider is not the one the masters use"
OURS = {"name": "tke-kms-plugin", "endpoint": "unix:///var/run/tke-kms-plugin/server.sock", "write": True}
ROTATED = {
    "name": "tke-kms-2027",
    "endpoint": "unix:///var/run/tke-kms-plugin/tke-kms-2027.sock",
    "write": True,
}


def provider(found: dict[str, Any], write: bool) -> dict[str, Any]:
    """One kms_providers item as the module returns it."""
    socket = found["endpoint"].removeprefix("unix://").replace("/var/run/", "/run/", 1)
    return dict(found, socket=socket, write=write, api_version="v1", resources=["secrets"])


def run_check(tmp_path: Path, providers: list[dict[str, Any]], *extra: str) -> tuple[bool, str]:
    plays = yaml.safe_load((REPO / "playbooks/site.yml").read_text())
    task = copy.deepcopy(next(t for t in plays[0]["tasks"] if t["name"] == CHECK))
    task["vars"]["tke_kms_preflight"] = {
        "encryption_config_path": "/etc/kubernetes/encryption-provider-config.yaml",
        "kms_providers": providers,
    }
    playbook = tmp_path / "check.yml"
    playbook.write_text(
        yaml.safe_dump([{"name": "Check", "hosts": "localhost", "gather_facts": False, "tasks": [task]}])
    )
    run = ansible_playbook(str(playbook), "-i", "localhost,", "-c", "local", *extra, timeout=120)
    assert "ERROR" not in run.stdout or "Action failed" in run.stdout, output(run)  # no template error
    return run.returncode == 0, " ".join(run.stdout.split())


@pytest.mark.parametrize(
    ("providers", "extra"),
    [
        ([], ()),  # no encryption yet, or aescbc only
        ([provider(OURS, True)], ()),
        ([provider(OURS, False)], ()),  # disable.yml's decrypt phase: site.yml turns KMS back on
        ([provider(OURS, True), provider(ROTATED, False)], ()),  # a rotation's read phase
        (
            [provider(OURS, True)],
            ("-e", "tke_kms_socket=/run/tke-kms-plugin/server.sock"),
        ),  # /var/run is /run
        (
            [provider(ROTATED, True)],
            ("-e", "tke_kms_provider_name=tke-kms-2027", "-e", f"tke_kms_socket={ROTATED['endpoint'][7:]}"),
        ),
    ],
)
def test_an_inventory_that_matches_the_masters_passes(tmp_path: Path, providers: list, extra: tuple) -> None:
    passed, said = run_check(tmp_path, providers, *extra)
    assert passed, said


@pytest.mark.parametrize(
    "providers",
    [
        [provider(ROTATED, True)],  # after rotate.yml, the inventory not updated
        [provider(ROTATED, True), provider(OURS, False)],  # a rotation's write phase
        [provider(dict(OURS, endpoint="unix:///var/run/other/server.sock"), True)],  # another socket
    ],
)
def test_an_inventory_behind_the_masters_is_refused_with_what_to_set(tmp_path: Path, providers: list) -> None:
    passed, said = run_check(tmp_path, providers)
    assert not passed, said
    writer = providers[0]
    socket = writer["endpoint"].removeprefix("unix://")
    assert f"has KMS provider {writer['name']} on {socket} (the write provider for secrets)" in said
    assert f"tke_kms_provider_name={writer['name']}, tke_kms_plugin_name={writer['name']}" in said
    assert f"tke_kms_socket={socket}, and tke_kms_key_alias / tke_kms_key_id" in said
