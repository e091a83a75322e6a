"""The bench's Batch API setups: the whole stream submitted as one batch file.

`submit` uploads the draws as one JSONL file (a chat request per line, ``custom_id`` its
position), creates a batch with the `openai` SDK, polls it until it ends, and reads the output
file back: an `Outcome` per draw, in order. Every line's latency is the batch's turnaround
(submitted to output read). How a line was answered is read from its answer, which names the
prompt it was written for: the first line of a text answered for itself was sent upstream
(``miss``); a later line of the same text, or one answered for another prompt, was folded onto
a line that was (``coalesced``): in a fresh gateway nothing is in the cache before the batch.
Straight to the simulator (no gateway) every line is sent (``direct``).
"""

from __future__ import annotations

import asyncio
import io
import json
import time

import openai

from frugal.bench.answers import ANSWER, Outcome
from frugal.bench.workload import Draw

_ENDED = frozenset({"completed", "failed", "expired", "cancelled"})


async def submit(
    base_url: str, draws: list[Draw], *, model: str, through_gateway: bool, poll_s: float = 0.2
) -> tuple[list[Outcome], float]:
    """The draws' outcomes, in order, and the batch's turnaround in seconds.

    Raises `RuntimeError` when the batch does not complete.
    """
    lines = [
        json.dumps(
            {
                "custom_id": str(index),
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": model, "messages": [{"role": "user", "content": draw.text}]},
            }
        )
        for index, draw in enumerate(draws)
    ]
    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=2, timeout=120)
    started = time.perf_counter()
    try:
        upload = io.BytesIO(("\n".join(lines) + "\n").encode())
        uploaded = await client.files.create(file=("bench.jsonl", upload), purpose="batch")
        batch = await client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        while batch.status not in _ENDED:
            await asyncio.sleep(poll_s)
            batch = await client.batches.retrieve(batch.id)
        if batch.status != "completed" or batch.output_file_id is None:
            raise RuntimeError(f"the batch ended {batch.status}: {batch.errors}")
        output = (await client.files.content(batch.output_file_id)).text
    finally:
        await client.close()
    wall = time.perf_counter() - started
    answers = {}
    for line in output.splitlines():
        if line.strip():
            row = json.loads(line)
            answers[int(row["custom_id"])] = row["response"]["body"]
    outcomes, sent = [], set()
    for index, draw in enumerate(draws):
        body = answers.get(index)
        if body is None:
            outcomes.append(Outcome(wall, "error", error="no answer in the output file"))
            continue
        match = ANSWER.match(body["choices"][0]["message"]["content"] or "")
        answered_for = match.group(1) if match else None
        if not through_gateway:
            cache = "direct"
        elif answered_for == draw.text and draw.text not in sent:
            cache = "miss"
            sent.add(draw.text)
        else:
            cache = "coalesced"
        usage = body.get("usage") or {}
        outcomes.append(
            Outcome(
                wall,
                cache,
                answered_for=answered_for,
                prompt_tokens=usage.get("prompt_tokens", 0),
                completion_tokens=usage.get("completion_tokens", 0),
            )
        )
    return outcomes, wall
