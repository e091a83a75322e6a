"""One simulated provider's state and how it answers a call.

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
import random
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from frugal.sim.config import SimConfig, call_latency_s
from frugal.sim.rate_limit import RequestsPerMinute
from frugal.sim.responses import Dropped, DroppedResponse, EventStream
from frugal.sim.stats import Stats
from frugal.sim.wire import (
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


class Simulator:
    """The state of one simulated provider: stats, rate window, concurrency slots, fault draws.

    ``config`` is replaced while running when ``POST /sim/faults`` changes its fault rates.
    """

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.stats = Stats()
        self._window = None if config.rpm is None else RequestsPerMinute(config.rpm)
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
        parsed: Call | Rejected
        try:
            parsed = parse_call(endpoint, raw)
            self.stats.endpoints[endpoint]["prompts"] += len(parsed.items)
        except Rejected as exc:
            parsed = exc
        try:
            call, slow, drop = self._admit(request.headers.get("authorization", ""), parsed)
        except Rejected as exc:
            self.stats.rejected[exc.kind] += 1
            return exc.response()

        choices = [] if endpoint == EMBEDDINGS else make_choices(call)
        if call.stream and choices:
            return EventStream(self._stream(call, choices, slow=slow, drop=drop))
        longest = max((len(choice.words) for choice in choices), default=0)
        latency_s = call_latency_s(
            self.config, n_items=len(call.items), max_output_tokens=longest, slow=slow
        )
        async with self._slot():
            await asyncio.sleep(latency_s)
        body = answer_body(call, choices)
        if drop:
            self.stats.rejected["dropped"] += 1
            return DroppedResponse(body)
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
                    raise Dropped
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
