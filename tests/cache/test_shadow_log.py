"""Shadow mode's log on its own: the live wrong-hit estimate at the threshold in force, against
the budget, and the labelled pairs its comparisons give."""

from __future__ import annotations

from typing import Any

import numpy as np

from frugal.cache import Hit, ShadowLog, ShadowPair


class AnswerEmbedder:
    """Unit vectors chosen per answer text: answers starting with "A" point one way, "B"
    another (cosine 0.5 between them), anything else a third way."""

    async def embed(self, text: str) -> np.ndarray:
        first = text[:1]
        if first == "A":
            return np.array([1.0, 0.0, 0.0], dtype=np.float32)
        if first == "B":
            return np.array([0.5, np.sqrt(0.75), 0.0], dtype=np.float32)
        return np.array([0.0, 0.0, 1.0], dtype=np.float32)


def answer(text: str) -> dict[str, Any]:
    return {"choices": [{"message": {"role": "assistant", "content": text}}]}


def would_be(similarity: float, cached: str, *, exact: bool = False) -> Hit:
    return Hit(
        entry_id="e",
        prompt=f"cached prompt {similarity}",
        similarity=similarity,
        response=answer(cached),
        age_s=0.0,
        exact=exact,
    )


async def observe(log: ShadowLog, hit: Hit | None, fresh: str) -> None:
    log.observe(hit, answer(fresh), prompt=f"asked {fresh}", partition="acme")
    await log.settle()


async def test_the_estimate_counts_diverged_answers_at_or_above_the_threshold() -> None:
    pairs: list[ShadowPair] = []

    async def keep(pair: ShadowPair) -> None:
        pairs.append(pair)

    log = ShadowLog(AnswerEmbedder(), threshold=0.9, budget=0.2, on_pair=keep)
    await observe(log, None, "A1")  # no would-be hit
    await observe(log, would_be(0.95, "A same"), "A same")  # identical: right
    await observe(log, would_be(0.92, "A one"), "A two")  # answers alike (cosine 1): right
    await observe(log, would_be(0.90, "A cached"), "B fresh")  # diverged, at the threshold
    await observe(log, would_be(0.85, "A cached"), "B fresh")  # diverged, below it: not live
    await observe(log, would_be(1.0, "A", exact=True), "A")  # an exact repeat, identical
    estimate = log.report()["estimate"]
    assert estimate == {
        "threshold": 0.9,
        "hits": 4,
        "wrong_hits": 1,
        "wrong_hit_rate": 0.25,
        "budget": 0.2,
        "over_budget": True,
    }
    # The labelled pairs: identical answers are positives, diverged ones negatives; answers
    # alike but not identical are neither, and the exact repeat teaches nothing.
    assert [(p.similarity, p.label) for p in pairs] == [(0.95, 1), (0.90, 0), (0.85, 0)]
    diverged = pairs[1]
    assert diverged.prompt == "asked B fresh" and diverged.cached_prompt == "cached prompt 0.9"
    assert diverged.partition == "acme"
    assert diverged.answer_similarity is not None and abs(diverged.answer_similarity - 0.5) < 1e-6


async def test_within_the_budget_or_without_one() -> None:
    log = ShadowLog(AnswerEmbedder(), threshold=0.9, budget=0.5)
    await observe(log, would_be(0.95, "A cached"), "B fresh")
    await observe(log, would_be(0.95, "A"), "A")
    assert log.report()["estimate"]["over_budget"] is False  # 50% is within 50%
    unbudgeted = ShadowLog(AnswerEmbedder(), threshold=0.9)
    assert unbudgeted.report()["estimate"]["wrong_hit_rate"] is None  # nothing compared yet
    await observe(unbudgeted, would_be(0.95, "A cached"), "B fresh")
    estimate = unbudgeted.report()["estimate"]
    assert (estimate["wrong_hit_rate"], estimate["over_budget"]) == (1.0, None)


async def test_a_pair_that_cannot_be_kept_loses_nothing_else() -> None:
    async def broken(pair: ShadowPair) -> None:
        raise OSError("disk full")

    log = ShadowLog(AnswerEmbedder(), threshold=0.9, on_pair=broken)
    await observe(log, would_be(0.95, "A cached"), "B fresh")
    assert log.report()["compared"] == 1
