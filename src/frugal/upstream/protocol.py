"""The seam between the request path and a provider."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol


class OpenStream(Protocol):
    """An upstream stream whose first chunk has arrived; iterate for bytes, then close."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Upstream(Protocol):
    """An OpenAI-compatible provider. Paths are relative to its base URL (``/chat/completions``).

    Both methods raise `frugal.errors.UpstreamError` when no answer can be had.
    """

    async def post(self, path: str, body: dict[str, Any], *, request_id: str) -> dict[str, Any]: ...

    async def stream(self, path: str, body: dict[str, Any], *, request_id: str) -> OpenStream: ...
