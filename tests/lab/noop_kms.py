"""A no-op KMS plugin (v1beta1 + v2 on one unix socket): the floor any plugin can reach.

"Encryption" is a fixed prefix, so it costs nothing; what is left is the gRPC round trip the
apiserver pays per call. Used by the lab's self-tests and as the benchmark's (c) row. Not a
security component. Run: `python -m tests.lab.noop_kms --socket PATH [--key-id ID] [--latency-ms N]`.
On SIGTERM it prints its call counts (one JSON line) to stdout before exiting.
"""

from __future__ import annotations

import argparse
import collections
import json
import signal
import sys
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
from tke_kms_plugin.protos import kms_v1beta1_pb2, kms_v1beta1_pb2_grpc, kms_v2_pb2, kms_v2_pb2_grpc

from tests.lab.process import ManagedProcess
from tests.lab.runtime import wait_for

MARK = b"noop:"


class _Calls:
    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def record(self, name: str) -> None:
        with self._lock:
            self.counts[name] += 1
        if self.latency:
            time.sleep(self.latency)  # a simulated KMS round trip, not synchronisation


def _unwrap(cipher: bytes, context: grpc.ServicerContext) -> bytes:
    if not cipher.startswith(MARK):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "not a noop ciphertext")
    return cipher[len(MARK) :]


class V1(kms_v1beta1_pb2_grpc.KeyManagementServiceServicer):
    def __init__(self, calls: _Calls) -> None:
        self.calls = calls

    def Version(self, request, context):
        return kms_v1beta1_pb2.VersionResponse(
            version="v1beta1", runtime_name="noop", runtime_version="0.1.0"
        )

    def Encrypt(self, request, context):
        self.calls.record("v1.Encrypt")
        return kms_v1beta1_pb2.EncryptResponse(cipher=MARK + request.plain)

    def Decrypt(self, request, context):
        self.calls.record("v1.Decrypt")
        return kms_v1beta1_pb2.DecryptResponse(plain=_unwrap(request.cipher, context))


class V2(kms_v2_pb2_grpc.KeyManagementServiceServicer):
    def __init__(self, calls: _Calls, key_id: str) -> None:
        self.calls = calls
        self.key_id = key_id

    def Status(self, request, context):
        self.calls.counts["v2.Status"] += 1
        return kms_v2_pb2.StatusResponse(version="v2", healthz="ok", key_id=self.key_id)

    def Encrypt(self, request, context):
        self.calls.record("v2.Encrypt")
        return kms_v2_pb2.EncryptResponse(ciphertext=MARK + request.plaintext, key_id=self.key_id)

    def Decrypt(self, request, context):
        self.calls.record("v2.Decrypt")
        return kms_v2_pb2.DecryptResponse(plaintext=_unwrap(request.ciphertext, context))


def serve(socket: Path, key_id: str, latency_ms: float, workers: int) -> None:
    calls = _Calls(latency_ms / 1000)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    kms_v1beta1_pb2_grpc.add_KeyManagementServiceServicer_to_server(V1(calls), server)
    kms_v2_pb2_grpc.add_KeyManagementServiceServicer_to_server(V2(calls, key_id), server)
    socket.unlink(missing_ok=True)
    server.add_insecure_port(f"unix://{socket}")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    server.start()
    print(f"noop KMS plugin serving on {socket} (key_id {key_id}, latency {latency_ms} ms)", flush=True)
    done.wait()
    server.stop(grace=1).wait()
    socket.unlink(missing_ok=True)
    print(json.dumps({"calls": dict(calls.counts)}), flush=True)


class NoopPlugin:
    """The no-op plugin as a lab process listening on `socket`."""

    def __init__(
        self,
        socket: Path,
        *,
        log_dir: Path | None = None,
        key_id: str = "noop-key-1",
        latency_ms: float = 0,
        workers: int = 8,
    ) -> None:
        self.socket = Path(socket)
        log = (log_dir or self.socket.parent) / f"{self.socket.stem}.log"
        argv = [
            sys.executable,
            "-m",
            "tests.lab.noop_kms",
            f"--socket={self.socket}",
            f"--key-id={key_id}",
            f"--latency-ms={latency_ms}",
            f"--workers={workers}",
        ]
        self.process = ManagedProcess("noop-kms", argv, log, cwd=_repo_root())

    def start(self, timeout: float = 30) -> NoopPlugin:
        self.process.start()
        wait_for(self.socket.exists, timeout=timeout, what="noop KMS socket", alive=self.process.exit_reason)
        return self

    def stop(self) -> dict[str, int]:
        """Stop it and return its call counts."""
        self.process.stop()
        for line in reversed(self.process.tail(5).splitlines()):
            if line.startswith('{"calls"'):
                return json.loads(line)["calls"]
        return {}


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description="no-op KMS plugin (v1beta1 + v2)")
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--key-id", default="noop-key-1")
    parser.add_argument("--latency-ms", type=float, default=0)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    serve(args.socket, args.key_id, args.latency_ms, args.workers)


if __name__ == "__main__":
    main()
