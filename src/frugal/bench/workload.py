"""Prompt streams for `frugal bench`, drawn from labelled public data with a popularity skew.

Two input shapes, the ones `tune` and `analyze` read:

- intents, ``{"text", "intent"}`` (CLINC150): a group is an intent; utterances labelled
  ``oos`` (out of scope) are each a group of their own, since they never share an answer;
- pairs, ``{"a", "b", "label"}`` (Quora): a group is a cluster of questions joined by
  duplicate pairs (transitively); a question in no duplicate pair is a group of its own.

A stream draws a group by Zipf popularity (rank r has weight 1/r^s) and then one of its texts
uniformly. Groups of several texts take the first ranks, in an order shuffled by the seed, and
lone texts the rest: a question that many people ask is asked in many ways, and a lone
(or out-of-scope) text repeated verbatim at the head of the stream would flatter exact caching.
Serving a prompt an answer cached for another group is a wrong hit. One seed, one stream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from frugal.datafiles import open_data

NEVER_SHARED = "oos"


@dataclass(frozen=True)
class Workload:
    """Texts grouped by meaning; ``groups[g]`` lists indexes into ``texts``."""

    name: str
    texts: list[str]
    groups: list[list[int]]

    def group_of(self) -> dict[str, int]:
        """Each text's group (a text in several groups keeps its first)."""
        found: dict[str, int] = {}
        for number, members in enumerate(self.groups):
            for index in members:
                found.setdefault(self.texts[index], number)
        return found


@dataclass(frozen=True)
class Draw:
    text: str
    group: int


def load_workload(path: Path) -> Workload:
    """An intents file or a pairs file, told apart by its first line; plain or gzip (``.gz``)."""
    with open_data(path) as file:
        lines = [json.loads(line) for line in file if line.strip()]
    if not lines:
        raise ValueError(f"{path} is empty")
    if {"text", "intent"} <= lines[0].keys():
        return _from_intents(path.name, lines)
    if {"a", "b", "label"} <= lines[0].keys():
        return _from_pairs(path.name, lines)
    raise ValueError(f"{path}: expected {{text, intent}} or {{a, b, label}} lines")


def _from_intents(name: str, lines: list[dict[str, Any]]) -> Workload:
    texts: list[str] = []
    by_intent: dict[str, list[int]] = {}
    groups: list[list[int]] = []
    for line in lines:
        texts.append(str(line["text"]))
        index = len(texts) - 1
        if line["intent"] == NEVER_SHARED:
            groups.append([index])
        else:
            by_intent.setdefault(str(line["intent"]), []).append(index)
    return Workload(name, texts, [*by_intent.values(), *groups])


def _from_pairs(name: str, lines: list[dict[str, Any]]) -> Workload:
    index: dict[str, int] = {}
    for line in lines:
        for text in (line["a"], line["b"]):
            index.setdefault(str(text), len(index))
    parent = list(range(len(index)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for line in lines:
        if int(line["label"]) == 1:
            a, b = root(index[str(line["a"])]), root(index[str(line["b"])])
            parent[max(a, b)] = min(a, b)
    clusters: dict[int, list[int]] = {}
    for i in range(len(index)):
        clusters.setdefault(root(i), []).append(i)
    return Workload(name, list(index), list(clusters.values()))


def stream(workload: Workload, count: int, *, zipf: float = 1.1, seed: int = 0) -> list[Draw]:
    """``count`` prompts: a group by Zipf popularity, then one of its texts."""
    rng = np.random.default_rng(seed)
    many = [g for g, members in enumerate(workload.groups) if len(members) > 1]
    lone = [g for g, members in enumerate(workload.groups) if len(members) == 1]
    order = np.concatenate([rng.permutation(many), rng.permutation(lone)]).astype(int)
    weights = 1.0 / np.arange(1, len(order) + 1) ** zipf
    chosen = rng.choice(order, size=count, p=weights / weights.sum())
    draws = []
    for group in chosen.tolist():
        members = workload.groups[group]
        text = workload.texts[members[int(rng.integers(len(members)))]]
        draws.append(Draw(text, group))
    return draws
