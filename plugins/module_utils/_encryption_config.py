# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The kube-apiserver encryption provider configuration: reading it, and placing a KMS provider in it.

PRIVATE to the collection. Runs on masters: standard library and PyYAML only.

Formats by Kubernetes version:
  1.10-1.12  apiVersion v1, kind EncryptionConfig (flag --experimental-encryption-provider-config)
  1.13+      apiVersion apiserver.config.k8s.io/v1, kind EncryptionConfiguration
KMS provider API: v1 everywhere up to 1.28 (cachesize allowed); v2 from 1.27 (beta) and the default from 1.29,
when KMS v1 became disabled unless the apiserver runs with --feature-gates=KMSv1=true. v2 forbids cachesize.

Phases of a first rollout, for the resource entry that holds the managed resources:
  read   the KMS provider is present but not first: every apiserver can read KMS data, none writes it yet.
         A missing KMS provider goes right after the current write provider. A KMS provider that is already
         first stays first (never step back from a finished write phase).
  write  the KMS provider is first (it encrypts every write); the others stay, in their order, as read
         fallbacks, and identity goes last.
Rotation to another key is the same two phases for a KMS provider with a new name ([old, new, identity] then
[new, old, identity]), then the old provider is removed once no data is stored under it. Turning encryption
off uses one more phase:
  decrypt  identity is first (new writes are stored in the clear); every other provider stays after it, in
           its order, to read what is still encrypted. The KMS provider is neither added nor changed.
