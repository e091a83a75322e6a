"""Models compared at the same savings on a replayed log, not at the same threshold.

A threshold means something else to each model (a tuned model spreads its similarities its own
way), so two models at one threshold save different shares of the calls, and their wrong hits
cannot be set side by side. Here a model's replays (`frugal.analysis.replay`) trace its curve,
a `Point` per threshold (hit rate, wrong-hit rate), over the range of hit rates another model
reaches, and `at_hit_rate` reads the curve at the other model's hit rate, interpolating
between the two thresholds around it.

    reference = replay_points(prompts, near, [0.85, 0.90, 0.95])
    curve = curve_spanning(prompts, vectors, low=reference[-1].hit_rate,
                           high=reference[0].hit_rate)
    at_hit_rate(curve, reference[1].hit_rate)  # (its threshold, its wrong-hit rate)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from frugal.analysis.replay import Near, Prompt, neighbours, replay_semantic

_BLOCK = 512
_STEP = 0.02  # how far the floor is lowered at a time, until the hit rate is reached
_GRID = 41


@dataclass(frozen=True)
class Point:
    """A replay at ``threshold``: ``hits`` of the prompts served from the cache (``hit_rate``
    of them), ``wrong_hits`` of those wrong by label (``wrong_rate``; 0 without hits)."""

    threshold: float
    hit_rate: float
    wrong_rate: float
    hits: int
    wrong_hits: int


def replay_points(
    prompts: Sequence[Prompt], near: Sequence[Near], thresholds: Iterable[float]
) -> list[Point]:
    """A point per threshold, by increasing threshold; ``near``'s floor must not exceed the
    lowest. Raises ``ValueError`` when a prompt has no intent (nothing tells a wrong hit)."""
    if any(prompt.intent is None for prompt in prompts):
        raise ValueError("wrong hits are told by intents: every prompt needs one")
    points = []
    for threshold in sorted(thresholds):
        result = replay_semantic(prompts, near, threshold)
        wrong = result.wrong_hits or 0
        rate = wrong / result.hits if result.hits else 0.0
        points.append(Point(threshold, result.hits / len(prompts), rate, result.hits, wrong))
    return points


def curve_spanning(
    prompts: Sequence[Prompt],
    vectors: np.ndarray,
    *,
    low: float,
    high: float,
    include: Iterable[float] = (),
) -> list[Point]:
    """The model's points (its ``vectors``, unit rows in replay order) at thresholds whose hit
    rates span ``low`` to ``high`` (0 ≤ low ≤ high ≤ 1): 41 evenly spaced, with those of
    ``include`` that fall in between.

    A hit needs an earlier prompt of its scope at the threshold, so the share of prompts that
    have one bounds the hit rate from above: where that share is ``low`` is the top of the
    range. The floor starts where it is ``high`` and is lowered until the replay's hit rate
    reaches ``high``.
    """
    scopes = [prompt.scope for prompt in prompts]
    ranked = np.sort(_best_earlier(vectors, scopes))[::-1]
    top = float(ranked[min(len(ranked) - 1, int(low * len(ranked)))]) + 1e-6
    floor = float(ranked[min(len(ranked) - 1, int(high * len(ranked)))]) - _STEP
    while True:
        near = neighbours(vectors, scopes, floor=floor)
        if floor <= -1 or replay_points(prompts, near, [floor])[0].hit_rate >= high:
            break
        floor -= _STEP
    grid = {*np.linspace(floor, top, _GRID).tolist(), *include}
    return replay_points(prompts, near, [t for t in grid if floor <= t <= top])


def at_hit_rate(points: Sequence[Point], rate: float) -> tuple[float, float] | None:
    """The threshold and wrong-hit rate at which ``points`` (by increasing threshold) reach hit
    rate ``rate``, interpolated linearly between the first two thresholds around it; ``None``
    when ``rate`` is outside the points' range."""
    for first, second in pairwise(points):
        if second.hit_rate <= rate <= first.hit_rate:
            span = first.hit_rate - second.hit_rate
            step = 0.0 if span == 0 else (first.hit_rate - rate) / span
            threshold = first.threshold + step * (second.threshold - first.threshold)
            return threshold, first.wrong_rate + step * (second.wrong_rate - first.wrong_rate)
    return None


def _best_earlier(vectors: np.ndarray, scopes: Sequence[str]) -> np.ndarray:
    """Each prompt's highest similarity to an earlier prompt of its scope (−1: none)."""
    scope_ids = np.unique(np.asarray(scopes), return_inverse=True)[1]
    best = np.full(len(vectors), -1.0)
    for start in range(0, len(vectors), _BLOCK):
        stop = min(start + _BLOCK, len(vectors))
        sims = vectors[start:stop] @ vectors[:stop].T
        later = np.arange(stop)[None, :] >= np.arange(start, stop)[:, None]
        elsewhere = scope_ids[None, :stop] != scope_ids[start:stop, None]
        sims[later | elsewhere] = -1.0
        best[start:stop] = sims.max(axis=1)
    return best
