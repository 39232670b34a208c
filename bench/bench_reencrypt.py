"""Re-encrypting Secrets and ConfigMaps: tke.kms.reencrypt vs `kubectl get -A -o json | kubectl replace -f -`.

    .venv/bin/python bench/bench_reencrypt.py [--secrets 2000] [--configmaps 0] [--latencies 20,0]
                                              [--workers 16] [--module-args '{"page_size": 500}']

Scale: --secrets 10000 --configmaps 10000 (what broke elsewhere; about an hour on 2 cores, most of it the
pipeline). The kube-1.20 lab (kube-apiserver v1.20.2 + etcd), KMS v1 with our plugin and the emulator as
Tencent KMS, encrypting Secrets (and ConfigMaps when there are any). For each emulator latency and each
method, side by side on the same apiserver:
  1. the apiserver runs [identity, kms] and the objects, with distinct known values, are created (stored in
     the clear) in a fresh namespace;
  2. the apiserver is restarted with [kms, identity] (the write phase), the emulator latency is set;
  3. the method runs, timed: the kubectl pipeline (both resources in one list), or the module through
     `ansible localhost -m tke.kms.reencrypt` with `workers` (what a user runs, Ansible's start-up
     included; the module's own elapsed_seconds is printed beside it);
  4. every object is read back through the API (value compared) and raw from etcd (KMS prefix counted).
Prints times, objects/s, peak RSS (the module's own process, through an interpreter wrapper that Ansible
runs it with; for the pipeline its largest process), the CPU seconds each process spent during the timed
step (apiserver, etcd, plugin, emulator, and the client: kubectl or ansible with the module), the ratio
pipeline / module per latency against the targets (>= 3x at 20 ms, >= 1.5x at 0 ms) and the objects lost
(missing or wrong value) and left unencrypted. Asserts nothing.
Needs the lab binaries (make lab-binaries) and kubectl.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import bench_apiserver  # noqa: E402
from apiserver_load import cpu_seconds, run_parallel  # noqa: E402
from kubernetes import client, config  # noqa: E402

from tests.lab import binaries, encryption  # noqa: E402
from tests.lab.apiserver import ControlPlane, lab_env, write_manifest  # noqa: E402
from tests.lab.runtime import RUN_ROOT  # noqa: E402

RUN_DIR = RUN_ROOT / "bench-reencrypt"
PROVIDER = bench_apiserver.PROVIDER
KMS_PREFIX = f"k8s:enc:kms:v1:{PROVIDER}:".encode()
TARGETS = {20.0: 3.0, 0.0: 1.5}  # emulator latency (ms) -> pipeline time / module time


# Runs its arguments (after `prefix`) as a child and appends the child's peak RSS (KiB, ru_maxrss from wait4)
# to $TKE_KMS_BENCH_PEAK_RSS. A small process of its own: ru_maxrss also counts the memory a child inherits
# at fork, so the command must not be forked from this script (or Ansible's controller) directly.
PEAK_RSS_WRAPPER = """#!{python}
import os, subprocess, sys
child = subprocess.Popen({prefix!r} + sys.argv[1:])
_pid, status, usage = os.wait4(child.pid, 0)
with open(os.environ["TKE_KMS_BENCH_PEAK_RSS"], "a") as handle:
    handle.write("%d\\n" % usage.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
"""


@dataclass
class Run:
    method: str
    latency_ms: float
    seconds: float
    objects: int
    lost: int
    not_kms: int
    encrypt_calls: int
    peak_rss_mb: float
    result: str
    cpu: dict[str, float]  # CPU seconds per process during the timed step


def value_of(namespace: str, index: int) -> str:
    return f"{namespace}-value-{index}-" + "x" * 32


class Bench:
    """One apiserver (fresh etcd) for the whole run; each measured run gets its own namespace."""

    def __init__(
        self, backends: bench_apiserver.Backends, socket: Path, plugin_pid: int, args: argparse.Namespace
    ) -> None:
        self.backends = backends
        self.plugin_pid = plugin_pid
        self.args = args
        self.counts = {"secrets": args.secrets, "configmaps": args.configmaps}
        self.resources = tuple(name for name, count in self.counts.items() if count)
        kms = encryption.kms_v1(PROVIDER, socket, cachesize=int(sum(self.counts.values()) * 1.2))
        self.read_phase = encryption.config([encryption.identity(), kms], self.resources)
        self.write_phase = encryption.config([kms, encryption.identity()], self.resources)
        self.plane = ControlPlane(RUN_DIR / "plane", encryption_config=self.read_phase).start()
        self.manifest = write_manifest(RUN_DIR / "kube-apiserver.yaml", self.plane.apiserver.argv())
        self.runs = 0

    def close(self) -> None:
        self.plane.stop(remove_data=True)

    def prepare(self) -> str:
        """A fresh namespace of the objects stored in the clear; the previous run's removed from etcd
        directly (the apiserver is about to restart, so its cache follows)."""
        self.runs += 1
        namespace = f"bench{self.runs}"
        self.plane.restart_apiserver(self.read_phase)
        for plural in self.resources:
            self.plane.etcd.etcdctl("del", "--prefix", f"/registry/{plural}/bench")
        core = self.plane.apiserver.core()
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
        self.backends.latency(0)
        for plural in self.resources:
            writer = object_writer(self.plane.apiserver.admin_conf, namespace, plural)
            run_parallel(self.counts[plural], self.args.threads, writer)
            stored = self.plane.etcd.get_prefix(f"/registry/{plural}/{namespace}/")
            assert len(stored) == self.counts[plural]
            assert not any(v.startswith(KMS_PREFIX) for v in stored.values())
        self.plane.restart_apiserver(self.write_phase)
        return namespace

    def measure(self, method: str, latency_ms: float) -> Run:
        namespace = self.prepare()
        self.backends.latency(latency_ms)
        encrypts = self.backends.tencent_calls("Encrypt")
        before = self.cpu()
        started = time.perf_counter()
        result, peak_mb = self.pipeline() if method == "kubectl pipeline" else self.module()
        seconds = time.perf_counter() - started
        cpu = {name: spent - before[name] for name, spent in self.cpu().items()}
        calls = self.backends.tencent_calls("Encrypt") - encrypts
        self.backends.latency(0)
        lost, not_kms = self.check(namespace)
        objects = sum(self.counts.values())
        return Run(method, latency_ms, seconds, objects, lost, not_kms, calls, peak_mb, result, cpu)

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of each process taking part (the client: this script's finished children)."""
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        pids = {
            "apiserver": self.plane.apiserver.process.pid,
            "etcd": self.plane.etcd.process.pid,
            "plugin": self.plugin_pid,
            "emulator": self.backends.emulator.pid,
        }
        return {
            **{name: cpu_seconds(pid) for name, pid in pids.items()},
            "client": children.ru_utime + children.ru_stime,
        }

    def pipeline(self) -> tuple[str, float]:
        """(what it did, peak RSS in MB of its two kubectl processes together: they run at the same time)."""
        wrapper, peaks = peak_rss_wrapper("measured", [])
        kubectl = f"{wrapper} {binaries.kubectl()} --kubeconfig={self.plane.apiserver.admin_conf}"
        script = f"{kubectl} get {','.join(self.resources)} -A -o json | {kubectl} replace -f - | wc -l"
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            env=dict(lab_env(), TKE_KMS_BENCH_PEAK_RSS=str(peaks)),
            check=False,
        )
        peak = sum(int(kib) for kib in peaks.read_text().split()) / 1024
        if done.returncode != 0:
            return f"FAILED ({done.returncode}): {done.stderr.strip()[-300:]}", peak
        return f"{done.stdout.strip()} lines replaced", peak

    def module(self) -> tuple[str, float]:
        """(its counts, peak RSS in MB of the module's process)."""
        module_args = {
            "manifest_path": str(self.manifest),
            "kubeconfig": str(self.plane.apiserver.admin_conf),
            "resources": list(self.resources),
            "workers": self.args.workers,
            **json.loads(self.args.module_args),
        }
        interpreter, peaks = peak_rss_wrapper("measured-python", [sys.executable])
        env = dict(
            lab_env(),
            ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
            ANSIBLE_LOCALHOST_WARNING="False",
            TKE_KMS_BENCH_PEAK_RSS=str(peaks),
        )
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "ansible"),
                "localhost",
                "-o",
                "-e",
                f"ansible_python_interpreter={interpreter}",
                "-m",
                "tke.kms.reencrypt",
                "-a",
                json.dumps(module_args),
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            check=False,
        )
        peak = int(peaks.read_text()) / 1024 if peaks.exists() else float("nan")
        answer = done.stdout.partition("=>")[2].strip()
        try:
            result = json.loads(answer)
        except ValueError:
            return f"FAILED ({done.returncode}): {(done.stdout + done.stderr).strip()[-300:]}", peak
        counts = {k: result.get(k) for k in ("rewritten", "unchanged", "total", "elapsed_seconds")}
        counts.update(missing=len(result.get("missing") or []), failures=len(result.get("failures") or []))
        failed = "FAILED: " + str(result.get("msg")) + " " if result.get("failed") else ""
        return failed + json.dumps(counts), peak

    def check(self, namespace: str) -> tuple[int, int]:
        """(objects missing or with another value, objects in etcd without the KMS prefix)."""
        lost = not_kms = 0
        for plural in self.resources:
            values = self.values(plural, namespace)
            lost += sum(
                values.get(name_of(plural, i)) != value_of(namespace, i) for i in range(self.counts[plural])
            )
            stored = self.plane.etcd.get_prefix(f"/registry/{plural}/{namespace}/")
            not_kms += sum(not value.startswith(KMS_PREFIX) for value in stored.values())
        return lost, not_kms

    def values(self, plural: str, namespace: str) -> dict[str, str]:
        """{name: value of key v} of the objects in the namespace, read through the API page by page."""
        core = self.plane.apiserver.core()
        list_page = core.list_namespaced_secret if plural == "secrets" else core.list_namespaced_config_map
        values: dict[str, str] = {}
        token = None
        while True:
            page = list_page(namespace, limit=1000, _continue=token)
            for item in page.items:
                value = (item.data or {}).get("v", "")
                values[item.metadata.name] = (
                    base64.b64decode(value).decode() if plural == "secrets" else value
                )
            token = page.metadata._continue
            if not token:
                return values


