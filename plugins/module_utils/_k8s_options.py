# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The Kubernetes connection options, defined once: names, types and K8S_AUTH_* variables of kubernetes.core.

Used by the Kubernetes client's option set (_k8s.k8s_auth_argument_spec) and by the on-master one
(_master_api.master_api_argument_spec), so an option has the same name, type and variable in both.

PRIVATE to the collection. Runs on masters: standard library and ansible-core only.
"""

from __future__ import annotations

import copy
import typing as t

from ansible.module_utils.basic import env_fallback

COLLECTION = "tke.kms"
KUBECONFIG_ENV = "K8S_AUTH_KUBECONFIG"


def from_env(variable: str) -> t.Tuple[t.Any, t.List[str]]:
    return (env_fallback, [variable])


def connection_options(api_timeout: int) -> t.Dict[str, t.Any]:
    """Every connection option but kubeconfig (a file or a dict for the client, a path on masters).

    api_timeout is the default of the option of that name: seconds to wait for one answer.
    """
    return dict(
        context=dict(type="str", fallback=from_env("K8S_AUTH_CONTEXT")),
        host=dict(type="str", fallback=from_env("K8S_AUTH_HOST")),
        api_key=dict(type="str", no_log=True, fallback=from_env("K8S_AUTH_API_KEY")),
        validate_certs=dict(type="bool", aliases=["verify_ssl"], fallback=from_env("K8S_AUTH_VERIFY_SSL")),
        ca_cert=dict(type="path", aliases=["ssl_ca_cert"], fallback=from_env("K8S_AUTH_SSL_CA_CERT")),
        client_cert=dict(type="path", aliases=["cert_file"], fallback=from_env("K8S_AUTH_CERT_FILE")),
        client_key=dict(
            type="path", aliases=["key_file"], no_log=False, fallback=from_env("K8S_AUTH_KEY_FILE")
        ),
        api_timeout=dict(type="int", default=api_timeout),
    )


def with_deprecated_alias(definition: t.Dict[str, t.Any], old_name: str) -> t.Dict[str, t.Any]:
    """The option definition, also accepting old_name, with a deprecation warning (removed in 1.0.0)."""
    renamed = copy.deepcopy(definition)
    renamed["aliases"] = [*(renamed.get("aliases") or []), old_name]
    renamed["deprecated_aliases"] = [
        *(renamed.get("deprecated_aliases") or []),
        dict(name=old_name, version="1.0.0", collection_name=COLLECTION),
    ]
    return renamed
