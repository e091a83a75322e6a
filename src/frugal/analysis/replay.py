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
from typing import TYPE_CHECKING, Any

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


def neighbours(
    vectors: np.ndarray, scopes: Sequence[str], floor: float
) -> list[list[tuple[int, float]]]:
    """For each prompt, the earlier prompts of its scope at or above ``floor``, best first."""
    scope_ids = np.unique(np.asarray(scopes), return_inverse=True)[1]
    found: list[list[tuple[int, float]]] = []
    for start in range(0, len(vectors), _BLOCK):
        stop = min(start + _BLOCK, len(vectors))
        sims = vectors[start:stop] @ vectors[:stop].T
        for row in range(stop - start):
            i = start + row
            candidates = np.flatnonzero(sims[row, :i] >= floor)
            candidates = candidates[scope_ids[candidates] == scope_ids[i]]
            ranked = sorted(
                ((int(j), float(sims[row, j])) for j in candidates), key=lambda c: -c[1]
            )
            found.append(ranked)
    return found


def replay_semantic(
    prompts: Sequence[Prompt],
    near: Sequence[list[tuple[int, float]]],
    threshold: float,
    *,
    detail_intents: frozenset[str] = frozenset(),
) -> Replay:
    stored = np.zeros(len(prompts), dtype=bool)
    answered_by = [-1] * len(prompts)
    for i in range(len(prompts)):
        for j, similarity in near[i]:
            if similarity < threshold:
                break
            if stored[j]:  # the nearest cached prompt: a hit
                answered_by[i] = j
                break
        if answered_by[i] < 0:
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


def write_outputs(
    rows: list[dict[str, Any]],
    exact: dict[str, Any],
    top: list[dict[str, Any]],
    out: Path,
    *,
    source: str,
    total: int,
    order: str,
) -> tuple[Path, Path]:
    """``analyze.json`` and ``analyze.png`` (hit rate and wrong-hit rate by threshold)."""
    table = {
        "source": source,
        "prompts": total,
        "order": order,
        "exact": exact,
        "semantic": rows,
        "clusters": top,
    }

    def draw(axis: Axes) -> None:
        x = [row["threshold"] for row in rows]
        hit_rates = [row["hit_rate"] for row in rows]
        axis.plot(x, hit_rates, "o-", color="#1f9d6b", label="semantic hit rate")
        axis.axhline(
            exact["hit_rate"], color="#8a93a6", linestyle="--", label="exact-string hit rate"
        )
        if rows and rows[0]["wrong_hit_rate"] is not None:
            axis.plot(
                x,
                [row["wrong_hit_rate"] or 0.0 for row in rows],
                "s-",
                color="#c0392b",
                label="wrong hits (share of hits)",
            )
        axis.set_ylim(0, 1)
        axis.set_title(f"frugal analyze: {source} ({total:,} prompts)")
        axis.legend(fontsize=9)

    return write_json_and_png(out, "analyze", table, draw)
