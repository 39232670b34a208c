#!/usr/bin/python
# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: encryption_status
short_description: Gather the encryption at rest status of one master
version_added: 0.2.0
description:
  - Read-only. Gathers what C(playbooks/status.yml) compares across masters (module
    M(tke.kms.encryption_status_report)) - the encryption configuration on disk and the one the running
    kube-apiserver uses, the provider order, the KMS API of each KMS provider, the plugin's health and its key
    state, the apiserver's readiness and KMS checks, and how the objects of each encrypted resource are stored
    in etcd.
  - The hash of a configuration is C(sha256:) and the SHA-256 of the file's exact bytes - what kube-apiserver
    reports with automatic reload.
  - The configuration the running apiserver uses (RV(running_config)) comes from the apiserver itself when it
    reports it (C(apiserver_encryption_config_controller_last_config_info), automatic reload). Otherwise it
    is inferred - kube-apiserver reads the file only when it starts (or reloads it) - as the file on disk
    when the process started (or last reloaded) after the file last changed, and is unknown when the file
    changed later; RV(running_config.source) says which.
  - The plugin is asked on the socket of each KMS provider as kube-apiserver asks it (the provider's KMS API).
    Its key state is the health the plugin itself reports from its background C(DescribeKey) probe
    (C(tke_kms_plugin_health_state) on O(plugin_metrics_url)), and with KMS v2 the key id of its C(Status).
  - An apiserver or plugin that does not answer is a result, not a failure; the module fails only when the
    manifest or the configuration cannot be read, or etcd cannot be counted.
options:
  kubernetes_version:
    description: The apiserver version, when the manifest's image tag does not tell it.
    type: str
  resources:
    description:
      - The resources whose objects are counted in etcd.
      - Default - every resource of the configuration's entries, V([secrets]) without a configuration.
    type: list
    elements: str
  count_objects:
    description: Count the objects in etcd (a scan of their keys; turn off on a very large cluster).
    type: bool
    default: true
  plugin_metrics_url:
    description:
      - The tke-kms-plugin's metrics on the master, for the key state. Empty - not asked (the key state is
        then unknown, except the v2 key id).
    type: str
    default: http://127.0.0.1:9876/metrics
  plugin_timeout:
    description: Seconds for each call to the plugin.
    type: float
    default: 5
extends_documentation_fragment:
  - tke.kms.master_api
  - tke.kms.master_etcd
  - tke.kms.attributes
  - tke.kms.attributes.INFO_MODULE
seealso:
  - module: tke.kms.encryption_status_report
  - module: tke.kms.secret_storage_info
  - module: tke.kms.kms_plugin_health
author:
  - tke.kms maintainers (@tke-kms)
"""

EXAMPLES = r"""
- name: Read this master's encryption status
  tke.kms.encryption_status:
  register: status
"""

RETURN = r"""
kubernetes_version:
  description: The apiserver version.
  returned: always
  type: str
  sample: 1.20.2
config_path:
  description: The encryption configuration file the manifest names, null if none.
  returned: always
  type: str
  sample: /etc/kubernetes/encryption-provider-config.yaml
config_hash:
  description: C(sha256:<hex>) of that file's bytes, null when there is none.
  returned: always
  type: str
config_changed_at:
  description: When the file last changed (its mtime, seconds since the epoch).
  returned: always
  type: float
running_config:
  description: The configuration the running apiserver uses.
  returned: always
  type: dict
  contains:
    hash:
      description: Its hash, null when unknown.
      type: str
    source:
      description:
        - "V(metrics) (reported by the apiserver), C(inferred: started after the file changed),
          C(inferred: reloaded after the file changed), C(unknown: the file changed after the apiserver
          started), C(unknown: the apiserver does not answer) or C(no encryption config)."
      type: str
automatic_reload:
  description: Whether the apiserver runs with C(--encryption-provider-config-automatic-reload).
  returned: always
  type: bool
entries:
  description: The configuration's entries, resources and provider labels in order (the first one writes).
  returned: always
  type: list
  elements: dict
  sample: [{resources: [secrets], providers: [kms:tke-kms-plugin, identity]}]
kms_providers:
  description: Each KMS provider once, as M(tke.kms.apiserver_manifest_info) returns them.
  returned: always
  type: list
  elements: dict
