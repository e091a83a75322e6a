"""A queue lives while it has work: distinct conversations do not pile up batchers."""

from __future__ import annotations

import asyncio
from typing import Any

from frugal.batching.upstream import BatchingUpstream, BatchSettings


class Echo:
    """A provider that answers each prompt with itself, a little later."""

    async def post(self, path: str, body: dict[str, Any], *, request_id: str) -> dict[str, Any]:
        await asyncio.sleep(0.001)
        if "messages" in body:
            text = body["messages"][-1]["content"]
            return {"choices": [{"index": 0, "message": {"content": text}}]}
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        return {"choices": [{"index": i, "text": p} for i, p in enumerate(prompts)]}

    async def stream(self, path: str, body: dict[str, Any], *, request_id: str) -> Any:
        raise NotImplementedError


async def test_queues_are_forgotten_once_idle_and_their_counts_kept() -> None:
    batching = BatchingUpstream(Echo(), BatchSettings(window_s=0.005, max_size=5))  # type: ignore[arg-type]

    async def chat(n: int) -> str:
        body = {"model": "m", "messages": [{"role": "user", "content": f"conversation {n}"}]}
        answer = await batching.post("/chat/completions", body, request_id=str(n))
        return str(answer["choices"][0]["message"]["content"])

    async def completion(n: int) -> str:
        body = {"model": "m", "prompt": f"prompt {n}"}
        answer = await batching.post("/completions", body, request_id=str(n))
        return str(answer["choices"][0]["text"])

    answers = await asyncio.gather(
        *(chat(n) for n in range(200)), *(completion(n) for n in range(20))
    )
    assert answers == [f"conversation {n}" for n in range(200)] + [f"prompt {n}" for n in range(20)]
    await asyncio.sleep(0.01)  # the last batch tasks finish
    assert batching.batchers == {}  # 201 queues had work; none is kept
    assert batching.stats.items == 220  # what they did is still counted
    assert batching.stats.batches == 200 + 4  # a call per conversation; 20 prompts by 5
    await batching.aclose()
