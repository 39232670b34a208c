"""playbooks/rotate.yml's settings, checked without lab masters: what it gives its second plugin instance with
the production defaults (both plugins run on the master's host network, so the second one needs its own
metrics port), and its preflight refusing a "rotation" to the key in use (against the KMS emulator)."""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tencentcloud.kms.v20190118 import models
from tke_kms_plugin.emulator.testing import make_kms_client, start_emulator_process

from tests.lab.masters import LAB_REGION, REPO
from tests.lab.playbooks import ansible_playbook, output

SECOND_PLUGIN_PLAY = "A second plugin, with the new key, on every master"


def plugin_settings(tmp_path: Path, *extra: str) -> dict[str, str]:
    """The metrics address of the plugin in use (the role's default) and of the rotation's second plugin (the
    role vars of rotate.yml's plugin play over the role's default), as Ansible templates them."""
    plays = yaml.safe_load((REPO / "playbooks/rotate.yml").read_text())
    play = next(p for p in plays if p["name"] == SECOND_PLUGIN_PLAY)
    role_vars = play["roles"][0].get("vars", {})
    defaults = yaml.safe_load((REPO / "roles/kms_plugin/defaults/main.yml").read_text())
    second = role_vars.get("kms_plugin_metrics_address", defaults["kms_plugin_metrics_address"])
    playbook = tmp_path / "settings.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "The rotation's settings",
                    "hosts": "localhost",
                    "gather_facts": False,
                    "vars": {**play["vars"], "tke_kms_rotate_provider_name": "tke-kms-2027"},
                    "tasks": [
                        {
                            "name": "Show them",
                            "ansible.builtin.debug": {
                                "msg": json.dumps(
                                    {"first": defaults["kms_plugin_metrics_address"], "second": second}
                                )
                            },
                        }
                    ],
                }
            ]
        )
    )
    run = ansible_playbook(str(playbook), "-i", "localhost,", "-c", "local", *extra, timeout=120)
    assert run.returncode == 0, output(run)
    return json.loads(run.stdout.split("msg: '", 1)[1].split("'\n", 1)[0])


def test_the_second_plugin_gets_its_own_metrics_port_by_default(tmp_path: Path) -> None:
    assert plugin_settings(tmp_path) == {"first": "127.0.0.1:9876", "second": "127.0.0.1:9877"}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            ("-e", "tke_kms_metrics_address=127.0.0.1:9100"),
            {"first": "127.0.0.1:9100", "second": "127.0.0.1:9101"},
        ),
        (
            ("-e", "tke_kms_rotate_metrics_address=127.0.0.1:9500"),
            {"first": "127.0.0.1:9876", "second": "127.0.0.1:9500"},
        ),
        (("-e", "tke_kms_metrics_address="), {"first": "", "second": ""}),
    ],
)
def test_the_second_plugin_follows_the_settings(
    tmp_path: Path, extra: tuple[str, ...], expected: dict
) -> None:
    assert plugin_settings(tmp_path, *extra) == expected


KEY_CHECK = ("Look up the key in use and the new key", "Refuse a rotation to the key in use")
SECRET_ID = "AKIDrotationsettings"


@pytest.fixture(scope="module")
def kms() -> Iterator[tuple[Any, dict[str, str]]]:
    """The KMS emulator with two keys; yields it and alias -> KeyId."""
    secret_key = secrets.token_urlsafe(24)
    emulator = start_emulator_process({SECRET_ID: secret_key})
    try:
        client = make_kms_client(emulator.endpoint, SECRET_ID, secret_key, region=LAB_REGION)
        ids = {}
        for alias in ("key-in-use", "another-key"):
            request = models.CreateKeyRequest()
            request.Alias = alias
            ids[alias] = client.CreateKey(request).KeyId
        yield emulator, {"secret_key": secret_key, **ids}
    finally:
        emulator.stop()


def key_check(tmp_path: Path, kms: tuple[Any, dict[str, str]], **settings: str) -> tuple[bool, str]:
    """rotate.yml's key check (its two preflight tasks, as they are) against the emulator."""
    emulator, found = kms
    plays = yaml.safe_load((REPO / "playbooks/rotate.yml").read_text())
    tasks = [dict(task, run_once=False) for task in plays[0]["tasks"] if task["name"] in KEY_CHECK]
    for task in tasks:
        task.pop("delegate_to", None)
    assert [task["name"] for task in tasks] == list(KEY_CHECK)
    inventory = {
        "tke_kms_region": LAB_REGION,
        "tke_kms_secret_id": SECRET_ID,
        "tke_kms_secret_key": found["secret_key"],
        "tke_kms_api_endpoint": emulator.url,
        "tke_kms_key_alias": "key-in-use",
        "ansible_python_interpreter": sys.executable,
        **settings,
    }
    playbook = tmp_path / "key_check.yml"
    playbook.write_text(
        yaml.safe_dump([{"name": "Key check", "hosts": "localhost", "gather_facts": False, "tasks": tasks}])
    )
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps(inventory))
    extra.chmod(0o600)
    run = ansible_playbook(str(playbook), "-i", "localhost,", "-c", "local", "-e", f"@{extra}", timeout=120)
    return run.returncode == 0, " ".join(run.stdout.split())


@pytest.mark.parametrize(
    "new_key",
    [
        {"tke_kms_rotate_key_alias": "key-in-use"},
        {"tke_kms_rotate_key_id": "key-in-use"},  # replaced by the KeyId of the alias below
        {"tke_kms_rotate_key_alias": "key-in-use", "tke_kms_key_id": "key-in-use"},  # old key given by id
    ],
)
def test_a_rotation_to_the_key_in_use_is_refused(
    tmp_path: Path, kms: tuple[Any, dict[str, str]], new_key: dict[str, str]
) -> None:
    ids = kms[1]
    settings = {name: ids[value] if name.endswith("_id") else value for name, value in new_key.items()}
    passed, said = key_check(tmp_path, kms, **settings)
    assert not passed, said
    assert "is the key in use" in said and f"KeyId {ids['key-in-use']}" in said, said


@pytest.mark.parametrize(
    "new_key", [{"tke_kms_rotate_key_alias": "another-key"}, {"tke_kms_rotate_key_alias": "not-created-yet"}]
)
def test_a_rotation_to_another_key_passes(
    tmp_path: Path, kms: tuple[Any, dict[str, str]], new_key: dict[str, str]
) -> None:
    passed, said = key_check(tmp_path, kms, **new_key)
    assert passed, said
