"""The Redis store: one cache shared by every gateway replica, searched by Redis itself.

    store = await RedisStore.open("redis://host:6379/0", max_entries=100_000)

Each entry is a hash under ``{prefix}entry:{id}``: prompt, answer (JSON), vector (FLOAT32
bytes), tenant and scope, created/expires, hits. The Redis Query Engine indexes them
(``FT.CREATE ... VECTOR HNSW ... DISTANCE_METRIC COSINE``), and every lookup is one
``FT.SEARCH`` whose TAG pre-filter holds the tenant and the scope: isolation is a hard filter in
the query, never a matter of embedding distance. TAG values are hex digests of the real values,
so no tenant name can inject query syntax.

Beside the hashes, under the same prefix: ``lru`` (a sorted set of ids by use, ranked by the
``seq`` counter so every replica shares one order), ``expiry`` (ids by ``expires_at``) and
``stats`` (evictions, expirations). Writes that touch several keys run as Lua scripts, so
replicas never see half an entry. Each entry also carries a Redis TTL, so Redis drops what
expires even when no gateway runs; lookups filter on ``expires_at`` besides, with the caller's
clock, as the `VectorStore` contract asks.

Redis reports cosine *distance*; `similarity_from_distance` is the one place it is converted.

Errors: a Redis failure raises `CacheStoreError` (the cache treats it as a miss); a server
without the query engine, or an index built for other vectors, raises `RedisStoreConfigError`
at start-up.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import numpy as np
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from frugal.cache.store import CacheStoreError, Entry, Match, StoreStats

logger = logging.getLogger(__name__)

T = TypeVar("T")

# HNSW parameters: recall@1 against exact search is measured in benchmarks/redis_store.py.
HNSW = {"M": 16, "EF_CONSTRUCTION": 200, "EF_RUNTIME": 200}
# Pages of ids for the sweeps (delete by tenant/scope/similarity, flush).
_PAGE = 1000

# Removes ids (entry hash and both sorted sets); returns how many hashes existed.
_REMOVE = """
local removed = 0
for i = 1, #ARGV do
  redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('ZREM', KEYS[2], ARGV[i])
  removed = removed + redis.call('DEL', KEYS[3] .. ARGV[i])
end
return removed
"""

# Purges what expired by the caller's clock (ARGV[1]); returns how many went.
_PURGE = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('DEL', KEYS[3] .. id)
end
if #expired > 0 then redis.call('HINCRBY', KEYS[4], 'expirations', #expired) end
return #expired
"""

# Stores one entry. KEYS: lru, expiry, entry prefix (as a key, for the prefix), seq, stats.
# ARGV: id, now, ttl_ms, expires_at, max_entries, number of twins, twin ids..., fields...
_PUT = """
local lru, expiry, prefix, seq, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, now, ttl_ms = ARGV[1], ARGV[2], tonumber(ARGV[3])
local expires_at, max_entries, twins = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local function remove(victim)
  redis.call('ZREM', lru, victim)
  redis.call('ZREM', expiry, victim)
  return redis.call('DEL', prefix .. victim)
end
remove(id)
for i = 7, 6 + twins do remove(ARGV[i]) end
local expired = redis.call('ZRANGEBYSCORE', expiry, '-inf', now)
for _, victim in ipairs(expired) do remove(victim) end
local expirations = #expired
local evictions = 0
if ttl_ms <= 0 then
  expirations = expirations + 1  -- born expired: counted, never kept
else
  local key = prefix .. id
  redis.call('HSET', key, unpack(ARGV, 7 + twins))
  redis.call('PEXPIRE', key, ttl_ms)
  redis.call('ZADD', lru, redis.call('INCR', seq), id)
  redis.call('ZADD', expiry, expires_at, id)
  local over = redis.call('ZCARD', lru) - max_entries
  if over > 0 then
    local victims = redis.call('ZPOPMIN', lru, over)
    for i = 1, #victims, 2 do
      redis.call('ZREM', expiry, victims[i])
      evictions = evictions + redis.call('DEL', prefix .. victims[i])
    end
  end
end
if expirations > 0 then redis.call('HINCRBY', stats, 'expirations', expirations) end
if evictions > 0 then redis.call('HINCRBY', stats, 'evictions', evictions) end
return {expirations, evictions}
"""

