"""`frugal analyze`: what a cache would have done on a prompt log, replayed in order.

Input: JSONL with ``text`` and optionally ``scope`` (anything JSON: prompts share answers only
within equal scopes), ``timestamp`` (the replay order; file order otherwise) and ``intent``
(ground truth: a hit whose cached prompt has another intent is a wrong hit).

The replay is the gateway's own logic on a fresh, unbounded cache: a prompt whose nearest
*cached* prompt of its scope is at or above the threshold is a hit (and is not stored); a miss
is stored. It runs once per threshold, since what is cached depends on it. Beside it, an
exact-string cache (the gateway's exact tier: NFKC, spaces collapsed) on the same log.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from frugal.analysis.outputs import write_json_and_png
from frugal.cache.scope import normalise
from frugal.datafiles import read_records

if TYPE_CHECKING:
    from matplotlib.axes import Axes

# Labels whose prompts never share an answer, even with each other (CLINC150's out-of-scope).
NEVER_SHARED = frozenset({"oos"})
_BLOCK = 512


@dataclass(frozen=True)
class Prompt:
    text: str
    scope: str = ""
    intent: str | None = None


class Near(NamedTuple):
    """A prompt's earlier neighbours of its scope, best first: their ``indices`` and
    ``similarities`` (descending)."""

    indices: np.ndarray
    similarities: np.ndarray


@dataclass
class Replay:
    """One replay's result; ``answered_by[i]`` is the prompt whose answer ``i`` got (-1: miss)."""

    name: str
    threshold: float | None
    hits: int
    wrong_hits: int | None
    answered_by: list[int] = field(repr=False)
    detail_hits: int | None = None  # right by label, in intents whose answers carry details

    def summary(self, total: int) -> dict[str, Any]:
        return {
            "cache": self.name,
            "threshold": self.threshold,
            "hits": self.hits,
            "hit_rate": self.hits / total if total else 0.0,
            "upstream_calls": total - self.hits,
            "calls_saved": self.hits / total if total else 0.0,
            "wrong_hits": self.wrong_hits,
            "wrong_hit_rate": (
                self.wrong_hits / self.hits if self.wrong_hits is not None and self.hits else None
            ),
            "detail_hits": self.detail_hits,
        }


