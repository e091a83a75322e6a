"""Request and response ids: 32 hex digits, never repeated."""

from __future__ import annotations

import re

from frugal.ids import random_hex


def test_ids_are_32_hex_digits_and_do_not_repeat() -> None:
    ids = [random_hex() for _ in range(100_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)
