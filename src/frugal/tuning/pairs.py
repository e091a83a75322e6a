"""The labelled pairs a model is tuned on, and the validation split it holds out itself.

A pairs file is what `frugal tune` reads (JSONL ``{"a", "b", "label"}``, plain or ``.gz``,
through `frugal.analysis.thresholds.load_pairs`). The split is by *question cluster*: the two
questions of every pair are joined (union-find over their `frugal.cache.scope.normalise`
forms), and a whole cluster goes to validation when a hash of its smallest member, salted with
the seed, falls under the validation share. No question, in its normalised form, is ever on
both sides, so the validation figures measure questions the model never saw. The same file,
seed and share give the same split on every machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from frugal.analysis.thresholds import Pair, load_pairs
from frugal.cache.scope import normalise
from frugal.tuning.hashing import sha256_file

# The split every tool assumes unless told otherwise: frugal model tune holds out this share of
# question clusters, drawn with this seed; tune --tuning-holdout, the base calibration and the
# model benchmark measure the same side.
DEFAULT_SEED = 0
DEFAULT_VALIDATION_SHARE = 0.1

__all__ = ["Pair", "PairsFile", "Split", "cluster_split", "read_pairs"]


@dataclass(frozen=True)
class PairsFile:
    """A pairs file as read: its ``pairs`` in file order, and the ``sha256`` of its bytes as
    stored (compressed, for a ``.gz``), which names the data in a model's manifest."""

    path: Path
    sha256: str
    pairs: list[Pair]


@dataclass(frozen=True)
class Split:
    """``training`` and ``validation`` pairs, each in file order."""

    training: list[Pair]
    validation: list[Pair]


def read_pairs(path: Path) -> PairsFile:
    """Read ``path``; raises ``OSError`` when it cannot be read, ``ValueError`` on a bad line."""
    return PairsFile(path=path, sha256=sha256_file(path), pairs=load_pairs(path))


def cluster_split(pairs: Sequence[Pair], *, share: float, seed: int) -> Split:
    """Hold out about ``share`` (0 < share < 1) of the question clusters for validation.

    Raises ``ValueError`` for a share outside (0, 1).
    Example: ``cluster_split(pairs, share=0.1, seed=0).validation`` → about a tenth of them.
    """
    if not 0 < share < 1:
        raise ValueError(f"the validation share must be between 0 and 1, not {share}")
    parent: dict[str, str] = {}

    def find(question: str) -> str:
        root = parent.setdefault(question, question)
        while root != parent[root]:
            root = parent[root]
        while question != root:  # path compression keeps later finds short
            parent[question], question = root, parent[question]
        return root

    def join(a: str, b: str) -> None:
        # The smaller text is the root, so a cluster's root is its smallest member.
        first, second = sorted((find(a), find(b)))
        parent[second] = first

    for pair in pairs:
        join(normalise(pair.a), normalise(pair.b))
    training: list[Pair] = []
    validation: list[Pair] = []
    for pair in pairs:
        held_out = _draw(find(normalise(pair.a)), seed) < share
        (validation if held_out else training).append(pair)
    return Split(training=training, validation=validation)


def _draw(member: str, seed: int) -> float:
    """A number in [0, 1) fixed by the cluster's smallest member and the seed."""
    digest = hashlib.sha256(f"{seed}\0{member}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
