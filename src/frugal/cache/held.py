"""How the embedded store holds one entry in memory: compact, without its vector.

    held = Held.of(entry, vgen=7)       # the answer compressed, labels shared, no vector
    held.entry(vector)                  # the `Entry` again, answer decoded (a hit needs it)
    held.size(dimensions)               # the bytes it counts toward FRUGAL_CACHE_MAX_BYTES

The vector lives once, in the entry's scope index; a `Held` only knows its version (``vgen``):
the store's generation when the entry got its vector (a `put` or a `reembed`). An index file
records each vector's ``vgen``, so a vector it holds is used again only for the version of the
entry the SQLite file holds (`frugal.cache.index_file`).

The answer is kept as zlib-compressed JSON (as the SQLite file stores it) and decoded only when
a lookup returns the entry. Equal labels share one dict (`LabelsTable`); entries are handed out
with a copy of their own.
"""

from __future__ import annotations

import json
import sys
import zlib
from typing import Any

import numpy as np

from frugal.cache.store import EXACT_ONLY, Entry

# zlib level 6 (its default) compresses a chat answer about 2-3x for some 30 us a KiB; answers
# are compressed once, when stored, and decompressed on each hit (a few us).
_LEVEL = 6


def pack_answer(response: dict[str, Any]) -> bytes:
    """The answer as the store holds and writes it: compact JSON, zlib-compressed."""
    return zlib.compress(json.dumps(response, separators=(",", ":")).encode(), _LEVEL)


def unpack_answer(answer: bytes) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(zlib.decompress(answer))
    return decoded


def interned(text: str) -> str:
    """One string object for every entry's equal ``text`` (partitions, scopes and models repeat
    across thousands of entries); interned strings go when no entry holds them."""
    return sys.intern(text)


class LabelsTable:
    """One dict per distinct labels (entries of a scope all carry the same few)."""

    def __init__(self) -> None:
        self._by_json: dict[str, dict[str, str]] = {}

    def shared(self, labels: dict[str, str]) -> dict[str, str]:
        return self.parsed(json.dumps(labels, sort_keys=True))

    def parsed(self, text: str) -> dict[str, str]:
        """The shared dict of the labels JSON ``text`` (as the SQLite file stores it)."""
        found = self._by_json.get(text)
        if found is None:
            if len(self._by_json) > 100_000:  # labels vary per tenant and model: never this many
                self._by_json.clear()
            found = self._by_json[text] = json.loads(text)
        return found


class Held:
    """One entry as held: its fields but the vector, the answer compressed. Mutable only by
    its store (``hits``, ``last_used_at``, ``model`` and ``vgen`` change in place)."""

    __slots__ = (
        "id",
        "partition",
        "scope",
        "prompt",
        "prompt_hash",
        "answer",
        "created_at",
        "expires_at",
        "labels",
        "hits",
        "last_used_at",
        "model",
        "vgen",
    )

    def __init__(
        self,
        *,
        id: str,
        partition: str,
        scope: str,
        prompt: str,
        prompt_hash: str,
        answer: bytes,
        created_at: float,
        expires_at: float,
        labels: dict[str, str],
        hits: int,
        last_used_at: float | None,
        model: str,
        vgen: int,
    ) -> None:
        self.id = id
        self.partition = partition
        self.scope = scope
        self.prompt = prompt
        self.prompt_hash = prompt_hash
        self.answer = answer
        self.created_at = created_at
        self.expires_at = expires_at
        self.labels = labels
        self.hits = hits
        self.last_used_at = last_used_at
        self.model = model
        self.vgen = vgen

    @classmethod
    def of(cls, entry: Entry, *, vgen: int, labels: LabelsTable) -> Held:
        return cls(
            id=entry.id, partition=interned(entry.partition), scope=interned(entry.scope),
            prompt=entry.prompt,
            prompt_hash=entry.prompt_hash, answer=pack_answer(entry.response),
            created_at=entry.created_at, expires_at=entry.expires_at,
            labels=labels.shared(entry.labels), hits=entry.hits,
            last_used_at=entry.last_used_at, model=interned(entry.model), vgen=vgen,
        )  # fmt: skip

    @property
    def vector_less(self) -> bool:
        """An exact-only entry: no vector, in no index."""
        return self.model == EXACT_ONLY

    def moved(self, *, model: str, vgen: int) -> Held:
        """A copy of another embedding model, at vector version ``vgen``."""
        copy = Held.__new__(Held)
        for name in Held.__slots__:
            setattr(copy, name, getattr(self, name))
        copy.model, copy.vgen = model, vgen
        return copy

    def entry(self, vector: np.ndarray | None) -> Entry:
        """The `Entry`, with ``vector`` (None for an exact-only entry) and the answer decoded."""
        return Entry(
            id=self.id, partition=self.partition, scope=self.scope, prompt=self.prompt,
            prompt_hash=self.prompt_hash, response=unpack_answer(self.answer), vector=vector,
            created_at=self.created_at, expires_at=self.expires_at, labels=dict(self.labels),
            hits=self.hits, last_used_at=self.last_used_at, model=self.model,
        )  # fmt: skip

    def size(self, vector_bytes: int) -> int:
        """What this entry counts toward the store's byte bound: its compressed answer, its
        prompt and id (UTF-8) and ``vector_bytes`` (its vector as the index stores it; 0 for an
        exact-only entry). The index's links and the bookkeeping are not counted."""
        return len(self.answer) + _utf8_size(self.prompt) + _utf8_size(self.id) + vector_bytes


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())  # most prompts: no copy
