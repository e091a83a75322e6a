"""Responses that a plain FastAPI response cannot give: a cut connection, a watched stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path

from fastapi.responses import StreamingResponse
from starlette.responses import FileResponse, Response
from starlette.types import Receive, Scope, Send


class Dropped(Exception):
    """Raised inside an `EventStream`'s events to cut its connection."""


class DroppedResponse(Response):
    """Promises its whole body in Content-Length, sends half of it, then closes the connection.

    `of` gives the dropped form of any whole response (a file's is read into memory).
    """

    @classmethod
    async def of(cls, whole: Response) -> DroppedResponse:
        if isinstance(whole, FileResponse):
            body = await asyncio.to_thread(Path(whole.path).read_bytes)
        else:
            body = bytes(whole.body)
        return cls(body, status_code=whole.status_code, media_type=whole.media_type)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        half = bytes(self.body[: len(self.body) // 2])
        await send({"type": "http.response.body", "body": half, "more_body": True})
        # Returning before the body is complete makes the server close the connection.


class EventStream(StreamingResponse):
    """Server-sent events; stops when the client leaves, cuts the connection on `Dropped`."""

    def __init__(self, events: AsyncGenerator[bytes, None]) -> None:
        headers = {"cache-control": "no-cache"}
        super().__init__(events, media_type="text/event-stream", headers=headers)
        self._events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = asyncio.ensure_future(self._send_all(send))
        watching = asyncio.ensure_future(_until_disconnected(receive))
        try:
            await asyncio.wait({streaming, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (streaming, watching):
                task.cancel()
            await asyncio.gather(streaming, watching, return_exceptions=True)
        if not streaming.cancelled():
            streaming.result()  # re-raises what went wrong

    async def _send_all(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        try:
            async for event in self._events:
                await send({"type": "http.response.body", "body": event, "more_body": True})
        except Dropped:
            return  # the chunked body never ends, so the server closes the connection
        finally:
            await self._events.aclose()  # gives the concurrency slot back if the client left
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _until_disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
