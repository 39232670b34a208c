"""Pure pieces of the plugin checked directly: parsing, error mapping, pacing, the DEK cache, health
transitions and credential-source order."""

from __future__ import annotations

import bisect
import os
from pathlib import Path

import grpc
import pytest
from tke_kms_plugin.server.cache import DecryptCache
from tke_kms_plugin.server.config import ConfigError, CredentialConfig, Endpoint, parse_duration
from tke_kms_plugin.server.credentials import Credentials, FileSource, resolve_source
from tke_kms_plugin.server.errors import ErrorKind, KmsError, classify, from_tencent
from tke_kms_plugin.server.health import HealthState, State
from tke_kms_plugin.server.limiter import RatePacer
from tke_kms_plugin.server.servicer_v2 import check_annotations, is_dns1123_subdomain, tencent_key_of


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("text", "seconds"), [("3s", 3), ("500ms", 0.5), ("1h30m", 5400), ("24h", 86400), ("2.5", 2.5), ("0", 0)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "3x", "1h-2m", "-1"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_duration(text)


def test_endpoint_parse() -> None:
    assert Endpoint.parse("http://127.0.0.1:8080") == Endpoint("127.0.0.1:8080", "http")
    assert Endpoint.parse("kms.internal.tencentcloudapi.com") == Endpoint(
        "kms.internal.tencentcloudapi.com", "https"
    )
    assert Endpoint.parse("") == Endpoint(None)
    for bad in ("ftp://x", "http://", "http://h/path"):
        with pytest.raises(ConfigError):
            Endpoint.parse(bad)


@pytest.mark.parametrize(
    ("code", "grpc_code", "kind", "retryable"),
    [
        ("RequestLimitExceeded", grpc.StatusCode.RESOURCE_EXHAUSTED, ErrorKind.TRANSIENT, True),
        (
            "RequestLimitExceeded.UinLimitExceeded",
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            ErrorKind.TRANSIENT,
            True,
        ),
        ("ClientNetworkError", grpc.StatusCode.UNAVAILABLE, ErrorKind.TRANSIENT, True),
        ("ServerNetworkError", grpc.StatusCode.UNAVAILABLE, ErrorKind.TRANSIENT, True),
        ("InternalError", grpc.StatusCode.UNAVAILABLE, ErrorKind.TRANSIENT, True),
        ("AuthFailure.SignatureFailure", grpc.StatusCode.PERMISSION_DENIED, ErrorKind.AUTH, False),
        ("UnauthorizedOperation", grpc.StatusCode.PERMISSION_DENIED, ErrorKind.AUTH, False),
        (
            "ResourceUnavailable.CmkDisabled",
            grpc.StatusCode.FAILED_PRECONDITION,
            ErrorKind.KEY_UNUSABLE,
            False,
        ),
        (
            "ResourceUnavailable.CmkNotFound",
            grpc.StatusCode.FAILED_PRECONDITION,
            ErrorKind.KEY_UNUSABLE,
            False,
        ),
        (
            "InvalidParameterValue.InvalidCiphertext",
            grpc.StatusCode.INVALID_ARGUMENT,
            ErrorKind.BAD_INPUT,
            False,
        ),
        ("InvalidParameterValue.InvalidKeyId", grpc.StatusCode.FAILED_PRECONDITION, ErrorKind.CONFIG, False),
        ("UnsupportedRegion", grpc.StatusCode.FAILED_PRECONDITION, ErrorKind.CONFIG, False),
        ("SomethingNew", grpc.StatusCode.INTERNAL, ErrorKind.INTERNAL, False),
    ],
)
def test_tencent_error_mapping(
    code: str, grpc_code: grpc.StatusCode, kind: ErrorKind, retryable: bool
) -> None:
    assert classify(code) == (grpc_code, kind, retryable)


def test_error_messages_are_one_bounded_line() -> None:
    error = from_tencent("Decrypt", "ServerNetworkError", "line one\nline two " + "x" * 1000, None)
    assert "\n" not in error.message and len(error.message) < 400


@pytest.mark.parametrize("qps", [300, 50, 7, 1])
@pytest.mark.parametrize("pattern", ["flood", "bursts"])
def test_pacer_never_exceeds_qps_in_any_second(qps: int, pattern: str) -> None:
    clock = FakeClock()
    pacer = RatePacer(qps, clock=clock)
    starts = []
    for i in range(qps * 5):
        if pattern == "bursts" and i % (qps // 2 or 1) == 0:
            clock.now += 0.7  # idle, then many calls at once
        delay = pacer.reserve(latest_start=clock.now + 1000)
        assert delay is not None
        starts.append(clock.now + delay)
    assert starts == sorted(starts)
    assert max(bisect.bisect_left(starts, s + 1) - i for i, s in enumerate(starts)) <= qps
    if qps >= 20:
        assert starts[pacer.burst - 1] == starts[0]  # a few simultaneous calls do not wait at all


def test_pacer_sustains_its_rate() -> None:
    clock = FakeClock()
    pacer = RatePacer(300, clock=clock)
    last = 0.0
    for _ in range(3000):
        last = clock.now + pacer.reserve(latest_start=clock.now + 1000)
    assert 3000 / (last - 1000) == pytest.approx(300 * (1 - RatePacer.BURST_SHARE), rel=0.01)


def test_pacer_refuses_slots_after_the_deadline() -> None:
    clock = FakeClock()
    pacer = RatePacer(10, clock=clock)
    assert pacer.reserve(clock.now + 1) == 0
    for _ in range(9):
        assert pacer.reserve(clock.now + 1) is not None
    assert pacer.reserve(clock.now + 0.5) is None  # the next slot is 1 s away
    assert RatePacer(0).reserve(0) == 0.0  # disabled


def test_decrypt_cache_is_lru_bounded_and_expires() -> None:
    clock = FakeClock()
    cache = DecryptCache(2, ttl=10, clock=clock)
    cache.put(b"a", b"A", "k")
    cache.put(b"b", b"B", "k")
    assert cache.get(b"a").plaintext == b"A"  # a is now the most recent
    cache.put(b"c", b"C", "k")
    assert cache.get(b"b") is None and len(cache) == 2
    clock.now += 10
    assert cache.get(b"a") is None
    assert cache.clear() == 1
    assert not DecryptCache(0, 10).enabled and not DecryptCache(10, 0).enabled


def error(kind: ErrorKind, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> KmsError:
    return KmsError(code, f"{kind.value} trouble", kind)


def test_health_transitions() -> None:
    health = HealthState()
    assert health.snapshot().state is State.STARTING
    health.failure(error(ErrorKind.TRANSIENT))
    assert health.snapshot().state is State.STARTING  # still no verdict, but the reason says why
    health.key_usable()
    assert health.snapshot().ok
    health.failure(error(ErrorKind.BAD_INPUT))
    assert health.snapshot().ok
    health.failure(error(ErrorKind.TRANSIENT))
    assert health.snapshot().state is State.DEGRADED
    health.traffic_succeeded()
    assert health.snapshot().ok
    health.failure(error(ErrorKind.KEY_UNUSABLE, grpc.StatusCode.FAILED_PRECONDITION))
    snapshot = health.snapshot()
    assert snapshot.state is State.FAILED and snapshot.key_unusable
    health.traffic_succeeded()  # a Decrypt success says nothing about the configured key
    health.failure(error(ErrorKind.TRANSIENT))  # and a network blip must not hide the verdict
    assert health.snapshot().state is State.FAILED
    health.key_usable()
    assert health.snapshot().ok


def test_health_includes_credentials() -> None:
    health = HealthState()
    health.key_usable()
    changes = []
    health.subscribe(lambda old, new: changes.append(new.state))
    health.credentials_failing("metadata down", expired=False)
    assert health.snapshot().state is State.DEGRADED and "metadata down" in health.snapshot().reason
    health.credentials_failing("metadata down", expired=True)
    assert health.snapshot().state is State.FAILED
    assert health.snapshot().error_code is grpc.StatusCode.UNAUTHENTICATED
    health.credentials_refreshed()
    assert health.snapshot().ok
    assert changes == [State.DEGRADED, State.FAILED, State.OK]


def test_credential_source_order(tmp_path: Path) -> None:
    both = {
        "TENCENTCLOUD_SECRET_ID": "a",
        "TENCENTCLOUD_SECRET_KEY": "b",
        "SECRET_ID": "c",
        "SECRET_KEY": "d",
    }
    assert resolve_source(CredentialConfig(), both).fetch().secret_id == "a"
    go = {"SECRET_ID": " c\n", "SECRET_KEY": "d"}
    assert resolve_source(CredentialConfig(), go).fetch().secret_id == "c"  # trimmed like the Go plugin
    token = {**both, "TENCENTCLOUD_SECURITY_TOKEN": "t"}
    assert resolve_source(CredentialConfig(), token).fetch().token == "t"
    assert resolve_source(CredentialConfig(cvm_role="r"), both).name == "CVM role r"
    oidc = {
        "TKE_REGION": "r",
        "TKE_PROVIDER_ID": "p",
        "TKE_WEB_IDENTITY_TOKEN_FILE": "/f",
        "TKE_ROLE_ARN": "a",
    }
    assert resolve_source(CredentialConfig(), oidc).name == "TKE OIDC"
    for env, message in (
        ({}, "no Tencent Cloud credentials"),
        ({"SECRET_ID": "x"}, "SECRET_KEY is empty"),
        ({"TKE_REGION": "r"}, "TKE_PROVIDER_ID"),
    ):
        with pytest.raises(ConfigError, match=message):
            resolve_source(CredentialConfig(), env)
    with pytest.raises(ConfigError, match="mutually exclusive"):
        resolve_source(CredentialConfig(credentials_file="/x", cvm_role="r"), both)


def test_credentials_file(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text("[default]\nsecret_id = AKIDfile\nsecret_key = filekey\n")
    path.chmod(0o640)
    with pytest.raises(ConfigError, match="mode 0640"):
        FileSource(str(path))
    path.chmod(0o600)
    source = FileSource(str(path))
    credentials = source.fetch()
    assert (credentials.secret_id, credentials.secret_key, credentials.token) == ("AKIDfile", "filekey", None)
    assert "filekey" not in repr(credentials)
    assert not source.changed()
    path.write_text("[default]\nsecret_id = AKIDfile\nsecret_key = rotated-key\n")
    os.utime(path, ns=(1, 1))
    assert source.changed()


def test_temporary_credentials_refresh_before_expiry() -> None:
    long_lived = Credentials("i", "k", expires_at=10_000.0, fetched_at=2800.0)
    assert long_lived.refresh_at() == 10_000.0 - 300
    short_lived = Credentials("i", "k", expires_at=1020.0, fetched_at=1000.0)
    assert short_lived.refresh_at() == 1010.0
    assert Credentials("i", "k").refresh_at() is None


def test_v2_key_id_and_annotations_validation() -> None:
    assert tencent_key_of("tencentcloud:kms:ap-guangzhou:kid-1", "ap-guangzhou") == "kid-1"
    for bad in (
        "",
        "kid-1",
        "tencentcloud:kms::kid",
        "tencentcloud:kms:ap-guangzhou:",
        "tencentcloud:kms:ap-beijing:kid-1",  # another region's key
        "x" * 2000,
    ):
        with pytest.raises(KmsError):
            tencent_key_of(bad, "ap-guangzhou")
    assert is_dns1123_subdomain("version.tke-kms-plugin.tencentcloud.com")
    for bad in ("Upper.case", "-lead", "trail-", "a..b", "", "a" * 254, "under_score"):
        assert not is_dns1123_subdomain(bad)
    check_annotations({"version.tke-kms-plugin.tencentcloud.com": b"1", "other.example.com": b"x"})
    for bad in ({"Bad_Key": b"1"}, {"version.tke-kms-plugin.tencentcloud.com": b"2"}):
        with pytest.raises(KmsError):
            check_annotations(bad)
