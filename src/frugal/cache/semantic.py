"""The semantic cache: an exact tier, then the nearest cached prompt of the same scope.

    lookup: exact hash in scope ── hit ──▶ Hit(similarity=1.0)
              │ miss
              ▼
            embed the question ──▶ nearest entry in scope ── similarity ≥ threshold ──▶ Hit
              │ below threshold
              ▼
            Miss (carrying the vector, so storing the answer embeds nothing twice)

The cache fails open: an embedder or store failure is logged and counted, and the request
goes on as a miss. Similarity is cosine similarity in [-1, 1]; the threshold is compared with
``>=``.

Every entry is stamped with the id of the embedding model in use (``model``, a resolved
`ModelSpec`), and every lookup, exact or semantic, finds only that model's entries: after a
change of model the old entries are misses until `reembed` gives them the new model's vectors.

Answers that only an exact repeat may share (a provider's embedding of a text) take the exact
tier alone: `lookup_exact` and `save_exact` embed nothing, and store exact-only entries
(`EXACT_ONLY`: no vector, whatever the embedding model).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from frugal.cache.breaker import BreakerState, CircuitBreaker, GuardedStore
from frugal.cache.embedder import AsyncEmbedder, EmbedderStats
from frugal.cache.loading import LoadingStore
from frugal.cache.models import ModelSpec
from frugal.cache.scope import CacheKey
from frugal.cache.store import EXACT_ONLY, Entry, StoreStats, VectorStore
from frugal.errors import CacheStoreError, EmbedderError, StoreUnavailable

logger = logging.getLogger(__name__)


class TextEmbedder(Protocol):
    async def embed(self, text: str) -> np.ndarray: ...


@dataclass(frozen=True)
class Hit:
    entry_id: str
    prompt: str  # the cached entry's prompt (the question it was stored for)
    similarity: float
    response: dict[str, Any]
    age_s: float
    exact: bool


@dataclass(frozen=True)
class Lookup:
    """A lookup's result: a hit, or a miss with the question's vector (``None`` if unknown).

    ``store_unavailable``: the store's breaker is open, so nothing was embedded and nothing
    should be saved: while the store is down a request costs what it would with no cache.
    """

    hit: Hit | None
    vector: np.ndarray | None = None
    store_unavailable: bool = False


@dataclass
class CacheCounters:
    """Lookups by result, answers stored, and failures taken as misses (``errors``)."""

    hits_exact: int = 0
    hits_semantic: int = 0
    misses: int = 0
    stored: int = 0
    errors: int = 0

    @property
    def hit_rate(self) -> float:
        hits = self.hits_exact + self.hits_semantic
        return hits / (hits + self.misses) if hits + self.misses else 0.0


@dataclass(frozen=True)
class BreakerStats:
    """The shared store's circuit breaker: its state and how often it ``opened`` and ``closed``."""

    state: BreakerState
    opened: int
    closed: int


@dataclass(frozen=True)
class CacheStats:
    """Everything the cache counts, under its parts' own names, and the id of the embedding
    ``model`` in use. ``store`` is ``None`` when the store did not answer; ``breaker`` and
    ``embedder`` when the cache has none of them."""

    counters: CacheCounters
    model: str
    threshold: float
    health: str
    store: StoreStats | None
    breaker: BreakerStats | None
    embedder: EmbedderStats | None


def storable(response: dict[str, Any], *, admit_length: bool, admit_tool_calls: bool) -> bool:
    """Only complete, successful answers are cached: every choice finished as allowed (a
    Responses API answer: completed, with only messages, reasoning and, if admitted, calls of
    the client's tools)."""
    if response.get("object") == "response":
        return _storable_response(response, admit_tool_calls=admit_tool_calls)
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    allowed = {"stop"} | ({"length"} if admit_length else set())
    allowed |= {"tool_calls", "function_call"} if admit_tool_calls else set()
    for choice in choices:
        if not isinstance(choice, dict) or choice.get("finish_reason") not in allowed:
            return False
        message = choice.get("message") or {}
        if (message.get("tool_calls") or message.get("function_call")) and not admit_tool_calls:
            return False
    return True


