"""The "off" step of playbooks/disable.yml decides from the config the apiserver runs with whether
--encryption-provider-config may leave the manifest: only when every entry is identity-only once the KMS
provider has left. Otherwise (ConfigMaps under aesgcm in their own entry, [identity, aescbc] left in a shared
entry) the flag stays and the run names the entries that still encrypt. The rule is
_encryption_config.entries_still_encrypting (returned by apiserver_manifest_info); the role's decision tasks
(roles/apiserver/tasks/off_decision.yml) run here on its answer through ansible-playbook on localhost, without
a cluster; the reliability suite (test_reliability.py) runs the whole playbook on lab masters."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import tests.unit.collection  # noqa: F401 - puts the collection on sys.path
from tests.lab.masters import REPO
from tests.lab.playbooks import ansible_playbook, output

ec = importlib.import_module("ansible_collections.tke.kms.plugins.module_utils._encryption_config")

PROVIDER = "tke-kms-plugin"
KMS = f"kms:{PROVIDER}"


def provider(label: str) -> dict[str, Any]:
    if label.startswith("kms:"):
        return {"kms": {"name": label[4:], "endpoint": "unix:///var/run/tke-kms-plugin/server.sock"}}
    return {label: {} if label == "identity" else {"keys": [{"name": "key1", "secret": "c2VjcmV0"}]}}


def decide(tmp_path: Path, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The module's rule on a config with these entries (labels as apiserver_manifest_info reports them), then
    the role's tasks on its answer."""
    config = {
        "resources": [
            {"resources": entry["resources"], "providers": [provider(label) for label in entry["providers"]]}
            for entry in entries
        ]
    }
    assert ec.entry_labels(config) == entries  # the config is the one the labels describe
    still_encrypting = ec.entries_still_encrypting(config if entries else None, PROVIDER)
    result = tmp_path / "decision.json"
    play = [
        {
            "name": "The off decision",
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {
                "apiserver_provider_name": PROVIDER,
                "apiserver_manifest_before": {"entries_still_encrypting": still_encrypting},
            },
            "tasks": [
                {"ansible.builtin.include_tasks": str(REPO / "roles/apiserver/tasks/off_decision.yml")},
                {
                    "ansible.builtin.copy": {
                        "dest": str(result),
                        "mode": "0600",
                        "content": "{{ {'leaves': apiserver_config_leaves | bool, 'left':"
                        " apiserver_manifest_before.entries_still_encrypting | join('; ')} | to_json }}",
                    }
                },
            ],
        }
    ]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    run = ansible_playbook(
        str(tmp_path / "play.yml"),
        *("-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}"),
        timeout=120,
    )
    assert run.returncode == 0, output(run)
    return {**json.loads(result.read_text()), "said": " ".join(run.stdout.split())}


@pytest.mark.parametrize(
    ("entries", "left"),
    [
        pytest.param(
            [
                {"resources": ["secrets"], "providers": ["identity", KMS]},
                {"resources": ["configmaps"], "providers": ["aesgcm", "identity"]},
            ],
            "configmaps [aesgcm, identity]",
            id="aesgcm-configmaps-entry",
        ),
        pytest.param(
            [{"resources": ["secrets", "configmaps"], "providers": ["identity", KMS, "aescbc"]}],
            "secrets, configmaps [identity, aescbc]",
            id="shared-entry-with-aescbc",
        ),
        pytest.param(
            [
                {"resources": ["secrets"], "providers": ["identity", KMS, "aescbc"]},
                {"resources": ["configmaps"], "providers": ["aesgcm", "identity"]},
            ],
            "secrets [identity, aescbc]; configmaps [aesgcm, identity]",
            id="both",
        ),
    ],
)
def test_the_flag_stays_while_an_entry_still_encrypts(
    tmp_path: Path, entries: list[dict[str, Any]], left: str
) -> None:
    found = decide(tmp_path, entries)
    assert found["leaves"] is False and found["left"] == left, found
    assert (
        "kube-apiserver keeps --encryption-provider-config with the entries that still encrypt"
        in found["said"]
    )
    assert left in found["said"]


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param([{"resources": ["secrets"], "providers": ["identity", KMS]}], id="kms-only"),
        pytest.param(
            [
                {"resources": ["secrets", "configmaps"], "providers": ["identity", KMS]},
                {"resources": ["events"], "providers": ["identity"]},
            ],
            id="identity-entries",
        ),
        pytest.param([], id="no-config"),
    ],
)
def test_the_flag_leaves_when_every_entry_is_identity_only(
    tmp_path: Path, entries: list[dict[str, Any]]
) -> None:
    found = decide(tmp_path, entries)
    assert found["leaves"] is True and found["left"] == "", found
    assert "keeps --encryption-provider-config" not in found["said"]
