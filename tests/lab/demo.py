"""`make demo`: the whole rollout against three local kubeadm-like masters, as a user would run it.

`python -m tests.lab.demo up` sets up (cached builds, rootfs, etcd, 3 chroot masters with node agents,
the Tencent KMS emulator), runs `ansible-playbook site.yml -i <lab inventory>`, then verifies the way
the Go plugin's README did (create a Secret, read it back) plus the raw etcd prefix check, and leaves
the lab running. A second `up` reuses a healthy lab. `python -m tests.lab.demo down` stops it.

`up --kms v2` (`make demo KMS=v2`): the same on v2 masters, whose kube-apiserver is the lab's KMS v2
apiserver (Kubernetes 1.36 library code) under kubeadm 1.30's manifest, so the roles choose KMS v2. That
apiserver serves no pods or nodes: the plugin runs as a static pod (`tke_kms_plugin_mode: static_pod`).
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import subprocess
import sys
import time
from typing import Any

import requests

from tests.lab.apiserver import lab_env
from tests.lab.masters import MASTERS_ROOT, REPO, MasterLab, recorded_alive, rollout_vars, stop_pid
from tests.lab.playbooks import playbook_argv, playbook_env
from tests.lab.process import ManagedProcess, proc_start_time
from tests.lab.runtime import LabError, wait_for

DEMO_DIR = MASTERS_ROOT / "demo"
DEMO_STATE = DEMO_DIR / "demo.json"
MASTER_COUNT = 3
SECRET_NAME = "tke-kms-demo"
SECRET_VALUE = "s3cr3t-from-make-demo"


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


# -- the lab and the emulator


def ensure_lab(kms_v2: bool) -> MasterLab:
    lab = MasterLab.attach(DEMO_DIR)
    if lab is not None:
        problems = lab.problems()
        if lab.kms_v2 != kms_v2:
            problems.append(f"it runs Kubernetes {lab.kubernetes_version}, the other KMS variant")
        if not problems:
            say(f"reusing the running lab in {DEMO_DIR}")
            return lab
        say(f"the recorded lab is not healthy ({'; '.join(problems)}): rebuilding it")
        stop_emulator()
        MasterLab.stop_recorded(DEMO_DIR)
    kind = "v2 masters (KMS v2 kube-apiserver 1.36)" if kms_v2 else "kubeadm-like chroot masters"
    say(f"starting etcd and {MASTER_COUNT} {kind} (first time: builds rootfs, ~minutes)")
    started = time.monotonic()
    lab = MasterLab("demo", MASTER_COUNT, kms_v2=kms_v2).start()
    say(f"lab up in {time.monotonic() - started:.0f} s, Kubernetes {lab.kubernetes_version}")
    return lab


def read_demo_state() -> dict[str, Any]:
    try:
        return json.loads(DEMO_STATE.read_text())
    except (OSError, ValueError):
        return {}


def ensure_emulator(lab: MasterLab) -> dict[str, Any]:
    state = read_demo_state()
    emulator = state.get("emulator")
    if emulator and recorded_alive(emulator["pid"], emulator["start_time"]):
        if emulator["endpoint"].startswith(f"http://{lab.gateway}:"):
            return state
        stop_emulator()  # bound to the gateway of a lab that is gone
    secret_id, secret_key = "AKIDtkekmsdemo", secrets.token_urlsafe(24)
    log = DEMO_DIR / "emulator.log"
    env = {**lab_env(), "TKE_KMS_EMULATOR_CREDENTIALS": f"{secret_id}:{secret_key}"}
    argv = [
        sys.executable,
        "-m",
        "tke_kms_plugin.emulator",
        "--host",
        lab.gateway,  # the masters, in their own network namespaces, reach the host there
        "--port",
        "0",
        "--state",
        str(DEMO_DIR / "emulator-state.json"),
    ]
    process = ManagedProcess("tke-kms-emulator", argv, log, env=env).start()

    def announced() -> dict[str, Any] | None:
        for line in log.read_text().splitlines():
            if line.startswith("{") and '"port"' in line:
                return json.loads(line)
        return None

    info = wait_for(announced, timeout=30, what="tke-kms-emulator start", alive=process.exit_reason)
    state = {
        "emulator": {"pid": process.pid, "start_time": proc_start_time(process.pid), "endpoint": info["url"]},
        "secret_id": secret_id,
        "secret_key": secret_key,
    }
    DEMO_STATE.touch(mode=0o600)  # holds the emulator's secret key
    DEMO_STATE.chmod(0o600)
    DEMO_STATE.write_text(json.dumps(state, indent=2))
    say(f"Tencent KMS emulator at {info['url']}")
    return state


def stop_emulator() -> None:
    emulator = read_demo_state().get("emulator")
    if emulator:
        stop_pid(emulator["pid"], emulator["start_time"], grace=10)


# -- the rollout, as a user runs it


def inventory_vars(state: dict[str, Any], lab: MasterLab) -> dict[str, Any]:
    """What a user puts in group_vars for these masters (see docs/lab-masters.md). v2 masters have no
    DaemonSets: the plugin runs as a static pod there."""
    mode = {"tke_kms_plugin_mode": "static_pod"} if lab.kms_v2 else {}
    return rollout_vars(state["emulator"]["endpoint"], state["secret_id"], state["secret_key"], **mode)


def run_playbook(lab: MasterLab) -> int:
    argv = playbook_argv("site.yml", "-i", str(lab.inventory))
    say(f"cd {REPO} && {argv[0]} site.yml -i {lab.inventory}")
    return subprocess.run(argv, cwd=REPO, env=playbook_env(), check=False).returncode


# -- verification: the Go plugin README's check, and the raw etcd prefix check


def kubectl(lab: MasterLab, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", f"--kubeconfig={lab.admin_conf}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=lab_env(),
        check=False,
        timeout=60,
    )


def etcd_range(lab: MasterLab, key: str, prefix: bool = False) -> list[tuple[bytes, bytes]]:
    """Raw keys and values from etcd's v3 JSON gateway (what the apiservers really stored)."""
    pki = lab.directory / "pki"
    raw = key.encode()
    body = {"key": base64.b64encode(raw).decode()}
    if prefix:
        end = bytearray(raw)
        end[-1] += 1
        body["range_end"] = base64.b64encode(bytes(end)).decode()
    with requests.Session() as session:
        session.trust_env = False
        session.verify = str(pki / "ca.crt")
        session.cert = (str(pki / "etcd-client.crt"), str(pki / "etcd-client.key"))
        response = session.post(f"{lab.state['etcd']['url']}/v3/kv/range", json=body, timeout=30)
    response.raise_for_status()
    return [
        (base64.b64decode(kv["key"]), base64.b64decode(kv.get("value", "")))
        for kv in response.json().get("kvs", [])
    ]


