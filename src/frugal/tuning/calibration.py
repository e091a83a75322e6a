"""The validation curve of a model: how each threshold trades wrong hits for hits.

Computed by `frugal.analysis.thresholds` (the table `frugal tune` prints) on the held-out pairs,
embedded by the model under test through `frugal.cache.embedder.OnnxEmbedder`, the serving
path itself: the figures a manifest records are the ones the gateway will see. Beside the
table, the point at a fixed recall (`RECALL_TARGET`, 0.40) compares models at the same recall,
where a threshold grid would compare them at different ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from frugal.analysis.thresholds import Pair, Row, evaluate, similarities
from frugal.cache.embedder import Embedder

RECALL_TARGET = 0.40


@dataclass(frozen=True)
class AtRecall:
    """The highest threshold whose recall reaches ``target``, and what it gives there
    (``recall`` may pass ``target`` when duplicates tie at that similarity)."""

    target: float
    threshold: float
    precision: float
    recall: float
    hit_rate: float


@dataclass(frozen=True)
class Curve:
    """A model's ``rows`` (thresholds 0.70–0.99) and its point ``at_recall`` (``None``
    without duplicates), with the ``similarities`` they came from, pair by pair."""

    rows: list[Row]
    at_recall: AtRecall | None
    similarities: np.ndarray


def measure(embedder: Embedder, pairs: Sequence[Pair]) -> Curve:
    """Embed ``pairs`` with ``embedder`` and tabulate them."""
    sims = similarities(embedder, pairs)
    same = labels(pairs)
    return Curve(rows=evaluate(sims, same), at_recall=at_recall(sims, same), similarities=sims)


def labels(pairs: Sequence[Pair]) -> np.ndarray:
    """The pairs' labels as booleans (True: duplicates)."""
    return np.array([pair.same for pair in pairs], dtype=bool)


def at_recall(sims: np.ndarray, same: np.ndarray, target: float = RECALL_TARGET) -> AtRecall | None:
    """The operating point of ``sims`` at recall ``target`` (0 < target ≤ 1), or ``None``
    when no pair is a duplicate."""
    duplicates = np.sort(sims[same])[::-1]
    if not len(duplicates):
        return None
    threshold = float(duplicates[math.ceil(target * len(duplicates)) - 1])
    precision, recall, hit_rate = at_threshold(sims, same, threshold)
    assert precision is not None, "the duplicate at the threshold is a hit"
    return AtRecall(target, threshold, precision, recall, hit_rate)


def at_threshold(
    sims: np.ndarray, same: np.ndarray, threshold: float
) -> tuple[float | None, float, float]:
    """Precision (``None``: no hits), recall and hit rate at ``threshold``."""
    hit = sims >= threshold
    hits = int(hit.sum())
    right = int((hit & same).sum())
    positives = int(same.sum())
    return (
        right / hits if hits else None,
        right / positives if positives else 0.0,
        hits / len(sims) if len(sims) else 0.0,
    )
