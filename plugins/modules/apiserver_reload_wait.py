#!/usr/bin/python
# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: apiserver_reload_wait
short_description: Wait until the kube-apiserver on this master has loaded its changed encryption
                   configuration by itself
version_added: 0.2.0
description:
  - For a kube-apiserver that runs with C(--encryption-provider-config-automatic-reload=true) (Kubernetes 1.26
    and later; M(tke.kms.apiserver_manifest) O(tke.kms.apiserver_manifest#module:automatic_reload)). Such an
    apiserver re-reads its encryption configuration about once a minute and replaces its encryption
    providers without a restart; this module waits, polling every O(wait_sleep) seconds until
    O(wait_timeout), until the apiserver of the master the task runs on has loaded the configuration file
    as it is now, and is ready.
  - Loaded means the apiserver reports the file's hash, C(sha256:) and the SHA-256 of its exact bytes, in the
    metric C(apiserver_encryption_config_controller_last_config_info). An apiserver that does not report
    that metric (releases before it) counts as having loaded the file when its last successful reload
    (C(apiserver_encryption_config_controller_automatic_reload_last_timestamp_seconds)) or its process start
    is not older than the file.
  - Ready means C(/readyz?verbose) answers 200 and, when the configuration has a C(kms) provider (or
    O(require_kms)), lists a passing KMS check (C(kms-providers)).
  - Fails, naming the apiserver and what it reports instead (the hash in force, its failed reloads, its
    failing checks), when the deadline passes - or earlier, when the apiserver has failed to reload the file
    and still has not loaded it O(failure_grace) seconds after its first failed reload since the file
    changed (the apiserver's log says why - C(error processing encryption config file)). The file is not
    touched; putting the previous configuration back is the caller's job (role C(tke.kms.apiserver) does).
  - Fails at once, before waiting, when the manifest shows the apiserver cannot reload the file - no
    C(--encryption-provider-config-automatic-reload), no C(--encryption-provider-config), the file mounted
    by itself (a single-file mount pins the old file), or Kubernetes older than 1.26.
  - In check mode it probes once and reports, without waiting or failing.
options:
  config_path:
    description:
      - The encryption configuration on the master. If not set, the file the manifest names (at the host path
        of its volume mount).
    type: path
  wait_timeout:
    description:
      - Seconds to wait at most.
      - The old name O(timeout) is deprecated and will be removed in 1.0.0.
    type: float
    default: 180
    aliases: [timeout]
  wait_sleep:
    description:
      - Seconds between two probes.
      - The old name O(delay) is deprecated and will be removed in 1.0.0.
    type: float
    default: 5
    aliases: [delay]
  failure_grace:
    description:
      - Seconds after the first failed reload since the file changed during which the apiserver may still
        load it (a KMS plugin that was briefly unhealthy); then the wait stops with the failure.
    type: float
    default: 30
  require_kms:
    description:
      - Require a passing KMS health check. The default follows the configuration - V(true) when it has a
        C(kms) provider.
    type: bool
  kubernetes_version:
    description: The apiserver version, if the manifest's image tag does not tell it.
    type: str
extends_documentation_fragment:
  - tke.kms.master_api
  - tke.kms.attributes
  - tke.kms.attributes.INFO_MODULE
notes:
  - The apiserver polls the file every 60 seconds (and retries a failed reload with a back-off), so a wait
    takes up to about a minute; keep O(wait_timeout) at two minutes or more.
  - The credentials need C(get) on the C(/metrics) and C(/readyz) URLs (kubeadm's C(admin.conf) has it).
seealso:
  - module: tke.kms.apiserver_manifest
  - module: tke.kms.apiserver_health
author:
  - tke.kms maintainers (@tke-kms)
"""

EXAMPLES = r"""
- name: Write the new encryption config
  tke.kms.encryption_config:
    phase: write
  register: config

- name: Wait for kube-apiserver to load it, without a restart
  tke.kms.apiserver_reload_wait:
    config_path: "{{ config.path }}"
    wait_timeout: 180
  when: config is changed
"""

RETURN = r"""
loaded:
  description: Whether the apiserver runs with the configuration file as it is now.
  returned: always
  type: bool
healthy:
  description: RV(loaded), and ready with the KMS checks passing (if required).
  returned: always
  type: bool
ready:
  description: Whether C(/readyz) answered 200 once the configuration was loaded.
  returned: always
  type: bool
config_path:
  description: The configuration file waited for.
  returned: always
  type: str
config_hash:
  description: Its hash, as the apiserver reports it.
  returned: always
  type: str
  sample: sha256:0b9f3c7e5d1a2b4c6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d
loaded_hashes:
  description: The hash of the configuration the apiserver reports it runs with (empty when it does not say).
  returned: when the apiserver answered
  type: list
  elements: str
reload_failures:
  description: Failed automatic reloads the apiserver counted since it started.
  returned: when the apiserver answered
  type: float
failed_since_change:
  description: Whether the apiserver has failed to reload since the file changed.
  returned: when the apiserver answered
  type: bool
checks:
  description: Every check of the verbose readiness answer, name to V(true) when it passes.
  returned: when the apiserver answered
  type: dict
kms_checks:
  description: The KMS checks among RV(checks).
  returned: when the apiserver answered
  type: dict
  sample: {kms-providers: true}
waited:
  description: Seconds waited.
  returned: always
  type: float
message:
  description: One line saying what was found.
  returned: always
  type: str
  sample: "https://10.0.0.11:6443: ready, kms-providers ok - loaded sha256:0b9f... (written 41s ago) without a
    restart"
"""

import os
import time
import typing as t

from ansible_collections.tke.kms.plugins.module_utils import _encryption_config as ec
from ansible_collections.tke.kms.plugins.module_utils import _manifest as mf
from ansible_collections.tke.kms.plugins.module_utils import _reload as rl
from ansible_collections.tke.kms.plugins.module_utils._https import Endpoint, HttpsError
from ansible_collections.tke.kms.plugins.module_utils._k8s_options import with_deprecated_alias
from ansible_collections.tke.kms.plugins.module_utils._k8s_waiter import wait_until
from ansible_collections.tke.kms.plugins.module_utils._master_api import (
    master_endpoint,
    master_module,
    read_manifest,
)
from ansible_collections.tke.kms.plugins.module_utils._module import TkeKmsModule
from ansible_collections.tke.kms.plugins.module_utils._readiness import metrics, probe, process_start_time


class ConfigFile(t.NamedTuple):
    """The configuration file as it is now."""

    path: str
    hash: str
    changed_at: float  # its mtime: when the rollout renamed it into place
    has_kms: bool


def read_config_file(path: str) -> ConfigFile:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        changed_at = os.stat(path).st_mtime
    except OSError as exc:
        raise mf.ManifestError("cannot read the encryption config %s: %s" % (path, exc)) from exc
    return ConfigFile(path, rl.config_hash(data), changed_at, bool(ec.kms_providers(ec.read_config(path))))


def check_reloadable(manifest: mf.ApiserverManifest, version_override: t.Optional[str]) -> str:
    """The config's path on the master; ManifestError when this apiserver cannot reload it by itself."""
    rl.refuse_old_version(manifest.version(version_override))
    named = manifest.encryption_config_path()
    if not named:
        raise mf.ManifestError(
            "%s: kube-apiserver has no --encryption-provider-config, so there is no config to reload"
            % manifest.path
        )
    if not rl.reloads_config(manifest):
        raise mf.ManifestError(
            "%s: kube-apiserver runs without --encryption-provider-config-automatic-reload=true, so it loads "
            "a changed encryption config only when it restarts; turn automatic reload on first "
            "(tke.kms.apiserver_manifest automatic_reload, role option apiserver_automatic_reload)"
            % manifest.path
        )
    if rl.mounts_file(manifest, named):
        raise mf.ManifestError(
            "%s: %s is mounted into the apiserver as a single file; such a mount keeps showing the old file "
            "once a new one is renamed over it, so the apiserver would never load it. Mount its directory "
            "(tke.kms.apiserver_manifest automatic_reload)" % (manifest.path, named)
        )
    return t.cast(str, manifest.encryption_config_host_path())


class Waiter:
    """Probes one apiserver until it runs the config file, remembering the first failed reload it saw."""

    def __init__(
        self, endpoint: Endpoint, config_path: str, require_kms: t.Optional[bool], grace: float
    ) -> None:
        self.endpoint = endpoint
        self.config_path = config_path
        self.require_kms = require_kms
        self.grace = grace
        self.first_failure: t.Optional[float] = None  # when the first failed reload since the change was seen

    def check(self) -> t.Dict[str, t.Any]:
        config = read_config_file(self.config_path)
        result: t.Dict[str, t.Any] = dict(
            loaded=False, healthy=False, ready=False, config_path=config.path, config_hash=config.hash
        )
        where = self.endpoint.url
        try:
            body = metrics(self.endpoint)
        except HttpsError as exc:
            result["message"] = "%s: not answering (%s)" % (where, exc)
            return result
        state = rl.reload_state(body)
        failed = state.last_failure_at is not None and state.last_failure_at >= config.changed_at
        result.update(
            loaded_hashes=state.config_hashes, reload_failures=state.failures, failed_since_change=failed
        )
        result["loaded"] = self.loaded(config, state, body)
        if not result["loaded"]:
            self.note_failure(failed)
            result["message"] = self.not_loaded_message(config, state, failed)
            return result
        self.first_failure = None
        return self.readiness(config, result)

    @staticmethod
    def loaded(config: ConfigFile, state: rl.ReloadState, body: bytes) -> bool:
        if state.config_hashes:
            return config.hash in state.config_hashes
        if state.last_success_at is not None and state.last_success_at >= config.changed_at:
            return True
        try:
            return process_start_time(body) >= config.changed_at
        except HttpsError:
            return False

    def note_failure(self, failed: bool) -> None:
        if failed and self.first_failure is None:
            self.first_failure = time.time()

    def gave_up(self) -> bool:
        """A failed reload since the change, and still not loaded failure_grace seconds later."""
        return self.first_failure is not None and time.time() - self.first_failure >= self.grace

    def not_loaded_message(self, config: ConfigFile, state: rl.ReloadState, failed: bool) -> str:
        age = time.time() - config.changed_at
        if state.config_hashes:
            found = "still runs the encryption config %s" % ", ".join(state.config_hashes)
        else:
            found = "has not reloaded the encryption config"
        text = "%s: %s, not %s of %s (written %.0fs ago)" % (
            self.endpoint.url,
            found,
            config.hash,
            config.path,
            age,
        )
        if failed:
            text += (
                "; its automatic reload FAILED since the change (%d failed reload(s) since it started, the "
                "last %.0fs ago; its log says why: 'error processing encryption config file')"
                % (state.failures, time.time() - t.cast(float, state.last_failure_at))
            )
        return text

    def readiness(self, config: ConfigFile, result: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
        require_kms = config.has_kms if self.require_kms is None else self.require_kms
        ready = probe(self.endpoint, "/readyz", require_kms)
        result.update(ready)
        result["message"] = "%s - loaded %s (written %.0fs ago) without a restart" % (
            ready["message"],
            config.hash,
            time.time() - config.changed_at,
        )
        return result


def wait(module: TkeKmsModule, waiter: Waiter) -> t.Dict[str, t.Any]:
    params = module.params
    last: t.Dict[str, t.Any] = {}

    def check() -> t.Tuple[bool, str]:
        last.clear()
        last.update(waiter.check())
        return bool(last["healthy"] or module.check_mode or waiter.gave_up()), last["message"]

    waited = wait_until(check, params["wait_timeout"], params["wait_sleep"])[2]
    result = dict(last, waited=round(waited, 1))
    if result["healthy"] or module.check_mode:
        return result
    if waiter.gave_up():
        result["message"] += "; gave up %.0fs after the failed reload" % params["failure_grace"]
    else:
        result["message"] += "; waited %.0fs" % result["waited"]
    module.fail_json(msg=result["message"], **result)


def main() -> None:
    module = master_module(
        dict(
            config_path=dict(type="path"),
            wait_timeout=with_deprecated_alias(dict(type="float", default=180), "timeout"),
            wait_sleep=with_deprecated_alias(dict(type="float", default=5), "delay"),
            failure_grace=dict(type="float", default=30),
            require_kms=dict(type="bool"),
            kubernetes_version=dict(type="str"),
        ),
    )
    params = module.params
    try:
        manifest = read_manifest(params["manifest_path"])
        manifest_config = check_reloadable(manifest, params["kubernetes_version"])
        config_path = params["config_path"] or manifest_config
        read_config_file(config_path)  # a config that cannot be read fails before any waiting
        endpoint = master_endpoint(params, manifest)
    except (mf.ManifestError, HttpsError, ec.ConfigError, OSError) as exc:
        module.fail_from_exception(exc)
    with endpoint:
        try:
            result = wait(
                module, Waiter(endpoint, config_path, params["require_kms"], params["failure_grace"])
            )
        except (mf.ManifestError, ec.ConfigError) as exc:
            module.fail_from_exception(exc)
    module.exit_json(changed=False, msg=result["message"], **result)


if __name__ == "__main__":
    main()
