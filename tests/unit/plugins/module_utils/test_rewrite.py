"""_rewrite: discovery, paged listing, rewriting with the shared retry policy, the tally, the progress file.

The apiserver is a small HTTP server on 127.0.0.1 that speaks the few endpoints _rewrite calls (discovery,
metadata lists with limit/continue, empty merge patches); the lab runs the real one (test_reencrypt).
"""

from __future__ import annotations

import functools
import json
import os
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from ansible_collections.tke.kms.plugins.module_utils import _rewrite as rw
from ansible_collections.tke.kms.plugins.module_utils._https import Endpoint, HttpsError, StatusError


class FakeApiserver(ThreadingHTTPServer):
    """Secrets as {(namespace, name): resourceVersion}; `stale` ones get a new resourceVersion when patched.
    `scripted` answers a path (without query) with the given (status, Status) pairs first, in order."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.secrets: dict[tuple[str, str], int] = {}
        self.stale: set[tuple[str, str]] = set()
        self.scripted: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self.requests: list[str] = []
        self.retry_after: str | None = None  # sent as Retry-After with every answer that is not a 2xx
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def answer(self, method: str, target: str, body: bytes) -> tuple[int, dict[str, Any]]:
        split = urlsplit(target)
        with self.lock:
            self.requests.append(f"{method} {target}")
            scripted = self.scripted.get(split.path)
            if scripted:
                return scripted.pop(0)
            return self.route(method, split.path, parse_qs(split.query), body)

    def route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, dict]:
        parts = path.strip("/").split("/")
        if path == "/api/v1":
            return 200, {
                "resources": [
                    {"name": "secrets", "namespaced": True, "verbs": ["get", "list", "patch"]},
                    {"name": "bindings", "namespaced": True, "verbs": ["create"]},
                ]
            }
        if path == "/api/v1/secrets" and method == "GET":
            return self.page(int(query["limit"][0]), int((query.get("continue") or ["0"])[0]))
        if parts[:3] == ["api", "v1", "namespaces"] and parts[4:5] == ["secrets"] and len(parts) == 6:
            key = (parts[3], parts[5])
            if key not in self.secrets:
                return 404, status(404, "NotFound", f'secrets "{key[1]}" not found')
            if method == "PATCH":
                assert body == b"{}"
                if key in self.stale:
                    self.stale.discard(key)
                    self.secrets[key] += 100
            return 200, metadata(key, self.secrets[key])
        return 404, status(404, "NotFound", "the server could not find the requested resource")

    def page(self, limit: int, start: int) -> tuple[int, dict[str, Any]]:
        keys = sorted(self.secrets)
        chunk = keys[start : start + limit]
        more = start + limit < len(keys)
        return 200, {
            "metadata": {"continue": str(start + limit) if more else ""},
            "items": [metadata(key, self.secrets[key]) for key in chunk],
        }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # kept-alive connections, as _https uses them
    server: FakeApiserver

    def handle_one(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        code, document = self.server.answer(self.command, self.path, body)
        raw = json.dumps(document).encode()
        self.send_response(code)
        if code >= 300 and self.server.retry_after is not None:
            self.send_header("Retry-After", self.server.retry_after)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    do_GET = do_PATCH = handle_one

    def log_message(self, *args: Any) -> None:
        pass


def status(code: int, reason: str, message: str, **details: Any) -> dict[str, Any]:
    return {
        "kind": "Status",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
        "details": details,
    }


def metadata(key: tuple[str, str], resource_version: int) -> dict[str, Any]:
    return {"metadata": {"namespace": key[0], "name": key[1], "resourceVersion": str(resource_version)}}


@pytest.fixture
def apiserver() -> Iterator[FakeApiserver]:
    server = FakeApiserver()
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def endpoint(apiserver: FakeApiserver) -> Iterator[Endpoint]:
    with Endpoint(apiserver.url, timeout=5) as connection:
        yield connection


def secrets_resource() -> rw.Resource:
    return rw.Resource("secrets", "v1", "secrets", namespaced=True)


# Discovery


def test_a_core_resource_is_found_with_its_scope(endpoint: Endpoint) -> None:
    resource = rw.discover(endpoint, "secrets")
    assert (resource.base, resource.plural, resource.namespaced) == ("/api/v1", "secrets", True)
    assert resource.object_path("kube system", "a/b") == "/api/v1/namespaces/kube%20system/secrets/a%2Fb"


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("Secrets", "lower-case plural names"),
        ("widgets.example.com", "serves no API group example.com"),
        ("bindings", "does not allow list and patch"),
        ("pods", "has no resource pods in v1"),
    ],
)
def test_resources_that_cannot_be_rewritten_are_refused_with_the_reason(
    endpoint: Endpoint, name: str, problem: str
) -> None:
    with pytest.raises(rw.RewriteError, match=problem):
        rw.discover(endpoint, name)


# Listing


def test_every_object_is_listed_page_by_page(apiserver: FakeApiserver, endpoint: Endpoint) -> None:
    apiserver.secrets = {("default", f"s{n}"): n for n in range(5)}
    items = list(rw.list_items(endpoint, secrets_resource(), page_size=2))
    assert [(i.namespace, i.name, i.resource_version) for i in items] == [
        ("default", f"s{n}", str(n)) for n in range(5)
    ]
    assert len([r for r in apiserver.requests if r.startswith("GET /api/v1/secrets")]) == 3


def test_an_expired_continue_token_is_replaced_by_the_one_the_apiserver_sends(
    apiserver: FakeApiserver, endpoint: Endpoint
) -> None:
    apiserver.secrets = {("default", f"s{n}"): n for n in range(5)}
    expired = status(410, "Expired", "The provided continue parameter is too old")
    expired["metadata"] = {"continue": "2"}  # the rest, from the key after the last one listed
    apiserver.scripted["/api/v1/secrets"] = [apiserver.page(2, 0), (410, expired)]
    names = [item.name for item in rw.list_items(endpoint, secrets_resource(), page_size=2)]
    assert names == ["s0", "s1", "s2", "s3", "s4"]


def test_a_list_page_that_fails_in_a_way_that_passes_is_asked_for_again(
    apiserver: FakeApiserver, endpoint: Endpoint
) -> None:
    apiserver.secrets = {("default", "only"): 1}
    apiserver.scripted["/api/v1/secrets"] = [
        (503, status(503, "ServiceUnavailable", "busy", retryAfterSeconds=0))
    ]
    assert [i.name for i in rw.list_items(endpoint, secrets_resource(), page_size=10, retries=1)] == ["only"]
    with pytest.raises(StatusError, match="HTTP 503"):
        apiserver.scripted["/api/v1/secrets"] = [(503, status(503, "ServiceUnavailable", "busy"))]
        list(rw.list_items(endpoint, secrets_resource(), page_size=10, retries=0))


# Rewriting


def test_a_run_counts_rewritten_unchanged_missing_and_failed_objects(
    apiserver: FakeApiserver, endpoint: Endpoint, tmp_path: Path
) -> None:
    resource = secrets_resource()
    apiserver.secrets = {("a", "stale"): 1, ("b", "stale"): 2, ("c", "current"): 3, ("d", "refused"): 4}
    apiserver.stale = {("a", "stale"), ("b", "stale")}
    apiserver.scripted["/api/v1/namespaces/d/secrets/refused"] = [
        (422, status(422, "Invalid", "the stored object is invalid"))
    ]
    items = [*rw.list_items(endpoint, resource, page_size=2), rw.Item(resource, "e", "deleted", None)]
    progress = rw.ProgressFile(str(tmp_path / "progress.json"))
    tally = rw.Tally([resource], progress)
    rw.run(endpoint, items, tally, workers=2, retries=0)
    counts = tally.counts()
    assert {o: counts[o] for o in rw.OUTCOMES} == {
        "rewritten": 2,
        "unchanged": 1,
        "missing": 1,
        "failures": 1,
    }
    assert tally.missing == ["e/deleted"]
    assert [f["name"] for f in tally.failures] == ["d/refused"]
    assert "HTTP 422 the stored object is invalid" in tally.failures[0]["error"]
    written = json.loads((tmp_path / "progress.json").read_text())  # the first record is always due
    assert written["state"] == "running"
    assert stat.S_IMODE(os.stat(tmp_path / "progress.json").st_mode) == rw.PROGRESS_FILE_MODE


def test_check_mode_writes_nothing(apiserver: FakeApiserver, endpoint: Endpoint) -> None:
    apiserver.secrets = {("a", "stale"): 1}
    apiserver.stale = {("a", "stale")}
    item = rw.Item(secrets_resource(), "a", "stale", None)
    assert rw.rewrite(endpoint, item, retries=0, check_mode=True) == rw.REWRITTEN
    assert not [r for r in apiserver.requests if r.startswith("PATCH")]
    assert apiserver.secrets[("a", "stale")] == 1


def test_an_unreachable_apiserver_stops_the_run() -> None:
    with Endpoint("http://127.0.0.1:9", timeout=2) as nowhere:  # the discard port: nothing listens
        resource = secrets_resource()
        tally = rw.Tally([resource], None)
        with pytest.raises(rw.RewriteError, match=r"127\.0\.0\.1:9"):
            rw.run(nowhere, [rw.Item(resource, "a", "b", "1")], tally, workers=1, retries=0)


# The shared retry policy, as _rewrite uses it


def test_the_apiserver_retry_after_seconds_is_waited_for(
    apiserver: FakeApiserver, endpoint: Endpoint
) -> None:
    apiserver.secrets = {("a", "s"): 1}
    path = "/api/v1/namespaces/a/secrets/s"
    apiserver.scripted[path] = [(429, status(429, "TooManyRequests", "slow down", retryAfterSeconds=3))]
    slept: list[float] = []
    patch = functools.partial(endpoint.json, "PATCH", path, b"{}", rw.MERGE_PATCH)
    assert rw.retrying(patch, 2, sleep=slept.append)["metadata"]["name"] == "s"
    assert slept == [3.0]


def raising(*errors: Exception) -> Any:
    queue = list(errors)

    def call() -> str:
        if queue:
            raise queue.pop(0)
        return "done"

    return call


def test_the_server_delay_is_capped_and_without_one_the_backoff_is_jittered() -> None:
    slept: list[float] = []
    too_long = StatusError(503, "busy", status(503, "ServiceUnavailable", "busy", retryAfterSeconds=600))
    conflict = StatusError(409, "conflict", status(409, "Conflict", "the object has been modified"))
    no_answer = HttpsError("PATCH http://127.0.0.1:1/x: timed out")
    assert rw.retrying(raising(too_long, conflict, no_answer), 3, sleep=slept.append) == "done"
    assert slept[0] == rw.MAX_RETRY_DELAY
    assert 0 <= slept[1] <= rw.RETRY_DELAY * 2
    assert 0 <= slept[2] <= rw.RETRY_DELAY * 4


def test_errors_that_do_not_pass_are_raised_at_once_and_the_last_one_when_retries_run_out() -> None:
    invalid = StatusError(422, "invalid", status(422, "Invalid", "bad"))
    with pytest.raises(StatusError, match="invalid"):
        rw.retrying(raising(invalid), 5, sleep=pytest.fail)
    slept: list[float] = []
    busy = [
        StatusError(429, f"busy {n}", status(429, "TooManyRequests", "x", retryAfterSeconds=1))
        for n in range(3)
    ]
    with pytest.raises(StatusError, match="busy 2"):
        rw.retrying(raising(*busy), 2, sleep=slept.append)
    assert slept == [1.0, 1.0]


def test_the_retry_after_header_of_the_answer_is_preferred_to_the_status_body(
    apiserver: FakeApiserver,
) -> None:
    busy = status(429, "TooManyRequests", "x", retryAfterSeconds=1)
    apiserver.scripted["/api/v1/namespaces/default/secrets/a"] = [(429, busy), (429, busy)]
    with Endpoint(apiserver.url, timeout=5) as connection:
        with pytest.raises(StatusError) as body_only:
            connection.json("PATCH", "/api/v1/namespaces/default/secrets/a", {})
        apiserver.retry_after = "4"
        with pytest.raises(StatusError) as with_header:
            connection.json("PATCH", "/api/v1/namespaces/default/secrets/a", {})
    assert rw.server_delay(body_only.value) == 1.0
    assert with_header.value.headers["retry-after"] == "4"  # the answer's headers, looked up as HTTP does
    assert rw.server_delay(with_header.value) == 4.0
    assert rw.server_delay(HttpsError("no answer")) is None


# The progress file


def test_a_progress_file_that_cannot_be_written_says_which_and_does_not_stop_the_tally(
    tmp_path: Path,
) -> None:
    progress = rw.ProgressFile(str(tmp_path / "missing-dir" / "progress.json"))
    with pytest.raises(rw.ProgressFileError, match=r"cannot write the progress file .*missing-dir"):
        progress.write({"state": "running"})
    resource = secrets_resource()
    tally = rw.Tally([resource], rw.ProgressFile(str(tmp_path / "missing-dir" / "progress.json")))
    tally.record(rw.Item(resource, "a", "b", "1"), rw.REWRITTEN)
    assert tally.counts()["rewritten"] == 1
