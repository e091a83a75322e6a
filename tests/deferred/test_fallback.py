"""A provider without a Batch API: the batch goes live, and says so in its metadata."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from frugal.api.batches import LINE_SCHEMAS
from frugal.deferred import BatchService, BatchStore, FileRecord, RunnerParts
from frugal.observability.prices import PriceTable
from frugal.provider import Endpoint
from frugal.upstream import ProviderBatches


class LiveUpstream:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def post(self, endpoint: Endpoint, body: dict[str, Any], *, request_id: str) -> dict:
        question = body["messages"][-1]["content"]
        self.asked.append(question)
        return {
            "id": "chatcmpl-x",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": f"re: {question}"},
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }

    async def stream(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


def test_a_404_on_the_batch_api_sends_the_batch_live(tmp_path: Path) -> None:
    seen: list[str] = []

    def provider(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.url.path.endswith("/files"):
            return httpx.Response(200, json={"id": "file-p1", "object": "file"})
        return httpx.Response(404, json={"error": {"message": "no such route"}})

    async def scenario() -> tuple[dict[str, Any], list[str]]:
        store = BatchStore(tmp_path / "batches")
        source = tmp_path / "in.jsonl"
        rows = [
            {"custom_id": f"q{n}", "method": "POST", "url": "/v1/chat/completions",
             "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"q {n}"}]}}
            for n in range(3)
        ]  # fmt: skip
        source.write_text("".join(json.dumps(row) + "\n" for row in rows))
        record = FileRecord(id="file-frugal-1", tenant="t", filename="in.jsonl", purpose="batch",
                            bytes=source.stat().st_size, created_at=0)  # fmt: skip
        store.add_file(record, source)
        upstream = LiveUpstream()
        async with httpx.AsyncClient(transport=httpx.MockTransport(provider)) as http:
            parts = RunnerParts(
                store=store,
                upstream=upstream,
                provider=ProviderBatches(http=http, base_url="http://p/v1", api_key="k"),
                cache=None,
                prices=PriceTable(),
                schemas=LINE_SCHEMAS,
                poll_s=0.01,
                live_rps=1000,
            )
            service = BatchService(parts, mode="provider")
            made = service.create(tenant="t", partition="t", input_file_id="file-frugal-1",
                                  endpoint="/v1/chat/completions", completion_window="24h",
                                  metadata=None)  # fmt: skip
            await service.settled()
            return service.get("t", made.id).as_object(), upstream.asked

    batch, asked = asyncio.run(scenario())
    assert batch["status"] == "completed"
    assert batch["metadata"]["frugal_mode"] == "live (the provider has no Batch API)"
    assert sorted(asked) == ["q 0", "q 1", "q 2"]
    assert "POST /v1/batches" in seen
