"""Secret writes/s on the lab's KMS v2 kube-apiserver (k8s.io/apiserver 0.36): identity vs KMS v2.

    .venv/bin/python bench/bench_v2_apiserver.py [--secrets 2000] [--threads 16] [--latency-ms 20]
        [--rounds 5] [--warmup 200]

Cases, each on a fresh etcd + apiserver (ControlPlane(kms_v2=True)), interleaved --rounds times:
  identity           Secrets stored in the clear: the baseline
  v2 no-op           KMS v2 + a do-nothing plugin: the apiserver's own KMS v2 cost, the floor for any plugin
  v2 ours 0 ms       KMS v2 + tke-kms-plugin over a unix socket, the emulator as Tencent KMS
  v2 ours <N> ms     the same with --latency-ms injected into every emulator call
Per case: writes/s, p50/p99 latency (medians over rounds), the ratio to identity, the plugin's gRPC
Encrypt calls (from its /metrics) during the timed writes and since it started, and Tencent Encrypt calls
at the emulator during the timed writes. With DEK seeds (KMS v2, 1.29+) the apiserver calls Encrypt when it
generates a seed (start-up, key_id change), not per write. Every timed Secret is checked in etcd to carry
the `k8s:enc:kms:v2:<provider>:` prefix. Target: ours (0 ms and N ms) >= 0.95 x identity.
Prints numbers; asserts nothing. Needs the lab binaries (make lab-binaries).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import requests  # noqa: E402
from apiserver_load import cpu_seconds, median, run_parallel, secret_creator  # noqa: E402
from bench_apiserver import PAYLOAD, PROVIDER, Backends  # noqa: E402

from tests.lab import binaries, encryption  # noqa: E402
from tests.lab.apiserver import ControlPlane  # noqa: E402
from tests.lab.runtime import RUN_ROOT  # noqa: E402

RUN_DIR = RUN_ROOT / "bench-v2"
TARGET = 0.95
GRPC_ENCRYPTS = re.compile(
    r'^tke_kms_plugin_grpc_request_duration_seconds_count\{(?=[^}]*api_version="v2")(?=[^}]*method="Encrypt")'
    r"[^}]*\}\s+(\S+)$",
    re.MULTILINE,
)


@dataclass
class Row:
    key: str
    what: str
    rates: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    grpc_encrypts: list[int] = field(default_factory=list)  # during the timed writes
    grpc_encrypts_total: list[int] = field(default_factory=list)  # since the plugin started
    tencent_encrypts: list[int] = field(default_factory=list)  # during the timed writes
    cpu_ms: dict[str, list[float]] = field(default_factory=dict)  # per timed write, by process


@dataclass
class Case:
    """How one case stores Secrets: `providers(socket)` and which plugin serves the socket."""

    what: str
    plugin: str | None  # None (identity), "noop" or "ours"
    latency_ms: float = 0.0


def plugin_encrypts(metrics_url: str) -> int:
    """KMS v2 Encrypt calls the plugin has answered (every gRPC status code)."""
    text = requests.get(f"{metrics_url}/metrics", timeout=10).text
    return int(sum(float(value) for value in GRPC_ENCRYPTS.findall(text)))


def cpu_now(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each lab process and of this process (the client threads)."""
    own = os.times()
    return {**{name: cpu_seconds(pid) for name, pid in pids.items()}, "client": own.user + own.system}


def check_stored(plane: ControlPlane, prefix: bytes, expected: int) -> None:
    """Every timed Secret is in etcd and carries the expected envelope prefix."""
    values = plane.etcd.get_prefix("/registry/secrets/default/s").values()
    wrong = sum(1 for value in values if not value.startswith(prefix))
    if len(values) < expected or wrong:
        raise RuntimeError(f"{len(values)} of {expected} Secrets in etcd, {wrong} without prefix {prefix!r}")


def run_case(row: Row, case: Case, backends: Backends, args: argparse.Namespace) -> None:
    """A fresh etcd + apiserver; untimed warm-up writes, then the timed writes."""
    backends.latency(case.latency_ms)
    try:
        if case.plugin == "ours":
            with backends.our_plugin() as (socket, restart):
                plugin = restart()  # a fresh plugin per case: its caches and counters start empty
                config = encryption.config([encryption.kms_v2(PROVIDER, socket)])
                prefix = f"k8s:enc:kms:v2:{PROVIDER}:".encode()
                timed_writes(
                    row,
                    config,
                    prefix,
                    backends,
                    args,
                    plugin_pid=plugin.pid,
                    encrypts=lambda: plugin_encrypts(plugin.metrics_url),
                )
        elif case.plugin == "noop":
            with backends.noop_plugin() as (socket, process):
                config = encryption.config([encryption.kms_v2("noop", socket)])
                timed_writes(row, config, b"k8s:enc:kms:v2:noop:", backends, args, plugin_pid=process.pid)
        else:
            timed_writes(row, encryption.config([encryption.identity()]), b"k8s\x00", backends, args)
    finally:
        backends.latency(0)


