"""Server configuration: one immutable value built by the CLI, read by every other module."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

DEFAULT_SOCKET = "/var/run/tke-kms-plugin/server.sock"
DEFAULT_REGION = "ap-beijing"  # the Go plugin's default
DEFAULT_METRICS_ADDRESS = "127.0.0.1:9876"
TENCENT_QPS_QUOTA = 300.0  # Encrypt and Decrypt: 300 requests/s per API (Tencent KMS docs)

# Where the plugin reads its KMS endpoint when --kms-endpoint is not given, first match wins: the Tencent
# Cloud name the SDKs and the collection's modules use, then the name earlier versions of this plugin read.
ENDPOINT_ENVIRONMENT = ("TENCENTCLOUD_KMS_ENDPOINT", "TKE_KMS_ENDPOINT")

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class ConfigError(ValueError):
    """A flag or environment value the plugin cannot start with (exit status 2)."""


def parse_duration(text: str) -> float:
    """Seconds from a Go-style duration ("500ms", "3s", "1h30m") or a plain number of seconds."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pos, value = 0, 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            value += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            pos = match.end()
        if pos != len(text) or not text:
            raise ConfigError(f"invalid duration {text!r} (examples: 500ms, 3s, 10m, 24h)") from None
    if value < 0:
        raise ConfigError(f"invalid duration {text!r}: must not be negative")
    return value


def endpoint_from_environment(environ: Mapping[str, str]) -> str:
    """The endpoint the environment names (ENDPOINT_ENVIRONMENT order), '' for the SDK default."""
    for name in ENDPOINT_ENVIRONMENT:
        if environ.get(name, "").strip():
            return environ[name].strip()
    return ""


@dataclass(frozen=True)
class Endpoint:
    """Where the SDK sends Tencent KMS requests: host[:port] plus scheme, as HttpProfile wants them."""

    host: str | None  # None: the SDK default (kms.tencentcloudapi.com)
    protocol: str = "https"

    @classmethod
    def parse(cls, text: str | None) -> Endpoint:
        if not text:
            return cls(None)
        parts = urlsplit(text if "://" in text else f"https://{text}")
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise ConfigError(
                f"invalid --kms-endpoint {text!r}: expected HOST[:PORT], https://HOST[:PORT] or http://HOST:PORT"
            )
        return cls(parts.netloc, parts.scheme)

    def __str__(self) -> str:
        return (
            f"{self.protocol}://{self.host}" if self.host else "https://kms.tencentcloudapi.com (SDK default)"
        )


@dataclass(frozen=True)
class CredentialConfig:
    """Which credential source the operator asked for; the values themselves are read later."""

    credentials_file: str | None = None
    cvm_role: str | None = None
    cvm_metadata_url: str | None = None  # tests point this at a local fake of the CVM metadata service
    sts_endpoint: str | None = None  # tests point TKE OIDC's STS calls at a local fake


@dataclass(frozen=True)
class Config:
    key_id: str
    region: str = DEFAULT_REGION
    unix_socket: str = DEFAULT_SOCKET
    socket_group: str | None = None
    endpoint: Endpoint = field(default_factory=lambda: Endpoint(None))
    credentials: CredentialConfig = field(default_factory=CredentialConfig)
    verbosity: int = 0
    qps: float = TENCENT_QPS_QUOTA  # 0 disables the client-side limiter
    max_inflight: int = 32
    max_attempts: int = 4
    kms_timeout: float = 10.0  # budget of a call whose caller set no deadline
    decrypt_cache_size: int = 10_000
    decrypt_cache_ttl: float = 24 * 3600.0
    metrics_address: str | None = DEFAULT_METRICS_ADDRESS
    health_interval: float = 60.0
    health_retry_interval: float = 5.0
    shutdown_grace: float = 5.0

    @property
    def v2_key_id(self) -> str:
        """KMS v2 key_id: names the Tencent key unambiguously, so it is never reused for another key."""
        return f"tencentcloud:kms:{self.region}:{self.key_id}"


def split_host_port(address: str) -> tuple[str, int]:
    """ "127.0.0.1:9876" -> ("127.0.0.1", 9876); "[::1]:0" -> ("::1", 0)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"invalid --metrics-address {address!r}: expected HOST:PORT (empty disables)")
    return host.strip("[]") or "127.0.0.1", int(port)
