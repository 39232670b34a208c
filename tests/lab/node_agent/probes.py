"""Container probes (exec, httpGet, tcpSocket) with the kubelet's thresholds and defaults."""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# kubelet does not verify a probe's serving certificate either; no CA store is loaded for probes.
_INSECURE = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
_INSECURE.check_hostname = False
_INSECURE.verify_mode = ssl.CERT_NONE


@dataclass
class ProbeState:
    """Consecutive successes/failures of one probe, judged against its thresholds."""

    spec: dict[str, Any]
    successes: int = 0
    failures: int = 0
    last_run: float | None = None
    last_error: str = ""

    @property
    def period(self) -> float:
        return float(self.spec.get("periodSeconds", 10))

    @property
    def timeout(self) -> float:
        return float(self.spec.get("timeoutSeconds", 1))

    def due(self, now: float, started: float) -> bool:
        if now < started + float(self.spec.get("initialDelaySeconds", 0)):
            return False
        return self.last_run is None or now >= self.last_run + self.period

    def record(self, ok: bool, error: str, now: float) -> None:
        self.last_run = now
        self.last_error = error
        if ok:
            self.successes, self.failures = self.successes + 1, 0
        else:
            self.successes, self.failures = 0, self.failures + 1

    @property
    def passed(self) -> bool:
        return self.successes >= int(self.spec.get("successThreshold", 1))

    @property
    def failed(self) -> bool:
        return self.failures >= int(self.spec.get("failureThreshold", 3))


def run_probe(
    spec: dict[str, Any],
    exec_in_root: Callable[[list[str], float], int],
    ports: dict[str, int],
    default_host: str,
) -> tuple[bool, str]:
    """Run one probe; (success, error text). `default_host`: the pod IP, for probes naming no host."""
    timeout = float(spec.get("timeoutSeconds", 1))
    try:
        if "exec" in spec:
            code = exec_in_root(list(spec["exec"].get("command", [])), timeout)
            return code == 0, f"exit code {code}"
        if "httpGet" in spec:
            return _http_get(spec["httpGet"], ports, timeout, default_host)
        if "tcpSocket" in spec:
            tcp = spec["tcpSocket"]
            with socket.create_connection(
                (tcp.get("host") or default_host, _port(tcp.get("port"), ports)), timeout
            ):
                return True, ""
    except (OSError, http.client.HTTPException, subprocess.SubprocessError, ValueError) as exc:
        return False, f"{exc.__class__.__name__}: {exc}"
    return False, "probe has no handler (exec, httpGet or tcpSocket)"


def _http_get(
    get: dict[str, Any], ports: dict[str, int], timeout: float, default_host: str
) -> tuple[bool, str]:
    host, port = get.get("host") or default_host, _port(get.get("port"), ports)
    if str(get.get("scheme", "HTTP")).upper() == "HTTPS":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=_INSECURE
        )
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = {"User-Agent": "kube-probe/1.20", "Accept": "*/*"}
    headers.update({h["name"]: h["value"] for h in get.get("httpHeaders", [])})
    try:
        connection.request("GET", get.get("path", "/"), headers=headers)
        code = connection.getresponse().status
    finally:
        connection.close()
    return 200 <= code < 400, f"HTTP {code} from {host}:{port}{get.get('path', '/')}"


def _port(port: Any, named: dict[str, int]) -> int:
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    if port in named:
        return named[port]
    raise ValueError(f"unknown port {port!r}")
