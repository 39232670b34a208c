"""A real kube-apiserver behind each encryption provider: Secret write rates and restart costs.

    .venv/bin/python bench/bench_apiserver.py [--cases a,b,c,d,e,v2,f,fnoop] [--secrets 2000]
        [--threads 16] [--latency-ms 20] [--rounds 1] [--warmup 200]

Writes (the kube-1.20 lab, kube-apiserver v1.20.2, fresh etcd per case; N Secrets from 16 client threads):
  (a) identity  (b) aescbc  (c) KMS v1 + a no-op plugin: the floor any plugin can reach here
  (d) KMS v1 + our plugin + emulator at 0 ms  (e) the same with the emulator at --latency-ms
  Each rate is printed with its ratio to (a) and to (c). Target: (d) >= 0.85 x (c). With --rounds N
  the cases are interleaved N times and medians printed (the machine is shared: use N >= 3).
v2 (the apiext lab, k8s.io/apiserver >= 0.29, a custom resource): identity, KMS v2 + a no-op plugin (the
  apiserver's own per-write KDF cost), KMS v2 + our plugin (0 ms and --latency-ms).
  Target: v2 >= 0.95 x identity.
f: N KMS-v1 Secrets stored, then the apiserver restarted; spawn -> /readyz and the first LIST of all
  Secrets, at 0 ms and --latency-ms, plugin kept running (warm) or restarted too (cold), counting
  Tencent Decrypt calls. Target (warm, our plugin): the slow-KMS times <= 2 x the 0 ms times, and
  Decrypt calls <= distinct DEKs. fnoop: the same restart with the no-op plugin, side by side.
Prints numbers; asserts nothing. Needs the lab binaries (make lab-binaries).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from apiserver_load import cpu_seconds, median, run_parallel, secret_creator, widget_creator  # noqa: E402
from kubernetes import client  # noqa: E402
from tke_kms_plugin.emulator.testing import start_emulator_process  # noqa: E402

from tests.fixtures.plugin import launch_plugin, plugin_args, plugin_env, wait_serving  # noqa: E402
from tests.lab import binaries, encryption  # noqa: E402
from tests.lab.apiext import RESOURCE, ApiextLab  # noqa: E402
from tests.lab.apiserver import ControlPlane  # noqa: E402
from tests.lab.envelope import parse_v1  # noqa: E402
from tests.lab.noop_kms import NoopPlugin  # noqa: E402
from tests.lab.runtime import RUN_ROOT, short_socket_path, wait_for  # noqa: E402

SECRET_ID, SECRET_KEY = "AKIDbenchApiserver00000000000000000", "bench-apiserver-secret-key-000000000"
REGION = "ap-guangzhou"
PROVIDER = "tke-kms-plugin"
PAYLOAD = os.urandom(48)
RUN_DIR = RUN_ROOT / "bench"
ALL_CASES = ("a", "b", "c", "d", "e", "v2", "f", "fnoop")


# --- the KMS side: the emulator as Tencent KMS, our plugin, the no-op plugin


class Backends:
    """One emulator for the whole run; plugins started per case and stopped by PID."""

    def __init__(self, run_dir: Path = RUN_DIR) -> None:
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self.emulator = start_emulator_process({SECRET_ID: SECRET_KEY})
        self.admin = self.emulator.admin
        self.key_id = self.admin.create_key(REGION, alias="bench-apiserver")
        self._count = 0

    def latency(self, ms: float) -> None:
        self.admin.set_latency("*", fixed_ms=ms)

    def tencent_calls(self, action: str) -> int:
        return self.admin.call_counts().get(action, 0)

    @contextmanager
    def our_plugin(self) -> Iterator[tuple[Path, Any]]:
        """Our plugin (default flags) on a fresh socket; yields (socket, restart) where restart()
        replaces it with a fresh process on the same socket and returns that."""
        socket = short_socket_path("bench-plugin")
        args = plugin_args(str(socket), key_id=self.key_id, region=REGION, endpoint=self.emulator.endpoint)
        running: list[Any] = []

        def restart() -> Any:
            if running:
                running.pop().stop()
            self._count += 1
            log = self.run_dir / f"plugin-{self._count}.log"
            running.append(
                wait_serving(launch_plugin(args, plugin_env(SECRET_ID, SECRET_KEY), log, str(socket)))
            )
            return running[-1]

        restart()
        try:
            yield socket, restart
        finally:
            for plugin in running:
                plugin.stop()

    @contextmanager
    def noop_plugin(self, latency_ms: float = 0) -> Iterator[tuple[Path, Any]]:
        plugin = NoopPlugin(
            short_socket_path("bench-noop"), log_dir=self.run_dir, latency_ms=latency_ms
        ).start()
        try:
            yield plugin.socket, plugin.process
        finally:
            plugin.stop()

    def close(self) -> None:
        self.emulator.stop()


# --- write throughput


@dataclass
class WriteRow:
    case: str
    what: str
    rates: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    server_cpu_ms: list[float] = field(default_factory=list)
    plugin_cpu_ms: list[float] = field(default_factory=list)
    emulator_cpu_ms: list[float] = field(default_factory=list)
    encrypt_calls: list[int] = field(default_factory=list)


def measure_writes(row: WriteRow, pids: dict[str, int], make_worker, backends: Backends, args) -> None:
    """Untimed warm-up writes (the apiserver's post-start work settles), then the timed run."""
    run_parallel(args.warmup, args.threads, make_worker("warm"))
    make_worker = make_worker("s")
    pids = {**pids, "emulator": backends.emulator.pid}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    encrypts = backends.tencent_calls("Encrypt")
    result = run_parallel(args.secrets, args.threads, make_worker)
    after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    row.rates.append(result.rate)
    row.p50.append(result.percentile(0.50))
    row.p99.append(result.percentile(0.99))
    row.server_cpu_ms.append((after["server"] - before["server"]) * 1000 / result.count)
    if "plugin" in pids:
        row.plugin_cpu_ms.append((after["plugin"] - before["plugin"]) * 1000 / result.count)
    row.emulator_cpu_ms.append((after["emulator"] - before["emulator"]) * 1000 / result.count)
    row.encrypt_calls.append(backends.tencent_calls("Encrypt") - encrypts)


def kube_1_20_writes(row: WriteRow, config: dict, plugin_pid: int | None, backends: Backends, args) -> None:
    plane = ControlPlane(RUN_DIR / f"case-{row.case}", encryption_config=config)
    plane.start()
    try:
        pids = {"server": plane.apiserver.process.pid}
        if plugin_pid:
            pids["plugin"] = plugin_pid

        def worker(prefix: str):
            return secret_creator(plane.apiserver.admin_conf, "default", PAYLOAD, prefix)

        measure_writes(row, pids, worker, backends, args)
    finally:
        plane.stop(remove_data=True)


def apiext_writes(row: WriteRow, config: dict, plugin_pid: int | None, backends: Backends, args) -> None:
    lab = ApiextLab(RUN_DIR / f"case-{row.case}", encryption_config=config)
    lab.start()
    try:
        api = lab.apiserver
        if config["resources"][0]["providers"][0].get("kms"):
            api.wait_check("/readyz/kms-providers")
        pids = {"server": api.process.pid}
        if plugin_pid:
            pids["plugin"] = plugin_pid

        def worker(prefix: str):
            return widget_creator(
                api.url, api.pki.ca.cert, (api.admin.cert, api.admin.key), PAYLOAD.hex(), prefix
            )

        measure_writes(row, pids, worker, backends, args)
    finally:
        lab.stop(remove_data=True)


def write_cases(selected: list[str], backends: Backends, args) -> dict[str, Callable[[WriteRow], None]]:
    def plain(providers, writes=kube_1_20_writes):
        return lambda row: writes(row, encryption.config(providers), None, backends, args)

    def with_noop(row: WriteRow) -> None:
        with backends.noop_plugin() as (socket, process):
            config = encryption.config([encryption.kms_v1("noop", socket), encryption.identity()])
            kube_1_20_writes(row, config, process.pid, backends, args)

    def with_ours(latency_ms: float, v2: bool = False) -> Callable[[WriteRow], None]:
        def run(row: WriteRow) -> None:
            backends.latency(latency_ms)
            try:
                with backends.our_plugin() as (socket, restart):
                    plugin = restart()  # a fresh plugin per case: its DEK cache starts empty
                    if v2:
                        config = encryption.config([encryption.kms_v2(PROVIDER, socket)], (RESOURCE,))
                        apiext_writes(row, config, plugin.pid, backends, args)
                    else:
                        config = encryption.config(
                            [encryption.kms_v1(PROVIDER, socket), encryption.identity()]
                        )
                        kube_1_20_writes(row, config, plugin.pid, backends, args)
            finally:
                backends.latency(0)

        return run

    def v2_noop(row: WriteRow) -> None:
        with backends.noop_plugin() as (socket, process):
            config = encryption.config([encryption.kms_v2("noop", socket)], (RESOURCE,))
            apiext_writes(row, config, process.pid, backends, args)

    def v2_identity(row: WriteRow) -> None:
        apiext_writes(row, encryption.config([encryption.identity()], (RESOURCE,)), None, backends, args)

    table = {
        "a": plain([encryption.identity()]),
        "b": plain([encryption.aescbc(), encryption.identity()]),
        "c": with_noop,
        "d": with_ours(0),
        "e": with_ours(args.latency_ms),
        "v2-identity": v2_identity,
        "v2-noop": v2_noop,
        "v2": with_ours(0, v2=True),
        f"v2-{args.latency_ms:g}ms": with_ours(args.latency_ms, v2=True),
    }
    wanted = [k for k in table if k in selected or (k.startswith("v2") and "v2" in selected)]
    return {k: table[k] for k in wanted}


WRITE_TITLES = {
    "a": "identity",
    "b": "aescbc",
    "c": "KMS v1 + no-op plugin",
    "d": "KMS v1 + our plugin, emulator 0 ms",
    "e": "KMS v1 + our plugin, emulator {lat:g} ms",
    "v2-identity": "apiext lab: identity",
    "v2-noop": "apiext lab: KMS v2 + no-op plugin",
    "v2": "apiext lab: KMS v2 + our plugin, 0 ms",
    "v2-{lat:g}ms": "apiext lab: KMS v2 + our plugin, {lat:g} ms",
}


def print_writes(rows: dict[str, WriteRow], args) -> None:
    print(
        f"\nSecret writes: {args.secrets} creates, {args.threads} client threads, "
        f"{args.rounds} round(s), medians [min-max]; load average now {os.getloadavg()[0]:.1f}"
    )
    header = f"{'case':<14}{'what':<44}{'writes/s':>9}{'[min-max]':>12}{'/(a)':>7}{'/(c)':>7}"
    header += f"{'p50 ms':>8}{'p99 ms':>8}{'srv CPU ms':>11}"
    print(header + f"{'plugin CPU ms':>14}{'emul CPU ms':>12}{'Encrypts':>9}")
    base_a = median(rows["a"].rates) if "a" in rows else None
    base_c = median(rows["c"].rates) if "c" in rows else None
    base_v2 = median(rows["v2-identity"].rates) if "v2-identity" in rows else None
    floor_v2 = median(rows["v2-noop"].rates) if "v2-noop" in rows else None
    for key, row in rows.items():
        rate = median(row.rates)
        base_first = base_v2 if key.startswith("v2") else base_a
        vs_a = f"{rate / base_first:.2f}" if base_first else "-"
        floor = floor_v2 if key.startswith("v2") else base_c
        vs_c = f"{rate / floor:.2f}" if floor else "-"
        plugin_cpu = f"{median(row.plugin_cpu_ms):.2f}" if row.plugin_cpu_ms else "-"
        print(
            f"{key:<14}{row.what:<44}{rate:>9.0f}{f'[{min(row.rates):.0f}-{max(row.rates):.0f}]':>12}{vs_a:>7}{vs_c:>7}{median(row.p50):>8.1f}{median(row.p99):>8.1f}"
            f"{median(row.server_cpu_ms):>11.2f}{plugin_cpu:>14}{median(row.emulator_cpu_ms):>12.2f}"
            f"{int(median(row.encrypt_calls)):>9}"
        )
    print("(v2 rows: /(a) is the ratio to apiext lab identity, /(c) to apiext lab KMS v2 + no-op plugin)")
    if "d" in rows and base_c:
        ratio = median(rows["d"].rates) / base_c
        print(f"target (d) >= 0.85 x (c): {ratio:.2f} -> {'MET' if ratio >= 0.85 else 'NOT MET'}")
    if "v2" in rows and base_v2:
        ratio = median(rows["v2"].rates) / base_v2
        print(f"target v2 >= 0.95 x identity: {ratio:.2f} -> {'MET' if ratio >= 0.95 else 'NOT MET'}")


# --- restart with N Secrets stored


@dataclass
class RestartRow:
    plugin: str
    latency_ms: float
    mode: str
    to_readyz: float
    first_list: float
    decrypts: int | None
    distinct_deks: int


def timed_restart(plane: ControlPlane) -> tuple[float, float]:
    """spawn -> /readyz ok, then the first LIST of all Secrets (all decrypted)."""
    api = plane.apiserver
    api.stop()
    started = time.monotonic()
    api.start(wait=False)
    wait_for(
        lambda: api.get("/readyz").text == "ok", timeout=600, what="/readyz", interval=0.05, alive=api.alive
    )
    ready = time.monotonic()
    response = client.CoreV1Api(api.api_client()).list_namespaced_secret(
        "default", _preload_content=False, _request_timeout=600
    )
    if response.status != 200:
        raise RuntimeError(f"LIST failed: HTTP {response.status}")
    return ready - started, time.monotonic() - ready


def restart_case(ours: bool, backends: Backends, args) -> list[RestartRow]:
    rows: list[RestartRow] = []
    directory = RUN_DIR / f"restart-{'ours' if ours else 'noop'}"
    latencies = (0.0, float(args.latency_ms))
    backends.latency(0)
    if ours:
        with backends.our_plugin() as (socket, restart_plugin):
            plane = ControlPlane(directory, encryption_config=kms_config(socket))
            try:
                plane.start()
                distinct = fill(plane, args)
                for latency in latencies:
                    for mode in ("warm", "cold"):
                        backends.latency(latency)
                        if mode == "cold":  # the plugin restarts too, as on a master reboot: empty cache
                            restart_plugin()
                        decrypts = backends.tencent_calls("Decrypt")
                        to_ready, first_list = timed_restart(plane)
                        decrypts = backends.tencent_calls("Decrypt") - decrypts
                        rows.append(
                            RestartRow("ours", latency, mode, to_ready, first_list, decrypts, distinct)
                        )
            finally:
                backends.latency(0)
                plane.stop(remove_data=True)
        return rows
    for latency in latencies:  # the no-op plugin's latency is fixed at start: one plane per latency
        with backends.noop_plugin(latency) as (socket, _):
            plane = ControlPlane(directory / f"{latency:g}", encryption_config=kms_config(socket, "noop"))
            try:
                plane.start()
                distinct = fill(plane, args)
                to_ready, first_list = timed_restart(plane)
                rows.append(RestartRow("no-op", latency, "warm", to_ready, first_list, None, distinct))
            finally:
                plane.stop(remove_data=True)
    return rows


def kms_config(socket: Path, name: str = PROVIDER) -> dict:
    return encryption.config([encryption.kms_v1(name, socket, cachesize=1000), encryption.identity()])


def fill(plane: ControlPlane, args) -> int:
    """Store N Secrets; return the number of distinct encrypted DEKs in etcd."""
    run_parallel(args.secrets, args.threads, secret_creator(plane.apiserver.admin_conf, "default", PAYLOAD))
    if (stored := plane.etcd.count_prefix("/registry/secrets/default/")) < args.secrets:
        raise RuntimeError(f"only {stored} of {args.secrets} Secrets stored")
    values = plane.etcd.get_prefix("/registry/secrets/").values()
    return len({parse_v1(v).encrypted_dek for v in values if v.startswith(b"k8s:enc:kms:v1:")})


def print_restarts(rows: list[RestartRow], args) -> None:
    print(
        f"\napiserver restart with {args.secrets} KMS-v1 Secrets stored (cachesize 1000); "
        f"load average now {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'plugin':<8}{'KMS ms':>7}{'  mode':<7}{'spawn->readyz s':>16}{'first LIST s':>13}"
        f"{'Decrypts':>9}{'DEKs':>6}"
    )
    for row in rows:
        decrypts = "-" if row.decrypts is None else str(row.decrypts)
        print(
            f"{row.plugin:<8}{row.latency_ms:>7g}  {row.mode:<5}{row.to_readyz:>16.1f}{row.first_list:>13.1f}"
            f"{decrypts:>9}{row.distinct_deks:>6}"
        )
    ours = {(r.latency_ms, r.mode): r for r in rows if r.plugin == "ours"}
    fast, slow = ours.get((0.0, "warm")), ours.get((float(args.latency_ms), "warm"))
    if fast and slow:
        ok_time = slow.to_readyz <= 2 * fast.to_readyz and slow.first_list <= 2 * max(fast.first_list, 0.5)
        ok_calls = all(r.decrypts is not None and r.decrypts <= r.distinct_deks for r in ours.values())
        print(
            f"target {args.latency_ms:g} ms <= 2 x 0 ms (warm plugin): {'MET' if ok_time else 'NOT MET'}; "
            f"Decrypt calls <= distinct DEKs: {'MET' if ok_calls else 'NOT MET'}"
        )


# --- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(ALL_CASES), help=f"comma-separated subset of {ALL_CASES}")
    parser.add_argument("--secrets", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--warmup", type=int, default=200, help="untimed writes before each timed run")
    parser.add_argument("--rounds", type=int, default=1, help="write cases are interleaved this many times")
    args = parser.parse_args()
    selected = [c.strip() for c in args.cases.split(",") if c.strip()]
    if unknown := set(selected) - set(ALL_CASES):
        parser.error(f"unknown cases {sorted(unknown)}")

    binaries.kube_dir()
    if any(c.startswith("v2") for c in selected):
        try:
            binaries.apiext_binary()
        except binaries.SidUnavailable as reason:
            print(f"SKIPPING v2 rows: apiext lab unavailable: {reason}")
            selected = [c for c in selected if not c.startswith("v2")]
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    RUN_DIR.mkdir(parents=True)
    backends = Backends()
    try:
        cases = write_cases(selected, backends, args)
        rows = {
            key: WriteRow(
                key, WRITE_TITLES[key.replace(f"{args.latency_ms:g}", "{lat:g}")].format(lat=args.latency_ms)
            )
            for key in cases
        }
        for round_number in range(args.rounds):
            for key, run in cases.items():
                print(f"round {round_number + 1}: {key} ...", flush=True)
                run(rows[key])
        if rows:
            print_writes(rows, args)
        restarts: list[RestartRow] = []
        if "fnoop" in selected:
            print("restart: no-op plugin ...", flush=True)
            restarts += restart_case(False, backends, args)
        if "f" in selected:
            print("restart: our plugin ...", flush=True)
            restarts += restart_case(True, backends, args)
        if restarts:
            print_restarts(restarts, args)
    finally:
        backends.close()
        with suppress(OSError):
            shutil.rmtree(RUN_DIR / "sock", ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
