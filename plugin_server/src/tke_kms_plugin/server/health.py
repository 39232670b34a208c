"""Cached health of the Tencent key, fed by background DescribeKey probes and by real traffic.

Nothing here calls Tencent: v2 Status, /readyz and grpc.health.v1 only read `snapshot()`, which is an
immutable value replaced atomically (the HTTP listener reads it from another thread).

States:
  starting  no verdict yet (first probe pending, or Tencent unreachable since start)
  ok        the key answered: DescribeKey says Enabled/ENCRYPT_DECRYPT, or an Encrypt succeeded
  degraded  transient trouble (network, throttling, 5xx, credential refresh failing): retried
  failed    definitive trouble (key disabled/deleted, credentials rejected): v2 Status returns an error
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from .errors import ErrorKind, KmsError


class State(enum.Enum):
    STARTING = "starting"
    OK = "ok"
    DEGRADED = "degraded"
    FAILED = "failed"


@dataclass(frozen=True)
class Snapshot:
    state: State
    reason: str  # "ok", or one line an operator can act on
    since: float  # wall clock of the last state change
    error_code: grpc.StatusCode | None = None  # for FAILED: what v2 Status answers
    key_unusable: bool = False

    @property
    def ok(self) -> bool:
        return self.state is State.OK


@dataclass(frozen=True)
class _CredentialState:
    healthy: bool = True
    reason: str = ""
    expired: bool = False


Listener = Callable[[Snapshot, Snapshot], None]


class HealthState:
    def __init__(self) -> None:
        self._kms = Snapshot(State.STARTING, "waiting for the first Tencent KMS check", time.time())
        self._credentials = _CredentialState()
        self._snapshot = self._kms
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        """Called as listener(old, new) on every change of the combined snapshot."""
        self._listeners.append(listener)

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # --- inputs -------------------------------------------------------------------------------------------

    def key_usable(self) -> None:
        """Proof the configured key works: a DescribeKey said Enabled, or an Encrypt succeeded."""
        if self._kms.state is not State.OK:
            self._set_kms(Snapshot(State.OK, "ok", time.time()))

    def traffic_succeeded(self) -> None:
        """A Decrypt worked: Tencent is reachable, but it proves nothing about the configured key."""
        if self._kms.state is State.DEGRADED:
            self._set_kms(Snapshot(State.OK, "ok", time.time()))

    def failure(self, error: KmsError) -> None:
        """A probe or a real call failed."""
        if error.kind.definitive:
            snapshot = Snapshot(
                State.FAILED,
                error.message,
                time.time(),
                error_code=error.code,
                key_unusable=error.kind is ErrorKind.KEY_UNUSABLE,
            )
            if (snapshot.state, snapshot.reason) != (self._kms.state, self._kms.reason):
                self._set_kms(snapshot)
        elif error.kind in (ErrorKind.TRANSIENT, ErrorKind.DEADLINE, ErrorKind.INTERNAL):
            # A flaky network must not hide a definitive verdict (disabled key) that only a probe can clear.
            if self._kms.state is State.OK:
                self._set_kms(Snapshot(State.DEGRADED, error.message, time.time()))
            elif self._kms.state is State.STARTING:
                self._set_kms(Snapshot(State.STARTING, error.message, self._kms.since))
        # BAD_INPUT says nothing about the key.

    def credentials_refreshed(self) -> None:
        self._set_credentials(_CredentialState())

    def credentials_failing(self, reason: str, *, expired: bool) -> None:
        self._set_credentials(_CredentialState(False, reason, expired))

    # --- combination --------------------------------------------------------------------------------------

    def _set_kms(self, snapshot: Snapshot) -> None:
        self._kms = snapshot
        self._publish()

    def _set_credentials(self, state: _CredentialState) -> None:
        if state != self._credentials:
            self._credentials = state
            self._publish()

    def _combined(self) -> Snapshot:
        kms, creds = self._kms, self._credentials
        if creds.healthy or kms.state is State.FAILED:
            return kms
        if creds.expired:
            return Snapshot(
                State.FAILED, creds.reason, time.time(), error_code=grpc.StatusCode.UNAUTHENTICATED
            )
        state = State.STARTING if kms.state is State.STARTING else State.DEGRADED
        return Snapshot(state, creds.reason, kms.since)

    def _publish(self) -> None:
        old, new = self._snapshot, self._combined()
        self._snapshot = new
        if (old.state, old.reason) != (new.state, new.reason):
            for listener in self._listeners:
                listener(old, new)
