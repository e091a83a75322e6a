"""The recent hits a report can name: found by request id within a partition, bounded, once."""

from __future__ import annotations

import time

from frugal.cache import Hit
from frugal.labels import RecentHits


def hit(entry_id: str = "e1", prompt: str = "What is the capital of France?") -> Hit:
    return Hit(
        entry_id=entry_id, prompt=prompt, similarity=0.93, response={}, age_s=1.0, exact=False
    )


def test_a_hit_is_found_once_in_its_own_partition_only() -> None:
    recent = RecentHits()
    recent.remember("req_1", partition="acme", hit=hit(), prompt="What's the capital of France?")
    assert recent.take("req_1", partition="globex") is None  # not theirs
    assert recent.take("req_2", partition="acme") is None  # unknown
    served = recent.take("req_1", partition="acme")
    assert served is not None
    assert (served.entry_id, served.partition, served.similarity) == ("e1", "acme", 0.93)
    assert served.prompt == "What's the capital of France?"
    assert served.cached_prompt == "What is the capital of France?"
    assert recent.take("req_1", partition="acme") is None  # reported once
    assert len(recent) == 0


def test_a_request_id_reused_by_another_partition_keeps_both_hits_apart() -> None:
    recent = RecentHits()
    recent.remember("req_same", partition="acme", hit=hit("a"), prompt="q")
    recent.remember("req_same", partition="globex", hit=hit("g"), prompt="q")
    # The operator's lookup names no partition and finds the latest.
    served = recent.take("req_same")
    assert served is not None and served.entry_id == "g"
    acme = recent.take("req_same", partition="acme")
    assert acme is not None and acme.entry_id == "a"


def test_the_oldest_hits_go_first_by_count_and_by_characters() -> None:
    recent = RecentHits(max_hits=3)
    for number in range(5):
        recent.remember(f"req_{number}", partition="p", hit=hit(), prompt="q")
    assert len(recent) == 3
    assert recent.take("req_1", partition="p") is None
    assert recent.take("req_4", partition="p") is not None

    recent = RecentHits(max_chars=100)
    recent.remember("long", partition="p", hit=hit(prompt="x" * 60), prompt="y" * 30)
    recent.remember("next", partition="p", hit=hit(prompt="x" * 10), prompt="y" * 10)
    assert recent.take("long", partition="p") is None  # 90 + 20 characters: the oldest went
    assert recent.take("next", partition="p") is not None
    # A single hit over the bound is still kept: a report on it works.
    recent.remember("huge", partition="p", hit=hit(prompt="x" * 500), prompt="y")
    assert recent.take("huge", partition="p") is not None


def test_remembering_a_hit_costs_no_more_than_a_dict_insert() -> None:
    recent = RecentHits(max_hits=1000)
    served = hit()
    started = time.perf_counter()
    for number in range(20_000):
        recent.remember(f"req_{number}", partition="p", hit=served, prompt="q")
    per_hit_s = (time.perf_counter() - started) / 20_000
    assert len(recent) == 1000
    assert per_hit_s < 20e-6  # about 1 µs here; a hit costs milliseconds
