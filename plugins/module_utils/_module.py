# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The one module base of the collection: library checks, option sets merged safely, failures from exceptions.

PRIVATE to the collection. Runs on masters: standard library and ansible-core only.
"""

from __future__ import annotations

import traceback
import typing as t

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.tke.kms.plugins.module_utils._errors import TkeKmsError


class Library(t.NamedTuple):
    """A Python library a module needs: its package name and the traceback of its failed import, if any."""

    package: str
    import_error: t.Optional[str]


def merge_argument_specs(*specs: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
    """One argument spec from option sets; an option or alias defined twice is a bug, not an override."""
    merged: t.Dict[str, t.Any] = {}
    names: t.Dict[str, str] = {}
    for spec in specs:
        for option, definition in spec.items():
            for name in [option, *(definition.get("aliases") or [])]:
                if name in names:
                    raise ValueError(
                        "option %r is defined twice (as %r and by %r)" % (name, names[name], option)
                    )
                names[name] = option
            merged[option] = definition
    return merged


def error_result(error: BaseException) -> t.Dict[str, t.Any]:
    """The structured `error` of a failed module: the collection's own form, or the kind and message."""
    if isinstance(error, TkeKmsError):
        return error.as_result()
    return dict(kind=type(error).__name__, message=str(error))


class TkeKmsModule(AnsibleModule):
    """AnsibleModule that checks its libraries first and fails from an exception in one way."""

    def __init__(
        self,
        argument_spec: t.Dict[str, t.Any],
        *,
        libraries: t.Sequence[Library] = (),
        **kwargs: t.Any,
    ) -> None:
        super().__init__(argument_spec=argument_spec, **kwargs)
        for library in libraries:
            self.require(library)

    def require(self, library: Library) -> None:
        """Fail the standard way when a library is missing (call it for a library only some options need)."""
        if library.import_error is not None:
            self.fail_json(msg=missing_required_lib(library.package), exception=library.import_error)

    def fail_from_exception(
        self, error: BaseException, prefix: t.Optional[str] = None, **result: t.Any
    ) -> t.NoReturn:
        """Fail with the error's message (and hint), its structured form and the traceback (for -vvv).

        prefix names what failed where the error alone does not (for an OSError: "cannot write <path>").
        """
        message = error.describe() if isinstance(error, TkeKmsError) else str(error)
        self.fail_json(
            msg="%s: %s" % (prefix, message) if prefix else message,
            error=error_result(error),
            exception="".join(traceback.format_exception(type(error), error, error.__traceback__)),
            **result,
        )
