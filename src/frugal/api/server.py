"""Serving the gateway with uvicorn, with a drain before a SIGTERM'd shutdown.

On SIGTERM the gateway first reports itself not ready (``/readyz`` 503) while it keeps serving
for ``drain_s``, so a load balancer stops sending it new requests; then uvicorn's graceful
shutdown stops accepting, lets every request in flight (queued misses included) finish, and
runs the app's shutdown. Ctrl-C (SIGINT), or a second signal, skips the drain.

While draining, every response carries ``connection: close``: a client opens a new connection
for its next request (served while the drain lasts, refused cleanly after) instead of reusing a
keep-alive connection that the shutdown would close under a request it is sending.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import uvicorn
from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.types import Message, Receive, Scope, Send

logger = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, *, app: FastAPI, drain_s: float) -> None:
        super().__init__(config)
        self._app = app
        self._drain_s = drain_s
        self._draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGTERM or self._drain_s <= 0 or self._draining or self.should_exit:
            super().handle_exit(sig, frame)
            return
        self._draining = True
        gateway = getattr(self._app.state, "gateway", None)
        if gateway is not None:
            gateway.ready = False
        logger.warning("SIGTERM: not ready; draining %.1f s before shutting down", self._drain_s)
        timer = threading.Timer(self._drain_s, super().handle_exit, args=(sig, frame))
        timer.daemon = True
        timer.start()


class CloseWhileDraining:
    """ASGI middleware: ``connection: close`` on every response while the gateway is not ready."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            gateway = getattr(self.app.state, "gateway", None)
            if message["type"] == "http.response.start" and gateway and not gateway.ready:
                MutableHeaders(scope=message)["connection"] = "close"
            await send(message)

        await self.app(scope, receive, send_closing)


def serve(app: FastAPI, *, host: str, port: int, log_level: str, drain_s: float) -> None:
    config = uvicorn.Config(
        CloseWhileDraining(app),
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,  # frugal's JSON lines, configured by the caller, not uvicorn's format
        access_log=False,  # one line per request comes from frugal, with what it did
        timeout_graceful_shutdown=30,
    )
    DrainingServer(config, app=app, drain_s=drain_s).run()
