# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The root of every error the collection raises on purpose.

PRIVATE to the collection. Standard library only.

Each error's message says what went wrong and what to fix; as_result() is the structured form a failing module
returns under `error`, so playbooks can branch on the kind and its details instead of parsing text.
"""

from __future__ import annotations

import typing as t


class TkeKmsError(Exception):
    """An expected failure: bad input, an unreachable service, a refused step."""

    def describe(self) -> str:
        """The message a module fails with (subclasses add hints)."""
        return str(self)

    def details(self) -> t.Dict[str, t.Any]:
        """What a playbook may need beyond the message (status codes, request ids); no secrets."""
        return {}

    def as_result(self) -> t.Dict[str, t.Any]:
        result = dict(kind=type(self).__name__, message=str(self))
        result.update(self.details())
        return result


class InvalidValue(TkeKmsError, ValueError):
    """A value given to the collection that it cannot use; the message names it and what would do.

    Also a ValueError, so code that validates with the standard library's errors catches it the same way.
    """
