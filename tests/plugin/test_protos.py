"""The committed gRPC stubs are what the .proto files generate, and the services carry the exact names
kube-apiserver calls."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tke_kms_plugin.protos import kms_v1beta1_pb2, kms_v2_pb2

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "plugin_server" / "scripts" / "generate_protos.py"
SRC = REPO / "plugin_server" / "src"


def load_generator():
    spec = importlib.util.spec_from_file_location("generate_protos", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_stubs_are_current(tmp_path: Path) -> None:
    generator = load_generator()
    written = generator.generate(tmp_path)
    assert len(written) == 4
    for path in written:
        committed = SRC / path.relative_to(tmp_path)
        assert committed.read_bytes() == path.read_bytes(), (
            f"{committed} is stale: run `python plugin_server/scripts/generate_protos.py`"
        )


def test_service_and_method_names_match_kube_apiserver() -> None:
    v1 = kms_v1beta1_pb2.DESCRIPTOR.services_by_name["KeyManagementService"]
    v2 = kms_v2_pb2.DESCRIPTOR.services_by_name["KeyManagementService"]
    assert v1.full_name == "v1beta1.KeyManagementService"
    assert v2.full_name == "v2.KeyManagementService"
    assert [m.name for m in v1.methods] == ["Version", "Decrypt", "Encrypt"]
    assert [m.name for m in v2.methods] == ["Status", "Decrypt", "Encrypt"]
    fields = {
        m.name: [f.name for f in m.fields] for m in kms_v2_pb2.DESCRIPTOR.message_types_by_name.values()
    }
    assert fields["EncryptResponse"] == ["ciphertext", "key_id", "annotations"]
    assert fields["DecryptRequest"] == ["ciphertext", "uid", "key_id", "annotations"]
    assert fields["StatusResponse"] == ["version", "healthz", "key_id"]
