"""kms_key: the pure planner and the argument handling (everything that fails before calling KMS)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from ansible_collections.tke.kms.plugins.modules import kms_key

DEFAULTS: dict[str, Any] = dict(
    alias="k8s-secrets",
    key_id=None,
    description=None,
    key_usage=None,
    key_type=None,
    tags=None,
    state="present",
    rotation=None,
    rotate_days=None,
    pending_window_days=30,
)
ENABLED_KEY = dict(
    KeyId="k-1",
    Alias="k8s-secrets",
    Description="",
    KeyState="Enabled",
    KeyUsage="ENCRYPT_DECRYPT",
    Origin="TENCENT_KMS",
    KeyRotationEnabled=False,
)


def params(**overrides: Any) -> dict[str, Any]:
    return dict(DEFAULTS, **overrides)


def key(**overrides: Any) -> dict[str, Any]:
    return dict(ENABLED_KEY, **overrides)


def actions(steps: list[kms_key.Step]) -> list[str]:
    return [step.action for step in steps]


def test_a_missing_key_is_created_with_its_properties() -> None:
    steps = kms_key.plan(None, params(description="d", tags={"env": "prod", "a": 1}))
    assert actions(steps) == ["CreateKey"]
    assert steps[0].params == dict(
        Alias="k8s-secrets",
        KeyUsage="ENCRYPT_DECRYPT",
        Type=1,
        Description="d",
        Tags=[dict(TagKey="a", TagValue="1"), dict(TagKey="env", TagValue="prod")],
    )
    assert steps[0].effect["KeyState"] == "Enabled"


def test_a_new_external_key_waits_for_material() -> None:
    steps = kms_key.plan(None, params(key_type="EXTERNAL", state="enabled"))
    assert actions(steps) == ["CreateKey"]
    assert steps[0].params["Type"] == 2
    assert steps[0].effect["KeyState"] == "PendingImport"


def test_rotation_is_set_before_a_new_key_is_disabled() -> None:
    steps = kms_key.plan(None, params(state="disabled", rotation=True, rotate_days=90))
    assert actions(steps) == ["CreateKey", "EnableKeyRotation", "DisableKey"]
    assert steps[1].params == dict(RotateDays=90)


def test_an_up_to_date_key_needs_nothing() -> None:
    current = key(Description="d", KeyRotationEnabled=True, RotateDays=90)
    wanted = params(
        description="d", state="enabled", rotation=True, rotate_days=90, key_usage="ENCRYPT_DECRYPT"
    )
    assert kms_key.plan(current, wanted) == []


def test_options_left_unset_are_left_alone() -> None:
    assert kms_key.plan(key(Description="set elsewhere", KeyRotationEnabled=True), params()) == []


@pytest.mark.parametrize(
    ("state", "current", "expected"),
    [
        ("enabled", "Disabled", ["EnableKey"]),
        ("disabled", "Enabled", ["DisableKey"]),
        ("present", "Disabled", []),
        ("present", "PendingDelete", ["CancelKeyDeletion"]),
        ("enabled", "PendingDelete", ["CancelKeyDeletion", "EnableKey"]),
        ("disabled", "PendingDelete", ["CancelKeyDeletion"]),
        ("absent", "Enabled", ["DisableKey", "ScheduleKeyDeletion"]),
        ("absent", "Disabled", ["ScheduleKeyDeletion"]),
        ("absent", "PendingDelete", []),
    ],
)
def test_state_transitions(state: str, current: str, expected: list[str]) -> None:
    assert actions(kms_key.plan(key(KeyState=current), params(state=state))) == expected


def test_absent_uses_the_pending_window() -> None:
    steps = kms_key.plan(key(KeyState="Disabled"), params(state="absent", pending_window_days=7))
    assert steps[0].params == dict(PendingWindowInDays=7)


def test_absent_without_a_key_needs_nothing() -> None:
    assert kms_key.plan(None, params(state="absent")) == []


def test_rename_and_new_description() -> None:
    steps = kms_key.plan(key(), params(alias="renamed", description="new"))
    assert actions(steps) == ["UpdateAlias", "UpdateKeyDescription"]
    assert steps[0].params == dict(Alias="renamed")


@pytest.mark.parametrize(
    ("current", "rotation", "days", "expected"),
    [
        (dict(KeyRotationEnabled=False), True, None, [("EnableKeyRotation", {})]),
        (
            dict(KeyRotationEnabled=True, RotateDays=365),
            True,
            30,
            [("EnableKeyRotation", {"RotateDays": 30})],
        ),
        (dict(KeyRotationEnabled=True, RotateDays=30), True, 30, []),
        (dict(KeyRotationEnabled=True), True, 30, []),  # period unknown: never churn
        (dict(KeyRotationEnabled=True, RotateDays=30), False, None, [("DisableKeyRotation", {})]),
        (dict(KeyRotationEnabled=False), False, None, []),
    ],
)
def test_rotation(current: dict, rotation: bool, days: int | None, expected: list) -> None:
    steps = kms_key.plan(key(**current), params(rotation=rotation, rotate_days=days))
    assert [(step.action, step.params) for step in steps] == expected


def test_immutable_properties_are_reported() -> None:
    conflicts = kms_key.immutable_conflicts(
        key(KeyUsage="ASYMMETRIC_DECRYPT_SM2", Origin="EXTERNAL"),
        params(key_usage="ENCRYPT_DECRYPT", key_type="TENCENT_KMS"),
    )
    assert conflicts == [
        "key_usage is ASYMMETRIC_DECRYPT_SM2, not ENCRYPT_DECRYPT",
        "key_type is EXTERNAL, not TENCENT_KMS",
    ]
    assert kms_key.immutable_conflicts(key(), params()) == []


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        (dict(alias="kms-taken"), "reserved"),
        (dict(rotate_days=30), "rotate_days needs rotation=true"),
        (dict(rotation=True, rotate_days=3), "between 7 and 365"),
        (dict(pending_window_days=31), "between 7 and 30"),
    ],
)
def test_parameter_problems(overrides: dict, problem: str) -> None:
    assert problem in "; ".join(kms_key.parameter_problems(params(**overrides)))


def test_diff_view_keeps_the_managed_fields() -> None:
    assert kms_key.view_of(key(KeyId="k-1", CreateTime=1, RotateDays=None)) == dict(
        Alias="k8s-secrets",
        Description="",
        KeyState="Enabled",
        KeyUsage="ENCRYPT_DECRYPT",
        Origin="TENCENT_KMS",
        KeyRotationEnabled=False,
    )
    assert kms_key.view_of(None) == {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (dict(alias="a"), "missing required arguments: region"),
        (dict(region="ap-guangzhou"), "one of the following is required: alias, key_id"),
        (dict(alias="a", region="r", state="gone"), "value of state must be one of"),
        (dict(alias="kms-x", region="r", secret_id="AKID", secret_key="k"), "reserved"),
        (dict(alias="a", region="r"), "credentials are missing"),
        (dict(alias="a", region="r", secret_id="AKID", secret_key="k", endpoint="ftp://x"), "scheme"),
    ],
)
def test_bad_arguments_fail_before_any_call(
    run_module: Callable[..., dict], args: dict, message: str
) -> None:
    result = run_module(kms_key.main, args)
    assert result["failed"] is True
    assert message in result["msg"]


def test_the_secret_key_never_appears_in_a_failure(run_module: Callable[..., dict]) -> None:
    result = run_module(
        kms_key.main, dict(alias="kms-x", region="r", secret_id="AKID", secret_key="s3cr3t-v4lue")
    )
    assert "s3cr3t-v4lue" not in str(result)
