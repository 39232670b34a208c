"""Which apiserver the on-master modules call, with which credentials, under which option names.

Two real HTTPS servers on 127.0.0.1 (certificates from the lab CA) play two kube-apiservers: "this master's
own" (the manifest's address) and "another" one (the server of a kubeconfig, a load balancer). Each
answers /readyz and /metrics and records which client certificate or token called it. apiserver_health runs
in-process.
"""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.common import warnings
from ansible_collections.tke.kms.plugins.module_utils import _master_api
from ansible_collections.tke.kms.plugins.module_utils._etcd import etcd_argument_spec
from ansible_collections.tke.kms.plugins.module_utils._k8s import k8s_auth_argument_spec
from ansible_collections.tke.kms.plugins.module_utils._master_api import (
    manifest_argument_spec,
    master_api_argument_spec,
)
from ansible_collections.tke.kms.plugins.module_utils._module import merge_argument_specs
from ansible_collections.tke.kms.plugins.modules import apiserver_health, secret_storage_info

from tests.lab.apiserver import write_manifest
from tests.lab.pki import LabPKI
from tests.unit.collection import run_module


@dataclass
class FakeApiserver:
    """/readyz answers 500 for the first `not_ready` calls, then 200."""

    name: str
    server: http.server.ThreadingHTTPServer
    callers: list[str] = field(default_factory=list)  # client certificate CN, or "Bearer <token>"
    not_ready: int = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}"


def _handler(fake: FakeApiserver) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            peer = self.connection.getpeercert() or {}
            subject = dict(item[0] for item in peer.get("subject", ()))
            fake.callers.append(self.headers.get("Authorization") or subject.get("commonName", "anonymous"))
            if self.path.startswith("/readyz"):
                ready = fake.not_ready <= 0
                fake.not_ready -= 1
                body = b"[+]etcd ok\n" + (b"readyz check passed\n" if ready else b"[-]informer-sync failed\n")
                self._answer(200 if ready else 500, body)
            elif self.path == "/metrics":
                self._answer(200, b"process_start_time_seconds 1000\n")
            else:
                self._answer(404, b"{}")

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> LabPKI:
    return LabPKI(tmp_path_factory.mktemp("pki"))


def _serve(pki: LabPKI, name: str) -> Iterator[FakeApiserver]:
    pair = pki.server_cert(name, name)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pair.cert, pair.key)
    context.load_verify_locations(pki.ca.cert)
    context.verify_mode = ssl.CERT_OPTIONAL
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    fake = FakeApiserver(name, server)
    server.RequestHandlerClass = _handler(fake)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def own(pki: LabPKI) -> Iterator[FakeApiserver]:
    yield from _serve(pki, "own-apiserver")


@pytest.fixture
def other(pki: LabPKI) -> Iterator[FakeApiserver]:
    yield from _serve(pki, "other-apiserver")


@pytest.fixture(autouse=True)
def no_admin_conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """kubeadm's admin.conf path, empty unless a test writes it; no K8S_AUTH_* from the caller's shell; no
    deprecation left over from an earlier in-process module run (ansible-core keeps them process-wide)."""
    monkeypatch.setattr(warnings, "_global_deprecations", {})
    for variable in ("HOST", "KUBECONFIG", "CONTEXT", "API_KEY", "VERIFY_SSL", "SSL_CA_CERT", "CERT_FILE"):
        monkeypatch.delenv("K8S_AUTH_" + variable, raising=False)
    path = tmp_path / "admin.conf"
    monkeypatch.setattr(_master_api, "ADMIN_CONF", str(path))
    return path


@pytest.fixture
def manifest(tmp_path: Path, pki: LabPKI, own: FakeApiserver) -> Path:
    """This master's kube-apiserver manifest: its address is `own`, with a kubelet client certificate."""
    kubelet = pki.client_cert("kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",))
    port = own.server.server_address[1]
    command = [
        "kube-apiserver",
        "--advertise-address=127.0.0.1",
        f"--secure-port={port}",
        f"--client-ca-file={pki.ca.cert}",
        f"--kubelet-client-certificate={kubelet.cert}",
        f"--kubelet-client-key={kubelet.key}",
        "--etcd-servers=https://127.0.0.1:1",
    ]
    return write_manifest(tmp_path / "kube-apiserver.yaml", command, version="1.30.0")


