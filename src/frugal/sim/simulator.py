"""One simulated provider's state and how it answers a call.

Answers are ``"[MODEL] Answer to: PROMPT"``, where a chat's prompt is its last user message and
a response's its last user input; a chat or a response may ask for them as JSON or as a tool
call (`frugal.sim.structured`). Tokens are whitespace-separated words (`count_tokens`);
``max_tokens`` cuts an answer to that many words with finish_reason ``"length"``. An embedding
is a unit vector drawn from the sha256 of its input text (16 dimensions unless ``dimensions``
says otherwise). Each route's module turns its request into a `Job` (`frugal.sim.job`).

A call (one request to a ``/v1`` route) meets, in this order:

1. counting: ``calls``, and ``prompts`` when its body is valid;
2. ``require_api_key``: 401 without ``Authorization: Bearer KEY``;
3. ``rpm``: 429 with ``Retry-After`` when the last 60 s already admitted ``rpm`` calls
   (refused calls do not enter the window);
4. validation: 400 naming the bad field in ``param``; 404 for a model, file or response id
   the simulator does not hold;
5. ``reject_containing``: 400 for the whole call when any of its texts contains it, once the
   call has waited its latency (step 7) as a provider reads a prompt before refusing it; a
   stream is refused at once;
6. ``error_rate``: 500 at once, as an overloaded provider answers;
7. a concurrency slot (calls beyond ``max_concurrency`` wait for one), held while the call
   waits `call_latency_s`; a stream spends the per-token part between its events;
8. ``drop_rate``: the connection is closed halfway through the response body;
9. the answer (only now is an upload stored, a deletion done, a response kept).

``GET /sim/stats``: ``calls`` counts every request received on a ``/v1`` route, whatever its
answer; ``prompts`` counts the items of those with a valid body (a chat or a response is one
prompt, a list ``prompt`` or ``input`` its length; listing models or files none); ``tokens``
sums the usage ``total_tokens`` of complete answers only; ``endpoints`` has these per route
family (`frugal.sim.routes`); ``rejected`` counts the answers of steps 2-8 by kind;
``in_flight`` and ``max_in_flight`` count calls holding a concurrency slot, now and at most.

A batch's lines are not calls: they are answered in the background (`frugal.sim.batches`)
without steps 1-8, but for ``reject_containing``, which refuses a line alone. The batch routes
are calls (family ``/v1/batches``). ``batches`` counts the batches created, ``batch_lines`` the
lines answered (200 or refused; not those a batch expired or was cancelled before answering),
``batch_tokens`` the usage ``total_tokens`` of those answered, and ``batch_endpoints`` has
``lines`` and ``tokens`` per endpoint a batch may call.
"""

from __future__ import annotations

import asyncio
import hmac
import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import Request
from starlette.responses import Response

from frugal.sim.batches import Batches
from frugal.sim.config import SimConfig, call_latency_s
from frugal.sim.files import FileStore
from frugal.sim.job import Job, Streamed
from frugal.sim.rate_limit import RequestsPerMinute
from frugal.sim.rejected import Rejected, content_rejected
from frugal.sim.response_store import ResponseStore
from frugal.sim.responses import Dropped, DroppedResponse, EventStream
from frugal.sim.stats import Stats


