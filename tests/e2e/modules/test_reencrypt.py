"""tke.kms.reencrypt against a real kube-apiserver 1.20.2 + etcd (the kube-1.20 lab) with a KMS v1 plugin (the
no-op one), and for custom resources against the apiext lab (apiextensions-apiserver 0.36, KMS v2): the lab's
1.20.2 build crashes on custom resources (vendored reflect2 1.0.1 under Go 1.19, "unexpected fault address").

Objects are created while the apiserver writes in the clear ([identity, kms]), the apiserver is restarted in
the write phase ([kms, identity]), the module runs in-process, and what it did is read raw from etcd: every
object must then start with the KMS prefix and still read back its value through the API.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from urllib.parse import parse_qs, urlsplit

import pytest
from ansible_collections.tke.kms.plugins.module_utils._https import Answer, Endpoint
from ansible_collections.tke.kms.plugins.modules import reencrypt

from tests.lab import encryption
from tests.lab.apiserver import APIServerBase, write_manifest
from tests.lab.etcd import Etcd
from tests.lab.runtime import wait_for
from tests.unit.collection import COLLECTIONS, run_module

pytestmark = pytest.mark.e2e
PROVIDER = "tke-kms-plugin"


class Lab:
    """An apiserver still writing in the clear, the module's access options, helpers to seed and inspect."""

    def __init__(
        self,
        apiserver: APIServerBase,
        etcd: Etcd,
        kms: encryption.Provider,
        resources: tuple[str, ...],
        tmp_path: Path,
    ) -> None:
        self.apiserver, self.etcd, self.kms, self.resources = apiserver, etcd, kms, resources
        version = "v2" if kms["kms"].get("apiVersion") == "v2" else "v1"
        self.prefix = f"k8s:enc:kms:{version}:{PROVIDER}:".encode()
        self.manifest = write_manifest(tmp_path / "kube-apiserver.yaml", apiserver.argv())
        self.access = {"manifest_path": str(self.manifest), "kubeconfig": str(apiserver.admin_conf)}

    def call(self, method: str, path: str, body: dict | None = None, expect: int = 200) -> dict:
        content_type = "application/merge-patch+json" if method == "PATCH" else "application/json"
        response = self.apiserver.request(
            method, path, data=json.dumps(body) if body else None, headers={"Content-Type": content_type}
        )
        assert response.status_code == expect, response.text
        return response.json()

    def namespace(self, name: str) -> str:
        self.call("POST", "/api/v1/namespaces", {"metadata": {"name": name}}, expect=201)
        return name

    def secrets(self, namespace: str, count: int) -> dict[str, str]:
        """`count` Secrets of distinct values: {name: value}."""
        values = {f"s{i}": f"{namespace}-value-{i}" for i in range(count)}
        for name, value in values.items():
            body = {"metadata": {"name": name}, "stringData": {"v": value}}
            self.call("POST", f"/api/v1/namespaces/{namespace}/secrets", body, expect=201)
        return values

    def write_phase(self) -> None:
        self.apiserver.restart(encryption.config([self.kms, encryption.identity()], self.resources))

    def values(self, namespace: str) -> dict[str, str]:
        """{name: value of key v} of the Secrets in the namespace, read through the API."""
        listed = self.call("GET", f"/api/v1/namespaces/{namespace}/secrets")["items"]
        return {s["metadata"]["name"]: base64.b64decode(s["data"].get("v", "")).decode() for s in listed}

    def raw(self, prefix: str) -> dict[bytes, bytes]:
        return self.etcd.get_prefix(prefix)

    def with_kms(self, prefix: str) -> int:
        return sum(value.startswith(self.prefix) for value in self.raw(prefix).values())


@pytest.fixture
def lab(control_plane_factory, noop_plugin_factory, tmp_path) -> Lab:
    """The kube-1.20 lab, Secrets and ConfigMaps under KMS v1: seed objects, then call lab.write_phase()."""
    kms = encryption.kms_v1(PROVIDER, noop_plugin_factory("reencrypt").socket)
    resources = ("secrets", "configmaps")
    plane = control_plane_factory(encryption.config([encryption.identity(), kms], resources))
    return Lab(plane.apiserver, plane.etcd, kms, resources, tmp_path)


