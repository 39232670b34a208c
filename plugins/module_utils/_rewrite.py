# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Rewrite Kubernetes objects unchanged through a master's own apiserver (see _https), concurrently.

PRIVATE to the collection. Standard library only.

Storing an object again is how its storage moves to the first (write) provider of the apiserver's encryption
configuration: the apiserver reads it through the provider that can decrypt it, notices that provider is not
the first one (the value is "stale") and stores it again with the first. Each object gets an empty JSON merge
patch ({}): the apiserver applies it to the object as stored, so nothing written meanwhile can be overwritten
(the apiserver retries its own conflicts) and no copy of the object travels. Answers are asked for as
metadata only (PartialObjectMetadata), so Secret values never reach this module. An object already stored
with the write provider is not written again and keeps its resourceVersion: that is how a rewrite tells
whether it changed anything.
"""

from __future__ import annotations

import contextlib
import functools
import json
import queue
import threading
import time
import typing as t
from urllib.parse import quote, urlencode

from ansible_collections.tke.kms.plugins.module_utils._errors import TkeKmsError
from ansible_collections.tke.kms.plugins.module_utils._files import atomic_write
from ansible_collections.tke.kms.plugins.module_utils._https import Endpoint, HttpsError, StatusError
from ansible_collections.tke.kms.plugins.module_utils._retries import (
    backoff_delays,
    call_with_retries,
    retry_after_header,
    status_retry_after,
)

# Outcome names double as count names; not "skipped" and "failed", which Ansible reserves in task results.
REWRITTEN, UNCHANGED, MISSING, FAILURES = "rewritten", "unchanged", "missing", "failures"
OUTCOMES = (REWRITTEN, UNCHANGED, MISSING, FAILURES)

METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1, application/json"
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1, application/json"
MERGE_PATCH = "application/merge-patch+json"
PROGRESS_INTERVAL = 2.0  # seconds between two writes of the progress file
PROGRESS_FILE_MODE = 0o644  # counts only, for an operator to watch
RETRY_DELAY = 0.5  # seconds the first retry waits at most (full jitter); doubled each time
MAX_RETRY_DELAY = 10.0
# Worth another try: a conflict the apiserver could not settle, throttling, and failures that pass - the KMS
# plugin answering ResourceExhausted/Unavailable/DeadlineExceeded (Tencent throttling, a restart) is a 500.
TRANSIENT_STATUSES = (409, 429, 500, 503, 504)
NAMES_KEPT = 1000  # missing and failed objects named in the result; all are counted


class RewriteError(TkeKmsError):
    """A resource that cannot be rewritten, or a run that had to stop (apiserver unreachable, list failed)."""


class ProgressFileError(RewriteError):
    """The progress file cannot be written (a watcher's aid: a run goes on without it)."""


class Resource:
    """A listable, patchable API resource: core (`secrets`) or `<plural>.<group>` in its preferred version."""

    def __init__(self, name: str, group_version: str, plural: str, namespaced: bool) -> None:
        self.name = name
        self.plural = plural
        self.namespaced = namespaced
        self.base = "/api/v1" if group_version == "v1" else "/apis/" + group_version

    def list_path(self, query: t.Dict[str, t.Any]) -> str:
        return "%s/%s?%s" % (self.base, self.plural, urlencode(query))

    def object_path(self, namespace: t.Optional[str], name: str) -> str:
        where = "/namespaces/%s" % quote(namespace, safe="") if self.namespaced and namespace else ""
        return "%s%s/%s/%s" % (self.base, where, self.plural, quote(name, safe=""))


class Item(t.NamedTuple):
    resource: Resource
    namespace: t.Optional[str]
    name: str
    resource_version: t.Optional[str]  # as listed; None when only the name is known

    def label(self) -> str:
        return "%s/%s" % (self.namespace, self.name) if self.namespace else self.name


def discover(endpoint: Endpoint, name: str) -> Resource:
    """The Resource for `secrets`, `configmaps` or `<plural>.<group>` (the group's preferred version)."""
    plural, _dot, group = name.partition(".")
    if not plural or plural != plural.lower() or "/" in name:
        raise RewriteError(
            "resources entries are lower-case plural names: 'secrets', 'configmaps', or '<plural>.<group>' "
            "such as 'widgets.example.com'; got %r" % name
        )
    if group:
        try:
            group_version = endpoint.json("GET", "/apis/" + quote(group, safe="."))["preferredVersion"][
                "groupVersion"
            ]
        except StatusError as exc:
            if exc.status != 404:
                raise
            raise RewriteError(
                "%s: the apiserver serves no API group %s (core resources are given without a group, "
                "e.g. 'configmaps')" % (name, group)
            ) from exc
    else:
        group_version = "v1"
    listing = endpoint.json("GET", "/api/v1" if group_version == "v1" else "/apis/" + group_version)
    for entry in listing.get("resources") or []:
        if entry.get("name") == plural:
            missing = {"list", "patch"} - set(entry.get("verbs") or [])
            if missing:
                raise RewriteError(
                    "%s cannot be rewritten: the apiserver does not allow %s on it"
                    % (name, " and ".join(sorted(missing)))
                )
            return Resource(name, group_version, plural, bool(entry.get("namespaced")))
    raise RewriteError(
        "the apiserver has no resource %s in %s (resources entries are plural names, e.g. 'secrets')"
        % (plural, group_version)
    )


def list_items(endpoint: Endpoint, resource: Resource, page_size: int, retries: int = 0) -> t.Iterator[Item]:
    """Every object of the resource in all namespaces, page by page (limit/continue), metadata only.

    Only one page is held at a time. A page that fails in a way that passes (TRANSIENT_STATUSES, or no
    answer at all: a timeout, an apiserver restart) is asked for again `retries` times with the same token.
    A continue token that expired between two pages (etcd compacted meanwhile: HTTP 410) is replaced by the
    one the apiserver sends with the 410: it lists the rest, from the key after the last one listed, as it is
    now - objects created meanwhile may appear, none listed already comes again. A server that sends none is
    listed again from the start, skipping the objects up to the last one listed (lists come in storage key
    order, `namespace/name`)."""
    token = None
    resume_after: t.Optional[str] = None
    last: t.Optional[str] = None
    while True:
        query: t.Dict[str, t.Any] = {"limit": page_size}
        if token:
            query["continue"] = token
        try:
            path = resource.list_path(query)
            answer = retrying(functools.partial(endpoint.json, "GET", path, accept=METADATA_LIST), retries)
        except StatusError as exc:
            if exc.status != 410 or not token:
                raise
            token = (exc.answer.get("metadata") or {}).get("continue")
            if not token:
                resume_after = last
            continue
        token = (answer.get("metadata") or {}).get("continue")
        page = [names_of(entry) for entry in answer.get("items") or []]
        del answer  # only names are kept, not the page's metadata (managedFields and all)
        for namespace, name, resource_version in page:
            key = "%s/%s" % (namespace, name) if namespace else name
            if resume_after is not None and key <= resume_after:
                continue
            last = key
            yield Item(resource, namespace, name, resource_version)
        if not token:
            return


def names_of(entry: t.Dict[str, t.Any]) -> t.Tuple[t.Optional[str], str, t.Optional[str]]:
    meta = entry.get("metadata") or {}
    return meta.get("namespace"), meta["name"], meta.get("resourceVersion")


T = t.TypeVar("T")


def is_transient(error: Exception) -> bool:
    """Worth another try: TRANSIENT_STATUSES, or no answer at all (a timeout under load, a restart)."""
    if isinstance(error, StatusError):
        return error.status in TRANSIENT_STATUSES
    return isinstance(error, HttpsError)


def server_delay(error: Exception) -> t.Optional[float]:
    """The delay the apiserver asked for: its Retry-After header, else its Status' retryAfterSeconds."""
    if not isinstance(error, StatusError):
        return None
    asked = retry_after_header(error.headers.get("Retry-After"))
    return asked if asked is not None else status_retry_after(error.status, error.answer)


def retrying(call: t.Callable[[], T], retries: int, sleep: t.Callable[[float], None] = time.sleep) -> T:
    """call(), tried again `retries` times (the shared policy of _retries: jittered backoff from RETRY_DELAY,
    or the apiserver's delay, at most MAX_RETRY_DELAY) while it fails in a way that passes (is_transient).
    Other errors, and the last one, are raised."""
    return call_with_retries(
        call,
        is_transient,
        backoff_delays(retries, base=RETRY_DELAY, cap=MAX_RETRY_DELAY),
        sleep=sleep,  # the object, apiserver or KMS is busy
        server_delay=server_delay,
        max_delay=MAX_RETRY_DELAY,
    )


def rewrite(endpoint: Endpoint, item: Item, retries: int, check_mode: bool = False) -> str:
    """Store one object again as it is: REWRITTEN, UNCHANGED or MISSING (deleted meanwhile).

    Failures that pass are retried (see retrying); then, and for any other HTTP error, the error is raised
    (StatusError for the caller to record, HttpsError when the apiserver cannot be reached). In check mode,
    only whether the object exists is checked (REWRITTEN then means: would be stored again)."""
    path = item.resource.object_path(item.namespace, item.name)
    before = item.resource_version
    if before is None:
        try:
            before = retrying(functools.partial(endpoint.json, "GET", path, accept=METADATA), retries)[
                "metadata"
            ].get("resourceVersion")
        except StatusError as exc:
            if exc.status == 404:
                return MISSING
            raise
    if check_mode:
        return REWRITTEN
    try:
        stored = retrying(
            functools.partial(endpoint.json, "PATCH", path, b"{}", MERGE_PATCH, accept=METADATA), retries
        )
    except StatusError as exc:
        if exc.status == 404:
            return MISSING
        raise
    return UNCHANGED if stored["metadata"].get("resourceVersion") == before else REWRITTEN


class ProgressFile:
    """A small JSON file of counts, replaced atomically at most every PROGRESS_INTERVAL seconds, so an
    operator can follow a long run (`watch cat FILE`) while Ansible shows nothing."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.written_at = 0.0

    def due(self) -> bool:
        return time.monotonic() - self.written_at >= PROGRESS_INTERVAL

    def write(self, document: t.Dict[str, t.Any]) -> None:
        self.written_at = time.monotonic()
        try:
            atomic_write(self.path, json.dumps(document, sort_keys=True) + "\n", PROGRESS_FILE_MODE)
        except OSError as exc:
            raise ProgressFileError("cannot write the progress file %s: %s" % (self.path, exc)) from exc


class Tally:
    """Outcomes counted per resource, and the names of the first NAMES_KEPT missing and failed objects (the
    counts go on, so memory and the result stay small however many there are); shared by the workers."""

    def __init__(self, resources: t.Sequence[Resource], progress: t.Optional[ProgressFile]) -> None:
        self.per_resource = {r.name: dict.fromkeys(OUTCOMES, 0) for r in resources}
        self.prefix = len(resources) > 1  # names carry their resource when there are several
        self.missing: t.List[str] = []  # names
        self.failures: t.List[t.Dict[str, str]] = []  # {name, error}
        self.listed = 0
        self.started = time.monotonic()
        self.progress = progress
        self.lock = threading.Lock()

    def name_of(self, item: Item) -> str:
        return "%s/%s" % (item.resource.name, item.label()) if self.prefix else item.label()

    def record(self, item: Item, outcome: str, error: t.Optional[str] = None) -> None:
        with self.lock:
            self.per_resource[item.resource.name][outcome] += 1
            if outcome == MISSING and len(self.missing) < NAMES_KEPT:
                self.missing.append(self.name_of(item))
            elif outcome == FAILURES and len(self.failures) < NAMES_KEPT:
                self.failures.append({"name": self.name_of(item), "error": t.cast(str, error)})
            if self.progress is not None and self.progress.due():
                # Progress is for watching: a full disk must not stop the run.
                with contextlib.suppress(ProgressFileError):
                    self.progress.write(self.counts(state="running"))

    def counts(self, **extra: t.Any) -> t.Dict[str, t.Any]:
        """Totals, per resource and overall (call with the lock held, or after the workers ended)."""
        per_resource = {name: dict(c, total=sum(c.values())) for name, c in self.per_resource.items()}
        totals = {o: sum(c[o] for c in self.per_resource.values()) for o in OUTCOMES}
        document = {
            "total": sum(totals.values()),
            "listed": self.listed,
            "per_resource": per_resource,
            "elapsed_seconds": round(time.monotonic() - self.started, 1),
        }
        document.update(totals)
        document.update(extra)
        return document


def run(
    endpoint: Endpoint,
    items: t.Iterable[Item],
    tally: Tally,
    *,
    workers: int,
    retries: int,
    check_mode: bool = False,
) -> None:
    """Rewrite every item with `workers` threads (each with its own kept-alive connection) while `items` is
    still being listed; a bounded queue keeps memory flat however many objects there are. One object that
    fails is recorded in the tally and the others go on; RewriteError when the whole run had to stop (the
    apiserver unreachable, a list call refused), after the objects already handed out are done."""
    work: queue.Queue[t.Optional[Item]] = queue.Queue(maxsize=max(2 * workers, 100))
    stop = threading.Event()
    fatal: t.List[str] = []

    def worker() -> None:
        while True:
            item = work.get()
            if item is None:
                return
            if stop.is_set():
                continue  # drained so the producer never blocks
            try:
                outcome = rewrite(endpoint, item, retries, check_mode)
            except StatusError as exc:
                tally.record(item, FAILURES, str(exc))
            except HttpsError as exc:  # no answer at all: the apiserver is gone, the others would fail too
                fatal.append(str(exc))
                stop.set()
            except (KeyError, TypeError, ValueError) as exc:  # an answer that is not the object's metadata
                tally.record(item, FAILURES, "unexpected answer: %r" % exc)
            else:
                tally.record(item, outcome)

    threads = [threading.Thread(target=worker, name="rewrite-%d" % n, daemon=True) for n in range(workers)]
    for thread in threads:
        thread.start()
    try:
        for item in items:
            if stop.is_set():
                break
            with tally.lock:
                tally.listed += 1
            work.put(item)
    except HttpsError as exc:
        fatal.append("listing failed: %s" % exc)
        stop.set()
    finally:
        for _thread in threads:
            work.put(None)
        for thread in threads:
            thread.join()
    if fatal:
        raise RewriteError(fatal[0])
