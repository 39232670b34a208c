"""KMS v2 servicer.

key_id is `tencentcloud:kms:<region>:<KeyId>`: it names the Tencent key, so it is stable across Tencent's
transparent key rotation, never reused for another key, and the same in Status and Encrypt. Status only
reads the cached health; when the key is definitively unusable it answers a gRPC error, so kube-apiserver
stops extending its write DEK and fences writes (kubernetes/kubernetes#138950).
"""

from __future__ import annotations

import re

import grpc

from ..protos import kms_v2_pb2 as pb
from ..protos import kms_v2_pb2_grpc as pb_grpc
from .errors import ErrorKind, KmsError, bad_input
from .health import State
from .metrics import Metrics
from .rpc import deadline_of, instrumented, printable_uid
from .service import KmsService

API_VERSION = "v2"
KEY_ID_PREFIX = "tencentcloud:kms:"
MAX_KEY_ID = 1024  # kube-apiserver rejects longer key_ids
MAX_CIPHERTEXT = 1024  # kube-apiserver rejects longer ciphertexts
FORMAT_ANNOTATION = "version.tke-kms-plugin.tencentcloud.com"
FORMAT_VERSION = b"1"  # ciphertext = ASCII CiphertextBlob, no EncryptionContext
ANNOTATIONS = {FORMAT_ANNOTATION: FORMAT_VERSION}
MAX_HEALTHZ = 256
_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*")


def is_dns1123_subdomain(name: str) -> bool:
    return len(name) <= 253 and _DNS1123_SUBDOMAIN.fullmatch(name) is not None


def parse_key_id(key_id: str) -> tuple[str, str]:
    """(region, Tencent KeyId) of a v2 key_id this plugin issued; INVALID_ARGUMENT for anything else."""
    if not key_id:
        raise bad_input("key_id is empty")
    if len(key_id) > MAX_KEY_ID:
        raise bad_input(f"key_id is {len(key_id)} bytes; at most {MAX_KEY_ID} allowed")
    region, _, tencent_key = key_id.removeprefix(KEY_ID_PREFIX).partition(":")
    if not key_id.startswith(KEY_ID_PREFIX) or not region or not tencent_key:
        raise bad_input(
            f"key_id {key_id[:100]!r} was not issued by tke-kms-plugin ({KEY_ID_PREFIX}REGION:KEYID)"
        )
    return region, tencent_key


def tencent_key_of(key_id: str, region: str) -> str:
    """The Tencent KeyId inside a v2 key_id, which must name this plugin's region: a Tencent key lives in one
    region, so a ciphertext from another region's key can only be decrypted by a plugin for that region."""
    key_region, tencent_key = parse_key_id(key_id)
    if key_region != region:
        raise bad_input(
            f"key_id names region {key_region[:50]!r} but this plugin serves region {region!r} (--region); "
            f"decrypt it with a plugin configured for {key_region[:50]!r}"
        )
    return tencent_key


def check_annotations(annotations: dict[str, bytes]) -> None:
    for name in annotations:
        if not is_dns1123_subdomain(name):
            raise bad_input(f"annotation key {name[:100]!r} is not a DNS-1123 subdomain")
    version = annotations.get(FORMAT_ANNOTATION)
    if version is not None and version != FORMAT_VERSION:
        raise bad_input(f"unsupported ciphertext format {version[:20]!r} in annotation {FORMAT_ANNOTATION}")


class KeyManagementServiceV2(pb_grpc.KeyManagementServiceServicer):
    def __init__(self, service: KmsService, metrics: Metrics, key_id: str) -> None:
        if not key_id or len(key_id) > MAX_KEY_ID:
            raise ValueError(f"a KMS v2 key_id must be 1..{MAX_KEY_ID} bytes")
        self.service = service
        self.metrics = metrics
        self.key_id = key_id
        self.region = key_id.removeprefix(KEY_ID_PREFIX).partition(":")[0]

    @instrumented(API_VERSION, "Status")
    async def Status(self, request: pb.StatusRequest, context: grpc.aio.ServicerContext) -> pb.StatusResponse:
        health = self.service.status()
        if health.state is State.FAILED:
            kind = ErrorKind.KEY_UNUSABLE if health.key_unusable else ErrorKind.AUTH
            raise KmsError(health.error_code or grpc.StatusCode.FAILED_PRECONDITION, health.reason, kind)
        healthz = "ok" if health.ok else f"{health.state.value}: {health.reason}"[:MAX_HEALTHZ]
        return pb.StatusResponse(version=API_VERSION, healthz=healthz, key_id=self.key_id)

    @instrumented(API_VERSION, "Encrypt")
    async def Encrypt(
        self, request: pb.EncryptRequest, context: grpc.aio.ServicerContext
    ) -> pb.EncryptResponse:
        result = await self.service.encrypt(
            request.plaintext, uid=printable_uid(request.uid), deadline=deadline_of(context)
        )
        if len(result.ciphertext) > MAX_CIPHERTEXT:
            raise bad_input(
                f"{len(request.plaintext)} bytes of plaintext give a {len(result.ciphertext)}-byte "
                f"ciphertext; KMS v2 allows at most {MAX_CIPHERTEXT}"
            )
        return pb.EncryptResponse(ciphertext=result.ciphertext, key_id=self.key_id, annotations=ANNOTATIONS)

    @instrumented(API_VERSION, "Decrypt")
    async def Decrypt(
        self, request: pb.DecryptRequest, context: grpc.aio.ServicerContext
    ) -> pb.DecryptResponse:
        expected_key = tencent_key_of(request.key_id, self.region)
        check_annotations(dict(request.annotations))
        if len(request.ciphertext) > MAX_CIPHERTEXT:
            raise bad_input(
                f"ciphertext is {len(request.ciphertext)} bytes; KMS v2 allows at most {MAX_CIPHERTEXT}"
            )
        result = await self.service.decrypt(
            request.ciphertext, uid=printable_uid(request.uid), deadline=deadline_of(context)
        )
        if result.key_id and result.key_id != expected_key:
            raise bad_input("ciphertext was not encrypted with the key named by key_id")
        return pb.DecryptResponse(plaintext=result.plaintext)