def kubeconfig(pki: LabPKI, path: Path, server: str, user: str) -> Path:
    return pki.kubeconfig(path, server, user, pki.client_cert(user, user, ("system:masters",)))


def health(manifest: Path, **args: object) -> dict:
    return run_module(apiserver_health.main, dict(manifest_path=str(manifest), **args))


def deprecated_names(result: dict) -> list[str]:
    """The aliases the module warned about, each for removal in tke.kms 1.0.0 (ansible-core 2.19's form)."""
    names = []
    for deprecation in result.get("deprecations", []):
        assert deprecation["version"] == "1.0.0" and deprecation["deprecator"]["resolved_name"] == "tke.kms"
        message = deprecation["event"]["msg"]
        assert message.startswith("Alias '"), message
        names.append(message.split("'")[1])
    return names


# Which server -----------------------------------------------------------------------------------------------


def test_without_a_kubeconfig_this_masters_own_apiserver_is_called_with_the_kubelet_certificate(
    manifest: Path, own: FakeApiserver
) -> None:
    result = health(manifest)
    assert result["healthy"] is True and "failed" not in result, result
    assert result["message"].startswith(own.url + ": ready")
    assert set(own.callers) == {"kube-apiserver-kubelet-client"}


def test_admin_conf_gives_the_credentials_but_not_its_server(
    manifest: Path, own: FakeApiserver, other: FakeApiserver, pki: LabPKI, no_admin_conf: Path
) -> None:
    kubeconfig(pki, no_admin_conf, other.url, "kubernetes-admin")  # a load balancer, say
    result = health(manifest)
    assert result["healthy"] is True, result
    assert set(own.callers) == {"kubernetes-admin"} and other.callers == []


