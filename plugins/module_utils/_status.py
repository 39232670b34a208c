# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The encryption status of masters: which config the running apiserver has, the cells of the status table,
the rules every master must meet and the columns all masters must agree on, and the table itself.

PRIVATE to the collection (modules tke.kms.encryption_status, tke.kms.encryption_status_report). Standard
library only: the rules run on the controller, the running-config rule on masters.
"""

from __future__ import annotations

import typing as t

HASH_SHOWN = 19  # "sha256:" and 12 hex digits: enough to tell configs apart in a table
CLOCK_SLACK = 1.0  # the apiserver reports its start time in whole seconds, up to one early
# Key health that is no difference: unknown (no metrics), ok, or the plugin's first probe still running.
KEY_STATES_FINE = (None, "ok", "starting")

# How the hash of the config in force was found (RV running_config.source of encryption_status).
FROM_METRICS = "metrics"  # the apiserver reports it (automatic reload, Kubernetes 1.28 and later)
STARTED_AFTER = "inferred: started after the file changed"
RELOADED_AFTER = "inferred: reloaded after the file changed"
STALE = "unknown: the file changed after the apiserver started"
NO_CONFIG = "no encryption config"
NOT_ANSWERING = "unknown: the apiserver does not answer"


def running_config(
    disk_hash: t.Optional[str],
    file_changed_at: t.Optional[float],
    started_at: t.Optional[float],
    reported_hashes: t.Sequence[str],
    last_reload_at: t.Optional[float],
) -> t.Dict[str, t.Any]:
    """The hash of the encryption config the running apiserver uses, and how that is known: reported by the
    apiserver itself, else inferred from its start (or last reload) being newer than the file's last change -
    the only moments it reads the file."""
    if reported_hashes:
        return dict(hash=reported_hashes[-1], source=FROM_METRICS)
    if disk_hash is None:
        return dict(hash=None, source=NO_CONFIG)
    if started_at is None:
        return dict(hash=None, source=NOT_ANSWERING)
    if file_changed_at is not None and started_at + CLOCK_SLACK >= file_changed_at:
        return dict(hash=disk_hash, source=STARTED_AFTER)
    if last_reload_at is not None and file_changed_at is not None and last_reload_at >= file_changed_at:
        return dict(hash=disk_hash, source=RELOADED_AFTER)
    return dict(hash=None, source=STALE)


# The table -------------------------------------------------------------------------------------------------


def short(config_hash: t.Optional[str]) -> str:
    return config_hash[:HASH_SHOWN] if config_hash else "-"


def providers_cell(status: t.Dict[str, t.Any]) -> str:
    entries = status.get("entries") or []
    if not entries:
        return "-"
    return "; ".join(
        "%s: %s" % (",".join(entry["resources"]), " > ".join(entry["providers"])) for entry in entries
    )


def kms_api_cell(status: t.Dict[str, t.Any]) -> str:
    kms = status.get("kms_providers") or []
    return ", ".join("%s %s" % (p["name"], p["api_version"]) for p in kms) or "-"


def plugin_cell(status: t.Dict[str, t.Any]) -> str:
    plugins = status.get("plugins") or []
    if not plugins:
        return "-"
    return ", ".join("healthy" if p["healthy"] else "NOT healthy" for p in plugins)


def key_cell(status: t.Dict[str, t.Any]) -> str:
    cells = []
    for plugin in status.get("plugins") or []:
        parts = [plugin.get("key_state") or "state unknown"]
        if plugin.get("key_id"):
            parts.append(plugin["key_id"])
        cells.append(" ".join(parts))
    return ", ".join(cells) or "-"


def apiserver_cell(status: t.Dict[str, t.Any]) -> str:
    apiserver = status.get("apiserver") or {}
    if not apiserver.get("answering"):
        return "not answering"
    kms = apiserver.get("kms_checks") or {}
    state = "ready" if apiserver.get("ready") else "NOT ready"
    return " ".join(
        [state] + ["%s %s" % (name, "ok" if ok else "failing") for name, ok in sorted(kms.items())]
    )


def objects_cell(counts: t.Dict[str, t.Any]) -> str:
    by_storage = counts.get("by_storage") or {}
    return " ".join("%s=%d" % item for item in sorted(by_storage.items())) or "none"


# Each column: its label and how a status fills it. A column in AGREE must read the same on every master.
COLUMNS: t.List[t.Tuple[str, t.Callable[[t.Dict[str, t.Any]], str]]] = [
    ("kubernetes", lambda s: s.get("kubernetes_version") or "-"),
    ("config on disk", lambda s: short(s.get("config_hash"))),
    ("running config", lambda s: short((s.get("running_config") or {}).get("hash"))),
    ("running config from", lambda s: (s.get("running_config") or {}).get("source") or "-"),
    ("provider order", providers_cell),
    ("KMS API", kms_api_cell),
    ("plugin", plugin_cell),
    ("key", key_cell),
    ("apiserver", apiserver_cell),
]
AGREE = ("kubernetes", "config on disk", "running config", "provider order", "KMS API")
OBJECTS = "objects "  # a row per resource: "objects secrets"


def rows(statuses: t.Dict[str, t.Dict[str, t.Any]]) -> t.List[t.Tuple[str, t.Dict[str, str]]]:
    """(label, master -> cell) for each row of the table, objects last (a row per resource)."""
    table = [(label, {host: cell(s) for host, s in statuses.items()}) for label, cell in COLUMNS]
    resources = sorted({r for s in statuses.values() for r in (s.get("objects") or {})})
    for resource in resources:
        table.append(
            (
                OBJECTS + resource,
                {
                    host: objects_cell(s["objects"][resource])
                    if resource in (s.get("objects") or {})
                    else "-"
                    for host, s in statuses.items()
                },
            )
        )
    return table


def render(table: t.List[t.Tuple[str, t.Dict[str, str]]], flagged: t.Set[str]) -> t.List[str]:
    """A fixed-width table, a column per master; rows whose masters disagree are marked with '*'."""
    hosts = list(table[0][1]) if table else []
    label_width = max([len(label) for label, _ in table] + [0]) + 2
    widths = {h: max([len(h)] + [len(cells[h]) for _, cells in table]) for h in hosts}
    lines = ["  " + "".ljust(label_width) + "  ".join(h.ljust(widths[h]) for h in hosts).rstrip()]
    for label, cells in table:
        mark = "* " if label in flagged else "  "
        line = mark + label.ljust(label_width) + "  ".join(cells[h].ljust(widths[h]) for h in hosts)
        lines.append(line.rstrip())
    return lines


# The rules -------------------------------------------------------------------------------------------------


def disagreement(label: str, cells: t.Dict[str, str]) -> t.Optional[str]:
    """'<column>: m2 has X; m1, m3 have Y', or None when every master has the same value."""
    by_value: t.Dict[str, t.List[str]] = {}
    for host, value in cells.items():
        by_value.setdefault(value, []).append(host)
    if len(by_value) < 2:
        return None
    groups = sorted(by_value.items(), key=lambda item: (len(item[1]), item[1]))  # the odd ones first
    return "%s: %s" % (
        label,
        "; ".join(
            "%s %s %s" % (", ".join(hosts), "has" if len(hosts) == 1 else "have", value)
            for value, hosts in groups
        ),
    )


def master_problems(host: str, status: t.Dict[str, t.Any]) -> t.List[str]:
    """What is wrong on one master by itself, whatever the others say."""
    problems = []
    running = status.get("running_config") or {}
    if status.get("config_hash") and running.get("hash") != status.get("config_hash"):
        problems.append(
            "%s: running config: %s, the file on disk is %s - the apiserver has not loaded it"
            % (
                host,
                short(running.get("hash")) if running.get("hash") else running.get("source"),
                short(status["config_hash"]),
            )
        )
    apiserver = status.get("apiserver") or {}
    if not apiserver.get("answering"):
        problems.append("%s: apiserver: not answering (%s)" % (host, apiserver.get("message") or "no answer"))
    elif not apiserver.get("ready") or not all((apiserver.get("kms_checks") or {}).values()):
        problems.append("%s: apiserver: %s" % (host, apiserver_cell(status)))
    for plugin in status.get("plugins") or []:
        if not plugin["healthy"]:
            problems.append("%s: plugin: %s" % (host, plugin["message"]))
        elif plugin.get("key_state") not in KEY_STATES_FINE:
            problems.append("%s: key: the plugin reports its KMS key health %s" % (host, plugin["key_state"]))
    return problems


def pending_objects(statuses: t.Dict[str, t.Dict[str, t.Any]]) -> t.List[str]:
    """Objects not yet stored with the write provider (as counted by the first master that counted)."""
    for status in statuses.values():
        objects = status.get("objects")
        if objects:
            wanted = status.get("write_storage") or "identity"
            return [
                "objects %s: %d of %d not stored with %s (run the tke.kms.reencrypt role)"
                % (resource, counts["pending_count"], counts["total"], wanted)
                for resource, counts in sorted(objects.items())
                if counts["pending_count"]
            ]
    return []


def report(statuses: t.Dict[str, t.Dict[str, t.Any]], expected_hosts: t.Sequence[str]) -> t.Dict[str, t.Any]:
    """The table, and every difference: columns that differ between masters, what is wrong on one master,
    objects not stored with the write provider, masters without a status."""
    table = rows(statuses)
    flagged = set()
    differences = [
        "%s: no status (the task failed on it)" % host for host in expected_hosts if host not in statuses
    ]
    for label, cells in table:
        if label in AGREE or label.startswith(OBJECTS):
            found = disagreement(label, cells)
            if found:
                flagged.add(label)
                differences.append(found)
    for host, status in statuses.items():
        differences.extend(master_problems(host, status))
    differences.extend(pending_objects(statuses))
    agree = not differences
    verdict = (
        "all masters agree" if agree else "the masters do NOT agree: %d difference(s)" % len(differences)
    )
    return dict(table=render(table, flagged), differences=differences, agree=agree, verdict=verdict)
