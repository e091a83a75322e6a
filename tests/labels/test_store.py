"""Where labelled pairs are kept: a JSONL file or a Redis list, read back oldest first, in the
pairs format `frugal tune --pairs` reads."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from frugal.analysis.thresholds import load_pairs
from frugal.cache import ShadowPair
from frugal.errors import CacheStoreError
from frugal.labels import FileLabels, Labels, LabelStore, RedisLabels, ServedHit
from frugal.local.redis_server import RedisServer

SERVED = ServedHit(
    request_id="req_1",
    partition="acme",
    entry_id="e1",
    prompt="What's the capital of Spain?",
    cached_prompt="What is the capital of France?",
    similarity=0.91,
)
POSITIVE = ShadowPair(
    prompt="How do I reverse a list in Python?",
    cached_prompt="How can I reverse a Python list?",
    partition="acme",
    similarity=0.95,
    answer_similarity=1.0,
    label=1,
)


@pytest.fixture(params=["file", "redis"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, redis_server: RedisServer
) -> AsyncIterator[LabelStore]:
    if request.param == "file":
        kept: LabelStore = FileLabels(tmp_path / "data" / FileLabels.FILENAME)
    else:
        kept = RedisLabels(redis_server.url, prefix=f"test-{tmp_path.name}:")
    yield kept
    await kept.aclose()


async def all_rows(labels: Labels) -> list[dict[str, Any]]:
    return [row async for row in labels.rows()]


async def test_pairs_are_kept_in_order_with_where_they_came_from(store: LabelStore) -> None:
    labels = Labels(store, model="all-MiniLM-L6-v2")
    assert await all_rows(labels) == []  # nothing kept yet is not an error
    await labels.reported(SERVED)
    await labels.compared(POSITIVE)
    reported, compared = await all_rows(labels)
    assert list(reported)[:3] == ["a", "b", "label"]
    assert reported | {"created_at": 0} == {
        "a": "What is the capital of France?",  # the cached prompt
        "b": "What's the capital of Spain?",  # the prompt it answered
        "label": 0,
        "source": "feedback",
        "similarity": 0.91,
        "model": "all-MiniLM-L6-v2",
        "partition": "acme",
        "created_at": 0,
        "request_id": "req_1",
        "answer_similarity": None,
    }
    assert isinstance(reported["created_at"], float) and reported["created_at"] > 1.7e9
    assert (compared["label"], compared["source"], compared["answer_similarity"]) == (
        1,
        "shadow",
        1.0,
    )


async def test_the_rows_are_pairs_the_tuning_commands_read(
    store: LabelStore, tmp_path: Path
) -> None:
    labels = Labels(store, model="all-MiniLM-L6-v2")
    for _ in range(1200):  # more than one read of either store
        await labels.reported(SERVED)
    await labels.compared(POSITIVE)
    exported = tmp_path / "labels.jsonl"
    rows = await all_rows(labels)
    exported.write_text("".join(json.dumps(row) + "\n" for row in rows))
    pairs = load_pairs(exported)
    assert len(pairs) == 1201
    assert [pair.same for pair in pairs[-2:]] == [False, True]


async def test_redis_keeps_the_newest_pairs_under_the_deployment_prefix(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    store = RedisLabels(redis_server.url, prefix=f"cap-{tmp_path.name}:", max_pairs=3)
    assert store.key == f"cap-{tmp_path.name}:labels"
    labels = Labels(store, model="m")
    try:
        for number in range(5):
            await labels.reported(
                ServedHit("req", "p", "e", prompt=f"q{number}", cached_prompt="c", similarity=1)
            )
        assert [row["b"] for row in await all_rows(labels)] == ["q2", "q3", "q4"]
    finally:
        await store.aclose()


async def test_a_store_that_cannot_write_raises_a_store_error(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the data dir should be")
    labels = Labels(FileLabels(blocked / FileLabels.FILENAME), model="m")
    with pytest.raises(CacheStoreError):
        await labels.reported(SERVED)
    gone = RedisLabels("redis://127.0.0.1:1/0", prefix="x:")
    try:
        with pytest.raises(CacheStoreError):
            await Labels(gone, model="m").reported(SERVED)
        with pytest.raises(CacheStoreError):
            await anext(gone.rows())
    finally:
        await gone.aclose()
