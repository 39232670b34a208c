# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Raw reads of what kube-apiserver stored in etcd, through etcd's v3 JSON gateway, and what the bytes say.

PRIVATE to the collection. Runs on masters: standard library and ansible-core only. The apiserver's own
etcd client certificate (from its manifest) is used, so nothing needs to be installed (no etcdctl).

An encrypted value starts with k8s:enc:<provider type>:<version>:<provider or key name>: - for example
k8s:enc:kms:v2:tke-kms-plugin: - anything else is stored in the clear (identity).
"""

from __future__ import annotations

import base64
import re
import typing as t

from ansible_collections.tke.kms.plugins.module_utils._errors import InvalidValue
from ansible_collections.tke.kms.plugins.module_utils._https import Endpoint, HttpsError, StatusError
from ansible_collections.tke.kms.plugins.module_utils._k8s_options import with_deprecated_alias
from ansible_collections.tke.kms.plugins.module_utils._manifest import etcd_settings
from ansible_collections.tke.kms.plugins.module_utils._master_api import read_manifest

ENCRYPTED_MARK = b"k8s:enc:"
GATEWAY_PATHS = ("/v3/kv/range", "/v3beta/kv/range", "/v3alpha/kv/range")  # etcd 3.4+, 3.3, 3.2


def storage_label(value: bytes) -> str:
    """'kms:v2:<name>', 'aescbc:v1:<key>', ... or 'identity' for a value stored in the clear."""
    if not value.startswith(ENCRYPTED_MARK):
        return "identity"
    parts = value[len(ENCRYPTED_MARK) :].split(b":", 3)
    if len(parts) < 4:
        return "unknown"
    return ":".join(part.decode("utf-8", "replace") for part in parts[:3])


def is_kms(label: str, provider_name: str) -> bool:
    return label in ("kms:v1:%s" % provider_name, "kms:v2:%s" % provider_name)


TARGETS = ("kms", "identity")


def stored_as_target(label: str, target: str, provider_name: str) -> bool:
    """Whether a value stored as `label` is where the rollout wants it: with the KMS provider provider_name
    (target 'kms'; any other provider, an older KMS one included, still needs a rewrite), or in the clear
    (target 'identity'; anything with an encryption prefix still needs one)."""
    if target == "identity":
        return label == "identity"
    return is_kms(label, provider_name)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def prefix_end(prefix: bytes) -> bytes:
    """The etcd range_end that selects every key starting with prefix."""
    end = bytearray(prefix)
    while end and end[-1] == 0xFF:
        end.pop()
    if not end:
        return b"\0"
    end[-1] += 1
    return bytes(end)


class EtcdReader:
    """Reads keys through whichever of the given etcd endpoints answers first."""

    def __init__(self, endpoints: t.Sequence[Endpoint]) -> None:
        if not endpoints:
            raise HttpsError(
                "no etcd endpoint: the apiserver manifest has no --etcd-servers; set etcd_endpoints"
            )
        self.endpoints = list(endpoints)
        self._path: t.Optional[str] = None

    def _range(self, body: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
        errors = []
        for endpoint in self.endpoints:
            for path in [self._path] if self._path else GATEWAY_PATHS:
                try:
                    answer = endpoint.json("POST", t.cast(str, path), body)
                except StatusError as exc:
                    if exc.status == 404:
                        continue  # an older etcd serves the gateway under another version
                    errors.append(str(exc))
                    break
                except HttpsError as exc:
                    errors.append(str(exc))
                    break
                self._path = path
                self.endpoints = [endpoint]  # stick to the one that answered
                return answer or {}
        raise HttpsError("no etcd endpoint answered: %s" % "; ".join(errors or ["no JSON gateway found"]))

    def get(self, key: bytes) -> t.Optional[bytes]:
        kvs = self._range({"key": _b64(key)}).get("kvs") or []
        return base64.b64decode(kvs[0].get("value", "")) if kvs else None

    def scan(self, prefix: bytes, page_size: int = 500) -> t.Iterator[t.Tuple[bytes, bytes]]:
        """Every (key, value) under prefix, in pages, from one consistent revision."""
        start, end = prefix, prefix_end(prefix)
        revision = None
        while True:
            body: t.Dict[str, t.Any] = {"key": _b64(start), "range_end": _b64(end), "limit": page_size}
            if revision is not None:
                body["revision"] = revision
            answer = self._range(body)
            revision = revision or (answer.get("header") or {}).get("revision")
            kvs = answer.get("kvs") or []
            for kv in kvs:
                yield base64.b64decode(kv["key"]), base64.b64decode(kv.get("value", ""))
            if not answer.get("more") or not kvs:
                return
            start = base64.b64decode(kvs[-1]["key"]) + b"\0"


# Where kube-apiserver keeps a resource in etcd, below --etcd-prefix. Built-in resources are under their
# plural, except these (k8s.io/kubernetes pkg/kubeapiserver/default_storage_factory_builder.go,
# SpecialDefaultResourcePrefixes); keyed by how an EncryptionConfiguration names the resource.
SPECIAL_KEY_PREFIXES = {
    "replicationcontrollers": "controllers",
    "endpoints": "services/endpoints",
    "nodes": "minions",
    "services": "services/specs",
    "ingresses.extensions": "ingress",
    "ingresses.networking.k8s.io": "ingress",
    "podsecuritypolicies.extensions": "podsecuritypolicy",
    "podsecuritypolicies.policy": "podsecuritypolicy",
}
# API groups whose resources kube-apiserver stores under the plural alone. Resources of any other group -
# custom resources, and the CRDs and APIServices themselves - are stored under <group>/<plural>.
BUILT_IN_GROUPS = frozenset(
    (
        "admissionregistration.k8s.io",
        "apiserverinternal.k8s.io",
        "apps",
        "autoscaling",
        "batch",
        "certificates.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "events.k8s.io",
        "extensions",
        "flowcontrol.apiserver.k8s.io",
        "internal.apiserver.k8s.io",
        "networking.k8s.io",
        "node.k8s.io",
        "policy",
        "rbac.authorization.k8s.io",
        "resource.k8s.io",
        "scheduling.k8s.io",
        "storage.k8s.io",
        "storagemigration.k8s.io",
    )
)
RESOURCE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def resource_key_prefix(etcd_prefix: str, resource: str) -> bytes:
    """The etcd key prefix of every object of resource ('configmaps', 'deployments.apps', 'foos.example.com').

    ValueError for what cannot be counted this way: wildcards (*.*, *.<group>), subresources, bad names.
    """
    names = resource.split(".")
    plural, group = names[0], ".".join(names[1:])
    if not all(RESOURCE_NAME.match(name) for name in names):
        raise InvalidValue(
            "cannot count the objects of %r: give a resource as an EncryptionConfiguration names it, the "
            "plural for the core group (secrets, configmaps) or <plural>.<group> (deployments.apps, "
            "widgets.example.com); wildcards (*.*, *.<group>) and subresources are not supported" % resource
        )
    if resource in SPECIAL_KEY_PREFIXES:
        path = SPECIAL_KEY_PREFIXES[resource]
    elif not group or group in BUILT_IN_GROUPS:
        path = plural
    else:
        path = "%s/%s" % (group, plural)
    return ("%s/%s/" % (etcd_prefix.rstrip("/"), path)).encode()


def check_resources(resources: t.Sequence[str]) -> None:
    """ValueError naming the first resource that cannot be counted (see resource_key_prefix)."""
    for resource in resources:
        resource_key_prefix("", resource)


class SecretCensus(t.NamedTuple):
    total: int
    by_storage: t.Dict[str, int]
    pending: t.List[str]  # namespace/name of objects not yet stored as the target wants (if listed)
    encrypted: int  # objects stored with the KMS provider, whatever the target
    pending_count: int = 0

    def counts(self) -> t.Dict[str, t.Any]:
        """The counts a module returns (names aside)."""
        return dict(
            total=self.total,
            by_storage=self.by_storage,
            encrypted_count=self.encrypted,
            pending_count=self.pending_count,
        )


def census(
    reader: EtcdReader,
    etcd_prefix: str,
    provider_name: str,
    page_size: int = 500,
    *,
    target: str = "kms",
    resource: str = "secrets",
    list_pending: bool = True,
) -> SecretCensus:
    """How each object of resource is stored, and which are not yet stored as the target wants (see
    stored_as_target). Names are listed only with list_pending (a large resource needs no name list)."""
    if target not in TARGETS:
        raise InvalidValue("target must be one of %s, not %r" % (", ".join(TARGETS), target))
    prefix = resource_key_prefix(etcd_prefix, resource)
    by_storage: t.Dict[str, int] = {}
    pending = []
    total = encrypted = pending_count = 0
    for key, value in reader.scan(prefix, page_size):
        total += 1
        label = storage_label(value)
        by_storage[label] = by_storage.get(label, 0) + 1
        encrypted += is_kms(label, provider_name)
        if not stored_as_target(label, target, provider_name):
            pending_count += 1
            if list_pending:
                pending.append(key[len(prefix) :].decode("utf-8", "replace"))
    return SecretCensus(total, by_storage, pending, encrypted, pending_count)


def census_of_resources(
    reader: EtcdReader,
    etcd_prefix: str,
    provider_name: str,
    resources: t.Sequence[str],
    page_size: int = 500,
    *,
    target: str = "kms",
    list_pending: bool = True,
) -> t.Tuple[SecretCensus, t.Dict[str, SecretCensus]]:
    """The census of each resource, and their sum; pending names are of Secrets only (with list_pending)."""
    check_resources(resources)  # every name before the first scan
    each = {
        resource: census(
            reader,
            etcd_prefix,
            provider_name,
            page_size,
            target=target,
            resource=resource,
            list_pending=list_pending and resource == "secrets",
        )
        for resource in dict.fromkeys(resources)
    }
    by_storage: t.Dict[str, int] = {}
    for found in each.values():
        for label, count in found.by_storage.items():
            by_storage[label] = by_storage.get(label, 0) + count
    total = SecretCensus(
        sum(f.total for f in each.values()),
        by_storage,
        [name for f in each.values() for name in f.pending],
        sum(f.encrypted for f in each.values()),
        sum(f.pending_count for f in each.values()),
    )
    return total, each


def etcd_endpoints(
    servers: t.Sequence[str],
    ca_file: t.Optional[str],
    cert_file: t.Optional[str],
    key_file: t.Optional[str],
    timeout: float,
) -> t.List[Endpoint]:
    """Endpoints for etcd URLs, loopback ones first (the local member answers fastest)."""
    ordered = sorted(servers, key=lambda url: 0 if "127.0.0.1" in url or "localhost" in url else 1)
    return [
        Endpoint(url, ca_file=ca_file, cert_file=cert_file, key_file=key_file, timeout=timeout)
        for url in ordered
    ]


def etcd_argument_spec() -> t.Dict[str, t.Any]:
    """The etcd options (doc fragment tke.kms.master_etcd; merge with manifest_argument_spec, whose
    manifest_path gives their defaults). The old names stay as deprecated aliases."""
    return dict(
        etcd_endpoints=dict(type="list", elements="str"),
        etcd_ca_cert=with_deprecated_alias(dict(type="path"), "etcd_ca_file"),
        etcd_client_cert=with_deprecated_alias(dict(type="path"), "etcd_cert_file"),
        etcd_client_key=with_deprecated_alias(dict(type="path", no_log=False), "etcd_key_file"),
        etcd_prefix=dict(type="str"),
        etcd_timeout=with_deprecated_alias(dict(type="int", default=30), "timeout"),
    )


def etcd_reader(params: t.Dict[str, t.Any]) -> t.Tuple[EtcdReader, str]:
    """An EtcdReader and the key prefix, from the options or else the apiserver manifest's flags."""
    settings = etcd_settings(read_manifest(params["manifest_path"]).flags())
    endpoints = etcd_endpoints(
        params["etcd_endpoints"] or settings["servers"],
        params["etcd_ca_cert"] or settings["ca_file"],
        params["etcd_client_cert"] or settings["cert_file"],
        params["etcd_client_key"] or settings["key_file"],
        params["etcd_timeout"],
    )
    return EtcdReader(endpoints), params["etcd_prefix"] or settings["prefix"]
