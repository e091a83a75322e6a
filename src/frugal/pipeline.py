"""The path of one request, from a validated body to an answer.

    validated body ──▶ pipeline ──▶ upstream ──▶ answer

The cache and the batcher join this path in their own modules; the API layer only ever calls
`Pipeline.answer` and `Pipeline.answer_stream`.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from frugal.upstream.protocol import OpenStream, Upstream


class Endpoint(enum.StrEnum):
    """The OpenAI endpoints frugal serves, as paths relative to the API base (``/v1``)."""

    CHAT = "/chat/completions"
    COMPLETIONS = "/completions"
    EMBEDDINGS = "/embeddings"


class CacheOutcome(enum.StrEnum):
    """What the cache did for a request; sent back as ``x-frugal-cache``."""

    HIT = "hit"
    MISS = "miss"
    BYPASS = "bypass"


@dataclass(frozen=True)
class Answer:
    body: dict[str, Any]
    cache: CacheOutcome


@dataclass
class StreamedAnswer:
    """An answer delivered as Server-Sent Events; ``aclose`` releases the upstream stream."""

    stream: OpenStream
    cache: CacheOutcome

    def __aiter__(self) -> AsyncIterator[bytes]:
        return aiter(self.stream)

    async def aclose(self) -> None:
        await self.stream.aclose()


class Pipeline:
    """Answers requests; today by forwarding them to the upstream unchanged."""

    def __init__(self, *, upstream: Upstream) -> None:
        self._upstream = upstream

    async def answer(self, endpoint: Endpoint, body: dict[str, Any], *, request_id: str) -> Answer:
        payload = await self._upstream.post(endpoint.value, body, request_id=request_id)
        return Answer(body=payload, cache=CacheOutcome.BYPASS)

    async def answer_stream(
        self, endpoint: Endpoint, body: dict[str, Any], *, request_id: str
    ) -> StreamedAnswer:
        stream = await self._upstream.stream(endpoint.value, body, request_id=request_id)
        return StreamedAnswer(stream=stream, cache=CacheOutcome.BYPASS)
