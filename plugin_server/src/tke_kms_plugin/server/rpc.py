"""What every KMS RPC handler shares: metrics, deadline, and turning any failure into a gRPC status.

A handler never lets an exception escape as a crash: KmsError becomes its gRPC code, anything unexpected is
logged (without request data) and answered INTERNAL, and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from .errors import KmsError
from .metrics import Metrics

log = logging.getLogger(__name__)
Req = TypeVar("Req")
Resp = TypeVar("Resp")
Handler = Callable[[Any, Req, grpc.aio.ServicerContext], Awaitable[Resp]]


def deadline_of(context: grpc.aio.ServicerContext) -> float | None:
    """The caller's deadline as a time.monotonic() value (None when the caller set none)."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def printable_uid(uid: str) -> str:
    """The v2 request uid, safe to put in a log line."""
    if len(uid) <= 64 and uid.isprintable():
        return uid  # kube-apiserver's UUIDs: the common case costs nothing
    return "".join(ch for ch in uid[:64] if ch.isprintable())


def instrumented(api_version: str, method: str) -> Callable[[Handler], Handler]:
    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
            metrics: Metrics = self.metrics
            started = time.perf_counter()
            code = "OK"
            try:
                return await handler(self, request, context)
            except KmsError as error:
                code = error.code.name
                await context.abort(error.code, error.message)
            except asyncio.CancelledError:
                code = "CANCELLED"
                raise
            except Exception:
                code = "INTERNAL"
                log.exception(
                    "unexpected error", extra={"fields": {"api_version": api_version, "method": method}}
                )
                await context.abort(
                    grpc.StatusCode.INTERNAL, "internal error in tke-kms-plugin (see its log)"
                )
            finally:
                metrics.observe_call(api_version, method, code, time.perf_counter() - started)

        return wrapper

    return decorate
