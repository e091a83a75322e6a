"""SIGTERM under load: readiness fails first, every request in flight still gets its answer."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx

from tests.conftest import StackFactory


async def test_sigterm_drains_then_finishes_what_is_in_flight(make_stack: StackFactory) -> None:
    stack = make_stack(
        sim_args=["--call-latency-ms", "800"],
        env={"FRUGAL_SHUTDOWN_DRAIN_S": "1.5", "FRUGAL_BATCH_WINDOW_MS": "100"},
    )
    questions = [f"In-flight question number {n} about {topic}?" for n, topic in
                 enumerate(["rivers", "comets", "violins", "tax", "orchids", "chess"])]  # fmt: skip
    async with httpx.AsyncClient(base_url=stack.gateway.url, timeout=30) as http:

        async def ask(text: str) -> httpx.Response:
            body = {"model": "m", "messages": [{"role": "user", "content": text}]}
            return await http.post("/v1/chat/completions", json=body)

        in_flight = [asyncio.create_task(ask(text)) for text in questions]
        await asyncio.sleep(0.3)  # queued in the batch window, or upstream
        stack.gateway.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.2)
        # Draining: still serving, but no longer ready.
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        late = await ask("A question asked while draining?")
        answers = await asyncio.gather(*in_flight)
    assert late.status_code == 200
    for text, answer in zip(questions, answers, strict=True):
        assert answer.status_code == 200
        assert text in answer.json()["choices"][0]["message"]["content"]
    deadline = time.monotonic() + 30
    while stack.gateway.process.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    # uvicorn exits by re-raising the signal it handled, once its shutdown is complete.
    assert stack.gateway.process.returncode in (0, -signal.SIGTERM)
    log = stack.gateway.log()
    assert "draining 1.5 s" in log and "Application shutdown complete." in log
    assert log.index("draining") < log.index("Shutting down")


async def test_under_load_keep_alive_clients_are_moved_off_without_a_reset(
    make_stack: StackFactory,
) -> None:
    """Clients on keep-alive connections, sending without pause. On SIGTERM every response says
    ``connection: close``; a client then sends once more, on a new connection, as it would
    before its load balancer moves it elsewhere. Every request gets its own answer: none meets
    a connection closed under it."""
    stack = make_stack(env={"FRUGAL_SHUTDOWN_DRAIN_S": "3", "FRUGAL_CACHE_MODE": "off"})
    sent = asyncio.Event()

    async def client(number: int) -> tuple[int, int]:
        """(answers before the drain, answers during it)"""
        before = during = 0
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
            while during < 2:
                prompt = f"client {number} asks question {before + during}"
                reply = await http.post("/completions", json={"model": "m", "prompt": prompt})
                assert reply.status_code == 200
                assert prompt in reply.json()["choices"][0]["text"]
                if reply.headers.get("connection") == "close":
                    during += 1
                else:
                    before += 1
                    sent.set()
        return before, during

    clients = [asyncio.create_task(client(n)) for n in range(8)]
    await sent.wait()
    await asyncio.sleep(0.5)
    stack.gateway.process.send_signal(signal.SIGTERM)
    counts = await asyncio.gather(*clients)
    assert all(before > 0 and during == 2 for before, during in counts)
    assert await asyncio.to_thread(stack.gateway.process.wait, 30) in (0, -signal.SIGTERM)
