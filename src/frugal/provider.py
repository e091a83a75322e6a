"""What frugal asks of a provider: the endpoints it serves, and the seam that reaches them.

`Upstream` is implemented by the OpenAI-compatible client (`frugal.upstream`) and by the
batching layer that wraps it (`frugal.batching`); the pipeline talks to either through it.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from typing import Any, Protocol

__all__ = ["Endpoint", "OpenStream", "Upstream"]


class Endpoint(enum.StrEnum):
    """An endpoint, as its path relative to the API base (``/v1``)."""

    CHAT = "/chat/completions"
    COMPLETIONS = "/completions"
    EMBEDDINGS = "/embeddings"
    RESPONSES = "/responses"  # the Responses API: cached and coalesced, never batched


class OpenStream(Protocol):
    """An upstream stream whose first chunk has arrived; iterate for bytes, then close."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Upstream(Protocol):
    """An OpenAI-compatible provider.

    Both methods raise `frugal.errors.UpstreamError` when no answer can be had.
    """

    async def post(
        self, endpoint: Endpoint, body: dict[str, Any], *, request_id: str
    ) -> dict[str, Any]: ...

    async def stream(
        self, endpoint: Endpoint, body: dict[str, Any], *, request_id: str
    ) -> OpenStream: ...