def test_every_secret_is_rewritten_concurrently_and_a_concurrent_update_survives(lab, tmp_path) -> None:
    values = lab.secrets(lab.namespace("many"), 300)
    lab.write_phase()
    stored_before = lab.raw("/registry/secrets/many/")
    assert len(stored_before) == 300 and lab.with_kms("/registry/secrets/many/") == 0

    check = run_module(reencrypt.main, dict(lab.access, page_size=40), check=True)
    assert (check["changed"], check["rewritten"], check["total"]) == (True, 300, 300)
    assert lab.raw("/registry/secrets/many/") == stored_before  # check mode wrote nothing

    # Another client keeps changing 20 of the Secrets while the module runs; its last values must survive.
    latest: dict[str, str] = {}
    stop, rounds = threading.Event(), [0]

    def update_continuously() -> None:
        while not stop.is_set():
            for index in range(20):
                value = f"updated-{rounds[0]}-{index}"
                lab.call("PATCH", f"/api/v1/namespaces/many/secrets/s{index}", {"stringData": {"v": value}})
                latest[f"s{index}"] = value
            rounds[0] += 1

    updater = threading.Thread(target=update_continuously)
    updater.start()
    try:
        wait_for(lambda: rounds[0] >= 1, timeout=30, what="the first round of concurrent updates")
        progress = tmp_path / "progress.json"
        done = run_module(
            reencrypt.main, dict(lab.access, workers=8, page_size=40, progress_file=str(progress))
        )
    finally:
        stop.set()
        updater.join()
    assert not done.get("failed"), done
    assert (
        done["changed"] is True and done["total"] == 300 and done["missing"] == [] and done["failures"] == []
    )
    # Secrets the updater rewrote first are already with KMS, so those may count as unchanged.
    assert done["rewritten"] + done["unchanged"] == 300 and done["rewritten"] >= 280
    assert done["per_resource"] == {
        "secrets": {
            "rewritten": done["rewritten"],
            "unchanged": done["unchanged"],
            "missing": 0,
            "failures": 0,
            "total": 300,
        }
    }
    assert lab.with_kms("/registry/secrets/many/") == 300
    assert lab.values("many") == {**values, **latest}  # intact, and no concurrent update lost
    final = json.loads(progress.read_text())
    assert final["state"] == "done" and final["rewritten"] == done["rewritten"] and final["listed"] == 300

    again = run_module(reencrypt.main, dict(lab.access, workers=4))
    assert (again["changed"], again["rewritten"], again["unchanged"]) == (False, 0, 300)


def test_a_refused_object_and_a_deleted_one_do_not_stop_the_others(lab) -> None:
    values = lab.secrets(lab.namespace("mixed"), 30)
    lab.write_phase()
    # A Secret stored before its data key became invalid (written raw into etcd, as an old cluster might
    # have it): the apiserver reads it, but refuses to store it again (HTTP 422).
    old = {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {"name": "old", "namespace": "mixed", "uid": "0b1d0000-0000-4000-8000-000000000001"},
        "data": {"bad key!": base64.b64encode(b"x").decode()},
        "type": "Opaque",
    }
    lab.etcd.etcdctl("put", "/registry/secrets/mixed/old", json.dumps(old))
    wait_for(lambda: lab.apiserver.get("/api/v1/namespaces/mixed/secrets/old").ok, timeout=10, what="old")

    names = [f"mixed/{name}" for name in values] + ["mixed/old", "mixed/gone"]
    done = run_module(reencrypt.main, dict(lab.access, secrets=names, workers=4))
    assert done["failed"] is True and done["changed"] is True
    assert (done["rewritten"], done["unchanged"], done["total"]) == (30, 0, 32)
    assert done["missing"] == ["mixed/gone"]
    assert [f["name"] for f in done["failures"]] == ["mixed/old"]
    assert "HTTP 422" in done["failures"][0]["error"] and "bad key!" in done["failures"][0]["error"]
    assert done["msg"].startswith("1 of 32 objects could not be rewritten (the others were): mixed/old (")
    assert lab.with_kms("/registry/secrets/mixed/") == 30 and lab.values("mixed") == {**values, "old": ""}

    listed = run_module(reencrypt.main, lab.access)  # the same through the paged list
    assert listed["failed"] is True and [f["name"] for f in listed["failures"]] == ["mixed/old"]
    assert (listed["rewritten"], listed["unchanged"]) == (0, 30)


