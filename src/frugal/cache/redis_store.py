"""The Redis store: one cache shared by every gateway replica, searched by Redis itself.

    store = await RedisStore.open("redis://host:6379/0", max_entries=100_000)
    store = await RedisStore.open(redis_target(settings), max_entries=100_000)   # frugal.config

Each entry is a hash under the prefix, indexed by the Redis Query Engine (``FT.CREATE ...
VECTOR HNSW ... DISTANCE_METRIC COSINE``; the layout is `frugal.cache.redis_layout`'s), and
every lookup is one ``FT.SEARCH`` whose TAG pre-filter holds the partition, the scope and the
embedding model: isolation is a hard filter in the query, never a matter of embedding distance.

Beside the hashes, under the same prefix, sorted sets keep the LRU order (shared by every
replica) and the expiry times; writes that touch several keys run as Lua scripts
(`frugal.cache.redis_scripts`), so replicas never see half an entry. Each entry also carries a
Redis TTL, so Redis drops what expires even when no gateway runs; lookups filter on
``expires_at`` besides, with the caller's clock, as the `VectorStore` contract asks.

Redis reports cosine *distance*; `similarity_from_distance` is the one place it is converted.

Where Redis is (a URL, or a primary found through Sentinel, with TLS or not) is
`frugal.cache.redis_connection`'s. Through Sentinel with ``read_from_replicas``, lookups
(``get_exact``, ``search``) are served by a replica and everything else by the primary; such a
lookup does not purge what expired (a replica cannot write): the query's ``expires_at`` filter
keeps it out of the answers, and the next put or primary-side call purges it. During a
failover, calls fail with `CacheStoreError` (misses) until the Sentinels name the new primary;
the next call then reaches it.

Errors: a Redis failure raises `CacheStoreError` (the cache treats it as a miss); a server
without the query engine, an index built for other vectors, or a TLS handshake that fails
(a certificate the CA setting does not trust) raises `RedisStoreConfigError` at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import numpy as np
from redis.exceptions import RedisError, ResponseError

from frugal.cache import redis_layout as layout
from frugal.cache import redis_scripts as scripts
from frugal.cache.redis_connection import RedisClients, RedisTarget, tls_refusal
from frugal.cache.redis_layout import command, model_filter, number, other_models_filter, tag
from frugal.cache.store import (
    BASE_MODEL_ID,
    EXACT_ONLY,
    Entry,
    Match,
    StoreStats,
    checked_vector,
)
from frugal.errors import CacheStoreError, RedisStoreConfigError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Pages of ids for the sweeps (delete by partition/scope/similarity, flush).
_PAGE = 1000


def similarity_from_distance(distance: float) -> float:
    """Redis's COSINE distance is 1 − cosine similarity; this is the only conversion."""
    return 1.0 - distance


