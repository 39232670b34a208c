"""The `tke-kms-emulator` console script and the state file: ports, credentials, restart, signals."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tke_kms_plugin.emulator import Emulator
from tke_kms_plugin.emulator.statefile import StateFileError
from tke_kms_plugin.emulator.testing import emulator_command, make_kms_client, start_emulator_process

from tests.emulator.helpers import api_error, call, create_key, decrypt, encrypt


def test_console_script_serves_the_sdk(emulator_process, emulator_credentials):
    assert emulator_process.port > 0
    client = make_kms_client(emulator_process.endpoint, *emulator_credentials)
    key_id = create_key(client, "from-subprocess")
    assert decrypt(client, encrypt(client, key_id, b"hello")) == b"hello"
    assert emulator_process.admin.call_counts() == {"CreateKey": 1, "Encrypt": 1, "Decrypt": 1}


def test_parallel_starts_get_distinct_ports(emulator_credentials):
    processes = [start_emulator_process(dict([emulator_credentials])) for _ in range(3)]
    try:
        assert len({p.port for p in processes}) == 3
        assert all(p.admin.health() for p in processes)
    finally:
        for process in processes:
            process.stop()


def test_sigterm_stops_cleanly(emulator_credentials):
    process = start_emulator_process(dict([emulator_credentials]))
    assert process.stop() == 0


def test_credentials_on_the_command_line(emulator_credentials):
    process = subprocess.Popen(
        [*emulator_command(), "--port", "0", "--credentials", "AKIDone:k1", "AKIDtwo:k:with:colons"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != "TKE_KMS_EMULATOR_CREDENTIALS"},
    )
    try:
        announced = json.loads(process.stdout.readline())
        assert set(announced) == {"host", "port", "endpoint", "url"}
        for secret_id, secret_key in (("AKIDone", "k1"), ("AKIDtwo", "k:with:colons")):
            assert (
                call(make_kms_client(announced["endpoint"], secret_id, secret_key), "ListKeys").TotalCount
                == 0
            )
    finally:
        process.terminate()
        assert process.wait(10) == 0
        process.stdout.close()
        process.stderr.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no credentials"),
        (["--credentials", "no-colon"], "SECRET_ID:SECRET_KEY"),
    ],
)
def test_bad_command_lines_fail_with_a_message(args, message):
    env = {k: v for k, v in os.environ.items() if k != "TKE_KMS_EMULATOR_CREDENTIALS"}
    result = subprocess.run(
        [*emulator_command(), "--port", "0", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_damaged_state_file_fails_with_a_message(tmp_path, emulator_credentials):
    state = tmp_path / "state.json"
    state.write_text("{not json")
    result = subprocess.run(
        [
            *emulator_command(),
            "--port",
            "0",
            "--state",
            str(state),
            "--credentials",
            ":".join(emulator_credentials),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr
    with pytest.raises(StateFileError):
        Emulator(dict([emulator_credentials]), state_file=state)


def test_unwritable_state_path_fails_at_start(tmp_path, emulator_credentials):
    state = tmp_path / "missing-dir" / "state.json"
    result = subprocess.run(
        [
            *emulator_command(),
            "--port",
            "0",
            "--state",
            str(state),
            "--credentials",
            ":".join(emulator_credentials),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "missing-dir" in result.stderr
    assert "Traceback" not in result.stderr


def test_keys_survive_a_restart(tmp_path, emulator_credentials):
    state = tmp_path / "kms-state.json"
    first = start_emulator_process(dict([emulator_credentials]), state_file=state)
    try:
        client = make_kms_client(first.endpoint, *emulator_credentials)
        key_id = create_key(client, "durable", Description="survives")
        call(client, "EnableKeyRotation", KeyId=key_id, RotateDays=90)
        old_blob = encrypt(client, key_id, b"before restart", '{"a":"b"}')
        first.admin.rotate_key_now(key_id, "ap-guangzhou")
        new_blob = encrypt(client, key_id, b"after rotation")
        disabled = create_key(client, "disabled-one")
        call(client, "DisableKey", KeyId=disabled)
    finally:
        assert first.stop() == 0
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["kms-state.json"]  # no temporary files left

    second = start_emulator_process(dict([emulator_credentials]), state_file=state)
    try:
        client = make_kms_client(second.endpoint, *emulator_credentials)
        metadata = call(client, "DescribeKey", KeyId=key_id).KeyMetadata
        assert (metadata.Alias, metadata.Description, metadata.RotateDays) == ("durable", "survives", 90)
        assert decrypt(client, old_blob, '{"a":"b"}') == b"before restart"
        assert decrypt(client, new_blob) == b"after rotation"
        assert second.admin.inspect_ciphertext(encrypt(client, key_id, b"x"))["material_version"] == 2
        assert call(client, "DescribeKey", KeyId=disabled).KeyMetadata.KeyState == "Disabled"
        assert (
            api_error(client, "CreateKey", Alias="durable").code == "InvalidParameterValue.AliasAlreadyExists"
        )
        assert call(client, "ListKeys").TotalCount == 2
    finally:
        second.stop()


def test_state_file_in_process_and_permissions_tightened(tmp_path, emulator_credentials):
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"Format": 1, "Sequence": 0, "Keys": []}))
    state.chmod(0o644)
    with Emulator(dict([emulator_credentials]), state_file=state) as emulator:
        key_id = emulator.create_key("ap-guangzhou", alias="in-process")
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    with Emulator(dict([emulator_credentials]), state_file=state) as emulator:
        client = make_kms_client(emulator.endpoint, *emulator_credentials)
        assert call(client, "DescribeKey", KeyId=key_id).KeyMetadata.Alias == "in-process"
        emulator.reset()
    assert json.loads(state.read_text())["Keys"] == []


def test_without_state_file_keys_are_in_memory(tmp_path, emulator_credentials):
    with Emulator(dict([emulator_credentials])) as emulator:
        emulator.create_key("ap-guangzhou", alias="ephemeral")
    with Emulator(dict([emulator_credentials])) as emulator:
        client = make_kms_client(emulator.endpoint, *emulator_credentials)
        assert call(client, "ListKeys").TotalCount == 0
    assert list(tmp_path.iterdir()) == []


def test_concurrent_clients(emulator, emulator_credentials):
    """Many SDK clients at once: every blob decrypts to its own plaintext; one alias, one winner."""
    key_id = emulator.create_key("ap-guangzhou", alias="shared")
    failures: list[BaseException] = []
    winners: list[str] = []

    def worker(n: int) -> None:
        client = make_kms_client(emulator.endpoint, *emulator_credentials)
        try:
            for i in range(20):
                plaintext = f"{n}-{i}".encode()
                assert decrypt(client, encrypt(client, key_id, plaintext)) == plaintext
            try:
                winners.append(create_key(client, "contested"))
            except TencentCloudSDKException as err:
                assert err.code == "InvalidParameterValue.AliasAlreadyExists"
        except BaseException as err:
            failures.append(err)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(winners) == 1
    assert emulator.call_counts()["Encrypt"] == 160


def test_python_module_entry_point(emulator_credentials):
    result = subprocess.run(
        [sys.executable, "-m", "tke_kms_plugin.emulator", "--help"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    assert "--credentials" in result.stdout
