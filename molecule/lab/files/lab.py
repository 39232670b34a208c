"""The lab behind molecule/lab: start, verify and stop two chroot masters with the Tencent KMS emulator.

  lab.py up STATE      start the lab (tests/lab/masters.py) and the emulator, seed Secrets in the clear,
                       write the Ansible inventory; STATE (JSON, 0600) records what to stop and check later
  lab.py verify STATE  with the real apiserver and etcd: every Secret stored with the KMS prefix and readable
                       with its value, every master's KMS health check passing, the plugin DaemonSet ready
  lab.py down STATE    stop everything recorded (by PID) and unmount

Run with the repo venv's python, as root, with the repository on PYTHONPATH.
"""

from __future__ import annotations

import base64
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from tests.lab.apiserver import lab_env
from tests.lab.masters import MASTERS_ROOT, MasterLab, recorded_alive, rollout_vars, stop_pid
from tests.lab.process import ManagedProcess, proc_start_time
from tests.lab.runtime import wait_for

LAB_DIR = MASTERS_ROOT / "molecule-lab"
MASTERS = 2
SEEDED = 25
PROVIDER = "tke-kms-plugin"


def start_emulator(host: str, secret_id: str, secret_key: str) -> dict[str, Any]:
    """The emulator on `host`: the lab's gateway, which the masters reach from their network namespaces."""
    log = LAB_DIR / "emulator.log"
    env = {**lab_env(), "TKE_KMS_EMULATOR_CREDENTIALS": f"{secret_id}:{secret_key}"}
    argv = [sys.executable, "-m", "tke_kms_plugin.emulator", "--host", host, "--port", "0"]
    process = ManagedProcess("tke-kms-emulator", argv, log, env=env).start()

    def announced() -> dict[str, Any] | None:
        for line in log.read_text().splitlines():
            if line.startswith("{") and '"port"' in line:
                return json.loads(line)
        return None

    info = wait_for(announced, timeout=30, what="tke-kms-emulator start", alive=process.exit_reason)
    return {"pid": process.pid, "start_time": proc_start_time(process.pid), "url": info["url"]}


def up(state_file: Path) -> None:
    lab = MasterLab("molecule-lab", MASTERS).start()
    secret_id, secret_key = "AKIDtkekmsmolecule", secrets.token_urlsafe(24)
    emulator = start_emulator(lab.gateway, secret_id, secret_key)
    inventory = lab.write_inventory(
        rollout_vars(emulator["url"], secret_id, secret_key, tke_kms_key_alias="molecule-lab")
    )
    seeded = {}
    with lab.session() as session:
        for number in range(SEEDED):
            value = secrets.token_hex(8)
            body = {"metadata": {"name": f"seeded-{number}"}, "stringData": {"value": value}}
            response = session.post(
                f"{lab.masters[0].url}/api/v1/namespaces/default/secrets", json=body, timeout=30
            )
            response.raise_for_status()
            seeded[f"seeded-{number}"] = value
    state = {"directory": str(LAB_DIR), "inventory": str(inventory), "emulator": emulator, "seeded": seeded}
    state_file.touch(mode=0o600)
    state_file.write_text(json.dumps(state, indent=2))
    print(f"{MASTERS} masters in {LAB_DIR}, emulator {emulator['url']}, {SEEDED} Secrets seeded in the clear")
    print(f"inventory: {inventory}")


def verify(state_file: Path) -> int:
    state = json.loads(state_file.read_text())
    lab = MasterLab.attach(Path(state["directory"]))
    assert lab is not None, "the lab is not running"
    failures = []

    def check(passed: bool, text: str) -> None:
        print(f"[{'ok' if passed else 'FAIL'}] {text}")
        if not passed:
            failures.append(text)

    etcd_url = lab.state["etcd"]["url"]
    pki = lab.directory / "pki"
    with lab.session() as session:
        body = {
            "key": base64.b64encode(b"/registry/secrets/").decode(),
            "range_end": base64.b64encode(b"/registry/secrets0").decode(),
        }
        answer = session.post(
            f"{etcd_url}/v3/kv/range",
            json=body,
            timeout=30,
            cert=(str(pki / "etcd-client.crt"), str(pki / "etcd-client.key")),
        ).json()
        values = {
            base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", ""))
            for kv in answer.get("kvs", [])
        }
        prefixes = sorted(
            {v.split(b":")[3].decode() if v.startswith(b"k8s:enc:") else "identity" for v in values.values()}
        )
        encrypted = [k for k, v in values.items() if v.startswith(f"k8s:enc:kms:v1:{PROVIDER}:".encode())]
        check(
            len(encrypted) == len(values),
            f"{len(encrypted)}/{len(values)} Secrets in etcd under k8s:enc:kms:v1:{PROVIDER}: ({prefixes})",
        )
        for name, value in state["seeded"].items():
            raw = values.get(f"/registry/secrets/default/{name}", b"")
            if value.encode() in raw:
                check(False, f"{name}: its value is readable in etcd")
        for master in lab.masters:
            read = session.get(f"{master.url}/api/v1/namespaces/default/secrets", timeout=30).json()
            found = {
                s["metadata"]["name"]: base64.b64decode(s["data"]["value"]).decode()
                for s in read["items"]
                if s["metadata"]["name"] in state["seeded"]
            }
            check(
                found == state["seeded"],
                f"{master.name}: the {len(state['seeded'])} seeded Secrets read back with their values",
            )
            checks = session.get(f"{master.url}/readyz?verbose", timeout=30).text
            kms = [line for line in checks.splitlines() if "kms-provider" in line]
            check(
                bool(kms) and all(line.startswith("[+]") for line in kms),
                f"{master.name}: {' '.join(kms) or 'no KMS check'}",
            )
        ds = session.get(
            f"{lab.masters[0].url}/apis/apps/v1/namespaces/kube-system/daemonsets/tke-kms-plugin", timeout=30
        ).json()
        status = ds.get("status", {})
        check(
            status.get("numberReady") == MASTERS,
            f"DaemonSet tke-kms-plugin: {status.get('numberReady')}/{MASTERS} ready",
        )
    return 1 if failures else 0


def down(state_file: Path) -> None:
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        state = {}
    emulator = state.get("emulator")
    if emulator and recorded_alive(emulator["pid"], emulator["start_time"]):
        stop_pid(emulator["pid"], emulator["start_time"], grace=10)
    MasterLab.stop_recorded(LAB_DIR)
    state_file.unlink(missing_ok=True)
    print(f"lab stopped; nothing left under {LAB_DIR}")


def main() -> int:
    action, state_file = sys.argv[1], Path(sys.argv[2])
    started = time.monotonic()
    code = {
        "up": lambda: up(state_file),
        "down": lambda: down(state_file),
        "verify": lambda: verify(state_file),
    }[action]()
    print(f"({action}: {time.monotonic() - started:.0f} s)")
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
