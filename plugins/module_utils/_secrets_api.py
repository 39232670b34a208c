# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The few Secret API calls the rollout needs, made from a master to its own apiserver (see _https).

PRIVATE to the collection. Standard library only.

Rewriting a Secret unchanged is how its storage moves to the current write provider: the apiserver reads it
through the provider that can decrypt it, notices that provider is not the first one (the value is "stale"),
and stores it again with the first. A Secret that is already stored with the write provider is not written
again, so its resourceVersion stays the same - which is how a rewrite tells whether it changed anything.
"""

from __future__ import annotations

import typing as t
from urllib.parse import quote, urlencode

from ansible_collections.tke.kms.plugins.module_utils._https import Endpoint, StatusError

REWRITTEN, UNCHANGED, MISSING = "rewritten", "unchanged", "missing"


def secret_path(namespace: str, name: str) -> str:
    return "/api/v1/namespaces/%s/secrets/%s" % (quote(namespace, safe=""), quote(name, safe=""))


def get_secret(endpoint: Endpoint, namespace: str, name: str) -> t.Optional[t.Dict[str, t.Any]]:
    try:
        return endpoint.json("GET", secret_path(namespace, name))
    except StatusError as exc:
        if exc.status == 404:
            return None
        raise


def list_secrets(endpoint: Endpoint, page_size: int = 100) -> t.Iterator[t.Dict[str, t.Any]]:
    """Every Secret of the cluster, page by page (limit/continue)."""
    token = None
    while True:
        query = {"limit": page_size}
        if token:
            query["continue"] = token
        answer = endpoint.json("GET", "/api/v1/secrets?" + urlencode(query))
        for item in answer.get("items") or []:
            item.setdefault("apiVersion", "v1")
            item.setdefault("kind", "Secret")
            yield item
        token = (answer.get("metadata") or {}).get("continue")
        if not token:
            return


def rewrite(
    endpoint: Endpoint,
    namespace: str,
    name: str,
    current: t.Optional[t.Dict[str, t.Any]] = None,
    retries: int = 5,
) -> str:
    """Store a Secret again as it is (conflicts retried with a fresh copy): REWRITTEN, UNCHANGED, MISSING."""
    for _attempt in range(retries + 1):
        if current is None:
            current = get_secret(endpoint, namespace, name)
            if current is None:
                return MISSING
        before = current["metadata"].get("resourceVersion")
        try:
            stored = endpoint.json("PUT", secret_path(namespace, name), current)
        except StatusError as exc:
            if exc.status == 404:
                return MISSING
            if exc.status != 409:
                raise
            current = None  # someone else changed it meanwhile: take the new version and try again
            continue
        return UNCHANGED if stored["metadata"].get("resourceVersion") == before else REWRITTEN
    raise StatusError(
        409, "%s/%s kept changing while being rewritten (%d conflicts)" % (namespace, name, retries + 1)
    )
