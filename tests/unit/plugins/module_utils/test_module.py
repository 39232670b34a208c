"""_module and _errors: the module base (library checks, failures from exceptions) and merged option sets."""

from __future__ import annotations

import typing as t
from collections.abc import Callable

import pytest
from ansible.module_utils._internal import _traceback
from ansible_collections.tke.kms.plugins.module_utils._errors import InvalidValue, TkeKmsError
from ansible_collections.tke.kms.plugins.module_utils._kube_version import parse_version
from ansible_collections.tke.kms.plugins.module_utils._module import (
    Library,
    TkeKmsModule,
    error_result,
    merge_argument_specs,
)

from tests.unit.collection import run_module

TRACEBACKS = dict(_ansible_tracebacks_for=["error"])  # what ANSIBLE_DISPLAY_TRACEBACK=error sends


@pytest.fixture(autouse=True)
def _traceback_settings_read_per_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """ansible-core caches the module's traceback setting per process; each test here sets its own."""
    monkeypatch.setattr(_traceback, "_module_tracebacks_enabled_events", None)


class LockedError(TkeKmsError):
    def __init__(self, path: str) -> None:
        super().__init__(f"{path} is locked")
        self.path = path

    def describe(self) -> str:
        return str(self) + "; wait for the other run to end"

    def details(self) -> dict[str, t.Any]:
        return dict(path=self.path)


def test_option_sets_merge_when_no_name_repeats() -> None:
    merged = merge_argument_specs(
        dict(host=dict(type="str", aliases=["url"])), dict(timeout=dict(type="int", default=3))
    )
    assert merged == dict(host=dict(type="str", aliases=["url"]), timeout=dict(type="int", default=3))


@pytest.mark.parametrize(
    ("second", "name"),
    [
        (dict(host=dict(type="str")), "host"),  # an option twice
        (dict(server=dict(type="str", aliases=["url"])), "url"),  # an alias twice
        (dict(url=dict(type="str")), "url"),  # an option that is another's alias
    ],
)
def test_a_name_defined_twice_is_refused(second: dict[str, t.Any], name: str) -> None:
    with pytest.raises(ValueError, match=f"option '{name}' is defined twice"):
        merge_argument_specs(dict(host=dict(type="str", aliases=["url"])), second)


def test_the_error_result_of_a_collection_error_has_its_kind_message_and_details() -> None:
    assert error_result(LockedError("/x")) == dict(kind="LockedError", message="/x is locked", path="/x")
    assert error_result(OSError("disk full")) == dict(kind="OSError", message="disk full")


def test_a_bad_value_is_a_collection_error_and_still_a_value_error() -> None:
    with pytest.raises(InvalidValue) as bad:
        parse_version("one.twenty")
    assert isinstance(bad.value, ValueError)
    assert error_result(bad.value) == dict(kind="InvalidValue", message=str(bad.value))


def fails_with(error: BaseException) -> Callable[[], None]:
    def main() -> None:
        module = TkeKmsModule(dict(name=dict(type="str")))
        try:
            raise error
        except (TkeKmsError, OSError) as exc:
            module.fail_from_exception(exc, changed=False, step="lock")

    return main


def test_a_module_fails_from_an_exception_with_hint_structure_and_traceback() -> None:
    result = run_module(fails_with(LockedError("/etc/kubernetes/x")), TRACEBACKS)
    assert result["failed"] is True
    assert result["msg"] == "/etc/kubernetes/x is locked; wait for the other run to end"
    assert result["error"] == dict(
        kind="LockedError", message="/etc/kubernetes/x is locked", path="/etc/kubernetes/x"
    )
    assert result["exception"].startswith("Traceback (most recent call last):")
    assert "LockedError: /etc/kubernetes/x is locked" in result["exception"]
    assert (result["changed"], result["step"]) == (False, "lock")


def test_other_exceptions_fail_with_their_text() -> None:
    result = run_module(fails_with(PermissionError(13, "Permission denied")), {})
    assert result["msg"] == "[Errno 13] Permission denied"
    assert result["error"]["kind"] == "PermissionError"
    assert "exception" not in result  # the traceback only when the controller asks for it


def test_a_prefix_names_what_failed_before_the_error() -> None:
    def main() -> None:
        module = TkeKmsModule(dict(name=dict(type="str")))
        try:
            raise PermissionError(13, "Permission denied")
        except OSError as exc:
            module.fail_from_exception(exc, "cannot write /etc/kubernetes/x", changed=False)

    result = run_module(main, {})
    assert result["msg"] == "cannot write /etc/kubernetes/x: [Errno 13] Permission denied"
    assert result["error"] == dict(kind="PermissionError", message="[Errno 13] Permission denied")


def test_a_missing_library_fails_before_the_module_runs() -> None:
    def main() -> None:
        TkeKmsModule({}, libraries=[Library("PyYAML", "Traceback: No module named 'yaml'")])
        pytest.fail("the module ran without its library")

    result = run_module(main, TRACEBACKS)
    assert result["failed"] is True
    assert "PyYAML" in result["msg"]
    assert result["exception"] == "Traceback: No module named 'yaml'"


def test_a_present_library_lets_the_module_run() -> None:
    def main() -> None:
        TkeKmsModule({}, libraries=[Library("PyYAML", None)]).exit_json(changed=False, ran=True)

    assert run_module(main, {})["ran"] is True
