"""A small Kubernetes REST client that fails over between the masters' apiservers.

A kubelet reaches the control plane through one endpoint (often a load balancer); here each master's
agent tries its own apiserver first and the others when it is down, so a master whose apiserver is
being restarted keeps reporting.
"""

from __future__ import annotations

from typing import Any

import requests

TIMEOUT = 10.0


class ApiUnavailable(RuntimeError):
    """No apiserver answered."""


class ApiClient:
    def __init__(self, servers: list[str], ca_file: str, cert_file: str, key_file: str) -> None:
        self.servers = list(servers)
        self._session = requests.Session()
        self._session.verify = ca_file
        self._session.cert = (cert_file, key_file)
        self._session.trust_env = False  # proxies would capture loopback traffic

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        patch: bool = False,
    ) -> requests.Response:
        headers = {"Content-Type": "application/merge-patch+json"} if patch else {}
        errors = []
        for server in self.servers:
            try:
                response = self._session.request(
                    method, server + path, json=body, params=params, headers=headers, timeout=TIMEOUT
                )
            except requests.RequestException as exc:
                errors.append(f"{server}: {exc.__class__.__name__}")
                continue
            if response.status_code in (502, 503, 504):  # starting or shutting down: ask another
                errors.append(f"{server}: HTTP {response.status_code}")
                continue
            return response
        raise ApiUnavailable("; ".join(errors))

    def get(self, path: str, **params: str) -> dict[str, Any] | None:
        """The object at `path`, or None on 404."""
        response = self.request("GET", path, params=params or None)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def close(self) -> None:
        self._session.close()
