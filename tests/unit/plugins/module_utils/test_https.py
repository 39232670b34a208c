from __future__ import annotations

import base64
import os
import typing as t
from pathlib import Path

import pytest
from ansible_collections.tke.kms.plugins.module_utils._https import (
    HttpsError,
    apiserver_endpoint,
    read_kubeconfig,
)


def test_a_malformed_kubeconfig_is_reported_by_position_only(tmp_path: Path) -> None:
    path = tmp_path / "admin.conf"
    path.write_text(
        "apiVersion: v1\nkind: Config\nusers:\n- name: admin\n  user:\n    token: tok-secret: [\n"
    )
    with pytest.raises(HttpsError) as raised:
        read_kubeconfig(str(path))
    assert str(raised.value) == f"the kubeconfig {path} is not valid YAML (line 6, column 22)"
    assert "tok-secret" not in str(raised.value)


def _kubeconfig(path: Path, *, insecure: bool = False) -> Path:
    """Contexts 'main' (embedded certificate; the current one) and 'robot' (a token, a relative CA file)."""
    path.write_text(
        f"""
apiVersion: v1
kind: Config
current-context: main
clusters:
- name: lb
  cluster:
    server: https://lb.example:6443
    certificate-authority-data: {base64.b64encode(b"CA PEM").decode()}
    insecure-skip-tls-verify: {str(insecure).lower()}
- name: direct
  cluster: {{server: "https://10.0.0.11:6443", certificate-authority: pki/ca.crt}}
contexts:
- {{name: main, context: {{cluster: lb, user: admin}}}}
- {{name: robot, context: {{cluster: direct, user: robot}}}}
users:
- name: admin
  user:
    client-certificate-data: {base64.b64encode(b"CERT PEM").decode()}
    client-key-data: {base64.b64encode(b"KEY PEM").decode()}
- name: robot
  user: {{token: tok-robot}}
"""
    )
    return path


def test_read_kubeconfig_takes_the_current_context_or_the_one_named(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path / "admin.conf")
    main = read_kubeconfig(str(path))
    assert (main.server, main.ca, main.cert, main.key, main.token) == (
        "https://lb.example:6443",
        b"CA PEM",
        b"CERT PEM",
        b"KEY PEM",
        None,
    )
    robot = read_kubeconfig(str(path), "robot")
    assert robot.server == "https://10.0.0.11:6443" and robot.token == "tok-robot"
    assert robot.ca == str(tmp_path / "pki" / "ca.crt")  # relative to the kubeconfig, as kubectl reads it
    with pytest.raises(HttpsError, match=r"has no context 'gone' \(it has: main, robot\)"):
        read_kubeconfig(str(path), "gone")


def test_credentials_come_in_order_certificate_token_kubeconfig_kubelet(tmp_path: Path) -> None:
    config = read_kubeconfig(str(_kubeconfig(tmp_path / "admin.conf")))
    flags = {
        "--kubelet-client-certificate": "/pki/kubelet.crt",
        "--kubelet-client-key": "/pki/kubelet.key",
        "--client-ca-file": "/pki/ca.crt",
    }
    url = "https://127.0.0.1:6443"
    with apiserver_endpoint(
        url, client_cert="/c.crt", token="t", kubeconfig=config, manifest_flags=flags
    ) as e:
        assert (e.cert_file, e.key_file, e.token) == ("/c.crt", "/c.crt", None)
    with apiserver_endpoint(url, token="t", kubeconfig=config, manifest_flags=flags) as e:
        assert (e.cert_file, e.token) == (None, "t")
    with apiserver_endpoint(url, kubeconfig=config, manifest_flags=flags) as e:
        assert Path(t.cast(str, e.cert_file)).read_bytes() == b"CERT PEM"
        assert oct(os.stat(t.cast(str, e.key_file)).st_mode & 0o777) == "0o600"
        assert Path(t.cast(str, e.ca_file)).read_bytes() == b"CA PEM"  # the kubeconfig's CA before the flag's
        materialized = Path(t.cast(str, e.cert_file)).parent
    assert not materialized.exists()  # close() removes the embedded data again
    with apiserver_endpoint(url, manifest_flags=flags) as e:
        assert (e.cert_file, e.key_file, e.ca_file) == ("/pki/kubelet.crt", "/pki/kubelet.key", "/pki/ca.crt")
    with pytest.raises(HttpsError, match="no credentials for the apiserver"):
        apiserver_endpoint(url, manifest_flags={})


def test_certificates_are_verified_unless_told_otherwise(tmp_path: Path) -> None:
    url = "https://127.0.0.1:6443"
    checked = read_kubeconfig(str(_kubeconfig(tmp_path / "a.conf")))
    insecure = read_kubeconfig(str(_kubeconfig(tmp_path / "b.conf", insecure=True)))
    assert apiserver_endpoint(url, kubeconfig=checked).verify is True
    assert apiserver_endpoint(url, kubeconfig=insecure).verify is False
    assert apiserver_endpoint(url, kubeconfig=insecure, validate_certs=True).verify is True
    assert apiserver_endpoint(url, kubeconfig=checked, validate_certs=False).verify is False
