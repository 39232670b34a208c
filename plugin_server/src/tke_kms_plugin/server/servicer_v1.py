"""KMS v1beta1 servicer, wire-compatible with the Go tke-kms-plugin.

The ciphertext is the ASCII CiphertextBlob Tencent returned, with no EncryptionContext: kube-apiserver stores
exactly those bytes after `k8s:enc:kms:v1:<provider name>:`, so data written through the Go plugin decrypts
here and the other way round.
"""

from __future__ import annotations

import grpc

from .. import __version__
from ..protos import kms_v1beta1_pb2 as pb
from ..protos import kms_v1beta1_pb2_grpc as pb_grpc
from .metrics import Metrics
from .rpc import deadline_of, instrumented
from .service import KmsService

API_VERSION = "v1beta1"
RUNTIME_NAME = "Tencent Cloud KMS"  # what the Go plugin reports


class KeyManagementServiceV1(pb_grpc.KeyManagementServiceServicer):
    def __init__(self, service: KmsService, metrics: Metrics) -> None:
        self.service = service
        self.metrics = metrics

    @instrumented(API_VERSION, "Version")
    async def Version(
        self, request: pb.VersionRequest, context: grpc.aio.ServicerContext
    ) -> pb.VersionResponse:
        return pb.VersionResponse(version=API_VERSION, runtime_name=RUNTIME_NAME, runtime_version=__version__)

    @instrumented(API_VERSION, "Encrypt")
    async def Encrypt(
        self, request: pb.EncryptRequest, context: grpc.aio.ServicerContext
    ) -> pb.EncryptResponse:
        result = await self.service.encrypt(request.plain, uid="", deadline=deadline_of(context))
        return pb.EncryptResponse(cipher=result.ciphertext)

    @instrumented(API_VERSION, "Decrypt")
    async def Decrypt(
        self, request: pb.DecryptRequest, context: grpc.aio.ServicerContext
    ) -> pb.DecryptResponse:
        result = await self.service.decrypt(request.cipher, uid="", deadline=deadline_of(context))
        return pb.DecryptResponse(plain=result.plaintext)
