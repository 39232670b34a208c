"""tke-kms-plugin: the Kubernetes KMS plugin server (KMS v1beta1 + v2) for Tencent Cloud KMS.

Module map: cli (flags) -> config; app wires unix_socket, servicer_v1/servicer_v2 (gRPC layer, rpc helpers)
over a service.KmsService; tencent_service implements it with tencent (SDK calls on worker threads),
retry (admission via limiter, retries), cache (decrypted DEKs), health (cached state), credentials;
metrics + http_endpoints for observability, logs for JSON logging, healthcheck for the probe subcommand.
"""
