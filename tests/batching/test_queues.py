"""Which misses wait for company: only those a list call can carry. A queue lives while it has
work, so distinct parameters do not pile up batchers; a chat never has one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from frugal.batching.upstream import BatchingUpstream, BatchSettings
from frugal.errors import OverloadedError, QueueTimeoutError


class Echo:
    """A provider that answers each prompt with itself, a little later; ``calls`` records what
    it was sent, as it arrives."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.gate = gate

    async def post(self, path: str, body: dict[str, Any], *, request_id: str) -> dict[str, Any]:
        self.calls.append(body)
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0.001)
        if "messages" in body:
            text = body["messages"][-1]["content"]
            return {"choices": [{"index": 0, "message": {"content": text}}]}
        if "input" in body:
            return {"data": [{"index": 0, "embedding": [0.0]}]}
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        return {"choices": [{"index": i, "text": p} for i, p in enumerate(prompts)]}

    async def stream(self, path: str, body: dict[str, Any], *, request_id: str) -> Any:
        raise NotImplementedError


def chat(n: int) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": f"conversation {n}"}]}


async def test_queues_are_forgotten_once_idle_and_their_counts_kept() -> None:
    batching = BatchingUpstream(Echo(), BatchSettings(window_s=0.005, max_size=5))  # type: ignore[arg-type]

    async def completion(n: int) -> str:
        body = {"model": f"m{n % 10}", "prompt": f"prompt {n}"}  # ten queues, by model
        answer = await batching.post("/completions", body, request_id=str(n))
        return str(answer["choices"][0]["text"])

    answers = await asyncio.gather(*(completion(n) for n in range(50)))
    assert answers == [f"prompt {n}" for n in range(50)]
    await asyncio.sleep(0.01)  # the last batch tasks finish
    assert batching.batchers == {}  # ten queues had work; none is kept
    assert batching.stats.items == 50  # what they did is still counted
    assert batching.stats.batches == 10  # five prompts of one model a call
    await batching.aclose()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/chat/completions", chat(0)),
        ("/responses", {"model": "m", "input": "conversation 0"}),
        ("/completions", {"model": "m", "prompt": [1, 2, 3]}),  # tokens: nothing to pack
    ],
)
async def test_what_no_list_can_carry_goes_upstream_at_once(path: str, body: dict) -> None:
    """With a window that would never end, the call is made before any time passes: the
    provider has it as soon as the caller yields to the loop, and no queue is made."""
    upstream = Echo(gate := asyncio.Event())
    batching = BatchingUpstream(upstream, BatchSettings(window_s=1000.0, max_size=5))  # type: ignore[arg-type]
    task = asyncio.create_task(batching.post(path, body, request_id="r"))
    for _ in range(3):
        await asyncio.sleep(0)
    assert upstream.calls == [body]
    assert batching.batchers == {}
    gate.set()
    await task
    assert batching.calls == 1 and batching.stats.batches == 0
    # A list-capable request with the same window waits for company: not sent yet.
    listed = asyncio.create_task(
        batching.post("/completions", {"model": "m", "prompt": "p"}, request_id="l")
    )
    for _ in range(3):
        await asyncio.sleep(0)
    assert len(upstream.calls) == 1 and len(batching.batchers) == 1
    listed.cancel()
    await batching.aclose()


async def test_identical_chats_each_get_their_own_call() -> None:
    """Folding equal requests is the coalescer's, which the cache's settings govern; here two
    identical chats are two calls, as at the provider (each may be its own sample)."""
    upstream = Echo()
    batching = BatchingUpstream(upstream, BatchSettings(window_s=1.0, max_size=5))  # type: ignore[arg-type]
    await asyncio.gather(
        *(batching.post("/chat/completions", chat(0), request_id="r") for _ in "ab")
    )
    assert upstream.calls == [chat(0), chat(0)]


async def test_calls_at_once_wait_for_a_slot_within_the_queue_bounds() -> None:
    upstream = Echo(gate := asyncio.Event())
    settings = BatchSettings(
        window_s=1.0, max_size=5, max_concurrency=1, max_queue=1, timeout_s=0.01
    )
    batching = BatchingUpstream(upstream, settings)  # type: ignore[arg-type]
    holder = asyncio.create_task(batching.post("/chat/completions", chat(0), request_id="0"))
    await asyncio.sleep(0)
    assert len(upstream.calls) == 1  # holds the only slot until the gate opens
    waiter = asyncio.create_task(batching.post("/chat/completions", chat(1), request_id="1"))
    await asyncio.sleep(0)
    with pytest.raises(OverloadedError):  # one waits already: the queue is full
        await batching.post("/chat/completions", chat(2), request_id="2")
    with pytest.raises(QueueTimeoutError):  # the gate stays shut past the waiter's deadline
        await waiter
    gate.set()
    await holder
    assert upstream.calls == [chat(0)]  # the refused and the expired were never sent
    assert (batching.stats.rejected_full, batching.stats.expired) == (1, 1)
    await batching.post("/chat/completions", chat(3), request_id="3")  # the slot is free again
    assert upstream.calls == [chat(0), chat(3)]