def verify(lab: MasterLab) -> bool:
    ok = True

    def check(passed: bool, text: str) -> None:
        nonlocal ok
        ok &= passed
        print(f"  [{'ok' if passed else 'FAIL'}] {text}", flush=True)

    say("verification")
    envelope = f"k8s:enc:kms:{'v2' if lab.kms_v2 else 'v1'}:".encode()
    manifest = kubectl(
        lab,
        "create",
        "secret",
        "generic",
        SECRET_NAME,
        f"--from-literal=mykey={SECRET_VALUE}",
        "--dry-run=client",
        "-o",
        "yaml",
    )
    kubectl(lab, "delete", "secret", SECRET_NAME, "--ignore-not-found")
    created = kubectl(lab, "apply", "-f", "-", stdin=manifest.stdout)
    check(created.returncode == 0, f"kubectl create secret generic {SECRET_NAME} {created.stderr.strip()}")
    stored = dict(etcd_range(lab, f"/registry/secrets/default/{SECRET_NAME}"))
    value = next(iter(stored.values()), b"")
    print(f"  etcd /registry/secrets/default/{SECRET_NAME}: {value[:48]!r}...")
    check(value.startswith(envelope), f"stored with a {envelope.decode()} prefix (KMS envelope)")
    check(SECRET_VALUE.encode() not in value, "plaintext absent from etcd")
    read = kubectl(lab, "get", "secret", SECRET_NAME, "-o", "jsonpath={.data.mykey}")
    decoded = base64.b64decode(read.stdout or "").decode(errors="replace")
    check(decoded == SECRET_VALUE, f"kubectl get secret reads it back: {decoded!r}")
    everything = etcd_range(lab, "/registry/secrets/", prefix=True)
    encrypted = sum(v.startswith(envelope) for _, v in everything)
    check(encrypted == len(everything), f"{encrypted}/{len(everything)} Secrets in etcd are KMS-encrypted")
    with lab.session() as session:
        for master in lab.masters:
            checks = session.get(f"{master.url}/healthz?verbose", timeout=10).text
            kms = [line.strip() for line in checks.splitlines() if "kms-provider" in line]
            check(bool(kms) and all(line.startswith("[+]") for line in kms), f"{master.name} {' '.join(kms)}")
    return ok


# -- entry points


def up(kms: str) -> int:
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    lab = ensure_lab(kms_v2=kms == "v2")
    state = ensure_emulator(lab)
    lab.write_inventory(inventory_vars(state, lab))
    say(f"inventory: {lab.inventory} (group masters, community.general.chroot)")
    if not (REPO / "site.yml").exists():
        raise LabError("site.yml is missing at the repository root: nothing to roll out")
    code = run_playbook(lab)
    verified = verify(lab)
    print(
        f"\nThe lab is left running: {len(lab.masters)} masters under {DEMO_DIR}\n"
        f"  KUBECONFIG={lab.admin_conf} kubectl get {'secrets' if lab.kms_v2 else 'pods'} -A\n"
        f"  chroot {lab.masters[0].root} /bin/bash\n"
        "Stop it with: make demo-down",
        flush=True,
    )
    if code != 0:
        say(f"ansible-playbook failed with exit {code}")
        return code
    return 0 if verified else 1


def down() -> int:
    stop_emulator()
    MasterLab.stop_recorded(DEMO_DIR)
    say(f"demo lab stopped; nothing left under {DEMO_DIR}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument(
        "--kms",
        choices=["v1", "v2"],
        default="v1",
        help="v1: kube-apiserver 1.20.2 masters (default); v2: KMS v2 kube-apiserver 1.36 masters, "
        "plugin as a static pod",
    )
    args = parser.parse_args(argv)
    return up(args.kms) if args.action == "up" else down()


if __name__ == "__main__":
    raise SystemExit(main())