A KMS provider is removed (state absent) only when it is not first: data it encrypted since would become
unreadable.
"""

from __future__ import annotations

import copy
import hashlib
import os
import typing as t

from ansible_collections.tke.kms.plugins.module_utils._errors import TkeKmsError
from ansible_collections.tke.kms.plugins.module_utils._files import read_text
from ansible_collections.tke.kms.plugins.module_utils._kube_version import KubeVersion
from ansible_collections.tke.kms.plugins.module_utils._yaml_edit import syntax_error_message

try:
    import yaml
except ImportError:  # the module reports the missing library (missing_required_lib)
    yaml = None  # type: ignore[assignment]

LEGACY_FORMAT = ("v1", "EncryptionConfig")
CURRENT_FORMAT = ("apiserver.config.k8s.io/v1", "EncryptionConfiguration")
KNOWN_FORMATS = (LEGACY_FORMAT, CURRENT_FORMAT)
PROVIDER_TYPES = ("identity", "aescbc", "aesgcm", "secretbox", "kms")
KEYED_PROVIDERS = ("aescbc", "aesgcm", "secretbox")
DEFAULT_V1_CACHESIZE = 1000
DEFAULT_CONFIG_PATH = "/etc/kubernetes/encryption-provider-config.yaml"
KMS_V1_FEATURE_GATE = "KMSv1"
REDACTED = "<redacted>"
HEADER = (
    "# Managed by tke.kms (module tke.kms.encryption_config). The first provider of each entry encrypts\n"
    "# new writes; every provider is tried when reading. Provider names are stored with the data: never\n"
    "# rename one.\n"
)


class ConfigError(TkeKmsError):
    """The existing file or the requested change is not acceptable; the message says what to fix."""


class KmsProvider(t.NamedTuple):
    name: str
    endpoint: str
    api_version: str  # 'v1' or 'v2'
    timeout: str
    cachesize: t.Optional[int]

    def as_provider(self) -> t.Dict[str, t.Any]:
        body: t.Dict[str, t.Any] = {}
        if self.api_version == "v2":
            body["apiVersion"] = "v2"
        body["name"] = self.name
        body["endpoint"] = self.endpoint
        if self.api_version == "v1" and self.cachesize is not None:
            body["cachesize"] = self.cachesize
        body["timeout"] = self.timeout
        return {"kms": body}


def config_format(version: KubeVersion) -> t.Tuple[str, str]:
    if version < (1, 10):
        raise ConfigError("Kubernetes %s has no KMS encryption provider; it needs 1.10 or newer" % (version,))
    return LEGACY_FORMAT if version < (1, 13) else CURRENT_FORMAT


def provider_type(provider: t.Any) -> str:
    return next(iter(provider)) if isinstance(provider, dict) and len(provider) == 1 else "?"


def provider_label(provider: t.Dict[str, t.Any]) -> str:
    """'kms:<name>', 'aescbc', 'identity': how a provider is reported."""
    kind = provider_type(provider)
    body = provider.get(kind)
    if kind == "kms" and isinstance(body, dict):
        return "kms:%s" % body.get("name")
    return kind


def entries_still_encrypting(config: t.Optional[t.Dict[str, t.Any]], name: str) -> t.List[str]:
    """The entries that still encrypt once the KMS provider `name` has left (a provider other than identity
    remains), as 'resources [providers]': while there are any, --encryption-provider-config must stay."""
    found = []
    for entry in entry_labels(config):
        kept = [label for label in entry["providers"] if label != "kms:%s" % name]
        if any(label != "identity" for label in kept):
            found.append("%s [%s]" % (", ".join(entry["resources"]), ", ".join(kept)))
    return found


def kms_api_version_of(provider: t.Dict[str, t.Any]) -> str:
    return str((provider.get("kms") or {}).get("apiVersion") or "v1")


def parse(text: str, path: str) -> t.Dict[str, t.Any]:
    """Load and check an existing configuration, in either format."""
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        # PyYAML's message quotes the bad line, which may be an aescbc key: its position only
        raise ConfigError(syntax_error_message(path, exc) + "; fix it or move it away") from None
    documents = [d for d in documents if d is not None]
    if len(documents) != 1:
        raise ConfigError(
            "%s is not an EncryptionConfiguration (%s); move it away or fix it"
            % (path, "it is empty" if not documents else "it holds %d YAML documents" % len(documents))
        )
    config = documents[0]
    if not isinstance(config, dict) or (config.get("apiVersion"), config.get("kind")) not in KNOWN_FORMATS:
        found = (
            "%s/%s" % (config.get("apiVersion"), config.get("kind"))
            if isinstance(config, dict)
            else type(config).__name__
        )
        raise ConfigError(
            "%s is not an EncryptionConfiguration (found %s; expected %s); move it away or fix it"
            % (path, found, " or ".join("%s/%s" % f for f in KNOWN_FORMATS))
        )
    resources = config.get("resources")
    if not isinstance(resources, list) or not resources:
        raise ConfigError("%s: 'resources' must be a non-empty list" % path)
    for number, entry in enumerate(resources, 1):
        where = "%s: resources entry %d" % (path, number)
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("resources"), list)
            or not entry["resources"]
        ):
            raise ConfigError("%s needs a non-empty 'resources' list" % where)
        providers = entry.get("providers")
        if not isinstance(providers, list) or not providers:
            raise ConfigError("%s needs a non-empty 'providers' list" % where)
        for provider in providers:
            kind = provider_type(provider)
            if kind not in PROVIDER_TYPES:
                raise ConfigError(
                    "%s has a provider that is not one of %s: %r"
                    % (where, ", ".join(PROVIDER_TYPES), redact(provider))
                )
            if kind == "kms" and not (isinstance(provider["kms"], dict) and provider["kms"].get("name")):
                raise ConfigError("%s has a kms provider without a name" % where)
    return config


def _entry_for(
    config: t.Dict[str, t.Any], resources: t.List[str], path: str
) -> t.Optional[t.Dict[str, t.Any]]:
    holders = [e for e in config["resources"] if any(r in e["resources"] for r in resources)]
    if not holders:
        return None
    if len(holders) > 1 or not all(r in holders[0]["resources"] for r in resources):
        raise ConfigError(
            "%s: the resources %s are split over several entries; put them in one entry or manage them "
            "separately" % (path, ", ".join(resources))
        )
    return holders[0]


def resolve_kms_api_version(
    requested: str, version: KubeVersion, existing: t.Optional[t.Dict[str, t.Any]], name: str
) -> str:
    """'auto': what an existing provider of that name uses (its data needs it), else v2 from 1.29, else v1."""
    if requested == "auto":
        current = find_kms(existing, name) if existing else None
        if current is not None:
            return kms_api_version_of(current)
        return "v2" if version >= (1, 29) else "v1"
    if requested == "v2" and version < (1, 27):
        raise ConfigError(
            "KMS v2 needs Kubernetes 1.27 or newer (this is %s); use kms_api_version v1" % (version,)
        )
    return requested


# The rules the roles need, one function each: the modules return their answers, roles never re-derive them.


def config_file(given: t.Optional[str], in_manifest: t.Optional[str]) -> str:
    """The encryption config to write: the one asked for, else the one in use, else the default."""
    return given or in_manifest or DEFAULT_CONFIG_PATH


def cachesize_applies(api_version: str) -> bool:
    """Only KMS v1 providers have a DEK cache size (KMS v2 forbids cachesize)."""
    return api_version == "v1"


def needs_kms_v1_gate(api_version: t.Optional[str], version: KubeVersion) -> bool:
    """KMS v1 is disabled from Kubernetes 1.29 unless kube-apiserver runs with --feature-gates=KMSv1=true."""
    return api_version == "v1" and version >= (1, 29)


def feature_gates_for(api_version: t.Optional[str], version: KubeVersion) -> t.Dict[str, bool]:
    """The feature gates kube-apiserver needs for a KMS provider of that API version."""
    return {KMS_V1_FEATURE_GATE: True} if needs_kms_v1_gate(api_version, version) else {}


def has_kms_health_check(config: t.Optional[t.Dict[str, t.Any]], version: KubeVersion) -> bool:
    """Whether /readyz has kms-provider checks: only with a KMS provider in the config, and from 1.16."""
    return bool(kms_providers(config)) and version >= (1, 16)


def provider_entry(config: t.Optional[t.Dict[str, t.Any]], name: str) -> t.Dict[str, t.Any]:
    """The kms_providers() item of the provider name, {} when the config has none of that name."""
    return next((p for p in kms_providers(config) if p["name"] == name), {})


def find_kms(config: t.Dict[str, t.Any], name: str) -> t.Optional[t.Dict[str, t.Any]]:
    for entry in config.get("resources") or []:
        for provider in entry.get("providers") or []:
            if provider_type(provider) == "kms" and provider["kms"].get("name") == name:
                return provider
    return None


def build(
    existing: t.Optional[t.Dict[str, t.Any]],
    version: KubeVersion,
    kms: t.Optional[KmsProvider],
    *,
    phase: str,
    resources: t.List[str],
    path: str = "the encryption config",
) -> t.Dict[str, t.Any]:
    """The configuration to write: existing providers kept, the KMS provider placed for the phase.

    kms may be None for the decrypt phase, which only moves identity first.
    """
    api_version, kind = config_format(version)
    if existing is None:
        config: t.Dict[str, t.Any] = {"apiVersion": api_version, "kind": kind, "resources": []}
    else:
        config = copy.deepcopy(existing)
        config["apiVersion"], config["kind"] = api_version, kind
    entry = _entry_for(config, resources, path)
    if entry is None:
        entry = {"resources": list(resources), "providers": [{"identity": {}}]}
        config["resources"].insert(0, entry)
    providers = entry["providers"]
    if phase == "decrypt":
        identities = [p for p in providers if provider_type(p) == "identity"]
        providers[:] = (identities[:1] or [{"identity": {}}]) + [
            p for p in providers if provider_type(p) != "identity"
        ]
        return config
    if kms is None:
        raise ConfigError("internal error: the %s phase needs the KMS provider" % phase)
    if kms.api_version == "v2" and kms.cachesize is not None:
        raise ConfigError("cachesize is only valid for KMS v1; KMS v2 providers have no DEK cache size")
    wanted = kms.as_provider()
    index = _kms_index(providers, kms.name)
    if index is not None and kms_api_version_of(providers[index]) != kms.api_version:
        raise ConfigError(
            "%s: KMS provider %s is KMS %s; switching it to %s in place would make the data stored under it "
            "unreadable (the API version is part of the stored prefix). Keep kms_api_version %s, or move to "
            "a new provider name with the rotation playbook"
            % (
                path,
                kms.name,
                kms_api_version_of(providers[index]),
                kms.api_version,
                kms_api_version_of(providers[index]),
            )
        )
    if find_kms({"resources": [e for e in config["resources"] if e is not entry]}, kms.name):
        raise ConfigError(
            "%s: provider name %s is already used by another resources entry" % (path, kms.name)
        )
    if index is None:
        providers.insert(1 if phase == "read" else 0, wanted)
    else:
        providers[index] = wanted
        if phase == "write" and index != 0:
            providers.insert(0, providers.pop(index))
    if phase == "write":
        identities = [p for p in providers if provider_type(p) == "identity"]
        providers[:] = [p for p in providers if provider_type(p) != "identity"] + identities[:1]
    return config


def remove_kms(
    existing: t.Dict[str, t.Any], name: str, *, resources: t.List[str], path: str = "the encryption config"
) -> t.Dict[str, t.Any]:
    """The configuration without the KMS provider `name` in the entry of `resources` (a copy)."""
    config = copy.deepcopy(existing)
    entry = _entry_for(config, resources, path)
    index = _kms_index(entry["providers"], name) if entry else None
    if entry is None or index is None:
        return config
    if index == 0:
        raise ConfigError(
            "%s: KMS provider %s is first, so it encrypts every new write; removing it would make the data "
            "it wrote unreadable. First make another provider encrypt writes (the write phase of the new "
            "provider when rotating, or the decrypt phase when turning encryption off), restart every "
            "apiserver and rewrite all Secrets, then remove it" % (path, name)
        )
    del entry["providers"][index]
    return config


def _kms_index(providers: t.List[t.Any], name: str) -> t.Optional[int]:
    return next((i for i, p in enumerate(providers) if provider_label(p) == "kms:%s" % name), None)


def render(config: t.Dict[str, t.Any]) -> str:
    ordered = {"apiVersion": config["apiVersion"], "kind": config["kind"]}
    ordered.update((k, v) for k, v in config.items() if k not in ordered)
    return HEADER + yaml.safe_dump(ordered, default_flow_style=False, sort_keys=False, width=2**30)


def checksum(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def redact(value: t.Any) -> t.Any:
    """A copy with the key material of aescbc/aesgcm/secretbox providers replaced, for diffs and messages."""
    if isinstance(value, dict):
        return {k: (REDACTED if k == "secret" else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def redacted_text(config: t.Optional[t.Dict[str, t.Any]]) -> str:
    return "" if config is None else render(redact(config))


def kms_in_entry(
    config: t.Optional[t.Dict[str, t.Any]], resources: t.List[str], name: str
) -> t.Optional[t.Dict[str, t.Any]]:
    """The KMS provider `name` of the entry that holds the managed resources, if there is one."""
    entry = _entry_for(config, resources, "") if config else None
    index = _kms_index(entry["providers"], name) if entry else None
    return None if entry is None or index is None else entry["providers"][index]


def summary(config: t.Dict[str, t.Any], resources: t.List[str]) -> t.List[str]:
    """Provider labels, in order, of the entry that holds the managed resources."""
    entry = _entry_for(config, resources, "")
    return [provider_label(p) for p in entry["providers"]] if entry else []


def read_config(path: str) -> t.Optional[t.Dict[str, t.Any]]:
    """The parsed configuration at path, None when there is no such file; ConfigError when it is bad."""
    text = read_text(path)
    return None if text is None else parse(text, path)


def entry_labels(config: t.Optional[t.Dict[str, t.Any]]) -> t.List[t.Dict[str, t.List[str]]]:
    """Every entry as {resources, providers (labels)}, in file order: what a report may show (no keys)."""
    if not config:
        return []
    return [
        {"resources": list(entry["resources"]), "providers": [provider_label(p) for p in entry["providers"]]}
        for entry in config["resources"]
    ]


def socket_path(endpoint: str) -> str:
    """The unix socket path of a KMS endpoint, normalised so that two spellings of one path compare equal
    (/var/run is a symlink to /run on every current distribution)."""
    path = endpoint[len("unix://") :] if endpoint.startswith("unix://") else endpoint
    path = os.path.normpath(path) if path else path
    if path == "/var/run" or path.startswith("/var/run/"):
        path = path[len("/var") :]
    return path


def kms_providers(config: t.Optional[t.Dict[str, t.Any]]) -> t.List[t.Dict[str, t.Any]]:
    """Each KMS provider once (by name, in file order) with the resources of every entry that carries it
    and whether it encrypts writes (first provider) in at least one of them."""
    found: t.Dict[str, t.Dict[str, t.Any]] = {}
    for entry in (config or {}).get("resources") or []:
        for index, provider in enumerate(entry["providers"]):
            if provider_type(provider) != "kms":
                continue
            body = provider["kms"]
            endpoint = str(body.get("endpoint") or "")
            item = found.setdefault(
                str(body["name"]),
                dict(
                    name=str(body["name"]),
                    endpoint=endpoint,
                    socket=socket_path(endpoint),
                    api_version=kms_api_version_of(provider),
                    resources=[],
                    write=False,
                ),
            )
            item["resources"].extend(r for r in entry["resources"] if r not in item["resources"])
            item["write"] = item["write"] or index == 0
    return list(found.values())


def provider_resources(config: t.Optional[t.Dict[str, t.Any]], name: str) -> t.List[str]:
    """The resources of every entry that carries the KMS provider name, in file order."""
    return provider_entry(config, name).get("resources", [])


def non_identity_entries(config: t.Optional[t.Dict[str, t.Any]]) -> t.List[t.Dict[str, t.List[str]]]:
    """The entries (as entry_labels) with a provider other than identity: data they cover may be encrypted."""
    return [e for e in entry_labels(config) if any(label != "identity" for label in e["providers"])]


def describe_entries(entries: t.List[t.Dict[str, t.List[str]]]) -> str:
    """'[secrets, configmaps]: kms:tke-kms-plugin, identity; [...]: aesgcm' for messages."""
    return "; ".join("[%s]: %s" % (", ".join(e["resources"]), ", ".join(e["providers"])) for e in entries)
