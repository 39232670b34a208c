"""Kubernetes KMS plugin API protos (v1beta1, v2) and their generated stubs.

The .proto sources live next to the stubs; `plugin_server/scripts/generate_protos.py` regenerates the
`*_pb2.py` / `*_pb2_grpc.py` files and tests/plugin/test_protos.py fails when they are stale.
"""
