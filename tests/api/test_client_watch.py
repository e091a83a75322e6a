"""`ClientWatch`: a departed client cancels the request's work only once the watch is started,
and only a departure is reported as one."""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import Request

from frugal.api.routes import ClientWatch
from frugal.errors import ClientDisconnectedError


def request_with(messages: asyncio.Queue[dict[str, object]]) -> Request:
    return Request({"type": "http", "method": "POST", "headers": []}, receive=messages.get)


async def serving(messages: asyncio.Queue[dict[str, object]]) -> asyncio.Task[str]:
    """A task serving a request whose work starts the watch, then waits for the provider;
    returned once the watch is started."""
    started = asyncio.Event()

    async def serve() -> str:
        watch = ClientWatch(request_with(messages))  # it watches the task serving the request

        async def work() -> str:
            watch.start()
            started.set()
            await asyncio.sleep(60)
            return "answer"

        return await watch.guard(work())

    task = asyncio.create_task(serve())
    await started.wait()
    return task


async def test_a_client_that_leaves_after_the_start_cancels_the_work() -> None:
    messages: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    task = await serving(messages)
    await messages.put({"type": "http.disconnect"})
    with pytest.raises(ClientDisconnectedError):
        await asyncio.wait_for(task, timeout=10)


async def test_before_the_start_nothing_watches() -> None:
    messages: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    await messages.put({"type": "http.disconnect"})  # gone already: a hit is answered anyway
    watch = ClientWatch(request_with(messages))

    async def work() -> str:
        await asyncio.sleep(0.05)
        return "answer"

    assert await watch.guard(work()) == "answer"
    assert messages.qsize() == 1  # nobody read the departure


async def test_a_cancel_from_elsewhere_stays_a_cancel() -> None:
    task = await serving(asyncio.Queue())
    task.cancel()  # a shutdown, say: the client is still there
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_departure_after_the_answer_cancels_nothing() -> None:
    messages: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    watch = ClientWatch(request_with(messages))

    async def work() -> str:
        watch.start()
        return "answer"

    assert await watch.guard(work()) == "answer"
    await messages.put({"type": "http.disconnect"})
    await asyncio.sleep(0.05)  # this task goes on unharmed
    assert asyncio.current_task() is not None and not asyncio.current_task().cancelling()
