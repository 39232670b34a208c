# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Options and connection of modules that run on a master and call a kube-apiserver (by default its own).

PRIVATE to the collection (doc fragment tke.kms.master_api). Standard library and PyYAML only.

Which server: O(host) (or K8S_AUTH_HOST); else the server of a kubeconfig the user gave (O(kubeconfig) or
K8S_AUTH_KUBECONFIG); else this master's own apiserver, from its manifest - not the server of kubeadm's
admin.conf, which is often a load balancer in front of every master. Credentials: see _https.
"""

from __future__ import annotations

import os
import typing as t

from ansible_collections.tke.kms.plugins.module_utils import _manifest as mf
from ansible_collections.tke.kms.plugins.module_utils._files import read_text
from ansible_collections.tke.kms.plugins.module_utils._https import (
    Endpoint,
    Kubeconfig,
    apiserver_endpoint,
    read_kubeconfig,
)
from ansible_collections.tke.kms.plugins.module_utils._k8s_options import (
    KUBECONFIG_ENV,
    connection_options,
    from_env,
    with_deprecated_alias,
)
from ansible_collections.tke.kms.plugins.module_utils._module import TkeKmsModule, merge_argument_specs
from ansible_collections.tke.kms.plugins.module_utils._yaml_edit import PYYAML

MANIFEST_PATH = "/etc/kubernetes/manifests/kube-apiserver.yaml"
ADMIN_CONF = "/etc/kubernetes/admin.conf"  # kubeadm's: credentials when no kubeconfig is given
API_TIMEOUT = 10  # seconds for one answer: a master's own apiserver answers at once or is not ready


def manifest_argument_spec() -> t.Dict[str, t.Any]:
    return dict(manifest_path=dict(type="path", default=MANIFEST_PATH))


def master_api_argument_spec() -> t.Dict[str, t.Any]:
    """manifest_path and the connection options (doc fragment tke.kms.master_api); url and ca_file are the
    deprecated names of host and ca_cert."""
    options = connection_options(api_timeout=API_TIMEOUT)
    options["host"] = with_deprecated_alias(options["host"], "url")
    options["ca_cert"] = with_deprecated_alias(options["ca_cert"], "ca_file")
    return dict(
        manifest_argument_spec(),
        kubeconfig=dict(type="path", fallback=from_env(KUBECONFIG_ENV)),
        **options,
    )


def master_module(*option_sets: t.Dict[str, t.Any]) -> TkeKmsModule:
    """A module that runs on a master against its own apiserver: these options, PyYAML, check mode."""
    return TkeKmsModule(
        merge_argument_specs(master_api_argument_spec(), *option_sets),
        libraries=[PYYAML],
        supports_check_mode=True,
    )


def read_manifest(path: str) -> mf.ApiserverManifest:
    """The master's kube-apiserver manifest; ManifestError says what is wrong with it."""
    text = read_text(path)
    if text is None:
        raise mf.ManifestError("%s does not exist; is this a master with a kube-apiserver static pod?" % path)
    return mf.ApiserverManifest(text, path)


def credentials_kubeconfig(params: t.Dict[str, t.Any]) -> t.Optional[Kubeconfig]:
    """The kubeconfig the user gave, else kubeadm's admin.conf; None when that file does not exist (the
    kubelet client certificate of the manifest is used then)."""
    path = params.get("kubeconfig") or ADMIN_CONF
    return read_kubeconfig(path, params.get("context")) if os.path.isfile(path) else None


def server_url(
    params: t.Dict[str, t.Any], kubeconfig: t.Optional[Kubeconfig], manifest: mf.ApiserverManifest
) -> str:
    """host > the server of a kubeconfig the user gave > this master's own apiserver."""
    if params.get("host"):
        return t.cast(str, params["host"])
    if params.get("kubeconfig") and kubeconfig is not None and kubeconfig.server:
        return kubeconfig.server
    return mf.apiserver_url(manifest.flags())


def master_endpoint(params: t.Dict[str, t.Any], manifest: mf.ApiserverManifest) -> Endpoint:
    kubeconfig = credentials_kubeconfig(params)
    return apiserver_endpoint(
        server_url(params, kubeconfig, manifest),
        client_cert=params.get("client_cert"),
        client_key=params.get("client_key"),
        token=params.get("api_key"),
        ca_file=params.get("ca_cert"),
        kubeconfig=kubeconfig,
        manifest_flags=manifest.flags(),
        timeout=params.get("api_timeout") or API_TIMEOUT,
        validate_certs=params.get("validate_certs"),
    )
