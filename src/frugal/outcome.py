"""What happened to a request: the one vocabulary of the pipeline, records, metrics, logs,
the summary and the dashboard.

A list answered item by item (embeddings, completions with a list of prompts) is a hit when
every item came from the cache, a miss when none did, and ``partial`` otherwise: one upstream
call of its own for the items the cache did not hold. For the hit rate a partial list is a
request the cache was asked about and did not answer whole (the per-item counts say how much
of it the cache answered); the tokens of its cached items count as saved.
"""

from __future__ import annotations

import enum

__all__ = ["Outcome"]


class Outcome(enum.StrEnum):
    HIT_EXACT = "hit_exact"  # answered from the cache: the same question, normalised
    HIT_SEMANTIC = "hit_semantic"  # answered from the cache: a question of the same meaning
    COALESCED = "coalesced"  # answered by an equal request's upstream call, in flight at once
    MISS = "miss"  # looked up, not found, answered upstream
    PARTIAL = "partial"  # a list: some items from the cache, the others upstream in one call
    BYPASS = "bypass"  # the cache was not read: off, not cacheable, or no-cache
    SHADOW = "shadow"  # shadow mode: answered upstream, what the cache would have done recorded
    ERROR = "error"  # no answer: the request failed

    @property
    def header(self) -> str:
        """The ``x-frugal-cache`` value (and latency class): both hit tiers are a ``hit``."""
        return "hit" if self in _HITS else self.value

    @property
    def is_hit(self) -> bool:
        return self in _HITS

    @property
    def saved(self) -> bool:
        """Answered without an upstream call of its own."""
        return self in _HITS or self is Outcome.COALESCED

    @property
    def saves_tokens(self) -> bool:
        """Some of the answer cost no upstream tokens: a hit, a coalesced request, or the
        cached items of a partial list (the record's tokens are those saved)."""
        return self.saved or self is Outcome.PARTIAL

    @property
    def called_upstream(self) -> bool:
        """The request's own upstream call answered it (a batched call counts once per request)."""
        return self in (Outcome.MISS, Outcome.PARTIAL, Outcome.BYPASS, Outcome.SHADOW)

    @property
    def looked_up(self) -> bool:
        """The cache was asked and answered or missed (the hit rate's denominator)."""
        return self.saved or self in (Outcome.MISS, Outcome.PARTIAL)


_HITS = frozenset({Outcome.HIT_EXACT, Outcome.HIT_SEMANTIC})
