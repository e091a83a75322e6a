"""Sending a batch's unique misses through the live path, at a chosen rate.

Each miss is one ``post`` on the pipeline's upstream (`frugal.batching`: its batching window,
queue bound and concurrency cap apply as to any live miss), started at ``rps`` per second so
that a large batch does not crowd out live traffic. Results are handed to ``on_result`` as they
come (the runner persists them, so a restart sends only what is left). A gateway queue that is
full (`OverloadedError`) is waited out and tried again; a provider's refusal (a 4xx) is that
line's answer; no answer at all after the upstream's retries is that line's error.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

from frugal.deferred.lines import BatchLine
from frugal.deferred.output import Result
from frugal.errors import OverloadedError, UpstreamError, UpstreamStatusError
from frugal.ids import random_hex
from frugal.provider import Upstream

OVERLOADED_WAIT_S = 1.0
OVERLOADED_TRIES = 30


async def send_live(
    upstream: Upstream,
    misses: Sequence[tuple[int, BatchLine]],
    *,
    rps: float,
    on_result: Callable[[int, Result], None],
    stop: asyncio.Event,
) -> bool:
    """Send each ``(miss number, line)``; ``False`` when ``stop`` was set before all were sent
    (those in flight still finish and are reported)."""
    started = time.monotonic()
    tasks: list[asyncio.Task[None]] = []

    async def one(number: int, line: BatchLine) -> None:
        on_result(number, await _answer(upstream, line))

    stopped = False
    for position, (number, line) in enumerate(misses):
        delay = started + position / rps - time.monotonic()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
        if stop.is_set():
            stopped = True
            break
        tasks.append(asyncio.create_task(one(number, line)))
    if tasks:
        await asyncio.gather(*tasks)
    return not stopped


async def _answer(upstream: Upstream, line: BatchLine) -> Result:
    request_id = f"req_{random_hex()}"
    for _ in range(OVERLOADED_TRIES):
        try:
            body = await upstream.post(line.endpoint, line.body, request_id=request_id)
        except OverloadedError:
            await asyncio.sleep(OVERLOADED_WAIT_S)
            continue
        except UpstreamStatusError as exc:
            if exc.upstream_status < 500 and exc.upstream_body is not None:
                return Result(exc.upstream_status, exc.upstream_body, request_id=request_id)
            return Result(error=_error(exc), request_id=request_id)
        except UpstreamError as exc:
            return Result(error=_error(exc), request_id=request_id)
        return Result(200, body, request_id=request_id)
    return Result(
        error={"code": "gateway_overloaded", "message": "The gateway's queues stayed full."},
        request_id=request_id,
    )


def _error(exc: UpstreamError) -> dict[str, str]:
    return {"code": "upstream_error", "message": exc.message}
