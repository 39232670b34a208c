# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The one Kubernetes client of the collection: connection options, client factory, apply and errors.

Options and environment variables follow kubernetes.core (doc fragment tke.kms.k8s_auth). Objects travel as
plain dicts (raw JSON, no generated models), so modules work with old and new releases of the Python client.

PRIVATE to the collection.
"""

from __future__ import annotations

import copy
import json
import os
import traceback
import typing as t

from ansible_collections.tke.kms.plugins.module_utils._errors import TkeKmsError
from ansible_collections.tke.kms.plugins.module_utils._k8s_options import (
    KUBECONFIG_ENV,
    connection_options,
    from_env,
)
from ansible_collections.tke.kms.plugins.module_utils._module import Library
from ansible_collections.tke.kms.plugins.module_utils._yaml_edit import syntax_error_message

K8S_IMPORT_ERROR: t.Optional[str] = None
try:
    import yaml  # the Python client's own dependency: it reads kubeconfig files with it
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.client.rest import ApiException
    from kubernetes.config.config_exception import ConfigException
except ImportError:
    K8S_IMPORT_ERROR = traceback.format_exc()

K8S_PACKAGE = "kubernetes"
KUBERNETES_CLIENT = Library(K8S_PACKAGE, K8S_IMPORT_ERROR)
FIELD_MANAGER = "tke.kms"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"

# Written by the API server on every write; comparing them would make every run look changed.
VOLATILE_METADATA = ("resourceVersion", "managedFields", "generation", "creationTimestamp", "uid", "selfLink")
VOLATILE_ANNOTATIONS = ("deprecated.daemonset.template.generation",)


def k8s_auth_argument_spec() -> t.Dict[str, t.Any]:
    """Connection options, named as kubernetes.core names them (doc fragment tke.kms.k8s_auth)."""
    return dict(
        # no_log: given inline it holds tokens and keys (see narrow_kubeconfig_masking)
        kubeconfig=dict(type="raw", no_log=True, fallback=from_env(KUBECONFIG_ENV)),
        proxy=dict(type="str", fallback=from_env("K8S_AUTH_PROXY")),
        **connection_options(api_timeout=30),
    )


# Parts of a kubeconfig that are not credentials; everything else (users[].user) is.
KUBECONFIG_PUBLIC_KEYS = ("apiVersion", "kind", "current-context", "preferences", "clusters", "contexts")


def _strings(value: t.Any) -> t.Set[str]:
    if isinstance(value, dict):
        return set().union(*(_strings(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_strings(v) for v in value)) if value else set()
    return {str(value)} if value not in (None, "") and not isinstance(value, bool) else set()


def narrow_kubeconfig_masking(module: t.Any) -> None:
    """Mask only the credentials of the no_log kubeconfig in the module's output.

    Ansible masks every string of a no_log option wherever it appears in the output: for a kubeconfig path
    that is the path, for an inline kubeconfig also 'v1', 'Config' and the cluster names, which would turn
    apps/v1 into apps/********. The invocation log already hides the whole option; from here on only the
    user entries' strings (and those of the other no_log options) stay masked.
    """
    kubeconfig = module.params.get("kubeconfig")
    if isinstance(kubeconfig, dict):
        users = kubeconfig.get("users")
        entries = [u for u in users if isinstance(u, dict)] if isinstance(users, list) else []
        names = [u.get("name") for u in entries]
        public = _strings({k: v for k, v in kubeconfig.items() if k in KUBECONFIG_PUBLIC_KEYS}) | _strings(
            names
        )
        secret = _strings(
            {k: v for k, v in kubeconfig.items() if k not in (*KUBECONFIG_PUBLIC_KEYS, "users")}
        )
        secret |= _strings([{k: v for k, v in u.items() if k != "name"} for u in entries])
        if not isinstance(users, list) or len(entries) != len(users):
            secret |= _strings(users)
    elif isinstance(kubeconfig, str):
        public, secret = {kubeconfig}, set()
    else:
        return
    for name, spec in module.argument_spec.items():
        if spec.get("no_log") and name != "kubeconfig":
            secret |= _strings(module.params.get(name))
    module.no_log_values.difference_update(public - secret)


class KubeError(TkeKmsError):
    """A Kubernetes call that failed, with what the API server (or the network) said."""

    def __init__(self, message: str, status: t.Optional[int] = None, reason: t.Optional[str] = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason

    def details(self) -> t.Dict[str, t.Any]:
        return dict(status=self.status, reason=self.reason)


def build_configuration(params: t.Dict[str, t.Any]) -> "k8s_client.Configuration":
    """Client configuration: the kubeconfig (or in-cluster account) first, explicit options on top."""
    configuration = k8s_client.Configuration()
    kubeconfig = params.get("kubeconfig")
    context = params.get("context")
    try:
        if isinstance(kubeconfig, dict):
            k8s_config.load_kube_config_from_dict(
                kubeconfig, context=context, client_configuration=configuration, persist_config=False
            )
        elif kubeconfig:
            k8s_config.load_kube_config(
                config_file=os.path.expanduser(str(kubeconfig)),
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        elif not params.get("host"):
            try:
                k8s_config.load_incluster_config(client_configuration=configuration)
            except ConfigException:
                k8s_config.load_kube_config(
                    context=context, client_configuration=configuration, persist_config=False
                )
    except yaml.YAMLError as exc:  # its message quotes the bad line, which may hold a token: position only
        where = "the kubeconfig %s" % kubeconfig if isinstance(kubeconfig, str) else "the kubeconfig"
        raise KubeError(
            "cannot load the Kubernetes connection: " + syntax_error_message(where, exc)
        ) from None
    except (ConfigException, OSError) as exc:
        raise KubeError(
            "cannot load the Kubernetes connection (%s): set kubeconfig (or K8S_AUTH_KUBECONFIG) or host"
            % exc
        ) from None
    if params.get("host"):
        configuration.host = params["host"]
    if params.get("api_key"):
        configuration.api_key = {"BearerToken": "Bearer %s" % params["api_key"]}
    if params.get("validate_certs") is not None:
        configuration.verify_ssl = params["validate_certs"]
    for option, attribute in (
        ("ca_cert", "ssl_ca_cert"),
        ("client_cert", "cert_file"),
        ("client_key", "key_file"),
    ):
        if params.get(option):
            setattr(configuration, attribute, params[option])
    if params.get("proxy"):
        configuration.proxy = params["proxy"]
    return configuration


def strip_volatile(obj: t.Optional[t.Dict[str, t.Any]]) -> t.Dict[str, t.Any]:
    """The object without status and server bookkeeping: what a user's change can touch."""
    if not obj:
        return {}
    clean = copy.deepcopy(obj)
    clean.pop("status", None)
    metadata = clean.get("metadata", {})
    for field in VOLATILE_METADATA:
        metadata.pop(field, None)
    annotations = metadata.get("annotations") or {}
    for annotation in VOLATILE_ANNOTATIONS:
        annotations.pop(annotation, None)
    if "annotations" in metadata and not annotations:
        metadata.pop("annotations")
    return clean


class KubeResources:
    """GET / server-side apply / DELETE / LIST of the few kinds the collection manages, as dicts."""

    def __init__(self, params: t.Dict[str, t.Any]) -> None:
        self.api_client = k8s_client.ApiClient(build_configuration(params))
        self.timeout = params.get("api_timeout") or 30
        self.apps = k8s_client.AppsV1Api(self.api_client)
        self.core = k8s_client.CoreV1Api(self.api_client)

    def _call(self, what: str, method: t.Callable[..., t.Any], *args: t.Any, **kwargs: t.Any) -> t.Any:
        try:
            response = method(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
        except ApiException as exc:
            raise KubeError(
                "%s failed: %s" % (what, api_error_message(exc)), status=exc.status, reason=exc.reason
            ) from None
        except Exception as exc:  # urllib3 errors: refused, TLS, timeouts
            host = self.api_client.configuration.host
            raise KubeError(
                "%s failed: cannot reach the Kubernetes API at %s: %s" % (what, host, exc)
            ) from None
        data = response.data
        return json.loads(data) if data else None

    def get_daemonset(self, namespace: str, name: str) -> t.Optional[t.Dict[str, t.Any]]:
        try:
            return self._call(
                "reading DaemonSet %s/%s" % (namespace, name),
                self.apps.read_namespaced_daemon_set,
                name,
                namespace,
            )
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def apply_daemonset(self, body: t.Dict[str, t.Any], dry_run: bool = False) -> t.Dict[str, t.Any]:
        """Server-side apply as field manager tke.kms, taking over fields others changed (force)."""
        metadata = body["metadata"]
        kwargs: t.Dict[str, t.Any] = dict(
            field_manager=FIELD_MANAGER, force=True, _content_type=APPLY_CONTENT_TYPE
        )
        if dry_run:
            kwargs["dry_run"] = "All"
        return self._call(
            "applying DaemonSet %s/%s" % (metadata["namespace"], metadata["name"]),
            self.apps.patch_namespaced_daemon_set,
            metadata["name"],
            metadata["namespace"],
            body,
            **kwargs,
        )

    def delete_daemonset(self, namespace: str, name: str) -> None:
        try:
            self._call(
                "deleting DaemonSet %s/%s" % (namespace, name),
                self.apps.delete_namespaced_daemon_set,
                name,
                namespace,
                propagation_policy="Background",
            )
        except KubeError as exc:
            if exc.status != 404:
                raise

    def list_pods(self, namespace: str, label_selector: str) -> t.List[t.Dict[str, t.Any]]:
        pods = self._call(
            "listing pods %s in %s" % (label_selector, namespace),
            self.core.list_namespaced_pod,
            namespace,
            label_selector=label_selector,
        )
        return (pods or {}).get("items") or []


def api_error_message(exc: "ApiException") -> str:
    """The API server's own message (a Status object) rather than the raw HTTP dump."""
    try:
        status = json.loads(exc.body)
        message = status.get("message") or exc.body
    except (TypeError, ValueError, AttributeError):
        message = exc.body or ""
    return "%s %s: %s" % (exc.status, exc.reason, message)
