"""The simulated OpenAI-compatible provider (``frugal sim``): real HTTP, deterministic answers.

Routes: ``POST /v1/chat/completions`` and ``POST /v1/completions`` (``stream`` included; a list
``prompt`` gets one choice per prompt), ``POST /v1/embeddings`` (a list ``input``;
``encoding_format`` ``float`` or ``base64``), ``GET /sim/stats``, ``POST /sim/reset``,
``POST /sim/faults`` (new fault rates while running), ``GET /healthz``. Any model name is
accepted; every error has OpenAI's shape.

Answers are ``"[MODEL] Answer to: PROMPT"``, where a chat's prompt is its last user message.
Tokens are whitespace-separated words (`count_tokens`); ``max_tokens`` cuts an answer to that
many words with finish_reason ``"length"``. An embedding is a unit vector drawn from the sha256
of its input text (16 dimensions unless ``dimensions`` says otherwise).

A call (one request to a ``/v1`` route) meets, in this order:

1. counting: ``calls``, and ``prompts`` when its body is valid;
2. ``require_api_key``: 401 without ``Authorization: Bearer KEY``;
3. ``rpm``: 429 with ``Retry-After`` when the last 60 s already admitted ``rpm`` calls
   (refused calls do not enter the window);
4. body validation: 400 naming the bad field in ``param``;
5. ``reject_containing``: 400 for the whole call when any of its texts contains it;
6. ``error_rate``: 500 at once, as an overloaded provider answers;
7. a concurrency slot (calls beyond ``max_concurrency`` wait for one), held while the call
   waits `call_latency_s`; a stream spends the per-token part between its chunks;
8. ``drop_rate``: the connection is closed halfway through the response body;
9. the answer.

``GET /sim/stats``: ``calls`` counts every request received on a ``/v1`` route, whatever its
answer; ``prompts`` counts the items of those with a valid body (a chat is one prompt, a list
``prompt`` or ``input`` its length); ``tokens`` sums the usage ``total_tokens`` of complete
answers only; ``rejected`` counts the answers of steps 2-8 by kind; ``in_flight`` and
``max_in_flight`` count calls holding a concurrency slot, now and at most.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import random
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import fastapi
from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from frugal.errors import error_body
from frugal.upstream.sim.wire import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    Call,
    Choice,
    Rejected,
    answer_body,
    chunk_event,
    chunk_head,
    make_choices,
    parse_call,
    sse_event,
    usage_of,
)

_RPM_WINDOW_S = 60.0
FAULTS = ("error_rate", "slow_rate", "slow_ms", "drop_rate")  # changeable while running


@dataclass(frozen=True, kw_only=True)
class SimConfig:
    """How the simulated provider behaves. Rates are probabilities in [0, 1]."""

    call_latency_ms: float = 900.0  # fixed cost of every call
    item_latency_ms: float = 100.0  # cost per prompt or input in the call
    token_latency_ms: float = 0.0  # cost per output token of the call's longest answer
    max_concurrency: int | None = None  # calls beyond it queue
    rpm: int | None = None  # requests per minute, over a sliding 60 s window
    error_rate: float = 0.0  # chance of a 500
    slow_rate: float = 0.0  # chance of slow_ms extra latency
    slow_ms: float = 5000.0
    drop_rate: float = 0.0  # chance the connection closes mid-response
    reject_containing: str | None = None  # 400 for a whole call that contains this text
    require_api_key: str | None = None  # when set, 401 without "Authorization: Bearer KEY"
    seed: int | None = None  # seeds the fault draws, so runs repeat

    def __post_init__(self) -> None:
        for name in ("call_latency_ms", "item_latency_ms", "token_latency_ms", "slow_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("error_rate", "slow_rate", "drop_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {getattr(self, name)!r}")
        for name in ("max_concurrency", "rpm"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {getattr(self, name)!r}")


def call_latency_s(
    config: SimConfig, *, n_items: int, max_output_tokens: int, slow: bool = False
) -> float:
    """Seconds a call takes. A batch pays for its longest answer, not the sum, as a GPU does.

    >>> call_latency_s(SimConfig(), n_items=5, max_output_tokens=0)
    1.4
    """
    ms = config.call_latency_ms + config.item_latency_ms * n_items
    ms += config.token_latency_ms * max_output_tokens + (config.slow_ms if slow else 0.0)
    return ms / 1000.0


class _Stats:
    COUNTS = ("calls", "prompts", "tokens")
    REJECTIONS = ("unauthorized", "rate_limited", "bad_request", "errors", "dropped")

    def __init__(self) -> None:
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        endpoints = (CHAT, COMPLETIONS, EMBEDDINGS)
        self.endpoints = {endpoint: dict.fromkeys(self.COUNTS, 0) for endpoint in endpoints}
        self.rejected = dict.fromkeys(self.REJECTIONS, 0)
        self.max_in_flight = self.in_flight  # calls still running are still in flight

    def as_dict(self) -> dict[str, Any]:
        return {
            **{key: sum(counts[key] for counts in self.endpoints.values()) for key in self.COUNTS},
            "endpoints": {endpoint: dict(counts) for endpoint, counts in self.endpoints.items()},
            "rejected": dict(self.rejected),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
        }


class _RequestsPerMinute:
    """A sliding 60 s window of admitted calls."""

    def __init__(self, rpm: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._rpm, self._clock = rpm, clock
        self._admitted: deque[float] = deque()

    def admit(self) -> int | None:
        """None when the call is admitted, else the whole seconds (>= 1) until a place frees."""
        now = self._clock()
        while self._admitted and self._admitted[0] <= now - _RPM_WINDOW_S:
            self._admitted.popleft()
        if len(self._admitted) < self._rpm:
            self._admitted.append(now)
            return None
        return max(1, math.ceil(self._admitted[0] + _RPM_WINDOW_S - now))

    def reset(self) -> None:
        self._admitted.clear()


# -- cut connections and streams -------------------------------------------------------------


class _Dropped(Exception):
    """Raised inside an event stream to cut its connection."""


class _DroppedResponse(JSONResponse):
    """Promises its whole body in Content-Length, sends half of it, then closes the connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        half = bytes(self.body[: len(self.body) // 2])
        await send({"type": "http.response.body", "body": half, "more_body": True})
        # Returning before the body is complete makes the server close the connection.


class _EventStream(StreamingResponse):
    """Server-sent events; stops when the client leaves, cuts the connection on `_Dropped`."""

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
        except _Dropped:
            return  # the chunked body never ends, so the server closes the connection
        finally:
            await self._events.aclose()  # gives the concurrency slot back if the client left
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _until_disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


# -- the simulator and its app ---------------------------------------------------------------


class _Simulator:
    """The state of one simulated provider: stats, rate window, concurrency slots, fault draws."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.stats = _Stats()
        self._window = None if config.rpm is None else _RequestsPerMinute(config.rpm)
        limit = config.max_concurrency
        self._slots = None if limit is None else asyncio.Semaphore(limit)
        self._rng = random.Random(config.seed)

    def reset(self) -> None:
        """Zero the stats and the rate window; a seeded simulator starts its draws over."""
        self.stats.reset()
        if self._window is not None:
            self._window.reset()
        self._rng.seed(self.config.seed)

    async def handle(self, endpoint: str, request: Request) -> Response:
        """Answer one call, through the steps listed in the module docstring."""
        raw = await request.body()
        self.stats.endpoints[endpoint]["calls"] += 1
        try:
            parsed: Call | Rejected = parse_call(endpoint, raw)
        except Rejected as exc:
            parsed = exc
        else:
            self.stats.endpoints[endpoint]["prompts"] += len(parsed.items)
        try:
            call, slow, drop = self._admit(request.headers.get("authorization", ""), parsed)
        except Rejected as exc:
            self.stats.rejected[exc.kind] += 1
            return exc.response()

        choices = [] if endpoint == EMBEDDINGS else make_choices(call)
        if call.stream and choices:
            return _EventStream(self._stream(call, choices, slow=slow, drop=drop))
        longest = max((len(choice.words) for choice in choices), default=0)
        latency_s = call_latency_s(
            self.config, n_items=len(call.items), max_output_tokens=longest, slow=slow
        )
        async with self._slot():
            await asyncio.sleep(latency_s)
        body = answer_body(call, choices)
        if drop:
            self.stats.rejected["dropped"] += 1
            return _DroppedResponse(body)
        self.stats.endpoints[endpoint]["tokens"] += body["usage"]["total_tokens"]
        return JSONResponse(body)

    def _admit(self, authorization: str, parsed: Call | Rejected) -> tuple[Call, bool, bool]:
        """Steps 2-6: raises `Rejected`, or gives the call and whether it is slow, dropped."""
        config = self.config
        key = config.require_api_key
        if key is not None and not _authorized(authorization, key):
            raise Rejected("unauthorized", 401, "Incorrect API key.", code="invalid_api_key")
        if self._window is not None and (wait_s := self._window.admit()) is not None:
            message = f"Rate limit reached: {config.rpm} requests per minute."
            raise Rejected(
                "rate_limited",
                429,
                message,
                type="rate_limit_error",
                code="rate_limit_exceeded",
                retry_after_s=wait_s,
            )
        if isinstance(parsed, Rejected):
            raise parsed
        needle = config.reject_containing
        if needle is not None and any(needle in text for text in parsed.screened):
            param = {CHAT: "messages", COMPLETIONS: "prompt", EMBEDDINGS: "input"}[parsed.endpoint]
            message = f"The request contains the rejected text {needle!r}."
            raise Rejected("bad_request", 400, message, param=param, code="content_rejected")
        # Three draws per admitted call, always in this order, so that a seeded run repeats.
        rates = (config.error_rate, config.slow_rate, config.drop_rate)
        error, slow, drop = (self._rng.random() < rate for rate in rates)
        if error:
            message = "The server had an error while processing your request."
            raise Rejected("errors", 500, message, type="server_error")
        return parsed, slow, drop

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """Hold one of ``max_concurrency`` places, waiting for one if need be."""
        if self._slots is not None:
            await self._slots.acquire()
        self.stats.in_flight += 1
        self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
        try:
            yield
        finally:
            self.stats.in_flight -= 1
            if self._slots is not None:
                self._slots.release()

    async def _stream(
        self, call: Call, choices: list[Choice], *, slow: bool, drop: bool
    ) -> AsyncGenerator[bytes, None]:
        """A streamed answer: a word per chunk, every choice advancing one word per token time."""
        head = chunk_head(call, chunk=True)
        if call.include_usage:
            head["usage"] = None  # as OpenAI sends on every chunk but the last
        steps = max(len(choice.words) for choice in choices)
        async with self._slot():
            # The first chunk waits for all but the per-token part of the latency.
            await asyncio.sleep(
                call_latency_s(self.config, n_items=len(call.items), max_output_tokens=0, slow=slow)
            )
            if call.endpoint == CHAT:
                for choice in choices:
                    yield chunk_event(head, choice.index, None)
            for step in range(steps):
                if drop and step == steps // 2:
                    self.stats.rejected["dropped"] += 1
                    raise _Dropped
                await asyncio.sleep(self.config.token_latency_ms / 1000.0)
                for choice in choices:
                    if step < len(choice.words):
                        yield chunk_event(head, choice.index, choice.words[step])
            for choice in choices:
                yield chunk_event(head, choice.index, "", choice.finish_reason)
            usage = usage_of(call, choices)
            if call.include_usage:
                yield sse_event({**head, "choices": [], "usage": usage})
            self.stats.endpoints[call.endpoint]["tokens"] += usage["total_tokens"]
            yield b"data: [DONE]\n\n"


def _authorized(header: str, key: str) -> bool:
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())


def create_sim_app(config: SimConfig) -> fastapi.FastAPI:
    """A FastAPI app that plays one OpenAI-compatible provider; its state lives on the app.

    >>> app = create_sim_app(SimConfig(call_latency_ms=0, item_latency_ms=0, seed=1))
    """
    app = fastapi.FastAPI(title="frugal sim", docs_url=None, redoc_url=None, openapi_url=None)
    sim = app.state.sim = _Simulator(config)

    def route(endpoint: str) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            return await sim.handle(endpoint, request)

        return serve

    for endpoint in (CHAT, COMPLETIONS, EMBEDDINGS):
        app.add_api_route(endpoint, route(endpoint), methods=["POST"])

    @app.get("/sim/stats")
    async def stats() -> JSONResponse:
        return JSONResponse(sim.stats.as_dict())

    @app.post("/sim/reset")
    async def reset() -> JSONResponse:
        sim.reset()
        return JSONResponse(sim.stats.as_dict())

    @app.post("/sim/faults")
    async def faults(request: Request) -> JSONResponse:
        """Change the fault rates while running (a load test injects faults midway):
        ``{"error_rate", "slow_rate", "slow_ms", "drop_rate"}``, any of them."""
        try:
            changes = await request.json()
            if not isinstance(changes, dict) or not changes.keys() <= set(FAULTS):
                raise ValueError(f"give any of {', '.join(FAULTS)}")
            sim.config = replace(sim.config, **changes)
        except (ValueError, TypeError) as exc:
            body = error_body(str(exc), type="invalid_request_error")
            return JSONResponse(body, status_code=400)
        return JSONResponse({name: getattr(sim.config, name) for name in FAULTS})

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = f"{request.method} {request.url.path}: {exc.detail}"
        code = "not_found" if exc.status_code == 404 else None
        body = error_body(message, type="invalid_request_error", code=code)
        return JSONResponse(body, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        body = error_body("The simulator failed unexpectedly.", type="server_error")
        return JSONResponse(body, status_code=500)

    return app
