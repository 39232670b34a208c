"""Request parameter checks shared by every action: unknown, missing and mistyped fields."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ApiError

Check = Callable[[Any], bool]


def is_string(value: Any) -> bool:
    return isinstance(value, str)


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def list_of(check: Check) -> Check:
    return lambda value: isinstance(value, list) and all(check(item) for item in value)


def object_of(**fields: Check) -> Check:
    """A JSON object whose known fields have the right types (absent or null fields are fine)."""

    def check(value: Any) -> bool:
        return (
            isinstance(value, dict)
            and set(value) <= set(fields)
            and all(value[name] is None or fields[name](value[name]) for name in value)
        )

    return check


@dataclass(frozen=True, slots=True)
class Field:
    check: Check
    type_name: str
    required: bool = False
    unsupported: bool = False  # documented by Tencent, not implemented here: refuse rather than ignore


def string(*, required: bool = False) -> Field:
    return Field(is_string, "String", required)


def integer(*, required: bool = False) -> Field:
    return Field(is_integer, "Integer", required)


def string_list(*, required: bool = False) -> Field:
    return Field(list_of(is_string), "Array of String", required)


def structure(check: Check, type_name: str) -> Field:
    return Field(check, type_name)


def unsupported(check: Check, type_name: str) -> Field:
    return Field(check, type_name, unsupported=True)


TAG = object_of(TagKey=is_string, TagValue=is_string)
TAG_FILTER = object_of(TagKey=is_string, TagValue=list_of(is_string))
MEMBER_ACCOUNT = object_of(MemberAppId=is_integer, MemberUin=is_integer)


def validate(action: str, fields: dict[str, Field], params: dict[str, Any]) -> dict[str, Any]:
    """The params without null values, or ApiError naming the first offending field."""
    present = {name: value for name, value in params.items() if value is not None}
    for name, value in present.items():
        spec = fields.get(name)
        if spec is None:
            raise ApiError("UnknownParameter", f"The parameter `{name}` is not recognized by {action}.")
        if not spec.check(value):
            raise ApiError("InvalidParameter", f"The parameter `{name}` must be of type {spec.type_name}.")
        if spec.unsupported and value not in ("", 0, [], {}):
            raise ApiError(
                "UnsupportedOperation",
                f"The parameter `{name}` of {action} is not implemented by the tke-kms emulator.",
            )
    for name, spec in fields.items():
        if spec.required and name not in present:
            raise ApiError("MissingParameter", f"The parameter `{name}` is missing.")
    return present
