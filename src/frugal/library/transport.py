"""httpx transports that serve the OpenAI routes frugal caches from its pipeline, in-process,
and hand every other request to an ordinary HTTP client.

A wrapped SDK client sends its requests through one of these: ``POST {base_url}/chat/
completions``, ``/completions``, ``/embeddings`` and ``/responses`` (without a query string)
are answered by the `Engine`, the rest (models, files, batches, moderations, audio, any other
host or method) goes out as the SDK sent it. The SDK parses both kinds of answer the same
way, so typed objects, ``with_raw_response``, streams and ``parse()`` work unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx

from frugal.library.engine import Engine
from frugal.library.loop import LoopThread
from frugal.library.serve import Served
from frugal.provider import Endpoint


def route(request: httpx.Request, base_url: httpx.URL) -> Endpoint | None:
    """The cached endpoint ``request`` asks for, or ``None`` for a request to pass on."""
    url = request.url
    if request.method != "POST" or url.query:
        return None
    if (url.scheme, url.host, url.port) != (base_url.scheme, base_url.host, base_url.port):
        return None
    base_path = base_url.path.rstrip("/")
    if not url.path.startswith(base_path + "/"):
        return None
    try:
        return Endpoint(url.path[len(base_path) :])
    except ValueError:
        return None


def _headers(request: httpx.Request) -> dict[str, str]:
    return {name.lower(): value for name, value in request.headers.items()}


def _passed_on(response: httpx.Response) -> httpx.Response:
    """``response`` (sent, not read) as this transport's own answer: its bytes still encoded,
    read once by the client that asked."""
    return httpx.Response(
        response.status_code,
        headers=response.headers,
        stream=response.stream,
        extensions=response.extensions,
    )


class FrugalTransport(httpx.BaseTransport):
    """For a synchronous client: the engine runs on ``loop``, one background thread."""

    def __init__(
        self, engine: Engine, *, loop: LoopThread, base_url: httpx.URL, passthrough: httpx.Client
    ) -> None:
        self._engine = engine
        self._loop = loop
        self._base_url = base_url
        self._passthrough = passthrough

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        endpoint = route(request, self._base_url)
        if endpoint is None:
            return _passed_on(self._passthrough.send(request, stream=True))
        served = self._loop.run(self._engine.serve(endpoint, request.read(), _headers(request)))
        if served.events is None:
            return httpx.Response(served.status, headers=served.headers, content=served.content)
        stream = _SyncEvents(self._loop, served.events)
        return httpx.Response(served.status, headers=served.headers, stream=stream)

    def close(self) -> None:
        """Close the engine, stop its thread, close the pass-through client."""
        if self._loop.running:
            try:
                self._loop.run(self._engine.aclose())
            finally:
                self._loop.close()
        self._passthrough.close()


class AsyncFrugalTransport(httpx.AsyncBaseTransport):
    """For an async client: the engine runs in the caller's event loop (the embedder on a
    thread of its own, as in the gateway), opened by the first request."""

    def __init__(
        self, engine: Engine, *, base_url: httpx.URL, passthrough: httpx.AsyncClient
    ) -> None:
        self._engine = engine
        self._base_url = base_url
        self._passthrough = passthrough

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        endpoint = route(request, self._base_url)
        if endpoint is None:
            return _passed_on(await self._passthrough.send(request, stream=True))
        served = await self._engine.serve(endpoint, await request.aread(), _headers(request))
        if served.events is None:
            return httpx.Response(served.status, headers=served.headers, content=served.content)
        return httpx.Response(served.status, headers=served.headers, stream=_AsyncEvents(served))

    async def aclose(self) -> None:
        await self._engine.aclose()
        await self._passthrough.aclose()


class _SyncEvents(httpx.SyncByteStream):
    """A stream's events, each fetched from the loop thread as the client reads it."""

    def __init__(self, loop: LoopThread, events: AsyncIterator[bytes]) -> None:
        self._loop = loop
        self._events = events

    def __iter__(self) -> Iterator[bytes]:
        while (event := self._loop.run(_next(self._events))) is not None:
            yield event

    def close(self) -> None:
        closer = getattr(self._events, "aclose", None)
        if closer is not None and self._loop.running:
            self._loop.run(closer())


class _AsyncEvents(httpx.AsyncByteStream):
    def __init__(self, served: Served) -> None:
        assert served.events is not None
        self._events = served.events

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for event in self._events:
            yield event

    async def aclose(self) -> None:
        closer = getattr(self._events, "aclose", None)
        if closer is not None:
            await closer()


async def _next(events: AsyncIterator[bytes]) -> bytes | None:
    """The next event, or ``None`` at the end: the waiting thread gets a value, not an
    exception that only an async ``for`` understands."""
    try:
        return await anext(events)
    except StopAsyncIteration:
        return None
