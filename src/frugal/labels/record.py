"""A labelled pair learned from operation, in the public pairs format.

``{"a", "b", "label"}`` is what ``frugal tune --pairs`` and ``frugal model tune --pairs`` read:
``a`` the cached prompt, ``b`` the prompt that was (or would have been) answered from it, and
``label`` 1 when they mean the same, 0 when they do not. The other fields say where the pair
came from, so a user can choose which to train on:

- ``source``: ``feedback`` (a hit reported wrong: always 0) or ``shadow`` (shadow mode compared
  the cached answer with the fresh one: 1 when identical, 0 when clearly diverged);
- ``similarity``: the two prompts' cosine similarity under ``model`` (the embedder's id);
- ``answer_similarity``: for shadow pairs, the two answers' cosine similarity, so a stricter
  cut than the recorded one can be made;
- ``partition``, ``created_at`` (unix seconds), ``request_id`` (feedback pairs).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

from frugal.cache import ShadowPair
from frugal.labels.recent import ServedHit

Source = Literal["feedback", "shadow"]


@dataclass(frozen=True, kw_only=True)
class LabelledPair:
    a: str
    b: str
    label: Literal[0, 1]
    source: Source
    similarity: float
    model: str
    partition: str
    created_at: float
    request_id: str | None = None
    answer_similarity: float | None = None

    def as_row(self) -> dict[str, Any]:
        """The pair as one JSONL row (``a``, ``b`` and ``label`` first)."""
        return asdict(self)


def reported(served: ServedHit, *, model: str) -> LabelledPair:
    """The negative pair of a hit reported wrong."""
    return LabelledPair(
        a=served.cached_prompt,
        b=served.prompt,
        label=0,
        source="feedback",
        similarity=served.similarity,
        model=model,
        partition=served.partition,
        created_at=time.time(),
        request_id=served.request_id,
    )


def compared(pair: ShadowPair, *, model: str) -> LabelledPair:
    """The pair of a shadow comparison, labelled as the comparison found."""
    return LabelledPair(
        a=pair.cached_prompt,
        b=pair.prompt,
        label=pair.label,
        source="shadow",
        similarity=pair.similarity,
        model=model,
        partition=pair.partition,
        created_at=time.time(),
        answer_similarity=pair.answer_similarity,
    )