def peak_rss_wrapper(name: str, prefix: list[str]) -> tuple[Path, Path]:
    """(a PEAK_RSS_WRAPPER running `prefix` + its arguments, the fresh file it reports to)."""
    wrapper, peaks = RUN_DIR / name, RUN_DIR / f"{name}.peak-rss-kib"
    wrapper.write_text(PEAK_RSS_WRAPPER.format(python=sys.executable, prefix=prefix))
    wrapper.chmod(0o755)
    peaks.unlink(missing_ok=True)
    return wrapper, peaks


def name_of(plural: str, index: int) -> str:
    return f"{plural[0]}{index}"  # s0..., c0...


def object_writer(kubeconfig: Path, namespace: str, plural: str):
    kind = {"secrets": "Secret", "configmaps": "ConfigMap"}[plural]

    def make(thread: int):
        api = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        create_object = api.create_namespaced_secret if kind == "Secret" else api.create_namespaced_config_map

        def create(index: int) -> None:
            if index < 0:  # run_parallel's untimed warm-up call
                api.list_namespaced_secret(namespace, limit=1)
                return
            value = value_of(namespace, index)
            data = base64.b64encode(value.encode()).decode() if kind == "Secret" else value
            body = {
                "apiVersion": "v1",
                "kind": kind,
                "metadata": {"name": name_of(plural, index)},
                "data": {"v": data},
            }
            create_object(namespace, body, _preload_content=False)

        return create

    return make


