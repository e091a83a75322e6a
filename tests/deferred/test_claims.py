"""A batch runs in one process at a time: the workers of one gateway share its data dir."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from frugal.deferred.store import BatchStore


def test_a_claimed_batch_cannot_be_claimed_again_until_released(tmp_path: Path) -> None:
    store = BatchStore(tmp_path)
    first = store.claim("batch_frugal_1")
    assert first is not None
    assert store.claim("batch_frugal_1") is None  # another runner, even in this process
    other = store.claim("batch_frugal_2")
    assert other is not None  # each batch has a claim of its own
    first.release()
    first.release()  # twice is harmless
    again = store.claim("batch_frugal_1")
    assert again is not None
    again.release()
    other.release()


def test_another_process_cannot_claim_it_and_a_dead_holder_lets_go(tmp_path: Path) -> None:
    store = BatchStore(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time; from pathlib import Path; "
            "from frugal.deferred.store import BatchStore; "
            f"claim = BatchStore(Path({str(tmp_path)!r})).claim('batch_frugal_1'); "
            "print('held' if claim else 'refused', flush=True); time.sleep(60)"
        )],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert store.claim("batch_frugal_1") is None
    finally:
        holder.kill()
        holder.communicate()  # waits, and closes its pipe
    claim = store.claim("batch_frugal_1")  # the system dropped the dead process's lock
    assert claim is not None
    claim.release()
