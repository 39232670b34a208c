"""Packaging: the collection artifact, the plugin and emulator wheels, the plugin image's Dockerfile."""

# This checkout as ansible_collections.tke.kms (test_dockerfile reads what the collection renders).
from tests.unit import collection as _collection  # noqa: F401