def _with_text(record: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(record["text"], str):
        raise TypeError("text must be a string")
    return record


def load_prompts(path: Path, *, shuffle_seed: int | None = None) -> list[Prompt]:
    """The log in replay order: by ``timestamp`` when every line has one, else as written (or
    shuffled with ``shuffle_seed``). ``path`` may be gzip-compressed (``.gz``)."""
    records = read_records(path, _with_text, expected='needs at least {"text"}')
    if not records:
        raise ValueError(f"{path} holds no prompts")
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(records)
    elif all("timestamp" in record for record in records):
        records.sort(key=lambda record: record["timestamp"])
    return [
        Prompt(
            text=record["text"],
            scope=json.dumps(record.get("scope"), sort_keys=True),
            intent=str(record["intent"]) if record.get("intent") is not None else None,
        )
        for record in records
    ]


def neighbours(vectors: np.ndarray, scopes: Sequence[str], floor: float) -> list[Near]:
    """For each prompt, the earlier prompts of its scope at or above ``floor``, best first."""
    scope_ids = np.unique(np.asarray(scopes), return_inverse=True)[1]
    found: list[Near] = []
    for start in range(0, len(vectors), _BLOCK):
        stop = min(start + _BLOCK, len(vectors))
        sims = vectors[start:stop] @ vectors[:stop].T
        for row in range(stop - start):
            i = start + row
            candidates = np.flatnonzero(sims[row, :i] >= floor)
            candidates = candidates[scope_ids[candidates] == scope_ids[i]]
            # A stable sort: equal similarities keep the earlier prompt first.
            ranked = candidates[np.argsort(-sims[row, candidates], kind="stable")]
            # float64, so that a threshold compares as a Python float does (float32 would round
            # 0.9 up to the similarity just below it).
            found.append(Near(ranked, sims[row, ranked].astype(np.float64)))
    return found


def replay_semantic(
    prompts: Sequence[Prompt],
    near: Sequence[Near],
    threshold: float,
    *,
    detail_intents: frozenset[str] = frozenset(),
) -> Replay:
    """The replay at ``threshold``, which ``near``'s floor must not exceed."""
    stored = np.zeros(len(prompts), dtype=bool)
    answered_by = [-1] * len(prompts)
    for i in range(len(prompts)):
        indices, sims = near[i]
        within = indices[: int(np.count_nonzero(sims >= threshold))]
        cached = within[stored[within]]
        if len(cached):  # the nearest cached prompt: a hit
            answered_by[i] = int(cached[0])
        else:
            stored[i] = True
    return _result(f"semantic {threshold:.2f}", threshold, prompts, answered_by, detail_intents)


def replay_exact(
    prompts: Sequence[Prompt], *, detail_intents: frozenset[str] = frozenset()
) -> Replay:
    first: dict[tuple[str, str], int] = {}
    answered_by = [-1] * len(prompts)
    for i, prompt in enumerate(prompts):
        key = (prompt.scope, normalise(prompt.text))
        if key in first:
            answered_by[i] = first[key]
        else:
            first[key] = i
    return _result("exact", None, prompts, answered_by, detail_intents)


def wrong(asked: Prompt, cached: Prompt) -> bool:
    """Whether serving ``cached``'s answer to ``asked`` is wrong, by their labels."""
    return asked.intent != cached.intent or asked.intent in NEVER_SHARED


def _result(
    name: str,
    threshold: float | None,
    prompts: Sequence[Prompt],
    answered_by: list[int],
    detail_intents: frozenset[str],
) -> Replay:
    hits = [(i, j) for i, j in enumerate(answered_by) if j >= 0]
    if not all(prompt.intent is not None for prompt in prompts):
        return Replay(name, threshold, len(hits), None, answered_by)
    wrong_hits = sum(wrong(prompts[i], prompts[j]) for i, j in hits)
    detail = sum(
        not wrong(prompts[i], prompts[j]) and prompts[i].intent in detail_intents for i, j in hits
    )
    return Replay(name, threshold, len(hits), wrong_hits, answered_by, detail)


def clusters(
    prompts: Sequence[Prompt], result: Replay, *, top: int = 10, examples: int = 4
) -> list[dict[str, Any]]:
    """The cached prompts that answered most others, with a few of the prompts they answered."""
    answered: dict[int, list[int]] = {}
    for i, j in enumerate(result.answered_by):
        if j >= 0:
            answered.setdefault(j, []).append(i)
    ranked = sorted(answered.items(), key=lambda item: -len(item[1]))[:top]
    return [
        {
            "cached": prompts[j].text,
            "intent": prompts[j].intent,
            "answered": len(members),
            "examples": [prompts[i].text for i in members[:examples]],
            "wrong": (
                sum(wrong(prompts[i], prompts[j]) for i in members)
                if prompts[j].intent is not None
                else None
            ),
        }
        for j, members in ranked
    ]


@dataclass(frozen=True)
class ModelReplays:
    """One model's replays: its ``model`` label (as given to ``--models``), its ``model_id``,
    a summary per threshold (``rows``) and its largest clusters (``top``)."""

    model: str
    model_id: str
    rows: list[dict[str, Any]]
    top: list[dict[str, Any]]


# One colour per model, in the order given; the first is the configured model's.
MODEL_COLOURS = ("#1f9d6b", "#3d5afe", "#d9822b", "#8e44ad", "#8a93a6", "#1d2330")


def write_outputs(
    replays: Sequence[ModelReplays],
    exact: dict[str, Any],
    out: Path,
    *,
    source: str,
    total: int,
    order: str,
) -> tuple[Path, Path]:
    """``analyze.json`` and ``analyze.png`` (hit rate and wrong-hit rate by threshold).

    With one model, ``semantic`` and ``clusters`` are its; with several, ``models`` lists each
    (``model``, ``id``), each row of ``semantic`` and each cluster names its ``model``, and the
    chart has a hit-rate and a wrong-hit-rate curve per model.
    """
    table: dict[str, Any] = {"source": source, "prompts": total, "order": order, "exact": exact}
    if len(replays) == 1:
        table["semantic"], table["clusters"] = replays[0].rows, replays[0].top
    else:
        table["models"] = [{"model": one.model, "id": one.model_id} for one in replays]
        table["semantic"] = [{"model": one.model, **row} for one in replays for row in one.rows]
        table["clusters"] = [{"model": one.model, **top} for one in replays for top in one.top]

    def draw(axis: Axes) -> None:
        several = len(replays) > 1
        for number, one in enumerate(replays):
            x = [row["threshold"] for row in one.rows]
            name = f"{one.model}: " if several else ""
            colour = MODEL_COLOURS[number % len(MODEL_COLOURS)]
            hits = [row["hit_rate"] for row in one.rows]
            axis.plot(x, hits, "o-", color=colour, label=f"{name}semantic hit rate")
            if one.rows and one.rows[0]["wrong_hit_rate"] is not None:
                wrong = [row["wrong_hit_rate"] or 0.0 for row in one.rows]
                # One model: red for wrong hits; several: the model's colour, dashed.
                style, shade = ("s--", colour) if several else ("s-", "#c0392b")
                axis.plot(x, wrong, style, color=shade, label=f"{name}wrong hits (share of hits)")
        axis.axhline(
            exact["hit_rate"], color="#8a93a6", linestyle="--", label="exact-string hit rate"
        )
        axis.set_ylim(0, 1)
        axis.set_title(f"frugal analyze: {source} ({total:,} prompts)")
        axis.legend(fontsize=9)

    return write_json_and_png(out, "analyze", table, draw)
