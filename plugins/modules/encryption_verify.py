#!/usr/bin/python
# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: encryption_verify
short_description: Prove that Secrets written through this master are stored encrypted with the KMS provider,
                   or in the clear
version_added: 0.1.0
description:
  - Creates a Secret with a random value through this master's kube-apiserver, reads it back, reads its raw
    value from etcd with the apiserver's own etcd client certificate, checks that it starts with the KMS
    provider's prefix (C(k8s:enc:kms:v1:<name>:) or C(k8s:enc:kms:v2:<name>:)) and that the random value does
    not appear in it, and deletes the Secret again.
  - With O(target=identity) (turning encryption off) it checks the opposite - the raw value has no encryption
    prefix (C(k8s:enc:)) and the random value appears in it.
  - Then counts the objects of O(resources) (Secrets by default) that are not yet stored as O(target) wants.
  - Fails with what it found when a check does not pass. Leaves nothing behind, so it never reports a change.
options:
  provider_name:
    description:
      - Name of the KMS provider in the encryption configuration. During a key rotation, the NEW provider's
        name; Secrets still stored under the old provider are then pending.
      - With O(target=identity) it only selects what RV(encrypted_count) counts.
    type: str
    default: tke-kms-plugin
  target:
    description:
      - V(kms) - new Secrets must be stored with the KMS provider O(provider_name), and every Secret stored
        otherwise is pending.
      - V(identity) - new Secrets must be stored in the clear, and every Secret with an encryption prefix
        (whatever the provider) is pending.
    type: str
    choices: [kms, identity]
    default: kms
  resources:
    description:
      - The resources whose objects are counted, named as an EncryptionConfiguration names them (V(secrets),
        V(configmaps), C(<plural>.<group>)); give every resource of the entries that carry the provider. See
        M(tke.kms.secret_storage_info) O(tke.kms.secret_storage_info#module:resources) for the etcd layout
        this follows and what is refused.
      - The temporary object of the round trip is always a Secret.
    type: list
    elements: str
    default: [secrets]
  namespace:
    description: Namespace of the temporary Secret.
    type: str
    default: default
  fail_on_pending:
    description: Fail when some objects of O(resources) are not yet stored as O(target) wants.
    type: bool
    default: true
extends_documentation_fragment:
  - tke.kms.master_api
  - tke.kms.master_etcd
  - tke.kms.attributes
  - tke.kms.attributes.INFO_MODULE
attributes:
  check_mode:
    details:
      - In check mode the temporary Secret is not created; only the count of pending Secrets is made, and
        pending Secrets are a warning instead of a failure (the steps before did not really run).
seealso:
  - module: tke.kms.secret_storage_info
author:
  - tke.kms maintainers (@tke-kms)
"""

EXAMPLES = r"""
- name: Verify encryption at rest on the first master
  tke.kms.encryption_verify:
  run_once: true

- name: Verify that encryption at rest is off (new and existing Secrets in the clear)
  tke.kms.encryption_verify:
    target: identity
  run_once: true
"""

RETURN = r"""
probe:
  description: The temporary Secret's round trip.
  returned: unless in check mode
  type: dict
  contains:
    name:
      description: C(namespace/name) of the temporary Secret.
      type: str
    read_back:
      description: Whether the apiserver returned the value that was written.
      type: bool
    storage:
      description: How etcd stores it, for example C(kms:v2:tke-kms-plugin), or C(identity) for the clear.
      type: str
    plaintext_in_etcd:
      description: Whether the random value appears in the raw etcd value.
      type: bool
total:
  description: Objects of O(resources) in etcd.
  returned: always
  type: int
by_storage:
  description: Objects of O(resources) per storage.
  returned: always
  type: dict
pending_count:
  description: Objects of O(resources) not yet stored as O(target) wants.
  returned: always
  type: int
encrypted_count:
  description: Objects of O(resources) stored with the KMS provider O(provider_name) (whatever O(target) is).
  returned: always
  type: int
per_resource:
  description: The counts (C(total), C(by_storage), C(encrypted_count), C(pending_count)) of each resource.
  returned: always
  type: dict
  sample: {secrets: {total: 40, by_storage: {"kms:v2:tke-kms-plugin": 40}, encrypted_count: 40,
           pending_count: 0}}
pending_resources:
  description: The resources other than V(secrets) with pending objects.
  returned: always
  type: list
  elements: str
target:
  description: The O(target) that was checked.
  returned: always
  type: str
  sample: kms
pending_sample:
  description: Up to 20 of the pending Secrets, as C(namespace/name).
  returned: always
  type: list
  elements: str
"""

import base64
import secrets as random
import typing as t

from ansible_collections.tke.kms.plugins.module_utils._etcd import (
    TARGETS,
    EtcdReader,
    SecretCensus,
    census_of_resources,
    check_resources,
    etcd_argument_spec,
    etcd_reader,
    is_kms,
    storage_label,
    stored_as_target,
)
from ansible_collections.tke.kms.plugins.module_utils._https import Endpoint, HttpsError, StatusError
from ansible_collections.tke.kms.plugins.module_utils._manifest import ManifestError
from ansible_collections.tke.kms.plugins.module_utils._master_api import (
    master_endpoint,
    master_module,
    read_manifest,
)
from ansible_collections.tke.kms.plugins.module_utils._secrets_api import secret_path


def round_trip(
    endpoint: Endpoint, reader: EtcdReader, etcd_prefix: str, namespace: str
) -> t.Dict[str, t.Any]:
    marker = "tke-kms-verify-" + random.token_hex(16)
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"generateName": "tke-kms-verify-", "namespace": namespace},
        "type": "Opaque",
        "data": {"probe": base64.b64encode(marker.encode()).decode()},
    }
    created = endpoint.json("POST", "/api/v1/namespaces/%s/secrets" % namespace, body)
    name = created["metadata"]["name"]
    try:
        read = endpoint.json("GET", secret_path(namespace, name))
        raw = reader.get(("%s/secrets/%s/%s" % (etcd_prefix.rstrip("/"), namespace, name)).encode())
    finally:
        try:
            endpoint.json("DELETE", secret_path(namespace, name))
        except StatusError as exc:
            if exc.status != 404:
                raise
    return dict(
        name="%s/%s" % (namespace, name),
        read_back=(read.get("data") or {}).get("probe") == body["data"]["probe"],
        storage=storage_label(raw) if raw is not None else "absent",
        plaintext_in_etcd=raw is not None and marker.encode() in raw,
    )


def probe_problems(probe: t.Dict[str, t.Any], target: str, provider: str) -> t.List[str]:
    """What is wrong with how the temporary Secret came back and was stored."""
    problems = []
    if not probe["read_back"]:
        problems.append("the Secret read back differs from the one written")
    if target == "identity":
        if not stored_as_target(probe["storage"], target, provider):
            problems.append(
                "a new Secret is stored as %s, not in the clear (identity must be the first provider on "
                "every master: the decrypt phase)" % probe["storage"]
            )
        elif not probe["plaintext_in_etcd"]:
            problems.append(
                "the new Secret's value is not in its raw etcd value, so it is not stored in the clear"
            )
        return problems
    if not is_kms(probe["storage"], provider):
        problems.append(
            "a new Secret is stored as %s, not with the KMS provider %s" % (probe["storage"], provider)
        )
    if probe["plaintext_in_etcd"]:
        problems.append("the new Secret's value is readable in etcd")
    return problems


def pending_note(each: t.Dict[str, SecretCensus], target: str, provider: str) -> str:
    """'3 of 10 Secrets, 12 of 12 configmaps are not yet stored with <provider> (...)'."""
    if target == "identity":
        where, fix = "are still stored encrypted", "rewrite them in the clear"
    else:
        where, fix = "are not yet stored with %s" % provider, "re-encrypt them"
    counted = ", ".join(
        "%d of %d %s" % (found.pending_count, found.total, "Secrets" if resource == "secrets" else resource)
        for resource, found in each.items()
        if found.pending_count
    )
    return "%s %s (%s: tke.kms.reencrypt)" % (counted, where, fix)


def main() -> None:
    module = master_module(
        etcd_argument_spec(),
        dict(
            provider_name=dict(type="str", default="tke-kms-plugin"),
            target=dict(type="str", choices=list(TARGETS), default="kms"),
            resources=dict(type="list", elements="str", default=["secrets"]),
            namespace=dict(type="str", default="default"),
            fail_on_pending=dict(type="bool", default=True),
        ),
    )
    params = module.params
    provider, target = params["provider_name"], params["target"]
    result: t.Dict[str, t.Any] = dict(changed=False)
    problems = []
    try:
        check_resources(params["resources"])  # before the round trip writes anything
        endpoint = master_endpoint(params, read_manifest(params["manifest_path"]))
        reader, etcd_prefix = etcd_reader(params)
        with endpoint:
            if not module.check_mode:
                probe = result["probe"] = round_trip(endpoint, reader, etcd_prefix, params["namespace"])
                problems.extend(probe_problems(probe, target, provider))
        found, each = census_of_resources(reader, etcd_prefix, provider, params["resources"], target=target)
    except (ManifestError, HttpsError, ValueError) as exc:
        module.fail_from_exception(exc, **result)
    result.update(
        pending_sample=found.pending[:20],
        target=target,
        per_resource={resource: c.counts() for resource, c in each.items()},
        pending_resources=[r for r, c in each.items() if r != "secrets" and c.pending_count],
        **found.counts(),
    )
    if found.pending_count and params["fail_on_pending"]:
        note = pending_note(each, target, provider)
        if module.check_mode:
            module.warn(note)  # in a check run the rollout before this step did not really happen
        else:
            problems.append(note)
    if problems:
        module.fail_json(msg="encryption at rest is not verified: " + "; ".join(problems), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