def _storable_response(response: dict[str, Any], *, admit_tool_calls: bool) -> bool:
    if response.get("status") != "completed" or response.get("error"):
        return False
    output = response.get("output")
    if not isinstance(output, list) or not output:
        return False
    allowed = {"message", "reasoning"}
    allowed |= {"function_call", "custom_tool_call"} if admit_tool_calls else set()
    return all(isinstance(item, dict) and item.get("type") in allowed for item in output)


@dataclass(frozen=True)
class ReembedProgress:
    """How far `SemanticCache.reembed` is: ``done`` of the ``total`` entries of other models
    found when it started are handled, ``reembedded`` of them carry the model in use now (the
    others went meanwhile: expired, evicted, invalidated or answered anew)."""

    done: int
    total: int
    reembedded: int


class SemanticCache:
    """Looks answers up and stores them, within the scope of a `CacheKey`, for the embedding
    ``model`` that ``embedder`` runs (`frugal.cache.models.resolve_model`: its ``id`` is
    stamped on entries, its ``manifest`` holds a tuned model's calibration)."""

    def __init__(
        self,
        *,
        store: VectorStore,
        embedder: TextEmbedder,
        model: ModelSpec,
        threshold: float,
        ttl_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.model = model
        self.threshold = threshold
        self.ttl_s = ttl_s
        self.counters = CacheCounters()
        self._clock = clock

    def threshold_for(self, requested: float | None) -> float:
        """The similarity a hit needs: ``requested`` (0.0 is a real threshold), or the
        configured one when it is ``None``."""
        return self.threshold if requested is None else requested

    async def embed(self, text: str) -> np.ndarray | None:
        """The vector of ``text``, or ``None`` when the embedder fails (logged, counted)."""
        try:
            return await self.embedder.embed(text)
        except Exception as exc:  # fail open: a broken embedder costs a miss, not a request
            self._failed("embed", exc)
            return None

    async def lookup(
        self, key: CacheKey, *, threshold: float | None = None, peek: bool = False
    ) -> Lookup:
        """Find a cached answer for ``key``; ``threshold`` overrides the configured one.

        ``peek`` (shadow mode) finds what would have answered without it counting as a hit or
        a miss, and without touching the entry's hits or its place in the LRU order.
        """
        now = self._clock()
        minimum = self.threshold_for(threshold)
        try:
            exact = await self.store.get_exact(
                scope=key.scope,
                prompt_hash=key.prompt_hash,
                now=now,
                partition=key.partition,
                model=self.model.id,
            )
        except StoreUnavailable as exc:
            self._failed("exact lookup", exc)
            self.counters.misses += not peek
            return Lookup(hit=None, store_unavailable=True)
        except Exception as exc:  # fail open, as above
            self._failed("exact lookup", exc)
            exact = None
        if exact is not None:
            hit = await self._hit(exact, similarity=1.0, exact=True, now=now, peek=peek)
            return Lookup(hit=hit)
        vector = await self.embed(key.prompt)
        if vector is None:
            self.counters.misses += not peek
            return Lookup(hit=None)
        try:
            matches = await self.store.search(
                scope=key.scope,
                vector=vector,
                k=1,
                min_similarity=minimum,
                now=now,
                partition=key.partition,
                model=self.model.id,
            )
        except Exception as exc:  # fail open, as above
            self._failed("search", exc)
            matches = []
        if matches and matches[0].similarity >= minimum:
            best = matches[0]
            hit = await self._hit(
                best.entry, similarity=best.similarity, exact=False, now=now, peek=peek
            )
            return Lookup(hit=hit, vector=vector)
        self.counters.misses += not peek
        return Lookup(hit=None, vector=vector)

    async def lookup_exact(self, key: CacheKey) -> Lookup:
        """The exact-only answer stored for ``key`` (its normalised text in its scope), if
        any: nothing is embedded and no similar text answers. Counted as an exact hit or a
        miss; a store failure is a miss (``store_unavailable`` when the breaker is open)."""
        now = self._clock()
        try:
            entry = await self.store.get_exact(
                scope=key.scope,
                prompt_hash=key.prompt_hash,
                now=now,
                partition=key.partition,
                model=EXACT_ONLY,
            )
        except StoreUnavailable as exc:
            self._failed("exact lookup", exc)
            self.counters.misses += 1
            return Lookup(hit=None, store_unavailable=True)
        except Exception as exc:  # fail open, as in `lookup`
            self._failed("exact lookup", exc)
            entry = None
        if entry is None:
            self.counters.misses += 1
            return Lookup(hit=None)
        return Lookup(hit=await self._hit(entry, similarity=1.0, exact=True, now=now))

    async def save_exact(
        self, key: CacheKey, response: dict[str, Any], *, ttl_s: float | None = None
    ) -> bool:
        """Store ``response`` as the exact-only answer to ``key`` (found by `lookup_exact`
        alone); ``False`` when nothing was stored."""
        return await self._put(key, response, vector=None, ttl_s=ttl_s)

    async def save(
        self,
        key: CacheKey,
        response: dict[str, Any],
        *,
        vector: np.ndarray | None = None,
        ttl_s: float | None = None,
    ) -> bool:
        """Store ``response`` as the answer to ``key``; ``False`` when nothing was stored."""
        if (self.ttl_s if ttl_s is None else ttl_s) <= 0:
            return False  # nothing to embed for an answer that is not kept
        if vector is None:
            vector = await self.embed(key.prompt)
            if vector is None:
                return False
        return await self._put(key, response, vector=vector, ttl_s=ttl_s)

    async def _put(
        self,
        key: CacheKey,
        response: dict[str, Any],
        *,
        vector: np.ndarray | None,
        ttl_s: float | None,
    ) -> bool:
        """Store an entry of the model in use, or an exact-only one when ``vector`` is None."""
        ttl = self.ttl_s if ttl_s is None else ttl_s
        if ttl <= 0:  # ttl=0 is a real value: the answer expires at once, so keep nothing
            return False
        now = self._clock()
        entry = Entry(
            id=uuid.uuid4().hex,
            partition=key.partition,
            scope=key.scope,
            prompt=key.prompt,
            prompt_hash=key.prompt_hash,
            response=response,
            vector=vector,
            created_at=now,
            expires_at=now + ttl,
            labels=key.labels,
            model=self.model.id if vector is not None else EXACT_ONLY,
        )
        try:
            await self.store.put(entry)
        except Exception as exc:  # fail open, as above
            self._failed("store", exc)
            return False
        self.counters.stored += 1
        return True

    # ---- the operator's face: what the admin routes and metrics ask of the cache -----------

    @property
    def health(self) -> str:
        """``loading`` while the store reads its entries (`LoadingStore`), ``failed`` if that
        failed, ``degraded`` while the store's circuit breaker is not closed (requests then go
        upstream in each case), else ``ok``."""
        if isinstance(self.store, LoadingStore) and not self.store.loaded:
            return "failed" if self.store.failed else "loading"
        breaker = self._breaker()
        return "degraded" if breaker and breaker.state is not BreakerState.CLOSED else "ok"

    async def stats(self) -> CacheStats:
        """The counters of the cache, its store, breaker and embedder; never raises."""
        try:
            held: StoreStats | None = await self.store.stats()
        except CacheStoreError:  # the rest is still worth having
            held = None
        breaker = self._breaker()
        embedder = self.embedder
        return CacheStats(
            counters=replace(self.counters),
            model=self.model.id,
            threshold=self.threshold,
            health=self.health,
            store=held,
            breaker=(
                BreakerStats(breaker.state, breaker.opened, breaker.closed) if breaker else None
            ),
            embedder=embedder.stats() if isinstance(embedder, AsyncEmbedder) else None,
        )

    async def entries(
        self, *, offset: int, limit: int, partition: str | None = None
    ) -> list[Entry]:
        """Live entries of every model (of ``partition``, if given), newest first."""
        return await self.store.list_entries(
            offset=offset, limit=limit, partition=partition, now=self._clock()
        )

    async def invalidate(
        self,
        *,
        ids: list[str] | None = None,
        partition: str | None = None,
        scope: str | None = None,
    ) -> int:
        """Remove entries by id, or every entry of a partition or a scope; how many went.
        Raises `CacheStoreError`."""
        if ids is not None:
            return await self.store.delete(ids)
        return await self.store.delete_where(partition=partition, scope=scope)

    async def invalidate_similar(
        self, prompt: str, *, min_similarity: float, partition: str | None = None
    ) -> int:
        """Remove every entry of the model in use (of ``partition``, if given) whose prompt is
        at least ``min_similarity`` like ``prompt``; other models' vectors cannot be compared
        with this one (`reembed` them first). Raises `EmbedderError` or `CacheStoreError`."""
        vector = await self._embed_or_raise(prompt)
        return await self.store.delete_similar(
            vector=vector, min_similarity=min_similarity, partition=partition, model=self.model.id
        )

    async def reembed(self, *, batch: int = 64) -> AsyncIterator[ReembedProgress]:
        """Give the entries of other models the vectors of the model in use, ``batch`` at a
        time, yielding the progress first and after each batch. Each entry is replaced whole,
        in place (its id, answer, scope, expiry and hits kept; `VectorStore.reembed`): a lookup
        finds it as it was (a miss) or as it is now (a hit), never between. Entries of other
        models stored while it runs (by another replica) are left to the next run.
        Raises `EmbedderError` or `CacheStoreError`, with the batches before kept."""
        model = self.model.id
        listed, total = await self.store.other_models(model=model, limit=batch, now=self._clock())
        done = reembedded = 0
        yield ReembedProgress(done, total, reembedded)
        while listed and done < total:
            vectors = await asyncio.gather(*(self._embed_or_raise(e.prompt) for e in listed))
            changes = list(zip(listed, vectors, strict=True))
            reembedded += await self.store.reembed(changes, model=model)
            done = min(total, done + len(listed))
            yield ReembedProgress(done, total, reembedded)
            listed, _ = await self.store.other_models(model=model, limit=batch, now=self._clock())

    async def flush(self) -> int:
        """Remove every entry; how many there were. Raises `CacheStoreError`."""
        return await self.store.flush()

    async def _embed_or_raise(self, text: str) -> np.ndarray:
        try:
            return await self.embedder.embed(text)
        except EmbedderError:
            raise
        except Exception as exc:
            raise EmbedderError(f"a prompt could not be embedded: {exc}") from exc

    def _breaker(self) -> CircuitBreaker | None:
        return self.store.breaker if isinstance(self.store, GuardedStore) else None

    async def _hit(
        self, entry: Entry, *, similarity: float, exact: bool, now: float, peek: bool = False
    ) -> Hit:
        if not peek:
            if exact:
                self.counters.hits_exact += 1
            else:
                self.counters.hits_semantic += 1
            try:
                await self.store.record_hit(entry.id, now=now)
            except Exception as exc:  # the hit stands even if its bookkeeping fails
                self._failed("record hit", exc)
        return Hit(
            entry_id=entry.id,
            prompt=entry.prompt,
            similarity=similarity,
            response=entry.response,
            age_s=max(0.0, now - entry.created_at),
            exact=exact,
        )

    def _failed(self, operation: str, exc: Exception) -> None:
        self.counters.errors += 1
        if isinstance(exc, StoreUnavailable):  # the breaker logged it once, not per request
            return
        logger.warning(
            "cache %s failed, treated as a miss: %s: %s", operation, type(exc).__name__, exc
        )
