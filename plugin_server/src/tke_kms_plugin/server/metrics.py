"""Prometheus metrics of one plugin instance (its own registry, so tests can run several in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.process_collector import ProcessCollector

from .health import Snapshot, State

PREFIX = "tke_kms_plugin"
# From a cache hit on the event loop (~0.1 ms) to a call that used up kube-apiserver's 3 s deadline.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        r = self.registry
        self.grpc_latency = Histogram(
            f"{PREFIX}_grpc_request_duration_seconds",
            "KMS plugin API calls (_count) and their latency, by API version, method and gRPC status code.",
            ["api_version", "method", "code"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tencent_requests = Counter(
            f"{PREFIX}_tencent_requests_total",
            "Tencent KMS HTTP calls (each retry counts) by action and outcome (Success or the error code).",
            ["action", "outcome"],
            registry=r,
        )
        self.tencent_errors = Counter(
            f"{PREFIX}_tencent_errors_total",
            "Tencent KMS and SDK errors by action and Tencent error code.",
            ["action", "code"],
            registry=r,
        )
        self.tencent_latency = Histogram(
            f"{PREFIX}_tencent_request_duration_seconds",
            "Tencent KMS HTTP call latency by action.",
            ["action"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tencent_inflight = Gauge(
            f"{PREFIX}_tencent_inflight_requests", "Tencent KMS calls running now.", registry=r
        )
        self.limiter_wait = Histogram(
            f"{PREFIX}_limiter_wait_seconds",
            "Time a Tencent call waited for the client-side QPS limiter.",
            buckets=(0.0, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.limiter_rejections = Counter(
            f"{PREFIX}_limiter_rejections_total",
            "Calls answered RESOURCE_EXHAUSTED locally because the QPS limiter or the in-flight cap could "
            "not admit them before their deadline.",
            ["limiter"],
            registry=r,
        )
        self.retries = Counter(
            f"{PREFIX}_tencent_retries_total", "Tencent KMS calls retried, by action.", ["action"], registry=r
        )
        self.health_state = Gauge(
            f"{PREFIX}_health_state",
            "1 for the current cached KMS health state (starting, ok, degraded, failed), 0 for the others.",
            ["state"],
            registry=r,
        )
        self.healthy = Gauge(f"{PREFIX}_kms_healthy", "1 when the cached KMS health is ok.", registry=r)
        self.credential_expiry = Gauge(
            f"{PREFIX}_credentials_expiry_timestamp_seconds",
            "Unix time the current Tencent credentials expire (0: long-term keys).",
            registry=r,
        )
        self.credential_refreshes = Counter(
            f"{PREFIX}_credential_refreshes_total", "Credential fetches by result.", ["result"], registry=r
        )
        self.cache_entries = Gauge(
            f"{PREFIX}_decrypt_cache_entries", "Decrypted DEKs held in memory.", registry=r
        )
        self.cache_lookups = Counter(
            f"{PREFIX}_decrypt_cache_lookups_total",
            "Decrypt cache lookups by result (hit, miss, joined: waited for an identical call in flight).",
            ["result"],
            registry=r,
        )
        self.cache_drops = Counter(
            f"{PREFIX}_decrypt_cache_drops_total",
            "Times the decrypt cache was dropped (key unusable).",
            registry=r,
        )
        self.http_listener_up = Gauge(
            f"{PREFIX}_http_listener_up",
            "1 while the HTTP listener (--metrics-address) serves, 0 while its address cannot be bound.",
            registry=r,
        )
        self.http_bind_failures = Counter(
            f"{PREFIX}_http_listener_bind_failures_total",
            "Failed attempts to bind --metrics-address (the KMS socket serves meanwhile; retried).",
            registry=r,
        )
        self.set_health(Snapshot(State.STARTING, "", 0.0))
        self._call_children: dict[tuple[str, str, str], Histogram] = {}

    def observe_call(self, api_version: str, method: str, code: str, seconds: float) -> None:
        key = (api_version, method, code)
        child = self._call_children.get(key)
        if child is None:
            child = self._call_children[key] = self.grpc_latency.labels(*key)
        child.observe(seconds)

    def set_health(self, snapshot: Snapshot) -> None:
        for state in State:
            self.health_state.labels(state.value).set(1 if snapshot.state is state else 0)
        self.healthy.set(1 if snapshot.ok else 0)
