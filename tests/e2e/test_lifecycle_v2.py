"""Key rotation and turning encryption off with KMS v2, on a real apiserver (the apiext lab; issue 8).

The lab's kube-apiserver 1.20 knows only KMS v1, so playbooks/rotate.yml and playbooks/disable.yml are proven
there with v1. Here the same module sequence those playbooks run on a master - tke.kms.encryption_config on
the file the apiserver reads, a restart where the playbook rolls the master, tke.kms.reencrypt through the
apiserver - runs against apiextensions-apiserver on k8s.io/apiserver 0.36 with two KMS v2 providers, our
plugin behind each and the emulator as Tencent KMS, and every step is checked in the raw etcd values.
"""

from __future__ import annotations

import importlib
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import PluginRunner
from tests.lab.apiext import ETCD_PREFIX, RESOURCE, ApiextLab
from tests.lab.apiserver import write_manifest
from tests.lab.envelope import parse_v2
from tests.unit.collection import run_module  # also puts the collection on sys.path

pytestmark = pytest.mark.e2e
WIDGETS = 50
WORKERS = 8
ENCRYPTED = b"k8s:enc:"


def module_main(name: str) -> Callable[[], None]:
    """main() of a tke.kms module (imported after the conftest above made the collection importable)."""
    return importlib.import_module(f"ansible_collections.tke.kms.plugins.modules.{name}").main


def kubernetes_version(binary: Path) -> str:
    """apiextensions-apiserver on k8s.io/apiserver 0.X.Y (cache dir apiext-0.X.Y) is Kubernetes 1.X.Y."""
    minor_patch = binary.parent.name.removeprefix("apiext-").split(".", 1)[1]
    return f"1.{minor_patch}"


def stored_as(raw: bytes) -> str:
    """`kms:v2:<provider>` for a KMS v2 envelope, `identity` for a value stored in the clear."""
    if raw.startswith(b"k8s:enc:kms:v2:"):
        return f"kms:v2:{parse_v2(raw).provider}"
    return "other-encryption" if raw.startswith(ENCRYPTED) else "identity"


@dataclass
class ConfigFile:
    """The encryption provider config of a master, as tke.kms.encryption_config edits it."""

    path: Path
    version: str

    def run(self, **args: Any) -> dict[str, Any]:
        return run_module(
            module_main("encryption_config"),
            {
                "path": str(self.path),
                "kubernetes_version": self.version,
                "resources": [RESOURCE],
                "kms_api_version": "v2",
                **args,
            },
        )

    def configure(self, providers: list[str], **args: Any) -> None:
        """One step: it changes the file to `providers`, and a second run changes nothing."""
        before = self.path.read_bytes() if self.path.exists() else None
        result = self.run(**args)
        assert not result.get("failed"), result
        assert result["changed"] is True and result["providers"] == providers, result
        assert self.path.read_bytes() != before
        again = self.run(**args)
        assert again["changed"] is False and again["checksum"] == result["checksum"], again

    def refuse_removing_first(self, name: str) -> None:
        before = self.path.read_bytes()
        result = self.run(provider_name=name, state="absent")
        assert result.get("failed") is True, result
        assert f"KMS provider {name} is first" in result["msg"] and "unreadable" in result["msg"], result
        assert self.path.read_bytes() == before


@dataclass
class Master:
    """One apiserver as a playbook sees its master: the config file the modules edit, the manifest, access."""

    lab: ApiextLab
    config: ConfigFile
    access: dict[str, str]

    @property
    def api(self) -> Any:
        return self.lab.apiserver

    def configure(self, providers: list[str], **args: Any) -> None:
        self.config.configure(providers, **args)

    def roll(self) -> None:
        """What the playbook's apiserver role does to a master: restart it on the edited file."""
        self.api.restart()
        if b"kms:" in self.config.path.read_bytes():
            self.api.wait_check("/readyz/kms-providers")

    def reencrypt(self) -> dict[str, Any]:
        result = run_module(
            module_main("reencrypt"), dict(self.access, resources=[RESOURCE], workers=WORKERS)
        )
        assert not result.get("failed"), result
        assert result["missing"] == [] and result["failures"] == [], result
        return result

    def raw_values(self) -> dict[str, bytes]:
        """Widget name -> its value as stored in etcd."""
        return {
            key.decode().removeprefix(ETCD_PREFIX): raw
            for key, raw in self.lab.etcd.get_prefix(ETCD_PREFIX).items()
        }

    def storage(self) -> dict[str, str]:
        """Widget name -> how etcd holds it."""
        return {name: stored_as(raw) for name, raw in self.raw_values().items()}

    def read_all(self) -> dict[str, dict[str, str]]:
        return {item["metadata"]["name"]: item["data"] for item in self.api.list_widgets()}


@pytest.fixture
def start_master(apiext_factory, apiext_binary, tmp_path) -> Callable[..., Master]:
    """start(provider, socket): encryption_config writes the file (write phase), the apiserver runs on it."""

    def start(provider: str, socket: Path) -> Master:
        config = ConfigFile(tmp_path / "encryption-provider-config.yaml", kubernetes_version(apiext_binary))
        config.configure(
            [f"kms:{provider}", "identity"],
            provider_name=provider,
            endpoint=f"unix://{socket}",
            phase="write",
        )
        lab = apiext_factory(apiserver_args=(f"--encryption-provider-config={config.path}",))
        api = lab.apiserver
        api.wait_check("/readyz/kms-providers")
        manifest = tmp_path / "kube-apiserver.yaml"
        write_manifest(manifest, api.argv(), config.version)
        access = {
            "manifest_path": str(manifest),
            "url": api.url,
            "client_cert": str(api.admin.cert),
            "client_key": str(api.admin.key),
            "ca_file": str(api.pki.ca.cert),
        }
        return Master(lab, config, access)

    return start