def test_configmaps(lab) -> None:
    namespace = lab.namespace("things")
    for index in range(10):
        body = {"metadata": {"name": f"c{index}"}, "data": {"v": f"config-{index}"}}
        lab.call("POST", f"/api/v1/namespaces/{namespace}/configmaps", body, expect=201)
    lab.secrets(namespace, 2)
    lab.write_phase()

    everywhere = len(lab.call("GET", "/api/v1/configmaps")["items"])  # kube-system has one of its own
    assert everywhere > 10 and lab.with_kms("/registry/configmaps/") < everywhere

    done = run_module(reencrypt.main, dict(lab.access, resources=["configmaps"]))
    assert not done.get("failed"), done
    assert done["changed"] is True and done["rewritten"] >= 10 and done["total"] == everywhere
    assert lab.with_kms("/registry/configmaps/") == len(lab.raw("/registry/configmaps/")) == everywhere
    configmap = lab.call("GET", f"/api/v1/namespaces/{namespace}/configmaps/c7")
    assert configmap["data"] == {"v": "config-7"}
    assert lab.with_kms("/registry/secrets/") == 0  # only what was asked for


@pytest.fixture
def apiext_lab(apiext_factory, noop_plugin_factory, tmp_path) -> Lab:
    """The apiext lab, custom resources under KMS v2; its built-in CRD is the cluster-scoped widgets."""
    kms = encryption.kms_v2(PROVIDER, noop_plugin_factory("reencrypt-v2").socket)
    resources = ("widgets.example.com", "gadgets.example.com")
    server = apiext_factory(encryption.config([encryption.identity(), kms], resources))
    return Lab(server.apiserver, server.etcd, kms, resources, tmp_path)


def test_custom_resources_cluster_scoped_and_namespaced(apiext_lab) -> None:
    lab = apiext_lab
    lab.call("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", gadgets_crd(), expect=201)
    wait_for(lambda: lab.apiserver.get("/apis/example.com/v1/gadgets").ok, timeout=30, what="gadgets served")
    for index in range(6):
        widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": f"w{index}"}}
        lab.call("POST", "/apis/example.com/v1/widgets", widget, expect=201)
        gadget = {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": f"g{index}"}}
        lab.call("POST", f"/apis/example.com/v1/namespaces/ns{index % 2}/gadgets", gadget, expect=201)
    lab.write_phase()
    widgets, gadgets = (
        "/registry/apiextensions.kubernetes.io/example.com/widgets/",
        "/registry/apiextensions.kubernetes.io/example.com/gadgets/",
    )
    assert len(lab.raw(widgets)) == len(lab.raw(gadgets)) == 6 and lab.with_kms(widgets) == 0

    done = run_module(
        reencrypt.main, dict(lab.access, resources=["widgets.example.com", "gadgets.example.com"])
    )
    assert not done.get("failed"), done
    assert done["per_resource"] == {
        name: {"rewritten": 6, "unchanged": 0, "missing": 0, "failures": 0, "total": 6}
        for name in ("widgets.example.com", "gadgets.example.com")
    }
    assert lab.with_kms(widgets) == lab.with_kms(gadgets) == 6
    assert lab.call("GET", "/apis/example.com/v1/namespaces/ns1/gadgets/g3")["metadata"]["name"] == "g3"

    again = run_module(
        reencrypt.main, dict(lab.access, resources=["gadgets.example.com", "widgets.example.com"])
    )
    assert (again["changed"], again["unchanged"], again["total"]) == (False, 12, 12)


def gadgets_crd() -> dict:
    schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [
                {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}
            ],
        },
    }


