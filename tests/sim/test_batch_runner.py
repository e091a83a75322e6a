"""The tasks that run batches: ended on shutdown, and cancelled when their batch is forgotten."""

from __future__ import annotations

import asyncio
import io
import json

from frugal.sim import SimConfig
from frugal.sim.batch import Batch
from frugal.sim.batches import Batches
from frugal.sim.files import FileStore
from frugal.sim.response_store import ResponseStore
from frugal.sim.stats import Stats

EMBEDDINGS = "/v1/embeddings"
LINE = {"custom_id": "a", "method": "POST", "url": EMBEDDINGS, "body": {"model": "m", "input": "x"}}


async def waiting_batches(batches: Batches, files: FileStore, count: int) -> list[Batch]:
    """``count`` batches started, each validated and waiting out its delay."""
    source = await files.add(
        io.BytesIO(json.dumps(LINE).encode()), filename="in.jsonl", purpose="batch"
    )
    started = []
    for _ in range(count):
        batch = Batch(
            endpoint=EMBEDDINGS,
            input_file_id=source.id,
            completion_window="24h",
            metadata=None,
            created_at=0,
            expires_at=0,
        )
        batches.start(batch, source)
        started.append(batch)
    for _ in range(1000):
        if all(batch.status == "in_progress" for batch in started[-batches.capacity :]):
            break
        await asyncio.sleep(0.01)
    return started


def runner(files: FileStore, *, capacity: int = 1000) -> Batches:
    config = SimConfig(batch_delay_s=3600)
    stats, responses = Stats(), ResponseStore()
    return Batches(config=config, files=files, responses=responses, stats=stats, capacity=capacity)


async def test_aclose_ends_the_batches_still_running() -> None:
    files = FileStore()
    batches = runner(files)
    started = await waiting_batches(batches, files, 2)
    running = batches.running
    await batches.aclose()
    files.close()

    assert running == 2 and batches.running == 0
    assert [batch.status for batch in started] == ["in_progress", "in_progress"]


async def test_a_forgotten_batch_stops_running() -> None:
    files = FileStore()
    batches = runner(files, capacity=2)
    oldest, *kept = await waiting_batches(batches, files, 3)
    for _ in range(100):  # a cancelled task ends within a few steps of the loop
        if batches.running == 2:
            break
        await asyncio.sleep(0)
    held = [batch.id for batch in batches.listed()]
    running = batches.running
    await batches.aclose()
    files.close()

    assert held == [batch.id for batch in kept] and batches.get(oldest.id) is None
    assert running == 2
