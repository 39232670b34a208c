"""tke.kms.kms_key and kms_key_info against the KMS emulator, through ansible and the real SDK."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from tke_kms_plugin.emulator import Emulator

from tests.integration.conftest import AnsibleRun, assert_clean_failure

REGION = "ap-guangzhou"

Run = Callable[..., AnsibleRun]


@pytest.fixture
def connection(emulator: Emulator, emulator_credentials: tuple[str, str]) -> dict[str, Any]:
    secret_id, secret_key = emulator_credentials
    return dict(
        secret_id=secret_id, secret_key=secret_key, region=REGION, endpoint=emulator.url, api_retries=1
    )


def test_create_then_rerun_is_unchanged(ansible_module: Run, connection: dict, emulator: Emulator) -> None:
    args = dict(
        connection, alias="k8s-secrets", description="etcd", state="enabled", rotation=True, rotate_days=90
    )
    created = ansible_module("tke.kms.kms_key", args, diff=True)
    assert created["changed"] is True, created.result
    assert created["actions"] == ["CreateKey", "EnableKeyRotation"]
    key = created["key"]
    assert (key["Alias"], key["KeyState"], key["KeyRotationEnabled"], key["RotateDays"]) == (
        "k8s-secrets",
        "Enabled",
        True,
        90,
    )
    assert created["diff"]["before"] == {} and created["diff"]["after"]["KeyState"] == "Enabled"

    again = ansible_module("tke.kms.kms_key", args)
    assert again["changed"] is False, again.result
    assert again["actions"] == []
    assert again["key"]["KeyId"] == key["KeyId"]
    assert emulator.call_counts().get("CreateKey") == 1


def test_check_mode_predicts_and_changes_nothing(
    ansible_module: Run, connection: dict, emulator: Emulator
) -> None:
    args = dict(connection, alias="k8s-check", state="disabled", rotation=True)
    predicted = ansible_module("tke.kms.kms_key", args, check=True, diff=True)
    assert predicted["changed"] is True
    assert predicted["actions"] == ["CreateKey", "EnableKeyRotation", "DisableKey"]
    assert predicted["diff"]["after"]["KeyState"] == "Disabled"
    assert "KeyId" not in predicted["key"]
    counts = emulator.call_counts()
    assert not {"CreateKey", "EnableKeyRotation", "DisableKey"} & set(counts), counts

    info = ansible_module("tke.kms.kms_key_info", dict(connection, alias="k8s-check"))
    assert info["kms_keys"] == []


def test_check_mode_on_an_existing_key(ansible_module: Run, connection: dict, emulator: Emulator) -> None:
    key_id = emulator.create_key(REGION, alias="k8s-existing")
    predicted = ansible_module(
        "tke.kms.kms_key", dict(connection, alias="k8s-existing", state="absent"), check=True
    )
    assert predicted["changed"] is True
    assert predicted["actions"] == ["DisableKey", "ScheduleKeyDeletion"]
    assert predicted["key"]["KeyId"] == key_id and predicted["key"]["KeyState"] == "PendingDelete"
    info = ansible_module("tke.kms.kms_key_info", dict(connection, key_id=[key_id]))
    assert info["kms_keys"][0]["KeyState"] == "Enabled"


def test_alias_is_matched_exactly_not_fuzzily(
    ansible_module: Run, connection: dict, emulator: Emulator
) -> None:
    emulator.create_key(REGION, alias="k8s-secrets-old")
    emulator.create_key(REGION, alias="prod-k8s-secrets")
    created = ansible_module("tke.kms.kms_key", dict(connection, alias="k8s-secrets"))
    assert created["changed"] is True and created["actions"] == ["CreateKey"]
    assert created["key"]["Alias"] == "k8s-secrets"


def test_existing_alias_is_found_not_recreated(
    ansible_module: Run, connection: dict, emulator: Emulator
) -> None:
    key_id = emulator.create_key(REGION, alias="k8s-taken", description="made elsewhere")
    found = ansible_module("tke.kms.kms_key", dict(connection, alias="k8s-taken"))
    assert found["changed"] is False
    assert found["key"]["KeyId"] == key_id


def test_renaming_onto_another_keys_alias_fails_clearly(
    ansible_module: Run, connection: dict, emulator: Emulator
) -> None:
    first = emulator.create_key(REGION, alias="k8s-one")
    second = emulator.create_key(REGION, alias="k8s-two")
    for check in (True, False):
        run = ansible_module("tke.kms.kms_key", dict(connection, key_id=first, alias="k8s-two"), check=check)
        assert_clean_failure(run, f"alias 'k8s-two' already belongs to key {second}")
    assert "UpdateAlias" not in emulator.call_counts()


def test_rename_by_key_id(ansible_module: Run, connection: dict, emulator: Emulator) -> None:
    key_id = emulator.create_key(REGION, alias="k8s-before")
    renamed = ansible_module("tke.kms.kms_key", dict(connection, key_id=key_id, alias="k8s-after"))
    assert renamed["changed"] is True and renamed["actions"] == ["UpdateAlias"]
    assert renamed["key"]["Alias"] == "k8s-after"


def test_disabled_keys(ansible_module: Run, connection: dict, emulator: Emulator) -> None:
    key_id = emulator.create_key(REGION, alias="k8s-disabled", key_state="Disabled")
    present = ansible_module("tke.kms.kms_key", dict(connection, alias="k8s-disabled"))
    assert present["changed"] is False and present["key"]["KeyState"] == "Disabled"

    enabled = ansible_module("tke.kms.kms_key", dict(connection, alias="k8s-disabled", state="enabled"))
    assert enabled["changed"] is True and enabled["actions"] == ["EnableKey"]
    assert enabled["key"]["KeyState"] == "Enabled"

    disabled = ansible_module("tke.kms.kms_key", dict(connection, key_id=key_id, state="disabled"))
    assert disabled["actions"] == ["DisableKey"] and disabled["key"]["KeyState"] == "Disabled"
    info = ansible_module("tke.kms.kms_key_info", dict(connection, key_state="Disabled"))
    assert [key["KeyId"] for key in info["kms_keys"]] == [key_id]


def test_absent_schedules_deletion_and_present_brings_the_key_back(
    ansible_module: Run, connection: dict, emulator: Emulator
) -> None:
    key_id = emulator.create_key(REGION, alias="k8s-retire")
    absent = dict(connection, alias="k8s-retire", state="absent", pending_window_days=7)
    removed = ansible_module("tke.kms.kms_key", absent)
    assert removed["actions"] == ["DisableKey", "ScheduleKeyDeletion"]
    assert removed["key"]["KeyState"] == "PendingDelete" and removed["key"]["DeletionDate"] > 0
    assert ansible_module("tke.kms.kms_key", absent)["changed"] is False

    back = ansible_module("tke.kms.kms_key", dict(connection, key_id=key_id, state="enabled"))
    assert back["actions"] == ["CancelKeyDeletion", "EnableKey"]
    assert back["key"]["KeyState"] == "Enabled"


def test_absent_for_a_missing_key_is_unchanged(ansible_module: Run, connection: dict) -> None:
    run = ansible_module("tke.kms.kms_key", dict(connection, alias="k8s-never", state="absent"))
    assert run["changed"] is False and run["key"] == {}


def test_unknown_key_id_cannot_be_created(ansible_module: Run, connection: dict) -> None:
    run = ansible_module("tke.kms.kms_key", dict(connection, key_id="0a1b2c3d-1111-11ee-8000-000000000001"))
    assert_clean_failure(run, "does not exist; to create a key give an alias")


def test_bad_secret_key_fails_clearly_without_leaking_it(
    ansible_module: Run, connection: dict, emulator: Emulator
) -> None:
    run = ansible_module(
        "tke.kms.kms_key", dict(connection, alias="k8s-x", secret_key="wrong-secret-key-123")
    )
    assert_clean_failure(
        run, "ListKeyDetail failed: AuthFailure.SignatureFailure", "(RequestId: ", "secret_key"
    )
    assert run["error"]["code"] == "AuthFailure.SignatureFailure" and run["error"]["request_id"]
    assert "wrong-secret-key-123" not in run.stdout + run.stderr


def test_unknown_secret_id_fails_clearly(ansible_module: Run, connection: dict) -> None:
    run = ansible_module("tke.kms.kms_key", dict(connection, alias="k8s-x", secret_id="AKIDnobody0000000000"))
    assert_clean_failure(run, "AuthFailure.SecretIdNotFound")


def test_unreachable_endpoint_fails_clearly(ansible_module: Run, connection: dict) -> None:
    run = ansible_module(
        "tke.kms.kms_key", dict(connection, alias="k8s-x", endpoint="http://127.0.0.1:9", api_retries=0)
    )
    assert_clean_failure(run, "ClientNetworkError", "reachable")


def test_throttling_is_retried_then_reported(
    ansible_module: Run, connection: dict, emulator: Emulator
) -> None:
    emulator.set_error("ListKeyDetail", "RequestLimitExceeded", rate=1.0)
    run = ansible_module("tke.kms.kms_key", dict(connection, alias="k8s-x", api_retries=2))
    assert_clean_failure(run, "RequestLimitExceeded", "raise api_retries")
    assert emulator.call_counts()["ListKeyDetail"] == 3
    assert len(run["retries"]) == 2


def test_credentials_region_and_endpoint_from_the_environment(
    ansible_module: Run, emulator: Emulator, emulator_credentials: tuple[str, str]
) -> None:
    secret_id, secret_key = emulator_credentials
    env = dict(SECRET_ID=secret_id, SECRET_KEY=secret_key, TENCENTCLOUD_REGION=REGION)
    env["TENCENTCLOUD_KMS_ENDPOINT"] = emulator.url
    run = ansible_module("tke.kms.kms_key", dict(alias="k8s-env"), env=env)
    assert run["changed"] is True, run.result


def test_module_defaults_group_sets_the_connection_once(
    ansible_playbook: Callable[..., list[AnsibleRun]], connection: dict
) -> None:
    tasks = [
        {"name": "create", "tke.kms.kms_key": {"alias": "k8s-group", "state": "enabled"}, "register": "made"},
        {"name": "find", "tke.kms.kms_key_info": {"alias": "k8s-group"}},
    ]
    play = {"module_defaults": {"group/tke.kms.tencentcloud": connection}}
    created, found = ansible_playbook(tasks, play=play)
    assert created["changed"] is True, created.result
    assert found["kms_keys"][0]["KeyId"] == created["key"]["KeyId"]
    assert connection["secret_key"] not in created.stdout


def test_info_selects_by_state_and_skips_unknown_ids(
    ansible_module: Run, connection: dict, emulator: Emulator
) -> None:
    enabled = emulator.create_key(REGION, alias="k8s-a")
    disabled = emulator.create_key(REGION, alias="k8s-b", key_state="Disabled")
    every = ansible_module("tke.kms.kms_key_info", dict(connection))
    assert {key["KeyId"] for key in every["kms_keys"]} == {enabled, disabled}
    assert every["changed"] is False
    by_ids = ansible_module(
        "tke.kms.kms_key_info",
        dict(
            connection,
            key_id=[enabled, disabled, "0a1b2c3d-1111-11ee-8000-000000000001"],
            key_state="Enabled",
        ),
    )
    assert [key["KeyId"] for key in by_ids["kms_keys"]] == [enabled]
    fuzzy = ansible_module("tke.kms.kms_key_info", dict(connection, search="K8S-"))
    assert len(fuzzy["kms_keys"]) == 2