write_storage:
  description: How new writes of the first entry are stored - C(KMS provider <name>) or V(identity).
  returned: always
  type: str
apiserver:
  description: What the apiserver says about itself.
  returned: always
  type: dict
  contains:
    answering:
      description: Whether it answered C(/readyz).
      type: bool
    ready:
      description: Whether C(/readyz) answered 200.
      type: bool
    kms_checks:
      description: Its KMS readiness checks, name to passing.
      type: dict
    started_at:
      description: Its process start time (seconds since the epoch).
      type: float
    message:
      description: Why it could not be asked, when it could not.
      type: str
plugins:
  description: The plugin of each KMS provider.
  returned: always
  type: list
  elements: dict
  contains:
    provider:
      description: The provider name.
      type: str
    socket:
      description: The socket asked.
      type: str
    healthy:
      description: Whether it answered as kube-apiserver expects.
      type: bool
    message:
      description: Its answer, or why it is not healthy.
      type: str
    key_id:
      description: The key id of its KMS v2 C(Status) (empty for KMS v1).
      type: str
    key_state:
      description:
        - The KMS key health the plugin reports (V(ok), V(degraded), V(failed), V(starting)), null when
          unknown.
      type: str
objects:
  description:
    - Per resource, the counts of M(tke.kms.secret_storage_info) (C(total), C(by_storage), C(pending_count)).
    - Empty with O(count_objects=false).
  returned: always
  type: dict
  sample:
    secrets: {total: 40, by_storage: {"kms:v1:tke-kms-plugin": 40}, encrypted_count: 40, pending_count: 0}
"""

import os
import re
import typing as t
import urllib.request

from ansible_collections.tke.kms.plugins.module_utils import _encryption_config as ec
from ansible_collections.tke.kms.plugins.module_utils import _manifest as mf
from ansible_collections.tke.kms.plugins.module_utils import _readiness as rd
from ansible_collections.tke.kms.plugins.module_utils import _reload as rl
from ansible_collections.tke.kms.plugins.module_utils._etcd import (
    census_of_resources,
    etcd_argument_spec,
    etcd_reader,
)
from ansible_collections.tke.kms.plugins.module_utils._grpc_probe import (
    ProbeError,
    kms_v1_version,
    kms_v2_status,
)
from ansible_collections.tke.kms.plugins.module_utils._https import HttpsError
from ansible_collections.tke.kms.plugins.module_utils._master_api import (
    master_endpoint,
    master_module,
    read_manifest,
)
from ansible_collections.tke.kms.plugins.module_utils._status import running_config

HEALTH_STATE = re.compile(
    rb'^tke_kms_plugin_health_state\{[^}]*state="([a-z]+)"[^}]*\}\s+1(?:\.0)?\s*$', re.MULTILINE
)


def read_config_file(path: t.Optional[str]) -> t.Tuple[t.Optional[bytes], t.Optional[float]]:
    """The configuration's bytes and mtime, (None, None) when the manifest names none or it is absent."""
    if not path:
        return None, None
    try:
        with open(path, "rb") as handle:
            return handle.read(), os.stat(path).st_mtime
    except FileNotFoundError:
        return None, None


def ask_apiserver(
    params: t.Dict[str, t.Any], manifest: mf.ApiserverManifest
) -> t.Tuple[t.Dict[str, t.Any], bytes]:
    """Readiness and KMS checks, start time, and the /metrics text (empty when it could not be read)."""
    try:
        with master_endpoint(params, manifest) as endpoint:
            status, checks = rd.readiness(endpoint, "/readyz")
            found = dict(answering=True, ready=status == 200, kms_checks=rd.kms_checks(checks))
            try:
                body = rd.metrics(endpoint)
                found["started_at"] = rd.process_start_time(body)
            except HttpsError as exc:  # answering, but the start (and any reported config) unknown
                found["message"] = str(exc)
                return found, b""
            return found, body
    except (HttpsError, mf.ManifestError) as exc:
        return dict(answering=False, ready=False, kms_checks={}, message=str(exc)), b""


