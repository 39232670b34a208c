"""Load and measurement helpers for bench_apiserver.py: parallel creates, CPU accounting, percentiles."""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests
from kubernetes import client, config

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass
class LoadResult:
    count: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def run_parallel(total: int, threads: int, make_worker: Callable[[int], Callable[[int], None]]) -> LoadResult:
    """`total` calls spread over `threads` threads; make_worker(thread) returns call(index).

    Each thread makes one untimed warm-up call (TLS handshake, connection pool) before a barrier;
    the clock runs from the barrier to the last call's end.
    """
    workers = [make_worker(t) for t in range(threads)]
    barrier = threading.Barrier(threads + 1)
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []

    def body(thread: int) -> None:
        call = workers[thread]
        try:
            call(-1 - thread)  # warm-up
        except BaseException as exc:
            errors.append(exc)
        barrier.wait()
        for index in range(thread, total, threads):
            started = time.perf_counter()
            try:
                call(index)
            except BaseException as exc:
                errors.append(exc)
                return
            latencies[thread].append(time.perf_counter() - started)

    pool = [threading.Thread(target=body, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} calls failed; first: {errors[0]!r}")
    flat = [x for per_thread in latencies for x in per_thread]
    return LoadResult(len(flat), elapsed, flat)


def secret_creator(
    kubeconfig: Path, namespace: str, payload: bytes, prefix: str = "s"
) -> Callable[[int], Callable[[int], None]]:
    """Workers creating Secrets through the `kubernetes` client, one ApiClient per thread, without
    deserialising responses into models (the client's cost, not the server's)."""
    import base64  # noqa: PLC0415 - only needed here

    data = {"payload": base64.b64encode(payload).decode()}

    def make(thread: int) -> Callable[[int], None]:
        api = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))

        def create(index: int) -> None:
            body = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": f"{prefix}{index}"},
                "data": data,
            }
            response = api.create_namespaced_secret(namespace, body, _preload_content=False)
            if response.status != 201:
                raise RuntimeError(f"HTTP {response.status}")

        return create

    return make


def widget_creator(
    url: str, ca: Path, cert: tuple[Path, Path], payload: str, prefix: str = "w"
) -> Callable[[int], Callable[[int], None]]:
    """Workers creating the apiext lab's widgets over HTTPS with the admin client certificate."""

    def make(thread: int) -> Callable[[int], None]:
        session = requests.Session()
        session.trust_env = False
        session.verify = str(ca)
        session.cert = (str(cert[0]), str(cert[1]))

        def create(index: int) -> None:
            name = f"{prefix}{index}"
            body = {
                "apiVersion": "example.com/v1",
                "kind": "Widget",
                "metadata": {"name": name},
                "data": {"p": payload},
            }
            response = session.post(f"{url}/apis/example.com/v1/widgets", json=body, timeout=60)
            if response.status_code != 201:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")

        return create

    return make


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
