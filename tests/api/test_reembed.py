"""The re-embedding route's stream: a progress line per batch, and a failure midway that ends
it with an error line in OpenAI's shape (the status was sent with the first line)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from frugal.api.reembed import _lines
from frugal.cache import ReembedProgress
from frugal.errors import EmbedderError


async def test_a_failure_midway_ends_the_stream_with_an_error_line() -> None:
    async def rest() -> AsyncIterator[ReembedProgress]:
        yield ReembedProgress(done=64, total=100, reembedded=63)
        raise EmbedderError("the model failed")

    chunks = [chunk async for chunk in _lines(ReembedProgress(0, 100, 0), rest(), model="m@1")]
    lines = [json.loads(chunk) for chunk in chunks]
    assert lines[:2] == [
        {"done": 0, "total": 100, "reembedded": 0, "model": "m@1"},
        {"done": 64, "total": 100, "reembedded": 63, "model": "m@1"},
    ]
    assert lines[2]["error"]["code"] == "embedder_unavailable"
    assert all(chunk.endswith(b"\n") and chunk.count(b"\n") == 1 for chunk in chunks)
