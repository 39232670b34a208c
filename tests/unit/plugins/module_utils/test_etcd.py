"""_etcd: how a stored value is labelled, key ranges, and the reader against a real etcd (mutual TLS, JSON
gateway) started from the lab's Etcd on 127.0.0.1."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from ansible_collections.tke.kms.plugins.module_utils import _etcd
from ansible_collections.tke.kms.plugins.module_utils._https import HttpsError

from tests.lab.etcd import Etcd
from tests.lab.pki import LabPKI
from tests.lab.runtime import free_port

KMS_V2 = b"k8s:enc:kms:v2:tke-kms:\x0a\x0bciphertext"


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (b'{"kind":"Secret"}', "identity"),
        (b"k8s\x00\x0a\x0cprotobuf", "identity"),
        (b"k8s:enc:kms:v1:tke-kms:\x00\x10ciphertext", "kms:v1:tke-kms"),
        (KMS_V2, "kms:v2:tke-kms"),
        (b"k8s:enc:aescbc:v1:key1:\xff\xfe", "aescbc:v1:key1"),
        (b"k8s:enc:secretbox", "unknown"),
    ],
)
def test_storage_labels(value: bytes, label: str) -> None:
    assert _etcd.storage_label(value) == label


@pytest.mark.parametrize(
    ("label", "target", "done"),
    [
        ("kms:v2:tke-kms", "kms", True),
        ("kms:v1:tke-kms", "kms", True),
        ("kms:v2:old-plugin", "kms", False),  # an older KMS provider still needs a rewrite
        ("aescbc:v1:key1", "kms", False),
        ("identity", "kms", False),
        ("identity", "identity", True),
        ("kms:v2:tke-kms", "identity", False),
    ],
)
def test_stored_as_target(label: str, target: str, done: bool) -> None:
    assert _etcd.stored_as_target(label, target, "tke-kms") is done


@pytest.mark.parametrize(
    ("prefix", "end"),
    [(b"/registry/secrets/", b"/registry/secrets0"), (b"a\xff\xff", b"b"), (b"\xff", b"\0"), (b"", b"\0")],
)
def test_prefix_end_selects_every_key_starting_with_the_prefix(prefix: bytes, end: bytes) -> None:
    assert _etcd.prefix_end(prefix) == end


def test_loopback_endpoints_come_first() -> None:
    endpoints = _etcd.etcd_endpoints(
        ["https://10.0.0.2:2379", "https://127.0.0.1:2379", "https://localhost:2379"], None, None, None, 3
    )
    assert [e.url for e in endpoints] == [
        "https://127.0.0.1:2379",
        "https://localhost:2379",
        "https://10.0.0.2:2379",
    ]


def test_a_resource_that_cannot_be_counted_is_named_before_any_scan() -> None:
    with pytest.raises(ValueError, match="Secrets"):
        _etcd.check_resources(["secrets", "Secrets"])


def test_no_endpoint_is_refused_with_what_to_set() -> None:
    with pytest.raises(HttpsError, match="set etcd_endpoints"):
        _etcd.EtcdReader([])


# The reader against a real etcd.

STORED = {
    b"/registry/secrets/default/clear": b'{"kind":"Secret"}',
    b"/registry/secrets/default/kms": KMS_V2,
    b"/registry/secrets/kube-system/aes": b"k8s:enc:aescbc:v1:key1:\x01\x02",
    b"/registry/secrets/kube-system/kms": KMS_V2,
    b"/registry/secrets/z/old-kms": b"k8s:enc:kms:v1:old-plugin:\x01",
    b"/registry/secretsX/not-a-secret": b"{}",  # shares the prefix without its slash
    b"/registry/configmaps/default/cm": KMS_V2,
}


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Etcd]:
    if shutil.which("etcd") is None:
        pytest.skip("etcd is not installed (Debian package etcd-server; tests/lab/system-deps.sh)")
    directory = tmp_path_factory.mktemp("etcd")
    server = Etcd(directory, LabPKI(directory / "pki"))
    server.start()
    try:
        for key, value in STORED.items():
            server.etcdctl("put", key.decode(), value.decode("ascii"))
        yield server
    finally:
        server.stop(remove_data=True)


def reader_for(etcd: Etcd, *urls: str) -> _etcd.EtcdReader:
    client = etcd.client_config()
    return _etcd.EtcdReader(
        _etcd.etcd_endpoints(list(urls), str(client.ca), str(client.cert), str(client.key), 5)
    )


def test_a_scan_reads_every_key_under_the_prefix_in_pages(etcd: Etcd) -> None:
    found = dict(reader_for(etcd, etcd.url).scan(b"/registry/secrets/", page_size=2))
    assert found == {k: v for k, v in STORED.items() if k.startswith(b"/registry/secrets/")}


def test_get_reads_one_key_or_none(etcd: Etcd) -> None:
    reader = reader_for(etcd, etcd.url)
    assert reader.get(b"/registry/secrets/default/kms") == KMS_V2
    assert reader.get(b"/registry/secrets/default/none") is None


def test_the_census_counts_each_storage_and_names_what_is_not_yet_stored_as_wanted(etcd: Etcd) -> None:
    total, each = _etcd.census_of_resources(
        reader_for(etcd, etcd.url), "/registry", "tke-kms", ["secrets", "configmaps"], page_size=2
    )
    assert each["secrets"].counts() == dict(
        total=5,
        by_storage={"identity": 1, "kms:v2:tke-kms": 2, "aescbc:v1:key1": 1, "kms:v1:old-plugin": 1},
        encrypted_count=2,
        pending_count=3,
    )
    assert each["secrets"].pending == ["default/clear", "kube-system/aes", "z/old-kms"]
    assert each["configmaps"].pending == []  # names of Secrets only
    assert (total.total, total.encrypted, total.pending_count) == (6, 3, 3)


def test_a_dead_endpoint_is_skipped_for_one_that_answers(etcd: Etcd) -> None:
    reader = reader_for(etcd, f"https://127.0.0.1:{free_port()}", etcd.url)  # nothing listens on the first
    assert reader.get(b"/registry/secrets/default/kms") == KMS_V2
    assert [e.url for e in reader.endpoints] == [etcd.url]  # it sticks to the one that answered