# Counts a hit on a live entry and makes it the most recently used; nothing for a gone one.
_HIT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'hits', 1)
redis.call('HSET', KEYS[1], 'last_used_at', ARGV[2])
redis.call('ZADD', KEYS[2], 'XX', redis.call('INCR', KEYS[3]), ARGV[1])
return 1
"""


class RedisStoreConfigError(RuntimeError):
    """The server or its index cannot hold this cache (no query engine, another schema)."""


def similarity_from_distance(distance: float) -> float:
    """Redis's COSINE distance is 1 − cosine similarity; this is the only conversion."""
    return 1.0 - distance


def _tag(value: str) -> str:
    """A TAG value that is safe in any query: the hex digest of the real value."""
    return hashlib.blake2b(value.encode(), digest_size=16).hexdigest()


def _number(value: float) -> str:
    return repr(float(value))


class RedisStore:
    """A `VectorStore` on a Redis server with the query engine. Build it with `open`.

    ``prefix`` and ``index`` name this deployment's keys and index, so two deployments can
    share a server. ``max_entries`` bounds the entries (shared by all replicas).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str,
        index: str,
        max_entries: int,
        dimensions: int,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.prefix = prefix
        self.index = index
        self.max_entries = max_entries
        self.dimensions = dimensions
        self._client = client
        self._entry_prefix = f"{prefix}entry:"
        self._lru, self._expiry = f"{prefix}lru", f"{prefix}expiry"
        self._seq, self._stats = f"{prefix}seq", f"{prefix}stats"
        self._remove = client.register_script(_REMOVE)
        self._purge = client.register_script(_PURGE)
        self._put = client.register_script(_PUT)
        self._hit = client.register_script(_HIT)
        self._index_ready = False
        self.reachable = True  # whether `open` reached the server

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        prefix: str = "frugal:",
        index: str = "frugal",
        max_entries: int,
        dimensions: int = 384,
    ) -> RedisStore:
        """Connect and create the index if absent.

        Raises `RedisStoreConfigError` when the server has no query engine or the index
        exists with another schema. A server that cannot be reached is not an error here: the
        store logs it and creates the index on the first call that reaches the server.
        """
        client = aioredis.Redis.from_url(
            url,
            protocol=3,
            socket_connect_timeout=2.0,
            # A pooled connection that died with a restarted server is retried once, at once, on
            # a new one: one stale connection must not count as the server failing.
            retry=Retry(NoBackoff(), 1),
            retry_on_error=[RedisConnectionError],
        )
        store = cls(
            client, prefix=prefix, index=index, max_entries=max_entries, dimensions=dimensions
        )
        try:
            await store._ensure_index()
        except CacheStoreError as exc:
            store.reachable = False
            logger.warning("Redis is not reachable at start-up (%s); the cache waits for it", exc)
        except BaseException:
            await client.aclose()
            raise
        return store

    # ---- the VectorStore protocol -------------------------------------------------------

    async def get_exact(
        self, *, scope: str, prompt_hash: str, now: float, tenant: str | None = None
    ) -> Entry | None:
        query = f"@scope_tag:{{{_tag(scope)}}} @prompt_tag:{{{_tag(prompt_hash)}}}"
        if tenant is not None:
            query += f" @tenant_tag:{{{_tag(tenant)}}}"
        query += f" @expires_at:[({_number(now)} +inf]"
        results = await self._search_live(now, query, "SORTBY", "created_at", "DESC", "LIMIT", 0, 1)
        return self._entry(results[0]) if results else None

    async def search(
        self,
        *,
        scope: str,
        vector: np.ndarray,
        k: int,
        min_similarity: float,
        now: float,
        tenant: str | None = None,
    ) -> list[Match]:
        """Best first; ValueError for a bad shape."""
        query_vector = self._check_vector(vector)
        if k < 1:
            return []
        prefilter = f"@scope_tag:{{{_tag(scope)}}} @expires_at:[({_number(now)} +inf]"
        if tenant is not None:
            prefilter += f" @tenant_tag:{{{_tag(tenant)}}}"
        query = f"({prefilter})=>[KNN $k @vector $vector AS distance]"
        results = await self._search_live(
            now,
            query,
            "PARAMS", 4, "k", k, "vector", query_vector.tobytes(),
            "SORTBY", "distance", "ASC", "LIMIT", 0, k,
        )  # fmt: skip
        matches = []
        for result in results:
            fields = result[b"extra_attributes"]
            similarity = similarity_from_distance(float(fields[b"distance"]))
            if similarity >= min_similarity:
                matches.append(Match(entry=self._entry(result), similarity=similarity))
        return matches

    async def put(self, entry: Entry) -> None:
        """Store ``entry`` as the most recently used, replacing an entry with its id and one
        with its scope and prompt_hash; evict past the bound. ValueError for a bad vector."""
        vector = self._check_vector(entry.vector)
        twins = await self._ids(
            f"@scope_tag:{{{_tag(entry.scope)}}} @prompt_tag:{{{_tag(entry.prompt_hash)}}}"
        )
        fields = {
            "id": entry.id,
            "tenant": entry.tenant,
            "tenant_tag": _tag(entry.tenant),
            "scope": entry.scope,
            "scope_tag": _tag(entry.scope),
            "prompt": entry.prompt,
            "prompt_hash": entry.prompt_hash,
            "prompt_tag": _tag(entry.prompt_hash),
            "response": json.dumps(entry.response),
            "vector": vector.tobytes(),
            "created_at": _number(entry.created_at),
            "expires_at": _number(entry.expires_at),
            "labels": json.dumps(entry.labels),
            "hits": entry.hits,
            "last_used_at": "" if entry.last_used_at is None else _number(entry.last_used_at),
        }
        ttl_ms = int((entry.expires_at - entry.created_at) * 1000)
        flat = [item for pair in fields.items() for item in pair]
        await self._run(
            self._put(
                keys=[self._lru, self._expiry, self._entry_prefix, self._seq, self._stats],
                args=[
                    entry.id,
                    _number(entry.created_at),
                    ttl_ms,
                    _number(entry.expires_at),
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
                args=[entry_id, _number(now)],
            )
        )

    async def delete(self, entry_ids: list[str]) -> int:
        if not entry_ids:
            return 0
        removed = await self._run(
            self._remove(keys=[self._lru, self._expiry, self._entry_prefix], args=entry_ids)
        )
        return int(removed)

    async def delete_where(self, *, tenant: str | None = None, scope: str | None = None) -> int:
        if tenant is None and scope is None:
            raise ValueError("delete_where needs a tenant or a scope")
        parts = []
        if tenant is not None:
            parts.append(f"@tenant_tag:{{{_tag(tenant)}}}")
        if scope is not None:
            parts.append(f"@scope_tag:{{{_tag(scope)}}}")
        removed = 0
        while ids := await self._ids(" ".join(parts)):
            removed += await self.delete(ids)
        return removed

    async def delete_similar(
        self, *, vector: np.ndarray, min_similarity: float, tenant: str | None = None
    ) -> int:
        """Exhaustive on purpose (every vector compared, a page at a time): an invalidation
        must not miss what an approximate search would."""
        query_vector = self._check_vector(vector)
        query = "*" if tenant is None else f"@tenant_tag:{{{_tag(tenant)}}}"
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
        self, *, offset: int, limit: int, tenant: str | None = None, now: float
    ) -> list[Entry]:
        """Live entries by ``created_at``, newest first."""
        if offset < 0 or limit < 0:
            raise ValueError(f"offset and limit must not be negative, got {offset}, {limit}")
        if limit == 0:
            return []
        query = f"@expires_at:[({_number(now)} +inf]"
        if tenant is not None:
            query += f" @tenant_tag:{{{_tag(tenant)}}}"
        results = await self._search_live(
            now, query, "SORTBY", "created_at", "DESC", "LIMIT", offset, limit
        )
        return [self._entry(result) for result in results]

    async def stats(self) -> StoreStats:
        pipe = self._client.pipeline(transaction=False)
        pipe.zcard(self._lru)
        pipe.hmget(self._stats, ["evictions", "expirations"])
        entries, (evictions, expirations) = await self._run(pipe.execute())
        return StoreStats(
            entries=int(entries), evictions=int(evictions or 0), expirations=int(expirations or 0)
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    # ---- beyond the protocol --------------------------------------------------------------

    async def drop_index(self) -> None:
        """Drop this deployment's index (its entries stay until flushed); for tests and tools."""
        await self._run(self._client.execute_command("FT.DROPINDEX", self.index))
        self._index_ready = False

    async def memory_usage(self, entry_id: str) -> int:
        """Bytes Redis holds for one entry's hash (``MEMORY USAGE``)."""
        used = await self._run(self._client.memory_usage(self._entry_prefix + entry_id))
        return int(used or 0)

    # ---- internals ----------------------------------------------------------------------------

    async def _ensure_index(self) -> None:
        try:
            await self._client.execute_command("FT._LIST")
        except ResponseError as exc:
            raise RedisStoreConfigError(
                "this Redis server has no query engine (vector search), which FRUGAL_STORE=redis "
                "needs: use Redis 8, or Redis Stack 7.4 (Debian's redis-server 7.0 lacks it)"
            ) from exc
        except (RedisError, OSError) as exc:
            raise CacheStoreError(f"Redis: {exc}") from exc
        try:
            info = await self._client.execute_command("FT.INFO", self.index)
        except ResponseError as exc:
            if "unknown index" not in str(exc).lower():
                raise CacheStoreError(f"Redis: {exc}") from exc
            await self._create_index()
        except (RedisError, OSError) as exc:
            raise CacheStoreError(f"Redis: {exc}") from exc
        else:
            self._check_schema(info)
        self._index_ready = True

    async def _create_index(self) -> None:
        hnsw = [item for pair in HNSW.items() for item in pair]
        vector_args = ["TYPE", "FLOAT32", "DIM", self.dimensions, "DISTANCE_METRIC", "COSINE"]
        vector_args += hnsw
        try:
            await self._client.execute_command(
                "FT.CREATE", self.index, "ON", "HASH", "PREFIX", 1, self._entry_prefix,
                "SCHEMA",
                "tenant_tag", "TAG", "scope_tag", "TAG", "prompt_tag", "TAG",
                "created_at", "NUMERIC", "SORTABLE", "expires_at", "NUMERIC",
                "vector", "VECTOR", "HNSW", len(vector_args), *vector_args,
            )  # fmt: skip
        except ResponseError as exc:
            if "index already exists" not in str(exc).lower():  # another replica was first
                raise CacheStoreError(f"Redis: {exc}") from exc
        except (RedisError, OSError) as exc:
            raise CacheStoreError(f"Redis: {exc}") from exc
        logger.info("created the Redis index %s over %s*", self.index, self._entry_prefix)

    def _check_schema(self, info: dict[bytes, Any]) -> None:
        definition = info.get(b"index_definition") or {}
        prefixes = [p.decode() for p in definition.get(b"prefixes", [])]
        attributes = {
            attribute[b"attribute"].decode(): attribute for attribute in info.get(b"attributes", [])
        }
        vector = attributes.get("vector", {})
        found = {
            "prefixes": prefixes,
            "vector type": (vector.get(b"type") or b"").decode(),
            "dimensions": int(vector.get(b"dim") or 0),
            "distance": (vector.get(b"distance_metric") or b"").decode(),
            "tags": sorted(
                name for name in ("tenant_tag", "scope_tag", "prompt_tag")
                if (attributes.get(name, {}).get(b"type") or b"") == b"TAG"
            ),
        }  # fmt: skip
        expected = {
            "prefixes": [self._entry_prefix],
            "vector type": "VECTOR",
            "dimensions": self.dimensions,
            "distance": "COSINE",
            "tags": ["prompt_tag", "scope_tag", "tenant_tag"],
        }
        wrong = {name: value for name, value in found.items() if value != expected[name]}
        if wrong:
            detail = "; ".join(
                f"{name} {value!r}, expected {expected[name]!r}" for name, value in wrong.items()
            )
            raise RedisStoreConfigError(
                f"the Redis index {self.index!r} exists with another schema ({detail}): "
                "set FRUGAL_REDIS_INDEX (and FRUGAL_REDIS_PREFIX) to another name, or drop it"
            )

    async def _search_live(self, now: float, query: str, *args: Any) -> list[dict[bytes, Any]]:
        """Purge what expired by ``now`` and search, in one round trip."""
        await self._ready()
        pipe = self._client.pipeline(transaction=False)
        await self._purge(  # queued on the pipeline, sent with the search
            keys=[self._lru, self._expiry, self._entry_prefix, self._stats],
            args=[_number(now)],
            client=pipe,
        )
        pipe.execute_command("FT.SEARCH", self.index, query, *args, "DIALECT", 2)
        _, found = await self._run(pipe.execute())
        return list(found[b"results"])

    async def _search(self, query: str, *args: Any) -> list[dict[bytes, Any]]:
        await self._ready()
        found = await self._run(
            self._client.execute_command("FT.SEARCH", self.index, query, *args, "DIALECT", 2)
        )
        return list(found[b"results"])

    async def _ids(self, query: str) -> list[str]:
        results = await self._search(query, "NOCONTENT", "LIMIT", 0, _PAGE)
        cut = len(self._entry_prefix)
        return [result[b"id"].decode()[cut:] for result in results]

    async def _scan_batches(self, pattern: str) -> AsyncIterator[list[bytes]]:
        cursor: int | bytes = 0
        while True:
            cursor, keys = await self._run(self._client.scan(cursor, match=pattern, count=_PAGE))
            if keys:
                yield keys
            if int(cursor) == 0:
                return

    async def _ready(self) -> None:
        if not self._index_ready:
            await self._ensure_index()

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

    def _entry(self, result: dict[bytes, Any]) -> Entry:
        fields = {key.decode(): value for key, value in result[b"extra_attributes"].items()}
        last_used = fields.get("last_used_at") or b""
        return Entry(
            id=fields["id"].decode(),
            tenant=fields["tenant"].decode(),
            scope=fields["scope"].decode(),
            prompt=fields["prompt"].decode(),
            prompt_hash=fields["prompt_hash"].decode(),
            response=json.loads(fields["response"]),
            vector=np.frombuffer(fields["vector"], dtype=np.float32).copy(),
            created_at=float(fields["created_at"]),
            expires_at=float(fields["expires_at"]),
            labels=json.loads(fields["labels"]),
            hits=int(fields.get("hits") or 0),
            last_used_at=float(last_used) if last_used else None,
        )

    def _check_vector(self, vector: np.ndarray) -> np.ndarray:
        checked = np.ascontiguousarray(vector, dtype=np.float32)
        if checked.shape != (self.dimensions,):
            raise ValueError(f"vectors must have shape ({self.dimensions},), got {checked.shape}")
        return checked
