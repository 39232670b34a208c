"""Where kube-apiserver keeps each resource in etcd (module_utils._etcd.resource_key_prefix)."""

from __future__ import annotations

import pytest
from ansible_collections.tke.kms.plugins.module_utils._etcd import resource_key_prefix


@pytest.mark.parametrize(
    ("resource", "key_prefix"),
    [
        ("secrets", "/registry/secrets/"),
        ("configmaps", "/registry/configmaps/"),
        ("services", "/registry/services/specs/"),
        ("endpoints", "/registry/services/endpoints/"),
        ("nodes", "/registry/minions/"),
        ("replicationcontrollers", "/registry/controllers/"),
        ("deployments.apps", "/registry/deployments/"),
        ("ingresses.networking.k8s.io", "/registry/ingress/"),
        ("events.events.k8s.io", "/registry/events/"),
        ("widgets.example.com", "/registry/example.com/widgets/"),
        ("apiservices.apiregistration.k8s.io", "/registry/apiregistration.k8s.io/apiservices/"),
        (
            "customresourcedefinitions.apiextensions.k8s.io",
            "/registry/apiextensions.k8s.io/customresourcedefinitions/",
        ),
    ],
)
def test_key_prefixes(resource: str, key_prefix: str) -> None:
    assert resource_key_prefix("/registry", resource) == key_prefix.encode()
    assert resource_key_prefix("/custom/", resource) == key_prefix.replace("/registry", "/custom").encode()


@pytest.mark.parametrize("resource", ["*.*", "*.apps", "pods/status", "Secrets", "", "a..b"])
def test_what_cannot_be_counted_is_refused(resource: str) -> None:
    with pytest.raises(ValueError, match="cannot count the objects of"):
        resource_key_prefix("/registry", resource)
