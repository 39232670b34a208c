"""Secret operations as an operator runs them: kubectl when the machine has it, else the Python client."""

from __future__ import annotations

import base64

from kubernetes import client


def create_secret(api, name: str, key: str, value: str, namespace: str = "default") -> None:
    """`kubectl create secret generic NAME --from-literal=KEY=VALUE`."""
    if api.kubectl_available():
        api.kubectl("create", "secret", "generic", name, f"--from-literal={key}={value}", "-n", namespace)
        return
    body = client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data={key: value})
    api.core().create_namespaced_secret(namespace, body)


def read_secret(api, name: str, key: str, namespace: str = "default") -> str:
    """`kubectl get secret NAME -o jsonpath={.data.KEY} | base64 -d`."""
    if api.kubectl_available():
        encoded = api.kubectl(
            "get", "secret", name, "-n", namespace, "-o", f"jsonpath={{.data.{key}}}"
        ).stdout
    else:
        encoded = api.core().read_namespaced_secret(name, namespace).data[key]
    return base64.b64decode(encoded).decode()
