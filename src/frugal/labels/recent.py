"""The cache hits this gateway served recently, by request id, so a hit can be reported wrong.

Filled on the hit path, so it costs what a dict insert costs: no I/O, O(1), nothing copied
(the prompts are the strings the request already holds). Bounded twice: by hits, and by the
characters of the prompts it keeps, since a prompt can be as long as a request body. The
oldest hits go first.

A hit is found by its request id and the partition it was served to. Request ids can be sent
by clients (``x-request-id``), so two partitions may hold the same id: each keeps its own hit,
and nobody reaches another partition's by naming its id. The operator's lookup, which names no
partition, finds the latest hit served under that id.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from frugal.cache import Hit

MAX_HITS = 50_000
MAX_CHARS = 20_000_000


@dataclass(frozen=True, slots=True)
class ServedHit:
    """A hit as served: ``prompt`` the question asked, ``cached_prompt`` the one it was
    answered for, ``entry_id`` the entry that answered."""

    request_id: str
    partition: str
    entry_id: str
    prompt: str
    cached_prompt: str
    similarity: float

    @property
    def chars(self) -> int:
        return len(self.prompt) + len(self.cached_prompt)


class RecentHits:
    """The last ``max_hits`` hits (fewer when their prompts pass ``max_chars``)."""

    def __init__(self, *, max_hits: int = MAX_HITS, max_chars: int = MAX_CHARS) -> None:
        self._max_hits = max_hits
        self._max_chars = max_chars
        self._chars = 0
        self._hits: OrderedDict[tuple[str, str], ServedHit] = OrderedDict()
        self._latest: dict[str, str] = {}  # request id -> the partition of its latest hit

    def __len__(self) -> int:
        return len(self._hits)

    def remember(self, request_id: str, *, partition: str, hit: Hit, prompt: str) -> None:
        """Keep ``hit``, served to ``partition`` for ``prompt`` under ``request_id``."""
        self.put(
            ServedHit(
                request_id=request_id,
                partition=partition,
                entry_id=hit.entry_id,
                prompt=prompt,
                cached_prompt=hit.prompt,
                similarity=hit.similarity,
            )
        )

    def put(self, served: ServedHit) -> None:
        """Keep ``served`` as the newest hit (replacing one with its id and partition)."""
        key = (served.request_id, served.partition)
        if (replaced := self._hits.pop(key, None)) is not None:
            self._chars -= replaced.chars
        self._hits[key] = served
        self._latest[served.request_id] = served.partition
        self._chars += served.chars
        while len(self._hits) > self._max_hits or (
            self._chars > self._max_chars and len(self._hits) > 1
        ):
            self._drop(next(iter(self._hits)))

    def take(self, request_id: str, *, partition: str | None = None) -> ServedHit | None:
        """Remove and return the hit served under ``request_id`` to ``partition`` (``None``:
        the latest, whatever its partition); ``None`` when there is none."""
        if partition is None:
            partition = self._latest.get(request_id)
            if partition is None:
                return None
        return self._drop((request_id, partition))

    def _drop(self, key: tuple[str, str]) -> ServedHit | None:
        served = self._hits.pop(key, None)
        if served is None:
            return None
        self._chars -= served.chars
        request_id, partition = key
        if self._latest.get(request_id) == partition:
            # An older hit of another partition under this id stays reachable by its own
            # partition; the operator's lookup just no longer finds it.
            del self._latest[request_id]
        return served
