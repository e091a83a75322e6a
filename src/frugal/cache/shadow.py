"""Shadow mode (``FRUGAL_CACHE_MODE=shadow``): the upstream answers every request, and frugal
records what the cache would have done, so a threshold can be chosen before anyone is served
from the cache.

For each cacheable request the cache is asked, without counting or touching anything, for its
nearest entry at or above `FLOOR`. When there is one, its stored answer is compared with the
fresh answer the upstream just gave: identical text or not, and the cosine similarity of the
two answers' embeddings. The fresh answer is stored as usual, so the shadow cache fills as the
real one would.

The report gives, per threshold: the would-be hit rate, and among the would-be hits the share
whose answers were identical and the share that diverged (answer similarity below
``diverged_below``): the hits a user would have received a different answer for.

It also estimates the live wrong-hit rate at the threshold in force: of the compared would-be
hits at or above it, the share whose answers diverged (an exact repeat whose answer diverged
counts too: its user would have had the other answer). With an error budget
(``FRUGAL_CACHE_MAX_WRONG_HIT_RATE``) it says whether the estimate runs above it.

Each comparison of a semantic would-be hit is also a labelled pair for ``on_pair``: identical
answers a positive, diverged ones a negative, the ones in between neither (exact repeats are
the same question, and teach nothing about meaning).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from frugal.cache.semantic import Hit, TextEmbedder

logger = logging.getLogger(__name__)

FLOOR = 0.70
THRESHOLDS = (0.70, 0.75, 0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.96, 0.98)
DIVERGED_BELOW = 0.90


@dataclass(frozen=True)
class Comparison:
    similarity: float  # of the prompt to the cached prompt
    exact: bool  # found by the exact tier
    identical: bool  # the cached answer's text is the fresh answer's
    answer_similarity: float | None  # cosine of the two answers' embeddings; None: no text


@dataclass(frozen=True)
class ShadowPair:
    """A labelled pair from a comparison: ``cached_prompt`` would have answered ``prompt``
    (in ``partition``); ``label`` 1 when the answers were identical, 0 when they diverged."""

    prompt: str
    cached_prompt: str
    partition: str
    similarity: float
    answer_similarity: float | None
    label: Literal[0, 1]


PairSink = Callable[[ShadowPair], Awaitable[None]]


def answer_text(response: dict[str, Any]) -> str | None:
    """The text of a chat or completion answer (choices joined), or of a Responses API answer
    (its messages' text parts joined); ``None`` when it has none."""
    parts = []
    for item in response.get("output") or [] if response.get("object") == "response" else []:
        for part in (item.get("content") or []) if isinstance(item, dict) else []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
    for choice in response.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else choice.get("text")
        if isinstance(text, str):
            parts.append(text)
    return "\n".join(parts) if parts else None


class ShadowLog:
    """Counts shadowed requests and compares would-be hits in the background.

    ``floor`` is the lowest similarity the report covers: the lookup that feeds it asks for the
    nearest entry at or above it."""

    floor = FLOOR

    def __init__(
        self,
        embedder: TextEmbedder,
        *,
        threshold: float,
        budget: float | None = None,
        on_pair: PairSink | None = None,
        diverged_below: float = DIVERGED_BELOW,
        limit: int = 100_000,
    ) -> None:
        """``threshold`` is the one in force (the estimate's), ``budget`` the error budget if
        one is set; ``on_pair`` keeps the labelled pairs (its failures are logged)."""
        self.requests = 0
        self.threshold = threshold
        self.budget = budget
        self.diverged_below = diverged_below
        self._embedder = embedder
        self._on_pair = on_pair
        self._comparisons: deque[Comparison] = deque(maxlen=limit)
        self._tasks: set[asyncio.Task[None]] = set()

    def observe(
        self, hit: Hit | None, fresh: dict[str, Any], *, prompt: str, partition: str
    ) -> None:
        """A cacheable request for ``prompt`` in ``partition`` was answered upstream; ``hit``
        is what would have answered."""
        self.requests += 1
        if hit is None:
            return
        compared = self._compare(hit, fresh, prompt=prompt, partition=partition)
        task = asyncio.get_running_loop().create_task(compared)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait for the comparisons under way (the report includes them)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def report(self) -> dict[str, Any]:
        comparisons = list(self._comparisons)
        rows = []
        for threshold in THRESHOLDS:
            hits = [c for c in comparisons if c.similarity >= threshold]
            scored = [c.answer_similarity for c in hits if c.answer_similarity is not None]
            diverged = sum(score < self.diverged_below for score in scored)
            rows.append(
                {
                    "threshold": threshold,
                    "would_be_hits": len(hits),
                    "would_be_hit_rate": len(hits) / self.requests if self.requests else 0.0,
                    "identical": sum(c.identical for c in hits),
                    "identical_share": _ratio(sum(c.identical for c in hits), len(hits)),
                    "diverged": diverged,
                    "diverged_share": _ratio(diverged, len(scored)),
                    "mean_answer_similarity": float(np.mean(scored)) if scored else None,
                }
            )
        return {
            "requests": self.requests,
            "compared": len(comparisons),
            "diverged_below": self.diverged_below,
            "thresholds": rows,
            "estimate": self._estimate(comparisons),
        }

    def _estimate(self, comparisons: list[Comparison]) -> dict[str, Any]:
        """The live wrong-hit rate at the threshold in force: diverged answers among the
        compared would-be hits at or above it."""
        scored = [
            c.answer_similarity
            for c in comparisons
            if c.similarity >= self.threshold and c.answer_similarity is not None
        ]
        wrong = sum(score < self.diverged_below for score in scored)
        rate = _ratio(wrong, len(scored))
        over = None if rate is None or self.budget is None else rate > self.budget
        return {
            "threshold": self.threshold,
            "hits": len(scored),
            "wrong_hits": wrong,
            "wrong_hit_rate": rate,
            "budget": self.budget,
            "over_budget": over,
        }

    async def _compare(
        self, hit: Hit, fresh: dict[str, Any], *, prompt: str, partition: str
    ) -> None:
        cached_text, fresh_text = answer_text(hit.response), answer_text(fresh)
        score = None
        if cached_text is not None and fresh_text is not None:
            try:
                a, b = await asyncio.gather(
                    self._embedder.embed(cached_text), self._embedder.embed(fresh_text)
                )
                score = float(np.dot(a, b))
            except Exception as exc:  # a comparison lost is a gap in a report, nothing more
                logger.warning("shadow comparison failed: %s", exc)
        comparison = Comparison(
            similarity=hit.similarity,
            exact=hit.exact,
            identical=cached_text is not None and cached_text == fresh_text,
            answer_similarity=score,
        )
        self._comparisons.append(comparison)
        label = self._label(comparison)
        if self._on_pair is None or label is None:
            return
        pair = ShadowPair(
            prompt=prompt,
            cached_prompt=hit.prompt,
            partition=partition,
            similarity=hit.similarity,
            answer_similarity=score,
            label=label,
        )
        try:
            await self._on_pair(pair)
        except Exception as exc:  # a pair lost is a gap in the labels, nothing more
            logger.warning("shadow pair not kept: %s: %s", type(exc).__name__, exc)

    def _label(self, comparison: Comparison) -> Literal[0, 1] | None:
        if comparison.exact:
            return None
        if comparison.identical:
            return 1
        score = comparison.answer_similarity
        return 0 if score is not None and score < self.diverged_below else None


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None
