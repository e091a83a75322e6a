"""Writing a batch's input file and waiting for a batch to end, with the openai SDK."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
from openai.types import Batch

TERMINAL = ("completed", "failed", "expired", "cancelled")


def request_line(custom_id: str, url: str, body: dict[str, Any], **changes: Any) -> str:
    """One line of an input file, as OpenAI documents it; ``changes`` replace its fields."""
    line = {"custom_id": custom_id, "method": "POST", "url": url, "body": body, **changes}
    return json.dumps(line)


async def submit(
    client: openai.AsyncOpenAI, lines: list[str], endpoint: str, **extra: Any
) -> Batch:
    """Upload ``lines`` (purpose ``batch``) and create a batch of them."""
    data = "".join(line + "\n" for line in lines).encode()
    uploaded = await client.files.create(file=("input.jsonl", data), purpose="batch")
    return await client.batches.create(
        input_file_id=uploaded.id, endpoint=endpoint, completion_window="24h", **extra
    )


async def ended(client: openai.AsyncOpenAI, batch_id: str) -> Batch:
    """The batch once it has ended; it is asked at most 2,000 times, 10 ms apart."""
    for _ in range(2000):
        batch = await client.batches.retrieve(batch_id)
        if batch.status in TERMINAL:
            return batch
        await asyncio.sleep(0.01)
    raise AssertionError(f"batch {batch_id} is still {batch.status}")


async def file_lines(client: openai.AsyncOpenAI, file_id: str | None) -> list[dict[str, Any]]:
    """The lines of a batch's output or error file, in its order."""
    assert file_id is not None
    text = (await client.files.content(file_id)).text
    return [json.loads(line) for line in text.splitlines()]
