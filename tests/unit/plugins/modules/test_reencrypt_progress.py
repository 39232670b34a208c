"""reencrypt_progress: reading the progress file of a running re-encryption, waiting for its end."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from ansible_collections.tke.kms.plugins.modules import reencrypt_progress

from tests.unit.collection import run_module

RUNNING = {
    "state": "running",
    "listed": 500,
    "total": 120,
    "rewritten": 118,
    "unchanged": 1,
    "missing": 1,
    "failures": 0,
    "elapsed_seconds": 4.0,
}


def test_counts_rate_and_share_of_the_expected_objects(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    path.write_text(json.dumps(RUNNING))
    result = run_module(reencrypt_progress.main, dict(path=str(path), expected=1000))
    assert (result["changed"], result["state"], result["handled"]) == (False, "running", 120)
    assert result["rate"] == 30.0
    assert result["summary"] == (
        "running: 120 of 1000 objects (12%) - 118 rewritten, 1 unchanged, 1 missing, 0 failed - 30.0/s, 4.0 s"
    )
    # Without the expected count, the objects listed so far.
    assert run_module(reencrypt_progress.main, dict(path=str(path)))["expected"] == 500


def test_a_run_that_has_not_written_yet_is_starting(tmp_path: Path) -> None:
    result = run_module(reencrypt_progress.main, dict(path=str(tmp_path / "none.json"), expected=3))
    assert (result["state"], result["handled"], result["summary"]) == (
        "starting",
        0,
        "starting: no progress written yet",
    )


def test_the_wait_ends_as_soon_as_the_run_does(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    path.write_text(json.dumps(RUNNING))
    finished = dict(RUNNING, state="done", total=1000, rewritten=998, elapsed_seconds=9.0)
    writer = threading.Timer(0.5, lambda: path.write_text(json.dumps(finished)))
    writer.start()
    started = time.monotonic()
    try:
        result = run_module(reencrypt_progress.main, dict(path=str(path), wait_timeout=30, expected=1000))
    finally:
        writer.cancel()
    assert time.monotonic() - started < 10  # not the full 30 s
    assert (result["state"], result["handled"], result["summary"].split(" - ")[0]) == (
        "done",
        1000,
        "done: 1000 of 1000 objects (100%)",
    )


def test_a_negative_wait_is_refused(tmp_path: Path) -> None:
    result = run_module(reencrypt_progress.main, dict(path=str(tmp_path / "p.json"), wait_timeout=-1))
    assert result["failed"] and result["msg"] == "wait_timeout must be at least 0, got -1"
