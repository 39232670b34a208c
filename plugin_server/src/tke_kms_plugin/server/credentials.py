"""Tencent Cloud credentials: where they come from, and keeping temporary ones fresh.

Sources, first match wins (documented in docs/plugin.md):
  1. --credentials-file PATH   INI `[default] secret_id/secret_key[/token]`, mode 0600 or stricter; re-read
                               when it changes (a rotated Kubernetes Secret)
  2. --cvm-role ROLE           CAM role of the CVM instance, from the metadata service (temporary)
  3. TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY [/ TENCENTCLOUD_SECURITY_TOKEN]
  4. SECRET_ID / SECRET_KEY    what the Go tke-kms-plugin DaemonSet passes
  5. TKE OIDC                  TKE_REGION, TKE_PROVIDER_ID, TKE_WEB_IDENTITY_TOKEN_FILE, TKE_ROLE_ARN
                               (temporary)

The SDK clients hold one CredentialManager and call its get_credential_info() on every request; the
manager hands out the current immutable Credentials, which a background task replaces before they expire.
Secret values never appear in a repr, a log line or an error message.
"""

from __future__ import annotations

import configparser
import json
import os
import stat
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from .config import ConfigError, CredentialConfig

# The SDK's own CVMRoleCredential swallows every metadata error and has no timeout, so the plugin fetches
# the same document itself; the address is the SDK's.
CVM_ROLE_URL = "http://metadata.tencentyun.com/latest/meta-data/cam/security-credentials/"
METADATA_TIMEOUT = 2.0
REFRESH_WINDOW = 300.0  # the SDK's margin: a signature more than 5 min off is rejected anyway


class CredentialError(Exception):
    """A source could not produce credentials; the message is safe to log."""


@dataclass(frozen=True)
class Credentials:
    secret_id: str = field(repr=False)
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)
    expires_at: float | None = None  # unix time; None for long-term keys
    fetched_at: float = field(default_factory=time.time)

    def refresh_at(self) -> float | None:
        """When to fetch new ones: REFRESH_WINDOW before expiry, or at half-life for short-lived ones."""
        if self.expires_at is None:
            return None
        lifetime = self.expires_at - self.fetched_at
        return self.fetched_at + max(lifetime - REFRESH_WINDOW, lifetime / 2)


class CredentialSource(Protocol):
    name: str
    remote: bool  # fetch() goes over the network (temporary credentials): done in the background

    def fetch(self) -> Credentials:
        """Blocking; raises CredentialError."""
        ...

    def changed(self) -> bool:
        """True when fetch() would now return something new although nothing expired."""
        ...


def _checked(secret_id: str | None, secret_key: str | None, origin: str) -> tuple[str, str]:
    secret_id, secret_key = (secret_id or "").strip(), (secret_key or "").strip()
    if not secret_id or not secret_key:
        raise CredentialError(f"{origin}: secret id and secret key must both be set and non-empty")
    return secret_id, secret_key


class StaticSource:
    remote = False

    def __init__(self, name: str, credentials: Credentials) -> None:
        self.name = name
        self._credentials = credentials

    def fetch(self) -> Credentials:
        return self._credentials

    def changed(self) -> bool:
        return False


