"""Throughput of the Tencent Cloud KMS emulator under signed Encrypt calls from the real SDK.

The emulator runs as its console script (its own process); the clients run in separate processes
(GIL): `--clients` concurrent SDK clients in all, each with its own keep-alive connection.
Side by side, the same clients run against a baseline: a stdlib threaded HTTP server in its own process
that answers a canned Encrypt reply without checking signatures or encrypting, i.e. the ceiling this
client load and HTTP stack allow on this machine. Target (issue #2): >= 1,000 calls/s with 16 clients.

    .venv/bin/python bench/bench_emulator.py [--clients 16] [--processes 4] [--seconds 5]
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import os
import statistics
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tencentcloud.kms.v20190118 import models
from tke_kms_plugin.emulator.testing import make_kms_client, start_emulator_process

SECRET_ID = "AKIDbenchEmulator000000000000000000"  # noqa: S105 - a test id
SECRET_KEY = "bench-emulator-secret-key-0000000000"  # noqa: S105 - accepted only by the local emulator
TARGET_CALLS_PER_SECOND = 1000
PLAINTEXT = base64.b64encode(os.urandom(32)).decode()  # a DEK-sized payload, as the plugin sends


@dataclass(frozen=True)
class Load:
    endpoint: str
    key_id: str
    seconds: float


class ClientRun:
    """The clients of one process: connect and warm up, wait for the shared start, call until the end."""

    def __init__(self, load: Load, threads: int) -> None:
        self.load = load
        self.warmed = threading.Barrier(threads + 1)
        self.start = threading.Event()
        self.stop_at = 0.0
        self.outcomes: list[tuple[list[float], int]] = []
        self.threads = [threading.Thread(target=self.client) for _ in range(threads)]

    def client(self) -> None:
        client = make_kms_client(self.load.endpoint, SECRET_ID, SECRET_KEY)
        request = models.EncryptRequest()
        request.KeyId = self.load.key_id
        request.Plaintext = PLAINTEXT
        client.Encrypt(request)  # the connection is open before the clock starts
        self.warmed.wait()
        self.start.wait()
        latencies, errors = [], 0
        while time.monotonic() < self.stop_at:
            began = time.perf_counter()
            try:
                client.Encrypt(request)
            except Exception:
                errors += 1
                continue
            latencies.append(time.perf_counter() - began)
        self.outcomes.append((latencies, errors))

    def run(self, ready: Any, go: Any) -> list[tuple[list[float], int]]:
        for thread in self.threads:
            thread.start()
        self.warmed.wait()
        ready.wait()  # every process's clients are connected
        go.wait()
        self.stop_at = time.monotonic() + self.load.seconds
        self.start.set()
        for thread in self.threads:
            thread.join()
        return self.outcomes


def client_process(load: Load, threads: int, ready: Any, go: Any, results: Any) -> None:
    results.put(ClientRun(load, threads).run(ready, go))


def run_load(load: Load, clients: int, processes: int) -> dict[str, float]:
    ctx = multiprocessing.get_context("spawn")
    shares = [n for n in (clients // processes + (i < clients % processes) for i in range(processes)) if n]
    ready, go, results = ctx.Barrier(len(shares) + 1), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=client_process, args=(load, n, ready, go, results)) for n in shares]
    for proc in procs:
        proc.start()
    ready.wait()
    go.set()
    began = time.monotonic()
    outcomes = [outcome for _ in procs for outcome in results.get()]
    elapsed = time.monotonic() - began
    for proc in procs:
        proc.join()
    latencies = sorted(latency for run, _ in outcomes for latency in run)
    return {
        "calls_per_second": len(latencies) / max(elapsed, load.seconds),
        "errors": sum(errors for _, errors in outcomes),
        "p50_ms": statistics.median(latencies) * 1000 if latencies else float("nan"),
        "p99_ms": latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000 if latencies else float("nan"),
    }


class CannedEncrypt(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    body = json.dumps(
        {"Response": {"CiphertextBlob": "AA==-k-AA==-k-AA==", "KeyId": "k", "RequestId": "r"}}
    ).encode()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(
            self.body
        )
        self.wfile.write(head + self.body)

    def log_message(self, *args: object) -> None:
        pass


def serve_canned(port_queue: Any, stop: Any) -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), CannedEncrypt)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port_queue.put(httpd.server_address[1])
    stop.wait()
    httpd.shutdown()


def run_baseline(clients: int, processes: int, seconds: float) -> dict[str, float]:
    ctx = multiprocessing.get_context("spawn")
    port_queue, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=serve_canned, args=(port_queue, stop))
    server.start()
    try:
        port = port_queue.get(timeout=30)
        return run_load(Load(f"127.0.0.1:{port}", "k", seconds), clients, processes)
    finally:
        stop.set()
        server.join(10)


def describe(result: dict[str, float]) -> str:
    return (
        f"{result['calls_per_second']:.0f} calls/s (p50 {result['p50_ms']:.1f} ms, "
        f"p99 {result['p99_ms']:.1f} ms, errors {result['errors']:.0f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--processes", type=int, default=4, help="client processes sharing --clients")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()

    emulator = start_emulator_process({SECRET_ID: SECRET_KEY})
    try:
        key_id = emulator.admin.create_key("ap-guangzhou", alias="bench")
        result = run_load(Load(emulator.endpoint, key_id, args.seconds), args.clients, args.processes)
    finally:
        emulator.stop()
    rate = result["calls_per_second"]
    print(
        f"emulator: signed Encrypt via the SDK, {args.clients} clients in {args.processes} processes, "
        f"{args.seconds:.0f} s: {describe(result)}"
    )
    verdict = "met" if rate >= TARGET_CALLS_PER_SECOND else "NOT met"
    print(
        f"target:   {TARGET_CALLS_PER_SECOND} calls/s, ratio {rate / TARGET_CALLS_PER_SECOND:.2f} ({verdict})"
    )
    if not args.no_baseline:
        baseline = run_baseline(args.clients, args.processes, args.seconds)
        print(f"baseline: canned-reply stdlib server, same clients: {describe(baseline)}")
        print(f"ratio:    emulator/baseline {rate / baseline['calls_per_second']:.2f}")


if __name__ == "__main__":
    main()
