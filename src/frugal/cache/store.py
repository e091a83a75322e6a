"""What a cache store holds and the protocol every store (embedded, Redis) implements.

A store keeps entries, each one answer to one prompt within one scope, and finds them two ways:
exactly, by the hash of the normalised prompt within a scope, and by meaning, the nearest
vectors within a scope. Similarity is always cosine similarity in [-1, 1] (vectors are
L2-normalised), never a distance.

Every entry belongs to the embedding model that made its vector (``Entry.model``, the model's
id): vectors of two models are not comparable, so every lookup names its model and finds only
that model's entries. An entry stored before entries had a model is the base model's
(`BASE_MODEL_ID`), the only model there was.

An *exact-only* entry (model `EXACT_ONLY`, ``vector`` ``None``) is an answer no embedding model
has a vector for: a provider's embedding of one text, found again only by that text's hash. No
search, similarity invalidation or re-embedding ever sees it, and a change of embedding model
leaves it as it is; ``get_exact(model=EXACT_ONLY)`` finds it, and everything that does not
filter on a model (listings, deletions by id, partition or scope, the bound, expiry) treats it
as any other entry.

Contract for every store:
- a lookup never returns an entry that has expired, was evicted, invalidated or flushed, and
  never an entry of another scope or of another model;
- ``put`` makes room by evicting the least recently used entries (a hit counts as a use);
- every method is a coroutine and never blocks the event loop for long;
- a failure raises `CacheStoreError` (the caller treats it as a miss);
- ``put`` raises ValueError for an entry whose vector does not fit: of the store's dimensions
  for every model but `EXACT_ONLY`, ``None`` for `EXACT_ONLY`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

# The id of the packaged all-MiniLM-L6-v2 (FRUGAL_EMBEDDER_MODEL=base), whatever torch exported
# it: exports agree to 1e-5. Entries stored before entries named their model are its.
BASE_MODEL_ID = "all-MiniLM-L6-v2"
# The model of exact-only entries, which have no vector: no embedding model's id looks like it
# (the base model's is above, a tuned model's is ``name@hex``).
EXACT_ONLY = "exact-only"


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One cached answer.

    ``partition`` is whose answers it belongs to: a tenant's own name, or a namespace several
    tenants share. ``scope`` is the scope's hash (partition included); ``labels`` is a short,
    human-readable summary of it for listings (partition, endpoint, model), never used for
    matching. ``model`` is the id of the embedding model that made ``vector`` (not the LLM,
    which is part of the scope), or `EXACT_ONLY` for an entry without a vector (``None``).
    """

    id: str
    partition: str
    scope: str
    prompt: str
    prompt_hash: str
    response: dict[str, Any]
    vector: np.ndarray | None = field(repr=False, compare=False)  # arrays have no plain ==
    created_at: float
    expires_at: float
    labels: dict[str, str] = field(default_factory=dict)
    hits: int = 0
    last_used_at: float | None = None
    model: str = BASE_MODEL_ID

    @property
    def exact_only(self) -> bool:
        return self.model == EXACT_ONLY


def checked_vector(entry: Entry, dimensions: int) -> np.ndarray | None:
    """``entry``'s vector as contiguous float32, ``None`` for an exact-only entry; ValueError
    when it does not fit (the stores' `put`)."""
    if entry.exact_only or entry.vector is None:
        if not entry.exact_only or entry.vector is not None:
            raise ValueError(f"only an {EXACT_ONLY} entry has no vector ({entry.model!r})")
        return None
    vector = np.ascontiguousarray(entry.vector, dtype=np.float32)
    if vector.shape != (dimensions,):
        raise ValueError(f"expected a vector of shape ({dimensions},), got {vector.shape}")
    return vector


@dataclass(frozen=True)
class Match:
    entry: Entry
    similarity: float


@dataclass(frozen=True)
class StoreStats:
    """Counts since the store opened, except ``entries`` and ``unsaved`` (held now).

    ``write_failures`` counts failed attempts to persist changes and ``unsaved`` the changes
    not persisted yet; a store that persists nothing of its own (Redis) reports 0 for both.
    ``bytes`` is what the entries held count toward ``FRUGAL_CACHE_MAX_BYTES`` (0 where a store
    has no byte bound: Redis).
    """

    entries: int
    evictions: int
    expirations: int
    write_failures: int = 0
    unsaved: int = 0
    bytes: int = 0  # what the entries count toward a byte bound (embedded: EntryTable.size)


class VectorStore(Protocol):
    """Where cache entries live. ``now`` is unix seconds, passed in so tests can move time."""

    async def get_exact(
        self,
        *,
        scope: str,
        prompt_hash: str,
        now: float,
        partition: str | None = None,
        model: str = BASE_MODEL_ID,
    ) -> Entry | None:
        """The live entry of ``model`` (`EXACT_ONLY` included) with exactly this normalised
        prompt in this scope (and of ``partition``, when given: a second, independent filter
        besides the scope), if any."""
        ...

    async def search(
        self,
        *,
        scope: str,
        vector: np.ndarray,
        k: int,
        min_similarity: float,
        now: float,
        partition: str | None = None,
        model: str = BASE_MODEL_ID,
    ) -> list[Match]:
        """Up to ``k`` live entries of ``model`` and ``scope`` (and ``partition``, when given)
        at or above ``min_similarity``, best first."""
        ...

    async def put(self, entry: Entry) -> None:
        """Add an entry, replacing the one with its id and its scope and prompt_hash twin (of
        whichever model: the newer answer stands); evict LRU past the bound."""
        ...

    async def record_hit(self, entry_id: str, *, now: float) -> None:
        """Count a hit and mark the entry as recently used."""
        ...

    async def delete(self, entry_ids: list[str]) -> int:
        """Remove entries by id; return how many existed."""
        ...

    async def delete_where(self, *, partition: str | None = None, scope: str | None = None) -> int:
        """Remove every entry of a partition, or of a scope (at least one must be given)."""
        ...

    async def delete_similar(
        self,
        *,
        vector: np.ndarray,
        min_similarity: float,
        partition: str | None = None,
        model: str = BASE_MODEL_ID,
    ) -> int:
        """Remove every entry of ``model`` (and of ``partition``, if given) whose vector is
        within the threshold; other models' vectors cannot be compared with ``vector``."""
        ...

    async def flush(self) -> int:
        """Remove every entry; return how many there were."""
        ...

    async def list_entries(
        self, *, offset: int, limit: int, partition: str | None = None, now: float
    ) -> list[Entry]:
        """Live entries of every model (of ``partition``, if given), newest first."""
        ...

    async def other_models(self, *, model: str, limit: int, now: float) -> tuple[list[Entry], int]:
        """Up to ``limit`` live entries embedded by another model than ``model``, and how many
        such entries there are in all (exact-only entries are embedded by none)."""
        ...

    async def reembed(self, changes: list[tuple[Entry, np.ndarray]], *, model: str) -> int:
        """Give each entry its new vector, made by ``model``, in place: its id, answer, scope,
        expiry, hits and place in the LRU order stay. Each one changes at once (a lookup sees it
        before or after, never between), and only while it is still held as it was listed
        (same id and model): an entry removed or replaced since is left alone, never revived.
        Returns how many changed; ValueError for a vector of the wrong shape."""
        ...

    async def stats(self) -> StoreStats: ...

    async def aclose(self) -> None: ...
