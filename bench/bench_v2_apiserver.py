"""Secret writes/s on the lab's KMS v2 kube-apiserver (k8s.io/apiserver 0.36): identity vs KMS v2.

    .venv/bin/python bench/bench_v2_apiserver.py [--secrets 600] [--rounds 15] [--threads 16]
        [--latency-ms 20] [--warmup 200]

Four cases, each its own etcd + apiserver (ControlPlane(kms_v2=True)), all started before the clock runs:
  identity           Secrets stored in the clear: the baseline
  noop               KMS v2 + a do-nothing plugin: the apiserver's own KMS v2 cost, the floor for any plugin
  ours-0ms           KMS v2 + tke-kms-plugin over a unix socket, an emulator as Tencent KMS
  ours-<N>ms         the same against a second emulator answering every call --latency-ms late
Then --rounds rounds of --secrets creates per case, the case order rotating every round: the shared
machine's noise falls on every case alike, and each round compares the cases a few seconds apart.
Per case: writes/s and p50/p99 (medians over rounds), the ratio to identity (median of the per-round
ratios), CPU per write of apiserver, etcd, plugin and this client, the mean value size in etcd, the
plugin's KMS v2 Encrypt calls (its /metrics) during the timed writes and since it started, and the Tencent
Encrypt calls the emulator served during the timed writes. With DEK seeds (KMS v2, 1.29+) the apiserver
calls Encrypt when it generates a seed (start-up, key_id change), not per write. Every Secret is checked in
etcd for its case's prefix (`k8s:enc:kms:v2:<provider>:`). Target: ours >= 0.95 x identity.
Prints numbers; asserts nothing. Needs the lab binaries (make lab-binaries).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
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
CPU_COLUMNS = ("apiserver", "etcd", "plugin", "client")
GRPC_ENCRYPTS = re.compile(
    r'^tke_kms_plugin_grpc_request_duration_seconds_count\{(?=[^}]*api_version="v2")(?=[^}]*method="Encrypt")'
    r"[^}]*\}\s+(\S+)$",
    re.MULTILINE,
)


@dataclass
class Case:
    """One running case: its control plane, the prefix its Secrets carry in etcd, and its plugin."""

    key: str
    what: str
    plane: ControlPlane
    prefix: bytes
    backends: Backends | None = None  # the emulator our plugin talks to
    plugin_pid: int | None = None
    metrics_url: str | None = None  # our plugin's /metrics
    rates: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    grpc_encrypts: int = 0  # during the timed writes
    tencent_encrypts: int = 0  # during the timed writes
    cpu_ms: dict[str, list[float]] = field(default_factory=dict)  # per timed write, by process
    writes: int = 0  # every create, warm-up included
    value_bytes: float = 0.0  # mean size of a Secret's value in etcd

    def encrypts(self) -> int:
        """KMS v2 Encrypt calls our plugin has answered since it started (every gRPC status code)."""
        if self.metrics_url is None:
            return 0
        text = requests.get(f"{self.metrics_url}/metrics", timeout=10).text
        return int(sum(float(value) for value in GRPC_ENCRYPTS.findall(text)))

    def tencent(self) -> int:
        return self.backends.tencent_calls("Encrypt") if self.backends else 0

    def pids(self) -> dict[str, int]:
        pids = {"apiserver": self.plane.apiserver.process.pid, "etcd": self.plane.etcd.process.pid}
        return {**pids, "plugin": self.plugin_pid} if self.plugin_pid else pids


def cpu_now(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each lab process and of this process (the client threads)."""
    own = os.times()
    return {**{name: cpu_seconds(pid) for name, pid in pids.items()}, "client": own.user + own.system}


def writer(case: Case, prefix: str, threads: int) -> Callable[[int], Callable[[int], None]]:
    make = secret_creator(case.plane.apiserver.admin_conf, "default", PAYLOAD, prefix)
    case.writes += threads  # run_parallel's warm-up call per thread
    return make


def timed_batch(case: Case, round_number: int, args: argparse.Namespace) -> None:
    """--secrets creates from --threads client threads, with the case's KMS calls and CPU around them."""
    grpc, tencent, cpu = case.encrypts(), case.tencent(), cpu_now(case.pids())
    result = run_parallel(args.secrets, args.threads, writer(case, f"r{round_number}-", args.threads))
    cpu_after = cpu_now(case.pids())
    case.tencent_encrypts += case.tencent() - tencent
    case.grpc_encrypts += case.encrypts() - grpc
    case.writes += result.count
    case.rates.append(result.rate)
    case.p50.append(result.percentile(0.50))
    case.p99.append(result.percentile(0.99))
    for name, seconds in cpu_after.items():
        case.cpu_ms.setdefault(name, []).append((seconds - cpu[name]) * 1000 / result.count)


def check_stored(case: Case) -> None:
    """Every Secret the case created is in etcd and carries the case's prefix."""
    values = case.plane.etcd.get_prefix("/registry/secrets/default/").values()
    wrong = sum(1 for value in values if not value.startswith(case.prefix))
    if len(values) != case.writes or wrong:
        raise RuntimeError(
            f"{case.key}: {len(values)} of {case.writes} Secrets in etcd, {wrong} without {case.prefix!r}"
        )
    case.value_bytes = sum(len(value) for value in values) / len(values)


