"""What every KMS RPC handler shares: metrics, deadline, and turning any failure into a gRPC status.

A handler never lets an exception escape as a crash: KmsError becomes its gRPC code, anything unexpected is
logged (without request data) and answered INTERNAL, and the server keeps serving. A request that does not
parse never reaches gRPC's internals either (they answer UNKNOWN and log a traceback): `add_service`
registers handlers whose deserializer turns it into a MalformedRequest, answered INVALID_ARGUMENT.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message

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


@dataclass(frozen=True)
class MalformedRequest:
    """Stands in for a request message that did not parse."""

    message_type: str
    error: str


def _tolerant_parser(message_class: type[Message]) -> Callable[[bytes], Message | MalformedRequest]:
    def parse(raw: bytes) -> Message | MalformedRequest:
        try:
            return message_class.FromString(raw)
        except DecodeError as exc:
            return MalformedRequest(message_class.DESCRIPTOR.full_name, " ".join(str(exc).split())[:200])

    return parse


def _rejecting_malformed(
    behavior: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]],
    method: MethodDescriptor,
    metrics: Metrics,
) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
    api_version = method.containing_service.full_name.rpartition(".")[0]

    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, MalformedRequest):
            metrics.observe_call(api_version, method.name, "INVALID_ARGUMENT", 0.0)
            log.warning(
                "malformed request",
                extra={"fields": {"method": method.full_name, "error": request.error}},
            )
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"malformed {request.message_type} message: {request.error}"
            )
        return await behavior(request, context)

    return handle


def add_service(server: grpc.aio.Server, service: ServiceDescriptor, servicer: Any, metrics: Metrics) -> None:
    """Register `servicer` for `service` (unary requests only) with the malformed-request guard."""
    handlers = {}
    for method in service.methods:
        if method.client_streaming:
            raise ValueError(f"{method.full_name}: streaming requests are not supported here")
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        make_handler = (
            grpc.unary_stream_rpc_method_handler
            if method.server_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        handlers[method.name] = make_handler(
            _rejecting_malformed(getattr(servicer, method.name), method, metrics),
            request_deserializer=_tolerant_parser(request_class),
            response_serializer=response_class.SerializeToString,
        )
    # As generated code registers them: the registered handlers spare gRPC a generic lookup per call.
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)