def plugin_key_state(url: str, timeout: float) -> t.Optional[str]:
    """The KMS key health the plugin reports on its metrics, None when it cannot be read."""
    if not url:
        return None
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the master's own loopback
    try:
        with opener.open(url, timeout=timeout) as answer:
            match = HEALTH_STATE.search(answer.read())
    except (OSError, ValueError):
        return None
    return match.group(1).decode() if match else None


def ask_plugin(provider: t.Dict[str, t.Any], timeout: float) -> t.Dict[str, t.Any]:
    found: t.Dict[str, t.Any] = dict(provider=provider["name"], socket=provider["socket"], key_id="")
    try:
        if provider["api_version"] == "v2":
            answer = kms_v2_status(provider["socket"], timeout)
            found["key_id"] = answer["key_id"]
            healthy = answer["version"] in ("v2", "v2beta1") and answer["healthz"] == "ok"
            found["message"] = "v2 Status: version %(version)s, healthz %(healthz)s" % answer
        else:
            answer = kms_v1_version(provider["socket"], timeout)
            healthy = answer["version"] == "v1beta1"
            found["message"] = "v1beta1 Version: %(version)s (%(runtime_name)s %(runtime_version)s)" % answer
    except ProbeError as exc:
        healthy, found["message"] = False, "%s: %s" % (provider["socket"], exc)
    found["healthy"] = healthy
    return found


def write_storage(config: t.Optional[t.Dict[str, t.Any]]) -> t.Tuple[str, t.Optional[str]]:
    """How the first entry stores new writes, and its KMS provider's name (None: not KMS)."""
    for entry in (config or {}).get("resources") or []:
        first = entry["providers"][0]
        if ec.provider_type(first) == "kms":
            return "KMS provider %s" % first["kms"]["name"], str(first["kms"]["name"])
        return ec.provider_label(first), None
    return "identity", None


def main() -> None:
    module = master_module(
        etcd_argument_spec(),
        dict(
            kubernetes_version=dict(type="str"),
            resources=dict(type="list", elements="str"),
            count_objects=dict(type="bool", default=True),
            plugin_metrics_url=dict(type="str", default="http://127.0.0.1:9876/metrics"),
            plugin_timeout=dict(type="float", default=5),
        ),
    )
    params = module.params
    try:
        manifest = read_manifest(params["manifest_path"])
        version = manifest.version(params["kubernetes_version"])
        config_path = manifest.encryption_config_host_path()
        config = ec.read_config(config_path) if config_path else None
    except (mf.ManifestError, ec.ConfigError, OSError) as exc:
        module.fail_from_exception(exc)
    data, changed_at = read_config_file(config_path)
    disk_hash = rl.config_hash(data) if data is not None else None
    apiserver, body = ask_apiserver(params, manifest)
    reload = rl.reload_state(body)
    kms = ec.kms_providers(config)
    storage, write_provider = write_storage(config)
    result: t.Dict[str, t.Any] = dict(
        changed=False,
        kubernetes_version=str(version),
        config_path=config_path,
        config_hash=disk_hash,
        config_changed_at=changed_at,
        running_config=running_config(
            disk_hash, changed_at, apiserver.get("started_at"), reload.config_hashes, reload.last_success_at
        ),
        automatic_reload=rl.reloads_config(manifest),
        entries=ec.entry_labels(config),
        kms_providers=kms,
        write_storage=storage,
        apiserver=apiserver,
        plugins=[],
        objects={},
    )
    key_state = plugin_key_state(params["plugin_metrics_url"], params["plugin_timeout"]) if kms else None
    for provider in kms:
        plugin = ask_plugin(provider, params["plugin_timeout"])
        plugin["key_state"] = key_state
        result["plugins"].append(plugin)
    if params["count_objects"]:
        resources = (
            params["resources"]
            or sorted({r for e in result["entries"] for r in e["resources"]})
            or ["secrets"]
        )
        try:
            reader, prefix = etcd_reader(params)
            _all, each = census_of_resources(
                reader,
                prefix,
                write_provider or "",
                resources,
                target="kms" if write_provider else "identity",
                list_pending=False,
            )
        except (mf.ManifestError, HttpsError, ValueError) as exc:
            module.fail_from_exception(exc, "cannot count the objects in etcd")
        result["objects"] = {resource: census.counts() for resource, census in each.items()}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
