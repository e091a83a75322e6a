"""Serving the gateway with uvicorn, with a drain before a SIGTERM'd shutdown.

On SIGTERM the gateway first reports itself not ready (``/readyz`` 503) while it keeps serving
for ``drain_s``, so a load balancer stops sending it new requests; then uvicorn's graceful
shutdown stops accepting, lets every request in flight (queued misses included) finish, and
runs the app's shutdown. Ctrl-C (SIGINT), or a second signal, skips the drain.

While draining, every response carries ``connection: close``: a client opens a new connection
for its next request (served while the drain lasts, refused cleanly after) instead of reusing a
keep-alive connection that the shutdown would close under a request it is sending.

Start-up fails in one of two ways, both raised as `ConfigurationError` with a one-line message
and nothing served: the address cannot be bound (bound here, before the app starts, so a port
in use costs no model load), or the app's start-up (its lifespan) raises. uvicorn would log the
latter as a traceback and exit 3; `StartupGuard` keeps the exception for the message instead.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from types import FrameType

import uvicorn
from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from frugal.errors import ConfigurationError, FrugalError

logger = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, *, app: FastAPI, drain_s: float) -> None:
        super().__init__(config)
        self._app = app
        self._drain_s = drain_s
        self._draining = False

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        # uvicorn says where it listens only for the sockets it binds itself.
        for sock in sockets or []:
            host, port = sock.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host  # an IPv6 address, as URLs write it
            logger.info("frugal gateway listening on http://%s:%d", shown, port)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Before it serves there is nothing to drain: a gateway still starting stops at once.
        skip = sig != signal.SIGTERM or self._drain_s <= 0 or not self.started
        if skip or self._draining or self.should_exit:
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


class StartupGuard:
    """ASGI middleware: an exception of the app's start-up is kept in ``failure`` (and logged
    with its traceback only at debug level) rather than logged as a traceback by uvicorn,
    which then stops; failures after start-up pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.failure: Exception | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_untold(message: Message) -> None:
            nonlocal started
            if message["type"] == "lifespan.startup.complete":
                started = True
            elif message["type"] == "lifespan.startup.failed":
                message = {**message, "message": ""}  # the traceback: told by `serve`, in a line
            await send(message)

        try:
            await self.app(scope, receive, send_untold)
        except Exception as exc:
            if started:
                raise
            logger.debug("start-up failed", exc_info=exc)
            self.failure = exc


def describe(exc: BaseException) -> str:
    """``exc`` as one line: frugal's own message, an OS error's reason and file, or the
    exception's type and text."""
    if isinstance(exc, FrugalError):
        text = exc.message
    elif isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror + (f": {exc.filename}" if exc.filename else "")
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def listen_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not yet listening: uvicorn listens once the app
    has started, so nothing connects to a gateway still loading its model).

    Raises `ConfigurationError` naming the address when it cannot be bound (in use, no such
    interface or host name).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(
            f"cannot listen on {host}:{port} (FRUGAL_HOST, FRUGAL_PORT): {describe(exc)}"
        ) from None
    return sock


def serve(app: FastAPI, *, host: str, port: int, log_level: str, drain_s: float) -> None:
    """Serve ``app`` on ``host:port`` until a signal stops it (see the module's docstring).

    Raises `ConfigurationError`, with a one-line message, when the address cannot be bound or
    the app's start-up fails; nothing was served then.
    """
    sock = listen_socket(host, port)
    server, guard = gateway_server(app, host=host, port=port, log_level=log_level, drain_s=drain_s)
    try:
        server.run(sockets=[sock])
    except SystemExit:
        if guard.failure is None:
            raise
    finally:
        sock.close()
    if guard.failure is not None:
        raise ConfigurationError(f"cannot start: {describe(guard.failure)}")


def server_config(app: ASGIApp, *, host: str, port: int, log_level: str) -> uvicorn.Config:
    """uvicorn's settings for serving ``app``, the gateway or `frugal serve --workers`."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,  # frugal's JSON lines, configured by the caller, not uvicorn's format
        access_log=False,  # one line per request comes from frugal, with what it did
        timeout_graceful_shutdown=30,
    )


def gateway_server(
    app: FastAPI, *, host: str, port: int, log_level: str, drain_s: float
) -> tuple[DrainingServer, StartupGuard]:
    """The server that runs ``app`` with the drain, and the guard that keeps its start-up
    failure (``guard.failure``) once ``run`` has ended."""
    guard = StartupGuard(CloseWhileDraining(app))
    config = server_config(guard, host=host, port=port, log_level=log_level)
    return DrainingServer(config, app=app, drain_s=drain_s), guard