def test_options_the_apiserver_cannot_serve_are_clear_errors(lab) -> None:
    def failure(**args: object) -> str:
        result = run_module(reencrypt.main, dict(lab.access, **args))
        assert result["failed"] is True and not result.get("changed")
        return result["msg"]

    assert "has no resource nothings in v1" in failure(resources=["nothings"])
    assert "serves no API group nope.example.com" in failure(resources=["widgets.nope.example.com"])
    assert "does not allow patch" in failure(resources=["componentstatuses"])
    assert "only be given with resources=[secrets]" in failure(resources=["configmaps"], secrets=["a/b"])
    assert "namespace/name" in failure(secrets=["just-a-name"])
    assert "workers must be at least 1" in failure(workers=0)


def admin_endpoint(lab: Lab) -> Endpoint:
    apiserver = lab.apiserver
    return Endpoint(
        apiserver.url,
        ca_file=str(apiserver.pki.ca.cert),
        cert_file=str(apiserver.admin.cert),
        key_file=str(apiserver.admin.key),
    )


class Requests:
    """Every request the module makes through the real Endpoint, with the status of its answer. Before the
    first continued list of each resource, etcd is compacted, so the apiserver answers that one 410 (its
    continue token is too old); with `strip_token`, its 410 is handed on without the token it carries, as
    from a server that sends none."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, etcd: Etcd, *, strip_token: bool = False) -> None:
        self.etcd, self.strip_token = etcd, strip_token
        self.sent: list[tuple[str, str, int]] = []
        self.compacted: set[str] = set()
        self.lock = threading.Lock()
        send = Endpoint.request

        def spy(endpoint: Endpoint, method: str, path: str, *args, **kwargs) -> Answer:
            listed = urlsplit(path)
            if method == "GET" and "continue" in parse_qs(listed.query) and listed.path not in self.compacted:
                self.compacted.add(listed.path)
                self.compact()
            answer = send(endpoint, method, path, *args, **kwargs)
            if answer.status == 410 and self.strip_token:
                status = json.loads(answer.body)
                status["metadata"].pop("continue")
                answer = answer._replace(body=json.dumps(status).encode())
            with self.lock:
                self.sent.append((method, path, answer.status))
            return answer

        monkeypatch.setattr(Endpoint, "request", spy)

    def compact(self) -> None:
        """Compact etcd up to a revision newer than any continue token handed out so far."""
        put = json.loads(self.etcd.etcdctl("put", "/compaction-marker", "x", "-w", "json").stdout)
        self.etcd.etcdctl("compact", str(put["header"]["revision"]))

    def patched(self) -> Counter[str]:
        """How often each object was patched: {api path: count}."""
        return Counter(path for method, path, _status in self.sent if method == "PATCH")

    def expired(self) -> list[str]:
        return [urlsplit(path).path for method, path, status in self.sent if status == 410]


@pytest.mark.parametrize("strip_token", [False, True], ids=["token-in-the-410", "no-token-in-the-410"])
def test_continue_tokens_expired_mid_listing_every_object_is_rewritten_exactly_once(
    lab, monkeypatch, strip_token
) -> None:
    """etcd compacted while Secrets, then ConfigMaps, are listed page by page. Namespaces `app-x` and `app`:
    etcd keeps `app-x/...` before `app/...` ('-' sorts before '/'), while ("app", ...) < ("app-x", ...)."""
    values = {}
    for namespace in (lab.namespace("app-x"), lab.namespace("app")):
        values[namespace] = lab.secrets(namespace, 12)
        for index in range(12):
            body = {"metadata": {"name": f"c{index}"}, "data": {"v": f"{namespace}-config-{index}"}}
            lab.call("POST", f"/api/v1/namespaces/{namespace}/configmaps", body, expect=201)
    lab.write_phase()
    stored = [*lab.raw("/registry/secrets/"), *lab.raw("/registry/configmaps/")]
    expected = Counter(api_path(key.decode()) for key in stored)
    assert len(expected) >= 48 and lab.with_kms("/registry/") == 0

    requests = Requests(monkeypatch, lab.etcd, strip_token=strip_token)
    done = run_module(reencrypt.main, dict(lab.access, resources=["secrets", "configmaps"], page_size=5))
    assert not done.get("failed"), done
    assert requests.expired() == ["/api/v1/secrets", "/api/v1/configmaps"]  # the compactions did expire
    assert requests.patched() == expected  # none skipped, none twice
    assert (done["rewritten"], done["unchanged"], done["total"]) == (len(expected), 0, len(expected))
    assert lab.with_kms("/registry/secrets/") + lab.with_kms("/registry/configmaps/") == len(expected)
    assert lab.values("app") == values["app"] and lab.values("app-x") == values["app-x"]


def api_path(etcd_key: str) -> str:
    """/registry/secrets/ns/name -> /api/v1/namespaces/ns/secrets/name"""
    _empty, _registry, resource, namespace, name = etcd_key.split("/")
    return f"/api/v1/namespaces/{namespace}/{resource}/{name}"


def test_a_kept_alive_connection_outlives_an_apiserver_restart(lab) -> None:
    with admin_endpoint(lab) as endpoint:
        for _ in range(3):
            assert endpoint.request("GET", "/readyz")[0] == 200
        assert len(endpoint._connections) == 1  # one connection for the three calls
        lab.write_phase()  # the apiserver process is replaced; the kept-alive connection is dead
        assert endpoint.request("GET", "/readyz")[0] == 200
        assert len(endpoint._connections) == 1


def test_an_apiserver_restart_mid_run_is_waited_out(lab, monkeypatch) -> None:
    """The apiserver goes away after 50 rewrites and comes back: requests that got no answer, list pages
    and rewrites alike, are tried again and the run ends with every object rewritten."""
    values = lab.secrets(lab.namespace("restart"), 200)
    lab.write_phase()
    expected = {api_path(key.decode()) for key in lab.raw("/registry/secrets/")}
    send, patches, restarted, lock = Endpoint.request, [0], threading.Event(), threading.Lock()

    def restart_after_50_patches(endpoint: Endpoint, method: str, *args, **kwargs) -> Answer:
        if method == "PATCH":
            with lock:
                patches[0] += 1
                restart = patches[0] == 50
            if restart:
                lab.write_phase()  # the same configuration: the process is replaced, the others see no answer
                restarted.set()
        return send(endpoint, method, *args, **kwargs)

    monkeypatch.setattr(Endpoint, "request", restart_after_50_patches)
    done = run_module(reencrypt.main, dict(lab.access, workers=8, page_size=20, retries=8))
    assert restarted.is_set()
    assert not done.get("failed"), done
    assert done["total"] == len(expected) and done["rewritten"] + done["unchanged"] == len(expected)
    assert lab.with_kms("/registry/secrets/") == len(expected) and lab.values("restart") == values


MAX_RSS_MB = 150  # the module's peak resident memory, however many objects
FLAT_MB = 16  # how much more than for a handful of objects


def test_memory_stays_flat_and_every_object_is_rewritten_once_at_3000_objects(lab, tmp_path: Path) -> None:
    """3,000 objects in pages of 50, the module in a process of its own as Ansible runs it: its peak RSS is
    within MAX_RSS_MB, and within FLAT_MB of its peak for a handful of objects (Secrets of 32 KiB, so that
    holding what was listed would show), and each object is rewritten once. Meanwhile its progress file, read
    as the role's poll reads it, shows the run moving: several snapshots, counts that only go up, then
    done."""
    namespaces = [lab.namespace(f"scale{n}") for n in range(3)]
    with admin_endpoint(lab) as endpoint, ThreadPoolExecutor(8) as pool:
        created = pool.map(
            lambda job: endpoint.json("POST", *job),
            [
                (f"/api/v1/namespaces/{namespace}/{plural}", body(kind, index))
                for namespace in namespaces
                for plural, kind in (("secrets", "Secret"), ("configmaps", "ConfigMap"))
                for index in range(500)
            ],
        )
        assert len(list(created)) == 3000
    lab.write_phase()
    stored = len(lab.raw("/registry/secrets/")) + len(lab.raw("/registry/configmaps/"))
    assert stored >= 3000 and lab.with_kms("/registry/") == 0

    workers = dict(workers=16, page_size=50)
    few, floor_mb = module_process(
        reencrypt, dict(lab.access, resources=["namespaces"], **workers), check=True
    )
    assert few["total"] < 10
    progress_file = tmp_path / "progress.json"
    with ProgressSampler(progress_file) as seen:
        done, peak_mb = module_process(
            reencrypt,
            dict(
                lab.access, resources=["secrets", "configmaps"], **workers, progress_file=str(progress_file)
            ),
        )
    assert not done.get("failed"), done
    running = [handled for state, handled in seen if state == "running"]
    assert len(set(running)) >= 2, seen  # written every 2 s of a run that takes longer than that
    assert running == sorted(running), seen
    assert json.loads(progress_file.read_text())["state"] == "done"
    assert (done["rewritten"], done["unchanged"], done["total"]) == (stored, 0, stored)  # once each
    assert lab.with_kms("/registry/secrets/") + lab.with_kms("/registry/configmaps/") == stored
    assert peak_mb <= MAX_RSS_MB, f"the module's peak RSS was {peak_mb:.0f} MB"
    # Flat: holding the listed Secrets (64 MB of base64) would show as growth.
    assert peak_mb - floor_mb <= FLAT_MB, f"{floor_mb:.0f} MB for a few namespaces, {peak_mb:.0f} MB here"


class ProgressSampler:
    """Reads a progress file every 0.1 s while the block runs: the (state, objects handled) it showed, in
    order. The file is replaced atomically, so every read is a whole document."""

    def __init__(self, path: Path) -> None:
        self.path, self.seen = path, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)

    def sample(self) -> None:
        while not self.stop.wait(0.1):
            try:
                document = json.loads(self.path.read_text())
            except FileNotFoundError:
                continue
            handled = sum(document[outcome] for outcome in ("rewritten", "unchanged", "missing", "failures"))
            if not self.seen or self.seen[-1] != (document["state"], handled):
                self.seen.append((document["state"], handled))

    def __enter__(self) -> list:
        self.thread.start()
        return self.seen

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join()


def body(kind: str, index: int) -> dict:
    data = {"v": base64.b64encode(b"%05d" % index * 6554).decode()} if kind == "Secret" else {"v": str(index)}
    return {"metadata": {"name": f"{kind.lower()}{index}"}, "data": data}


# Runs a module's main in this process and, at exit, writes its peak RSS (VmHWM, in kB) to stderr. VmHWM
# counts from exec; ru_maxrss from wait4 would also count the parent's memory copied at fork (pytest's).
PEAK_RSS_RUNNER = """
import atexit, runpy, sys

def report_peak():
    with open("/proc/self/status") as status:
        sys.stderr.write("".join(line for line in status if line.startswith("VmHWM:")))

atexit.register(report_peak)
runpy.run_module(%r, run_name="__main__", alter_sys=True)
"""


def module_process(module: ModuleType, args: dict, *, check: bool = False) -> tuple[dict, float]:
    """Run a module in a process of its own, as Ansible does: (its result, its peak RSS in MB)."""
    command = [
        sys.executable,
        "-c",
        PEAK_RSS_RUNNER % module.__name__,
        json.dumps({"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=check)}),
    ]
    env = dict(os.environ, PYTHONPATH=str(COLLECTIONS))
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=300)
    peak_kb = re.search(r"^VmHWM:\s+(\d+) kB$", done.stderr, re.MULTILINE)
    assert peak_kb, done.stderr
    return json.loads(done.stdout), int(peak_kb.group(1)) / 1024