def print_table(runs: list[Run]) -> None:
    print()
    print(
        f"{'method':<18} {'latency':>8} {'objects':>7} {'seconds':>8} {'objects/s':>9} {'peak RSS':>8} "
        f"{'Encrypt':>8} {'lost':>5} {'not KMS':>8}  "
        f"CPU s: {'apisrv':>6} {'etcd':>5} {'plugin':>6} {'emul':>5} {'client':>6}  result"
    )
    for run in runs:
        cpu = " ".join(
            f"{run.cpu[name]:>{width}.1f}"
            for name, width in (("apiserver", 6), ("etcd", 5), ("plugin", 6), ("emulator", 5), ("client", 6))
        )
        print(
            f"{run.method:<18} {run.latency_ms:>6g}ms {run.objects:>7} {run.seconds:>8.1f} "
            f"{run.objects / run.seconds:>9.1f} {run.peak_rss_mb:>6.0f}MB {run.encrypt_calls:>8} "
            f"{run.lost:>5} {run.not_kms:>8}         {cpu}  {run.result}"
        )
    print()
    for latency in sorted({run.latency_ms for run in runs}, reverse=True):
        by_method = {run.method: run for run in runs if run.latency_ms == latency}
        pipeline, module = by_method.get("kubectl pipeline"), by_method.get("tke.kms.reencrypt")
        if not (pipeline and module):
            continue
        ratio = pipeline.seconds / module.seconds
        target = TARGETS.get(latency)
        verdict = (
            "" if target is None else f" (target >= {target:g}x: {'MET' if ratio >= target else 'NOT MET'})"
        )
        print(
            f"{latency:g} ms: pipeline {pipeline.seconds:.1f} s ({pipeline.objects / pipeline.seconds:.0f} "
            f"objects/s, peak RSS {pipeline.peak_rss_mb:.0f} MB), module {module.seconds:.1f} s "
            f"({module.objects / module.seconds:.0f} objects/s, peak RSS {module.peak_rss_mb:.0f} MB), "
            f"ratio {ratio:.2f}x{verdict}"
        )
    lost, plain = sum(run.lost for run in runs), sum(run.not_kms for run in runs)
    print(f"lost objects (missing or changed) over all runs: {lost}; left unencrypted: {plain}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secrets", type=int, default=2000)
    parser.add_argument("--configmaps", type=int, default=0, help="ConfigMaps too (then encrypted as well)")
    parser.add_argument("--latencies", default="20,0", help="emulator latencies in ms, comma-separated")
    parser.add_argument("--threads", type=int, default=16, help="client threads creating the objects")
    parser.add_argument("--workers", type=int, default=16, help="the module's workers option")
    parser.add_argument(
        "--module-args", default="{}", help="extra JSON arguments for the module, e.g. '{\"page_size\": 100}'"
    )
    args = parser.parse_args()
    latencies = [float(x) for x in args.latencies.split(",") if x.strip()]

    binaries.kube_dir()
    if binaries.kubectl() is None:
        print("no kubectl on this machine: the baseline cannot run")
        return 1
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    RUN_DIR.mkdir(parents=True)
    bench_apiserver.RUN_DIR.mkdir(parents=True, exist_ok=True)  # where Backends puts the plugin's log
    os.environ.pop("REQUESTS_CA_BUNDLE", None)
    backends = bench_apiserver.Backends()
    runs: list[Run] = []
    try:
        with backends.our_plugin() as (socket, restart):
            plugin = restart()  # a fresh one whose process is known, for its CPU time
            bench = Bench(backends, socket, plugin.process.pid, args)
            try:
                for latency in latencies:
                    for method in ("tke.kms.reencrypt", "kubectl pipeline"):
                        print(f"{method} at {latency:g} ms ...", flush=True)
                        runs.append(bench.measure(method, latency))
                        print(f"  {runs[-1]}", flush=True)
            finally:
                bench.close()
    finally:
        backends.close()
    print_table(runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
