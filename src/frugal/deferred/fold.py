"""Which lines of a batch need the provider at all.

In input order, each line is resolved as one of:

- ``hit``: the cache answers it (`SemanticCache.lookup` with the line's `cache_key` in the
  batch's partition: the same scope rules and threshold as a live request, never another
  partition's answers);
- ``exact``: an earlier unanswered line has the same scope and normalised question: it gets
  that line's answer;
- ``meaning``: an earlier unanswered line of the same scope means the same (the embedder's
  cosine similarity at or above the cache's threshold): it gets that line's answer;
- ``miss``: none of these; it goes upstream, one of the batch's unique misses.

A line that is not cacheable (an embedding, a stateful Responses call, ...) is always its own
miss: what it asks cannot be compared. Without a cache, only exact repeats are folded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from frugal.cache import CacheKey, Lookup, SemanticCache, cache_key
from frugal.deferred.lines import BatchLine

LOOKUPS_AT_ONCE = 32  # lookups in flight together: enough to fill the embedder's batches


@dataclass
class Resolution:
    """How one line is answered: ``kind`` is ``hit``, ``exact``, ``meaning`` or ``miss``;
    ``miss`` indexes `Plan.misses` (the line's own, or the one it folds onto)."""

    kind: str
    miss: int | None = None
    response: dict[str, Any] | None = None  # a hit's cached answer
    similarity: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "miss": self.miss,
            "response": self.response,
            "similarity": self.similarity,
        }


@dataclass
class Plan:
    """One `Resolution` per line, in input order; ``misses`` the indexes of the lines that go
    upstream (each once); ``vectors`` their embeddings where known (kept to store their
    answers without embedding again; not persisted)."""

    resolutions: list[Resolution]
    misses: list[int]
    vectors: dict[int, np.ndarray] = field(default_factory=dict)

    def count(self, kind: str) -> int:
        return sum(1 for resolution in self.resolutions if resolution.kind == kind)

    def as_json(self) -> dict[str, Any]:
        return {
            "resolutions": [resolution.as_json() for resolution in self.resolutions],
            "misses": self.misses,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls(
            resolutions=[Resolution(**item) for item in data["resolutions"]],
            misses=list(data["misses"]),
        )


def key_of(line: BatchLine, *, partition: str, user_is_label: bool) -> CacheKey | None:
    return cache_key(line.endpoint, line.body, partition=partition, user_is_label=user_is_label)


async def plan_batch(
    lines: Sequence[BatchLine],
    *,
    cache: SemanticCache | None,
    partition: str,
    user_is_label: bool = True,
) -> Plan:
    """Resolve every line (see the module's docstring)."""
    keys = [key_of(line, partition=partition, user_is_label=user_is_label) for line in lines]
    lookups = await _look_up(keys, cache)
    threshold = cache.threshold if cache is not None else None
    resolutions: list[Resolution] = []
    misses: list[int] = []
    vectors: dict[int, np.ndarray] = {}
    exact: dict[tuple[str, str], int] = {}
    by_scope: dict[str, list[tuple[int, np.ndarray]]] = {}
    for index, (key, lookup) in enumerate(zip(keys, lookups, strict=True)):
        if lookup.hit is not None:
            hit = lookup.hit
            resolutions.append(Resolution("hit", response=hit.response, similarity=hit.similarity))
            continue
        if key is None:
            resolutions.append(Resolution("miss", miss=len(misses)))
            misses.append(index)
            continue
        earlier = exact.get((key.scope, key.prompt_hash))
        if earlier is not None:
            resolutions.append(Resolution("exact", miss=earlier, similarity=1.0))
            continue
        vector = _unit(lookup.vector)
        if vector is not None and threshold is not None:
            folded = _nearest(by_scope.get(key.scope, []), vector, threshold)
            if folded is not None:
                resolutions.append(Resolution("meaning", miss=folded[0], similarity=folded[1]))
                continue
        number = len(misses)
        resolutions.append(Resolution("miss", miss=number))
        misses.append(index)
        exact[(key.scope, key.prompt_hash)] = number
        if vector is not None:
            by_scope.setdefault(key.scope, []).append((number, vector))
            vectors[index] = vector
    return Plan(resolutions=resolutions, misses=misses, vectors=vectors)


async def _look_up(keys: list[CacheKey | None], cache: SemanticCache | None) -> list[Lookup]:
    if cache is None:
        return [Lookup(hit=None) for _ in keys]
    gate = asyncio.Semaphore(LOOKUPS_AT_ONCE)

    async def one(key: CacheKey | None) -> Lookup:
        if key is None:
            return Lookup(hit=None)
        async with gate:
            return await cache.lookup(key)

    return list(await asyncio.gather(*(one(key) for key in keys)))


def _unit(vector: np.ndarray | None) -> np.ndarray | None:
    if vector is None:
        return None
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else None


def _nearest(
    earlier: list[tuple[int, np.ndarray]], vector: np.ndarray, threshold: float
) -> tuple[int, float] | None:
    """The most similar earlier miss at or above ``threshold``, with its similarity."""
    if not earlier:
        return None
    matrix = np.stack([candidate for _, candidate in earlier])
    similarities = matrix @ vector
    best = int(np.argmax(similarities))
    similarity = float(similarities[best])
    return (earlier[best][0], similarity) if similarity >= threshold else None
