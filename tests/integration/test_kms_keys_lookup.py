"""The alias lookup itself (module_utils), in-process against the emulator: paging and exact matching."""

from __future__ import annotations

from ansible_collections.tke.kms.plugins.module_utils._kms_keys import find_key_by_alias, list_key_details
from ansible_collections.tke.kms.plugins.module_utils._tencentcloud import KmsClient
from tke_kms_plugin.emulator import Emulator

REGION = "ap-guangzhou"


def test_exact_alias_is_found_beyond_the_first_page(
    emulator: Emulator, emulator_credentials: tuple[str, str]
) -> None:
    wanted = emulator.create_key(
        REGION, alias="etcd"
    )  # the oldest: last in ListKeyDetail's newest-first order
    for number in range(230):  # more than one page of 200 fuzzy matches
        emulator.create_key(REGION, alias=f"etcd-{number:03d}")
    kms = KmsClient(*emulator_credentials, REGION, endpoint=emulator.url)

    assert len(list_key_details(kms, search="etcd")) == 231
    found = find_key_by_alias(kms, "etcd")
    assert found is not None and found["KeyId"] == wanted
    assert emulator.call_counts()["ListKeyDetail"] == 2 + 2  # two pages, twice
    assert find_key_by_alias(kms, "etc") is None
