"""Serving a simulator from a thread on a real loopback socket, and talking to it."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import openai
import uvicorn

from frugal.sim import SimConfig, create_sim_app

CHAT = "/v1/chat/completions"
FAST = {"call_latency_ms": 0.0, "item_latency_ms": 0.0, "token_latency_ms": 0.0}
USER_X: list[Any] = [{"role": "user", "content": "x"}]

SimFactory = Callable[..., str]


@contextmanager
def serving(config: SimConfig) -> Iterator[str]:
    """Serve a simulator from a thread on a free loopback port; yields its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    app = create_sim_app(config)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws="none", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the simulator did not start"
            time.sleep(0.005)
        yield "http://127.0.0.1:%d" % sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def sdk(url: str, key: str = "k") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0)


def chat_body(prompt: str, **extra: Any) -> dict[str, Any]:
    return {"model": "sim-small", "messages": [{"role": "user", "content": prompt}], **extra}


def stats(url: str) -> dict[str, Any]:
    return httpx.get(url + "/sim/stats").json()


def events(text: str) -> list[Any]:
    """The payloads of an SSE body, ``"[DONE]"`` kept as a string."""
    payloads = [line.removeprefix("data: ") for line in text.split("\n\n") if line]
    return [p if p == "[DONE]" else json.loads(p) for p in payloads]
