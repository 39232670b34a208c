# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Paths of the Secret API on a master's own apiserver (see _https); rewriting objects lives in _rewrite.

PRIVATE to the collection. Standard library only.
"""

from __future__ import annotations

from urllib.parse import quote


def secret_path(namespace: str, name: str) -> str:
    return "/api/v1/namespaces/%s/secrets/%s" % (quote(namespace, safe=""), quote(name, safe=""))