@contextmanager
def started_cases(args: argparse.Namespace) -> Iterator[list[Case]]:
    """The four cases running side by side; everything stopped by PID afterwards."""
    slow = f"{args.latency_ms:g}"
    with ExitStack() as stack:
        fast_kms = Backends(RUN_DIR / "kms-0ms")
        stack.callback(fast_kms.close)
        slow_kms = Backends(RUN_DIR / f"kms-{slow}ms")
        stack.callback(slow_kms.close)
        slow_kms.latency(args.latency_ms)

        def plane(key: str, providers: list[dict]) -> ControlPlane:
            config = encryption.config(providers)
            plane = ControlPlane(RUN_DIR / key, encryption_config=config, kms_v2=True).start()
            stack.callback(plane.stop, remove_data=True)
            return plane

        cases = [Case("identity", "identity", plane("identity", [encryption.identity()]), b"k8s\x00")]
        noop_socket, noop = stack.enter_context(fast_kms.noop_plugin())
        cases.append(
            Case(
                "noop",
                "KMS v2 + no-op plugin",
                plane("noop", [encryption.kms_v2("noop", noop_socket)]),
                b"k8s:enc:kms:v2:noop:",
                plugin_pid=noop.pid,
            )
        )
        for key, latency, backends in (("ours-0ms", "0", fast_kms), (f"ours-{slow}ms", slow, slow_kms)):
            socket, restart = stack.enter_context(backends.our_plugin())
            plugin = restart()  # a fresh process whose handle we keep (PID, /metrics)
            cases.append(
                Case(
                    key,
                    f"KMS v2 + tke-kms-plugin, emulator {latency} ms",
                    plane(key, [encryption.kms_v2(PROVIDER, socket)]),
                    f"k8s:enc:kms:v2:{PROVIDER}:".encode(),
                    backends=backends,
                    plugin_pid=plugin.pid,
                    metrics_url=plugin.metrics_url,
                )
            )
        yield cases


def counts_text(case: Case) -> tuple[str, str]:
    if case.metrics_url is None:
        return "-", "-"
    return f"{case.grpc_encrypts}/{case.encrypts()}", str(case.tencent_encrypts)


def print_rows(cases: list[Case], args: argparse.Namespace, version: str) -> None:
    print(
        f"\nSecret writes on the KMS v2 kube-apiserver {version}: {args.rounds} rounds x {args.secrets} "
        f"creates per case, {args.threads} client threads; medians over rounds [min-max]; "
        f"load average now {os.getloadavg()[0]:.1f}"
    )
    header = f"{'case':<11}{'what':<42}{'writes/s':>9}{'[min-max]':>12}{'/identity':>10}"
    header += f"{'p50 ms':>8}{'p99 ms':>8}{'Encrypt':>9}{'Tencent':>8}{'bytes':>6}"
    print(header + "".join(f"{name + ' CPU':>14}" for name in CPU_COLUMNS))
    base = cases[0].rates
    for case in cases:
        ratio = statistics.median(r / b for r, b in zip(case.rates, base, strict=True))
        spread = f"[{min(case.rates):.0f}-{max(case.rates):.0f}]"
        grpc, tencent = counts_text(case)
        line = f"{case.key:<11}{case.what:<42}{median(case.rates):>9.0f}{spread:>12}{ratio:>10.2f}"
        line += (
            f"{median(case.p50):>8.1f}{median(case.p99):>8.1f}{grpc:>9}{tencent:>8}{case.value_bytes:>6.0f}"
        )
        cpu = [f"{median(case.cpu_ms[name]):.2f}" if name in case.cpu_ms else "-" for name in CPU_COLUMNS]
        print(line + "".join(f"{value:>14}" for value in cpu))
    print(
        "/identity: median of the per-round ratios; Encrypt: KMS v2 Encrypt calls our plugin answered during "
        "the timed writes/since it started;\nTencent: Encrypt calls its emulator served during the timed "
        "writes; bytes: mean Secret value in etcd; CPU: ms per timed write"
    )
    for case in cases:
        if case.key.startswith("ours"):
            ratio = statistics.median(r / b for r, b in zip(case.rates, base, strict=True))
            verdict = "MET" if ratio >= TARGET else "NOT MET"
            print(f"target {case.key} >= {TARGET} x identity: {ratio:.3f} -> {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secrets", type=int, default=600, help="timed creates per case and round")
    parser.add_argument("--rounds", type=int, default=15, help="rounds; the case order rotates every round")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--latency-ms", type=float, default=20, help="the second emulator's latency")
    parser.add_argument("--warmup", type=int, default=200, help="untimed creates per case before round 1")
    args = parser.parse_args()

    try:
        version = binaries.kube_v2_version(binaries.kube_v2_binary())
    except binaries.SidUnavailable as reason:
        print(f"SKIPPING: the lab's KMS v2 kube-apiserver is unavailable: {reason}")
        return 1 if os.environ.get("CI") == "true" else 0
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    RUN_DIR.mkdir(parents=True)
    with started_cases(args) as cases:
        for case in cases:
            run_parallel(args.warmup, args.threads, writer(case, "warm-", args.threads))
            case.writes += args.warmup
        for round_number in range(args.rounds):
            print(f"round {round_number + 1} ...", flush=True)
            shift = round_number % len(cases)
            for case in cases[shift:] + cases[:shift]:
                timed_batch(case, round_number, args)
        for case in cases:
            check_stored(case)
        print_rows(cases, args, version)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
