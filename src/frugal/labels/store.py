"""Where labelled pairs are kept: beside the cache, in the same kind of store.

- the embedded store: ``labels.jsonl`` in the data dir, one pair a line, appended;
- the Redis store: a list ``<FRUGAL_REDIS_PREFIX>labels`` (one JSON pair an element), shared by
  every replica of the deployment and capped at its newest `REDIS_MAX_PAIRS` (Redis holds it
  in memory; the file has no cap).

Both raise `CacheStoreError` when they cannot write or read; the caller decides whether that
fails a request (a reported hit) or is only logged (a shadow comparison).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import IO, Any, Protocol

from redis.exceptions import RedisError

from frugal.cache.redis_connection import RedisTarget
from frugal.errors import CacheStoreError
from frugal.labels.record import LabelledPair

logger = logging.getLogger(__name__)

FILENAME = "labels.jsonl"
REDIS_KEY = "labels"
REDIS_MAX_PAIRS = 200_000
_READ_BYTES = 1 << 16  # per read of the file, off the event loop
_READ_PAIRS = 500  # per LRANGE
_REDIS_TIMEOUT_S = 5.0


class LabelStore(Protocol):
    async def append(self, pair: LabelledPair) -> None:
        """Keep ``pair``. Raises `CacheStoreError`."""
        ...

    def rows(self) -> AsyncIterator[dict[str, Any]]:
        """Every pair kept, oldest first, as JSONL rows. Raises `CacheStoreError`."""
        ...

    async def aclose(self) -> None: ...


class FileLabels:
    """Pairs appended to a JSONL file; writes run one at a time, off the event loop."""

    FILENAME = FILENAME  # in the data dir

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()

    async def append(self, pair: LabelledPair) -> None:
        line = json.dumps(pair.as_row(), ensure_ascii=False) + "\n"
        async with self._lock:
            try:
                await asyncio.to_thread(self._write, line)
            except OSError as exc:
                raise CacheStoreError(f"cannot write {self.path}: {exc}") from exc

    async def rows(self) -> AsyncIterator[dict[str, Any]]:
        try:
            file = await asyncio.to_thread(self.path.open, encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise CacheStoreError(f"cannot read {self.path}: {exc}") from exc
        try:
            while lines := await asyncio.to_thread(_read_some, file):
                for line in lines:
                    if (row := _parse(line, self.path)) is not None:
                        yield row
        except OSError as exc:
            raise CacheStoreError(f"cannot read {self.path}: {exc}") from exc
        finally:
            file.close()

    async def aclose(self) -> None:
        async with self._lock:  # a write under way finishes first
            pass

    def _write(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as file:
            file.write(line)


class RedisLabels:
    """Pairs pushed onto a Redis list, trimmed to its newest ``max_pairs``; on the primary of
    ``target`` (a URL, or a `RedisTarget`), replicas or not."""

    def __init__(
        self, target: str | RedisTarget, *, prefix: str, max_pairs: int = REDIS_MAX_PAIRS
    ) -> None:
        self.key = f"{prefix}{REDIS_KEY}"
        self._max_pairs = max_pairs
        if isinstance(target, str):
            target = RedisTarget(url=target)
        # The primary only: a pair read back must include the last one written.
        self._clients = replace(target, read_from_replicas=False).connect(
            socket_timeout=_REDIS_TIMEOUT_S, socket_connect_timeout=_REDIS_TIMEOUT_S
        )
        self._redis = self._clients.writer

    async def append(self, pair: LabelledPair) -> None:
        row = json.dumps(pair.as_row(), ensure_ascii=False)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.rpush(self.key, row)
                pipe.ltrim(self.key, -self._max_pairs, -1)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise CacheStoreError(f"cannot push to Redis: {type(exc).__name__}: {exc}") from exc

    async def rows(self) -> AsyncIterator[dict[str, Any]]:
        # Read in slices; a trim while reading may skip or repeat a few of the oldest.
        start = 0
        while True:
            try:
                chunk = await self._redis.lrange(self.key, start, start + _READ_PAIRS - 1)
            except (RedisError, OSError) as exc:
                raise CacheStoreError(f"cannot read Redis: {type(exc).__name__}: {exc}") from exc
            for raw in chunk:
                text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
                if (row := _parse(text, self.key)) is not None:
                    yield row
            if len(chunk) < _READ_PAIRS:
                return
            start += len(chunk)

    async def aclose(self) -> None:
        await self._clients.aclose()


def _read_some(file: IO[str]) -> list[str]:
    return file.readlines(_READ_BYTES)


def _parse(line: str, where: object) -> dict[str, Any] | None:
    """A row, or ``None`` for a blank or broken line (a write cut short by a crash)."""
    if not line.strip():
        return None
    try:
        row = json.loads(line)
    except ValueError:
        logger.warning("skipping a line of %s that is not JSON", where)
        return None
    return row if isinstance(row, dict) else None
