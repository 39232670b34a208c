# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Options and connection of modules that run on a master and call that master's own kube-apiserver.

PRIVATE to the collection (doc fragment tke.kms.master_api). Standard library and PyYAML only.
"""

from __future__ import annotations

import typing as t

from ansible_collections.tke.kms.plugins.module_utils import _manifest as mf
from ansible_collections.tke.kms.plugins.module_utils._files import read_text
from ansible_collections.tke.kms.plugins.module_utils._https import Endpoint, apiserver_endpoint


def master_api_argument_spec() -> t.Dict[str, t.Any]:
    return dict(
        manifest_path=dict(type="path", default="/etc/kubernetes/manifests/kube-apiserver.yaml"),
        url=dict(type="str"),
        kubeconfig=dict(type="path", default="/etc/kubernetes/admin.conf"),
        client_cert=dict(type="path"),
        client_key=dict(type="path", no_log=False),
        ca_file=dict(type="path"),
        api_timeout=dict(type="float", default=10),
    )


def read_manifest(path: str) -> mf.ApiserverManifest:
    """The master's kube-apiserver manifest; ManifestError says what is wrong with it."""
    text = read_text(path)
    if text is None:
        raise mf.ManifestError("%s does not exist; is this a master with a kube-apiserver static pod?" % path)
    return mf.ApiserverManifest(text, path)


def master_endpoint(params: t.Dict[str, t.Any], manifest: mf.ApiserverManifest) -> Endpoint:
    flags = manifest.flags()
    return apiserver_endpoint(
        params["url"] or mf.apiserver_url(flags),
        client_cert=params["client_cert"],
        client_key=params["client_key"],
        ca_file=params["ca_file"],
        kubeconfig=params["kubeconfig"],
        manifest_flags=flags,
        timeout=params["api_timeout"],
    )
