"""Integration tests of the collection's modules: the real ansible CLI runs the real module in a subprocess.

Modules reach the emulator (real SDK, real TC3 signatures over HTTP) or the lab's real kube-apiserver.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / ".collections"
if not (COLLECTIONS / "ansible_collections" / "tke" / "kms").exists():
    raise RuntimeError(
        "run `make venv` first: it links this checkout as collection tke.kms under .collections/"
    )
if str(COLLECTIONS) not in sys.path:  # for the tests that call module_utils in-process
    sys.path.insert(0, str(COLLECTIONS))
ANSIBLE = Path(sys.executable).parent / "ansible"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
# Variables of the developer's shell that would change what the modules see.
AMBIENT = ("TENCENTCLOUD_", "SECRET_ID", "SECRET_KEY", "K8S_AUTH_", "KUBECONFIG")


class AnsibleRun:
    """The outcome of one ansible run: the host's result, plus the raw output to search for leaks."""

    def __init__(self, completed: subprocess.CompletedProcess[str], result: dict[str, Any]) -> None:
        self.returncode = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr
        self.result = result

    def __getitem__(self, key: str) -> Any:
        return self.result[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.result.get(key, default)


def ansible_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if "proxy" not in name.lower() and not name.startswith(AMBIENT)
    }
    env.update(
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="json",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_DEPRECATION_WARNINGS="0",
    )
    env.update(extra or {})
    return env


def _host_result(completed: subprocess.CompletedProcess[str], task_index: int = 0) -> dict[str, Any]:
    try:
        document = json.loads(completed.stdout)
        return document["plays"][0]["tasks"][task_index]["hosts"]["localhost"]
    except (ValueError, LookupError, TypeError):
        raise AssertionError(
            f"no JSON result from ansible:\n{completed.stdout}\n{completed.stderr}"
        ) from None


LOCAL = ["-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}"]


@pytest.fixture
def ansible_module() -> Callable[..., AnsibleRun]:
    """run(module, args, *, check=False, diff=False, env=None): ansible localhost -m module -> AnsibleRun."""

    def run(
        module: str, args: dict[str, Any], *, check: bool = False, diff: bool = False, env: dict | None = None
    ) -> AnsibleRun:
        command = [str(ANSIBLE), "localhost", *LOCAL, "-m", module, "-a", json.dumps(args)]
        command += ["--check"] if check else []
        command += ["--diff"] if diff else []
        completed = subprocess.run(
            command, cwd=REPO, env=ansible_env(env), capture_output=True, text=True, timeout=300, check=False
        )
        return AnsibleRun(completed, _host_result(completed))

    return run


@pytest.fixture
def ansible_playbook(tmp_path: Path) -> Callable[..., list[AnsibleRun]]:
    """run(tasks, *, play=None, env=None) -> one AnsibleRun per task of a one-play playbook on localhost."""

    def run(tasks: list[dict], *, play: dict | None = None, env: dict | None = None) -> list[AnsibleRun]:
        playbook = tmp_path / "playbook.yml"
        playbook.write_text(
            json.dumps([dict(hosts="localhost", gather_facts=False, tasks=tasks, **(play or {}))])
        )
        completed = subprocess.run(
            [str(ANSIBLE_PLAYBOOK), *LOCAL, str(playbook)],
            cwd=REPO,
            env=ansible_env(env),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        ran = (
            len(json.loads(completed.stdout)["plays"][0]["tasks"]) if completed.stdout.startswith("{") else 1
        )
        return [AnsibleRun(completed, _host_result(completed, index)) for index in range(ran)]

    return run


def assert_clean_failure(run: AnsibleRun, *fragments: str) -> None:
    """Failed through fail_json with a message naming the cause: not a crash, no Python traceback in msg."""
    assert run.get("failed") is True, run.result
    assert "module_stderr" not in run.result, run.result
    assert "MODULE FAILURE" not in run["msg"]
    assert "Traceback" not in run["msg"]
    for fragment in fragments:
        assert fragment in run["msg"], run["msg"]
