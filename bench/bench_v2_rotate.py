"""Wall time of rotate.yml on 3 KMS v2 lab masters: restarting kube-apiserver vs automatic reload.

    .venv/bin/python bench/bench_v2_rotate.py [--masters 3] [--secrets 200] [--variants restart,reload]

Per variant, a fresh lab of v2 masters (MasterLab(kms_v2=True): the lab's KMS v2 kube-apiserver 1.36 under
a kubeadm 1.30+ static-pod manifest), the emulator as Tencent KMS (no latency), N Secrets of known values
and the plugin as a static pod. site.yml runs first (not timed; with tke_kms_automatic_reload=true in the
reload variant, so its manifests mount the config directory and set
--encryption-provider-config-automatic-reload), then rotate.yml to a new key is timed. After it: every
Secret read back with its value through every master, every Secret in etcd under
`k8s:enc:kms:v2:<new provider>:`, and whether each master's apiserver process changed during rotate.yml.
Prints numbers; asserts nothing. Needs root and the lab binaries (make lab-binaries).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tke_kms_plugin.emulator.testing import start_emulator_process  # noqa: E402

from tests.lab import binaries  # noqa: E402
from tests.lab.masters import MasterLab, rollout_vars  # noqa: E402
from tests.lab.playbooks import output  # noqa: E402
from tests.lifecycle.conftest import Cluster  # noqa: E402

OLD_PROVIDER = "tke-kms-plugin"
NEW_PROVIDER = "tke-kms-rotated"
ROTATION = ("-e", f"tke_kms_rotate_provider_name={NEW_PROVIDER}", "-e", "tke_kms_rotate_key_alias=bench-key2")
VARIANTS = {"restart": "kube-apiserver restarted per step", "reload": "automatic reload (no restart)"}


@dataclass
class Result:
    variant: str
    site_seconds: float
    rotate_seconds: float
    restarted: int  # masters whose apiserver process changed during rotate.yml
    intact: str  # "read back on every master / seeded"
    stored: str  # "under the new provider's prefix in etcd / seeded"


def apiserver_pids(cluster: Cluster) -> dict[str, int | None]:
    """master -> PID of its kube-apiserver container, as the node agent reports it."""
    pids: dict[str, int | None] = {}
    for master in cluster.lab.masters:
        pod = master.pod("kube-apiserver") or {"containers": [{}]}
        pids[master.name] = pod["containers"][0].get("pid")
    return pids


def playbook(cluster: Cluster, path: str, *extra: str) -> float:
    """Run a playbook to its end; its wall time in seconds, or an error with its output."""
    started = time.monotonic()
    run = cluster.playbook(path, *extra)
    seconds = time.monotonic() - started
    if run.returncode != 0:
        raise RuntimeError(f"{path} failed ({run.returncode}):\n{output(run)}")
    return seconds


def run_variant(variant: str, args: argparse.Namespace) -> Result:
    secret_id, secret_key = "AKIDbenchRotateV2", secrets.token_urlsafe(24)
    with ExitStack() as stack:
        lab = MasterLab(f"bench-{variant}-{os.getpid()}", args.masters, kms_v2=True).start()
        stack.callback(lab.stop)
        # On the lab's gateway: the plugins inside the masters' network namespaces reach it there.
        emulator = start_emulator_process({secret_id: secret_key}, host=lab.gateway)
        stack.callback(emulator.stop)
        settings = rollout_vars(
            emulator.url,
            secret_id,
            secret_key,
            tke_kms_key_alias="bench-key1",
            tke_kms_plugin_mode="static_pod",
            tke_kms_apiserver_timeout=90,
            tke_kms_automatic_reload=variant == "reload",
        )
        lab.write_inventory(settings)
        values = {f"bench-{number}": secrets.token_hex(8) for number in range(args.secrets)}
        lab.create_secrets(values)
        cluster = Cluster(lab, values, emulator, (secret_id, secret_key))
        print(f"{variant}: site.yml ...", flush=True)
        site = playbook(cluster, "site.yml")
        before = apiserver_pids(cluster)
        print(f"{variant}: rotate.yml (timed) ...", flush=True)
        rotate = playbook(cluster, "playbooks/rotate.yml", *ROTATION)
        after = apiserver_pids(cluster)
        return Result(variant, site, rotate, sum(before[m] != after[m] for m in before), *check(cluster))


def check(cluster: Cluster) -> tuple[str, str]:
    """(Secrets read back with their values on every master, Secrets under the new prefix in etcd)."""
    found = cluster.read_values("secrets")
    seeded = cluster.seeded
    intact = min(
        sum(1 for name, value in seeded.items() if isinstance(got, dict) and got.get(name) == value)
        for got in found.values()
    )
    prefix = f"k8s:enc:kms:v2:{NEW_PROVIDER}:".encode()
    stored = cluster.etcd_values("secrets", "default")
    rotated = sum(
        1 for name in seeded if stored.get(f"/registry/secrets/default/{name}", b"").startswith(prefix)
    )
    return f"{intact}/{len(seeded)}", f"{rotated}/{len(seeded)}"


def print_results(results: list[Result], args: argparse.Namespace) -> None:
    print(
        f"\nrotate.yml on {args.masters} KMS v2 masters (kube-apiserver {args.version}), "
        f"{args.secrets} Secrets, emulator at 0 ms; load average now {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'variant':<9}{'how':<36}{'site.yml s':>11}{'rotate.yml s':>13}{'vs restart':>11}"
        f"{'apiservers restarted':>22}{'Secrets intact':>16}{'new prefix':>12}"
    )
    base = next((r.rotate_seconds for r in results if r.variant == "restart"), None)
    for r in results:
        ratio = f"{r.rotate_seconds / base:.2f}" if base else "-"
        print(
            f"{r.variant:<9}{VARIANTS[r.variant]:<36}{r.site_seconds:>11.1f}{r.rotate_seconds:>13.1f}{ratio:>11}"
            f"{f'{r.restarted}/{args.masters}':>22}{r.intact:>16}{r.stored:>12}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--masters", type=int, default=3)
    parser.add_argument(
        "--secrets", type=int, default=200, help="Secrets of known values stored before site.yml"
    )
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {list(VARIANTS)}"
    )
    args = parser.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if unknown := set(variants) - set(VARIANTS):
        parser.error(f"unknown variants {sorted(unknown)}")
    if os.geteuid() != 0:
        print("SKIPPING: the lab masters need root")
        return 1 if os.environ.get("CI") == "true" else 0
    try:
        args.version = binaries.kube_v2_version(binaries.kube_v2_binary())
    except binaries.SidUnavailable as reason:
        print(f"SKIPPING: the lab's KMS v2 kube-apiserver is unavailable: {reason}")
        return 1 if os.environ.get("CI") == "true" else 0
    print_results([run_variant(variant, args) for variant in variants], args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
