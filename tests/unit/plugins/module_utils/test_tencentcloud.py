from __future__ import annotations

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.tke.kms.plugins.module_utils._kms_keys import alias_problem
from ansible_collections.tke.kms.plugins.module_utils._tencentcloud import (
    KmsClient,
    TencentCloudError,
    is_retryable,
    parse_endpoint,
    tencentcloud_argument_spec,
)


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("http://127.0.0.1:18765", ("http", "127.0.0.1:18765")),
        ("HTTP://127.0.0.1:18765/", ("http", "127.0.0.1:18765")),
        ("https://kms.ap-guangzhou.tencentcloudapi.com", ("https", "kms.ap-guangzhou.tencentcloudapi.com")),
        ("kms.internal.tencentcloudapi.com", ("https", "kms.internal.tencentcloudapi.com")),
        (" kms.tencentcloudapi.com:443 ", ("https", "kms.tencentcloudapi.com:443")),
    ],
)
def test_endpoint_keeps_the_scheme_out_of_the_signed_host(endpoint: str, expected: tuple[str, str]) -> None:
    assert parse_endpoint(endpoint) == expected


@pytest.mark.parametrize("endpoint", ["ftp://host", "http://", "host/path", "https://host/v1"])
def test_bad_endpoints_say_what_to_give(endpoint: str) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        parse_endpoint(endpoint)


def test_client_for_an_http_endpoint_uses_plain_http_on_the_bare_host() -> None:
    client = KmsClient("AKIDexample", "secret", "ap-guangzhou", endpoint="http://127.0.0.1:9")
    http_profile = client._client.profile.httpProfile
    assert (http_profile.scheme, http_profile.endpoint) == ("http", "127.0.0.1:9")
    assert client._client.profile.language == "en-US"


def test_client_without_endpoint_uses_the_sdk_default_over_https() -> None:
    http_profile = KmsClient("AKIDexample", "secret", "ap-guangzhou")._client.profile.httpProfile
    assert (http_profile.scheme, http_profile.endpoint) == ("https", None)


@pytest.mark.parametrize(("secret_id", "secret_key"), [("", "key"), ("id", None), (None, None)])
def test_missing_credentials_name_the_options_and_variables(
    secret_id: str | None, secret_key: str | None
) -> None:
    with pytest.raises(ValueError, match=r"secret_id and secret_key .*TENCENTCLOUD_SECRET_ID"):
        KmsClient(secret_id, secret_key, "ap-guangzhou")  # type: ignore[arg-type]


def test_credentials_with_surrounding_space_are_refused() -> None:
    with pytest.raises(ValueError, match="white space"):
        KmsClient("AKIDexample ", "secret", "ap-guangzhou")


@pytest.mark.parametrize(
    ("code", "retry"),
    [
        ("RequestLimitExceeded", True),
        ("RequestLimitExceeded.UinLimitExceeded", True),
        ("RequestLimitExceeded.RotateRateLimited", False),
        ("ClientNetworkError", True),
        ("ServerNetworkError", True),
        ("InternalError", True),
        ("UnsupportedOperation.ServiceTemporaryUnavailable", True),
        ("AuthFailure.SignatureFailure", False),
        ("InvalidParameterValue.AliasAlreadyExists", False),
    ],
)
def test_only_transient_errors_are_retried(code: str, retry: bool) -> None:
    assert is_retryable(TencentCloudError("CreateKey", code, "m")) is retry


def test_non_tencent_errors_are_not_retried() -> None:
    assert is_retryable(ValueError("x")) is False


def test_error_description_has_action_code_message_request_id_and_hint() -> None:
    error = TencentCloudError("ListKeyDetail", "AuthFailure.SecretIdNotFound", "secret id not found", "req-1")
    text = error.describe()
    assert text.startswith("Tencent Cloud KMS ListKeyDetail failed: AuthFailure.SecretIdNotFound: secret id")
    assert "(RequestId: req-1)" in text
    assert "TENCENTCLOUD_SECRET_ID" in text
    assert error.as_result() == dict(
        kind="TencentCloudError",
        action="ListKeyDetail",
        code="AuthFailure.SecretIdNotFound",
        message="secret id not found",
        request_id="req-1",
    )


def test_error_without_hint_or_request_id_stays_short() -> None:
    assert TencentCloudError("CreateKey", "InvalidParameter", "bad").describe() == (
        "Tencent Cloud KMS CreateKey failed: InvalidParameter: bad"
    )


def validate(parameters: dict) -> dict:
    result = ArgumentSpecValidator(tencentcloud_argument_spec()).validate(parameters)
    assert not result.error_messages
    return result.validated_parameters


def test_credentials_and_region_fall_back_to_tencentcloud_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKIDenv")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "env-key")
    monkeypatch.setenv("TENCENTCLOUD_SECURITY_TOKEN", "env-token")
    monkeypatch.setenv("TENCENTCLOUD_REGION", "ap-shanghai")
    monkeypatch.setenv("SECRET_ID", "AKIDlegacy")
    params = validate({})
    assert (params["secret_id"], params["secret_key"]) == ("AKIDenv", "env-key")
    assert (params["security_token"], params["region"]) == ("env-token", "ap-shanghai")


def test_legacy_plugin_variables_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_ID", "AKIDlegacy")
    monkeypatch.setenv("SECRET_KEY", "legacy-key")
    params = validate({"region": "ap-guangzhou"})
    assert (params["secret_id"], params["secret_key"]) == ("AKIDlegacy", "legacy-key")


def test_explicit_options_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKIDenv")
    assert validate({"secret_id": "AKIDarg", "region": "r"})["secret_id"] == "AKIDarg"


def test_credential_values_are_no_log() -> None:
    result = ArgumentSpecValidator(tencentcloud_argument_spec()).validate(
        {"secret_id": "AKIDarg", "secret_key": "the-key", "token": "the-token", "region": "r"}
    )
    assert {"AKIDarg", "the-key", "the-token"} <= result._no_log_values


def test_region_is_required() -> None:
    result = ArgumentSpecValidator(tencentcloud_argument_spec()).validate({})
    assert "missing required arguments: region" in " ".join(result.error_messages)


@pytest.mark.parametrize(
    ("alias", "problem"),
    [
        ("k8s-prod_secrets", None),
        ("a", None),
        ("x" * 60, None),
        ("x" * 61, "invalid"),
        ("-leading-dash", "invalid"),
        ("has space", "invalid"),
        ("kms-reserved", "reserved"),
        ("KMS-Reserved", "reserved"),
    ],
)
def test_alias_rules_match_kms(alias: str, problem: str | None) -> None:
    found = alias_problem(alias)
    assert (found is None) if problem is None else (problem in found)
