"""Folding a batch's lines: cache hits, exact repeats, paraphrases, and what never folds."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import numpy as np

from frugal.cache import CacheKey, Hit, Lookup, SemanticCache
from frugal.deferred import BatchLine
from frugal.deferred.fold import plan_batch
from frugal.provider import Endpoint


def chat(number: int, text: str, model: str = "m") -> BatchLine:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    return BatchLine(number=number, custom_id=f"c{number}", endpoint=Endpoint.CHAT, body=body)


class FakeCache:
    """Answers ``cached`` questions; embeds each text as the vector ``vectors`` gives it."""

    threshold = 0.9

    def __init__(self, vectors: dict[str, list[float]], cached: set[str]) -> None:
        self.vectors, self.cached = vectors, cached
        self.partitions: list[str] = []

    async def lookup(self, key: CacheKey) -> Lookup:
        self.partitions.append(key.partition)
        if key.prompt in self.cached:
            hit = Hit("e", key.prompt, 1.0, {"id": "chatcmpl-1", "answer": key.prompt}, 0.0, True)
            return Lookup(hit=hit)
        return Lookup(hit=None, vector=np.array(self.vectors[key.prompt], dtype=np.float32))


def plan(lines: list[BatchLine], cache: Any) -> Any:
    return asyncio.run(plan_batch(lines, cache=cast(SemanticCache, cache), partition="acme"))


def test_hits_repeats_and_paraphrases_fold_onto_the_first_unique_miss() -> None:
    vectors = {"a": [1, 0], "a said otherwise": [0.95, 0.31], "b": [0, 1]}
    cache = FakeCache(vectors, cached={"cached"})
    lines = [
        chat(1, "a"),
        chat(2, "cached"),
        chat(3, "a "),  # normalised: the same question
        chat(4, "a said otherwise"),
        chat(5, "b"),
    ]
    vectors["a "] = vectors["a"]
    found = plan(lines, cache)
    assert [r.kind for r in found.resolutions] == ["miss", "hit", "exact", "meaning", "miss"]
    assert [r.miss for r in found.resolutions] == [0, None, 0, 0, 1]
    assert found.misses == [0, 4]
    assert set(cache.partitions) == {"acme"}


def test_a_similar_question_of_another_scope_never_folds() -> None:
    cache = FakeCache({"a": [1, 0]}, cached=set())
    found = plan([chat(1, "a", model="m1"), chat(2, "a", model="m2")], cache)
    assert [r.kind for r in found.resolutions] == ["miss", "miss"]


def test_below_the_threshold_nothing_folds() -> None:
    cache = FakeCache({"a": [1, 0], "b": [0.8, 0.6]}, cached=set())
    found = plan([chat(1, "a"), chat(2, "b")], cache)
    assert found.misses == [0, 1]


def test_lines_that_are_not_cacheable_are_each_their_own_miss() -> None:
    embed = BatchLine(1, "e1", Endpoint.EMBEDDINGS, {"model": "e", "input": "x"})
    again = BatchLine(2, "e2", Endpoint.EMBEDDINGS, {"model": "e", "input": "x"})
    found = plan([embed, again], FakeCache({}, cached=set()))
    assert found.misses == [0, 1]


def test_without_a_cache_only_exact_repeats_fold() -> None:
    found = plan([chat(1, "a"), chat(2, "a"), chat(3, "A")], None)
    assert [r.kind for r in found.resolutions] == ["miss", "exact", "miss"]
