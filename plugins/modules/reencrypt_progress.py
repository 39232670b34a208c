#!/usr/bin/python
# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: reencrypt_progress
short_description: Read how far a running re-encryption has come
version_added: 0.2.0
description:
  - Reads the progress file that M(tke.kms.reencrypt) writes with O(tke.kms.reencrypt#module:progress_file)
    while it runs (started with C(async)), and returns its counts with a one-line RV(summary) - objects
    handled of those expected, the rate and the time so far.
  - Waits up to O(wait_timeout) seconds first, returning as soon as the file says the run has ended, so a loop
    that calls it every few seconds shows progress without polling faster than needed. Unlike the modules that
    wait for a state, the deadline passing is not a failure here - the progress so far is the answer.
  - Read-only. A file not written yet (the run is still starting) is reported with RV(state) V(starting).
options:
  path:
    description: The progress file on the master.
    type: path
    required: true
  wait_timeout:
    description: Seconds to wait before reading, cut short when the run ends.
    type: int
    default: 0
  expected:
    description:
      - How many objects the run is expected to handle (for example the pending count that
        M(tke.kms.secret_storage_info) returned), for the percentage in RV(summary). Without it, the objects
        listed so far.
    type: int
extends_documentation_fragment:
  - tke.kms.attributes
  - tke.kms.attributes.INFO_MODULE
seealso:
  - module: tke.kms.reencrypt
author:
  - tke.kms maintainers (@tke-kms)
"""

EXAMPLES = r"""
- name: Start the rewrite
  tke.kms.reencrypt:
    progress_file: /var/tmp/tke-kms-reencrypt.json
  async: 3600
  poll: 0
  register: job

- name: Read its progress after up to 5 seconds
  tke.kms.reencrypt_progress:
    path: /var/tmp/tke-kms-reencrypt.json
    wait_timeout: 5
  register: progress

- name: Show it
  ansible.builtin.debug:
    msg: "{{ progress.summary }}"
"""

RETURN = r"""
state:
  description: V(starting) (no file yet), V(running), or how the run ended - V(done), V(failed), V(stopped).
  returned: always
  type: str
  sample: running
handled:
  description: Objects handled so far (rewritten, unchanged, missing or failed).
  returned: always
  type: int
  sample: 1200
rewritten:
  description: Objects rewritten so far.
  returned: always
  type: int
  sample: 1180
expected:
  description: O(expected), or the objects listed so far when it is not given.
  returned: always
  type: int
  sample: 5000
rate:
  description: Objects handled per second so far.
  returned: always
  type: float
  sample: 342.9
elapsed_seconds:
  description: Seconds since the run started.
  returned: always
  type: float
  sample: 3.5
summary:
  description: The counts in one line.
  returned: always
  type: str
  sample: >-
    running: 1200 of 5000 objects (24%) - 1180 rewritten, 20 unchanged, 0 missing, 0 failed - 342.9/s, 3.5 s
"""

import json
import typing as t

from ansible_collections.tke.kms.plugins.module_utils._k8s_waiter import wait_until
from ansible_collections.tke.kms.plugins.module_utils._module import TkeKmsModule

ENDED = ("done", "failed", "stopped")
READ_EVERY = 0.5  # seconds between two reads while waiting for the run to end


def read_progress(path: str) -> t.Optional[t.Dict[str, t.Any]]:
    """The counts the run wrote last; None before its first write (or while it is being replaced)."""
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def wait_for_end(path: str, seconds: int) -> t.Optional[t.Dict[str, t.Any]]:
    """The last counts read, once the run has ended or `seconds` have passed."""
    last: t.List[t.Optional[t.Dict[str, t.Any]]] = [None]

    def ended() -> t.Tuple[bool, str]:
        last[0] = read_progress(path)
        state = (last[0] or {}).get("state")
        return state in ENDED, str(state)

    wait_until(ended, seconds, interval=READ_EVERY)
    return last[0]


def progress_of(document: t.Optional[t.Dict[str, t.Any]], expected: t.Optional[int]) -> t.Dict[str, t.Any]:
    document = document or {}
    handled = int(document.get("total", 0))
    elapsed = float(document.get("elapsed_seconds", 0.0))
    counts = {
        "state": document.get("state", "starting"),
        "handled": handled,
        "rewritten": int(document.get("rewritten", 0)),
        "expected": expected if expected is not None else int(document.get("listed", 0)),
        "rate": round(handled / elapsed, 1) if elapsed > 0 else 0.0,
        "elapsed_seconds": elapsed,
    }
    counts["summary"] = summary(counts, document)
    return counts


def summary(counts: t.Dict[str, t.Any], document: t.Dict[str, t.Any]) -> str:
    if counts["state"] == "starting":
        return "starting: no progress written yet"
    share = " (%d%%)" % (100 * counts["handled"] // counts["expected"]) if counts["expected"] else ""
    return "%s: %d of %d objects%s - %d rewritten, %d unchanged, %d missing, %d failed - %.1f/s, %.1f s" % (
        counts["state"],
        counts["handled"],
        counts["expected"],
        share,
        counts["rewritten"],
        int(document.get("unchanged", 0)),
        int(document.get("missing", 0)),
        int(document.get("failures", 0)),
        counts["rate"],
        counts["elapsed_seconds"],
    )


def main() -> None:
    module = TkeKmsModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            wait_timeout=dict(type="int", default=0),
            expected=dict(type="int"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["wait_timeout"] < 0:
        module.fail_json(msg="wait_timeout must be at least 0, got %d" % params["wait_timeout"])
    document = wait_for_end(params["path"], params["wait_timeout"])
    module.exit_json(changed=False, **progress_of(document, params["expected"]))


if __name__ == "__main__":
    main()
