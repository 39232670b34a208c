"""Kubernetes KMS plugin for Tencent Cloud KMS, and a local Tencent Cloud KMS emulator."""

__version__ = "0.1.0"
