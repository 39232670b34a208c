"""tke.kms.kms_plugin_health: the standard-library gRPC probe against the real tke-kms-plugin and grpcio."""

from __future__ import annotations

import os
import socket
import threading
import time
from concurrent import futures

import grpc
import pytest
from ansible_collections.tke.kms.plugins.module_utils._grpc_probe import (
    ProbeError,
    kms_v1_version,
    kms_v2_status,
)
from ansible_collections.tke.kms.plugins.modules import kms_plugin_health
from tencentcloud.kms.v20190118 import models
from tke_kms_plugin.protos import kms_v2_pb2_grpc

from tests.unit.collection import run_module


@pytest.fixture
def kms_key(kms_client) -> str:
    request = models.CreateKeyRequest()
    request.Alias = "rollout-probe"
    return kms_client.CreateKey(request).KeyId


def test_the_real_plugin_answers_both_apis(
    start_plugin, plugin_socket, emulator, emulator_credentials, kms_key
):
    secret_id, secret_key = emulator_credentials
    start_plugin(
        plugin_socket, key_id=kms_key, endpoint=emulator.endpoint, secret_id=secret_id, secret_key=secret_key
    )
    assert kms_v1_version(plugin_socket)["version"] == "v1beta1"
    deadline = time.monotonic() + 20  # healthz says "starting" until the plugin's first KMS check
    status = kms_v2_status(plugin_socket)
    while status["healthz"] != "ok" and time.monotonic() < deadline:
        time.sleep(0.1)
        status = kms_v2_status(plugin_socket)
    assert status["version"] == "v2" and status["healthz"] == "ok" and status["key_id"]
    result = run_module(kms_plugin_health.main, {"socket": plugin_socket})
    assert result["healthy"] is True, result
    assert result["v2"]["key_id"] == status["key_id"]
    assert "v1beta1 Version ok" in result["message"] and "v2 Status ok" in result["message"]


def test_a_missing_socket_fails_and_says_why(plugin_socket):
    result = run_module(kms_plugin_health.main, {"socket": plugin_socket, "timeout": 1})
    assert result["failed"] is True and result["healthy"] is False and result["waited"] == 0
    assert "cannot connect" in result["message"] and result["message"] in result["msg"]


def test_wait_gives_up_at_the_deadline_and_fails(plugin_socket):
    started = time.monotonic()
    result = run_module(
        kms_plugin_health.main, {"socket": plugin_socket, "wait": True, "wait_timeout": 2, "wait_sleep": 1}
    )
    assert 2 <= time.monotonic() - started < 10
    assert result["failed"] is True and result["healthy"] is False and result["waited"] >= 2
    assert "not healthy after 2s" in result["msg"] and "cannot connect" in result["message"]


def test_wait_sees_a_plugin_that_starts_late(
    start_plugin, plugin_socket, emulator, emulator_credentials, kms_key
):
    """The module is already asking when the plugin starts: it keeps asking until the plugin is healthy."""
    secret_id, secret_key = emulator_credentials
    outcome: dict = {}
    waiter = threading.Thread(
        target=lambda: outcome.update(
            run_module(
                kms_plugin_health.main,
                {"socket": plugin_socket, "wait": True, "wait_timeout": 30, "wait_sleep": 1},
            )
        )
    )
    waiter.start()
    try:
        start_plugin(
            plugin_socket,
            key_id=kms_key,
            endpoint=emulator.endpoint,
            secret_id=secret_id,
            secret_key=secret_key,
        )
    finally:
        waiter.join()
    assert outcome["healthy"] is True and not outcome.get("failed"), outcome
    assert outcome["waited"] > 0 and outcome["kms_api_versions"] == ["v1beta1", "v2"]


class _Failing(kms_v2_pb2_grpc.KeyManagementServiceServicer):
    def Status(self, request, context):
        context.abort(grpc.StatusCode.UNAVAILABLE, "no key")


def test_a_grpc_error_is_reported(plugin_socket):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    kms_v2_pb2_grpc.add_KeyManagementServiceServicer_to_server(_Failing(), server)
    server.add_insecure_port(f"unix:{plugin_socket}")
    server.start()
    try:
        with pytest.raises(ProbeError, match="gRPC error"):
            kms_v2_status(plugin_socket, timeout=3)
        result = run_module(kms_plugin_health.main, {"socket": plugin_socket, "kms_api_version": "v2"})
        assert result["failed"] is True and result["healthy"] is False
        assert "v2 Status failed" in result["message"] and result["kms_api_versions"] == ["v2"]
    finally:
        server.stop(None).wait()


def test_something_that_is_not_grpc_on_the_socket(plugin_socket):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(plugin_socket)
    listener.listen(1)

    def close_at_once() -> None:
        connection, _ = listener.accept()
        connection.recv(1024)
        connection.close()

    thread = threading.Thread(target=close_at_once)
    thread.start()
    try:
        with pytest.raises(ProbeError, match="closed the connection"):
            kms_v1_version(plugin_socket, timeout=3)
    finally:
        thread.join()
        listener.close()
        os.unlink(plugin_socket)
