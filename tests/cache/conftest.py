"""Fixtures for the cache tests: a seeded generator, stores of every kind."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest

from frugal.cache.embedded import EmbeddedStore
from frugal.cache.index import IndexOptions
from frugal.cache.redis_store import RedisStore
from frugal.cache.store import VectorStore
from tests.cache.entries import DIM, T0


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


KINDS = ["embedded", "redis"]
StoreFactory = Callable[..., Awaitable[VectorStore]]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def open_store(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[StoreFactory]:
    """Open stores of this test's kind (``max_entries`` 100 unless given); closed after it."""
    opened: list[VectorStore] = []

    async def open_one(max_entries: int = 100) -> VectorStore:
        store: VectorStore
        if kind == "redis":
            server = request.getfixturevalue("redis_server")
            name = f"test-{uuid.uuid4().hex[:12]}"
            store = await RedisStore.open(
                server.url, prefix=f"{name}:", index=name, max_entries=max_entries, dimensions=DIM
            )
        else:
            index = IndexOptions(approximate_above=20, max_dead_share=0.25)
            store = await EmbeddedStore.open(
                tmp_path / f"cache-{len(opened)}.sqlite3",
                max_entries=max_entries,
                dimensions=DIM,
                now=T0,
                write_delay_s=0.01,
                index_options=index if kind == "embedded-approximate" else None,
            )
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        if isinstance(store, RedisStore):
            await store.flush()
            await store.drop_index()
        await store.aclose()
