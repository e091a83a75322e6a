"""How the Redis store lays its entries out: one hash per entry, and the index over them.

Each entry is a hash under ``{prefix}entry:{id}``: prompt, answer (JSON), vector (FLOAT32
bytes; none for an exact-only entry, which the index then keeps out of its vector graph but
still filters by its TAGs), partition and scope, the embedding model's id, created/expires,
hits. Beside the real
values, ``partition_tag``, ``scope_tag``, ``prompt_tag`` and ``model_tag`` hold their hex
digests, which the index's TAG fields filter on: no partition name can inject query syntax.

The index is named after the layout: ``{name}:v3`` for the name given (``FRUGAL_REDIS_INDEX``).
Layout 3 adds the model; layout 2 (``{name}:v2``) had none, and layout 1 (the bare name) called
the partition ``tenant``. An older index can live beside this one over the same prefix while
replicas of its version run. This layout reads their hashes: a hash without ``model`` was
embedded by the base model, the only one there was, so the index keeps the hashes that lack
the field (``INDEXMISSING``) and a lookup of the base model takes them (`model_filter`). A
layout-1 hash has no ``partition_tag``: this layout's lookups never find it (a miss, never a
wrong answer), and `from_hash` reads it for the listings and sweeps that do not filter. An
older replica does not filter on the model: switch models only once every replica runs this
layout. `RedisIndex` creates and checks this layout's index, and names older ones that are
left for the operator to drop.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from frugal.cache.store import BASE_MODEL_ID, EXACT_ONLY, Entry
from frugal.errors import CacheStoreError

logger = logging.getLogger(__name__)

LAYOUT = 3
# HNSW parameters: recall@1 against exact search is measured in benchmarks/redis_store.py.
HNSW = {"M": 16, "EF_CONSTRUCTION": 200, "EF_RUNTIME": 200}
TAGS = ("model_tag", "partition_tag", "prompt_tag", "scope_tag")
_MISSING = b"INDEXMISSING"
_OLDER_TAGS = {1: "tenant_tag", 2: "partition_tag"}  # the partition TAG of each older layout


def index_name(name: str, layout: int = LAYOUT) -> str:
    """The index of ``layout`` (this one by default) for the configured ``name``."""
    return name if layout == 1 else f"{name}:v{layout}"


def model_filter(model: str) -> str:
    """The query clause that keeps the entries of ``model``: for the base model, the hashes
    without a model too (an older frugal's, all embedded by it)."""
    clause = f"@model_tag:{{{tag(model)}}}"
    return f"({clause} | ismissing(@model_tag))" if model == BASE_MODEL_ID else clause


def other_models_filter(model: str) -> str:
    """The query clause that keeps the entries of every model but ``model`` (exact-only entries
    are embedded by none)."""
    clause = f"-@model_tag:{{{tag(model)}}} -@model_tag:{{{tag(EXACT_ONLY)}}}"
    return f"{clause} -ismissing(@model_tag)" if model == BASE_MODEL_ID else clause


class RedisIndex:
    """This layout's index over ``entry_prefix``, for the configured ``name``: what the store
    needs to create it, check it, and name an older frugal's. Redis failures raise
    `CacheStoreError`; what is fatal is the store's to decide."""

    def __init__(
        self, client: aioredis.Redis, *, name: str, entry_prefix: str, dimensions: int
    ) -> None:
        self.name = index_name(name)
        self.older_names = {layout: index_name(name, layout) for layout in _OLDER_TAGS}
        self._client = client
        self._entry_prefix = entry_prefix
        self._dimensions = dimensions

    async def has_query_engine(self) -> bool:
        try:
            await command(self._client, "FT._LIST")
        except ResponseError:
            return False
        except (RedisError, OSError) as exc:
            raise CacheStoreError(f"Redis: {exc}") from exc
        return True

    async def info(self) -> dict[bytes, Any] | None:
        """``FT.INFO`` of the index, or ``None`` when it does not exist."""
        return await self._info(self.name)

    def mismatch(self, info: dict[bytes, Any]) -> str | None:
        """What in ``info`` differs from the index this layout creates; ``None`` if nothing."""
        return schema_mismatch(info, entry_prefix=self._entry_prefix, dimensions=self._dimensions)

    async def create(self) -> None:
        arguments = create_arguments(
            self.name, entry_prefix=self._entry_prefix, dimensions=self._dimensions
        )
        try:
            await command(self._client, "FT.CREATE", *arguments)
        except ResponseError as exc:
            if "index already exists" not in str(exc).lower():  # another replica was first
                raise CacheStoreError(f"Redis: {exc}") from exc
        except (RedisError, OSError) as exc:
            raise CacheStoreError(f"Redis: {exc}") from exc
        logger.info("created the Redis index %s over %s*", self.name, self._entry_prefix)

    async def warn_of_older_index(self) -> None:
        """Log a warning for each older frugal's index over the same keys: it costs memory
        once no older replica uses it, and only its operator knows when that is."""
        for layout, name in self.older_names.items():
            try:
                info = await self._info(name)
            except CacheStoreError:
                return  # this is advice, never a reason to fail
            if info is not None and is_older_layout(
                info, entry_prefix=self._entry_prefix, layout=layout
            ):
                logger.warning(
                    "the Redis index %r of an older frugal covers the same keys as %r; once no "
                    "replica of that version runs, drop it (FT.DROPINDEX %s): its entries "
                    "expire on their own",
                    name,
                    self.name,
                    name,
                )

    async def _info(self, name: str) -> dict[bytes, Any] | None:
        try:
            info: dict[bytes, Any] = await command(self._client, "FT.INFO", name)
        except ResponseError as exc:
            if "unknown index" in str(exc).lower():
                return None
            raise CacheStoreError(f"Redis: {exc}") from exc
        except (RedisError, OSError) as exc:
            raise CacheStoreError(f"Redis: {exc}") from exc
        return info


def command(client: aioredis.Redis, *args: Any) -> Awaitable[Any]:
    """``client.execute_command(*args)``, typed (redis-py leaves it unannotated)."""
    execute: Callable[..., Awaitable[Any]] = client.execute_command
    return execute(*args)


def tag(value: str) -> str:
    """A TAG value that is safe in any query: the hex digest of the real value."""
    return hashlib.blake2b(value.encode(), digest_size=16).hexdigest()


def number(value: float) -> str:
    return repr(float(value))


def create_arguments(name: str, *, entry_prefix: str, dimensions: int) -> list[Any]:
    """The arguments of ``FT.CREATE`` for this layout's index."""
    vector = ["TYPE", "FLOAT32", "DIM", dimensions, "DISTANCE_METRIC", "COSINE"]
    vector += [item for pair in HNSW.items() for item in pair]
    return [
        name, "ON", "HASH", "PREFIX", 1, entry_prefix,
        "SCHEMA",
        "partition_tag", "TAG", "scope_tag", "TAG", "prompt_tag", "TAG",
        "model_tag", "TAG", "INDEXMISSING",
        "created_at", "NUMERIC", "SORTABLE", "expires_at", "NUMERIC",
        "vector", "VECTOR", "HNSW", len(vector), *vector,
    ]  # fmt: skip


def schema_mismatch(info: dict[bytes, Any], *, entry_prefix: str, dimensions: int) -> str | None:
    """What in an existing index (``FT.INFO``'s answer) differs from this layout's, or
    ``None`` when it is the index this store would have created."""
    definition = info.get(b"index_definition") or {}
    attributes = _attributes(info)
    vector = attributes.get("vector", {})
    found = {
        "prefixes": [p.decode() for p in definition.get(b"prefixes", [])],
        "vector type": (vector.get(b"type") or b"").decode(),
        "dimensions": int(vector.get(b"dim") or 0),
        "distance": (vector.get(b"distance_metric") or b"").decode(),
        "tags": sorted(name for name in TAGS if _is_tag(attributes, name)),
        "model_tag flags": [
            flag.decode()
            for flag in attributes.get("model_tag", {}).get(b"flags", [])
            if flag == _MISSING
        ],
    }
    expected = {
        "prefixes": [entry_prefix],
        "vector type": "VECTOR",
        "dimensions": dimensions,
        "distance": "COSINE",
        "tags": list(TAGS),
        "model_tag flags": [_MISSING.decode()],
    }
    wrong = [name for name, value in found.items() if value != expected[name]]
    if not wrong:
        return None
    return "; ".join(f"{name} {found[name]!r}, expected {expected[name]!r}" for name in wrong)


def is_older_layout(info: dict[bytes, Any], *, entry_prefix: str, layout: int) -> bool:
    """Whether ``FT.INFO``'s answer describes the index of an older frugal's ``layout`` over
    ``entry_prefix``."""
    definition = info.get(b"index_definition") or {}
    prefixes = [p.decode() for p in definition.get(b"prefixes", [])]
    attributes = _attributes(info)
    return (
        prefixes == [entry_prefix]
        and _is_tag(attributes, _OLDER_TAGS[layout])
        and not _is_tag(attributes, "model_tag")
    )


def to_hash(entry: Entry, vector: np.ndarray | None) -> dict[str, Any]:
    """The hash fields of ``entry``, with ``vector`` (already checked) as its vector; an
    exact-only entry's hash has no ``vector`` field."""
    fields = {
        "id": entry.id,
        "partition": entry.partition,
        "partition_tag": tag(entry.partition),
        "scope": entry.scope,
        "scope_tag": tag(entry.scope),
        "prompt": entry.prompt,
        "prompt_hash": entry.prompt_hash,
        "prompt_tag": tag(entry.prompt_hash),
        "model": entry.model,
        "model_tag": tag(entry.model),
        "response": json.dumps(entry.response),
        "created_at": number(entry.created_at),
        "expires_at": number(entry.expires_at),
        "labels": json.dumps(entry.labels),
        "hits": entry.hits,
        "last_used_at": "" if entry.last_used_at is None else number(entry.last_used_at),
    }
    if vector is not None:
        fields["vector"] = vector.tobytes()
    return fields


def from_hash(raw: dict[bytes, Any]) -> Entry:
    """The entry of a search result's fields; an older frugal's entry too (``tenant``, no
    ``model``: the base model's)."""
    fields = {key.decode(): value for key, value in raw.items()}
    last_used = fields.get("last_used_at") or b""
    partition = fields["partition"] if "partition" in fields else fields["tenant"]
    model = fields["model"].decode() if "model" in fields else BASE_MODEL_ID
    return Entry(
        id=fields["id"].decode(),
        partition=partition.decode(),
        scope=fields["scope"].decode(),
        prompt=fields["prompt"].decode(),
        prompt_hash=fields["prompt_hash"].decode(),
        response=json.loads(fields["response"]),
        vector=(
            np.frombuffer(fields["vector"], dtype=np.float32).copy() if "vector" in fields else None
        ),
        created_at=float(fields["created_at"]),
        expires_at=float(fields["expires_at"]),
        labels=json.loads(fields["labels"]),
        hits=int(fields.get("hits") or 0),
        last_used_at=float(last_used) if last_used else None,
        model=model,
    )


def _attributes(info: dict[bytes, Any]) -> dict[str, dict[bytes, Any]]:
    return {a[b"attribute"].decode(): a for a in info.get(b"attributes", [])}


def _is_tag(attributes: dict[str, dict[bytes, Any]], name: str) -> bool:
    return (attributes.get(name, {}).get(b"type") or b"") == b"TAG"
