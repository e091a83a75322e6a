"""The request path of one wrapped client: opened once, in the event loop that serves it,
and closed with the client."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from frugal.assembly import Core, open_core
from frugal.config import Settings
from frugal.errors import ShuttingDownError
from frugal.library.serve import Served, serve
from frugal.provider import Endpoint


class Engine:
    """frugal's pipeline for one client, as `frugal.assembly.open_core` builds it from
    ``settings``; requests are answered for ``tenant`` (its own cache partition).

    Opened by `open` or by the first request, in the running event loop, which every later
    call must share (the parts hold that loop's connections and futures); `aclose` closes
    everything it opened and may be called more than once.
    """

    def __init__(self, settings: Settings, *, tenant: str) -> None:
        self.settings = settings
        self.tenant = tenant
        self._stack = AsyncExitStack()
        self._core: Core | None = None
        self._opening = asyncio.Lock()
        self._closed = False

    async def open(self) -> Core:
        """The parts, opened on first call (loading the embedder, off the loop)."""
        if self._core is not None:
            return self._core
        async with self._opening:
            if self._closed:
                raise ShuttingDownError("This frugal client is closed.")
            if self._core is None:
                # The gateway's feedback routes read the hits it remembers; a library has none.
                self._core = await open_core(self.settings, self._stack, remember_hits=False)
        return self._core

    async def serve(self, endpoint: Endpoint, raw: bytes, headers: dict[str, str]) -> Served:
        """One request to a cached route (`frugal.library.serve.serve`)."""
        core = await self.open()
        return await serve(
            core.pipeline,
            endpoint,
            raw,
            headers,
            tenant=self.tenant,
            max_body_bytes=self.settings.max_body_bytes,
        )

    async def aclose(self) -> None:
        self._closed = True
        self._core = None
        await self._stack.aclose()