@pytest.mark.parametrize("given_as", ["option", "K8S_AUTH_KUBECONFIG"])
def test_the_server_of_a_kubeconfig_the_user_gave_is_honoured(  # noqa: PLR0917 - pytest fixtures
    given_as: str,
    manifest: Path,
    own: FakeApiserver,
    other: FakeApiserver,
    pki: LabPKI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = kubeconfig(pki, tmp_path / "user.conf", other.url, "someone")
    if given_as == "option":
        result = health(manifest, kubeconfig=str(path))
    else:
        monkeypatch.setenv("K8S_AUTH_KUBECONFIG", str(path))
        result = health(manifest)
    assert result["healthy"] is True and result["message"].startswith(other.url), result
    assert set(other.callers) == {"someone"} and own.callers == []


def test_host_beats_the_kubeconfigs_server(
    manifest: Path, own: FakeApiserver, other: FakeApiserver, pki: LabPKI, tmp_path: Path
) -> None:
    path = kubeconfig(pki, tmp_path / "user.conf", other.url, "someone")
    result = health(manifest, host=own.url, kubeconfig=str(path))
    assert result["healthy"] is True, result
    assert set(own.callers) == {"someone"} and other.callers == []


def test_k8s_auth_host_is_the_fallback_of_host(
    manifest: Path, own: FakeApiserver, other: FakeApiserver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("K8S_AUTH_HOST", other.url)
    result = health(manifest)
    assert result["healthy"] is True and other.callers and own.callers == [], result


# Credentials, CA and context --------------------------------------------------------------------------------


def test_api_key_is_sent_as_a_bearer_token(manifest: Path, own: FakeApiserver) -> None:
    result = health(manifest, api_key="tok-123")
    assert result["healthy"] is True, result
    assert set(own.callers) == {"Bearer tok-123"}
    assert "tok-123" not in str({k: v for k, v in result.items() if k != "invocation"})


def test_a_kubeconfig_context_picks_its_user_and_an_unknown_one_is_named(
    manifest: Path, own: FakeApiserver, pki: LabPKI, tmp_path: Path
) -> None:
    path = kubeconfig(pki, tmp_path / "user.conf", own.url, "first")
    second = yaml.safe_load(kubeconfig(pki, tmp_path / "second.conf", own.url, "second").read_text())
    config = yaml.safe_load(path.read_text())
    config["users"] += second["users"]
    config["contexts"].append({"name": "other", "context": {"cluster": "kubernetes", "user": "second"}})
    path.write_text(yaml.safe_dump(config))

    assert health(manifest, kubeconfig=str(path), context="other")["healthy"] is True
    assert set(own.callers) == {"second"}
    missing = health(manifest, kubeconfig=str(path), context="nowhere")
    assert missing["failed"] is True and "has no context 'nowhere'" in missing["msg"]
    assert missing["error"]["kind"] == "HttpsError"


def test_validate_certs_false_accepts_a_server_of_an_unknown_ca(
    manifest: Path, other: FakeApiserver, tmp_path: Path
) -> None:
    stranger = LabPKI(tmp_path / "stranger").ca.cert  # a CA that did not sign the server's certificate
    refused = health(manifest, host=other.url, ca_cert=str(stranger))
    assert refused["failed"] is True and "CERTIFICATE_VERIFY_FAILED" in refused["msg"]
    accepted = health(manifest, host=other.url, ca_cert=str(stranger), validate_certs=False)
    assert accepted["healthy"] is True, accepted


# Old names --------------------------------------------------------------------------------------------------


def test_the_old_names_still_work_and_warn(manifest: Path, own: FakeApiserver, pki: LabPKI) -> None:
    result = health(manifest, url=own.url, ca_file=str(pki.ca.cert))
    assert result["healthy"] is True, result
    assert sorted(deprecated_names(result)) == ["ca_file", "url"]


def test_the_old_etcd_names_still_work_and_warn(manifest: Path) -> None:
    result = run_module(
        secret_storage_info.main,
        dict(manifest_path=str(manifest), etcd_ca_file="/nope-ca.crt", etcd_cert_file="/nope.crt", timeout=3),
    )
    assert result["failed"] is True and "/nope-ca.crt does not exist" in result["msg"]
    assert sorted(deprecated_names(result)) == ["etcd_ca_file", "etcd_cert_file", "timeout"]


# Waits ------------------------------------------------------------------------------------------------------


def test_an_unhealthy_apiserver_fails_the_module_with_the_reason(manifest: Path, own: FakeApiserver) -> None:
    own.not_ready = 100
    result = health(manifest)
    assert result["failed"] is True and result["healthy"] is False
    assert result["msg"] == result["message"]
    assert "not ready (HTTP 500, failing: informer-sync)" in result["msg"]
    assert len(own.callers) == 1  # one probe without wait


def test_wait_polls_until_healthy(manifest: Path, own: FakeApiserver) -> None:
    own.not_ready = 2
    result = health(manifest, wait=True, wait_sleep=0.05, wait_timeout=30)
    assert result["healthy"] is True and "failed" not in result, result
    assert own.callers.count("kube-apiserver-kubelet-client") >= 3 and result["waited"] < 30


def test_wait_fails_at_the_deadline(manifest: Path, own: FakeApiserver) -> None:
    own.not_ready = 1000
    result = health(manifest, wait=True, wait_sleep=0.1, wait_timeout=0.5)
    assert result["failed"] is True and result["healthy"] is False
    assert result["message"].endswith("not healthy within 0.5s") and result["waited"] >= 0.5


# Option sets ------------------------------------------------------------------------------------------------


def test_each_shared_option_has_one_definition() -> None:
    on_master, client = master_api_argument_spec(), k8s_auth_argument_spec()
    for name in ("context", "api_key", "validate_certs", "client_cert", "client_key"):
        assert on_master[name] == client[name], name
    assert on_master["api_timeout"] == dict(type="int", default=10)
    assert client["api_timeout"] == dict(type="int", default=30)
    assert on_master["ca_cert"]["aliases"] == ["ssl_ca_cert", "ca_file"]
    assert client["ca_cert"]["aliases"] == ["ssl_ca_cert"]


def test_merging_refuses_an_option_or_alias_defined_twice() -> None:
    merged = merge_argument_specs(master_api_argument_spec(), etcd_argument_spec())
    assert {"manifest_path", "host", "etcd_ca_cert", "etcd_timeout"} <= set(merged)
    with pytest.raises(ValueError, match="'manifest_path' is defined twice"):
        merge_argument_specs(master_api_argument_spec(), manifest_argument_spec())
    with pytest.raises(ValueError, match="'timeout' is defined twice"):
        merge_argument_specs(etcd_argument_spec(), dict(wait_timeout=dict(type="float", aliases=["timeout"])))
