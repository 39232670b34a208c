"""_status: how the running config is known, the table, and the rules that make masters (dis)agree."""

from __future__ import annotations

import copy
from typing import Any

from ansible_collections.tke.kms.plugins.module_utils import _status as st

DISK = "sha256:" + "1a2b3c4d5e6f" + "0" * 52
OTHER = "sha256:" + "9f1c0d2e4b7a" + "0" * 52


def healthy(version: str = "1.20.2") -> dict[str, Any]:
    return {
        "kubernetes_version": version,
        "config_hash": DISK,
        "running_config": {"hash": DISK, "source": st.STARTED_AFTER},
        "entries": [{"resources": ["secrets"], "providers": ["kms:tke-kms-plugin", "identity"]}],
        "kms_providers": [{"name": "tke-kms-plugin", "api_version": "v1"}],
        "write_storage": "KMS provider tke-kms-plugin",
        "apiserver": {"answering": True, "ready": True, "kms_checks": {"kms-provider-0": True}},
        "plugins": [{"healthy": True, "message": "ok", "key_id": "", "key_state": "ok"}],
        "objects": {
            "secrets": {"total": 12, "by_storage": {"kms:v1:tke-kms-plugin": 12}, "pending_count": 0},
        },
    }


def masters(count: int = 3) -> dict[str, dict[str, Any]]:
    return {f"master{n}": healthy() for n in range(1, count + 1)}


def test_the_running_config_is_reported_inferred_or_unknown() -> None:
    assert st.running_config(DISK, 100.0, 50.0, [OTHER], None) == {"hash": OTHER, "source": st.FROM_METRICS}
    assert st.running_config(DISK, 100.0, 200.0, [], None) == {"hash": DISK, "source": st.STARTED_AFTER}
    # The start time reads up to a second early: a start in the same second as the write counts as after it.
    assert st.running_config(DISK, 100.5, 100.0, [], None)["source"] == st.STARTED_AFTER
    assert st.running_config(DISK, 300.0, 200.0, [], 301.0) == {"hash": DISK, "source": st.RELOADED_AFTER}
    assert st.running_config(DISK, 300.0, 200.0, [], None) == {"hash": None, "source": st.STALE}
    assert st.running_config(None, None, 200.0, [], None) == {"hash": None, "source": st.NO_CONFIG}
    assert st.running_config(DISK, 300.0, None, [], None) == {"hash": None, "source": st.NOT_ANSWERING}


def test_healthy_masters_agree_and_the_table_has_a_column_each() -> None:
    found = st.report(masters(), ["master1", "master2", "master3"])
    assert found["agree"] is True and found["differences"] == [] and found["verdict"] == "all masters agree"
    table = found["table"]
    assert table[0].split() == ["master1", "master2", "master3"]
    assert table[2].split() == ["config", "on", "disk"] + ["sha256:1a2b3c4d5e6f"] * 3
    assert table[-1].split() == ["objects", "secrets"] + ["kms:v1:tke-kms-plugin=12"] * 3
    assert not any(line.startswith("*") for line in table)
    assert len({len(line.split("master")[0]) for line in table[:1]}) == 1
    # Every cell of a column starts at the same place (fixed width).
    starts = {line.index("sha256:") for line in table if "sha256:" in line}
    assert len(starts) == 1


def test_a_config_edited_by_hand_on_one_master_names_it_and_the_columns() -> None:
    statuses = masters()
    edited = statuses["master2"]
    edited["config_hash"] = OTHER  # the running apiserver still uses the old one (it has not restarted)
    edited["running_config"] = {"hash": None, "source": st.STALE}
    found = st.report(statuses, list(statuses))
    assert found["agree"] is False
    assert found["differences"] == [
        "config on disk: master2 has sha256:9f1c0d2e4b7a; master1, master3 have sha256:1a2b3c4d5e6f",
        "running config: master2 has -; master1, master3 have sha256:1a2b3c4d5e6f",
        "master2: running config: unknown: the file changed after the apiserver started, the file on disk is "
        "sha256:9f1c0d2e4b7a - the apiserver has not loaded it",
    ]
    assert found["verdict"] == "the masters do NOT agree: 3 difference(s)"
    flagged = [line.split()[1:3] for line in found["table"] if line.startswith("* ")]
    assert flagged == [["config", "on"], ["running", "config"]]


def test_what_is_wrong_on_one_master_alone_is_a_difference() -> None:
    statuses = masters(2)
    sick = statuses["master1"]
    sick["plugins"][0].update(healthy=False, message="/run/tke-kms-plugin/server.sock: connection refused")
    sick["apiserver"]["kms_checks"] = {"kms-provider-0": False}
    sick["apiserver"]["ready"] = False
    statuses["master2"]["plugins"][0]["key_state"] = "degraded"
    found = st.report(statuses, ["master1", "master2", "master3"])
    assert found["differences"] == [
        "master3: no status (the task failed on it)",
        "master1: apiserver: NOT ready kms-provider-0 failing",
        "master1: plugin: /run/tke-kms-plugin/server.sock: connection refused",
        "master2: key: the plugin reports its KMS key health degraded",
    ]
    assert [line.split()[0] for line in found["table"][1:]].count(
        "*"
    ) == 0  # health is per master, not agreement


def test_objects_not_stored_with_the_write_provider_are_a_difference() -> None:
    statuses = masters(2)
    for status in statuses.values():
        status["objects"]["secrets"] = {
            "total": 12,
            "by_storage": {"kms:v1:tke-kms-plugin": 9, "identity": 3},
            "pending_count": 3,
        }
    found = st.report(statuses, list(statuses))
    assert found["differences"] == [
        "objects secrets: 3 of 12 not stored with KMS provider tke-kms-plugin"
        " (run the tke.kms.reencrypt role)"
    ]


def test_versions_and_provider_orders_that_differ_are_named() -> None:
    statuses = masters(2)
    statuses["master2"] = copy.deepcopy(statuses["master2"])
    statuses["master2"]["entries"][0]["providers"] = ["identity", "kms:tke-kms-plugin"]
    statuses["master2"]["kubernetes_version"] = "1.20.3"
    found = st.report(statuses, list(statuses))
    assert found["differences"][:2] == [
        "kubernetes: master1 has 1.20.2; master2 has 1.20.3",
        "provider order: master1 has secrets: kms:tke-kms-plugin > identity; "
        "master2 has secrets: identity > kms:tke-kms-plugin",
    ]