class Simulator:
    """The state of one simulated provider: stats, rate window, concurrency slots, fault draws,
    and what it holds (uploaded files, stored responses).

    ``config`` is replaced while running when ``POST /sim/faults`` changes its fault rates.
    """

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.stats = Stats()
        self.files = FileStore()
        self.responses = ResponseStore()
        self.batches = Batches(
            config=config, files=self.files, responses=self.responses, stats=self.stats
        )
        self._window = None if config.rpm is None else RequestsPerMinute(config.rpm)
        limit = config.max_concurrency
        self._slots = None if limit is None else asyncio.Semaphore(limit)
        self._rng = random.Random(config.seed)

    def reset(self) -> None:
        """Zero the stats and the rate window; a seeded simulator starts its draws over. Files,
        stored responses and batches stay (a batch still running counts its lines anew)."""
        self.stats.reset()
        if self._window is not None:
            self._window.reset()
        self._rng.seed(self.config.seed)

    async def aclose(self) -> None:
        """Stop the batches still running, then remove the files from disk."""
        await self.batches.aclose()
        self.files.close()

    async def serve(
        self, route: str, request: Request, build: Callable[[Request], Awaitable[Job]]
    ) -> Response:
        """Answer one call to ``route``'s family, through the steps in the module docstring;
        ``build`` reads the request into its `Job` or raises `Rejected`."""
        self.stats.endpoints[route]["calls"] += 1
        parsed: Job | Rejected
        try:
            parsed = await build(request)
            self.stats.endpoints[route]["prompts"] += parsed.items
        except Rejected as exc:
            parsed = exc
        try:
            return await self._answer(route, request.headers.get("authorization", ""), parsed)
        except Rejected as exc:
            self.stats.rejected[exc.kind] += 1
            return exc.response()
        finally:
            if isinstance(parsed, Job):
                await parsed.release()

    async def _answer(self, route: str, authorization: str, parsed: Job | Rejected) -> Response:
        job, slow, drop = self._admit(authorization, parsed)
        if isinstance(job.answer, Streamed):
            return EventStream(self._stream(route, job, job.answer, slow=slow, drop=drop))
        latency_s = call_latency_s(
            self.config, n_items=job.items, max_output_tokens=job.output_tokens, slow=slow
        )
        async with self._slot():
            await asyncio.sleep(latency_s)
        refused = self._refused(job)
        if refused is not None:
            raise refused
        response = await job.answer()
        if drop:
            self.stats.rejected["dropped"] += 1
            return await DroppedResponse.of(response)
        self.stats.endpoints[route]["tokens"] += job.tokens
        return response

    def _admit(self, authorization: str, parsed: Job | Rejected) -> tuple[Job, bool, bool]:
        """Steps 2-6: raises `Rejected`, or gives the job and whether it is slow, dropped."""
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
        refused = self._refused(parsed)
        if refused is not None and isinstance(parsed.answer, Streamed):
            raise refused
        # Three draws per admitted call, always in this order, so that a seeded run repeats.
        rates = (config.error_rate, config.slow_rate, config.drop_rate)
        error, slow, drop = (self._rng.random() < rate for rate in rates)
        if error:
            message = "The server had an error while processing your request."
            raise Rejected("errors", 500, message, type="server_error")
        return parsed, slow, drop

    def _refused(self, job: Job) -> Rejected | None:
        """The 400 of ``reject_containing``, if ``job`` contains it."""
        needle = self.config.reject_containing
        if needle is not None and any(needle in text for text in job.screened):
            return content_rejected(needle, job.param)
        return None

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
        self, route: str, job: Job, stream: Streamed, *, slow: bool, drop: bool
    ) -> AsyncGenerator[bytes, None]:
        """A streamed answer: its head after the call's latency, a step per token time."""
        async with self._slot():
            # The head waits for all but the per-token part of the latency.
            await asyncio.sleep(
                call_latency_s(self.config, n_items=job.items, max_output_tokens=0, slow=slow)
            )
            for event in stream.head:
                yield event
            for step, events in enumerate(stream.steps):
                if drop and step == len(stream.steps) // 2:
                    self.stats.rejected["dropped"] += 1
                    raise Dropped
                await asyncio.sleep(self.config.token_latency_ms / 1000.0)
                for event in events:
                    yield event
            *tail, last = stream.tail
            for event in tail:
                yield event
            # Complete once its last event goes: counted (and kept) before it is sent.
            self.stats.endpoints[route]["tokens"] += job.tokens
            if stream.on_complete is not None:
                stream.on_complete()
            yield last


def _authorized(header: str, key: str) -> bool:
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())