class FileSource:
    """An INI file like the SDK's ~/.tencentcloud/credentials, readable by its owner only."""

    remote = False

    def __init__(self, path: str) -> None:
        self.name = f"credentials file {path}"
        self.path = path
        self._loaded_signature: tuple[int, int, int] | None = None
        self.check_permissions()

    def check_permissions(self) -> os.stat_result:
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise ConfigError(f"cannot read --credentials-file {self.path}: {exc.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"--credentials-file {self.path} is not a regular file")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise ConfigError(
                f"--credentials-file {self.path} has mode {mode:04o}; it holds secrets and must be readable "
                f"by its owner only (chmod 600 {self.path}, or defaultMode: 0600 on a Secret volume)"
            )
        return st

    def _signature(self, st: os.stat_result) -> tuple[int, int, int]:
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def fetch(self) -> Credentials:
        try:
            st = self.check_permissions()
        except ConfigError as exc:
            raise CredentialError(str(exc)) from None
        parser = configparser.ConfigParser(interpolation=None)
        try:
            with open(self.path, encoding="utf-8") as handle:
                parser.read_file(handle)
        except (OSError, configparser.Error, UnicodeDecodeError) as exc:
            raise CredentialError(f"cannot parse {self.path}: {type(exc).__name__}") from None
        if not parser.has_section("default"):
            raise CredentialError(f"{self.path} has no [default] section")
        section = parser["default"]
        secret_id, secret_key = _checked(section.get("secret_id"), section.get("secret_key"), self.path)
        self._loaded_signature = self._signature(st)
        return Credentials(secret_id, secret_key, (section.get("token") or "").strip() or None)

    def changed(self) -> bool:
        try:
            return self._signature(os.stat(self.path)) != self._loaded_signature
        except OSError:
            return True  # let fetch() report it


class CvmRoleSource:
    """Temporary credentials of the CAM role bound to this CVM instance."""

    remote = True

    def __init__(self, role: str, url: str | None = None) -> None:
        self.name = f"CVM role {role}"
        self.role = role
        self.url = (url or CVM_ROLE_URL).rstrip("/") + "/" + role

    def fetch(self) -> Credentials:
        if not self.url.startswith(("http://", "https://")):
            raise CredentialError(f"CVM metadata URL must be http(s): {self.url}")
        try:
            with urllib.request.urlopen(self.url, timeout=METADATA_TIMEOUT) as response:  # noqa: S310
                document = json.loads(response.read().decode("utf-8"))
        except (OSError, ValueError) as exc:
            raise CredentialError(f"CVM metadata service ({self.url}): {exc}") from None
        if not isinstance(document, dict) or document.get("Code") != "Success":
            code = document.get("Code") if isinstance(document, dict) else None
            raise CredentialError(f"CVM metadata service ({self.url}) answered Code={code!r}")
        secret_id, secret_key = _checked(document.get("TmpSecretId"), document.get("TmpSecretKey"), self.url)
        try:
            expires_at = float(document["ExpiredTime"])
        except (KeyError, TypeError, ValueError):
            raise CredentialError(f"CVM metadata service ({self.url}) gave no ExpiredTime") from None
        return Credentials(secret_id, secret_key, document.get("Token") or None, expires_at)

    def changed(self) -> bool:
        return False


TKE_OIDC_VARIABLES = ("TKE_REGION", "TKE_PROVIDER_ID", "TKE_WEB_IDENTITY_TOKEN_FILE", "TKE_ROLE_ARN")
OIDC_DURATION = 7200


class TkeOidcSource:
    """TKE pod identity: exchange the projected OIDC token for a role's temporary credentials (STS)."""

    remote = True

    def __init__(self, environ: Mapping[str, str], sts_endpoint: str | None = None) -> None:
        self.name = "TKE OIDC"
        self.region, self.provider_id, self.token_file, self.role_arn = (
            environ[v] for v in TKE_OIDC_VARIABLES
        )
        self.sts_endpoint = sts_endpoint

    def fetch(self) -> Credentials:
        from tencentcloud.common.credential import OIDCRoleArnCredential  # noqa: PLC0415  (slow import)
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import (  # noqa: PLC0415
            TencentCloudSDKException,
        )

        try:
            with open(self.token_file, encoding="utf-8") as handle:
                web_identity_token = handle.read().strip()
        except OSError as exc:
            raise CredentialError(
                f"cannot read TKE_WEB_IDENTITY_TOKEN_FILE {self.token_file}: {exc.strerror}"
            ) from None
        provider = OIDCRoleArnCredential(
            self.region,
            self.provider_id,
            web_identity_token,
            self.role_arn,
            f"tke-kms-plugin-{int(time.time())}",
            OIDC_DURATION,
            endpoint=self.sts_endpoint,
        )
        started = time.time()
        try:
            provider.refresh()
            secret_id, secret_key, token = provider.get_credential_info()
        except TencentCloudSDKException as exc:
            raise CredentialError(f"STS AssumeRoleWithWebIdentity: {exc.get_code()}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise CredentialError(
                f"STS AssumeRoleWithWebIdentity: unexpected answer ({type(exc).__name__})"
            ) from None
        # The SDK keeps expiry minus 10 % of the duration as its refresh point; use that, it is earlier.
        expires_at = float(getattr(provider, "_expired_time", started + OIDC_DURATION * 0.9))
        secret_id, secret_key = _checked(secret_id, secret_key, "STS AssumeRoleWithWebIdentity")
        return Credentials(secret_id, secret_key, token, expires_at)

    def changed(self) -> bool:
        return False


