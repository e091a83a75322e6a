"""This process as a member of the fleet: its name, its Redis connection, its leases.

A fleet is every frugal process (gateway replicas, `--workers`, wrapped clients) on one Redis
store under one prefix. `open_fleet` is called by `frugal.assembly.open_core` with the Redis
store only; the gateway adds the reports (`frugal.fleet.reports`).
"""

from __future__ import annotations

import os
import socket
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from frugal.cache import CacheKey, SemanticCache
from frugal.config import Settings, redis_target
from frugal.fleet.leases import AnswerReader, FleetLeases
from frugal.fleet.listener import DoneListener
from frugal.fleet.names import FleetNames

__all__ = ["Fleet", "cached_answer", "open_fleet", "replica_id"]

# A fleet operation slower than this is a failure (the request then asks alone). Never below
# the store's own bound: what the cache waits for, the fleet may wait for too.
MIN_OP_TIMEOUT_S = 0.25


@dataclass
class Fleet:
    """``leases`` is ``None`` when fleet coalescing is off (``FRUGAL_FLEET_COALESCING``, or
    ``FRUGAL_COALESCE`` off, or the cache not in mode ``on``)."""

    replica: str
    started_at: float
    client: aioredis.Redis
    names: FleetNames
    leases: FleetLeases | None


def replica_id(settings: Settings) -> str:
    """``FRUGAL_REPLICA_ID``, else ``hostname:pid`` (unique per process on a host)."""
    if settings.replica_id is not None:
        return settings.replica_id
    return f"{socket.gethostname()}:{os.getpid()}"


def cached_answer(cache: SemanticCache) -> AnswerReader:
    """Reads the answer stored for a key by the exact tier, as a hit would find it, without
    counting a hit or touching the entry; ``None`` when absent or the store fails."""

    async def read(key: CacheKey) -> dict[str, Any] | None:
        try:
            entry = await cache.store.get_exact(
                scope=key.scope,
                prompt_hash=key.prompt_hash,
                now=time.time(),
                partition=key.partition,
                model=cache.model.id,
            )
        except Exception:  # fail open: the follower asks upstream itself
            return None
        return entry.response if entry is not None else None

    return read


async def open_fleet(
    settings: Settings, stack: AsyncExitStack, *, cache: SemanticCache | None, coalescing: bool
) -> Fleet:
    """This process's membership of the fleet on the Redis store's server (its primary,
    through Sentinel), closed with ``stack``.

    ``coalescing``: whether process-local coalescing runs (on ``cache``), which fleet
    coalescing builds on. Opening never fails for Redis: an unreachable server is a fleet of
    one until it answers.
    """
    clients = redis_target(settings).connect(socket_connect_timeout=2.0)
    stack.push_async_callback(clients.aclose)
    # Leases and reports are written and read on the primary: a replica may lag it.
    client = clients.writer
    names = FleetNames(settings.redis_prefix)
    replica = replica_id(settings)
    leases = None
    if cache is not None and settings.fleet_coalescing and coalescing:
        listener = DoneListener(client, names.done_pattern)
        listener.start()
        stack.push_async_callback(listener.aclose)
        leases = FleetLeases(
            client,
            names=names,
            listener=listener,
            replica=replica,
            model=cache.model.id,
            read_answer=cached_answer(cache),
            lease_ttl_s=settings.fleet_lease_ttl_s,
            wait_s=settings.fleet_wait_s,
            op_timeout_s=max(MIN_OP_TIMEOUT_S, settings.store_timeout_ms / 1000),
        )
        stack.push_async_callback(leases.aclose)
    return Fleet(replica=replica, started_at=time.time(), client=client, names=names, leases=leases)