@pytest.fixture
def new_cmk(tencent_kms) -> str:
    return tencent_kms.new_key("tke-kms-e2e-rotated")


@pytest.fixture
def second_plugin(start_plugin, tencent_kms, emulator_credentials, new_cmk) -> Iterator[PluginRunner]:
    """Our plugin for the rotation target: its own socket and the new CMK (stopped by start_plugin)."""
    runner = PluginRunner(start_plugin, tencent_kms, emulator_credentials)
    runner.start(key_id=new_cmk)
    yield runner
    runner.socket.unlink(missing_ok=True)


def create_widgets(master: Master, prefix: str, count: int) -> dict[str, dict[str, str]]:
    """`count` widgets, each with a value found nowhere else (so a raw etcd value can be searched for it)."""
    made = {}
    for number in range(count):
        name, data = f"{prefix}-{number:03d}", {"password": f"pw-{number}-{secrets.token_hex(8)}"}
        master.api.create_widget(name, data)
        made[name] = data
    return made


def test_rotation_to_a_new_key_with_kms_v2(start_master, kms_plugin, second_plugin, new_cmk) -> None:
    old_socket, new_socket = kms_plugin.socket, second_plugin.socket
    master = start_master("old", old_socket)
    widgets = create_widgets(master, "w", WIDGETS)
    assert master.storage() == dict.fromkeys(widgets, "kms:v2:old")

    # Read phase: every apiserver can read the new key; writes still use the old one.
    master.configure(
        ["kms:old", "kms:new", "identity"], provider_name="new", endpoint=f"unix://{new_socket}", phase="read"
    )
    master.roll()
    widgets |= create_widgets(master, "after-read", 1)
    assert master.storage()["after-read-000"] == "kms:v2:old"

    # Write phase: the new key encrypts every new write.
    master.configure(
        ["kms:new", "kms:old", "identity"],
        provider_name="new",
        endpoint=f"unix://{new_socket}",
        phase="write",
    )
    master.roll()
    widgets |= create_widgets(master, "after-write", 1)
    assert master.storage()["after-write-000"] == "kms:v2:new"
    master.config.refuse_removing_first("new")

    done = master.reencrypt()
    assert done["changed"] is True and done["rewritten"] == len(widgets) - 1, done  # all but after-write
    assert done["unchanged"] == 1 and done["total"] == len(widgets), done
    assert master.storage() == dict.fromkeys(widgets, "kms:v2:new")
    raw_values = master.raw_values()
    assert not [name for name, raw in raw_values.items() if widgets[name]["password"].encode() in raw]
    key_ids = {parse_v2(raw).key_id for raw in raw_values.values()}
    assert len(key_ids) == 1 and new_cmk in key_ids.pop()  # every seed encrypted with the new CMK
    assert master.read_all() == widgets
    again = master.reencrypt()
    assert (again["changed"], again["rewritten"], again["unchanged"]) == (False, 0, len(widgets)), again

    # The old provider leaves; the apiserver reads everything without it, and without its plugin.
    master.configure(["kms:new", "identity"], provider_name="old", state="absent")
    master.roll()
    assert master.read_all() == widgets
    kms_plugin.stop()
    assert master.read_all() == widgets
    master.roll()  # cold: every seed decrypted again, by the new plugin only
    assert master.read_all() == widgets
    assert master.storage() == dict.fromkeys(widgets, "kms:v2:new")


def test_turning_kms_v2_encryption_off(start_master, kms_plugin) -> None:
    master = start_master("new", kms_plugin.socket)
    widgets = create_widgets(master, "w", WIDGETS)
    assert master.storage() == dict.fromkeys(widgets, "kms:v2:new")
    master.config.refuse_removing_first("new")  # removing it now would leave every widget unreadable

    # Decrypt phase: new writes in the clear, KMS still reads what it wrote.
    master.configure(["identity", "kms:new"], provider_name="new", phase="decrypt")
    master.roll()
    widgets |= create_widgets(master, "after-decrypt", 1)
    assert master.storage()["after-decrypt-000"] == "identity"

    done = master.reencrypt()
    assert done["changed"] is True and done["rewritten"] == WIDGETS and done["unchanged"] == 1, done
    for name, raw in master.raw_values().items():
        assert not raw.startswith(ENCRYPTED), (name, raw[:40])
        assert widgets[name]["password"].encode() in raw, name
    assert master.read_all() == widgets
    again = master.reencrypt()
    assert (again["changed"], again["rewritten"], again["unchanged"]) == (False, 0, len(widgets)), again

    # The KMS provider leaves; nothing needs the plugin any more.
    master.configure(["identity"], provider_name="new", state="absent")
    master.roll()
    assert master.read_all() == widgets
    kms_plugin.stop()
    assert master.read_all() == widgets
    master.roll()
    assert master.read_all() == widgets