class RedisStore:
    """A `VectorStore` on a Redis server with the query engine. Build it with `open`.

    ``prefix`` and ``index`` name this deployment's keys and index, so two deployments can
    share a server; the index's full name carries the layout's version (``{index}:v3``, see
    `frugal.cache.redis_layout`). ``max_entries`` bounds the entries (shared by all replicas).
    ``clients``: lookups go to its reader, everything else to its writer; closed by `aclose`.
    """

    def __init__(
        self,
        clients: RedisClients,
        *,
        prefix: str,
        index: str,
        max_entries: int,
        dimensions: int,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.prefix = prefix
        self.max_entries = max_entries
        self.dimensions = dimensions
        self._clients = clients
        client = self._client = clients.writer
        self._reader = clients.reader
        self._entry_prefix = f"{prefix}entry:"
        self._index = layout.RedisIndex(
            client, name=index, entry_prefix=self._entry_prefix, dimensions=dimensions
        )
        self.index = self._index.name
        self._index_ready = False
        self._lru, self._expiry = f"{prefix}lru", f"{prefix}expiry"
        self._seq, self._stats = f"{prefix}seq", f"{prefix}stats"
        self._remove = client.register_script(scripts.REMOVE)
        self._purge = client.register_script(scripts.PURGE)
        self._put = client.register_script(scripts.PUT)
        self._hit = client.register_script(scripts.HIT)
        self._reembed = client.register_script(scripts.REEMBED)
        self.reachable = True  # whether `open` reached the server

    @classmethod
    async def open(
        cls,
        target: str | RedisTarget,
        *,
        prefix: str = "frugal:",
        index: str = "frugal",
        max_entries: int,
        dimensions: int = 384,
    ) -> RedisStore:
        """Connect to ``target`` (a URL, or a `RedisTarget`) and create the index if absent.

        Raises `RedisStoreConfigError` when the server has no query engine, the index exists
        with another schema, or the TLS handshake fails. A server that cannot be reached is not
        an error here: the store logs it and creates the index on the first call that reaches
        the server. An older frugal's index under the bare ``index`` name is left alone, with a
        warning.
        """
        if isinstance(target, str):
            target = RedisTarget(url=target)
        clients = target.connect(protocol=3, socket_connect_timeout=2.0)
        store = cls(
            clients, prefix=prefix, index=index, max_entries=max_entries, dimensions=dimensions
        )
        try:
            await store._ensure_index()
            await store._index.warn_of_older_index()
        except CacheStoreError as exc:
            if (refusal := tls_refusal(exc, target)) is not None:
                await clients.aclose()
                raise RedisStoreConfigError(refusal) from None
            store.reachable = False
            logger.warning(
                "Redis (%s) is not reachable at start-up (%s); the cache waits for it",
                target.describe(),
                exc,
            )
        except BaseException:
            await clients.aclose()
            raise
        return store

    # ---- the VectorStore protocol -------------------------------------------------------

    async def get_exact(
        self,
        *,
        scope: str,
        prompt_hash: str,
        now: float,
        partition: str | None = None,
        model: str = BASE_MODEL_ID,
    ) -> Entry | None:
        query = f"@scope_tag:{{{tag(scope)}}} @prompt_tag:{{{tag(prompt_hash)}}}"
        query += f" {model_filter(model)}"
        if partition is not None:
            query += f" @partition_tag:{{{tag(partition)}}}"
        query += f" @expires_at:[({number(now)} +inf]"
        found = await self._lookup(now, query, "SORTBY", "created_at", "DESC", "LIMIT", 0, 1)
        results = found[b"results"]
        return layout.from_hash(results[0][b"extra_attributes"]) if results else None

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
        """Best first; ValueError for a bad shape."""
        query_vector = self._check_vector(vector)
        if k < 1:
            return []
        prefilter = f"@scope_tag:{{{tag(scope)}}} {model_filter(model)}"
        prefilter += f" @expires_at:[({number(now)} +inf]"
        if partition is not None:
            prefilter += f" @partition_tag:{{{tag(partition)}}}"
        query = f"({prefilter})=>[KNN $k @vector $vector AS distance]"
        found = await self._lookup(
            now,
            query,
            "PARAMS", 4, "k", k, "vector", query_vector.tobytes(),
            "SORTBY", "distance", "ASC", "LIMIT", 0, k,
        )  # fmt: skip
        matches = []
        for result in found[b"results"]:
            fields = result[b"extra_attributes"]
            similarity = similarity_from_distance(float(fields[b"distance"]))
            if similarity >= min_similarity:
                matches.append(Match(entry=layout.from_hash(fields), similarity=similarity))
        return matches

    async def put(self, entry: Entry) -> None:
        """Store ``entry`` as the most recently used, replacing an entry with its id and one
        with its scope and prompt_hash; evict past the bound. ValueError for a bad vector."""
        vector = checked_vector(entry, self.dimensions)
        twins = await self._ids(
            f"@scope_tag:{{{tag(entry.scope)}}} @prompt_tag:{{{tag(entry.prompt_hash)}}}"
        )
        fields = layout.to_hash(entry, vector)
        ttl_ms = int((entry.expires_at - entry.created_at) * 1000)
        flat = [item for pair in fields.items() for item in pair]
        await self._run(
            self._put(
                keys=[self._lru, self._expiry, self._entry_prefix, self._seq, self._stats],
                args=[
                    entry.id,
                    number(entry.created_at),
                    ttl_ms,
                    number(entry.expires_at),
                    self.max_entries,
                    len(twins),
                    *twins,
                    *flat,
                ],
            )
        )

    async def record_hit(self, entry_id: str, *, now: float) -> None:
        await self._run(
            self._hit(
                keys=[self._entry_prefix + entry_id, self._lru, self._seq],
                args=[entry_id, number(now)],
            )
        )

    async def delete(self, entry_ids: list[str]) -> int:
        if not entry_ids:
            return 0
        removed = await self._run(
            self._remove(keys=[self._lru, self._expiry, self._entry_prefix], args=entry_ids)
        )
        return int(removed)

    async def delete_where(self, *, partition: str | None = None, scope: str | None = None) -> int:
        if partition is None and scope is None:
            raise ValueError("delete_where needs a partition or a scope")
        parts = []
        if partition is not None:
            parts.append(f"@partition_tag:{{{tag(partition)}}}")
        if scope is not None:
            parts.append(f"@scope_tag:{{{tag(scope)}}}")
        removed = 0
        while ids := await self._ids(" ".join(parts)):
            removed += await self.delete(ids)
        return removed

    async def delete_similar(
        self,
        *,
        vector: np.ndarray,
        min_similarity: float,
        partition: str | None = None,
        model: str = BASE_MODEL_ID,
    ) -> int:
        """Exhaustive on purpose (every vector compared, a page at a time): an invalidation
        must not miss what an approximate search would."""
        query_vector = self._check_vector(vector)
        if model == EXACT_ONLY:
            return 0  # no vectors to compare
        query = model_filter(model)
        if partition is not None:
            query += f" @partition_tag:{{{tag(partition)}}}"
        doomed: list[str] = []
        offset = 0
        while True:
            results = await self._search(
                query, "SORTBY", "created_at", "ASC", "RETURN", 2, "id", "vector",
                "LIMIT", offset, _PAGE,
            )  # fmt: skip
            if not results:
                break
            offset += len(results)
            fields = [result[b"extra_attributes"] for result in results]
            vectors = np.stack([np.frombuffer(f[b"vector"], dtype=np.float32) for f in fields])
            similar = np.flatnonzero(vectors @ query_vector >= min_similarity)
            doomed.extend(fields[i][b"id"].decode() for i in similar.tolist())
        removed = 0
        for start in range(0, len(doomed), _PAGE):
            removed += await self.delete(doomed[start : start + _PAGE])
        return removed

    async def flush(self) -> int:
        """Remove this deployment's entries and bookkeeping; nothing else on the server."""
        entries = 0
        async for batch in self._scan_batches(self._entry_prefix + "*"):
            entries += int(await self._run(self._client.unlink(*batch)))
        await self._run(self._client.unlink(self._lru, self._expiry, self._seq, self._stats))
        return entries

    async def list_entries(
        self, *, offset: int, limit: int, partition: str | None = None, now: float
    ) -> list[Entry]:
        """Live entries by ``created_at``, newest first."""
        if offset < 0 or limit < 0:
            raise ValueError(f"offset and limit must not be negative, got {offset}, {limit}")
        if limit == 0:
            return []
        query = f"@expires_at:[({number(now)} +inf]"
        if partition is not None:
            query += f" @partition_tag:{{{tag(partition)}}}"
        found = await self._search_live(
            now, query, "SORTBY", "created_at", "DESC", "LIMIT", offset, limit
        )
        return [layout.from_hash(result[b"extra_attributes"]) for result in found[b"results"]]

    async def other_models(self, *, model: str, limit: int, now: float) -> tuple[list[Entry], int]:
        """The oldest first."""
        query = f"{other_models_filter(model)} @expires_at:[({number(now)} +inf]"
        found = await self._search_live(
            now, query, "SORTBY", "created_at", "ASC", "LIMIT", 0, max(0, limit)
        )
        entries = [layout.from_hash(result[b"extra_attributes"]) for result in found[b"results"]]
        return entries, int(found[b"total_results"])

    async def reembed(self, changes: list[tuple[Entry, np.ndarray]], *, model: str) -> int:
        """One script call: each entry changes as a whole, in place."""
        if not changes:
            return 0
        args: list[str | bytes] = [model, tag(model), BASE_MODEL_ID]
        for listed, vector in changes:
            args += [listed.id, listed.model, self._check_vector(vector).tobytes()]
        changed = await self._run(self._reembed(keys=[self._entry_prefix], args=args))
        return int(changed)

    async def stats(self) -> StoreStats:
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.zcard(self._lru)
            pipe.hmget(self._stats, ["evictions", "expirations"])
            entries, (evictions, expirations) = await self._run(pipe.execute())
        return StoreStats(
            entries=int(entries), evictions=int(evictions or 0), expirations=int(expirations or 0)
        )

    async def aclose(self) -> None:
        await self._clients.aclose()

    # ---- beyond the protocol --------------------------------------------------------------

    async def drop_index(self) -> None:
        """Drop this deployment's index (its entries stay until flushed); for tests and tools."""
        await self._run(command(self._client, "FT.DROPINDEX", self.index))
        self._index_ready = False

    async def memory_usage(self, entry_id: str) -> int:
        """Bytes Redis holds for one entry's hash (``MEMORY USAGE``)."""
        used = await self._run(self._client.memory_usage(self._entry_prefix + entry_id))
        return int(used or 0)

    # ---- internals ----------------------------------------------------------------------------

    async def _lookup(self, now: float, query: str, *args: Any) -> dict[bytes, Any]:
        """A lookup's ``FT.SEARCH``: on a replica when the store reads from replicas (no purge
        there: a replica cannot write), else as `_search_live`."""
        if not self._clients.reads_from_replicas:
            return await self._search_live(now, query, *args)
        await self._ready()
        found = await self._run(
            command(self._reader, "FT.SEARCH", self.index, query, *args, "DIALECT", 2)
        )
        return dict(found)

    async def _search_live(self, now: float, query: str, *args: Any) -> dict[bytes, Any]:
        """Purge what expired by ``now`` and search, in one round trip; ``FT.SEARCH``'s answer
        (``results``, ``total_results``)."""
        await self._ready()
        # Left by `async with`: a pipeline whose script check (SCRIPT EXISTS, sent before the
        # pipeline) fails keeps its connection until it is reset.
        async with self._client.pipeline(transaction=False) as pipe:
            await self._purge(  # queued on the pipeline, sent with the search
                keys=[self._lru, self._expiry, self._entry_prefix, self._stats],
                args=[number(now)],
                client=pipe,
            )
            pipe.execute_command("FT.SEARCH", self.index, query, *args, "DIALECT", 2)
            _, found = await self._run(pipe.execute())
        return dict(found)

    async def _search(self, query: str, *args: Any) -> list[dict[bytes, Any]]:
        await self._ready()
        found = await self._run(
            command(self._client, "FT.SEARCH", self.index, query, *args, "DIALECT", 2)
        )
        return list(found[b"results"])

    async def _ids(self, query: str) -> list[str]:
        results = await self._search(query, "NOCONTENT", "LIMIT", 0, _PAGE)
        cut = len(self._entry_prefix)
        return [result[b"id"].decode()[cut:] for result in results]

    async def _scan_batches(self, pattern: str) -> AsyncIterator[list[bytes | str]]:
        cursor = 0
        while True:
            answer = await self._run(self._client.scan(cursor, match=pattern, count=_PAGE))
            cursor, keys = int(answer[0]), answer[1]
            if keys:
                yield keys
            if cursor == 0:
                return

    async def _ready(self) -> None:
        if not self._index_ready:
            await self._ensure_index()

    async def _ensure_index(self) -> None:
        """Create the index if absent. `RedisStoreConfigError` when the server has no query
        engine or the index has another schema; `CacheStoreError` when Redis fails."""
        if not await self._index.has_query_engine():
            raise RedisStoreConfigError(
                "this Redis server has no query engine (vector search), which FRUGAL_STORE=redis "
                "needs: use Redis 8, or Redis Stack 7.4 (Debian's redis-server 7.0 lacks it)"
            )
        info = await self._index.info()
        if info is None:
            await self._index.create()
        elif (wrong := self._index.mismatch(info)) is not None:
            raise RedisStoreConfigError(
                f"the Redis index {self.index!r} exists with another schema ({wrong}): "
                "set FRUGAL_REDIS_INDEX (and FRUGAL_REDIS_PREFIX) to another name, or drop it"
            )
        self._index_ready = True

    async def _run(self, call: Awaitable[T]) -> T:
        """Await a Redis call; its failures become `CacheStoreError`. An index that vanished
        (a restarted, empty server) is created again by the next call."""
        try:
            return await call
        except ResponseError as exc:
            if "no such index" in str(exc).lower() or "unknown index" in str(exc).lower():
                self._index_ready = False
            raise CacheStoreError(f"Redis: {exc}") from exc
        except (RedisError, OSError) as exc:
            raise CacheStoreError(f"Redis: {type(exc).__name__}: {exc}") from exc

    def _check_vector(self, vector: np.ndarray) -> np.ndarray:
        checked = np.ascontiguousarray(vector, dtype=np.float32)
        if checked.shape != (self.dimensions,):
            raise ValueError(f"vectors must have shape ({self.dimensions},), got {checked.shape}")
        return checked