def timed_writes(
    row: Row,
    config: dict,
    prefix: bytes,
    backends: Backends,
    args: argparse.Namespace,
    *,
    plugin_pid: int | None = None,
    encrypts: Callable[[], int] | None = None,
) -> None:
    plane = ControlPlane(RUN_DIR / f"case-{row.key}", encryption_config=config, kms_v2=True)
    plane.start()
    try:
        api = plane.apiserver

        def worker(prefix_: str):
            return secret_creator(api.admin_conf, "default", PAYLOAD, prefix_)

        pids = {"apiserver": api.process.pid, "etcd": plane.etcd.process.pid}
        if plugin_pid:
            pids["plugin"] = plugin_pid
        run_parallel(args.warmup, args.threads, worker("warm"))
        grpc_before = encrypts() if encrypts else 0
        tencent_before = backends.tencent_calls("Encrypt")
        cpu_before = cpu_now(pids)
        result = run_parallel(args.secrets, args.threads, worker("s"))
        cpu_after = cpu_now(pids)
        tencent_after = backends.tencent_calls("Encrypt")
        grpc_after = encrypts() if encrypts else 0
        check_stored(plane, prefix, args.secrets)
    finally:
        plane.stop(remove_data=True)
    row.rates.append(result.rate)
    row.p50.append(result.percentile(0.50))
    row.p99.append(result.percentile(0.99))
    row.tencent_encrypts.append(tencent_after - tencent_before)
    for name, seconds in cpu_after.items():
        row.cpu_ms.setdefault(name, []).append((seconds - cpu_before[name]) * 1000 / result.count)
    if encrypts:
        row.grpc_encrypts.append(grpc_after - grpc_before)
        row.grpc_encrypts_total.append(grpc_after)


def cases(args: argparse.Namespace) -> dict[str, Case]:
    slow = f"ours-{args.latency_ms:g}ms"
    return {
        "identity": Case("identity", None),
        "noop": Case("KMS v2 + no-op plugin", "noop"),
        "ours-0ms": Case("KMS v2 + tke-kms-plugin, emulator 0 ms", "ours"),
        slow: Case(f"KMS v2 + tke-kms-plugin, emulator {args.latency_ms:g} ms", "ours", args.latency_ms),
    }


def counts(values: list[int]) -> str:
    if not values:
        return "-"
    return str(values[0]) if len(set(values)) == 1 else f"{min(values)}-{max(values)}"


CPU_COLUMNS = ("apiserver", "etcd", "plugin", "client")


def print_rows(rows: dict[str, Row], args: argparse.Namespace, version: str) -> None:
    print(
        f"\nSecret writes on the KMS v2 kube-apiserver {version}: {args.secrets} creates, "
        f"{args.threads} client threads, {args.rounds} round(s), medians [min-max]; "
        f"load average now {os.getloadavg()[0]:.1f}"
    )
    header = f"{'case':<11}{'what':<42}{'writes/s':>9}{'[min-max]':>12}{'/identity':>10}"
    header += f"{'p50 ms':>8}{'p99 ms':>8}{'Encrypt':>9}{'Tencent':>8}"
    print(header + "".join(f"{name + ' CPU':>14}" for name in CPU_COLUMNS))
    base = median(rows["identity"].rates)
    for key, row in rows.items():
        rate = median(row.rates)
        spread = f"[{min(row.rates):.0f}-{max(row.rates):.0f}]"
        grpc = f"{counts(row.grpc_encrypts)}/{counts(row.grpc_encrypts_total)}" if row.grpc_encrypts else "-"
        tencent = counts(row.tencent_encrypts) if key.startswith("ours") else "-"
        line = f"{key:<11}{row.what:<42}{rate:>9.0f}{spread:>12}{rate / base:>10.2f}"
        line += f"{median(row.p50):>8.1f}{median(row.p99):>8.1f}{grpc:>9}{tencent:>8}"
        cpu = [f"{median(row.cpu_ms[name]):.2f}" if name in row.cpu_ms else "-" for name in CPU_COLUMNS]
        print(line + "".join(f"{value:>14}" for value in cpu))
    print(
        "Encrypt: KMS v2 Encrypt calls our plugin answered during the timed writes/since it started; "
        "Tencent: Encrypt calls the emulator served during the timed writes; CPU in ms per timed write"
    )
    for key, row in rows.items():
        if key.startswith("ours"):
            ratio = median(row.rates) / base
            verdict = "MET" if ratio >= TARGET else "NOT MET"
            print(f"target {key} >= {TARGET} x identity: {ratio:.2f} -> {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secrets", type=int, default=2000, help="timed creates per case and round")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--latency-ms", type=float, default=20, help="emulator latency of the slow case")
    parser.add_argument("--warmup", type=int, default=200, help="untimed writes before each timed run")
    parser.add_argument("--rounds", type=int, default=5, help="the cases are interleaved this many times")
    args = parser.parse_args()

    try:
        version = binaries.kube_v2_version(binaries.kube_v2_binary())
    except binaries.RouteUnavailable as reason:
        print(f"SKIPPING: the lab's KMS v2 kube-apiserver is unavailable: {reason}")
        return 1 if os.environ.get("CI") == "true" else 0
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    RUN_DIR.mkdir(parents=True)
    table = cases(args)
    rows = {key: Row(key, case.what) for key, case in table.items()}
    backends = Backends(RUN_DIR)
    try:
        keys = list(table)
        for round_number in range(args.rounds):
            shift = round_number % len(keys)  # each case takes each place in the order: no position bias
            for key in keys[shift:] + keys[:shift]:
                case = table[key]
                print(f"round {round_number + 1}: {key} ...", flush=True)
                run_case(rows[key], case, backends, args)
    finally:
        backends.close()
    print_rows(rows, args, version)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
