# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Kubernetes versions: parsing them, and reading the one a kube-apiserver image tag names.

PRIVATE to the collection. Runs on masters: standard library only.
"""

from __future__ import annotations

import re
import typing as t

from ansible_collections.tke.kms.plugins.module_utils._errors import InvalidValue

_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+][0-9A-Za-z.+-]*)?$")


class KubeVersion(t.NamedTuple):
    major: int
    minor: int
    patch: int = 0

    def __str__(self) -> str:
        return "%d.%d.%d" % self

    @property
    def minor_version(self) -> str:
        return "%d.%d" % (self.major, self.minor)


def parse_version(text: t.Any) -> KubeVersion:
    """Parse V(1.20), V(v1.20.2), V(1.30.0-rc.1) (a bare float such as 1.3 is ambiguous, so it is refused)."""
    if not isinstance(text, str):
        raise InvalidValue("a Kubernetes version must be a string such as '1.29.3', got %r" % (text,))
    match = _VERSION.match(text.strip())
    if not match:
        raise InvalidValue("%r is not a Kubernetes version such as '1.29.3' or 'v1.29.3'" % text)
    return KubeVersion(int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))


def version_from_image(image: t.Any) -> t.Optional[KubeVersion]:
    """The version in an image reference's tag, e.g. registry.k8s.io/kube-apiserver:v1.30.2 -> 1.30.2.

    None when the image has no tag that is a version (a digest only, or a custom tag such as 'latest').
    """
    if not isinstance(image, str) or not image:
        return None
    reference = image.split("@", 1)[0]
    last_part = reference.rsplit("/", 1)[-1]  # a registry port (host:5000/...) is not a tag
    if ":" not in last_part:
        return None
    try:
        return parse_version(last_part.rsplit(":", 1)[1])
    except ValueError:
        return None
