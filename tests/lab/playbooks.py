"""Running ansible-playbook against the lab masters as a user does: from the repo root, with the repo's
ansible.cfg and the venv's Ansible first on PATH (shared by the demo and the playbook tests)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.lab.apiserver import lab_env
from tests.lab.masters import REPO

VENV_BIN = Path(sys.executable).parent
RECAP = re.compile(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def playbook_env() -> dict[str, str]:
    return {
        **lab_env(),
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_FORCE_COLOR": "0",
        "PYTHONUNBUFFERED": "1",
    }


def playbook_argv(*args: str) -> list[str]:
    return [str(VENV_BIN / "ansible-playbook"), *args]


def ansible_playbook(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    """Run to the end and capture the output."""
    return subprocess.run(
        playbook_argv(*args),
        cwd=REPO,
        env=playbook_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def recap(run: subprocess.CompletedProcess[str]) -> dict[str, tuple[int, int, int]]:
    """host -> (changed, unreachable, failed) from the PLAY RECAP."""
    return {host: (int(c), int(u), int(f)) for host, c, u, f in RECAP.findall(run.stdout)}


def output(run: subprocess.CompletedProcess[str]) -> str:
    """The end of a run's output, for assertion messages."""
    return run.stdout[-6000:] + run.stderr[-3000:]