def _env_pair(environ: Mapping[str, str], id_var: str, key_var: str) -> tuple[str, str] | None:
    secret_id, secret_key = environ.get(id_var, "").strip(), environ.get(key_var, "").strip()
    if not secret_id and not secret_key:
        return None
    if not secret_id or not secret_key:
        missing = key_var if secret_id else id_var
        raise ConfigError(f"{id_var if secret_id else key_var} is set but {missing} is empty")
    return secret_id, secret_key


def resolve_source(config: CredentialConfig, environ: Mapping[str, str]) -> CredentialSource:
    """The first configured source, in the documented order. Raises ConfigError when there is none."""
    if config.credentials_file and config.cvm_role:
        raise ConfigError("--credentials-file and --cvm-role are mutually exclusive")
    if config.credentials_file:
        return FileSource(config.credentials_file)
    if config.cvm_role:
        return CvmRoleSource(config.cvm_role, config.cvm_metadata_url)
    pair = _env_pair(environ, "TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY")
    if pair:
        token = environ.get("TENCENTCLOUD_SECURITY_TOKEN", "").strip() or None
        return StaticSource("environment TENCENTCLOUD_SECRET_ID/KEY", Credentials(*pair, token))
    pair = _env_pair(environ, "SECRET_ID", "SECRET_KEY")
    if pair:
        return StaticSource("environment SECRET_ID/SECRET_KEY", Credentials(*pair))
    present = [v for v in TKE_OIDC_VARIABLES if environ.get(v)]
    if len(present) == len(TKE_OIDC_VARIABLES):
        return TkeOidcSource(environ, config.sts_endpoint)
    if present:
        missing = ", ".join(v for v in TKE_OIDC_VARIABLES if v not in present)
        raise ConfigError(f"TKE OIDC credentials are incomplete: {missing} not set")
    raise ConfigError(
        "no Tencent Cloud credentials: set SECRET_ID/SECRET_KEY or TENCENTCLOUD_SECRET_ID/"
        "TENCENTCLOUD_SECRET_KEY, or pass --credentials-file or --cvm-role, or run with TKE OIDC (TKE_* env)"
    )


class CredentialManager:
    """What the SDK clients hold as their credential: always the latest good Credentials."""

    def __init__(self, source: CredentialSource) -> None:
        self.source = source
        self.current: Credentials | None = None
        self.last_error: str | None = None

    def get_credential_info(self) -> tuple[str, str, str | None]:
        current = self.current
        if current is None:
            from tencentcloud.common.exception.tencent_cloud_sdk_exception import (  # noqa: PLC0415
                TencentCloudSDKException,
            )

            raise TencentCloudSDKException("ClientSideError", f"no credentials yet: {self.last_error}")
        return current.secret_id, current.secret_key, current.token

    def needs_refresh(self, now: float) -> bool:
        current = self.current
        if current is None:
            return True
        refresh_at = current.refresh_at()
        return (refresh_at is not None and now >= refresh_at) or self.source.changed()

    def refresh(self) -> Credentials:
        """Blocking fetch; on failure the previous credentials stay in use until they expire."""
        try:
            fresh = self.source.fetch()
        except CredentialError as exc:
            self.last_error = str(exc)
            raise
        self.current, self.last_error = fresh, None
        return fresh

    def expired(self, now: float) -> bool:
        current = self.current
        return current is None or (current.expires_at is not None and now >= current.expires_at)
