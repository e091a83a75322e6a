"""Running a batch through the official SDK, as a client of the gateway would."""

from __future__ import annotations

import io
import json
import time
from typing import Any

from openai import OpenAI
from openai.types import Batch

ENDED = {"completed", "failed", "expired", "cancelled"}
CHAT = "/v1/chat/completions"


def chat_line(custom_id: str, question: str, model: str = "gpt-4o-mini") -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": CHAT,
        "body": {"model": model, "messages": [{"role": "user", "content": question}]},
    }


def upload(client: OpenAI, lines: list[dict[str, Any]] | bytes) -> str:
    data = (
        lines
        if isinstance(lines, bytes)
        else "".join(json.dumps(line) + "\n" for line in lines).encode()
    )
    return client.files.create(file=("batch.jsonl", io.BytesIO(data)), purpose="batch").id


def start(
    client: OpenAI,
    lines: list[dict[str, Any]] | bytes,
    *,
    endpoint: str = CHAT,
    metadata: dict[str, str] | None = None,
) -> Batch:
    file_id = upload(client, lines)
    return client.batches.create(
        input_file_id=file_id,
        endpoint=endpoint,  # type: ignore[arg-type]
        completion_window="24h",
        metadata=metadata,
    )


def until_ended(client: OpenAI, batch_id: str, *, bound_s: float = 120) -> Batch:
    """The batch once it has ended (a bound on the wait, not a timing assertion)."""
    deadline = time.monotonic() + bound_s
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in ENDED:
            return batch
        if time.monotonic() > deadline:
            raise AssertionError(f"batch {batch_id} still {batch.status} after {bound_s} s")
        time.sleep(0.1)


def until_status(client: OpenAI, batch_id: str, status: str, *, bound_s: float = 60) -> Batch:
    deadline = time.monotonic() + bound_s
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status == status:
            return batch
        if batch.status in ENDED or time.monotonic() > deadline:
            raise AssertionError(f"batch {batch_id} is {batch.status}, never {status}")
        time.sleep(0.05)


def lines_of(client: OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    text = client.files.content(file_id).text
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def run(client: OpenAI, lines: list[dict[str, Any]], **given: Any) -> Batch:
    return until_ended(client, start(client, lines, **given).id)
