# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Filter tke.kms.kms_plugin_args: the plugin's command line from kms_plugin options (kms_plugin_args.yml).

The same function renders the container args of the DaemonSet and the static pod, so the systemd unit runs the
plugin with exactly the command line the pod modes give it. Errors are plain ValueError, which Ansible reports
as a templating error; no controller import, so importing this never changes how modules report warnings.
"""

from __future__ import annotations

import typing as t

from ansible_collections.tke.kms.plugins.module_utils._plugin_pod import plugin_args

REQUIRED = ("region", "key_id", "unix_socket", "credentials_source")
NEEDED_BY_SOURCE = {"file": "credentials_file", "cvm_role": "cvm_role"}


def kms_plugin_args(options: t.Mapping[str, t.Any]) -> t.List[str]:
    if not isinstance(options, t.Mapping):
        raise ValueError("kms_plugin_args expects a dict of options, got %s" % type(options).__name__)
    needed = [*REQUIRED, NEEDED_BY_SOURCE.get(options.get("credentials_source"), "credentials_source")]
    missing = [name for name in needed if name not in options]
    if missing:
        raise ValueError("kms_plugin_args: missing option(s) %s" % ", ".join(missing))
    return plugin_args(dict(options))


class FilterModule:
    def filters(self) -> t.Dict[str, t.Callable[..., t.Any]]:
        return {"kms_plugin_args": kms_plugin_args}
