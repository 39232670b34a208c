"""The reliability matrix: a table of starting encryption configs, a table of faults, the Kubernetes
flavours (tests/lifecycle/flavour.py), and which of them each lab cluster runs. `make test` runs
QUICK_SCENARIOS (on 1.20 every starting config and every refusal once, each with a fault; on 1.36 a KMS v2
lane and the lifecycle with automatic reload); `make reliability` sets TKE_KMS_RELIABILITY=full: every
starting config alone on three masters of each flavour with every fault that applies and every refusal.
docs/lifecycle.md describes both."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .flavour import KUBE_1_20, KUBE_1_36, KUBE_1_36_RELOAD, Flavour
from .starting_config import Entry, StartConfig

# -- starting configs
NONE = StartConfig("a_none", "(a) none")
AESCBC_SECRETS = StartConfig("b_aescbc", "(b) aescbc secrets", (Entry(("secrets",), "aescbc", "start-cbc"),))
AESGCM_CONFIGMAPS = StartConfig(
    "c_aesgcm", "(c) aesgcm configmaps", (Entry(("configmaps",), "aesgcm", "start-gcm"),)
)
# (b) and (c) share a cluster in `make test`: two separate entries.
AESCBC_SECRETS_AESGCM_CONFIGMAPS = StartConfig(
    "bc_aescbc_aesgcm", "(b)+(c)", (*AESCBC_SECRETS.entries, *AESGCM_CONFIGMAPS.entries)
)
SHARED_AESCBC = StartConfig(
    "d_shared_aescbc",
    "(d) [secrets,configmaps] aescbc",
    (Entry(("secrets", "configmaps"), "aescbc", "start-cbc"),),
)

# -- faults (tests/lifecycle/test_reliability.py injects them)
SITE_PLUGIN_KILLED = "site.yml: the plugin SIGKILLed on master2 while the read phase restarts its apiserver"
ROTATE_NEW_PLUGIN_KILLED = (
    "rotate.yml: the new plugin SIGKILLed on master2 while the read phase restarts its apiserver"
)
ROTATE_APISERVER_DOWN = (
    "rotate.yml: master2's apiserver does not come back in the write phase (restored, stopped; the remove "
    "refusal; run again)"
)
ROTATE_KMS_THROTTLED = "rotate.yml: Tencent KMS throttled to 25/s, +20-60 ms on every call"
DISABLE_APISERVER_DOWN = "disable.yml: master2's apiserver does not come back (restored, stopped; run again)"
ALL_FAULTS = frozenset(
    {
        SITE_PLUGIN_KILLED,
        ROTATE_NEW_PLUGIN_KILLED,
        ROTATE_APISERVER_DOWN,
        ROTATE_KMS_THROTTLED,
        DISABLE_APISERVER_DOWN,
    }
)


def faults_for(flavour: Flavour, start: StartConfig) -> frozenset[str]:
    """The faults of the table that can happen on masters of `flavour` from `start`. With automatic reload
    rotate.yml restarts no apiserver, and disable.yml restarts one only when the flag leaves the manifest
    (a starting config of its own keeps it): an apiserver that does not come back needs a restart."""
    if not flavour.reload:
        return ALL_FAULTS
    return ALL_FAULTS - {ROTATE_APISERVER_DOWN} - ({DISABLE_APISERVER_DOWN} if start.entries else set())


@dataclass(frozen=True)
class Scenario:
    """One lab cluster: a starting config, its masters, the faults it injects, what else it checks."""

    start: StartConfig
    masters: int
    faults: frozenset[str]
    same_key_refusal: bool = False  # rotate.yml to the key in use, with tke_kms_rotate_delete_old_key=true
    idempotence: bool = False  # rotate.yml and disable.yml run once more: changed=0
    flavour: Flavour = KUBE_1_20
    audit: bool = False  # after site.yml: site.yml again (changed=0) and playbooks/verify.yml

    @property
    def id(self) -> str:
        return f"{self.flavour.id}-{self.start.id}-{self.masters}masters"


FULL = os.environ.get("TKE_KMS_RELIABILITY", "") == "full"
# How many scenarios run at the same time, each on its own cluster (the lab's apiserver restarts mostly wait).
LANES = int(os.environ.get("TKE_KMS_RELIABILITY_LANES", "2"))

# The removing-a-provider-in-use refusal runs where ROTATE_APISERVER_DOWN leaves the old provider second and
# still storing every object; the "off" refusal wherever disable.yml leaves a non-identity entry (aesgcm).
QUICK_NONE = Scenario(
    NONE, 3, frozenset({SITE_PLUGIN_KILLED, ROTATE_KMS_THROTTLED, DISABLE_APISERVER_DOWN}), idempotence=True
)
QUICK_BC = Scenario(
    AESCBC_SECRETS_AESGCM_CONFIGMAPS, 2, frozenset({ROTATE_NEW_PLUGIN_KILLED}), same_key_refusal=True
)
QUICK_D = Scenario(SHARED_AESCBC, 2, frozenset({ROTATE_APISERVER_DOWN}))
# On 1.36: the whole lifecycle with automatic reload (no apiserver restarted by rotate.yml) with its audit and
# second runs, and a lane with restarts that meets the faults an apiserver restart brings.
QUICK_V2_RELOAD = Scenario(
    NONE,
    3,
    frozenset({SITE_PLUGIN_KILLED, ROTATE_KMS_THROTTLED}),
    idempotence=True,
    flavour=KUBE_1_36_RELOAD,
    audit=True,
)
QUICK_V2_D = Scenario(
    SHARED_AESCBC,
    3,
    frozenset({ROTATE_NEW_PLUGIN_KILLED, ROTATE_APISERVER_DOWN, DISABLE_APISERVER_DOWN}),
    same_key_refusal=True,
    flavour=KUBE_1_36,
)
# Lanes take scenarios in this order: the 1.20 ones with a long restart-bound rotation first, so that two
# lanes end close together (measured, two lanes: 1.20 (d) 12.3 min, (b)+(c) 9.7, (a) 18.6; 1.36: 9.3-9.6).
QUICK_SCENARIOS = (QUICK_D, QUICK_BC, QUICK_V2_RELOAD, QUICK_NONE, QUICK_V2_D)
FULL_SCENARIOS = tuple(
    Scenario(
        start,
        3,
        faults_for(flavour, start),
        same_key_refusal=True,
        idempotence=True,
        flavour=flavour,
        audit=flavour.kms_v2,
    )
    for flavour in (KUBE_1_20, KUBE_1_36, KUBE_1_36_RELOAD)
    for start in (NONE, AESCBC_SECRETS, AESGCM_CONFIGMAPS, SHARED_AESCBC)
)
SCENARIOS = FULL_SCENARIOS if FULL else QUICK_SCENARIOS
